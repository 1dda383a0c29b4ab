// Rollback pins live in the stack's own config file (Pulumi.<stack>.yaml, key nixos-fleet:pins),
// so a rollback is an ordinary, recorded `pulumi up` of pinned store paths. Edited in place with
// the yaml library so comments and the rest of the file stay as they are.
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseDocument, isMap, isScalar } from "yaml";
import type { Pin } from "../config";
import { stackFileName } from "../config/stackFile";

const PINS_KEY = "nixos-fleet:pins";

export function stackConfigFile(projectRoot: string, stack: string): string {
    return join(projectRoot, stackFileName(stack));
}

function load(file: string) {
    return parseDocument(existsSync(file) ? readFileSync(file, "utf8") : "config: {}\n");
}

export function readPins(file: string): Record<string, Pin> {
    const pins = load(file).toJS()?.config?.[PINS_KEY] as Record<string, Pin> | undefined;
    return { ...(pins ?? {}) };
}

/** Sets (or, with undefined, removes) the pins of the given hosts. */
export function writePins(file: string, changes: Record<string, Pin | undefined>): void {
    const doc = load(file);
    for (const [host, pin] of Object.entries(changes)) {
        if (pin) {
            const clean = Object.fromEntries(Object.entries(pin).filter(([, value]) => value !== undefined));
            const node = doc.createNode(clean);
            // Every text value quoted: unquoted, pulumi's YAML parser reads activatedAt as a time
            // and hands it on in another format (see isoPinTime).
            for (const pair of node.items) if (isScalar(pair.value) && typeof pair.value.value === "string") pair.value.type = "QUOTE_DOUBLE";
            doc.setIn(["config", PINS_KEY, host], node);
        } else if (doc.hasIn(["config", PINS_KEY, host])) {
            doc.deleteIn(["config", PINS_KEY, host]);
        }
    }
    const remaining = doc.getIn(["config", PINS_KEY]);
    if (isMap(remaining) && remaining.items.length === 0) doc.deleteIn(["config", PINS_KEY]);
    // No folding: a long store path stays on one line.
    writeFileSync(file, doc.toString({ lineWidth: 0 }));
}
