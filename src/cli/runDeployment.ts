// The shared core of `deploy` and `rollback`: plan (preview) the selected hosts, ask unless
// --yes, run `pulumi up` targeted at exactly those hosts, and report a line per host per phase
// and a summary. Only the named hosts are touched; others stay as they are.
import { createInterface } from "node:readline/promises";
import { missingStackMessage, type CliStack } from "./cliStack";
import { EngineRunError } from "./engineRun";
import { FleetError } from "../errors";
import { describeRollback } from "../provider/hostMarks";
import { ProgressTracker, phaseOf, renderSummary, type HostSummary, type RunFailure } from "./progress";
import { heldBackBy, stopReason, type RolloutBatch } from "../program/rollout";
import type { HostOutputs } from "../provider/hostInputs";
import { hostUrn } from "./stack";
import { planHost } from "../deploy/plan";
import { recordedBootedSide, type RecordedBoot } from "../deploy/reboot";
import { runProcess, type ProcessRunner } from "../process/runner";
import { TARGET_HOSTS_ENV } from "../program/targets";
import type { PackageCache } from "../nix/packageCache";

export interface DeploymentOptions {
    stack: Pick<CliStack, "up" | "preview" | "envVars">;
    stackName: string;
    hosts: string[];
    /** Plan only. */
    preview: boolean;
    yes: boolean;
    parallel?: number;
    json: boolean;
    /** What this run is, for the prompt and the update message (e.g. "rollback of psi"). */
    description: string;
    /** What the operator must know before saying yes (e.g. a generation this stack did not deploy), shown before the prompt. */
    notices?: string[];
    /** Queries the local Nix store for the plans; runProcess unless a test fakes it. */
    runner?: ProcessRunner;
    /** Keeps the plans' package lists per derivation between runs (filePackageCache); none: always asked. */
    packageCache?: PackageCache;
    /** The URNs to target for each host: the host and its hooks (deploymentTargets); default: the host alone. */
    targets?: ReadonlyMap<string, readonly string[]>;
    /** The stack's rollout batches: a host of a batch after a failed one is reported held back. */
    batches?: readonly RolloutBatch[];
    /** What the stack recorded for each host: the rows of hosts a rollout held back show it. */
    recorded?: ReadonlyMap<string, Pick<HostOutputs, "generation" | "storePath">>;
    /**
     * Failed hosts the rollout tolerates. Above 0 the batches run as targeted updates of their own
     * (the engine ends an update at a failed host), and later batches start while no more than this
     * many hosts failed (runBatches).
     */
    maxFailures?: number;
}

export interface DeploymentReport {
    stack: string;
    preview: boolean;
    /** Every selected host, each with its result (see HostResult). */
    hosts: HostSummary[];
    failed: string[];
    /** Hosts whose outcome nobody can know (went away mid-activation); `pulumi refresh` reads them. */
    unknown: string[];
    /** Hosts the run never reached (each row says why). */
    notAttempted: string[];
    errors: string[];
}

async function confirm(question: string): Promise<boolean> {
    const rl = createInterface({ input: process.stdin, output: process.stderr });
    try {
        return /^y(es)?$/i.test((await rl.question(question)).trim());
    } finally {
        rl.close();
    }
}

const LOCKED = /the stack is currently locked by|\[409\] Conflict: Another update is currently in progress/;

/** The pulumi CLI's own stderr of a failed engine run. */
function stderrOf(error: unknown): string {
    if (error instanceof EngineRunError) return error.result.stderr;
    return error instanceof Error ? error.message : String(error);
}

/** `stack prod is locked by another update (alice@laptop, pid 1234, since …)` + the hint. */
export function lockedMessage(stack: string, stderr: string): string {
    const holder = /created by (\S+) \(pid (\d+)\) at (\S+)/.exec(stderr);
    const who = holder ? ` (${holder[1]}, pid ${holder[2]}, since ${holder[3]})` : "";
    return (
        `stack ${stack} is locked by another update${who}, so nothing was deployed\n` +
        `  hint: wait for that update to end; if none is running (its deployer was killed), release the lock with \`npm run pulumi -- cancel --stack ${stack}\` (pulumi cancel), then run \`npm run pulumi -- refresh --stack ${stack}\``
    );
}

/** pulumi was killed outright: it left its lock on the stack, which a refresh cannot take until it is released. */
export function killedMessage(stack: string, error: EngineRunError): string {
    return (
        `${error.message} before it ended its run: it may have left the stack locked, and the state may not record what the hosts run\n` +
        `  hint: once no pulumi runs for this stack any more, release the lock with \`npm run pulumi -- cancel --stack ${stack}\`, then run \`npm run pulumi -- refresh --stack ${stack}\``
    );
}

/** Why `up`/`preview` failed, from pulumi's own error lines (never its whole output). */
export function classifyFailure(stack: string, error: unknown, programErrors: readonly string[]): RunFailure {
    if (error instanceof EngineRunError && error.result.signal) return { kind: "killed", message: killedMessage(stack, error) };
    const stderr = stderrOf(error);
    if (LOCKED.test(stderr)) return { kind: "locked", message: lockedMessage(stack, stderr) };
    if (programErrors.length) return { kind: "program", message: programErrors.join("\n") };
    // The stack's file was read without pulumi (plainStackConfig): the engine is the first to look for the stack.
    if (/no stack named '[^'\n]*' found/.test(stderr)) return { kind: "engine", message: missingStackMessage(stack) };
    // The engine's own `error:` lines, else the end of its output.
    const lines = stderr.split("\n").map((line) => line.trimEnd());
    const said = lines.filter((line) => /^error: /.test(line) && !/^error: (update|preview) failed$/.test(line)).map((line) => line.slice(7));
    return { kind: "engine", message: (said.length ? said : lines.filter(Boolean).slice(-3)).join("\n") };
}

const INTERRUPTED = "the run was interrupted (Ctrl-C, SIGTERM or SIGHUP): hosts not yet started were not attempted";

/** What ends an operator command: Ctrl-C (SIGINT), or a `kill` / service manager / closed terminal (SIGTERM, SIGHUP). */
const STOP_SIGNALS = ["SIGINT", "SIGTERM", "SIGHUP"] as const;

/**
 * Runs the engine with Ctrl-C left to it: the terminal sends SIGINT to the whole process group, so
 * the pulumi CLI gets it too and cancels gracefully (hosts under way finish, the others are not
 * started). SIGTERM and SIGHUP reach this process alone (a `kill`, a CI timeout, a closed
 * terminal): they are passed on to the engine as one SIGINT (runEngine's abort signal),
 * the same graceful cancel, instead of killing this process and, with it, the engine's output pipe
 * (which left the stack locked with the update half-recorded). Either way this process does not
 * die: it waits for the engine and reports every host, the ones never reached as not attempted
 * because the run was cancelled. `work` gets the abort signal for each engine run and whether the
 * run was interrupted so far (a rollout of several updates starts no further one).
 */
export async function untilEngineEnds(
    work: (signal: AbortSignal, interrupted: () => boolean) => Promise<unknown>,
    line: (text: string) => void,
    proc: Pick<NodeJS.Process, "on" | "off"> = process,
): Promise<{ error?: unknown; interrupted: boolean }> {
    let interrupted = false;
    const abort = new AbortController();
    const handlers = STOP_SIGNALS.map((signal) => {
        const handler = () => {
            if (!interrupted) {
                line(
                    signal === "SIGINT"
                        ? "interrupted: pulumi is cancelling the update; hosts under way finish first (a wait for a reboot ends at once, its outcome unknown), the rest are not started"
                        : `interrupted (${signal}): pulumi is cancelling the update; hosts under way finish first (a wait for a reboot ends at once, its outcome unknown), the rest are not started`,
                );
            }
            interrupted = true;
            // The engine already has the terminal's SIGINT; a second one would make it stop at once.
            if (signal !== "SIGINT" && !abort.signal.aborted) abort.abort();
        };
        proc.on(signal, handler);
        return [signal, handler] as const;
    });
    try {
        await work(abort.signal, () => interrupted);
        return { interrupted };
    } catch (error) {
        return { error, interrupted };
    } finally {
        for (const [signal, handler] of handlers) proc.off(signal, handler);
    }
}

export function buildReport(
    options: Pick<DeploymentOptions, "stackName" | "hosts" | "batches" | "recorded">,
    tracker: ProgressTracker,
    planning: boolean,
    error?: unknown,
    interrupted = false,
): DeploymentReport {
    const classified = error === undefined ? undefined : classifyFailure(options.stackName, error, tracker.programErrors);
    // An interrupted run that failed was cancelled (the engine's own error only says the update failed).
    // Not when pulumi was killed: its lock stays, which the operator must be told.
    const failure: RunFailure | undefined = interrupted && error !== undefined && classified?.kind !== "locked" && classified?.kind !== "killed" ? { kind: "cancelled" } : classified;
    const hosts = heldBackByRollout(failedInProgram(tracker.summaries(options.hosts, planning, failure), failure, tracker.programErrors), options.batches ?? [], options.recorded);
    const errors = [...tracker.programErrors];
    if (failure?.kind === "locked" || failure?.kind === "killed") errors.push(failure.message);
    else if (failure?.kind === "cancelled") errors.push(INTERRUPTED);
    else if (failure?.kind === "engine" && hosts.every((h) => h.result !== "failed" && h.result !== "unknown")) errors.push(failure.message);
    return reportOf(options.stackName, planning, hosts, errors);
}

/**
 * A program error that names a selected host and its phase (`host gamma: evaluate failed: …`, e.g.
 * its configuration does not evaluate): that host failed there, it was not merely "not attempted".
 * The other hosts stay not attempted (the program failed before the engine reached them).
 */
export function failedInProgram(rows: HostSummary[], failure: RunFailure | undefined, programErrors: readonly string[]): HostSummary[] {
    if (failure?.kind !== "program") return rows;
    return rows.map((row) => {
        if (row.result !== "not attempted") return row;
        const firstLine = (message: string) => message.replace(/^error: /, "").split("\n")[0] ?? "";
        const error = programErrors.find((message) => firstLine(message).startsWith(`host ${row.host}: `) && / failed: /.test(firstLine(message)));
        if (error === undefined) return row;
        const { reason: _notAttempted, ...rest } = row;
        const phase = phaseOf(firstLine(error));
        return { ...rest, result: "failed", ...(phase ? { phase } : {}), error };
    });
}

/**
 * Hosts the run never reached because a host of an earlier rollout batch failed (or ended
 * unknown): the engine did not start them, since their batch depends on the failed one.
 */
export function heldBackByRollout(
    rows: HostSummary[],
    batches: readonly RolloutBatch[],
    recorded?: DeploymentOptions["recorded"],
): HostSummary[] {
    const stopped = rows.filter((row) => row.result === "failed" || row.result === "unknown").map((row) => row.host);
    const held = heldBackBy(batches, stopped);
    return rows.map((row) => {
        const reason = row.result === "not attempted" ? held.get(row.host) : undefined;
        return reason ? { ...row, ...recordedSystem(recorded?.get(row.host)), result: "held back", reason } : row;
    });
}

/** A host the run did not touch keeps what the stack recorded for it (nothing, for a host never deployed). */
function recordedSystem(outputs: Pick<HostOutputs, "generation" | "storePath"> | undefined): Partial<HostSummary> {
    if (!outputs) return {};
    return { generationBefore: outputs.generation, generationAfter: outputs.generation, storePathBefore: outputs.storePath, storePathAfter: outputs.storePath };
}

function reportOf(stack: string, planning: boolean, hosts: HostSummary[], errors: string[]): DeploymentReport {
    return {
        stack,
        preview: planning,
        hosts,
        failed: hosts.filter((h) => h.result === "failed").map((h) => h.host),
        unknown: hosts.filter((h) => h.result === "unknown").map((h) => h.host),
        notAttempted: hosts.filter((h) => h.result === "not attempted").map((h) => h.host),
        errors,
    };
}

/** The rows of a run the operator cancelled at the prompt: nothing was attempted. */
export function cancelledReport(stack: string, plan: DeploymentReport): DeploymentReport {
    const hosts = plan.hosts.map((h): HostSummary => ({ ...h, result: "not attempted", reason: "cancelled", generationAfter: h.generationBefore, storePathAfter: h.storePathBefore }));
    return reportOf(stack, false, hosts, []);
}

export interface DeploymentOutcome {
    code: number;
    report?: DeploymentReport;
    /** The operator said no at the prompt: nothing was changed. */
    cancelled?: boolean;
}

/** 0 only when every host ended as it should: deployed, unchanged, held back (or planned). */
export function exitCode(deployment: DeploymentReport): number {
    return deployment.failed.length || deployment.unknown.length || deployment.notAttempted.length || deployment.errors.length ? 1 : 0;
}

function print(options: DeploymentOptions, deployment: DeploymentReport): DeploymentOutcome {
    if (options.json) {
        process.stdout.write(`${JSON.stringify(deployment, null, 2)}\n`);
    } else {
        process.stdout.write(`\n${renderSummary(deployment.hosts)}\n`);
        for (const error of deployment.errors) process.stdout.write(`\nerror: ${error}\n`);
        if (deployment.failed.length) process.stdout.write(`\nfailed: ${deployment.failed.join(", ")}\n`);
        if (deployment.unknown.length) {
            process.stdout.write(`\noutcome unknown: ${deployment.unknown.join(", ")} (npm run pulumi -- refresh records what they run)\n`);
        }
        if (deployment.notAttempted.length) process.stdout.write(`${deployment.failed.length ? "" : "\n"}not attempted: ${deployment.notAttempted.join(", ")}\n`);
        const heldBack = deployment.hosts.filter((h) => h.result === "held back" && h.reason?.startsWith("rollout: "));
        if (heldBack.length) process.stdout.write(`held back by the rollout (not touched): ${heldBack.map((h) => h.host).join(", ")}\n`);
    }
    return { code: exitCode(deployment), report: deployment };
}

/** What a yes covers beyond the plan's table: the caller's notices, then every rollback the plan undoes. */
export function confirmationNotices(plan: Pick<DeploymentReport, "hosts">, notices: readonly string[]): string[] {
    const undoing = plan.hosts.filter((h) => h.result === "planned" && h.undoesRollback);
    return [
        ...notices,
        ...undoing.map((h) =>
            h.reason?.startsWith("replaces ")
                ? `${h.host}: this deploy ${h.reason} (if that pin is stale, put back the pin the newer rollback wrote and commit it)`
                : `${h.host}: this deploy undoes ${describeRollback(h.undoesRollback!)}: the stack's config has no rollback pin for it (put the pin back and commit it to keep the rollback)`,
        ),
    ];
}

/**
 * Adds each planned host's plan (package changes, builds, copies, reboot) to its row. The reboot
 * check compares with the booted system the state recorded: a preview connects to no host.
 */
export async function withPlans(report: DeploymentReport, tracker: ProgressTracker, runner: ProcessRunner, packageCache?: PackageCache): Promise<DeploymentReport> {
    const hosts = await Promise.all(
        report.hosts.map(async (row) => {
            const request = row.result === "planned" ? tracker.planRequest(row.host) : undefined;
            if (!request) return row;
            const booted = await recordedBootedSide(runner, tracker.recordedOutputs(row.host) as RecordedBoot | undefined);
            return { ...row, plan: await planHost(runner, { ...request, booted }, { packageCache }) };
        }),
    );
    return { ...report, hosts };
}

/**
 * The engine's --parallel for an update of these targets: the configured hosts at once
 * (--parallel, nixos-fleet:parallel), else all of them. Without it the engine runs at most 4 ×
 * this machine's cores at once, whatever the stack says.
 */
export function engineParallel(parallel: number | undefined, target: readonly string[]): number {
    // The engine's flag is an int32 (a larger --parallel fails the run; its top value means no limit).
    return Math.min(parallel ?? Math.max(1, target.length), ENGINE_NO_LIMIT);
}

/** The largest --parallel the engine takes (int32), which it reads as no limit. */
export const ENGINE_NO_LIMIT = 2147483647;

export async function runDeployment(options: DeploymentOptions): Promise<DeploymentOutcome> {
    const target = urnsOf(options, options.hosts);
    const parallel = engineParallel(options.parallel, target);
    // The program evaluates only these hosts (program/targets.ts); the engine keeps the others' state.
    options.stack.envVars[TARGET_HOSTS_ENV] = options.hosts.join(",");
    // Progress goes to stderr when --json owns stdout.
    const line = (text: string) => (options.json ? process.stderr : process.stdout).write(`${text}\n`);

    for (const notice of options.notices ?? []) line(`note: ${notice}`);
    if (options.preview || !options.yes) {
        const tracker = new ProgressTracker(line, { hidePlans: true });
        const { error: failure, interrupted } = await untilEngineEnds(
            (signal) => options.stack.preview({ target, parallel, onEvent: tracker.onEvent, message: options.description, signal }),
            line,
        );
        const plan = await withPlans(buildReport(options, tracker, true, failure, interrupted), tracker, options.runner ?? runProcess, options.packageCache);
        if (options.preview || exitCode(plan) !== 0) return print(options, plan);
        if (interrupted) {
            // Ctrl-C while planning: nothing is deployed.
            line("cancelled; nothing was changed");
            return { ...print(options, cancelledReport(options.stackName, plan)), cancelled: true };
        }
        const changing = plan.hosts.filter((h) => h.result === "planned");
        process.stdout.write(`\n${renderSummary(plan.hosts)}\n\n`);
        if (changing.length === 0) {
            line("nothing to deploy");
            return { code: 0, report: plan };
        }
        const notices = confirmationNotices(plan, options.notices ?? []);
        // The caller's notices were printed before the plan; the undone rollbacks come from it.
        for (const notice of notices.slice(options.notices?.length ?? 0)) line(`note: ${notice}`);
        if (!process.stdin.isTTY) {
            // Never read a terminal we were not given: refuse, saying what the yes would have covered.
            throw new FleetError({
                phase: "select",
                message: `${options.description} needs confirmation, and there is no terminal to ask on${notices.length ? `:\n  ${notices.join("\n  ")}` : ""}`,
                hint: "add --yes to deploy without asking, or --preview to only see the plan",
            });
        }
        if (!(await confirm(`deploy ${changing.map((h) => h.host).join(", ")} on stack ${options.stackName}${notices.length ? ` (${notices.length === 1 ? "see the note above" : "see the notes above"})` : ""}? [y/N] `))) {
            line("cancelled; nothing was changed");
            if (options.json) process.stdout.write(`${JSON.stringify(cancelledReport(options.stackName, plan), null, 2)}\n`);
            return { code: 1, report: cancelledReport(options.stackName, plan), cancelled: true };
        }
    }

    if ((options.maxFailures ?? 0) > 0 && (options.batches?.length ?? 0) > 1) return print(options, await runBatches(options, line));

    const tracker = new ProgressTracker(line);
    const { error: failure, interrupted } = await untilEngineEnds(
        // The hosts and their hooks (which run after them), not the engine's dependents: later
        // rollout batches depend on earlier ones and are deployed only when selected.
        (signal) => options.stack.up({ target, parallel, onEvent: tracker.onEvent, message: options.description, signal }),
        line,
    );
    return print(options, buildReport(options, tracker, false, failure, interrupted));
}

function urnsOf(options: Pick<DeploymentOptions, "targets" | "stackName">, hosts: readonly string[]): string[] {
    return hosts.flatMap((host) => options.targets?.get(host) ?? [hostUrn(options.stackName, host)]);
}

/**
 * A rollout that tolerates failures (maxFailures > 0): the engine stops an update at a failed
 * host, so each batch runs as updates of its own, targeted at its hosts, at most `parallel` hosts
 * each (all of them start at once, so one's failure stops none of the others). Later batches
 * start while no more than maxFailures hosts failed (or ended unknown); an update that ended with
 * an error of its own (locked stack, program) or left hosts not attempted stops the rollout.
 */
export async function runBatches(options: DeploymentOptions, line: (text: string) => void, proc: Pick<NodeJS.Process, "on" | "off"> = process): Promise<DeploymentReport> {
    const maxFailures = options.maxFailures ?? 0;
    const rows: HostSummary[] = [];
    const errors: string[] = [];
    const failed: string[] = [];
    let stop: { result: "held back" | "not attempted"; reason: string } | undefined;
    // One set of signal handlers for the whole rollout: an interruption ends the update under way
    // gracefully (untilEngineEnds) and starts no later one.
    const { error: unexpected, interrupted: wasInterrupted } = await untilEngineEnds(async (signal, interrupted) => {
        for (const batch of options.batches ?? []) {
            const hosts = batch.hosts.filter((host) => options.hosts.includes(host));
            if (hosts.length === 0) continue;
            if (stop !== undefined) {
                rows.push(...hosts.map((host) => untouchedRow(host, stop!.result, stop!.reason, options.recorded)));
                continue;
            }
            line(`rollout: batch ${batch.number}${batch.canary ? " (canary)" : ""}: ${hosts.join(", ")}`);
            const width = options.parallel ?? hosts.length;
            for (let at = 0; at < hosts.length; at += width) {
                const chunk = hosts.slice(at, at + width);
                if (stop !== undefined) {
                    rows.push(...chunk.map((host) => untouchedRow(host, "not attempted", stop!.reason, options.recorded)));
                    continue;
                }
                if (interrupted()) {
                    stop = { result: "not attempted", reason: "cancelled" };
                    rows.push(...chunk.map((host) => untouchedRow(host, "not attempted", "cancelled", options.recorded)));
                    continue;
                }
                const tracker = new ProgressTracker(line);
                let failure: unknown;
                try {
                    const target = urnsOf(options, chunk);
                    await options.stack.up({ target, parallel: engineParallel(undefined, target), onEvent: tracker.onEvent, message: `${options.description} (rollout batch ${batch.number})`, signal });
                } catch (error) {
                    failure = error;
                }
                const report = buildReport({ stackName: options.stackName, hosts: chunk }, tracker, false, failure, interrupted());
                rows.push(...report.hosts);
                errors.push(...report.errors);
                failed.push(...report.failed, ...report.unknown);
                if (interrupted()) {
                    stop = { result: "not attempted", reason: "cancelled" };
                } else if (report.errors.length) {
                    stop = { result: "not attempted", reason: `the update of rollout batch ${batch.number} ended with an error (above), so later hosts were not started` };
                } else if (report.notAttempted.length) {
                    stop = { result: "not attempted", reason: `rollout batch ${batch.number} did not finish (not attempted: ${report.notAttempted.join(", ")}), so later hosts were not started` };
                }
            }
            if (stop === undefined && failed.length > maxFailures) stop = { result: "held back", reason: stopReason(batch, failed, maxFailures) };
        }
    }, line, proc);
    if (unexpected !== undefined) throw unexpected;
    if (wasInterrupted && !errors.includes(INTERRUPTED)) errors.push(INTERRUPTED);
    const order = new Map(options.hosts.map((host, index) => [host, index]));
    rows.sort((a, b) => (order.get(a.host) ?? 0) - (order.get(b.host) ?? 0));
    return reportOf(options.stackName, false, rows, errors);
}

/** The row of a host a rollout did not start: nothing about it changed (its recorded state stays). */
function untouchedRow(host: string, result: "held back" | "not attempted", reason: string, recorded?: DeploymentOptions["recorded"]): HostSummary {
    const base: HostSummary = { host, result, reason, generationBefore: null, generationAfter: null, storePathBefore: null, storePathAfter: null, pathsCopied: 0, bytesCopied: 0, timings: {} };
    return { ...base, ...recordedSystem(recorded?.get(host)) };
}
