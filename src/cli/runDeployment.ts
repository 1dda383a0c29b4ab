// The shared core of `deploy` and `rollback`: plan (preview) the selected hosts, ask unless
// --yes, run `pulumi up` targeted at exactly those hosts, and report a line per host per phase
// and a summary. Only the named hosts are touched; others stay as they are.
import { createInterface } from "node:readline/promises";
import { CommandError, ConcurrentUpdateError, type Stack } from "@pulumi/pulumi/automation";
import { FleetError } from "../errors";
import { describeRollback } from "../provider/hostMarks";
import { ProgressTracker, renderSummary, type HostSummary, type RunFailure } from "./progress";
import { hostUrn } from "./stack";

export interface DeploymentOptions {
    stack: Stack;
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

/** The pulumi CLI's own stderr of an Automation API error (its message also dumps the command and stdout). */
function stderrOf(error: unknown): string {
    if (error instanceof CommandError) {
        // commandResult is private in the SDK's types but is the CLI's result (stdout, stderr, code).
        const result = (error as unknown as { commandResult?: { stderr?: string } }).commandResult;
        if (result?.stderr !== undefined) return result.stderr;
    }
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

/** Why `up`/`preview` threw, without the Automation API's dump of the whole command. */
export function classifyFailure(stack: string, error: unknown, programErrors: readonly string[]): RunFailure {
    const stderr = stderrOf(error);
    if (error instanceof ConcurrentUpdateError || LOCKED.test(stderr)) return { kind: "locked", message: lockedMessage(stack, stderr) };
    if (programErrors.length) return { kind: "program", message: programErrors.join("\n") };
    // The engine's own `error:` lines, else the end of its output.
    const lines = stderr.split("\n").map((line) => line.trimEnd());
    const said = lines.filter((line) => /^error: /.test(line) && !/^error: (update|preview) failed$/.test(line)).map((line) => line.slice(7));
    return { kind: "engine", message: (said.length ? said : lines.filter(Boolean).slice(-3)).join("\n") };
}

/**
 * Runs the engine with Ctrl-C left to it: the terminal sends SIGINT to the whole process group, so
 * the pulumi CLI gets it too and cancels gracefully (hosts under way finish, the others are not
 * started). This process does not die with it: it waits for the engine and reports every host,
 * the ones never reached as not attempted because the run was cancelled.
 */
export async function untilEngineEnds(work: () => Promise<unknown>, line: (text: string) => void, proc: Pick<NodeJS.Process, "on" | "off"> = process): Promise<{ error?: unknown; interrupted: boolean }> {
    let interrupted = false;
    const onSignal = () => {
        if (!interrupted) line("interrupted: pulumi is cancelling the update; hosts under way finish first, the rest are not started");
        interrupted = true;
    };
    proc.on("SIGINT", onSignal);
    try {
        await work();
        return { interrupted };
    } catch (error) {
        return { error, interrupted };
    } finally {
        proc.off("SIGINT", onSignal);
    }
}

export function buildReport(
    options: Pick<DeploymentOptions, "stackName" | "hosts">,
    tracker: ProgressTracker,
    planning: boolean,
    error?: unknown,
    interrupted = false,
): DeploymentReport {
    const classified = error === undefined ? undefined : classifyFailure(options.stackName, error, tracker.programErrors);
    // An interrupted run that failed was cancelled (the engine's own error only says the update failed).
    const failure: RunFailure | undefined = interrupted && error !== undefined && classified?.kind !== "locked" ? { kind: "cancelled" } : classified;
    const hosts = tracker.summaries(options.hosts, planning, failure);
    const errors = [...tracker.programErrors];
    if (failure?.kind === "locked") errors.push(failure.message);
    else if (failure?.kind === "cancelled") errors.push("the run was interrupted (Ctrl-C): hosts not yet started were not attempted");
    else if (failure?.kind === "engine" && hosts.every((h) => h.result !== "failed" && h.result !== "unknown")) errors.push(failure.message);
    return reportOf(options.stackName, planning, hosts, errors);
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

export async function runDeployment(options: DeploymentOptions): Promise<DeploymentOutcome> {
    const target = options.hosts.map((host) => hostUrn(options.stackName, host));
    // Progress goes to stderr when --json owns stdout.
    const line = (text: string) => (options.json ? process.stderr : process.stdout).write(`${text}\n`);

    for (const notice of options.notices ?? []) line(`note: ${notice}`);
    if (options.preview || !options.yes) {
        const tracker = new ProgressTracker(line);
        const { error: failure, interrupted } = await untilEngineEnds(
            () => options.stack.preview({ target, targetDependents: true, parallel: options.parallel, onEvent: tracker.onEvent, message: options.description }),
            line,
        );
        const plan = buildReport(options, tracker, true, failure, interrupted);
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

    const tracker = new ProgressTracker(line);
    const { error: failure, interrupted } = await untilEngineEnds(
        // Dependents too: a host's hooks run after it.
        () => options.stack.up({ target, targetDependents: true, parallel: options.parallel, onEvent: tracker.onEvent, message: options.description }),
        line,
    );
    return print(options, buildReport(options, tracker, false, failure, interrupted));
}
