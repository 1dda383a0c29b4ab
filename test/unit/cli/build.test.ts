import { describe, expect, it } from "vitest";
import { buildSystems, parseBuildArgs, renderBuildSummary, type BuildResult } from "../../../src/cli/build";
import { hostFileSchema, resolveHost, type HostConfig } from "../../../src/config";
import { parsePathInfo } from "../../../src/nix/closure";
import { FakeRunner, local, masterStart, remote } from "../helpers/fakeRunner";
import { drvPath, runtimeDir, storePath } from "../helpers/fixtures";

function host(name: string, fields: Record<string, unknown> = {}): HostConfig {
    const declared = hostFileSchema.parse({ address: `${name}.lab.example.org`, flake: "/srv/infra", ...fields });
    return resolveHost(declared, { name, file: `/srv/fleet/hosts/${name}.yaml`, baseDir: "/srv/fleet" });
}

const system = (name: string) => ({ storePath: storePath(`nixos-system-${name}`), drvPath: drvPath(`nixos-system-${name}`) });
const pathInfo = (paths: [string, number][]) => JSON.stringify(paths.map(([path, narSize]) => ({ path, narSize })));

describe("parseBuildArgs", () => {
    it("takes --hosts, --stack, --parallel, --json; nothing else", () => {
        expect(parseBuildArgs(["--hosts", "@web", "--parallel", "3", "--json"])).toEqual({ hosts: "@web", stack: undefined, parallel: 3, json: true, help: false });
        expect(parseBuildArgs([])).toEqual({ hosts: undefined, stack: undefined, parallel: undefined, json: false, help: false });
        expect(() => parseBuildArgs(["psi"])).toThrow(/Unexpected argument 'psi'/);
        expect(() => parseBuildArgs(["--hosts", "psi", "--yes"])).toThrow(/Unknown option '--yes'[\s\S]*|usage: npm run build/);
        expect(() => parseBuildArgs(["--parallel", "x"])).toThrow(/--parallel must be a whole number/);
    });
});

describe("parsePathInfo", () => {
    it("reads both Nix 2.8's list and newer Nix's object, and invalid (null) entries", () => {
        const a = storePath("a");
        const b = storePath("b");
        expect(parsePathInfo(pathInfo([[a, 10], [b, 20]]))).toEqual([{ path: a, narSize: 10 }, { path: b, narSize: 20 }]);
        expect(parsePathInfo(JSON.stringify({ [a]: { narSize: 5 }, [b]: null }))).toEqual([{ path: a, narSize: 5 }, { path: b, narSize: 0 }]);
    });
});

describe("buildSystems", () => {
    it("buildOn local: realises each system here and measures its closure; never contacts a host", async () => {
        const psi = system("psi");
        const runner = new FakeRunner()
            .on(local("nix-store", "--realise"), {})
            .on(local("path-info"), { stdout: pathInfo([[psi.storePath, 1024], [storePath("base"), 2048]]) });
        const lines: string[] = [];
        const results = await buildSystems({ targets: [{ host: host("psi"), system: psi }], runner: runner.run, runtimeDir: runtimeDir(), log: (l) => lines.push(l) });
        expect(results).toEqual([
            expect.objectContaining({ host: "psi", buildOn: "local", status: "built", storePath: psi.storePath, closurePaths: 2, closureBytes: 3072 }),
        ]);
        expect(runner.calls.some((call) => call.argv[0] === "ssh")).toBe(false);
        expect(runner.localCalls()[0]!.argv).toEqual(["nix-store", "--realise", psi.drvPath]);
        expect(lines).toContain(`[psi] built ${psi.storePath}: 2 paths, 3.0 KiB`);
    });

    it("buildHost: sends the derivation to the build host and builds it there; the target is not contacted", async () => {
        const tau = system("tau");
        const runner = new FakeRunner()
            .on(local("copy", "--no-check-sigs", "--derivation"), {})
            .on(remote("nix-store", "--realise"), { stdout: `${tau.storePath}\n` })
            .on(remote("nix"), { stdout: pathInfo([[tau.storePath, 100], [storePath("base"), 50]]) });
        const builder = host("bld");
        const results = await buildSystems({
            targets: [{ host: host("tau", { buildHost: "bld" }), system: tau, buildHost: { host: builder } }],
            runner: runner.run,
            runtimeDir: runtimeDir(),
            log: () => undefined,
        });
        expect(results[0]).toMatchObject({ host: "tau", buildHost: "bld", status: "built", closurePaths: 2, closureBytes: 150 });
        // One connection, to the build host only.
        const masters = runner.matching(masterStart);
        expect(masters).toHaveLength(1);
        expect(masters[0]!.argv[masters[0]!.argv.length - 1]).toBe("root@bld.lab.example.org");
        expect(runner.localCalls().map((call) => call.argv.slice(3, 7))).toEqual([["copy", "--no-check-sigs", "--derivation", "--to"]]);
        expect(runner.remoteCommands()).toEqual([`nix-store --realise ${tau.drvPath}`, expect.stringMatching(/ path-info --json --recursive /)]);
        expect(renderBuildSummary(results)).toMatch(/\ntau\s+bld\s+\/nix\/store\//);
    });

    it("buildOn target: sends the flake, builds on the host, reads the closure there; nothing is activated", async () => {
        const rho = system("rho");
        const source = storePath("source");
        const runner = new FakeRunner()
            .on(local("flake", "archive"), { stdout: JSON.stringify({ path: source, inputs: {} }) })
            .on(local("copy"), {})
            .on(remote("nix"), (call) =>
                call.remoteCommand!.includes("build")
                    ? { stdout: JSON.stringify([{ outputs: { out: rho.storePath } }]) }
                    : { stdout: pathInfo([[rho.storePath, 100]]) },
            );
        const results = await buildSystems({ targets: [{ host: host("rho", { buildOn: "target" }), system: rho }], runner: runner.run, runtimeDir: runtimeDir(), log: () => undefined });
        expect(results[0]).toMatchObject({ host: "rho", buildOn: "target", status: "built", closurePaths: 1, closureBytes: 100 });
        expect(runner.matching(masterStart)).toHaveLength(1);
        const remoteCommands = runner.remoteCommands();
        expect(remoteCommands).toHaveLength(2);
        expect(remoteCommands[0]).toMatch(/ build --no-link --json path:\/nix\/store\/\S+-source#nixosConfigurations\.rho\.config\.system\.build\.toplevel$/);
        expect(remoteCommands[1]).toMatch(/ path-info --json --recursive /);
        expect(remoteCommands.join("\n")).not.toMatch(/switch-to-configuration|nix-env|profiles\/system/);
    });

    it("a failed build, or a host building another system than evaluated, is that host's failure; the others still build", async () => {
        const psi = system("psi");
        const tau = system("tau");
        const runner = new FakeRunner()
            .on(local("nix-store", "--realise"), (call) => (call.argv.includes(psi.drvPath) ? { code: 1, stderr: "error: builder failed\n" } : {}))
            .on(local("path-info"), { stdout: pathInfo([[tau.storePath, 1]]) })
            .on(local("flake", "archive"), { stdout: JSON.stringify({ path: storePath("source") }) })
            .on(local("copy"), {})
            .on(remote("nix"), { stdout: JSON.stringify([{ outputs: { out: storePath("something-else") } }]) });
        const results = await buildSystems({
            targets: [{ host: host("psi"), system: psi }, { host: host("rho", { buildOn: "target" }), system: system("rho") }, { host: host("tau"), system: tau }],
            runner: runner.run,
            runtimeDir: runtimeDir(),
            log: () => undefined,
        });
        expect(results.map((r) => [r.host, r.status])).toEqual([["psi", "failed"], ["rho", "failed"], ["tau", "built"]]);
        expect(results[0]!.error).toMatch(/host psi: build failed: building the system failed/);
        expect(results[1]!.error).toMatch(/the host built .*something-else, but the evaluation here gave/);
    });
});

describe("renderBuildSummary", () => {
    it("each store path and closure size, the pinned note, the tally and the failed hosts", () => {
        const results: BuildResult[] = [
            { host: "psi", buildOn: "local", status: "built", storePath: system("psi").storePath, closurePaths: 12, closureBytes: 3 * 1024 * 1024, durationMs: 1500, pinnedTo: storePath("nixos-system-psi-old") },
            { host: "rho", buildOn: "target", status: "failed", storePath: system("rho").storePath, durationMs: 200, error: "host rho: build failed: building the system on the host failed\n  hint: fix it" },
        ];
        const text = renderBuildSummary(results);
        expect(text).toMatch(new RegExp(`^host\\s+built on\\s+store path\\s+closure\\s+time\\npsi\\s+here\\s+${system("psi").storePath}\\s+12 paths, 3\\.0 MiB\\s+1\\.5s\\n`));
        expect(text).toMatch(/rho\s+host\s+\S+\s+FAILED: build failed: building the system on the host failed\s+0\.2s/);
        expect(text).toContain("note: psi is pinned to nixos-system-psi-old by rollback: a deploy keeps that system until `npm run rollback -- --clear --hosts psi`");
        expect(text).toContain("build: 1 of 2 systems built; no host was changed\nfailed: rho\n  host rho: build failed");
    });
});
