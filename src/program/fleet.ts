// The program's plan for one stack: read the stack's settings, load and select its hosts, and
// evaluate every host's system in one Nix evaluation per flake. Nothing here touches a host.
import { loadStackHosts, readStackConfig, type ConfigSource, type HostConfig, type Pin, type StackConfig } from "../config";
import { evaluateSystems } from "../nix/evaluate";
import type { ProcessRunner } from "../process/runner";
import type { HostInputs } from "../provider/hostInputs";
import { hostInputsOf } from "./hostInputs";
import { provenanceFor, type ProvenanceResult } from "./provenance";
import { passphraseProblem, type Environment } from "./passphrase";
import { BATCH_SIZE_ENV, planRollout, rolloutNotice, type RolloutBatch } from "./rollout";
import { parseBatchSizeOption } from "../config/rollout";

export interface FleetPlanOptions {
    /** The `nixos-fleet` config namespace of the stack (e.g. new pulumi.Config("nixos-fleet")). */
    config: ConfigSource;
    /** Project root: where Pulumi.yaml is; relative paths resolve against it. */
    projectRoot: string;
    stackName: string;
    runner: ProcessRunner;
    /** Revision, operator and update number for the records (program/provenance.ts); none without it. */
    provenance?: (flakes: string[]) => Promise<ProvenanceResult>;
    /** The environment Pulumi was started with: the passphrase rule (passphrase.ts) is checked against it. */
    env?: Environment;
}

export interface PlannedHost {
    config: HostConfig;
    inputs: HostInputs;
    /** Set when `rollback` pinned the host to a recorded store path. */
    pin?: Pin;
}

/** A pinned host deploys the pinned store path; the configuration's is kept for the preview. */
export function pinnedInputs(inputs: HostInputs, pin: Pin): HostInputs {
    const { drvPath: _configuredDrv, ...rest } = inputs;
    return {
        ...rest,
        storePath: pin.storePath,
        pin: {
            ...(pin.generation !== undefined ? { generation: pin.generation } : {}),
            ...(pin.reason !== undefined ? { reason: pin.reason } : {}),
            ...(pin.activatedAt !== undefined ? { activatedAt: pin.activatedAt } : {}),
            configuredStorePath: inputs.storePath,
        },
    };
}

export interface FleetPlan {
    stack: StackConfig;
    /** In deploy order: the hosts of each batch depend on every host of the batch before. */
    hosts: PlannedHost[];
    /** The rollout's batches (one batch without a rollout). */
    batches: RolloutBatch[];
    /** The rollout, said once per run (undefined for a single batch). */
    rolloutNotice?: string;
    /** Things the program should warn about (e.g. a flake revision that could not be read). */
    warnings: string[];
}

export async function planFleet(options: FleetPlanOptions): Promise<FleetPlan> {
    const secrets = options.env && passphraseProblem({ stack: options.stackName, projectRoot: options.projectRoot, env: options.env });
    if (secrets) throw secrets;
    const file = `Pulumi.${options.stackName}.yaml`;
    const stack = readStackConfig(options.config, { baseDir: options.projectRoot, file });
    const hosts = await loadStackHosts(stack, { file });
    // `deploy --batch-size` for one run (src/cli/deploy.ts sets it).
    const override = parseBatchSizeOption(options.env?.[BATCH_SIZE_ENV] || undefined, `${BATCH_SIZE_ENV} (deploy --batch-size)`);
    const batches = planRollout(hosts, stack.rollout, override);
    // The revisions and the update number are read while Nix evaluates.
    const [systems, provenance] = await Promise.all([
        evaluateSystems(
            hosts.map((host) => ({ name: host.name, flake: host.flake, attribute: host.attribute })),
            { runner: options.runner, cwd: options.projectRoot },
        ),
        options.provenance?.([...new Set(hosts.map((host) => host.flake))]),
    ]);
    const byName = new Map(hosts.map((host) => [host.name, host]));
    return {
        stack,
        hosts: batches.flatMap((batch) =>
            batch.hosts.map((name) => {
                const host = byName.get(name)!;
                const evaluated = hostInputsOf(host, systems.get(host.name)!);
                const described = provenance ? { ...evaluated, provenance: provenanceFor(host.flake, provenance) } : evaluated;
                const inputs = batches.length > 1 ? { ...described, rollout: rolloutInput(batches, batch, stack.rollout?.maxFailures ?? 0) } : described;
                const pin = stack.pins[host.name];
                return { config: host, inputs: pin ? pinnedInputs(inputs, pin) : inputs, pin };
            }),
        ),
        batches,
        rolloutNotice: rolloutNotice(batches, override ?? stack.rollout?.batchSize, override !== undefined, stack.rollout?.maxFailures),
        warnings: provenance?.warnings ?? [],
    };
}

function rolloutInput(batches: readonly RolloutBatch[], batch: RolloutBatch, maxFailures: number): NonNullable<HostInputs["rollout"]> {
    return {
        maxFailures,
        batch: batch.number,
        batches: batches.length,
        canary: batch.canary,
        later: batches.filter((b) => b.number > batch.number).flatMap((b) => b.hosts),
    };
}
