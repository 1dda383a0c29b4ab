// Activate phase, with nixos-rebuild's semantics: set the system profile (switch, boot), then run
// the new system's switch-to-configuration, here in a transient systemd unit on the host (see
// activationUnit.ts) so that a dropped connection cannot cut it in half. If the connection drops,
// we reconnect (bounded, with backoff) and learn the real outcome from systemd: still running,
// or its exit status and output. Nothing here restores a host: the caller decides that, after it
// has made sure it is the only party that does (see confirm.ts), and never while an activation
// may still be running.
import { StringDecoder } from "node:string_decoder";
import { FleetError, tail } from "../errors";
import type { SshConnection } from "../ssh/connection";
import {
    activationUnit,
    failedUnitsOf,
    followUnit,
    preflight,
    progressOf,
    refusedForLock,
    restoreSteps,
    restoreUnit,
    startRestoreUnit,
    startUnit,
    removeUnit,
    unitStatus,
    type ActivationProgress,
    type ActivationUnit,
    type UnitReport,
} from "./activationUnit";
import { readHostState, SYSTEM_PROFILE, type HostState } from "./hostState";

export type Action = "switch" | "boot" | "test" | "dry-activate";

export const setsProfile = (action: Action): boolean => action === "switch" || action === "boot";
export const changesRunningSystem = (action: Action): boolean => action === "switch" || action === "test";

/** How an activation that ran to its end came out. */
export type ActivationResult =
    /** switch-to-configuration exited 0 and the host is on the new system. */
    | { kind: "switched"; after: HostState; output: string }
    /** Exit 4: the system WAS switched, but units failed (named). */
    | { kind: "unitsFailed"; after: HostState; output: string; units: string[] }
    /** The activation failed (or left the host elsewhere): the host needs restoring. */
    | { kind: "failed"; reason: string; output: string }
    /** switch-to-configuration refused: another activation held the lock. Only the profile moved. */
    | { kind: "refused"; output: string };

export interface ActivateOptions {
    /** Unique per deploy: names the transient unit (and the watchdog's files). */
    token: string;
    /** Make the profile point at this existing generation (rollback) instead of adding one. */
    switchToGeneration?: number;
    onOutput?: (chunk: string) => void;
    log?: (message: string) => void;
    /** How long to keep trying to reach a host whose connection dropped during activation. */
    reconnectSeconds?: number;
    installBootloader?: boolean;
    sleep?: (ms: number) => Promise<void>;
}

export const DEFAULT_RECONNECT_SECONDS = 60;
/** How long a deploy waits for another activation on the host to release the lock. */
export const LOCK_WAIT_SECONDS = 20;
/** How long a deploy waits for another nixos-fleet deploy on the host (its watchdog's confirm window included). */
export const BUSY_WAIT_SECONDS = 60;

const defaultSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * Before anything changes: the host must have systemd-run, and no other activation may be running
 * (waits up to LOCK_WAIT_SECONDS). Returns what the host runs once it is ready (read in the same
 * command); throws a FleetError saying that nothing was changed.
 */
export async function checkReadyToActivate(connection: SshConnection, lockWaitSeconds = LOCK_WAIT_SECONDS, busyWaitSeconds = BUSY_WAIT_SECONDS): Promise<HostState> {
    const host = connection.target.name;
    const ready = await preflight(connection, lockWaitSeconds, busyWaitSeconds);
    if (typeof ready === "object" && "ready" in ready) return ready.ready;
    if (typeof ready === "object") {
        throw new FleetError({
            phase: "activate",
            host,
            message: `another deploy is under way on the host (${ready.busy.join(", ")} still running after ${busyWaitSeconds}s); nothing was changed`,
            hint: "wait until it ends (a rollback watchdog ends when its deploy is confirmed or it has reverted the host), then deploy again; `systemctl status <unit>` on the host shows it",
        });
    }
    if (ready === "no-systemd-run") {
        throw new FleetError({
            phase: "activate",
            host,
            message: "the host has no systemd-run (or systemd is not running); nothing was changed",
            hint: "nixos-fleet activates in a transient systemd unit, as nixos-rebuild does; every NixOS host has systemd-run",
        });
    }
    // "locked"
    throw new FleetError({
        phase: "activate",
        host,
        message: `another activation is running on the host (it has held /run/nixos/switch-to-configuration.lock for ${lockWaitSeconds}s); nothing was changed`,
        hint: "wait until it ends (`systemctl list-units 'nixos-*'` on the host shows it), then deploy again",
    });
}

async function setProfile(connection: SshConnection, storePath: string, generation?: number): Promise<void> {
    const argv =
        generation === undefined
            ? ["nix-env", "-p", SYSTEM_PROFILE, "--set", storePath]
            : ["nix-env", "-p", SYSTEM_PROFILE, "--switch-generation", String(generation)];
    let result;
    try {
        result = await connection.run(argv, { asRoot: true });
    } catch (error) {
        if (!(error instanceof FleetError) || error.phase !== "connect") throw error;
        throw new FleetError({
            phase: "activate",
            host: connection.target.name,
            outcome: "unknown",
            message: `outcome unknown: the connection was lost while setting the system profile (${error.message}); the profile may point at ${storePath} while the host runs its previous system, so the next boot could run it`,
            hint: "once the host is reachable, `pulumi refresh` shows the profile and the next `pulumi up` makes profile, boot default and running system agree",
        });
    }
    if (result.code !== 0) {
        throw new FleetError({
            phase: "activate",
            host: connection.target.name,
            message: "setting the system profile failed; nothing was changed",
            hint: "the deploy user needs root (or passwordless sudo) on the host",
            detail: tail(result.stderr),
        });
    }
}

export interface RestoreOptions {
    /** The deploy's token: names the restore unit. */
    token: string;
    log?: (message: string) => void;
    reconnectSeconds?: number;
    sleep?: (ms: number) => Promise<void>;
}

/**
 * Puts the profile back to `before` and re-activates (`profileOnly` when nothing else changed), in
 * a transient unit of its own, so that a dropped connection or a killed deployer cannot leave the
 * host half restored. Returns the steps it did; throws a "rollback" FleetError naming the step
 * that failed, or an "outcome unknown" one when the host went away during the restore.
 */
export async function restorePrevious(
    connection: SshConnection,
    before: HostState,
    action: Action,
    profileOnly: boolean,
    options: RestoreOptions,
): Promise<string[]> {
    const host = connection.target.name;
    const unit = restoreUnit(options.token);
    const manual =
        before.generation !== undefined
            ? `log in and run: nix-env -p ${SYSTEM_PROFILE} --switch-generation ${before.generation} && ${SYSTEM_PROFILE}/bin/switch-to-configuration switch`
            : `log in and make the system it ran before (${before.currentStorePath ?? "unknown"}) the boot default and running system again: <that path>/bin/switch-to-configuration switch`;
    const args = {
        action,
        generation: setsProfile(action) ? before.generation : undefined,
        profileStorePath: before.profileStorePath,
        currentStorePath: before.currentStorePath,
        profileOnly,
    };
    // dry-activate changed nothing; a test/profileOnly restore without a running system has nothing to do.
    if (action === "dry-activate" || (!setsProfile(action) && (profileOnly || !before.currentStorePath))) return [];
    try {
        const started = await startRestoreUnit(connection, unit, args);
        if (started.timedOut || started.code === null) {
            options.log?.("starting the restore unit did not answer in time; asking systemd what became of it");
        } else if (started.code !== 0) {
            throw new FleetError({ phase: "rollback", host, message: `the restore unit ${unit.unit} could not be started (exit ${started.code})`, hint: manual, detail: tail(started.stderr) });
        }
    } catch (error) {
        if (!(error instanceof FleetError) || error.phase !== "connect") throw error;
        options.log?.(`connection lost while starting the restore (${error.message}); reconnecting to learn the outcome`);
    }
    let result;
    try {
        result = await awaitUnit(connection, unit, { ...options, what: "restore" });
    } catch (error) {
        if (error instanceof FleetError && error.outcome === "unknown") {
            throw new FleetError({
                ...error.toJSON(),
                phase: "rollback",
                message: error.message.replace("nothing was restored, since the activation may have run to its end", "the restore may or may not have finished"),
                hint: `${manual}; ${error.hint ?? ""}`,
            });
        }
        throw error;
    }
    const { progress, output } = result;
    await removeUnit(connection, unit);
    const steps = restoreSteps(output);
    if (progress.kind === "exited" && progress.status === 0) return steps.done;
    if (progress.kind === "gone") {
        throw new FleetError({
            phase: "rollback",
            host,
            outcome: "unknown",
            message: `outcome unknown: the host no longer knows the restore unit ${unit.unit} (it went away or rebooted while restoring the previous system)${steps.done.length ? `; done before: ${steps.done.join(", ")}` : ""}`,
            hint: `${manual}; \`pulumi refresh\` records what it runs`,
        });
    }
    throw new FleetError({
        phase: "rollback",
        host,
        message: `restoring the previous system failed at: ${steps.failedAt ?? `the restore (${progress.kind === "killed" ? `killed by signal ${progress.signal}` : `exit ${progress.kind === "exited" ? progress.status : "?"}`})`}${steps.done.length ? ` (done before: ${steps.done.join(", ")})` : ""}`,
        hint: manual,
        detail: tail(output),
    });
}

function verifyActivated(storePath: string, action: Action, after: HostState): string | undefined {
    if (setsProfile(action) && after.profileStorePath !== storePath) {
        return `the system profile points at ${after.profileStorePath ?? "nothing"}, not ${storePath}`;
    }
    if (changesRunningSystem(action) && after.currentStorePath !== storePath) {
        return `/run/current-system is ${after.currentStorePath ?? "missing"}, not ${storePath}`;
    }
    return undefined;
}

/** The host went away (or forgot the activation): nobody can say how it ended. Never a restore. */
function outcomeUnknown(host: string, unit: ActivationUnit, why: string, last?: HostState): FleetError {
    const seen = last
        ? ` When last seen it ran ${last.currentStorePath ?? "nothing"} with the profile at generation ${last.generation ?? "-"}.`
        : "";
    return new FleetError({
        phase: "activate",
        host,
        outcome: "unknown",
        message: `outcome unknown: ${why}; nothing was restored, since the activation may have run to its end.${seen}`,
        hint:
            `once the host is reachable, \`pulumi refresh\` records what it really runs and the next \`pulumi up\` converges it; ` +
            `on the host, \`systemctl status ${unit.unit}\` shows the activation while it is loaded`,
    });
}

/** Follows the unit to its end, reconnecting after drops. Returns its last status and all output. */
async function awaitUnit(
    connection: SshConnection,
    unit: ActivationUnit,
    options: Pick<ActivateOptions, "log" | "sleep" | "reconnectSeconds" | "onOutput"> & { what?: "activation" | "restore" },
): Promise<{ report: UnitReport; progress: ActivationProgress; output: string }> {
    const host = connection.target.name;
    const log = options.log ?? (() => undefined);
    const sleep = options.sleep ?? defaultSleep;
    const reconnectSeconds = options.reconnectSeconds ?? DEFAULT_RECONNECT_SECONDS;
    const during = options.what === "restore" ? "while restoring the previous system" : "during activation";
    let output = "";
    // Bytes of the log seen so far, counted as they arrive: a drop mid-stream resumes after them.
    // Decoded by one decoder over all follows: a character cut by a drop is whole after it.
    let offset = 0;
    const decoder = new StringDecoder("utf8");
    const onChunk = (chunk: Buffer) => {
        offset += chunk.length;
        const text = decoder.write(chunk);
        output += text;
        if (text) options.onOutput?.(text);
    };
    let last: HostState | undefined;
    let drops = 0;
    let silent = 0;
    for (;;) {
        try {
            const seenBefore = offset;
            // The follow reads the unit's status once its output ends; asked apart when it could not.
            const report = (await followUnit(connection, unit, offset, onChunk)) ?? (await unitStatus(connection, unit));
            last = report.host;
            const progress = progressOf(report.status);
            if (progress.kind !== "running") return { report, progress, output: output + decoder.end() };
            // The follow ended early (no log, a reused pid, systemctl silent): look again, not in a
            // tight loop, and not forever when systemd never answers.
            if (report.status.loadState === "unknown" && ++silent > 30) {
                throw outcomeUnknown(host, unit, `systemd on the host did not report the unit's state for a long time`, last);
            }
            if (offset === seenBefore) await sleep(1000);
            continue;
        } catch (error) {
            if (!(error instanceof FleetError) || error.phase !== "connect") throw error;
            drops += 1;
            log(`connection lost ${during} (${error.message}); reconnecting to learn the outcome`);
            if (drops > MAX_DROPS) {
                throw outcomeUnknown(host, unit, `the connection to the host dropped ${drops} times ${during}`, last);
            }
        }
        await reconnect(connection, reconnectSeconds, sleep, (why) =>
            outcomeUnknown(host, unit, `the connection was lost ${during} and the host did not answer again within ${reconnectSeconds}s (${why})`, last),
        );
        log(`reconnected; the ${options.what ?? "activation"} ran on without us`);
    }
}

/** A connection that keeps dropping and coming back does not hold a deploy forever. */
const MAX_DROPS = 10;

/**
 * Opens a new master with backoff until it works or `seconds` of waiting have passed (counted by
 * the waits themselves, so an injected sleep gives the same answer as the real one).
 */
async function reconnect(connection: SshConnection, seconds: number, sleep: (ms: number) => Promise<void>, giveUp: (why: string) => Error): Promise<void> {
    const started = Date.now();
    let waited = 0;
    let delay = 500;
    for (;;) {
        connection.reset();
        try {
            await connection.open();
            return;
        } catch (error) {
            const why = error instanceof Error ? error.message : String(error);
            if (Math.max(waited, Date.now() - started) + delay > seconds * 1000) throw giveUp(why);
            await sleep(delay);
            waited += delay;
            delay = Math.min(delay * 2, 8000);
        }
    }
}

function describeEnd(progress: ActivationProgress, action: Action): string {
    if (progress.kind === "exited") return `switch-to-configuration ${action} exited with ${progress.status}`;
    if (progress.kind === "killed") return `switch-to-configuration ${action} was killed by signal ${progress.signal}`;
    return `switch-to-configuration ${action} ended`;
}

/**
 * Sets the profile and runs switch-to-configuration in a transient unit, to its end. Returns how
 * it came out; throws a FleetError when nothing was changed (profile not set, unit not started,
 * after putting the profile back) or when the outcome cannot be known.
 */
export async function activate(
    connection: SshConnection,
    storePath: string,
    action: Action,
    before: HostState,
    options: ActivateOptions,
): Promise<ActivationResult> {
    const host = connection.target.name;
    if (action === "dry-activate") return dryActivate(connection, storePath, before, options);
    if (setsProfile(action)) await setProfile(connection, storePath, options.switchToGeneration);
    const unit = activationUnit(options.token);
    try {
        const started = await startUnit(connection, unit, storePath, action, options.installBootloader ?? false);
        if (started.timedOut || started.code === null) {
            // The job may be queued in PID 1 already: not "not started", but "find out".
            options.log?.("starting the activation unit did not answer in time; asking systemd what became of it");
        } else if (started.code !== 0) {
            return { kind: "failed", reason: `the activation unit ${unit.unit} could not be started (exit ${started.code})`, output: started.stderr };
        }
    } catch (error) {
        // The unit may be running already: learn the outcome the same way as after any drop.
        if (!(error instanceof FleetError) || error.phase !== "connect") throw error;
        options.log?.(`connection lost while starting the activation (${error.message}); reconnecting to learn the outcome`);
    }
    const { report, progress, output } = await awaitUnit(connection, unit, options);
    if (progress.kind === "gone") {
        throw outcomeUnknown(host, unit, `the host no longer knows the activation unit ${unit.unit} (the host went away or rebooted during activation, or the unit was never started or was removed)`, report.host);
    }
    const after = report.host;
    if (progress.kind === "exited" && progress.status === 1 && refusedForLock(output)) return { kind: "refused", output };
    if (progress.kind === "exited" && (progress.status === 0 || progress.status === 4)) {
        const wrong = verifyActivated(storePath, action, after);
        if (wrong) return { kind: "failed", reason: `${describeEnd(progress, action)}, but ${wrong}`, output };
        if (progress.status === 4) return { kind: "unitsFailed", after, output, units: failedUnitsOf(output) };
        return { kind: "switched", after, output };
    }
    return { kind: "failed", reason: describeEnd(progress, action), output };
}

/** dry-activate changes nothing: it runs directly over the connection. */
async function dryActivate(connection: SshConnection, storePath: string, before: HostState, options: ActivateOptions): Promise<ActivationResult> {
    const result = await connection.run([`${storePath}/bin/switch-to-configuration`, "dry-activate"], {
        asRoot: true,
        onStdout: options.onOutput,
        onStderr: options.onOutput,
    });
    const output = `${result.stdout}${result.stderr}`;
    if (result.code !== 0) {
        throw new FleetError({
            phase: "activate",
            host: connection.target.name,
            message: `switch-to-configuration dry-activate exited with ${result.code ?? result.signal}; dry-activate changes nothing, so the host is as it was`,
            hint: "the output of the dry activation is above",
            detail: tail(output),
        });
    }
    return { kind: "switched", after: await readHostState(connection).catch(() => before), output };
}
