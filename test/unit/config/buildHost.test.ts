// The buildHost field: it names a host of the stack (errors name the file and line, or the stack
// key, and list the stack's hosts), cannot go with buildOn: target, and becomes a structured input
// holding the build host's connection settings.
import { describe, expect, it } from "vitest";
import { loadHostFilesSync, parseStackConfig, resolveStackHosts } from "../../../src/config";
import { formatFleetError } from "../../../src/errors";
import { hostInputsOf, hostLookup, notEvaluatedInputsOf } from "../../../src/program/hostInputs";
import { hostInputsSchema, deployRequestOf } from "../../../src/provider/hostInputs";
import { formatPlan, planHost } from "../../../src/deploy/plan";
import { FakeRunner } from "../helpers/fakeRunner";
import { problemsOf, projectWithHosts } from "./helpers";
import { storePath } from "../helpers/fixtures";
import { withSecretBuildHost } from "../../../src/program/fleetResources";

const KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBuildHostKeyBuildHostKeyBuildHostKey0";

function stackOf(files: Record<string, string>, config: Record<string, unknown> = {}) {
    const root = projectWithHosts(files);
    const stack = parseStackConfig({ hosts: ["alpha", "beta", "gamma"], ...config }, { baseDir: root });
    return { root, stack, hosts: loadHostFilesSync("hosts", { baseDir: root }) };
}

const FILES = {
    "alpha.yaml": "address: 127.0.0.1\nport: 2201\nbuildHost: beta\n",
    "beta.yaml": `address: 127.0.0.1\nport: 2202\nuser: builder\nhostKey: ${KEY}\n`,
    "gamma.yaml": "address: gamma.example.org\n",
};

describe("buildHost in host files and the stack", () => {
    it("names a host of the stack: the resource gets that host's name and connection settings", () => {
        const { stack, hosts } = stackOf(FILES);
        const resolved = resolveStackHosts(hosts, stack);
        const alpha = resolved.find((host) => host.name === "alpha")!;
        expect(alpha.buildHost).toBe("beta");
        const system = { storePath: storePath("nixos-system-alpha"), drvPath: `${storePath("nixos-system-alpha")}.drv` };
        const inputs = hostInputsOf(alpha, system, undefined, hostLookup(resolved));
        expect(inputs.buildHost).toEqual({ name: "beta", address: "127.0.0.1", port: 2202, user: "builder", hostKey: KEY, connectTimeout: 10 });
        // The provider's rules accept it, and the deploy gets it as the build host's SSH target.
        expect(hostInputsSchema.safeParse(inputs).success).toBe(true);
        expect(deployRequestOf(hostInputsSchema.parse(inputs)).buildHost).toMatchObject({ name: "beta", port: 2202, hostKey: KEY });
        // A host not targeted by a run keeps its buildHost input too (registered, not evaluated).
        expect(notEvaluatedInputsOf(alpha, "not targeted", hostLookup(resolved)).buildHost).toMatchObject({ name: "beta" });
        // A host without buildHost has no such input.
        expect(hostInputsOf(resolved.find((host) => host.name === "gamma")!, system, undefined, hostLookup(resolved))).not.toHaveProperty("buildHost");
    });

    it("the provider refuses a buildHost input that is not a connection (another program's, an old state's)", () => {
        const base = { name: "alpha", address: "a", user: "root", flake: ".", attribute: "x", buildOn: "local", action: "switch", substituteOnDestination: false, tags: [], storePath: storePath("s") };
        expect(hostInputsSchema.safeParse({ ...base, buildHost: "beta" }).success).toBe(false);
        expect(hostInputsSchema.safeParse({ ...base, buildHost: { name: "beta", address: "-oProxyCommand=x", user: "root" } }).success).toBe(false);
        expect(hostInputsSchema.safeParse({ ...base, buildHost: { name: "beta", address: "b", user: "root", sshOptions: ["ProxyCommand=sh"] } }).success).toBe(false);
        expect(hostInputsSchema.safeParse({ ...base, buildHost: { name: "beta", address: "b", user: "root", extra: 1 } }).success).toBe(false);
        expect(hostInputsSchema.safeParse({ ...base, buildHost: { name: "beta", address: "b", user: "root" } }).success).toBe(true);
    });

    it("an unknown build host is an error at the host file's line, with a hint listing the stack's hosts", () => {
        const { stack, hosts } = stackOf({ ...FILES, "alpha.yaml": "address: 127.0.0.1\n# built elsewhere\nbuildHost: betta\n" });
        const problems = problemsOf(() => resolveStackHosts(hosts, stack));
        expect(problems).toHaveLength(1);
        expect(problems[0]).toMatchObject({ host: "alpha", file: "hosts/alpha.yaml", line: 3, field: "buildHost", message: 'buildHost "betta" is not a host of this stack' });
        expect(problems[0]!.hint).toMatch(/did you mean "beta"\?/i);
        expect(problems[0]!.hint).toMatch(/alpha, beta, gamma$/);
        expect(formatFleetError(problems[0]!)).toContain("at hosts/alpha.yaml:3 (field buildHost)");
    });

    it("a host file outside the stack's selection is not a build host", () => {
        const { root, hosts } = stackOf({ ...FILES, "alpha.yaml": "address: a\nbuildHost: gamma\n" });
        const stack = parseStackConfig({ hosts: ["alpha", "beta"] }, { baseDir: root });
        const problems = problemsOf(() => resolveStackHosts(hosts, stack));
        expect(problems.map((problem) => problem.message)).toEqual(['buildHost "gamma" is not a host of this stack']);
        expect(problems[0]!.hint).toMatch(/alpha, beta$/);
    });

    it("set in stack defaults or overrides, the error names the stack key", () => {
        const files = { ...FILES, "alpha.yaml": "address: a\n" };
        const fromOverride = stackOf(files, { overrides: { alpha: { buildHost: "zeta" } } });
        expect(problemsOf(() => resolveStackHosts(fromOverride.hosts, fromOverride.stack))[0]).toMatchObject({ field: "nixos-fleet:overrides.alpha.buildHost", host: "alpha" });
        const fromDefaults = stackOf(files, { defaults: { buildHost: "zeta" } });
        const problems = problemsOf(() => resolveStackHosts(fromDefaults.hosts, fromDefaults.stack));
        expect(problems.map((problem) => [problem.host, problem.field])).toEqual([
            ["alpha", "nixos-fleet:defaults.buildHost"],
            ["beta", "nixos-fleet:defaults.buildHost"],
            ["gamma", "nixos-fleet:defaults.buildHost"],
        ]);
    });

    it("contradicts buildOn: target", () => {
        const { stack, hosts } = stackOf({ ...FILES, "alpha.yaml": "address: a\nbuildOn: target\nbuildHost: beta\n" });
        const problems = problemsOf(() => resolveStackHosts(hosts, stack));
        expect(problems).toHaveLength(1);
        expect(problems[0]).toMatchObject({ message: 'buildHost "beta" contradicts buildOn: target', line: 3 });
        expect(problems[0]!.hint).toMatch(/keep one of them/);
    });

    it("a host may be its own build host (stack defaults naming the builder for every host)", () => {
        const { stack, hosts } = stackOf({ ...FILES, "alpha.yaml": "address: a\n" }, { defaults: { buildHost: "beta" } });
        const resolved = resolveStackHosts(hosts, stack);
        expect(resolved.map((host) => host.buildHost)).toEqual(["beta", "beta", "beta"]);
        // The inputs too: beta's buildHost input is beta's own connection (no recursion through beta's buildHost).
        const system = { storePath: storePath("nixos-system-beta"), drvPath: `${storePath("nixos-system-beta")}.drv` };
        const beta = hostInputsOf(resolved.find((host) => host.name === "beta")!, system, undefined, hostLookup(resolved));
        expect(beta.buildHost).toEqual({ name: "beta", address: "127.0.0.1", port: 2202, user: "builder", hostKey: KEY, connectTimeout: 10 });
    });

    it("two hosts may build each other's systems (alpha on beta, beta on alpha): each input is the other's connection", () => {
        const { stack, hosts } = stackOf({ ...FILES, "beta.yaml": `address: 127.0.0.1\nport: 2202\nbuildHost: alpha\n` });
        const resolved = resolveStackHosts(hosts, stack);
        const system = { storePath: storePath("nixos-system-x"), drvPath: `${storePath("nixos-system-x")}.drv` };
        const inputsOf = (name: string) => hostInputsOf(resolved.find((host) => host.name === name)!, system, undefined, hostLookup(resolved));
        expect(inputsOf("alpha").buildHost).toEqual({ name: "beta", address: "127.0.0.1", port: 2202, user: "root", connectTimeout: 10 });
        expect(inputsOf("beta").buildHost).toEqual({ name: "alpha", address: "127.0.0.1", port: 2201, user: "root", connectTimeout: 10 });
        expect(notEvaluatedInputsOf(resolved.find((host) => host.name === "beta")!, "not targeted", hostLookup(resolved)).buildHost).toMatchObject({ name: "alpha" });
    });

    it("a bad name is refused by the host-file rule", () => {
        const root = projectWithHosts({ "alpha.yaml": "address: a\nbuildHost: Beta_1\n" });
        const problems = problemsOf(() => loadHostFilesSync("hosts", { baseDir: root }));
        expect(problems[0]).toMatchObject({ host: "alpha", field: "buildHost", line: 2 });
    });
});

describe("a build host's secret connection settings", () => {
    it("make the buildHost input secret (it carries them)", () => {
        expect(withSecretBuildHost([], [["overrides", "beta", "hostKey"]], "beta")).toEqual(["buildHost"]);
        expect(withSecretBuildHost(["address"], [["defaults", "port"]], "beta")).toEqual(["address", "buildHost"]);
        expect(withSecretBuildHost([], [["overrides", "gamma", "hostKey"]], "beta")).toEqual([]);
        expect(withSecretBuildHost([], [["overrides", "beta", "tags"]], "beta")).toEqual([]);
        expect(withSecretBuildHost([], [["overrides", "beta", "hostKey"]], undefined)).toEqual([]);
    });
});

describe("the plan of a host with a build host", () => {
    it("says where it is built and does not count local builds or copies", async () => {
        const plan = await planHost(new FakeRunner().run, { new: { storePath: storePath("nixos-system-alpha") }, buildOn: "local", buildHost: "beta" });
        const lines = formatPlan(plan, "  ");
        expect(lines[1]).toBe("  built on: beta (buildHost)");
        expect(lines[2]).toMatch(/build: unknown \(built on the build host beta\); copy: unknown \(copied from the build host beta once built there\)/);
    });
});
