// The plan of one host, before anything is built: which packages the update adds, removes and
// changes (from the two derivation closures), how many derivations must be built here and how
// many store paths at most must be copied. Shown by `pulumi preview` (the host's diagnostics)
// and by `npm run deploy -- --preview` (table and --json). Whatever cannot be known says why.
import { localClosure } from "../nix/closure";
import { shortStorePath } from "../nix/flags";
import { countChanges, diffPackages, formatChange, pendingWork, type PackageChange } from "../nix/packages";
import { derivationPackages, type PackageCache } from "../nix/packageCache";
import type { ProcessRunner } from "../process/runner";
import { changedBootLinks, derivationBootFiles, localBootFiles, type BootFiles, type BootLink } from "./reboot";

/** One side of the plan: a system's store path and, when known, the derivation it comes from. */
export interface PlanSide {
    storePath: string;
    drvPath?: string;
}

export type Known<T> = { known: true } & T;
export type Unknown = { known: false; reason: string };

/** The host's booted system's boot files, as recorded in the state (the plan never connects); `source` says which record. */
export type BootedSide = Known<{ files: BootFiles; source?: string }> | Unknown;

export interface PlanRequest {
    /** The recorded deployment; undefined for a host never deployed by this stack. */
    old?: PlanSide;
    new: PlanSide;
    buildOn: "local" | "target";
    /** The host that builds the system (buildHost), when another one does. */
    buildHost?: string;
    /** The booted system's kernel, initrd and kernel-modules (absent: not asked, so unknown). */
    booted?: BootedSide;
    /**
     * The plan shown by an update, right before it builds and copies: the build and copy counts,
     * two more Nix queries a host beside the update's own build, are left to the preview and to
     * the update's own build and copy lines.
     */
    duringUpdate?: boolean;
}

/** Why an update's plan has no build or copy count. */
export const COUNTED_BY_PREVIEW = "not counted by an update (a preview counts them; the copy line below says what it copied)";

export interface HostPlan {
    storePathBefore: string | null;
    storePathAfter: string;
    /** The build host, when the system is built there (buildHost). */
    buildHost?: string;
    packages: Known<{ changes: PackageChange[] }> | Unknown;
    /** Derivations to build on this machine (buildOn: local). */
    build: Known<{ derivations: number }> | Unknown;
    /** Store paths of the new system the host may lack: its closure minus the recorded system's (which the host holds). */
    copy: Known<{ paths: number; bytes: number }> | Unknown;
    /** Whether the new system needs a reboot: its kernel, initrd or kernel-modules differ from the booted system's. */
    reboot: Known<{ needed: boolean; changed: BootLink[]; against?: string }> | Unknown;
}

const unknown = (reason: string): Unknown => ({ known: false, reason });

async function packageChanges(runner: ProcessRunner, request: PlanRequest, cache?: PackageCache): Promise<HostPlan["packages"]> {
    if (!request.old) return unknown("no recorded deployment to compare with");
    if (!request.old.drvPath) return unknown("the recorded deployment has no derivation (pinned by rollback, or read back by refresh)");
    if (!request.new.drvPath) return unknown("the new system has no derivation (pinned by rollback)");
    let before, after;
    try {
        [before, after] = await Promise.all([derivationPackages(runner, request.old.drvPath, cache), derivationPackages(runner, request.new.drvPath, cache)]);
    } catch (error) {
        // Nix did not answer (killed, timed out, no daemon): that says nothing about the derivations.
        return unknown(`Nix could not list the packages: ${error instanceof Error ? error.message : String(error)}`);
    }
    if (!before) return unknown(`the recorded derivation ${shortStorePath(request.old.drvPath)} is not in this machine's Nix store (garbage-collected, or deployed from another machine)`);
    if (!after) return unknown(`the new derivation ${shortStorePath(request.new.drvPath)} is not in this machine's Nix store`);
    return { known: true, changes: diffPackages(before, after) };
}

async function buildCount(runner: ProcessRunner, request: PlanRequest): Promise<HostPlan["build"]> {
    if (request.buildOn === "target") return unknown("built on the host");
    if (request.buildHost !== undefined) return unknown(`built on the build host ${request.buildHost}`);
    if (request.duringUpdate) return unknown(COUNTED_BY_PREVIEW);
    if (!request.new.drvPath) return { known: true, derivations: 0 };
    const work = await pendingWork(runner, request.new.drvPath);
    return work ? { known: true, derivations: work.build.length } : unknown("nix-store --realise --dry-run could not tell");
}

async function closureOrUndefined(runner: ProcessRunner, storePath: string) {
    return localClosure(runner, storePath).catch(() => undefined);
}

async function copyCount(runner: ProcessRunner, request: PlanRequest): Promise<HostPlan["copy"]> {
    if (request.buildOn === "target") return unknown("built on the host");
    if (request.buildHost !== undefined) return unknown(`copied from the build host ${request.buildHost} once built there`);
    if (request.duringUpdate) return unknown(COUNTED_BY_PREVIEW);
    const after = await closureOrUndefined(runner, request.new.storePath);
    if (!after) return unknown("known once the system is built");
    const before = request.old ? await closureOrUndefined(runner, request.old.storePath) : undefined;
    const held = new Set((before ?? []).map((entry) => entry.path));
    const missing = after.filter((entry) => !held.has(entry.path));
    return { known: true, paths: missing.length, bytes: missing.reduce((sum, entry) => sum + entry.narSize, 0) };
}

/** The new system's boot files: from the built system when it is here, else from its derivation. */
async function newBootFiles(runner: ProcessRunner, side: PlanSide): Promise<BootFiles | undefined> {
    return (await localBootFiles(runner, side.storePath)) ?? (side.drvPath ? await derivationBootFiles(runner, side.drvPath) : undefined);
}

async function rebootCheck(runner: ProcessRunner, request: PlanRequest): Promise<HostPlan["reboot"]> {
    const booted = request.booted ?? unknown("the booted system was not read");
    if (!booted.known) return booted;
    const next = await newBootFiles(runner, request.new).catch(() => undefined);
    if (!next) return unknown("the new system's kernel, initrd and kernel-modules are known once it is built");
    const changed = changedBootLinks(booted.files, next);
    return { known: true, needed: changed.length > 0, changed, ...(booted.source ? { against: booted.source } : {}) };
}

/** The host's plan; queries the local Nix store only (the booted side comes from the caller); `packageCache` keeps each derivation's packages (src/nix/packageCache.ts) between runs. */
export async function planHost(runner: ProcessRunner, request: PlanRequest, options: { packageCache?: PackageCache } = {}): Promise<HostPlan> {
    const [packages, build, copy, reboot] = await Promise.all([packageChanges(runner, request, options.packageCache), buildCount(runner, request), copyCount(runner, request), rebootCheck(runner, request)]);
    return {
        storePathBefore: request.old?.storePath ?? null,
        storePathAfter: request.new.storePath,
        ...(request.buildHost !== undefined ? { buildHost: request.buildHost } : {}),
        packages,
        build,
        copy,
        reboot,
    };
}

/** `reboot needed (kernel, initrd changed)` / `no reboot needed` / `reboot: unknown (…)`. */
export function rebootLine(reboot: HostPlan["reboot"]): string {
    if (!reboot.known) return `reboot: unknown (${reboot.reason})`;
    const against = reboot.against ? `; ${reboot.against}` : "";
    return reboot.needed ? `reboot needed (${reboot.changed.join(", ")} changed${against})` : `no reboot needed${reboot.against ? ` (${reboot.against})` : ""}`;
}

/** Package lines shown before "… and N more". */
export const LISTED_CHANGES = 40;

function bytes(n: number): string {
    if (n < 1024) return `${n} B`;
    if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
    return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

/** One line: `packages: 1 added, 2 changed; build: 3 derivations; copy: at most 4 paths (1.2 KiB)`. */
export function planSummary(plan: HostPlan): string {
    const packages = plan.packages.known ? countChanges(plan.packages.changes) : `unknown (${plan.packages.reason})`;
    const build = plan.build.known ? `${plan.build.derivations} derivation${plan.build.derivations === 1 ? "" : "s"}` : `unknown (${plan.build.reason})`;
    const copy = plan.copy.known ? `at most ${plan.copy.paths} path${plan.copy.paths === 1 ? "" : "s"} (${bytes(plan.copy.bytes)})` : `unknown (${plan.copy.reason})`;
    if (!plan.build.known && !plan.copy.known && plan.build.reason === COUNTED_BY_PREVIEW && plan.copy.reason === COUNTED_BY_PREVIEW) {
        return `packages: ${packages}; build and copy: ${COUNTED_BY_PREVIEW}`;
    }
    return `packages: ${packages}; build: ${build}; copy: ${copy}`;
}

/** The plan for people: the system change, the summary, one line per package change, then whether it needs a reboot. */
export function formatPlan(plan: HostPlan, indent = ""): string[] {
    const system = plan.storePathBefore === null ? `(none recorded) → ${shortStorePath(plan.storePathAfter)}` : `${shortStorePath(plan.storePathBefore)} → ${shortStorePath(plan.storePathAfter)}`;
    const lines = [`${indent}system: ${system}`, ...(plan.buildHost ? [`${indent}built on: ${plan.buildHost} (buildHost)`] : []), `${indent}${planSummary(plan)}`];
    if (plan.packages.known) {
        const changes = plan.packages.changes;
        lines.push(...changes.slice(0, LISTED_CHANGES).map((change) => `${indent}  ${formatChange(change)}`));
        if (changes.length > LISTED_CHANGES) lines.push(`${indent}  … and ${changes.length - LISTED_CHANGES} more (npm run deploy -- --preview --json lists all)`);
    }
    lines.push(`${indent}${rebootLine(plan.reboot)}`);
    return lines;
}
