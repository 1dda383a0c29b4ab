// switch-to-configuration runs in a transient systemd unit on the host, as nixos-rebuild-ng, clan
// and NixOps4 run it: PID 1 owns the activation, so a dropped SSH connection (sshd restarted, a
// network blip) cannot cut it in half. Its output goes to a log file on the host (not a pipe to
// our session, which dies with the connection), which we stream while connected and read again
// after reconnecting; the unit stays loaded after it ends (RemainAfterExit) so its exit status can
// be read. Every script here is fixed text: values come in as positional arguments.
import { FleetError, tail } from "../errors";
import type { SshConnection } from "../ssh/connection";
import { parseHostState, READ_STATE_SCRIPT, SYSTEM_PROFILE, type HostState } from "./hostState";

/** Where activation logs and the watchdog's files live on the host (a tmpfs on NixOS). */
export const RUNTIME_DIR = "/run/nixos-fleet";
export const ACTIVATION_LOCK = "/run/nixos/switch-to-configuration.lock";

export interface ActivationUnit {
    /** e.g. nixos-fleet-activate-0123abcd.service */
    unit: string;
    log: string;
}

export function activationUnit(token: string): ActivationUnit {
    const unit = `nixos-fleet-activate-${token}.service`;
    return { unit, log: `${RUNTIME_DIR}/${unit}.log` };
}

/** The unit that puts the previous system back, when the deployer restores a host. */
export function restoreUnit(token: string): ActivationUnit {
    const unit = `nixos-fleet-restore-${token}.service`;
    return { unit, log: `${RUNTIME_DIR}/${unit}.log` };
}

// Before touching anything: systemd-run must exist, no other activation may hold the lock (waits
// up to $2 seconds), and no other nixos-fleet deploy may be under way on the host: an activation or
// restore unit running, or a rollback watchdog armed (waits up to $3 seconds; a watchdog whose
// deployer died reverts by itself within its confirmTimeout). Exit 0 ready, 10 no systemd-run,
// 11 the lock stayed busy, 13 another deploy stayed under way (its units printed).
const PREFLIGHT_SCRIPT = `
lock=$1; wait=$2; busy_wait=$3
command -v systemd-run >/dev/null 2>&1 || exit 10
[ -d /run/systemd/system ] || exit 10
mkdir -p "\${lock%/*}"
locked=0; busy=0
while :; do
  if flock -n "$lock" true 2>/dev/null; then
    locked=0
    others=$(systemctl list-units --plain --no-legend --state=running 'nixos-fleet-activate-*' 'nixos-fleet-restore-*' 'nixos-fleet-watchdog-*' 2>/dev/null | cut -d' ' -f1 | tr '\\n' ' ')
    # Ready: what the host runs now, the deploy's "before" (hostState.ts's script, after the
    # marker), in the same round trip.
    [ -z "\${others% }" ] && { echo @ready; ${READ_STATE_SCRIPT}; exit 0; }
    [ "$busy" -ge "$busy_wait" ] && { echo "$others"; exit 13; }
    busy=$((busy + 1))
  else
    # Counted apart, and afresh each time: a watchdog that reverts holds the lock for a moment.
    [ "$locked" -ge "$wait" ] && exit 11
    locked=$((locked + 1))
  fi
  sleep 1
done
`;

// Starts the unit and returns once it runs (Type=exec). LOCALE_ARCHIVE and
// NIXOS_INSTALL_BOOTLOADER reach switch-to-configuration as NixOS passes them.
const START_SCRIPT = `
unit=$1; log=$2; toplevel=$3; action=$4; bootloader=$5
mkdir -p "\${log%/*}" && : > "$log" || exit 12
set -- --unit="$unit" --description="nixos-fleet: switch-to-configuration $action of $toplevel" \\
  --service-type=exec --property=RemainAfterExit=yes \\
  --property="StandardOutput=append:$log" --property="StandardError=append:$log" \\
  --no-ask-password --quiet
[ -n "\${LOCALE_ARCHIVE:-}" ] && set -- "$@" --setenv=LOCALE_ARCHIVE="$LOCALE_ARCHIVE"
[ -n "$bootloader" ] && set -- "$@" --setenv=NIXOS_INSTALL_BOOTLOADER="$bootloader"
exec systemd-run "$@" -- "$toplevel/bin/switch-to-configuration" "$action"
`;

// Starts a fixed script ($3) with its arguments in a transient unit, output to the log.
const START_SCRIPT_UNIT = `
unit=$1; log=$2; script=$3; shift 3
mkdir -p "\${log%/*}" && : > "$log" || exit 12
exec systemd-run --unit="$unit" --description="nixos-fleet: restore the previous system" \\
  --service-type=exec --property=RemainAfterExit=yes \\
  --property="StandardOutput=append:$log" --property="StandardError=append:$log" \\
  --no-ask-password --quiet -- sh -c "$script" nixos-fleet-restore "$@"
`;

// Puts the previous system back, step by step, saying each step it did; exit 1 names the step
// that failed. switch-to-configuration exiting 4 (the previous system's own units failed) still
// did its work. Runs inside a transient unit (systemd expands \${…} in its command line: none here).
const RESTORE_SCRIPT = `
action=$1; gen=$2; profile_path=$3; current=$4; only_profile=$5
profile=${SYSTEM_PROFILE}
done_step() { echo "nixos-fleet-restore: done: $1"; }
fail_step() { echo "nixos-fleet-restore: failed at: $1" >&2; exit 1; }
activate() {
  "$1/bin/switch-to-configuration" "$2"; rc=$?
  if [ "$rc" = 0 ]; then done_step "$3"
  elif [ "$rc" = 4 ]; then done_step "$3 (units of that system failed, see above)"
  else fail_step "$3"; fi
}
case "$action" in switch|boot)
  if [ -n "$gen" ]; then
    nix-env -p "$profile" --switch-generation "$gen" || fail_step "profile back to generation $gen"
    done_step "profile back to generation $gen"
    if [ "$only_profile" != 1 ] && [ -n "$profile_path" ]; then activate "$profile_path" boot "boot default back to the previous generation"; fi
  else
    rm -f "$profile" "$profile"-*-link || fail_step "removed the new system profile"
    done_step "removed the new system profile"
    if [ "$only_profile" != 1 ] && [ -n "$current" ]; then activate "$current" boot "boot default back to the previously running system"; fi
  fi ;;
esac
case "$action" in switch|test)
  if [ "$only_profile" != 1 ] && [ -n "$current" ]; then activate "$current" test "re-activated the previously running system"; fi ;;
esac
exit 0
`;

/** The steps a restore unit reported as done, and the one it failed at. */
export function restoreSteps(output: string): { done: string[]; failedAt?: string } {
    const done = [...output.matchAll(/^nixos-fleet-restore: done: (.*)$/gm)].map((m) => m[1]!);
    const failedAt = /^nixos-fleet-restore: failed at: (.*)$/m.exec(output)?.[1];
    return failedAt === undefined ? { done } : { done, failedAt };
}

export interface RestoreArguments {
    action: string;
    /** The generation to put the profile back to; absent when the host had no profile (it is removed). */
    generation?: number;
    profileStorePath?: string;
    currentStorePath?: string;
    /** Only the profile moved (switch-to-configuration refused): nothing is re-activated. */
    profileOnly: boolean;
}

export async function startRestoreUnit(connection: SshConnection, unit: ActivationUnit, args: RestoreArguments) {
    return connection.run(
        [
            "sh", "-c", START_SCRIPT_UNIT, "nixos-fleet-restore-start", unit.unit, unit.log, RESTORE_SCRIPT,
            args.action, args.generation === undefined ? "" : String(args.generation), args.profileStorePath ?? "",
            args.currentStorePath ?? "", args.profileOnly ? "1" : "",
        ],
        { asRoot: true, timeoutMs: 60_000 },
    );
}

const STATUS_SCRIPT = [
    `unit=$1`,
    `systemctl show --property=LoadState --property=ActiveState --property=SubState --property=Result ` +
        `--property=ExecMainCode --property=ExecMainStatus --property=MainPID "$unit" || exit 20`,
    `echo @state`,
    READ_STATE_SCRIPT,
].join("\n");

/** Marks the unit's status that the follow prints after the log, on stderr (see FOLLOW_SCRIPT). */
const STATUS_BEGIN = "@status\n";
const STATUS_END = /@status-exit (\d+)\n?$/;

// Streams the log from byte $3 on until the unit's process has ended (tail --pid makes one last
// read after it exits, and looks for the process every 0.05 s), or prints what is there when it
// already has. Then the unit's status (STATUS_SCRIPT) goes to stderr, apart from the log on
// stdout, so that the end of an activation costs no second round trip; without it (cut off,
// systemctl silent) the caller asks with unitStatus.
const FOLLOW_SCRIPT = `
unit=$1; log=$2; from=$(($3 + 1))
pid=$(systemctl show --property=MainPID --value "$unit" 2>/dev/null)
if [ -n "$pid" ] && [ "$pid" != 0 ]; then
  # Bounded: a pid reused after the unit ended must not hold the follow; the caller looks again.
  timeout 30 tail -c "+$from" -s 0.05 --pid="$pid" -f "$log" 2>/dev/null || sleep 1
else
  tail -c "+$from" "$log" 2>/dev/null
fi
echo @status >&2
( ${STATUS_SCRIPT} ) >&2 2>/dev/null
echo "@status-exit $?" >&2
exit 0
`;

// Also forgets the watchdog's decision files once no watchdog of this deploy runs any more, and
// removes what an interrupted deploy left (its deployer killed before its own cleanup): an
// activation or restore unit of another token that has ended, whose log nobody wrote for 10
// minutes and whose watchdog is not armed. Such a unit stays loaded until the next boot
// (RemainAfterExit), a failed one in \`systemctl --failed\`, which a health check such as
// \`systemctl is-system-running\` would count against every later deploy.
const CLEANUP_SCRIPT = `
unit=$1; log=$2; token=$3
dir=\${log%/*}
if [ "$(systemctl show --property=SubState --value "$unit" 2>/dev/null)" = running ]; then exit 0; fi
systemctl stop "$unit" 2>/dev/null
systemctl reset-failed "$unit" 2>/dev/null
rm -f "$log"
if [ -n "$token" ] && ! systemctl is-active --quiet "nixos-fleet-watchdog-$token.service"; then
  rm -rf "$dir/decided-$token" "$dir/reverted-$token"
fi
for old in "$dir"/nixos-fleet-activate-*.service.log "$dir"/nixos-fleet-restore-*.service.log; do
  [ -f "$old" ] && [ "$old" != "$log" ] || continue
  [ -n "$(find "$old" -mmin +10 2>/dev/null)" ] || continue
  left=\${old##*/}; left=\${left%.log}; left_token=\${left%.service}; left_token=\${left_token##*-}
  [ "$(systemctl show --property=SubState --value "$left" 2>/dev/null)" = running ] && continue
  systemctl is-active --quiet "nixos-fleet-watchdog-$left_token.service" && continue
  systemctl stop "$left" 2>/dev/null
  systemctl reset-failed "$left" 2>/dev/null
  rm -f "$old"
  rm -rf "$dir/decided-$left_token" "$dir/reverted-$left_token"
done
exit 0
`;

/** What systemd says about the activation unit. */
export interface UnitStatus {
    /** "loaded", or "not-found" when the unit is gone (never started, collected, or the host rebooted). */
    loadState: string;
    activeState: string;
    subState: string;
    /** 1 exited, 2 killed, 3 dumped (siginfo codes); 0 while running. */
    execMainCode: number;
    /** Exit status, or the signal number when killed. */
    execMainStatus: number;
    mainPid: number;
}

export type ActivationProgress =
    | { kind: "running" }
    | { kind: "exited"; status: number }
    | { kind: "killed"; signal: number }
    | { kind: "gone" };

export function parseUnitStatus(output: string): UnitStatus {
    const values = new Map<string, string>();
    for (const line of output.split("\n")) {
        const eq = line.indexOf("=");
        if (eq > 0) values.set(line.slice(0, eq).trim(), line.slice(eq + 1).trim());
    }
    const num = (key: string): number => {
        const n = Number(values.get(key) ?? "0");
        return Number.isFinite(n) ? n : 0;
    };
    return {
        // No LoadState at all: systemctl did not answer; that is not "the unit is gone".
        loadState: values.get("LoadState") ?? "unknown",
        activeState: values.get("ActiveState") ?? "inactive",
        subState: values.get("SubState") ?? "dead",
        execMainCode: num("ExecMainCode"),
        execMainStatus: num("ExecMainStatus"),
        mainPid: num("MainPID"),
    };
}

/** Whether the activation still runs, how it ended, or that the host no longer knows it. */
export function progressOf(status: UnitStatus): ActivationProgress {
    if (status.loadState === "unknown") return { kind: "running" }; // unknown: look again
    if (status.loadState !== "loaded") return { kind: "gone" };
    if (status.mainPid > 0 || status.activeState === "activating" || status.activeState === "deactivating") return { kind: "running" };
    if (status.execMainCode === 1) return { kind: "exited", status: status.execMainStatus };
    if (status.execMainCode === 2 || status.execMainCode === 3) return { kind: "killed", signal: status.execMainStatus };
    // Loaded, not running, never ran to an exit: treat as gone (e.g. reset by hand).
    return { kind: "gone" };
}

/** The units switch-to-configuration names in "the following units failed: a.service b.service". */
export function failedUnitsOf(output: string): string[] {
    const units = new Set<string>();
    for (const match of output.matchAll(/the following units failed: ([^\n]*)/g)) {
        for (const unit of match[1]!.split(/[\s,]+/)) if (unit) units.add(unit);
    }
    return [...units];
}

/** switch-to-configuration refused because another activation holds its lock (it changed nothing). */
export const refusedForLock = (output: string): boolean => /Could not acquire lock/.test(output);

export type Preflight = { ready: HostState } | "no-systemd-run" | "locked" | { busy: string[] };

export async function preflight(connection: SshConnection, lockWaitSeconds: number, busyWaitSeconds: number): Promise<Preflight> {
    const result = await connection.run(
        ["sh", "-c", PREFLIGHT_SCRIPT, "nixos-fleet-preflight", ACTIVATION_LOCK, String(lockWaitSeconds), String(busyWaitSeconds)],
        { asRoot: true, timeoutMs: (Math.max(lockWaitSeconds, busyWaitSeconds) * 2 + 30) * 1000 },
    );
    const ready = result.stdout.indexOf("@ready\n");
    if (result.code === 0 && ready >= 0) return { ready: parseHostState(result.stdout.slice(ready + "@ready\n".length)) };
    if (result.code === 10) return "no-systemd-run";
    if (result.code === 11) return "locked";
    if (result.code === 13) return { busy: result.stdout.split(/\s+/).filter(Boolean) };
    throw new FleetError({
        phase: "activate",
        host: connection.target.name,
        message: `checking the host before activation failed (exit ${result.code ?? result.signal}); nothing was changed`,
        hint: "the deploy user needs root (or passwordless sudo) on the host",
        detail: tail(result.stderr),
    });
}

export async function startUnit(connection: SshConnection, unit: ActivationUnit, storePath: string, action: string, installBootloader: boolean) {
    return connection.run(["sh", "-c", START_SCRIPT, "nixos-fleet-activate", unit.unit, unit.log, storePath, action, installBootloader ? "1" : ""], {
        asRoot: true,
        timeoutMs: 60_000,
    });
}

/**
 * Streams the activation's output from byte `from` until it has ended; `onOutput` sees every
 * chunk as it arrives, as bytes (so the caller knows exactly how far it got, even when the output
 * is not valid UTF-8 and the connection then drops: the next follow starts at that byte).
 * Returns the unit's status read right after the output ended, or undefined when that did not
 * come whole (the caller then asks with unitStatus). Rejects with the connection's FleetError when
 * the connection drops.
 */
export async function followUnit(connection: SshConnection, unit: ActivationUnit, from: number, onOutput: (chunk: Buffer) => void): Promise<UnitReport | undefined> {
    const result = await connection.run(["sh", "-c", FOLLOW_SCRIPT, "nixos-fleet-follow", unit.unit, unit.log, String(from)], {
        asRoot: true,
        stdoutEncoding: "latin1",
        onStdout: (chunk) => onOutput(Buffer.from(chunk, "latin1")),
    });
    return statusAfterFollow(result.stderr);
}

/** The status FOLLOW_SCRIPT printed on stderr after the log, when it came whole and systemctl answered. */
export function statusAfterFollow(stderr: string): UnitReport | undefined {
    const begin = stderr.lastIndexOf(STATUS_BEGIN);
    if (begin < 0) return undefined;
    const printed = stderr.slice(begin + STATUS_BEGIN.length);
    const end = STATUS_END.exec(printed);
    if (!end || end[1] !== "0" || !printed.includes("@state\n")) return undefined;
    const [unitPart, statePart = ""] = printed.slice(0, end.index).split("@state\n");
    return { status: parseUnitStatus(unitPart ?? ""), host: parseHostState(statePart) };
}

export interface UnitReport {
    status: UnitStatus;
    host: HostState;
}

export async function unitStatus(connection: SshConnection, unit: ActivationUnit): Promise<UnitReport> {
    let result = await connection.run(["sh", "-c", STATUS_SCRIPT, "nixos-fleet-status", unit.unit], { asRoot: true, timeoutMs: 30_000 });
    // 20: systemctl itself did not answer (busy, re-executing): ask again before calling it unknown.
    for (let attempt = 1; result.code === 20 && attempt < 3; attempt++) {
        await new Promise((resolve) => setTimeout(resolve, 1000));
        result = await connection.run(["sh", "-c", STATUS_SCRIPT, "nixos-fleet-status", unit.unit], { asRoot: true, timeoutMs: 30_000 });
    }
    if (result.code !== 0 || !result.stdout.includes("@state\n")) {
        throw new FleetError({
            phase: "activate",
            host: connection.target.name,
            outcome: "unknown",
            message: `outcome unknown: could not read the state of the activation unit ${unit.unit} (exit ${result.code ?? result.signal})`,
            hint: `on the host, \`systemctl status ${unit.unit}\` shows the activation; \`pulumi refresh\` records what the host runs`,
            detail: tail(result.stderr),
        });
    }
    const [unitPart, statePart = ""] = result.stdout.split("@state\n");
    return { status: parseUnitStatus(unitPart ?? ""), host: parseHostState(statePart) };
}

/** Stops and forgets the finished unit and its log (best effort: the next deploy uses a new name). */
export async function removeUnit(connection: SshConnection, unit: ActivationUnit): Promise<void> {
    const token = /^nixos-fleet-activate-([0-9a-f]+)\.service$/.exec(unit.unit)?.[1] ?? "";
    await connection.run(["sh", "-c", CLEANUP_SCRIPT, "nixos-fleet-cleanup", unit.unit, unit.log, token], { asRoot: true, timeoutMs: 30_000 }).catch(() => undefined);
}
