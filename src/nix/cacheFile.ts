// Reading a file of the local caches (packageCache.ts, evalCache.ts) only if no other user could
// have written it: a cache directory that is shared, or another user's (NIXOS_FLEET_CACHE_DIR),
// must not be able to plant an evaluation or a plan.
import * as fs from "node:fs";

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
