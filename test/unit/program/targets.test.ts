import { describe, expect, it } from "vitest";
import { hostsFromEnv, hostsFromPulumiArgs, targetedHosts, type ProcessInfo } from "../../../src/program/targets";

const urn = (host: string, stack = "prod") => `urn:pulumi:${stack}::nixos-fleet::nixos:index:Host::${host}`;

describe("hostsFromPulumiArgs", () => {
    it("reads the hosts of --target, --target= and -t", () => {
        expect(hostsFromPulumiArgs(["up", "--yes", "--target", urn("psi"), `--target=${urn("rho")}`, "-t", urn("psi")])).toEqual(["psi", "rho"]);
        expect(hostsFromPulumiArgs(["preview", "--target-replace", urn("tau")])).toEqual(["tau"]);
    });

    it("no target, or one it cannot map to hosts, means every host", () => {
        expect(hostsFromPulumiArgs(["up", "--yes"])).toBeUndefined();
        expect(hostsFromPulumiArgs(["up", "--target", "urn:pulumi:prod::nixos-fleet::nixos:index:Host::*"])).toBeUndefined();
        expect(hostsFromPulumiArgs(["up", "--target", "urn:pulumi:prod::nixos-fleet::nixos:index:Host$nixos:index:Hook::psi-restart"])).toBeUndefined();
        expect(hostsFromPulumiArgs(["up", "--target", urn("psi"), "--target", "urn:pulumi:prod::nixos-fleet::pulumi:pulumi:Stack::x"])).toBeUndefined();
        expect(hostsFromPulumiArgs(["up", "--target", urn("psi"), "--exclude", urn("rho")])).toBeUndefined();
        expect(hostsFromPulumiArgs(["up", "--target"])).toBeUndefined();
    });
});

describe("targetedHosts", () => {
    const tree: Record<number, ProcessInfo> = {
        300: { ppid: 200, argv: ["/work/.tools/bin/pulumi-language-nodejs", "--root", "/srv"] },
        200: { ppid: 100, argv: ["/work/.tools/bin/pulumi", "up", "--yes", "--target", urn("psi")] },
        100: { ppid: 1, argv: ["bash"] },
    };
    const read = (pid: number) => tree[pid];

    it("NIXOS_FLEET_TARGET_HOSTS (set by deploy and rollback) comes first", () => {
        expect(hostsFromEnv({ NIXOS_FLEET_TARGET_HOSTS: "psi, rho" })).toEqual(["psi", "rho"]);
        expect(targetedHosts({ NIXOS_FLEET_TARGET_HOSTS: "tau" }, read, 300)).toEqual(["tau"]);
        expect(hostsFromEnv({ NIXOS_FLEET_TARGET_HOSTS: "" })).toBeUndefined();
    });

    it("else the --target options of the pulumi command that started the language host", () => {
        expect(targetedHosts({}, read, 300)).toEqual(["psi"]);
    });

    it("every host when no pulumi command is found, or it has no host target", () => {
        expect(targetedHosts({}, read, 100)).toBeUndefined();
        expect(targetedHosts({}, () => undefined, 300)).toBeUndefined();
        const untargeted: Record<number, ProcessInfo> = { ...tree, 200: { ppid: 100, argv: ["pulumi", "preview", "--diff"] } };
        expect(targetedHosts({}, (pid) => untargeted[pid], 300)).toBeUndefined();
    });
});

describe("planFleet with a target selection", () => {
    it("evaluates only the targeted hosts: another host's broken evaluation does not block them", async () => {
        const { mkdtempSync, mkdirSync, writeFileSync, rmSync } = await import("node:fs");
        const { tmpdir } = await import("node:os");
        const { join } = await import("node:path");
        const { planFleet } = await import("../../../src/program/fleet");
        const { FakeRunner, local } = await import("../helpers/fakeRunner");
        const { storePath } = await import("../helpers/fixtures");
        const root = mkdtempSync(join(tmpdir(), "nf-targets-"));
        try {
            mkdirSync(join(root, "hosts"));
            for (const name of ["psi", "rho"]) writeFileSync(join(root, `hosts/${name}.yaml`), `address: ${name}.lab\nflake: /srv/infra\n`);
            const runner = new FakeRunner().on(local("eval", "--json"), (call) => {
                const apply = call.argv[call.argv.indexOf("--apply") + 1]!;
                if (apply.includes('"rho"')) return { code: 1, stderr: "error: rho's module is broken\n" };
                const out = storePath("nixos-system-psi");
                return { stdout: JSON.stringify({ psi: { out, drv: `${out}.drv` } }) };
            });
            const options = {
                config: { get: (key: string) => (key === "hosts" ? '["psi", "rho"]' : undefined) },
                projectRoot: root,
                stackName: "prod",
                runner: runner.run,
                env: { NIXOS_FLEET_EVAL_CACHE: "0" },
            };
            const plan = await planFleet({ ...options, targets: ["psi"] });
            expect(plan.hosts.map((host) => [host.config.name, host.inputs.storePath])).toEqual([["psi", storePath("nixos-system-psi")]]);
            expect(plan.notTargeted.map((host) => host.name)).toEqual(["rho"]);
            expect(runner.matching(local("eval", "--json")).every((call) => !call.argv.join(" ").includes('"rho"'))).toBe(true);

            // Untargeted, rho's error is the run's error, naming rho.
            await expect(planFleet(options)).rejects.toMatchObject({ host: "rho", phase: "evaluate" });
        } finally {
            rmSync(root, { recursive: true, force: true });
        }
    });
});
