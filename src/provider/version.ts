// The plugin's version is the package's: read from the nearest package.json above this file (the
// sources and the compiled dist/ sit at different depths).
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";

export function packageVersion(from = __dirname): string {
    for (let dir = from; ; dir = dirname(dir)) {
        const file = join(dir, "package.json");
        if (existsSync(file)) {
            const manifest = JSON.parse(readFileSync(file, "utf8")) as { name?: string; version?: string };
            if (manifest.name === "nixos-fleet" && manifest.version) return manifest.version;
        }
        if (dirname(dir) === dir) throw new Error(`no package.json of nixos-fleet above ${from}`);
    }
}
