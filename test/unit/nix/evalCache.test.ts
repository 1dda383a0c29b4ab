import { describe, expect, it } from "vitest";
import { mkdtempSync, rmSync, writeFileSync, chmodSync, chownSync, mkdirSync, readdirSync, renameSync, symlinkSync, utimesSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { evalCacheKey, evaluationCache, fileEvalCache, lockedContent, nixIdentity, pinnedFlakeRef, type CachedSystems, type EvalCacheKeyParts, type EvalCacheStore } from "../../../src/nix/evalCache";
import { evaluateSystems, type EvaluationTarget } from "../../../src/nix/evaluate";
import { FakeRunner, local } from "../helpers/fakeRunner";
import { drvPath, storePath } from "../helpers/fixtures";

const parts: EvalCacheKeyParts = {
    flake: "path:/srv/infra",
    narHash: "sha256-AAAA",
    locked: { lastModified: 1796024736, narHash: "sha256-AAAA", path: "/srv/infra", type: "path" },
    locks: { nodes: { root: { inputs: { nixpkgs: "nixpkgs" } }, nixpkgs: { locked: { narHash: "sha256-NNNN", rev: "abc" } } }, root: "root", version: 7 },
    output: "nixosConfigurations",
    expression: 'o: { "psi" = … }',
    nix: "nix-2.8",
};

describe("evalCacheKey", () => {
    it("is the same for the same parts, whatever the order of their keys", () => {
        const reordered = { nix: parts.nix, expression: parts.expression, output: parts.output, locks: { version: 7, root: "root", nodes: (parts.locks as { nodes: unknown }).nodes }, locked: { type: "path", path: "/srv/infra", narHash: "sha256-AAAA", lastModified: 1796024736 }, narHash: parts.narHash, flake: parts.flake };
        expect(evalCacheKey(reordered)).toBe(evalCacheKey(parts));
        expect(evalCacheKey(parts)).toMatch(/^[0-9a-f]{64}$/);
    });

    it("changes with anything that can change the result: content, what self exposes (lastModified, rev, revCount), inputs, output, attributes, Nix", () => {
        const changed: EvalCacheKeyParts[] = [
            { ...parts, flake: "path:/srv/other" },
            { ...parts, narHash: "sha256-BBBB" },
            // Same files, but what `self` exposes differs: a touched file (path:), another commit of the same tree (git).
            { ...parts, locked: { ...(parts.locked as object), lastModified: 1577836800 } },
            { ...parts, locked: { type: "git", narHash: "sha256-AAAA", rev: "e8c93f62e82d4085747a53dae0aa2b64cc04fd14", revCount: 2 } },
            { ...parts, locks: { ...(parts.locks as object), nodes: { root: {}, nixpkgs: { locked: { narHash: "sha256-MMMM", rev: "def" } } } } },
            { ...parts, output: "colmenaHive" },
            { ...parts, expression: 'o: { "psi" = … "rho" = … }' },
            { ...parts, nix: "nix-2.18" },
        ];
        const keys = new Set([evalCacheKey(parts), ...changed.map(evalCacheKey)]);
        expect(keys.size).toBe(changed.length + 1);
    });
});

describe("pinnedFlakeRef", () => {
    const rev = "e8c93f62e82d4085747a53dae0aa2b64cc04fd14";
    it("is the locked reference Nix printed when it names one content: a revision, or a path: flake's narHash", () => {
        const path = "path:/srv/infra?lastModified=1796023387&narHash=sha256-V7BS=";
        expect(pinnedFlakeRef({ url: path, locked: { type: "path", narHash: "sha256-V7BS=", path: "/srv/infra" } })).toBe(path);
        const git = `git+file:///srv/infra?ref=master&rev=${rev}`;
        expect(pinnedFlakeRef({ url: git, locked: { type: "git", rev, narHash: "sha256-X" } })).toBe(git);
    });

    it("is nothing for a dirty git tree (no revision; Nix 2.8 reads the working tree whatever narHash it is given) or a reference that does not say what it locks", () => {
        expect(pinnedFlakeRef({ url: "git+file:///srv/infra", locked: { type: "git", narHash: "sha256-X", url: "file:///srv/infra" } })).toBeUndefined();
        expect(pinnedFlakeRef({ url: "git+file:///srv/infra?ref=master", locked: { type: "git", rev, narHash: "sha256-X" } })).toBeUndefined();
        expect(pinnedFlakeRef({ url: "path:/srv/infra", locked: { type: "path", narHash: "sha256-V7BS=" } })).toBeUndefined();
        expect(pinnedFlakeRef({ locked: { type: "path", narHash: "sha256-V7BS=" } })).toBeUndefined();
        expect(pinnedFlakeRef({ url: `git+file:///x?rev=${rev}`, locked: { type: "git", rev: "not-a-rev" } })).toBeUndefined();
        expect(pinnedFlakeRef(undefined)).toBeUndefined();
    });

    // What Nix 2.8 printed (nix flake metadata --json) for the references an operator may write.
    it("is nothing when the URL drops a locked attribute: Nix 2.8 leaves submodules=1 out, and that URL evaluates the tree without its submodules (another system)", () => {
        const rev735 = "735cd17cb5c42f95e59d255dbded2e72dc8a0f11";
        const submodules = {
            url: `git+file:///tmp/pin-attack/g6?ref=main&rev=${rev735}`,
            locked: { lastModified: 1796024772, narHash: "sha256-BhHuGkTFsJLNMJNuqKHB5a9uXYziDw4rMBJeflSOyqI=", ref: "main", rev: rev735, revCount: 1, submodules: true, type: "git", url: "file:///tmp/pin-attack/g6" },
        };
        expect(pinnedFlakeRef(submodules)).toBeUndefined();
        // The same URL with the attribute in it names the same content.
        expect(pinnedFlakeRef({ ...submodules, url: `${submodules.url}&submodules=1` })).toBe(`${submodules.url}&submodules=1`);
        // Another ref than the URL's, or an attribute the URL gives another value: nothing.
        expect(pinnedFlakeRef({ ...submodules, locked: { ...submodules.locked, submodules: undefined, ref: "other" } })).toBeUndefined();
        expect(pinnedFlakeRef({ url: "path:/srv/infra?lastModified=1&narHash=sha256-A", locked: { type: "path", narHash: "sha256-A", lastModified: 2, path: "/srv/infra" } })).toBeUndefined();
        expect(pinnedFlakeRef({ url: "path:/srv/infra?lastModified=1&narHash=sha256-A%zz", locked: { type: "path", narHash: "sha256-A", lastModified: 1 } })).toBeUndefined();
    });

    it("keeps what Nix 2.8 does carry (shallow=1, allRefs=1, dir=) and reads a narHash it percent-encoded (%2f) or left with a +", () => {
        const rev87 = "87d28b8b6ab43f36624e20f6c1b1edcbe483e056";
        const base = { lastModified: 1796024752, narHash: "sha256-LGgHHe4HaL+UoddC2tU6Zoo08TawcUQMr6+svhNdEuo=", ref: "main", rev: rev87, type: "git" };
        const shallow = `git+file:///tmp/pin-attack/g1?ref=main&rev=${rev87}&shallow=1`;
        expect(pinnedFlakeRef({ url: shallow, locked: { ...base, shallow: true, url: "file:///tmp/pin-attack/g1" } })).toBe(shallow);
        const allRefs = `git+file:///tmp/pin-attack/g1?allRefs=1&ref=main&rev=${rev87}`;
        expect(pinnedFlakeRef({ url: allRefs, locked: { ...base, revCount: 1, url: "file:///tmp/pin-attack/g1?allRefs=1" } })).toBe(allRefs);
        const dir = "git+file:///tmp/pin-attack/g2?dir=sub&ref=main&rev=389cf3d0fa462157a6e36c76d53763bff339ebaf";
        expect(pinnedFlakeRef({ url: dir, locked: { ...base, rev: "389cf3d0fa462157a6e36c76d53763bff339ebaf", revCount: 1, url: "file:///tmp/pin-attack/g2" } })).toBe(dir);
        const slash = "path:/tmp/pin-attack/p3?lastModified=1796024789&narHash=sha256-6ELSe5B9430w5x2gsGhQyffmfi3HvwuNet%2fMv1yJIdk=";
        expect(pinnedFlakeRef({ url: slash, locked: { lastModified: 1796024789, narHash: "sha256-6ELSe5B9430w5x2gsGhQyffmfi3HvwuNet/Mv1yJIdk=", path: "/tmp/pin-attack/p3", type: "path" } })).toBe(slash);
        const plus = "path:/tmp/pin-attack/pl+us?lastModified=1796024805&narHash=sha256-p9BgGs++1sWDGa0dHMuxZ0ngiMIaVqUsZoJyQ3QAslQ=";
        expect(pinnedFlakeRef({ url: plus, locked: { lastModified: 1796024805, narHash: "sha256-p9BgGs++1sWDGa0dHMuxZ0ngiMIaVqUsZoJyQ3QAslQ=", path: "/tmp/pin-attack/pl+us", type: "path" } })).toBe(plus);
    });
});

describe("lockedContent", () => {
    it("reads locked.narHash and the lock nodes from nix flake metadata; no narHash, no caching", () => {
        expect(lockedContent({ locked: { narHash: "sha256-X", type: "path" }, locks: { root: "root" } })).toEqual({ narHash: "sha256-X", locked: { narHash: "sha256-X", type: "path" }, locks: { root: "root" } });
        expect(lockedContent({ locked: { type: "path" } })).toBeUndefined();
        expect(lockedContent(undefined)).toBeUndefined();
    });
});

describe("nixIdentity", () => {
    it("changes with the nix binary, NIX_CONFIG and nix.conf", () => {
        const dir = mkdtempSync(join(tmpdir(), "nf-nixid-"));
        try {
            mkdirSync(join(dir, "bin"));
            mkdirSync(join(dir, "etc"));
            const nix = join(dir, "bin", "nix");
            writeFileSync(nix, "#!/bin/sh\n# nix 2.8\n");
            chmodSync(nix, 0o755);
            const env = { PATH: join(dir, "bin"), NIX_CONF_DIR: join(dir, "etc"), XDG_CONFIG_HOME: join(dir, "config") };
            const first = nixIdentity(env);
            expect(nixIdentity(env)).toBe(first);
            expect(nixIdentity({ ...env, NIX_CONFIG: "system = aarch64-linux" })).not.toBe(first);
            writeFileSync(join(dir, "etc", "nix.conf"), "allow-import-from-derivation = false\n");
            const withConf = nixIdentity(env);
            expect(withConf).not.toBe(first);
            writeFileSync(nix, "#!/bin/sh\n# nix 2.18, a bigger binary\n");
            expect(nixIdentity(env)).not.toBe(withConf);
        } finally {
            rmSync(dir, { recursive: true, force: true });
        }
    });
});

describe("fileEvalCache", () => {
    it("keeps entries as files, reads them back, and ignores a broken one", () => {
        const dir = mkdtempSync(join(tmpdir(), "nf-cache-"));
        try {
            const store = fileEvalCache(dir);
            const systems = { psi: { out: storePath("a"), drv: drvPath("a") } };
            expect(store.get("k1")).toBeUndefined();
            store.set("k1", systems);
            expect(store.get("k1")).toEqual(systems);
            writeFileSync(join(dir, "eval", "k2.json"), "{not json");
            expect(store.get("k2")).toBeUndefined();
            expect(readdirSync(join(dir, "eval")).filter((name) => name.endsWith(".tmp"))).toEqual([]);
        } finally {
            rmSync(dir, { recursive: true, force: true });
        }
    });

    it("a temporary file a dead process left (over an hour old) is removed by the next write; a fresh one is not (as in the package cache)", () => {
        const dir = mkdtempSync(join(tmpdir(), "nf-cache-"));
        try {
            const folder = join(dir, "eval");
            mkdirSync(folder, { recursive: true });
            const stale = join(folder, "k0.json.999999.0123456789abcdef.tmp");
            const fresh = join(folder, "k1.json.999998.0123456789abcdef.tmp");
            writeFileSync(stale, "{");
            writeFileSync(fresh, "{");
            const twoHoursAgo = new Date(Date.now() - 2 * 60 * 60 * 1000);
            utimesSync(stale, twoHoursAgo, twoHoursAgo);
            fileEvalCache(dir).set("k2", { psi: { out: storePath("a"), drv: drvPath("a") } });
            expect(readdirSync(folder).sort()).toEqual(["k1.json.999998.0123456789abcdef.tmp", "k2.json"]);
        } finally {
            rmSync(dir, { recursive: true, force: true });
        }
    });

    it("an entry another user could have written (writable by others, a symlink, not this user's) is a miss: it would choose what is deployed", () => {
        const dir = mkdtempSync(join(tmpdir(), "nf-cache-"));
        try {
            const store = fileEvalCache(dir);
            const systems = { psi: { out: storePath("a"), drv: drvPath("a") } };
            // Written as this user's own, even under a umask that lets the group write (002).
            const umask = process.umask(0o002);
            try {
                store.set("k1", systems);
            } finally {
                process.umask(umask);
            }
            expect(store.get("k1")).toEqual(systems);
            const file = join(dir, "eval", "k1.json");
            chmodSync(file, 0o666);
            expect(store.get("k1")).toBeUndefined();
            chmodSync(file, 0o600);
            renameSync(file, join(dir, "planted.json"));
            symlinkSync(join(dir, "planted.json"), file);
            expect(store.get("k1")).toBeUndefined();
            rmSync(file);
            renameSync(join(dir, "planted.json"), file);
            expect(store.get("k1")).toEqual(systems);
            if (process.getuid?.() === 0) {
                chownSync(file, 65534, 65534);
                expect(store.get("k1")).toBeUndefined();
            }
        } finally {
            rmSync(dir, { recursive: true, force: true });
        }
    });
});

// evaluateSystems with the cache: a fake flake whose narHash the test changes ("edits a file").
function memoryStore(): EvalCacheStore & { entries: Map<string, CachedSystems> } {
    const entries = new Map<string, CachedSystems>();
    return { entries, get: (key) => entries.get(key), set: (key, value) => void entries.set(key, value) };
}

function fakeFlake(runner: FakeRunner, state: { narHash: string; version: number; changeDuringEval?: string }): void {
    runner.on(local("flake", "metadata"), () => ({ stdout: JSON.stringify({ locked: { narHash: state.narHash, type: "path" }, locks: { nodes: { root: {} }, root: "root", version: 7 } }) }));
    runner.on(local("eval", "--json"), () => {
        const out = { psi: { out: storePath(`nixos-system-psi-${state.version}`), drv: drvPath(`nixos-system-psi-${state.version}`) } };
        if (state.changeDuringEval) state.narHash = state.changeDuringEval;
        return { stdout: JSON.stringify(out) };
    });
}

describe("evaluateSystems with the evaluation cache", () => {
    const psi: EvaluationTarget = { name: "psi", flake: "path:/srv/infra", attribute: "nixosConfigurations.psi" };
    const evals = (runner: FakeRunner) => runner.matching(local("eval", "--json")).length;

    it("evaluates an unchanged flake once; an edit (new narHash) evaluates again and gives the new system", async () => {
        const runner = new FakeRunner();
        const flake = { narHash: "sha256-v1", version: 1 };
        fakeFlake(runner, flake);
        const store = memoryStore();
        const cache = () => Object.assign(evaluationCache({ runner: runner.run, store, env: {} }), { valid: () => true });

        const first = cache();
        expect((await evaluateSystems([psi], { runner: runner.run, cache: first })).get("psi")!.storePath).toBe(storePath("nixos-system-psi-1"));
        expect([first.misses, first.hits, evals(runner)]).toEqual([1, 0, 1]);

        const second = cache();
        expect((await evaluateSystems([psi], { runner: runner.run, cache: second })).get("psi")!.storePath).toBe(storePath("nixos-system-psi-1"));
        expect([second.misses, second.hits, evals(runner)]).toEqual([0, 1, 1]);

        flake.narHash = "sha256-v2";
        flake.version = 2;
        const third = cache();
        expect((await evaluateSystems([psi], { runner: runner.run, cache: third })).get("psi")!.storePath).toBe(storePath("nixos-system-psi-2"));
        expect([third.misses, third.hits, evals(runner)]).toEqual([1, 0, 2]);
        expect(store.entries.size).toBe(2);
    });

    it("evaluates again when the cached derivations were garbage-collected", async () => {
        const runner = new FakeRunner();
        fakeFlake(runner, { narHash: "sha256-v1", version: 1 });
        const store = memoryStore();
        await evaluateSystems([psi], { runner: runner.run, cache: Object.assign(evaluationCache({ runner: runner.run, store, env: {} }), { valid: () => true }) });
        const gone = Object.assign(evaluationCache({ runner: runner.run, store, env: {} }), { valid: () => false });
        await evaluateSystems([psi], { runner: runner.run, cache: gone });
        expect([gone.misses, gone.hits, evals(runner)]).toEqual([1, 0, 2]);
    });

    it("stores nothing when the flake changed while Nix evaluated it", async () => {
        const runner = new FakeRunner();
        fakeFlake(runner, { narHash: "sha256-v1", version: 1, changeDuringEval: "sha256-v2" });
        const store = memoryStore();
        await evaluateSystems([psi], { runner: runner.run, cache: Object.assign(evaluationCache({ runner: runner.run, store, env: {} }), { valid: () => true }) });
        expect(store.entries.size).toBe(0);
    });

    it("deferStores (the program): returns before the flake's metadata is read again; the entry is written after it, and only if the flake is unchanged", async () => {
        for (const changeDuringEval of [undefined, "sha256-v2"]) {
            const runner = new FakeRunner();
            fakeFlake(runner, { narHash: "sha256-v1", version: 1, ...(changeDuringEval ? { changeDuringEval } : {}) });
            let release!: () => void;
            const held = new Promise<void>((resolve) => (release = resolve));
            const metadataReads = () => runner.matching(local("flake", "metadata")).length;
            // The second metadata read (the check after the evaluation) waits until the test releases it.
            const run: typeof runner.run = async (argv, options) => {
                if (argv.includes("metadata") && metadataReads() >= 1) await held;
                return runner.run(argv, options);
            };
            const store = memoryStore();
            const cache = Object.assign(evaluationCache({ runner: run, store, env: {}, deferStores: true }), { valid: () => true });
            const systems = await evaluateSystems([psi], { runner: run, cache });
            expect(systems.get("psi")!.storePath).toBe(storePath("nixos-system-psi-1"));
            expect(store.entries.size).toBe(0);
            expect(cache.pendingStores).toHaveLength(1);
            release();
            await Promise.all(cache.pendingStores!);
            expect(store.entries.size).toBe(changeDuringEval ? 0 : 1);
        }
    });

    it("evaluates the locked reference of a path: flake: what it stores is the content its key names, even when the flake is edited (and the edit undone) meanwhile", async () => {
        const runner = new FakeRunner();
        // The flake's content now (its narHash); Nix serves a pinned reference from the store copy it hashed.
        const flake = { narHash: "sha256-A" };
        const systemOf = (narHash: string) => ({ psi: { out: storePath(`nixos-system-psi-${narHash}`), drv: drvPath(`nixos-system-psi-${narHash}`) } });
        runner.on(local("flake", "metadata"), () => ({
            stdout: JSON.stringify({ url: `path:/srv/infra?lastModified=1&narHash=${flake.narHash}`, locked: { narHash: flake.narHash, type: "path" }, locks: { nodes: { root: {} }, root: "root", version: 7 } }),
        }));
        runner.on(local("eval", "--json"), (call) => {
            const ref = call.argv.find((arg) => arg.includes("#nixosConfigurations"))!;
            const pinned = /narHash=([^#&]+)/.exec(ref)?.[1];
            // Edited to B while Nix evaluates, and back to A before anything reads the flake again.
            flake.narHash = "sha256-B";
            const out = systemOf(pinned ?? flake.narHash);
            flake.narHash = "sha256-A";
            return { stdout: JSON.stringify(out) };
        });
        const store = memoryStore();
        const cache = Object.assign(evaluationCache({ runner: runner.run, store, env: {}, deferStores: true }), { valid: () => true });
        const systems = await evaluateSystems([psi], { runner: runner.run, cache });
        expect(systems.get("psi")!.storePath).toBe(storePath("nixos-system-psi-sha256-A"));
        expect(runner.matching(local("eval", "--json"))[0]!.argv).toContain("path:/srv/infra?lastModified=1&narHash=sha256-A#nixosConfigurations");
        // Stored at once, without reading the flake again.
        expect(cache.pendingStores).toEqual([]);
        expect(runner.matching(local("flake", "metadata"))).toHaveLength(1);
        expect([...store.entries.values()]).toEqual([{ psi: systemOf("sha256-A").psi }]);
    });

    it("a path: flake touched (same narHash, a new lastModified, which self.lastModified gives the configuration) is evaluated again", async () => {
        const runner = new FakeRunner();
        const flake = { lastModified: 1796024736 };
        // Nix 2.8: a path: flake's lastModified is its files' newest mtime; touching a file keeps the narHash.
        runner.on(local("flake", "metadata"), () => ({
            stdout: JSON.stringify({ url: `path:/srv/infra?lastModified=${flake.lastModified}&narHash=sha256-A`, locked: { lastModified: flake.lastModified, narHash: "sha256-A", path: "/srv/infra", type: "path" }, locks: { nodes: { root: {} }, root: "root", version: 7 } }),
        }));
        runner.on(local("eval", "--json"), () => ({ stdout: JSON.stringify({ psi: { out: storePath(`nixos-system-psi-${flake.lastModified}`), drv: drvPath(`nixos-system-psi-${flake.lastModified}`) } }) }));
        const store = memoryStore();
        const run = async () => (await evaluateSystems([psi], { runner: runner.run, cache: Object.assign(evaluationCache({ runner: runner.run, store, env: {} }), { valid: () => true }) })).get("psi")!.storePath;
        expect(await run()).toBe(storePath("nixos-system-psi-1796024736"));
        flake.lastModified = 1577836800;
        expect(await run()).toBe(storePath("nixos-system-psi-1577836800"));
        expect(evals(runner)).toBe(2);
    });

    it("a pinned evaluation that fails is run again on the flake as written: a store copy collected and the flake edited meanwhile gives the flake's system now, stored only after the check", async () => {
        const runner = new FakeRunner();
        const metadata = { url: "path:/srv/infra?lastModified=1&narHash=sha256-A", locked: { lastModified: 1, narHash: "sha256-A", path: "/srv/infra", type: "path" }, locks: { nodes: { root: {} }, root: "root", version: 7 } };
        runner.on(local("flake", "metadata"), () => ({ stdout: JSON.stringify(metadata) }));
        runner.on(local("eval", "--json"), (call) => {
            if (call.argv.some((arg) => arg.includes("narHash=")))
                return { code: 1, stderr: "error: NAR hash mismatch in input 'path:/srv/infra?lastModified=1&narHash=sha256-A' (/nix/store/q72vagzgfq3x3yp1m2qfyhbslv31643m-source), expected 'sha256-A', got 'sha256-B'" };
            // The flake as written now holds B (the edit the pinned evaluation refused).
            metadata.locked.narHash = "sha256-B";
            metadata.url = "path:/srv/infra?lastModified=1&narHash=sha256-B";
            return { stdout: JSON.stringify({ psi: { out: storePath("nixos-system-psi-B"), drv: drvPath("nixos-system-psi-B") } }) };
        });
        const store = memoryStore();
        const cache = Object.assign(evaluationCache({ runner: runner.run, store, env: {}, deferStores: true }), { valid: () => true });
        const systems = await evaluateSystems([psi], { runner: runner.run, cache });
        expect(systems.get("psi")!.storePath).toBe(storePath("nixos-system-psi-B"));
        expect(runner.matching(local("eval", "--json")).map((call) => call.argv.find((arg) => arg.includes("#nixosConfigurations")))).toEqual([
            "path:/srv/infra?lastModified=1&narHash=sha256-A#nixosConfigurations",
            "path:/srv/infra#nixosConfigurations",
        ]);
        // Not stored under A's key at once: the check after the evaluation reads the flake again (it now says B).
        expect(cache.pendingStores).toHaveLength(1);
        await Promise.all(cache.pendingStores!);
        expect(store.entries.size).toBe(0);
    });

    it("a failing configuration is evaluated once (its error is not a source Nix could not get); the error names the operator's flake in its hint", async () => {
        const runner = new FakeRunner();
        runner.on(local("flake", "metadata"), () => ({
            stdout: JSON.stringify({ url: "path:/srv/infra?lastModified=1&narHash=sha256-A", locked: { lastModified: 1, narHash: "sha256-A", path: "/srv/infra", type: "path" }, locks: { nodes: { root: {} }, root: "root", version: 7 } }),
        }));
        runner.on(local("eval", "--json"), (call) => ({ code: 1, stderr: `error: boom in host config (evaluating ${call.argv.find((arg) => arg.includes("#"))})` }));
        const cache = Object.assign(evaluationCache({ runner: runner.run, store: memoryStore(), env: {} }), { valid: () => true });
        const error = await evaluateSystems([psi], { runner: runner.run, cache }).then(
            () => ({ host: "none: the evaluation succeeded" }) as { hint?: string; detail?: string; host?: string },
            (e: unknown) => e as { hint?: string; detail?: string; host?: string },
        );
        expect(error.host).toBe("psi");
        expect(error.hint).toContain("nix eval path:/srv/infra#nixosConfigurations reproduces it");
        expect(error.detail).toContain("boom in host config (evaluating path:/srv/infra?lastModified=1&narHash=sha256-A#nixosConfigurations)");
        expect(runner.matching(local("eval", "--json"))).toHaveLength(1);
    });

    it("a flake whose metadata cannot be read is evaluated every time", async () => {
        const runner = new FakeRunner();
        fakeFlake(runner, { narHash: "sha256-v1", version: 1 });
        runner.on(local("flake", "metadata"), { code: 1, stderr: "error: cannot read" });
        const store = memoryStore();
        for (let i = 0; i < 2; i++) await evaluateSystems([psi], { runner: runner.run, cache: evaluationCache({ runner: runner.run, store, env: {} }) });
        expect(evals(runner)).toBe(2);
        expect(store.entries.size).toBe(0);
    });
});
