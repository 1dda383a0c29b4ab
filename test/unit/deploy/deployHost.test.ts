import { describe, expect, it, vi } from "vitest";
import { alreadyDeployed, deployHost, inspectHost, type DeployContext, type DeployRequest } from "../../../src/deploy/deployHost";
import { SYSTEM_PROFILE, type HostState } from "../../../src/deploy/hostState";
import type { Action } from "../../../src/deploy/activate";
import { NO_HEALTH_CHECKS, type HealthChecks } from "../../../src/config/healthChecks";
import { formatFleetError, type FleetError } from "../../../src/errors";
import type { ClosurePath } from "../../../src/nix/closure";
import { fakeClock, rejectionInFakeTime } from "../helpers/clock";
import { restoreUnit } from "../../../src/deploy/activationUnit";
import { FakeHost, attachLocalNix, remoteCommandsOf } from "../helpers/fakeHost";
import { FakeRunner, local, masterExit, masterStart, remote, sshOption, type RecordedCall } from "../helpers/fakeRunner";
import { deployRequest, fleetErrorOf, runtimeDir, storePath, target } from "../helpers/fixtures";

const v1 = storePath("nixos-system-alpha-1");
const v2 = storePath("nixos-system-alpha-2");
const next = storePath("nixos-system-alpha-3");
const lib = storePath("libfoo-1.0");
const STC = "/bin/switch-to-configuration";
const SWITCH_OUTPUT = "activating the configuration...\nsetting up /etc...\nswitch: done\n";
const FULL_RESTORE = "(profile back to generation 2, boot default back to the previous generation, re-activated the previously running system)";

const closures = new Map<string, ClosurePath[]>([
    [next, [{ path: next, narSize: 4_000 }, { path: lib, narSize: 60_000 }, { path: v2, narSize: 5_000 }]],
]);

function request(overrides: Partial<DeployRequest> = {}): DeployRequest {
    return deployRequest(overrides);
}

function setup(host = FakeHost.withGenerations(v1, v2)) {
    const runner = new FakeRunner();
    host.attach(runner);
    attachLocalNix(runner, host, closures);
    const log: string[] = [];
    // Waits (reconnect backoff, the watchdog's timeout) return at once and are recorded; bounded,
    // so a wait that never ends fails the test instead of hanging it.
    const slept: number[] = [];
    const sleep = async (ms: number): Promise<void> => {
        slept.push(ms);
        if (slept.length > 100) throw new Error("deployHost kept waiting");
    };
    const context: DeployContext = { runner: runner.run, runtimeDir: runtimeDir(), log: (line: string) => log.push(line), sleep };
    return { host, runner, log, context, slept };
}

/** The master of the confirming (or probing) connection lives in the runtime directory's confirm/. */
const onNewConnection = (call: RecordedCall): boolean => (sshOption(call.argv, "ControlPath") ?? "").includes("/confirm/");

/** A short name for each call, to check the order of the phases. */
function step(call: RecordedCall): string {
    const fresh = onNewConnection(call) ? " (new connection)" : "";
    if (call.isMasterStart) return `ssh master start${fresh}`;
    if (call.isMasterExit) return `ssh master exit${fresh}`;
    if (call.isMasterCheck) return "ssh master check";
    const words = call.remoteCommand;
    if (words) {
        if (words[0] === "sh" && words[3]) return `remote ${words[3]}${fresh}`;
        if (words[0] === "sh") return `remote read state${fresh}`;
        if (words[0] === "systemd-run") return "remote systemd-run watchdog";
        if (words[0]!.endsWith(STC)) return `remote switch-to-configuration ${words[1]}`;
        return `remote ${words.slice(0, 2).join(" ")}`;
    }
    const argv = call.argv[0] === "nix" ? call.argv.slice(3) : call.argv;
    return `local ${argv.slice(0, 2).join(" ")}`;
}

/** The activation unit's name, as the deploy started it. */
function activationUnitOf(runner: FakeRunner): string {
    const start = runner.matching(remote("sh", "-c")).find((call) => call.remoteCommand![3] === "nixos-fleet-activate");
    return start!.remoteCommand![4]!;
}

/** The deploy's token, from the name of its activation unit. */
const tokenOf = (unit: string): string => /^nixos-fleet-activate-(.+)\.service$/.exec(unit)![1]!;

/** What the deployer's restore units ran on the host, in order (empty: the deployer restored nothing). */
const deployerRestores = (host: FakeHost): string[] => host.restores.flatMap((unit) => unit.ran);

/** The deployer's restore: its unit started with these script arguments, followed, read, and removed (no token: the decision files stay). */
function restoreUnitCommands(runner: FakeRunner, args: string): string[] {
    const { unit, log } = restoreUnit(tokenOf(activationUnitOf(runner)));
    return [`nixos-fleet-restore-start ${unit} ${log} RESTORE_SCRIPT ${args}`, `nixos-fleet-follow ${unit} ${log} 0`, `nixos-fleet-status ${unit}`, `nixos-fleet-cleanup ${unit} ${log} ''`];
}

/** The removals of the activation unit (stop, reset-failed, log and decision files deleted), as remote commands. */
const cleanups = (runner: FakeRunner) => remoteCommandsOf(runner).filter((command) => command.startsWith("nixos-fleet-cleanup nixos-fleet-activate-"));
const cleanupOf = (unit: string) => `nixos-fleet-cleanup ${unit} /run/nixos-fleet/${unit}.log ${tokenOf(unit)}`;
const SWITCH_GEN_2 = `nix-env -p ${SYSTEM_PROFILE} --switch-generation 2`;
const FULL_RESTORE_RAN = [SWITCH_GEN_2, `${v2}${STC} boot`, `${v2}${STC} test`];
const MANUAL = `log in and run: nix-env -p ${SYSTEM_PROFILE} --switch-generation 2 && ${SYSTEM_PROFILE}/bin/switch-to-configuration switch`;
/** The preflight: the activation lock, its wait, and the wait for another deploy under way. */
const PREFLIGHT = "nixos-fleet-preflight /run/nixos/switch-to-configuration.lock 20 60";
/** Matches the preflight command. */
const isPreflight = (call: RecordedCall): boolean => call.remoteCommand?.[3] === "nixos-fleet-preflight";

const disarms = (runner: FakeRunner) => runner.matching(remote("sh", "-c")).filter((call) => call.remoteCommand![3] === "nixos-fleet-disarm");

const failingCheck: HealthChecks = { ...NO_HEALTH_CHECKS, commands: [{ command: ["check-app"], timeout: 10, retries: 0 }] };

describe("alreadyDeployed", () => {
    const running: HostState = { generation: 3, profileStorePath: next, currentStorePath: next };
    const table: [string, HostState, Action, boolean][] = [
        ["switch: profile and running system are it", running, "switch", true],
        ["switch: running but not in the profile", { ...running, profileStorePath: v2 }, "switch", false],
        ["switch: in the profile but not running", { ...running, currentStorePath: v2 }, "switch", false],
        ["boot: in the profile, whatever runs", { ...running, currentStorePath: v2 }, "boot", true],
        ["boot: not in the profile", { ...running, profileStorePath: v2 }, "boot", false],
        ["test: running, whatever the profile says", { ...running, profileStorePath: v2 }, "test", true],
        ["test: not running", { ...running, currentStorePath: v2 }, "test", false],
        ["dry-activate: never", running, "dry-activate", false],
    ];
    for (const [name, state, action, expected] of table) {
        it(`${name} → ${expected}`, () => {
            expect(alreadyDeployed(state, next, action)).toBe(expected);
        });
    }
});

describe("deployHost", { timeout: 1000 }, () => {
    it("runs build → connect → copy → preflight → activate in a unit, over one master that is closed at the end", async () => {
        const { runner, context } = setup();
        await deployHost(request(), context);
        expect(runner.calls.map(step)).toEqual([
            // The handshake starts with the build (they overlap); the host is read after both.
            "ssh master start",
            "local nix-store --realise",
            "local path-info --json",
            "remote nix-store --check-validity",
            "local copy --no-check-sigs",
            // Ready, and what the host runs now (another deploy may have activated meanwhile): one command.
            "remote nixos-fleet-preflight",
            "remote nix-env -p",
            "remote nixos-fleet-activate",
            "remote nixos-fleet-follow",
            "remote nixos-fleet-status",
            "remote nixos-fleet-cleanup",
            // Reboot needed? The booted system's kernel, initrd and modules against the deployed one's (one command).
            "remote nixos-fleet-boot-files",
            "ssh master exit",
        ]);
        expect(runner.unexpected).toEqual([]);
        expect(activationUnitOf(runner)).toMatch(/^nixos-fleet-activate-[0-9a-f]{16}\.service$/);
        expect(cleanups(runner)).toEqual([cleanupOf(activationUnitOf(runner))]);
    });

    it("the activation unit's removal overlaps the boot files' read, and ends before the master closes", async () => {
        const { runner, context } = setup();
        const events: string[] = [];
        let bootReadStarted!: () => void;
        const bootRead = new Promise<void>((resolve) => (bootReadStarted = resolve));
        // The removal answers only once the boot files are being read: sequential, the deploy would hang here.
        runner.once((call) => call.remoteCommand?.[3] === "nixos-fleet-cleanup", async () => {
            events.push("cleanup started");
            // Bounded: a removal that must end before the read starts fails the order below, not by timeout.
            await Promise.race([bootRead, new Promise((resolve) => setTimeout(resolve, 500))]);
            events.push("cleanup ended");
            return {};
        });
        const hostAnswer = runner.run;
        const observed: typeof runner.run = async (argv, options) => {
            if (argv.includes("nixos-fleet-boot-files") || argv.some((word) => word.includes("nixos-fleet-boot-files"))) {
                events.push("boot files read");
                bootReadStarted();
            }
            if (argv.includes("-O") && argv.includes("exit")) events.push("master exit");
            return hostAnswer(argv, options);
        };
        await deployHost(request(), { ...context, runner: observed });
        expect(events).toEqual(["cleanup started", "boot files read", "cleanup ended", "master exit"]);
        expect(runner.unexpected).toEqual([]);
    });

    it("with the host's status printed after the activation's output (the real follow script), no separate status read", async () => {
        const host = FakeHost.withGenerations(v1, v2);
        host.statusAfterFollow = true;
        const { runner, context } = setup(host);
        const outcome = await deployHost(request(), context);
        expect(outcome.after).toMatchObject({ generation: 3, currentStorePath: next, profileStorePath: next });
        expect(runner.calls.map(step).slice(runner.calls.map(step).indexOf("remote nixos-fleet-activate"))).toEqual([
            "remote nixos-fleet-activate",
            "remote nixos-fleet-follow",
            "remote nixos-fleet-cleanup",
            "remote nixos-fleet-boot-files",
            "ssh master exit",
        ]);
        expect(runner.unexpected).toEqual([]);
    });

    it("returns the states before and after, what was copied, timings and one handshake", async () => {
        const { host, runner, context, log } = setup();
        const outcome = await deployHost(request(), context);
        expect(outcome.before).toMatchObject({ generation: 2, currentStorePath: v2 });
        expect(outcome.after).toMatchObject({ generation: 3, currentStorePath: next, profileStorePath: next });
        // v2 is already on the host: only next and lib travel.
        expect(outcome.copy).toEqual({ pathsCopied: 2, bytesCopied: 64_000, closurePaths: 3, closureBytes: 69_000 });
        expect(outcome.activated).toBe(true);
        expect(outcome.sshHandshakes).toBe(1);
        expect(Object.keys(outcome.timings).sort()).toEqual(["activate", "build", "connect", "copy"]);
        expect(Number.isNaN(Date.parse(outcome.activatedAt))).toBe(false);
        expect(host.state).toMatchObject({ current: next, profileGeneration: 3, bootDefault: next });
        expect(host.units.map((unit) => unit.loaded)).toEqual([false]);
        expect(log).toEqual([
            `build ${next}`,
            "connect",
            "copying 2 paths (64000 bytes) to alpha",
            "copy: 2 of 3 paths, 64000 bytes",
            `activate (switch) in ${activationUnitOf(runner)}`,
        ]);
    });

    it("passes substituteOnDestination to nix copy", async () => {
        const { runner, context } = setup();
        await deployHost(request({ substituteOnDestination: true }), context);
        expect(runner.matching(local("copy"))[0]!.argv).toContain("--substitute-on-destination");
    });

    it("skips activation (no unit, no watchdog, nothing copied) when the host already runs the system, once the preflight found no other deploy under way", async () => {
        const host = FakeHost.withGenerations(v1, v2, next);
        host.state.store.add(lib);
        const { runner, context, log } = setup(host);
        const outcome = await deployHost(request({ confirmTimeout: 30 }), context);
        expect(outcome.activated).toBe(false);
        expect(outcome.after).toEqual(outcome.before);
        expect(outcome.copy.pathsCopied).toBe(0);
        expect(runner.matching(remote("nix-env"))).toHaveLength(0);
        expect(runner.matching(local("copy"))).toHaveLength(0);
        // Only the preflight: no other deploy under way whose watchdog could revert the host after it was reported unchanged.
        expect(remoteCommandsOf(runner).filter((command) => (command.startsWith("nixos-fleet-") && !command.startsWith("nixos-fleet-boot-files")) || command.startsWith("systemd-run"))).toEqual([PREFLIGHT]);
        expect(host.activations).toEqual([]);
        expect(log).toContain("already running this system: nothing to activate");
        expect(runner.matching(masterExit)).toHaveLength(1);
    });

    it("a failing local build stops before anything runs on the host; the handshake made meanwhile is closed", async () => {
        const { runner, context } = setup();
        runner.on(local("nix-store", "--realise"), { code: 1, stderr: "error: build failed\n" });
        const error = await fleetErrorOf(deployHost(request(), context));
        expect(error.phase).toBe("build");
        expect(error.host).toBe("alpha");
        expect(runner.calls.map(step)).toEqual(["ssh master start", "local nix-store --realise", "ssh master exit"]);
    });

    it("a failing build and an unreachable host: the build's error is the one reported, and no master is left", async () => {
        const { host, runner, context } = setup();
        host.refuseConnections = Infinity;
        runner.on(local("nix-store", "--realise"), { code: 1, stderr: "error: build failed\n" });
        const error = await fleetErrorOf(deployHost(request(), context));
        expect(error.phase).toBe("build");
        expect(runner.calls.map(step)).toEqual(["ssh master start", "local nix-store --realise"]);
    });

    it("a failing build does not wait for a handshake that hangs (a blackholed host): the start is stopped, the build's error reported at once", async () => {
        const { runner, context } = setup();
        // ssh's start answers only when killed (its timeout would be connectTimeout + 5 s).
        runner.on(masterStart, (call) => new Promise((resolve) => call.options.signal?.addEventListener("abort", () => resolve({ code: null, signal: "SIGKILL" }))));
        runner.on(local("nix-store", "--realise"), { code: 1, stderr: "error: build failed\n" });
        const error = await fleetErrorOf(deployHost(request(), context));
        expect(error.phase).toBe("build");
        // The start killed; a master it may have forked just then is asked to exit.
        expect(runner.calls.map(step)).toEqual(["ssh master start", "local nix-store --realise", "ssh master exit"]);
        expect(runner.matching(masterStart)[0]!.options.signal?.aborted).toBe(true);
    });

    it("a build shared with other hosts: the handshake starts when the build does (the engine may still be diffing the others), not before", async () => {
        const { runner, context } = setup();
        let start!: () => void;
        const waitingForGroup = new Promise<void>((resolve) => (start = resolve));
        const deploying = deployHost(request(), {
            ...context,
            build: async (_drv, _host, started) => {
                await waitingForGroup;
                started?.();
                return { systems: 3 };
            },
        });
        await new Promise((resolve) => setTimeout(resolve, 5));
        expect(runner.calls.filter((call) => call.isMasterStart)).toEqual([]);
        start();
        const outcome = await deploying;
        expect(runner.calls.map(step).slice(0, 2)).toEqual(["ssh master start", "local path-info --json"]);
        expect(outcome.sshHandshakes).toBe(1);
    });

    it("a build that outlasts the master started with it (ControlPersist ends an unused one): it is checked and started again, counted", async () => {
        const clock = fakeClock();
        try {
            const { host, runner, context } = setup();
            runner.on(local("nix-store", "--realise"), async () => {
                // Two minutes of building (after the handshake); the unused master ended after its ControlPersist.
                await new Promise((resolve) => setTimeout(resolve, 1));
                vi.setSystemTime(Date.now() + 120_000);
                host.masters.clear();
                return {};
            });
            const outcome = await deployHost(request(), context);
            expect(runner.calls.map(step).slice(0, 5)).toEqual(["ssh master start", "local nix-store --realise", "ssh master check", "ssh master start", "local path-info --json"]);
            expect(outcome.sshHandshakes).toBe(2);
            expect(outcome.after).toMatchObject({ currentStorePath: next });
        } finally {
            clock.stop();
        }
    });

    it("a long build whose master is still up: one check, no second handshake; a short one: no check", async () => {
        const clock = fakeClock();
        try {
            const long = setup();
            long.runner.on(local("nix-store", "--realise"), async () => {
                await new Promise((resolve) => setTimeout(resolve, 1));
                vi.setSystemTime(Date.now() + 120_000);
                return {};
            });
            expect((await deployHost(request(), long.context)).sshHandshakes).toBe(1);
            expect(long.runner.calls.map(step).slice(0, 4)).toEqual(["ssh master start", "local nix-store --realise", "ssh master check", "local path-info --json"]);
            const short = setup();
            await deployHost(request(), short.context);
            expect(short.runner.matching((call) => call.isMasterCheck)).toHaveLength(0);
        } finally {
            clock.stop();
        }
    });

    it("a host that cannot be reached is a connect error, after one new attempt once the build is done, and nothing else runs", async () => {
        const { host, runner, context } = setup();
        host.refuseConnections = Infinity;
        const error = await fleetErrorOf(deployHost(request(), context));
        expect(error.phase).toBe("connect");
        expect(error.message).toBe("deploy@alpha.example.org refused the connection");
        expect(runner.calls.map(step)).toEqual(["ssh master start", "local nix-store --realise", "ssh master start"]);
    });

    it("a host that refused the handshake made during the build but answers after it is deployed (it may have been rebooting)", async () => {
        const { host, runner, context, log } = setup();
        host.refuseConnections = 1;
        const outcome = await deployHost(request(), context);
        expect(outcome.activated).toBe(true);
        expect(runner.calls.map(step).slice(0, 4)).toEqual(["ssh master start", "local nix-store --realise", "ssh master start", "local path-info --json"]);
        expect(outcome.sshHandshakes).toBe(2);
        expect(log).toContain("the handshake made during the build failed (deploy@alpha.example.org refused the connection); trying again");
    });

    it("a handshake still under way when the build ends is not made twice: its answer is the connect phase's (a host that does not answer costs one connect timeout, not two)", async () => {
        const { runner, context } = setup();
        let buildDone!: () => void;
        const built = new Promise<void>((resolve) => (buildDone = resolve));
        runner.on(masterStart, async () => {
            await built;
            await new Promise((resolve) => setTimeout(resolve, 5));
            return { code: 255, stderr: "ssh: connect to host alpha.example.org port 22: Connection timed out\r\n" };
        });
        runner.on(local("nix-store", "--realise"), () => (buildDone(), {}));
        const error = await fleetErrorOf(deployHost(request(), context));
        expect(error.phase).toBe("connect");
        expect(error.message).toMatch(/did not answer within/);
        expect(runner.calls.map(step)).toEqual(["ssh master start", "local nix-store --realise"]);
    });

    describe("a failure of the handshake that waiting cannot mend ends the deploy without waiting for the build", () => {
        const wrongKey = { code: 255, stderr: "Host key verification failed.\r\n" };

        it("a host key that is not the known one: the host's own build is stopped (SIGTERM, so Nix stops its builders), nothing runs on the host", async () => {
            const { runner, context } = setup();
            runner.on(masterStart, wrongKey);
            // The build answers only when stopped.
            runner.on(local("nix-store", "--realise"), (call) => new Promise((resolve) => call.options.signal?.addEventListener("abort", () => resolve({ code: null, signal: "SIGTERM" }))));
            const error = await fleetErrorOf(deployHost(request(), context));
            expect(error.phase).toBe("connect");
            expect(error.message).toBe("the host key of deploy@alpha.example.org is not known, so the connection was refused");
            const build = runner.matching(local("nix-store", "--realise"))[0]!;
            expect(build.options.signal?.aborted).toBe(true);
            expect(build.options.abortSignal).toBe("SIGTERM");
            expect(runner.calls.map(step)).toEqual(["ssh master start", "local nix-store --realise"]);
        });

        it("a refused login, with a build shared with other hosts: the deploy ends, the shared build goes on for them", async () => {
            const { runner, context } = setup();
            runner.on(masterStart, { code: 255, stderr: "deploy@alpha.example.org: Permission denied (publickey).\r\n" });
            let finishBuild!: () => void;
            const shared = new Promise<{ systems: number }>((resolve) => (finishBuild = () => resolve({ systems: 3 })));
            const error = await fleetErrorOf(deployHost(request(), { ...context, build: async (_drv, _host, started) => (started?.(), shared) }));
            expect(error.phase).toBe("connect");
            expect(error.message).toBe("deploy@alpha.example.org refused the login (permission denied)");
            finishBuild();
            await shared;
            expect(runner.calls.map(step)).toEqual(["ssh master start"]);
        });

        it("the provider's build (SharedBuilder) is told too: the signal it gets aborts when the deploy ends, so it can stop the host's own build", async () => {
            const { runner, context } = setup();
            runner.on(masterStart, wrongKey);
            let told: AbortSignal | undefined;
            const build = (_drv: string, _host: string, started?: () => void, signal?: AbortSignal) => {
                told = signal;
                started?.();
                return new Promise<{ systems: number }>((_, reject) => signal?.addEventListener("abort", () => reject(new Error("stopped"))));
            };
            const error = await fleetErrorOf(deployHost(request(), { ...context, build }));
            expect(error.phase).toBe("connect");
            expect(told?.aborted).toBe(true);
        });

        it("a build that fails first is still the error reported", async () => {
            const { runner, context } = setup();
            // The handshake fails only once the build has (it is then stopped, as the build failed).
            runner.on(masterStart, (call) => new Promise((resolve) => call.options.signal?.addEventListener("abort", () => resolve(wrongKey))));
            runner.on(local("nix-store", "--realise"), { code: 1, stderr: "error: build failed\n" });
            const error = await fleetErrorOf(deployHost(request(), context));
            expect(error.phase).toBe("build");
        });
    });

    it("the close failing does not hide the outcome", async () => {
        const { runner, context } = setup();
        runner.on(masterExit, () => {
            throw new Error("control socket gone");
        });
        const outcome = await deployHost(request(), context);
        expect(outcome.activated).toBe(true);
    });

    describe("before anything changes", () => {
        it("preflight exit 11: another activation is running; nothing was changed (no watchdog, no profile, no unit)", async () => {
            const { host, runner, context } = setup();
            host.lockHeld = true;
            const error = await fleetErrorOf(deployHost(request({ confirmTimeout: 30 }), context));
            expect(formatFleetError(error).split("\n")[0]).toBe(
                "host alpha: activate failed: another activation is running on the host (it has held /run/nixos/switch-to-configuration.lock for 20s); nothing was changed",
            );
            expect(remoteCommandsOf(runner).slice(-1)).toEqual([PREFLIGHT]);
            expect(runner.matching(remote("nix-env"))).toHaveLength(0);
            expect(host.watchdogs).toEqual([]);
            expect(host.units).toEqual([]);
            expect(host.state).toMatchObject({ profileGeneration: 2, current: v2 });
            expect(runner.calls[runner.calls.length - 1]!.isMasterExit).toBe(true);
        });

        it("preflight exit 10: says the host has no systemd-run, and that nothing was changed", async () => {
            const { host, runner, context } = setup();
            host.hasSystemdRun = false;
            const error = await fleetErrorOf(deployHost(request({ confirmTimeout: 30 }), context));
            expect(error).toMatchObject({ phase: "activate", host: "alpha", message: "the host has no systemd-run (or systemd is not running); nothing was changed" });
            expect(error.hint).toContain("transient systemd unit");
            expect(runner.matching(remote("nix-env"))).toHaveLength(0);
            expect(host.units).toEqual([]);
        });

        it("a profile that cannot be set: nothing was changed, and the armed watchdog is disarmed", async () => {
            const { host, runner, context } = setup();
            runner.on(remote("nix-env"), { code: 1, stderr: "sudo: a password is required\n" });
            const error = await fleetErrorOf(deployHost(request({ confirmTimeout: 30 }), context));
            expect(error.message).toBe("setting the system profile failed; nothing was changed");
            expect(host.units).toEqual([]);
            expect(host.watchdogs).toHaveLength(1);
            expect(host.watchdogs[0]!.stopped).toBe(true);
            expect(disarms(runner)).toHaveLength(1);
        });

        it("a watchdog that cannot be started: nothing was activated", async () => {
            const { host, runner, context } = setup();
            runner.on(remote("systemd-run"), { code: 1, stderr: "Failed to start transient service unit: Access denied\n" });
            const error = await fleetErrorOf(deployHost(request({ confirmTimeout: 30 }), context));
            expect(error.message).toBe("could not start the rollback watchdog on the host; nothing was activated");
            expect(error.detail).toContain("Access denied");
            expect(runner.matching(remote("nix-env"))).toHaveLength(0);
            expect(host.units).toEqual([]);
        });
    });

    describe("the host's state is read again after the preflight (another deploy may have activated meanwhile)", () => {
        const other = storePath("nixos-system-alpha-other");

        it("another deploy activated the wanted system meanwhile: nothing to activate, no watchdog, no unit", async () => {
            const { host, runner, context, log } = setup();
            // While this deploy copied and waited for the lock, another one switched the host to `next`.
            runner.once(isPreflight, () => {
                host.deployedElsewhere(next);
                return { stdout: `@ready\n${host.stateOutput()}` };
            });
            const outcome = await deployHost(request({ confirmTimeout: 30 }), context);
            expect(outcome.activated).toBe(false);
            expect(outcome.before).toMatchObject({ generation: 3, profileStorePath: next, currentStorePath: next });
            expect(outcome.after).toEqual(outcome.before);
            expect(log).toContain("already running this system: nothing to activate");
            expect(runner.calls.map(step).slice(5)).toEqual(["remote nixos-fleet-preflight", "remote nixos-fleet-boot-files", "ssh master exit"]);
            expect(host.watchdogs).toEqual([]);
            expect(host.units).toEqual([]);
            expect(host.activations).toEqual([`${next} switch`]);
            expect(host.state).toMatchObject({ profileGeneration: 3, current: next, bootDefault: next });
        });

        it("a host whose state changed between connect and preflight: the watchdog is armed with, and the host restored to, the fresh state", async () => {
            const { host, runner, context } = setup();
            host.failingSystems.add(next);
            runner.once(isPreflight, () => {
                host.deployedElsewhere(other);
                return { stdout: `@ready\n${host.stateOutput()}` };
            });
            const error = await fleetErrorOf(deployHost(request({ confirmTimeout: 30 }), context));
            // Generation 3 (`other`), not generation 2 that ran at connect time.
            expect(error).toMatchObject({ phase: "activate", host: "alpha", outcome: "failed" });
            expect(error.message).toBe(
                "switch-to-configuration switch exited with 1; the deployer restored it to generation 3 " +
                    "(profile back to generation 3, boot default back to the previous generation, re-activated the previously running system)",
            );
            expect(host.watchdogs[0]).toMatchObject({ generation: "3", profilePath: other, current: other, stopped: true, reverted: false });
            expect(remoteCommandsOf(runner)).toContain(restoreUnitCommands(runner, `switch 3 ${other} ${other} ''`)[0]);
            expect(deployerRestores(host)).toEqual([`nix-env -p ${SYSTEM_PROFILE} --switch-generation 3`, `${other}${STC} boot`, `${other}${STC} test`]);
            expect(host.state.generations.get(4)).toBe(next);
            expect(host.state).toMatchObject({ profileGeneration: 3, current: other, bootDefault: other });
        });

        it("a deploy that succeeds reports the fresh state as the state before", async () => {
            const { host, runner, context } = setup();
            runner.once(isPreflight, () => {
                host.deployedElsewhere(other);
                return { stdout: `@ready\n${host.stateOutput()}` };
            });
            const outcome = await deployHost(request(), context);
            expect(outcome.before).toMatchObject({ generation: 3, profileStorePath: other, currentStorePath: other });
            expect(outcome.after).toMatchObject({ generation: 4, profileStorePath: next, currentStorePath: next });
        });
    });

    describe("a failed activation is restored by the deployer, once", () => {
        it("switch: profile, boot default and running system back, in this order; the error says who restored what", async () => {
            const { host, runner, context } = setup();
            host.failingSystems.add(next);
            const error = await fleetErrorOf(deployHost(request(), context));
            const unit = activationUnitOf(runner);
            const commands = remoteCommandsOf(runner);
            // The unit is removed once, after the restore (the decision), not before it.
            expect(commands.slice(commands.indexOf(`nixos-fleet-status ${unit}`))).toEqual([
                `nixos-fleet-status ${unit}`,
                ...restoreUnitCommands(runner, `switch 2 ${v2} ${v2} ''`),
                cleanupOf(unit),
            ]);
            // The restore unit ran the three steps on the host, in this order.
            expect(deployerRestores(host)).toEqual(FULL_RESTORE_RAN);
            expect(host.activations).toEqual([`${next} switch`, `${v2} boot`, `${v2} test`]);
            expect(host.units[0]).toMatchObject({ loaded: false, logExists: false });
            expect(host.restores[0]).toMatchObject({ loaded: false, logExists: false });
            expect(error).toMatchObject({ phase: "activate", host: "alpha", outcome: "failed" });
            expect(error.message).toBe(`switch-to-configuration switch exited with 1; the deployer restored it to generation 2 ${FULL_RESTORE}`);
            expect(error.detail).toContain("foo.service failed to start");
            expect(host.state).toMatchObject({ profileGeneration: 2, current: v2, bootDefault: v2 });
            expect(runner.calls[runner.calls.length - 1]!.isMasterExit).toBe(true);
        });

        it("the formatted error names the host and the phase, with the activation's output", async () => {
            const { host, context } = setup();
            host.failingSystems.add(next);
            const text = formatFleetError(await fleetErrorOf(deployHost(request(), context)));
            expect(text.split("\n")[0]).toBe(`host alpha: activate failed: switch-to-configuration switch exited with 1; the deployer restored it to generation 2 ${FULL_RESTORE}`);
            expect(text).toContain("  | error: the unit foo.service failed to start");
            expect(text).toContain("  hint: fix the configuration");
        });

        it("re-activates what was running, even when it differs from the profile", async () => {
            const hand = storePath("hand-activated");
            const host = FakeHost.withGenerations(v1, v2);
            host.state.store.add(hand);
            host.state.current = hand;
            host.failingSystems.add(next);
            const { runner, context } = setup(host);
            await fleetErrorOf(deployHost(request(), context));
            expect(remoteCommandsOf(runner).slice(-5)).toEqual([...restoreUnitCommands(runner, `switch 2 ${v2} ${hand} ''`), cleanupOf(activationUnitOf(runner))]);
            expect(deployerRestores(host)).toEqual([SWITCH_GEN_2, `${v2}${STC} boot`, `${hand}${STC} test`]);
            expect(host.state.current).toBe(hand);
        });

        it("first-ever deploy: removes the new profile links, and the previously running system is boot default and running again", async () => {
            const installer = storePath("nixos-system-installer");
            const host = new FakeHost({ current: installer, booted: installer, bootDefault: installer, store: new Set([installer]) });
            host.failingSystems.add(next);
            const { runner, context } = setup(host);
            const error = await fleetErrorOf(deployHost(request(), context));
            const commands = remoteCommandsOf(runner);
            expect(commands.filter((command) => command.startsWith("nix-env"))).toEqual([`nix-env -p ${SYSTEM_PROFILE} --set ${next}`]);
            expect(commands.slice(-5)).toEqual([...restoreUnitCommands(runner, `switch '' '' ${installer} ''`), cleanupOf(activationUnitOf(runner))]);
            expect(deployerRestores(host)).toEqual([`rm -f ${SYSTEM_PROFILE} ${SYSTEM_PROFILE}-*-link`, `${installer}${STC} boot`, `${installer}${STC} test`]);
            expect(error.message).toBe(
                "switch-to-configuration switch exited with 1; the deployer restored it to the state before the deploy " +
                    "(removed the new system profile, boot default back to the previously running system, re-activated the previously running system)",
            );
            expect(host.state).toMatchObject({ profileGeneration: undefined, current: installer, bootDefault: installer });
            expect(host.state.generations.size).toBe(0);
        });

        it("test: only the running system is restored (the profile was never touched)", async () => {
            const { host, runner, context } = setup();
            host.failingSystems.add(next);
            const error = await fleetErrorOf(deployHost(request({ action: "test" }), context));
            expect(runner.matching(remote("nix-env"))).toHaveLength(0);
            expect(remoteCommandsOf(runner)).toContain(restoreUnitCommands(runner, `test '' ${v2} ${v2} ''`)[0]);
            expect(deployerRestores(host)).toEqual([`${v2}${STC} test`]);
            expect(error.message).toBe("switch-to-configuration test exited with 1; the deployer restored it to generation 2 (re-activated the previously running system)");
            expect(host.state).toMatchObject({ profileGeneration: 2, current: v2 });
        });

        it("boot: only the profile and the boot default are restored", async () => {
            const { host, runner, context } = setup();
            host.failingSystems.add(next);
            const error = await fleetErrorOf(deployHost(request({ action: "boot" }), context));
            expect(remoteCommandsOf(runner)).toContain(restoreUnitCommands(runner, `boot 2 ${v2} ${v2} ''`)[0]);
            expect(deployerRestores(host)).toEqual([SWITCH_GEN_2, `${v2}${STC} boot`]);
            expect(error.message).toBe(
                "switch-to-configuration boot exited with 1; the deployer restored it to generation 2 (profile back to generation 2, boot default back to the previous generation)",
            );
            expect(host.state).toMatchObject({ profileGeneration: 2, current: v2, bootDefault: v2 });
        });

        it("a verification failure (exit 0, but /run/current-system is not the new system) is restored too", async () => {
            const { host, runner, context } = setup();
            host.noopSystems.add(next);
            const error = await fleetErrorOf(deployHost(request(), context));
            expect(error.message).toBe(
                `switch-to-configuration switch exited with 0, but /run/current-system is ${v2}, not ${next}; the deployer restored it to generation 2 ${FULL_RESTORE}`,
            );
            expect(deployerRestores(host)).toEqual(FULL_RESTORE_RAN);
            expect(host.state.profileGeneration).toBe(2);
        });

        it("a restore that fails itself is a rollback-phase error with both outputs and a manual hint naming the generation", async () => {
            const { host, context } = setup();
            host.failingSystems.add(next);
            host.switchGenerationFails = "error: lock held";
            const error = await fleetErrorOf(deployHost(request(), context));
            expect(error).toMatchObject({ phase: "rollback", host: "alpha", outcome: "failed" });
            expect(error.message).toBe("switch-to-configuration switch exited with 1; then restoring the previous system failed at: profile back to generation 2");
            expect(error.hint).toBe(MANUAL);
            expect(error.detail).toBe(
                "activating the configuration...\nerror: the unit foo.service failed to start\n--- restore ---\nerror: lock held\nnixos-fleet-restore: failed at: profile back to generation 2",
            );
            // It stopped at the failing step.
            expect(deployerRestores(host)).toEqual([SWITCH_GEN_2]);
            expect(host.activations).toEqual([`${next} switch`]);
            expect(formatFleetError(error).split("\n")[0]).toMatch(/^host alpha: rollback failed: /);
        });

        it("exit 4 and a restore that fails: the units that failed are kept in the message, then the step the restore failed at", async () => {
            const { host, context } = setup();
            host.failingUnits.set(next, ["a.service"]);
            host.failingSystems.add(v2);
            const error = await fleetErrorOf(deployHost(request(), context));
            expect(error).toMatchObject({ phase: "rollback", host: "alpha", outcome: "failed", hint: MANUAL });
            expect(error.message).toBe(
                "switch-to-configuration switch switched the system, but units failed: a.service (exit status 4); " +
                    "then restoring the previous system failed at: boot default back to the previous generation (done before: profile back to generation 2)",
            );
            expect(error.detail).toContain("warning: the following units failed: a.service\n");
            expect(error.detail).toContain("--- restore ---\n");
            expect(error.detail).toContain("nixos-fleet-restore: failed at: boot default back to the previous generation");
            expect(deployerRestores(host)).toEqual([SWITCH_GEN_2, `${v2}${STC} boot`]);
            expect(host.state).toMatchObject({ profileGeneration: 2, current: next });
        });

        it("the previous system's own units fail when it is re-activated (exit 4): the restore is done, with a note, and the cause is kept", async () => {
            const { host, context } = setup();
            host.failingSystems.add(next);
            host.failingUnits.set(v2, ["db.service"]);
            const error = await fleetErrorOf(deployHost(request(), context));
            expect(error).toMatchObject({ phase: "activate", host: "alpha", outcome: "failed" });
            expect(error.message).toBe(
                "switch-to-configuration switch exited with 1; the deployer restored it to generation 2 (profile back to generation 2, " +
                    "boot default back to the previous generation, re-activated the previously running system (units of that system failed, see above))",
            );
            expect(error.hint).toContain("fix the configuration");
            expect(error.detail).toBe("activating the configuration...\nerror: the unit foo.service failed to start");
            expect(deployerRestores(host)).toEqual(FULL_RESTORE_RAN);
            expect(host.state).toMatchObject({ profileGeneration: 2, current: v2, bootDefault: v2 });
        });

        it("a drop during the restore's follow: reconnects, learns the restore's end, and the message says the deployer restored it", async () => {
            const { host, runner, context, log } = setup();
            host.failingSystems.add(next);
            // The activation's follow goes through; the restore's drops.
            host.followDrops.push(null, {});
            const error = await fleetErrorOf(deployHost(request(), context));
            expect(error).toMatchObject({ phase: "activate", host: "alpha", outcome: "failed" });
            expect(error.message).toBe(`switch-to-configuration switch exited with 1; the deployer restored it to generation 2 ${FULL_RESTORE}`);
            const unit = activationUnitOf(runner);
            const [start, follow, status, cleanup] = restoreUnitCommands(runner, `switch 2 ${v2} ${v2} ''`);
            const commands = remoteCommandsOf(runner);
            expect(commands.slice(commands.indexOf(`nixos-fleet-status ${unit}`))).toEqual([
                `nixos-fleet-status ${unit}`,
                start,
                follow, // dropped
                follow,
                status,
                cleanup,
                cleanupOf(unit),
            ]);
            expect(log).toContain("restoring generation 2");
            expect(log).toContain("connection lost while restoring the previous system (ssh to deploy@alpha.example.org failed); reconnecting to learn the outcome");
            expect(log).toContain("reconnected; the restore ran on without us");
            expect(runner.matching(masterStart)).toHaveLength(2);
            expect(host.restores).toHaveLength(1);
            expect(deployerRestores(host)).toEqual(FULL_RESTORE_RAN);
            expect(host.state).toMatchObject({ profileGeneration: 2, current: v2, bootDefault: v2 });
        });

        it("a restore that never comes back: outcome unknown in the rollback phase, starting with the cause", async () => {
            const { host, runner, context, slept } = setup();
            host.failingSystems.add(next);
            host.followDrops.push(null, { downFor: Infinity });
            const error = await fleetErrorOf(deployHost(request({ reconnectTimeout: 10 }), context));
            expect(error).toMatchObject({ phase: "rollback", host: "alpha", outcome: "unknown" });
            expect(error.message).toBe(
                "outcome unknown: switch-to-configuration switch exited with 1; then the connection was lost while restoring the previous system " +
                    "and the host did not answer again within 10s (deploy@alpha.example.org refused the connection); the restore may or may not have finished.",
            );
            expect(formatFleetError(error).split("\n")[0]).toMatch(/^host alpha: rollback: outcome unknown: switch-to-configuration switch exited with 1; then /);
            expect(error.hint!.startsWith(`${MANUAL}; `)).toBe(true);
            expect(error.detail).toBe("activating the configuration...\nerror: the unit foo.service failed to start");
            expect(slept).toEqual([500, 1000, 2000, 4000]);
            // Nothing reached the host after the drop: both units are left as they are.
            const commands = remoteCommandsOf(runner);
            expect(commands.slice(-2)).toEqual(restoreUnitCommands(runner, `switch 2 ${v2} ${v2} ''`).slice(0, 2));
            expect(cleanups(runner)).toEqual([]);
            expect(host.units[0]!.loaded).toBe(true);
            expect(host.restores[0]!.loaded).toBe(true);
        });

        it("exit 4: restored, with a message naming the failed units", async () => {
            const { host, runner, context } = setup();
            host.failingUnits.set(next, ["a.service", "b.service"]);
            const error = await fleetErrorOf(deployHost(request(), context));
            expect(error.message).toBe(
                `switch-to-configuration switch switched the system, but units failed: a.service, b.service (exit status 4); the deployer restored it to generation 2 ${FULL_RESTORE}`,
            );
            expect(error.hint).toContain("healthChecks.keepGoing");
            expect(error.detail).toContain("warning: the following units failed: a.service b.service");
            expect(deployerRestores(host)).toEqual(FULL_RESTORE_RAN);
            expect(host.state).toMatchObject({ profileGeneration: 2, current: v2 });
        });

        it("exit 4 with healthChecks.keepGoing: the host stays on the new system, with a warning", async () => {
            const { host, runner, context, log } = setup();
            host.failingUnits.set(next, ["a.service", "b.service"]);
            const outcome = await deployHost(request({ healthChecks: { ...NO_HEALTH_CHECKS, keepGoing: true } }), context);
            expect(outcome.activated).toBe(true);
            expect(outcome.after).toMatchObject({ generation: 3, currentStorePath: next });
            expect(log).toContain("warning: switched, but units failed: a.service, b.service; healthChecks.keepGoing is set, so the host stays on the new system");
            expect(deployerRestores(host)).toEqual([]);
            expect(host.restores).toEqual([]);
            expect(host.state).toMatchObject({ profileGeneration: 3, current: next });
        });

        it("refused for the lock ('Could not acquire lock'): only the profile is put back, no switch-to-configuration of the old system", async () => {
            const { host, runner, context } = setup();
            host.lockTakenBeforeNextSwitch = true;
            const error = await fleetErrorOf(deployHost(request(), context));
            expect(error).toMatchObject({ phase: "activate", host: "alpha", outcome: "failed" });
            expect(error.message).toBe(
                "switch-to-configuration refused: another activation started on the host and holds its lock, so nothing was activated; the deployer restored it to generation 2 (profile back to generation 2)",
            );
            expect(error.hint).toContain("wait until the other activation ends");
            expect(error.detail).toBe("Could not acquire lock");
            // Only the profile: the restore unit is told so ('1'), and runs no switch-to-configuration.
            expect(remoteCommandsOf(runner)).toContain(restoreUnitCommands(runner, `switch 2 ${v2} ${v2} 1`)[0]);
            expect(deployerRestores(host)).toEqual([SWITCH_GEN_2]);
            expect(runner.matching((call) => call.remoteCommand?.[0]?.endsWith(STC) === true)).toHaveLength(0);
            expect(host.activations).toEqual([`${next} switch`]);
            expect(host.state).toMatchObject({ profileGeneration: 2, current: v2, bootDefault: v2 });
        });

        it("failing health checks and a restore that fails: the checks' summary, then the restore's step; both reports kept", async () => {
            const { host, runner, context } = setup();
            runner.on(remote("timeout"), { code: 1, stdout: "app is down\n" });
            host.switchGenerationFails = "error: lock held";
            const error = await fleetErrorOf(deployHost(request({ healthChecks: failingCheck }), context));
            expect(error).toMatchObject({ phase: "rollback", host: "alpha", outcome: "failed", hint: MANUAL });
            expect(error.message).toBe("1 of 1 health check failed: command check-app; then restoring the previous system failed at: profile back to generation 2");
            expect(error.detail).toContain("app is down");
            expect(error.detail).toContain("--- restore ---\nerror: lock held\nnixos-fleet-restore: failed at: profile back to generation 2");
            expect(host.state).toMatchObject({ profileGeneration: 3, current: next });
        });

        it("the health checks start once the activation unit is removed (a check of failed units must not see it)", async () => {
            const { runner, context } = setup();
            let removed = false;
            const seenByCheck: boolean[] = [];
            runner.once((call) => call.remoteCommand?.[3] === "nixos-fleet-cleanup", async () => {
                await new Promise((resolve) => setTimeout(resolve, 50));
                removed = true;
                return {};
            });
            runner.on(remote("timeout"), () => {
                seenByCheck.push(removed);
                return { stdout: "ok\n" };
            });
            await deployHost(request({ healthChecks: failingCheck }), context);
            expect(seenByCheck).toEqual([true]);
        });

        it("failing health checks restore the host (no watchdog)", async () => {
            const { host, runner, context } = setup();
            runner.on(remote("timeout"), { code: 1, stdout: "app is down\n" });
            const error = await fleetErrorOf(deployHost(request({ healthChecks: failingCheck }), context));
            expect(error.phase).toBe("verify");
            expect(error.message).toBe(`1 of 1 health check failed: command check-app; the deployer restored it to generation 2 ${FULL_RESTORE}`);
            expect(host.state).toMatchObject({ profileGeneration: 2, current: v2 });
        });
    });

    describe("with the rollback watchdog (confirmTimeout)", () => {
        it("arms the watchdog before the profile is set, for the activation unit of the same token, and confirms over a new connection", async () => {
            const { host, runner, context, log } = setup();
            const outcome = await deployHost(request({ confirmTimeout: 30 }), context);
            expect(runner.calls.map(step).slice(5)).toEqual([
                "remote nixos-fleet-preflight",
                "remote systemd-run watchdog",
                "remote nix-env -p",
                "remote nixos-fleet-activate",
                "remote nixos-fleet-follow",
                "remote nixos-fleet-status",
                "ssh master start (new connection)",
                "remote nixos-fleet-disarm (new connection)",
                "ssh master exit (new connection)",
                // Only once the deploy is confirmed: until then the watchdog reads the unit's end.
                "remote nixos-fleet-cleanup",
                "remote nixos-fleet-boot-files",
                "ssh master exit",
            ]);
            // The watchdog was stopped by the disarm: the removal took its decision files too.
            expect(cleanups(runner)).toEqual([cleanupOf(activationUnitOf(runner))]);
            expect(host.decided.size).toBe(0);
            const unit = activationUnitOf(runner);
            const token = /^nixos-fleet-activate-(.+)\.service$/.exec(unit)![1]!;
            expect(host.watchdogs).toEqual([
                {
                    unit: `nixos-fleet-watchdog-${token}`,
                    dir: "/run/nixos-fleet",
                    token,
                    timeout: 30,
                    action: "switch",
                    generation: "2",
                    profilePath: v2,
                    current: v2,
                    activationUnit: unit,
                    stopped: true,
                    reverted: false,
                },
            ]);
            expect(disarms(runner).map((call) => call.remoteCommand!.slice(4))).toEqual([["/run/nixos-fleet", token]]);
            expect(log).toContain(`activate (switch) in ${unit}; automatic rollback unless confirmed within 30s after it ends`);
            expect(log[log.length - 1]).toBe("confirmed over a new connection");
            expect(Object.keys(outcome.timings).sort()).toEqual(["activate", "build", "confirm", "connect", "copy"]);
            expect(outcome.sshHandshakes).toBe(1);
        });

        it("boot needs no confirmation: no watchdog", async () => {
            const { host, context } = setup();
            await deployHost(request({ action: "boot", confirmTimeout: 30 }), context);
            expect(host.watchdogs).toEqual([]);
        });

        it("the deployer claims the decision (disarm) before it restores anything", async () => {
            const { host, runner, context } = setup();
            host.failingSystems.add(next);
            const error = await fleetErrorOf(deployHost(request({ confirmTimeout: 30 }), context));
            const commands = remoteCommandsOf(runner);
            const claim = commands.findIndex((command) => command.startsWith("nixos-fleet-disarm"));
            const firstRestore = commands.indexOf(restoreUnitCommands(runner, `switch 2 ${v2} ${v2} ''`)[0]!);
            expect(claim).toBeGreaterThan(0);
            expect(claim).toBeLessThan(firstRestore);
            expect(disarms(runner)).toHaveLength(1);
            expect(host.watchdogs[0]).toMatchObject({ stopped: true, reverted: false });
            expect(error.message).toBe(`switch-to-configuration switch exited with 1; the deployer restored it to generation 2 ${FULL_RESTORE}`);
            expect(host.state).toMatchObject({ profileGeneration: 2, current: v2, bootDefault: v2 });
        });

        it("when the watchdog had claimed it: the host's watchdog restored it, the deployer ran no restore itself, and the unit is removed after the wait", async () => {
            const { host, runner, context, slept } = setup();
            host.failingUnits.set(next, ["a.service"]);
            host.watchdogDecidesFirst = true;
            const error = await fleetErrorOf(deployHost(request({ confirmTimeout: 30 }), context));
            expect(error.message).toContain("the host's watchdog restored it to generation 2");
            expect(deployerRestores(host)).toEqual([]);
            expect(host.restores).toEqual([]);
            expect(host.watchdogs[0]).toMatchObject({ stopped: false, reverted: true });
            // The watchdog's own revert, on the host: profile, boot default, running system.
            expect(host.activations).toEqual([`${next} switch`, `${v2} boot`, `${v2} test`]);
            expect(host.state).toMatchObject({ profileGeneration: 2, current: v2, bootDefault: v2 });
            // Claim refused, then wait for the watchdog's timeout, look over a new connection, and only then remove the unit.
            expect(runner.calls.map(step).slice(10)).toEqual([
                "remote nixos-fleet-status",
                "remote nixos-fleet-disarm",
                "ssh master start (new connection)",
                "remote read state (new connection)",
                "ssh master exit (new connection)",
                "remote nixos-fleet-cleanup",
                "ssh master exit",
            ]);
            expect(disarms(runner)).toHaveLength(1);
            expect(host.units[0]).toMatchObject({ loaded: false, logExists: false });
            // The watchdog has ended (it reverted): the removal took its decision and reverted files.
            expect(host.decided.size).toBe(0);
            expect(host.revertedFiles.size).toBe(0);
            // One wait until the watchdog's revert (its 30 s after the activation's end, + its poll, + 1 s): no second probe.
            expect(slept).toHaveLength(1);
            expect(slept[0]).toBeGreaterThan(31_000);
            expect(slept[0]).toBeLessThanOrEqual(32_000);
        });

        it("when the watchdog had claimed it: the error still names the activation's failure (exit 4) and keeps its output", async () => {
            const { host, context } = setup();
            host.failingUnits.set(next, ["a.service"]);
            host.watchdogDecidesFirst = true;
            const error = await fleetErrorOf(deployHost(request({ confirmTimeout: 30 }), context));
            expect(error).toMatchObject({ phase: "activate", host: "alpha", outcome: "failed" });
            expect(error.message).toBe(
                "switch-to-configuration switch switched the system, but units failed: a.service (exit status 4); the host's watchdog restored it to generation 2",
            );
            expect(error.hint).toContain("fix the failing units");
            expect(error.detail).toContain("warning: the following units failed: a.service");
        });

        it("when the watchdog had claimed it: the error still names the activation's failure (exit 1) and keeps its output", async () => {
            const { host, runner, context } = setup();
            host.failingSystems.add(next);
            host.watchdogDecidesFirst = true;
            const error = await fleetErrorOf(deployHost(request({ confirmTimeout: 30 }), context));
            expect(error).toMatchObject({ phase: "activate", host: "alpha", outcome: "failed" });
            expect(error.message).toBe("switch-to-configuration switch exited with 1; the host's watchdog restored it to generation 2");
            expect(error.detail).toBe("activating the configuration...\nerror: the unit foo.service failed to start");
            expect(deployerRestores(host)).toEqual([]);
            expect(host.state).toMatchObject({ profileGeneration: 2, current: v2, bootDefault: v2 });
            expect(cleanups(runner)).toHaveLength(1);
        });

        it("when the watchdog had claimed it and the host does not come back: outcome unknown, and the unit is still removed once", async () => {
            const { host, runner, context, slept } = setup();
            host.failingUnits.set(next, ["a.service"]);
            host.watchdogDecidesFirst = true;
            // The host reverted, but new connections to it fail from now on.
            runner.on(
                (call) => call.isMasterStart && onNewConnection(call),
                { code: 255, stderr: "ssh: connect to host alpha.example.org port 22: Connection refused\r\n" },
            );
            const error = await fleetErrorOf(deployHost(request({ confirmTimeout: 30 }), context));
            expect(error).toMatchObject({ phase: "activate", host: "alpha", outcome: "unknown" });
            // The cause (exit 4) comes first, as for every restore.
            expect(error.message).toBe(
                "outcome unknown: switch-to-configuration switch switched the system, but units failed: a.service (exit status 4); " +
                    "then the host's watchdog decided to revert it before the deployer could; " +
                    "the host's watchdog should have restored it to generation 2, but it is still not reachable as before",
            );
            expect(error.detail).toContain("warning: the following units failed: a.service");
            expect(formatFleetError(error).split("\n")[0]).toMatch(/^host alpha: activate: outcome unknown: /);
            expect(deployerRestores(host)).toEqual([]);
            // Ten looks, two seconds apart, after the wait for the watchdog's revert.
            expect(runner.matching((call) => call.isMasterStart && onNewConnection(call))).toHaveLength(10);
            expect(slept.slice(1)).toEqual(Array(10).fill(2000));
            expect(cleanups(runner)).toEqual([cleanupOf(activationUnitOf(runner))]);
        });

        // An unknown restore after a failed activation says "outcome unknown" first, so the CLI counts it as unknown.
        it("exit 1, the watchdog claimed first, the host does not come back: the message starts with 'outcome unknown:'", async () => {
            const { host, runner, context } = setup();
            host.failingSystems.add(next);
            host.watchdogDecidesFirst = true;
            runner.on(
                (call) => call.isMasterStart && onNewConnection(call),
                { code: 255, stderr: "ssh: connect to host alpha.example.org port 22: Connection refused\r\n" },
            );
            const error = await fleetErrorOf(deployHost(request({ confirmTimeout: 30 }), context));
            expect(error).toMatchObject({ phase: "activate", host: "alpha", outcome: "unknown" });
            expect(error.message.startsWith("outcome unknown:")).toBe(true);
            expect(error.message).toContain("switch-to-configuration switch exited with 1");
            expect(formatFleetError(error).split("\n")[0]).toMatch(/^host alpha: activate: outcome unknown: /);
            expect(error.detail).toContain("error: the unit foo.service failed to start");
            expect(deployerRestores(host)).toEqual([]);
        });

        it("refused for the lock when the watchdog had claimed it: the host's watchdog restored it", async () => {
            const { host, runner, context } = setup();
            host.lockTakenBeforeNextSwitch = true;
            host.watchdogDecidesFirst = true;
            const error = await fleetErrorOf(deployHost(request({ confirmTimeout: 30 }), context));
            expect(error.message).toBe(
                "switch-to-configuration refused: another activation started on the host and holds its lock, so nothing was activated; the host's watchdog restored it to generation 2",
            );
            expect(deployerRestores(host)).toEqual([]);
            expect(host.state).toMatchObject({ profileGeneration: 2, current: v2, bootDefault: v2 });
        });

        it("a new configuration that cuts access: the confirmation fails, the watchdog reverts, the error says so, and the unit is removed after it", async () => {
            const { host, runner, context } = setup();
            // The confirming connection is refused; the watchdog's timeout passes meanwhile.
            runner.once(
                (call) => call.isMasterStart && onNewConnection(call),
                () => {
                    host.fireWatchdogs();
                    return { code: 255, stderr: "ssh: connect to host alpha.example.org port 22: Connection refused\r\n" };
                },
            );
            const error = await fleetErrorOf(deployHost(request({ confirmTimeout: 30 }), context));
            expect(error).toMatchObject({ phase: "activate", host: "alpha", outcome: "failed" });
            expect(error.message).toBe(
                "the host lost access after activation (a new SSH connection after activation failed (deploy@alpha.example.org refused the connection)): " +
                    "the host's watchdog restored it to generation 2; it is reachable again",
            );
            expect(error.hint).toContain("cuts SSH access");
            expect(disarms(runner)).toHaveLength(0);
            expect(deployerRestores(host)).toEqual([]);
            expect(host.watchdogs[0]).toMatchObject({ reverted: true, stopped: false });
            expect(host.state).toMatchObject({ profileGeneration: 2, current: v2, bootDefault: v2 });
            expect(runner.calls.map(step).slice(11)).toEqual([
                "ssh master start (new connection)", // refused
                "ssh master start (new connection)", // after the watchdog's revert
                "remote read state (new connection)",
                "ssh master exit (new connection)",
                "remote nixos-fleet-cleanup",
                "ssh master exit",
            ]);
            expect(host.units[0]).toMatchObject({ loaded: false, logExists: false });
        });

        it("a new configuration that cuts access, and the host does not come back even after the watchdog's revert: outcome unknown", async () => {
            const { host, runner, context } = setup();
            runner.on(
                (call) => call.isMasterStart && onNewConnection(call),
                () => {
                    host.fireWatchdogs();
                    return { code: 255, stderr: "ssh: connect to host alpha.example.org port 22: Connection refused\r\n" };
                },
            );
            const error = await fleetErrorOf(deployHost(request({ confirmTimeout: 30 }), context));
            expect(error).toMatchObject({ phase: "activate", host: "alpha", outcome: "unknown" });
            expect(error.message).toBe(
                "outcome unknown: the host lost access after activation (a new SSH connection after activation failed (deploy@alpha.example.org refused the connection)); " +
                    "the host's watchdog should have restored it to generation 2, but it is still not reachable as before",
            );
            expect(formatFleetError(error).split("\n")[0]).toMatch(/^host alpha: activate: outcome unknown: /);
            expect(disarms(runner)).toHaveLength(0);
            expect(deployerRestores(host)).toEqual([]);
            expect(cleanups(runner)).toHaveLength(1);
        });

        it("failing health checks after the confirmation: the deployer restores the host, with no second disarm and no wait for the watchdog", async () => {
            const { host, runner, context, slept } = setup();
            runner.on(remote("timeout"), { code: 1, stdout: "app is down\n" });
            const error = await fleetErrorOf(deployHost(request({ confirmTimeout: 30, healthChecks: failingCheck }), context));
            expect(error.message).toBe(`1 of 1 health check failed: command check-app; the deployer restored it to generation 2 ${FULL_RESTORE}`);
            expect(error.phase).toBe("verify");
            expect(host.state).toMatchObject({ profileGeneration: 2, current: v2, bootDefault: v2 });
            // Claimed once, by the confirmation; the restore relies on that claim.
            expect(disarms(runner)).toHaveLength(1);
            expect(onNewConnection(disarms(runner)[0]!)).toBe(true);
            expect(host.watchdogs[0]).toMatchObject({ stopped: true, reverted: false });
            expect(deployerRestores(host)).toEqual(FULL_RESTORE_RAN);
            expect(slept).toEqual([]);
            expect(runner.calls.map(step).slice(11)).toEqual([
                "ssh master start (new connection)",
                "remote nixos-fleet-disarm (new connection)",
                "ssh master exit (new connection)",
                "remote nixos-fleet-cleanup",
                "remote timeout --kill-after=5",
                "remote nixos-fleet-restore-start",
                "remote nixos-fleet-follow",
                "remote nixos-fleet-status",
                "remote nixos-fleet-cleanup",
                "ssh master exit",
            ]);
        });
    });

    describe("the activation unit is removed once, after the decision", () => {
        it("a restore that fails itself: the unit is still removed, once, after it", async () => {
            const { host, runner, context } = setup();
            host.failingSystems.add(next);
            host.switchGenerationFails = "error: lock held";
            const error = await fleetErrorOf(deployHost(request({ confirmTimeout: 30 }), context));
            expect(error.phase).toBe("rollback");
            const commands = remoteCommandsOf(runner);
            expect(commands.slice(-5)).toEqual([...restoreUnitCommands(runner, `switch 2 ${v2} ${v2} ''`), cleanupOf(activationUnitOf(runner))]);
            expect(cleanups(runner)).toHaveLength(1);
            expect(host.units[0]).toMatchObject({ loaded: false, logExists: false });
        });

        it("exit 4 with keepGoing and a watchdog: removed after the confirmation", async () => {
            const { host, runner, context } = setup();
            host.failingUnits.set(next, ["a.service"]);
            await deployHost(request({ confirmTimeout: 30, healthChecks: { ...NO_HEALTH_CHECKS, keepGoing: true } }), context);
            const steps = runner.calls.map(step);
            expect(steps.indexOf("remote nixos-fleet-cleanup")).toBeGreaterThan(steps.indexOf("remote nixos-fleet-disarm (new connection)"));
            expect(cleanups(runner)).toEqual([cleanupOf(activationUnitOf(runner))]);
        });

        it("an activation whose outcome is unknown: the unit is left for the watchdog (no removal)", async () => {
            const { host, runner, context } = setup();
            host.followDrops.push({ downFor: Infinity });
            await fleetErrorOf(deployHost(request({ confirmTimeout: 30, reconnectTimeout: 10 }), context));
            expect(cleanups(runner)).toEqual([]);
            expect(host.units[0]).toMatchObject({ loaded: true, logExists: true });
        });

        it("an unreadable unit state (outcome unknown): no removal, no disarm, no restore", async () => {
            const { host, runner, context } = setup();
            runner.once((call) => call.remoteCommand?.[3] === "nixos-fleet-status", { code: 1, stderr: "sudo: a password is required\n" });
            const error = await fleetErrorOf(deployHost(request({ confirmTimeout: 30 }), context));
            expect(formatFleetError(error).split("\n")[0]).toBe(
                `host alpha: activate: outcome unknown: could not read the state of the activation unit ${activationUnitOf(runner)} (exit 1)`,
            );
            expect(cleanups(runner)).toEqual([]);
            expect(disarms(runner)).toEqual([]);
            expect(deployerRestores(host)).toEqual([]);
            expect(host.watchdogs[0]).toMatchObject({ stopped: false, reverted: false });
            expect(host.units[0]).toMatchObject({ loaded: true });
        });

        it("a profile that cannot be set: no unit was started, so none is removed", async () => {
            const { runner, context } = setup();
            runner.on(remote("nix-env"), { code: 1, stderr: "sudo: a password is required\n" });
            await fleetErrorOf(deployHost(request(), context));
            expect(cleanups(runner)).toEqual([]);
        });
    });

    describe("a connection lost during activation", () => {
        it("reconnects, learns the outcome from systemd, and the deploy succeeds", async () => {
            const { host, runner, context, log } = setup();
            host.unitRunningPolls = 1;
            host.followDrops.push({});
            const outcome = await deployHost(request({ confirmTimeout: 30 }), context);
            expect(outcome.after).toMatchObject({ generation: 3, currentStorePath: next });
            expect(outcome.sshHandshakes).toBe(2);
            expect(log).toContain("reconnected; the activation ran on without us");
            expect(log.some((line) => line.startsWith("connection lost during activation ("))).toBe(true);
            expect(log.join("\n")).not.toContain("restored");
            expect(deployerRestores(host)).toEqual([]);
            expect(host.watchdogs[0]).toMatchObject({ stopped: true, reverted: false });
            expect(host.units[0]!.output).toBe(SWITCH_OUTPUT);
            expect(cleanups(runner)).toHaveLength(1);
        });

        it("a host that does not come back: outcome unknown, nothing restored, the watchdog left armed (real timers, faked)", async () => {
            const { host, runner, context } = setup();
            host.followDrops.push({ downFor: Infinity });
            // Without an injected sleep: the backoff waits for real (on faked timers).
            const { sleep: _injected, ...withoutSleep } = context;
            const { error, fakeMs } = await rejectionInFakeTime(() => deployHost(request({ confirmTimeout: 30, reconnectTimeout: 10 }), withoutSleep));
            const fleetError = error as FleetError;
            expect(fleetError.outcome).toBe("unknown");
            expect(fleetError.message.startsWith("outcome unknown: the connection was lost during activation and the host did not answer again within 10s")).toBe(true);
            expect(formatFleetError(fleetError).split("\n")[0]).toMatch(/^host alpha: activate: outcome unknown: /);
            // Gave up within the bound.
            expect(fakeMs).toBeLessThanOrEqual(11_000);
            // No restore of any kind, and the watchdog stays armed: it is the host's only way back.
            expect(deployerRestores(host)).toEqual([]);
            expect(runner.matching((call) => call.remoteCommand?.[0]?.endsWith(STC) === true)).toHaveLength(0);
            expect(disarms(runner)).toHaveLength(0);
            expect(host.watchdogs[0]).toMatchObject({ stopped: false, reverted: false });
            expect(host.decided.size).toBe(0);
            expect(host.state).toMatchObject({ profileGeneration: 3, current: next });
            expect(host.units[0]!.loaded).toBe(true);
        });

        it("a host that does not come back, with the context's sleep: the same answer after the same waits", async () => {
            const { host, runner, context, slept } = setup();
            host.followDrops.push({ downFor: Infinity });
            const error = await fleetErrorOf(deployHost(request({ confirmTimeout: 30, reconnectTimeout: 10 }), context));
            expect(error.outcome).toBe("unknown");
            expect(error.message).toMatch(/^outcome unknown: the connection was lost during activation and the host did not answer again within 10s \(deploy@alpha\.example\.org refused the connection\)/);
            expect(slept).toEqual([500, 1000, 2000, 4000]);
            expect(runner.matching(masterStart)).toHaveLength(1 + 5);
            expect(disarms(runner)).toHaveLength(0);
            expect(host.watchdogs[0]).toMatchObject({ stopped: false, reverted: false });
        });

        it("a connection lost while the unit starts: the outcome is learned (follow, status), the deploy is confirmed, and no disarm comes before the unit's end is known", async () => {
            const { host, runner, context, log } = setup();
            host.dropAfterNextStart = true;
            const outcome = await deployHost(request({ confirmTimeout: 30 }), context);
            expect(outcome.after).toMatchObject({ generation: 3, profileStorePath: next, currentStorePath: next });
            expect(runner.calls.map(step).slice(5)).toEqual([
                "remote nixos-fleet-preflight",
                "remote systemd-run watchdog",
                "remote nix-env -p",
                "remote nixos-fleet-activate", // the connection drops here
                "remote nixos-fleet-follow",
                "remote nixos-fleet-status",
                "ssh master start (new connection)",
                "remote nixos-fleet-disarm (new connection)",
                "ssh master exit (new connection)",
                "remote nixos-fleet-cleanup",
                "remote nixos-fleet-boot-files",
                "ssh master exit",
            ]);
            expect(log).toContain("connection lost while starting the activation (ssh to deploy@alpha.example.org failed); reconnecting to learn the outcome");
            expect(log[log.length - 1]).toBe("confirmed over a new connection");
            expect(host.units).toHaveLength(1);
            expect(host.units[0]).toMatchObject({ output: SWITCH_OUTPUT, loaded: false, logExists: false });
            expect(host.watchdogs[0]).toMatchObject({ stopped: true, reverted: false });
            expect(deployerRestores(host)).toEqual([]);
            expect(host.state).toMatchObject({ profileGeneration: 3, current: next, bootDefault: next });
        });

        it("a connection lost while the unit starts, and the host then stays away: outcome unknown, the watchdog left armed", async () => {
            const { host, runner, context } = setup();
            host.dropAfterNextStart = true;
            host.followDrops.push({ downFor: Infinity });
            const error = await fleetErrorOf(deployHost(request({ confirmTimeout: 30, reconnectTimeout: 10 }), context));
            expect(formatFleetError(error).split("\n")[0]).toMatch(
                /^host alpha: activate: outcome unknown: the connection was lost during activation and the host did not answer again within 10s/,
            );
            expect(disarms(runner)).toHaveLength(0);
            expect(host.watchdogs[0]).toMatchObject({ stopped: false, reverted: false });
            expect(deployerRestores(host)).toEqual([]);
            expect(cleanups(runner)).toEqual([]);
        });

        it("a host that rebooted during activation (unit gone): outcome unknown, nothing restored, the watchdog left armed", async () => {
            const { host, runner, context } = setup();
            host.followDrops.push({ reboot: true });
            const error = await fleetErrorOf(deployHost(request({ confirmTimeout: 30 }), context));
            expect(error.outcome).toBe("unknown");
            expect(error.message).toContain("the host no longer knows the activation unit");
            expect(deployerRestores(host)).toEqual([]);
            expect(disarms(runner)).toHaveLength(0);
        });
    });

    describe("another deploy under way on the host (the preflight waits up to 60 s)", () => {
        /** The token of an earlier deploy of `next` (over generation 2) that was killed before it confirmed. */
        const STALE = "5a1e5a1e5a1e5a1e";
        const STALE_ACTIVATION = `nixos-fleet-activate-${STALE}.service`;
        const STALE_WATCHDOG = `nixos-fleet-watchdog-${STALE}.service`;

        /** A host that runs `next` (generation 3), as the earlier deploy left it; its watchdog would put generation 2 back. */
        function afterEarlierDeploy(activation: "ended" | "running", timeout = 30) {
            const host = FakeHost.withGenerations(v1, v2, next);
            host.state.store.add(lib);
            const stale = host.staleWatchdog(STALE, activation, 2, timeout);
            return { host, stale };
        }

        it("a watchdog an earlier deploy left armed, its activation ended: waited for before 'already running' is decided, so its revert is seen and the system activated again", async () => {
            const { host, stale } = afterEarlierDeploy("ended");
            const { runner, context, log } = setup(host);
            const outcome = await deployHost(request({ confirmTimeout: 30 }), context);
            // Not "unchanged": during the preflight's wait that watchdog put generation 2 back.
            expect(stale).toMatchObject({ reverted: true, stopped: false });
            expect(outcome.activated).toBe(true);
            expect(outcome.before).toMatchObject({ generation: 2, currentStorePath: v2 });
            expect(outcome.after).toMatchObject({ currentStorePath: next, profileStorePath: next });
            expect(log).not.toContain("already running this system: nothing to activate");
            expect(host.activations).toEqual([`${v2} boot`, `${v2} test`, `${next} switch`]);
            expect(host.state).toMatchObject({ current: next, bootDefault: next });
            expect(remoteCommandsOf(runner).filter((command) => command.startsWith("nixos-fleet-preflight"))).toEqual([PREFLIGHT]);
        });

        it("one whose activation still runs: after the wait the deploy fails naming both units, and nothing was changed", async () => {
            const { host, stale } = afterEarlierDeploy("running");
            const { runner, context } = setup(host);
            const error = await fleetErrorOf(deployHost(request({ confirmTimeout: 30 }), context));
            expect(error).toMatchObject({ phase: "activate", host: "alpha", outcome: "failed" });
            expect(error.message).toBe(`another deploy is under way on the host (${STALE_ACTIVATION}, ${STALE_WATCHDOG} still running after 60s); nothing was changed`);
            expect(error.hint).toContain("systemctl status");
            expect(remoteCommandsOf(runner).slice(-1)).toEqual([PREFLIGHT]);
            expect(runner.matching(remote("nix-env"))).toHaveLength(0);
            expect(host.watchdogs).toEqual([stale]);
            expect(stale).toMatchObject({ stopped: false, reverted: false });
            expect(host.state).toMatchObject({ profileGeneration: 3, current: next });
        });

        it("a no-op deploy is not reported unchanged while such a watchdog is still armed past the wait (its confirmTimeout is longer)", async () => {
            const { host, stale } = afterEarlierDeploy("ended", 300);
            const { context, log } = setup(host);
            const error = await fleetErrorOf(deployHost(request(), context));
            expect(error.message).toBe(`another deploy is under way on the host (${STALE_WATCHDOG} still running after 60s); nothing was changed`);
            expect(log).not.toContain("already running this system: nothing to activate");
            expect(stale).toMatchObject({ stopped: false, reverted: false });
        });

        it("dry-activate changes nothing: it neither runs the preflight nor waits", async () => {
            const { host } = afterEarlierDeploy("running");
            const { runner, context } = setup(host);
            await deployHost(request({ action: "dry-activate" }), context);
            expect(remoteCommandsOf(runner).filter((command) => command.startsWith("nixos-fleet-preflight"))).toEqual([]);
        });
    });

    describe("disarm exit 4: a deployer had claimed the decision already", () => {
        /** Just before this deploy's disarm, the decision is found claimed by a deployer (decided-<token>/by says so). */
        function claimedByADeployerFirst(host: FakeHost, runner: FakeRunner) {
            host.beforeScript.set("nixos-fleet-disarm", () => {
                const token = tokenOf(activationUnitOf(runner));
                host.decided.add(token);
                host.decidedBy.set(token, "deployer");
                host.watchdogs[0]!.stopped = true;
            });
        }

        it("at the confirmation: counted as claimed, the deploy is confirmed, no wait for a revert", async () => {
            const { host, runner, context, log, slept } = setup();
            claimedByADeployerFirst(host, runner);
            const outcome = await deployHost(request({ confirmTimeout: 30 }), context);
            expect(outcome.activated).toBe(true);
            expect(log[log.length - 1]).toBe("confirmed over a new connection");
            expect(disarms(runner)).toHaveLength(1);
            expect(slept).toEqual([]);
            expect(runner.calls.filter(onNewConnection).map(step)).toEqual(["ssh master start (new connection)", "remote nixos-fleet-disarm (new connection)", "ssh master exit (new connection)"]);
            expect(host.watchdogs[0]).toMatchObject({ stopped: true, reverted: false });
            expect(deployerRestores(host)).toEqual([]);
            expect(host.state).toMatchObject({ profileGeneration: 3, current: next, bootDefault: next });
        });

        it("after a failed activation: counted as claimed, the deployer restores the host itself at once", async () => {
            const { host, runner, context, slept } = setup();
            host.failingSystems.add(next);
            claimedByADeployerFirst(host, runner);
            const error = await fleetErrorOf(deployHost(request({ confirmTimeout: 30 }), context));
            expect(error).toMatchObject({ phase: "activate", host: "alpha", outcome: "failed" });
            expect(error.message).toBe(`switch-to-configuration switch exited with 1; the deployer restored it to generation 2 ${FULL_RESTORE}`);
            expect(slept).toEqual([]);
            expect(disarms(runner)).toHaveLength(1);
            expect(runner.calls.filter(onNewConnection)).toEqual([]);
            expect(deployerRestores(host)).toEqual(FULL_RESTORE_RAN);
            expect(host.state).toMatchObject({ profileGeneration: 2, current: v2, bootDefault: v2 });
        });
    });

    describe("a disarm whose answer is lost (it ran on the host)", () => {
        // The disarm stopped the watchdog and wrote by=deployer; asking again would answer exit 4
        // (this deployer's own claim). The deployer does not ask again: after a failed activation it
        // restores nothing, though nothing else will now, and says "connect failed" (not unknown).
        it("lost while claiming the restore after a failed activation: the deployer asks again (exit 4) and restores the host", async () => {
            const { host, context } = setup();
            host.failingSystems.add(next);
            host.dropAfterNextDisarm = true;
            const error = await fleetErrorOf(deployHost(request({ confirmTimeout: 30 }), context));
            // The watchdog is disarmed: the deployer is the only one left to restore the host.
            expect(host.watchdogs[0]).toMatchObject({ stopped: true, reverted: false });
            expect(error.message).toBe(`switch-to-configuration switch exited with 1; the deployer restored it to generation 2 ${FULL_RESTORE}`);
            expect(host.state).toMatchObject({ profileGeneration: 2, current: v2, bootDefault: v2 });
        });

        // The same at the confirmation: it waits for a revert that cannot come, probes ten times and
        // reports the host as not reachable as before, though it is, on the new system, confirmed.
        it("lost at the confirmation: the deployer asks again (exit 4, its own claim) and the deploy is confirmed", async () => {
            const { host, context, slept } = setup();
            host.dropAfterNextDisarm = true;
            const outcome = await deployHost(request({ confirmTimeout: 30 }), context).catch((error: FleetError) => error);
            expect(host.watchdogs[0]).toMatchObject({ stopped: true, reverted: false });
            expect(host.state).toMatchObject({ profileGeneration: 3, current: next });
            expect(outcome).toMatchObject({ activated: true });
            expect(slept).toEqual([1000]); // one pause before asking again
        });
    });

    describe("an activation whose outcome the deployer cannot know", () => {
        it("the connection lost while setting the profile: outcome unknown, the watchdog left armed, no disarm, no unit", async () => {
            const { host, runner, context } = setup();
            host.dropAfterNextProfileChange = true;
            const error = await fleetErrorOf(deployHost(request({ confirmTimeout: 30 }), context));
            expect(error).toMatchObject({ phase: "activate", host: "alpha", outcome: "unknown" });
            expect(error.message).toBe(
                `outcome unknown: the connection was lost while setting the system profile (ssh to deploy@alpha.example.org failed); ` +
                    `the profile may point at ${next} while the host runs its previous system, so the next boot could run it`,
            );
            expect(error.hint).toContain("pulumi refresh");
            expect(formatFleetError(error).split("\n")[0]).toMatch(/^host alpha: activate: outcome unknown: /);
            expect(disarms(runner)).toEqual([]);
            expect(host.watchdogs[0]).toMatchObject({ stopped: false, reverted: false });
            expect(host.units).toEqual([]);
            expect(cleanups(runner)).toEqual([]);
            expect(deployerRestores(host)).toEqual([]);
            // The profile did move: what the message warns about.
            expect(host.state).toMatchObject({ profileGeneration: 3, current: v2 });
        });

        it("a plain Error during activation (not a FleetError): outcome unknown, no disarm sent, the unit not removed", async () => {
            const { host, runner, context } = setup();
            runner.once((call) => call.remoteCommand?.[3] === "nixos-fleet-follow", () => {
                throw new Error("spawn ssh EAGAIN");
            });
            const error = await fleetErrorOf(deployHost(request({ confirmTimeout: 30 }), context));
            const unit = activationUnitOf(runner);
            expect(error).toMatchObject({ phase: "activate", host: "alpha", outcome: "unknown" });
            expect(error.message).toBe("outcome unknown: the deployer failed during activation (spawn ssh EAGAIN)");
            expect(error.hint).toContain(`systemctl status ${unit}`);
            expect(error.hint).toContain("pulumi refresh");
            expect(disarms(runner)).toEqual([]);
            expect(host.watchdogs[0]).toMatchObject({ stopped: false, reverted: false });
            expect(host.decided.size).toBe(0);
            expect(cleanups(runner)).toEqual([]);
            expect(deployerRestores(host)).toEqual([]);
            expect(host.units[0]).toMatchObject({ loaded: true });
            expect(runner.calls[runner.calls.length - 1]!.isMasterExit).toBe(true);
        });

        it("a plain Error without a watchdog: outcome unknown all the same", async () => {
            const { runner, context } = setup();
            runner.once((call) => call.remoteCommand?.[3] === "nixos-fleet-status", () => {
                throw new Error("out of file descriptors");
            });
            const error = await fleetErrorOf(deployHost(request(), context));
            expect(error).toMatchObject({ phase: "activate", outcome: "unknown", message: "outcome unknown: the deployer failed during activation (out of file descriptors)" });
            expect(cleanups(runner)).toEqual([]);
        });

        it("a start that does not answer in time: the deploy learns the outcome from systemd and is confirmed", async () => {
            const { host, runner, context, log } = setup();
            host.timeoutAfterNextStart = true;
            const outcome = await deployHost(request({ confirmTimeout: 30 }), context);
            expect(outcome.after).toMatchObject({ generation: 3, currentStorePath: next });
            expect(log).toContain("starting the activation unit did not answer in time; asking systemd what became of it");
            expect(log[log.length - 1]).toBe("confirmed over a new connection");
            const steps = runner.calls.map(step);
            const start = steps.indexOf("remote nixos-fleet-activate");
            expect(steps.slice(start, start + 3)).toEqual(["remote nixos-fleet-activate", "remote nixos-fleet-follow", "remote nixos-fleet-status"]);
            expect(host.units).toHaveLength(1);
            expect(host.watchdogs[0]).toMatchObject({ stopped: true, reverted: false });
        });
    });

    describe("dry-activate", () => {
        it("runs switch-to-configuration dry-activate directly: no preflight, no watchdog, no profile", async () => {
            const { host, runner, context } = setup();
            const outcome = await deployHost(request({ action: "dry-activate", confirmTimeout: 30 }), context);
            expect(runner.calls.map(step).slice(6)).toEqual([
                "remote switch-to-configuration dry-activate",
                "remote read state",
                "ssh master exit",
            ]);
            expect(cleanups(runner)).toEqual([]);
            expect(outcome.after).toMatchObject({ generation: 2, currentStorePath: v2 });
            expect(host.watchdogs).toEqual([]);
        });

        it("a failed dry-activate changes nothing and does not claim a restore", async () => {
            const { host, runner, context } = setup();
            host.failingSystems.add(next);
            const error = await fleetErrorOf(deployHost(request({ action: "dry-activate" }), context));
            expect(error.message).toBe("switch-to-configuration dry-activate exited with 1; dry-activate changes nothing, so the host is as it was");
            expect(deployerRestores(host)).toEqual([]);
            expect(host.state).toMatchObject({ profileGeneration: 2, current: v2, bootDefault: v2 });
        });
    });

    describe("buildOn: target", () => {
        const flakeSource = storePath("source");
        const built = (path: string) => ({ stdout: JSON.stringify([{ outputs: { out: path } }]) });

        function targetSetup(buildResult: string) {
            const ctx = setup();
            ctx.runner.on(local("flake", "archive"), { stdout: JSON.stringify({ path: flakeSource, inputs: {} }) });
            ctx.runner.on(local("copy", "--no-check-sigs", "--to"), (call) => {
                expect(call.argv[call.argv.length - 1]).toBe(flakeSource);
                ctx.host.state.store.add(flakeSource);
                return {};
            });
            ctx.runner.on(remote("nix", "--extra-experimental-features"), () => {
                ctx.host.state.store.add(buildResult);
                return built(buildResult);
            });
            return ctx;
        }

        it("connects, sends the flake, builds on the host, then activates (no local build, no closure copy)", async () => {
            const { runner, context } = targetSetup(next);
            const outcome = await deployHost(request({ buildOn: "target" }), context);
            expect(runner.calls.map(step)).toEqual([
                "ssh master start",
                "local flake archive",
                "local copy --no-check-sigs",
                "remote nix --extra-experimental-features",
                "remote nixos-fleet-preflight",
                "remote nix-env -p",
                "remote nixos-fleet-activate",
                "remote nixos-fleet-follow",
                "remote nixos-fleet-status",
                "remote nixos-fleet-cleanup",
                "remote nixos-fleet-boot-files",
                "ssh master exit",
            ]);
            expect(outcome.copy.pathsCopied).toBe(0);
            expect(outcome.after.currentStorePath).toBe(next);
            expect(Object.keys(outcome.timings).sort()).toEqual(["activate", "build", "connect"]);
        });

        it("a host that builds a different path is a build error and nothing is activated", async () => {
            const other = storePath("nixos-system-alpha-impure");
            const { runner, context } = targetSetup(other);
            const error = await fleetErrorOf(deployHost(request({ buildOn: "target" }), context));
            expect(error.phase).toBe("build");
            expect(error.host).toBe("alpha");
            expect(error.message).toBe(`the host built ${other}, but the evaluation here gave ${next}`);
            expect(error.hint).toContain("buildOn: local");
            expect(runner.matching(remote("nix-env"))).toHaveLength(0);
            expect(runner.matching(masterExit)).toHaveLength(1);
        });
    });
});

describe("inspectHost", () => {
    it("opens a master, reads the state and closes it", async () => {
        const { runner, context } = setup();
        const state = await inspectHost(target(), context);
        expect(state).toMatchObject({ generation: 2, profileStorePath: v2, currentStorePath: v2 });
        expect(runner.calls.map(step)).toEqual(["ssh master start", "remote read state", "ssh master exit"]);
    });
});
