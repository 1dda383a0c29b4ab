// A simulated NixOS host behind a FakeRunner: it answers the remote commands the deploy phases
// send (state read, nix-env profile changes, switch-to-configuration, store validity) by changing
// its own little state, so tests can check the end state as well as the exact commands.
//
// Activation runs as on a real host since activationUnit.ts: fixed `sh -c SCRIPT NAME args…`
// commands, told apart by their $0 (NAME): nixos-fleet-preflight, -activate (systemd-run of
// switch-to-configuration in a transient unit whose output goes to a log file), -follow (the log
// from a byte offset), -status (systemctl show of the unit, "@state", the host state), -cleanup
// (unit, log, token; nothing while the unit still runs); the restore unit (nixos-fleet-restore-start:
// systemd-run of the restore script, whose steps the fake runs on its own state); the watchdog's
// `systemd-run --unit=nixos-fleet-watchdog-…` and its disarm (nixos-fleet-disarm: exit 0 claimed
// now, 4 a deployer had claimed it, 3 the watchdog did; the claimant written to decided-<token>/by).
// The preflight (exit 0 ready, 10 no systemd-run, 11 the lock held, 13 another deploy under way)
// waits, as the real one does on the host, for other deploys' units and armed watchdogs to end.
// The fake runs a unit's work at once when it starts; knobs make the unit run on for some status
// polls, drop the connection during a follow, time out a start, keep the host away, reboot it, let
// systemctl fail, leave earlier deploys' watchdogs armed, or let its watchdog decide before the
// deployer.
import { ACTIVATION_LOCK, RUNTIME_DIR } from "../../../src/deploy/activationUnit";
import { SYSTEM_PROFILE } from "../../../src/deploy/hostState";
import type { ClosurePath } from "../../../src/nix/closure";
import {
    type FakeRunner,
    type RecordedCall,
    type Reply,
    local,
    masterCheck,
    masterExit,
    masterStart,
    remote,
    remoteProgram,
    sshOption,
} from "./fakeRunner";

export type Action = "switch" | "boot" | "test" | "dry-activate";

export interface FakeHostState {
    /** generation number → store path */
    generations: Map<number, string>;
    profileGeneration?: number;
    current?: string;
    booted?: string;
    /** What the boot loader starts next (switch/boot of a system set it). */
    bootDefault?: string;
    /** nixos-version of each system store path. */
    versions: Map<string, string>;
    store: Set<string>;
}

/** How a run of switch-to-configuration ended, and what it printed (in order, as the unit's log has it). */
interface SwitchRun {
    exit: { code: number } | { signal: number };
    stdout: string;
    stderr: string;
    /** stdout and stderr interleaved, as StandardOutput=/StandardError=append: write them. */
    log: string;
}

/** What a transient unit of the deploy (activation or restore) has in common. */
interface FakeUnitBase {
    /** nixos-fleet-activate-<token>.service, nixos-fleet-restore-<token>.service */
    name: string;
    log: string;
    /** The whole log, once the unit's process has ended. */
    output: string;
    /** What the log holds while the unit still runs (its first line). */
    runningOutput: string;
    /** output and runningOutput hold bytes, one character each (latin1), not text: a log that is not valid UTF-8. */
    bytes?: boolean;
    exit: { code: number } | { signal: number };
    /** Status polls that still report the unit running. */
    runningPolls: number;
    /** False once cleaned up (stop + reset-failed) or forgotten by a reboot: systemd says not-found. */
    loaded: boolean;
    /** The log file still exists. */
    logExists: boolean;
}

/** A transient activation unit started by the activate script. */
export interface FakeUnit extends FakeUnitBase {
    toplevel: string;
    action: Action;
    /** NIXOS_INSTALL_BOOTLOADER as passed ("1" or ""). */
    bootloader: string;
}

/** A transient restore unit started by restorePrevious: the restore script with its arguments. */
export interface FakeRestoreUnit extends FakeUnitBase {
    /** The restore script's positional arguments, as passed ("" when empty). */
    args: { action: string; generation: string; profilePath: string; current: string; onlyProfile: string };
    /** What the restore script ran on the host, in order, as commands. */
    ran: string[];
}

/** A watchdog started with systemd-run by armWatchdog, with its positional arguments. */
export interface FakeWatchdog {
    /** nixos-fleet-watchdog-<token> */
    unit: string;
    dir: string;
    token: string;
    timeout: number;
    action: string;
    generation: string;
    profilePath: string;
    current: string;
    /** The activation unit it waits for. */
    activationUnit: string;
    /** Stopped by a deployer's successful disarm. */
    stopped: boolean;
    /** It put the previous system back itself. */
    reverted: boolean;
    /** Its activation never appeared within 120 s: it ended without reverting. */
    gaveUp?: true;
}

/** Who claimed a deploy's decision (mkdir decided-<token>), as decided-<token>/by says. */
export type Claimant = "deployer" | "watchdog";

/** What became of the activation unit of an earlier deploy whose watchdog is still armed. */
export type StaleActivation = "ended" | "failed" | "running" | "not started";

/** The connection breaks during one follow of a unit's log (the activation's or the restore's). */
export interface FollowDrop {
    /** Bytes of the log the follow streams before the connection breaks (default 0). */
    afterBytes?: number;
    /**
     * ssh exits 255 without a word (the master died with sshd): only `ssh -O check` tells. Otherwise
     * ssh says "Connection closed by 127.0.0.1 port 22".
     */
    silent?: boolean;
    /** Master starts refused afterwards (Infinity: the host never comes back). */
    downFor?: number;
    /** The host rebooted: it forgot the unit, and runs its boot default. */
    reboot?: boolean;
}

/** The kernel every system of a fake host has unless `kernels` names another. */
export const KERNEL_1 = "/nix/store/kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk-linux-6.6.1";

const WATCHDOG_UNIT = /^--unit=nixos-fleet-watchdog-(.+)$/;
const RESTORE_UNIT = /^nixos-fleet-restore-[0-9a-f]+\.service$/;
/** Every restore script says its steps this way (activationUnit.ts restoreSteps reads them). */
const RESTORE_MARK = "nixos-fleet-restore: done: ";
const UNITS_FAILED_NOTE = " (units of that system failed, see above)";
/** What the runner gives back for a command killed by its timeout. */
const TIMED_OUT: Reply = { code: null, signal: "SIGKILL", timedOut: true };

export class FakeHost {
    readonly state: FakeHostState;
    /** switch-to-configuration of these store paths fails (exit 1; the boot loader was already installed). */
    readonly failingSystems = new Set<string>();
    /** switch-to-configuration of these store paths exits 0 having changed nothing. */
    readonly noopSystems = new Set<string>();
    /** switch-to-configuration of these store paths switches, but these units fail: exit 4. */
    readonly failingUnits = new Map<string, string[]>();
    /** switch-to-configuration of these store paths is killed by this signal (boot loader installed, nothing activated). */
    readonly killedSystems = new Map<string, number>();
    /** Each switch-to-configuration run, as "<path> <action>": over SSH, in a unit, or by the watchdog. */
    readonly activations: string[] = [];
    /** Activation units, in the order they were started. */
    readonly units: FakeUnit[] = [];
    /** Restore units, in the order they were started. */
    readonly restores: FakeRestoreUnit[] = [];
    /** Watchdogs, in the order they were armed. */
    readonly watchdogs: FakeWatchdog[] = [];
    /** Tokens whose restore decision was claimed (mkdir of decided-<token>), by deployer or watchdog; removed by the cleanup. */
    readonly decided = new Set<string>();
    /**
     * decided-<token>/by: who claimed it (the disarm writes "deployer", the watchdog
     * "watchdog"). A token in `decided` without an entry here has no by-file (the disarm reads that as
     * the watchdog's claim).
     */
    readonly decidedBy = new Map<string, Claimant>();
    /** Tokens whose watchdog reverted the host (touch reverted-<token>); removed by the cleanup. */
    readonly revertedFiles = new Set<string>();
    /** Control sockets of the SSH masters that run now. */
    readonly masters = new Set<string>();

    /** false: the preflight exits 10 (no systemd-run), and so does the watchdog's systemd-run. */
    hasSystemdRun = true;
    /** Another activation holds the activation lock: the preflight exits 11. */
    lockHeld = false;
    /** Another activation takes the lock between the preflight and the next switch-to-configuration: it exits 1, "Could not acquire lock". */
    lockTakenBeforeNextSwitch = false;
    /** The next activation unit reports "running" to this many status polls; follows meanwhile see only its first line. */
    unitRunningPolls = 0;
    /** The same for the next restore unit. */
    restoreRunningPolls = 0;
    /**
     * Connection drops, one used by each follow of a unit's log in turn, the activation's and then
     * the restore's (null: that follow goes through).
     */
    readonly followDrops: (FollowDrop | null)[] = [];
    /** The next activation unit starts, but the connection breaks before the start command returns ("Connection closed"). */
    dropAfterNextStart = false;
    /** The same for the next restore unit. */
    dropAfterNextRestoreStart = false;
    /** The next activation unit starts, but the start command does not return in time (killed by its timeout). */
    timeoutAfterNextStart = false;
    /** The same for the next restore unit. */
    timeoutAfterNextRestoreStart = false;
    /** The next `nix-env` profile change is done, but the connection breaks before it returns. */
    dropAfterNextProfileChange = false;
    /** The next disarm is done on the host (whatever it decided), but the connection breaks before its answer arrives. */
    dropAfterNextDisarm = false;
    /** The next activation's log, as bytes (they need not be valid UTF-8), instead of what its switch printed. */
    nextLogBytes?: Buffer;
    /**
     * The follow prints the unit's status after the log on stderr, as the real script does. Off by
     * default: most tests here check the separate status read (nixos-fleet-status), which the
     * deployer still makes when that part is missing (systemctl silent, output cut off).
     */
    statusAfterFollow = false;
    /** The next status polls find systemctl not answering (the status script exits 20), this many. */
    systemctlFailsAtNextStatus = 0;
    /** `nix-env --switch-generation` fails with this message (e.g. another nix-env holds the profile's lock). */
    switchGenerationFails?: string;
    /** SSH master starts to refuse ("Connection refused"); Infinity: the host never comes back. */
    refuseConnections = 0;
    /** Each system's kernel link (kernel, initrd and kernel-modules follow it); systems not named share KERNEL_1. */
    readonly kernels = new Map<string, string>();
    /** The boot id (/proc/sys/kernel/random/boot_id): a new one at every reboot. */
    bootId = "boot-1";
    /** The reboot marker in /run (deploy/reboot.ts). */
    rebootMarker = false;
    /**
     * What `systemctl reboot` does: the host goes away for `downFor` connection attempts (Infinity:
     * it never comes back), then boots its boot default; `refuse` makes systemctl fail instead.
     */
    onReboot: { downFor: number; refuse?: boolean } = { downFor: 2 };
    /** Secret files written (path → content); a reboot empties those under /run. */
    readonly secretFiles = new Map<string, string>();
    /** Probes that still see systemd starting after a reboot. */
    startingProbes = 0;
    /** The next status poll finds the activation unit gone (reset by hand): LoadState=not-found. */
    unitGoneAtNextStatus = false;
    /** When the deployer disarms, the watchdog has already claimed the decision and reverted the host. */
    watchdogDecidesFirst = false;
    /**
     * Something else happens on the host just before the next script of this name ($0) runs, once
     * (e.g. another deployer's disarm of this deploy's watchdog just before this deploy's own).
     */
    readonly beforeScript = new Map<string, () => void>();

    constructor(initial: Partial<FakeHostState> = {}) {
        this.state = {
            generations: new Map(),
            versions: new Map(),
            store: new Set(),
            ...initial,
        };
    }

    /** A host that has run generations 1..n of `systems` (the last one current and booted). */
    static withGenerations(...systems: string[]): FakeHost {
        const host = new FakeHost();
        systems.forEach((system, i) => host.state.generations.set(i + 1, system));
        const last = systems[systems.length - 1];
        if (last !== undefined) {
            host.state.profileGeneration = systems.length;
            host.state.current = last;
            host.state.booted = last;
            host.state.bootDefault = last;
        }
        for (const system of systems) host.state.store.add(system);
        return host;
    }

    get profileStorePath(): string | undefined {
        const generation = this.state.profileGeneration;
        return generation === undefined ? undefined : this.state.generations.get(generation);
    }

    /** The activation unit of this name started last (loaded or not). */
    unit(name: string): FakeUnit | undefined {
        return [...this.units].reverse().find((unit) => unit.name === name);
    }

    /** The restore unit of this name started last (loaded or not). */
    restore(name: string): FakeRestoreUnit | undefined {
        return [...this.restores].reverse().find((unit) => unit.name === name);
    }

    /** Any unit of this name, activation or restore. */
    private anyUnit(name: string): FakeUnitBase | undefined {
        return this.unit(name) ?? this.restore(name);
    }

    /**
     * Another deployer (or an operator) sets the profile to `path` and runs its
     * switch-to-configuration, outside the commands under test (recorded in `activations` too).
     */
    deployedElsewhere(path: string, action: "switch" | "boot" | "test" = "switch"): void {
        this.state.store.add(path);
        if (action !== "test") {
            const next = Math.max(0, ...this.state.generations.keys()) + 1;
            this.state.generations.set(next, path);
            this.state.profileGeneration = next;
        }
        this.switchTo(path, action);
    }

    /** The output of hostState's READ_STATE_SCRIPT on this host. */
    stateOutput(): string {
        const generation = this.state.profileGeneration;
        return [
            `profile=${generation === undefined ? "" : `system-${generation}-link`}`,
            `profilePath=${this.profileStorePath ?? ""}`,
            `current=${this.state.current ?? ""}`,
            `booted=${this.state.booted ?? ""}`,
            `version=${(this.state.current && this.state.versions.get(this.state.current)) ?? ""}`,
            "",
        ].join("\n");
    }

    /** The host reboots: it boots its boot default, forgets its transient units, drops every connection. */
    reboot(): void {
        // /run is a tmpfs: the logs and the decision files go with the units.
        for (const unit of [...this.units, ...this.restores]) {
            unit.loaded = false;
            unit.logExists = false;
        }
        this.decided.clear();
        this.decidedBy.clear();
        this.revertedFiles.clear();
        this.state.current = this.state.bootDefault;
        this.state.booted = this.state.bootDefault;
        for (const path of [...this.secretFiles.keys()]) if (path.startsWith("/run/")) this.secretFiles.delete(path);
        this.masters.clear();
    }

    /** Runs `<path>/bin/switch-to-configuration <action>` on this host. */
    private switchTo(path: string, action: Action): SwitchRun {
        this.activations.push(`${path} ${action}`);
        const out = (stdout: string[], stderr: string[], exit: SwitchRun["exit"], log = [...stdout, ...stderr]): SwitchRun => ({
            exit,
            stdout: stdout.map((line) => `${line}\n`).join(""),
            stderr: stderr.map((line) => `${line}\n`).join(""),
            log: log.map((line) => `${line}\n`).join(""),
        });
        const installsBootLoader = action === "switch" || action === "boot";
        const changesRunning = action === "switch" || action === "test";
        if (!this.state.store.has(path)) return out([], [`sh: ${path}/bin/switch-to-configuration: not found`], { code: 127 });
        if (this.lockTakenBeforeNextSwitch && action !== "dry-activate") {
            this.lockTakenBeforeNextSwitch = false;
            return out([], ["Could not acquire lock"], { code: 1 });
        }
        if (this.failingSystems.has(path)) {
            // Like the real script: the boot loader is installed first, then activation fails.
            if (installsBootLoader) this.state.bootDefault = path;
            return out(["activating the configuration..."], ["error: the unit foo.service failed to start"], { code: 1 });
        }
        if (this.noopSystems.has(path)) return out(["nothing to do"], [], { code: 0 });
        const signal = this.killedSystems.get(path);
        if (signal !== undefined) {
            if (installsBootLoader) this.state.bootDefault = path;
            return out(["activating the configuration..."], [], { signal });
        }
        if (action === "dry-activate") return out(["would start the following units: foo.service", "dry-activate: done"], [], { code: 0 });
        if (installsBootLoader) this.state.bootDefault = path;
        if (changesRunning) this.state.current = path;
        const failed = this.failingUnits.get(path);
        if (failed && changesRunning) {
            const warning = `warning: the following units failed: ${failed.join(" ")}`;
            const stdout = ["activating the configuration...", "setting up /etc..."];
            const statuses = failed.map((unit) => `× ${unit} - failed (Result: exit-code)`);
            return out(stdout, [warning, ...statuses], { code: 4 }, [...stdout, warning, ...statuses]);
        }
        return out(["activating the configuration...", "setting up /etc...", `${action}: done`], [], { code: 0 });
    }

    private nixEnv(words: string[]): Reply {
        if (words[1] !== "-p" || words[2] !== SYSTEM_PROFILE) return { code: 1, stderr: "fake host: unexpected nix-env profile\n" };
        if (words[3] === "--set" && words[4]) {
            if (!this.state.store.has(words[4])) return { code: 1, stderr: `error: path '${words[4]}' is not valid\n` };
            const next = Math.max(0, ...this.state.generations.keys()) + 1;
            this.state.generations.set(next, words[4]);
            this.state.profileGeneration = next;
            return {};
        }
        if (words[3] === "--switch-generation" && words[4]) {
            if (this.switchGenerationFails !== undefined) return { code: 1, stderr: `${this.switchGenerationFails}\n` };
            const generation = Number(words[4]);
            if (!this.state.generations.has(generation)) return { code: 1, stderr: `error: generation ${generation} does not exist\n` };
            this.state.profileGeneration = generation;
            return { stderr: `switching profile from version ? to ${generation}\n` };
        }
        return { code: 1, stderr: "fake host: unexpected nix-env arguments\n" };
    }

    // The activation scripts of activationUnit.ts and confirm.ts, by their $0.

    /**
     * The preflight: no systemd-run → 10; the lock held → 11; then it waits up to `busyWait` seconds
     * while another deploy's activation or restore unit runs or a watchdog is armed. Meanwhile a
     * watchdog whose activation has ended decides when its timeout is up (it reverts the host, see
     * fireWatchdog), one whose activation never appeared gives up after 120 s; a unit that runs
     * stays running. What is still under way then: exit 13, its units printed. (The real script
     * counts the lock wait apart, so a watchdog's revert holding the lock late in the wait is waited
     * for; see hostScripts.test.ts.)
     */
    private preflight(args: string[]): Reply {
        const [lock, wait = "", busyWait = ""] = args;
        if (args.length !== 3 || lock !== ACTIVATION_LOCK || !/^\d+$/.test(wait) || !/^\d+$/.test(busyWait)) {
            return { code: 2, stderr: `fake host: preflight arguments ${args.join(" ")}\n` };
        }
        if (!this.hasSystemdRun) return { code: 10 };
        if (this.lockHeld) return { code: 11 };
        for (const watchdog of this.watchdogs) {
            if (!this.watchdogActive(watchdog)) continue;
            const activation = this.unit(`nixos-fleet-activate-${watchdog.token}.service`);
            if (!activation) {
                if (120 <= Number(busyWait)) watchdog.gaveUp = true;
            } else if (!this.running(activation.name) && watchdog.timeout <= Number(busyWait)) {
                this.fireWatchdog(watchdog);
            }
        }
        const busy = [
            ...[...this.units, ...this.restores].filter((unit) => this.running(unit.name)).map((unit) => unit.name),
            ...this.watchdogs.filter((watchdog) => this.watchdogActive(watchdog)).map((watchdog) => `${watchdog.unit}.service`),
        ];
        return busy.length ? { code: 13, stdout: `${busy.join(" ")} \n` } : { stdout: `@ready\n${this.stateOutput()}` };
    }

    private startUnit([name = "", log = "", toplevel = "", action = "", bootloader = ""]: string[]): Reply {
        if (log !== `${RUNTIME_DIR}/${name}.log`) return { code: 12, stderr: `fake host: unexpected log file ${log}\n` };
        if (!this.hasSystemdRun) return { code: 127, stderr: "exec: systemd-run: not found\n" };
        if (this.units.some((unit) => unit.name === name && unit.loaded)) {
            return { code: 1, stderr: `Failed to start transient service unit: Unit ${name} was already loaded or has a fragment file.\n` };
        }
        let run: SwitchRun;
        if (this.state.store.has(toplevel)) {
            run = this.switchTo(toplevel, action as Action);
        } else {
            // systemd cannot execute the program: status 203/EXEC, nothing in the log.
            run = { exit: { code: 203 }, stdout: "", stderr: "", log: "" };
        }
        const bytes = this.nextLogBytes;
        this.nextLogBytes = undefined;
        const logText = bytes ? bytes.toString("latin1") : run.log;
        const firstLine = logText.indexOf("\n");
        const runningPolls = this.unitRunningPolls;
        this.unitRunningPolls = 0;
        this.units.push({
            name,
            log,
            toplevel,
            action: action as Action,
            bootloader,
            output: logText,
            runningOutput: runningPolls > 0 && firstLine >= 0 ? logText.slice(0, firstLine + 1) : "",
            ...(bytes ? { bytes: true } : {}),
            exit: run.exit,
            runningPolls,
            loaded: true,
            logExists: true,
        });
        return {};
    }

    private follow(call: RecordedCall, [name = "", log = "", from = ""]: string[]): Reply {
        const unit = this.anyUnit(name);
        if (!unit || unit.log !== log || !unit.logExists || !/^\d+$/.test(from)) return { code: 1 };
        const shown = unit.runningPolls > 0 ? unit.runningOutput : unit.output;
        const visible = unit.bytes ? Buffer.from(shown, "latin1") : Buffer.from(shown);
        const rest = visible.subarray(Number(from));
        // As ssh's stdout reaches the runner: decoded as the caller asked.
        const decode = (data: Buffer) => data.toString(call.options.stdoutEncoding === "latin1" ? "latin1" : "utf8");
        const drop = this.followDrops.shift();
        if (drop) {
            const streamed = decode(rest.subarray(0, drop.afterBytes ?? 0));
            if (streamed) call.options.onStdout?.(streamed);
            this.masters.delete(controlPathOf(call));
            this.refuseConnections = drop.downFor ?? 0;
            if (drop.reboot) this.reboot();
            return { code: 255, stdout: streamed, stderr: drop.silent ? "" : "Connection closed by 127.0.0.1 port 22\r\n" };
        }
        const text = decode(rest);
        if (text) call.options.onStdout?.(text);
        if (!this.statusAfterFollow) return { stdout: text };
        // As the real script: the unit's status after the log, on stderr (a read like nixos-fleet-status's).
        const status = this.unitStatus([name]);
        return { stdout: text, stderr: `@status\n${status.code ? "" : (status.stdout ?? "")}@status-exit ${status.code ?? 0}\n` };
    }

    private unitStatus([name = ""]: string[]): Reply {
        if (this.systemctlFailsAtNextStatus > 0) {
            this.systemctlFailsAtNextStatus -= 1;
            return { code: 20, stderr: "Failed to get properties: Connection timed out\n" };
        }
        const unit = this.anyUnit(name);
        if (unit && this.unitGoneAtNextStatus) {
            this.unitGoneAtNextStatus = false;
            unit.loaded = false;
        }
        let show: Record<string, string | number>;
        if (!unit || !unit.loaded) {
            show = { LoadState: "not-found", ActiveState: "inactive", SubState: "dead", Result: "success", ExecMainCode: 0, ExecMainStatus: 0, MainPID: 0 };
        } else if (unit.runningPolls > 0) {
            unit.runningPolls -= 1;
            show = { LoadState: "loaded", ActiveState: "active", SubState: "running", Result: "success", ExecMainCode: 0, ExecMainStatus: 0, MainPID: 4711 };
        } else if ("signal" in unit.exit) {
            show = { LoadState: "loaded", ActiveState: "failed", SubState: "failed", Result: "signal", ExecMainCode: 2, ExecMainStatus: unit.exit.signal, MainPID: 0 };
        } else if (unit.exit.code === 0) {
            show = { LoadState: "loaded", ActiveState: "active", SubState: "exited", Result: "success", ExecMainCode: 1, ExecMainStatus: 0, MainPID: 0 };
        } else {
            show = { LoadState: "loaded", ActiveState: "failed", SubState: "failed", Result: "exit-code", ExecMainCode: 1, ExecMainStatus: unit.exit.code, MainPID: 0 };
        }
        const lines = Object.entries(show).map(([key, value]) => `${key}=${value}\n`);
        return { stdout: `${lines.join("")}@state\n${this.stateOutput()}` };
    }

    /**
     * The cleanup script: stop and forget the unit, delete its log; with a token, the decision files
     * once no watchdog of it runs. Nothing at all while the unit still runs.
     */
    private cleanupUnit([name = "", log = "", token = ""]: string[]): Reply {
        if (this.running(name)) return {};
        for (const unit of [...this.units, ...this.restores]) {
            if (unit.name !== name) continue;
            unit.loaded = false;
            if (unit.log === log) unit.logExists = false;
        }
        if (token && !this.watchdogs.some((watchdog) => watchdog.token === token && this.watchdogActive(watchdog))) {
            this.decided.delete(token);
            this.decidedBy.delete(token);
            this.revertedFiles.delete(token);
        }
        return {};
    }

    /** `systemctl show --property=SubState --value <name>` says "running". */
    private running(name: string): boolean {
        const unit = this.anyUnit(name);
        return unit !== undefined && unit.loaded && unit.runningPolls > 0;
    }

    /** `systemctl is-active` of a watchdog: armed, and neither stopped by a disarm nor ended by its revert (or by giving up). */
    watchdogActive(watchdog: FakeWatchdog): boolean {
        return !watchdog.stopped && !watchdog.reverted && !watchdog.gaveUp;
    }

    /**
     * What activationUnit.ts's restore script does, step by step, on this host: profile back to the
     * generation (or the profile removed), the boot default and the running system back by
     * switch-to-configuration of the previous systems (exit 4 still counts as done, with a note),
     * saying each step done; the first step that fails ends it with exit 1.
     */
    private runRestore(args: FakeRestoreUnit["args"]): { log: string; exit: { code: number }; ran: string[] } {
        const { action, generation, profilePath, current, onlyProfile } = args;
        const ran: string[] = [];
        let log = "";
        const done = (step: string) => (log += `${RESTORE_MARK}${step}\n`);
        class Failed {}
        const fail = (step: string): never => {
            log += `nixos-fleet-restore: failed at: ${step}\n`;
            throw new Failed();
        };
        const activate = (path: string, how: "boot" | "test", step: string) => {
            ran.push(`${path}/bin/switch-to-configuration ${how}`);
            const run = this.switchTo(path, how);
            log += run.log;
            const code = "code" in run.exit ? run.exit.code : 128 + run.exit.signal;
            if (code === 0) done(step);
            else if (code === 4) done(`${step}${UNITS_FAILED_NOTE}`);
            else fail(step);
        };
        const reactivate = onlyProfile !== "1";
        try {
            if (action === "switch" || action === "boot") {
                if (generation) {
                    const words = ["nix-env", "-p", SYSTEM_PROFILE, "--switch-generation", generation];
                    ran.push(words.join(" "));
                    const reply = this.nixEnv(words);
                    log += `${reply.stdout ?? ""}${reply.stderr ?? ""}`;
                    if (reply.code) fail(`profile back to generation ${generation}`);
                    done(`profile back to generation ${generation}`);
                    if (reactivate && profilePath) activate(profilePath, "boot", "boot default back to the previous generation");
                } else {
                    ran.push(`rm -f ${SYSTEM_PROFILE} ${SYSTEM_PROFILE}-*-link`);
                    this.state.generations.clear();
                    this.state.profileGeneration = undefined;
                    done("removed the new system profile");
                    if (reactivate && current) activate(current, "boot", "boot default back to the previously running system");
                }
            }
            if ((action === "switch" || action === "test") && reactivate && current) {
                activate(current, "test", "re-activated the previously running system");
            }
        } catch (error) {
            if (error instanceof Failed) return { log, exit: { code: 1 }, ran };
            throw error;
        }
        return { log, exit: { code: 0 }, ran };
    }

    /** START_SCRIPT_UNIT running the restore script: `<unit> <log> <script> <action> <gen> <profile path> <current> <only profile>`. */
    private startRestore(args: string[]): Reply {
        const [name = "", log = "", script = "", action = "", generation = "", profilePath = "", current = "", onlyProfile = ""] = args;
        if (args.length !== 8) return { code: 2, stderr: `fake host: the restore unit takes 8 arguments, not ${args.length}\n` };
        if (!RESTORE_UNIT.test(name) || log !== `${RUNTIME_DIR}/${name}.log`) return { code: 12, stderr: `fake host: unexpected restore unit ${name} ${log}\n` };
        if (!script.includes(RESTORE_MARK)) return { code: 2, stderr: "fake host: not the restore script\n" };
        if (!this.hasSystemdRun) return { code: 127, stderr: "exec: systemd-run: not found\n" };
        if (this.restores.some((unit) => unit.name === name && unit.loaded)) {
            return { code: 1, stderr: `Failed to start transient service unit: Unit ${name} was already loaded or has a fragment file.\n` };
        }
        const unitArgs = { action, generation, profilePath, current, onlyProfile };
        const run = this.runRestore(unitArgs);
        const firstLine = run.log.indexOf("\n");
        const runningPolls = this.restoreRunningPolls;
        this.restoreRunningPolls = 0;
        this.restores.push({
            name,
            log,
            args: unitArgs,
            ran: run.ran,
            output: run.log,
            runningOutput: runningPolls > 0 && firstLine >= 0 ? run.log.slice(0, firstLine + 1) : "",
            exit: run.exit,
            runningPolls,
            loaded: true,
            logExists: true,
        });
        return {};
    }

    private armWatchdog(words: string[]): Reply {
        if (!this.hasSystemdRun) return { code: 127, stderr: "sudo: systemd-run: command not found\n" };
        const token = WATCHDOG_UNIT.exec(words[1] ?? "")?.[1];
        const dash = words.indexOf("--");
        const [sh, c, , name, dir = "", argToken = "", timeout = "", action = "", generation = "", profilePath = "", current = "", activationUnit = ""] = words.slice(dash + 1);
        if (!token || dash < 0 || sh !== "sh" || c !== "-c" || name !== "nixos-fleet-watchdog") {
            return { code: 1, stderr: `fake host: unexpected systemd-run ${words.join(" ")}\n` };
        }
        if (this.watchdogs.some((watchdog) => watchdog.unit === `nixos-fleet-watchdog-${token}` && !watchdog.stopped && !watchdog.reverted)) {
            return { code: 1, stderr: `Failed to start transient service unit: Unit nixos-fleet-watchdog-${token}.service was already loaded or has a fragment file.\n` };
        }
        this.watchdogs.push({
            unit: `nixos-fleet-watchdog-${token}`,
            dir,
            token: argToken,
            timeout: Number(timeout),
            action,
            generation,
            profilePath,
            current,
            activationUnit,
            stopped: false,
            reverted: false,
        });
        return {};
    }

    /** What the watchdog script does once its timeout has passed without a confirmation. */
    private watchdogRevert(watchdog: FakeWatchdog): void {
        if (watchdog.action === "switch" || watchdog.action === "boot") {
            if (watchdog.generation) this.state.profileGeneration = Number(watchdog.generation);
            if (watchdog.profilePath) this.switchTo(watchdog.profilePath, "boot");
        }
        if (watchdog.action === "switch" || watchdog.action === "test") {
            if (watchdog.current) this.switchTo(watchdog.current, "test");
        }
        watchdog.reverted = true;
        this.revertedFiles.add(watchdog.token);
    }

    /** Every armed watchdog whose decision is still open times out now: it claims the decision and reverts the host. */
    fireWatchdogs(): void {
        for (const watchdog of this.watchdogs) this.fireWatchdog(watchdog);
    }

    /** This watchdog times out now: unless stopped or decided, it claims the decision (by watchdog) and reverts the host. */
    private fireWatchdog(watchdog: FakeWatchdog): void {
        if (!this.watchdogActive(watchdog) || this.decided.has(watchdog.token)) return;
        this.decided.add(watchdog.token);
        this.decidedBy.set(watchdog.token, "watchdog");
        this.watchdogRevert(watchdog);
    }

    /** The disarm script: 0 this deployer claimed the decision now, 4 a deployer had claimed it already, 3 the watchdog had. */
    private disarm([dir = "", token = ""]: string[]): Reply {
        const watchdog = this.watchdogs.find((candidate) => candidate.token === token && candidate.dir === dir);
        if (this.decided.has(token)) return { code: this.decidedBy.get(token) === "deployer" ? 4 : 3 };
        this.decided.add(token);
        if (watchdog && this.watchdogDecidesFirst && !watchdog.stopped) {
            // The watchdog's mkdir came first: it reverts, the deployer's claim fails.
            this.decidedBy.set(token, "watchdog");
            this.watchdogRevert(watchdog);
            return { code: 3 };
        }
        this.decidedBy.set(token, "deployer");
        if (watchdog) watchdog.stopped = true;
        return {};
    }

    /**
     * An earlier deploy (token) left its watchdog armed and went away (killed, or cut off): the
     * watchdog would put generation `revertTo` back (switch). Its activation unit ended (exit 0) or
     * failed (exit 1), still runs, or was never started.
     */
    staleWatchdog(token: string, activation: StaleActivation, revertTo: number, timeout = 30): FakeWatchdog {
        const previous = this.state.generations.get(revertTo) ?? "";
        const unit = `nixos-fleet-activate-${token}.service`;
        const watchdog: FakeWatchdog = {
            unit: `nixos-fleet-watchdog-${token}`,
            dir: RUNTIME_DIR,
            token,
            timeout,
            action: "switch",
            generation: String(revertTo),
            profilePath: previous,
            current: previous,
            activationUnit: unit,
            stopped: false,
            reverted: false,
        };
        this.watchdogs.push(watchdog);
        if (activation !== "not started") {
            const path = this.profileStorePath ?? "";
            this.units.push({
                name: unit,
                log: `${RUNTIME_DIR}/${unit}.log`,
                toplevel: path,
                action: "switch",
                bootloader: "",
                output: "",
                runningOutput: "",
                exit: { code: activation === "failed" ? 1 : 0 },
                runningPolls: activation === "running" ? Number.POSITIVE_INFINITY : 0,
                loaded: true,
                logExists: true,
            });
        }
        return watchdog;
    }

    private shell(call: RecordedCall): Reply {
        const words = call.remoteCommand!;
        const script = words[2] ?? "";
        const args = words.slice(4);
        const before = words[3] === undefined ? undefined : this.beforeScript.get(words[3]);
        if (before) {
            this.beforeScript.delete(words[3]!);
            before();
        }
        switch (words[3]) {
            case "nixos-fleet-preflight":
                return this.preflight(args);
            case "nixos-fleet-activate": {
                const started = this.startUnit(args);
                if (started.code) return started;
                if (this.timeoutAfterNextStart) {
                    this.timeoutAfterNextStart = false;
                    return TIMED_OUT;
                }
                if (!this.dropAfterNextStart) return started;
                this.dropAfterNextStart = false;
                this.masters.delete(controlPathOf(call));
                return { code: 255, stderr: "Connection closed by 127.0.0.1 port 22\r\n" };
            }
            case "nixos-fleet-restore-start": {
                const started = this.startRestore(args);
                if (started.code) return started;
                if (this.timeoutAfterNextRestoreStart) {
                    this.timeoutAfterNextRestoreStart = false;
                    return TIMED_OUT;
                }
                if (!this.dropAfterNextRestoreStart) return started;
                this.dropAfterNextRestoreStart = false;
                this.masters.delete(controlPathOf(call));
                return { code: 255, stderr: "Connection closed by 127.0.0.1 port 22\r\n" };
            }
            case "nixos-fleet-follow":
                return this.follow(call, args);
            case "nixos-fleet-status":
                return this.unitStatus(args);
            case "nixos-fleet-cleanup":
                return this.cleanupUnit(args);
            case "nixos-fleet-boot-files": {
                const files = (arg: string) => {
                    const system = arg === "/run/booted-system" ? this.state.booted : arg;
                    const kernel = system === undefined ? "" : (this.kernels.get(system) ?? KERNEL_1);
                    const link = (suffix: string) => (kernel ? `${kernel}${suffix}` : "");
                    return `@system\nkernel=${link("/bzImage")}\ninitrd=${link("-initrd/initrd")}\nkernel-modules=${link("-modules")}\n`;
                };
                return { stdout: args.map(files).join("") };
            }
            case "nixos-fleet-secret-put":
                // /run/keys is a tmpfs: reboot() empties it.
                this.secretFiles.set(args[0]!, call.options.input ?? "");
                return {};
            case "nixos-fleet-reboot-prepare":
                this.rebootMarker = true;
                return { stdout: `${this.bootId}\n` };
            case "nixos-fleet-reboot-probe": {
                const state = this.startingProbes > 0 ? "starting" : "running";
                if (this.startingProbes > 0) this.startingProbes -= 1;
                return { stdout: `bootId=${this.bootId}\nmarker=${this.rebootMarker ? "present" : "absent"}\nbooted=${this.state.booted ?? ""}\nstate=${state}\n` };
            }
            case "nixos-fleet-disarm": {
                const decided = this.disarm(args);
                if (!this.dropAfterNextDisarm) return decided;
                this.dropAfterNextDisarm = false;
                this.masters.delete(controlPathOf(call));
                return { code: 255, stderr: "Connection closed by 127.0.0.1 port 22\r\n" };
            }
            case undefined:
                break;
            default:
                return { code: 1, stderr: `fake host: unexpected script name ${words[3]}\n` };
        }
        if (script.includes("readlink") && script.includes("/run/current-system")) return { stdout: this.stateOutput() };
        return { code: 1, stderr: `fake host: unexpected script ${script}\n` };
    }

    private refused(call: RecordedCall): Reply | undefined {
        if (this.refuseConnections <= 0) return undefined;
        const address = (call.argv[call.argv.length - (call.remoteCommand ? 2 : 1)] ?? "").split("@").pop();
        return { code: 255, stderr: `ssh: connect to host ${address} port 22: Connection refused\r\n` };
    }

    /**
     * A remote command: rides its master when that runs; without one, ssh (ControlMaster=no)
     * connects directly, which fails while the host refuses connections.
     */
    private answer(respond: (call: RecordedCall) => Reply): (call: RecordedCall) => Reply {
        return (call) => {
            if (!this.masters.has(controlPathOf(call))) {
                const refused = this.refused(call);
                if (refused) return refused;
            }
            return respond(call);
        };
    }

    /** Installs this host's answers into `runner`. */
    attach(runner: FakeRunner): this {
        runner.on(masterStart, (call) => {
            const refused = this.refused(call);
            if (refused) {
                if (this.refuseConnections !== Infinity) this.refuseConnections -= 1;
                return refused;
            }
            this.masters.add(controlPathOf(call));
            return {};
        });
        runner.on(masterCheck, (call) =>
            this.masters.has(controlPathOf(call))
                ? { stderr: "Master running (pid=4242)\r\n" }
                : { code: 255, stderr: `Control socket connect(${controlPathOf(call)}): No such file or directory\r\n` },
        );
        runner.on(masterExit, (call) => {
            const path = controlPathOf(call);
            if (!this.masters.delete(path)) return { code: 255, stderr: `Control socket connect(${path}): No such file or directory\r\n` };
            return { stderr: "Exit request sent.\r\n" };
        });
        runner.on(remote("sh", "-c"), this.answer((call) => this.shell(call)));
        runner.on(remote("systemd-run"), this.answer((call) => this.armWatchdog(call.remoteCommand!)));
        runner.on(
            remote("systemctl", "reboot"),
            this.answer(() => {
                if (this.onReboot.refuse) return { code: 1, stderr: "Failed to reboot system via logind: Access denied\n" };
                this.reboot();
                this.bootId = `boot-${Number(this.bootId.slice(5)) + 1}`;
                this.rebootMarker = false;
                this.refuseConnections = this.onReboot.downFor;
                return { code: 255, stderr: "Connection to 127.0.0.1 closed by remote host.\r\n" };
            }),
        );
        runner.on(
            remote("nix-env"),
            this.answer((call) => {
                const reply = this.nixEnv(call.remoteCommand!);
                if (!this.dropAfterNextProfileChange || reply.code) return reply;
                this.dropAfterNextProfileChange = false;
                this.masters.delete(controlPathOf(call));
                return { code: 255, stderr: "Connection closed by 127.0.0.1 port 22\r\n" };
            }),
        );
        runner.on(
            remoteProgram("/bin/switch-to-configuration"),
            this.answer((call) => {
                const program = call.remoteCommand![0]!;
                const run = this.switchTo(program.slice(0, -"/bin/switch-to-configuration".length), call.remoteCommand![1] as Action);
                if (run.stdout) call.options.onStdout?.(run.stdout);
                if (run.stderr) call.options.onStderr?.(run.stderr);
                return "signal" in run.exit
                    ? { code: null, signal: "SIGKILL", stdout: run.stdout, stderr: run.stderr }
                    : { code: run.exit.code, stdout: run.stdout, stderr: run.stderr };
            }),
        );
        runner.on(
            remote("nix-store", "--check-validity", "--print-invalid"),
            this.answer((call) => ({
                stdout: call.remoteCommand!.slice(3).filter((path) => !this.state.store.has(path)).map((path) => `${path}\n`).join(""),
            })),
        );
        return this;
    }
}

function controlPathOf(call: RecordedCall): string {
    return sshOption(call.argv, "ControlPath") ?? "";
}

/**
 * The local side of a deploy: `nix-store --realise` of known derivations, `nix path-info` of known
 * closures, and `nix copy` that puts the closure into `host`'s store.
 */
export function attachLocalNix(runner: FakeRunner, host: FakeHost, closures: Map<string, ClosurePath[]>): void {
    runner.on(local("nix-store", "--realise"), {});
    // A derivation's closure (the plan's package diff): the derivation alone.
    runner.on(local("nix-store", "--query", "--requisites"), (call) => ({ stdout: `${call.argv[call.argv.length - 1]}\n` }));
    runner.on(local("path-info", "--json", "--recursive"), (call) => {
        const closure = closures.get(call.argv[call.argv.length - 1]!);
        if (!closure) return { code: 1, stderr: "error: path is not valid\n" };
        return { stdout: JSON.stringify(closure.map(({ path, narSize }) => ({ path, narSize, references: [] }))) };
    });
    runner.on(local("copy", "--no-check-sigs", "--to"), (call) => {
        const closure = closures.get(call.argv[call.argv.length - 1]!);
        if (!closure) return { code: 1, stderr: "error: path is not valid\n" };
        for (const entry of closure) host.state.store.add(entry.path);
        return {};
    });
}

/**
 * A remote command, short: the activation scripts as "<$0> <args…>" (an empty argument as ''; the
 * restore script the restore unit runs as RESTORE_SCRIPT), hostState's state read as "read state",
 * the watchdog's systemd-run as "systemd-run --unit=… <args…>"; anything else as its words.
 */
export function shortCommand(words: readonly string[]): string {
    const shown = (args: readonly string[]) => args.map((word) => (word === "" ? "''" : word));
    if (words[0] === "sh" && words[1] === "-c") {
        if (words[3] === "nixos-fleet-restore-start") {
            const args = shown(words.slice(4));
            if (args[2] !== undefined) args[2] = args[2].includes(RESTORE_MARK) ? "RESTORE_SCRIPT" : "<not the restore script>";
            return [words[3], ...args].join(" ");
        }
        if (words[3] !== undefined) return [words[3], ...shown(words.slice(4))].join(" ");
        if (words[2]?.includes("readlink") && words[2].includes("/run/current-system")) return "read state";
    }
    if (words[0] === "systemd-run") {
        const dash = words.indexOf("--");
        return ["systemd-run", words[1] ?? "", ...shown(words.slice(dash + 5))].join(" ");
    }
    return words.join(" ");
}

/** The remote commands `runner` sent, in order, as shortCommand writes them. */
export function remoteCommandsOf(runner: FakeRunner): string[] {
    return runner.calls.filter((call) => call.remoteCommand).map((call) => shortCommand(call.remoteCommand!));
}
