// The nixos:index:Host provider: check, diff, create/update (deploy), read (refresh), delete.
// The stack records only what really happened: a failed deploy throws, and the engine keeps the
// previous state for that host.
import type * as provider from "@pulumi/pulumi/provider";
import { deployHost, inspectHost, type DeployOutcome } from "../deploy/deployHost";
import { changesRunningSystem, setsProfile } from "../deploy/activate";
import { stepOf, trimHistory } from "../deploy/deployments";
import type { HostState } from "../deploy/hostState";
import { formatError } from "../errors";
import type { ProcessRunner } from "../process/runner";
import { makeRuntimeDir } from "../process/runtimeDir";
import type { EngineLogger } from "./engineLog";
import { HOOK_TYPE, HookProvider } from "./hookProvider";
import { adoptedOutputs, type ConfiguredInputs } from "./adopt";
import { outputsWhenUnreachable, rollbackMarkAfterDeploy, stackOfUrn, undoWarning, undoneRollback, unreachableWarning } from "./hostMarks";
import {
    DIFF_KEYS,
    HISTORY_LIMIT,
    deployRequestOf,
    hostInputsSchema,
    pickInputs,
    sshTargetOf,
    type DeploymentRecord,
    type HostInputs,
    type HostOutputs,
} from "./hostInputs";

export const HOST_TYPE = "nixos:index:Host";

/** The resource type in a URN (urn:pulumi:stack::project::[parent$]…type::name). */
export function resourceTypeOf(urn: string): string {
    const parts = urn.split("::");
    return (parts[parts.length - 2] ?? "").split("$").pop() ?? "";
}

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

export function outputsAfterDeploy(inputs: HostInputs, outcome: DeployOutcome, old?: Partial<HostOutputs>): HostOutputs {
    const { after, before } = outcome;
    const generation = after.generation ?? null;
    const previous = old?.history ?? [];
    const record = deploymentRecord(inputs, generation, outcome.activatedAt, previous);
    const unchanged = previous[0] && previous[0].storePath === record.storePath && previous[0].generation === record.generation;
    const history = trimHistory(unchanged ? previous : [record, ...previous], historyLimit(inputs));
    return {
        ...inputs,
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
        lastDeploy: {
            activated: outcome.activated,
            generationBefore: before.generation ?? null,
            generationAfter: generation,
            pathsCopied: outcome.copy.pathsCopied,
            bytesCopied: outcome.copy.bytesCopied,
            timings: { ...outcome.timings },
        },
    };
}

/** Outputs after `pulumi refresh`: what the host really runs replaces what the stack believed. */
export function outputsAfterRead(old: HostOutputs, state: HostState, now: string = new Date().toISOString()): HostOutputs {
    const actual = deployedStorePath(state, old.action);
    return {
        ...old,
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

/** The warning for a host deployed without host-key checking, or undefined. */
export function insecureHostWarning(inputs: Pick<HostInputs, "name" | "address" | "insecureSkipHostKeyCheck">): string | undefined {
    if (!inputs.insecureSkipHostKeyCheck) return undefined;
    return (
        `${inputs.name}: insecureSkipHostKeyCheck is true: ssh accepts any host key for ${inputs.address}, so anyone on the network path ` +
        "can impersonate the host and receive its system and secrets; pin hostKey or set knownHostsFile instead"
    );
}

export class HostProvider implements provider.Provider {
    readonly version: string;
    private readonly options: HostProviderOptions;
    private runtimeDirCache?: string;

    private readonly hooks: HookProvider;

    constructor(options: HostProviderOptions) {
        this.options = options;
        this.version = options.version;
        this.hooks = new HookProvider({ runner: options.runner, logger: options.logger, runtimeDir: () => this.runtimeDir });
    }

    private get runtimeDir(): string {
        // Short path: it holds unix sockets (~100-byte limit).
        // Removed when the provider exits, also on the engine's SIGINT/SIGTERM (src/process/runtimeDir.ts).
        this.runtimeDirCache ??= this.options.runtimeDir ?? makeRuntimeDir();
        return this.runtimeDirCache;
    }

    async check(urn: string, _olds: unknown, news: Record<string, unknown>): Promise<provider.CheckResult> {
        if (isHook(urn)) return this.hooks.check(news);
        const parsed = hostInputsSchema.safeParse(news);
        if (parsed.success) {
            // check runs at every preview and up: a host without host-key checking is never quiet.
            const warning = insecureHostWarning(parsed.data);
            if (warning) await this.options.logger.log("warning", urn, warning);
            return { inputs: news };
        }
        return {
            failures: parsed.error.issues.map((issue) => ({
                property: issue.path.join(".") || "(inputs)",
                reason: issue.message,
            })),
        };
    }

    async diff(_id: string, urn: string, olds: Record<string, unknown>, news: Record<string, unknown>): Promise<provider.DiffResult> {
        if (isHook(urn)) return this.hooks.diff(olds, news);
        // Never a replacement: a server is updated in place, not deleted and recreated.
        const changed = changedKeys(olds, news);
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
        const diffs = [...new Set([...changed, ...converge])];
        return { changes: diffs.length > 0, replaces: [], deleteBeforeReplace: false };
    }

    private async deploy(urn: string, inputs: HostInputs, old?: HostOutputs): Promise<HostOutputs> {
        const log = (message: string) => void this.options.logger.log("info", urn, `${inputs.name}: ${message}`, true);
        try {
            // The recorded history is what rollback can reach; cleanup keeps exactly those generations.
            const kept = trimHistory(old?.history ?? [], historyLimit(inputs) - 1);
            const request = { ...deployRequestOf(inputs), protectedStorePaths: kept.map((entry) => entry.storePath) };
            const outcome = await deployHost(request, {
                runner: this.options.runner,
                runtimeDir: this.runtimeDir,
                log,
            });
            const outputs = outputsAfterDeploy(inputs, outcome, old);
            const from = old?.generation ?? outcome.before.generation;
            await this.options.logger.log(
                "info",
                urn,
                outcome.activated
                    ? `${inputs.name}: ${inputs.action} done, generation ${from ?? "-"} → ${outputs.generation ?? "-"}, copied ${outcome.copy.pathsCopied} paths (${outcome.copy.bytesCopied} bytes)`
                    : `${inputs.name}: already running ${inputs.storePath}`,
            );
            return outputs;
        } catch (error) {
            // The engine shows this text as the host's error; the state keeps its previous value.
            throw new Error(formatError(error));
        }
    }

    async create(urn: string, news: Record<string, unknown>): Promise<provider.CreateResult> {
        if (isHook(urn)) return this.hooks.create(urn, news);
        const inputs = hostInputsSchema.parse(news);
        const outs = await this.deploy(urn, inputs);
        return { id: inputs.name, outs };
    }

    async update(_id: string, urn: string, olds: Record<string, unknown>, news: Record<string, unknown>): Promise<provider.UpdateResult> {
        if (isHook(urn)) return this.hooks.update(urn, news);
        const inputs = hostInputsSchema.parse(news);
        const outs = await this.deploy(urn, inputs, olds as unknown as HostOutputs);
        return { outs };
    }

    private now(): string {
        return this.options.now?.() ?? new Date().toISOString();
    }

    async read(id: string, urn: string, props?: Record<string, unknown>): Promise<provider.ReadResult> {
        // A hook has nothing on the host to read back.
        if (isHook(urn)) return { id, props };
        // `pulumi import` sends no properties: adopt the running host.
        if (!props || props.name === undefined) return this.adopt(id, urn);
        const old = props as unknown as HostOutputs;
        let state: HostState;
        try {
            state = await inspectHost(sshTargetOf(old), { runner: this.options.runner, runtimeDir: this.runtimeDir });
        } catch (error) {
            // One host down must not stop the refresh of the others: its recorded state is kept,
            // marked unreachable, and named in a warning and an error (see docs/operations: refresh).
            const text = formatError(error);
            await this.options.logger.log("warning", urn, unreachableWarning(old, text));
            await this.options.logger.log("error", urn, `${old.name}: not refreshed: unreachable (its recorded state is kept)`);
            const outputs = outputsWhenUnreachable(old, text, this.now());
            return { id, props: outputs, inputs: pickInputs(outputs as unknown as Record<string, unknown>) };
        }
        try {
            const outputs = outputsAfterRead(old, state, this.now());
            if (outputs.storePath !== old.storePath || outputs.generation !== old.generation) {
                await this.options.logger.log(
                    "warning",
                    urn,
                    `${old.name}: drift: the stack recorded generation ${old.generation ?? "-"} (${old.storePath}), the host runs generation ${outputs.generation ?? "-"} (${outputs.storePath}); the next \`pulumi up\` deploys the configured system again`,
                );
            }
            const mismatch = profileMismatch(state, old.action);
            if (mismatch) await this.options.logger.log("warning", urn, `${old.name}: ${mismatch}`);
            return { id, props: outputs, inputs: pickInputs(outputs as unknown as Record<string, unknown>) };
        } catch (error) {
            throw new Error(formatError(error));
        }
    }

    /** `pulumi import nixos:index:Host <name> <name>`: records what the host runs; activates nothing. */
    private async adopt(id: string, urn: string): Promise<provider.ReadResult> {
        try {
            const name = urn.slice(urn.lastIndexOf("::") + 2);
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
