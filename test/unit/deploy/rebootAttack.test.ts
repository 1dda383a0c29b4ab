// Attacks on reboots: what the deploy and the state say when the host comes back into another
// system than the deployed one, and the bounds of rebootTimeout for every way it comes in.
import { afterEach, describe, expect, it, vi } from "vitest";
import { deployHost, DeployedUnchecked, type DeployContext, type DeployRequest } from "../../../src/deploy/deployHost";
import { rebootHost } from "../../../src/deploy/reboot";
import type { FleetError } from "../../../src/errors";
import { SshConnection } from "../../../src/ssh/connection";
import { outputsAfterDeploy } from "../../../src/provider/hostProvider";
import { hostInputsSchema, type HostInputs } from "../../../src/provider/hostInputs";
import { fakeClock } from "../helpers/clock";
import { FakeHost, attachLocalNix } from "../helpers/fakeHost";
import { FakeRunner, remote } from "../helpers/fakeRunner";
import { deployRequest, drvPath, runtimeDir, storePath, target } from "../helpers/fixtures";

const v1 = storePath("nixos-system-alpha-1");
const v2 = storePath("nixos-system-alpha-2");
const next = storePath("nixos-system-alpha-3");
const KERNEL_2 = "/nix/store/jjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjj-linux-6.6.2";

/** A host at generation 2 and a deployer with its third system built, whose kernel is new (a reboot is needed). */
function kernelUpdate(): { host: FakeHost; runner: FakeRunner } {
    const host = FakeHost.withGenerations(v1, v2);
    host.kernels.set(next, KERNEL_2);
    const runner = new FakeRunner();
    host.attach(runner);
    attachLocalNix(runner, host, new Map([[next, [{ path: next, narSize: 4_000 }]]]));
    return { host, runner };
}

describe("a host that reboots into its old system (the boot loader did not take the deployed one)", () => {
    let clock: ReturnType<typeof fakeClock> | undefined;
    afterEach(() => clock?.stop());

    it("fails clearly, and the state records what the host runs and booted after the reboot, never the deployed system", async () => {
        clock = fakeClock();
        const { host, runner } = kernelUpdate();
        // The activation installed the boot entry; the boot loader then still boots the old one.
        host.beforeScript.set("nixos-fleet-reboot-prepare", () => {
            host.state.bootDefault = v2;
        });
        const context: DeployContext = { runner: runner.run, runtimeDir: runtimeDir(), log: () => undefined, sleep: clock.sleep };
        const request: DeployRequest = deployRequest({
            reboot: "auto",
            rebootTimeout: 60,
        });
        const error = (await deployHost(request, context).catch((e: unknown) => e)) as DeployedUnchecked;
        expect(error).toBeInstanceOf(DeployedUnchecked);
        expect(error).toMatchObject({ phase: "reboot", outcome: "failed" });
        expect(error.message).toMatch(/the boot loader did not take it/);
        expect(host.state.current).toBe(v2);
        // What the host runs after the reboot, read on the new boot.
        expect(error.partial.after).toMatchObject({ currentStorePath: v2, bootedStorePath: v2 });
        const inputs = hostInputsSchema.parse({ name: "alpha", address: "127.0.0.1", storePath: next, drvPath: drvPath("nixos-system-alpha-3"), flake: "/srv/infra", attribute: "nixosConfigurations.alpha", reboot: "auto" }) as HostInputs;
        const outputs = outputsAfterDeploy(inputs, error.partial, undefined, error);
        expect(outputs.runningStorePath).toBe(v2);
        expect(outputs.bootedStorePath).toBe(v2);
        expect(outputs.lastReboot).toMatchObject({ outcome: "failed", bootId: "boot-2", bootedStorePath: v2 });
    });
});

describe("rebootTimeout's bounds are the host file's for every input (the library's Host, another program)", () => {
    const base = { name: "alpha", address: "127.0.0.1", storePath: next, drvPath: drvPath("nixos-system-alpha-3"), flake: "/srv/infra", attribute: "nixosConfigurations.alpha", reboot: "auto" };
    it.each([0, -5, 0.001, 2.5, 3601, 1e12, Number.POSITIVE_INFINITY, Number.NaN, "600"])("refuses %s", (value) => {
        const parsed = hostInputsSchema.safeParse({ ...base, rebootTimeout: value });
        expect(parsed.success).toBe(false);
        expect(JSON.stringify(parsed.error?.issues)).toMatch(/rebootTimeout/);
    });
    it.each([1, 600, 3600])("takes %s", (value) => {
        expect(hostInputsSchema.safeParse({ ...base, rebootTimeout: value }).success).toBe(true);
    });
});

describe("policies against actions", () => {
    let clock: ReturnType<typeof fakeClock> | undefined;
    afterEach(() => clock?.stop());

    function setup() {
        clock = fakeClock();
        const { host, runner } = kernelUpdate();
        const log: string[] = [];
        const context: DeployContext = { runner: runner.run, runtimeDir: runtimeDir(), log: (line) => log.push(line), sleep: clock.sleep };
        const request = (overrides: Partial<DeployRequest>): DeployRequest => deployRequest(overrides);
        return { host, runner, log, context, request };
    }

    it("action test with reboot always: no reboot, and the log says why (the action, not the policy)", async () => {
        const { host, runner, log, context, request } = setup();
        const outcome = await deployHost(request({ action: "test", reboot: "always" }), context);
        expect(runner.matching(remote("systemctl", "reboot"))).toHaveLength(0);
        expect(host.state.current).toBe(next);
        expect(outcome.reboot?.rebooted).toBeUndefined();
        expect(log.join("\n")).not.toMatch(/reboot is always, so the host was not rebooted/);
        expect(log).toContain("reboot needed (kernel, initrd, kernel-modules changed); action test never reboots (the host would boot its system profile, not the tested system), so the host was not rebooted");
    });

    it("action boot with reboot auto: reboots into the deployed system, which then runs", async () => {
        const { host, runner, context, request } = setup();
        host.kernels.delete(next);
        const outcome = await deployHost(request({ action: "boot", reboot: "auto" }), context);
        expect(runner.matching(remote("systemctl", "reboot"))).toHaveLength(1);
        expect(outcome.after).toMatchObject({ currentStorePath: next, bootedStorePath: next });
        expect(outcome.reboot).toMatchObject({ need: { changed: [], bootPending: false }, rebooted: { bootedStorePath: next } });
    });

    it("reboot always with the host already running the system: no reboot (always means after a deploy that changed the host)", async () => {
        const { host, runner, context, request } = setup();
        host.kernels.delete(next);
        await deployHost(request({}), context);
        const outcome = await deployHost(request({ reboot: "always" }), context);
        expect(outcome.activated).toBe(false);
        expect(runner.matching(remote("systemctl", "reboot"))).toHaveLength(0);
    });
});

describe("a host that is black-holed while it reboots (connection attempts hang until their timeout)", () => {
    let clock: ReturnType<typeof fakeClock> | undefined;
    afterEach(() => clock?.stop());

    it("the wait ends within rebootTimeout: no connection attempt runs past it", async () => {
        clock = fakeClock();
        const host = FakeHost.withGenerations(v1, v2);
        host.state.bootDefault = next;
        host.onReboot = { downFor: Infinity };
        const fake = new FakeRunner();
        host.attach(fake);
        let rebooted = false;
        // After the reboot, every ssh start hangs until the runner's timeout kills it (packets dropped).
        const runner: typeof fake.run = async (argv, options) => {
            if (rebooted && argv[0] === "ssh" && argv.includes("ControlMaster=yes")) {
                vi.setSystemTime(Date.now() + (options?.timeoutMs ?? 0));
                return { argv, code: null, signal: "SIGTERM", stdout: "", stderr: "", timedOut: true, durationMs: options?.timeoutMs ?? 0 };
            }
            const result = await fake.run(argv, options);
            if (fake.matching(remote("systemctl", "reboot")).length > 0) rebooted = true;
            return result;
        };
        const connection = new SshConnection(target({ user: "deploy" }), { runner, runtimeDir: runtimeDir() });
        const started = Date.now();
        const error = (await rebootHost(connection, { timeoutSeconds: 5, storePath: next, sleep: clock.sleep }).catch((e: unknown) => e)) as FleetError;
        expect(error).toMatchObject({ phase: "reboot", outcome: "unknown" });
        expect(rebooted).toBe(true);
        // At most one second past the bound (the shortest attempt), never a whole connect timeout.
        expect(Date.now() - started).toBeLessThanOrEqual(6_000);
        expect(error.message).toMatch(/within 5s \(waited [56](\.\d)?s;/);
    });
});

describe("a reboot into the deployed system whose health checks then fail", () => {
    let clock: ReturnType<typeof fakeClock> | undefined;
    afterEach(() => clock?.stop());

    it("the state records the host booted into the deployed system: no reboot needed any more, and the booted system is the new one", async () => {
        clock = fakeClock();
        const { host, runner } = kernelUpdate();
        // The check passes on the old boot, fails on the new one.
        runner.on(remote("timeout"), () => (host.bootId === "boot-1" ? {} : { code: 1, stdout: "app is down\n" }));
        const context: DeployContext = { runner: runner.run, runtimeDir: runtimeDir(), log: () => undefined, sleep: clock.sleep };
        const request: DeployRequest = deployRequest({
            reboot: "auto",
            rebootTimeout: 60,
            healthChecks: { commands: [{ command: ["check-app"], timeout: 10, retries: 0 }], units: [], tcp: [], http: [], keepGoing: false },
        });
        const error = (await deployHost(request, context).catch((e: unknown) => e)) as DeployedUnchecked;
        expect(error).toBeInstanceOf(DeployedUnchecked);
        expect(error).toMatchObject({ phase: "verify" });
        expect(error.message).toMatch(/after the reboot, .*the host booted the deployed system and was not restored/);
        expect(host.state.booted).toBe(next);
        const inputs = hostInputsSchema.parse({ name: "alpha", address: "127.0.0.1", storePath: next, drvPath: drvPath("nixos-system-alpha-3"), flake: "/srv/infra", attribute: "nixosConfigurations.alpha", reboot: "auto" }) as HostInputs;
        const outputs = outputsAfterDeploy(inputs, error.partial, undefined, error);
        expect(outputs.lastReboot).toMatchObject({ outcome: "booted", bootedStorePath: next });
        expect(outputs.bootedStorePath).toBe(next);
        expect(outputs.rebootNeeded).toBeNull();
    });
});

describe("a host that is already shutting down when the deploy reboots it", () => {
    let clock: ReturnType<typeof fakeClock> | undefined;
    afterEach(() => clock?.stop());

    it("systemctl reboot refused because a shutdown is under way: the deploy waits for the new boot instead of saying the reboot was refused", async () => {
        clock = fakeClock();
        const host = FakeHost.withGenerations(v1, v2);
        host.state.bootDefault = next;
        const runner = new FakeRunner();
        host.attach(runner);
        // The host is going down already (someone else rebooted it): systemd refuses a second reboot job.
        runner.on(remote("systemctl", "reboot"), { code: 1, stderr: "Failed to reboot system via logind: There's already a shutdown or sleep operation in progress\n" });
        runner.on(remote("systemctl", "is-system-running"), { code: 1, stdout: "stopping\n" });
        // The shutdown under way ends in a new boot before the first probe.
        host.beforeScript.set("nixos-fleet-reboot-probe", () => {
            host.reboot();
            host.bootId = "boot-2";
            host.rebootMarker = false;
        });
        const connection = new SshConnection(target({ user: "deploy" }), { runner: runner.run, runtimeDir: runtimeDir() });
        const log: string[] = [];
        const result = await rebootHost(connection, { timeoutSeconds: 60, storePath: next, sleep: clock.sleep, log: (line) => log.push(line) });
        expect(result).toMatchObject({ previousBootId: "boot-1", bootId: "boot-2", bootedStorePath: next });
        expect(log).toContain("systemctl reboot exited with 1, but the host is already shutting down: waiting for its new boot");
    });
});

describe("Ctrl-C while waiting for the reboot (the engine cancels the update)", () => {
    let clock: ReturnType<typeof fakeClock> | undefined;
    afterEach(() => clock?.stop());

    it("the wait ends at the next poll with an unknown outcome; the state records the reboot as unknown, never booted", async () => {
        clock = fakeClock();
        const { host, runner } = kernelUpdate();
        host.onReboot = { downFor: Infinity };
        const cancellation = new AbortController();
        const sleep = async (ms: number) => {
            await clock!.sleep(ms);
            // The operator presses Ctrl-C 6 s into the wait.
            if (clock!.slept.reduce((a, b) => a + b, 0) >= 6000) cancellation.abort();
        };
        const context: DeployContext = { runner: runner.run, runtimeDir: runtimeDir(), log: () => undefined, sleep, cancelled: cancellation.signal };
        const request: DeployRequest = deployRequest({
            reboot: "auto",
            rebootTimeout: 600,
        });
        const error = (await deployHost(request, context).catch((e: unknown) => e)) as DeployedUnchecked;
        expect(error).toBeInstanceOf(DeployedUnchecked);
        expect(error).toMatchObject({ phase: "reboot", outcome: "unknown" });
        expect(error.message).toMatch(/^outcome unknown: the run was cancelled \(Ctrl-C\) while waiting for the host to come back from the reboot \(waited 6s of 600s; last: .*\); the deployed system was activated before the reboot$/);
        expect(clock.slept.reduce((a, b) => a + b, 0)).toBe(6000);
        const inputs = hostInputsSchema.parse({ name: "alpha", address: "127.0.0.1", storePath: next, drvPath: drvPath("nixos-system-alpha-3"), flake: "/srv/infra", attribute: "nixosConfigurations.alpha", reboot: "auto" }) as HostInputs;
        const outputs = outputsAfterDeploy(inputs, error.partial, undefined, error);
        expect(outputs.lastReboot).toMatchObject({ outcome: "unknown", bootId: null, bootedStorePath: null, waitedSeconds: 6 });
        expect(outputs).not.toHaveProperty("rebootNeeded");
    });
});
