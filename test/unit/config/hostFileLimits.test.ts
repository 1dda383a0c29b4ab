// Host files a hostile or careless operator could put in hosts/: symbolic links, things that are not
// files, huge files and files with thousands of problems. Each is refused quickly with a reason.
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { FleetConfigError, loadHostFiles, loadHostFilesSync, parseHostFiles } from "../../../src/config";
import { MAX_LISTED_PROBLEMS } from "../../../src/config/configError";
import { MAX_HOST_FILE_BYTES, MAX_PROBLEMS_PER_FILE } from "../../../src/config/loadHosts";
import { problemsOf, problemsOfAsync, projectWithHosts } from "./helpers";

const hostsOf = (root: string) => path.join(root, "hosts");

describe("symbolic links and other entries in hosts/", () => {
    it("follows a symbolic link to a host file (sync and async)", async () => {
        const root = projectWithHosts({});
        fs.writeFileSync(path.join(root, "shared.yaml"), "address: web1.example.org\n");
        fs.symlinkSync("../shared.yaml", path.join(hostsOf(root), "web1.yaml"));
        expect(loadHostFilesSync("hosts", { baseDir: root }).map((host) => [host.name, host.address])).toEqual([["web1", "web1.example.org"]]);
        expect((await loadHostFiles("hosts", { baseDir: root })).map((host) => host.name)).toEqual(["web1"]);
    });

    it("refuses a link out of the project without reading it, so its content never reaches a message", async () => {
        const root = projectWithHosts({ "ok.yaml": "address: ok\n" });
        const outside = fs.mkdtempSync(path.join(path.dirname(root), "nf-outside-"));
        try {
            // What a committed link could point at: a passphrase file, /etc/shadow, a private key.
            fs.writeFileSync(path.join(outside, "prod-passphrase"), "hunter2-passphrase-91f3\n");
            fs.symlinkSync(path.join(outside, "prod-passphrase"), path.join(hostsOf(root), "leak.yaml"));
            for (const problems of [problemsOf(() => loadHostFilesSync("hosts", { baseDir: root })), await problemsOfAsync(() => loadHostFiles("hosts", { baseDir: root }))]) {
                expect(problems).toHaveLength(1);
                expect(problems[0]).toMatchObject({ file: "hosts/leak.yaml", host: "leak" });
                expect(problems[0]!.message).toMatch(/^is a symbolic link to .*prod-passphrase, which is outside the project \(.*\), so it is not read$/);
                expect(JSON.stringify(problems)).not.toMatch(/hunter2/);
            }
        } finally {
            fs.rmSync(outside, { recursive: true, force: true });
        }
    });

    it("refuses a dangling link, naming the file and where it points", async () => {
        const root = projectWithHosts({ "ok.yaml": "address: ok\n" });
        fs.symlinkSync("../gone.yaml", path.join(hostsOf(root), "web1.yaml"));
        for (const problems of [problemsOf(() => loadHostFilesSync("hosts", { baseDir: root })), await problemsOfAsync(() => loadHostFiles("hosts", { baseDir: root }))]) {
            expect(problems).toHaveLength(1);
            expect(problems[0]).toMatchObject({ file: "hosts/web1.yaml", host: "web1", message: "is a symbolic link to ../gone.yaml, which does not exist" });
        }
    });

    it("refuses a link to a directory and a directory named like a host file", () => {
        const root = projectWithHosts({});
        fs.mkdirSync(path.join(root, "dir"));
        fs.symlinkSync("../dir", path.join(hostsOf(root), "a.yaml"));
        fs.mkdirSync(path.join(hostsOf(root), "b.yml"));
        const problems = problemsOf(() => loadHostFilesSync("hosts", { baseDir: root }));
        expect(problems.map((p) => [p.file, p.message])).toEqual([
            ["hosts/a.yaml", "is a symbolic link to ../dir, which is not a regular file"],
            ["hosts/b.yml", "is not a regular file"],
        ]);
    });

    it.skipIf(spawnSync("mkfifo", ["--version"]).status !== 0)("refuses a FIFO instead of blocking on it", () => {
        const root = projectWithHosts({});
        expect(spawnSync("mkfifo", [path.join(hostsOf(root), "web1.yaml")]).status).toBe(0);
        expect(problemsOf(() => loadHostFilesSync("hosts", { baseDir: root }))[0]?.message).toBe("is not a regular file");
    });

    it("a link to a huge file is refused like the file", () => {
        const root = projectWithHosts({});
        fs.writeFileSync(path.join(root, "big"), Buffer.alloc(MAX_HOST_FILE_BYTES + 1, 0x20));
        fs.symlinkSync("../big", path.join(hostsOf(root), "web1.yaml"));
        expect(problemsOf(() => loadHostFilesSync("hosts", { baseDir: root }))[0]?.message).toMatch(/^is a symbolic link to \.\.\/big, which is 257 KiB; host files are limited to 256 KiB$/);
    });
});

describe("size and problem limits", () => {
    it("refuses a 5 MB host file in well under a second, without parsing it", async () => {
        const root = projectWithHosts({ "web1.yaml": `address: web1\n${"x: [".repeat(1_000_000)}` });
        const started = performance.now();
        const problems = problemsOf(() => loadHostFilesSync("hosts", { baseDir: root }));
        const asyncProblems = await problemsOfAsync(() => loadHostFiles("hosts", { baseDir: root }));
        expect(performance.now() - started).toBeLessThan(500);
        for (const list of [problems, asyncProblems]) {
            expect(list).toHaveLength(1);
            expect(list[0]).toMatchObject({ file: "hosts/web1.yaml", host: "web1", message: "is 3.8 MiB; host files are limited to 256 KiB" });
        }
    });

    it("refuses text over the limit given directly to parseHostFiles (counted in bytes, not characters)", () => {
        const text = `address: web1\n# ${"é".repeat(MAX_HOST_FILE_BYTES / 2)}\n`;
        const problems = problemsOf(() => parseHostFiles([{ path: "/p/hosts/web1.yaml", text }], { baseDir: "/p" }));
        expect(problems[0]?.message).toMatch(/host files are limited to 256 KiB/);
    });

    it("a file just under the limit full of unknown keys: fast, capped, with the count of the rest", () => {
        const lines = ["address: web1"];
        for (let i = 0, size = 0; size < MAX_HOST_FILE_BYTES - 100; i++) {
            lines.push(`k${i}: 1`);
            size += lines[lines.length - 1]!.length + 1;
        }
        const root = projectWithHosts({ "web1.yaml": lines.join("\n") });
        const started = performance.now();
        const problems = problemsOf(() => loadHostFilesSync("hosts", { baseDir: root }));
        // Linear: the yaml parse itself is most of it (quadratic checks took minutes).
        expect(performance.now() - started).toBeLessThan(4000);
        expect(problems).toHaveLength(MAX_PROBLEMS_PER_FILE + 1);
        expect(problems[0]).toMatchObject({ line: 2, field: "k0", message: 'unknown field "k0"' });
        expect(problems[MAX_PROBLEMS_PER_FILE]!.message).toBe(`and ${lines.length - 1 - MAX_PROBLEMS_PER_FILE} more problems in this file`);
    });

    it("finds duplicate keys in one pass: a file of thousands of repeated keys is fast and capped", () => {
        const lines = ["address: web1"];
        for (let size = 0; size < MAX_HOST_FILE_BYTES - 100; size += 9) lines.push("port: 22");
        const root = projectWithHosts({ "web1.yaml": lines.join("\n") });
        const started = performance.now();
        const problems = problemsOf(() => loadHostFilesSync("hosts", { baseDir: root }));
        // Linear: the yaml parse itself is most of it (quadratic checks took minutes).
        expect(performance.now() - started).toBeLessThan(4000);
        expect(problems[0]).toMatchObject({ line: 3, field: "port", message: 'duplicate key "port"' });
        expect(problems).toHaveLength(MAX_PROBLEMS_PER_FILE + 1);
        expect(problems[MAX_PROBLEMS_PER_FILE]!.message).toBe(`and ${lines.length - 2 - MAX_PROBLEMS_PER_FILE} more problems in this file`);
    });

    it("duplicate keys in nested mappings name their path", () => {
        const root = projectWithHosts({ "web1.yaml": "address: web1\nhealthChecks:\n  tcp:\n    - port: 1\n      port: 2\n" });
        expect(problemsOf(() => loadHostFilesSync("hosts", { baseDir: root }))[0]).toMatchObject({ line: 5, field: "healthChecks.tcp[0].port" });
    });

    it("deep nesting is a problem, not a crash", () => {
        const root = projectWithHosts({ "web1.yaml": `address: web1\nx: ${"[".repeat(100_000)}` });
        const started = performance.now();
        const problems = problemsOf(() => loadHostFilesSync("hosts", { baseDir: root }));
        expect(performance.now() - started).toBeLessThan(3000);
        expect(problems.length).toBeGreaterThan(0);
        expect(problems.length).toBeLessThanOrEqual(MAX_PROBLEMS_PER_FILE + 1);
    });

    it(`the error message lists the first ${MAX_LISTED_PROBLEMS} problems and counts the rest`, () => {
        const files: Record<string, string> = {};
        for (let i = 0; i < 30; i++) files[`web${i}.yaml`] = "address: w\nport: x\n";
        const root = projectWithHosts(files);
        try {
            loadHostFilesSync("hosts", { baseDir: root });
            throw new Error("expected a FleetConfigError");
        } catch (error) {
            expect(error).toBeInstanceOf(FleetConfigError);
            const message = (error as FleetConfigError).message;
            expect(message.split("\n")[0]).toBe("invalid host configuration (30 problems):");
            expect(message.match(/port: expected/g)).toHaveLength(MAX_LISTED_PROBLEMS);
            expect(message.trimEnd().endsWith("... and 10 more")).toBe(true);
            expect((error as FleetConfigError).problems).toHaveLength(30);
        }
    });

    it("unicode look-alike keys are unknown fields, not the real ones", () => {
        const root = projectWithHosts({ "web1.yaml": "address: web1\nsshOptiоns: [ProxyCommand=x]\n" }); // Cyrillic о
        const problems = problemsOf(() => loadHostFilesSync("hosts", { baseDir: root }));
        expect(problems[0]).toMatchObject({ line: 2, message: 'unknown field "sshOptiоns"' });
        expect(problems[0]!.hint).toMatch(/did you mean "sshOptions"/);
    });
});
