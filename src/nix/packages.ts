// Packages of a system before anything is built: every derivation in a system's derivation
// closure is named <pname>-<version> (`nix-store --query --requisites <drv>`), so two closures
// give the packages added, removed and changed. Pure parsing and diffing here; the two queries at
// the end take a process runner.
import { tail } from "../errors";
import type { ProcessRunner } from "../process/runner";

/** A package name with every version of it the closure holds (sorted; usually one). */
export type PackageSet = Map<string, string[]>;

export interface PackageChange {
    name: string;
    /** Versions before; empty when added. */
    old: string[];
    /** Versions after; empty when removed. */
    new: string[];
}

export type ChangeKind = "added" | "removed" | "changed";

export const changeKind = (change: PackageChange): ChangeKind =>
    change.old.length === 0 ? "added" : change.new.length === 0 ? "removed" : "changed";

const STORE_NAME = /^\/nix\/store\/[0-9a-z]{32}-(.+)$/;

/**
 * Splits a derivation name like Nix's builtins.parseDrvName: the version starts at the first dash
 * followed by a digit ("nixos-system-psi-24.05.2-sandbox" is nixos-system-psi, 24.05.2-sandbox).
 */
export function parseDrvName(name: string): { name: string; version: string } {
    const match = /-(?=\d)/.exec(name);
    if (!match) return { name, version: "" };
    return { name: name.slice(0, match.index), version: name.slice(match.index + 1) };
}

/** Sources, patches and scripts carry a version-looking name but are not packages. */
const NOT_A_PACKAGE = /\.(?:tar(?:\.[a-z0-9]+)?|tgz|tbz2?|txz|zip|gz|xz|bz2|zst|lz|patch|diff|sh|py|pl|nix|json|conf)$/i;

/**
 * How packagesOf reads a closure: kept package lists (packageCache.ts) carry it, and one read
 * another way is not used. Bump it with any change to what packagesOf, parseDrvName or
 * NOT_A_PACKAGE make of a name, else a plan compares a list read the old way with one read the new.
 */
export const PACKAGE_LIST_FORMAT = 1;

/** The versioned packages named by the .drv paths among `paths` (other paths are skipped). */
export function packagesOf(paths: readonly string[]): PackageSet {
    const packages: PackageSet = new Map();
    for (const path of paths) {
        if (!path.endsWith(".drv")) continue;
        const full = STORE_NAME.exec(path)?.[1];
        if (!full) continue;
        const { name, version } = parseDrvName(full.slice(0, -".drv".length));
        if (!version || NOT_A_PACKAGE.test(version)) continue;
        const versions = packages.get(name) ?? [];
        if (!versions.includes(version)) versions.push(version);
        packages.set(name, versions);
    }
    for (const versions of packages.values()) versions.sort(compareVersions);
    return packages;
}

/** Orders versions (and package names) the way people read them: numeric parts as numbers (2.9 before 2.10, lib2 before lib10). */
export function compareVersions(a: string, b: string): number {
    return a.localeCompare(b, "en", { numeric: true });
}

/** Packages added, removed and changed from `before` to `after`, by name. */
export function diffPackages(before: PackageSet, after: PackageSet): PackageChange[] {
    const names = [...new Set([...before.keys(), ...after.keys()])].sort(compareVersions);
    const changes: PackageChange[] = [];
    for (const name of names) {
        const old = before.get(name) ?? [];
        const now = after.get(name) ?? [];
        if (old.length === now.length && old.every((version, i) => version === now[i])) continue;
        changes.push({ name, old: [...old], new: [...now] });
    }
    return changes;
}

/** `+ hello 2.12`, `- curl 8.0`, `~ openssl 3.0.1 → 3.0.2`. */
export function formatChange(change: PackageChange): string {
    const kind = changeKind(change);
    if (kind === "added") return `+ ${change.name} ${change.new.join(", ")}`;
    if (kind === "removed") return `- ${change.name} ${change.old.join(", ")}`;
    return `~ ${change.name} ${change.old.join(", ")} → ${change.new.join(", ")}`;
}

/** `2 added, 1 removed, 3 changed` (only the kinds present), or `no package changes`. */
export function countChanges(changes: readonly PackageChange[]): string {
    const counts = { added: 0, removed: 0, changed: 0 };
    for (const change of changes) counts[changeKind(change)] += 1;
    const parts = (Object.keys(counts) as ChangeKind[]).filter((kind) => counts[kind] > 0).map((kind) => `${counts[kind]} ${kind}`);
    return parts.length ? parts.join(", ") : "no package changes";
}

/**
 * The store paths of a derivation's closure (.drv files and sources); undefined when it is not in
 * this store. Throws when Nix could not answer (killed, timed out, no daemon): that says nothing
 * about the derivation.
 */
export async function derivationClosure(runner: ProcessRunner, drvPath: string): Promise<string[] | undefined> {
    const argv = ["nix-store", "--query", "--requisites", drvPath];
    const result = await runner(argv);
    if (result.code === 0) return result.stdout.split("\n").map((line) => line.trim()).filter(Boolean);
    if (result.code === 1 && /is not valid|No such file or directory/.test(result.stderr)) return undefined;
    const why = result.timedOut ? "timed out" : result.code === null ? `was killed (${result.signal ?? "signal"})` : `exited with ${result.code}`;
    const said = tail(result.stderr.trim(), 3);
    throw new Error(`${argv.join(" ")} ${why}${said ? `: ${said}` : ""}`);
}

export interface PendingWork {
    /** Derivations that must be built here. */
    build: string[];
    /** Paths a substituter would provide. */
    fetch: string[];
}

/** Parses `nix-store --realise --dry-run` (stderr): "these N derivations will be built:" and indented paths. */
export function parseDryRun(stderr: string): PendingWork {
    const work: PendingWork = { build: [], fetch: [] };
    let section: keyof PendingWork | undefined;
    for (const line of stderr.split("\n")) {
        if (/will be built:\s*$/.test(line)) section = "build";
        else if (/will be fetched(?: \(.*\))?:\s*$/.test(line)) section = "fetch";
        else if (section && /^\s+\/nix\/store\//.test(line)) work[section].push(line.trim());
        else if (line.trim()) section = undefined;
    }
    return work;
}

/** What building drvPath here would do, without building; undefined when Nix cannot say. */
export async function pendingWork(runner: ProcessRunner, drvPath: string): Promise<PendingWork | undefined> {
    const result = await runner(["nix-store", "--realise", "--dry-run", drvPath]);
    if (result.code !== 0) return undefined;
    return parseDryRun(result.stderr);
}
