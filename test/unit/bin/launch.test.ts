// bin/launch.js: the entry points run the compiled dist/ only while it is a build of the current
// sources; a newer source file (or NIXOS_FLEET_FROM_SOURCE) runs the sources instead.
import { describe, expect, it } from "vitest";
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { execFileSync } from "node:child_process";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

const ROOT = resolve(__dirname, "../../..");

function project(): string {
    const dir = mkdtempSync(join(tmpdir(), "nf-launch-"));
    mkdirSync(join(dir, "bin"));
    mkdirSync(join(dir, "src", "cli"), { recursive: true });
    mkdirSync(join(dir, "dist"));
    copyFileSync(join(ROOT, "bin", "launch.js"), join(dir, "bin", "launch.js"));
    writeFileSync(join(dir, "index.ts"), "export = 1;\n");
    writeFileSync(join(dir, "src", "cli", "main.ts"), "export {};\n");
    const past = new Date(Date.now() - 60_000);
    for (const file of ["index.ts", "src/cli/main.ts"]) utimesSync(join(dir, file), past, past);
    writeFileSync(join(dir, "dist", ".built"), "");
    return dir;
}

const current = (dir: string, env: Record<string, string> = {}): boolean =>
    execFileSync("node", ["-e", `process.stdout.write(String(require(${JSON.stringify(join(dir, "bin", "launch.js"))}).compiledIsCurrent()))`], {
        env: { PATH: process.env.PATH ?? "", ...env },
    }).toString() === "true";

describe("bin/launch.js", () => {
    it("runs the build while no source is newer; an edited source or index.ts, or NIXOS_FLEET_FROM_SOURCE, runs the sources", () => {
        const dir = project();
        try {
            expect(current(dir)).toBe(true);
            expect(current(dir, { NIXOS_FLEET_FROM_SOURCE: "1" })).toBe(false);
            const future = new Date(Date.now() + 60_000);
            utimesSync(join(dir, "src", "cli", "main.ts"), future, future);
            expect(current(dir)).toBe(false);
            utimesSync(join(dir, "src", "cli", "main.ts"), new Date(0), new Date(0));
            utimesSync(join(dir, "index.ts"), future, future);
            expect(current(dir)).toBe(false);
            utimesSync(join(dir, "index.ts"), new Date(0), new Date(0));
            rmSync(join(dir, "dist", ".built"));
            expect(current(dir)).toBe(false);
        } finally {
            rmSync(dir, { recursive: true, force: true });
        }
    });

    it("an operator command says when it runs the sources because the build is stale or missing, not when the build is current or the sources were asked for", () => {
        const dir = project();
        const notice = (env: Record<string, string> = {}): string =>
            execFileSync("node", ["-e", `process.stdout.write(String(require(${JSON.stringify(join(dir, "bin", "launch.js"))}).staleBuildNotice()))`], {
                env: { PATH: process.env.PATH ?? "", ...env },
            }).toString();
        try {
            expect(notice()).toBe("undefined");
            const future = new Date(Date.now() + 60_000);
            utimesSync(join(dir, "src", "cli", "main.ts"), future, future);
            expect(notice()).toBe("nixos-fleet: running the TypeScript sources (a source file is newer than the compiled build in dist/), which starts slower; `bash scripts/build-dist` builds it\n");
            expect(notice({ NIXOS_FLEET_FROM_SOURCE: "1" })).toBe("undefined");
            rmSync(join(dir, "dist", ".built"));
            expect(notice()).toMatch(/^nixos-fleet: running the TypeScript sources \(there is no compiled build in dist\/\)/);
        } finally {
            rmSync(dir, { recursive: true, force: true });
        }
    });

    it("the compiled program gets Node.js's own stack formatting; the sources keep source-map-support's", () => {
        const dir = project();
        const formatting = (env: Record<string, string> = {}): string =>
            execFileSync("node", ["-e", `require("source-map-support").install(); const file = require(${JSON.stringify(join(dir, "bin", "launch.js"))}).programEntry(); process.stdout.write(require("node:path").relative(${JSON.stringify(dir)}, file) + " " + typeof Error.prepareStackTrace)`], {
                cwd: ROOT,
                env: { PATH: process.env.PATH ?? "", NODE_PATH: join(ROOT, "node_modules"), ...env },
            }).toString();
        try {
            expect(formatting()).toBe("dist/index.js undefined");
            // From the sources (ts-node registered by entry()), stack traces keep their TypeScript positions.
            writeFileSync(join(dir, "tsconfig.json"), "{}");
            expect(formatting({ NIXOS_FLEET_FROM_SOURCE: "1" })).toBe("index.ts function");
        } finally {
            rmSync(dir, { recursive: true, force: true });
        }
    });
});
