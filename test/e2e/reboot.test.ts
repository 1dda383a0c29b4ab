// Reboots end to end with real pulumi, Nix, OpenSSH and a sandbox host that really reboots
// (systemd in nspawn: `systemctl reboot` → a new boot with an empty /run): a kernel change is
// flagged in the plans (the provider's, as `pulumi preview` shows it, and deploy --preview --json), `reboot: auto` leaves the host booted into the deployed system, and a
// host whose next boot is held never comes back within a short rebootTimeout: a clear failure,
// with the activation and the unknown reboot in the state. One fleet; the tests build on each other.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FleetProject } from "./helpers/fleetProject";

const HOST = "omega";
let project: FleetProject;
/** The output of the first `pulumi up` (reboot: never, the default). */
let firstUp = "";

/** `npm run <command> -- args` in the test project (FleetProject.cli). */
const cli = (command: string, args: string[]) => project.cli(command, args);

const booted = () => project.onHost(HOST, ["readlink", "-f", "/run/booted-system"]);

function hostFile(extra: Record<string, unknown>) {
    project.writeHost(HOST, { ...project.defaultHostFile(HOST), healthChecks: { units: ["web.service"] }, ...extra });
}

interface Row {
    host: string;
    result: string;
    phase?: string;
    error?: string;
    rebootNeeded?: string | null;
    reboot?: Record<string, unknown>;
    plan?: { reboot: { known: boolean; needed?: boolean; changed?: string[]; reason?: string } };
}

const rowOf = (stdout: string): Row => (JSON.parse(stdout) as { hosts: Row[] }).hosts.find((row) => row.host === HOST)!;

beforeAll(async () => {
    project = await FleetProject.create({ hosts: [HOST], portBase: 17200 });
    hostFile({});
    const up = await project.up();
    if (up.code !== 0) throw new Error(`the first pulumi up failed:\n${up.stdout}\n${up.stderr}`);
    firstUp = up.stdout;
});

afterAll(async () => {
    await project?.dispose();
});

describe("reboots", () => {
    it("reboot: never (the default) deploys and reports the reboot as needed, in plain pulumi up and in the state", async () => {
        // A fresh sandbox host booted without a system generation: its booted side has no kernel links.
        expect(firstUp).toMatch(/omega: reboot needed \(kernel, initrd, kernel-modules changed\); reboot is never/);
        const state = (await project.hostStates())[HOST]!;
        expect(state.rebootNeeded).toBe("kernel, initrd, kernel-modules changed");
        expect(state.lastReboot).toBeUndefined();
    });

    it("a kernel change is flagged in the provider's plan and in deploy --preview; reboot: auto reboots the host into the deployed system", async () => {
        // The plan compares with the booted system the state recorded (a preview connects to no
        // host). The fresh host booted no system: nothing to compare with, and the plan says so.
        hostFile({ reboot: "auto" });
        await project.sandbox.set(HOST, { kernel: 2 });
        const unknownPlan = await cli("deploy", ["--stack", project.stack, "--preview", "--json"]);
        expect(rowOf(unknownPlan.stdout)).toMatchObject({ plan: { reboot: { known: false, reason: "no booted system is recorded for the host (`pulumi refresh` reads it)" } } });
        // Rebooted outside nixos-fleet into its first generation (kernel 1), then refreshed: recorded.
        await project.sandbox.set(HOST, { kernel: 1 });
        await project.sandbox.reboot(HOST);
        expect((await project.refresh()).code).toBe(0);
        // The refresh saw it boot the deployed system: no reboot is needed any more.
        expect((await project.hostStates())[HOST]).toMatchObject({ rebootNeeded: null, bootedStorePath: (await project.hostStates())[HOST]!.storePath });
        await project.sandbox.set(HOST, { kernel: 2 });
        const refreshLogins = await project.acceptedLogins(HOST);

        const plan = await cli("deploy", ["--stack", project.stack, "--preview", "--json"]);
        expect(plan.code, plan.stdout + plan.stderr).toBe(0);
        expect(rowOf(plan.stdout)).toMatchObject({ result: "planned", plan: { reboot: { known: true, needed: true, changed: ["kernel", "initrd", "kernel-modules"] } } });
        // The preview logged in nowhere.
        expect(await project.acceptedLogins(HOST)).toBe(refreshLogins);

        const before = project.sandbox.initPid(HOST);
        const want = await project.evaluatedStorePath(HOST);
        const deploy = await cli("deploy", ["--stack", project.stack, "--yes", "--json"]);
        expect(deploy.code, deploy.stdout + deploy.stderr).toBe(0);
        // The provider's plan (what plain `pulumi preview` shows on the host's row; `deploy --yes` echoes it).
        expect(deploy.stderr).toMatch(/\[omega\] plan\n  system: .*\n  packages: 3 changed; .*\n(?:    .*\n)*  reboot needed \(kernel, initrd, kernel-modules changed; booted [0-9a-z]{8}-nixos-system-omega-\S+ as seen \S+\)\n/);
        expect(deploy.stderr).toMatch(/\[omega\] rebooting \(boot id [0-9a-f-]+\); waiting up to 600s for the new boot/);
        expect(deploy.stderr).toMatch(/\[omega\] rebooted: the new boot answered after [\d.]+s/);
        expect(deploy.stderr).toContain("[omega] health checks passed after the reboot (1)");
        const row = rowOf(deploy.stdout);
        expect(row).toMatchObject({ result: "deployed", rebootNeeded: null, reboot: { outcome: "booted", bootedStorePath: want } });

        // A real new boot: a new container init, and /run/booted-system is the deployed system.
        expect(project.sandbox.initPid(HOST)).not.toBe(before);
        expect(await booted()).toBe(want);
        expect(await project.onHost(HOST, ["sh", "-c", "test -e /run/nixos-fleet-reboot-pending && echo marker || echo none"])).toBe("none");
        const state = (await project.hostStates())[HOST]!;
        expect(state).toMatchObject({ bootedStorePath: want, rebootNeeded: null, lastReboot: { outcome: "booted", bootedStorePath: want } });
    }, 120_000);

    it("a host that does not come back within rebootTimeout: a clear failure naming the host and the wait; the state says the reboot's outcome is unknown", async () => {
        hostFile({ reboot: "auto", rebootTimeout: 3 });
        await project.sandbox.set(HOST, { kernel: 3 });
        const want = await project.evaluatedStorePath(HOST);
        const before = project.sandbox.initPid(HOST)!;
        project.sandbox.holdBoot(HOST);
        try {
            const started = Date.now();
            const deploy = await cli("deploy", ["--stack", project.stack, "--yes", "--json"]);
            expect(deploy.code, deploy.stdout + deploy.stderr).not.toBe(0);
            const row = rowOf(deploy.stdout);
            expect(row, `${JSON.stringify(row, null, 2)}\n${deploy.stderr}`).toMatchObject({ result: "unknown", phase: "reboot" });
            expect(row.error).toMatch(/^host omega: reboot: outcome unknown: the host did not come back from the reboot within 3s \(waited [34](\.\d)?s; last: .*\); the deployed system was activated before the reboot/);
            expect(row.error).toContain("hint: check the host's console");
            // Bounded: the whole deploy (build, copy, activation, the wait) well under a minute.
            expect(Date.now() - started).toBeLessThan(60_000);
            const state = (await project.hostStates())[HOST]!;
            expect(state).toMatchObject({ storePath: want, lastReboot: { outcome: "unknown", previousBootId: expect.stringMatching(/^[0-9a-f-]{36}$/), bootId: null, bootedStorePath: null } });
            expect(String((state.lastReboot as Record<string, unknown>).error)).toMatch(/did not come back from the reboot within 3s/);
            expect(state.rebootNeeded).toBeUndefined();
        } finally {
            project.sandbox.releaseBoot(HOST);
        }
        // Released, the host boots its boot default: the system the deploy activated.
        await project.sandbox.waitForReboot(HOST, before, 30_000);
        expect(await booted()).toBe(want);
        // Pulumi recorded the host as failed, so the next deploy updates it again (nothing to
        // activate) and records it booted into the deployed system.
        const next = await cli("deploy", ["--stack", project.stack, "--yes", "--json"]);
        expect(next.code, next.stdout + next.stderr).toBe(0);
        expect(rowOf(next.stdout)).toMatchObject({ result: "unchanged", rebootNeeded: null });
        expect((await project.hostStates())[HOST]).toMatchObject({ storePath: want, rebootNeeded: null, lastReboot: { outcome: "booted", bootedStorePath: want } });
    }, 120_000);
});
