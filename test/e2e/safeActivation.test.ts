// Safe activation end to end: a deploy that cuts SSH access reverts the host by itself; a killed
// deployer leaves a host that the next run finds out about and converges; concurrent deploys of
// one stack are refused. Each test asserts the host's profile, running system and stack state.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { killDeployer, startUp as startUpOf, waitFor } from "./helpers/deployer";
import { FleetProject } from "./helpers/fleetProject";

const HOSTS = ["kappa", "lambda"];
let project: FleetProject;

function activationLog(name: string): string {
    const file = join(project.sandbox.dir, "hosts", name, "nix", "var", "nix", "sandbox", "activations.log");
    return existsSync(file) ? readFileSync(file, "utf8") : "";
}

const startUp = () => startUpOf(project);

beforeAll(async () => {
    project = await FleetProject.create({ hosts: HOSTS, portBase: 11200 });
    project.writeStackConfig({ hosts: HOSTS, defaults: { sshConfigFile: project.sandbox.layout.sshConfigFile, confirmTimeout: 6 } });
    const first = await project.up();
    if (first.code !== 0) throw new Error(first.stdout + first.stderr);
});

afterAll(async () => {
    await project?.dispose();
});

describe("safe activation", () => {
    it("a deploy that confirms over a new connection leaves no watchdog behind", async () => {
        await project.sandbox.set("kappa", { version: 2 });
        const result = await project.up();
        expect(result.code, result.stdout + result.stderr).toBe(0);
        expect(result.stdout).toMatch(/automatic rollback unless confirmed within 6s/);
        expect(result.stdout).toMatch(/confirmed over a new connection/);
        expect((await project.hostSystem("kappa")).generation).toBe(2);
        const watchdogs = await project.onHost("kappa", ["sh", "-c", "ps -eo args | grep -c '[n]ixos-fleet-watchdog' || true"]);
        expect(watchdogs).toBe("0");
        // Well after the timeout, the host still runs the new system.
        await new Promise((resolve) => setTimeout(resolve, 7000));
        expect((await project.hostSystem("kappa")).generation).toBe(2);
    });

    it("lost access: the host reverts itself, is reachable again, and the state keeps the previous deployment", async () => {
        const before = await project.hostSystem("lambda");
        const stateBefore = (await project.hostStates()).lambda;
        await project.sandbox.set("lambda", { version: 2, breakSsh: true });

        const result = await project.up();
        const output = result.stdout + result.stderr;
        expect(result.code).not.toBe(0);
        expect(output).toMatch(/host lambda: activate failed: the host lost access after activation/);
        expect(output).toMatch(/the host.s watchdog restored it to generation 1; it is reachable again/);
        const watchdogLog = await project.onHost("lambda", ["cat", "/run/nixos-fleet/watchdog.log"]);
        expect(watchdogLog).toMatch(/activation ended, waiting 6 seconds for a confirmation/);
        expect(watchdogLog).toMatch(/no confirmation within 6 seconds, reverting/);

        const after = await project.hostSystem("lambda"); // over SSH: access is back
        expect(after.current).toBe(before.current);
        expect(after.profile).toBe(before.profile);
        expect((await project.hostStates()).lambda).toEqual(stateBefore);
        await project.sandbox.set("lambda", { version: 1, breakSsh: false });
    });

    it("a deployer killed during activation: the host reverts itself; the next run reports and converges", async () => {
        await project.sandbox.set("kappa", { version: 3, slow: 3 });
        const logBefore = activationLog("kappa").length;
        const run = startUp();
        await waitFor(() => activationLog("kappa").length > logBefore, 60_000);
        killDeployer(run.child);
        // The activation finishes on the host, nobody confirms, the watchdog reverts (6 s).
        await new Promise((resolve) => setTimeout(resolve, 12_000));
        const reverted = await project.hostSystem("kappa");
        expect(reverted.generation).toBe(2);
        expect(reverted.current).toMatch(/nixos-system-kappa-24\.05\.2-sandbox$/);

        // The killed run left Pulumi's lock: the operator clears it, and the next up converges.
        const blocked = await project.up();
        expect(blocked.code).not.toBe(0);
        expect(blocked.stdout + blocked.stderr).toMatch(/locked/);
        expect((await project.pulumi(["cancel", "--yes", "-s", project.stack])).code).toBe(0);
        const refresh = await project.refresh();
        expect(refresh.code, refresh.stdout + refresh.stderr).toBe(0);
        await project.sandbox.set("kappa", { slow: 0 });
        await project.sandbox.set("kappa", { version: 3 });
        const up = await project.up();
        expect(up.code, up.stdout + up.stderr).toBe(0);
        const state = (await project.hostStates()).kappa!;
        const onHost = await project.hostSystem("kappa");
        expect(onHost.current).toMatch(/nixos-system-kappa-24\.05\.3-sandbox$/);
        expect(state.storePath).toBe(onHost.current);
        expect(state.generation).toBe(onHost.generation);
    });

    it("a deployer killed during the copy: nothing was activated, and the next run deploys", async () => {
        const before = await project.hostSystem("lambda");
        const stateBefore = (await project.hostStates()).lambda;
        await project.sandbox.set("lambda", { version: 5, size: 300 });
        const run = startUp();
        await waitFor(() => /lambda: copying \d+ paths/.test(run.output()), 120_000);
        killDeployer(run.child);
        await new Promise((resolve) => setTimeout(resolve, 1000));
        expect(await project.hostSystem("lambda")).toEqual(before);

        expect((await project.pulumi(["cancel", "--yes", "-s", project.stack])).code).toBe(0);
        const refresh = await project.refresh();
        expect(refresh.code, refresh.stdout + refresh.stderr).toBe(0);
        expect((await project.hostStates()).lambda!.storePath).toBe(stateBefore!.storePath);
        await project.sandbox.set("lambda", { size: 0 });
        const up = await project.up();
        expect(up.code, up.stdout + up.stderr).toBe(0);
        const onHost = await project.hostSystem("lambda");
        expect(onHost.current).toMatch(/nixos-system-lambda-24\.05\.5-sandbox$/);
        expect((await project.hostStates()).lambda!.storePath).toBe(onHost.current);
    });

    it("two deploys of the same stack at once: the second fails fast with a clear message", async () => {
        await project.sandbox.set("lambda", { version: 6, slow: 4 });
        const first = startUp();
        await waitFor(() => /updating|Updating/.test(first.output()), 60_000);
        const second = await project.up();
        expect(second.code).not.toBe(0);
        expect(second.stdout + second.stderr).toMatch(/currently locked/);
        // It did not wait for the first: that one is still running.
        expect(first.child.exitCode).toBeNull();
        const code = await new Promise<number | null>((resolve) => first.child.on("close", resolve));
        expect(code, first.output()).toBe(0);
        expect((await project.hostSystem("lambda")).current).toMatch(/nixos-system-lambda-24\.05\.6-sandbox$/);
        await project.sandbox.set("lambda", { slow: 0 });
    });
});

describe("health checks and cleanup through pulumi up", () => {
    it("a failing health check restores the host; keepGoing keeps the new system with a warning", async () => {
        const before = await project.hostSystem("kappa");
        const stateBefore = (await project.hostStates()).kappa;
        const failing = { commands: [{ command: ["sh", "-c", "echo service says no; exit 1"], retries: 1, timeout: 5 }] };
        project.writeStackConfig({
            hosts: HOSTS,
            defaults: { sshConfigFile: project.sandbox.layout.sshConfigFile, confirmTimeout: 6 },
            overrides: { kappa: { healthChecks: failing } },
        });
        await project.sandbox.set("kappa", { version: 4 });
        const result = await project.up();
        const output = result.stdout + result.stderr;
        expect(result.code).not.toBe(0);
        expect(output).toMatch(/host kappa: verify failed: 1 of 1 health checks? failed/);
        expect(output).toMatch(/service says no/);
        expect(output).toMatch(/the deployer restored it to generation \d+/);
        expect(await project.hostSystem("kappa")).toEqual(before);
        expect((await project.hostStates()).kappa).toEqual(stateBefore);

        project.writeStackConfig({
            hosts: HOSTS,
            defaults: { sshConfigFile: project.sandbox.layout.sshConfigFile, confirmTimeout: 6 },
            overrides: { kappa: { healthChecks: { ...failing, keepGoing: true } } },
        });
        const kept = await project.up();
        expect(kept.code, kept.stdout + kept.stderr).toBe(0);
        expect(kept.stdout).toMatch(/keepGoing is set, so the host stays on the new system/);
        expect((await project.hostSystem("kappa")).current).toMatch(/nixos-system-kappa-24\.05\.4-sandbox$/);
    });

    it("keepGenerations deletes old generations but keeps what the stack's history points to", async () => {
        project.writeStackConfig({
            hosts: HOSTS,
            defaults: { sshConfigFile: project.sandbox.layout.sshConfigFile, confirmTimeout: 6 },
            overrides: { lambda: { keepGenerations: 2, gc: true } },
        });
        const generationsBefore = (await project.onHost("lambda", ["sh", "-c", "ls /nix/var/nix/profiles | grep -c '^system-.*-link$'"])).trim();
        expect(Number(generationsBefore)).toBeGreaterThan(2);
        await project.sandbox.set("lambda", { version: 7 });
        const result = await project.up();
        expect(result.code, result.stdout + result.stderr).toBe(0);
        expect(result.stdout).toMatch(/cleanup: deleted generations/);
        const state = (await project.hostStates()).lambda!;
        const history = state.history as { generation: number; storePath: string }[];
        expect(history).toHaveLength(2);
        const links = (await project.onHost("lambda", ["sh", "-c", "ls /nix/var/nix/profiles | sed -n 's/^system-\\([0-9]*\\)-link$/\\1/p' | sort -n"]))
            .split("\n")
            .map(Number);
        expect(links).toEqual(history.map((entry) => entry.generation).sort((a, b) => a - b));
        // Garbage collection removed a deleted generation's system, kept the recorded ones.
        for (const entry of history) expect((await project.sandbox.exec("lambda", ["test", "-e", entry.storePath])).code).toBe(0);
        expect((await project.sandbox.exec("lambda", ["sh", "-c", "ls -d /nix/store/*nixos-system-lambda-24.05.1-sandbox"])).code).not.toBe(0);
    });
});

describe("hooks", () => {
    const runs = async () => Number(await project.onHost("kappa", ["sh", "-c", "wc -l < /root/hook-runs 2>/dev/null || echo 0"]));
    const settings = (hooks: unknown[]) => ({
        hosts: HOSTS,
        defaults: { sshConfigFile: project.sandbox.layout.sshConfigFile, confirmTimeout: 6 },
        overrides: { kappa: { hooks } },
    });
    const recordRun = { name: "migrate", command: ["sh", "-c", "echo ran >> /root/hook-runs"] };

    it("a hook runs once per generation change and not on a no-op up", async () => {
        project.writeStackConfig(settings([recordRun]));
        const first = await project.up();
        expect(first.code, first.stdout + first.stderr).toBe(0);
        expect(await runs()).toBe(1);

        const noop = await project.up();
        expect(noop.code, noop.stdout + noop.stderr).toBe(0);
        expect(await runs()).toBe(1);

        await project.sandbox.set("kappa", { version: 5 });
        const changed = await project.up();
        expect(changed.code, changed.stdout + changed.stderr).toBe(0);
        expect(await runs()).toBe(2);
    });

    it("a failing hook fails the update but does not roll the system back", async () => {
        project.writeStackConfig(settings([{ name: "migrate", command: ["sh", "-c", "echo schema is locked >&2; exit 3"] }]));
        await project.sandbox.set("kappa", { version: 6 });
        const result = await project.up();
        const output = result.stdout + result.stderr;
        expect(result.code).not.toBe(0);
        expect(output).toMatch(/host kappa: hook failed: hook migrate exited with 3; the system stays deployed/);
        expect(output).toMatch(/schema is locked/);
        const onHost = await project.hostSystem("kappa");
        expect(onHost.current).toMatch(/nixos-system-kappa-24\.05\.6-sandbox$/);
        expect((await project.hostStates()).kappa!.storePath).toBe(onHost.current);
    });
});
