// The nixos:index:Host provider: check, diff, create/update (deploy), read (refresh), delete.
// The stack records only what really happened: a failed deploy throws, and the engine keeps the
// previous state for that host.
import type * as provider from "@pulumi/pulumi/provider";
import { z } from "zod";
import { HOST_FIELDS, INPUT_DEFAULT_FIELDS } from "../config/hostFields";
import { checkFieldCombinations } from "../config/hostSchema";
import { didYouMean } from "../config/suggest";
import { DeployedUnchecked, deployHost, inspectHost, type DeployOutcome } from "../deploy/deployHost";
import { describeNeed, notRebootedBecause, rebootNeeded } from "../deploy/reboot";
import { changesRunningSystem, setsProfile } from "../deploy/activate";
import { stepOf, trimHistory } from "../deploy/deployments";
import type { HostState } from "../deploy/hostState";
import { FleetError, formatError } from "../errors";
import { SharedBuilder } from "../nix/sharedBuild";
import { isStorePath } from "../nix/flags";
import type { PackageCache } from "../nix/packageCache";
import { formatPlan, planHost, type PlanSide } from "../deploy/plan";
import { rebootNeedAfterRead, recordedBootedSide, type RecordedBoot } from "../deploy/reboot";
import type { ProcessRunner } from "../process/runner";
import { makeRuntimeDir } from "../process/runtimeDir";
import { maskingLogger, type EngineLogger } from "./engineLog";
import { maskSecrets, unwrapSecrets, wrapSecrets, type PropertyPath } from "./secretMarkers";
import { HOOK_TYPE, HookProvider } from "./hookProvider";
import { adoptedOutputs, type ConfiguredInputs } from "./adopt";
import { outputsWhenUnreachable, rollbackMarkAfterDeploy, stackOfUrn, undoWarning, undoneRollback, unreachableWarning } from "./hostMarks";
import { packageSchema } from "./schema";
import { PROVIDER_INFO_TOKEN, runKindOf, type ProviderInfo, type RunKind } from "./providerInfo";
import { UNKNOWN, checkFailures, pendingMessage, unknownKeys } from "./unknowns";
import {
    DIFF_KEYS,
    HISTORY_LIMIT,
    deployRequestOf,
    hostInputsSchema,
    notEvaluatedReason,
    pickInputs,
    provenanceSchema,
    secretFileChanges,
    sshTargetOf,
    type DeploymentRecord,
    type HostInputs,
    type HostOutputs,
} from "./hostInputs";
import { Limiter } from "../process/pool";
import { HOST_TYPE } from "../resources/types";

export { HOST_TYPE } from "../resources/types";

/** The resource type in a URN (urn:pulumi:stack::project::[parent$]…type::name). */
export function resourceTypeOf(urn: string): string {
    const parts = urn.split("::");
    return (parts[parts.length - 2] ?? "").split("$").pop() ?? "";
}

/** The resource's name: the last part of its URN. */
export function resourceNameOf(urn: string): string {
    return urn.slice(urn.lastIndexOf("::") + 2);
}

/**
 * The inputs with the defaults check fills in: `name` (the resource's name, as the TypeScript Host
 * does) and the host fields marked inputDefault (config/hostFields.ts), when left out.
 */
export function withInputDefaults(inputs: Record<string, unknown>, resourceName: string): Record<string, unknown> {
    const filled: Record<string, unknown> = { ...inputs };
    if (filled.name === undefined) filled.name = resourceName;
    for (const field of INPUT_DEFAULT_FIELDS) if (filled[field] === undefined) filled[field] = structuredClone(HOST_FIELDS[field].default);
    return filled;
}

/** The rules between fields that host files follow too (insecureSkipHostKeyCheck with a pinned key, …). */
function combinationIssues(inputs: HostInputs): z.core.$ZodIssue[] {
    const result = z.looseObject({}).superRefine((fields, context) => checkFieldCombinations(fields, context)).safeParse(inputs);
    return result.success ? [] : result.error.issues;
}

/** Input keys the resource does not have: refused, since a misspelt field would otherwise be ignored. */
export function unknownInputFailures(inputs: Record<string, unknown>): provider.CheckFailure[] {
    const known = Object.keys(hostInputsSchema.shape);
    return Object.keys(inputs)
        .filter((key) => inputs[key] !== undefined && !known.includes(key))
        .map((key) => ({ property: key, reason: `nixos:index:Host has no input "${key}"; ${didYouMean(key, known)}the inputs are listed in docs/host-config.md` }));
}

/**
 * Where the secret files' values are: check returns them as secrets whoever sent them plain (a
 * program in another language: the schema's `secret` is not enforced by the engine), so the
 * state keeps them encrypted and a preview shows [secret].
 */
export function withSecretFileValues(paths: readonly PropertyPath[], inputs: { secrets?: unknown }): PropertyPath[] {
    const files = inputs.secrets;
    if (files === null || typeof files !== "object" || Array.isArray(files)) return [...paths];
    // A value inside something already secret (the whole map, as Fleet may send it) stays as it is.
    const covered = (path: PropertyPath) => paths.some((secret) => secret.length <= path.length && secret.every((part, index) => part === path[index]));
    const values: PropertyPath[] = Object.keys(files).map((name) => ["secrets", name, "value"]);
    return [...paths, ...values.filter((path) => !covered(path))];
}

/** How many of an update's plans are made at once (HostProvider.updatePlans). */
const UPDATE_PLANS_AT_ONCE = 2;

/**
 * The longest one Nix query of a plan may run (a local store query takes well under a second): a
 * stuck query must hold neither an update's deployed host (its deploy returns only once its plan is
 * logged) nor a preview (HostProvider.planRunner).
 */
const PLAN_QUERY_MS = 60_000;

/** The plugin serves two types; hooks go to their own provider. */
const isHook = (urn: string): boolean => resourceTypeOf(urn) === HOOK_TYPE;

export interface HostProviderOptions {
    runner: ProcessRunner;
    logger: EngineLogger;
    version: string;
    /** Where control sockets go; a fresh private directory by default. */
    runtimeDir?: string;
    /**
     * The inputs the stack's config gives a host, without its system (for `pulumi import`, which
     * sends no properties): wired by main.ts; without it an import fails with a clear error.
     */
    configuredInputs?: ConfiguredInputs;
    /** The time now (ISO); injectable for tests. */
    now?: () => string;
    /** Keeps the plans' package lists per derivation between runs (main.ts: filePackageCache); none: always asked. */
    packageCache?: PackageCache;
}

const sameValue = (a: unknown, b: unknown): boolean => JSON.stringify(a ?? null) === JSON.stringify(b ?? null);

/** Which input properties differ between the recorded state and the program's new inputs. */
export function changedKeys(olds: Record<string, unknown>, news: Record<string, unknown>): string[] {
    return DIFF_KEYS.filter((key) => !sameValue(olds[key], news[key]));
}

/**
 * Host facts recorded by the last deploy or refresh that disagree with the configuration: a
 * profile moved by hand or left by an interrupted deploy (the next boot would change systems), or a
 * running system that is not the configured one. Each makes the host a change in the plan, so
 * `pulumi up` makes profile, boot default and running system agree with the configuration.
 */
export function convergenceKeys(olds: Record<string, unknown>, news: Record<string, unknown>): string[] {
    const action = news.action as HostInputs["action"] | undefined;
    const storePath = news.storePath;
    if (!action || typeof storePath !== "string") return [];
    const keys: string[] = [];
    // Only facts that disagree with what the state itself records: a changed configuration is a
    // change of storePath already, and no reason for a warning.
    const recorded = olds.storePath;
    if (setsProfile(action) && typeof olds.profileStorePath === "string" && olds.profileStorePath !== recorded && olds.profileStorePath !== storePath) {
        keys.push("profileStorePath");
    }
    if (changesRunningSystem(action) && typeof olds.runningStorePath === "string" && olds.runningStorePath !== recorded && olds.runningStorePath !== storePath) {
        keys.push("runningStorePath");
    }
    return keys;
}

/** The store path a host effectively has deployed, by the action that deploys it. */
export function deployedStorePath(state: HostState, action: HostInputs["action"]): string | undefined {
    if (changesRunningSystem(action)) return state.currentStorePath;
    if (setsProfile(action)) return state.profileStorePath;
    return undefined;
}

/** How many deployments (rollbacks aside) the state records: keepGenerations when set (cleanup deletes the rest). */
export function historyLimit(inputs: Pick<HostInputs, "keepGenerations">): number {
    return inputs.keepGenerations ?? HISTORY_LIMIT;
}

/**
 * The record of this deployment: what was deployed, when, by whom, from which revision, in which
 * stack update. A pinned host's deployment is a rollback: it records which deployment it went
 * back to, and that deployment's revision (the system is that revision's, not today's flake's).
 */
export function deploymentRecord(inputs: HostInputs, generation: number | null, activatedAt: string, previous: readonly DeploymentRecord[]): DeploymentRecord {
    const provenance = inputs.provenance;
    const base = {
        generation,
        storePath: inputs.storePath,
        action: inputs.action,
        activatedAt,
        stackUpdate: provenance?.stackUpdate ?? null,
        operator: provenance?.operator ?? null,
    };
    if (!inputs.pin) return { ...base, kind: "deploy", flake: provenance?.flake ?? null };
    // The deployment the pin goes back to: named by the pin, else the newest holding its system.
    const named =
        previous.find((entry) => inputs.pin?.activatedAt !== undefined && entry.activatedAt === inputs.pin.activatedAt) ??
        previous.find((entry) => entry.storePath === inputs.storePath);
    const target = named ? stepOf(previous, named) : undefined;
    return {
        ...base,
        kind: "rollback",
        ...(target ? { rollbackTo: target.activatedAt } : {}),
        flake: target?.flake ?? null,
    };
}

/**
 * What the state records about reboots after a deploy: why the host still needs one (or null), and
 * the reboot this deploy made (its outcome unknown when it did not come back: `failure` says why).
 */
export function rebootOutputs(outcome: DeployOutcome, storePath: string, old?: Partial<HostOutputs>, failure?: FleetError): Pick<HostOutputs, "rebootNeeded" | "lastReboot"> {
    const report = outcome.reboot;
    const need = report?.need;
    const outputs: Pick<HostOutputs, "rebootNeeded" | "lastReboot"> = {};
    // Unknown (not read, or a reboot whose outcome is unknown): the field is left out, never guessed.
    if (need !== undefined && need !== null && !(failure && !report?.rebooted)) outputs.rebootNeeded = rebootNeeded(need) ? describeNeed(need) : null;
    const rebooted = report?.rebooted;
    if (rebooted) {
        outputs.lastReboot = {
            outcome: "booted",
            at: rebooted.at,
            previousBootId: rebooted.previousBootId,
            bootId: rebooted.bootId,
            waitedSeconds: rebooted.waitedSeconds,
            bootedStorePath: rebooted.bootedStorePath,
        };
    } else if (failure?.phase === "reboot") {
        const attempt = report?.attempt;
        outputs.lastReboot = {
            outcome: failure.outcome === "unknown" ? "unknown" : "failed",
            at: attempt?.at ?? outcome.activatedAt,
            previousBootId: attempt?.previousBootId ?? null,
            // Known only when a new boot answered (and booted another system than the deployed one).
            bootId: attempt?.bootId ?? null,
            waitedSeconds: attempt?.waitedSeconds ?? null,
            bootedStorePath: attempt?.bootedStorePath ?? null,
            error: `${failure.message}${failure.hint ? ` (hint: ${failure.hint})` : ""}`,
        };
    } else if (old?.lastReboot?.outcome === "unknown" && outcome.after.bootedStorePath === storePath) {
        // The reboot that did not come back in time: the host is back, booted into the deployed system.
        outputs.lastReboot = {
            ...old.lastReboot,
            outcome: "booted",
            bootedStorePath: outcome.after.bootedStorePath,
            error: `${old.lastReboot.error ?? "the reboot's outcome was unknown"}; found booted into the deployed system at ${outcome.activatedAt}`,
        };
    } else if (old?.lastReboot) {
        outputs.lastReboot = old.lastReboot;
    }
    return outputs;
}

export function outputsAfterDeploy(inputs: HostInputs, outcome: DeployOutcome, old?: Partial<HostOutputs>, failure?: FleetError): HostOutputs {
    const { after, before } = outcome;
    const generation = after.generation ?? null;
    const previous = old?.history ?? [];
    const record = deploymentRecord(inputs, generation, outcome.activatedAt, previous);
    const unchanged = previous[0] && previous[0].storePath === record.storePath && previous[0].generation === record.generation;
    const history = trimHistory(unchanged ? previous : [record, ...previous], historyLimit(inputs));
    const { buildGroup: _group, ...recorded } = inputs;
    return {
        ...recorded,
        generation,
        previousGeneration: outcome.activated ? (before.generation ?? null) : (old?.previousGeneration ?? before.generation ?? null),
        activatedAt: outcome.activated ? outcome.activatedAt : (old?.activatedAt ?? outcome.activatedAt),
        nixosVersion: after.nixosVersion ?? null,
        runningStorePath: after.currentStorePath ?? null,
        bootedStorePath: after.bootedStorePath ?? null,
        profileStorePath: after.profileStorePath ?? null,
        history,
        rolledBack: rollbackMarkAfterDeploy(inputs, record, old),
        lastSeenAt: outcome.activatedAt,
        unreachable: null,
        ...rebootOutputs(outcome, inputs.storePath, old, failure),
        lastDeploy: {
            activated: outcome.activated,
            generationBefore: before.generation ?? null,
            generationAfter: generation,
            pathsCopied: outcome.copy.pathsCopied,
            bytesCopied: outcome.copy.bytesCopied,
            timings: { ...outcome.timings },
            ...(outcome.builtOn !== undefined ? { builtOn: outcome.builtOn } : {}),
        },
    };
}

/** Outputs after `pulumi refresh`: what the host really runs replaces what the stack believed. */
export function outputsAfterRead(old: HostOutputs, state: HostState, now: string = new Date().toISOString()): HostOutputs {
    const actual = deployedStorePath(state, old.action);
    // A host found running another system: the recorded derivation is not what it runs.
    const { drvPath, ...rest } = old;
    return {
        ...(actual === undefined || actual === old.storePath ? { ...rest, ...(drvPath !== undefined ? { drvPath } : {}) } : rest),
        storePath: actual ?? old.storePath,
        // The profile's generation holds the recorded store path only when the profile points at
        // it; otherwise which generation (if any) holds the running system is not known.
        generation: actual === undefined || state.profileStorePath === actual ? (state.generation ?? null) : null,
        nixosVersion: state.nixosVersion ?? null,
        runningStorePath: state.currentStorePath ?? null,
        bootedStorePath: state.bootedStorePath ?? null,
        profileStorePath: state.profileStorePath ?? null,
        lastSeenAt: now,
        unreachable: null,
    };
}

/**
 * A profile that points at another system than the running one (for a switch host) is what an
 * interrupted deploy or a hand-made `nix-env --set` leaves: the next boot would change the system.
 */
export function profileMismatch(state: HostState, action: HostInputs["action"]): string | undefined {
    if (action !== "switch" || !state.profileStorePath || !state.currentStorePath) return undefined;
    if (state.profileStorePath === state.currentStorePath) return undefined;
    return `the system profile (generation ${state.generation ?? "-"}, ${state.profileStorePath}) is not the running system (${state.currentStorePath}): the next switch-to-configuration boot (or nixos-rebuild) would make it the boot default; the next \`pulumi up\` makes the profile, the boot default and the running system agree with the configured one`;
}

/**
 * What a failed host of a staged rollout means for the others, as the last line of its error: the
 * engine starts no later batch (each depends on the batch before), so plain `pulumi up` says so too.
 */
export function rolloutConsequence(inputs: Pick<HostInputs, "rollout">, error: unknown): string {
    const rollout = inputs.rollout;
    if (!rollout || rollout.later.length === 0) return "";
    const how = error instanceof FleetError && error.outcome === "unknown" ? "did not end as it should (outcome unknown)" : "failed";
    const where = `\n  rollout: batch ${rollout.batch} of ${rollout.batches}${rollout.canary ? " (canary)" : ""} ${how} here`;
    const tolerated = rollout.maxFailures ?? 0;
    if (tolerated === 0) return `${where}, so the hosts of later batches are held back (not touched): ${rollout.later.join(", ")}`;
    return (
        `${where}: pulumi up holds the hosts of later batches back (not touched): ${rollout.later.join(", ")}; ` +
        `npm run deploy goes on while at most ${tolerated} host${tolerated === 1 ? "" : "s"} failed`
    );
}

/** The warning for a host deployed without host-key checking, or undefined. */
export function insecureHostWarning(inputs: Pick<HostInputs, "name" | "address" | "insecureSkipHostKeyCheck">): string | undefined {
    if (!inputs.insecureSkipHostKeyCheck) return undefined;
    return (
        `${inputs.name}: insecureSkipHostKeyCheck is true: ssh accepts any host key for ${inputs.address}, so anyone on the network path ` +
        "can impersonate the host and receive its system and secrets; pin hostKey or set knownHostsFile instead"
    );
}

/** Top-level keys that hold a secret in the new inputs but held none in the recorded ones. */
export function newlySecretKeys(oldPaths: readonly PropertyPath[], newPaths: readonly PropertyPath[]): string[] {
    const key = (path: PropertyPath) => JSON.stringify(path);
    const old = new Set(oldPaths.map(key));
    return [...new Set(newPaths.filter((path) => !old.has(key(path))).map((path) => String(path[0] ?? "")))].filter(Boolean);
}

/** The outputs without the secret files the host no longer has, so the next `up` writes them again. */
export function withoutMissingSecrets(outputs: HostOutputs, missingPaths: readonly string[]): HostOutputs {
    if (!outputs.secrets || missingPaths.length === 0) return outputs;
    const kept = Object.entries(outputs.secrets).filter(([, file]) => !missingPaths.includes(file.path));
    const { secrets: _all, ...rest } = outputs;
    return kept.length ? { ...rest, secrets: Object.fromEntries(kept) } : (rest as HostOutputs);
}

/** The recorded side of a plan: the store path the state holds and the derivation it came from. */
export function recordedSide(olds: Record<string, unknown>): PlanSide | undefined {
    // Read from the state, which the input rules never checked: only store paths reach Nix's
    // arguments (a recorded "--option …" would be one of its options).
    if (!isStorePath(olds.storePath)) return undefined;
    return { storePath: olds.storePath, ...(isStorePath(olds.drvPath) && olds.drvPath.endsWith(".drv") ? { drvPath: olds.drvPath } : {}) };
}

/**
 * A preview's program does not read the provenance (the stack's history and the flakes'
 * revisions: only an update records them), so the engine would show the recorded one as removed
 * (`-provenance`) on every row. In a preview the recorded provenance stands in for the one the
 * update will write: the row then shows what the deploy changes. Display only: a preview records
 * nothing, and the update's program sends its own.
 */
export function withRecordedProvenance(inputs: HostInputs, olds: unknown): HostInputs {
    if (inputs.provenance !== undefined) return inputs;
    const recorded = provenanceSchema.safeParse(unwrapSecrets<Record<string, unknown>>((olds ?? {}) as Record<string, unknown>).value.provenance);
    return recorded.success ? { ...inputs, provenance: recorded.data } : inputs;
}

export class HostProvider implements provider.Provider {
    readonly version: string;
    private readonly options: HostProviderOptions;
    private runtimeDirCache?: string;

    private readonly hooks: HookProvider;
    /** Host names checked in this run, with the resource (URN) of each (nameTaken). */
    private readonly namesInRun = new Map<string, string>();
    /** Hosts updated together in this run build their systems in one `nix-store --realise`. */
    private readonly builder: SharedBuilder;
    /** Aborted when the engine cancels the update (its first Ctrl-C): a reboot's wait ends, recorded as unknown. */
    private readonly cancellation = new AbortController();
    /** What the program said this run is (nixos:index:providerInfo): an update's plans skip the build and copy counts. */
    private runKind: RunKind = "unknown";
    /** An update's plans, by host (URN), logged while the update goes on; the host's deploy logs after its own. */
    private readonly planLogs = new Map<string, Promise<void>>();
    /**
     * An update's plans are made a few at a time: each starts Nix and shell processes, and a
     * burst of them for a large run would hold the provider (every start blocks its event loop
     * for a moment) while the engine waits for it to begin the hosts' updates.
     */
    private readonly updatePlans = new Limiter(UPDATE_PLANS_AT_ONCE);

    constructor(options: HostProviderOptions) {
        this.options = options;
        this.builder = new SharedBuilder(options.runner);
        this.version = options.version;
        this.hooks = new HookProvider({ runner: options.runner, logger: options.logger, runtimeDir: () => this.runtimeDir });
    }

    private get runtimeDir(): string {
        // Short path: it holds unix sockets (~100-byte limit).
        // Removed when the provider exits, also on the engine's SIGINT/SIGTERM (src/process/runtimeDir.ts).
        this.runtimeDirCache ??= this.options.runtimeDir ?? makeRuntimeDir();
        return this.runtimeDirCache;
    }

    /**
     * A host's name names its SSH control socket and pinned known_hosts file in this provider's
     * runtime directory: two Hosts of one run with one name (possible in a program that sets
     * `name`) would share them, and the second one's deploy would run over the first one's master
     * connection, on the other server. Refused at check, naming the other resource.
     */
    private nameTaken(urn: string, name: unknown): provider.CheckFailure[] {
        if (typeof name !== "string" || name === UNKNOWN) return [];
        const other = this.namesInRun.get(name);
        if (other === undefined || other === urn) {
            this.namesInRun.set(name, urn);
            return [];
        }
        return [
            {
                property: "name",
                reason: `${name} is also the name of ${resourceNameOf(other)} (${other}): two hosts with one name would share one SSH connection; give each Host its own name`,
            },
        ];
    }

    /** The package schema (`pulumi package get-schema`), derived from the input and output definitions. */
    async getSchema(): Promise<string> {
        return JSON.stringify(packageSchema(this.version), null, 2);
    }

    /** `nixos:index:providerInfo`: which provider serves the stack (the program asks first: resources/providerStart.ts). */
    async invoke(token: string, inputs: unknown): Promise<provider.InvokeResult> {
        if (token === PROVIDER_INFO_TOKEN) {
            this.runKind = runKindOf(inputs);
            return { outputs: { version: this.version } satisfies ProviderInfo };
        }
        return { failures: [{ property: "", reason: `the nixos provider has no function ${token} (it serves ${PROVIDER_INFO_TOKEN})` }] };
    }

    async check(urn: string, olds: unknown, news: Record<string, unknown>): Promise<provider.CheckResult> {
        if (isHook(urn)) return this.hooks.check(news);
        // Secrets are checked unwrapped; the inputs go back as they came, wrappers and all.
        const plain = unwrapSecrets<Record<string, unknown>>(news);
        const notEvaluated = notEvaluatedReason(plain.value);
        if (notEvaluated !== undefined) {
            const name = String(plain.value.name);
            return { failures: [{ property: "storePath", reason: `${name} was not evaluated in this run (${notEvaluated}), so it cannot be deployed by it; deploy it by name (npm run deploy -- --hosts ${name})` }] };
        }
        const given = withInputDefaults(plain.value, resourceNameOf(urn));
        // Inputs that are other resources' Outputs not known yet are checked once they are.
        const pending = unknownKeys(given);
        const parsed = hostInputsSchema.safeParse(given);
        const issues = parsed.success ? combinationIssues(parsed.data) : parsed.error.issues;
        const failures = [...checkFailures(issues, pending), ...unknownInputFailures(given), ...this.nameTaken(urn, given.name)];
        // Host files refuse this combination; inputs may also come from the library's Host or another program.
        if (parsed.success && parsed.data.buildHost && parsed.data.buildOn === "target") {
            failures.push({ property: "buildHost", reason: "buildHost contradicts buildOn: target (buildOn: target builds on the host itself, buildHost on the host it names): keep one of them" });
        }
        if (failures.length > 0) return { failures: failures.map((failure) => ({ ...failure, reason: maskSecrets(failure.reason, plain.texts) })) };
        if (pending.length > 0) {
            await this.options.logger.log("info", urn, pendingMessage(given.name, pending));
        } else if (parsed.success) {
            // check runs at every preview and up: a host without host-key checking is never quiet.
            const warning = insecureHostWarning(parsed.data);
            if (warning) await maskingLogger(this.options.logger, plain.texts).log("warning", urn, warning);
            // The build host is reached the same way: its own setting, said on this host's row too.
            const buildHost = parsed.data.buildHost;
            const buildWarning = buildHost && insecureHostWarning(buildHost);
            if (buildWarning) await maskingLogger(this.options.logger, plain.texts).log("warning", urn, `${parsed.data.name}'s build host ${buildWarning}`);
            // A host new to the stack gets no diff call: its plan is shown here.
            if (recordedSide(unwrapSecrets<Record<string, unknown>>((olds ?? {}) as Record<string, unknown>).value) === undefined) {
                this.noteBuild(parsed.data, true);
                await this.showPlan(urn, undefined, parsed.data);
            }
            // The inputs as the provider reads them (defaults filled in, as the state records
            // them after a deploy), with the secrets where they were: else a value the program
            // leaves to its default (a health check's retries) would differ from the state at every run.
            const checked = this.runKind === "preview" ? withRecordedProvenance(parsed.data, olds) : parsed.data;
            return { inputs: wrapSecrets(checked as Record<string, unknown>, withSecretFileValues(plain.paths, checked)) };
        }
        return { inputs: wrapSecrets(given, withSecretFileValues(plain.paths, given)) };
    }

    async diff(_id: string, urn: string, olds: Record<string, unknown>, news: Record<string, unknown>): Promise<provider.DiffResult> {
        if (isHook(urn)) return this.hooks.diff(olds, news);
        const old = unwrapSecrets<Record<string, unknown>>(olds);
        const next = unwrapSecrets<Record<string, unknown>>(news);
        olds = old.value;
        news = next.value;
        // Inputs not known yet (check said so): whatever they become, the host is deployed again.
        if (unknownKeys(news).length > 0) return { changes: true, replaces: [], deleteBeforeReplace: false };
        // Never a replacement: a server is updated in place, not deleted and recreated.
        // A value that became secret is a change too: the update records it encrypted.
        const changed = [...changedKeys(olds, news), ...newlySecretKeys(old.paths, next.paths)];
        const converge = convergenceKeys(olds, news);
        if (converge.length > 0) {
            await this.options.logger.log(
                "warning",
                urn,
                `${String(news.name)}: the host's ${converge.map((key) => (key === "profileStorePath" ? `system profile (${String(olds.profileStorePath)})` : `running system (${String(olds.runningStorePath)})`)).join(" and ")} ` +
                    `is not the configured ${String(news.storePath)}: this update makes them agree`,
            );
        }
        const undone = undoneRollback(olds, news);
        if (undone) await this.options.logger.log("warning", urn, undoWarning(String(news.name), stackOfUrn(urn), undone, news));
        const secretFiles = secretFileChanges(olds as Pick<HostInputs, "secrets">, news as Pick<HostInputs, "secrets">);
        if (secretFiles.length > 0) {
            await this.options.logger.log("info", urn, `${String(news.name)}: secret files to write: ${secretFiles.join(", ")}`);
        }
        const diffs = [...new Set([...changed, ...converge])];
        const parsed = hostInputsSchema.safeParse(news);
        if (parsed.success) this.noteBuild(parsed.data, diffs.length > 0);
        if (diffs.length > 0 && olds.storePath !== news.storePath && parsed.success) await this.showPlan(urn, recordedSide(olds), parsed.data, olds as RecordedBoot);
        return { changes: diffs.length > 0, replaces: [], deleteBeforeReplace: false };
    }

    /** The engine has looked at this host; when it changes, its update builds its system here (SharedBuilder). */
    private noteBuild(inputs: HostInputs, changes: boolean): void {
        this.builder.note(inputs.name, changes && inputs.buildOn === "local" && !inputs.buildHost && inputs.drvPath ? inputs.drvPath : undefined);
    }

    /**
     * A preview's diff waits for the host's plan. An update's does not: the engine diffs the run's
     * hosts one after another and the build they share starts once all are diffed, so the plan's
     * Nix queries run after that, beside the build; the host's deploy logs its lines after the plan's.
     */
    private async showPlan(urn: string, old: PlanSide | undefined, inputs: HostInputs, recorded?: RecordedBoot): Promise<void> {
        if (this.runKind !== "update") return this.logPlan(urn, old, inputs, recorded);
        // Its Nix queries wait until the engine has diffed the run's other hosts (one after another).
        const logged = this.builder.settled(inputs.buildGroup ?? []).then(() => this.updatePlans.run(() => this.logPlan(urn, old, inputs, recorded)));
        this.planLogs.set(urn, logged.catch(() => undefined));
    }

    /** Logs the host's plan (package changes, builds, copies) to its row; a plan that cannot be made never fails the diff. */
    private async logPlan(urn: string, old: PlanSide | undefined, inputs: HostInputs, recorded?: RecordedBoot): Promise<void> {
        let text: string;
        const runner = this.planRunner();
        try {
            // The booted side as the state recorded it: a preview connects to no host.
            const booted = await recordedBootedSide(runner, recorded);
            const plan = await planHost(runner, {
                old,
                new: { storePath: inputs.storePath, drvPath: inputs.drvPath },
                buildOn: inputs.buildOn,
                ...(inputs.buildHost ? { buildHost: inputs.buildHost.name } : {}),
                booted,
                // An update builds and copies right after this: it does not count them first.
                duringUpdate: this.runKind === "update",
            }, { packageCache: this.options.packageCache });
            text = [`${inputs.name}: plan`, ...formatPlan(plan, "  ")].join("\n");
        } catch (error) {
            text = `${inputs.name}: plan: unknown (${error instanceof Error ? error.message : String(error)})`;
        }
        await this.options.logger.log("info", urn, text);
    }

    /**
     * The runner of a plan's Nix queries: each ends after PLAN_QUERY_MS, and at once when the
     * engine cancels the run (Ctrl-C); the plan then says which query did not answer. In an update
     * the host's deploy waits for its plan (its lines come after it), so a stuck nix-daemon cannot
     * hold a deployed host's result; a preview waits for its plans in its diffs, so it cannot hang
     * on one either.
     */
    private planRunner(): ProcessRunner {
        const signal = this.cancellation.signal;
        return (argv, options = {}) =>
            this.options.runner(argv, { ...options, timeoutMs: Math.min(options.timeoutMs ?? PLAN_QUERY_MS, PLAN_QUERY_MS), signal: options.signal ?? signal });
    }

    private async deploy(urn: string, inputs: HostInputs, old: HostOutputs | undefined, secrets: readonly string[], paths: readonly PropertyPath[]): Promise<HostOutputs> {
        const logger = maskingLogger(this.options.logger, secrets);
        // After the host's plan, when the update's diff left it to be logged meanwhile (showPlan).
        let logged = this.planLogs.get(urn) ?? Promise.resolve();
        this.planLogs.delete(urn);
        const log = (message: string) => {
            logged = logged.then(() => logger.log("info", urn, `${inputs.name}: ${message}`, true)).catch(() => undefined);
        };
        try {
            // The recorded history is what rollback can reach; cleanup keeps exactly those generations.
            const kept = trimHistory(old?.history ?? [], historyLimit(inputs) - 1);
            const request = { ...deployRequestOf(inputs, old), protectedStorePaths: kept.map((entry) => entry.storePath) };
            const outcome = await deployHost(request, {
                runner: this.options.runner,
                runtimeDir: this.runtimeDir,
                log,
                build: (drvPath, host, started, signal) => this.builder.build(drvPath, host, inputs.buildGroup ?? [], started, signal),
                cancelled: this.cancellation.signal,
            });
            await logged;
            const outputs = outputsAfterDeploy(inputs, outcome, old);
            const from = old?.generation ?? outcome.before.generation;
            await logger.log(
                "info",
                urn,
                outcome.activated
                    ? `${inputs.name}: ${inputs.action} done, generation ${from ?? "-"} → ${outputs.generation ?? "-"}, ${inputs.buildHost && outcome.builtOn ? `built on ${outcome.builtOn}, ` : ""}copied ${outcome.copy.pathsCopied} paths (${outcome.copy.bytesCopied} bytes)`
                    : `${inputs.name}: already running ${inputs.storePath}`,
            );
            if (outputs.rebootNeeded) await logger.log("warning", urn, `${inputs.name}: reboot needed (${outputs.rebootNeeded}); ${notRebootedBecause(inputs.reboot ?? "never", inputs.action)}`);
            return outputs;
        } catch (error) {
            await logged;
            // The engine shows this text as the host's error; the state keeps its previous value,
            // except after an activation whose reboot failed: the state then records what is known.
            const text = maskSecrets(`${formatError(error)}${rolloutConsequence(inputs, error)}`, secrets);
            if (error instanceof DeployedUnchecked) {
                const outputs = outputsAfterDeploy(inputs, error.partial, old, error);
                // The SDK sends an error with id and properties as a partial failure: the engine
                // records these outputs, marks the host failed, and updates it again next time.
                throw Object.assign(new Error(text), { id: inputs.name, properties: wrapSecrets(outputs, paths), reasons: [text] });
            }
            throw new Error(text);
        }
    }

    async create(urn: string, news: Record<string, unknown>): Promise<provider.CreateResult> {
        if (isHook(urn)) return this.hooks.create(urn, news);
        const plain = unwrapSecrets(news);
        const inputs = hostInputsSchema.parse(plain.value);
        const outs = await this.deploy(urn, inputs, undefined, plain.texts, plain.paths);
        // The engine keeps an output secret only when it comes back wrapped.
        return { id: inputs.name, outs: wrapSecrets(outs, plain.paths) };
    }

    async update(_id: string, urn: string, olds: Record<string, unknown>, news: Record<string, unknown>): Promise<provider.UpdateResult> {
        if (isHook(urn)) return this.hooks.update(urn, olds, news);
        const plain = unwrapSecrets(news);
        const old = unwrapSecrets<HostOutputs>(olds);
        const inputs = hostInputsSchema.parse(plain.value);
        const outs = await this.deploy(urn, inputs, old.value, [...plain.texts, ...old.texts], plain.paths);
        return { outs: wrapSecrets(outs, plain.paths) };
    }

    private now(): string {
        return this.options.now?.() ?? new Date().toISOString();
    }

    /**
     * The engine cancels the update (the operator's first Ctrl-C): deploys under way finish, except
     * a reboot's wait, which ends at once with its outcome unknown (recorded in the state), instead
     * of holding the run for up to rebootTimeout.
     */
    async cancel(): Promise<void> {
        this.cancellation.abort();
    }

    async read(id: string, urn: string, props?: Record<string, unknown>): Promise<provider.ReadResult> {
        // A hook has nothing on the host to read back.
        if (isHook(urn)) return { id, props };
        // `pulumi import` sends no properties: adopt the running host.
        if (!props || props.name === undefined) return this.adopt(id, urn);
        const recorded = unwrapSecrets<HostOutputs>(props);
        const old = recorded.value;
        const logger = maskingLogger(this.options.logger, recorded.texts);
        const secretFiles = Object.entries(old.secrets ?? {});
        let state: Awaited<ReturnType<typeof inspectHost>>;
        try {
            state = await inspectHost(
                sshTargetOf(old),
                { runner: this.options.runner, runtimeDir: this.runtimeDir },
                secretFiles.map(([, file]) => file.path),
            );
        } catch (error) {
            // One host down must not stop the refresh of the others: its recorded state is kept,
            // marked unreachable, and named in a warning and an error (see docs/operations: refresh).
            const text = maskSecrets(formatError(error), recorded.texts);
            await logger.log("warning", urn, unreachableWarning(old, text));
            await logger.log("error", urn, `${old.name}: not refreshed: unreachable (its recorded state is kept)`);
            const outputs = wrapSecrets(outputsWhenUnreachable(old, text, this.now()), recorded.paths);
            return { id, props: outputs, inputs: pickInputs(outputs as unknown as Record<string, unknown>) };
        }
        try {
            const { missingSecrets, ...hostState } = state;
            const read = withoutMissingSecrets(outputsAfterRead(old, hostState, this.now()), missingSecrets);
            // A reboot outside nixos-fleet (or none yet) changes whether one is still needed.
            const { rebootNeeded: _recorded, ...rest } = read;
            const need = await rebootNeedAfterRead(this.options.runner, old, read);
            const outputs: HostOutputs = need === undefined ? rest : { ...rest, rebootNeeded: need };
            if (missingSecrets.length > 0) {
                const names = secretFiles.filter(([, file]) => missingSecrets.includes(file.path)).map(([name, file]) => `${name} (${file.path})`);
                await logger.log(
                    "warning",
                    urn,
                    `${old.name}: secret file(s) missing on the host: ${names.join(", ")} (a reboot empties /run/keys); the state no longer records them, so the next \`pulumi up\` writes them again`,
                );
            }
            if (outputs.storePath !== old.storePath || outputs.generation !== old.generation) {
                await logger.log(
                    "warning",
                    urn,
                    `${old.name}: drift: the stack recorded generation ${old.generation ?? "-"} (${old.storePath}), the host runs generation ${outputs.generation ?? "-"} (${outputs.storePath}); the next \`pulumi up\` deploys the configured system again`,
                );
            }
            const mismatch = profileMismatch(hostState, old.action);
            if (mismatch) await logger.log("warning", urn, `${old.name}: ${mismatch}`);
            const props = wrapSecrets(outputs, recorded.paths);
            return { id, props, inputs: pickInputs(props as unknown as Record<string, unknown>) };
        } catch (error) {
            throw new Error(maskSecrets(formatError(error), recorded.texts));
        }
    }

    /** `pulumi import nixos:index:Host <name> <name>`: records what the host runs; activates nothing. */
    private async adopt(id: string, urn: string): Promise<provider.ReadResult> {
        try {
            const name = resourceNameOf(urn);
            if (!this.options.configuredInputs) throw new Error("this provider cannot import hosts (no stack config reader)");
            const configured = await this.options.configuredInputs(stackOfUrn(urn), id, name);
            const state = await inspectHost(sshTargetOf({ ...configured, storePath: "" } as HostInputs), { runner: this.options.runner, runtimeDir: this.runtimeDir });
            const outputs = adoptedOutputs(configured, state, this.now());
            await this.options.logger.log(
                "info",
                urn,
                `${id}: adopted: it runs generation ${outputs.generation ?? "-"} (${outputs.storePath}); recorded without activating anything`,
            );
            return { id, props: outputs, inputs: pickInputs(outputs as unknown as Record<string, unknown>) };
        } catch (error) {
            throw new Error(formatError(error));
        }
    }

    async delete(_id: string, urn: string, props: Record<string, unknown>): Promise<void> {
        if (isHook(urn)) return;
        // A fleet tool never wipes a machine because it left a stack.
        await this.options.logger.log(
            "warning",
            urn,
            `${String(props.name)}: removed from the stack only; the server keeps running generation ${String(props.generation ?? "-")} untouched`,
        );
    }
}
