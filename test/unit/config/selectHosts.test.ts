import * as fs from "node:fs";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import {
    FleetConfigError,
    applyOverrides,
    loadHostFilesSync,
    loadStackHosts,
    loadStackHostsSync,
    parseStackConfig,
    resolveStackHosts,
    selectHosts,
    type HostConfig,
} from "../../../src/config";
import { onlyProblem, problemsOf, projectWithHosts } from "./helpers";

function fleet(): { root: string; hosts: HostConfig[] } {
    const root = projectWithHosts({
        "alpha.yaml": "address: alpha\ntags: [sandbox, web]\n",
        "beta.yaml": "address: beta\ntags: [sandbox, web]\nport: 2201\n",
        "gamma.yaml": "address: gamma\ntags: [sandbox, db]\n",
        "psi.yaml": "address: psi.example.org\n",
    });
    return { root, hosts: loadHostFilesSync("hosts", { baseDir: root }) };
}

const names = (hosts: readonly HostConfig[]) => hosts.map((host) => host.name);

describe("selectHosts", () => {
    const { hosts } = fleet();

    it("selects by name and by tag, de-duplicated, in host order", () => {
        expect(names(selectHosts(hosts, ["gamma", "alpha"]))).toEqual(["alpha", "gamma"]);
        expect(names(selectHosts(hosts, ["@web"]))).toEqual(["alpha", "beta"]);
        expect(names(selectHosts(hosts, ["@db", "@sandbox", "alpha"]))).toEqual(["alpha", "beta", "gamma"]);
    });

    it("reports an unknown name listing the known hosts", () => {
        const problem = onlyProblem(() => selectHosts(hosts, ["alpha", "gama"]));
        expect(problem).toMatchObject({ phase: "select", message: 'unknown host "gama"' });
        expect(problem.hint).toBe('did you mean "gamma"? known hosts: alpha, beta, gamma, psi');
    });

    it("reports an unknown tag listing the known tags", () => {
        const problem = onlyProblem(() => selectHosts(hosts, ["@dbs"]));
        expect(problem).toMatchObject({ phase: "select", message: 'no host has tag "dbs"' });
        expect(problem.hint).toBe('did you mean "db"? known tags: db, sandbox, web');
    });

    it("reports every unknown selector at once, as a select-phase error", () => {
        let thrown: unknown;
        try {
            selectHosts(hosts, ["nope", "@none"]);
        } catch (error) {
            thrown = error;
        }
        expect(thrown).toBeInstanceOf(FleetConfigError);
        expect((thrown as FleetConfigError).phase).toBe("select");
        expect((thrown as FleetConfigError).problems).toHaveLength(2);
    });

    it("rejects an empty selection", () => {
        expect(onlyProblem(() => selectHosts(hosts, [])).message).toBe("no hosts selected");
        expect(onlyProblem(() => selectHosts([], ["alpha"])).hint).toBe("known hosts: (none)");
    });
});

describe("applyOverrides", () => {
    const { root, hosts } = fleet();
    const byName = (name: string) => hosts.find((host) => host.name === name)!;

    it("fills unset fields from defaults, keeps the file's values, lets overrides win", () => {
        const beta = applyOverrides(byName("beta"), { port: 22, connectTimeout: 3 }, { connectTimeout: 7, action: "test" });
        expect(beta.port).toBe(2201);
        expect(beta.connectTimeout).toBe(7);
        expect(beta.action).toBe("test");
        const alpha = applyOverrides(byName("alpha"), { port: 2200, connectTimeout: 3 });
        expect(alpha).toMatchObject({ port: 2200, connectTimeout: 3, action: "switch", attribute: "nixosConfigurations.alpha" });
        expect(alpha.declared).toMatchObject({ port: 2200, connectTimeout: 3, address: "alpha" });
    });

    it("resolves relative paths from stack settings against the project root", () => {
        const alpha = applyOverrides(byName("alpha"), { sshConfigFile: ".sandbox/ssh_config" }, { flake: "path:.sandbox/flake" });
        expect(alpha.sshConfigFile).toBe(path.join(root, ".sandbox/ssh_config"));
        expect(alpha.flake).toBe(`path:${path.join(root, ".sandbox/flake")}`);
    });

    it("re-validates the merged host and names the layer that broke it", () => {
        const key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";
        const pinned = applyOverrides(byName("alpha"), {}, { hostKey: key });
        const problem = onlyProblem(() => applyOverrides(pinned, {}, { insecureSkipHostKeyCheck: true }));
        expect(problem).toMatchObject({ host: "alpha", field: "nixos-fleet:overrides.alpha.insecureSkipHostKeyCheck" });
        expect(problem.message).toMatch(/contradicts hostKey/);
    });

    it("does not change the host it was given", () => {
        applyOverrides(byName("psi"), {}, { port: 2222 });
        expect(byName("psi").port).toBe(22);
    });
});

describe("resolveStackHosts", () => {
    it("selects the stack's hosts and applies its defaults and overrides", () => {
        const { root, hosts } = fleet();
        const stack = parseStackConfig(
            { hosts: ["@sandbox"], defaults: { sshConfigFile: ".sandbox/ssh_config" }, overrides: { gamma: { action: "boot" } } },
            { baseDir: root },
        );
        const resolved = resolveStackHosts(hosts, stack);
        expect(names(resolved)).toEqual(["alpha", "beta", "gamma"]);
        expect(resolved.every((host) => host.sshConfigFile === path.join(root, ".sandbox/ssh_config"))).toBe(true);
        expect(resolved.map((host) => host.action)).toEqual(["switch", "switch", "boot"]);
        expect(names(loadStackHostsSync(stack))).toEqual(["alpha", "beta", "gamma"]);
    });

    it("rejects overrides and pins for hosts without a file", () => {
        const { root, hosts } = fleet();
        const stack = parseStackConfig(
            {
                hosts: ["alpha"],
                overrides: { alpah: { port: 1 }, psi: { port: 2 } },
                pins: { zeta: { storePath: "/nix/store/0c9ai3jbqkcvjrds8hhhpqx3xzhglgnq-nixos-system" } },
            },
            { baseDir: root },
        );
        const problems = problemsOf(() => resolveStackHosts(hosts, stack, { file: "Pulumi.dev.yaml" }));
        expect(problems.map((problem) => [problem.field, problem.message])).toEqual([
            ["nixos-fleet:overrides.alpah", 'overrides for unknown host "alpah"'],
            ["nixos-fleet:pins.zeta", 'pins for unknown host "zeta"'],
        ]);
        expect(problems[0]?.hint).toBe('did you mean "alpha"? known hosts: alpha, beta, gamma, psi');
        expect(problems[0]?.file).toBe("Pulumi.dev.yaml");
    });
});

describe("loadStackHosts: key files must exist", () => {
    it("a missing identityFile in a host file names the key file, the host file and the field", () => {
        const root = projectWithHosts({ "alpha.yaml": "address: alpha\nidentityFile: keys/fleet\n" });
        const stack = parseStackConfig({ hosts: ["alpha"] }, { baseDir: root });
        const problem = onlyProblem(() => loadStackHostsSync(stack, { file: "Pulumi.prod.yaml" }));
        expect(problem).toMatchObject({ host: "alpha", file: "hosts/alpha.yaml", field: "identityFile", message: `identityFile ${path.join(root, "keys/fleet")} does not exist` });
        expect(problem.hint).toMatch(/ssh private key must exist/);
    });

    it("names the stack setting when the path came from overrides or defaults, and accepts existing files", async () => {
        const root = projectWithHosts({ "alpha.yaml": "address: alpha\n", "beta.yaml": "address: beta\n" });
        fs.mkdirSync(path.join(root, "keys"));
        fs.writeFileSync(path.join(root, "keys", "ok"), "key");
        const stack = parseStackConfig(
            { hosts: ["alpha", "beta"], defaults: { knownHostsFile: "keys/known_hosts" }, overrides: { alpha: { identityFile: "keys/ci" }, beta: { knownHostsFile: "keys" } } },
            { baseDir: root },
        );
        const problems = problemsOf(() => loadStackHostsSync(stack, { file: "Pulumi.ci.yaml" }));
        expect(problems.map((p) => [p.host, p.file, p.field, p.message.replace(root, "<root>")])).toEqual([
            ["alpha", "Pulumi.ci.yaml", "nixos-fleet:overrides.alpha.identityFile", "identityFile <root>/keys/ci does not exist"],
            ["alpha", "Pulumi.ci.yaml", "nixos-fleet:defaults.knownHostsFile", "knownHostsFile <root>/keys/known_hosts does not exist"],
            ["beta", "Pulumi.ci.yaml", "nixos-fleet:overrides.beta.knownHostsFile", "knownHostsFile <root>/keys is not a file"],
        ]);
        const fixed = parseStackConfig({ hosts: ["alpha"], overrides: { alpha: { identityFile: "keys/ok" } } }, { baseDir: root });
        expect((await loadStackHosts(fixed)).map((host) => host.identityFile)).toEqual([path.join(root, "keys/ok")]);
    });

    it("only for the stack's own hosts, and not when asked not to (other stacks' hosts)", () => {
        const root = projectWithHosts({ "alpha.yaml": "address: alpha\n", "beta.yaml": "address: beta\nidentityFile: keys/missing\n" });
        expect(names(loadStackHostsSync(parseStackConfig({ hosts: ["alpha"] }, { baseDir: root })))).toEqual(["alpha"]);
        expect(names(loadStackHostsSync(parseStackConfig({ hosts: ["beta"] }, { baseDir: root }), { checkFiles: false }))).toEqual(["beta"]);
    });
});
