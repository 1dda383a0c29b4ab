// Flags every local nix invocation gets: flakes on whatever the machine's nix.conf says, and no
// interactive prompts. Works with Nix 2.8 (Debian) and current Nix/Lix.
export const NIX_FLAGS = ["--extra-experimental-features", "nix-command flakes"] as const;

/** Store paths look like /nix/store/<32 base-32 chars>-<name>. */
export const STORE_PATH = /^\/nix\/store\/[0-9a-df-np-sv-z]{32}-[A-Za-z0-9+._?=-]+$/;

export function isStorePath(value: unknown): value is string {
    return typeof value === "string" && STORE_PATH.test(value);
}

/**
 * A store path for people: the first 8 characters of its hash and its name, e.g.
 * 1a2b3c4d-nixos-system-psi-24.05.2. Enough hash that two systems of one name never read alike.
 */
export function shortStorePath(path: string | null | undefined): string {
    if (!path) return "-";
    const match = /^\/nix\/store\/([0-9a-z]{32})-(.+)$/.exec(path);
    return match ? `${match[1]!.slice(0, 8)}-${match[2]}` : path;
}
