// The Fleet: every host of a stack as a nixos:index:Host resource. The stack's config
// (Pulumi.<stack>.yaml, namespace nixos-fleet) says which hosts belong to it; hosts/*.yaml describe
// them; one Nix evaluation per flake gives each host's system store path. index.ts is nothing but
//
//   export = async () => (await Fleet.create()).outputs;
//
// Why Fleet is a plain class and not a pulumi.ComponentResource: a component would become the
// parent of every Host, and a resource's URN names its parent's type
// (urn:…::nixos:index:Fleet$nixos:index:Host::psi instead of urn:…::nixos:index:Host::psi). Every
// existing stack would then need aliases to keep its hosts (without them: delete + create of each
// host, i.e. a redeploy with its history lost), and every URN this project builds or parses would
// have to follow: `deploy --hosts` and `rollback` target hosts and hooks by URN (cli/stack.ts),
// `pulumi up --target` is read back into host names (targets.ts), refresh-check and generations
// read hosts out of the state by URN type. A plain class registers the same top-level resources
// with the same names as before, so existing stacks preview with no changes and all of the above
// keeps working. (A component would add nothing a user of the library needs: Fleet's hosts and
// hooks are its properties.)
import * as pulumi from "../resources/pulumiSdk";
import { CONNECTION_FIELDS } from "../config/hostFields";
import { formatError } from "../errors";
import { runProcess, type ProcessRunner } from "../process/runner";
import { Hook } from "../resources/hook";
import { Host, secretHostArgs } from "../resources/host";
import { namespaceValues, parseConfigEnvironment, programConfig } from "./configSource";
import { planFleet, type FleetPlan } from "./fleet";
import { providerVersionWarning, startProvider } from "../resources/providerStart";
import { withShortStackTraces } from "./shortStacks";
import { quietSdkDebugLog } from "./sdkDebugLog";
import { packageVersion } from "../provider/version";
import { connectionOf, notEvaluatedInputsOf } from "./hostInputs";
import { findOverlaps, otherStackHosts } from "./overlaps";
import { readProvenance, readStackHistoryOnce } from "./provenance";
import { maskSecrets, programSecretPaths, secretFileFields, secretHostFields, secretTexts, type ConfigPath } from "./secretConfig";
import { targetedHosts } from "./targets";

/** The Pulumi config namespace of the fleet's settings (`nixos-fleet:hosts`, `nixos-fleet:defaults`, ...). */
export const CONFIG_NAMESPACE = "nixos-fleet";

/** Where a Fleet finds its stack and hosts; every field defaults to what `pulumi up` gives the program. */
export interface FleetArgs {
    /** Project root: where Pulumi.yaml, Pulumi.<stack>.yaml and hosts/ are (default: the working directory). */
    projectRoot?: string;
    /** The stack (default: pulumi.getStack()). */
    stackName?: string;
    /** The environment the engine started the program with (default: process.env). */
    env?: NodeJS.ProcessEnv;
    /** Runs nix and git (default: the real process runner; tests pass a fake). */
    runner?: ProcessRunner;
}

/** What a Fleet needs besides its plan to register it. */
export interface FleetRegistration {
    /** The config paths that hold secrets: what they reach is registered as secret (secretConfig.ts). */
    secretPaths: readonly ConfigPath[];
    /** The hosts of the project's other stacks, for the overlap warning (overlaps.ts). */
    otherStacks: ReturnType<typeof otherStackHosts>;
}

/** A host's stack outputs. */
export interface FleetHostOutputs {
    storePath: pulumi.Output<string>;
    generation: pulumi.Output<number | null>;
    nixosVersion: pulumi.Output<string | null>;
}

/**
 * Thrown by Fleet.create when the fleet's config is wrong, after the error (file, line, host,
 * phase, hint; secret config values masked) was logged to the engine. index.ts ends the run at
 * once on it: a thrown error would leave the SDK's gRPC channels holding the process for ~20 s.
 */
export class FleetReportedError extends Error {
    constructor(cause: unknown) {
        super("nixos-fleet: the fleet's configuration has errors (reported above)", { cause });
    }
}

/**
 * Every host of a stack, registered in rollout order: each Host (secret where its config is), its
 * hooks, the hosts a targeted run leaves alone (registered, not evaluated, so the engine keeps
 * their state), and warnings for hosts another stack deploys too and for pinned hosts.
 */
export class Fleet {
    /** The Host resources by host name, in rollout order. */
    readonly hosts: Readonly<Record<string, Host>>;
    /** The Hook resources by resource name (`<host>-<hook>`). */
    readonly hooks: Readonly<Record<string, Hook>>;

    /** Plans the fleet from the stack's config and hosts/ (one Nix evaluation per flake) and registers it. */
    static async create(args: FleetArgs = {}): Promise<Fleet> {
        const started = Date.now();
        // The engine starts the provider plugin while this program reads and evaluates the fleet.
        // A stale provider is reported as soon as it answers: its checks may fail the run (and end
        // this program) right after the hosts are registered, and the warning says why.
        const providerChecked = startProvider().then((start) => {
            const stale = providerVersionWarning(start, packageVersion());
            if (stale) void pulumi.log.warn(stale);
        });
        const projectRoot = args.projectRoot ?? process.cwd();
        const stackName = args.stackName ?? pulumi.getStack();
        const env = args.env ?? process.env;
        const runner = args.runner ?? runProcess;
        // Which config values are secret (`config set --secret`): what they reach stays secret.
        const secretPaths = programSecretPaths(CONFIG_NAMESPACE, projectRoot, stackName, env);
        // An update's number comes from the stack's history: read while the fleet is read and evaluated.
        // (index.ts started this read before the program's modules loaded: the same read is taken.)
        const history = pulumi.runtime.isDryRun() ? undefined : readStackHistoryOnce({ runner, projectRoot, stackName });
        let plan: FleetPlan;
        try {
            plan = await planFleet({
                // Not pulumi.Config: a stack without config must read as empty, not crash (see
                // configSource); every nixos-fleet:* key, so a misspelt one is an error, not ignored.
                config: programConfig(CONFIG_NAMESPACE, env.PULUMI_CONFIG),
                projectRoot,
                stackName,
                runner,
                env,
                secretPaths,
                // `deploy --hosts` / `pulumi up --target`: only those hosts are evaluated and registered;
                // a targeted run keeps every other host's recorded state as it is.
                targets: targetedHosts(env),
                // Only an update records where a deployment came from; a preview does not pay for
                // reading the stack's history and the flakes' revisions (it is not diffed).
                provenance: history ? (flakes, metadata) => readProvenance(flakes, { runner, projectRoot, stackName, history, ...(metadata ? { metadata } : {}) }) : undefined,
            });
        } catch (error) {
            // A readable error (file, line, host, phase, hint) instead of a stack trace.
            const secretConfigTexts = secretTexts(secretPaths, namespaceValues(parseConfigEnvironment(env.PULUMI_CONFIG), CONFIG_NAMESPACE));
            await pulumi.log.error(maskSecrets(formatError(error), secretConfigTexts));
            throw new FleetReportedError(error);
        }
        for (const warning of plan.warnings) void pulumi.log.warn(warning);
        void pulumi.log.info(evaluationSummary(plan, Date.now() - started));
        // Registered before the provider has answered: the engine holds the hosts until it is up,
        // and the SDK's work on their inputs runs meanwhile, not after it.
        const fleet = new Fleet(plan, { secretPaths, otherStacks: otherStackHosts(projectRoot, stackName) });
        // The evaluation cache's new entries are checked and written meanwhile (nix/evaluate.ts).
        await Promise.all([providerChecked, plan.cacheStored]);
        return fleet;
    }

    /** Registers a planned fleet (Fleet.create plans it; tests pass a plan of their own). */
    constructor(plan: FleetPlan, registration: FleetRegistration) {
        // Short stacks: the SDK's per-promise stack traces are most of a large fleet's registration;
        // its per-resource debug messages to the engine are most of the rest (sdkDebugLog.ts).
        quietSdkDebugLog();
        const registered = withShortStackTraces(() => Fleet.register(plan, registration));
        this.hosts = registered.hosts;
        this.hooks = registered.hooks;
    }

    private static register(plan: FleetPlan, registration: FleetRegistration): Pick<Fleet, "hosts" | "hooks"> {
        const { secretPaths } = registration;
        const overlaps = findOverlaps(
            plan.hosts.map((host) => host.config),
            registration.otherStacks,
        );
        if (plan.rolloutNotice) void pulumi.log.info(plan.rolloutNotice);
        const hosts: Record<string, Host> = {};
        const hooks: Record<string, Hook> = {};
        const order = registrationOrder(plan);
        const planned = new Map(plan.hosts.map((host) => [host.config.name, host]));
        for (const { name, after } of order) {
            // A staged rollout: the engine starts this host only after every host of the batch before
            // it deployed and passed its checks; a failure there stops it (src/program/rollout.ts).
            const before = after.map((other) => hosts[other]!);
            const dependsOn = before.length ? { dependsOn: before } : {};
            const entry = planned.get(name);
            if (!entry) {
                // Registered (never evaluated) so the engine keeps their recorded state and the stack's
                // outputs still list them; a targeted run does not check, update or delete them. With
                // the dependencies the state records for them: a targeted run that registered them
                // without (or out of order) was refused with pulumi/pulumi#24303's "Duplicate resource URN".
                const config = plan.notTargeted.find((host) => host.name === name)!;
                const inputs = notEvaluatedInputsOf(config, "not targeted", plan.lookup);
                const secretKeys = withSecretBuildHost(secretHostFields(secretPaths, config.name, Object.keys(inputs)), secretPaths, config.buildHost);
                hosts[config.name] = new Host(config.name, secretHostArgs(inputs, secretKeys), { additionalSecretOutputs: secretKeys, ...dependsOn });
                continue;
            }
            const { config, inputs, pin } = entry;
            // Fields whose value came from secret config are secret inputs and, by the engine, outputs.
            const secretKeys = withSecretBuildHost(secretHostFields(secretPaths, config.name, Object.keys(inputs)), secretPaths, config.buildHost);
            const fileKeys = secretFileFields(secretPaths, config.name, inputs.secrets ?? {});
            const host = new Host(config.name, secretHostArgs(inputs, secretKeys, fileKeys), { additionalSecretOutputs: secretKeys, ...dependsOn });
            hosts[config.name] = host;
            const hookSecret = secretHostFields(secretPaths, config.name, ["hooks"]).length > 0;
            const connection = connectionOf(inputs);
            const connectionArgs = Object.fromEntries(
                Object.entries(connection).map(([key, value]) => [key, secretKeys.includes(key) ? pulumi.secret(value) : value]),
            ) as unknown as ReturnType<typeof connectionOf>;
            for (const hook of config.hooks) {
                // Runs after the host is deployed, and again whenever its generation or system changes.
                const name = `${config.name}-${hook.name}`;
                hooks[name] = new Hook(
                    name,
                    {
                        ...connectionArgs,
                        hook: hook.name,
                        command: hookSecret ? pulumi.secret([...hook.command]) : [...hook.command],
                        runAs: hookSecret && hook.runAs !== undefined ? pulumi.secret(hook.runAs) : hook.runAs,
                        trigger: pulumi.interpolate`${host.generation}:${host.storePath}`,
                    },
                    { parent: host, dependsOn: [host], additionalSecretOutputs: Object.keys(connection).filter((key) => secretKeys.includes(key)) },
                );
            }
            for (const overlap of overlaps.filter((o) => o.host === config.name)) {
                void pulumi.log.warn(
                    `${config.name} is also deployed by stack ${overlap.otherStack} (as ${overlap.otherHost}): ` +
                        "two stacks deploying one server overwrite each other's systems; keep each server in one stack",
                    host,
                );
            }
            if (pin) {
                // Flagged in every preview and deploy until `rollback --clear` removes the pin.
                void pulumi.log.warn(
                    `${config.name} is pinned to ${pin.storePath}${pin.generation ? ` (generation ${pin.generation})` : ""}` +
                        `${pin.reason ? `: ${pin.reason}` : ""}; its configuration (${inputs.pin?.configuredStorePath}) is not deployed ` +
                        `until \`npm run rollback -- --clear --hosts ${config.name}\``,
                    host,
                );
            }
        }
        return { hosts, hooks };
    }

    /** The stack outputs of nixos-fleet's program: each host's deployed store path, generation and NixOS version. */
    get outputs(): { hosts: Record<string, FleetHostOutputs> } {
        return {
            hosts: Object.fromEntries(
                Object.entries(this.hosts).map(([name, host]) => [
                    name,
                    { storePath: host.storePath, generation: host.generation, nixosVersion: host.nixosVersion },
                ]),
            ),
        };
    }
}

/**
 * The order the hosts are registered in, each with the hosts it depends on: the rollout's batches
 * in order (each host after every host of the batch before), targeted or not, so every run
 * registers the dependencies the state records. Hosts outside the batches (none today) come last.
 */
export function registrationOrder(plan: Pick<FleetPlan, "batches" | "hosts" | "notTargeted">): { name: string; after: string[] }[] {
    const known = new Set([...plan.hosts.map((host) => host.config.name), ...plan.notTargeted.map((host) => host.name)]);
    const order: { name: string; after: string[] }[] = [];
    let previous: string[] = [];
    for (const batch of plan.batches) {
        const names = batch.hosts.filter((name) => known.has(name));
        for (const name of names) order.push({ name, after: previous });
        if (names.length) previous = names;
    }
    const placed = new Set(order.map((entry) => entry.name));
    for (const name of known) if (!placed.has(name)) order.push({ name, after: [] });
    return order;
}

/** buildHost carries the build host's connection settings: secret when any of them came from secret config. */
export function withSecretBuildHost(secretKeys: string[], secretPaths: readonly ConfigPath[], buildHost: string | undefined): string[] {
    if (buildHost === undefined || secretKeys.includes("buildHost")) return secretKeys;
    return secretHostFields(secretPaths, buildHost, CONNECTION_FIELDS).length > 0 ? [...secretKeys, "buildHost"] : secretKeys;
}

/** One line on the evaluation: how many hosts, how long, how many nix evals and cache hits. */
function evaluationSummary(plan: FleetPlan, milliseconds: number): string {
    const { evaluated, cached } = plan.evaluation;
    const how = [
        ...(evaluated ? [`${evaluated} nix eval${evaluated === 1 ? "" : "s"}, one per flake`] : []),
        ...(cached ? [`${cached} unchanged flake${cached === 1 ? "" : "s"} from the evaluation cache`] : []),
        ...(plan.notTargeted.length ? [`not targeted, not evaluated: ${plan.notTargeted.map((host) => host.name).join(", ")}`] : []),
    ];
    return `evaluate: ${plan.hosts.length} host(s) in ${(milliseconds / 1000).toFixed(1)}s (${how.join("; ") || "nothing to evaluate"})`;
}
