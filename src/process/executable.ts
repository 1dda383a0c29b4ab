// Which binary a run of a program started by name would execute, and that binary's identity: the
// caches keyed by a tool (the evaluation cache by Nix, `pulumi version` by pulumi) ask again when
// the tool was replaced, updated or is another one.
import * as fs from "node:fs";
import * as path from "node:path";

/**
 * The file a run of `name` in `cwd` would start: the first executable file of that name on PATH,
 * found as the run finds it (an empty entry of PATH is the run's directory, a relative one is taken
 * from it); undefined when there is none.
 */
export function findExecutable(name: string, env: Readonly<Record<string, string | undefined>> = process.env, cwd: string = process.cwd()): string | undefined {
    for (const dir of (env.PATH ?? "").split(":")) {
        const file = path.resolve(cwd, dir || ".", name);
        try {
            fs.accessSync(file, fs.constants.X_OK);
            if (fs.statSync(file).isFile()) return file;
        } catch {
            // Not here.
        }
    }
    return undefined;
}

/** The binary's identity: its real path and what changes when it is replaced or rewritten; undefined when it cannot be read. */
export function binaryIdentity(file: string): string | undefined {
    try {
        const real = fs.realpathSync(file);
        const stat = fs.statSync(real);
        return JSON.stringify([real, stat.dev, stat.ino, stat.size, stat.mtimeMs, stat.ctimeMs]);
    } catch {
        return undefined;
    }
}
