// Errors are values: every failure nixos-fleet reports names the host (when there is one), the
// phase it happened in, what went wrong and a hint for the operator. formatFleetError is the one
// place that turns them into text for people.

export type Phase =
    | "config"
    | "select"
    | "evaluate"
    | "build"
    | "connect"
    | "copy"
    | "activate"
    | "rollback"
    | "verify"
    | "reboot"
    | "hook"
    | "secrets"
    | "read";

export interface FleetErrorFields {
    phase: Phase;
    message: string;
    hint?: string;
    host?: string;
    /** Output of the failing tool (nix, ssh, switch-to-configuration), shown verbatim. */
    detail?: string;
    /**
     * "unknown" when nobody can tell how the phase ended (the host went away mid-activation): the
     * text then never says "failed", "restored" or "deployed".
     */
    outcome?: "failed" | "unknown";
    /** Where in a config file the problem is. */
    file?: string;
    line?: number;
    field?: string;
}

export class FleetError extends Error {
    readonly phase: Phase;
    readonly hint?: string;
    readonly host?: string;
    readonly detail?: string;
    readonly outcome: "failed" | "unknown";
    readonly file?: string;
    readonly line?: number;
    readonly field?: string;

    constructor(fields: FleetErrorFields) {
        super(fields.message);
        this.name = "FleetError";
        this.phase = fields.phase;
        this.hint = fields.hint;
        this.host = fields.host;
        this.detail = fields.detail;
        this.outcome = fields.outcome ?? "failed";
        this.file = fields.file;
        this.line = fields.line;
        this.field = fields.field;
    }

    toJSON(): FleetErrorFields {
        const { phase, message, hint, host, detail, outcome, file, line, field } = this;
        return { phase, message, hint, host, detail, outcome, file, line, field };
    }
}

export function isFleetError(value: unknown): value is FleetError {
    return value instanceof FleetError;
}

/** Keeps the end of long tool output: the cause is usually in the last lines. */
export function tail(text: string, maxLines = 40): string {
    const lines = text.trimEnd().split("\n");
    return lines.length <= maxLines ? lines.join("\n") : ["…", ...lines.slice(-maxLines)].join("\n");
}

/** The single formatter for people: `host alpha: activate failed: …` + location + detail + hint. */
export function formatFleetError(error: FleetError): string {
    const where = error.host ? `host ${error.host}: ` : "";
    const lines = [error.outcome === "unknown" ? `${where}${error.phase}: ${error.message}` : `${where}${error.phase} failed: ${error.message}`];
    if (error.file) {
        const at = error.line ? `${error.file}:${error.line}` : error.file;
        lines.push(`  at ${at}${error.field ? ` (field ${error.field})` : ""}`);
    }
    if (error.detail && error.detail.trim()) {
        lines.push(...tail(error.detail).split("\n").map((line) => `  | ${line}`));
    }
    if (error.hint) lines.push(`  hint: ${error.hint}`);
    return lines.join("\n");
}

/** Formats anything thrown: FleetErrors get the full treatment, other errors their message. */
export function formatError(error: unknown): string {
    if (isFleetError(error)) return formatFleetError(error);
    if (error instanceof Error) return error.message;
    return String(error);
}
