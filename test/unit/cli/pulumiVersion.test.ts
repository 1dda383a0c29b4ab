// `pulumi version` is asked once per pulumi binary: the operator commands take the kept answer
// while the binary is the same one, and ask again when it was replaced or is another one.
import { spawnSync } from "node:child_process";
import { chmodSync, mkdirSync, readdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { pulumiOnPath, pulumiVersion } from "../../../src/cli/pulumiVersion";
import { binaryIdentity } from "../../../src/process/executable";
import { writeOwnFile } from "../../../src/nix/cacheFile";
import type { RunResult } from "../../../src/process/runner";
import { tempDir } from "../helpers/fixtures";

function counting(stdout: string, code = 0) {
    let runs = 0;
    const run = async (): Promise<RunResult> => {
        runs += 1;
        return { argv: ["pulumi", "version"], code, signal: null, stdout, stderr: "", timedOut: false, durationMs: 1 };
    };
    return { run, runs: () => runs };
}

/** A directory with an executable `pulumi` in it (its text stands for the binary's content) and an empty cache directory. */
function setUp(text = "#!/bin/sh\necho v3.248.0\n") {
    const root = tempDir("nf-pulumi-version-");
    const bin = join(root, "bin");
    mkdirSync(bin);
    writeFileSync(join(bin, "pulumi"), text);
    chmodSync(join(bin, "pulumi"), 0o755);
    const env = { PATH: `${join(root, "nothing-here")}:${bin}`, NIXOS_FLEET_CACHE_DIR: join(root, "cache") };
    return { root, bin, env };
}

describe("pulumiVersion", () => {
    it("asks a binary once: the next commands get its answer without a pulumi run", async () => {
        const { env } = setUp();
        const first = counting("v3.248.0\n");
        expect((await pulumiVersion(first.run, env)).stdout).toBe("v3.248.0\n");
        const second = counting("never asked\n");
        const kept = await pulumiVersion(second.run, env);
        expect([kept.code, kept.stdout, second.runs()]).toEqual([0, "v3.248.0\n", 0]);
    });

    it("asks again when the binary was replaced (another size, time or inode) or PATH finds another one", async () => {
        const { root, bin, env } = setUp();
        await pulumiVersion(counting("v3.248.0\n").run, env);
        writeFileSync(join(bin, "pulumi"), "#!/bin/sh\necho v3.250.0 # a newer build\n");
        const updated = counting("v3.250.0\n");
        expect((await pulumiVersion(updated.run, env)).stdout).toBe("v3.250.0\n");
        expect(updated.runs()).toBe(1);
        const other = join(root, "other");
        mkdirSync(other);
        writeFileSync(join(other, "pulumi"), "#!/bin/sh\necho v3.250.0 # a newer build\n");
        chmodSync(join(other, "pulumi"), 0o755);
        const elsewhere = counting("v3.251.0\n");
        expect((await pulumiVersion(elsewhere.run, { ...env, PATH: `${other}:${bin}` })).stdout).toBe("v3.251.0\n");
        expect(elsewhere.runs()).toBe(1);
    });

    it("keeps no failed run and nothing that is not a version; without a pulumi on PATH it only runs", async () => {
        const { env } = setUp();
        for (const [stdout, code] of [["", 1], ["warning: something\nv3.248.0\n", 0], ["v3.248.0\n", 255]] as const) {
            await pulumiVersion(counting(stdout, code).run, env);
        }
        const after = counting("v3.248.0\n");
        await pulumiVersion(after.run, env);
        expect(after.runs()).toBe(1);
        const bare = counting("v3.248.0\n");
        await pulumiVersion(bare.run, { PATH: "/nonexistent", NIXOS_FLEET_CACHE_DIR: env.NIXOS_FLEET_CACHE_DIR });
        await pulumiVersion(bare.run, { PATH: "/nonexistent", NIXOS_FLEET_CACHE_DIR: env.NIXOS_FLEET_CACHE_DIR });
        expect(bare.runs()).toBe(2);
    });

    it("an entry another user could have written is not taken (a planted version)", async () => {
        const { env } = setUp();
        await pulumiVersion(counting("v3.248.0\n").run, env);
        const file = join(env.NIXOS_FLEET_CACHE_DIR, "pulumi-version.json");
        expect(readdirSync(env.NIXOS_FLEET_CACHE_DIR)).toEqual(["pulumi-version.json"]);
        chmodSync(file, 0o666);
        const asked = counting("v3.248.0\n");
        await pulumiVersion(asked.run, env);
        expect(asked.runs()).toBe(1);
    });

    it("finds pulumi as a run would: the first executable file named pulumi on PATH", () => {
        const { root, bin } = setUp();
        const notExecutable = join(root, "plain");
        mkdirSync(notExecutable);
        writeFileSync(join(notExecutable, "pulumi"), "");
        mkdirSync(join(root, "dir", "pulumi"), { recursive: true });
        expect(pulumiOnPath({ PATH: `${notExecutable}:${join(root, "dir")}::${bin}` }, join(root, "dir"))).toBe(join(bin, "pulumi"));
        expect(pulumiOnPath({})).toBeUndefined();
    });

    it("takes an empty or relative PATH entry from the run's directory, as the run does (not this process's)", async () => {
        const { root, bin, env } = setUp();
        const project = join(root, "project");
        mkdirSync(join(project, "tools"), { recursive: true });
        for (const dir of [project, join(project, "tools")]) {
            writeFileSync(join(dir, "pulumi"), "#!/bin/sh\necho v9.9.9 # another pulumi\n");
            chmodSync(join(dir, "pulumi"), 0o755);
        }
        expect(pulumiOnPath({ PATH: `:${bin}` }, project)).toBe(join(project, "pulumi"));
        expect(pulumiOnPath({ PATH: `tools:${bin}` }, project)).toBe(join(project, "tools", "pulumi"));
        expect(pulumiOnPath({ PATH: `${bin}:` }, project)).toBe(join(bin, "pulumi"));
        // The bin one answered first; a run in the project starts the project's pulumi: it is asked.
        await pulumiVersion(counting("v3.248.0\n").run, env, project);
        const other = counting("v9.9.9\n");
        expect((await pulumiVersion(other.run, { ...env, PATH: `:${bin}` }, project)).stdout).toBe("v9.9.9\n");
        expect(other.runs()).toBe(1);
        // And the real thing: a run with that PATH in that directory starts the project's pulumi.
        expect(spawnSync("pulumi", ["version"], { cwd: project, env: { PATH: `:${bin}` }, encoding: "utf8" }).stdout).toBe("v9.9.9\n");
    });

    it("asks again when pulumi on PATH is a link that now points to another binary", async () => {
        const { root, env } = setUp();
        const links = join(root, "links");
        mkdirSync(links);
        const versions = [join(root, "v1"), join(root, "v2")];
        for (const [i, dir] of versions.entries()) {
            mkdirSync(dir);
            // The same size and content: only the file differs.
            writeFileSync(join(dir, "pulumi"), "#!/bin/sh\necho v3.248.0\n");
            chmodSync(join(dir, "pulumi"), 0o755);
            if (i === 0) symlinkSync(join(dir, "pulumi"), join(links, "pulumi"));
        }
        const linked = { ...env, PATH: links };
        await pulumiVersion(counting("v3.248.0\n").run, linked);
        const same = counting("never asked\n");
        await pulumiVersion(same.run, linked);
        expect(same.runs()).toBe(0);
        rmSync(join(links, "pulumi"));
        symlinkSync(join(versions[1]!, "pulumi"), join(links, "pulumi"));
        const retargeted = counting("v3.249.0\n");
        expect((await pulumiVersion(retargeted.run, linked)).stdout).toBe("v3.249.0\n");
        expect(retargeted.runs()).toBe(1);
    });

    it("an own entry for this very binary whose version is not a bare version is not taken (nor passed on)", async () => {
        const { bin, env } = setUp();
        const identity = binaryIdentity(join(bin, "pulumi"))!;
        for (const version of ["v3.248.0\nwarning: planted\n", "v3.248.0 --non-interactive", "$(touch /tmp/x)", "", "3.248"]) {
            writeOwnFile(join(env.NIXOS_FLEET_CACHE_DIR, "pulumi-version.json"), JSON.stringify({ identity, version }));
            const asked = counting("v3.248.0\n");
            expect((await pulumiVersion(asked.run, env)).stdout).toBe("v3.248.0\n");
            expect(asked.runs()).toBe(1);
        }
        writeOwnFile(join(env.NIXOS_FLEET_CACHE_DIR, "pulumi-version.json"), "{not json");
        const corrupt = counting("v3.248.0\n");
        expect((await pulumiVersion(corrupt.run, env)).stdout).toBe("v3.248.0\n");
        expect(corrupt.runs()).toBe(1);
    });
});
