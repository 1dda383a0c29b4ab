// Small field rules shared by the host schema and the stack settings. Every rule words its
// failure as "expected <what>, got <value>" so a message makes sense without the docs open.
import { z } from "zod";

/** Zod error option that says what a field expects and what it got instead. */
export function expecting(description: string): { error: (issue: z.core.$ZodRawIssue) => string } {
    return {
        error: (issue) =>
            issue.input === undefined
                ? `missing required field (expected ${description})`
                : `expected ${description}, got ${describeValue(issue.input)}`,
    };
}

/** A custom-rule failure with its own hint; issues.ts reads the hint back from `params`. */
export function failure(message: string, hint?: string): { message: string; params?: { hint: string } } {
    return hint === undefined ? { message } : { message, params: { hint } };
}

/** How a YAML/JSON value reads in a message: strings quoted, containers named, long text cut. */
export function describeValue(value: unknown): string {
    if (value === null) return "an empty value";
    if (Array.isArray(value)) return "a list";
    if (typeof value === "object") return "a mapping";
    if (typeof value === "string") return JSON.stringify(value.length > 60 ? `${value.slice(0, 57)}...` : value);
    return String(value);
}

export function integerIn(min: number, max: number, description = `an integer from ${min} to ${max}`) {
    const expected = expecting(description);
    return z.int(expected).min(min, expected).max(max, expected);
}

/** Whole seconds; 0 only where it means "off". */
export function seconds(options: { allowZero?: boolean; max?: number } = {}) {
    const min = options.allowZero ? 0 : 1;
    const max = options.max ?? 86_400;
    return integerIn(min, max, `a whole number of seconds from ${min} to ${max}`);
}

export function boolean() {
    return z.boolean(expecting("true or false"));
}

/** A string matching `pattern`, described for people by `description`. */
export function matching(pattern: RegExp, description: string) {
    const expected = expecting(description);
    return z.string(expected).regex(pattern, expected);
}

export function listOf<T extends z.ZodType>(item: T, description: string) {
    return z.array(item, expecting(description));
}

/** A list whose items must be distinct (tags, unit names): duplicates are usually copy-paste slips. */
export function distinctListOf<T extends z.ZodType<string>>(item: T, description: string) {
    return listOf(item, description).superRefine((items, context) => {
        const seen = new Set<string>();
        items.forEach((value: string, index: number) => {
            if (seen.has(value)) {
                context.addIssue({ code: "custom", path: [index], ...failure(`duplicate entry ${describeValue(value)}`) });
            }
            seen.add(value);
        });
    });
}

const CONTROL_CHARACTERS = /[\u0000-\u001f\u007f]/;
const WHITESPACE = /\s/;

/**
 * A local file path that ends up inside NIX_SSHOPTS. Nix splits that variable on whitespace
 * (no quoting), so a path with a space would silently become two ssh arguments.
 */
export function sshOptsPath(description: string) {
    return z
        .string(expecting(description))
        .min(1, expecting(description))
        .superRefine((value, context) => {
            if (WHITESPACE.test(value)) {
                context.addIssue({
                    code: "custom",
                    ...failure(
                        `path ${describeValue(value)} contains whitespace, which is not supported`,
                        "ssh files are passed to nix through NIX_SSHOPTS, which nix splits on whitespace; move or symlink the file to a path without spaces",
                    ),
                });
            } else if (CONTROL_CHARACTERS.test(value)) {
                context.addIssue({ code: "custom", ...failure(`path ${describeValue(value)} contains control characters`) });
            } else if (value.startsWith("-")) {
                context.addIssue({
                    code: "custom",
                    ...failure(`path ${describeValue(value)} starts with "-" and would be read as an ssh option`, `write it as "./${value}"`),
                });
            }
        });
}

/** An argument vector: run directly, never through a shell, so no quoting rules apply. */
export function argv(description = "a command as a list of strings (argv), e.g. [systemctl, is-active, nginx]") {
    const expected = expecting(description);
    return z.array(z.string(expected).min(1, expecting("a non-empty string")), expected).min(1, expected);
}
