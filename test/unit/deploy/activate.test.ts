import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { activate, checkReadyToActivate, restorePrevious, type ActivateOptions, type Action, type RestoreOptions } from "../../../src/deploy/activate";
import { activationUnit, removeUnit, restoreUnit, unitStatus } from "../../../src/deploy/activationUnit";
import { armWatchdog, claim } from "../../../src/deploy/confirm";
import { parseHostState, SYSTEM_PROFILE } from "../../../src/deploy/hostState";
import { formatFleetError } from "../../../src/errors";
import { SshConnection } from "../../../src/ssh/connection";
import { fakeClock, inFakeTime, rejectionInFakeTime } from "../helpers/clock";
import { FakeHost, remoteCommandsOf } from "../helpers/fakeHost";
import { FakeRunner, masterCheck, masterStart, remote, type RecordedCall } from "../helpers/fakeRunner";
import { fleetErrorOf, runtimeDir, storePath, target } from "../helpers/fixtures";

const v1 = storePath("nixos-system-alpha-1");
const v2 = storePath("nixos-system-alpha-2");
const next = storePath("nixos-system-alpha-3");
const STC = "/bin/switch-to-configuration";
const TOKEN = "0a1b2c3d4e5f6a7b";
const { unit: UNIT, log: LOG } = activationUnit(TOKEN);

const SWITCH_OUTPUT = "activating the configuration...\nsetting up /etc...\nswitch: done\n";
const FIRST_LINE = "activating the configuration...\n";

/** A host on generation 2 (v2 running and booted), with `next` already copied. */
function hostOnGeneration2(): FakeHost {
    const host = FakeHost.withGenerations(v1, v2);
    host.state.store.add(next);
    return host;
}

let clock: ReturnType<typeof fakeClock>;
beforeEach(() => {
    clock = fakeClock();
});
afterEach(() => clock.stop());

function setup(host: FakeHost, user = "root") {
    const runner = new FakeRunner();
    host.attach(runner);
    const connection = new SshConnection(target({ user }), { runner: runner.run, runtimeDir: runtimeDir() });
    const before = parseHostState(host.stateOutput());
    const log: string[] = [];
    const chunks: string[] = [];
    const options = (extra: Partial<ActivateOptions> = {}): ActivateOptions => ({
        token: TOKEN,
        sleep: clock.sleep,
        log: (line) => log.push(line),
        onOutput: (chunk) => chunks.push(chunk),
        ...extra,
    });
    return { runner, connection, before, log, chunks, options };
}

const activateCommands = (path: string, action: Action, bootloader = "''") => [`nixos-fleet-activate ${UNIT} ${LOG} ${path} ${action} ${bootloader}`];
const follow = (from: number) => `nixos-fleet-follow ${UNIT} ${LOG} ${from}`;
const STATUS = `nixos-fleet-status ${UNIT}`;
const SET_NEXT = `nix-env -p ${SYSTEM_PROFILE} --set ${next}`;

/** Commands that would put the previous system back (a restore unit, or its steps over SSH): activate() must never send one. */
const restoreCommands = (runner: FakeRunner) =>
    remoteCommandsOf(runner).filter(
        (command) => command.startsWith("nixos-fleet-restore-start") || command.includes("--switch-generation") || command.startsWith(`${v2}${STC}`),
    );

/** The byte offsets the follows of the activation log started from, in order. */
const followOffsets = (runner: FakeRunner) => runner.matching(remote("sh", "-c")).filter((call) => call.remoteCommand![3] === "nixos-fleet-follow").map((call) => Number(call.remoteCommand![6]));

describe("checkReadyToActivate (preflight)", { timeout: 1000 }, () => {
    it("passes the activation lock, its wait and the wait for another deploy (default 60 s) to the preflight script, as root, and changes nothing", async () => {
        const host = hostOnGeneration2();
        const { runner, connection } = setup(host, "deploy");
        await checkReadyToActivate(connection, 7);
        expect(remoteCommandsOf(runner)).toEqual(["nixos-fleet-preflight /run/nixos/switch-to-configuration.lock 7 60"]);
        const call = runner.matching(remote("sh", "-c"))[0]!;
        expect(call.viaSudo).toBe(true);
        // Bounded by twice the longer wait plus a margin.
        expect(call.options.timeoutMs).toBe(150_000);
        expect(host.state.profileGeneration).toBe(2);
    });

    it("exit 11: another activation holds the lock, nothing was changed", async () => {
        const host = hostOnGeneration2();
        host.lockHeld = true;
        const { connection } = setup(host);
        const error = await fleetErrorOf(checkReadyToActivate(connection));
        expect(error).toMatchObject({ phase: "activate", host: "alpha", outcome: "failed" });
        expect(error.message).toBe(
            "another activation is running on the host (it has held /run/nixos/switch-to-configuration.lock for 20s); nothing was changed",
        );
        expect(error.hint).toContain("systemctl list-units 'nixos-*'");
    });

    it("exit 10: no systemd-run, said plainly", async () => {
        const host = hostOnGeneration2();
        host.hasSystemdRun = false;
        const { connection } = setup(host);
        const error = await fleetErrorOf(checkReadyToActivate(connection));
        expect(error.message).toBe("the host has no systemd-run (or systemd is not running); nothing was changed");
        expect(error.hint).toContain("transient systemd unit");
    });

    it("exit 13: another deploy stayed under way through the wait (its units named); nothing was changed", async () => {
        const host = hostOnGeneration2();
        const stale = host.staleWatchdog("5a1e", "running", 1);
        const { runner, connection } = setup(host);
        const error = await fleetErrorOf(checkReadyToActivate(connection));
        expect(error).toMatchObject({ phase: "activate", host: "alpha", outcome: "failed" });
        expect(error.message).toBe(
            "another deploy is under way on the host (nixos-fleet-activate-5a1e.service, nixos-fleet-watchdog-5a1e.service still running after 60s); nothing was changed",
        );
        expect(error.hint).toContain("a rollback watchdog ends when its deploy is confirmed or it has reverted the host");
        expect(remoteCommandsOf(runner)).toEqual(["nixos-fleet-preflight /run/nixos/switch-to-configuration.lock 20 60"]);
        expect(stale).toMatchObject({ stopped: false, reverted: false });
        expect(host.state).toMatchObject({ profileGeneration: 2, current: v2 });
    });

    it("any other exit (sudo refused) says nothing was changed and shows the output", async () => {
        const host = hostOnGeneration2();
        const { runner, connection } = setup(host, "deploy");
        runner.on(remote("sh", "-c"), { code: 1, stderr: "sudo: a password is required\n" });
        const error = await fleetErrorOf(checkReadyToActivate(connection));
        expect(error.message).toBe("checking the host before activation failed (exit 1); nothing was changed");
        expect(error.detail).toContain("sudo: a password is required");
    });
});

describe("activate", { timeout: 1000 }, () => {
    it("switch: sets the profile, runs switch-to-configuration in the unit, follows its log, reads the outcome, and leaves the unit to the caller", async () => {
        const host = hostOnGeneration2();
        const { runner, connection, before, chunks, options } = setup(host);
        const result = await activate(connection, next, "switch", before, options());
        expect(remoteCommandsOf(runner)).toEqual([SET_NEXT, ...activateCommands(next, "switch"), follow(0), STATUS]);
        expect(result.kind).toBe("switched");
        if (result.kind !== "switched") return;
        expect(result.after).toMatchObject({ generation: 3, profileStorePath: next, currentStorePath: next });
        expect(result.output).toBe(SWITCH_OUTPUT);
        expect(chunks.join("")).toBe(SWITCH_OUTPUT);
        expect(host.activations).toEqual([`${next} switch`]);
        expect(host.state).toMatchObject({ profileGeneration: 3, current: next, bootDefault: next });
        // The unit stays until the caller has decided (the watchdog reads the unit's end from systemd).
        expect(host.unit(UNIT)).toMatchObject({ loaded: true, logExists: true, toplevel: next, action: "switch" });
        expect(clock.slept).toEqual([]);
    });

    it("runs every step as root through sudo -n for a deploy user", async () => {
        const host = hostOnGeneration2();
        const { runner, connection, before, options } = setup(host, "deploy");
        await checkReadyToActivate(connection);
        await activate(connection, next, "switch", before, options());
        const remoteCalls = runner.calls.filter((call) => call.remoteCommand);
        expect(remoteCalls).toHaveLength(5);
        expect(remoteCalls.every((call) => call.viaSudo)).toBe(true);
        expect(remoteCalls[0]!.remoteArgv!.slice(0, 4)).toEqual(["sudo", "-n", "--", "sh"]);
    });

    it("passes NIXOS_INSTALL_BOOTLOADER, bounds the start but not the follow (an activation may take long)", async () => {
        const host = hostOnGeneration2();
        const { runner, connection, before, options } = setup(host);
        await activate(connection, next, "switch", before, options({ installBootloader: true }));
        expect(remoteCommandsOf(runner)[1]).toBe(activateCommands(next, "switch", "1")[0]);
        expect(host.unit(UNIT)!.bootloader).toBe("1");
        const byName = (name: string) => runner.matching(remote("sh", "-c")).find((call) => call.remoteCommand![3] === name)!;
        expect(byName("nixos-fleet-activate").options.timeoutMs).toBe(60_000);
        expect(byName("nixos-fleet-follow").options.timeoutMs).toBeUndefined();
        expect(byName("nixos-fleet-status").options.timeoutMs).toBe(30_000);
    });

    it("exit 1: a failed activation is returned with its output; activate restores nothing itself", async () => {
        const host = hostOnGeneration2();
        host.failingSystems.add(next);
        const { runner, connection, before, options } = setup(host);
        const result = await activate(connection, next, "switch", before, options());
        expect(result).toEqual({
            kind: "failed",
            reason: "switch-to-configuration switch exited with 1",
            output: "activating the configuration...\nerror: the unit foo.service failed to start\n",
        });
        expect(remoteCommandsOf(runner)).toEqual([SET_NEXT, ...activateCommands(next, "switch"), follow(0), STATUS]);
        expect(restoreCommands(runner)).toEqual([]);
        // The caller restores: the host is left as the failed activation left it.
        expect(host.state).toMatchObject({ profileGeneration: 3, current: v2, bootDefault: next });
    });

    it("exit 4: the system switched but units failed, named from the output", async () => {
        const host = hostOnGeneration2();
        host.failingUnits.set(next, ["a.service", "b.service"]);
        const { connection, before, options } = setup(host);
        const result = await activate(connection, next, "switch", before, options());
        expect(result.kind).toBe("unitsFailed");
        if (result.kind !== "unitsFailed") return;
        expect(result.units).toEqual(["a.service", "b.service"]);
        expect(result.after).toMatchObject({ generation: 3, currentStorePath: next });
        expect(result.output).toContain("warning: the following units failed: a.service b.service\n");
        expect(host.state.current).toBe(next);
    });

    it("exit 1 with 'Could not acquire lock': refused, only the profile moved", async () => {
        const host = hostOnGeneration2();
        host.lockTakenBeforeNextSwitch = true;
        const { runner, connection, before, options } = setup(host);
        const result = await activate(connection, next, "switch", before, options());
        expect(result).toEqual({ kind: "refused", output: "Could not acquire lock\n" });
        expect(restoreCommands(runner)).toEqual([]);
        expect(host.state).toMatchObject({ profileGeneration: 3, current: v2, bootDefault: v2 });
    });

    it("exit 1 without the lock message is a failure, not a refusal", async () => {
        const host = hostOnGeneration2();
        host.failingSystems.add(next);
        const { connection, before, options } = setup(host);
        expect((await activate(connection, next, "switch", before, options())).kind).toBe("failed");
    });

    it("killed by a signal: failed, saying so", async () => {
        const host = hostOnGeneration2();
        host.killedSystems.set(next, 9);
        const { connection, before, options } = setup(host);
        const result = await activate(connection, next, "switch", before, options());
        expect(result).toMatchObject({ kind: "failed", reason: "switch-to-configuration switch was killed by signal 9", output: FIRST_LINE });
    });

    it("a unit that cannot be started is a failure naming it (the profile was already set)", async () => {
        const host = hostOnGeneration2();
        host.hasSystemdRun = false;
        const { runner, connection, before, options } = setup(host);
        const result = await activate(connection, next, "switch", before, options());
        expect(result).toEqual({ kind: "failed", reason: `the activation unit ${UNIT} could not be started (exit 127)`, output: "exec: systemd-run: not found\n" });
        expect(remoteCommandsOf(runner)).toEqual([SET_NEXT, ...activateCommands(next, "switch")]);
    });

    it("a verification failure: exit 0, but /run/current-system is not the new system", async () => {
        const host = hostOnGeneration2();
        host.noopSystems.add(next);
        const { connection, before, options } = setup(host);
        const result = await activate(connection, next, "switch", before, options());
        expect(result).toEqual({
            kind: "failed",
            reason: `switch-to-configuration switch exited with 0, but /run/current-system is ${v2}, not ${next}`,
            output: "nothing to do\n",
        });
    });

    it("a verification failure on the profile (boot) names the path the profile points at", async () => {
        const host = hostOnGeneration2();
        const { runner, connection, before, options } = setup(host);
        // nix-env --set "succeeds" without creating a generation.
        runner.on(remote("nix-env", "-p", SYSTEM_PROFILE, "--set"), {});
        const result = await activate(connection, next, "boot", before, options());
        expect(result).toMatchObject({ kind: "failed", reason: `switch-to-configuration boot exited with 0, but the system profile points at ${v2}, not ${next}` });
    });

    it("test: no profile change, the running system is the new one", async () => {
        const host = hostOnGeneration2();
        const { runner, connection, before, options } = setup(host);
        const result = await activate(connection, next, "test", before, options());
        expect(remoteCommandsOf(runner)).toEqual([...activateCommands(next, "test"), follow(0), STATUS]);
        expect(result).toMatchObject({ kind: "switched", after: { generation: 2, profileStorePath: v2, currentStorePath: next } });
    });

    it("boot: sets the profile and leaves the running system alone", async () => {
        const host = hostOnGeneration2();
        const { connection, before, options } = setup(host);
        const result = await activate(connection, next, "boot", before, options());
        expect(result).toMatchObject({ kind: "switched", after: { generation: 3, profileStorePath: next, currentStorePath: v2 } });
        expect(host.state.bootDefault).toBe(next);
    });

    it("switchToGeneration (rollback): switches the profile to that generation instead of adding one", async () => {
        const host = hostOnGeneration2();
        const { runner, connection, before, options } = setup(host);
        const result = await activate(connection, v1, "switch", before, options({ switchToGeneration: 1 }));
        expect(remoteCommandsOf(runner).slice(0, 2)).toEqual([`nix-env -p ${SYSTEM_PROFILE} --switch-generation 1`, ...activateCommands(v1, "switch")]);
        expect(result).toMatchObject({ kind: "switched", after: { generation: 1, currentStorePath: v1 } });
        expect([...host.state.generations.keys()]).toEqual([1, 2]);
    });

    it("a failure to set the profile stops before the unit and says nothing changed", async () => {
        const host = hostOnGeneration2();
        const { runner, connection, before, options } = setup(host, "deploy");
        runner.on(remote("nix-env"), { code: 1, stderr: "sudo: a password is required\n" });
        const error = await fleetErrorOf(activate(connection, next, "switch", before, options()));
        expect(error).toMatchObject({ phase: "activate", host: "alpha", message: "setting the system profile failed; nothing was changed" });
        expect(error.detail).toContain("a password is required");
        expect(remoteCommandsOf(runner)).toEqual([SET_NEXT]);
        expect(host.units).toEqual([]);
    });

    it("dry-activate runs directly (no unit, no profile) and reads the state", async () => {
        const host = hostOnGeneration2();
        const { runner, connection, before, chunks, options } = setup(host, "deploy");
        const result = await activate(connection, next, "dry-activate", before, options());
        expect(remoteCommandsOf(runner)).toEqual([`${next}${STC} dry-activate`, "read state"]);
        expect(runner.calls.filter((call) => call.remoteCommand).map((call) => call.viaSudo)).toEqual([true, false]);
        expect(result).toMatchObject({ kind: "switched", after: { generation: 2, currentStorePath: v2 } });
        expect(chunks.join("")).toContain("would start the following units: foo.service");
        expect(host.units).toEqual([]);
    });

    it("a failed dry-activate changes nothing and does not claim a restore", async () => {
        const host = hostOnGeneration2();
        host.failingSystems.add(next);
        const { runner, connection, before, options } = setup(host);
        const error = await fleetErrorOf(activate(connection, next, "dry-activate", before, options()));
        expect(remoteCommandsOf(runner)).toEqual([`${next}${STC} dry-activate`]);
        expect(error.message).toBe("switch-to-configuration dry-activate exited with 1; dry-activate changes nothing, so the host is as it was");
        expect(error.message).not.toContain("restored");
        expect(error.detail).toContain("foo.service failed to start");
        expect(host.state).toMatchObject({ profileGeneration: 2, current: v2 });
    });
});

describe("activate: a unit that runs on, and a connection that drops", { timeout: 1000 }, () => {
    it("a unit still running when a follow ends: status polls, then follows on from the bytes already seen", async () => {
        const host = hostOnGeneration2();
        host.unitRunningPolls = 2;
        const { runner, connection, before, chunks, options } = setup(host);
        const result = await activate(connection, next, "switch", before, options());
        const first = Buffer.byteLength(FIRST_LINE);
        expect(remoteCommandsOf(runner)).toEqual([SET_NEXT, ...activateCommands(next, "switch"), follow(0), STATUS, follow(first), STATUS, follow(first), STATUS]);
        expect(result).toMatchObject({ kind: "switched", output: SWITCH_OUTPUT });
        expect(chunks.join("")).toBe(SWITCH_OUTPUT);
        expect(runner.matching(masterStart)).toHaveLength(1);
    });

    it("connection lost during the follow ('Connection closed'): reconnects, finds the unit still running, follows it to success", async () => {
        const host = hostOnGeneration2();
        host.unitRunningPolls = 1;
        host.followDrops.push({});
        const { runner, connection, before, chunks, log, options } = setup(host);
        const result = await activate(connection, next, "switch", before, options());
        const first = Buffer.byteLength(FIRST_LINE);
        expect(remoteCommandsOf(runner)).toEqual([
            SET_NEXT,
            ...activateCommands(next, "switch"),
            follow(0), // dropped
            follow(0),
            STATUS, // still running
            follow(first),
            STATUS, // exited 0
        ]);
        expect(result).toMatchObject({ kind: "switched", output: SWITCH_OUTPUT, after: { generation: 3, currentStorePath: next } });
        expect(chunks.join("")).toBe(SWITCH_OUTPUT);
        expect(runner.matching(masterStart)).toHaveLength(2);
        expect(connection.handshakes).toBe(2);
        expect(log).toEqual([
            "connection lost during activation (ssh to root@alpha.example.org failed); reconnecting to learn the outcome",
            "reconnected; the activation ran on without us",
        ]);
        expect(restoreCommands(runner)).toEqual([]);
        expect(clock.slept).toEqual([]);
    });

    // The offset counts the bytes as they arrive, also those of a follow the drop cut short: the
    // next follow starts right after them, and nothing is shown or recorded twice.
    it("connection lost after part of the log was streamed: follows again from the byte after it, without repeating output", async () => {
        const host = hostOnGeneration2();
        host.unitRunningPolls = 1;
        host.followDrops.push({ afterBytes: 10 });
        const { runner, connection, before, chunks, options } = setup(host);
        const result = await activate(connection, next, "switch", before, options());
        expect(followOffsets(runner)).toEqual([0, 10, Buffer.byteLength(FIRST_LINE)]);
        expect(chunks.join("")).toBe(SWITCH_OUTPUT);
        expect(result).toMatchObject({ kind: "switched", output: SWITCH_OUTPUT });
    });

    it("output that is not valid UTF-8, and a drop inside a character: the next follow starts at the exact byte, nothing skipped or repeated", async () => {
        const host = hostOnGeneration2();
        // A Latin-1 service message (0xe9 alone is no UTF-8), then a 3-byte character the drop cuts in two.
        const log = Buffer.concat([Buffer.from("caf"), Buffer.from([0xe9]), Buffer.from(" ready\nok \u2713 done\nswitch: done\n")]);
        host.nextLogBytes = log;
        const cut = log.indexOf(Buffer.from("\u2713")) + 1;
        host.followDrops.push({ afterBytes: cut });
        const { runner, connection, before, chunks, options } = setup(host);
        const result = await activate(connection, next, "switch", before, options());
        // The resume is at the byte after the last one received (counted as characters, 0xe9's
        // replacement would have counted 3 and skipped two bytes).
        expect(followOffsets(runner)).toEqual([0, cut]);
        const whole = log.toString("utf8");
        expect(result).toMatchObject({ kind: "switched", output: whole });
        expect(chunks.join("")).toBe(whole);
        expect(whole).toContain("ok \u2713 done\n");
    });

    it("a silent exit 255 with the master gone (ssh -O check fails) is a lost connection too", async () => {
        const host = hostOnGeneration2();
        host.followDrops.push({ silent: true });
        const { runner, connection, before, log, options } = setup(host);
        const result = await activate(connection, next, "switch", before, options());
        expect(runner.matching(masterCheck)).toHaveLength(1);
        expect(log[0]).toBe("connection lost during activation (the SSH connection was lost (its master connection ended)); reconnecting to learn the outcome");
        expect(followOffsets(runner)).toEqual([0, 0]);
        expect(result).toMatchObject({ kind: "switched", output: SWITCH_OUTPUT });
    });

    it("reconnect finds the unit ended with exit 0: switched, with the whole output read back", async () => {
        const host = hostOnGeneration2();
        host.followDrops.push({});
        const { runner, connection, before, options } = setup(host);
        const result = await activate(connection, next, "switch", before, options());
        expect(remoteCommandsOf(runner).slice(2)).toEqual([follow(0), follow(0), STATUS]);
        expect(result).toMatchObject({ kind: "switched", output: SWITCH_OUTPUT });
    });

    it("reconnect finds the unit ended with exit 4: unitsFailed, units named", async () => {
        const host = hostOnGeneration2();
        host.failingUnits.set(next, ["a.service", "b.service"]);
        host.followDrops.push({});
        const { runner, connection, before, options } = setup(host);
        const result = await activate(connection, next, "switch", before, options());
        expect(result).toMatchObject({ kind: "unitsFailed", units: ["a.service", "b.service"] });
        expect(restoreCommands(runner)).toEqual([]);
    });

    it("reconnect finds the unit ended with exit 1: failed, with its output", async () => {
        const host = hostOnGeneration2();
        host.failingSystems.add(next);
        host.followDrops.push({});
        const { runner, connection, before, options } = setup(host);
        const result = await activate(connection, next, "switch", before, options());
        expect(result).toEqual({
            kind: "failed",
            reason: "switch-to-configuration switch exited with 1",
            output: "activating the configuration...\nerror: the unit foo.service failed to start\n",
        });
        expect(restoreCommands(runner)).toEqual([]);
    });

    it("a host back after two refused connections: backs off 0.5 s, 1 s, then learns the outcome", async () => {
        const host = hostOnGeneration2();
        host.followDrops.push({ downFor: 2 });
        const { runner, connection, before, options } = setup(host);
        const result = await activate(connection, next, "switch", before, options({ reconnectSeconds: 10 }));
        expect(result.kind).toBe("switched");
        expect(clock.slept).toEqual([500, 1000]);
        expect(runner.matching(masterStart)).toHaveLength(4);
    });

    it("a host that never comes back within reconnectSeconds: outcome unknown, nothing restored, the unit left alone", async () => {
        const host = hostOnGeneration2();
        host.followDrops.push({ downFor: Infinity });
        const { runner, connection, before, options } = setup(host);
        const error = await fleetErrorOf(activate(connection, next, "switch", before, options({ reconnectSeconds: 10 })));
        expect(error.outcome).toBe("unknown");
        expect(error.phase).toBe("activate");
        expect(error.message).toMatch(/^outcome unknown: the connection was lost during activation and the host did not answer again within 10s \(.*refused the connection\); nothing was restored/);
        expect(error.message).not.toMatch(/failed|restored it|deployed/);
        expect(error.hint).toContain("pulumi refresh");
        expect(error.hint).toContain(`systemctl status ${UNIT}`);
        // Backoff doubling from 0.5 s, within the bound.
        expect(clock.slept).toEqual([500, 1000, 2000, 4000]);
        expect(clock.elapsed()).toBeLessThanOrEqual(10_000);
        expect(runner.matching(masterStart)).toHaveLength(1 + 5);
        // Nothing after the drop reached the host: no status, no cleanup, no restore.
        expect(remoteCommandsOf(runner)).toEqual([SET_NEXT, ...activateCommands(next, "switch"), follow(0)]);
        expect(restoreCommands(runner)).toEqual([]);
        expect(host.unit(UNIT)!.loaded).toBe(true);
        expect(host.state).toMatchObject({ profileGeneration: 3, current: next });
        const text = formatFleetError(error);
        expect(text.split("\n")[0]).toMatch(/^host alpha: activate: outcome unknown: /);
        expect(text).not.toContain("activate failed");
    });

    it("outcome unknown says what the host ran when it was last seen", async () => {
        const host = hostOnGeneration2();
        host.unitRunningPolls = 1;
        // The first follow ends while the unit runs; the second one loses the host for good.
        host.followDrops.push(null, { downFor: Infinity });
        const { runner, connection, before, options } = setup(host);
        const error = await fleetErrorOf(activate(connection, next, "switch", before, options({ reconnectSeconds: 1 })));
        expect(followOffsets(runner)).toEqual([0, Buffer.byteLength(FIRST_LINE)]);
        expect(error.outcome).toBe("unknown");
        expect(error.message).toContain(`When last seen it ran ${next} with the profile at generation 3.`);
        expect(clock.slept).toEqual([500]);
    });

    it("the host forgot the unit (it rebooted): outcome unknown, never a restore", async () => {
        const host = hostOnGeneration2();
        host.unitRunningPolls = 1;
        host.followDrops.push({ reboot: true });
        const { runner, connection, before, options } = setup(host);
        const error = await fleetErrorOf(activate(connection, next, "switch", before, options()));
        expect(error.outcome).toBe("unknown");
        expect(error.message.startsWith(
            `outcome unknown: the host no longer knows the activation unit ${UNIT} (the host went away or rebooted during activation, or the unit was never started or was removed); nothing was restored`,
        )).toBe(true);
        // It read the status after reconnecting, then stopped: no restore.
        expect(remoteCommandsOf(runner).slice(2)).toEqual([follow(0), follow(0), STATUS]);
        expect(restoreCommands(runner)).toEqual([]);
        expect(error.message).toContain(`When last seen it ran ${next}`);
    });

    it("a unit removed by hand while followed (LoadState=not-found): outcome unknown, no cleanup, no restore", async () => {
        const host = hostOnGeneration2();
        host.unitGoneAtNextStatus = true;
        const { runner, connection, before, options } = setup(host);
        const error = await fleetErrorOf(activate(connection, next, "switch", before, options()));
        expect(error.outcome).toBe("unknown");
        expect(error.message).toContain(`the host no longer knows the activation unit ${UNIT}`);
        expect(remoteCommandsOf(runner)).toEqual([SET_NEXT, ...activateCommands(next, "switch"), follow(0), STATUS]);
        expect(restoreCommands(runner)).toEqual([]);
    });
});

describe("activate: a connection lost while the unit starts", { timeout: 1000 }, () => {
    /** Answers the start command with a lost connection, without reaching the host: the unit never started. */
    const startNeverArrives = (runner: FakeRunner) =>
        runner.once((call) => call.remoteCommand?.[3] === "nixos-fleet-activate", { code: 255, stderr: "Connection closed by 127.0.0.1 port 22\r\n" });

    it("the unit started, then the connection dropped before the start command returned: the outcome is learned as after any drop (follow, then status)", async () => {
        const host = hostOnGeneration2();
        host.dropAfterNextStart = true;
        const { runner, connection, before, chunks, log, options } = setup(host);
        const result = await activate(connection, next, "switch", before, options());
        expect(remoteCommandsOf(runner)).toEqual([SET_NEXT, ...activateCommands(next, "switch"), follow(0), STATUS]);
        expect(result).toMatchObject({ kind: "switched", output: SWITCH_OUTPUT, after: { generation: 3, profileStorePath: next, currentStorePath: next } });
        expect(chunks.join("")).toBe(SWITCH_OUTPUT);
        expect(log).toEqual(["connection lost while starting the activation (ssh to root@alpha.example.org failed); reconnecting to learn the outcome"]);
        // Started once, never a second time; nothing restored; the unit left to the caller.
        expect(host.units).toHaveLength(1);
        expect(host.activations).toEqual([`${next} switch`]);
        expect(restoreCommands(runner)).toEqual([]);
        expect(host.unit(UNIT)).toMatchObject({ loaded: true, logExists: true });
        expect(host.state).toMatchObject({ profileGeneration: 3, current: next, bootDefault: next });
    });

    it("the unit started and failed, then the connection dropped: failed with its output (the caller restores), not a connect error", async () => {
        const host = hostOnGeneration2();
        host.failingSystems.add(next);
        host.dropAfterNextStart = true;
        const { runner, connection, before, options } = setup(host);
        const result = await activate(connection, next, "switch", before, options());
        expect(result).toEqual({
            kind: "failed",
            reason: "switch-to-configuration switch exited with 1",
            output: "activating the configuration...\nerror: the unit foo.service failed to start\n",
        });
        expect(remoteCommandsOf(runner)).toEqual([SET_NEXT, ...activateCommands(next, "switch"), follow(0), STATUS]);
        expect(restoreCommands(runner)).toEqual([]);
    });

    it("the connection dropped before the unit started: the host does not know the unit, outcome unknown, nothing restored", async () => {
        const host = hostOnGeneration2();
        const { runner, connection, before, options } = setup(host);
        startNeverArrives(runner);
        const error = await fleetErrorOf(activate(connection, next, "switch", before, options()));
        expect(error).toMatchObject({ phase: "activate", host: "alpha", outcome: "unknown" });
        expect(error.message).toBe(
            `outcome unknown: the host no longer knows the activation unit ${UNIT} (the host went away or rebooted during activation, or the unit was never started or was removed); ` +
                `nothing was restored, since the activation may have run to its end. When last seen it ran ${v2} with the profile at generation 3.`,
        );
        expect(remoteCommandsOf(runner)).toEqual([SET_NEXT, ...activateCommands(next, "switch"), follow(0), STATUS]);
        expect(host.units).toEqual([]);
        expect(restoreCommands(runner)).toEqual([]);
        // The profile was set before the start: left as it is for the caller (and `pulumi refresh`).
        expect(host.state).toMatchObject({ profileGeneration: 3, current: v2 });
    });

    it("the unit started, and the host then stays away: outcome unknown within reconnectSeconds, nothing restored", async () => {
        const host = hostOnGeneration2();
        host.dropAfterNextStart = true;
        host.followDrops.push({ downFor: Infinity });
        const { runner, connection, before, log, options } = setup(host);
        const error = await fleetErrorOf(activate(connection, next, "switch", before, options({ reconnectSeconds: 10 })));
        expect(error.outcome).toBe("unknown");
        expect(error.message).toMatch(/^outcome unknown: the connection was lost during activation and the host did not answer again within 10s \(.*refused the connection\); nothing was restored/);
        expect(remoteCommandsOf(runner)).toEqual([SET_NEXT, ...activateCommands(next, "switch"), follow(0)]);
        expect(log[0]).toBe("connection lost while starting the activation (ssh to root@alpha.example.org failed); reconnecting to learn the outcome");
        expect(clock.slept).toEqual([500, 1000, 2000, 4000]);
        expect(restoreCommands(runner)).toEqual([]);
        expect(host.unit(UNIT)!.loaded).toBe(true);
    });

    it("a start command that fails for another reason (not a lost connection) is still 'could not be started', with no follow", async () => {
        const host = hostOnGeneration2();
        const { runner, connection, before, options } = setup(host);
        runner.once((call) => call.remoteCommand?.[3] === "nixos-fleet-activate", { code: 1, stderr: "Failed to start transient service unit: Access denied\n" });
        const result = await activate(connection, next, "switch", before, options());
        expect(result).toEqual({
            kind: "failed",
            reason: `the activation unit ${UNIT} could not be started (exit 1)`,
            output: "Failed to start transient service unit: Access denied\n",
        });
        expect(remoteCommandsOf(runner)).toEqual([SET_NEXT, ...activateCommands(next, "switch")]);
    });
});

describe("activate: a start or a profile change that does not answer", { timeout: 1000 }, () => {
    const TIMED_OUT = { code: null, signal: "SIGKILL" as const, timedOut: true };
    const NOT_IN_TIME = "starting the activation unit did not answer in time; asking systemd what became of it";

    it("a start killed by its timeout after the unit started is not 'could not be started': follow and status learn how it ended", async () => {
        const host = hostOnGeneration2();
        host.timeoutAfterNextStart = true;
        const { runner, connection, before, log, chunks, options } = setup(host);
        const result = await activate(connection, next, "switch", before, options());
        expect(result).toMatchObject({ kind: "switched", output: SWITCH_OUTPUT, after: { generation: 3, currentStorePath: next } });
        expect(remoteCommandsOf(runner)).toEqual([SET_NEXT, ...activateCommands(next, "switch"), follow(0), STATUS]);
        expect(log).toEqual([NOT_IN_TIME]);
        expect(chunks.join("")).toBe(SWITCH_OUTPUT);
        expect(host.units).toHaveLength(1);
        expect(restoreCommands(runner)).toEqual([]);
    });

    it("a start that timed out, whose unit failed: failed with its output (the caller restores)", async () => {
        const host = hostOnGeneration2();
        host.failingSystems.add(next);
        host.timeoutAfterNextStart = true;
        const { connection, before, options } = setup(host);
        const result = await activate(connection, next, "switch", before, options());
        expect(result).toEqual({ kind: "failed", reason: "switch-to-configuration switch exited with 1", output: "activating the configuration...\nerror: the unit foo.service failed to start\n" });
    });

    it("a start that timed out before the unit existed (code null, no unit): outcome unknown, never 'could not be started', nothing restored", async () => {
        const host = hostOnGeneration2();
        const { runner, connection, before, log, options } = setup(host);
        runner.once((call) => call.remoteCommand?.[3] === "nixos-fleet-activate", TIMED_OUT);
        const error = await fleetErrorOf(activate(connection, next, "switch", before, options()));
        expect(error).toMatchObject({ phase: "activate", host: "alpha", outcome: "unknown" });
        expect(error.message).toMatch(new RegExp(`^outcome unknown: the host no longer knows the activation unit ${UNIT.replace(/\./g, "\\.")} `));
        expect(remoteCommandsOf(runner)).toEqual([SET_NEXT, ...activateCommands(next, "switch"), follow(0), STATUS]);
        expect(log).toEqual([NOT_IN_TIME]);
        expect(host.units).toEqual([]);
        expect(restoreCommands(runner)).toEqual([]);
    });

    it("a start that fails with an exit code after a long time is still 'could not be started' (only no answer means 'find out')", async () => {
        const host = hostOnGeneration2();
        const { runner, connection, before, options } = setup(host);
        runner.once((call) => call.remoteCommand?.[3] === "nixos-fleet-activate", { code: 1, durationMs: 59_000, stderr: "Failed to start transient service unit: Unit exists\n" });
        const result = await activate(connection, next, "switch", before, options());
        expect(result).toMatchObject({ kind: "failed", reason: `the activation unit ${UNIT} could not be started (exit 1)` });
        expect(remoteCommandsOf(runner)).toEqual([SET_NEXT, ...activateCommands(next, "switch")]);
    });

    it("the connection lost while setting the profile: outcome unknown (the profile may have moved), no unit started", async () => {
        const host = hostOnGeneration2();
        host.dropAfterNextProfileChange = true;
        const { runner, connection, before, options } = setup(host);
        const error = await fleetErrorOf(activate(connection, next, "switch", before, options()));
        expect(error).toMatchObject({ phase: "activate", host: "alpha", outcome: "unknown" });
        expect(error.message).toBe(
            `outcome unknown: the connection was lost while setting the system profile (ssh to root@alpha.example.org failed); ` +
                `the profile may point at ${next} while the host runs its previous system, so the next boot could run it`,
        );
        expect(error.hint).toContain("pulumi refresh");
        expect(formatFleetError(error).split("\n")[0]).toMatch(/^host alpha: activate: outcome unknown: the connection was lost while setting the system profile/);
        expect(remoteCommandsOf(runner)).toEqual([SET_NEXT]);
        expect(host.units).toEqual([]);
        expect(host.state).toMatchObject({ profileGeneration: 3, current: v2 });
    });

    it("the connection lost while switching the profile to a generation (rollback): outcome unknown as well", async () => {
        const host = hostOnGeneration2();
        host.dropAfterNextProfileChange = true;
        const { runner, connection, before, options } = setup(host);
        const error = await fleetErrorOf(activate(connection, v1, "switch", before, options({ switchToGeneration: 1 })));
        expect(error).toMatchObject({ outcome: "unknown" });
        expect(error.message).toContain(`the profile may point at ${v1}`);
        expect(remoteCommandsOf(runner)).toEqual([`nix-env -p ${SYSTEM_PROFILE} --switch-generation 1`]);
    });

    it("a profile change that fails (not a lost connection) still says nothing was changed", async () => {
        const host = hostOnGeneration2();
        const { runner, connection, before, options } = setup(host);
        runner.once(remote("nix-env"), { code: 1, stderr: "error: lock held\n" });
        const error = await fleetErrorOf(activate(connection, next, "switch", before, options()));
        expect(error).toMatchObject({ outcome: "failed", message: "setting the system profile failed; nothing was changed" });
    });
});

describe("activate: the unit's state cannot be read", { timeout: 1000 }, () => {
    const isStatus = (call: RecordedCall) => call.remoteCommand?.[3] === "nixos-fleet-status";

    it("the status command fails (sudo refused): outcome unknown naming the unit, with its output; nothing restored, the unit left alone", async () => {
        const host = hostOnGeneration2();
        const { runner, connection, before, options } = setup(host, "deploy");
        runner.once(isStatus, { code: 1, stderr: "sudo: a password is required\n" });
        const error = await fleetErrorOf(activate(connection, next, "switch", before, options()));
        expect(error).toMatchObject({ phase: "activate", host: "alpha", outcome: "unknown" });
        expect(error.message).toBe(`outcome unknown: could not read the state of the activation unit ${UNIT} (exit 1)`);
        expect(error.detail).toBe("sudo: a password is required");
        expect(error.hint).toContain(`systemctl status ${UNIT}`);
        expect(error.hint).toContain("pulumi refresh");
        expect(formatFleetError(error).split("\n")[0]).toBe(`host alpha: activate: outcome unknown: could not read the state of the activation unit ${UNIT} (exit 1)`);
        expect(remoteCommandsOf(runner)).toEqual([SET_NEXT, ...activateCommands(next, "switch"), follow(0), STATUS]);
        expect(restoreCommands(runner)).toEqual([]);
        expect(host.unit(UNIT)).toMatchObject({ loaded: true, logExists: true });
        expect(host.state).toMatchObject({ profileGeneration: 3, current: next });
    });

    it("the status command exits 0 but prints no '@state' section: outcome unknown, never read as 'gone' or 'failed'", async () => {
        const host = hostOnGeneration2();
        const { runner, connection, before, options } = setup(host);
        runner.once(isStatus, { stdout: "LoadState=loaded\nActiveState=active\nSubState=exited\n" });
        const error = await fleetErrorOf(activate(connection, next, "switch", before, options()));
        expect(error.outcome).toBe("unknown");
        expect(error.message).toBe(`outcome unknown: could not read the state of the activation unit ${UNIT} (exit 0)`);
        expect(error.message).not.toContain("no longer knows");
        expect(restoreCommands(runner)).toEqual([]);
    });

    it("unitStatus itself: a status killed by its timeout says so by the signal", async () => {
        const host = hostOnGeneration2();
        const { runner, connection } = setup(host);
        runner.once(isStatus, { code: null, signal: "SIGKILL", timedOut: true });
        const error = await fleetErrorOf(unitStatus(connection, activationUnit(TOKEN)));
        expect(error).toMatchObject({ phase: "activate", host: "alpha", outcome: "unknown" });
        expect(error.message).toBe(`outcome unknown: could not read the state of the activation unit ${UNIT} (exit SIGKILL)`);
        expect(remoteCommandsOf(runner)).toEqual([STATUS]);
    });

    it("unitStatus itself: a unit systemd no longer knows is read as not-found (not an error), with the host state", async () => {
        const host = hostOnGeneration2();
        const { connection } = setup(host);
        const report = await unitStatus(connection, activationUnit(TOKEN));
        expect(report.status).toMatchObject({ loadState: "not-found", mainPid: 0 });
        expect(report.host).toMatchObject({ generation: 2, currentStorePath: v2 });
    });

    it("the follow that prints the unit's status after the log: no separate status read, the same outcome", async () => {
        const host = hostOnGeneration2();
        host.statusAfterFollow = true;
        const { runner, connection, before, options } = setup(host);
        const result = await activate(connection, next, "switch", before, options());
        expect(result).toMatchObject({ kind: "switched", after: { generation: 3, currentStorePath: next, profileStorePath: next } });
        expect(remoteCommandsOf(runner)).toEqual([SET_NEXT, ...activateCommands(next, "switch"), follow(0)]);
    });

    it("the follow's status with systemctl not answering (exit 20 there): read apart, as before, and asked again once more", async () => {
        const host = hostOnGeneration2();
        host.statusAfterFollow = true;
        host.systemctlFailsAtNextStatus = 2;
        const { runner, connection, before, options } = setup(host);
        const { value: result } = await inFakeTime(() => activate(connection, next, "switch", before, options()));
        expect(result).toMatchObject({ kind: "switched", after: { generation: 3, currentStorePath: next } });
        expect(remoteCommandsOf(runner)).toEqual([SET_NEXT, ...activateCommands(next, "switch"), follow(0), STATUS, STATUS]);
    });

    it("a unit still running when the follow ends, as its status says: followed on, not taken as its end", async () => {
        const host = hostOnGeneration2();
        host.statusAfterFollow = true;
        host.unitRunningPolls = 1;
        const { runner, connection, before, options } = setup(host);
        const { value: result } = await inFakeTime(() => activate(connection, next, "switch", before, options()));
        expect(result).toMatchObject({ kind: "switched" });
        expect(remoteCommandsOf(runner).filter((command) => command.startsWith("nixos-fleet-follow")).length).toBe(2);
        expect(remoteCommandsOf(runner)).not.toContain(STATUS);
    });

    it("systemctl not answering once (status exit 20): asked again a second later, and the activation's outcome is read", async () => {
        const host = hostOnGeneration2();
        host.systemctlFailsAtNextStatus = 1;
        const { runner, connection, before, options } = setup(host);
        const { value: result, fakeMs } = await inFakeTime(() => activate(connection, next, "switch", before, options()));
        expect(result).toMatchObject({ kind: "switched", after: { generation: 3, currentStorePath: next } });
        expect(remoteCommandsOf(runner)).toEqual([SET_NEXT, ...activateCommands(next, "switch"), follow(0), STATUS, STATUS]);
        expect(fakeMs).toBeGreaterThanOrEqual(1000);
        expect(fakeMs).toBeLessThan(2000);
        expect(restoreCommands(runner)).toEqual([]);
    });

    it("unitStatus itself: exit 20 twice, then an answer: three reads, a second apart", async () => {
        const host = hostOnGeneration2();
        host.unitRunningPolls = 0;
        const { runner, connection } = setup(host);
        await activate(connection, next, "switch", parseHostState(host.stateOutput()), { token: TOKEN });
        host.systemctlFailsAtNextStatus = 2;
        const { value: report, fakeMs } = await inFakeTime(() => unitStatus(connection, activationUnit(TOKEN)));
        expect(report.status).toMatchObject({ loadState: "loaded", subState: "exited", execMainCode: 1, execMainStatus: 0 });
        expect(remoteCommandsOf(runner).slice(-3)).toEqual([STATUS, STATUS, STATUS]);
        expect(fakeMs).toBeGreaterThanOrEqual(2000);
        expect(fakeMs).toBeLessThan(3000);
    });

    it("unitStatus itself: exit 20 three times: outcome unknown (exit 20), with systemctl's words; no fourth read", async () => {
        const host = hostOnGeneration2();
        host.systemctlFailsAtNextStatus = 3;
        const { runner, connection } = setup(host);
        const { error } = await rejectionInFakeTime(() => unitStatus(connection, activationUnit(TOKEN)));
        expect(error).toMatchObject({ phase: "activate", host: "alpha", outcome: "unknown" });
        expect((error as Error).message).toBe(`outcome unknown: could not read the state of the activation unit ${UNIT} (exit 20)`);
        expect((error as { detail?: string }).detail).toBe("Failed to get properties: Connection timed out");
        expect(remoteCommandsOf(runner)).toEqual([STATUS, STATUS, STATUS]);
    });

    it("any other failing exit is not asked again", async () => {
        const host = hostOnGeneration2();
        const { runner, connection } = setup(host);
        runner.once(isStatus, { code: 1, stderr: "sudo: a password is required\n" });
        await fleetErrorOf(unitStatus(connection, activationUnit(TOKEN)));
        expect(remoteCommandsOf(runner)).toEqual([STATUS]);
    });

    it("a status with no unit properties at all (systemctl said nothing) is not 'gone': the deployer looks again", async () => {
        const host = hostOnGeneration2();
        const { runner, connection, before, options } = setup(host);
        runner.once(isStatus, () => ({ stdout: `@state\n${host.stateOutput()}` }));
        const result = await activate(connection, next, "switch", before, options());
        expect(result).toMatchObject({ kind: "switched" });
        expect(remoteCommandsOf(runner)).toEqual([SET_NEXT, ...activateCommands(next, "switch"), follow(0), STATUS, follow(SWITCH_OUTPUT.length), STATUS]);
    });
});

describe("activate: a connection that keeps dropping", { timeout: 1000 }, () => {
    const dropped = "connection lost during activation (ssh to root@alpha.example.org failed); reconnecting to learn the outcome";
    const reconnected = "reconnected; the activation ran on without us";

    it("10 drops in a row, the host back each time: still learns the outcome", async () => {
        const host = hostOnGeneration2();
        for (let i = 0; i < 10; i++) host.followDrops.push({});
        const { runner, connection, before, log, options } = setup(host);
        const result = await activate(connection, next, "switch", before, options());
        expect(result).toMatchObject({ kind: "switched", output: SWITCH_OUTPUT });
        expect(followOffsets(runner)).toEqual(Array(11).fill(0));
        expect(runner.matching(masterStart)).toHaveLength(11);
        expect(log.filter((line) => line === dropped)).toHaveLength(10);
    });

    it("the 11th drop: outcome unknown ('dropped 11 times'), nothing restored, the unit left alone", async () => {
        const host = hostOnGeneration2();
        for (let i = 0; i < 11; i++) host.followDrops.push({});
        const { runner, connection, before, log, options } = setup(host);
        const error = await fleetErrorOf(activate(connection, next, "switch", before, options()));
        expect(error).toMatchObject({ phase: "activate", host: "alpha", outcome: "unknown" });
        expect(error.message).toBe(
            "outcome unknown: the connection to the host dropped 11 times during activation; nothing was restored, since the activation may have run to its end.",
        );
        expect(error.hint).toContain(`systemctl status ${UNIT}`);
        // Eleven follows, ten reconnects, and no attempt after the eleventh drop.
        expect(remoteCommandsOf(runner)).toEqual([SET_NEXT, ...activateCommands(next, "switch"), ...Array<string>(11).fill(follow(0))]);
        expect(runner.matching(masterStart)).toHaveLength(1 + 10);
        expect(log).toEqual([...Array<string[]>(10).fill([dropped, reconnected]).flat(), dropped]);
        expect(restoreCommands(runner)).toEqual([]);
        expect(host.unit(UNIT)!.loaded).toBe(true);
        expect(clock.slept).toEqual([]);
    });

    it("drops are counted over the whole activation, not only in a row; the error says what the host ran when last seen", async () => {
        const host = hostOnGeneration2();
        host.unitRunningPolls = 100;
        // A drop, then a follow that ends while the unit still runs (status read), eleven times over.
        for (let i = 0; i < 11; i++) host.followDrops.push({}, null);
        const { runner, connection, before, options } = setup(host);
        const error = await fleetErrorOf(activate(connection, next, "switch", before, options()));
        expect(error.message).toBe(
            "outcome unknown: the connection to the host dropped 11 times during activation; nothing was restored, since the activation may have run to its end. " +
                `When last seen it ran ${next} with the profile at generation 3.`,
        );
        expect(remoteCommandsOf(runner).filter((command) => command === STATUS)).toHaveLength(10);
        expect(runner.matching(masterStart)).toHaveLength(1 + 10);
    });
});

describe("activate: the reconnect deadline", { timeout: 1000 }, () => {
    /** A sleep that returns at once and leaves Date where it is; bounded so a deadline that never comes fails the test instead of hanging it. */
    function instantSleep() {
        const slept: number[] = [];
        const sleep = async (ms: number) => {
            slept.push(ms);
            if (slept.length > 100) throw new Error("the reconnect never gave up");
        };
        return { slept, sleep };
    }

    it("counts the injected waits: an instant sleep (time stands still) still gives up after reconnectSeconds", async () => {
        const host = hostOnGeneration2();
        host.followDrops.push({ downFor: Infinity });
        const { slept, sleep } = instantSleep();
        const { runner, connection, before, options } = setup(host);
        const error = await fleetErrorOf(activate(connection, next, "switch", before, options({ reconnectSeconds: 10, sleep })));
        expect(error.outcome).toBe("unknown");
        expect(error.message).toMatch(/^outcome unknown: the connection was lost during activation and the host did not answer again within 10s \(/);
        expect(slept).toEqual([500, 1000, 2000, 4000]);
        expect(clock.elapsed()).toBe(0);
        expect(runner.matching(masterStart)).toHaveLength(1 + 5);
        expect(restoreCommands(runner)).toEqual([]);
    });

    it("the default bound is 60 s of waiting, backing off up to 8 s", async () => {
        const host = hostOnGeneration2();
        host.followDrops.push({ downFor: Infinity });
        const { slept, sleep } = instantSleep();
        const { connection, before, options } = setup(host);
        const error = await fleetErrorOf(activate(connection, next, "switch", before, options({ sleep })));
        expect(error.message).toMatch(/^outcome unknown: the connection was lost during activation and the host did not answer again within 60s \(/);
        expect(slept).toEqual([500, 1000, 2000, 4000, 8000, 8000, 8000, 8000, 8000, 8000]);
        expect(slept.reduce((sum, ms) => sum + ms, 0)).toBeLessThanOrEqual(60_000);
    });

    it("with an instant sleep, a host back after three refusals is reconnected to", async () => {
        const host = hostOnGeneration2();
        host.followDrops.push({ downFor: 3 });
        const { slept, sleep } = instantSleep();
        const { runner, connection, before, options } = setup(host);
        const result = await activate(connection, next, "switch", before, options({ reconnectSeconds: 10, sleep }));
        expect(result).toMatchObject({ kind: "switched", output: SWITCH_OUTPUT });
        expect(slept).toEqual([500, 1000, 2000]);
        expect(runner.matching(masterStart)).toHaveLength(1 + 4);
    });
});

describe("restorePrevious", { timeout: 1000 }, () => {
    const { unit: RUNIT, log: RLOG } = restoreUnit(TOKEN);
    const restoreStart = (args: string) => `nixos-fleet-restore-start ${RUNIT} ${RLOG} RESTORE_SCRIPT ${args}`;
    const restoreFollow = (from: number) => `nixos-fleet-follow ${RUNIT} ${RLOG} ${from}`;
    const RESTORE_STATUS = `nixos-fleet-status ${RUNIT}`;
    // The restore unit's name carries no activation token: the watchdog's decision files stay.
    const RESTORE_CLEANUP = `nixos-fleet-cleanup ${RUNIT} ${RLOG} ''`;
    /** A restore with these script arguments, followed to its end and removed. */
    const restoreUnitCommands = (args: string) => [restoreStart(args), restoreFollow(0), RESTORE_STATUS, RESTORE_CLEANUP];
    const SWITCH_GEN_2 = `nix-env -p ${SYSTEM_PROFILE} --switch-generation 2`;
    const MANUAL = `log in and run: nix-env -p ${SYSTEM_PROFILE} --switch-generation 2 && ${SYSTEM_PROFILE}/bin/switch-to-configuration switch`;
    const ALL_STEPS = ["profile back to generation 2", "boot default back to the previous generation", "re-activated the previously running system"];
    const dropped = "connection lost while restoring the previous system (ssh to root@alpha.example.org failed); reconnecting to learn the outcome";
    const reconnected = "reconnected; the restore ran on without us";

    /** The host as a failed `action` of `next` left it: generation 3 and its boot loader entry (switch, boot), running it (switch, test). */
    function afterFailedDeploy(host: FakeHost, action: Action): void {
        if (action === "switch" || action === "boot") {
            host.state.generations.set(3, next);
            host.state.profileGeneration = 3;
            host.state.bootDefault = next;
        }
        if (action === "switch" || action === "test") host.state.current = next;
    }

    /** restorePrevious's options as deployHost passes them (no output callback). */
    function restoreOptions(log: string[], extra: Partial<RestoreOptions> = {}): RestoreOptions {
        return { token: TOKEN, sleep: clock.sleep, log: (line) => log.push(line), ...extra };
    }

    const cases: [Action, string, string[], string[]][] = [
        ["switch", `switch 2 ${v2} ${v2} ''`, [SWITCH_GEN_2, `${v2}${STC} boot`, `${v2}${STC} test`], ALL_STEPS],
        ["boot", `boot 2 ${v2} ${v2} ''`, [SWITCH_GEN_2, `${v2}${STC} boot`], ALL_STEPS.slice(0, 2)],
        // test never touched the profile: no generation to go back to.
        ["test", `test '' ${v2} ${v2} ''`, [`${v2}${STC} test`], ALL_STEPS.slice(2)],
    ];
    for (const [action, args, ran, steps] of cases) {
        it(`${action}: one restore unit (started, followed, read, removed, as root) runs exactly ${ran.length} step(s) on the host`, async () => {
            const host = hostOnGeneration2();
            const { runner, connection, before } = setup(host, "deploy");
            afterFailedDeploy(host, action);
            const log: string[] = [];
            const done = await restorePrevious(connection, before, action, false, restoreOptions(log));
            expect(done).toEqual(steps);
            expect(remoteCommandsOf(runner)).toEqual(restoreUnitCommands(args));
            expect(runner.calls.filter((call) => call.remoteCommand).every((call) => call.viaSudo)).toBe(true);
            expect(host.restores).toHaveLength(1);
            expect(host.restores[0]).toMatchObject({ name: RUNIT, ran, exit: { code: 0 }, loaded: false, logExists: false });
            expect(host.activations).toEqual(ran.filter((command) => command.includes(STC)).map((command) => command.replace(STC, "")));
            expect(host.state).toMatchObject({ profileGeneration: 2, current: v2, bootDefault: v2 });
            expect(log).toEqual([]);
            expect(clock.slept).toEqual([]);
        });
    }

    it("bounds the start and the status read, not the follow (a restore may take long)", async () => {
        const host = hostOnGeneration2();
        const { runner, connection, before } = setup(host);
        afterFailedDeploy(host, "switch");
        await restorePrevious(connection, before, "switch", false, restoreOptions([]));
        const byName = (name: string) => runner.matching(remote("sh", "-c")).find((call) => call.remoteCommand![3] === name)!;
        expect(byName("nixos-fleet-restore-start").options.timeoutMs).toBe(60_000);
        expect(byName("nixos-fleet-follow").options.timeoutMs).toBeUndefined();
        expect(byName("nixos-fleet-status").options.timeoutMs).toBe(30_000);
        expect(byName("nixos-fleet-cleanup").options.timeoutMs).toBe(30_000);
    });

    it("dry-activate changed nothing: restorePrevious sends nothing, starts no unit, reports no steps", async () => {
        const host = hostOnGeneration2();
        const { runner, connection, before } = setup(host);
        const done = await restorePrevious(connection, before, "dry-activate", false, restoreOptions([]));
        expect(done).toEqual([]);
        expect(remoteCommandsOf(runner)).toEqual([]);
        expect(host.restores).toEqual([]);
    });

    it("profileOnly (a refused activation): only the profile goes back, nothing is re-activated", async () => {
        const host = hostOnGeneration2();
        const { runner, connection, before } = setup(host);
        // The refused activation set the profile and nothing else.
        host.state.generations.set(3, next);
        host.state.profileGeneration = 3;
        const done = await restorePrevious(connection, before, "switch", true, restoreOptions([]));
        expect(remoteCommandsOf(runner)).toEqual(restoreUnitCommands(`switch 2 ${v2} ${v2} 1`));
        expect(host.restores[0]!.ran).toEqual([SWITCH_GEN_2]);
        expect(done).toEqual(["profile back to generation 2"]);
        expect(host.activations).toEqual([]);
        expect(host.state).toMatchObject({ profileGeneration: 2, current: v2, bootDefault: v2 });
    });

    it("profileOnly for test: nothing moved, so no restore unit at all", async () => {
        const host = hostOnGeneration2();
        const { runner, connection, before } = setup(host);
        expect(await restorePrevious(connection, before, "test", true, restoreOptions([]))).toEqual([]);
        expect(runner.remoteCommands()).toEqual([]);
    });

    it("first-ever deploy: removes the new profile links, makes the previously running system the boot default and re-activates it", async () => {
        const installer = storePath("nixos-system-installer");
        const host = new FakeHost({ current: installer, booted: installer, bootDefault: installer, store: new Set([installer, next]) });
        const { runner, connection, before } = setup(host);
        expect(before.generation).toBeUndefined();
        // The failed deploy had created generation 1 and installed its boot loader entry.
        host.state.generations.set(1, next);
        host.state.profileGeneration = 1;
        host.state.bootDefault = next;
        const done = await restorePrevious(connection, before, "switch", false, restoreOptions([]));
        expect(remoteCommandsOf(runner)).toEqual(restoreUnitCommands(`switch '' '' ${installer} ''`));
        expect(host.restores[0]!.ran).toEqual([`rm -f ${SYSTEM_PROFILE} ${SYSTEM_PROFILE}-*-link`, `${installer}${STC} boot`, `${installer}${STC} test`]);
        expect(done).toEqual(["removed the new system profile", "boot default back to the previously running system", "re-activated the previously running system"]);
        expect(host.state).toMatchObject({ profileGeneration: undefined, bootDefault: installer, current: installer });
        expect(host.state.generations.size).toBe(0);
    });

    it("re-activates what was running, even when it differs from the profile", async () => {
        const hand = storePath("hand-activated");
        const host = hostOnGeneration2();
        host.state.store.add(hand);
        host.state.current = hand;
        const { runner, connection, before } = setup(host);
        afterFailedDeploy(host, "switch");
        await restorePrevious(connection, before, "switch", false, restoreOptions([]));
        expect(remoteCommandsOf(runner)[0]).toBe(restoreStart(`switch 2 ${v2} ${hand} ''`));
        expect(host.restores[0]!.ran).toEqual([SWITCH_GEN_2, `${v2}${STC} boot`, `${hand}${STC} test`]);
        expect(host.state).toMatchObject({ profileGeneration: 2, bootDefault: v2, current: hand });
    });

    it("skips the restore (no unit) when nothing was running from the store and the profile was not touched", async () => {
        const host = hostOnGeneration2();
        host.state.current = undefined;
        const { runner, connection, before } = setup(host);
        expect(await restorePrevious(connection, before, "test", false, restoreOptions([]))).toEqual([]);
        expect(runner.remoteCommands()).toEqual([]);
    });

    it("a step that fails is a rollback-phase error naming the step, with the unit's output and the exact generation as manual hint", async () => {
        const host = hostOnGeneration2();
        host.switchGenerationFails = "error: lock held";
        const { runner, connection, before } = setup(host);
        afterFailedDeploy(host, "switch");
        const error = await fleetErrorOf(restorePrevious(connection, before, "switch", false, restoreOptions([])));
        expect(error).toMatchObject({ phase: "rollback", host: "alpha", outcome: "failed", message: "restoring the previous system failed at: profile back to generation 2" });
        expect(error.hint).toBe(MANUAL);
        expect(error.detail).toBe("error: lock held\nnixos-fleet-restore: failed at: profile back to generation 2");
        // The unit stopped at the failing step, and was removed.
        expect(remoteCommandsOf(runner)).toEqual(restoreUnitCommands(`switch 2 ${v2} ${v2} ''`));
        expect(host.restores[0]).toMatchObject({ ran: [SWITCH_GEN_2], exit: { code: 1 }, loaded: false, logExists: false });
        expect(host.activations).toEqual([]);
        expect(host.state).toMatchObject({ profileGeneration: 3, current: next, bootDefault: next });
    });

    it("a later step that fails names it and the steps done before it", async () => {
        const host = hostOnGeneration2();
        host.failingSystems.add(v2);
        const { connection, before } = setup(host);
        afterFailedDeploy(host, "switch");
        const error = await fleetErrorOf(restorePrevious(connection, before, "switch", false, restoreOptions([])));
        expect(error.message).toBe("restoring the previous system failed at: boot default back to the previous generation (done before: profile back to generation 2)");
        expect(error.hint).toBe(MANUAL);
        expect(error.detail).toContain("error: the unit foo.service failed to start\nnixos-fleet-restore: failed at: boot default back to the previous generation");
        expect(host.restores[0]!.ran).toEqual([SWITCH_GEN_2, `${v2}${STC} boot`]);
        expect(host.state).toMatchObject({ profileGeneration: 2, current: next });
    });

    it("the previous system's own units fail (exit 4) when it is re-activated: the step is done, with a note, and the restore succeeds", async () => {
        const host = hostOnGeneration2();
        host.failingUnits.set(v2, ["db.service"]);
        const { connection, before } = setup(host);
        afterFailedDeploy(host, "switch");
        const done = await restorePrevious(connection, before, "switch", false, restoreOptions([]));
        expect(done).toEqual([
            "profile back to generation 2",
            "boot default back to the previous generation",
            "re-activated the previously running system (units of that system failed, see above)",
        ]);
        expect(host.restores[0]!.output).toContain("warning: the following units failed: db.service\n");
        expect(host.state).toMatchObject({ profileGeneration: 2, current: v2, bootDefault: v2 });
    });

    it("a host without a generation before: the manual hint names the system it ran", async () => {
        const installer = storePath("nixos-system-installer");
        const host = new FakeHost({ current: installer, booted: installer, bootDefault: installer, store: new Set([installer, next]) });
        host.failingSystems.add(installer);
        const { connection, before } = setup(host);
        const error = await fleetErrorOf(restorePrevious(connection, before, "switch", false, restoreOptions([])));
        expect(error.message).toBe("restoring the previous system failed at: boot default back to the previously running system (done before: removed the new system profile)");
        expect(error.hint).toBe(
            `log in and make the system it ran before (${installer}) the boot default and running system again: <that path>/bin/switch-to-configuration switch`,
        );
    });

    it("a restore unit that cannot be started: a rollback error naming it, with the output and the manual hint; nothing followed", async () => {
        const host = hostOnGeneration2();
        const { runner, connection, before } = setup(host);
        afterFailedDeploy(host, "switch");
        host.hasSystemdRun = false;
        const error = await fleetErrorOf(restorePrevious(connection, before, "switch", false, restoreOptions([])));
        expect(error).toMatchObject({ phase: "rollback", host: "alpha", message: `the restore unit ${RUNIT} could not be started (exit 127)`, hint: MANUAL });
        expect(error.detail).toBe("exec: systemd-run: not found");
        expect(remoteCommandsOf(runner)).toEqual([restoreStart(`switch 2 ${v2} ${v2} ''`)]);
        expect(host.state).toMatchObject({ profileGeneration: 3, current: next });
    });

    it("a drop during the restore's follow: reconnects, learns the restore's end from systemd, and returns its steps", async () => {
        const host = hostOnGeneration2();
        host.followDrops.push({});
        const { runner, connection, before } = setup(host);
        afterFailedDeploy(host, "switch");
        const log: string[] = [];
        const done = await restorePrevious(connection, before, "switch", false, restoreOptions(log));
        expect(done).toEqual(ALL_STEPS);
        expect(remoteCommandsOf(runner)).toEqual([restoreStart(`switch 2 ${v2} ${v2} ''`), restoreFollow(0), restoreFollow(0), RESTORE_STATUS, RESTORE_CLEANUP]);
        expect(runner.matching(masterStart)).toHaveLength(2);
        expect(log).toEqual([dropped, reconnected]);
        expect(host.restores).toHaveLength(1);
        expect(host.state).toMatchObject({ profileGeneration: 2, current: v2, bootDefault: v2 });
    });

    it("a drop after part of the restore's log: follows on from the byte after it, and counts no step twice", async () => {
        const host = hostOnGeneration2();
        host.restoreRunningPolls = 1;
        host.followDrops.push({ afterBytes: 10 });
        const { runner, connection, before } = setup(host);
        afterFailedDeploy(host, "switch");
        const done = await restorePrevious(connection, before, "switch", false, restoreOptions([]));
        const firstLine = host.restores[0]!.output.slice(0, host.restores[0]!.output.indexOf("\n") + 1);
        expect(followOffsets(runner)).toEqual([0, 10, Buffer.byteLength(firstLine)]);
        expect(done).toEqual(ALL_STEPS);
    });

    it("a connection lost while the restore unit starts: the outcome is learned as after any drop", async () => {
        const host = hostOnGeneration2();
        host.dropAfterNextRestoreStart = true;
        const { runner, connection, before } = setup(host);
        afterFailedDeploy(host, "switch");
        const log: string[] = [];
        const done = await restorePrevious(connection, before, "switch", false, restoreOptions(log));
        expect(done).toEqual(ALL_STEPS);
        expect(remoteCommandsOf(runner)).toEqual(restoreUnitCommands(`switch 2 ${v2} ${v2} ''`));
        expect(log).toEqual(["connection lost while starting the restore (ssh to root@alpha.example.org failed); reconnecting to learn the outcome"]);
        expect(host.restores).toHaveLength(1);
    });

    it("a restore start that does not answer in time: not 'could not be started'; the outcome is learned from systemd", async () => {
        const host = hostOnGeneration2();
        host.timeoutAfterNextRestoreStart = true;
        const { runner, connection, before } = setup(host);
        afterFailedDeploy(host, "switch");
        const log: string[] = [];
        const done = await restorePrevious(connection, before, "switch", false, restoreOptions(log));
        expect(done).toEqual(ALL_STEPS);
        expect(remoteCommandsOf(runner)).toEqual(restoreUnitCommands(`switch 2 ${v2} ${v2} ''`));
        expect(log).toEqual(["starting the restore unit did not answer in time; asking systemd what became of it"]);
        expect(host.restores).toHaveLength(1);
        expect(host.state).toMatchObject({ profileGeneration: 2, current: v2, bootDefault: v2 });
    });

    it("a restore start that timed out before the unit existed: outcome unknown in the rollback phase, not 'could not be started'", async () => {
        const host = hostOnGeneration2();
        const { runner, connection, before } = setup(host);
        afterFailedDeploy(host, "switch");
        runner.once((call) => call.remoteCommand?.[3] === "nixos-fleet-restore-start", { code: null, signal: "SIGKILL", timedOut: true });
        const error = await fleetErrorOf(restorePrevious(connection, before, "switch", false, restoreOptions([])));
        expect(error).toMatchObject({ phase: "rollback", outcome: "unknown" });
        expect(error.message).toMatch(/^outcome unknown: the host no longer knows the restore unit /);
        expect(host.restores).toEqual([]);
    });

    it("a host that never comes back during the restore: outcome unknown in the rollback phase, the unit left alone", async () => {
        const host = hostOnGeneration2();
        host.followDrops.push({ downFor: Infinity });
        const { runner, connection, before } = setup(host);
        afterFailedDeploy(host, "switch");
        const log: string[] = [];
        const error = await fleetErrorOf(restorePrevious(connection, before, "switch", false, restoreOptions(log, { reconnectSeconds: 10 })));
        expect(error).toMatchObject({ phase: "rollback", host: "alpha", outcome: "unknown" });
        expect(error.message).toBe(
            "outcome unknown: the connection was lost while restoring the previous system and the host did not answer again within 10s " +
                "(root@alpha.example.org refused the connection); the restore may or may not have finished.",
        );
        expect(error.hint!.startsWith(`${MANUAL}; `)).toBe(true);
        expect(error.hint).toContain(`systemctl status ${RUNIT}`);
        expect(error.hint).toContain("pulumi refresh");
        expect(formatFleetError(error).split("\n")[0]).toMatch(/^host alpha: rollback: outcome unknown: /);
        expect(clock.slept).toEqual([500, 1000, 2000, 4000]);
        expect(remoteCommandsOf(runner)).toEqual([restoreStart(`switch 2 ${v2} ${v2} ''`), restoreFollow(0)]);
        expect(log).toEqual([dropped]);
        expect(host.restores[0]).toMatchObject({ loaded: true, logExists: true });
    });

    it("a host that rebooted during the restore (unit gone): outcome unknown, saying the steps seen done", async () => {
        const host = hostOnGeneration2();
        const { runner, connection, before } = setup(host);
        afterFailedDeploy(host, "switch");
        const firstStep = "switching profile from version ? to 2\nnixos-fleet-restore: done: profile back to generation 2\n";
        host.followDrops.push({ afterBytes: Buffer.byteLength(firstStep), reboot: true });
        const error = await fleetErrorOf(restorePrevious(connection, before, "switch", false, restoreOptions([])));
        expect(error).toMatchObject({ phase: "rollback", host: "alpha", outcome: "unknown" });
        expect(error.message).toBe(
            `outcome unknown: the host no longer knows the restore unit ${RUNIT} (it went away or rebooted while restoring the previous system); done before: profile back to generation 2`,
        );
        expect(error.hint).toBe(`${MANUAL}; \`pulumi refresh\` records what it runs`);
        expect(remoteCommandsOf(runner)).toEqual([
            restoreStart(`switch 2 ${v2} ${v2} ''`),
            restoreFollow(0),
            restoreFollow(Buffer.byteLength(firstStep)),
            RESTORE_STATUS,
            RESTORE_CLEANUP,
        ]);
    });
});

describe("removeUnit", { timeout: 1000 }, () => {
    const CLEANUP = `nixos-fleet-cleanup ${UNIT} ${LOG} ${TOKEN}`;

    it("passes the deploy's token: the watchdog's decision files go once no watchdog of that deploy runs", async () => {
        const host = hostOnGeneration2();
        const { runner, connection, before } = setup(host);
        await armWatchdog(connection, before, "switch", 30, TOKEN);
        await claim(connection, { token: TOKEN, timeoutSeconds: 30, armedAt: 0 });
        expect([...host.decided]).toEqual([TOKEN]);
        await removeUnit(connection, activationUnit(TOKEN));
        expect(remoteCommandsOf(runner).slice(-1)).toEqual([CLEANUP]);
        expect(host.decided.size).toBe(0);
    });

    it("keeps the decision files while the watchdog of that deploy still runs", async () => {
        const host = hostOnGeneration2();
        const { connection, before } = setup(host);
        await armWatchdog(connection, before, "switch", 30, TOKEN);
        host.decided.add(TOKEN);
        await removeUnit(connection, activationUnit(TOKEN));
        expect([...host.decided]).toEqual([TOKEN]);
    });

    it("removes the reverted mark of a watchdog that reverted the host", async () => {
        const host = hostOnGeneration2();
        const { connection, before } = setup(host);
        await armWatchdog(connection, before, "switch", 30, TOKEN);
        host.fireWatchdogs();
        expect([...host.revertedFiles]).toEqual([TOKEN]);
        await removeUnit(connection, activationUnit(TOKEN));
        expect(host.revertedFiles.size).toBe(0);
        expect(host.decided.size).toBe(0);
    });

    it("a unit that still runs is left alone by the removal: loaded, its log and the decision files kept", async () => {
        const host = hostOnGeneration2();
        host.unitRunningPolls = 1;
        const { runner, connection, before } = setup(host);
        await armWatchdog(connection, before, "switch", 30, TOKEN);
        await runner.run(["ssh", "-o", "ControlMaster=no", "x"]).catch(() => undefined);
        await connection.run(["sh", "-c", "START", "nixos-fleet-activate", UNIT, LOG, next, "switch", ""], { asRoot: true });
        await claim(connection, { token: TOKEN, timeoutSeconds: 30, armedAt: 0 });
        await removeUnit(connection, activationUnit(TOKEN));
        expect(remoteCommandsOf(runner).slice(-1)).toEqual([CLEANUP]);
        expect(host.unit(UNIT)).toMatchObject({ loaded: true, logExists: true });
        expect([...host.decided]).toEqual([TOKEN]);
    });

    it("a restore unit carries no activation token: its removal passes an empty one", async () => {
        const host = hostOnGeneration2();
        const { runner, connection } = setup(host);
        host.decided.add(TOKEN);
        const restore = restoreUnit(TOKEN);
        await removeUnit(connection, restore);
        expect(remoteCommandsOf(runner)).toEqual([`nixos-fleet-cleanup ${restore.unit} ${restore.log} ''`]);
        expect([...host.decided]).toEqual([TOKEN]);
    });
});
