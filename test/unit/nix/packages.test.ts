import { describe, expect, it } from "vitest";
import { compareVersions, countChanges, diffPackages, formatChange, packagesOf, parseDrvName, parseDryRun } from "../../../src/nix/packages";
import { shortStorePath } from "../../../src/nix/flags";
import { drvPath, storePath } from "../helpers/fixtures";

describe("parseDrvName", () => {
    it("splits at the first dash followed by a digit, like builtins.parseDrvName", () => {
        expect(parseDrvName("hello-2.12")).toEqual({ name: "hello", version: "2.12" });
        expect(parseDrvName("nixos-system-psi-24.05.2-sandbox")).toEqual({ name: "nixos-system-psi", version: "24.05.2-sandbox" });
        expect(parseDrvName("python3.11-requests-2.31.0")).toEqual({ name: "python3.11-requests", version: "2.31.0" });
        expect(parseDrvName("unit-sshd.service")).toEqual({ name: "unit-sshd.service", version: "" });
    });
});

describe("packagesOf", () => {
    it("names the versioned packages among the .drv paths; sources, scripts and unversioned names are not packages", () => {
        const packages = packagesOf([
            drvPath("hello-2.12"),
            drvPath("openssl-3.0.13"),
            drvPath("openssl-1.1.1w"),
            drvPath("unit-sshd.service"),
            drvPath("bash-5.2.tar.gz"),
            drvPath("fix-1.patch"),
            storePath("curl-8.0"), // an output or source, not a derivation
        ]);
        expect([...packages.entries()]).toEqual([
            ["hello", ["2.12"]],
            ["openssl", ["1.1.1w", "3.0.13"]],
        ]);
    });
});

describe("diffPackages", () => {
    const before = packagesOf([drvPath("hello-2.12"), drvPath("curl-8.0"), drvPath("bash-5.2"), drvPath("openssl-3.0.1")]);
    const after = packagesOf([drvPath("hello-2.13"), drvPath("bash-5.2"), drvPath("jq-1.7"), drvPath("openssl-3.0.1"), drvPath("openssl-1.1.1")]);
    const changes = diffPackages(before, after);

    it("lists added, removed and changed packages by name; unchanged ones are left out", () => {
        expect(changes).toEqual([
            { name: "curl", old: ["8.0"], new: [] },
            { name: "hello", old: ["2.12"], new: ["2.13"] },
            { name: "jq", old: [], new: ["1.7"] },
            { name: "openssl", old: ["3.0.1"], new: ["1.1.1", "3.0.1"] },
        ]);
        expect(changes.map(formatChange)).toEqual(["- curl 8.0", "~ hello 2.12 → 2.13", "+ jq 1.7", "~ openssl 3.0.1 → 1.1.1, 3.0.1"]);
        expect(countChanges(changes)).toBe("1 added, 1 removed, 2 changed");
    });

    it("two equal closures have no changes", () => {
        expect(diffPackages(before, packagesOf([drvPath("bash-5.2"), drvPath("curl-8.0"), drvPath("hello-2.12"), drvPath("openssl-3.0.1")]))).toEqual([]);
        expect(countChanges([])).toBe("no package changes");
    });

    it("orders versions numerically", () => {
        expect(["2.10", "2.9", "10.0"].sort(compareVersions)).toEqual(["2.9", "2.10", "10.0"]);
    });

    it("orders package names as people read them: lib2 before lib10", () => {
        const names = (list: string[]) => diffPackages(new Map(), packagesOf(list.map((name) => drvPath(`${name}-1.0`)))).map((change) => change.name);
        expect(names(["sandbox-lib10", "sandbox-lib2", "sandbox-lib1", "perl"])).toEqual(["perl", "sandbox-lib1", "sandbox-lib2", "sandbox-lib10"]);
    });
});

describe("parseDryRun", () => {
    it("reads the derivations to build and the paths to fetch (Nix 2.8 and newer wording)", () => {
        const work = parseDryRun(
            [
                "these 2 derivations will be built:",
                `  ${drvPath("hello-2.13")}`,
                `  ${drvPath("nixos-system-psi-24.05.2")}`,
                "this path will be fetched (0.10 MiB download, 0.50 MiB unpacked):",
                `  ${storePath("curl-8.0")}`,
                "warning: something else",
            ].join("\n"),
        );
        expect(work).toEqual({ build: [drvPath("hello-2.13"), drvPath("nixos-system-psi-24.05.2")], fetch: [storePath("curl-8.0")] });
        expect(parseDryRun("")).toEqual({ build: [], fetch: [] });
        expect(parseDryRun(`this derivation will be built:\n  ${drvPath("x-1")}\n`).build).toEqual([drvPath("x-1")]);
    });
});

describe("shortStorePath", () => {
    it("keeps 8 characters of the hash, so two systems of one name read apart", () => {
        const a = storePath("nixos-system-psi-24.05.1");
        const b = storePath("nixos-system-psi-24.05.1 ").trimEnd();
        expect(shortStorePath(a)).toBe(`${a.slice(11, 19)}-nixos-system-psi-24.05.1`);
        expect(shortStorePath(a)).not.toBe(shortStorePath(b));
        expect(shortStorePath(null)).toBe("-");
    });
});
