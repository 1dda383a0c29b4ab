// Relative paths in host files and stack settings mean "relative to the project root", never to
// whatever directory `pulumi` happened to be started from.
import * as os from "node:os";
import * as path from "node:path";

/** `~/x` goes to the deploying user's home (ssh would do the same); relative paths to baseDir. */
export function resolveLocalPath(file: string, baseDir: string): string {
    if (file === "~") return os.homedir();
    if (file.startsWith("~/")) return path.join(os.homedir(), file.slice(2));
    return path.resolve(baseDir, file);
}

const SCHEME = /^([A-Za-z][A-Za-z0-9+.-]*):/;

/**
 * Resolves flake references that point at a local directory: path-like references (".", "./x",
 * "../x", "~/x") and `path:` URLs (query kept). Everything else (`github:`, `git+https:`,
 * registry names like `nixpkgs`) is returned untouched.
 */
export function resolveFlakeRef(ref: string, baseDir: string): string {
    const scheme = SCHEME.exec(ref)?.[1];
    if (scheme === undefined) return isPathLike(ref) ? resolveLocalPath(ref, baseDir) : ref;
    if (scheme !== "path") return ref;
    const rest = ref.slice("path:".length);
    const queryStart = rest.indexOf("?");
    const location = queryStart === -1 ? rest : rest.slice(0, queryStart);
    const query = queryStart === -1 ? "" : rest.slice(queryStart);
    return `path:${resolveLocalPath(location || ".", baseDir)}${query}`;
}

// Nix reads a scheme-less reference as a path only when it looks like one; `nixpkgs/nixos-24.05`
// is an indirect (registry) reference.
function isPathLike(ref: string): boolean {
    return ref === "." || ref === ".." || ref === "~" || /^(\.\.?|~)?\//.test(ref);
}
