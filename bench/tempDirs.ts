// The bench's temporary project directories (the empty program's, the floors'): removed by their
// owner's dispose, and by any exit before it (Ctrl-C stops the sandbox hosts, then exits at once,
// skipping the finally blocks that would have disposed of them).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const live = new Set<string>();
let hooked = false;

/** A new directory under the system's temporary directory, removed at the process's exit if not before. */
export function benchTempDir(prefix: string): string {
    const dir = mkdtempSync(join(tmpdir(), prefix));
    live.add(dir);
    if (!hooked) {
        hooked = true;
        process.once("exit", () => {
            for (const left of live) rmSync(left, { recursive: true, force: true });
        });
    }
    return dir;
}

/** Removes a directory benchTempDir made. */
export function removeBenchTempDir(dir: string): void {
    rmSync(dir, { recursive: true, force: true });
    live.delete(dir);
}
