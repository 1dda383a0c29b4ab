// The caches' files are written whole by this user, and the write never lands in a file a link
// planted in the cache directory points to (NIXOS_FLEET_CACHE_DIR may be a directory others can write).
import { readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { readOwnFile, writeOwnFile } from "../../../src/nix/cacheFile";
import { tempDir } from "../helpers/fixtures";

describe("writeOwnFile", () => {
    it("writes the file whole, this user's only, making its directory", () => {
        const root = tempDir("nf-cache-file-");
        try {
            const file = join(root, "cache", "entry.json");
            writeOwnFile(file, '{"a":1}');
            expect(readOwnFile(file)).toBe('{"a":1}');
            expect(statSync(file).mode & 0o777).toBe(0o600);
            expect(readdirSync(join(root, "cache"))).toEqual(["entry.json"]);
        } finally {
            rmSync(root, { recursive: true, force: true });
        }
    });

    it("does not write through a link planted at the temporary file's name (another user's trap in a shared cache directory)", () => {
        const root = tempDir("nf-cache-file-");
        try {
            const victim = join(root, "victim");
            writeFileSync(victim, "the operator's own file\n");
            const file = join(root, "entry.json");
            // The name the write used before: the entry's name, this process's id, .tmp.
            symlinkSync(victim, `${file}.${process.pid}.tmp`);
            writeOwnFile(file, '{"a":1}');
            expect(readFileSync(victim, "utf8")).toBe("the operator's own file\n");
            expect(readOwnFile(file)).toBe('{"a":1}');
            expect(readdirSync(root).sort()).toEqual(["entry.json", `entry.json.${process.pid}.tmp`, "victim"]);
        } finally {
            rmSync(root, { recursive: true, force: true });
        }
    });

    it("throws when it cannot write, leaving nothing behind", () => {
        const root = tempDir("nf-cache-file-");
        try {
            writeFileSync(join(root, "not-a-directory"), "");
            expect(() => writeOwnFile(join(root, "not-a-directory", "entry.json"), "{}")).toThrow();
            expect(readdirSync(root)).toEqual(["not-a-directory"]);
        } finally {
            rmSync(root, { recursive: true, force: true });
        }
    });
});
