// Closure queries: which store paths a system needs, how big they are, and which of them a host
// lacks. The copy phase reports exactly the paths and bytes it will send.
import { FleetError, tail } from "../errors";
import type { ProcessRunner } from "../process/runner";
import type { SshConnection } from "../ssh/connection";
import { NIX_FLAGS } from "./flags";

export interface ClosurePath {
    path: string;
    narSize: number;
}

/** The closure of storePath in the local store, with each path's NAR size. */
export async function localClosure(runner: ProcessRunner, storePath: string, host?: string): Promise<ClosurePath[]> {
    const result = await runner(["nix", ...NIX_FLAGS, "path-info", "--json", "--recursive", storePath]);
    if (result.code !== 0) {
        throw new FleetError({
            phase: "copy",
            host,
            message: `${storePath} is not in the local store`,
            hint: "it must be built before it can be copied (buildOn: local builds it)",
            detail: tail(result.stderr),
        });
    }
    return parsePathInfo(result.stdout);
}

/** `nix path-info --json` output: Nix 2.8 prints a list of {path, narSize, …}; newer Nix an object keyed by path. */
export function parsePathInfo(stdout: string): ClosurePath[] {
    const parsed = JSON.parse(stdout) as unknown;
    const entries: [string, { narSize?: number } | null][] = Array.isArray(parsed)
        ? (parsed as { path: string; narSize?: number }[]).map((entry) => [entry.path, entry])
        : Object.entries(parsed as Record<string, { narSize?: number } | null>);
    return entries.map(([path, info]) => ({ path, narSize: info?.narSize ?? 0 }));
}

/** The closure of storePath in the host's store (e.g. a system built there), with NAR sizes. */
export async function hostClosure(connection: SshConnection, storePath: string): Promise<ClosurePath[]> {
    const result = await connection.run(["nix", ...NIX_FLAGS, "path-info", "--json", "--recursive", storePath]);
    if (result.code !== 0) {
        throw new FleetError({
            phase: "build",
            host: connection.target.name,
            message: `could not read the closure of ${storePath} in the host's store`,
            hint: "the build on the host should have left it there; nix path-info on the host reproduces the error",
            detail: tail(result.stderr),
        });
    }
    return parsePathInfo(result.stdout);
}

/** The subset of paths that are not valid in the host's store (one command over the master). */
export async function missingOnHost(connection: SshConnection, paths: string[]): Promise<string[]> {
    if (paths.length === 0) return [];
    const result = await connection.run(["nix-store", "--check-validity", "--print-invalid", ...paths]);
    if (result.code !== 0) {
        throw new FleetError({
            phase: "copy",
            host: connection.target.name,
            message: "could not query the host's Nix store",
            hint: "is Nix installed on the host and nix-store on the login user's PATH?",
            detail: tail(result.stderr),
        });
    }
    return result.stdout.split("\n").map((line) => line.trim()).filter(Boolean);
}
