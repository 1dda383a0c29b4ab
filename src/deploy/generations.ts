// A host's system generations as the host itself lists them (`nix-env --list-generations` of the
// system profile), each with its store path and NixOS version, and which one runs now, which one
// the host boots into and which one it booted. `npm run generations` shows this per host; the
// mapping to the stack updates that deployed each generation is in stackVersionOf below.
import { FleetError, tail } from "../errors";
import type { SshConnection } from "../ssh/connection";
import { SYSTEM_PROFILE, PROFILE_STATE_SECTION } from "./hostState";

/** One line of `nix-env --list-generations`. */
export interface ListedGeneration {
    generation: number;
    /** The creation time as the host prints it (its local time zone), e.g. "2025-01-31 14:02:11". */
    date: string;
    /** Marked "(current)": the profile's generation, i.e. what the host boots into next. */
    current: boolean;
}

export interface HostGeneration extends ListedGeneration {
    /** Where system-N-link points (readlink -f), if the link is there. */
    storePath?: string;
    /** First line of `<storePath>/nixos-version`, if that file exists. */
    nixosVersion?: string;
    /** This generation's system is /run/current-system. */
    running: boolean;
    /** This generation's system is /run/booted-system. */
    booted: boolean;
}

export interface HostGenerations {
    /** Oldest first, as nix-env lists them. Empty when the host has no system profile yet. */
    generations: HostGeneration[];
    /** The profile's current generation (the boot default), if any. */
    profileGeneration?: number;
    runningStorePath?: string;
    bootedStorePath?: string;
}

// A fixed script (no config values in it), run as root because nix-env takes the profile's lock
// even to list it. One round trip: the listing, every generation link's target and version, and
// the /run links. Sections are marked with lines starting with '@'.
export const LIST_GENERATIONS_SCRIPT = [
    `p=${SYSTEM_PROFILE}`,
    `echo @generations`,
    `if [ -e "$p" ] || [ -L "$p" ]; then nix-env -p "$p" --list-generations || exit $?; fi`,
    `echo @links`,
    `for l in "$p"-*-link; do`,
    `[ -L "$l" ] || continue;`,
    `n=\${l#"$p"-}; n=\${n%-link};`,
    `t=$(readlink -f "$l" 2>/dev/null);`,
    `v=$(head -n 1 "$t/nixos-version" 2>/dev/null);`,
    `printf 'link\\t%s\\t%s\\t%s\\n' "$n" "$t" "$v";`,
    `done`,
    ...PROFILE_STATE_SECTION,
].join("\n");

const LISTING_LINE = /^\s*(\d+)\s+(.*?)\s*(\(current\))?\s*$/;

/**
 * Parses `nix-env --list-generations`: "   3   2025-01-31 14:02:11   (current)". Whitespace
 * between the fields may be any run of spaces or tabs; lines that are not generations are ignored.
 */
export function parseListGenerations(output: string): ListedGeneration[] {
    const generations: ListedGeneration[] = [];
    for (const line of output.split("\n")) {
        const match = LISTING_LINE.exec(line.replace(/\r$/, ""));
        if (!match) continue;
        generations.push({
            generation: Number(match[1]),
            date: match[2]!.replace(/\s+/g, " "),
            current: match[3] !== undefined,
        });
    }
    return generations;
}

const storePathOrUndefined = (value: string | undefined): string | undefined =>
    value && value.startsWith("/nix/store/") ? value : undefined;

/** Parses the output of LIST_GENERATIONS_SCRIPT. */
export function parseHostGenerations(output: string): HostGenerations {
    const sections = new Map<string, string[]>();
    let section = "";
    for (const line of output.split("\n")) {
        if (/^@(generations|links|state)\s*$/.test(line)) {
            section = line.trim().slice(1);
            sections.set(section, []);
        } else if (section) {
            sections.get(section)!.push(line);
        }
    }
    const links = new Map<number, { storePath?: string; nixosVersion?: string }>();
    for (const line of sections.get("links") ?? []) {
        const [kind, number, storePath, ...version] = line.split("\t");
        if (kind !== "link" || !number || !/^\d+$/.test(number)) continue;
        const nixosVersion = version.join("\t").trim();
        links.set(Number(number), { storePath: storePathOrUndefined(storePath), nixosVersion: nixosVersion || undefined });
    }
    const state = new Map<string, string>();
    for (const line of sections.get("state") ?? []) {
        const eq = line.indexOf("=");
        if (eq > 0) state.set(line.slice(0, eq), line.slice(eq + 1).trim());
    }
    const runningStorePath = storePathOrUndefined(state.get("current"));
    const bootedStorePath = storePathOrUndefined(state.get("booted"));
    const profileMatch = /system-(\d+)-link$/.exec(state.get("profile") ?? "");

    const listed = parseListGenerations((sections.get("generations") ?? []).join("\n"));
    const profileGeneration = profileMatch ? Number(profileMatch[1]) : listed.find((g) => g.current)?.generation;
    const generations: HostGeneration[] = listed.map((entry) => {
        const link = links.get(entry.generation);
        return { ...entry, storePath: link?.storePath, nixosVersion: link?.nixosVersion, running: false, booted: false };
    });
    markOne(generations, runningStorePath, profileGeneration, "running");
    markOne(generations, bootedStorePath, profileGeneration, "booted");
    return { generations, profileGeneration, runningStorePath, bootedStorePath };
}

/**
 * Several generations can hold the same system (e.g. after a rollback by redeploying). Exactly one
 * is marked: the profile's current generation if it holds that system, else the newest that does.
 */
function markOne(generations: HostGeneration[], storePath: string | undefined, profileGeneration: number | undefined, flag: "running" | "booted"): void {
    if (!storePath) return;
    const holding = generations.filter((g) => g.storePath === storePath);
    const chosen = holding.find((g) => g.generation === profileGeneration) ?? holding[holding.length - 1];
    if (chosen) chosen[flag] = true;
}

/** Reads the host's system generations over the connection (one remote command). */
export async function readGenerations(connection: SshConnection, options: { timeoutMs?: number } = {}): Promise<HostGenerations> {
    const result = await connection.run(["sh", "-c", LIST_GENERATIONS_SCRIPT], { asRoot: true, timeoutMs: options.timeoutMs ?? 60_000 });
    if (result.code !== 0) {
        const sudo = /sudo: /.test(result.stderr);
        throw new FleetError({
            phase: "read",
            host: connection.target.name,
            message: result.timedOut ? "listing the system generations did not finish in time" : "could not list the system generations",
            hint: sudo
                ? `nix-env needs root to read the system profile: give ${connection.target.user} passwordless sudo, or connect as root`
                : `log in and run: nix-env -p ${SYSTEM_PROFILE} --list-generations`,
            detail: tail(result.stderr),
        });
    }
    return parseHostGenerations(result.stdout);
}

// --- which stack update deployed a generation ---

/** A deployment the stack recorded for a host (HostOutputs.history entries). */
export interface RecordedDeployment {
    generation: number | null;
    storePath: string;
    activatedAt: string;
    /** The stack update that made the record, when the program knew it (records before it: absent). */
    stackUpdate?: number | null;
}

/** What the stack's update history says about one update (Automation API UpdateSummary). */
export interface StackUpdate {
    version: number;
    kind?: string;
    startTime: Date | string;
    endTime?: Date | string;
    result?: string;
}

/** How many updates one `pulumi stack history` call asks for. */
export const HISTORY_PAGE_SIZE = 100;

/**
 * The stack's whole update history, newest first. `pulumi stack history` (and Automation API's
 * history() without a page size) returns only the newest 10, so numbering those made the labels
 * shift once a stack had more than 10 updates: this reads page after page until a short one.
 * `readPage(pageSize, page)` is one `pulumi stack history --page-size N --page P` (page from 1).
 */
export async function readAllUpdates<T>(
    readPage: (pageSize: number, page: number) => Promise<readonly T[] | null | undefined>,
    pageSize = HISTORY_PAGE_SIZE,
): Promise<T[]> {
    const all: T[] = [];
    for (let page = 1; ; page++) {
        const batch = (await readPage(pageSize, page)) ?? [];
        all.push(...batch);
        if (batch.length < pageSize) return all;
    }
}

/**
 * The number the update now running gets, from the history read while it runs: a backend that
 * lists running updates (Pulumi Cloud: result "in-progress") has numbered it already; the file://
 * backend writes an update's entry only when it ends, so it is one past the newest.
 * `updates` are numbered (numberedUpdates).
 */
export function runningUpdateNumber(updates: readonly StackUpdate[]): number {
    const running = updates.find((update) => update.result === "in-progress" || update.result === "not-started");
    if (running) return running.version;
    return updates.reduce((max, update) => Math.max(max, update.version), 0) + 1;
}

/** The stack update that made a record: its own number when recorded, else placed by its time. */
export function recordUpdate(record: Pick<RecordedDeployment, "activatedAt" | "stackUpdate">, updates: readonly StackUpdate[]): number | undefined {
    if (typeof record.stackUpdate === "number") return record.stackUpdate;
    return updateAt(updates, record.activatedAt);
}

/**
 * The stack's updates with their version numbers. Pulumi Cloud numbers every update (up, refresh,
 * destroy) of a stack 1, 2, 3, …; the file:// (DIY) backend leaves every version 0 in
 * `pulumi stack history`. Then the same numbering is derived: oldest first, counting from 1.
 * `history` is the WHOLE history (readAllUpdates), newest first: numbering a part of it gives
 * numbers that change as updates are added.
 */
export function numberedUpdates<T extends StackUpdate>(history: readonly T[]): T[] {
    if (history.some((update) => update.version > 0)) return [...history];
    const oldestFirst = history
        .map((update, index) => ({ update, index, start: millis(update.startTime) ?? 0 }))
        .sort((a, b) => a.start - b.start || b.index - a.index);
    const numbered = new Map(oldestFirst.map(({ update }, i) => [update, i + 1]));
    return history.map((update) => ({ ...update, version: numbered.get(update)! }));
}

/** Pulumi prints update times to the second; allow that much either side of the window. */
const CLOCK_SLACK_MS = 1000;

const millis = (value: Date | string | undefined): number | undefined => {
    if (value === undefined) return undefined;
    const time = value instanceof Date ? value.getTime() : Date.parse(value);
    return Number.isNaN(time) ? undefined : time;
};

/** The version of the stack update whose [startTime, endTime] contains `at`, if any. */
export function updateAt(updates: readonly StackUpdate[], at: string): number | undefined {
    const time = Date.parse(at);
    if (Number.isNaN(time)) return undefined;
    // Times are recorded to the second, so two adjacent updates can both "contain" an activation:
    // it belongs to the one that ended first (an activation happens before its update ends).
    let best: { version: number; distance: number; end: number } | undefined;
    for (const update of updates) {
        if (update.kind !== undefined && update.kind !== "update") continue;
        const start = millis(update.startTime);
        const recordedEnd = millis(update.endTime) ?? start;
        if (start === undefined || recordedEnd === undefined) continue;
        // A time recorded as hh:mm:ss covers that whole second.
        const end = recordedEnd + 999;
        const distance = time < start ? start - time : time > end ? time - end : 0;
        if (distance > CLOCK_SLACK_MS) continue;
        if (!best || distance < best.distance || (distance === best.distance && end < best.end)) {
            best = { version: update.version, distance, end };
        }
    }
    return best?.version;
}

/**
 * The stack update that deployed a generation: the earliest recorded deployment of that generation
 * number with that store path (the one that created it): the update number the record carries,
 * or for records made before records carried it, the update its activation time falls in.
 * Undefined when this stack did not deploy it (by hand, another tool, another stack) or its record
 * has aged out of the bounded history.
 */
export function stackVersionOf(
    generation: Pick<HostGeneration, "generation" | "storePath">,
    history: readonly RecordedDeployment[],
    updates: readonly StackUpdate[],
): number | undefined {
    for (const record of recordsOf(generation, history)) {
        const version = recordUpdate(record, updates);
        if (version !== undefined) return version;
    }
    return undefined;
}

/** The records of a generation (same number, same system), oldest first: the first one made it. */
export function recordsOf<T extends RecordedDeployment>(generation: Pick<HostGeneration, "generation" | "storePath">, history: readonly T[]): T[] {
    return history
        .filter((record) => record.generation === generation.generation && record.storePath === generation.storePath)
        .sort((a, b) => Date.parse(a.activatedAt) - Date.parse(b.activatedAt));
}
