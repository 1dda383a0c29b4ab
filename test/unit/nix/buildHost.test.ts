// A build host (buildHost): the derivation evaluated here goes to the build host, is built there,
// and the closure goes from there to the target through this machine; nothing is built or stored
// here. The phases' exact commands, with a faked process runner, and their failures.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { deployHost, type DeployRequest } from "../../../src/deploy/deployHost";
import { formatFleetError } from "../../../src/errors";
import type { ClosurePath } from "../../../src/nix/closure";
import { SshConnection } from "../../../src/ssh/connection";
import { FakeHost, attachLocalNix } from "../helpers/fakeHost";
import { FakeRunner, local, remote, sshOption, type RecordedCall } from "../helpers/fakeRunner";
import { drvPath, fleetErrorOf, runtimeDir, storePath, target } from "../helpers/fixtures";

const v1 = storePath("nixos-system-alpha-1");
const v2 = storePath("nixos-system-alpha-2");
const next = storePath("nixos-system-alpha-3");
const lib = storePath("libfoo-1.0");
const nextDrv = drvPath("nixos-system-alpha-3");
const HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBuildHostKeyBuildHostKeyBuildHostKey0";

const builder = target({ name: "bb", address: "10.0.0.9", port: 2209, hostKey: HOST_KEY });

/** Commands that ride the build host's master (its own directory in the runtime directory). */
const onBuildHost = (call: RecordedCall): boolean => /\/b\d+\/bb\.sock$/.test(sshOption(call.argv, "ControlPath") ?? "");
const buildHostCall = (...prefix: string[]) => (call: RecordedCall) => onBuildHost(call) && remote(...prefix)(call);

function request(overrides: Partial<DeployRequest> = {}): DeployRequest {
    return {
        target: target(),
        storePath: next,
        drvPath: nextDrv,
        flake: "/srv/infra",
        attribute: "nixosConfigurations.alpha",
        buildOn: "local",
        buildHost: builder,
        action: "switch",
        substituteOnDestination: false,
        ...overrides,
    };
}

function setup() {
    const host = FakeHost.withGenerations(v1, v2);
    const runner = new FakeRunner();
    host.attach(runner);
    // Nothing of the new system is in this machine's store.
    attachLocalNix(runner, host, new Map());
    const closure: ClosurePath[] = [{ path: next, narSize: 4_000 }, { path: lib, narSize: 60_000 }, { path: v2, narSize: 5_000 }];
    runner.on(local("copy", "--no-check-sigs", "--derivation", "--to"), {});
    runner.on(buildHostCall("nix-store", "--realise"), { stdout: `${next}\n`, stderr: "building '…'\n" });
    runner.on(buildHostCall("nix"), (call) =>
        call.remoteCommand!.includes("path-info") ? { stdout: JSON.stringify(closure.map((entry) => ({ ...entry, references: [] }))) } : { code: 1, stderr: "unexpected" },
    );
    runner.on(local("copy", "--no-check-sigs", "--from"), () => {
        for (const entry of closure) host.state.store.add(entry.path);
        return {};
    });
    const log: string[] = [];
    const context = { runner: runner.run, runtimeDir: runtimeDir(), log: (line: string) => log.push(line), sleep: async () => undefined };
    return { host, runner, log, context };
}

describe("deploy with a build host", () => {
    it("sends the derivation to the build host, builds it there, copies from there to the target, and activates", async () => {
        const { host, runner, context } = setup();
        const outcome = await deployHost(request(), context);

        expect(outcome.builtOn).toBe("bb");
        expect(host.state.current).toBe(next);
        // Nothing built or queried in this machine's store.
        expect(runner.matching(local("nix-store", "--realise"))).toHaveLength(0);
        expect(runner.localCalls().filter((call) => call.argv.includes("path-info"))).toHaveLength(0);

        const send = runner.matching(local("--derivation"));
        expect(send).toHaveLength(1);
        expect(send[0]!.argv.slice(3)).toEqual(["copy", "--no-check-sigs", "--derivation", "--to", "ssh-ng://root@10.0.0.9", nextDrv]);
        // Nix's ssh rides on the build host's master, with its port and its pinned key.
        const sshOpts = send[0]!.options.env!.NIX_SSHOPTS!;
        expect(sshOpts).toMatch(/-p 2209 /);
        expect(sshOpts).toMatch(/ControlPath=\S+\/b\d+\/bb\.sock/);
        expect(sshOpts).toMatch(/HostKeyAlias=nixos-fleet-bb/);
        expect(sshOpts).toMatch(/StrictHostKeyChecking=yes/);

        const build = runner.matching(buildHostCall("nix-store", "--realise"));
        expect(build.map((call) => call.remoteCommand)).toEqual([["nix-store", "--realise", nextDrv]]);

        const copy = runner.matching(local("copy", "--no-check-sigs", "--from"));
        expect(copy).toHaveLength(1);
        expect(copy[0]!.argv.slice(3)).toEqual(["copy", "--no-check-sigs", "--from", "ssh-ng://nixos-fleet-build-host", "--to", "ssh-ng://nixos-fleet-target", next]);
        const config = /^-F (\S+)$/.exec(copy[0]!.options.env!.NIX_SSHOPTS!)?.[1];
        expect(config).toBeDefined();
        const text = readFileSync(config!, "utf8");
        expect(text).toMatch(/Host nixos-fleet-build-host\n\s+HostName "10\.0\.0\.9"\n\s+User "root"\n\s+Port 2209\n\s+ControlPath "\S+\/b\d+\/bb\.sock"/);
        expect(text).toMatch(/HostKeyAlias nixos-fleet-bb/);
        expect(text).toMatch(/Host nixos-fleet-target\n\s+HostName "alpha\.example\.org"/);
        expect(text).toMatch(/ControlPath "\S+\/alpha\.sock"/);
        expect(text).not.toMatch(/StrictHostKeyChecking no/);

        // The phases stay apart: build on the build host, then connect to the target, then copy.
        const order = runner.calls.map((call) => (call.argv.includes("--derivation") ? "send" : call.remoteCommand?.[1] === "--realise" ? "build" : call.argv.includes("--from") ? "copy" : call.remoteCommand?.[0]?.endsWith("switch-to-configuration") ? "activate" : "")).filter(Boolean);
        expect(order.slice(0, 3)).toEqual(["send", "build", "copy"]);
        // Only the paths the target lacks were counted (v2 it has).
        expect(outcome.copy).toMatchObject({ pathsCopied: 2, bytesCopied: 64_000, closurePaths: 3 });
        // Both masters stopped.
        expect(runner.calls.filter((call) => call.isMasterExit).length).toBeGreaterThanOrEqual(2);
    });

    it("an unreachable build host fails the build phase, names the build host, and leaves the target untouched", async () => {
        const { runner, context } = setup();
        runner.on((call) => call.isMasterStart && onBuildHost(call), { code: 255, stderr: "ssh: connect to host 10.0.0.9 port 2209: Connection refused\r\n" });
        const error = await fleetErrorOf(deployHost(request(), context));
        expect(error.phase).toBe("build");
        expect(error.host).toBe("alpha");
        expect(error.message).toMatch(/^the build host bb \(root@10\.0\.0\.9:2209\): /);
        expect(error.message).toMatch(/refused/i);
        expect(error.hint).toMatch(/alpha is built on bb \(buildHost\)/);
        expect(error.hint).toMatch(/remove buildHost to build on this machine/);
        expect(formatFleetError(error)).toMatch(/^host alpha: build failed: the build host bb/);
        // Nothing ran on the target: its handshake (made while the build was tried) was closed unused.
        const onTarget = runner.calls.filter((call) => !onBuildHost(call) && (call.isMasterStart || call.isMasterExit || call.remoteCommand !== undefined));
        expect(onTarget.map((call) => (call.isMasterStart ? "start" : call.isMasterExit ? "exit" : "command"))).toEqual(["start", "exit"]);
        expect(runner.matching(local("--derivation"))).toHaveLength(0);
    });

    it("a failing build on the build host is the build phase's error with nix's output", async () => {
        const { runner, context, host } = setup();
        runner.on(buildHostCall("nix-store", "--realise"), { code: 1, stderr: "error: builder for '…' failed with exit code 2\n" });
        const error = await fleetErrorOf(deployHost(request(), context));
        expect(error.phase).toBe("build");
        expect(error.message).toBe("building the system on the build host bb failed");
        expect(error.detail).toMatch(/failed with exit code 2/);
        expect(error.hint).toContain(`nix-store --realise ${nextDrv}`);
        expect(host.state.current).toBe(v2);
        expect(runner.matching(local("copy", "--no-check-sigs", "--from"))).toHaveLength(0);
    });

    it("a derivation that cannot be sent is the build phase's error naming the build host", async () => {
        const { runner, context } = setup();
        runner.on(local("copy", "--no-check-sigs", "--derivation", "--to"), { code: 1, stderr: "error: cannot add path: Permission denied\n" });
        const error = await fleetErrorOf(deployHost(request(), context));
        expect(error.phase).toBe("build");
        expect(error.message).toBe(`sending the derivation ${nextDrv} to the build host bb failed`);
        expect(error.hint).toMatch(/trusted Nix user/);
    });

    it("a derivation send and a copy from the build host that collided with another writer into that store are tried again (the build host deploys itself meanwhile)", async () => {
        const { host, runner, context, log } = setup();
        const lostPlace = { code: 1, stderr: "error: not an absolute path: 'nix-archive-1'\n" };
        runner.once(local("copy", "--no-check-sigs", "--derivation", "--to"), lostPlace);
        runner.once(local("copy", "--no-check-sigs", "--from"), lostPlace);
        await deployHost(request(), context);
        expect(runner.matching(local("copy", "--no-check-sigs", "--derivation", "--to"))).toHaveLength(2);
        expect(runner.matching(local("copy", "--no-check-sigs", "--from"))).toHaveLength(2);
        expect(log.filter((line) => line.startsWith("nix copy collided"))).toHaveLength(2);
        expect(host.state.current).toBe(next);
    });

    it("a build giving another path than the evaluation here is refused before anything is copied", async () => {
        const { runner, context } = setup();
        runner.on(buildHostCall("nix-store", "--realise"), { stdout: `${storePath("something-else")}\n` });
        const error = await fleetErrorOf(deployHost(request(), context));
        expect(error.phase).toBe("build");
        expect(error.message).toMatch(/built \/nix\/store\/\S+-something-else, but the evaluation here gave/);
        expect(runner.matching(local("copy", "--no-check-sigs", "--from"))).toHaveLength(0);
    });

    it("a failed copy from the build host is the copy phase's error naming both hosts", async () => {
        const { runner, context } = setup();
        runner.on(local("copy", "--no-check-sigs", "--from"), { code: 1, stderr: "error: unexpected end-of-file\n" });
        const error = await fleetErrorOf(deployHost(request(), context));
        expect(error.phase).toBe("copy");
        expect(error.host).toBe("alpha");
        expect(error.message).toBe(`nix copy of ${next} from the build host bb failed`);
        expect(error.hint).toMatch(/both bb and alpha/);
    });

    it("substituteOnDestination: the target may fetch from its own caches during the copy from the build host", async () => {
        const { runner, context } = setup();
        await deployHost(request({ substituteOnDestination: true }), context);
        const copy = runner.matching(local("copy", "--no-check-sigs", "--from"));
        expect(copy[0]!.argv.slice(-2)).toEqual(["--substitute-on-destination", next]);
    });

    it("a rollback to a system the target no longer has copies it again from the build host; nothing is built", async () => {
        const { host, runner, context } = setup();
        const outcome = await deployHost(request({ drvPath: undefined }), context);
        expect(outcome.builtOn).toBeNull();
        expect(host.state.current).toBe(next);
        expect(runner.matching(local("--derivation"))).toHaveLength(0);
        expect(runner.matching(buildHostCall("nix-store", "--realise"))).toHaveLength(0);
        expect(runner.matching(local("copy", "--no-check-sigs", "--from"))).toHaveLength(1);
        expect(runner.localCalls().filter((call) => call.argv.includes("path-info"))).toHaveLength(0);
    });

    it("without a build host, the system is built here as before", async () => {
        const { runner, context } = setup();
        const outcome = await deployHost(request({ buildHost: undefined }), context).catch((error) => error);
        // The local build ran (the fake's local store lacks the closure, so the copy fails: that is fine here).
        expect(runner.matching(local("nix-store", "--realise"))).toHaveLength(1);
        expect(runner.matching(local("--derivation"))).toHaveLength(0);
        expect(outcome).toBeDefined();
    });
});

describe("storeAliasBlock", () => {
    it("names the host by alias on its master, with its port, key and strict host-key check", () => {
        const connection = new SshConnection(target({ name: "bb", address: "10.0.0.9", port: 2209, identityFile: "/keys/id", knownHostsFile: "/keys/known" }), {
            runner: new FakeRunner().run,
            runtimeDir: runtimeDir(),
        });
        const block = connection.storeAliasBlock("x");
        expect(block.split("\n")).toEqual([
            "Host x",
            '    HostName "10.0.0.9"',
            '    User "root"',
            "    Port 2209",
            `    ControlPath "${connection.controlPath}"`,
            "    ControlMaster no",
            "    BatchMode yes",
            "    ConnectTimeout 10",
            '    IdentityFile "/keys/id"',
            "    IdentitiesOnly yes",
            "    StrictHostKeyChecking yes",
            '    UserKnownHostsFile "/keys/known"',
            "",
        ]);
    });

    it("refuses a value that could break out of the ssh_config", () => {
        const connection = new SshConnection(target({ name: "bb", identityFile: "/keys/my\"key" }), { runner: new FakeRunner().run, runtimeDir: runtimeDir() });
        expect(() => connection.storeAliasBlock("x")).toThrow(/cannot be written into an ssh_config/);
    });
});
