// Generation cleanup against a real sandbox host: generations made with the host's nixos-rebuild
// stand-in (switch, boot) and a reboot, ages faked with `touch -h`, then cleanupGenerations over a
// real SshConnection deletes exactly the right generations and nix-store --gc removes their systems.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cleanupGenerations } from "../../src/deploy/cleanup";
import { runProcess } from "../../src/process/runner";
import { SshConnection } from "../../src/ssh/connection";
import { SandboxFleet } from "../../sandbox/fleet";

const HOST = "kappa";
const PROFILE = "/nix/var/nix/profiles/system";
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "cleanup-e2e-"));
const runtimeDir = fs.mkdtempSync(path.join(os.tmpdir(), "nf-cl-"));
const fleet = new SandboxFleet({ dir, portBase: 10200 });
let connection: SshConnection;
/** generation number → its system's store path */
const systems: Record<number, string> = {};

async function onHost(argv: string[]): Promise<string> {
    const result = await fleet.exec(HOST, argv, { timeoutMs: 120_000 });
    if (result.code !== 0) throw new Error(`${HOST}: ${argv.join(" ")} exited ${result.code}: ${result.stderr}`);
    return result.stdout.trim();
}

/** A new system version activated with the host's nixos-rebuild: one more generation. */
async function rebuild(action: "switch" | "boot", version: number): Promise<number> {
    await fleet.set(HOST, { version });
    await onHost(["nixos-rebuild", action, "--flake", `${fleet.flakeRef}#${HOST}`]);
    const generation = Number(/system-(\d+)-link$/.exec(await onHost(["readlink", PROFILE]))![1]);
    systems[generation] = await onHost(["readlink", "-f", `${PROFILE}-${generation}-link`]);
    return generation;
}

async function listedGenerations(): Promise<number[]> {
    const listing = await onHost(["nix-env", "-p", PROFILE, "--list-generations"]);
    return listing.split("\n").filter((line) => line.trim()).map((line) => Number(line.trim().split(/\s+/)[0]));
}

async function inStore(storePath: string): Promise<boolean> {
    const result = await fleet.exec(HOST, ["nix-store", "--check-validity", storePath]);
    const exists = await fleet.exec(HOST, ["test", "-e", storePath]);
    expect(result.code === 0, `validity and presence of ${storePath} disagree`).toBe(exists.code === 0);
    return result.code === 0;
}

const makeOld = (generation: number) => onHost(["touch", "-h", "-d", "40 days ago", `${PROFILE}-${generation}-link`]);

beforeAll(async () => {
    await fleet.start([HOST]);
    expect(await rebuild("switch", 1)).toBe(1);
    await fleet.reboot(HOST); // generation 1 is now /run/booted-system
    expect(await rebuild("switch", 2)).toBe(2); // generation 2 runs
    for (const version of [3, 4, 5]) await rebuild("boot", version); // 3..5: boot only, 2 keeps running
    expect(await onHost(["readlink", "-f", "/run/booted-system"])).toBe(systems[1]);
    expect(await onHost(["readlink", "-f", "/run/current-system"])).toBe(systems[2]);
    expect(await onHost(["readlink", PROFILE])).toBe("system-5-link");
    expect(new Set(Object.values(systems)).size).toBe(5);
    connection = new SshConnection(
        { name: HOST, address: HOST, user: "root", sshConfigFile: fleet.layout.sshConfigFile },
        { runner: runProcess, runtimeDir },
    );
}, 600_000);

afterAll(async () => {
    await connection?.close();
    await fleet.destroy();
    fs.rmSync(dir, { recursive: true, force: true });
    fs.rmSync(runtimeDir, { recursive: true, force: true });
});

describe("cleanupGenerations on a sandbox host", () => {
    it("keep 2 of 5: deletes exactly the older unprotected ones, keeps the booted and the running system", async () => {
        const lines: string[] = [];
        const result = await cleanupGenerations(connection, { keepGenerations: 2, gc: false }, { storePaths: [systems[4]!] }, { log: (line) => lines.push(line) });
        expect(result).toEqual({
            deleted: [3],
            kept: [1, 2, 4, 5],
            protectedGenerations: [
                { generation: 1, why: "booted system (/run/booted-system)" },
                { generation: 2, why: "running system (/run/current-system)" },
            ],
        });
        expect(await listedGenerations()).toEqual([1, 2, 4, 5]);
        expect((await fleet.exec(HOST, ["test", "-L", `${PROFILE}-3-link`])).code).not.toBe(0);
        expect(await onHost(["readlink", PROFILE])).toBe("system-5-link");
        expect(await onHost(["readlink", "-f", "/run/current-system"])).toBe(systems[2]);
        // No gc asked for: generation 3's system is unreferenced but still in the store.
        expect(await inStore(systems[3]!)).toBe(true);
        expect(lines[0]).toMatch(/^cleanup: deleting generations 3; protected: 1 \(booted/);

        // Again: nothing left to delete, nothing run as root.
        const again = await cleanupGenerations(connection, { keepGenerations: 2, gc: false }, {});
        expect(again.deleted).toEqual([]);
        expect(await listedGenerations()).toEqual([1, 2, 4, 5]);
    });

    it("keep 2 and older than 30 days, with the stack's history protected; gc frees the deleted systems", async () => {
        for (const version of [6, 7, 8]) await rebuild("boot", version);
        for (const generation of [1, 2, 4, 5]) await makeOld(generation); // 6 stays young
        const result = await cleanupGenerations(connection, { keepGenerations: 2, deleteOlderThan: "30d", gc: true }, { storePaths: [systems[5]!] });
        expect(result.deleted).toEqual([4]);
        expect(result.kept).toEqual([1, 2, 5, 6, 7, 8]);
        expect(result.protectedGenerations).toEqual([
            { generation: 1, why: "booted system (/run/booted-system)" },
            { generation: 2, why: "running system (/run/current-system)" },
            { generation: 5, why: "recorded in the stack's deployment history" },
        ]);
        expect(result.gc?.freed).toMatch(/^\d+(\.\d+)? MiB$/);
        expect(await listedGenerations()).toEqual([1, 2, 5, 6, 7, 8]);

        // The deleted generations' systems are gone from the host's store; the kept ones are there.
        expect(await inStore(systems[3]!)).toBe(false);
        expect(await inStore(systems[4]!)).toBe(false);
        for (const generation of [1, 2, 5, 6, 7, 8]) expect(await inStore(systems[generation]!), `generation ${generation}`).toBe(true);
        // The host still runs and boots what it did.
        expect(await onHost(["readlink", "-f", "/run/current-system"])).toBe(systems[2]);
        expect(await onHost(["readlink", PROFILE])).toBe("system-8-link");
    });

    it("gc alone (no rule configured) deletes no generation and reports what Nix freed", async () => {
        const result = await cleanupGenerations(connection, { gc: true }, {});
        expect(result).toEqual({ deleted: [], kept: [1, 2, 5, 6, 7, 8], protectedGenerations: [], gc: { freed: expect.stringMatching(/ MiB$/) } });
        expect(await listedGenerations()).toEqual([1, 2, 5, 6, 7, 8]);
    });
});
