// Generation cleanup after a deploy: deletes old system generations of a host by count
// (keepGenerations) and/or age (deleteOlderThan), never the profile's current generation, the
// running or booted system, or anything the stack still records; then optionally runs the Nix
// garbage collector. The decision is a pure function (chooseGenerationsToDelete); the host is read
// in one round trip and changed with two commands at most (nix-env --delete-generations, nix-store --gc).
import { FleetError, tail } from "../errors";
import type { SshConnection } from "../ssh/connection";
import { SYSTEM_PROFILE, PROFILE_STATE_SECTION } from "./hostState";

export interface CleanupPolicy {
    /** Keep (at least) the newest this many generations, by number. At least 1. */
    keepGenerations?: number;
    /** Delete only generations older than this many days: "30d" (days only, as nix-collect-garbage). */
    deleteOlderThan?: string;
    /** Run `nix-store --gc` on the host afterwards (even when no generation was deleted). */
    gc: boolean;
}

/** Generations the stack still needs, whatever the policy says. */
export interface ProtectedPaths {
    /** Store paths the stack records (its deployment history): generations holding them stay. */
    storePaths?: readonly string[];
    /** Generation numbers that stay. */
    generations?: readonly number[];
}

export interface CleanupResult {
    /** Generations deleted, ascending. */
    deleted: number[];
    /** Generations left on the host (everything not deleted, protected ones included), ascending. */
    kept: number[];
    /**
     * Generations the policy would have deleted but a protection kept, ascending, with the
     * reasons ("running system (/run/current-system)", …; several are joined by "; ").
     */
    protectedGenerations: { generation: number; why: string }[];
    /** Present when the garbage collector ran; `freed` as Nix printed it ("12.34 MiB"), or null. */
    gc?: { freed: string | null };
}

/** One system-N-link as the host has it. */
export interface ProfileGeneration {
    generation: number;
    /** readlink -f of the link; undefined when it could not be read. */
    storePath?: string;
    /** The link's own mtime (what nix-env lists and --delete-generations Nd uses), if known. */
    createdAt?: Date;
}

export interface ProfileGenerations {
    /** Ascending by number. */
    generations: ProfileGeneration[];
    /** The profile's current generation (the boot default), if the host has a system profile. */
    profileGeneration?: number;
    runningStorePath?: string;
    bootedStorePath?: string;
}

export interface CleanupDecision {
    deleted: number[];
    kept: number[];
    protectedGenerations: { generation: number; why: string }[];
}

// A fixed script (no config values in it): one round trip reads every generation link's number,
// target and mtime (the link itself: stat without -L), the profile's current generation and the
// /run links. Sections are marked with lines starting with '@'. Reading needs no root.
export const READ_GENERATIONS_SCRIPT = [
    `p=${SYSTEM_PROFILE}`,
    `echo @links`,
    `for l in "$p"-*-link; do`,
    `[ -L "$l" ] || continue;`,
    `n=\${l#"$p"-}; n=\${n%-link};`,
    `case $n in ''|*[!0-9]*) continue;; esac;`,
    `t=$(readlink -f "$l" 2>/dev/null);`,
    `m=$(stat -c %Y "$l" 2>/dev/null);`,
    `printf 'link\\t%s\\t%s\\t%s\\n' "$n" "$m" "$t";`,
    `done`,
    ...PROFILE_STATE_SECTION,
].join("\n");

const storePathOrUndefined = (value: string | undefined): string | undefined =>
    value && value.startsWith("/nix/store/") ? value : undefined;

/** Parses the output of READ_GENERATIONS_SCRIPT. */
export function parseProfileGenerations(output: string): ProfileGenerations {
    let section = "";
    const byNumber = new Map<number, ProfileGeneration>();
    const state = new Map<string, string>();
    for (const raw of output.split("\n")) {
        const line = raw.replace(/\r$/, "");
        if (/^@(links|state)\s*$/.test(line)) {
            section = line.trim().slice(1);
            continue;
        }
        if (section === "links") {
            const [kind, number, mtime, ...target] = line.split("\t");
            if (kind !== "link" || !number || !/^\d+$/.test(number)) continue;
            const seconds = mtime && /^\d+$/.test(mtime) ? Number(mtime) : undefined;
            byNumber.set(Number(number), {
                generation: Number(number),
                storePath: storePathOrUndefined(target.join("\t").trim()),
                createdAt: seconds === undefined ? undefined : new Date(seconds * 1000),
            });
        } else if (section === "state") {
            const eq = line.indexOf("=");
            if (eq > 0) state.set(line.slice(0, eq), line.slice(eq + 1).trim());
        }
    }
    const profileMatch = /system-(\d+)-link$/.exec(state.get("profile") ?? "");
    return {
        generations: [...byNumber.values()].sort((a, b) => a.generation - b.generation),
        profileGeneration: profileMatch ? Number(profileMatch[1]) : undefined,
        runningStorePath: storePathOrUndefined(state.get("current")),
        bootedStorePath: storePathOrUndefined(state.get("booted")),
    };
}

const DAY_MS = 24 * 60 * 60 * 1000;

function policyError(message: string, hint: string): FleetError {
    return new FleetError({ phase: "activate", message: `cleanup: ${message}`, hint });
}

/** "30d" → 30. Throws a FleetError for anything else (the host schema already enforces it). */
export function parseDays(value: string): number {
    const match = /^([1-9][0-9]*)d$/.exec(value);
    if (!match) throw policyError(`deleteOlderThan must be an age in days such as "30d", not "${value}"`, 'write the age in whole days: "30d"');
    return Number(match[1]);
}

/**
 * Which generations to delete. A generation is deleted only when every configured rule allows it:
 * - keepGenerations K: it is not among the K newest (highest-numbered) generations;
 * - deleteOlderThan "Nd": its link was made more than N days before `now`.
 * With neither rule configured nothing is deleted. A generation the rules allow is still kept when
 * it is the profile's current generation, holds the running or booted system, holds a store path
 * in protect.storePaths, has a number in protect.generations, or its store path is unknown (then
 * none of those can be ruled out); it is then listed in protectedGenerations with the reasons.
 */
export function chooseGenerationsToDelete(
    snapshot: ProfileGenerations,
    policy: Pick<CleanupPolicy, "keepGenerations" | "deleteOlderThan">,
    protect: ProtectedPaths,
    now: Date,
): CleanupDecision {
    const { keepGenerations, deleteOlderThan } = policy;
    if (keepGenerations !== undefined && (!Number.isInteger(keepGenerations) || keepGenerations < 1)) {
        throw policyError(`keepGenerations must be a whole number of at least 1, not ${keepGenerations}`, "keep at least the generation the host runs: keepGenerations: 1 or more");
    }
    const cutoff = deleteOlderThan === undefined ? undefined : now.getTime() - parseDays(deleteOlderThan) * DAY_MS;

    const generations = [...snapshot.generations].sort((a, b) => a.generation - b.generation);
    const all = generations.map((g) => g.generation);
    if (keepGenerations === undefined && cutoff === undefined) return { deleted: [], kept: all, protectedGenerations: [] };

    const newest = new Set(keepGenerations === undefined ? [] : all.slice(-keepGenerations));
    const protectedPaths = new Set(protect.storePaths ?? []);
    const protectedNumbers = new Set(protect.generations ?? []);

    const deleted: number[] = [];
    const kept: number[] = [];
    const protectedGenerations: { generation: number; why: string }[] = [];
    for (const g of generations) {
        const byCount = keepGenerations === undefined || !newest.has(g.generation);
        const byAge = cutoff === undefined || (g.createdAt !== undefined && g.createdAt.getTime() < cutoff);
        if (!byCount || !byAge) {
            kept.push(g.generation);
            continue;
        }
        const reasons: string[] = [];
        if (g.generation === snapshot.profileGeneration) reasons.push("current generation of the system profile (the boot default)");
        if (g.storePath === undefined) reasons.push("its store path could not be read");
        if (g.storePath !== undefined && g.storePath === snapshot.runningStorePath) reasons.push("running system (/run/current-system)");
        if (g.storePath !== undefined && g.storePath === snapshot.bootedStorePath) reasons.push("booted system (/run/booted-system)");
        if (g.storePath !== undefined && protectedPaths.has(g.storePath)) reasons.push("recorded in the stack's deployment history");
        if (protectedNumbers.has(g.generation)) reasons.push("protected generation");
        if (reasons.length > 0) {
            kept.push(g.generation);
            protectedGenerations.push({ generation: g.generation, why: reasons.join("; ") });
        } else {
            deleted.push(g.generation);
        }
    }
    return { deleted, kept, protectedGenerations };
}

/**
 * The amount `nix-store --gc` says it freed, as printed: "3 store paths deleted, 0.05 MiB freed"
 * (Nix 2.x, Lix), "… 1.2 GiB freed", "… 512 bytes freed", "1 store path deleted, …". The last
 * such line wins. null when there is none.
 */
export function parseGcFreed(output: string): string | null {
    const pattern = /\b\d+\s+store\s+paths?\s+deleted,\s+(\d[\d.,]*\s*(?:[KMGTPE]i?B|bytes|B)?)\s+freed\b/gi;
    let freed: string | null = null;
    for (const match of output.matchAll(pattern)) freed = match[1]!.replace(/\s+/g, " ").trim();
    return freed;
}

const DELETE_TIMEOUT_MS = 5 * 60_000;
const GC_TIMEOUT_MS = 60 * 60_000;

const list = (numbers: readonly number[]): string => numbers.join(", ");

function rootHint(connection: SshConnection, command: string): string {
    return `${command} needs root: give ${connection.target.user} passwordless sudo, or connect as root`;
}

/**
 * Reads the host's system generations, deletes those the policy allows and nothing protected, then
 * runs the garbage collector if policy.gc. Throws a FleetError (phase "activate", message starting
 * "cleanup:"); the caller decides whether that matters (it must not fail a deploy that succeeded).
 */
export async function cleanupGenerations(
    connection: SshConnection,
    policy: CleanupPolicy,
    protect: ProtectedPaths,
    options: { log?: (line: string) => void; now?: Date } = {},
): Promise<CleanupResult> {
    const log = options.log ?? (() => undefined);
    const host = connection.target.name;

    const read = await connection.run(["sh", "-c", READ_GENERATIONS_SCRIPT], { timeoutMs: 60_000 });
    if (read.code !== 0 || !/^@state\s*$/m.test(read.stdout)) {
        throw new FleetError({
            phase: "activate",
            host,
            message: read.timedOut ? "cleanup: reading the system generations did not finish in time" : "cleanup: could not read the system generations",
            hint: "the login shell must be POSIX sh compatible and have readlink and stat (coreutils)",
            detail: tail(read.stderr),
        });
    }
    const snapshot = parseProfileGenerations(read.stdout);
    const decision = chooseGenerationsToDelete(snapshot, policy, protect, options.now ?? new Date());
    const result: CleanupResult = { ...decision };

    const saved = decision.protectedGenerations.map((p) => `${p.generation} (${p.why})`);
    if (decision.deleted.length === 0) {
        log(`cleanup: no generation to delete${saved.length ? `; protected: ${saved.join(", ")}` : ""}`);
    } else {
        log(`cleanup: deleting generations ${list(decision.deleted)}${saved.length ? `; protected: ${saved.join(", ")}` : ""}`);
        const argv = ["nix-env", "-p", SYSTEM_PROFILE, "--delete-generations", ...decision.deleted.map(String)];
        const deleted = await connection.run(argv, { asRoot: true, timeoutMs: DELETE_TIMEOUT_MS });
        if (deleted.code !== 0) {
            throw new FleetError({
                phase: "activate",
                host,
                message: deleted.timedOut
                    ? `cleanup: deleting generations ${list(decision.deleted)} did not finish in time`
                    : `cleanup: could not delete generations ${list(decision.deleted)}`,
                hint: /sudo: /.test(deleted.stderr) ? rootHint(connection, "nix-env") : `log in and run: ${argv.join(" ")}`,
                detail: tail(deleted.stderr),
            });
        }
    }

    if (policy.gc) {
        log("cleanup: collecting garbage (nix-store --gc)");
        const gc = await connection.run(["nix-store", "--gc"], { asRoot: true, timeoutMs: GC_TIMEOUT_MS });
        if (gc.code !== 0) {
            const done = decision.deleted.length ? `deleted generations ${list(decision.deleted)}, but ` : "";
            throw new FleetError({
                phase: "activate",
                host,
                message: gc.timedOut ? `cleanup: ${done}nix-store --gc did not finish in time` : `cleanup: ${done}nix-store --gc failed`,
                hint: /sudo: /.test(gc.stderr) ? rootHint(connection, "nix-store --gc") : "log in and run: nix-store --gc",
                detail: tail(gc.stderr),
            });
        }
        const freed = parseGcFreed(`${gc.stdout}\n${gc.stderr}`);
        result.gc = { freed };
        log(`cleanup: garbage collection ${freed === null ? "done" : `freed ${freed}`}`);
    }
    return result;
}
