// The host resource end to end: the real pulumi CLI, the project's provider, Nix and OpenSSH
// against sandbox hosts. One fleet and one stack are shared by the file; the tests run in order
// and each leaves the fleet deployed.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FleetProject } from "./helpers/fleetProject";

const HOSTS = ["alpha", "beta", "gamma"];
let project: FleetProject;


async function storePaths(name: string): Promise<Set<string>> {
    const out = await project.onHost(name, ["sh", "-c", "ls -d /nix/store/*-* | grep -v '\\.drv$' || true"]);
    return new Set(out.split("\n").filter(Boolean));
}

beforeAll(async () => {
    project = await FleetProject.create({ hosts: HOSTS, portBase: 25200 });
});

afterAll(async () => {
    await project?.dispose();
});

describe("pulumi up / preview / refresh of the host resource", () => {
    it("first up: every host at generation 1, running the evaluated store path", async () => {
        const result = await project.up();
        expect(result.code, result.stdout + result.stderr).toBe(0);
        const states = await project.hostStates();
        for (const name of HOSTS) {
            const onHost = await project.hostSystem(name);
            expect(onHost.generation).toBe(1);
            expect(onHost.current).toBe(states[name]!.storePath);
            expect(onHost.profile).toBe(states[name]!.storePath);
            expect(states[name]!.generation).toBe(1);
            expect(states[name]!.storePath).toBe(await project.evaluatedStorePath(name));
            expect(states[name]!.history).toHaveLength(1);
        }
    });

    it("preview right after: no changes, and no SSH connection to any host", async () => {
        const before = await Promise.all(HOSTS.map((name) => project.acceptedLogins(name)));
        const preview = await project.previewJson();
        const changing = preview.steps.filter((step) => step.op !== "same");
        expect(changing).toEqual([]);
        expect(await Promise.all(HOSTS.map((name) => project.acceptedLogins(name)))).toEqual(before);
    });

    it("one host's configuration changes: preview shows exactly that host old → new; up updates only it", async () => {
        const oldStates = await project.hostStates();
        await project.sandbox.set("beta", { version: 2 });

        const preview = await project.previewJson();
        const changing = preview.steps.filter((step) => step.op !== "same");
        expect(changing.map((step) => [step.op, step.urn.split("::").pop()])).toEqual([["update", "beta"]]);
        const step = changing[0]!;
        expect(step.oldState?.outputs?.storePath).toBe(oldStates.beta!.storePath);
        expect(step.newState?.inputs?.storePath).not.toBe(oldStates.beta!.storePath);
        const text = await project.preview();
        expect(text.stdout).toContain(String(oldStates.beta!.storePath));
        expect(text.stdout).toContain(String(step.newState?.inputs?.storePath));

        const storeBefore = await storePaths("beta");
        const loginsBefore = { alpha: await project.acceptedLogins("alpha"), gamma: await project.acceptedLogins("gamma") };
        const result = await project.up();
        expect(result.code, result.stdout + result.stderr).toBe(0);

        const states = await project.hostStates();
        expect(states.beta!.generation).toBe(2);
        expect(states.beta!.previousGeneration).toBe(1);
        expect(states.beta!.storePath).toBe(step.newState?.inputs?.storePath);
        expect((await project.hostSystem("beta")).current).toBe(states.beta!.storePath);
        // Only the paths beta lacked travelled, and the summary counts them.
        const gained = [...(await storePaths("beta"))].filter((path) => !storeBefore.has(path));
        expect((states.beta!.lastDeploy as { pathsCopied: number }).pathsCopied).toBe(gained.length);
        expect(gained.length).toBeGreaterThan(0);
        expect(gained.length).toBeLessThan((await storePaths("beta")).size);
        // The others were not touched: same state, no SSH login.
        expect(states.alpha).toEqual(oldStates.alpha);
        expect(states.gamma).toEqual(oldStates.gamma);
        expect(await project.acceptedLogins("alpha")).toBe(loginsBefore.alpha);
        expect(await project.acceptedLogins("gamma")).toBe(loginsBefore.gamma);
        expect((states.beta!.history as unknown[]).length).toBe(2);
    });

    it("a host rolled back by hand shows up as drift on refresh, and up converges it", async () => {
        const deployed = (await project.hostStates()).beta!;
        await project.onHost("beta", [
            "sh", "-c",
            "nix-env -p /nix/var/nix/profiles/system --rollback && /nix/var/nix/profiles/system/bin/switch-to-configuration switch",
        ]);
        const manual = await project.hostSystem("beta");
        expect(manual.generation).toBe(1);

        const refresh = await project.refresh();
        expect(refresh.code, refresh.stdout + refresh.stderr).toBe(0);
        expect(refresh.stdout).toMatch(/drift/);
        const refreshed = (await project.hostStates()).beta!;
        expect(refreshed.generation).toBe(1);
        expect(refreshed.storePath).toBe(manual.current);
        expect(refreshed.storePath).not.toBe(deployed.storePath);

        const preview = await project.previewJson();
        expect(preview.steps.filter((s) => s.op !== "same").map((s) => s.urn.split("::").pop())).toEqual(["beta"]);
        const up = await project.up();
        expect(up.code, up.stdout + up.stderr).toBe(0);
        const converged = await project.hostSystem("beta");
        expect(converged.current).toBe(deployed.storePath);
        expect(converged.profile).toBe(deployed.storePath);
        expect((await project.hostStates()).beta!.storePath).toBe(deployed.storePath);
    });

    it("a failing activation: the host is restored, the error says so, other hosts deploy, the state is unchanged", async () => {
        const before = await project.hostStates();
        const gammaBefore = await project.hostSystem("gamma");
        await project.sandbox.set("gamma", { version: 2, fail: true });
        await project.sandbox.set("alpha", { version: 2 });

        const result = await project.up();
        const output = result.stdout + result.stderr;
        expect(result.code).not.toBe(0);
        expect(output).toMatch(/host gamma: activate failed/);
        expect(output).toMatch(/sandbox knob fail=true/); // the activation's own output
        expect(output).toMatch(/the deployer restored it to generation 1/);

        const gamma = await project.hostSystem("gamma");
        expect(gamma.profile).toBe(gammaBefore.profile);
        expect(gamma.current).toBe(gammaBefore.current);
        const booted = await project.onHost("gamma", ["sh", "-c", "readlink -f /nix/var/nix/sandbox/boot-default 2>/dev/null || true"]);
        if (booted) expect(booted).toBe(gammaBefore.profile);

        const after = await project.hostStates();
        expect(after.gamma).toEqual(before.gamma);
        expect(after.alpha!.generation).toBe(2);
        expect((await project.hostSystem("alpha")).current).toBe(after.alpha!.storePath);

        // A reboot of gamma comes back on the previous, working system.
        await project.sandbox.reboot("gamma");
        expect((await project.hostSystem("gamma")).current).toBe(gammaBefore.current);

        await project.sandbox.set("gamma", { version: 1, fail: false });
        const again = await project.up();
        expect(again.code, again.stdout + again.stderr).toBe(0);
    });
});
