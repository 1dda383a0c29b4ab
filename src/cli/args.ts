// Command-line options with node:util's parseArgs; a wrong option is a clear usage error.
import { parseArgs, type ParseArgsConfig } from "node:util";
import { FleetError } from "../errors";

export type OptionSpec = NonNullable<ParseArgsConfig["options"]>;

export function parseCommandArgs<T extends OptionSpec>(args: string[], options: T, usage: string) {
    try {
        return parseArgs({ args, options, strict: true, allowPositionals: false }).values;
    } catch (error) {
        throw new FleetError({
            phase: "select",
            message: error instanceof Error ? error.message : String(error),
            hint: `usage: ${usage}`,
        });
    }
}

export function positiveInteger(value: string | undefined, option: string): number | undefined {
    if (value === undefined) return undefined;
    const n = Number(value);
    if (!Number.isInteger(n) || n < 1) {
        throw new FleetError({ phase: "select", message: `${option} must be a whole number of at least 1, not "${value}"` });
    }
    return n;
}

export function nonNegativeInteger(value: string | undefined, option: string): number | undefined {
    if (value === undefined) return undefined;
    const n = Number(value);
    if (!Number.isInteger(n) || n < 0) {
        throw new FleetError({ phase: "select", message: `${option} must be a whole number, not "${value}"` });
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
