// Copy phase: send the paths of a closure the host lacks over the host's SSH master connection.
import { FleetError, tail } from "../errors";
import type { ProcessRunner, RunOptions, RunResult } from "../process/runner";
import type { SshConnection } from "../ssh/connection";
import { localClosure, missingOnHost, type ClosurePath } from "./closure";
import { NIX_FLAGS } from "./flags";

export interface CopyOptions {
    runner: ProcessRunner;
    /** Let the host fetch what it can from its own binary caches. */
    substituteOnDestination?: boolean;
    onProgress?: (line: string) => void;
}

export interface CopyResult {
    pathsCopied: number;
    bytesCopied: number;
    closurePaths: number;
    closureBytes: number;
}

/**
 * Two ways Nix 2.8's daemon fails a copy when another writer adds to the same store at the same
 * time (e.g. a build host deployed in the same run while it is sent another host's derivation,
 * the same base paths): it loses its place in the stream when a path it is sent became valid
 * meanwhile (it skips that path's NAR and reads it as the next path's name), or gives up on its
 * busy database. Tried again, the copy sends only what is still missing.
 */
const LOST_PLACE = /not an absolute path: 'nix-archive-1'|SQLite database '[^'\n]*' is busy/;
export const COPY_ATTEMPTS = 3;

/** Runs a `nix copy`, again (up to COPY_ATTEMPTS in all) when it collided with another writer into the host's store. */
export async function runNixCopy(runner: ProcessRunner, argv: readonly string[], options: RunOptions, log?: (line: string) => void): Promise<RunResult> {
    for (let attempt = 1; ; attempt++) {
        const result = await runner(argv, options);
        if (result.code === 0 || attempt >= COPY_ATTEMPTS || !LOST_PLACE.test(result.stderr)) return result;
        log?.(`nix copy collided with another process adding the same paths to that store (Nix: ${LOST_PLACE.exec(result.stderr)?.[0]}); trying again (${attempt + 1} of ${COPY_ATTEMPTS})`);
    }
}

/** Which paths of a closure the host lacks, and what copying them moves (one query over the connection). */
export async function copyPlan(connection: SshConnection, closure: readonly ClosurePath[]): Promise<{ toCopy: ClosurePath[]; result: CopyResult }> {
    const missing = new Set(await missingOnHost(connection, closure.map((entry) => entry.path)));
    const toCopy = closure.filter((entry) => missing.has(entry.path));
    return {
        toCopy,
        result: {
            pathsCopied: toCopy.length,
            bytesCopied: toCopy.reduce((sum, entry) => sum + entry.narSize, 0),
            closurePaths: closure.length,
            closureBytes: closure.reduce((sum, entry) => sum + entry.narSize, 0),
        },
    };
}

export async function copyClosure(connection: SshConnection, storePath: string, options: CopyOptions): Promise<CopyResult> {
    const host = connection.target.name;
    const closure = await localClosure(options.runner, storePath, host);
    const { toCopy, result } = await copyPlan(connection, closure);
    if (toCopy.length === 0) return result;

    options.onProgress?.(`copying ${toCopy.length} paths (${result.bytesCopied} bytes) to ${host}`);
    const argv = ["nix", ...NIX_FLAGS, "copy", "--no-check-sigs", "--to", connection.storeUri()];
    if (options.substituteOnDestination) argv.push("--substitute-on-destination");
    argv.push(storePath);
    const copy = await runNixCopy(options.runner, argv, { env: { NIX_SSHOPTS: connection.nixSshOpts() } }, options.onProgress);
    if (copy.code !== 0) {
        throw new FleetError({
            phase: "copy",
            host,
            message: `nix copy of ${storePath} failed`,
            hint: /Permission denied|not allowed|trusted/i.test(copy.stderr)
                ? "a non-root deploy user must be a trusted Nix user on the host (nix.settings.trusted-users)"
                : "check the host's free disk space and that Nix runs there (the output above says more)",
            detail: tail(copy.stderr),
        });
    }
    return result;
}
