// What a host really runs: the system profile's generation and store path, the running system
// (/run/current-system) and the booted one. `pulumi refresh` and every deploy read this.
import { FleetError, tail } from "../errors";
import type { SshConnection } from "../ssh/connection";

export const SYSTEM_PROFILE = "/nix/var/nix/profiles/system";

export interface HostState {
    /** The profile's current generation number, or undefined if the host has no system profile yet. */
    generation?: number;
    /** Store path the profile points at (what the next boot runs). */
    profileStorePath?: string;
    /** Store path of /run/current-system (what runs now). */
    currentStorePath?: string;
    /** Store path of /run/booted-system. */
    bootedStorePath?: string;
    /** Contents of the running system's nixos-version file. */
    nixosVersion?: string;
}

/**
 * Script lines (with $p set to the system profile) that print the profile's link and what
 * /run/current-system and /run/booted-system point at, as an "@state" section. Shared by the
 * generation listings of `npm run generations` and of cleanup.
 */
export const PROFILE_STATE_SECTION = [
    `echo @state`,
    `echo "profile=$(readlink "$p" 2>/dev/null)"`,
    `echo "current=$(readlink -f /run/current-system 2>/dev/null)"`,
    `echo "booted=$(readlink -f /run/booted-system 2>/dev/null)"`,
] as const;

// A fixed script (no config values in it): one round trip reads everything.
export const READ_STATE_SCRIPT = [
    `p=${SYSTEM_PROFILE}`,
    `echo "profile=$(readlink "$p" 2>/dev/null)"`,
    `echo "profilePath=$(readlink -f "$p" 2>/dev/null)"`,
    `echo "current=$(readlink -f /run/current-system 2>/dev/null)"`,
    `echo "booted=$(readlink -f /run/booted-system 2>/dev/null)"`,
    `echo "version=$(cat /run/current-system/nixos-version 2>/dev/null | head -n 1)"`,
].join("; ");

export function parseHostState(output: string): HostState {
    const values = new Map<string, string>();
    for (const line of output.split("\n")) {
        const eq = line.indexOf("=");
        if (eq > 0) values.set(line.slice(0, eq), line.slice(eq + 1).trim());
    }
    const nonEmpty = (key: string) => {
        const value = values.get(key);
        return value ? value : undefined;
    };
    const generationMatch = /system-(\d+)-link$/.exec(values.get("profile") ?? "");
    const profileStorePath = generationMatch ? nonEmpty("profilePath") : undefined;
    return {
        generation: generationMatch ? Number(generationMatch[1]) : undefined,
        profileStorePath,
        currentStorePath: nonEmpty("current")?.startsWith("/nix/store/") ? nonEmpty("current") : undefined,
        bootedStorePath: nonEmpty("booted")?.startsWith("/nix/store/") ? nonEmpty("booted") : undefined,
        nixosVersion: nonEmpty("version"),
    };
}

export async function readHostState(connection: SshConnection): Promise<HostState> {
    const result = await connection.run(["sh", "-c", READ_STATE_SCRIPT]);
    if (result.code !== 0) {
        throw new FleetError({
            phase: "read",
            host: connection.target.name,
            message: "could not read the host's system profile",
            hint: "the login shell must be POSIX sh compatible",
            detail: tail(result.stderr),
        });
    }
    return parseHostState(result.stdout);
}
