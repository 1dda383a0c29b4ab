// Copy phase: send the paths of a closure the host lacks over the host's SSH master connection.
import { FleetError, tail } from "../errors";
import type { ProcessRunner } from "../process/runner";
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
    const copy = await options.runner(argv, { env: { NIX_SSHOPTS: connection.nixSshOpts() } });
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
