// Command-line options with node:util's parseArgs; a wrong option is a clear usage error.
import { parseArgs, type ParseArgsConfig } from "node:util";
import { FleetError } from "../errors";

export type OptionSpec = NonNullable<ParseArgsConfig["options"]>;

export function parseCommandArgs<T extends OptionSpec>(args: string[], options: T, usage: string) {
    let parsed;
    try {
        parsed = parseArgs({ args, options, strict: true, allowPositionals: false, tokens: true });
    } catch (error) {
        throw new FleetError({
            phase: "select",
            message: error instanceof Error ? error.message : String(error),
            hint: `usage: ${usage}`,
        });
    }
    // parseArgs keeps the last of a repeated option; `--steps 1 --steps 2` is a mistake to say.
    const seen = new Set<string>();
    for (const token of parsed.tokens ?? []) {
        if (token.kind !== "option") continue;
        if (seen.has(token.name)) {
            throw new FleetError({ phase: "select", message: `--${token.name} is given more than once`, hint: `usage: ${usage}` });
        }
        seen.add(token.name);
    }
    return parsed.values;
}

/** A whole number of at least 1, written as digits only ("2", not "2.0", "0x2", "1e1" or " 2"). */
export function positiveInteger(value: string | undefined, option: string): number | undefined {
    if (value === undefined) return undefined;
    const n = /^[0-9]+$/.test(value) ? Number(value) : NaN;
    if (!Number.isSafeInteger(n) || n < 1) {
        throw new FleetError({ phase: "select", message: `${option} must be a whole number of at least 1, not "${value}"` });
    }
    return n;
}

/** Options deploy and rollback share. */
export const DEPLOYMENT_OPTIONS = {
    hosts: { type: "string" },
    stack: { type: "string" },
    preview: { type: "boolean" },
    yes: { type: "boolean", short: "y" },
    parallel: { type: "string" },
    json: { type: "boolean" },
    help: { type: "boolean", short: "h" },
} as const;
