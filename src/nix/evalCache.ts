// The evaluation cache: an unchanged flake is not evaluated again. An entry is keyed by
// everything that can change what `nix eval` prints: the flake's locked content (narHash from
// `nix flake metadata`, and its lock file's nodes), the flake output and the --apply expression
// (which names each host's attribute), the Nix binary, and Nix's configuration (NIX_CONFIG and the
// nix.conf files). An entry is used only while the .drv files it names are still in the store.
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { binaryIdentity, findExecutable } from "../process/executable";
import type { ProcessRunner } from "../process/runner";
import { NIX_FLAGS } from "./flags";
import { pruneCacheFolder, readOwnFile, writeOwnFile } from "./cacheFile";

/** What one group evaluation printed: per host, its system's out and drv paths. */
export type CachedSystems = Record<string, { out: string; drv: string }>;

export interface EvalCacheKeyParts {
    /** The flake reference as the host files name it. */
    flake: string;
    /** locked.narHash from `nix flake metadata`: the flake's content. */
    narHash: string;
    /**
     * The whole `locked` attribute set: what the flake's `self` exposes besides its files
     * (lastModified, which a path: flake takes from its files' mtimes; rev, revCount, submodules),
     * none of which changes narHash but any of which a configuration can read.
     */
    locked: unknown;
    /** The lock file's nodes (`locks`): every input's locked revision and hash. */
    locks: unknown;
    /** The flake output evaluated (e.g. nixosConfigurations). */
    output: string;
    /** The --apply expression (names each host and its attribute). */
    expression: string;
    /** Nix binary and configuration (nixIdentity). */
    nix: string;
}

/** Canonical JSON: object keys sorted, so equal parts always give the same key. */
function canonical(value: unknown): string {
    if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
    if (value && typeof value === "object") {
        const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
        return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`).join(",")}}`;
    }
    return JSON.stringify(value ?? null);
}

export const CACHE_FORMAT = 1;

export function evalCacheKey(parts: EvalCacheKeyParts): string {
    return createHash("sha256").update(canonical({ format: CACHE_FORMAT, ...parts })).digest("hex");
}

/** The flake's locked content from `nix flake metadata --json`; undefined when it has no narHash (then nothing is cached). */
export function lockedContent(metadata: unknown): { narHash: string; locked: unknown; locks: unknown } | undefined {
    const m = (metadata ?? {}) as { locked?: { narHash?: unknown }; locks?: unknown };
    const narHash = m.locked?.narHash;
    if (typeof narHash !== "string" || !narHash) return undefined;
    return { narHash, locked: m.locked, locks: m.locks ?? null };
}

/** The query of a flake URL, each value percent-decoded (`+` stays `+`, as Nix reads it); undefined when it cannot be decoded. */
function flakeUrlQuery(url: string): Map<string, string> | undefined {
    const query = new Map<string, string>();
    const start = url.indexOf("?");
    if (start === -1) return query;
    const end = url.indexOf("#", start);
    try {
        for (const pair of url.slice(start + 1, end === -1 ? undefined : end).split("&")) {
            if (!pair) continue;
            const eq = pair.indexOf("=");
            query.set(decodeURIComponent(eq === -1 ? pair : pair.slice(0, eq)), decodeURIComponent(eq === -1 ? "" : pair.slice(eq + 1)));
        }
    } catch {
        return undefined;
    }
    return query;
}

/** Locked attributes a URL need not carry: where the flake is (the URL itself says), and what its revision or narHash determines. */
const WHERE = new Set(["type", "url", "path", "owner", "repo", "host"]);
const FROM_REVISION = new Set(["narHash", "lastModified", "revCount"]);

/**
 * The locked flake reference Nix printed in the metadata (`url`) when it names one content: a
 * revision (a clean git tree, github:…), or a path: flake's narHash, which Nix checks (and serves
 * from the store copy it hashed). Evaluated instead of the flake as given, Nix reads what the cache
 * key names even when the flake is edited meanwhile. Undefined for a dirty git tree: its locked
 * reference has neither (and Nix 2.8 reads the working tree whatever narHash it is given).
 *
 * Undefined too when the URL drops any other locked attribute: Nix 2.8 prints
 * `git+file:///r?ref=main&rev=…` for `git+file:///r?submodules=1` (locked.submodules true), and
 * that URL evaluates the tree WITHOUT its submodules, a different system than the flake as written.
 */
export function pinnedFlakeRef(metadata: unknown): string | undefined {
    const m = (metadata ?? {}) as { url?: unknown; locked?: Record<string, unknown> };
    const url = m.url;
    const locked = m.locked && typeof m.locked === "object" ? m.locked : {};
    if (typeof url !== "string" || !url || url.includes("#")) return undefined;
    const query = flakeUrlQuery(url);
    if (!query) return undefined;
    const rev = typeof locked.rev === "string" && /^[0-9a-f]{40}$/.test(locked.rev) ? locked.rev : undefined;
    const byRevision = rev !== undefined && (query.get("rev") === rev || (locked.type !== "git" && url.includes(rev)));
    const byNarHash = locked.type === "path" && typeof locked.narHash === "string" && locked.narHash !== "" && query.get("narHash") === locked.narHash;
    if (!byRevision && !byNarHash) return undefined;
    for (const [name, value] of Object.entries(locked)) {
        if (WHERE.has(name) || (byRevision && FROM_REVISION.has(name)) || (byRevision && name === "rev" && query.get("rev") === undefined)) continue;
        const printed = value === true ? "1" : value === false ? "0" : typeof value === "string" || typeof value === "number" ? String(value) : undefined;
        if (printed === undefined || query.get(name) !== printed) return undefined;
    }
    return url;
}

function fileFingerprint(file: string): string {
    try {
        return createHash("sha256").update(fs.readFileSync(file)).digest("hex");
    } catch {
        return "-";
    }
}

/**
 * Which Nix evaluates and how it is configured, without starting it: the nix binary's real path,
 * size and time (a new Nix is a new binary), NIX_CONFIG and the nix.conf files it reads.
 */
export function nixIdentity(env: NodeJS.ProcessEnv = process.env): string {
    const nix = findExecutable("nix", env);
    const binary = (nix && binaryIdentity(nix)) ?? "none";
    const confDir = env.NIX_CONF_DIR ?? "/etc/nix";
    const userConf = path.join(env.XDG_CONFIG_HOME ?? path.join(os.homedir(), ".config"), "nix", "nix.conf");
    return canonical({
        binary,
        NIX_CONFIG: env.NIX_CONFIG ?? null,
        NIX_USER_CONF_FILES: env.NIX_USER_CONF_FILES ?? null,
        NIX_REMOTE: env.NIX_REMOTE ?? null,
        systemConf: fileFingerprint(path.join(confDir, "nix.conf")),
        userConf: fileFingerprint(userConf),
    });
}

export interface EvalCacheStore {
    get(key: string): CachedSystems | undefined;
    set(key: string, systems: CachedSystems): void;
}

/** Entries kept; the oldest beyond this are removed when a new one is written. */
export const CACHE_ENTRIES = 256;

/** The cache directory: NIXOS_FLEET_CACHE_DIR, else $XDG_CACHE_HOME/nixos-fleet (~/.cache/nixos-fleet). */
export function cacheDir(env: NodeJS.ProcessEnv = process.env): string {
    if (env.NIXOS_FLEET_CACHE_DIR) return env.NIXOS_FLEET_CACHE_DIR;
    return path.join(env.XDG_CACHE_HOME ?? path.join(os.homedir(), ".cache"), "nixos-fleet");
}

/** One JSON file per key under dir/eval; writes are atomic (a reader never sees half an entry); an entry another user could have written is a miss. */
export function fileEvalCache(dir: string): EvalCacheStore {
    const folder = path.join(dir, "eval");
    const file = (key: string) => path.join(folder, `${key}.json`);
    return {
        get(key) {
            try {
                const parsed = JSON.parse(readOwnFile(file(key))) as { systems?: CachedSystems };
                return parsed.systems;
            } catch {
                return undefined;
            }
        },
        set(key, systems) {
            try {
                writeOwnFile(file(key), JSON.stringify({ systems }));
                pruneCacheFolder(folder, CACHE_ENTRIES);
            } catch {
                // A cache that cannot be written only costs the next run an evaluation.
            }
        },
    };
}

/** What the evaluation uses to skip unchanged flakes; counts what it did for the program's log line. */
export interface EvaluationCache {
    store: EvalCacheStore;
    /** nixIdentity() of this run. */
    nix: string;
    /** The flake's metadata (`nix flake metadata --json`), or undefined when it cannot be read; read once per run unless fresh. */
    metadata(flake: string, options?: { fresh?: boolean }): Promise<unknown>;
    /** True when every derivation is still in the store (an entry whose .drv files were collected is not used). */
    valid(drvPaths: string[]): boolean;
    hits: number;
    misses: number;
    /**
     * Where an evaluation's store goes when the caller does not wait for it (deferStores): a new
     * entry is written only after the flake's metadata is read again (it must not have changed
     * while Nix evaluated), ~60 ms of Nix that the program's hosts need not wait for. Undefined:
     * evaluateSystems stores before it returns.
     */
    pendingStores?: Promise<void>[];
}

/** `nix flake metadata --json <flake>`, parsed; undefined when Nix cannot say. */
export async function readFlakeMetadata(runner: ProcessRunner, flake: string, cwd?: string): Promise<unknown> {
    try {
        const result = await runner(["nix", ...NIX_FLAGS, "flake", "metadata", "--json", flake], { cwd });
        if (result.code !== 0) return undefined;
        return JSON.parse(result.stdout) as unknown;
    } catch {
        return undefined;
    }
}

export function evaluationCache(options: { runner: ProcessRunner; cwd?: string; env?: NodeJS.ProcessEnv; store?: EvalCacheStore; deferStores?: boolean }): EvaluationCache {
    const env = options.env ?? process.env;
    const read = new Map<string, Promise<unknown>>();
    return {
        store: options.store ?? fileEvalCache(cacheDir(env)),
        nix: nixIdentity(env),
        metadata: (flake, { fresh = false } = {}) => {
            let metadata = fresh ? undefined : read.get(flake);
            if (!metadata) {
                metadata = readFlakeMetadata(options.runner, flake, options.cwd);
                read.set(flake, metadata);
            }
            return metadata;
        },
        valid: (drvPaths) => drvPaths.every((drv) => fs.existsSync(drv)),
        hits: 0,
        misses: 0,
        ...(options.deferStores ? { pendingStores: [] } : {}),
    };
}
