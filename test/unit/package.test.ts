// The package's manifest against its code: every runtime dependency is used by the shipped code
// (an unused one costs every installing project, e.g. @pulumi/command made `pulumi about` list a
// `command` plugin that Pulumi then wants to download), and everything the shipped code loads at
// runtime is a declared dependency or a Node.js built-in (an undeclared one works only when a
// package manager happens to hoist it).
import { readFileSync, readdirSync, statSync } from "node:fs";
import { builtinModules } from "node:module";
import { join, relative } from "node:path";
import { describe, expect, it } from "vitest";

const root = join(__dirname, "..", "..");
const manifest = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as {
    dependencies: Record<string, string>;
    peerDependencies: Record<string, string>;
    devDependencies: Record<string, string>;
    scripts: Record<string, string>;
};
/** What an installing project provides: the package's dependencies and the peers it brings itself. */
const provided = { ...manifest.dependencies, ...manifest.peerDependencies };

/** The sources of what the package ships: src/ (compiled into dist/src) and bin/'s scripts. */
function shippedSources(dir: string): string[] {
    return readdirSync(dir).flatMap((name) => {
        const path = join(dir, name);
        if (statSync(path).isDirectory()) return shippedSources(path);
        return /\.(ts|js)$/.test(name) && !name.endsWith(".d.ts") ? [path] : [];
    });
}

/** Package names a file loads at runtime (type-only imports are erased; comments are skipped). */
export function runtimePackages(text: string): string[] {
    const code = text.replace(/\/\*[\s\S]*?\*\//g, "").replace(/^\s*\/\/.*$/gm, "");
    const specifiers = [
        ...[...code.matchAll(/^\s*(?:import|export)\s+(?!type\b)[^;]*?\bfrom\s+"([^"]+)"/gm)].map((match) => match[1]!),
        ...[...code.matchAll(/^\s*import\s+"([^"]+)"/gm)].map((match) => match[1]!),
        ...[...code.matchAll(/\b(?:require|requireFromPulumi)\(\s*"([^"]+)"\s*\)/g)].map((match) => ({ spec: match[1]!, viaPulumi: match[0].startsWith("requireFromPulumi") }))
            .filter((entry) => !entry.viaPulumi)
            .map((entry) => entry.spec),
    ];
    return [
        ...new Set(
            specifiers
                .filter((spec) => !spec.startsWith(".") && !spec.startsWith("node:") && !builtinModules.includes(spec.split("/")[0]!))
                .map((spec) => (spec.startsWith("@") ? spec.split("/").slice(0, 2).join("/") : spec.split("/")[0]!)),
        ),
    ];
}

const files = [...shippedSources(join(root, "src")), ...shippedSources(join(root, "bin"))];
const used = new Map<string, string[]>();
for (const file of files) {
    for (const name of runtimePackages(readFileSync(file, "utf8"))) used.set(name, [...(used.get(name) ?? []), relative(root, file)]);
}

describe("package.json dependencies", () => {
    it("finds what a file loads", () => {
        expect(runtimePackages('import * as a from "zod";\nimport type { B } from "@grpc/grpc-js";\nconst c = require("@x/y/z");\nconst d = requireFromPulumi("google-protobuf/x");\n// import e from "nope";')).toEqual(["zod", "@x/y"]);
    });

    it("every runtime dependency is used by the shipped code", () => {
        const unused = Object.keys(provided).filter((name) => !used.has(name));
        expect(unused, "dependencies nothing in src/ or bin/ loads").toEqual([]);
    });

    it("everything the shipped code loads is a declared dependency", () => {
        const undeclared = [...used.entries()].filter(([name]) => !(name in provided));
        expect(Object.fromEntries(undeclared), "packages loaded but not in dependencies").toEqual({});
    });
});

describe("@pulumi/pulumi (docs/design-notes.md, \"@pulumi/pulumi is a peer dependency\")", () => {
    it("is a peer dependency with a 3.x range, not a dependency: the program's own copy is the one used", () => {
        expect(manifest.dependencies).not.toHaveProperty("@pulumi/pulumi");
        expect(manifest.peerDependencies["@pulumi/pulumi"]).toMatch(/^\^3\.\d+\.\d+$/);
    });

    it("the repository's own pin (devDependencies, the CLI's version) is inside that range", () => {
        const pinned = manifest.devDependencies["@pulumi/pulumi"]!;
        const [, minor, patch] = manifest.peerDependencies["@pulumi/pulumi"]!.slice(1).split(".").map(Number);
        const [major, pinnedMinor, pinnedPatch] = pinned.split(".").map(Number);
        expect(major).toBe(3);
        expect(pinnedMinor! > minor! || (pinnedMinor === minor && pinnedPatch! >= patch!)).toBe(true);
    });
});

describe("the package's entry points", () => {
    const exportsMap = (JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { main: string; types: string; exports: Record<string, unknown> }).exports;

    it("exports only the library (src/index.ts) and package.json: dist/src/* are internals that change freely", () => {
        expect(exportsMap).toEqual({ ".": { types: "./dist/src/index.d.ts", default: "./dist/src/index.js" }, "./package.json": "./package.json" });
        const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { main: string; types: string };
        // main/types for tools that do not read exports: the same files.
        expect(`./${pkg.main}`).toBe("./dist/src/index.js");
        expect(`./${pkg.types}`).toBe("./dist/src/index.d.ts");
    });
});

describe("npm pack", () => {
    it("builds dist/ first with the script bootstrap uses (an installed package has no sources to fall back on)", () => {
        // Without it a tarball packed after an edit shipped the previous build, or none from a fresh clone.
        expect(manifest.scripts.prepack).toBe("bash scripts/build-dist");
        expect(readFileSync(join(root, "scripts", "bootstrap"), "utf8")).toContain("bash scripts/build-dist");
        const build = readFileSync(join(root, "scripts", "build-dist"), "utf8");
        expect(build).toContain("tsconfig.build.json");
        expect(build).toContain("tsconfig.types.json");
        expect(build).toContain("touch dist/.built");
    });
});
