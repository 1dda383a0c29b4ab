// Where a deployment comes from: the flake's revision, the operator, and the number of the stack
// update that makes it. The program computes this (for `pulumi up` run by hand as for the
// operator commands) and hands it to each Host as its `provenance` input; the provider writes it
// into the deployment record. It never decides whether a host changes (it is not diffed).
import { hostname, userInfo } from "node:os";
import { numberedUpdates, readAllUpdates, runningUpdateNumber, type StackUpdate } from "../deploy/generations";
import { tail } from "../errors";
import { NIX_FLAGS } from "../nix/flags";
import type { ProcessRunner } from "../process/runner";
import type { FlakeRevision, Provenance } from "../provider/hostInputs";

const record = (value: unknown): Record<string, unknown> =>
    typeof value === "object" && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : {};
const text = (value: unknown): string | undefined => (typeof value === "string" && value ? value : undefined);
const int = (value: unknown): number | null => (typeof value === "number" && Number.isFinite(value) ? value : null);

/**
 * The revision from `nix flake metadata --json`. A clean git tree has `revision` (and `locked.rev`);
 * a dirty one has `dirtyRevision` ("<rev>-dirty", Nix 2.16 and later) or, on Nix 2.8 (Debian),
 * no revision at all: a git flake without one is dirty with its commit unknown (readProvenance
 * then asks git for a local checkout's HEAD). Flakes that are not
 * git (path:, tarballs) have no revision; lastModified and narHash identify their content.
 */
export function flakeRevisionOf(url: string, metadata: unknown): FlakeRevision {
    const m = record(metadata);
    const locked = record(m.locked);
    const clean = text(m.revision) ?? text(locked.rev);
    const dirtyRevision = text(m.dirtyRevision) ?? text(locked.dirtyRev);
    const isGit = text(locked.type) === "git" || /^git\+/.test(text(m.url) ?? text(m.resolvedUrl) ?? "");
    return {
        url,
        revision: clean ?? dirtyRevision?.replace(/-dirty$/, "") ?? null,
        dirty: clean ? false : dirtyRevision || isGit ? true : null,
        lastModified: int(m.lastModified) ?? int(locked.lastModified),
        narHash: text(locked.narHash) ?? null,
    };
}

/** `abc1234` / `abc1234-dirty` / `dirty` / `-` for tables. */
export function describeRevision(flake: FlakeRevision | null | undefined): string {
    if (!flake) return "-";
    if (flake.revision) return `${flake.revision.slice(0, 12)}${flake.dirty ? "-dirty" : ""}`;
    if (flake.dirty) return "dirty";
    return flake.narHash ? flake.narHash.replace(/^sha256-/, "").slice(0, 12) : "-";
}

/** The operator: NIXOS_FLEET_OPERATOR if set (CI), else user@machine. */
export function operatorOf(env: NodeJS.ProcessEnv = process.env, who: () => { user: string; host: string } = localIdentity): string {
    const named = env.NIXOS_FLEET_OPERATOR?.trim();
    if (named) return named;
    const { user, host } = who();
    return `${user}@${host}`;
}

function localIdentity(): { user: string; host: string } {
    let user: string;
    try {
        user = userInfo().username;
    } catch {
        user = process.env.USER ?? "unknown";
    }
    return { user, host: hostname() };
}

export interface ProvenanceOptions {
    runner: ProcessRunner;
    /** The project root (where Pulumi.yaml is): `pulumi stack history` runs there. */
    projectRoot: string;
    stackName: string;
    env?: NodeJS.ProcessEnv;
    /** The stack's history, if its read was started earlier (readStackHistory); else read here. */
    history?: Promise<StackUpdate[]>;
    /**
     * A flake's `nix flake metadata --json`, parsed, as the evaluation cache reads it once per run
     * (the same reading the evaluation is pinned to); undefined when it could not be read, and
     * then it is run here to say why. Absent: always run here.
     */
    metadata?: (flake: string) => Promise<unknown>;
}

export interface ProvenanceResult {
    /** Per flake reference (as the host files name it). */
    flakes: Map<string, FlakeRevision | null>;
    stackUpdate: number | null;
    operator: string;
    /** What could not be read; the deploy goes on, the records say null. */
    warnings: string[];
}

async function readFlake(flake: string, options: ProvenanceOptions): Promise<{ revision: FlakeRevision | null; warning?: string }> {
    const shared = await options.metadata?.(flake).catch(() => undefined);
    if (shared !== undefined) return { revision: await revisionOf(flake, shared, options) };
    let result;
    try {
        result = await options.runner(["nix", ...NIX_FLAGS, "flake", "metadata", "--json", flake], { cwd: options.projectRoot });
    } catch (error) {
        return { revision: null, warning: `could not read the revision of the flake ${flake}: ${error instanceof Error ? error.message : String(error)}` };
    }
    if (result.code !== 0) {
        return { revision: null, warning: `could not read the revision of the flake ${flake} (nix flake metadata failed): ${tail(result.stderr, 3)}` };
    }
    let metadata: unknown;
    try {
        metadata = JSON.parse(result.stdout);
    } catch {
        return { revision: null, warning: `could not read the revision of the flake ${flake}: nix flake metadata printed no JSON` };
    }
    return { revision: await revisionOf(flake, metadata, options) };
}

async function revisionOf(flake: string, metadata: unknown, options: ProvenanceOptions): Promise<FlakeRevision> {
    const revision = flakeRevisionOf(flake, metadata);
    if (revision.revision === null && revision.dirty === true) {
        // Nix 2.8 does not say which commit a dirty tree is based on; for a local checkout git does.
        const directory = localGitDirectory(metadata);
        if (directory) revision.revision = await headCommit(directory, options);
    }
    return revision;
}

/** The checkout of a git flake on this machine (locked.url file:///…), if it is one. */
export function localGitDirectory(metadata: unknown): string | undefined {
    const url = text(record(record(metadata).locked).url);
    return url?.startsWith("file:///") ? decodeURIComponent(url.slice("file://".length)) : undefined;
}

async function headCommit(directory: string, options: ProvenanceOptions): Promise<string | null> {
    try {
        const result = await options.runner(["git", "-C", directory, "rev-parse", "--verify", "HEAD"], { cwd: options.projectRoot });
        const commit = result.stdout.trim();
        return result.code === 0 && /^[0-9a-f]{40,64}$/.test(commit) ? commit : null;
    } catch {
        return null;
    }
}

/** The stack's whole history through the pulumi CLI (the program has no Automation API stack). */
export async function readStackHistory(options: ProvenanceOptions): Promise<StackUpdate[]> {
    const updates = await readAllUpdates(async (pageSize, page) => {
        const result = await options.runner(
            ["pulumi", "stack", "history", "--stack", options.stackName, "--json", "--page-size", String(pageSize), "--page", String(page)],
            { cwd: options.projectRoot },
        );
        if (result.code !== 0) throw new Error(tail(result.stderr, 3) || `pulumi stack history exited with ${result.code}`);
        return JSON.parse(result.stdout) as StackUpdate[] | null;
    });
    return numberedUpdates(updates);
}

const historyReads = new WeakMap<ProcessRunner, Map<string, Promise<StackUpdate[]>>>();

/**
 * readStackHistory once per runner, project and stack: the program starts the read first thing
 * (index.ts, before its other modules load: `pulumi stack history` takes ~0.3 s, an update's
 * records wait for its number) and Fleet.create takes the same read. A failed read is the caller's
 * to report (it is marked handled here, so a program that ends before asking does not crash).
 */
export function readStackHistoryOnce(options: Pick<ProvenanceOptions, "runner" | "projectRoot" | "stackName">): Promise<StackUpdate[]> {
    let reads = historyReads.get(options.runner);
    if (!reads) historyReads.set(options.runner, (reads = new Map()));
    const key = JSON.stringify([options.projectRoot, options.stackName]);
    let read = reads.get(key);
    if (!read) {
        read = readStackHistory(options);
        read.catch(() => undefined);
        reads.set(key, read);
    }
    return read;
}

/** Reads every flake's revision and the running update's number, concurrently. Never throws. */
export async function readProvenance(flakes: readonly string[], options: ProvenanceOptions): Promise<ProvenanceResult> {
    const warnings: string[] = [];
    const [revisions, stackUpdate] = await Promise.all([
        Promise.all([...new Set(flakes)].map(async (flake) => [flake, await readFlake(flake, options)] as const)),
        (options.history ?? readStackHistory(options)).then(
            (updates) => runningUpdateNumber(updates),
            (error: unknown) => {
                warnings.push(
                    `could not read the stack's update history, so this update's number is not recorded: ${error instanceof Error ? error.message : String(error)}`,
                );
                return null;
            },
        ),
    ]);
    const byFlake = new Map<string, FlakeRevision | null>();
    for (const [flake, { revision, warning }] of revisions) {
        byFlake.set(flake, revision);
        if (warning) warnings.push(warning);
    }
    return { flakes: byFlake, stackUpdate, operator: operatorOf(options.env), warnings };
}

/** One host's provenance input. */
export function provenanceFor(flake: string, result: ProvenanceResult): Provenance {
    return { stackUpdate: result.stackUpdate, operator: result.operator, flake: result.flakes.get(flake) ?? null };
}
