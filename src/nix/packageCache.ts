// The packages of a derivation, kept by its store path. A .drv store path names fixed content, so
// its closure, and the packages read from it, never change: the plan's package diff (two
// `nix-store --query --requisites` a host, thousands of paths each for a real NixOS system) is
// asked once per derivation, not at every preview and again in the update after it. The recorded
// side of the next deploy is then always known here, even after its .drv was garbage-collected.
import * as fs from "node:fs";
import * as path from "node:path";
import type { ProcessRunner } from "../process/runner";
import { pruneCacheFolder, readOwnFile, writeOwnFile } from "./cacheFile";
import { derivationClosure, packagesOf, PACKAGE_LIST_FORMAT, type PackageSet } from "./packages";

export interface PackageCache {
    get(drvPath: string): PackageSet | undefined;
    set(drvPath: string, packages: PackageSet): void;
}

/** Entries kept; the oldest beyond this are removed when a new one is written. */
export const PACKAGE_CACHE_ENTRIES = 512;

const DRV_PATH = /^\/nix\/store\/([0-9a-z]{32})-[^/]+\.drv$/;

/**
 * One JSON file per derivation (its store hash) under dir/packages; atomic writes; unreadable
 * entries are misses, and so are entries another user could have written (not owned by this
 * user, or writable by others: a shared or foreign NIXOS_FLEET_CACHE_DIR) and entries read by
 * another PACKAGE_LIST_FORMAT.
 */
export function filePackageCache(dir: string): PackageCache {
    const folder = path.join(dir, "packages");
    const file = (drvPath: string) => {
        const hash = DRV_PATH.exec(drvPath)?.[1];
        return hash === undefined ? undefined : path.join(folder, `${hash}.json`);
    };
    return {
        get(drvPath) {
            const entry = file(drvPath);
            if (entry === undefined) return undefined;
            try {
                const parsed = JSON.parse(readOwnFile(entry)) as { format?: unknown; drvPath?: unknown; packages?: unknown };
                if (parsed.format !== PACKAGE_LIST_FORMAT || parsed.drvPath !== drvPath || !isPackageList(parsed.packages)) return undefined;
                return new Map(parsed.packages);
            } catch {
                return undefined;
            }
        },
        set(drvPath, packages) {
            const entry = file(drvPath);
            if (entry === undefined) return;
            try {
                writeOwnFile(entry, JSON.stringify({ format: PACKAGE_LIST_FORMAT, drvPath, packages: [...packages] }));
                pruneCacheFolder(folder, PACKAGE_CACHE_ENTRIES);
            } catch {
                // A cache that cannot be written (full disk, permissions) only costs the next plan a
                // query; the half-written file is not left behind.
            }
        },
    };
}

function isPackageList(value: unknown): value is [string, string[]][] {
    return (
        Array.isArray(value) &&
        value.every((item) => Array.isArray(item) && item.length === 2 && typeof item[0] === "string" && Array.isArray(item[1]) && item[1].every((v) => typeof v === "string"))
    );
}

/** The derivation's packages: from the cache, else from its closure in this store (then kept); undefined when neither has it. */
export async function derivationPackages(runner: ProcessRunner, drvPath: string, cache?: PackageCache): Promise<PackageSet | undefined> {
    const kept = cache?.get(drvPath);
    if (kept) return kept;
    const closure = await derivationClosure(runner, drvPath);
    if (!closure) return undefined;
    const packages = packagesOf(closure);
    cache?.set(drvPath, packages);
    return packages;
}
