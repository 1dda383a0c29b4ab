// How hosts are reached and built, and what the operator sees when that goes wrong: remote
// builds, a non-root user with sudo, explicit ports and keys, jump hosts, wrong host keys,
// unreachable hosts, bad host files and flake attributes, and independent stacks.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createServer, type Server } from "node:net";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { runProcess } from "../../src/process/runner";
import { shellQuote } from "../../src/ssh/quote";

import { FleetProject } from "./helpers/fleetProject";

let project: FleetProject;
let silent: Server;
let silentPort = 0;


/** A port nothing listens on (bound, then released). */
async function freePort(): Promise<number> {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const port = (server.address() as { port: number }).port;
    await new Promise<void>((resolve) => server.close(() => resolve()));
    return port;
}

beforeAll(async () => {
    project = await FleetProject.create({
        hosts: ["delta", "epsilon", "zeta", "eta"],
        portBase: 26200,
        config: { hosts: ["delta", "epsilon", "zeta"], hostsDir: "hosts-conn" },
    });
    const sandbox = project.sandbox;
    const flake = `path:${sandbox.flakeDir}`;
    const delta = sandbox.host("delta");
    // delta: explicit address, non-default port, key and known_hosts; a non-root user with sudo.
    project.writeHostIn("hosts-conn", "delta", {
        address: "127.0.0.1",
        port: delta.port,
        user: "deployer",
        identityFile: delta.identityFile,
        knownHostsFile: delta.knownHostsFile,
        flake,
    });
    // epsilon: built on the host itself from the flake sent there.
    project.writeHostIn("hosts-conn", "epsilon", {
        address: "epsilon",
        sshConfigFile: sandbox.layout.sshConfigFile,
        buildOn: "target",
        flake,
    });
    // zeta: reached through delta as a jump host (aliases from the sandbox's ssh_config).
    project.writeHostIn("hosts-conn", "zeta", {
        address: "zeta",
        sshConfigFile: sandbox.layout.sshConfigFile,
        proxyJump: "delta",
        flake,
    });
    // Another stack with another host, for independence.
    project.writeHostIn("hosts-other", "eta", { address: "eta", sshConfigFile: sandbox.layout.sshConfigFile, flake });
    await project.initStack("other", { hosts: ["eta"], hostsDir: "hosts-other" });

    // Hosts that cannot be reached, one stack each.
    silent = createServer((socket) => socket.on("error", () => undefined)); // accepts, never speaks SSH
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
    silentPort = (silent.address() as { port: number }).port;
    const epsilonKey = sandbox.host("epsilon").hostPublicKey;
    project.writeHostIn("hosts-fail", "delta", {
        address: "delta",
        sshConfigFile: sandbox.layout.sshConfigFile,
        hostKey: epsilonKey, // delta's real key differs
        flake,
    });
    project.writeHostIn("hosts-fail", "epsilon", {
        address: "127.0.0.1",
        port: await freePort(),
        identityFile: delta.identityFile,
        knownHostsFile: delta.knownHostsFile,
        flake,
    });
    project.writeHostIn("hosts-fail", "zeta", {
        address: "127.0.0.1",
        port: silentPort,
        identityFile: delta.identityFile,
        knownHostsFile: delta.knownHostsFile,
        connectTimeout: 2,
        flake,
    });
    project.writeHostIn("hosts-fail", "eta", { address: "eta", sshConfigFile: sandbox.layout.sshConfigFile, flake, attribute: "nixosConfigurations.nope" });
    await project.initStack("wrongkey", { hosts: ["delta"], hostsDir: "hosts-fail" });
    await project.initStack("refused", { hosts: ["epsilon"], hostsDir: "hosts-fail" });
    await project.initStack("silent", { hosts: ["zeta"], hostsDir: "hosts-fail" });
    await project.initStack("badattr", { hosts: ["eta"], hostsDir: "hosts-fail" });

    // zeta behind delta as a jump host whose key nobody knows: the known_hosts has zeta's key only.
    const zeta = sandbox.host("zeta");
    const zetaOnly = join(project.dir, "zeta-only-known_hosts");
    writeFileSync(zetaOnly, `[127.0.0.1]:${zeta.port} ${zeta.hostPublicKey}\n`);
    project.writeHostIn("hosts-jump", "zeta", {
        address: "127.0.0.1",
        port: zeta.port,
        identityFile: zeta.identityFile,
        knownHostsFile: zetaOnly,
        proxyJump: `localhost:${delta.port}`,
        connectTimeout: 3,
        flake,
    });
    await project.initStack("jumpunknown", { hosts: ["zeta"], hostsDir: "hosts-jump" });

    project.writeHostIn(
        "hosts-malformed",
        "delta",
        ["address: delta", "port: not-a-port", "flake: path:/tmp/x", "colour: blue", ""].join("\n"),
    );
    await project.initStack("malformed", { hosts: ["delta"], hostsDir: "hosts-malformed" });
});

afterAll(async () => {
    silent?.close();
    await project?.dispose();
});

describe("reaching and building hosts", () => {
    it("deploys a non-root sudo user on an explicit port, a remote build, and a host behind a jump host", async () => {
        const deltaLogBytes = (await project.sandbox.sshdLog("delta")).length;
        const result = await project.up();
        expect(result.code, result.stdout + result.stderr).toBe(0);
        const states = await project.hostStates();
        for (const name of ["delta", "epsilon", "zeta"]) {
            const expected = await project.evaluatedStorePath(name);
            expect(states[name]!.storePath).toBe(expected);
            expect(states[name]!.generation).toBe(1);
            const onHost = await project.hostSystem(name);
            expect(onHost.current).toBe(expected);
            expect(onHost.generation).toBe(1);
        }
        // delta: the login was the deploy user, and activation ran through sudo.
        const deltaLog = (await project.sandbox.sshdLog("delta")).slice(deltaLogBytes);
        expect(deltaLog).toMatch(/Accepted publickey for deployer/);
        // zeta's connection went through delta (the jump host alias logs in as root).
        expect(deltaLog).toMatch(/Accepted publickey for root/);
        // epsilon built its system in its own store: the .drv is there (a local build copies no .drv).
        const drvs = await project.onHost("epsilon", ["sh", "-c", "ls /nix/store | grep -c 'nixos-system-epsilon.*\\.drv$' || true"]);
        expect(Number(drvs)).toBeGreaterThan(0);
    });

    it("two stacks deploy different hosts independently", async () => {
        const before = await project.hostStates();
        const result = await project.up([], "other");
        expect(result.code, result.stdout + result.stderr).toBe(0);
        const other = await project.hostStates("other");
        expect(Object.keys(other)).toEqual(["eta"]);
        expect(other.eta!.generation).toBe(1);
        expect(await project.hostStates()).toEqual(before);
        expect(Object.keys(before).sort()).toEqual(["delta", "epsilon", "zeta"]);
    });

    it("warns at preview when another stack lists the same host", async () => {
        await project.initStack("twin", { hosts: ["eta"], hostsDir: "hosts-other" });
        const result = await project.preview([], "twin");
        expect(result.code, result.stdout + result.stderr).toBe(0);
        expect(result.stdout + result.stderr).toMatch(/eta is also deployed by stack other \(as eta\)/);
        // and the stacks that share nothing are not warned about
        const own = await project.preview();
        expect(own.stdout + own.stderr).not.toMatch(/also deployed by stack/);
    });
});

describe("errors the operator can act on", () => {
    it("refuses a host whose key does not match the pinned one, and changes nothing", async () => {
        const before = await project.hostSystem("delta");
        const result = await project.up([], "wrongkey");
        const output = result.stdout + result.stderr;
        expect(result.code).not.toBe(0);
        expect(output).toMatch(/host delta: connect failed: the host key of root@delta does not match/);
        expect(output).toMatch(/hint: .*verify its new key out of band/);
        expect(await project.hostSystem("delta")).toEqual(before);
        expect(await project.hostStates("wrongkey")).toEqual({});
    });

    it("reports a host that refuses connections", async () => {
        const result = await project.up([], "refused");
        const output = result.stdout + result.stderr;
        expect(result.code).not.toBe(0);
        expect(output).toMatch(/host epsilon: connect failed: .* refused the connection/);
        expect(output).toMatch(/hint: check that the host is up/);
    });

    it("gives up on a host that accepts TCP but never answers, after connectTimeout", async () => {
        const result = await project.up([], "silent");
        const output = result.stdout + result.stderr;
        expect(result.code).not.toBe(0);
        expect(output).toMatch(/host zeta: connect failed: .* did not answer within 2s/);
    });

    it("refuses a jump host with an unknown key under a terminal, within the connect timeout, naming the jump host", async () => {
        const delta = project.sandbox.host("delta");
        const before = await project.hostSystem("zeta");
        // `script` gives pulumi (and so ssh) a terminal: a hop that could prompt would hang here.
        const command = ["pulumi", "up", "--yes", "--skip-preview", "--non-interactive", "-s", "jumpunknown"].map(shellQuote).join(" ");
        const started = Date.now();
        const result = await runProcess(["script", "-qec", command, "/dev/null"], {
            cwd: project.projectDir,
            env: { ...project.env(), PULUMI_CONFIG_PASSPHRASE_FILE: undefined },
            timeoutMs: 90_000,
        });
        // Without the terminal's colours and queries.
        const output = (result.stdout + result.stderr).replace(/\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x1b]*\x1b\\/g, "");
        expect(result.timedOut, output).toBe(false);
        expect(result.code, output).not.toBe(0);
        // pulumi's own start and the program take seconds; the hop itself gets connectTimeout (3 s).
        expect(Date.now() - started).toBeLessThan(45_000);
        expect(output).toMatch(new RegExp(`the host key of jump host localhost:${delta.port} is not known`));
        expect(await project.hostSystem("zeta")).toEqual(before);
    });

    it("stops before anything runs on a malformed host file, naming file, line and field", async () => {
        const logins = await project.acceptedLogins("delta");
        const result = await project.preview([], "malformed");
        const output = result.stdout + result.stderr;
        expect(result.code).not.toBe(0);
        expect(output).toMatch(/hosts-malformed\/delta\.yaml:2/);
        expect(output).toMatch(/port/);
        expect(output).toMatch(/hosts-malformed\/delta\.yaml:4/);
        expect(output).toMatch(/colour/);
        expect(await project.acceptedLogins("delta")).toBe(logins);
        // No stack trace: the compiled program names dist/*.js lines (bin/launch.js), the sources *.ts ones.
        expect(output).not.toMatch(/at .*\.[jt]s:\d+:\d+/);
    });

    it("names the host and shows Nix's message for an unknown flake attribute", async () => {
        const result = await project.preview([], "badattr");
        const output = result.stdout + result.stderr;
        expect(result.code).not.toBe(0);
        expect(output).toMatch(/host eta: evaluate failed: the flake .* has no NixOS configuration for this host/);
        expect(output).toMatch(/nope/);
    });
});
