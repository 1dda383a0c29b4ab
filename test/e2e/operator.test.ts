// The operator's commands end to end (`deploy --hosts`, `rollback`), through the real CLI
// entry point, pulumi, Nix and OpenSSH against sandbox hosts. One fleet shared by the file; the
// tests run in order.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { join } from "node:path";
import { readFileSync } from "node:fs";
import { runProcess } from "../../src/process/runner";
import { FleetProject } from "./helpers/fleetProject";

const HOSTS = ["psi", "rho", "tau"];
let project: FleetProject;

/** `npm run <command> -- args` in the test project (FleetProject.cli). */
const cli = (command: string, args: string[]) => project.cli(command, args);

async function deployJson(args: string[]): Promise<{ code: number | null; report: DeployReport; output: string }> {
    const result = await cli("deploy", [...args, "--stack", project.stack, "--yes", "--json"]);
    return { code: result.code, report: JSON.parse(result.stdout) as DeployReport, output: result.stderr };
}

interface DeployReport {
    hosts: { host: string; result: string; generationBefore: number | null; generationAfter: number | null; pathsCopied: number; storePathAfter: string | null }[];
    failed: string[];
}

async function storePaths(name: string): Promise<Set<string>> {
    const out = await project.onHost(name, ["sh", "-c", "ls -d /nix/store/*-* | grep -v '\\.drv$' || true"]);
    return new Set(out.split("\n").filter(Boolean));
}

beforeAll(async () => {
    project = await FleetProject.create({ hosts: HOSTS, portBase: 31200 });
    // rho and tau are web servers: for @tag selection.
    project.writeHost("rho", { ...project.defaultHostFile("rho"), tags: ["sandbox", "web"] });
    project.writeHost("tau", { ...project.defaultHostFile("tau"), tags: ["sandbox", "web"] });
    const first = await project.up();
    if (first.code !== 0) throw new Error(first.stdout + first.stderr);
});

afterAll(async () => {
    await project?.dispose();
});

describe("deploy --hosts", () => {
    it("deploys only the named host; the others stay as they are, in state and on the servers", async () => {
        for (const name of HOSTS) await project.sandbox.set(name, { version: 2 });
        const before = await project.hostStates();
        const servers = { rho: await project.hostSystem("rho"), tau: await project.hostSystem("tau") };
        // (hostSystem itself logs in: count logins after it, and compare before looking again)
        const logins = { rho: await project.acceptedLogins("rho"), tau: await project.acceptedLogins("tau") };
        const storeBefore = await storePaths("psi");

        const { code, report, output } = await deployJson(["--hosts", "psi"]);
        expect(code, output).toBe(0);
        expect(report.hosts.map((h) => [h.host, h.result, h.generationBefore, h.generationAfter])).toEqual([["psi", "deployed", 1, 2]]);
        expect(output).toMatch(/\[psi\] copy: \d+ of \d+ paths/);
        expect(output).toMatch(/\[psi\] activate \(switch\)/);

        expect(await project.acceptedLogins("rho")).toBe(logins.rho);
        expect(await project.acceptedLogins("tau")).toBe(logins.tau);
        const after = await project.hostStates();
        expect(after.rho).toEqual(before.rho);
        expect(after.tau).toEqual(before.tau);
        expect(await project.hostSystem("rho")).toEqual(servers.rho);
        expect(await project.hostSystem("tau")).toEqual(servers.tau);
        // The summary's copied-paths count is what psi's store gained.
        const gained = [...(await storePaths("psi"))].filter((path) => !storeBefore.has(path));
        expect(report.hosts[0]!.pathsCopied).toBe(gained.length);
        expect((await project.hostSystem("psi")).generation).toBe(2);
    });

    it("selects hosts by @tag", async () => {
        const { code, report, output } = await deployJson(["--hosts", "@web"]);
        expect(code, output).toBe(0);
        expect(report.hosts.map((h) => [h.host, h.result, h.generationAfter])).toEqual([
            ["rho", "deployed", 2],
            ["tau", "deployed", 2],
        ]);
        for (const name of ["rho", "tau"]) expect((await project.hostSystem(name)).generation).toBe(2);
    });

    it("previews without touching anything (nor the project's selected stack)", async () => {
        await project.sandbox.set("psi", { version: 3 });
        const logins = await project.acceptedLogins("psi");
        // Another stack is the selected one: --stack must not change that.
        expect((await project.pulumi(["stack", "init", "side"])).code).toBe(0);
        const result = await cli("deploy", ["--hosts", "psi", "--stack", project.stack, "--preview"]);
        const selected = JSON.parse((await project.pulumi(["stack", "ls", "--json"])).stdout) as { name: string; current: boolean }[];
        expect(selected.find((stack) => stack.current)?.name).toBe("side");
        expect((await project.pulumi(["stack", "rm", "side", "--yes"])).code).toBe(0);
        expect((await project.pulumi(["stack", "select", project.stack])).code).toBe(0);
        expect(result.code, result.stderr).toBe(0);
        // Store paths keep 8 characters of their hash, so two systems never read alike.
        expect(result.stdout).toMatch(/psi\s+2 → -\s+[0-9a-z]{8}-nixos-system-psi-24\.05\.2-sandbox → [0-9a-z]{8}-nixos-system-psi-24\.05\.3-sandbox.*planned/);
        expect(await project.acceptedLogins("psi")).toBe(logins);
        expect((await project.hostSystem("psi")).generation).toBe(2);
        const deployed = await deployJson(["--hosts", "psi"]);
        expect(deployed.code, deployed.output).toBe(0);
        expect((await project.hostSystem("psi")).generation).toBe(3);
    });

    it("rejects bad arguments with clear errors", async () => {
        const unknown = await cli("deploy", ["--hosts", "psi,omega", "--stack", project.stack, "--yes"]);
        expect(unknown.code).not.toBe(0);
        expect(unknown.stderr).toMatch(/omega/);
        expect(unknown.stderr).toMatch(/psi, rho, tau/);
        expect(unknown.stderr).not.toMatch(/\n\s+at /);

        const option = await cli("deploy", ["--hostz", "psi"]);
        expect(option.code).not.toBe(0);
        expect(option.stderr).toMatch(/Unknown option '--hostz'/);
        expect(option.stderr).toMatch(/usage: npm run deploy/);

        const stack = await cli("deploy", ["--stack", "nope", "--yes"]);
        expect(stack.code).not.toBe(0);
        expect(stack.stderr).toMatch(/stack "nope" does not exist/);

        await project.sandbox.set("psi", { version: 4 });
        const noYes = await cli("deploy", ["--hosts", "psi", "--stack", project.stack]);
        expect(noYes.code).not.toBe(0);
        expect(noYes.stderr).toMatch(/needs confirmation, and there is no terminal to ask on/);
        expect(noYes.stderr).toMatch(/add --yes/);
        expect((await project.hostSystem("psi")).generation).toBe(3);
        await project.sandbox.set("psi", { version: 3 });

        const both = await cli("rollback", ["--hosts", "psi", "--steps", "1", "--to-generation", "1", "--stack", project.stack]);
        expect(both.code).not.toBe(0);
        expect(both.stderr).toMatch(/cannot be combined/);

        const noHosts = await cli("rollback", ["--stack", project.stack]);
        expect(noHosts.code).not.toBe(0);
        expect(noHosts.stderr).toMatch(/rollback needs --hosts/);
    });
});

describe("rollback", () => {
    it("goes back one step: to the previous deployment's generation, without copying; the pin is flagged", async () => {
        const result = await cli("rollback", ["--hosts", "psi", "--stack", project.stack, "--yes", "--json"]);
        expect(result.code, result.stderr).toBe(0);
        const report = JSON.parse(result.stdout) as DeployReport;
        expect(report.hosts[0]).toMatchObject({ host: "psi", result: "deployed", generationBefore: 3, generationAfter: 2, pathsCopied: 0 });
        expect(result.stderr).toMatch(/generation 2 still holds .*: switching to it, nothing to copy/);
        const psi = await project.hostSystem("psi");
        expect(psi.generation).toBe(2);
        expect(psi.current).toMatch(/nixos-system-psi-24\.05\.2-sandbox$/);
        // The rollback is in the stack's config and flagged in every preview.
        expect(readFileSync(join(project.projectDir, `Pulumi.${project.stack}.yaml`), "utf8")).toMatch(/nixos-fleet:pins:\n\s+psi:/);
        const preview = await project.preview();
        expect(preview.stdout + preview.stderr).toMatch(/psi is pinned to [\s\S]*npm run rollback -- --clear --hosts psi/);
        expect((await project.previewJson()).steps.filter((s) => s.op !== "same")).toEqual([]);
    });

    it("goes to a given generation", async () => {
        const result = await cli("rollback", ["--hosts", "psi", "--to-generation", "1", "--stack", project.stack, "--yes"]);
        expect(result.code, result.stdout + result.stderr).toBe(0);
        const psi = await project.hostSystem("psi");
        expect(psi.generation).toBe(1);
        expect(psi.current).toMatch(/nixos-system-psi-24\.05\.1-sandbox$/);
        expect((await project.hostStates()).psi!.generation).toBe(1);
    });

    it("--clear removes the pin and deploys the configuration again", async () => {
        const result = await cli("rollback", ["--hosts", "psi", "--clear", "--stack", project.stack, "--yes"]);
        expect(result.code, result.stdout + result.stderr).toBe(0);
        expect(readFileSync(join(project.projectDir, `Pulumi.${project.stack}.yaml`), "utf8")).not.toMatch(/pins/);
        expect((await project.hostSystem("psi")).current).toMatch(/nixos-system-psi-24\.05\.3-sandbox$/);
        const preview = await project.preview();
        expect(preview.stdout + preview.stderr).not.toMatch(/pinned/);
    });

    it("takes three hosts back to what they ran after a stack version", async () => {
        // The stack's first update (version 1) deployed generation 1 everywhere.
        const result = await cli("rollback", ["--hosts", "psi,rho,tau", "--to-stack-version", "1", "--stack", project.stack, "--yes", "--json"]);
        expect(result.code, result.stderr).toBe(0);
        for (const name of HOSTS) {
            const onHost = await project.hostSystem(name);
            expect(onHost.generation).toBe(1);
            expect(onHost.current).toMatch(new RegExp(`nixos-system-${name}-24\\.05\\.1-sandbox$`));
        }
        const cleared = await cli("rollback", ["--hosts", "psi,rho,tau", "--clear", "--stack", project.stack, "--yes"]);
        expect(cleared.code, cleared.stdout + cleared.stderr).toBe(0);
    });

    it("a garbage-collected generation is copied again", async () => {
        // tau: generations 1 and 2 exist; delete generation 1 and collect its system.
        const gen1 = (await project.hostStates()).tau!.history as { generation: number; storePath: string }[];
        const target = gen1.find((entry) => entry.generation === 1)!.storePath;
        await project.onHost("tau", ["sh", "-c", "nix-env -p /nix/var/nix/profiles/system --delete-generations 1 && rm -f /nix/var/nix/gcroots/sandbox-boot-default && nix-store --gc >/dev/null 2>&1; true"]);
        const gone = await project.sandbox.exec("tau", ["test", "-e", target]);
        expect(gone.code).not.toBe(0);

        const result = await cli("rollback", ["--hosts", "tau", "--to-generation", "1", "--stack", project.stack, "--yes", "--json"]);
        expect(result.code, result.stderr).toBe(0);
        expect(result.stderr).toMatch(/no generation on the host holds .* any more: copying it again/);
        const report = JSON.parse(result.stdout) as DeployReport;
        expect(report.hosts[0]!.pathsCopied).toBeGreaterThan(0);
        expect((await project.hostSystem("tau")).current).toBe(target);
        const cleared = await cli("rollback", ["--hosts", "tau", "--clear", "--stack", project.stack, "--yes"]);
        expect(cleared.code, cleared.stdout + cleared.stderr).toBe(0);
    });

    it("says clearly when a garbage-collected deployment is not in the local store either", async () => {
        const history = (await project.hostStates()).rho!.history as { generation: number; storePath: string }[];
        const gone = history.find((entry) => entry.generation === 1)!.storePath;
        const before = await project.hostSystem("rho");
        await project.onHost("rho", ["sh", "-c", "nix-env -p /nix/var/nix/profiles/system --delete-generations 1 && rm -f /nix/var/nix/gcroots/sandbox-boot-default && nix-store --gc >/dev/null 2>&1; true"]);
        expect((await project.sandbox.exec("rho", ["test", "-e", gone])).code).not.toBe(0);
        const deleted = await runProcess(["nix-store", "--delete", gone]);
        expect(deleted.code, deleted.stderr).toBe(0);

        const result = await cli("rollback", ["--hosts", "rho", "--to-generation", "1", "--stack", project.stack, "--yes"]);
        expect(result.code).not.toBe(0);
        expect(result.stdout + result.stderr).toMatch(/host rho: copy failed: cannot roll back to .*: the host no longer has it \(garbage-collected\) and it is not in the local store either/);
        expect(result.stderr).toMatch(/not rolled back: rho/);
        expect(await project.hostSystem("rho")).toEqual(before);
        expect(readFileSync(join(project.projectDir, `Pulumi.${project.stack}.yaml`), "utf8")).not.toMatch(/pins/);
    });

    it("says clearly when a deployment cannot be rolled back to", async () => {
        const result = await cli("rollback", ["--hosts", "rho", "--steps", "9", "--stack", project.stack, "--yes"]);
        expect(result.code).not.toBe(0);
        expect(result.stderr).toMatch(/host rho: select failed: cannot go back 9 deployment\(s\)/);
    });
});
