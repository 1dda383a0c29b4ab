// Build phase: realise the system either here (then copy it) or on the host itself (send the
// flake's sources and build there, as `nixos-rebuild --flake` on the server did).
import { FleetError, tail } from "../errors";
import type { ProcessRunner } from "../process/runner";
import type { SshConnection } from "../ssh/connection";
import { NIX_FLAGS, isStorePath } from "./flags";

export async function buildLocally(runner: ProcessRunner, drvPath: string, host: string, signal?: AbortSignal): Promise<void> {
    const result = await runner(["nix-store", "--realise", drvPath], signal ? { signal, abortSignal: "SIGTERM" } : {});
    if (result.code !== 0) {
        throw new FleetError({
            phase: "build",
            host,
            message: "building the system failed",
            hint: `fix the build error above; nix-store --realise ${drvPath} reproduces it`,
            detail: tail(result.stderr),
        });
    }
}

interface ArchivedFlake {
    path?: string;
    inputs?: Record<string, ArchivedFlake>;
}

/** The store paths of a flake's source and all its inputs, from `nix flake archive --json`. */
export function archivedPaths(flake: ArchivedFlake): string[] {
    const own = isStorePath(flake.path) ? [flake.path] : [];
    return [...own, ...Object.values(flake.inputs ?? {}).flatMap(archivedPaths)];
}

/**
 * Copies the flake and its inputs to the host's store; returns the flake's store path there.
 * Archived locally first (so its paths are known), then sent like any closure: `nix flake
 * archive --to` cannot skip signature checks on Nix 2.8.
 */
export async function sendFlake(runner: ProcessRunner, connection: SshConnection, flake: string): Promise<string> {
    const host = connection.target.name;
    const archive = await runner(["nix", ...NIX_FLAGS, "flake", "archive", "--json", flake]);
    const archived = archive.code === 0 ? (JSON.parse(archive.stdout) as ArchivedFlake) : undefined;
    if (!archived || !isStorePath(archived.path)) {
        throw new FleetError({
            phase: "build",
            host,
            message: `could not archive the flake ${flake}`,
            hint: "check the flake reference (nix flake metadata reproduces the error)",
            detail: tail(archive.stderr),
        });
    }
    const copy = await runner(["nix", ...NIX_FLAGS, "copy", "--no-check-sigs", "--to", connection.storeUri(), ...archivedPaths(archived)], {
        env: { NIX_SSHOPTS: connection.nixSshOpts() },
    });
    if (copy.code !== 0) {
        throw new FleetError({
            phase: "copy",
            host,
            message: `sending the flake ${flake} to the host failed`,
            hint: "check that Nix runs on the host and the deploy user may add paths to its store",
            detail: tail(copy.stderr),
        });
    }
    return archived.path;
}

/** Builds attribute of the flake (already in the host's store) on the host; returns the store path. */
export async function buildOnHost(connection: SshConnection, flakePath: string, attribute: string): Promise<string> {
    const installable = `path:${flakePath}#${attribute}.config.system.build.toplevel`;
    const result = await connection.run(["nix", ...NIX_FLAGS, "build", "--no-link", "--json", installable], { asRoot: true });
    let out: unknown;
    if (result.code === 0) {
        const parsed = JSON.parse(result.stdout) as { outputs?: { out?: string } }[];
        out = parsed[0]?.outputs?.out;
    }
    if (!isStorePath(out)) {
        throw new FleetError({
            phase: "build",
            host: connection.target.name,
            message: "building the system on the host failed",
            hint: "fix the build error above; the same `nix build` on the host reproduces it",
            detail: tail(result.stderr),
        });
    }
    return out;
}
