// The program's plan for one stack: read the stack's settings, load and select its hosts, and
// evaluate every host's system in one Nix evaluation per flake. Nothing here touches a host.
import { loadStackHosts, readStackConfig, type ConfigSource, type HostConfig, type Pin, type StackConfig } from "../config";
import { evaluateSystems } from "../nix/evaluate";
import { evaluationCache } from "../nix/evalCache";
import type { ProcessRunner } from "../process/runner";
import type { HostInputs } from "../provider/hostInputs";
import { hostInputsOf, hostLookup } from "./hostInputs";
import { provenanceFor, type ProvenanceResult } from "./provenance";
import { passphraseProblem, type Environment } from "./passphrase";
import { isSecretAt, type ConfigPath } from "./secretConfig";
import { resolveSecretFile, type SecretFile } from "../config/secretFiles";
import { FleetConfigError, configProblem } from "../config/configError";
import { configKey } from "../config/stackConfig";
import { BATCH_SIZE_ENV, planRollout, rolloutNotice, type RolloutBatch } from "./rollout";
import { parseBatchSizeOption } from "../config/rollout";
import type { HostLookup } from "../config/hostFields";

export interface FleetPlanOptions {
    /** The `nixos-fleet` config namespace of the stack (e.g. new pulumi.Config("nixos-fleet")). */
    config: ConfigSource;
    /** Project root: where Pulumi.yaml is; relative paths resolve against it. */
    projectRoot: string;
    stackName: string;
    runner: ProcessRunner;
    /** Revision, operator and update number for the records (program/provenance.ts); none without it. */
    provenance?: (flakes: string[], metadata?: (flake: string) => Promise<unknown>) => Promise<ProvenanceResult>;
    /** The environment Pulumi was started with: the passphrase rule (passphrase.ts) is checked against it. */
    env?: Environment;
    /**
     * The config paths that hold secrets (program/secretConfig.ts). When given, a secret file's
     * value must be one of them: a value set without --secret is refused, not uploaded.
     */
    secretPaths?: readonly ConfigPath[];
    /** The hosts this run targets (program/targets.ts); the others are neither evaluated nor registered. */
    targets?: readonly string[];
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
    /** How many `nix eval` runs this plan took, and how many flake evaluations came from the cache. */
    evaluation: { evaluated: number; cached: number };
    /** Hosts of the stack this run does not target: not evaluated; the engine keeps their recorded state. */
    notTargeted: HostConfig[];
    /** Every host of the stack by name (a host's buildHost is one of them). */
    lookup?: HostLookup;
    /** Resolves once this run's new evaluation-cache entries are written (the program waits for it after registering). */
    cacheStored?: Promise<void>;
}

export async function planFleet(options: FleetPlanOptions): Promise<FleetPlan> {
    const secrets = options.env && passphraseProblem({ stack: options.stackName, projectRoot: options.projectRoot, env: options.env });
    if (secrets) throw secrets;
    const file = `Pulumi.${options.stackName}.yaml`;
    const stack = readStackConfig(options.config, { baseDir: options.projectRoot, file });
    const all = await loadStackHosts(stack, { file });
    // Every host's file is still read and checked; only the targeted ones are evaluated.
    const secretFiles = hostSecretFiles(stack, all.map((host) => host.name), { file, secretPaths: options.secretPaths });
    const hosts = options.targets ? all.filter((host) => options.targets!.includes(host.name)) : all;
    // NIXOS_FLEET_EVAL_CACHE=0 evaluates every flake every time.
    const cache = options.env?.NIXOS_FLEET_EVAL_CACHE === "0" ? undefined : evaluationCache({ runner: options.runner, cwd: options.projectRoot, env: options.env, deferStores: true });
    // `deploy --batch-size` for one run (src/cli/deploy.ts sets it). Batches are planned over all
    // hosts, so a targeted run keeps the order (its other hosts are registered, not evaluated).
    const override = parseBatchSizeOption(options.env?.[BATCH_SIZE_ENV] || undefined, `${BATCH_SIZE_ENV} (deploy --batch-size)`);
    const batches = planRollout(all, stack.rollout, override);
    // The revisions and the update number are read while Nix evaluates.
    const [systems, provenance] = await Promise.all([
        evaluateSystems(
            hosts.map((host) => ({ name: host.name, flake: host.flake, attribute: host.attribute })),
            { runner: options.runner, cwd: options.projectRoot, cache },
        ),
        // The flakes' metadata as the evaluation reads it: one `nix flake metadata` per flake and run.
        options.provenance?.([...new Set(hosts.map((host) => host.flake))], cache ? (flake) => cache.metadata(flake) : undefined),
    ]);
    // The hosts of this run that build here: their changed systems are built together (nix/sharedBuild.ts).
    // A host with a buildHost builds there, not here.
    const buildGroup = hosts.filter((host) => host.buildOn === "local" && !host.buildHost && !stack.pins[host.name]).map((host) => host.name);
    const lookup = hostLookup(all);
    const byName = new Map(hosts.map((host) => [host.name, host]));
    return {
        stack,
        hosts: batches.flatMap((batch) =>
            batch.hosts
                .filter((name) => byName.has(name))
                .map((name) => {
                    const host = byName.get(name)!;
                    const evaluated = {
                        ...hostInputsOf(host, systems.get(host.name)!, secretFiles[host.name], lookup),
                        ...(buildGroup.length > 1 && buildGroup.includes(host.name) ? { buildGroup } : {}),
                    };
                    const described = provenance ? { ...evaluated, provenance: provenanceFor(host.flake, provenance) } : evaluated;
                    const inputs = batches.length > 1 ? { ...described, rollout: rolloutInput(batches, batch, stack.rollout?.maxFailures ?? 0) } : described;
                    const pin = stack.pins[host.name];
                    return { config: host, inputs: pin ? pinnedInputs(inputs, pin) : inputs, pin };
                }),
        ),
        batches,
        rolloutNotice: rolloutNotice(batches, override ?? stack.rollout?.batchSize, override !== undefined, stack.rollout?.maxFailures),
        warnings: provenance?.warnings ?? [],
        notTargeted: all.filter((host) => !hosts.includes(host)),
        lookup,
        evaluation: cache ? { evaluated: cache.misses, cached: cache.hits } : { evaluated: new Set(hosts.map((host) => host.flake)).size, cached: 0 },
        ...(cache?.pendingStores?.length ? { cacheStored: Promise.all(cache.pendingStores).then(() => undefined) } : {}),
    };
}

/**
 * Each host's secret files, every setting resolved. Secrets for a host the stack does not deploy
 * and values stored in plaintext are errors naming the stack key: neither would do what was meant.
 */
export function hostSecretFiles(
    stack: Pick<StackConfig, "secrets">,
    hostNames: readonly string[],
    options: { file?: string; secretPaths?: readonly ConfigPath[] },
): Record<string, Record<string, SecretFile>> {
    const problems = [];
    const files: Record<string, Record<string, SecretFile>> = {};
    for (const [host, secrets] of Object.entries(stack.secrets)) {
        if (!hostNames.includes(host)) {
            problems.push(
                configProblem({
                    message: `secrets for ${host}, which this stack does not deploy`,
                    field: configKey(["secrets", host]),
                    file: options.file,
                    hint: `add ${host} to nixos-fleet:hosts, or remove its secrets (npm run pulumi -- config rm --path 'nixos-fleet:secrets.${host}')`,
                }),
            );
            continue;
        }
        for (const [name, secret] of Object.entries(secrets)) {
            if (options.secretPaths && !isSecretAt(options.secretPaths, ["secrets", host, name, "value"])) {
                problems.push(
                    configProblem({
                        message: `the value of secret ${name} is stored in plaintext in the stack config`,
                        field: configKey(["secrets", host, name, "value"]),
                        file: options.file,
                        hint: `set it encrypted: npm run pulumi -- config set --secret --path 'nixos-fleet:secrets.${host}.${name}.value' <value>`,
                    }),
                );
                continue;
            }
            (files[host] ??= {})[name] = resolveSecretFile(name, secret);
        }
    }
    if (problems.length) throw new FleetConfigError(problems, "invalid secrets in the stack configuration");
    return files;
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
