// `pulumi version` is the Automation API's first question at every operator command: a pulumi run
// of ~0.2 s of CPU beside the command's own start and its config read, on a machine where those
// compete for the cores (~0.1 s of a one-host deploy here). The answer belongs to the binary: it is
// kept in the cache directory under the binary's identity (its real path, device, inode, size and
// times), so a pulumi that was replaced, updated or moved is asked again.
import * as path from "node:path";
import { readOwnFile, writeOwnFile } from "../nix/cacheFile";
import { cacheDir } from "../nix/evalCache";
import { binaryIdentity, findExecutable } from "../process/executable";
import type { RunResult } from "../process/runner";

/** What `pulumi version` prints: a version, nothing else (anything else is not kept). */
const VERSION = /^v?\d+\.\d+\.\d+[0-9A-Za-z.+-]*\n?$/;

/** The `pulumi` a run in `cwd` would start (the first executable one on PATH, found as the run finds it). */
export function pulumiOnPath(env: Readonly<Record<string, string | undefined>> = process.env, cwd: string = process.cwd()): string | undefined {
    return findExecutable("pulumi", env, cwd);
}

/**
 * `pulumi version` as run() (started in `cwd`) would give it, from the cache when this binary answered it before;
 * else run() (and kept when it answered a version). Never fails for the cache's sake.
 */
export async function pulumiVersion(run: () => Promise<RunResult>, env: Readonly<Record<string, string | undefined>> = process.env, cwd: string = process.cwd()): Promise<RunResult> {
    const binary = pulumiOnPath(env, cwd);
    const identity = binary && binaryIdentity(binary);
    if (!identity) return run();
    const file = path.join(cacheDir(env), "pulumi-version.json");
    try {
        const kept = JSON.parse(readOwnFile(file)) as { identity?: unknown; version?: unknown };
        if (kept.identity === identity && typeof kept.version === "string" && VERSION.test(kept.version)) {
            return { argv: ["pulumi", "version"], code: 0, signal: null, stdout: kept.version, stderr: "", timedOut: false, durationMs: 0 };
        }
    } catch {
        // No entry (or another user's, or unreadable): ask.
    }
    const result = await run();
    if (result.code === 0 && VERSION.test(result.stdout)) {
        try {
            writeOwnFile(file, JSON.stringify({ identity, version: result.stdout }));
        } catch {
            // A cache that cannot be written only costs the next command this run.
        }
    }
    return result;
}
