// How nixos-fleet's entry points start: from the JavaScript scripts/bootstrap compiled into dist/
// (no TypeScript compiler loaded at every start), unless a source file is newer than that build
// (or NIXOS_FLEET_FROM_SOURCE is set): then from the sources through ts-node, so an edit is never
// ignored. Plain JavaScript on purpose: it runs before anything is compiled.
"use strict";
const fs = require("node:fs");
const path = require("node:path");

const root = path.resolve(__dirname, "..");
const stamp = path.join(root, "dist", ".built");

/** True when some .ts file under dir (or the file itself) is newer than `since` (ms). */
function newerThan(entry, since) {
    let stat;
    try {
        stat = fs.statSync(entry);
    } catch {
        return false;
    }
    if (stat.isFile()) return entry.endsWith(".ts") && stat.mtimeMs > since;
    if (!stat.isDirectory()) return false;
    return fs.readdirSync(entry).some((name) => newerThan(path.join(entry, name), since));
}

/** Whether dist/ holds a build of the current sources (index.ts and src/). */
function compiledIsCurrent() {
    if (process.env.NIXOS_FLEET_FROM_SOURCE || process.env.NIXOS_FLEET_PROVIDER_FROM_SOURCE) return false;
    let built;
    try {
        built = fs.statSync(stamp).mtimeMs;
    } catch {
        return false;
    }
    return !newerThan(path.join(root, "index.ts"), built) && !newerThan(path.join(root, "src"), built);
}

/**
 * The file to require for an entry point given without extension, relative to the project root
 * (e.g. "src/provider/main"): dist/<entry>.js, or <entry>.ts with ts-node registered.
 */
function entry(name) {
    if (compiledIsCurrent()) return path.join(root, "dist", `${name}.js`);
    require(require.resolve("ts-node", { paths: [root] })).register({ transpileOnly: true, project: path.join(root, "tsconfig.json") });
    return path.join(root, `${name}.ts`);
}

/**
 * What the Pulumi SDK sets up around every program that this one does not need, undone for the
 * compiled program (start-up cost, docs/design-notes.md): the SDK's inspector session with the
 * Debugger domain on (for closure serialization, which nixos-fleet never uses; every script parsed
 * after it becomes an event), and source-map-support's stack formatting, through which the SDK
 * sends the stack it records for every promise it makes. Stack traces then name dist/ lines;
 * NIXOS_FLEET_FROM_SOURCE=1 runs the sources, with their TypeScript positions.
 */
function lightenSdkRuntime() {
    Error.prepareStackTrace = undefined;
    try {
        const hooks = require(require.resolve("@pulumi/pulumi/runtime/closure/v8Hooks", { paths: [root] }));
        hooks.getSessionAsync().then((session) => session.post("Debugger.disable"), () => undefined);
    } catch {
        // Another SDK layout: nothing to undo.
    }
}

/** The program's entry (index): its file to require, with the SDK's runtime lightened when compiled. */
function programEntry() {
    const file = entry("index");
    if (file.endsWith(".js")) lightenSdkRuntime();
    return file;
}

/**
 * What an operator command says before it runs the sources instead of the build (they start a few
 * times slower): undefined when it runs the build, or when NIXOS_FLEET_FROM_SOURCE asked for the sources.
 */
function staleBuildNotice() {
    if (process.env.NIXOS_FLEET_FROM_SOURCE || compiledIsCurrent()) return undefined;
    const why = fs.existsSync(stamp) ? "a source file is newer than the compiled build in dist/" : "there is no compiled build in dist/";
    return `nixos-fleet: running the TypeScript sources (${why}), which starts slower; \`bash scripts/build-dist\` builds it\n`;
}

module.exports = { entry, compiledIsCurrent, programEntry, staleBuildNotice };
