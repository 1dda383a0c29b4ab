// Automatic rollback when a deploy cuts access ("magic rollback", as deploy-rs does it). Before
// activating, a watchdog is started on the host in a transient systemd unit of its own, detached
// from our connection. It waits until the activation unit has ENDED, and only then starts its
// timer: the deployer must prove it can still log in over a NEW SSH connection and disarm it
// within the timeout; otherwise the watchdog puts the previous generation back by itself
// (profile, boot default, running system), which also restores the previous system's SSH keys and
// firewall. A slow activation is never reverted under itself.
//
// Exactly one party restores a host: the deployer or the watchdog. Both decide by `mkdir` of the
// same decision directory (atomic): the deployer claims it (disarm) before it restores anything
// itself; if the watchdog claimed it first, the deployer waits for its revert instead.
import { randomBytes } from "node:crypto";
import { FleetError, tail } from "../errors";
import type { ProcessRunner } from "../process/runner";
import { SshConnection } from "../ssh/connection";
import type { SshTarget } from "../ssh/target";
import { changesRunningSystem, setsProfile, type Action } from "./activate";
import { RUNTIME_DIR, activationUnit } from "./activationUnit";
import { readHostState, SYSTEM_PROFILE, type HostState } from "./hostState";

export const WATCHDOG_DIR = RUNTIME_DIR;

/** A fresh token per deploy: it names the activation unit, the watchdog unit and their files. */
export const newToken = (): string => randomBytes(8).toString("hex");

// Fixed script; every value comes in as a positional argument. The activation counts as ended
// when its unit has exited or failed (RemainAfterExit keeps it loaded), or is gone after it was
// seen; an activation that never starts within 120 s leaves the watchdog nothing to guard.
const WATCHDOG_SCRIPT = `
dir=$1; token=$2; timeout=$3; action=$4; gen=$5; profile_path=$6; current=$7; unit=$8
export PATH="/run/current-system/sw/bin:/nix/var/nix/profiles/default/bin:$PATH"
mkdir -p "$dir"
seen=0; waited=0
while :; do
  [ -d "$dir/decided-$token" ] && exit 0
  state=$(systemctl show --property=LoadState --property=SubState "$unit" 2>/dev/null | tr '\n' ' ')
  case "$state" in
    *SubState=exited*|*SubState=failed*) break ;;
    *LoadState=loaded*) seen=1 ;;
    *LoadState=not-found*) if [ "$seen" = 1 ]; then break; fi
       if [ "$waited" -ge 120 ]; then exit 0; fi ;;
    *) ;;
  esac
  sleep 1; waited=$((waited + 1))
done
echo "$(date -u +%FT%TZ) $token: activation ended, waiting $timeout seconds for a confirmation" >> "$dir/watchdog.log"
sleep "$timeout"
mkdir "$dir/decided-$token" 2>/dev/null || exit 0
echo watchdog > "$dir/decided-$token/by"
echo "$(date -u +%FT%TZ) $token: no confirmation within $timeout seconds, reverting" >> "$dir/watchdog.log"
case "$action" in switch|boot)
  if [ -n "$gen" ]; then nix-env -p ${SYSTEM_PROFILE} --switch-generation "$gen"; fi
  if [ -n "$profile_path" ]; then "$profile_path/bin/switch-to-configuration" boot; fi ;;
esac
case "$action" in switch|test)
  if [ -n "$current" ]; then "$current/bin/switch-to-configuration" test; fi ;;
esac
echo "$(date -u +%FT%TZ) $token: reverted" >> "$dir/watchdog.log"
touch "$dir/reverted-$token"
`;

// Exit 0: this deployer decided; 4: a deployer had decided already (this one, whose answer was
// lost, or another whose new connection proved access); 3: the watchdog decided to revert.
const DISARM_SCRIPT = `
dir=$1; token=$2
mkdir -p "$dir"
if mkdir "$dir/decided-$token" 2>/dev/null; then
  echo deployer > "$dir/decided-$token/by"
  systemctl stop "nixos-fleet-watchdog-$token.service" 2>/dev/null
  exit 0
fi
i=0
while [ ! -s "$dir/decided-$token/by" ] && [ "$i" -lt 10 ]; do sleep 0.2; i=$((i + 1)); done
[ "$(cat "$dir/decided-$token/by" 2>/dev/null)" = deployer ] && exit 4
exit 3
`;

export interface Watchdog {
    token: string;
    timeoutSeconds: number;
    armedAt: number;
    /** When the activation ended (the watchdog's timer starts then); set by the deployer. */
    activationEndedAt?: number;
    /** The deployer holds the decision (it disarmed the watchdog): nobody else will restore. */
    claimed?: boolean;
}

/** Whether an action can cut access now (boot only takes effect at the next boot). */
export const needsConfirmation = (action: Action, confirmTimeout: number): boolean =>
    confirmTimeout > 0 && changesRunningSystem(action);

export async function armWatchdog(connection: SshConnection, before: HostState, action: Action, timeoutSeconds: number, token: string): Promise<Watchdog> {
    const result = await connection.run(
        [
            "systemd-run", `--unit=nixos-fleet-watchdog-${token}`, "--description=nixos-fleet: automatic rollback unless the deploy is confirmed",
            "--service-type=exec", "--collect", "--no-ask-password", "--quiet", "--",
            "sh", "-c", WATCHDOG_SCRIPT, "nixos-fleet-watchdog",
            WATCHDOG_DIR, token, String(timeoutSeconds), action,
            setsProfile(action) && before.generation !== undefined ? String(before.generation) : "",
            setsProfile(action) ? (before.profileStorePath ?? "") : "",
            before.currentStorePath ?? "",
            activationUnit(token).unit,
        ],
        { asRoot: true, timeoutMs: 30_000 },
    );
    if (result.code !== 0) {
        throw new FleetError({
            phase: "activate",
            host: connection.target.name,
            message: "could not start the rollback watchdog on the host; nothing was activated",
            hint: "the host needs systemd-run; set confirmTimeout: 0 to deploy without automatic rollback",
            detail: tail(result.stderr),
        });
    }
    return { token, timeoutSeconds, armedAt: Date.now() };
}

/** Disarms over the given connection. False when the watchdog had already decided to revert. */
export async function disarm(connection: SshConnection, watchdog: Watchdog): Promise<boolean> {
    const result = await connection.run(["sh", "-c", DISARM_SCRIPT, "nixos-fleet-disarm", WATCHDOG_DIR, watchdog.token], { asRoot: true, timeoutMs: 30_000 });
    return result.code === 0 || result.code === 4;
}

export interface ConfirmContext {
    runner: ProcessRunner;
    /** A directory for the confirming connection's socket, different from the deploy's. */
    runtimeDir: string;
    log?: (message: string) => void;
    sleep?: (ms: number) => Promise<void>;
}

const defaultSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * Confirms the deploy over a NEW connection (a fresh SSH handshake, so lost keys or a closed port
 * show). If that fails, waits for the watchdog to revert the host, checks that it came back on the
 * previous system, and throws a FleetError saying so.
 */
export async function confirmOrAwaitRevert(target: SshTarget, before: HostState, watchdog: Watchdog, context: ConfirmContext): Promise<void> {
    const sleep = context.sleep ?? defaultSleep;
    const fresh = new SshConnection(target, { runner: context.runner, runtimeDir: context.runtimeDir, persistSeconds: 5 });
    let reason: string;
    try {
        await fresh.open();
        if (await claim(fresh, watchdog, sleep)) return;
        reason = `the confirmation came after ${watchdog.timeoutSeconds}s (confirmTimeout), when the watchdog had already started to revert`;
    } catch (error) {
        reason = `a new SSH connection after activation failed (${error instanceof FleetError ? error.message : String(error)})`;
    } finally {
        await fresh.close().catch(() => undefined);
    }
    context.log?.(`${reason}; waiting for the host to revert itself`);
    const back = await awaitWatchdogRevert(target, before, watchdog, context, `the host lost access after activation (${reason})`);
    throw new FleetError({
        phase: "activate",
        host: target.name,
        message: `the host lost access after activation (${reason}): the host's watchdog restored it to ${back}; it is reachable again`,
        hint: "the new configuration cuts SSH access (keys, sshd, firewall): fix it before deploying again",
    });
}

/**
 * Waits until the watchdog (which claimed the decision) has put the host back on `before`, and
 * returns what it went back to ("generation N"); throws an "outcome unknown" FleetError, starting
 * with `why`, when the host does not come back as before.
 */
export async function awaitWatchdogRevert(
    target: SshTarget,
    before: HostState,
    watchdog: Watchdog,
    context: ConfirmContext,
    why: string,
): Promise<string> {
    const sleep = context.sleep ?? defaultSleep;
    // The watchdog reverts at the activation's end + timeout (+ its 1 s poll); then give the
    // previous system time to come back.
    const revertAt = (watchdog.activationEndedAt ?? watchdog.armedAt) + watchdog.timeoutSeconds * 1000 + 1000;
    await sleep(Math.max(0, revertAt - Date.now()) + 1000);
    const back = before.generation !== undefined ? `generation ${before.generation}` : "the previous system";
    let after: HostState | undefined;
    for (let attempt = 0; attempt < 10 && !after; attempt++) {
        const probe = new SshConnection(target, { runner: context.runner, runtimeDir: context.runtimeDir, persistSeconds: 5 });
        try {
            await probe.open();
            const state = await readHostState(probe);
            if (state.currentStorePath === before.currentStorePath && state.profileStorePath === before.profileStorePath) after = state;
        } catch {
            // not back yet
        } finally {
            await probe.close().catch(() => undefined);
        }
        if (!after) await sleep(2000);
    }
    if (after) return back;
    throw new FleetError({
        phase: "activate",
        host: target.name,
        outcome: "unknown",
        message: `outcome unknown: ${why}; the host's watchdog should have restored it to ${back}, but it is still not reachable as before`,
        hint: "check the host on its console; `nix-env -p /nix/var/nix/profiles/system --rollback` and switch-to-configuration switch restore the previous system",
    });
}

/**
 * Claims the decision for the deployer (once per watchdog): true when the deployer may restore or
 * keep the host, false when the watchdog had already decided to revert it.
 */
export async function claim(connection: SshConnection, watchdog: Watchdog, sleep: (ms: number) => Promise<void> = defaultSleep): Promise<boolean> {
    if (watchdog.claimed) return true;
    // Asking again is safe: a claim whose answer was lost answers "a deployer decided" (exit 4).
    for (let attempt = 1; ; attempt++) {
        try {
            const claimed = await disarm(connection, watchdog);
            if (claimed) watchdog.claimed = true;
            return claimed;
        } catch (error) {
            if (!(error instanceof FleetError) || error.phase !== "connect") throw error;
            if (attempt >= 3) {
                throw new FleetError({
                    phase: "activate",
                    host: connection.target.name,
                    outcome: "unknown",
                    message: `outcome unknown: the connection was lost while deciding whether the deployer or the host's watchdog puts the host back (${error.message}); if the watchdog decides, it reverts the host ${watchdog.timeoutSeconds}s after the activation ended`,
                    hint: "once the host is reachable, `pulumi refresh` records what it runs and the next `pulumi up` converges it",
                });
            }
            connection.reset();
            await sleep(1000);
        }
    }
}
