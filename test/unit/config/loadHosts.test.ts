import * as os from "node:os";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { FleetConfigError, HOST_DEFAULTS, loadHostFiles, loadHostFilesSync } from "../../../src/config";
import { formatFleetError } from "../../../src/errors";
import { onlyProblem, problemsOf, problemsOfAsync, projectWithHosts } from "./helpers";

/** Loads a single host file `web1.yaml` and returns its only problem. */
function problemIn(text: string) {
    const root = projectWithHosts({ "web1.yaml": text });
    return onlyProblem(() => loadHostFilesSync("hosts", { baseDir: root }));
}

describe("loadHostFiles: valid files", () => {
    it("applies every default and adds name, file and the default attribute", async () => {
        const root = projectWithHosts({ "web1.yaml": "address: web1.example.org\n" });
        const [host, ...rest] = await loadHostFiles(path.join(root, "hosts"));
        expect(rest).toEqual([]);
        expect(host).toMatchObject({
            ...HOST_DEFAULTS,
            name: "web1",
            file: path.join(root, "hosts", "web1.yaml"),
            baseDir: root,
            address: "web1.example.org",
            port: 22,
            user: "root",
            flake: root,
            attribute: "nixosConfigurations.web1",
            buildOn: "local",
            action: "switch",
            substituteOnDestination: false,
            tags: [],
            connectTimeout: 10,
            confirmTimeout: 30,
            insecureSkipHostKeyCheck: false,
            sshOptions: [],
            gc: false,
            hooks: [],
            healthChecks: { commands: [], units: [], tcp: [], http: [], keepGoing: false },
        });
        expect(host?.declared).toEqual({ address: "web1.example.org" });
        expect(host?.identityFile).toBeUndefined();
    });

    it("reads .yaml and .yml, skips other files and dotfiles, sorts by name", () => {
        const root = projectWithHosts({
            "b.yml": "address: b\n",
            "a.yaml": "address: a\n",
            "notes.txt": "not a host",
            ".c.yaml": "address: [broken",
        });
        expect(loadHostFilesSync(path.join(root, "hosts")).map((host) => host.name)).toEqual(["a", "b"]);
    });

    it("keeps explicit values and nested defaults of reserved fields", () => {
        const root = projectWithHosts({
            "db1.yaml": [
                "address: 10.0.0.5",
                "port: 2222",
                "user: deploy",
                "buildOn: target",
                "action: boot",
                "tags: [db]",
                "confirmTimeout: 0",
                "healthChecks:",
                "  units: [postgresql.service]",
                "  tcp:",
                "    - port: 5432",
                "  commands:",
                "    - command: [pg_isready]",
                "      retries: 0",
                "keepGenerations: 5",
                'deleteOlderThan: "30d"',
                "hooks:",
                "  - name: backup",
                "    command: [systemctl, start, pg-backup]",
                "    runAs: postgres",
                "",
            ].join("\n"),
        });
        const [host] = loadHostFilesSync(path.join(root, "hosts"));
        expect(host).toMatchObject({
            port: 2222,
            user: "deploy",
            buildOn: "target",
            action: "boot",
            tags: ["db"],
            confirmTimeout: 0,
            keepGenerations: 5,
            deleteOlderThan: "30d",
            hooks: [{ name: "backup", command: ["systemctl", "start", "pg-backup"], runAs: "postgres" }],
            healthChecks: {
                units: ["postgresql.service"],
                tcp: [{ port: 5432, timeout: 10, retries: 3 }],
                commands: [{ command: ["pg_isready"], timeout: 10, retries: 0 }],
                http: [],
                keepGoing: false,
            },
        });
    });
});

describe("loadHostFiles: relative paths", () => {
    it("resolves ssh files and local flakes against baseDir, not the cwd", () => {
        const root = projectWithHosts({
            "web1.yaml": [
                "address: web1",
                "identityFile: keys/deployer",
                "knownHostsFile: ./known_hosts",
                "sshConfigFile: ../shared/ssh_config",
                "flake: path:.sandbox/flake",
                "",
            ].join("\n"),
        });
        const [host] = loadHostFilesSync("hosts", { baseDir: root });
        expect(host?.identityFile).toBe(path.join(root, "keys/deployer"));
        expect(host?.knownHostsFile).toBe(path.join(root, "known_hosts"));
        expect(host?.sshConfigFile).toBe(path.join(path.dirname(root), "shared/ssh_config"));
        expect(host?.flake).toBe(`path:${path.join(root, ".sandbox/flake")}`);
    });

    it("defaults baseDir to the parent of the hosts directory", () => {
        const root = projectWithHosts({ "web1.yaml": "address: web1\nflake: ./flake\n" });
        const [host] = loadHostFilesSync(path.join(root, "hosts"));
        expect(host?.flake).toBe(path.join(root, "flake"));
    });

    it.each([
        ["github:owner/repo", "github:owner/repo"],
        ["git+https://example.org/fleet.git?ref=main", "git+https://example.org/fleet.git?ref=main"],
        ["nixpkgs/nixos-24.05", "nixpkgs/nixos-24.05"],
        ["path:/srv/flake", "path:/srv/flake"],
        ["path:flake?dir=sub", "path:<root>/flake?dir=sub"],
        ["../flake", "<parent>/flake"],
    ])("flake %s becomes %s", (flake, expected) => {
        const root = projectWithHosts({ "web1.yaml": `address: web1\nflake: "${flake}"\n` });
        const [host] = loadHostFilesSync("hosts", { baseDir: root });
        expect(host?.flake).toBe(expected.replace("<root>", root).replace("<parent>", path.dirname(root)));
    });

    it("expands ~/ to the home directory", () => {
        const root = projectWithHosts({ "web1.yaml": "address: web1\nidentityFile: ~/.ssh/id_ed25519\n" });
        const [host] = loadHostFilesSync("hosts", { baseDir: root });
        expect(host?.identityFile).toBe(path.join(os.homedir(), ".ssh/id_ed25519"));
    });
});

describe("loadHostFiles: each problem has file, line, field and message", () => {
    it("malformed YAML", () => {
        const problem = problemIn("address: web1\ntags: [web\nport: 22\n");
        expect(problem).toMatchObject({ phase: "config", file: "hosts/web1.yaml", line: 3 });
        expect(problem.message).toMatch(/^invalid YAML: /);
        expect(problem.field).toBe("tags");
        expect(problem.hint).toBeTruthy();
    });

    it("tabs as indentation", () => {
        const problem = problemIn("address: web1\nhealthChecks:\n\tkeepGoing: true\n");
        expect(problem).toMatchObject({ file: "hosts/web1.yaml", line: 3 });
        expect(problem.message).toMatch(/invalid YAML: .*[Tt]ab/);
    });

    it("duplicate key", () => {
        const problem = problemIn("address: web1\nport: 22\nuser: root\nport: 2222\n");
        expect(problem).toMatchObject({ file: "hosts/web1.yaml", line: 4, field: "port", message: 'duplicate key "port"' });
    });

    it("unknown key, with a suggestion", () => {
        const problem = problemIn("address: web1\nprot: 22\n");
        expect(problem).toMatchObject({ file: "hosts/web1.yaml", line: 2, field: "prot", message: 'unknown field "prot"' });
        expect(problem.hint).toMatch(/did you mean "port"\?/);
    });

    it("unknown key in a nested mapping", () => {
        const problem = problemIn("address: web1\nhealthChecks:\n  tcp:\n    - port: 80\n      tiemout: 5\n");
        expect(problem).toMatchObject({ line: 5, field: "healthChecks.tcp[0].tiemout", message: 'unknown field "tiemout"' });
        expect(problem.hint).toMatch(/did you mean "timeout"\?/);
    });

    it("wrong type", () => {
        const problem = problemIn("address: web1\nsubstituteOnDestination: yes\n");
        expect(problem).toMatchObject({ line: 2, field: "substituteOnDestination", message: 'expected true or false, got "yes"' });
    });

    it("missing address points at the mapping", () => {
        const problem = problemIn("# a comment\nport: 22\nuser: root\n");
        expect(problem).toMatchObject({ file: "hosts/web1.yaml", line: 2, field: "address" });
        expect(problem.message).toBe("missing required field (expected a host name, IP address or ssh_config alias)");
    });

    it("missing nested field points at its parent mapping", () => {
        const problem = problemIn("address: web1\nhealthChecks:\n  tcp:\n    - host: 127.0.0.1\n      timeout: 3\n");
        expect(problem).toMatchObject({ line: 4, field: "healthChecks.tcp[0].port" });
        expect(problem.message).toMatch(/^missing required field \(expected an integer from 1 to 65535\)/);
    });

    it.each([
        ["abc", 'expected an integer from 1 to 65535, got "abc"'],
        ["0", "expected an integer from 1 to 65535, got 0"],
        ["65536", "expected an integer from 1 to 65535, got 65536"],
        ["22.5", "expected an integer from 1 to 65535, got 22.5"],
    ])("bad port %s", (port, message) => {
        const problem = problemIn(`address: web1\n\nport: ${port}\n`);
        expect(problem).toMatchObject({ line: 3, field: "port", message });
    });

    it("bad nested port", () => {
        const problem = problemIn("address: web1\nhealthChecks:\n  tcp:\n    - port: http\n");
        expect(problem).toMatchObject({ line: 4, field: "healthChecks.tcp[0].port", message: 'expected an integer from 1 to 65535, got "http"' });
    });

    it.each(["identityFile", "knownHostsFile", "sshConfigFile"])("whitespace in %s", (field) => {
        const problem = problemIn(`address: web1\n${field}: "keys/my key"\n`);
        expect(problem).toMatchObject({ line: 2, field });
        expect(problem.message).toBe('path "keys/my key" contains whitespace, which is not supported');
        expect(problem.hint).toMatch(/NIX_SSHOPTS/);
    });

    it.each([
        ["StrictHostKeyChecking=no", /weaken host-key checking/, /insecureSkipHostKeyCheck: true/],
        ["stricthostkeychecking=off", /weaken host-key checking/, /insecureSkipHostKeyCheck: true/],
        ["StrictHostKeyChecking=false", /weaken host-key checking/, /insecureSkipHostKeyCheck: true/],
        ["StrictHostKeyChecking=FALSE", /weaken host-key checking/, /insecureSkipHostKeyCheck: true/],
        ["StrictHostKeyChecking=accept-new", /weaken host-key checking/, /insecureSkipHostKeyCheck: true/],
        ["UserKnownHostsFile=/dev/null", /replaces the known host keys/, /knownHostsFile/],
        ["GlobalKnownHostsFile=/tmp/evil", /adds a source of trusted host keys/, /hostKey or .*knownHostsFile/],
        ["ProxyCommand=touch${IFS}/tmp/x", /runs a local command/, /use proxyJump/],
        ["KnownHostsCommand=/bin/true", /runs a local command/, /hostKey/],
    ])("refuses %s naming file, line, field and the safe alternative", (option, message, hint) => {
        const problem = problemIn(`address: web1\nsshOptions:\n  - ServerAliveInterval=15\n  - ${option}\n`);
        expect(problem).toMatchObject({ file: "hosts/web1.yaml", line: 4, field: "sshOptions[1]", host: "web1" });
        expect(problem.message).toContain(JSON.stringify(option));
        expect(problem.message).toMatch(message);
        expect(problem.hint).toMatch(hint);
    });

    it("refuses PermitLocalCommand and LocalCommand, each on its own line", () => {
        const root = projectWithHosts({ "web1.yaml": "address: web1\nsshOptions:\n  - PermitLocalCommand=yes\n  - LocalCommand=touch /tmp/y\n" });
        const problems = problemsOf(() => loadHostFilesSync("hosts", { baseDir: root }));
        expect(problems.map((p) => [p.line, p.field])).toEqual([[3, "sshOptions[0]"], [4, "sshOptions[1]"]]);
        expect(problems[0]!.message).toMatch(/allows LocalCommand/);
        expect(problems[1]!.message).toMatch(/runs a local command/);
    });

    it("accepts insecureSkipHostKeyCheck: true as the explicit way", () => {
        const root = projectWithHosts({ "web1.yaml": "address: web1\ninsecureSkipHostKeyCheck: true\n" });
        expect(loadHostFilesSync("hosts", { baseDir: root })[0]?.insecureSkipHostKeyCheck).toBe(true);
    });

    it("rejects insecureSkipHostKeyCheck together with a pinned key", () => {
        const key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";
        const problem = problemIn(`address: web1\nhostKey: ${key}\ninsecureSkipHostKeyCheck: true\n`);
        expect(problem).toMatchObject({ line: 3, field: "insecureSkipHostKeyCheck" });
        expect(problem.message).toMatch(/contradicts hostKey/);
    });

    it.each([
        ['nixosConfigurations."web1"', 2],
        ["nixosConfigurations.${builtins.abort 1}", 2],
        ["nixosConfigurations..web1", 2],
        ["nixosConfigurations.let", 2],
        ["1web.x", 2],
    ])("bad attribute %s", (attribute, line) => {
        const problem = problemIn(`address: web1\nattribute: '${attribute}'\n`);
        expect(problem).toMatchObject({ line, field: "attribute" });
        expect(problem.message).toMatch(/^expected a dotted Nix attribute path of plain identifiers/);
        expect(problem.hint).toMatch(/Nix expression/);
    });

    it("address with a user or port explains where they go", () => {
        expect(problemIn("address: admin@web1\n").hint).toBe('write "address: web1" and "user: admin"');
        expect(problemIn("address: web1:2222\n").hint).toBe('write "address: web1" and "port: 2222"');
    });

    it("an empty file", () => {
        const problem = problemIn("");
        expect(problem).toMatchObject({ file: "hosts/web1.yaml", line: 1 });
        expect(problem.message).toMatch(/^expected a mapping of host fields .*got an empty value$/);
    });

    it("a file name that is not a valid host name", () => {
        const root = projectWithHosts({ "Web_1.yaml": "address: web1\n" });
        const problem = onlyProblem(() => loadHostFilesSync("hosts", { baseDir: root }));
        expect(problem).toMatchObject({ file: "hosts/Web_1.yaml" });
        expect(problem.message).toMatch(/host name "Web_1"/);
    });

    it("the same host as .yaml and .yml", () => {
        const root = projectWithHosts({ "web1.yaml": "address: a\n", "web1.yml": "address: b\n" });
        expect(onlyProblem(() => loadHostFilesSync("hosts", { baseDir: root })).message).toMatch(/defined twice/);
    });

    it("a missing or empty hosts directory", async () => {
        const root = projectWithHosts({});
        expect(onlyProblem(() => loadHostFilesSync("hosts", { baseDir: root })).message).toMatch(/no host files/);
        const missing = await problemsOfAsync(() => loadHostFiles("nope", { baseDir: root }));
        expect(missing[0]?.message).toMatch(/does not exist/);
    });
});

describe("loadHostFiles: all problems of all files at once", () => {
    it("collects every problem, in file then line order, into one readable error", () => {
        const root = projectWithHosts({
            "alpha.yaml": "address: alpha\nport: abc\nbogus: 1\n",
            "beta.yaml": "port: 22\n",
            "gamma.yaml": "address: [gamma\n",
        });
        let thrown: unknown;
        try {
            loadHostFilesSync("hosts", { baseDir: root });
        } catch (error) {
            thrown = error;
        }
        expect(thrown).toBeInstanceOf(FleetConfigError);
        const error = thrown as FleetConfigError;
        expect(error.problems.map((problem) => `${problem.file}:${problem.line} ${problem.field}`)).toEqual([
            "hosts/alpha.yaml:2 port",
            "hosts/alpha.yaml:3 bogus",
            "hosts/beta.yaml:1 address",
            expect.stringMatching(/^hosts\/gamma\.yaml:\d+ /),
        ]);
        const text = formatFleetError(error);
        expect(text).toContain("config failed: invalid host configuration (4 problems):");
        expect(text).toContain('  hosts/alpha.yaml:2 port: expected an integer from 1 to 65535, got "abc"');
        expect(text).toContain('  hosts/alpha.yaml:3 bogus: unknown field "bogus"');
        expect(text).toMatch(/\n {6}hint: /);
    });

    it("the async and sync loaders agree", async () => {
        const root = projectWithHosts({ "alpha.yaml": "address: alpha\nport: x\n", "beta.yaml": "address: beta\n" });
        const sync = problemsOf(() => loadHostFilesSync("hosts", { baseDir: root }));
        const async = await problemsOfAsync(() => loadHostFiles("hosts", { baseDir: root }));
        expect(async.map((problem) => problem.toJSON())).toEqual(sync.map((problem) => problem.toJSON()));
    });
});
