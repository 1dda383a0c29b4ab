// Config problems are reported all at once: fixing one typo per `pulumi up` is slow, so loaders
// collect every problem as a FleetError (with file, line and field) and throw one
// FleetConfigError that lists them all.
import { FleetError, type FleetErrorFields, type Phase } from "../errors";

export type ConfigPhase = Extract<Phase, "config" | "select">;

/** One FleetError that carries every problem found, each with its own location and hint. */
export class FleetConfigError extends FleetError {
    readonly problems: readonly FleetError[];

    constructor(problems: readonly FleetError[], summary: string, phase: ConfigPhase = "config") {
        super({ phase, message: listProblems(problems, summary), host: commonHost(problems) });
        this.name = "FleetConfigError";
        this.problems = problems;
    }
}

export function isFleetConfigError(value: unknown): value is FleetConfigError {
    return value instanceof FleetConfigError;
}

/** Throws a FleetConfigError when there is anything to report. */
export function throwIfProblems(problems: readonly FleetError[], summary: string, phase: ConfigPhase = "config"): void {
    if (problems.length > 0) throw new FleetConfigError(problems, summary, phase);
}

/** A problem in a config file or config value. */
export function configProblem(fields: Omit<FleetErrorFields, "phase"> & { phase?: ConfigPhase }): FleetError {
    return new FleetError({ phase: "config", ...fields });
}

/** `hosts/alpha.yaml:3 port: expected …` — the location first, so the list scans like compiler output. */
export function formatProblem(problem: FleetError): string {
    const where = [problem.file && (problem.line ? `${problem.file}:${problem.line}` : problem.file), problem.field]
        .filter(Boolean)
        .join(" ");
    const host = problem.host && !problem.file ? `host ${problem.host}: ` : "";
    const lines = [`${where ? `${where}: ` : ""}${host}${problem.message}`];
    if (problem.hint) lines.push(`    hint: ${problem.hint}`);
    return lines.join("\n");
}

/** Problems shown in the message; the rest are counted ("and N more"), all stay in `problems`. */
export const MAX_LISTED_PROBLEMS = 20;

function listProblems(problems: readonly FleetError[], summary: string): string {
    const count = problems.length === 1 ? "1 problem" : `${problems.length} problems`;
    const shown = problems.slice(0, MAX_LISTED_PROBLEMS).map((problem) => indent(formatProblem(problem)));
    const rest = problems.length - MAX_LISTED_PROBLEMS;
    return [`${summary} (${count}):`, ...shown, ...(rest > 0 ? [`  ... and ${rest} more`] : [])].join("\n");
}

// When every problem is about the same host, the aggregate is about that host too.
function commonHost(problems: readonly FleetError[]): string | undefined {
    const hosts = new Set(problems.map((problem) => problem.host));
    const [only] = hosts;
    return hosts.size === 1 ? only : undefined;
}

function indent(text: string): string {
    return text
        .split("\n")
        .map((line) => `  ${line}`)
        .join("\n");
}
