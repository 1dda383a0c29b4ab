// Turns zod issues into problems people can act on: one problem per offending field (zod reports
// all unknown keys of an object as one issue), with a dotted field path and a hint.
import type { z } from "zod";
import { didYouMean } from "./suggest";

export type FieldPath = readonly PropertyKey[];

export interface FieldProblem {
    path: FieldPath;
    message: string;
    hint?: string;
    /** True when the field itself does not exist (missing or unknown): locate it by its parent or key. */
    kind: "value" | "missing" | "unknown-key";
}

/** How many field problems fieldProblems would make of these issues (without making them). */
export function countFieldProblems(issues: readonly z.core.$ZodIssue[]): number {
    return issues.reduce((count, issue) => count + (issue.code === "unrecognized_keys" ? issue.keys.length : 1), 0);
}

/**
 * Flattens zod issues into field problems, naming unknown keys one by one with a suggestion. At
 * most `limit` are made: a file with thousands of unknown keys must not cost thousands of hints.
 */
export function fieldProblems(issues: readonly z.core.$ZodIssue[], schema: z.ZodType, input: unknown, limit = Infinity): FieldProblem[] {
    let left = limit;
    return issues.flatMap((issue): FieldProblem[] => {
        if (left <= 0) return [];
        if (issue.code === "unrecognized_keys") {
            const known = knownKeysAt(schema, issue.path);
            const keys = issue.keys.slice(0, left);
            left -= keys.length;
            return keys.map((key) => ({
                path: [...issue.path, key],
                message: `unknown field "${key}"`,
                hint: unknownKeyHint(key, known),
                kind: "unknown-key",
            }));
        }
        left -= 1;
        if (issue.code === "invalid_key") {
            const key = issue.path[issue.path.length - 1];
            const reason = issue.issues[0]?.message ?? issue.message;
            return [{ path: issue.path, message: `invalid key "${String(key)}": ${reason}`, kind: "unknown-key" }];
        }
        const hint = hintOf(issue);
        const missing = issue.code === "invalid_type" && valueAt(input, issue.path) === undefined;
        return [{ path: issue.path, message: issue.message, ...(hint ? { hint } : {}), kind: missing ? "missing" : "value" }];
    });
}

/** `healthChecks.tcp[0].port` */
export function formatFieldPath(path: FieldPath): string {
    return path.reduce<string>((text, key) => {
        if (typeof key === "number") return `${text}[${key}]`;
        return text ? `${text}.${String(key)}` : String(key);
    }, "");
}

function valueAt(input: unknown, path: FieldPath): unknown {
    let current = input;
    for (const key of path) {
        if (current === null || typeof current !== "object") return undefined;
        current = (current as Record<PropertyKey, unknown>)[key];
    }
    return current;
}

function hintOf(issue: z.core.$ZodIssue): string | undefined {
    const params = "params" in issue ? (issue.params as { hint?: unknown } | undefined) : undefined;
    return typeof params?.hint === "string" ? params.hint : undefined;
}

function unknownKeyHint(key: string, known: readonly string[]): string | undefined {
    if (known.length === 0) return undefined;
    return `${didYouMean(key, known)}known fields here: ${known.join(", ")}`;
}

// Minimal view of zod 4 internals used to list the fields an object schema accepts.
interface SchemaDef {
    type: string;
    shape?: Record<string, z.ZodType>;
    innerType?: z.ZodType;
    element?: z.ZodType;
    valueType?: z.ZodType;
    in?: z.ZodType;
}

/** The field names the schema accepts at `path`, for "did you mean" hints. */
export function knownKeysAt(schema: z.ZodType, path: FieldPath): string[] {
    let current: z.ZodType | undefined = unwrap(schema);
    for (const key of path) {
        const def: SchemaDef | undefined = current && (current.def as SchemaDef);
        if (!def) return [];
        if (def.type === "object") current = def.shape?.[String(key)];
        else if (def.type === "array") current = def.element;
        else if (def.type === "record") current = def.valueType;
        else return [];
        current = current && unwrap(current);
    }
    const def = current?.def as SchemaDef | undefined;
    return def?.type === "object" && def.shape ? Object.keys(def.shape) : [];
}

function unwrap(schema: z.ZodType): z.ZodType {
    let current = schema;
    for (;;) {
        const def = current.def as SchemaDef;
        const inner = def.innerType ?? (def.type === "pipe" ? def.in : undefined);
        if (!inner) return current;
        current = inner;
    }
}
