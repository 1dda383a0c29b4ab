// One host's deploy, phase by phase as colmena keeps them apart:
//   build (here, or on the host) → connect → copy → activate (with restore on failure) → verify.
// Each phase is timed; any failure is a FleetError naming the host and the phase.
import type { ProcessRunner } from "../process/runner";
import { SshConnection } from "../ssh/connection";
import type { SshTarget } from "../ssh/target";
import { buildLocally, buildOnHost, sendFlake } from "../nix/build";
import { copyClosure, type CopyResult } from "../nix/copy";
import { FleetError } from "../errors";
import { activate, changesRunningSystem, restorePrevious, setsProfile, type Action } from "./activate";
import { readHostState, type HostState } from "./hostState";
import { findGeneration } from "./pinned";
import { armWatchdog, confirmOrAwaitRevert, disarm, needsConfirmation } from "./confirm";
import { join } from "node:path";
import { cleanupGenerations, type CleanupPolicy } from "./cleanup";
import { formatHealthFailures, runHealthChecks, summarizeHealthFailures } from "./healthChecks";
import type { HealthChecks } from "../config/healthChecks";

export interface DeployRequest {
    target: SshTarget;
    storePath: string;
    /** Absent for a pinned host (rollback): the store path is not built from the configuration. */
    drvPath?: string;
    /** Set for a rollback: the generation that held storePath when it was deployed. */
    pinnedGeneration?: number;
    flake: string;
    attribute: string;
    buildOn: "local" | "target";
    action: Action;
    substituteOnDestination: boolean;
    /** Seconds the host waits for a confirmation over a new connection before reverting itself; 0 or absent disables. */
    confirmTimeout?: number;
    /** Checks that must pass after activation, or the host is restored. */
    healthChecks?: HealthChecks;
    /** Old generations to delete after a successful deploy. */
    cleanup?: CleanupPolicy;
    /** Store paths the stack's recorded history points to: their generations are never deleted. */
    protectedStorePaths?: string[];
}

export interface DeployContext {
    runner: ProcessRunner;
    /** Private directory for control sockets. */
    runtimeDir: string;
    log?: (message: string) => void;
}

export type PhaseName = "build" | "connect" | "copy" | "activate" | "confirm" | "verify";

export interface DeployOutcome {
    before: HostState;
    after: HostState;
    copy: CopyResult;
    /** False when the host already ran the wanted system, so nothing was activated. */
    activated: boolean;
    activatedAt: string;
    timings: Partial<Record<PhaseName, number>>;
    sshHandshakes: number;
}

const NOTHING_COPIED: CopyResult = { pathsCopied: 0, bytesCopied: 0, closurePaths: 0, closureBytes: 0 };

/** True when the host already is where the action would put it. */
export function alreadyDeployed(state: HostState, storePath: string, action: Action): boolean {
    if (action === "dry-activate") return false;
    if (setsProfile(action) && state.profileStorePath !== storePath) return false;
    if (changesRunningSystem(action) && state.currentStorePath !== storePath) return false;
    return true;
}

async function timed<T>(timings: DeployOutcome["timings"], phase: PhaseName, work: () => Promise<T>): Promise<T> {
    const started = Date.now();
    try {
        return await work();
    } finally {
        timings[phase] = (timings[phase] ?? 0) + (Date.now() - started);
    }
}

export async function deployHost(request: DeployRequest, context: DeployContext): Promise<DeployOutcome> {
    const { runner } = context;
    const name = request.target.name;
    const log = context.log ?? (() => undefined);
    const timings: DeployOutcome["timings"] = {};
    const connection = new SshConnection(request.target, { runner, runtimeDir: context.runtimeDir });
    try {
        const pinned = request.drvPath === undefined;
        if (request.buildOn === "local" && request.drvPath !== undefined) {
            const drvPath = request.drvPath;
            log(`build ${request.storePath}`);
            await timed(timings, "build", () => buildLocally(runner, drvPath, name));
        }
        log("connect");
        const before = await timed(timings, "connect", async () => {
            await connection.open();
            return readHostState(connection);
        });

        let copy = NOTHING_COPIED;
        let switchToGeneration: number | undefined;
        if (pinned) {
            // Rollback: switch to the generation if the host still has it, else copy the path again.
            switchToGeneration = await findGeneration(connection, request.storePath, request.pinnedGeneration);
            if (switchToGeneration !== undefined) {
                log(`generation ${switchToGeneration} still holds ${request.storePath}: switching to it, nothing to copy`);
            } else {
                log(`no generation on the host holds ${request.storePath} any more: copying it again`);
                copy = await timed(timings, "copy", () => copyPinned(connection, request, runner, log));
            }
        } else if (request.buildOn === "local") {
            copy = await timed(timings, "copy", () =>
                copyClosure(connection, request.storePath, {
                    runner,
                    substituteOnDestination: request.substituteOnDestination,
                    onProgress: log,
                }),
            );
            log(`copy: ${copy.pathsCopied} of ${copy.closurePaths} paths, ${copy.bytesCopied} bytes`);
        } else {
            const built = await timed(timings, "build", async () => {
                log(`send flake ${request.flake}`);
                const flakePath = await sendFlake(runner, connection, request.flake);
                log("build on the host");
                return buildOnHost(connection, flakePath, request.attribute);
            });
            if (built !== request.storePath) {
                throw new FleetError({
                    phase: "build",
                    host: name,
                    message: `the host built ${built}, but the evaluation here gave ${request.storePath}`,
                    hint: "the flake evaluates differently on the host (impure inputs?); deploy with buildOn: local",
                });
            }
        }

        if (alreadyDeployed(before, request.storePath, request.action)) {
            log("already running this system: nothing to activate");
            return { before, after: before, copy, activated: false, activatedAt: new Date().toISOString(), timings, sshHandshakes: connection.handshakes };
        }
        const confirmTimeout = request.confirmTimeout ?? 0;
        const watchdog = needsConfirmation(request.action, confirmTimeout)
            ? await armWatchdog(connection, before, request.action, confirmTimeout)
            : undefined;
        log(`activate (${request.action})${watchdog ? `, automatic rollback unless confirmed within ${confirmTimeout}s` : ""}`);
        const activation = await timed(timings, "activate", async () => {
            try {
                return await activate(connection, request.storePath, request.action, before, { switchToGeneration });
            } catch (error) {
                // Restored (or restoring) already: the watchdog must not act on top of that.
                if (watchdog) await disarm(connection, watchdog).catch(() => undefined);
                throw error;
            }
        });
        if (watchdog) {
            await timed(timings, "confirm", () =>
                confirmOrAwaitRevert(request.target, before, watchdog, { runner, runtimeDir: join(context.runtimeDir, "confirm"), log }),
            );
            log("confirmed over a new connection");
        }
        if (request.healthChecks) {
            const checks = request.healthChecks;
            await timed(timings, "verify", () => verifyHealth(connection, request, checks, before, runner, log));
        }
        if (request.cleanup) await cleanupAfterDeploy(connection, request, log);
        return {
            before,
            after: activation.after,
            copy,
            activated: true,
            activatedAt: new Date().toISOString(),
            timings,
            sshHandshakes: connection.handshakes,
        };
    } finally {
        await connection.close().catch(() => undefined);
    }
}

/** Runs the host's health checks; failing ones restore the previous system unless keepGoing. */
async function verifyHealth(
    connection: SshConnection,
    request: DeployRequest,
    checks: HealthChecks,
    before: HostState,
    runner: ProcessRunner,
    log: (m: string) => void,
): Promise<void> {
    log("health checks");
    const report = await runHealthChecks(connection, checks, { runner, address: request.target.address, log });
    if (report.healthy) {
        log(`health checks passed (${report.results.length})`);
        return;
    }
    const summary = summarizeHealthFailures(report);
    if (checks.keepGoing) {
        log(`warning: ${summary}; keepGoing is set, so the host stays on the new system`);
        return;
    }
    const restored = await restorePrevious(connection, before, request.action);
    const back = before.generation !== undefined ? `generation ${before.generation}` : "the state before the deploy";
    throw new FleetError({
        phase: "verify",
        host: request.target.name,
        message: `${summary}; the host was restored to ${back}${restored.length ? ` (${restored.join(", ")})` : ""}`,
        hint: "fix what the failing checks show, or set healthChecks.keepGoing to accept the new system anyway",
        detail: formatHealthFailures(report),
    });
}

/** Deletes old generations; a failure here is reported but never fails the deploy that worked. */
async function cleanupAfterDeploy(connection: SshConnection, request: DeployRequest, log: (m: string) => void): Promise<void> {
    try {
        const result = await cleanupGenerations(
            connection,
            request.cleanup!,
            { storePaths: [...(request.protectedStorePaths ?? []), request.storePath] },
            { log },
        );
        if (result.deleted.length || result.gc) {
            log(`cleanup: deleted generations ${result.deleted.join(", ") || "none"}${result.gc ? `, garbage collected (${result.gc.freed ?? "freed: unknown"})` : ""}`);
        }
    } catch (error) {
        log(`warning: ${error instanceof Error ? error.message : String(error)} (the deploy itself succeeded)`);
    }
}

async function copyPinned(connection: SshConnection, request: DeployRequest, runner: ProcessRunner, log: (m: string) => void): Promise<CopyResult> {
    try {
        return await copyClosure(connection, request.storePath, { runner, substituteOnDestination: request.substituteOnDestination, onProgress: log });
    } catch (error) {
        if (error instanceof FleetError && /not in the local store/.test(error.message)) {
            throw new FleetError({
                phase: "copy",
                host: request.target.name,
                message: `cannot roll back to ${request.storePath}: the host no longer has it (garbage-collected) and it is not in the local store either`,
                hint: "roll back to a later deployment, or remove the pin (rollback --clear) and deploy the configuration",
            });
        }
        throw error;
    }
}

/** Reads a host's state over a short-lived connection (for `pulumi refresh`). */
export async function inspectHost(target: SshTarget, context: DeployContext): Promise<HostState> {
    const connection = new SshConnection(target, { runner: context.runner, runtimeDir: context.runtimeDir });
    try {
        await connection.open();
        return await readHostState(connection);
    } finally {
        await connection.close().catch(() => undefined);
    }
}
