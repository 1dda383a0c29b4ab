// `npm run rollback -- --hosts psi [--steps K | --to-generation N | --to-stack-version V | --clear]`
// Rolls hosts back the Pulumi way: the wanted store path (from the host's recorded deployment
// history) is pinned in the stack's config and a targeted `up` deploys it, so the rollback is
// itself an update in the stack's history. On the host it switches to the generation that still
// holds the path (no copy), or copies the path again if that generation was garbage-collected.
import type { Pin } from "../config";
import { FleetError } from "../errors";
import type { DeploymentRecord, HostOutputs } from "../provider/hostInputs";
import { currentStep, deploymentSteps, stepOf } from "../deploy/deployments";
import { recordUpdate, type StackUpdate } from "../deploy/generations";
import { makeRuntimeDir, removeRuntimeDir } from "../process/runtimeDir";
import { runProcess } from "../process/runner";
import type { HostConfig } from "../config";
import { collectReports, type GenerationRow } from "./generations";
import { DEPLOYMENT_OPTIONS, parseCommandArgs, positiveInteger } from "./args";
import { hostsFromOption } from "./hostsOption";
import { readPins, stackConfigFile, writePins } from "./pins";
import { runDeployment, type DeploymentOutcome } from "./runDeployment";
import { deploymentTargets, openFleetStack, recordedHosts, resolveStackName, stackUpdates, type HistorySource } from "./stack";
import { cacheDir } from "../nix/evalCache";
import { filePackageCache } from "../nix/packageCache";

export const ROLLBACK_USAGE =
    "npm run rollback -- --hosts psi,rho|@tag [--steps K | --to-generation N | --to-stack-version V | --clear] [--stack NAME] [--preview] [--yes] [--parallel N] [--json]";

const OPTIONS = {
    ...DEPLOYMENT_OPTIONS,
    steps: { type: "string" },
    "to-generation": { type: "string" },
    "to-stack-version": { type: "string" },
    clear: { type: "boolean" },
} as const;

export type RollbackTarget =
    | { kind: "steps"; steps: number }
    | { kind: "generation"; generation: number }
    | { kind: "stackVersion"; version: number; endTime?: Date };

/** What a rollback deploys: a recorded system, and the deployment (step) it stands for. */
export interface RollbackChoice {
    /** The record whose system is deployed again. */
    entry: DeploymentRecord;
    /** The deployment of the configuration that entry is (itself, or what a rollback went back to). */
    step: DeploymentRecord;
}

function historyOf(host: string, recorded: HostOutputs | undefined): DeploymentRecord[] {
    if (!recorded) {
        throw new FleetError({ phase: "select", host, message: "the stack has no recorded deployment of this host", hint: "deploy it first" });
    }
    return recorded.history ?? [];
}

const generationsOf = (records: readonly DeploymentRecord[]): string => records.map((entry) => `${entry.generation ?? "-"}`).join(", ") || "none";

/**
 * The recorded deployment a host goes back to. Pure: unit-tested. Steps count deployments of the
 * configuration from the one the host is on now (after a rollback: the one it went back to), so
 * a second rollback goes further back and a rollback is never a step of its own.
 */
export function chooseDeployment(
    host: string,
    recorded: HostOutputs | undefined,
    target: RollbackTarget,
    updates: readonly StackUpdate[] = [],
): RollbackChoice {
    const history = historyOf(host, recorded);
    const steps = deploymentSteps(history);
    const recordedList = generationsOf(steps);
    if (target.kind === "steps") {
        const position = currentStep(history);
        if (position === undefined) {
            throw new FleetError({
                phase: "select",
                host,
                message: !history.length
                    ? "the stack has no recorded deployment of this host"
                    : history[0]!.rollbackTo === undefined && history[0]!.kind === "rollback"
                      ? `the host was last rolled back to generation ${history[0]!.generation ?? "-"}, which this stack did not deploy, so steps cannot be counted from it`
                      : "the deployment this host was last rolled back to is no longer in its recorded history, so steps cannot be counted from it",
                hint: `recorded deployments, newest first: ${recordedList}; use --to-generation N`,
            });
        }
        const step = steps[position + target.steps];
        if (!step) {
            const older = steps.length - 1 - position;
            throw new FleetError({
                phase: "select",
                host,
                message:
                    `cannot go back ${target.steps} deployment(s): the host is on generation ${steps[position]!.generation ?? "-"}, ` +
                    `and the stack recorded ${older === 0 ? "no deployment" : older === 1 ? "only 1 deployment" : `only ${older} deployments`} before it`,
                hint: `recorded deployments, newest first: ${recordedList}; npm run generations lists what the host has`,
            });
        }
        return { entry: step, step };
    }
    if (target.kind === "generation") {
        const step = steps.find((candidate) => candidate.generation === target.generation);
        if (!step) {
            throw new FleetError({
                phase: "select",
                host,
                message: `generation ${target.generation} was not deployed by this stack (recorded: ${recordedList})`,
                hint: "npm run generations lists the host's generations; only recorded deployments can be rolled back to",
            });
        }
        return { entry: step, step };
    }
    // The newest record made by update V or before it: the system the host had when V ended. A
    // record carries its update's number; an older record is placed by its time.
    const end = target.endTime ? target.endTime.getTime() + 999 : undefined; // times are recorded to the second
    const entry = history.find((candidate) => {
        const version = recordUpdate(candidate, updates);
        if (version !== undefined) return version <= target.version;
        return end !== undefined && new Date(candidate.activatedAt).getTime() <= end;
    });
    if (!entry) {
        throw new FleetError({
            phase: "select",
            host,
            message: `the host had not been deployed by stack version ${target.version} yet`,
            hint: `recorded deployments, newest first: ${history.map((e) => `generation ${e.generation ?? "-"} (stack update ${recordUpdate(e, updates) ?? "?"})`).join(", ")}`,
        });
    }
    return { entry, step: stepOf(history, entry) };
}

export async function stackVersionTarget(stack: HistorySource, version: number): Promise<{ target: RollbackTarget; updates: StackUpdate[] }> {
    const updates = await stackUpdates(stack);
    const update = updates.find((summary) => summary.version === version);
    if (!update) {
        const newest = updates.reduce((max, u) => Math.max(max, u.version), 0);
        throw new FleetError({
            phase: "select",
            message: `stack version ${version} does not exist: ${newest ? `this stack's updates are numbered 1 to ${newest}` : "this stack has no updates yet"}`,
            hint: "npm run generations shows which update deployed each generation",
        });
    }
    const end = update.endTime ?? update.startTime;
    return { target: { kind: "stackVersion", version, endTime: end ? new Date(end) : undefined }, updates };
}

/** Whether the stack recorded a deployment of the configuration that made generation N on the host. */
export function recordsGeneration(recorded: HostOutputs | undefined, generation: number): boolean {
    return deploymentSteps(recorded?.history ?? []).some((step) => step.generation === generation);
}

/**
 * The pin for a generation the host has but this stack did not deploy (made by hand, by another
 * stack, or before the host was adopted or the stack was recreated), from the host's own listing.
 */
export function hostGenerationPin(host: string, generations: readonly Pick<GenerationRow, "generation" | "storePath">[], generation: number, reason: string): Pin {
    const found = generations.find((row) => row.generation === generation);
    if (!found?.storePath) {
        throw new FleetError({
            phase: "select",
            host,
            message: found
                ? `generation ${generation} is on the host, but its link no longer points at a system`
                : `generation ${generation} is neither recorded by this stack nor on the host (the host has: ${generations.map((row) => row.generation).join(", ") || "none"})`,
            hint: "npm run generations lists the host's generations",
        });
    }
    return { storePath: found.storePath, generation, reason };
}

/** What the operator confirms for such a generation: it names the store path. */
export function unrecordedNotice(host: string, pin: Pin): string {
    return (
        `${host}: generation ${pin.generation ?? "-"} (${pin.storePath}) was not deployed by this stack ` +
        "(made by hand, by another stack, or before the stack recorded the host): it has no recorded revision or operator"
    );
}

/** Reads one host's generations as `npm run generations` does (one SSH connection). */
async function hostGenerations(host: HostConfig, recorded: HostOutputs | undefined): Promise<GenerationRow[]> {
    const runtimeDir = makeRuntimeDir();
    try {
        const [report] = await collectReports({ hosts: [host], recorded: new Map(recorded ? [[host.name, recorded]] : []), updates: [], runner: runProcess, runtimeDir });
        if (report?.error !== undefined) throw new Error(report.error);
        return report?.generations ?? [];
    } finally {
        removeRuntimeDir(runtimeDir);
    }
}

/** The pin that makes the next `up` deploy the chosen system, naming the deployment it goes back to. */
export function pinFor(choice: RollbackChoice, reason: string): Pin {
    return {
        storePath: choice.entry.storePath,
        ...(choice.entry.generation !== null ? { generation: choice.entry.generation } : {}),
        activatedAt: choice.step.activatedAt,
        reason,
    };
}

function describe(target: RollbackTarget): string {
    if (target.kind === "steps") return target.steps === 1 ? "the previous deployment" : `${target.steps} deployments back`;
    if (target.kind === "generation") return `generation ${target.generation}`;
    return `stack version ${target.version}`;
}

export async function rollbackCommand(args: string[]): Promise<number> {
    const values = parseCommandArgs(args, OPTIONS, ROLLBACK_USAGE);
    if (values.help) {
        process.stdout.write(`usage: ${ROLLBACK_USAGE}\n  Without --steps/--to-*, goes back to each host's previous deployment.\n`);
        return 0;
    }
    if (!values.hosts) {
        throw new FleetError({ phase: "select", message: "rollback needs --hosts (a rollback of every host is never implied)", hint: `usage: ${ROLLBACK_USAGE}` });
    }
    const chosen = ["steps", "to-generation", "to-stack-version", "clear"].filter((key) => values[key as keyof typeof values] !== undefined);
    if (chosen.length > 1) {
        throw new FleetError({ phase: "select", message: `--${chosen.join(" and --")} cannot be combined`, hint: `usage: ${ROLLBACK_USAGE}` });
    }

    // Every number is checked before the stack is opened or anything is written.
    const generation = positiveInteger(values["to-generation"], "--to-generation");
    const version = positiveInteger(values["to-stack-version"], "--to-stack-version");
    const steps = positiveInteger(values.steps, "--steps");
    const parallel = positiveInteger(values.parallel, "--parallel");

    const projectRoot = process.cwd();
    const stackName = await resolveStackName(values.stack, projectRoot);
    const fleet = await openFleetStack(stackName, projectRoot);
    const selected = hostsFromOption(fleet.hosts, values.hosts);
    const hosts = selected.map((host) => host.name);
    const file = stackConfigFile(projectRoot, stackName);
    const previousPins = readPins(file);

    let changes: Record<string, Pin | undefined>;
    let description: string;
    const notices: string[] = [];
    if (values.clear) {
        changes = Object.fromEntries(hosts.map((host) => [host, undefined]));
        description = `rollback --clear ${hosts.join(",")}: deploy the configuration again`;
    } else {
        const { target, updates } =
            generation !== undefined
                ? { target: { kind: "generation", generation } as RollbackTarget, updates: [] }
                : version !== undefined
                  ? await stackVersionTarget(fleet.stack, version)
                  : { target: { kind: "steps", steps: steps ?? 1 } as RollbackTarget, updates: [] };
        const recorded = await recordedHosts(fleet.stack);
        const when = new Date().toISOString();
        const reason = `rollback to ${describe(target)} (${when})`;
        changes = {};
        for (const host of hosts) {
            if (target.kind === "generation" && !recordsGeneration(recorded.get(host), target.generation)) {
                // Not deployed by this stack: the host's own generation, confirmed by its store path.
                const config = fleet.hosts.find((candidate) => candidate.name === host)!;
                const pin = hostGenerationPin(host, await hostGenerations(config, recorded.get(host)), target.generation, reason);
                notices.push(unrecordedNotice(host, pin));
                changes[host] = pin;
            } else {
                changes[host] = pinFor(chooseDeployment(host, recorded.get(host), target, updates), reason);
            }
        }
        description = `rollback ${hosts.join(",")} to ${describe(target)}`;
    }

    if (notices.length && !values.yes && !values.preview && !process.stdin.isTTY) {
        // Nothing to plan first: the answer is needed whatever the plan says, and there is no one to ask.
        throw new FleetError({
            phase: "select",
            message: `${description} needs confirmation, and there is no terminal to ask on:\n  ${notices.join("\n  ")}`,
            hint: "add --yes to roll back without asking, or --preview to only see the plan",
        });
    }
    writePins(file, changes);
    const restorePins = (names: string[]) => writePins(file, Object.fromEntries(names.map((host) => [host, previousPins[host]])));
    let outcome;
    try {
        outcome = await runDeployment({
            stack: fleet.stack,
            stackName,
            hosts,
            targets: deploymentTargets(stackName, selected),
            preview: values.preview ?? false,
            yes: values.yes ?? false,
            parallel: parallel ?? fleet.settings.parallel,
            packageCache: filePackageCache(cacheDir()),
            json: values.json ?? false,
            description,
            notices,
        });
    } catch (error) {
        restorePins(hosts);
        throw error;
    }
    const undone = hostsToRestore(hosts, values.preview ?? false, outcome);
    restorePins(undone);
    if (undone.length && !values.preview && !outcome.cancelled && outcome.report) {
        process.stderr.write(`not rolled back: ${undone.join(", ")} (their pins were not kept; their recorded state is unchanged)\n`);
    }
    return outcome.code;
}

/**
 * The hosts whose pins go back to what they were: all of them after a plan or a cancelled run;
 * otherwise those whose rollback did not happen (failed or not attempted), so config and state agree.
 */
export function hostsToRestore(hosts: readonly string[], preview: boolean, outcome: DeploymentOutcome): string[] {
    if (preview || outcome.cancelled || !outcome.report) return [...hosts];
    return outcome.report.hosts.filter((h) => h.result === "failed" || h.result === "not attempted").map((h) => h.host);
}
