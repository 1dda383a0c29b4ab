import { spawnSync } from "node:child_process";
import { chmodSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { SshConnection } from "../../../src/ssh/connection";
import { jumpSshConfig, parseProxyJump } from "../../../src/ssh/jumpHosts";
import type { SshTarget } from "../../../src/ssh/target";
import { FakeRunner, masterStart, remote, sshOption } from "../helpers/fakeRunner";
import { fleetErrorOf, fleetErrorOfSync, runtimeDir, target } from "../helpers/fixtures";

const HAS_SSH = spawnSync("ssh", ["-V"]).status === 0;

/** The Host block of `host` in a generated ssh_config, as its indented lines. */
function block(config: string, host: string): string[] {
    const lines = config.split("\n");
    const start = lines.indexOf(`Host ${host}`);
    if (start < 0) throw new Error(`no Host ${host} in\n${config}`);
    const end = lines.findIndex((line, i) => i > start && !line.startsWith("    "));
    return lines.slice(start + 1, end).map((line) => line.trim());
}

/** What ssh itself makes of the generated file for `host` (`ssh -G`: no connection is made). */
function effective(configFile: string, host: string): Record<string, string> {
    const result = spawnSync("ssh", ["-G", "-F", configFile, host], { encoding: "utf8" });
    expect(result.status, result.stderr).toBe(0);
    return Object.fromEntries(result.stdout.split("\n").filter(Boolean).map((line) => {
        const [key = "", ...rest] = line.split(" ");
        return [key.toLowerCase(), rest.join(" ")];
    }));
}

function connect(overrides: Partial<SshTarget>, dir = runtimeDir()) {
    const runner = new FakeRunner().on(remote("true"), {});
    const connection = new SshConnection(target(overrides), { runner: runner.run, runtimeDir: dir });
    return { runner, connection, dir, configFile: join(dir, "alpha.ssh_config") };
}

describe("parseProxyJump", () => {
    it("reads [user@]host[:port] hops, first hop first, IPv6 in brackets", () => {
        expect(parseProxyJump({ name: "alpha", address: "a", proxyJump: "ops@bastion:2200,jump2,[2001:db8::1]:22" })).toEqual([
            { spec: "ops@bastion:2200", user: "ops", host: "bastion", port: 2200 },
            { spec: "jump2", host: "jump2" },
            { spec: "[2001:db8::1]:22", host: "2001:db8::1", port: 22 },
        ]);
    });

    it("an empty list means no jump hosts", () => {
        expect(parseProxyJump({ name: "alpha", address: "a", proxyJump: "" })).toEqual([]);
    });

    it.each([
        ["bastion,bastion", /appears twice/],
        ["bastion,alpha.example.org", /cannot be its own jump host/],
        ["-oProxyCommand=x", /is not \[user@\]host\[:port\]/],
        ["[fe80::1%eth0]", /is not \[user@\]host\[:port\]/],
        ["bastion:0", /is not/],
        ["bastion:70000", /is not/],
        ["a b", /is not/],
        ["bastion;touch /tmp/x", /is not/],
        ["$(touch /tmp/x)", /is not/],
        ["bastion\nHost *", /is not/],
        ["bastion,", /is not/],
    ])("refuses %j", (proxyJump, message) => {
        const error = fleetErrorOfSync(() => parseProxyJump({ name: "alpha", address: "alpha.example.org", proxyJump }));
        expect(error).toMatchObject({ phase: "connect", host: "alpha" });
        expect(error.message).toMatch(message);
    });
});

describe("a connection through jump hosts", () => {
    it("uses its own ssh_config (-F) and names only the last hop after -J: no user, port or ProxyCommand on the command line", async () => {
        const { runner, connection, configFile } = connect({ proxyJump: "ops@bastion.example.org:2200,jump2", sshConfigFile: "/etc/fleet/ssh_config" });
        await connection.run(["true"]);
        for (const call of runner.calls) {
            const argv = call.argv;
            expect(argv.filter((word) => word === "-F")).toHaveLength(1);
            expect(argv[argv.indexOf("-F") + 1]).toBe(configFile);
            expect(argv[argv.indexOf("-J") + 1]).toBe("jump2");
            expect(argv.join(" ")).not.toMatch(/ProxyCommand|ops@|2200/i);
        }
        expect(connection.nixSshOpts()).toContain(`-F ${configFile}`);
    });

    it("gives every hop BatchMode, the connect timeout and strict host-key checking, and chains them", () => {
        const { configFile } = connect({ proxyJump: "ops@bastion.example.org:2200,jump2", connectTimeout: 7, sshConfigFile: "/etc/fleet/ssh_config" });
        const config = readFileSync(configFile, "utf8");
        const first = block(config, "bastion.example.org");
        expect(first).toEqual(expect.arrayContaining(["User ops", "Port 2200", "BatchMode yes", "ConnectTimeout 7", "StrictHostKeyChecking yes"]));
        expect(first.some((line) => line.startsWith("ProxyJump"))).toBe(false);
        const second = block(config, "jump2");
        expect(second).toEqual(expect.arrayContaining(["BatchMode yes", "ConnectTimeout 7", "StrictHostKeyChecking yes", "ProxyJump bastion.example.org"]));
        expect(config).toMatch(/^Match all\n {4}Include "\/etc\/fleet\/ssh_config"$/m);
        expect(config).not.toMatch(/ProxyCommand|StrictHostKeyChecking (no|accept-new)|\/dev\/null/i);
    });

    it("checks hops against the host's knownHostsFile when it has one", () => {
        const config = jumpSshConfig(target({ proxyJump: "bastion,jump2", knownHostsFile: "/srv/fleet/known_hosts" }), "/home/ops");
        for (const hop of ["bastion", "jump2"]) expect(block(config, hop)).toContain('UserKnownHostsFile "/srv/fleet/known_hosts"');
    });

    it("without sshConfigFile includes the user's and the system's ssh_config, as plain ssh would read them", () => {
        const config = jumpSshConfig(target({ proxyJump: "bastion" }), "/home/ops");
        expect(config).toContain('Match all\n    Include "/home/ops/.ssh/config"\n    Include "/etc/ssh/ssh_config"\n');
    });

    it("keeps hops strict when the host itself skips host-key checking", () => {
        const { connection, configFile } = connect({ proxyJump: "bastion", insecureSkipHostKeyCheck: true });
        expect(sshOption(connection.clientOptions(), "StrictHostKeyChecking")).toBe("no");
        expect(block(readFileSync(configFile, "utf8"), "bastion")).toContain("StrictHostKeyChecking yes");
    });

    it("writes IPv6 hops bare in Host and in brackets in ProxyJump and -J", () => {
        const { connection, configFile } = connect({ proxyJump: "[2001:db8::1]:2222,[2001:db8::2]" });
        const config = readFileSync(configFile, "utf8");
        expect(block(config, "2001:db8::1")).toContain("Port 2222");
        expect(block(config, "2001:db8::2")).toContain("ProxyJump [2001:db8::1]");
        const options = connection.clientOptions();
        expect(options[options.indexOf("-J") + 1]).toBe("[2001:db8::2]");
    });

    it("refuses paths that would break out of the ssh_config quoting", () => {
        for (const file of ['/tmp/a"b', "/tmp/a\\b", "/tmp/a\nHost *"]) {
            const error = fleetErrorOfSync(() => jumpSshConfig(target({ proxyJump: "bastion", knownHostsFile: file })));
            expect(error.message).toMatch(/cannot be written into an ssh_config/);
        }
    });

    it("writes no ssh_config for a host without jump hosts", () => {
        const { connection, configFile } = connect({});
        expect(() => readFileSync(configFile)).toThrow();
        expect(connection.clientOptions()).not.toContain("-J");
    });

    it.skipIf(!HAS_SSH)("ssh itself reads the hops as strict, even when the included ssh_config relaxes them", () => {
        const dir = runtimeDir();
        const userConfig = join(dir, "user_config");
        writeFileSync(
            userConfig,
            ["Host bastion jump2", "    StrictHostKeyChecking no", "    BatchMode no", "    ConnectTimeout 99", "    UserKnownHostsFile /dev/null", "    HostName 10.9.9.9", ""].join("\n"),
        );
        chmodSync(userConfig, 0o600);
        const { configFile } = connect({ proxyJump: "ops@bastion:2200,jump2", sshConfigFile: userConfig, knownHostsFile: "/srv/fleet/known_hosts", connectTimeout: 7 }, dir);
        for (const hop of ["bastion", "jump2"]) {
            const settings = effective(configFile, hop);
            expect(settings).toMatchObject({ batchmode: "yes", stricthostkeychecking: "true", connecttimeout: "7", userknownhostsfile: "/srv/fleet/known_hosts" });
            // The user's ssh_config still supplies what we do not set.
            expect(settings.hostname).toBe("10.9.9.9");
        }
        expect(effective(configFile, "bastion")).toMatchObject({ user: "ops", port: "2200" });
        expect(effective(configFile, "jump2").proxyjump).toBe("bastion");
    });
});

describe("ssh never reads a terminal", () => {
    it("every ssh process of a connection has -n or a piped input", async () => {
        const { runner, connection } = connect({ proxyJump: "bastion" });
        await connection.open();
        await connection.run(["true"]);
        await connection.run(["true"], { input: "data" });
        await connection.close();
        expect(runner.calls.length).toBe(4);
        for (const call of runner.calls) {
            expect(call.argv.includes("-n") || call.options.input !== undefined, call.argv.join(" ")).toBe(true);
        }
        expect(runner.calls[2]!.argv).not.toContain("-n");
    });
});

describe("a failed master start through jump hosts", () => {
    // With ControlPersist, ssh sends the hops' messages to /dev/null: this is all the master start says.
    const MASTER = "kex_exchange_identification: Connection closed by remote host\r\nConnection closed by UNKNOWN port 65535\r\n";
    const HOP = "No ED25519 host key is known for [bastion.example.org]:2200 and you have requested strict checking.\r\nHost key verification failed.\r\n" + MASTER;

    it("is probed once without a master, so the error names the jump host", async () => {
        const runner = new FakeRunner().on(masterStart, { code: 255, stderr: MASTER }).on(remote("true"), { code: 255, stderr: HOP });
        const connection = new SshConnection(target({ proxyJump: "ops@bastion.example.org:2200" }), { runner: runner.run, runtimeDir: runtimeDir() });
        const error = await fleetErrorOf(connection.open());
        expect(error.message).toBe("the host key of jump host ops@bastion.example.org:2200 is not known, so the connection to root@alpha.example.org was refused");
        const probes = runner.matching(remote("true"));
        expect(probes).toHaveLength(1);
        const argv = probes[0]!.argv;
        // ssh keeps the first ControlPath: none comes before the connection's socket.
        expect(sshOption(argv, "ControlPath")).toBe("none");
        expect(argv).toContain("-n");
        expect(connection.handshakes).toBe(2);
    });

    it("is not probed without jump hosts", async () => {
        const runner = new FakeRunner().on(masterStart, { code: 255, stderr: "ssh: connect to host alpha.example.org port 22: Connection refused\r\n" });
        await fleetErrorOf(new SshConnection(target(), { runner: runner.run, runtimeDir: runtimeDir() }).open());
        expect(runner.calls).toHaveLength(1);
    });
});
