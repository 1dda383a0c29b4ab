// What `deploy` and `rollback` show while the engine works: one line per host per phase (from the
// provider's progress messages), then a summary table built from the hosts' recorded outputs.
import type { EngineEvent } from "@pulumi/pulumi/automation";
import type { LastDeploy, LastReboot, RollbackMark } from "../provider/hostInputs";
import { describeRollback, undoneRollback, undoneRollbackReason } from "../provider/hostMarks";
import { formatPlan, type HostPlan, type PlanRequest } from "../deploy/plan";
import { shortStorePath } from "../nix/flags";
import { hostNameOfUrn } from "./stack";

/**
 * How each selected host ended, honestly:
 * - deployed: its system was activated (or set for boot) in this run;
 * - unchanged: it already runs its configured system (the engine found nothing to change, from
 *   the host's recorded state, or the provider read the host and found it running it);
 * - failed: with the phase and the error;
 * - unknown: nobody can tell how it ended (the host went away mid-activation, or the run stopped
 *   while its deploy was under way): `pulumi refresh` reads what it runs;
 * - not attempted: the run ended before this host was deployed, with why (another host failed,
 *   the stack is locked, cancelled, the program failed);
 * - held back: pinned by `rollback`, so its configuration is not deployed until `rollback --clear`;
 *   or, in a staged rollout, not started because a host of an earlier batch failed (the reason says
 *   which; see heldBackByRollout in runDeployment.ts).
 * A preview says planned / no change planned / held back instead.
 */
export type HostResult = "deployed" | "unchanged" | "failed" | "unknown" | "not attempted" | "held back" | "planned" | "no change planned";

/** Why a run ended early, for the hosts it never reached. */
export type RunFailure =
    | { kind: "locked"; message: string }
    | { kind: "cancelled" }
    | { kind: "program"; message: string }
    | { kind: "engine"; message: string }
    /** pulumi itself was killed (a signal it could not handle): the stack stays locked, its update half recorded. */
    | { kind: "killed"; message: string };

export interface HostSummary {
    host: string;
    result: HostResult;
    /** For failed: the phase it failed in (evaluate, build, connect, copy, activate, verify, …). */
    phase?: string;
    /** For not attempted and held back: why; for planned and deployed: the rollback it undoes. */
    reason?: string;
    /** The plan deploys (or the run deployed) the configuration over this rollback (the config lacks its pin). */
    undoesRollback?: RollbackMark;
    generationBefore: number | null;
    generationAfter: number | null;
    storePathBefore: string | null;
    storePathAfter: string | null;
    pathsCopied: number;
    bytesCopied: number;
    timings: Record<string, number>;
    /** The build host that built the system (buildHost), when another host did. */
    builtOn?: string;
    error?: string;
    /** For planned: the packages added, removed and changed, builds, copies and whether it needs a reboot (deploy/plan.ts). */
    plan?: HostPlan;
    /** For deployed and unchanged: why the host still needs a reboot (null: it does not; absent: unknown). */
    rebootNeeded?: string | null;
    /** The reboot this run made (outcome booted), or tried (unknown: it did not come back in time). */
    reboot?: LastReboot;
}

interface HostRecord {
    op?: string;
    oldOutputs?: Record<string, unknown>;
    newOutputs?: Record<string, unknown>;
    newInputs?: Record<string, unknown>;
    errors: string[];
}


/** Collects engine events into per-host records, printing progress lines as they come. */
export class ProgressTracker {
    private readonly hosts = new Map<string, HostRecord>();
    readonly programErrors: string[] = [];
    readonly warnings: string[] = [];

    /** hidePlans: the provider's plan lines are not echoed (a preview shows them under its table). */
    constructor(
        private readonly print: (line: string) => void,
        private readonly options: { hidePlans?: boolean } = {},
    ) {}

    /** What the plan of a host that the preview found changing compares: recorded state and new inputs. */
    planRequest(host: string): PlanRequest | undefined {
        const record = this.hosts.get(host);
        const inputs = record?.newInputs;
        if (!record || record.op === undefined || record.op === "same" || typeof inputs?.storePath !== "string") return undefined;
        const old = record.oldOutputs;
        return {
            old: typeof old?.storePath === "string" ? { storePath: old.storePath, ...(typeof old.drvPath === "string" ? { drvPath: old.drvPath } : {}) } : undefined,
            new: { storePath: inputs.storePath, ...(typeof inputs.drvPath === "string" ? { drvPath: inputs.drvPath } : {}) },
            buildOn: inputs.buildOn === "target" ? "target" : "local",
            ...(buildHostName(inputs.buildHost) ? { buildHost: buildHostName(inputs.buildHost) } : {}),
        };
    }

    /** The host's recorded outputs (its state before this run), when the engine sent them. */
    recordedOutputs(host: string): Record<string, unknown> | undefined {
        return this.hosts.get(host)?.oldOutputs;
    }

    private record(host: string): HostRecord {
        let record = this.hosts.get(host);
        if (!record) {
            record = { errors: [] };
            this.hosts.set(host, record);
        }
        return record;
    }

    readonly onEvent = (event: EngineEvent): void => {
        const pre = event.resourcePreEvent?.metadata;
        if (pre) {
            const host = hostNameOfUrn(pre.urn);
            if (host) {
                const record = this.record(host);
                record.op = pre.op;
                record.oldOutputs = pre.old?.outputs;
                record.newInputs = pre.new?.inputs;
            }
        }
        const outputs = event.resOutputsEvent?.metadata;
        if (outputs) {
            const host = hostNameOfUrn(outputs.urn);
            if (host) {
                const record = this.record(host);
                record.op = outputs.op;
                record.newOutputs = outputs.new?.outputs;
            }
        }
        const diagnostic = event.diagnosticEvent;
        if (diagnostic) {
            const host = diagnostic.urn ? hostNameOfUrn(diagnostic.urn) : undefined;
            // The engine wraps a partial failure's reason (an activated host whose reboot failed) in "1 error occurred:".
            const message = diagnostic.message.trimEnd().replace(/^1 error occurred:\n\t\* /, "");
            if (diagnostic.severity === "error" && DUPLICATE_URN.test(message)) {
                // Not the host's failure: the engine refused the update before deploying it.
                const explained = duplicateUrnMessage(message, host);
                this.programErrors.push(explained);
                this.print(`error: ${explained}`);
            } else if (diagnostic.severity === "error") {
                if (host) this.record(host).errors.push(message);
                else if (!/^update failed$|^preview failed$/.test(message.trim())) this.programErrors.push(message);
                this.print(host ? `[${host}] error: ${message}` : `error: ${message}`);
            } else if (diagnostic.severity === "warning") {
                this.warnings.push(message);
                this.print(host ? `[${host}] warning: ${message}` : `warning: ${message}`);
            } else if (diagnostic.severity !== "info" && diagnostic.severity !== "info#err") {
                // debug chatter from the engine and SDK
            } else if (host && this.options.hidePlans && message.startsWith(`${host}: plan`)) {
                // shown with the preview's table
            } else if (host) {
                // The provider prefixes its lines with the host name.
                this.print(`[${host}] ${message.startsWith(`${host}: `) ? message.slice(host.length + 2) : message}`);
            } else if (message) {
                this.print(message);
            }
        }
    };

    summaries(hosts: readonly string[], planning: boolean, failure?: RunFailure): HostSummary[] {
        const rows = hosts.map((host) => summarize(host, this.hosts.get(host) ?? { errors: [] }, planning));
        const failed = rows.filter((row) => row.result === "failed").map((row) => row.host);
        return rows.map((row) => (row.result === "not attempted" ? { ...row, reason: notAttemptedReason(failed, failure, planning) } : row));
    }
}

const DUPLICATE_URN = /^Duplicate resource URN '/;

/**
 * Pulumi's engine can refuse a targeted update with "Duplicate resource URN" when the
 * dependencies between hosts changed since the last update (the rollout's batches): a known
 * engine bug (pulumi/pulumi#24303). One untargeted update records the new order.
 */
export function duplicateUrnMessage(message: string, host: string | undefined): string {
    return (
        `${message.trim()}: Pulumi refused this targeted update${host ? ` before deploying ${host}` : ""}; this is a known Pulumi engine bug ` +
        "(pulumi/pulumi#24303) after the dependencies between hosts changed (e.g. the rollout's canary or batches)\n" +
        "  hint: run one update of the whole stack, `npm run pulumi -- up`, which records the new order; targeted runs (deploy --hosts, rollouts with maxFailures) work again after it"
    );
}

/** Why a host the run never reached was not attempted. */
export function notAttemptedReason(failedHosts: readonly string[], failure: RunFailure | undefined, planning: boolean): string {
    if (failure?.kind === "locked") return "the stack is locked by another update";
    if (failure?.kind === "cancelled") return "cancelled";
    if (failedHosts.length) return `another host failed (${failedHosts.join(", ")})`;
    if (failure?.kind === "program") return "the program failed before this host was reached";
    return planning ? "the preview ended before this host was reached" : "the update ended before this host was reached";
}

/** `host psi: activate failed: …` → activate. */
export function phaseOf(error: string): string | undefined {
    return /(?:^|\n)(?:error: )?host \S+: ([a-z-]+)(?: failed|: outcome unknown): /.exec(error)?.[1];
}

/** The provider's error says nobody can know how the host ended (FleetError outcome "unknown"). */
export const outcomeUnknown = (error: string): boolean => /(?:^|\n)(?:error: )?host \S+: [a-z-]+: outcome unknown: /.test(error);

function num(value: unknown): number | null {
    return typeof value === "number" ? value : null;
}

function str(value: unknown): string | null {
    return typeof value === "string" ? value : null;
}

/** A pinned host whose configuration is not what it runs: its pin holds it back. */
function heldBack(record: HostRecord): string | undefined {
    const inputs = record.newInputs ?? {};
    const pin = inputs.pin as { generation?: number; configuredStorePath?: string } | undefined;
    if (!pin) return undefined;
    if (pin.configuredStorePath !== undefined && pin.configuredStorePath === inputs.storePath) return undefined;
    return `pinned${pin.generation ? ` to generation ${pin.generation}` : ""} by rollback; its configuration is deployed after rollback --clear`;
}

/** The "after" columns of a host whose outcome is unknown. */
const UNKNOWN_AFTER = { generationAfter: null, storePathAfter: null } as const;

function summarize(host: string, record: HostRecord, planning: boolean): HostSummary {
    const old = record.oldOutputs ?? {};
    const changes = record.op !== undefined && record.op !== "same";
    const base: HostSummary = {
        host,
        result: "not attempted",
        generationBefore: num(old.generation),
        generationAfter: num(old.generation),
        storePathBefore: str(old.storePath),
        storePathAfter: str(old.storePath),
        pathsCopied: 0,
        bytesCopied: 0,
        timings: {},
    };
    if (record.errors.length) {
        const error = record.errors.join("\n");
        const phase = phaseOf(error);
        const unknown = outcomeUnknown(error);
        // An unknown outcome (e.g. activated, then a reboot that did not come back): what the host
        // has now is not known here, never "the same as before".
        return { ...base, ...(unknown ? UNKNOWN_AFTER : {}), result: unknown ? "unknown" : "failed", ...(phase ? { phase } : {}), error, ...rebootOf(record, lastDeployOf(record)) };
    }
    // No event for the host: the engine never reached it.
    if (record.op === undefined) return base;
    if (planning) {
        if (!changes) {
            const reason = heldBack(record);
            return { ...base, result: reason ? "held back" : "no change planned", ...(reason ? { reason } : {}), generationAfter: null };
        }
        const undone = undoneRollback(old, record.newInputs ?? {});
        return {
            ...base,
            result: "planned",
            storePathAfter: str(record.newInputs?.storePath) ?? base.storePathAfter,
            generationAfter: null,
            ...(undone ? { reason: undoneRollbackReason(undone, record.newInputs ?? {}, "plan"), undoesRollback: undone } : {}),
        };
    }
    if (!changes) {
        const reason = heldBack(record);
        if (reason) return { ...base, result: "held back", reason };
        // The engine compared the configuration with the recorded state and found nothing to do.
        return record.oldOutputs ? { ...base, result: "unchanged" } : base;
    }
    if (!record.newOutputs) {
        // Started but never finished (the run was stopped): what the host runs is not known.
        return {
            ...base,
            ...UNKNOWN_AFTER,
            result: "unknown",
            error: "the update ended before this host's deploy finished, so what it runs is not known; its recorded state is unchanged (npm run pulumi -- refresh reads what it runs)",
        };
    }
    const last = (record.newOutputs.lastDeploy ?? {}) as Partial<LastDeploy>;
    const reboot = rebootOf(record, last);
    // A deploy without the pin (`deploy --yes`, `pulumi up`) says on its row which rollback it undid.
    const undone = undoneRollback(old, record.newInputs ?? {});
    return {
        ...base,
        ...(undone ? { reason: undoneRollbackReason(undone, record.newInputs ?? {}, "done"), undoesRollback: undone } : {}),
        // The provider read the host and found it already running this system: nothing was activated.
        result: last.activated === false ? "unchanged" : "deployed",
        generationBefore: last.generationBefore ?? base.generationBefore,
        generationAfter: num(record.newOutputs.generation),
        storePathAfter: str(record.newOutputs.storePath),
        pathsCopied: last.pathsCopied ?? 0,
        bytesCopied: last.bytesCopied ?? 0,
        timings: last.timings ?? {},
        // Said only for a build host: "here" and "on the host itself" are what buildOn already says.
        ...(last.builtOn && last.builtOn !== "local" && last.builtOn !== host ? { builtOn: last.builtOn } : {}),
        ...reboot,
    };
}

function lastDeployOf(record: HostRecord): Partial<LastDeploy> {
    return (record.newOutputs?.lastDeploy ?? {}) as Partial<LastDeploy>;
}

/** What this run's deploy of the host says about reboots (from its recorded outputs, partial ones included). */
function rebootOf(record: HostRecord, lastDeploy: Partial<LastDeploy>): Pick<HostSummary, "rebootNeeded" | "reboot"> {
    const outputs = record.newOutputs;
    if (!outputs) return {};
    const lastReboot = outputs.lastReboot as LastReboot | undefined;
    const old = record.oldOutputs?.lastReboot as LastReboot | undefined;
    // The reboot of this run: one it timed, or a new record (an unknown outcome is recorded without a timing).
    const thisRun = lastReboot && (lastDeploy.timings?.reboot !== undefined || JSON.stringify(lastReboot) !== JSON.stringify(old));
    const needed = outputs.rebootNeeded;
    return {
        ...(typeof needed === "string" || needed === null ? { rebootNeeded: needed } : {}),
        ...(thisRun ? { reboot: lastReboot } : {}),
    };
}

/**
 * The table's reboot column: `needed (kernel changed)`, `no`, `unknown` for a plan; for a deploy
 * also `rebooted in 2.4s` or `did not come back`; `-` when there is nothing to say.
 */
export function rebootCell(s: Pick<HostSummary, "plan" | "rebootNeeded" | "reboot" | "result" | "phase">): string {
    if (s.plan) {
        const reboot = s.plan.reboot;
        if (!reboot.known) return "unknown";
        return reboot.needed ? `needed (${reboot.changed.join(", ")} changed)` : "no";
    }
    if (s.reboot?.outcome === "booted") return `rebooted in ${s.reboot.waitedSeconds ?? "?"}s`;
    // The engine sends no outputs for a failed host: its error's phase says the reboot did not end well.
    if (s.reboot?.outcome === "unknown" || (s.result === "unknown" && s.phase === "reboot")) return "did not come back (unknown)";
    if (s.reboot?.outcome === "failed") return "failed";
    if (typeof s.rebootNeeded === "string") return `needed (${s.rebootNeeded})`;
    if (s.rebootNeeded === null) return "no";
    return "-";
}

/** The name in a buildHost input (a secret one stays unknown here). */
function buildHostName(input: unknown): string | undefined {
    const name = typeof input === "object" && input !== null ? (input as { name?: unknown }).name : undefined;
    return typeof name === "string" ? name : undefined;
}

export function bytes(n: number): string {
    if (n < 1024) return `${n} B`;
    if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
    return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

function seconds(ms: number | undefined): string {
    return ms === undefined ? "-" : `${(ms / 1000).toFixed(1)}s`;
}

const shortPath = (path: string | null): string => shortStorePath(path);

function resultCell(s: HostSummary): string {
    if (s.result === "failed") return `FAILED${s.phase ? ` (${s.phase})` : ""}: ${firstLine(s.error ?? "")}`;
    if (s.result === "unknown") return `UNKNOWN${s.phase ? ` (${s.phase})` : ""}: ${firstLine(s.error ?? "")}`;
    if (s.reason) return `${s.result}: ${s.reason}`;
    return s.result;
}

/** The error's own line, without the `host psi: activate failed:` prefix the phase column repeats. */
function firstLine(error: string): string {
    const line = error.split("\n")[0] ?? "";
    return line.replace(/^(?:error: )?host \S+: [a-z-]+(?: failed)?: /, "");
}

/** The summary table for people. */
export function renderSummary(summaries: readonly HostSummary[]): string {
    const header = ["host", "generation", "system", "copied", "build", "copy", "activate", "reboot", "result"];
    const rows = summaries.map((s) => [
        s.host,
        `${s.generationBefore ?? "-"} → ${s.generationAfter ?? "-"}`,
        s.storePathBefore === s.storePathAfter ? shortPath(s.storePathAfter) : `${shortPath(s.storePathBefore)} → ${shortPath(s.storePathAfter)}`,
        s.result === "deployed" ? `${s.pathsCopied} paths, ${bytes(s.bytesCopied)}` : "-",
        `${seconds(s.timings.build)}${s.builtOn ? ` on ${s.builtOn}` : ""}`,
        seconds(s.timings.copy),
        seconds(s.timings.activate),
        rebootCell(s),
        resultCell(s),
    ]);
    const widths = header.map((_, i) => Math.max(header[i]!.length, ...rows.map((row) => row[i]!.length)));
    const line = (cells: string[]) => cells.map((cell, i) => (i === cells.length - 1 ? cell : cell.padEnd(widths[i]!))).join("  ");
    const table = [line(header), ...rows.map(line)];
    const plans = summaries.filter((s) => s.plan).flatMap((s) => ["", `${s.host}:`, ...formatPlan(s.plan!, "  ")]);
    return [...table, ...plans].join("\n");
}
