// Fleet operations end to end through the real CLI entry point, pulumi, Nix and OpenSSH against
// sandbox hosts: exec on a selection, build without deploying, staged rollouts (canary, batches,
// held-back hosts). One fleet shared by the file; the tests run in order and build on each other.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runProcess } from "../../src/process/runner";
import { FleetProject } from "./helpers/fleetProject";

const HOSTS = ["psi", "rho", "tau"];
let project: FleetProject;

/** `npm run <command> -- args` in the test project (FleetProject.cli). */
const cli = (command: string, args: string[]) => project.cli(command, args);

/** Activations the host's switch-to-configuration recorded (the sandbox's own log). */
async function activations(name: string): Promise<number> {
    const out = await project.onHost(name, ["sh", "-c", "cat /nix/var/nix/sandbox/activations.log 2>/dev/null || true"]);
    return out.split("\n").filter(Boolean).length;
}

const stackConfig = (extra: Record<string, unknown> = {}) => ({ hosts: HOSTS, defaults: { sshConfigFile: project.sandbox.layout.sshConfigFile }, ...extra });

beforeAll(async () => {
    project = await FleetProject.create({ hosts: HOSTS, portBase: 15200 });
    // rho and tau are web servers (for @web); rho builds its system itself.
    project.writeHost("rho", { ...project.defaultHostFile("rho"), tags: ["sandbox", "web"], buildOn: "target" });
    project.writeHost("tau", { ...project.defaultHostFile("tau"), tags: ["sandbox", "web"] });
});

afterAll(async () => {
    await project?.dispose();
});

describe("exec", () => {
    it("runs the argv on the @web hosts only, word by word, each line prefixed with its host", async () => {
        const logins = await project.acceptedLogins("psi");
        const result = await cli("exec", ["--hosts", "@web", "--stack", project.stack, "--", "sh", "-c", 'echo "arg=$1"; echo "to stderr" >&2', "_", "a b; touch /tmp/injected"]);
        expect(result.code, result.stdout + result.stderr).toBe(0);
        for (const name of ["rho", "tau"]) {
            expect(result.stdout).toContain(`[${name}] arg=a b; touch /tmp/injected\n`);
            expect(result.stderr).toContain(`[${name}] to stderr\n`);
            expect(await project.onHost(name, ["sh", "-c", "test -e /tmp/injected && echo yes || echo no"])).toBe("no");
        }
        expect(result.stdout).toMatch(/\nrho\s+ok \(exit status 0\)\ntau\s+ok \(exit status 0\)\n\nexec: 2 of 2 hosts ok\n$/);
        expect(result.stdout + result.stderr).not.toMatch(/\[psi\]/);
        expect(await project.acceptedLogins("psi")).toBe(logins);
    });

    it("a failing exec exits 1 naming the hosts where it failed, and an unreachable host as such", async () => {
        await project.onHost("rho", ["touch", "/tmp/fail-marker"]);
        // tau's port points at nothing for this run: it cannot be reached.
        project.writeStackConfig(stackConfig({ overrides: { tau: { port: 15999 } } }));
        try {
            const result = await cli("exec", ["--stack", project.stack, "--parallel", "2", "--", "sh", "-c", "test ! -e /tmp/fail-marker || { echo marker found; exit 3; }"]);
            expect(result.code, result.stdout + result.stderr).toBe(1);
            expect(result.stdout).toContain("[rho] marker found\n");
            expect(result.stdout).toMatch(/\npsi\s+ok \(exit status 0\)\nrho\s+failed: exit status 3\ntau\s+unreachable: host tau: connect failed: /);
            expect(result.stdout).toMatch(/exec: 1 of 3 hosts ok\nfailed on: rho \(exit status 3\)\nunreachable: tau\n$/);
        } finally {
            project.writeStackConfig(stackConfig());
            await project.onHost("rho", ["rm", "-f", "/tmp/fail-marker"]);
        }
    });
});

describe("build", () => {
    it("builds the systems where buildOn says and prints store paths and closure sizes; no host is changed", async () => {
        await project.sandbox.set("psi", { version: 2 });
        await project.sandbox.set("rho", { version: 2 });
        const before = { psi: await project.hostSystem("psi"), rho: await project.hostSystem("rho") };
        const logins = await project.acceptedLogins("psi");
        const want = { psi: await project.evaluatedStorePath("psi"), rho: await project.evaluatedStorePath("rho") };

        const result = await cli("build", ["--hosts", "psi,rho", "--stack", project.stack]);
        expect(result.code, result.stdout + result.stderr).toBe(0);
        expect(result.stdout).toMatch(new RegExp(`\\npsi\\s+here\\s+${want.psi}\\s+\\d+ paths, [\\d.]+ (B|KiB|MiB)\\s+[\\d.]+s\\n`));
        expect(result.stdout).toMatch(new RegExp(`\\nrho\\s+host\\s+${want.rho}\\s+\\d+ paths, [\\d.]+ (B|KiB|MiB)\\s+[\\d.]+s\\n`));
        expect(result.stdout).toContain("build: 2 of 2 systems built; no host was changed");

        // psi's system is in the local store, and psi was never contacted.
        const valid = await runProcess(["nix-store", "--check-validity", want.psi]);
        expect(valid.code, valid.stderr).toBe(0);
        expect(await project.acceptedLogins("psi")).toBe(logins);
        // rho's is in rho's store; neither host runs or boots anything new.
        await project.onHost("rho", ["nix-store", "--check-validity", want.rho]);
        expect(await project.hostSystem("psi")).toEqual(before.psi);
        expect(await project.hostSystem("rho")).toEqual(before.rho);
        expect(await activations("psi")).toBe(0);
        expect(await activations("rho")).toBe(0);
        expect(await project.hostStates()).toEqual({});
    });
});

interface DeployReport {
    hosts: { host: string; result: string; phase?: string; reason?: string; generationAfter: number | null }[];
    failed: string[];
}

describe("rollout", () => {
    it("a failed canary holds the later batches back, untouched, in deploy and in plain pulumi up; fixed, it converges batch by batch", async () => {
        project.writeStackConfig(stackConfig({ rollout: { canary: ["psi"], batchSize: 1 } }));
        await project.sandbox.set("psi", { fail: true });
        const logins = { rho: await project.acceptedLogins("rho"), tau: await project.acceptedLogins("tau") };

        const failed = await cli("deploy", ["--stack", project.stack, "--yes", "--json"]);
        expect(failed.code, failed.stderr).toBe(1);
        expect(failed.stderr).toContain("rollout, batches of 1 host: batch 1 (canary): psi; batch 2: rho; batch 3: tau.");
        const report = JSON.parse(failed.stdout) as DeployReport;
        const reason = "rollout: batch 1 (canary) failed (psi), so later batches were not started";
        expect(report.hosts.map((h) => [h.host, h.result, h.phase ?? h.reason])).toEqual([
            ["psi", "failed", "activate"],
            ["rho", "held back", reason],
            ["tau", "held back", reason],
        ]);
        expect(failed.stderr).toContain("rollout: batch 1 of 3 (canary) failed here, so the hosts of later batches are held back (not touched): rho, tau");

        // Plain `pulumi up` honours the same order and says the same.
        const up = await project.up();
        expect(up.code).not.toBe(0);
        expect(up.stdout + up.stderr).toContain("rollout: batch 1 of 3 (canary) failed here, so the hosts of later batches are held back (not touched): rho, tau");

        // rho and tau were never contacted: no login, no activation, nothing recorded.
        expect(await project.acceptedLogins("rho")).toBe(logins.rho);
        expect(await project.acceptedLogins("tau")).toBe(logins.tau);
        expect(await activations("rho")).toBe(0);
        expect(await activations("tau")).toBe(0);
        expect(Object.keys(await project.hostStates())).not.toContain("rho");

        // Fixed: the canary first, then the rest (one batch of two for this run).
        await project.sandbox.set("psi", { fail: false });
        const fixed = await cli("deploy", ["--stack", project.stack, "--yes", "--json", "--batch-size", "2"]);
        expect(fixed.code, fixed.stderr).toBe(0);
        expect(fixed.stderr).toContain("rollout, batches of 2 hosts (--batch-size for this run): batch 1 (canary): psi; batch 2: rho, tau.");
        expect((JSON.parse(fixed.stdout) as DeployReport).hosts.map((h) => [h.host, h.result])).toEqual([
            ["psi", "deployed"],
            ["rho", "deployed"],
            ["tau", "deployed"],
        ]);
        const psiDone = fixed.stderr.indexOf("[psi] switch done");
        expect(psiDone).toBeGreaterThan(0);
        expect(fixed.stderr.indexOf("[rho] ")).toBeGreaterThan(psiDone);
        expect(fixed.stderr.indexOf("[tau] ")).toBeGreaterThan(psiDone);
        for (const name of HOSTS) expect((await project.hostSystem(name)).current).toBe(await project.evaluatedStorePath(name));
    });

    it("maxFailures: deploy runs the batches one update each and goes on past a tolerated failure", async () => {
        // rho (batch 2) fails; one failure is tolerated, so batch 3 (tau) still goes. The order
        // keeps psi first, as before: a changed order trips pulumi/pulumi#24303 in targeted runs.
        project.writeStackConfig(stackConfig({ rollout: { canary: ["psi"], batchSize: 1, maxFailures: 1 } }));
        for (const name of HOSTS) await project.sandbox.set(name, { version: 3 });
        await project.sandbox.set("rho", { fail: true });
        const result = await cli("deploy", ["--stack", project.stack, "--yes", "--json"]);
        expect(result.code, result.stderr).toBe(1);
        expect(result.stderr).toMatch(/rollout: batch 1 \(canary\): psi\n[\s\S]*rollout: batch 2: rho\n[\s\S]*\[rho\] error: [\s\S]*rollout: batch 3: tau\n/);
        expect(result.stderr).toContain("npm run deploy goes on while at most 1 host failed");
        expect((JSON.parse(result.stdout) as DeployReport).hosts.map((h) => [h.host, h.result]), result.stderr).toEqual([
            ["psi", "deployed"],
            ["rho", "failed"],
            ["tau", "deployed"],
        ]);
        expect((await project.hostSystem("psi")).current).toBe(await project.evaluatedStorePath("psi"));
        expect((await project.hostSystem("tau")).current).toBe(await project.evaluatedStorePath("tau"));
        expect((await project.hostSystem("rho")).current).not.toBe(await project.evaluatedStorePath("rho"));
        await project.sandbox.set("rho", { fail: false });
    });

    it("deploy --hosts of a later batch's host, with batches out of name order, is not refused by the engine (pulumi/pulumi#24303)", async () => {
        // Canary tau: tau | psi | rho. One whole-stack update records that order; then rho alone.
        // The hosts a targeted run does not deploy must be registered with the dependencies the
        // state has (psi after tau), or the engine refuses the run with "Duplicate resource URN".
        project.writeStackConfig(stackConfig({ rollout: { canary: ["tau"], batchSize: 1 } }));
        const up = await project.up();
        expect(up.code, up.stdout + up.stderr).toBe(0);
        await project.sandbox.set("rho", { version: 4 });
        const targeted = await cli("deploy", ["--stack", project.stack, "--hosts", "rho", "--yes", "--json"]);
        expect(targeted.stderr).not.toContain("Duplicate resource URN");
        expect(targeted.code, targeted.stderr).toBe(0);
        expect((JSON.parse(targeted.stdout) as DeployReport).hosts.map((h) => [h.host, h.result])).toEqual([["rho", "deployed"]]);
        expect((await project.hostSystem("rho")).current).toBe(await project.evaluatedStorePath("rho"));
    });
});
