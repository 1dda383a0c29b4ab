// The plans' package lists are kept per derivation: a .drv path names fixed content, so a list
// once read is the answer for good (also after that .drv was garbage-collected).
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { planHost } from "../../../src/deploy/plan";
import { derivationPackages, filePackageCache } from "../../../src/nix/packageCache";
import { PACKAGE_LIST_FORMAT } from "../../../src/nix/packages";
import { FakeRunner, local } from "../helpers/fakeRunner";
import { drvPath, storePath, tempDir } from "../helpers/fixtures";

const oldDrv = drvPath("nixos-system-psi-24.05.1");
const newDrv = drvPath("nixos-system-psi-24.05.2");

function store(): FakeRunner {
    return new FakeRunner()
        .on(local("--requisites", oldDrv), { stdout: [drvPath("hello-2.12"), oldDrv].join("\n") })
        .on(local("--requisites", newDrv), { stdout: [drvPath("hello-2.13"), newDrv].join("\n") });
}

const requisites = (runner: FakeRunner) => runner.matching(local("--requisites")).length;

describe("filePackageCache and derivationPackages", () => {
    it("reads a derivation's closure once; later runs answer from the cache", async () => {
        const dir = tempDir("nf-pkgcache-");
        const runner = store();
        const first = await derivationPackages(runner.run, newDrv, filePackageCache(dir));
        expect([...first!]).toEqual([["hello", ["2.13"]], ["nixos-system-psi", ["24.05.2"]]]);
        // A new cache object on the same directory: the next process.
        const again = await derivationPackages(runner.run, newDrv, filePackageCache(dir));
        expect(again).toEqual(first);
        expect(requisites(runner)).toBe(1);
    });

    it("keeps nothing for a derivation this store lacks, and asks again next time", async () => {
        const dir = tempDir("nf-pkgcache-");
        const runner = new FakeRunner().on(local("--requisites"), { code: 1, stderr: "error: path is not valid" });
        expect(await derivationPackages(runner.run, oldDrv, filePackageCache(dir))).toBeUndefined();
        expect(await derivationPackages(runner.run, oldDrv, filePackageCache(dir))).toBeUndefined();
        expect(requisites(runner)).toBe(2);
    });

    it("an unreadable, foreign or malformed entry is a miss, never an answer", async () => {
        const dir = tempDir("nf-pkgcache-");
        const cache = filePackageCache(dir);
        cache.set(newDrv, new Map([["hello", ["2.13"]]]));
        const file = path.join(dir, "packages", `${newDrv.slice(11, 43)}.json`);
        expect(fs.existsSync(file)).toBe(true);
        fs.writeFileSync(file, "{ not json");
        expect(cache.get(newDrv)).toBeUndefined();
        fs.writeFileSync(file, JSON.stringify({ drvPath: oldDrv, packages: [["hello", ["2.13"]]] }));
        expect(cache.get(newDrv)).toBeUndefined();
        fs.writeFileSync(file, JSON.stringify({ drvPath: newDrv, packages: [["hello", 2]] }));
        expect(cache.get(newDrv)).toBeUndefined();
        // Not a .drv store path: nothing is kept or read.
        cache.set(storePath("hello-2.13"), new Map([["x", ["1"]]]));
        expect(fs.readdirSync(path.join(dir, "packages"))).toHaveLength(1);
    });

    it("the plan knows the recorded side's packages after its .drv was garbage-collected, once it was read before", async () => {
        const dir = tempDir("nf-pkgcache-");
        const request = { old: { storePath: storePath("nixos-system-psi-24.05.1"), drvPath: oldDrv }, new: { storePath: storePath("nixos-system-psi-24.05.2"), drvPath: newDrv }, buildOn: "target" as const };
        await planHost(store().run, request, { packageCache: filePackageCache(dir) });
        const collected = new FakeRunner()
            .on(local("--requisites", oldDrv), { code: 1, stderr: "error: path is not valid" })
            .on(local("--requisites", newDrv), { stdout: [drvPath("hello-2.13"), newDrv].join("\n") });
        const plan = await planHost(collected.run, request, { packageCache: filePackageCache(dir) });
        expect(plan.packages).toEqual({
            known: true,
            changes: [
                { name: "hello", old: ["2.12"], new: ["2.13"] },
                { name: "nixos-system-psi", old: ["24.05.1"], new: ["24.05.2"] },
            ],
        });
        expect(requisites(collected)).toBe(0);
    });

    it("an entry another user could have written is a miss: writable by others, a symlink, or not this user's", async () => {
        const dir = tempDir("nf-pkgcache-");
        const cache = filePackageCache(dir);
        // Written as this user's own, even under a umask that lets the group write (002).
        const umask = process.umask(0o002);
        try {
            cache.set(newDrv, new Map([["hello", ["2.13"]]]));
        } finally {
            process.umask(umask);
        }
        const file = path.join(dir, "packages", `${newDrv.slice(11, 43)}.json`);
        expect(cache.get(newDrv)).toEqual(new Map([["hello", ["2.13"]]]));
        fs.chmodSync(file, 0o666);
        expect(cache.get(newDrv)).toBeUndefined();
        fs.chmodSync(file, 0o600);
        const planted = path.join(dir, "planted.json");
        fs.renameSync(file, planted);
        fs.symlinkSync(planted, file);
        expect(cache.get(newDrv)).toBeUndefined();
        fs.rmSync(file);
        fs.renameSync(planted, file);
        expect(cache.get(newDrv)).toEqual(new Map([["hello", ["2.13"]]]));
        if (process.getuid?.() === 0) {
            fs.chownSync(file, 65534, 65534);
            expect(cache.get(newDrv)).toBeUndefined();
        }
    });

    it("an entry read by another version of packagesOf is a miss (its list could differ from one read now)", async () => {
        const dir = tempDir("nf-pkgcache-");
        const cache = filePackageCache(dir);
        cache.set(newDrv, new Map([["hello", ["2.13"]]]));
        const file = path.join(dir, "packages", `${newDrv.slice(11, 43)}.json`);
        const entry = JSON.parse(fs.readFileSync(file, "utf8")) as Record<string, unknown>;
        expect(entry.format).toBe(PACKAGE_LIST_FORMAT);
        for (const format of [undefined, PACKAGE_LIST_FORMAT - 1, PACKAGE_LIST_FORMAT + 1]) {
            fs.writeFileSync(file, JSON.stringify({ ...entry, format }), { mode: 0o600 });
            expect(cache.get(newDrv)).toBeUndefined();
        }
    });

    it("a write that fails (full disk, rename refused) leaves no half-written file behind and is no error", async () => {
        const dir = tempDir("nf-pkgcache-");
        const folder = path.join(dir, "packages");
        const file = path.join(folder, `${newDrv.slice(11, 43)}.json`);
        // A directory where the entry goes: the rename fails after the temporary file was written.
        fs.mkdirSync(path.join(file, "x"), { recursive: true });
        const packages = await derivationPackages(store().run, newDrv, filePackageCache(dir));
        expect(packages?.get("hello")).toEqual(["2.13"]);
        expect(fs.readdirSync(folder).filter((name) => name.endsWith(".tmp"))).toEqual([]);
    });

    it("a temporary file a dead process left (over an hour old) is removed by the next write; a fresh one is not", async () => {
        const dir = tempDir("nf-pkgcache-");
        const folder = path.join(dir, "packages");
        fs.mkdirSync(folder, { recursive: true });
        const stale = path.join(folder, "0".repeat(32) + ".json.999999.tmp");
        const fresh = path.join(folder, "1".repeat(32) + ".json.999998.tmp");
        fs.writeFileSync(stale, "{");
        fs.writeFileSync(fresh, "{");
        const twoHoursAgo = new Date(Date.now() - 2 * 60 * 60 * 1000);
        fs.utimesSync(stale, twoHoursAgo, twoHoursAgo);
        filePackageCache(dir).set(newDrv, new Map([["hello", ["2.13"]]]));
        expect(fs.existsSync(stale)).toBe(false);
        expect(fs.existsSync(fresh)).toBe(true);
    });
});

