// A hostile or careless operator against the trust boundaries of issue 11: each test is a hole that
// was found (or checked) by trying it.
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { loadHostFilesSync, parseStackConfig } from "../../src/config";
import { devPassphraseFile, passphraseProblem } from "../../src/program/passphrase";
import { SshConnection } from "../../src/ssh/connection";
import { sshConfigRefusals } from "../../src/ssh/optionPolicy";
import { problemsOf, projectWithHosts } from "./config/helpers";
import { FakeRunner } from "./helpers/fakeRunner";
import { fleetErrorOfSync, runtimeDir, target, tempDir } from "./helpers/fixtures";

const baseDir = "/project";

describe("sshOptions through the stack settings", () => {
    it("defaults and overrides get the same allow-list, naming the config key", () => {
        const problems = problemsOf(() =>
            parseStackConfig({ hosts: ["alpha"], defaults: { sshOptions: ["PermitLocalCommand=yes"] }, overrides: { alpha: { sshOptions: ["Compression=yes", "proxycommand=nc %h %p"] } } }, { baseDir }),
        );
        expect(problems.map((p) => [p.field, /local command|LocalCommand/.test(p.message)])).toEqual([
            ["nixos-fleet:defaults.sshOptions[0]", true],
            ["nixos-fleet:overrides.alpha.sshOptions[1]", true],
        ]);
        expect(problems[1]!.hint).toMatch(/proxyJump/);
    });

    it("a flood of unknown keys in the stack settings is capped and counted", () => {
        const overrides = { alpha: Object.fromEntries(Array.from({ length: 20_000 }, (_, i) => [`k${i}`, 1])) };
        const started = performance.now();
        const problems = problemsOf(() => parseStackConfig({ hosts: ["alpha"], overrides }, { baseDir }));
        expect(performance.now() - started).toBeLessThan(2000);
        expect(problems).toHaveLength(51);
        expect(problems[50]!.message).toBe("and 19950 more problems in the stack settings");
    });
});

describe("__proto__ and other object tricks", () => {
    it("a host file cannot set fields through __proto__", () => {
        const root = projectWithHosts({ "web1.yaml": "address: web1\n__proto__:\n  insecureSkipHostKeyCheck: true\n" });
        expect(problemsOf(() => loadHostFilesSync("hosts", { baseDir: root }))[0]).toMatchObject({ field: "__proto__", message: 'unknown field "__proto__"' });
    });

    it("nor can the stack settings", () => {
        const problems = problemsOf(() => parseStackConfig(JSON.parse('{"hosts":["alpha"],"defaults":{"__proto__":{"insecureSkipHostKeyCheck":true}}}'), { baseDir }));
        expect(problems[0]!.message).toBe('unknown field "__proto__"');
    });

    it("symbolic link loops are a problem, not a hang", () => {
        const root = projectWithHosts({});
        fs.symlinkSync("b.yaml", path.join(root, "hosts", "a.yaml"));
        fs.symlinkSync("a.yaml", path.join(root, "hosts", "b.yaml"));
        const problems = problemsOf(() => loadHostFilesSync("hosts", { baseDir: root }));
        expect(problems.map((p) => p.message)).toEqual(["is a symbolic link to b.yaml, which cannot be read (ELOOP)", "is a symbolic link to a.yaml, which cannot be read (ELOOP)"]);
    });
});

describe("the ssh layer refuses what a provider input could smuggle in", () => {
    it.each(["../../../home/ops/.bashrc", "a/b", "..", ".hidden/../x", "a b", ""])("a host name %j that would leave the runtime directory", (name) => {
        const error = fleetErrorOfSync(() => new SshConnection(target({ name }), { runner: new FakeRunner().run, runtimeDir: runtimeDir() }));
        expect(error.message).toMatch(/cannot name files/);
    });

    it("a pinned key with a second line (which could add a wildcard known_hosts entry)", () => {
        const error = fleetErrorOfSync(
            () => new SshConnection(target({ hostKey: "ssh-ed25519 AAAA\n* ssh-ed25519 BBBB" }), { runner: new FakeRunner().run, runtimeDir: runtimeDir() }),
        );
        expect(error.message).toMatch(/more than one line/);
    });

    it("an sshConfigFile that runs commands is refused with its file and line", () => {
        const dir = runtimeDir();
        const file = path.join(dir, "ssh_config");
        fs.writeFileSync(file, "Host *\n    HostName 10.0.0.1\n    ProxyCommand touch /tmp/x\n");
        const runner = new FakeRunner();
        const error = fleetErrorOfSync(() => new SshConnection(target({ sshConfigFile: file }), { runner: runner.run, runtimeDir: dir }));
        expect(error).toMatchObject({ phase: "connect", host: "alpha", file, line: 3 });
        expect(error.message).toMatch(/^ProxyCommand runs a command/);
        expect(runner.calls).toHaveLength(0);
    });
});

describe("sshConfigRefusals", () => {
    it.each([
        "ProxyCommand nc %h %p",
        "  proxycommand=nc %h %p",
        "\tPROXYCOMMAND  =  nc",
        '"ProxyCommand" nc',
        "LocalCommand touch /tmp/y",
        "PermitLocalCommand yes",
        "KnownHostsCommand /bin/echo",
        "RemoteCommand sh",
        "PKCS11Provider /tmp/evil.so",
        "SecurityKeyProvider /tmp/evil.so",
        "Include /tmp/other_config",
        "Match exec \"touch /tmp/z\"",
        "Match host x !exec true",
        "match Exec=true",
        // ssh skips an empty first word: each of these is ProxyCommand to ssh (ssh -G shows it).
        "=ProxyCommand touch /tmp/pwned",
        " = ProxyCommand touch /tmp/pwned",
        '""ProxyCommand touch /tmp/pwned',
        '"" ProxyCommand touch /tmp/pwned',
        '"ProxyCommand"touch /tmp/pwned',
        "XAuthLocation /tmp/evil",
    ])("refuses %j", (line) => {
        expect(sshConfigRefusals(`Host a\n${line}\n`)).toEqual([expect.objectContaining({ line: 2 })]);
    });

    it("accepts what an ssh_config is for (the sandbox's, for one)", () => {
        const text = ["# comment with ProxyCommand in it", "Host alpha", "    HostName 127.0.0.1", "    Port 2222", "    User root", "    IdentityFile /k", "    UserKnownHostsFile /kh", "Match host alpha user root", "    ServerAliveInterval 5", "    ProxyJump bastion", ""].join("\n");
        expect(sshConfigRefusals(text)).toEqual([]);
    });
});

describe("passphrases", () => {
    it("a copy of the dev passphrase file is the dev passphrase", () => {
        const root = tempDir("nf-adv-");
        fs.mkdirSync(path.join(root, "scripts"));
        fs.writeFileSync(devPassphraseFile(root), "nixos-fleet-dev-only\n");
        const copy = path.join(root, "copy");
        fs.writeFileSync(copy, "nixos-fleet-dev-only");
        expect(passphraseProblem({ stack: "prod", projectRoot: root, env: { PULUMI_CONFIG_PASSPHRASE_FILE: copy } })?.message).toMatch(/dev passphrase/);
        fs.writeFileSync(copy, "something else");
        expect(passphraseProblem({ stack: "prod", projectRoot: root, env: { PULUMI_CONFIG_PASSPHRASE_FILE: copy } })).toBeUndefined();
    });

    it.each(["Dev", "dev ", "dev\n", "DEV"])("only the stack named exactly dev gets the dev passphrase (%j does not)", (stack) => {
        const root = tempDir("nf-adv-");
        fs.mkdirSync(path.join(root, "scripts"));
        fs.writeFileSync(devPassphraseFile(root), "nixos-fleet-dev-only\n");
        expect(passphraseProblem({ stack, projectRoot: root, env: { PULUMI_CONFIG_PASSPHRASE_FILE: devPassphraseFile(root) } })).toBeDefined();
    });
});
