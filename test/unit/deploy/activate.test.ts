import { describe, expect, it } from "vitest";
import { activate, restorePrevious, type Action } from "../../../src/deploy/activate";
import { parseHostState, SYSTEM_PROFILE } from "../../../src/deploy/hostState";
import { formatFleetError } from "../../../src/errors";
import { SshConnection } from "../../../src/ssh/connection";
import { FakeHost } from "../helpers/fakeHost";
import { FakeRunner, remote, remoteProgram } from "../helpers/fakeRunner";
import { fleetErrorOf, runtimeDir, storePath, target } from "../helpers/fixtures";

const v1 = storePath("nixos-system-alpha-1");
const v2 = storePath("nixos-system-alpha-2");
const next = storePath("nixos-system-alpha-3");
const STC = "/bin/switch-to-configuration";

/** A host on generation 2 (v2 running and booted), with `next` already copied. */
function hostOnGeneration2(): FakeHost {
    const host = FakeHost.withGenerations(v1, v2);
    host.state.store.add(next);
    return host;
}

function setup(host: FakeHost, user = "root") {
    const runner = new FakeRunner();
    host.attach(runner);
    const connection = new SshConnection(target({ user }), { runner: runner.run, runtimeDir: runtimeDir() });
    const before = parseHostState(host.stateOutput());
    return { runner, connection, before };
}

const readState = `sh -c`;
/** The remote commands, with the state-read script shortened to "sh -c". */
const commandsOf = (runner: FakeRunner) => runner.remoteCommands().map((command) => (command.startsWith("sh -c p=") ? readState : command));

describe("activate", () => {
    it("switch: sets the profile, runs switch-to-configuration switch, reads back the new state", async () => {
        const host = hostOnGeneration2();
        const { runner, connection, before } = setup(host);
        const result = await activate(connection, next, "switch", before);
        expect(commandsOf(runner)).toEqual([`nix-env -p ${SYSTEM_PROFILE} --set ${next}`, `${next}${STC} switch`, readState]);
        expect(result.before.generation).toBe(2);
        expect(result.after).toMatchObject({ generation: 3, profileStorePath: next, currentStorePath: next });
        expect(result.output).toContain("switch: done");
    });

    it("runs the profile change and activation through sudo -n for a deploy user, the state read without", async () => {
        const host = hostOnGeneration2();
        const { runner, connection, before } = setup(host, "deploy");
        await activate(connection, next, "switch", before);
        const remoteCalls = runner.calls.filter((call) => call.remoteCommand);
        expect(remoteCalls.map((call) => [call.remoteCommand![0], call.viaSudo])).toEqual([
            ["nix-env", true],
            [`${next}${STC}`, true],
            ["sh", false],
        ]);
    });

    it("passes the timeout and output callback to switch-to-configuration", async () => {
        const host = hostOnGeneration2();
        const { runner, connection, before } = setup(host);
        const onOutput = () => undefined;
        await activate(connection, next, "switch", before, { timeoutMs: 60_000, onOutput });
        const options = runner.matching(remoteProgram(STC))[0]!.options;
        expect(options).toMatchObject({ timeoutMs: 60_000, onStdout: onOutput, onStderr: onOutput });
    });

    it("switch failure: restores profile, boot default and running system in this order, then reports", async () => {
        const host = hostOnGeneration2();
        host.failingSystems.add(next);
        const { runner, connection, before } = setup(host);
        const error = await fleetErrorOf(activate(connection, next, "switch", before));
        expect(commandsOf(runner)).toEqual([
            `nix-env -p ${SYSTEM_PROFILE} --set ${next}`,
            `${next}${STC} switch`,
            `nix-env -p ${SYSTEM_PROFILE} --switch-generation 2`,
            `${v2}${STC} boot`,
            `${v2}${STC} test`,
        ]);
        expect(error.phase).toBe("activate");
        expect(error.host).toBe("alpha");
        expect(error.message).toBe(
            "switch-to-configuration switch exited with 1; the host was restored to generation 2 " +
                "(profile back to generation 2, boot default back to the previous generation, re-activated the previously running system)",
        );
        expect(error.detail).toContain("foo.service failed to start");
        expect(host.state).toMatchObject({ profileGeneration: 2, current: v2, bootDefault: v2 });
    });

    it("switch failure re-activates what was running, even when it differs from the profile", async () => {
        const hand = storePath("hand-activated");
        const host = hostOnGeneration2();
        host.state.store.add(hand);
        host.state.current = hand;
        host.failingSystems.add(next);
        const { runner, connection, before } = setup(host);
        await fleetErrorOf(activate(connection, next, "switch", before));
        expect(commandsOf(runner).slice(-2)).toEqual([`${v2}${STC} boot`, `${hand}${STC} test`]);
        expect(host.state.current).toBe(hand);
    });

    it("first-ever deploy failing: removes the new profile links and re-activates what ran before", async () => {
        const installer = storePath("nixos-system-installer");
        const host = new FakeHost({ current: installer, booted: installer, store: new Set([installer, next]) });
        host.failingSystems.add(next);
        const { runner, connection, before } = setup(host);
        expect(before.generation).toBeUndefined();
        const error = await fleetErrorOf(activate(connection, next, "switch", before));
        const commands = commandsOf(runner);
        expect(commands.slice(0, 3)).toEqual([
            `nix-env -p ${SYSTEM_PROFILE} --set ${next}`,
            `${next}${STC} switch`,
            `sh -c rm -f ${SYSTEM_PROFILE} ${SYSTEM_PROFILE}-*-link`,
        ]);
        expect(commands[commands.length - 1]).toBe(`${installer}${STC} test`);
        expect(commands.filter((command) => command.startsWith("nix-env"))).toHaveLength(1);
        expect(error.message).toContain("the host was restored to the state before the deploy (removed the new system profile");
        expect(host.state.profileGeneration).toBeUndefined();
        expect(host.state.generations.size).toBe(0);
    });

    // BUG: for a first-ever deploy, restorePrevious only removes the new profile links and runs
    // the previously running system's `switch-to-configuration test`. switch-to-configuration
    // switch/boot installs the boot loader before it activates, so after a failed activation the
    // boot default stays the broken new system, and nothing makes the previous system the boot
    // default again (README: "the previous system is made the boot default and re-activated").
    // Fix: when before.generation is undefined but before.currentStorePath is set, also run
    // `<before.currentStorePath>/bin/switch-to-configuration boot` for switch/boot.
    it("first-ever deploy failing: the previously running system is the boot default again", async () => {
        const installer = storePath("nixos-system-installer");
        const host = new FakeHost({ current: installer, booted: installer, bootDefault: installer, store: new Set([installer, next]) });
        host.failingSystems.add(next);
        const { connection, before } = setup(host);
        await fleetErrorOf(activate(connection, next, "switch", before));
        expect(host.state.bootDefault).toBe(installer);
    });

    it("test failure restores only the running system (the profile was never touched)", async () => {
        const host = hostOnGeneration2();
        host.failingSystems.add(next);
        const { runner, connection, before } = setup(host);
        const error = await fleetErrorOf(activate(connection, next, "test", before));
        expect(commandsOf(runner)).toEqual([`${next}${STC} test`, `${v2}${STC} test`]);
        expect(error.message).toBe(
            "switch-to-configuration test exited with 1; the host was restored to generation 2 (re-activated the previously running system)",
        );
    });

    it("test success does not set the profile and verifies the running system", async () => {
        const host = hostOnGeneration2();
        const { runner, connection, before } = setup(host);
        const result = await activate(connection, next, "test", before);
        expect(commandsOf(runner)).toEqual([`${next}${STC} test`, readState]);
        expect(result.after).toMatchObject({ generation: 2, profileStorePath: v2, currentStorePath: next });
    });

    it("boot failure restores only the profile and the boot default", async () => {
        const host = hostOnGeneration2();
        host.failingSystems.add(next);
        const { runner, connection, before } = setup(host);
        const error = await fleetErrorOf(activate(connection, next, "boot", before));
        expect(commandsOf(runner)).toEqual([
            `nix-env -p ${SYSTEM_PROFILE} --set ${next}`,
            `${next}${STC} boot`,
            `nix-env -p ${SYSTEM_PROFILE} --switch-generation 2`,
            `${v2}${STC} boot`,
        ]);
        expect(error.message).toContain("(profile back to generation 2, boot default back to the previous generation)");
        expect(host.state).toMatchObject({ profileGeneration: 2, current: v2, bootDefault: v2 });
    });

    it("boot success leaves the running system alone", async () => {
        const host = hostOnGeneration2();
        const { connection, before } = setup(host);
        const result = await activate(connection, next, "boot", before);
        expect(result.after).toMatchObject({ generation: 3, profileStorePath: next, currentStorePath: v2 });
    });

    it("dry-activate never touches the profile, on success or failure", async () => {
        const host = hostOnGeneration2();
        const ok = setup(host);
        await activate(ok.connection, next, "dry-activate", ok.before);
        expect(commandsOf(ok.runner)).toEqual([`${next}${STC} dry-activate`, readState]);

        host.failingSystems.add(next);
        const failing = setup(host);
        const error = await fleetErrorOf(activate(failing.connection, next, "dry-activate", failing.before));
        expect(commandsOf(failing.runner)).toEqual([`${next}${STC} dry-activate`]);
        expect(error.message).toContain("switch-to-configuration dry-activate exited with 1");
        expect(host.state).toMatchObject({ profileGeneration: 2, current: v2 });
    });

    // BUG: a failed dry-activate changed nothing and restored nothing, yet the error says "the host
    // was restored to generation 2" (activate() builds the "restored to …" sentence for every
    // action). The operator is told a rollback happened that did not. Fix: for dry-activate (or
    // whenever `restored` is empty) say that nothing was changed.
    it("a failed dry-activate does not claim the host was restored", async () => {
        const host = hostOnGeneration2();
        host.failingSystems.add(next);
        const { connection, before } = setup(host);
        const error = await fleetErrorOf(activate(connection, next, "dry-activate", before));
        expect(error.message).not.toContain("restored");
    });

    it("a verification failure (activation 'succeeded' but /run/current-system is not the new system) also restores", async () => {
        const host = hostOnGeneration2();
        const { runner, connection, before } = setup(host);
        // switch-to-configuration exits 0 without activating anything.
        runner.on((call) => call.remoteCommand?.[0] === `${next}${STC}`, { stdout: "nothing to do\n" });
        const error = await fleetErrorOf(activate(connection, next, "switch", before));
        expect(error.message).toContain(`/run/current-system is ${v2}, not ${next}; the host was restored to generation 2`);
        expect(commandsOf(runner).slice(-3)).toEqual([
            `nix-env -p ${SYSTEM_PROFILE} --switch-generation 2`,
            `${v2}${STC} boot`,
            `${v2}${STC} test`,
        ]);
        expect(host.state.profileGeneration).toBe(2);
    });

    it("a verification failure on the profile (boot) names the path the profile points at", async () => {
        const host = hostOnGeneration2();
        const { runner, connection, before } = setup(host);
        // nix-env --set "succeeds" without creating a generation.
        runner.on(remote("nix-env", "-p", SYSTEM_PROFILE, "--set"), {});
        const error = await fleetErrorOf(activate(connection, next, "boot", before));
        expect(error.message).toContain(`the system profile points at ${v2}, not ${next}`);
    });

    it("a hung activation (timed out) counts as a failure and is restored", async () => {
        const host = hostOnGeneration2();
        const { runner, connection, before } = setup(host);
        runner.on((call) => call.remoteCommand?.[0] === `${next}${STC}`, { code: null, signal: "SIGKILL", timedOut: true });
        const error = await fleetErrorOf(activate(connection, next, "switch", before, { timeoutMs: 10 }));
        expect(error.message).toMatch(/^switch-to-configuration switch did not finish in time; the host was restored to generation 2/);
        expect(host.state.profileGeneration).toBe(2);
    });

    it("a failure to set the profile stops before activation and says nothing changed", async () => {
        const host = hostOnGeneration2();
        const { runner, connection, before } = setup(host, "deploy");
        runner.on(remote("nix-env"), { code: 1, stderr: "sudo: a password is required\n" });
        const error = await fleetErrorOf(activate(connection, next, "switch", before));
        expect(error.phase).toBe("activate");
        expect(error.message).toBe("setting the system profile failed; nothing was changed");
        expect(runner.matching(remoteProgram(STC))).toHaveLength(0);
    });

    it("a restore that fails itself is a rollback-phase error with a manual hint", async () => {
        const host = hostOnGeneration2();
        host.failingSystems.add(next);
        const { runner, connection, before } = setup(host);
        runner.on(remote("nix-env", "-p", SYSTEM_PROFILE, "--switch-generation"), { code: 1, stderr: "error: lock held\n" });
        const error = await fleetErrorOf(activate(connection, next, "switch", before));
        expect(error.phase).toBe("rollback");
        expect(error.host).toBe("alpha");
        // Both what failed first and where the restore stopped.
        expect(error.message).toBe(
            "switch-to-configuration switch exited with 1; then restoring the previous system failed at: profile back to generation 2",
        );
        expect(error.hint).toContain(`nix-env -p ${SYSTEM_PROFILE} --rollback`);
        expect(error.detail).toContain("lock held");
        expect(error.detail).toContain("--- restore ---");
        // It stopped at the failing step.
        expect(runner.matching((call) => call.remoteCommand?.[0] === `${v2}${STC}`)).toHaveLength(0);
    });

    it("the formatted error names the host and the phase", async () => {
        const host = hostOnGeneration2();
        host.failingSystems.add(next);
        const { connection, before } = setup(host);
        const text = formatFleetError(await fleetErrorOf(activate(connection, next, "switch", before)));
        expect(text.split("\n")[0]).toMatch(/^host alpha: activate failed: switch-to-configuration switch exited with 1/);
        expect(text).toContain("  | error: the unit foo.service failed to start");
    });
});

describe("restorePrevious", () => {
    const cases: [Action, string[]][] = [
        ["switch", [`nix-env -p ${SYSTEM_PROFILE} --switch-generation 2`, `${v2}${STC} boot`, `${v2}${STC} test`]],
        ["boot", [`nix-env -p ${SYSTEM_PROFILE} --switch-generation 2`, `${v2}${STC} boot`]],
        ["test", [`${v2}${STC} test`]],
        ["dry-activate", []],
    ];
    for (const [action, expected] of cases) {
        it(`${action}: runs exactly ${expected.length} restore step(s)`, async () => {
            const host = hostOnGeneration2();
            const { runner, connection, before } = setup(host);
            const done = await restorePrevious(connection, before, action);
            expect(commandsOf(runner)).toEqual(expected);
            expect(done).toHaveLength(expected.length);
        });
    }

    it("skips re-activation when nothing was running from the store", async () => {
        const host = hostOnGeneration2();
        host.state.current = undefined;
        const { runner, connection, before } = setup(host);
        await restorePrevious(connection, before, "test");
        expect(runner.remoteCommands()).toEqual([]);
    });
});
