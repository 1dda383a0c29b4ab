// Reading a file of the local caches (packageCache.ts, evalCache.ts) only if
// no other user could have written it: a cache directory that is shared, or another user's
// (NIXOS_FLEET_CACHE_DIR), must not be able to plant an evaluation or a plan. Writing one whole or
// not at all.
import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";

/** The file's text if this user owns it and nobody else may write it; else throws. */
export function readOwnFile(file: string): string {
    const fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
    try {
        const stat = fs.fstatSync(fd);
        if (!stat.isFile() || (typeof process.getuid === "function" && stat.uid !== process.getuid()) || (stat.mode & 0o022) !== 0) {
            throw new Error(`${file}: not this user's own file`);
        }
        return fs.readFileSync(fd, "utf8");
    } finally {
        fs.closeSync(fd);
    }
}

/**
 * Writes the file atomically (a reader never sees half of it), readable by this user only, its
 * directory made if missing; throws when it cannot, leaving no temporary file behind. The
 * temporary file is a new one with a name nobody can guess: in a directory another user can
 * write, a link planted at a predictable name would have this write go to the file it points to.
 */
export function writeOwnFile(file: string, text: string): void {
    const tmp = `${file}.${process.pid}.${randomBytes(8).toString("hex")}.tmp`;
    let created = false;
    try {
        fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
        // "wx": created here, or it fails (never follows a link, never opens another's file).
        fs.writeFileSync(tmp, text, { mode: 0o600, flag: "wx" });
        created = true;
        fs.renameSync(tmp, file);
    } catch (error) {
        if (created) fs.rmSync(tmp, { force: true });
        throw error;
    }
}

/** A temporary file this old was left by a process that died between its write and its rename. */
const STALE_TMP_MS = 60 * 60 * 1000;

/**
 * Keeps a cache folder to its newest `keep` entries (`*.json`, by modification time) and removes
 * the temporary files of writes that died before their rename.
 */
export function pruneCacheFolder(folder: string, keep: number): void {
    const names = fs.readdirSync(folder);
    for (const name of names.filter((name) => name.endsWith(".tmp"))) {
        try {
            if (Date.now() - fs.statSync(path.join(folder, name)).mtimeMs > STALE_TMP_MS) fs.rmSync(path.join(folder, name), { force: true });
        } catch {
            // Gone already (another process's prune or rename).
        }
    }
    const entries = names.filter((name) => name.endsWith(".json"));
    if (entries.length <= keep) return;
    const aged = entries
        .flatMap((name) => {
            try {
                return [{ name, mtime: fs.statSync(path.join(folder, name)).mtimeMs }];
            } catch {
                return [];
            }
        })
        .sort((a, b) => a.mtime - b.mtime);
    for (const { name } of aged.slice(0, aged.length - keep)) fs.rmSync(path.join(folder, name), { force: true });
}
