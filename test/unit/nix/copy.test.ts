import { describe, expect, it } from "vitest";
import { COPY_ATTEMPTS, copyClosure } from "../../../src/nix/copy";
import { SshConnection } from "../../../src/ssh/connection";
import { FakeRunner, local, remote } from "../helpers/fakeRunner";
import { fleetErrorOf, runtimeDir, storePath, target } from "../helpers/fixtures";

const system = storePath("nixos-system-alpha");
const etc = storePath("etc");
const glibc = storePath("glibc-2.39");
const closure = [
    { path: system, narSize: 1_000 },
    { path: etc, narSize: 20_000 },
    { path: glibc, narSize: 300_000 },
];

function setup(missing: string[]) {
    const runner = new FakeRunner()
        .on(local("path-info"), { stdout: JSON.stringify(closure) })
        .on(remote("nix-store", "--check-validity"), { stdout: missing.map((path) => `${path}\n`).join("") })
        .on(local("copy"), {});
    const connection = new SshConnection(target({ port: 2201 }), { runner: runner.run, runtimeDir: runtimeDir() });
    return { runner, connection };
}

describe("copyClosure", () => {
    it("counts the paths and bytes the host lacks, and the whole closure", async () => {
        const { runner, connection } = setup([etc, glibc]);
        const progress: string[] = [];
        const result = await copyClosure(connection, system, { runner: runner.run, onProgress: (line) => progress.push(line) });
        expect(result).toEqual({ pathsCopied: 2, bytesCopied: 320_000, closurePaths: 3, closureBytes: 321_000 });
        expect(progress).toEqual(["copying 2 paths (320000 bytes) to alpha"]);
    });

    it("copies through nix copy to the ssh-ng store over the master (NIX_SSHOPTS)", async () => {
        const { runner, connection } = setup([glibc]);
        await copyClosure(connection, system, { runner: runner.run });
        const copies = runner.matching(local("copy"));
        expect(copies).toHaveLength(1);
        expect(copies[0]!.argv).toEqual([
            "nix", "--extra-experimental-features", "nix-command flakes",
            "copy", "--no-check-sigs", "--to", "ssh-ng://root@alpha.example.org", system,
        ]);
        const sshOpts = copies[0]!.options.env?.NIX_SSHOPTS ?? "";
        expect(sshOpts).toContain(`ControlPath=${connection.controlPath}`);
        expect(sshOpts).toContain("ControlMaster=no");
        expect(sshOpts).toContain("-p 2201");
    });

    it("passes --substitute-on-destination when asked", async () => {
        const { runner, connection } = setup([glibc]);
        await copyClosure(connection, system, { runner: runner.run, substituteOnDestination: true });
        const argv = runner.matching(local("copy"))[0]!.argv;
        expect(argv).toContain("--substitute-on-destination");
        expect(argv[argv.length - 1]).toBe(system);
    });

    it("copies nothing (and says nothing) when the host has every path", async () => {
        const { runner, connection } = setup([]);
        const progress: string[] = [];
        const result = await copyClosure(connection, system, { runner: runner.run, onProgress: (line) => progress.push(line) });
        expect(result).toEqual({ pathsCopied: 0, bytesCopied: 0, closurePaths: 3, closureBytes: 321_000 });
        expect(runner.matching(local("copy"))).toHaveLength(0);
        expect(progress).toEqual([]);
    });

    it("a non-root user rejected by the daemon gets the trusted-users hint", async () => {
        const { runner, connection } = setup([glibc]);
        runner.on(local("copy"), { code: 1, stderr: "error: cannot add path because it lacks a signature by a trusted key\n" });
        const error = await fleetErrorOf(copyClosure(connection, system, { runner: runner.run }));
        expect(error.phase).toBe("copy");
        expect(error.host).toBe("alpha");
        expect(error.message).toBe(`nix copy of ${system} failed`);
        expect(error.hint).toContain("trusted-users");
        expect(error.detail).toContain("trusted key");
    });

    it("another copy failure gets the disk-space hint", async () => {
        const { runner, connection } = setup([glibc]);
        runner.on(local("copy"), { code: 1, stderr: "error: writing to file: No space left on device\n" });
        const error = await fleetErrorOf(copyClosure(connection, system, { runner: runner.run }));
        expect(error.hint).toContain("free disk space");
        expect(error.hint).not.toContain("trusted-users");
    });

    // Nix 2.8's daemon, sent a path that another writer (a build on a build host, another copy)
    // made valid meanwhile, skips its NAR and reads it as the next path's name (e2e buildHost: bld
    // copied its own system while building tgt's, the same base paths).
    const LOST_PLACE = "copying path '/nix/store/mfmlbl8i3aflfnjkqi3lyz8d4ixlbcfl-sandbox-base-1' to 'ssh-ng://root@bld'...\nerror: not an absolute path: 'nix-archive-1'\n";

    it("a copy that collided with another writer into the host's store is tried again, and says so", async () => {
        const { runner, connection } = setup([glibc]);
        runner.once(local("copy"), { code: 1, stderr: LOST_PLACE });
        const progress: string[] = [];
        const result = await copyClosure(connection, system, { runner: runner.run, onProgress: (line) => progress.push(line) });
        expect(result.pathsCopied).toBe(1);
        expect(runner.matching(local("copy"))).toHaveLength(2);
        expect(progress[1]).toBe("nix copy collided with another process adding the same paths to that store (Nix: not an absolute path: 'nix-archive-1'); trying again (2 of 3)");
    });

    it("the other way another writer shows: the host's daemon gives up on its busy database (e2e buildHost: bld received its own system while sent tgt's derivation); tried again too", async () => {
        const { runner, connection } = setup([glibc]);
        runner.once(local("copy"), { code: 1, stderr: "error: SQLite database '/nix/var/nix/db/db.sqlite' is busy\nerror: cannot open connection to remote store 'ssh-ng://root@bld': error: unexpected end-of-file\n" });
        const progress: string[] = [];
        const result = await copyClosure(connection, system, { runner: runner.run, onProgress: (line) => progress.push(line) });
        expect(result.pathsCopied).toBe(1);
        expect(runner.matching(local("copy"))).toHaveLength(2);
        expect(progress[1]).toBe("nix copy collided with another process adding the same paths to that store (Nix: SQLite database '/nix/var/nix/db/db.sqlite' is busy); trying again (2 of 3)");
    });

    it("gives up after COPY_ATTEMPTS collisions, and any other failure is not tried again", async () => {
        const { runner, connection } = setup([glibc]);
        runner.on(local("copy"), { code: 1, stderr: LOST_PLACE });
        const error = await fleetErrorOf(copyClosure(connection, system, { runner: runner.run }));
        expect(error.phase).toBe("copy");
        expect(error.detail).toContain("nix-archive-1");
        expect(runner.matching(local("copy"))).toHaveLength(COPY_ATTEMPTS);
        const other = setup([glibc]);
        other.runner.on(local("copy"), { code: 1, stderr: "error: writing to file: No space left on device\n" });
        await fleetErrorOf(copyClosure(other.connection, system, { runner: other.runner.run }));
        expect(other.runner.matching(local("copy"))).toHaveLength(1);
    });
});
