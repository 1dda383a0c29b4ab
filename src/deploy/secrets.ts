// Secret files on a host: written over the host's master connection by a fixed script whose
// arguments are only the validated path, owner, group and mode; the content goes through ssh's
// stdin, never a command line, the Nix store or a log. The file is created in the target
// directory under umask 077, gets its owner and mode before any content is written, is flushed,
// and then renamed over the old one, so readers see the old file or the whole new one.
import type { SecretFile } from "../config/secretFiles";
import { secretPathProblem, ACCOUNT_PATTERN } from "../config/secretFiles";
import { FleetError, tail } from "../errors";
import type { SshConnection } from "../ssh/connection";

export interface NamedSecretFile extends SecretFile {
    name: string;
}

/**
 * Shell functions: `walk DIR` fails unless every existing component of DIR (from /) belongs to root
 * (or the user running the script) and no other user can change it: a directory writable by group
 * or others (unless sticky), or a symlink another user made, would let them redirect the write,
 * chown, chmod or rm of a secret to any file (a service's own /var/lib/<service>, /etc/shadow).
 */
const TRUSTED_PATH_FUNCTIONS = [
    "me=$(id -u)",
    "trusted() {",
    "    info=$(stat -c '%u %a %F' -- \"$1\") || exit 1",
    // sh has no local variables: these names are the function's alone.
    '    uid=${info%% *} info=${info#* }',
    '    perm=${info%% *} kind=${info#* }',
    '    if [ "$uid" != 0 ] && [ "$uid" != "$me" ]; then',
    '        echo "$1 belongs to uid $uid: a secret\'s directories must be changeable by root only (another user could redirect the file)" >&2; exit 1',
    "    fi",
    '    if [ "$kind" = directory ] && [ $((0$perm & 01000)) -eq 0 ] && [ $((0$perm & 022)) -ne 0 ]; then',
    '        echo "$1 is writable by group or others: a secret\'s directories must be changeable by root only" >&2; exit 1',
    "    fi",
    "}",
    "walk() {",
    "    trusted /",
    '    at= rest=${1#/}',
    '    while [ -n "$rest" ]; do',
    '        part=${rest%%/*}',
    '        if [ "$part" = "$rest" ]; then rest=; else rest=${rest#*/}; fi',
    '        at=$at/$part',
    '        [ -e "$at" ] || [ -L "$at" ] || return 0',
    '        trusted "$at"',
    "    done",
    "}",
    // The directory as written and where its symlinks lead.
    'walk_dir() { walk "$1"; walk "$(cd -P -- "$1" && pwd -P)"; }',
].join("\n");

/** `sh -c SCRIPT nixos-fleet-secret-put PATH OWNER GROUP MODE`, content on stdin. */
export const SECRET_PUT_SCRIPT = [
    "set -eu",
    'path=$1 owner=$2 group=$3 mode=$4',
    'dir=${path%/*}; [ -n "$dir" ] || dir=/',
    TRUSTED_PATH_FUNCTIONS,
    'walk "$dir"',
    // Directories made here can be entered, not listed, by others: the owner may not be root.
    'if [ ! -d "$dir" ]; then (umask 022; mkdir -p -- "$dir"); chmod 0711 -- "$dir"; fi',
    'walk_dir "$dir"',
    // From here on, names relative to the checked directory: nothing on the way can change.
    'cd -P -- "$dir"',
    'name=${path##*/}',
    // mv onto a directory would put the file inside it.
    'if [ -d "$name" ]; then echo "$path is a directory" >&2; exit 1; fi',
    "umask 077",
    'tmp=$(mktemp -- ./.nixos-fleet-secret.XXXXXX)',
    'trap \'rm -f -- "$tmp"\' EXIT',
    'chown -- "$owner:$group" "$tmp"',
    'chmod -- "$mode" "$tmp"',
    'cat > "$tmp"',
    'sync -- "$tmp" 2>/dev/null || sync',
    'mv -f -- "$tmp" "./$name"',
    "trap - EXIT",
].join("\n");

/** `sh -c SCRIPT nixos-fleet-secret-rm PATH…`: removes each file; a missing one is fine. */
export const SECRET_REMOVE_SCRIPT = [
    "set -eu",
    TRUSTED_PATH_FUNCTIONS,
    "for path; do",
    '    dir=${path%/*}; [ -n "$dir" ] || dir=/',
    '    [ -d "$dir" ] || continue',
    '    walk_dir "$dir"',
    '    rm -f -- "$path"',
    "done",
].join("\n");

/** `sh -c SCRIPT nixos-fleet-secret-check PATH…`: prints the paths that are not regular files. */
export const SECRET_CHECK_SCRIPT = 'for path; do [ -f "$path" ] || printf "%s\\n" "$path"; done';

/** The argv that writes one secret (the value is not in it: it goes to stdin). */
export function secretPutArgv(file: Pick<SecretFile, "path" | "owner" | "group" | "mode">): string[] {
    // Checked again here: this is the edge where a value reaches a remote command.
    const problem = secretPathProblem(file.path);
    if (problem) throw new Error(`secret path ${JSON.stringify(file.path)} ${problem}`);
    for (const account of [file.owner, file.group]) {
        if (!ACCOUNT_PATTERN.test(account)) throw new Error(`${JSON.stringify(account)} is not a user or group name`);
    }
    if (!/^0?[0-7]{3}$/.test(file.mode)) throw new Error(`${JSON.stringify(file.mode)} is not an octal mode`);
    return ["sh", "-c", SECRET_PUT_SCRIPT, "nixos-fleet-secret-put", file.path, file.owner, file.group, file.mode];
}

export function secretRemoveArgv(paths: readonly string[]): string[] {
    for (const path of paths) {
        const problem = secretPathProblem(path);
        if (problem) throw new Error(`secret path ${JSON.stringify(path)} ${problem}`);
    }
    return ["sh", "-c", SECRET_REMOVE_SCRIPT, "nixos-fleet-secret-rm", ...paths];
}

export function secretCheckArgv(paths: readonly string[]): string[] {
    return ["sh", "-c", SECRET_CHECK_SCRIPT, "nixos-fleet-secret-check", ...paths];
}

/** Writes the secret files; throws a FleetError naming the first that failed (never its value). */
export async function uploadSecrets(connection: SshConnection, host: string, files: readonly NamedSecretFile[], log: (message: string) => void): Promise<void> {
    for (const file of files) {
        const result = await connection.run(secretPutArgv(file), { asRoot: true, input: file.value, timeoutMs: 60_000 });
        if (result.code !== 0) {
            throw new FleetError({
                phase: "secrets",
                host,
                message: `could not write secret ${file.name} to ${file.path} (${file.uploadAt})${result.timedOut ? ": timed out" : ""}`,
                hint:
                    file.uploadAt === "pre-activation"
                        ? `check that ${file.owner}:${file.group} exist on the host (an account the new system creates needs uploadAt: post-activation) and that only root can change the directories of ${file.path}`
                        : `check that ${file.owner}:${file.group} exist on the host and that only root can change the directories of ${file.path}`,
                detail: tail(result.stderr),
            });
        }
        log(`secret ${file.name} written to ${file.path} (${file.mode} ${file.owner}:${file.group})`);
    }
}

/** Deletes secret files that left the configuration. */
export async function removeSecrets(connection: SshConnection, host: string, files: readonly { name: string; path: string }[], log: (message: string) => void): Promise<void> {
    if (files.length === 0) return;
    const result = await connection.run(secretRemoveArgv(files.map((file) => file.path)), { asRoot: true, timeoutMs: 60_000 });
    if (result.code !== 0) {
        throw new FleetError({
            phase: "secrets",
            host,
            message: `could not delete the removed secret(s) ${files.map((file) => `${file.name} (${file.path})`).join(", ")}`,
            hint: "the next `pulumi up` tries again; or delete the files on the host by hand",
            detail: tail(result.stderr),
        });
    }
    log(`secret(s) ${files.map((file) => file.name).join(", ")} deleted from the host`);
}

/** The paths among `paths` that are not files on the host (e.g. /run/keys emptied by a reboot). */
export async function missingSecretPaths(connection: SshConnection, paths: readonly string[]): Promise<string[]> {
    if (paths.length === 0) return [];
    const result = await connection.run(secretCheckArgv(paths), { asRoot: true, timeoutMs: 30_000 });
    if (result.code !== 0) {
        throw new FleetError({ phase: "read", host: connection.target.name, message: "could not check the host's secret files", detail: tail(result.stderr) });
    }
    const missing = new Set(result.stdout.split("\n").filter(Boolean));
    return paths.filter((path) => missing.has(path));
}
