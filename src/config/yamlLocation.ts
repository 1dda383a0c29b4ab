// Maps field paths back to lines of the YAML source, so a problem points at the key or value a
// person has to edit. Works on the Document from parseDocument (which keeps source ranges).
import { isAlias, isMap, isPair, isScalar, isSeq, type Document, type LineCounter, type Node } from "yaml";
import type { FieldPath } from "./issues";

export interface YamlSource {
    document: Document.Parsed;
    lineCounter: LineCounter;
}

/**
 * The 1-based line of the node at `path`. With `at: "key"` the line of the key itself (unknown
 * fields). When the path does not exist (a missing field) the line of the nearest parent that
 * does, i.e. the mapping the field belongs in.
 */
export function lineOfPath(source: YamlSource, path: FieldPath, at: "key" | "value" = "value"): number {
    let node: unknown = source.document.contents;
    for (const [index, key] of path.entries()) {
        const last = index === path.length - 1;
        const next = childOf(source, node, key);
        if (!next) return lineOfNode(source, node);
        if (last && at === "key" && next.key) return lineOfNode(source, next.key);
        // `port:` with no value has an empty scalar; its key is the useful place to point at.
        node = isEmptyScalar(next.value) && next.key ? next.key : next.value;
    }
    return lineOfNode(source, node);
}

/** The dotted path of the mapping key that starts at `offset` (to name duplicate keys). */
export function keyPathAtOffset(source: YamlSource, offset: number): FieldPath | undefined {
    const search = (node: unknown, path: PropertyKey[]): FieldPath | undefined => {
        if (isMap(node)) {
            for (const pair of node.items) {
                const key = isScalar(pair.key) ? String(pair.key.value) : String(pair.key);
                if (isScalar(pair.key) && pair.key.range?.[0] === offset) return [...path, key];
                const found = search(pair.value, [...path, key]);
                if (found) return found;
            }
        } else if (isSeq(node)) {
            for (const [index, item] of node.items.entries()) {
                const found = search(item, [...path, index]);
                if (found) return found;
            }
        }
        return undefined;
    };
    return search(source.document.contents, []);
}

/** The dotted path of the last mapping key before `offset`: the field a syntax error is in. */
export function lastKeyBefore(source: YamlSource, offset: number): string | undefined {
    let best: { start: number; field: string } | undefined;
    const visit = (node: unknown, prefix: string): void => {
        if (!isMap(node)) return;
        for (const pair of node.items) {
            const start = isScalar(pair.key) ? pair.key.range?.[0] : undefined;
            if (start === undefined || start >= offset || !isScalar(pair.key)) continue;
            const field = prefix ? `${prefix}.${String(pair.key.value)}` : String(pair.key.value);
            if (!best || start >= best.start) best = { start, field };
            visit(pair.value, field);
        }
    };
    visit(source.document.contents, "");
    return best?.field;
}

export function lineOfOffset(source: Pick<YamlSource, "lineCounter">, offset: number): number {
    return source.lineCounter.linePos(offset).line;
}

function childOf(source: YamlSource, parent: unknown, key: PropertyKey): { key?: Node; value: unknown } | undefined {
    const node = isAlias(parent) ? parent.resolve(source.document) : parent;
    if (isMap(node)) {
        const pair = node.items.find((item) => isPair(item) && isScalar(item.key) && String(item.key.value) === String(key));
        return pair ? { key: pair.key as Node, value: pair.value } : undefined;
    }
    if (isSeq(node) && typeof key === "number") {
        const item: unknown = node.items[key];
        return item === undefined ? undefined : { value: item };
    }
    return undefined;
}

function isEmptyScalar(node: unknown): boolean {
    return isScalar(node) && node.value === null && node.source === "";
}

function lineOfNode(source: YamlSource, node: unknown): number {
    const range = (node as Node | null | undefined)?.range;
    return range ? lineOfOffset(source, range[0]) : 1;
}
