// Activation that cannot be cut in half, end to end on sandbox hosts booting real systemd:
// switch-to-configuration runs in a transient unit; an SSH drop mid-activation is survived; slow
// activations are never reverted under themselves; exit status 4 names the failed units; the
// activation lock is respected; a profile moved by hand converges; a host that goes away mid-
// activation is "outcome unknown", never "restored". Each test checks host, profile and stack.
import { cpSync, existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startUp, waitFor } from "./helpers/deployer";
import { FleetProject } from "./helpers/fleetProject";

const HOSTS = ["mu", "nu"];
let project: FleetProject;

const defaults = () => ({ sshConfigFile: project.sandbox.layout.sshConfigFile });

/** The transient activation units loaded on the host right now. */
async function activationUnits(host: string): Promise<string[]> {
    const result = await project.sandbox.console(host, ["systemctl", "list-units", "--all", "--plain", "--no-legend", "nixos-fleet-activate-*"]);
    return result.stdout.split("\n").map((line) => line.trim().split(/\s+/)[0] ?? "").filter(Boolean);
}

async function webPage(host: string): Promise<string> {
    return (await fetch(`http://127.0.0.1:${project.sandbox.host(host).webPort}/`)).text();
}

/** The lines of the host's activation log (every switch-to-configuration switch/boot/test). */
function activations(host: string): string[] {
    const file = join(project.sandbox.layout.nixDir(host), "var", "nix", "sandbox", "activations.log");
    return existsSync(file) ? readFileSync(file, "utf8").split("\n").filter(Boolean) : [];
}

/** Nothing of a finished deploy stays on the host: no units, no decision files. */
async function expectNoLeftovers(host: string): Promise<void> {
    const units = await project.sandbox.console(host, ["systemctl", "list-units", "--all", "--plain", "--no-legend", "nixos-fleet-*"]);
    expect(units.stdout.trim()).toBe("");
    expect(await project.onHost(host, ["sh", "-c", "ls /run/nixos-fleet | grep -c -e decided- -e reverted- || true"])).toBe("0");
}

/** Host, profile and stack all say the host runs `version` of its configuration. */
async function expectAgreeOn(host: string, version: number): Promise<void> {
    const onHost = await project.hostSystem(host);
    expect(onHost.current).toMatch(new RegExp(`nixos-system-${host}-24\\.05\\.${version}-sandbox$`));
    expect(onHost.profile).toBe(onHost.current);
    const state = (await project.hostStates())[host]!;
    expect(state.storePath).toBe(onHost.current);
    expect(state.generation).toBe(onHost.generation);
    expect(state.storePath).toBe(await project.evaluatedStorePath(host));
}

beforeAll(async () => {
    project = await FleetProject.create({ hosts: HOSTS, portBase: 12200 });
    project.writeStackConfig({ hosts: HOSTS, defaults: { ...defaults(), confirmTimeout: 8 } });
    const first = await project.up();
    if (first.code !== 0) throw new Error(first.stdout + first.stderr);
});

afterAll(async () => {
    await project?.dispose();
});

describe("activation in a transient unit", () => {
    it("runs switch-to-configuration in a real transient unit, removed once the deploy is done", async () => {
        await project.sandbox.set("mu", { version: 2, slow: 3 });
        const run = startUp(project);
        await waitFor(async () => (await activationUnits("mu")).length > 0, 60_000, "the activation unit");
        const [unit] = await activationUnits("mu");
        const status = await project.sandbox.console("mu", ["systemctl", "status", "--no-pager", unit!]);
        expect(status.stdout).toMatch(/Active: active \(running\)/);
        expect(status.stdout).toContain("switch-to-configuration switch");
        expect(await run.done, run.output()).toBe(0);
        expect(await activationUnits("mu")).toEqual([]);
        await expectAgreeOn("mu", 2);
        await project.sandbox.set("mu", { slow: 0 });
    });

    it("what an interrupted deploy left (an ended, failed unit and its hour-old log) is removed by the next deploy's cleanup", async () => {
        const stale = "nixos-fleet-activate-00000000deadbeef.service";
        const plant = [
            "sh", "-c",
            `systemd-run --unit=${stale} -p RemainAfterExit=yes --quiet sh -c 'exit 3'; mkdir -p /run/nixos-fleet; ` +
                `echo interrupted > /run/nixos-fleet/${stale}.log; touch -d '-1 hour' /run/nixos-fleet/${stale}.log; sleep 1`,
        ];
        await project.sandbox.console("mu", plant);
        const failed = await project.sandbox.console("mu", ["systemctl", "--failed", "--plain", "--no-legend"]);
        expect(failed.stdout).toContain(stale);
        // A change of mu's system that keeps its version (the next test deploys version 3).
        await project.sandbox.set("mu", { size: 1 });
        const up = await project.up();
        expect(up.code, up.stdout + up.stderr).toBe(0);
        await expectAgreeOn("mu", 2);
        expect((await project.sandbox.console("mu", ["systemctl", "--failed", "--plain", "--no-legend"])).stdout).not.toContain(stale);
        await expectNoLeftovers("mu");
        expect(await project.onHost("mu", ["sh", "-c", "ls /run/nixos-fleet | grep -c nixos-fleet-activate- || true"])).toBe("0");
    });

    it("an SSH drop mid-activation: the deployer reconnects, learns the outcome, and host, profile and stack agree", async () => {
        await project.sandbox.set("mu", { version: 3, slow: 12 });
        const run = startUp(project);
        await waitFor(async () => (await activationUnits("mu")).length > 0, 60_000, "the activation unit");
        await new Promise((resolve) => setTimeout(resolve, 2000));
        // Kill the deployer's sshd session processes on the host, by PID, from the console.
        const sessions = await project.sandbox.console("mu", ["pgrep", "-f", "^sshd: root"]);
        const pids = sessions.stdout.split("\n").filter(Boolean);
        expect(pids.length).toBeGreaterThan(0);
        expect((await project.sandbox.console("mu", ["kill", "-KILL", ...pids])).code).toBe(0);

        const code = await run.done;
        const output = run.output();
        expect(code, output).toBe(0);
        expect(output).toMatch(/connection lost during activation/);
        expect(output).toMatch(/reconnected; the activation ran on without us/);
        expect(output).not.toMatch(/restored/);
        await expectAgreeOn("mu", 3);
        await project.sandbox.set("mu", { slow: 0 });
    });

    it("an activation longer than confirmTimeout ends on the new system, never reverted", async () => {
        // The watchdog's timer starts when the activation ends: an activation of 14 s under a
        // confirmTimeout of 8 s (the default is 30 s; same mechanism, shorter test) is kept.
        project.writeStackConfig({ hosts: HOSTS, defaults: { ...defaults(), confirmTimeout: 8 } });
        await project.sandbox.set("nu", { version: 2, slow: 14 });
        const result = await project.up();
        expect(result.code, result.stdout + result.stderr).toBe(0);
        expect(result.stdout).toMatch(/automatic rollback unless confirmed within 8s after it ends/);
        await expectAgreeOn("nu", 2);
        const watchdogLog = await project.onHost("nu", ["sh", "-c", "cat /run/nixos-fleet/watchdog.log 2>/dev/null || true"]);
        expect(watchdogLog).not.toMatch(/reverting/);
        // One activation only: the switch, not a revert on top of it.
        const switches = await project.onHost("nu", ["sh", "-c", "grep -c nixos-system-nu-24.05.2 /nix/var/nix/sandbox/activations.log"]);
        expect(switches).toBe("1");
        await project.sandbox.set("nu", { slow: 0 });
    }, 180_000);

    it("a profile moved by hand: refresh warns, the preview shows the host, up makes profile, boot default and running system agree", async () => {
        const running = await project.hostSystem("mu");
        await project.onHost("mu", ["nix-env", "-p", "/nix/var/nix/profiles/system", "--switch-generation", "1"]);
        const refresh = await project.refresh();
        expect(refresh.code, refresh.stdout + refresh.stderr).toBe(0);
        expect(refresh.stdout + refresh.stderr).toMatch(/mu: the system profile \(generation 1, .*\) is not the running system/);
        // Generation 1 does not hold the running system: the state does not pair them.
        expect((await project.hostStates()).mu).toMatchObject({ storePath: running.current, generation: null });
        const preview = await project.previewJson();
        const step = preview.steps.find((s) => s.urn.endsWith("::mu"));
        expect(step?.op).toBe("update");

        const up = await project.up();
        expect(up.code, up.stdout + up.stderr).toBe(0);
        const after = await project.hostSystem("mu");
        expect(after.current).toBe(running.current);
        expect(after.profile).toBe(running.current);
        expect(await project.onHost("mu", ["readlink", "-f", "/nix/var/nix/sandbox/boot-default"])).toBe(running.current);
        await expectAgreeOn("mu", 3);
    });

    it("failedUnits=web: exit status 4 names web.service and the host is restored; keepGoing keeps it", async () => {
        const before = await project.hostSystem("nu");
        const stateBefore = (await project.hostStates()).nu;
        await project.sandbox.set("nu", { version: 3, failedUnits: ["web"] });
        const result = await project.up();
        const output = result.stdout + result.stderr;
        expect(result.code).not.toBe(0);
        expect(output).toMatch(/host nu: activate failed: switch-to-configuration switch switched the system, but units failed: web\.service \(exit status 4\); the deployer restored it to generation \d+/);
        expect(await project.hostSystem("nu")).toEqual(before);
        expect((await project.hostStates()).nu).toEqual(stateBefore);
        expect(await webPage("nu")).toContain("NixOS 24.05.2-sandbox");

        project.writeStackConfig({
            hosts: HOSTS,
            defaults: { ...defaults(), confirmTimeout: 8 },
            overrides: { nu: { healthChecks: { keepGoing: true } } },
        });
        const kept = await project.up();
        expect(kept.code, kept.stdout + kept.stderr).toBe(0);
        expect(kept.stdout).toMatch(/warning: switched, but units failed: web\.service; healthChecks\.keepGoing is set/);
        await expectAgreeOn("nu", 3);
        project.writeStackConfig({ hosts: HOSTS, defaults: { ...defaults(), confirmTimeout: 8 } });
        await project.sandbox.set("nu", { version: 4, failedUnits: [] });
        const fixed = await project.up();
        expect(fixed.code, fixed.stdout + fixed.stderr).toBe(0);
        expect(await webPage("nu")).toContain("NixOS 24.05.4-sandbox");
    });

    it("another activation holds the lock: the deploy waits, then fails saying so, and nothing changes", async () => {
        const before = await project.hostSystem("nu");
        const stateBefore = (await project.hostStates()).nu;
        const held = await project.sandbox.console("nu", ["sh", "-c", "mkdir -p /run/nixos; flock --close /run/nixos/switch-to-configuration.lock sleep 120 >/dev/null 2>&1 &"]);
        expect(held.code).toBe(0);
        try {
            await project.sandbox.set("nu", { version: 5 });
            const result = await project.up();
            const output = result.stdout + result.stderr;
            expect(result.code).not.toBe(0);
            expect(output).toMatch(/host nu: activate failed: another activation is running on the host \(it has held \/run\/nixos\/switch-to-configuration\.lock for \d+s\); nothing was changed/);
            expect(await project.hostSystem("nu")).toEqual(before);
            expect((await project.hostStates()).nu).toEqual(stateBefore);
        } finally {
            await project.sandbox.console("nu", ["pkill", "-f", "flock --close /run/nixos/switch-to-configuration.lock"]);
        }
        const up = await project.up();
        expect(up.code, up.stdout + up.stderr).toBe(0);
        await expectAgreeOn("nu", 5);
    });

    it("a host that goes away mid-activation: outcome unknown, nothing restored; refresh records what it runs", async () => {
        project.writeStackConfig({ hosts: HOSTS, defaults: { ...defaults(), confirmTimeout: 8 }, overrides: { mu: { reconnectTimeout: 4 } } });
        const stateBefore = (await project.hostStates()).mu!;
        await project.sandbox.set("mu", { version: 4, slow: 6 });
        const run = startUp(project);
        await waitFor(async () => (await activationUnits("mu")).length > 0, 60_000, "the activation unit");
        await project.sandbox.stop(["mu"]); // powered off mid-activation

        const code = await run.done;
        const output = run.output();
        expect(code).not.toBe(0);
        // Either the connection dropped and the host did not come back in time, or the host was
        // reached while shutting down and no longer knew the activation: both are "unknown".
        expect(output).toMatch(/host mu: activate: outcome unknown: (the connection was lost during activation and the host did not answer again within 4s|the host no longer knows the activation unit)/);
        expect(output).not.toMatch(/restored it to/);
        expect((await project.hostStates()).mu!.storePath).toBe(stateBefore.storePath);

        await project.sandbox.start(["mu"]);
        const refresh = await project.refresh();
        expect(refresh.code, refresh.stdout + refresh.stderr).toBe(0);
        const onHost = await project.hostSystem("mu");
        expect((await project.hostStates()).mu!.storePath).toBe(onHost.current);
        await project.sandbox.set("mu", { slow: 0 });
        const up = await project.up();
        expect(up.code, up.stdout + up.stderr).toBe(0);
        await expectAgreeOn("mu", 4);
    });

    it("a second stack that waited for the lock restores what really ran before it, and says who restored", async () => {
        const other = "/tmp/nf-activation-other-flake";
        rmSync(other, { recursive: true, force: true });
        cpSync(project.sandbox.flakeDir, other, { recursive: true });
        const knobs = JSON.parse(readFileSync(join(other, "hosts", "nu.json"), "utf8")) as Record<string, unknown>;
        writeFileSync(join(other, "hosts", "nu.json"), JSON.stringify({ ...knobs, version: 70, fail: true, slow: 0 }));
        await project.initStack("other", { hosts: ["nu"], defaults: { ...defaults(), confirmTimeout: 8 }, overrides: { nu: { flake: `path:${other}` } } });
        try {
            await project.sandbox.set("nu", { version: 6, slow: 8 });
            const first = startUp(project);
            await waitFor(async () => (await activationUnits("nu")).length > 0, 60_000, "the first stack's activation");
            project.stack = "other";
            const second = startUp(project);
            project.stack = "e2e";
            const [a, b] = await Promise.all([first.done, second.done]);
            expect(a, first.output()).toBe(0);
            expect(b).not.toBe(0);
            const generation = (await project.hostSystem("nu")).generation;
            expect(second.output()).toMatch(new RegExp(`host nu: activate failed: switch-to-configuration switch exited with 1; the deployer restored it to generation ${generation} `));
            await expectAgreeOn("nu", 6);
        } finally {
            project.stack = "e2e";
            rmSync(other, { recursive: true, force: true });
        }
        await project.sandbox.set("nu", { slow: 0 });
    });

    it("SSH sessions killed during the deployer's restore: the restore runs on in its unit, the host is fully back", async () => {
        await project.sandbox.set("mu", { version: 5, slow: 6 }); // the system to go back to restores slowly
        const deployed = await project.up();
        expect(deployed.code, deployed.stdout + deployed.stderr).toBe(0);
        const back = await project.hostSystem("mu");
        await project.sandbox.set("mu", { version: 6, fail: true, slow: 0 });
        const n0 = activations("mu").length;
        const run = startUp(project);
        // The failed switch, the restore's boot, then its slow test of the previous system.
        await waitFor(() => activations("mu").length >= n0 + 3, 60_000, "the restore's re-activation");
        const sessions = await project.sandbox.console("mu", ["pgrep", "-f", "^sshd: root"]);
        expect((await project.sandbox.console("mu", ["kill", "-KILL", ...sessions.stdout.split("\n").filter(Boolean)])).code).toBe(0);
        const code = await run.done;
        const output = run.output();
        expect(code).not.toBe(0);
        expect(output).toMatch(/connection lost while restoring the previous system/);
        expect(output).toMatch(new RegExp(`switch-to-configuration switch exited with 1; the deployer restored it to generation ${back.generation} \\(profile back to generation ${back.generation}, boot default back to the previous generation, re-activated the previously running system\\)`));
        expect(await project.hostSystem("mu")).toEqual(back);
        expect(await project.onHost("mu", ["readlink", "-f", "/nix/var/nix/sandbox/boot-default"])).toBe(back.current);
        expect((await project.hostStates()).mu).toMatchObject({ storePath: back.current, generation: back.generation });
        await expectNoLeftovers("mu");
        await project.sandbox.set("mu", { fail: false, slow: 0 });
        const converged = await project.up();
        expect(converged.code, converged.stdout + converged.stderr).toBe(0);
        await expectAgreeOn("mu", 6);
    });

    it("a previous system whose own units fail is still restored; the error names the new failed units", async () => {
        const keep = { hosts: HOSTS, defaults: { ...defaults(), confirmTimeout: 8 }, overrides: { nu: { healthChecks: { keepGoing: true } } } };
        project.writeStackConfig(keep);
        await project.sandbox.set("nu", { version: 8, failedUnits: ["web"] });
        const accepted = await project.up();
        expect(accepted.code, accepted.stdout + accepted.stderr).toBe(0);
        const back = await project.hostSystem("nu");
        project.writeStackConfig({ hosts: HOSTS, defaults: { ...defaults(), confirmTimeout: 8 } });
        await project.sandbox.set("nu", { version: 9, failedUnits: ["web", "worker"] });
        const result = await project.up();
        const output = result.stdout + result.stderr;
        expect(result.code).not.toBe(0);
        expect(output).toMatch(/host nu: activate failed: switch-to-configuration switch switched the system, but units failed: web\.service, worker\.service \(exit status 4\); the deployer restored it to generation \d+ \(.*re-activated the previously running system \(units of that system failed, see above\)\)/);
        expect(output).not.toMatch(/rollback failed/);
        expect(await project.hostSystem("nu")).toEqual(back);
        await project.sandbox.set("nu", { version: 10, failedUnits: [] });
        const fixed = await project.up();
        expect(fixed.code, fixed.stdout + fixed.stderr).toBe(0);
        await expectAgreeOn("nu", 10);
        await expectNoLeftovers("nu");
    });
});
