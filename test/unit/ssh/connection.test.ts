import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { SshConnection, targetSshOptions } from "../../../src/ssh/connection";
import { FakeRunner, masterCheck, masterExit, masterStart, remote, sshOption } from "../helpers/fakeRunner";
import { fleetErrorOf, fleetErrorOfSync, runtimeDir, target } from "../helpers/fixtures";

/** The values of every `-o Key=…` for `key`, in order. */
function allOptionValues(options: readonly string[], key: string): string[] {
    return options.flatMap((option, i) => (options[i - 1] === "-o" && option.startsWith(`${key}=`) ? [option.slice(key.length + 1)] : []));
}

describe("targetSshOptions", () => {
    it("passes -p only when a port is set (so an ssh_config Port still applies)", () => {
        expect(targetSshOptions(target())).not.toContain("-p");
        const options = targetSshOptions(target({ port: 2201 }));
        expect(options[options.indexOf("-p") + 1]).toBe("2201");
    });

    it("passes -F for an ssh config file", () => {
        const options = targetSshOptions(target({ sshConfigFile: "/etc/fleet/ssh_config" }));
        expect(options.slice(options.indexOf("-F"), options.indexOf("-F") + 2)).toEqual(["-F", "/etc/fleet/ssh_config"]);
        expect(options).not.toContain("-J");
    });

    it("never passes a bare -J: jump hosts need the generated ssh_config", () => {
        expect(() => targetSshOptions(target({ proxyJump: "bastion.example.org" }))).toThrow(/no generated ssh_config/);
        const options = targetSshOptions(target({ proxyJump: "ops@bastion.example.org:2200", sshConfigFile: "/etc/fleet/ssh_config" }), undefined, "/run/nf/alpha.ssh_config");
        expect(options.filter((option) => option === "-F")).toHaveLength(1);
        expect(options.slice(options.indexOf("-F"), options.indexOf("-F") + 2)).toEqual(["-F", "/run/nf/alpha.ssh_config"]);
        expect(options.slice(options.indexOf("-J"), options.indexOf("-J") + 2)).toEqual(["-J", "bastion.example.org"]);
    });

    it("leaves -F, -J and -i out when not set", () => {
        const options = targetSshOptions(target());
        expect(options).not.toContain("-F");
        expect(options).not.toContain("-J");
        expect(options).not.toContain("-i");
        expect(sshOption(options, "IdentitiesOnly")).toBeUndefined();
    });

    it("uses an identity file with IdentitiesOnly=yes (the agent's other keys are not offered)", () => {
        const options = targetSshOptions(target({ identityFile: "/home/ops/.ssh/fleet" }));
        expect(options.slice(options.indexOf("-i"), options.indexOf("-i") + 2)).toEqual(["-i", "/home/ops/.ssh/fleet"]);
        expect(sshOption(options, "IdentitiesOnly")).toBe("yes");
    });

    it("runs in batch mode with strict host-key checking by default", () => {
        const options = targetSshOptions(target());
        expect(sshOption(options, "BatchMode")).toBe("yes");
        expect(sshOption(options, "StrictHostKeyChecking")).toBe("yes");
        expect(sshOption(options, "UserKnownHostsFile")).toBeUndefined();
        expect(sshOption(options, "HostKeyAlias")).toBeUndefined();
    });

    it("uses connectTimeout, 10 seconds by default", () => {
        expect(sshOption(targetSshOptions(target()), "ConnectTimeout")).toBe("10");
        expect(sshOption(targetSshOptions(target({ connectTimeout: 3 })), "ConnectTimeout")).toBe("3");
    });

    it("checks a pinned key against its own known_hosts file under the host's alias", () => {
        const options = targetSshOptions(target({ hostKey: "ssh-ed25519 AAAA", knownHostsFile: "/other" }), "/run/nf/alpha.known_hosts");
        expect(sshOption(options, "StrictHostKeyChecking")).toBe("yes");
        expect(allOptionValues(options, "UserKnownHostsFile")).toEqual(["/run/nf/alpha.known_hosts"]);
        expect(sshOption(options, "HostKeyAlias")).toBe("nixos-fleet-alpha");
    });

    it("uses the host's knownHostsFile when no key is pinned", () => {
        const options = targetSshOptions(target({ knownHostsFile: "/etc/fleet/known_hosts" }));
        expect(sshOption(options, "UserKnownHostsFile")).toBe("/etc/fleet/known_hosts");
        expect(sshOption(options, "HostKeyAlias")).toBeUndefined();
    });

    it("turns host-key checking off only for insecureSkipHostKeyCheck", () => {
        const options = targetSshOptions(target({ insecureSkipHostKeyCheck: true }), "/ignored");
        expect(allOptionValues(options, "StrictHostKeyChecking")).toEqual(["no"]);
        expect(allOptionValues(options, "UserKnownHostsFile")).toEqual(["/dev/null"]);
        expect(sshOption(options, "HostKeyAlias")).toBeUndefined();
    });

    it("appends extra sshOptions as -o Key=Value", () => {
        const options = targetSshOptions(target({ sshOptions: ["Compression=yes", "IPQoS=throughput"] }));
        expect(sshOption(options, "Compression")).toBe("yes");
        expect(sshOption(options, "IPQoS")).toBe("throughput");
    });

    // OpenSSH keeps the FIRST value it obtains for an option, also for repeated -o on the command
    // line (`ssh -G -o ServerAliveInterval=5 -o ServerAliveInterval=15 h` reports 5): the host's
    // sshOptions must come before the built-in defaults, or the documented example
    // `sshOptions: [ServerAliveInterval=15]` (docs/host-config.md) would be silently ignored.
    it("a host's sshOptions win over the built-in defaults of the same key (ssh takes the first value)", () => {
        const options = targetSshOptions(target({ sshOptions: ["ServerAliveInterval=15", "ServerAliveCountMax=10"] }));
        expect(sshOption(options, "ServerAliveInterval")).toBe("15");
        expect(sshOption(options, "ServerAliveCountMax")).toBe("10");
    });
});

describe("SshConnection", { timeout: 1000 }, () => {
    const connect = (runner: FakeRunner, overrides: Parameters<typeof target>[0] = {}, dir = runtimeDir()) =>
        new SshConnection(target(overrides), { runner: runner.run, runtimeDir: dir, persistSeconds: 30 });

    it("open starts one master with ControlMaster=yes, ControlPersist and the control socket", async () => {
        const runner = new FakeRunner();
        const dir = runtimeDir();
        const connection = connect(runner, {}, dir);
        await connection.open();
        await connection.open();
        expect(runner.calls).toHaveLength(1);
        const argv = runner.calls[0]!.argv;
        expect(argv[0]).toBe("ssh");
        expect(sshOption(argv, "ControlMaster")).toBe("yes");
        expect(sshOption(argv, "ControlPersist")).toBe("30");
        expect(sshOption(argv, "ControlPath")).toBe(join(dir, "alpha.sock"));
        expect(argv.slice(-3)).toEqual(["-N", "-f", "root@alpha.example.org"]);
        expect(connection.handshakes).toBe(1);
    });

    it("concurrent opens share one master start; close waits for a start in flight and stops it", async () => {
        const runner = new FakeRunner();
        let finish!: () => void;
        runner.on(masterStart, () => new Promise((resolve) => (finish = () => resolve({ code: 0, stdout: "", stderr: "" }))));
        const connection = connect(runner);
        const first = connection.open();
        const second = connection.open();
        const closed = connection.close();
        await new Promise((resolve) => setTimeout(resolve, 10));
        expect(runner.matching(masterExit)).toHaveLength(0);
        finish();
        await Promise.all([first, second, closed]);
        expect(runner.matching(masterStart)).toHaveLength(1);
        expect(connection.handshakes).toBe(1);
        expect(runner.matching(masterExit)).toHaveLength(1);
    });

    it("close stops a start in flight that does not get through (a host that does not answer), asks a master it may have forked to exit, and the open fails in the connect phase", async () => {
        const runner = new FakeRunner();
        runner.on(masterStart, (call) => new Promise((resolve) => call.options.signal?.addEventListener("abort", () => resolve({ code: null, signal: "SIGKILL" }))));
        const connection = connect(runner);
        const opening = connection.open();
        await connection.close();
        await expect(opening).rejects.toMatchObject({ phase: "connect", message: "the connection was closed while it was being opened" });
        expect(runner.matching(masterStart)[0]!.options.signal?.aborted).toBe(true);
        expect(runner.matching(masterExit)).toHaveLength(1);
        // Closed: a second close has nothing to stop.
        await connection.close();
        expect(runner.matching(masterExit)).toHaveLength(1);
    });

    it("a failed start is not remembered: the next open tries again", async () => {
        const runner = new FakeRunner();
        runner.on(masterStart, { code: 255, stderr: "ssh: connect to host alpha.example.org port 22: Connection refused\r\n" });
        const connection = connect(runner);
        await expect(connection.open()).rejects.toMatchObject({ phase: "connect" });
        runner.on(masterStart, {});
        await connection.open();
        expect(runner.matching(masterStart)).toHaveLength(2);
        await connection.close();
        expect(runner.matching(masterExit)).toHaveLength(1);
    });

    it("bounds the master start by connectTimeout plus 5 seconds", async () => {
        const runner = new FakeRunner();
        await connect(runner, { connectTimeout: 7 }).open();
        expect(runner.calls[0]!.options.timeoutMs).toBe(12_000);
    });

    it("run rides the master (ControlMaster=no, same ControlPath) and does not handshake again", async () => {
        const runner = new FakeRunner().on(remote("uname"), { stdout: "Linux\n" });
        const connection = connect(runner);
        const first = await connection.run(["uname", "-a"]);
        await connection.run(["uname", "-r"]);
        expect(first.stdout).toBe("Linux\n");
        expect(connection.handshakes).toBe(1);
        expect(runner.matching(masterStart)).toHaveLength(1);
        const runs = runner.matching(remote("uname"));
        expect(runs).toHaveLength(2);
        for (const call of runs) {
            expect(sshOption(call.argv, "ControlMaster")).toBe("no");
            expect(sshOption(call.argv, "ControlPath")).toBe(connection.controlPath);
            expect(call.argv[call.argv.length - 2]).toBe("root@alpha.example.org");
        }
    });

    it("sends the remote command as one single-quoted string", async () => {
        const runner = new FakeRunner().on(remote("echo"), {});
        await connect(runner).run(["echo", "a b", "; rm -rf /", "$HOME"]);
        const call = runner.matching(remote("echo"))[0]!;
        expect(call.remote).toBe("echo 'a b' '; rm -rf /' '$HOME'");
        expect(call.remoteArgv).toEqual(["echo", "a b", "; rm -rf /", "$HOME"]);
    });

    it("prefixes sudo -n -- for asRoot when the login user is not root", async () => {
        const runner = new FakeRunner().on(remote("nix-env"), {});
        await connect(runner, { user: "deploy" }).run(["nix-env", "--version"], { asRoot: true });
        expect(runner.matching(remote("nix-env"))[0]!.remoteArgv).toEqual(["sudo", "-n", "--", "nix-env", "--version"]);
    });

    it("does not use sudo for root, nor for commands that need no root", async () => {
        const runner = new FakeRunner().on(remote("nix-env"), {});
        await connect(runner, { user: "root" }).run(["nix-env", "--version"], { asRoot: true });
        await connect(runner, { user: "deploy" }).run(["nix-env", "--version"]);
        const calls = runner.matching(remote("nix-env"));
        expect(calls.map((call) => call.remoteArgv)).toEqual([["nix-env", "--version"], ["nix-env", "--version"]]);
    });

    it("passes input, timeout and output callbacks through to the runner", async () => {
        const runner = new FakeRunner().on(remote("cat"), {});
        const onStdout = () => undefined;
        await connect(runner).run(["cat"], { input: "hello", timeoutMs: 1234, onStdout });
        const options = runner.matching(remote("cat"))[0]!.options;
        expect(options).toMatchObject({ input: "hello", timeoutMs: 1234, onStdout });
    });

    it("returns a non-zero exit of the remote command to the caller", async () => {
        const runner = new FakeRunner().on(remote("false"), { code: 1, stderr: "nope" });
        const result = await connect(runner).run(["false"]);
        expect(result.code).toBe(1);
        expect(result.stderr).toBe("nope");
    });

    it("turns ssh's own failure (exit 255 with a connection message) into a connect FleetError", async () => {
        const runner = new FakeRunner().on(remote("true"), { code: 255, stderr: "Connection closed by 10.0.0.1 port 22\r\n" });
        const error = await fleetErrorOf(connect(runner).run(["true"]));
        expect(error.phase).toBe("connect");
        expect(error.host).toBe("alpha");
        expect(error.detail).toContain("Connection closed");
    });

    it("an ssh message with exit 255 is a lost connection without asking the master", async () => {
        const runner = new FakeRunner().on(remote("true"), { code: 255, stderr: "Connection closed by 127.0.0.1 port 22\r\n" });
        await fleetErrorOf(connect(runner).run(["true"]));
        expect(runner.matching(masterCheck)).toHaveLength(0);
    });

    it("keeps exit 255 of the remote command itself (no ssh message, the master still runs) as a result", async () => {
        const runner = new FakeRunner().on(remote("exit-255"), { code: 255, stderr: "my tool failed\n" });
        const connection = connect(runner);
        const result = await connection.run(["exit-255"]);
        expect(result.code).toBe(255);
        expect(result.stderr).toBe("my tool failed\n");
        // It asked the master over the same control socket.
        const checks = runner.matching(masterCheck);
        expect(checks).toHaveLength(1);
        expect(sshOption(checks[0]!.argv, "ControlPath")).toBe(connection.controlPath);
        expect(checks[0]!.argv.slice(-3)).toEqual(["-O", "check", "root@alpha.example.org"]);
        // The master is still in use: the next command rides it.
        await connection.run(["exit-255"]);
        expect(runner.matching(masterStart)).toHaveLength(1);
    });

    it("a silent exit 255 whose master is gone (ssh -O check fails) is a lost connection; the next command starts a new master", async () => {
        const runner = new FakeRunner()
            .once(remote("follow"), { code: 255 })
            .on(remote("follow"), { stdout: "ok\n" })
            .on(masterCheck, { code: 255, stderr: "Control socket connect(/run/nf/alpha.sock): No such file or directory\r\n" });
        const connection = connect(runner);
        const error = await fleetErrorOf(connection.run(["follow"]));
        expect(error).toMatchObject({ phase: "connect", host: "alpha", message: "the SSH connection was lost (its master connection ended)" });
        expect(error.hint).toContain("may be back in a moment");
        expect(runner.matching(masterCheck)).toHaveLength(1);
        const again = await connection.run(["follow"]);
        expect(again.stdout).toBe("ok\n");
        expect(runner.matching(masterStart)).toHaveLength(2);
        expect(connection.handshakes).toBe(2);
    });

    it("other exit codes never ask the master", async () => {
        const runner = new FakeRunner().on(remote("false"), { code: 1 });
        await connect(runner).run(["false"]);
        expect(runner.matching(masterCheck)).toHaveLength(0);
    });

    it("a failed master start throws a diagnosed connect FleetError and counts the handshake", async () => {
        const runner = new FakeRunner().on(masterStart, { code: 255, stderr: "ssh: connect to host alpha.example.org port 22: Connection refused\r\n" });
        const connection = connect(runner);
        const error = await fleetErrorOf(connection.open());
        expect(error.phase).toBe("connect");
        expect(error.message).toContain("refused the connection");
        expect(connection.handshakes).toBe(1);
        // Never opened: close has nothing to stop.
        await connection.close();
        expect(runner.matching(masterExit)).toHaveLength(0);
    });

    it("refuses an option with whitespace with a FleetError (NIX_SSHOPTS cannot carry it)", () => {
        const error = fleetErrorOfSync(() => connect(new FakeRunner(), { identityFile: "/home/o ps/key" }));
        expect(error.phase).toBe("connect");
        expect(error.host).toBe("alpha");
        expect(error.message).toContain('"/home/o ps/key"');
    });

    it("refuses a runtime directory with whitespace (it is in ControlPath)", () => {
        const dir = join(runtimeDir(), "with space");
        const error = fleetErrorOfSync(() => connect(new FakeRunner(), {}, dir));
        expect(error.message).toContain("whitespace");
    });

    it("writes a pinned host key under the host's alias into its own known_hosts file", () => {
        const dir = runtimeDir();
        const connection = connect(new FakeRunner(), { hostKey: "  ssh-ed25519 AAAAC3Nzakey \n" }, dir);
        const file = join(dir, "alpha.known_hosts");
        expect(readFileSync(file, "utf8")).toBe("nixos-fleet-alpha ssh-ed25519 AAAAC3Nzakey\n");
        expect(sshOption(connection.clientOptions(), "UserKnownHostsFile")).toBe(file);
        expect(sshOption(connection.clientOptions(), "HostKeyAlias")).toBe("nixos-fleet-alpha");
    });

    it("writes no known_hosts file when host-key checking is skipped", () => {
        const dir = runtimeDir();
        connect(new FakeRunner(), { hostKey: "ssh-ed25519 AAAA", insecureSkipHostKeyCheck: true }, dir);
        expect(existsSync(join(dir, "alpha.known_hosts"))).toBe(false);
    });

    it("NIX_SSHOPTS carries the client options, ControlPath and ControlMaster=no", () => {
        const connection = connect(new FakeRunner(), { port: 2201 });
        const opts = connection.nixSshOpts().split(" ");
        expect(opts).toEqual(connection.clientOptions());
        expect(sshOption(opts, "ControlPath")).toBe(connection.controlPath);
        expect(sshOption(opts, "ControlMaster")).toBe("no");
        expect(opts[opts.indexOf("-p") + 1]).toBe("2201");
    });

    it("storeUri is ssh-ng://user@address", () => {
        expect(connect(new FakeRunner(), { user: "deploy" }).storeUri()).toBe("ssh-ng://deploy@alpha.example.org");
    });

    it("close sends -O exit over the control socket, once", async () => {
        const runner = new FakeRunner();
        const connection = connect(runner);
        await connection.open();
        await connection.close();
        await connection.close();
        const exits = runner.matching(masterExit);
        expect(exits).toHaveLength(1);
        expect(sshOption(exits[0]!.argv, "ControlPath")).toBe(connection.controlPath);
        expect(exits[0]!.argv.slice(-3)).toEqual(["-O", "exit", "root@alpha.example.org"]);
    });
});

describe("SshConnection refuses unsafe ssh options whatever their source", () => {
    it.each(["ProxyCommand=touch${IFS}/tmp/x", "StrictHostKeyChecking=no", "LocalCommand=x", "PermitLocalCommand=yes"])("%s", (option) => {
        const runner = new FakeRunner();
        const error = fleetErrorOfSync(() => new SshConnection(target({ sshOptions: ["Compression=yes", option] }), { runner: runner.run, runtimeDir: runtimeDir() }));
        expect(error).toMatchObject({ phase: "connect", host: "alpha" });
        expect(error.message).toContain(JSON.stringify(option));
        expect(runner.calls).toHaveLength(0);
    });
});
