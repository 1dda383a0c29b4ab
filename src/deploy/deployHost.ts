// One host's deploy, phase by phase as colmena keeps them apart:
//   build (here, or on the host) → connect → copy → activate (with restore on failure) → verify.
//   The SSH handshake starts with the build and is awaited after it.
// Each phase is timed; any failure is a FleetError naming the host and the phase.
import type { ProcessRunner } from "../process/runner";
import { SshConnection } from "../ssh/connection";
import { EarlyHandshake } from "./earlyHandshake";
import type { SshTarget } from "../ssh/target";
import { buildLocally, buildOnHost, sendFlake } from "../nix/build";
import { buildOnBuildHost, copyFromBuildHost } from "../nix/buildHost";
import { copyClosure, type CopyResult } from "../nix/copy";
import { FleetError, tail } from "../errors";
import { activate, changesRunningSystem, checkReadyToActivate, restorePrevious, setsProfile, type Action, type ActivationResult } from "./activate";
import { activationUnit, removeUnit } from "./activationUnit";
import { readHostState, type HostState } from "./hostState";
import { findGeneration } from "./pinned";
import { armWatchdog, awaitWatchdogRevert, claim, confirmOrAwaitRevert, needsConfirmation, newToken, type Watchdog } from "./confirm";
import { join } from "node:path";
import { cleanupGenerations, type CleanupPolicy } from "./cleanup";
import { formatHealthFailures, runHealthChecks, summarizeHealthFailures } from "./healthChecks";
import { hasChecks, type HealthChecks } from "../config/healthChecks";
import { missingSecretPaths, removeSecrets, uploadSecrets, type NamedSecretFile } from "./secrets";
import { HOST_DEFAULTS, type RebootPolicy } from "../config/hostFields";
import { BOOTED_SYSTEM, RebootFailed, changedBootLinks, describeNeed, notRebootedBecause, readBootFiles, rebootHost, rebootNeeded, shouldReboot, type BootFiles, type RebootAttempt, type RebootNeed, type RebootResult } from "./reboot";

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
    /** Another host that builds the system (buildHost); the closure goes from there to this host. */
    buildHost?: SshTarget;
    action: Action;
    substituteOnDestination: boolean;
    /** Seconds the host waits, after the activation ended, for a confirmation over a new connection before reverting itself; 0 or absent disables. */
    confirmTimeout?: number;
    /** Seconds to keep trying to reach a host whose connection dropped during activation (default 60). */
    reconnectTimeout?: number;
    /** Checks that must pass after activation, or the host is restored. */
    healthChecks?: HealthChecks;
    /** Old generations to delete after a successful deploy. */
    cleanup?: CleanupPolicy;
    /** Store paths the stack's recorded history points to: their generations are never deleted. */
    protectedStorePaths?: string[];
    /** Secret files to write (all of them, each deploy): before or after activation, as each says. */
    secrets?: NamedSecretFile[];
    /** Recorded secret files no longer configured: deleted from the host after a successful deploy. */
    removedSecrets?: { name: string; path: string }[];
    /** When to reboot after the activation (deploy/reboot.ts); default never. */
    reboot?: RebootPolicy;
    /** Seconds a reboot may take until the new boot answers (default: HOST_DEFAULTS.rebootTimeout). */
    rebootTimeout?: number;
}

export interface DeployContext {
    runner: ProcessRunner;
    /** Private directory for control sockets. */
    runtimeDir: string;
    log?: (message: string) => void;
    /** Waits between reconnect attempts and for the watchdog; injectable so unit tests need not wait. */
    sleep?: (ms: number) => Promise<void>;
    /**
     * Realises the system's derivation here (buildOn: local); says how many systems shared the build.
     * The provider passes its SharedBuilder (nix/sharedBuild.ts); default: this host's own build.
     * `signal` aborts when the deploy no longer needs the system (its handshake failed for good):
     * a build of this host's system alone is then stopped.
     */
    build?: (drvPath: string, host: string, started?: () => void, signal?: AbortSignal) => Promise<{ systems: number }>;
    /** Aborted when the engine cancels the update (Ctrl-C): a reboot's wait ends at once, its outcome unknown. */
    cancelled?: AbortSignal;
}

export type PhaseName = "build" | "connect" | "copy" | "secrets" | "activate" | "confirm" | "verify" | "reboot";

/** What the deploy learned about rebooting: whether the host needs one, and the reboot it made. */
export interface RebootReport {
    /** Why the host must reboot to run the deployed system fully; undefined when it need not; null when unknown. */
    need: RebootNeed | null;
    rebooted?: RebootResult;
    /** A reboot that failed or did not come back: what is known of it. */
    attempt?: RebootAttempt;
}

export interface DeployOutcome {
    before: HostState;
    after: HostState;
    copy: CopyResult;
    /** False when the host already ran the wanted system, so nothing was activated. */
    activated: boolean;
    activatedAt: string;
    timings: Partial<Record<PhaseName, number>>;
    sshHandshakes: number;
    /** Where the system was built: "local" (this machine), the host's or its build host's name; null when nothing was built (rollback). */
    builtOn?: string | null;
    reboot?: RebootReport;
}

/**
 * The deploy activated the system, then what came after it failed or cannot be known (a reboot
 * that did not come back, checks failing after it): `partial` says what is known, so the state can
 * record the activation and the unknown reboot instead of either "deployed" or nothing.
 */
export class DeployedUnchecked extends FleetError {
    constructor(
        error: FleetError,
        readonly partial: DeployOutcome,
    ) {
        super(error.toJSON());
    }
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

/**
 * A master opened with the build and unused for longer than this is checked before the host is
 * read: below it, neither ControlPersist (60 s) nor the keep-alives (3 × 5 s) can have ended it.
 */
const MASTER_RECHECK_MS = 10_000;

/** Each build-host connection gets its own directory: the build host may be deployed (or build) in the same run. */
let buildConnections = 0;

export async function deployHost(request: DeployRequest, context: DeployContext): Promise<DeployOutcome> {
    const { runner } = context;
    const name = request.target.name;
    const log = context.log ?? (() => undefined);
    const timings: DeployOutcome["timings"] = {};
    const connection = new SshConnection(request.target, { runner, runtimeDir: context.runtimeDir });
    let buildConnection: SshConnection | undefined;
    // The activation unit's removal, once started: it overlaps the boot files' read and is
    // awaited before health checks, a reboot and the connection's close (it never throws).
    let unitRemoval: Promise<void> = Promise.resolve();
    try {
        const pinned = request.drvPath === undefined;
        if (request.buildHost) {
            buildConnection = new SshConnection(request.buildHost, { runner, runtimeDir: join(context.runtimeDir, `b${++buildConnections}`) });
        }
        let builtOn: string | null = pinned ? null : request.buildOn === "target" ? name : "local";
        // The handshake runs while the system builds, not after it; a build shared with the run's
        // other hosts starts once the engine has diffed them all, and the handshake with it (its
        // CPU would slow the diffs). A failure that waiting cannot mend (a wrong host key, a
        // refused login) ends the deploy at once; any other gets a new attempt after the build
        // (earlyHandshake.ts). A failed build's close() stops a handshake still under way.
        const handshake = new EarlyHandshake(connection, log);
        if (buildConnection && request.drvPath !== undefined) {
            handshake.start();
            const [drvPath, build] = [request.drvPath, buildConnection];
            builtOn = build.target.name;
            log(`build ${request.storePath} on the build host ${builtOn}`);
            await timed(timings, "build", () => handshake.during(buildOnBuildHost(build, drvPath, request.storePath, { runner, host: name, log })));
        } else if (request.buildOn === "local" && request.drvPath !== undefined) {
            const drvPath = request.drvPath;
            log(`build ${request.storePath}`);
            const unwanted = new AbortController();
            const build =
                context.build ??
                (async (drv: string, host: string, started?: () => void, signal?: AbortSignal) => {
                    started?.();
                    await buildLocally(runner, drv, host, signal);
                    return { systems: 1 };
                });
            const built = await timed(timings, "build", () =>
                // This host's own build is stopped; a shared build goes on for the other hosts.
                handshake.during(build(drvPath, name, () => handshake.start(), unwanted.signal), () => unwanted.abort()),
            );
            if (built.systems > 1) log(`built in one nix-store --realise of ${built.systems} systems (the hosts updated in this run)`);
        }
        log("connect");
        await timed(timings, "connect", async () => {
            await handshake.finish();
            // A long build may have outlasted the master started with it (ssh/connection.ts).
            await connection.reopenIfEnded(MASTER_RECHECK_MS);
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
                copy = await timed(timings, "copy", () => copyPinned(connection, request, runner, log, buildConnection, context.runtimeDir));
            }
        } else if (buildConnection) {
            const build = buildConnection;
            copy = await timed(timings, "copy", () =>
                copyFromBuildHost(build, connection, request.storePath, {
                    runner,
                    host: name,
                    log,
                    runtimeDir: context.runtimeDir,
                    substituteOnDestination: request.substituteOnDestination,
                }),
            );
            log(`copy from ${build.target.name}: ${copy.pathsCopied} of ${copy.closurePaths} paths, ${copy.bytesCopied} bytes`);
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

        const confirmTimeout = request.confirmTimeout ?? 0;
        // What the host runs now, read once everything is on the host, right before activation:
        // another deploy may have activated while we built, copied or waited, and a restore must go
        // back to what really ran. Nothing on the host changes before this (a copy only adds to its
        // store). Except for a dry run, the preflight reads it: also before saying "already
        // running", since a watchdog of another deploy that is still armed could put its previous
        // generation back after we said so.
        const before = request.action === "dry-activate" ? await readHostState(connection) : await timed(timings, "activate", () => checkReadyToActivate(connection));
        // A dry run changes nothing on the host, secret files included.
        const secrets = request.action === "dry-activate" ? [] : (request.secrets ?? []);
        if (request.action === "dry-activate" && (request.secrets?.length || request.removedSecrets?.length)) {
            log("dry-activate: secret files are not written or deleted");
        }
        const removedSecrets = request.action === "dry-activate" ? [] : (request.removedSecrets ?? []);
        const preSecrets = secrets.filter((file) => file.uploadAt === "pre-activation");
        const postSecrets = secrets.filter((file) => file.uploadAt === "post-activation");
        // After the copy, before the new system starts (its services may read them at start).
        if (preSecrets.length) await timed(timings, "secrets", () => uploadSecrets(connection, name, preSecrets, log));
        if (alreadyDeployed(before, request.storePath, request.action)) {
            log("already running this system: nothing to activate");
            if (postSecrets.length || removedSecrets.length) {
                await timed(timings, "secrets", async () => {
                    await uploadSecrets(connection, name, postSecrets, log);
                    await removeSecrets(connection, name, removedSecrets, log);
                });
            }
            const unchanged: DeployOutcome = { before, after: before, copy, activated: false, activatedAt: new Date().toISOString(), timings, sshHandshakes: connection.handshakes, builtOn };
            return await rebootPhase(connection, request, unchanged, context);
        }
        const token = newToken();
        const watchdog = needsConfirmation(request.action, confirmTimeout)
            ? await armWatchdog(connection, before, request.action, confirmTimeout, token)
            : undefined;
        log(`activate (${request.action}) in ${activationUnit(token).unit}${watchdog ? `; automatic rollback unless confirmed within ${confirmTimeout}s after it ends` : ""}`);
        const restore: RestoreContext = { connection, request, before, watchdog, runner, runtimeDir: context.runtimeDir, log, sleep: context.sleep, token };
        let activation: ActivationResult;
        try {
            activation = await timed(timings, "activate", () =>
                activate(connection, request.storePath, request.action, before, {
                    token,
                    switchToGeneration,
                    log,
                    reconnectSeconds: request.reconnectTimeout,
                    sleep: context.sleep,
                }),
            );
        } catch (error) {
            // A FleetError that is not "unknown" means nothing was activated: the watchdog has
            // nothing to guard. Anything else may have left the activation running: the watchdog
            // stays armed (the host's only way back if the new system cut access), and the outcome
            // is unknown.
            if (error instanceof FleetError) {
                if (watchdog && error.outcome !== "unknown") await claim(connection, watchdog).catch(() => undefined);
                throw error;
            }
            throw new FleetError({
                phase: "activate",
                host: name,
                outcome: "unknown",
                message: `outcome unknown: the deployer failed during activation (${error instanceof Error ? error.message : String(error)})`,
                hint: `on the host, \`systemctl status ${activationUnit(token).unit}\` shows the activation; \`pulumi refresh\` records what the host runs`,
            });
        }
        if (watchdog) watchdog.activationEndedAt = Date.now();
        try {
            await finishActivation(activation, restore, request.healthChecks?.keepGoing ?? false);
            // After the activation (owners the new system creates exist now), before it is confirmed.
            if (postSecrets.length) await uploadAfterActivation(restore, postSecrets, timings);
            if (watchdog) {
                await timed(timings, "confirm", () =>
                    confirmOrAwaitRevert(request.target, before, watchdog, { runner, runtimeDir: join(context.runtimeDir, "confirm"), log, sleep: context.sleep }),
                );
                log("confirmed over a new connection");
            }
        } finally {
            // Only once the decision is made: until then the watchdog reads the unit's end from it.
            if (request.action !== "dry-activate") unitRemoval = removeUnit(connection, activationUnit(token));
        }
        const after = activation.kind === "switched" || activation.kind === "unitsFailed" ? activation.after : before;
        if (request.healthChecks && hasChecks(request.healthChecks)) {
            const checks = request.healthChecks;
            // The checks see the host without the activation unit (a check of failed units must not count ours).
            await unitRemoval;
            await timed(timings, "verify", () => verifyHealth(restore, checks));
        }
        const activated: DeployOutcome = { before, after, copy, activated: true, activatedAt: new Date().toISOString(), timings, sshHandshakes: connection.handshakes, builtOn };
        const outcome = await rebootPhase(connection, request, activated, context, unitRemoval);
        if (removedSecrets.length) await timed(timings, "secrets", () => removeSecrets(connection, name, removedSecrets, log));
        if (request.cleanup) await cleanupAfterDeploy(connection, request, log);
        return { ...outcome, sshHandshakes: connection.handshakes };
    } finally {
        await unitRemoval;
        await connection.close().catch(() => undefined);
        await buildConnection?.close().catch(() => undefined);
    }
}

/** Whether the host needs a reboot to run the deployed system fully; null when that cannot be read. */
async function rebootNeedOf(connection: SshConnection, request: DeployRequest, state: HostState): Promise<RebootNeed | null> {
    try {
        const [booted, deployed] = (await readBootFiles(connection, [BOOTED_SYSTEM, request.storePath])) as [BootFiles, BootFiles];
        return { changed: changedBootLinks(booted, deployed), bootPending: request.action === "boot" && state.currentStorePath !== request.storePath };
    } catch {
        return null;
    }
}

/**
 * After the activation (or when the host already ran the system): says whether a reboot is
 * needed, and reboots when the host's policy asks for it. After a reboot the host must run the
 * deployed system as its booted one; its /run secrets are written again and its health checks run
 * again (a failure then is reported, not restored: the host booted the deployed system). A reboot
 * that fails or does not come back throws DeployedUnchecked with what is known.
 */
async function rebootPhase(
    connection: SshConnection,
    request: DeployRequest,
    outcome: DeployOutcome,
    context: DeployContext,
    /** Work on the host still under way (the activation unit's removal): done before a reboot. */
    pending: Promise<void> = Promise.resolve(),
): Promise<DeployOutcome> {
    if (request.action === "dry-activate") return outcome;
    const name = request.target.name;
    const log = context.log ?? (() => undefined);
    const [need] = await Promise.all([rebootNeedOf(connection, request, outcome.after), pending]);
    const policy = request.reboot ?? "never";
    if (need === null) {
        log("reboot needed: unknown (the kernel, initrd and kernel-modules links could not be read)");
        return { ...outcome, reboot: { need: null } };
    }
    if (!shouldReboot(policy, request.action, need, outcome.activated)) {
        if (rebootNeeded(need)) log(`reboot needed (${describeNeed(need)}); ${notRebootedBecause(policy, request.action)}, so the host was not rebooted`);
        return { ...outcome, reboot: { need: rebootNeeded(need) ? need : { changed: [], bootPending: false } } };
    }
    const timings = outcome.timings;
    let rebooted: RebootResult;
    try {
        rebooted = await timed(timings, "reboot", () =>
            rebootHost(connection, { timeoutSeconds: request.rebootTimeout ?? HOST_DEFAULTS.rebootTimeout, storePath: request.storePath, log, sleep: context.sleep, ...(context.cancelled ? { cancelled: context.cancelled } : {}) }),
        );
    } catch (error) {
        // Activated, then the reboot failed or its outcome is unknown: say what is known. A new
        // boot that answered with another system runs that system now (its current-system is
        // what it booted): read it, so the state never says the host runs the deployed system.
        if (error instanceof FleetError) {
            const attempt = error instanceof RebootFailed ? error.attempt : undefined;
            const after = attempt?.bootId !== undefined ? await readHostState(connection).catch(() => undefined) : undefined;
            if (attempt?.bootId !== undefined && !after) {
                // What the new boot runs could not be read: the running system is not claimed.
                const unread = { ...outcome.after, currentStorePath: undefined, bootedStorePath: attempt.bootedStorePath ?? undefined };
                throw new DeployedUnchecked(error, { ...outcome, after: unread, reboot: { need, attempt } });
            }
            throw new DeployedUnchecked(error, { ...outcome, ...(after ? { after } : {}), reboot: { need, ...(attempt ? { attempt } : {}) } });
        }
        throw error;
    }
    // The host booted the deployed system: no reboot is needed any more, whatever fails next.
    const known = { reboot: { need: { changed: [], bootPending: false }, rebooted } };
    // What the new boot runs; until read, at least what it booted (checked by the reboot).
    let after: HostState = { ...outcome.after, bootedStorePath: rebooted.bootedStorePath };
    try {
        after = await readHostState(connection);
        const keys = (request.secrets ?? []).filter((file) => file.path.startsWith("/run/"));
        if (keys.length) await timed(timings, "secrets", () => uploadSecrets(connection, name, keys, log));
        const checks = request.healthChecks;
        if (checks && hasChecks(checks)) {
            log("health checks after the reboot");
            const report = await timed(timings, "verify", () => runHealthChecks(connection, checks, { runner: context.runner, address: request.target.address, log }));
            if (!report.healthy && !checks.keepGoing) {
                throw new FleetError({
                    phase: "verify",
                    host: name,
                    message: `after the reboot, ${summarizeHealthFailures(report)}; the host booted the deployed system and was not restored`,
                    hint: "fix what the failing checks show and deploy again, or roll back with `npm run rollback`",
                    detail: formatHealthFailures(report),
                });
            }
            log(report.healthy ? `health checks passed after the reboot (${report.results.length})` : `warning: after the reboot, ${summarizeHealthFailures(report)}; keepGoing is set`);
        }
        return { ...outcome, after, ...known };
    } catch (error) {
        if (error instanceof FleetError) throw new DeployedUnchecked(error, { ...outcome, after, ...known });
        throw error;
    }
}

interface RestoreContext {
    connection: SshConnection;
    request: DeployRequest;
    before: HostState;
    watchdog?: Watchdog;
    runner: ProcessRunner;
    runtimeDir: string;
    log: (message: string) => void;
    sleep?: (ms: number) => Promise<void>;
    /** The deploy's token: names the restore unit. */
    token: string;
}

/**
 * Puts the host back, as exactly one party: the deployer claims the decision from the watchdog
 * first; when the watchdog has claimed it already, it is the one restoring, and we wait for it.
 * Returns the sentence saying who restored what.
 */
async function restoreOnce(context: RestoreContext, profileOnly = false): Promise<string> {
    const { connection, request, before, watchdog } = context;
    const back = before.generation !== undefined ? `generation ${before.generation}` : "the state before the deploy";
    if (request.action === "dry-activate") return "dry-activate changed nothing, so nothing was restored";
    if (watchdog && !(await claim(connection, watchdog, context.sleep))) {
        context.log("the host's watchdog had already decided to revert; waiting for it");
        const restoredTo = await awaitWatchdogRevert(
            request.target,
            before,
            watchdog,
            { runner: context.runner, runtimeDir: join(context.runtimeDir, "confirm"), log: context.log, sleep: context.sleep },
            "the host's watchdog decided to revert it before the deployer could",
        );
        return `the host's watchdog restored it to ${restoredTo}`;
    }
    context.log(`restoring ${back}`);
    const done = await restorePrevious(connection, before, request.action, profileOnly, {
        token: context.token,
        log: context.log,
        reconnectSeconds: request.reconnectTimeout,
        sleep: context.sleep,
    });
    return `the deployer restored it to ${back}${done.length ? ` (${done.join(", ")})` : ""}`;
}

/**
 * Restores the host because of `cause` and throws the error that says both: why, and who restored
 * what. A restore that fails, or whose outcome is unknown, keeps the cause and the output too.
 */
async function restoreBecause(context: RestoreContext, cause: { phase: "activate" | "verify"; message: string; hint: string; detail: string }, profileOnly = false): Promise<never> {
    let restored: string;
    try {
        restored = await restoreOnce(context, profileOnly);
    } catch (restoreError) {
        if (restoreError instanceof FleetError) {
            const unknown = restoreError.outcome === "unknown";
            throw new FleetError({
                ...restoreError.toJSON(),
                message: unknown
                    ? `outcome unknown: ${cause.message}; then ${restoreError.message.replace(/^outcome unknown: /, "")}`
                    : `${cause.message}; then ${restoreError.message}`,
                detail: [cause.detail, restoreError.detail ?? ""].filter(Boolean).join("\n--- restore ---\n"),
            });
        }
        throw restoreError;
    }
    throw new FleetError({ phase: cause.phase, host: context.request.target.name, message: `${cause.message}; ${restored}`, hint: cause.hint, detail: cause.detail });
}

/** What the end of the activation means for the host: keep it, restore it, or report. */
async function finishActivation(activation: ActivationResult, context: RestoreContext, keepGoing: boolean): Promise<void> {
    const action = context.request.action;
    switch (activation.kind) {
        case "switched":
            return;
        case "unitsFailed": {
            const units = activation.units.length ? activation.units.join(", ") : "(not named in the output)";
            if (keepGoing) {
                context.log(`warning: switched, but units failed: ${units}; healthChecks.keepGoing is set, so the host stays on the new system`);
                return;
            }
            return restoreBecause(context, {
                phase: "activate",
                message: `switch-to-configuration ${action} switched the system, but units failed: ${units} (exit status 4)`,
                hint: "fix the failing units (their status is in the output above), or set healthChecks.keepGoing to accept the new system anyway",
                detail: tail(activation.output),
            });
        }
        case "refused":
            return restoreBecause(
                context,
                {
                    phase: "activate",
                    message: "switch-to-configuration refused: another activation started on the host and holds its lock, so nothing was activated",
                    hint: "wait until the other activation ends (`systemctl list-units 'nixos-*'` on the host), then deploy again",
                    detail: tail(activation.output),
                },
                true,
            );
        case "failed":
            return restoreBecause(context, {
                phase: "activate",
                message: activation.reason,
                hint: "fix the configuration and deploy again; the output of the activation is above",
                detail: tail(activation.output),
            });
    }
}

/** Post-activation secrets: a failed upload restores the previous system, as a failed check would. */
async function uploadAfterActivation(context: RestoreContext, files: NamedSecretFile[], timings: DeployOutcome["timings"]): Promise<void> {
    try {
        await timed(timings, "secrets", () => uploadSecrets(context.connection, context.request.target.name, files, context.log));
    } catch (error) {
        if (!(error instanceof FleetError) || error.phase !== "secrets") throw error;
        return restoreBecause(context, {
            phase: "activate",
            message: `the new system is active, but ${error.message}`,
            hint: error.hint ?? "check the secret's owner and path",
            detail: error.detail ?? "",
        });
    }
}

/** Runs the host's health checks; failing ones restore the previous system unless keepGoing. */
async function verifyHealth(context: RestoreContext, checks: HealthChecks): Promise<void> {
    const { connection, request, runner, log } = context;
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
    return restoreBecause(context, {
        phase: "verify",
        message: summary,
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

async function copyPinned(connection: SshConnection, request: DeployRequest, runner: ProcessRunner, log: (m: string) => void, build: SshConnection | undefined, runtimeDir: string): Promise<CopyResult> {
    if (build) {
        // Built on the build host: that is where the pinned system may still be.
        return copyFromBuildHost(build, connection, request.storePath, { runner, host: request.target.name, log, runtimeDir, substituteOnDestination: request.substituteOnDestination });
    }
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
export async function inspectHost(target: SshTarget, context: DeployContext, secretPaths: readonly string[] = []): Promise<HostState & { missingSecrets: string[] }> {
    const connection = new SshConnection(target, { runner: context.runner, runtimeDir: context.runtimeDir });
    try {
        await connection.open();
        const state = await readHostState(connection);
        return { ...state, missingSecrets: await missingSecretPaths(connection, secretPaths) };
    } finally {
        await connection.close().catch(() => undefined);
    }
}
