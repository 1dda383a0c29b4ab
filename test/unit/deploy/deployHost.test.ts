import { describe, expect, it } from "vitest";
import { alreadyDeployed, deployHost, inspectHost, type DeployRequest } from "../../../src/deploy/deployHost";
import type { HostState } from "../../../src/deploy/hostState";
import type { Action } from "../../../src/deploy/activate";
import type { ClosurePath } from "../../../src/nix/closure";
import { FakeHost, attachLocalNix } from "../helpers/fakeHost";
import { FakeRunner, local, masterExit, masterStart, remote, type RecordedCall } from "../helpers/fakeRunner";
import { drvPath, fleetErrorOf, runtimeDir, storePath, target } from "../helpers/fixtures";

const v1 = storePath("nixos-system-alpha-1");
const v2 = storePath("nixos-system-alpha-2");
const next = storePath("nixos-system-alpha-3");
const lib = storePath("libfoo-1.0");
const STC = "/bin/switch-to-configuration";

const closures = new Map<string, ClosurePath[]>([
    [next, [{ path: next, narSize: 4_000 }, { path: lib, narSize: 60_000 }, { path: v2, narSize: 5_000 }]],
]);

function request(overrides: Partial<DeployRequest> = {}): DeployRequest {
    return {
        target: target({ user: "deploy" }),
        storePath: next,
        drvPath: drvPath("nixos-system-alpha-3"),
        flake: "/srv/infra",
        attribute: "nixosConfigurations.alpha",
        buildOn: "local",
        action: "switch",
        substituteOnDestination: false,
        ...overrides,
    };
}

function setup(host = FakeHost.withGenerations(v1, v2)) {
    const runner = new FakeRunner();
    host.attach(runner);
    attachLocalNix(runner, host, closures);
    const log: string[] = [];
    const context = { runner: runner.run, runtimeDir: runtimeDir(), log: (line: string) => log.push(line) };
    return { host, runner, log, context };
}

/** A short name for each call, to check the order of the phases. */
function step(call: RecordedCall): string {
    if (call.isMasterStart) return "ssh master start";
    if (call.isMasterExit) return "ssh master exit";
    const words = call.remoteCommand;
    if (words) {
        if (words[0] === "sh") return words[2]?.startsWith("rm") ? "remote rm profile" : "remote read state";
        if (words[0]!.endsWith(STC)) return `remote switch-to-configuration ${words[1]}`;
        return `remote ${words.slice(0, 2).join(" ")}`;
    }
    const argv = call.argv[0] === "nix" ? call.argv.slice(3) : call.argv;
    return `local ${argv.slice(0, 2).join(" ")}`;
}

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

describe("deployHost", () => {
    it("runs build → connect → copy → activate in order, over one master that is closed at the end", async () => {
        const { runner, context } = setup();
        await deployHost(request(), context);
        expect(runner.calls.map(step)).toEqual([
            "local nix-store --realise",
            "ssh master start",
            "remote read state",
            "local path-info --json",
            "remote nix-store --check-validity",
            "local copy --no-check-sigs",
            "remote nix-env -p",
            "remote switch-to-configuration switch",
            "remote read state",
            "ssh master exit",
        ]);
        expect(runner.unexpected).toEqual([]);
    });

    it("returns the states before and after, what was copied, timings and one handshake", async () => {
        const { host, context, log } = setup();
        const outcome = await deployHost(request(), context);
        expect(outcome.before).toMatchObject({ generation: 2, currentStorePath: v2 });
        expect(outcome.after).toMatchObject({ generation: 3, currentStorePath: next, profileStorePath: next });
        // v2 is already on the host: only next and lib travel.
        expect(outcome.copy).toEqual({ pathsCopied: 2, bytesCopied: 64_000, closurePaths: 3, closureBytes: 69_000 });
        expect(outcome.activated).toBe(true);
        expect(outcome.sshHandshakes).toBe(1);
        expect(Object.keys(outcome.timings).sort()).toEqual(["activate", "build", "connect", "copy"]);
        expect(Number.isNaN(Date.parse(outcome.activatedAt))).toBe(false);
        expect(host.state.current).toBe(next);
        expect(log).toEqual([
            `build ${next}`,
            "connect",
            "copying 2 paths (64000 bytes) to alpha",
            "copy: 2 of 3 paths, 64000 bytes",
            "activate (switch)",
        ]);
    });

    it("passes substituteOnDestination to nix copy", async () => {
        const { runner, context } = setup();
        await deployHost(request({ substituteOnDestination: true }), context);
        expect(runner.matching(local("copy"))[0]!.argv).toContain("--substitute-on-destination");
    });

    it("skips activation (and copies nothing) when the host already runs the system", async () => {
        const host = FakeHost.withGenerations(v1, v2, next);
        host.state.store.add(lib);
        const { runner, context, log } = setup(host);
        const outcome = await deployHost(request(), context);
        expect(outcome.activated).toBe(false);
        expect(outcome.after).toEqual(outcome.before);
        expect(outcome.copy.pathsCopied).toBe(0);
        expect(runner.matching(remote("nix-env"))).toHaveLength(0);
        expect(runner.matching(local("copy"))).toHaveLength(0);
        expect(host.activations).toEqual([]);
        expect(log).toContain("already running this system: nothing to activate");
        expect(runner.matching(masterExit)).toHaveLength(1);
    });

    it("closes the master even when activation fails, and reports the activation error", async () => {
        const { host, runner, context } = setup();
        host.failingSystems.add(next);
        const error = await fleetErrorOf(deployHost(request(), context));
        expect(error.phase).toBe("activate");
        expect(error.message).toContain("restored to generation 2");
        expect(runner.calls[runner.calls.length - 1]!.isMasterExit).toBe(true);
    });

    it("a failing local build stops before connecting", async () => {
        const { runner, context } = setup();
        runner.on(local("nix-store", "--realise"), { code: 1, stderr: "error: build failed\n" });
        const error = await fleetErrorOf(deployHost(request(), context));
        expect(error.phase).toBe("build");
        expect(error.host).toBe("alpha");
        expect(runner.matching(masterStart)).toHaveLength(0);
        expect(runner.matching(masterExit)).toHaveLength(0);
    });

    it("a host that cannot be reached is a connect error, and nothing else runs", async () => {
        const { runner, context } = setup();
        runner.on(masterStart, { code: 255, stderr: "ssh: connect to host alpha.example.org port 22: Connection refused\r\n" });
        const error = await fleetErrorOf(deployHost(request(), context));
        expect(error.phase).toBe("connect");
        expect(runner.calls.map(step)).toEqual(["local nix-store --realise", "ssh master start"]);
    });

    it("the close failing does not hide the outcome", async () => {
        const { runner, context } = setup();
        runner.on(masterExit, () => {
            throw new Error("control socket gone");
        });
        const outcome = await deployHost(request(), context);
        expect(outcome.activated).toBe(true);
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
                "remote read state",
                "local flake archive",
                "local copy --no-check-sigs",
                "remote nix --extra-experimental-features",
                "remote nix-env -p",
                "remote switch-to-configuration switch",
                "remote read state",
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
