import { spawn } from "node:child_process";
import { EventEmitter } from "node:events";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { makeRuntimeDir, removeRuntimeDirs, sweepStaleRuntimeDirs, sweepStaleRuntimeDirsInBackground, type ProcessLike } from "../../../src/process/runtimeDir";
import { HostProvider } from "../../../src/provider/hostProvider";
import type { EngineLogger } from "../../../src/provider/engineLog";
import { FakeRunner, sshOption } from "../helpers/fakeRunner";
import { storePath, tempDir } from "../helpers/fixtures";

const ROOT = path.resolve(__dirname, "../../..");
const scratch = () => tempDir("nf-unit-");

/** A process that only records: signals and exit are events and a number here. */
class FakeProcess extends EventEmitter implements ProcessLike {
    readonly pid = 4_000_001;
    exitCode?: number;
    exit(code: number): void {
        this.exitCode = code;
        this.emit("exit");
    }
}

/** Some of what a connection leaves in its runtime directory. */
function fill(dir: string): void {
    fs.writeFileSync(path.join(dir, "alpha.known_hosts"), "nixos-fleet-alpha ssh-ed25519 AAAA\n");
    fs.writeFileSync(path.join(dir, "alpha.ssh_config"), "Host bastion\n");
    fs.mkdirSync(path.join(dir, "confirm"));
}

describe("makeRuntimeDir", () => {
    it("makes a private nf-<pid>-XXXXXX directory", () => {
        const proc = new FakeProcess();
        const dir = makeRuntimeDir({ parent: scratch(), proc });
        expect(path.basename(dir)).toMatch(/^nf-4000001-[A-Za-z0-9]{6}$/);
        expect(fs.statSync(dir).mode & 0o777).toBe(0o700);
        removeRuntimeDirs();
        expect(fs.existsSync(dir)).toBe(false);
    });

    it.each([
        ["SIGINT", 130],
        ["SIGTERM", 143],
        ["SIGHUP", 129],
    ] as const)("removes its directories on %s and exits with %i", (signal, code) => {
        const proc = new FakeProcess();
        const dirs = [makeRuntimeDir({ parent: scratch(), proc }), makeRuntimeDir({ parent: scratch(), proc })];
        dirs.forEach(fill);
        proc.emit(signal);
        expect(proc.exitCode).toBe(code);
        for (const dir of dirs) expect(fs.existsSync(dir)).toBe(false);
    });

    it("on a signal another handler takes (an operator command waiting for the engine), removes its directories but does not exit", () => {
        const proc = new FakeProcess();
        const dir = makeRuntimeDir({ parent: scratch(), proc });
        fill(dir);
        let handled = 0;
        proc.on("SIGINT", () => handled++);
        proc.emit("SIGINT");
        expect(handled).toBe(1);
        expect(proc.exitCode).toBeUndefined();
        expect(fs.existsSync(dir)).toBe(false);
    });

    it("removes its directories on a normal exit", () => {
        const proc = new FakeProcess();
        const dir = makeRuntimeDir({ parent: scratch(), proc });
        fill(dir);
        proc.emit("exit");
        expect(fs.existsSync(dir)).toBe(false);
    });
});

describe("in a real process", () => {
    /**
     * Starts node with a script that makes a runtime directory (with a file in it) and prints its
     * path, then runs `then`; sends `signal` once the path is printed.
     */
    function child(then: string, signal?: NodeJS.Signals): Promise<{ dir: string; code: number | null }> {
        const script = [
            `require("ts-node").register({ transpileOnly: true, project: ${JSON.stringify(path.join(ROOT, "tsconfig.json"))} });`,
            `const { makeRuntimeDir } = require(${JSON.stringify(path.join(ROOT, "src/process/runtimeDir.ts"))});`,
            "const dir = makeRuntimeDir();",
            'require("fs").writeFileSync(require("path").join(dir, "alpha.known_hosts"), "x\\n");',
            'process.stdout.write(dir + "\\n");',
            then,
        ].join("\n");
        return new Promise((resolve, reject) => {
            const proc = spawn(process.execPath, ["-e", script], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
            let out = "";
            proc.stdout.on("data", (chunk: Buffer) => {
                const first = !out.includes("\n");
                out += chunk.toString();
                if (first && out.includes("\n") && signal) proc.kill(signal);
            });
            proc.on("error", reject);
            proc.on("close", (code) => resolve({ dir: out.split("\n")[0] ?? "", code }));
        });
    }

    it("a process interrupted by SIGINT leaves no runtime directory", async () => {
        const result = await child("setInterval(() => undefined, 1000);", "SIGINT");
        expect(result.dir).toMatch(/\/nf-\d+-[A-Za-z0-9]{6}$/);
        expect(result.code).toBe(130);
        expect(fs.existsSync(result.dir)).toBe(false);
    }, 20_000);

    it("a process ended by SIGTERM leaves none either", async () => {
        const result = await child("setInterval(() => undefined, 1000);", "SIGTERM");
        expect(result.code).toBe(143);
        expect(fs.existsSync(result.dir)).toBe(false);
    }, 20_000);

    it("a process that dies of an uncaught error leaves none", async () => {
        const result = await child('setTimeout(() => { throw new Error("boom"); }, 10);');
        expect(result.code).toBe(1);
        expect(result.dir).not.toBe("");
        expect(fs.existsSync(result.dir)).toBe(false);
    }, 20_000);
});

describe("sweepStaleRuntimeDirs", () => {
    it("removes directories of processes that are gone, and nothing else", () => {
        const parent = scratch();
        const dead = path.join(parent, "nf-4194999-abcDEF"); // above Linux's pid_max
        const mine = path.join(parent, `nf-${process.pid}-abcdef`);
        const other = path.join(parent, "nf-gen-abcdef");
        const file = path.join(parent, "nf-4194998-abcdef");
        for (const dir of [dead, mine, other]) fs.mkdirSync(dir);
        fill(dead);
        fs.writeFileSync(file, "");
        expect(sweepStaleRuntimeDirs(parent)).toEqual([dead]);
        expect([dead, mine, other, file].map((entry) => fs.existsSync(entry))).toEqual([false, true, true, true]);
    });

    it("a missing parent directory is nothing to sweep", async () => {
        expect(sweepStaleRuntimeDirs(path.join(scratch(), "missing"))).toEqual([]);
        expect(await sweepStaleRuntimeDirsInBackground(path.join(scratch(), "missing"))).toEqual([]);
    });

    it("in the background (the provider's start) removes the same directories", async () => {
        const parent = scratch();
        const dead = path.join(parent, "nf-4194997-abcDEF");
        const mine = path.join(parent, `nf-${process.pid}-ghijkl`);
        for (const dir of [dead, mine]) fs.mkdirSync(dir);
        fill(dead);
        expect(await sweepStaleRuntimeDirsInBackground(parent)).toEqual([dead]);
        expect([dead, mine].map((entry) => fs.existsSync(entry))).toEqual([false, true]);
    });
});

describe("HostProvider", () => {
    it("keeps its sockets and key files in a runtime directory that is removed on exit", async () => {
        const runner = new FakeRunner().on((call) => call.argv[0] === "ssh" && !call.isMasterStart && !call.isMasterExit, { code: 255, stderr: "Connection closed by 10.0.0.1 port 22\r\n" });
        const logger: EngineLogger = { log: async () => undefined };
        const provider = new HostProvider({ runner: runner.run, logger, version: "0.0.0-test" });
        const props = { name: "alpha", address: "alpha.example.org", user: "root", storePath: storePath("s"), action: "switch" };
        await provider.read("alpha", "urn:pulumi:dev::nixos-fleet::nixos:index:Host::alpha", props).catch(() => undefined);
        const socket = sshOption(runner.calls[0]!.argv, "ControlPath")!;
        const dir = path.dirname(socket);
        expect(path.basename(dir)).toMatch(new RegExp(`^nf-${process.pid}-`));
        expect(fs.existsSync(dir)).toBe(true);
        removeRuntimeDirs(); // what the exit and signal handlers run
        expect(fs.existsSync(dir)).toBe(false);
    });
});
