// `npm run rollback -- --hosts psi [--steps K | --to-generation N | --to-stack-version V | --clear]`
// Rolls hosts back the Pulumi way: the wanted store path (from the host's recorded deployment
// history) is pinned in the stack's config and a targeted `up` deploys it, so the rollback is
// itself an update in the stack's history. On the host it switches to the generation that still
// holds the path (no copy), or copies the path again if that generation was garbage-collected.
import type { Stack } from "@pulumi/pulumi/automation";
import type { Pin } from "../config";
import { FleetError } from "../errors";
import type { DeploymentRecord, HostOutputs } from "../provider/hostInputs";
import { DEPLOYMENT_OPTIONS, nonNegativeInteger, parseCommandArgs, positiveInteger } from "./args";
import { hostsFromOption } from "./hostsOption";
import { readPins, stackConfigFile, writePins } from "./pins";
import { runDeployment } from "./runDeployment";
import { openFleetStack, recordedHosts, resolveStackName, stackUpdates } from "./stack";

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
    | { kind: "stackVersion"; version: number; endTime: Date };

function historyOf(host: string, recorded: HostOutputs | undefined): DeploymentRecord[] {
    if (!recorded) {
        throw new FleetError({ phase: "select", host, message: "the stack has no recorded deployment of this host", hint: "deploy it first" });
    }
    return recorded.history ?? [];
}

/** The recorded deployment a host goes back to. Pure: unit-tested. */
export function chooseDeployment(host: string, recorded: HostOutputs | undefined, target: RollbackTarget): DeploymentRecord {
    const history = historyOf(host, recorded);
    const recordedList = history.map((entry) => `${entry.generation ?? "-"}`).join(", ") || "none";
    if (target.kind === "steps") {
        const entry = history[target.steps];
        if (!entry) {
            throw new FleetError({
                phase: "select",
                host,
                message: `cannot go back ${target.steps} deployment(s): the stack recorded only ${history.length} for this host`,
                hint: `recorded generations, newest first: ${recordedList}; try --to-generation N (npm run generations lists what the host has)`,
            });
        }
        return entry;
    }
    if (target.kind === "generation") {
        const entry = history.find((candidate) => candidate.generation === target.generation);
        if (!entry) {
            throw new FleetError({
                phase: "select",
                host,
                message: `generation ${target.generation} was not deployed by this stack (recorded: ${recordedList})`,
                hint: "npm run generations lists the host's generations; only recorded deployments can be rolled back to",
            });
        }
        return entry;
    }
    // Backends record update times to the second: an activation in the update's last second counts.
    const end = target.endTime.getTime() + 999;
    const entry = history.find((candidate) => new Date(candidate.activatedAt).getTime() <= end);
    if (!entry) {
        throw new FleetError({
            phase: "select",
            host,
            message: `the host had not been deployed by stack version ${target.version} yet`,
            hint: `recorded generations, newest first: ${recordedList}`,
        });
    }
    return entry;
}

async function stackVersionTarget(stack: Stack, version: number): Promise<RollbackTarget> {
    const updates = await stackUpdates(stack);
    const update = updates.find((summary) => summary.version === version);
    if (!update || update.kind !== "update" || update.result !== "succeeded") {
        const known = updates.filter((u) => u.kind === "update" && u.result === "succeeded").map((u) => u.version);
        throw new FleetError({
            phase: "select",
            message: `stack version ${version} is not a successful update of this stack`,
            hint: `successful updates: ${known.join(", ") || "none"} (npm run generations shows which update deployed each generation)`,
        });
    }
    return { kind: "stackVersion", version, endTime: new Date(update.endTime ?? update.startTime) };
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

    const projectRoot = process.cwd();
    const stackName = await resolveStackName(values.stack, projectRoot);
    const fleet = await openFleetStack(stackName, projectRoot);
    const hosts = hostsFromOption(fleet.hosts, values.hosts).map((host) => host.name);
    const file = stackConfigFile(projectRoot, stackName);
    const previousPins = readPins(file);

    let changes: Record<string, Pin | undefined>;
    let description: string;
    if (values.clear) {
        changes = Object.fromEntries(hosts.map((host) => [host, undefined]));
        description = `rollback --clear ${hosts.join(",")}: deploy the configuration again`;
    } else {
        const generation = positiveInteger(values["to-generation"], "--to-generation");
        const version = positiveInteger(values["to-stack-version"], "--to-stack-version");
        const steps = nonNegativeInteger(values.steps, "--steps") ?? 1;
        const target: RollbackTarget =
            generation !== undefined
                ? { kind: "generation", generation }
                : version !== undefined
                  ? await stackVersionTarget(fleet.stack, version)
                  : { kind: "steps", steps };
        const recorded = await recordedHosts(fleet.stack);
        const when = new Date().toISOString();
        changes = Object.fromEntries(
            hosts.map((host) => {
                const entry = chooseDeployment(host, recorded.get(host), target);
                const pin: Pin = {
                    storePath: entry.storePath,
                    ...(entry.generation !== null ? { generation: entry.generation } : {}),
                    reason: `rollback to ${describe(target)} (${when})`,
                };
                return [host, pin];
            }),
        );
        description = `rollback ${hosts.join(",")} to ${describe(target)}`;
    }

    writePins(file, changes);
    const restorePins = (names: string[]) => writePins(file, Object.fromEntries(names.map((host) => [host, previousPins[host]])));
    let outcome;
    try {
        outcome = await runDeployment({
            stack: fleet.stack,
            stackName,
            hosts,
            preview: values.preview ?? false,
            yes: values.yes ?? false,
            parallel: positiveInteger(values.parallel, "--parallel") ?? fleet.settings.parallel,
            json: values.json ?? false,
            description,
        });
    } catch (error) {
        restorePins(hosts);
        throw error;
    }
    if (values.preview || !outcome.report) {
        // A plan, or a cancelled run: the stack's config goes back to what it said.
        restorePins(hosts);
    } else if (outcome.code !== 0) {
        // Hosts whose rollback did not happen keep their previous pins, so config and state agree.
        const undone = outcome.report.failed.length ? outcome.report.failed : hosts;
        restorePins(undone);
        process.stderr.write(`not rolled back: ${undone.join(", ")} (their pins were not kept; their recorded state is unchanged)\n`);
    }
    return outcome.code;
}
