import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import {
    READ_GENERATIONS_SCRIPT,
    chooseGenerationsToDelete,
    cleanupGenerations,
    parseDays,
    parseGcFreed,
    parseProfileGenerations,
    type ProfileGenerations,
} from "../../../src/deploy/cleanup";
import { SYSTEM_PROFILE } from "../../../src/deploy/hostState";
import { SshConnection } from "../../../src/ssh/connection";
import { FakeRunner, remote } from "../helpers/fakeRunner";
import { fleetErrorOf, fleetErrorOfSync, runtimeDir, storePath, target } from "../helpers/fixtures";

const NOW = new Date("2025-03-01T12:00:00Z");
const DAY = 24 * 60 * 60 * 1000;
const daysAgo = (days: number): Date => new Date(NOW.getTime() - days * DAY);
const sys = (n: number): string => storePath(`nixos-system-alpha-24.05.${n}`);

/** Generations 1..n, generation i made (n - i) days before NOW, the newest current, running and booted. */
function host(n: number, overrides: Partial<ProfileGenerations> = {}): ProfileGenerations {
    return {
        generations: Array.from({ length: n }, (_, i) => ({ generation: i + 1, storePath: sys(i + 1), createdAt: daysAgo(n - (i + 1)) })),
        profileGeneration: n,
        runningStorePath: sys(n),
        bootedStorePath: sys(n),
        ...overrides,
    };
}

describe("chooseGenerationsToDelete", () => {
    it("nothing configured: nothing is deleted, everything is kept", () => {
        expect(chooseGenerationsToDelete(host(5), {}, {}, NOW)).toEqual({ deleted: [], kept: [1, 2, 3, 4, 5], protectedGenerations: [] });
    });

    it("keepGenerations K keeps the K newest by number and deletes the rest", () => {
        expect(chooseGenerationsToDelete(host(5), { keepGenerations: 2 }, {}, NOW)).toEqual({ deleted: [1, 2, 3], kept: [4, 5], protectedGenerations: [] });
        expect(chooseGenerationsToDelete(host(5), { keepGenerations: 1 }, {}, NOW).deleted).toEqual([1, 2, 3, 4]);
        expect(chooseGenerationsToDelete(host(5), { keepGenerations: 5 }, {}, NOW).deleted).toEqual([]);
        expect(chooseGenerationsToDelete(host(5), { keepGenerations: 50 }, {}, NOW).deleted).toEqual([]);
    });

    it("counts by generation number, not by listing order, and copes with gaps", () => {
        const gappy: ProfileGenerations = {
            generations: [12, 3, 40, 7].map((g) => ({ generation: g, storePath: sys(g), createdAt: daysAgo(100 - g) })),
            profileGeneration: 40,
            runningStorePath: sys(40),
            bootedStorePath: sys(40),
        };
        expect(chooseGenerationsToDelete(gappy, { keepGenerations: 2 }, {}, NOW)).toEqual({ deleted: [3, 7], kept: [12, 40], protectedGenerations: [] });
    });

    it("deleteOlderThan deletes generations whose link is older than N days; exactly N days is not older", () => {
        const snapshot = host(3, {
            generations: [
                { generation: 1, storePath: sys(1), createdAt: daysAgo(40) },
                { generation: 2, storePath: sys(2), createdAt: daysAgo(30) },
                { generation: 3, storePath: sys(3), createdAt: daysAgo(1) },
            ],
        });
        expect(chooseGenerationsToDelete(snapshot, { deleteOlderThan: "30d" }, {}, NOW)).toEqual({ deleted: [1], kept: [2, 3], protectedGenerations: [] });
        const justOlder = { ...snapshot, generations: snapshot.generations.map((g) => (g.generation === 2 ? { ...g, createdAt: new Date(daysAgo(30).getTime() - 1000) } : g)) };
        expect(chooseGenerationsToDelete(justOlder, { deleteOlderThan: "30d" }, {}, NOW).deleted).toEqual([1, 2]);
        expect(chooseGenerationsToDelete(snapshot, { deleteOlderThan: "41d" }, {}, NOW).deleted).toEqual([]);
    });

    it("a generation whose age is unknown is never old enough", () => {
        const snapshot = host(3, { generations: [{ generation: 1, storePath: sys(1) }, { generation: 2, storePath: sys(2), createdAt: daysAgo(90) }, { generation: 3, storePath: sys(3), createdAt: NOW }] });
        expect(chooseGenerationsToDelete(snapshot, { deleteOlderThan: "30d" }, {}, NOW).deleted).toEqual([2]);
    });

    it("both rules: a generation goes only when it is outside the newest K AND older than the age", () => {
        // Ages: 1:50d 2:10d 3:45d 4:40d 5:0d (a generation made by hand can be older than a lower number).
        const ages = [50, 10, 45, 40, 0];
        const snapshot = host(5, { generations: ages.map((age, i) => ({ generation: i + 1, storePath: sys(i + 1), createdAt: daysAgo(age) })) });
        expect(chooseGenerationsToDelete(snapshot, { keepGenerations: 2, deleteOlderThan: "30d" }, {}, NOW)).toEqual({
            deleted: [1, 3], // 2 is young; 4 is old but among the 2 newest
            kept: [2, 4, 5],
            protectedGenerations: [],
        });
    });

    it("never deletes the profile's current generation (e.g. after a rollback it is not among the newest)", () => {
        const snapshot = host(5, { profileGeneration: 2, runningStorePath: sys(5), bootedStorePath: sys(5) });
        expect(chooseGenerationsToDelete(snapshot, { keepGenerations: 1 }, {}, NOW)).toEqual({
            deleted: [1, 3, 4],
            kept: [2, 5],
            protectedGenerations: [{ generation: 2, why: "current generation of the system profile (the boot default)" }],
        });
    });

    it("never deletes the running system, nor another generation holding the same store path", () => {
        const snapshot = host(5, { runningStorePath: sys(2) });
        snapshot.generations[0] = { generation: 1, storePath: sys(2), createdAt: daysAgo(9) };
        expect(chooseGenerationsToDelete(snapshot, { keepGenerations: 1 }, {}, NOW)).toEqual({
            deleted: [3, 4],
            kept: [1, 2, 5],
            protectedGenerations: [
                { generation: 1, why: "running system (/run/current-system)" },
                { generation: 2, why: "running system (/run/current-system)" },
            ],
        });
    });

    it("never deletes the booted system", () => {
        expect(chooseGenerationsToDelete(host(5, { bootedStorePath: sys(3) }), { keepGenerations: 1 }, {}, NOW)).toEqual({
            deleted: [1, 2, 4],
            kept: [3, 5],
            protectedGenerations: [{ generation: 3, why: "booted system (/run/booted-system)" }],
        });
    });

    it("never deletes a generation whose store path the stack records, or whose number is protected", () => {
        const decision = chooseGenerationsToDelete(host(6), { keepGenerations: 1 }, { storePaths: [sys(2), storePath("unrelated")], generations: [4, 99] }, NOW);
        expect(decision).toEqual({
            deleted: [1, 3, 5],
            kept: [2, 4, 6],
            protectedGenerations: [
                { generation: 2, why: "recorded in the stack's deployment history" },
                { generation: 4, why: "protected generation" },
            ],
        });
    });

    it("lists every reason a generation is protected, and only generations the rules would delete", () => {
        const snapshot = host(4, { profileGeneration: 1, runningStorePath: sys(1), bootedStorePath: sys(1) });
        const decision = chooseGenerationsToDelete(snapshot, { keepGenerations: 2, deleteOlderThan: "2d" }, { storePaths: [sys(1)], generations: [1, 2] }, NOW);
        // Ages: 1:3d 2:2d 3:1d 4:0d. Only 1 is old and outside the newest 2; 2 is protected but young.
        expect(decision.deleted).toEqual([]);
        expect(decision.kept).toEqual([1, 2, 3, 4]);
        expect(decision.protectedGenerations).toEqual([
            {
                generation: 1,
                why: "current generation of the system profile (the boot default); running system (/run/current-system); booted system (/run/booted-system); recorded in the stack's deployment history; protected generation",
            },
        ]);
    });

    it("keeps a generation whose store path could not be read", () => {
        const snapshot = host(3);
        snapshot.generations[0] = { generation: 1, createdAt: daysAgo(100) };
        expect(chooseGenerationsToDelete(snapshot, { keepGenerations: 1 }, {}, NOW)).toEqual({
            deleted: [2],
            kept: [1, 3],
            protectedGenerations: [{ generation: 1, why: "its store path could not be read" }],
        });
    });

    it("a host without a system profile: nothing to do", () => {
        expect(chooseGenerationsToDelete({ generations: [] }, { keepGenerations: 1, deleteOlderThan: "1d" }, {}, NOW)).toEqual({ deleted: [], kept: [], protectedGenerations: [] });
    });

    it("rejects a policy the host schema would reject, as a cleanup FleetError", () => {
        for (const keep of [0, -1, 1.5, Number.NaN]) {
            const error = fleetErrorOfSync(() => chooseGenerationsToDelete(host(3), { keepGenerations: keep }, {}, NOW));
            expect(error.phase).toBe("activate");
            expect(error.message).toMatch(/^cleanup: keepGenerations must be a whole number of at least 1/);
            expect(error.hint).toBeTruthy();
        }
        for (const age of ["30", "30 days", "0d", "2w", "-1d", ""]) {
            const error = fleetErrorOfSync(() => chooseGenerationsToDelete(host(3), { deleteOlderThan: age }, {}, NOW));
            expect(error.message).toMatch(/^cleanup: deleteOlderThan must be an age in days such as "30d"/);
        }
        expect(parseDays("30d")).toBe(30);
        expect(parseDays("1d")).toBe(1);
    });
});

describe("parseGcFreed", () => {
    it.each([
        ["1 store paths deleted, 0.00 MiB freed\n", "0.00 MiB"], // Nix 2.8 (nix-store --gc, stdout)
        ["deleting '/nix/store/…-foo'\ndeleting unused links...\nnote: currently hard linking saves 0.00 MiB\n3 store paths deleted, 12.34 MiB freed\n", "12.34 MiB"],
        ["1 store path deleted, 1.5 GiB freed", "1.5 GiB"],
        ["42 store paths deleted, 512.0 KiB freed", "512.0 KiB"],
        ["2 store paths deleted, 1234 bytes freed", "1234 bytes"],
        ["2 store paths deleted, 3.1 MB freed", "3.1 MB"],
        ["0 store paths deleted, 0.00 MiB freed", "0.00 MiB"],
    ])("%j → %s", (output, freed) => {
        expect(parseGcFreed(output)).toBe(freed);
    });

    it("null when Nix did not say", () => {
        expect(parseGcFreed("")).toBeNull();
        expect(parseGcFreed("finding garbage collector roots...\ndeleting unused links...\n")).toBeNull();
    });
});

describe("READ_GENERATIONS_SCRIPT", () => {
    const dirs: string[] = [];
    afterAll(() => {
        for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
    });

    /** Runs the real script with sh against a fake root (the fixed paths rewritten into it). */
    function runScript(root: string): string {
        const script = READ_GENERATIONS_SCRIPT.replaceAll("/nix/var/nix/profiles/", `${root}/profiles/`).replaceAll("/run/", `${root}/run/`);
        return execFileSync("sh", ["-c", script], { encoding: "utf8" });
    }

    it("contains no configuration values and reads the fixed system profile", () => {
        expect(READ_GENERATIONS_SCRIPT).toContain(`p=${SYSTEM_PROFILE}\n`);
        expect(READ_GENERATIONS_SCRIPT).toContain("stat -c %Y");
    });

    it("reports every link's number, target and own mtime (touch -h), the profile and the /run links", () => {
        const root = mkdtempSync(join(tmpdir(), "nf-cleanup-"));
        dirs.push(root);
        mkdirSync(join(root, "profiles"));
        mkdirSync(join(root, "run"));
        mkdirSync(join(root, "store"));
        for (const n of [1, 2, 10]) {
            mkdirSync(join(root, "store", `sys-${n}`));
            symlinkSync(join(root, "store", `sys-${n}`), join(root, "profiles", `system-${n}-link`));
        }
        symlinkSync(join(root, "store", "gone"), join(root, "profiles", "system-3-link")); // target garbage-collected
        symlinkSync("system-10-link", join(root, "profiles", "system"));
        symlinkSync(join(root, "store"), join(root, "profiles", "system-profiles-link")); // not a generation
        symlinkSync(join(root, "store", "sys-2"), join(root, "run", "current-system"));
        execFileSync("touch", ["-h", "-d", "40 days ago", join(root, "profiles", "system-1-link")]);
        execFileSync("touch", ["-h", "-d", "2025-01-02 03:04:05 UTC", join(root, "profiles", "system-2-link")]);

        const output = runScript(root);
        const lines = output.split("\n");
        expect(lines[0]).toBe("@links");
        const links = lines.filter((line) => line.startsWith("link\t")).map((line) => line.split("\t"));
        expect(links.map((l) => l[1])).toEqual(["1", "10", "2", "3"]); // glob order
        expect(links.find((l) => l[1] === "2")).toEqual(["link", "2", String(Date.parse("2025-01-02T03:04:05Z") / 1000), join(root, "store", "sys-2")]);
        expect(links.find((l) => l[1] === "3")![3]).toBe(join(root, "store", "gone"));
        expect(output).toContain(`profile=system-10-link\n`);
        expect(output).toContain(`current=${join(root, "store", "sys-2")}\n`);
        // readlink -f of a missing /run/booted-system prints the path itself: not a store path.
        expect(output).toMatch(/\nbooted=[^\n]*\n$/);

        // Parsed (the fake root is not under /nix/store, so map it there as a real host's would be).
        const parsed = parseProfileGenerations(output.replaceAll(`${root}/store/`, "/nix/store/"));
        expect(parsed.generations.map((g) => g.generation)).toEqual([1, 2, 3, 10]);
        expect(parsed.generations[1]!.createdAt).toEqual(new Date("2025-01-02T03:04:05Z"));
        const age = Date.now() - parsed.generations[0]!.createdAt!.getTime();
        expect(Math.round(age / DAY)).toBe(40);
        expect(parsed.generations[2]!.storePath).toBe("/nix/store/gone");
        expect(parsed).toMatchObject({ profileGeneration: 10, runningStorePath: "/nix/store/sys-2", bootedStorePath: undefined });

        // The age rule on those real mtimes: 1 (40 days) and 2 (January 2025) are older than 30 days.
        expect(chooseGenerationsToDelete(parsed, { deleteOlderThan: "30d" }, {}, new Date()).deleted).toEqual([1]);
        // …and 2 only escapes because it is running.
        expect(chooseGenerationsToDelete(parsed, { deleteOlderThan: "30d" }, {}, new Date()).protectedGenerations).toEqual([
            { generation: 2, why: "running system (/run/current-system)" },
        ]);
    });

    it("a host without a system profile prints empty sections", () => {
        const root = mkdtempSync(join(tmpdir(), "nf-cleanup-"));
        dirs.push(root);
        mkdirSync(join(root, "profiles"));
        expect(runScript(root)).toMatch(/^@links\n@state\nprofile=\ncurrent=[^\n]*\nbooted=[^\n]*\n$/);
        expect(parseProfileGenerations(runScript(root))).toEqual({ generations: [], profileGeneration: undefined, runningStorePath: undefined, bootedStorePath: undefined });
    });
});

describe("parseProfileGenerations", () => {
    it("ignores malformed lines and non-store targets, tolerates CRLF and missing mtimes", () => {
        const output = [
            "warning: something",
            "@links",
            `link\t2\t1700000000\t${sys(2)}\r`,
            `link\t1\t\t${sys(1)}`,
            "link\tx\t1\t/nix/store/abc",
            `link\t3\t1700000001\t/tmp/elsewhere`,
            "garbage",
            "@state",
            "profile=/nix/var/nix/profiles/system-2-link",
            `current=${sys(2)}`,
            "booted=/not/a/store/path",
            "",
        ].join("\n");
        expect(parseProfileGenerations(output)).toEqual({
            generations: [
                { generation: 1, storePath: sys(1), createdAt: undefined },
                { generation: 2, storePath: sys(2), createdAt: new Date(1_700_000_000_000) },
                { generation: 3, storePath: undefined, createdAt: new Date(1_700_000_001_000) },
            ],
            profileGeneration: 2,
            runningStorePath: sys(2),
            bootedStorePath: undefined,
        });
    });
});

// --- cleanupGenerations against a simulated host behind the FakeRunner ---

interface SimGeneration {
    storePath: string;
    mtime: Date;
}

class SimHost {
    generations = new Map<number, SimGeneration>();
    profile?: number;
    current?: string;
    booted?: string;
    gcOutput = "deleting unused links...\n5 store paths deleted, 3.25 MiB freed\n";

    constructor(count: number, ageDays: (n: number) => number = (n) => count - n) {
        for (let n = 1; n <= count; n++) this.generations.set(n, { storePath: sys(n), mtime: daysAgo(ageDays(n)) });
        this.profile = count || undefined;
        this.current = count ? sys(count) : undefined;
        this.booted = this.current;
    }

    scriptOutput(): string {
        const links = [...this.generations].map(([n, g]) => `link\t${n}\t${Math.floor(g.mtime.getTime() / 1000)}\t${g.storePath}`);
        return ["@links", ...links, "@state", `profile=${this.profile ? `system-${this.profile}-link` : ""}`, `current=${this.current ?? ""}`, `booted=${this.booted ?? ""}`, ""].join("\n");
    }

    attach(runner: FakeRunner): this {
        runner.on(remote("sh", "-c"), (call) => (call.remoteCommand![2] === READ_GENERATIONS_SCRIPT ? { stdout: this.scriptOutput() } : { code: 1, stderr: "unexpected script" }));
        runner.on(remote("nix-env", "-p", SYSTEM_PROFILE, "--delete-generations"), (call) => {
            for (const word of call.remoteCommand!.slice(4)) {
                if (Number(word) === this.profile) return { code: 1, stderr: "error: cannot delete current version of profile\n" };
                this.generations.delete(Number(word));
            }
            return { stderr: call.remoteCommand!.slice(4).map((n) => `removing profile version ${n}\n`).join("") };
        });
        runner.on(remote("nix-store", "--gc"), () => ({ stdout: this.gcOutput }));
        return this;
    }
}

function connect(runner: FakeRunner, user = "root"): SshConnection {
    return new SshConnection(target({ user }), { runner: runner.run, runtimeDir: runtimeDir() });
}

describe("cleanupGenerations", () => {
    it("reads once, deletes with one exact nix-env command as root, then collects garbage", async () => {
        const runner = new FakeRunner();
        const sim = new SimHost(5).attach(runner);
        sim.current = sys(2); // running an older generation (nixos-rebuild test)
        const lines: string[] = [];
        const result = await cleanupGenerations(connect(runner), { keepGenerations: 2, gc: true }, { storePaths: [sys(1)] }, { now: NOW, log: (line) => lines.push(line) });

        expect(result).toEqual({
            deleted: [3],
            kept: [1, 2, 4, 5],
            protectedGenerations: [
                { generation: 1, why: "recorded in the stack's deployment history" },
                { generation: 2, why: "running system (/run/current-system)" },
            ],
            gc: { freed: "3.25 MiB" },
        });
        expect(runner.remoteCommands()).toEqual([
            `sh -c ${READ_GENERATIONS_SCRIPT}`,
            "nix-env -p /nix/var/nix/profiles/system --delete-generations 3",
            "nix-store --gc",
        ]);
        const [read, del, gc] = runner.calls.filter((call) => call.remoteCommand);
        expect(read!.remoteCommand).toEqual(["sh", "-c", READ_GENERATIONS_SCRIPT]);
        expect(del!.remoteCommand).toEqual(["nix-env", "-p", "/nix/var/nix/profiles/system", "--delete-generations", "3"]);
        expect(gc!.remoteCommand).toEqual(["nix-store", "--gc"]);
        expect([...sim.generations.keys()]).toEqual([1, 2, 4, 5]);
        expect(runner.matching((call) => call.isMasterStart)).toHaveLength(1);
        expect(lines).toEqual([
            "cleanup: deleting generations 3; protected: 1 (recorded in the stack's deployment history), 2 (running system (/run/current-system))",
            "cleanup: collecting garbage (nix-store --gc)",
            "cleanup: garbage collection freed 3.25 MiB",
        ]);
    });

    it("passes every generation to delete in one command, ascending; a non-root user goes through sudo -n, the read does not", async () => {
        const runner = new FakeRunner();
        const sim = new SimHost(6, (n) => [0, 90, 80, 70, 5, 60, 0][n]!).attach(runner);
        const result = await cleanupGenerations(connect(runner, "deployer"), { keepGenerations: 1, deleteOlderThan: "30d", gc: false }, {}, { now: NOW });
        expect(result).toEqual({ deleted: [1, 2, 3, 5], kept: [4, 6], protectedGenerations: [] });
        expect(result.gc).toBeUndefined();
        const remoteCalls = runner.calls.filter((call) => call.remoteCommand);
        expect(remoteCalls.map((call) => call.viaSudo)).toEqual([false, true]);
        expect(remoteCalls[1]!.remoteArgv).toEqual(["sudo", "-n", "--", "nix-env", "-p", SYSTEM_PROFILE, "--delete-generations", "1", "2", "3", "5"]);
        expect([...sim.generations.keys()]).toEqual([4, 6]);
    });

    it("nothing configured: reads, deletes nothing and, with gc, only collects garbage", async () => {
        const runner = new FakeRunner();
        new SimHost(4).attach(runner);
        const result = await cleanupGenerations(connect(runner), { gc: true }, {}, { now: NOW });
        expect(result).toEqual({ deleted: [], kept: [1, 2, 3, 4], protectedGenerations: [], gc: { freed: "3.25 MiB" } });
        expect(runner.remoteCommands()).toEqual([`sh -c ${READ_GENERATIONS_SCRIPT}`, "nix-store --gc"]);

        const quiet = new FakeRunner();
        new SimHost(4).attach(quiet);
        expect(await cleanupGenerations(connect(quiet), { gc: false }, {}, { now: NOW })).toEqual({ deleted: [], kept: [1, 2, 3, 4], protectedGenerations: [] });
        expect(quiet.remoteCommands()).toEqual([`sh -c ${READ_GENERATIONS_SCRIPT}`]);
    });

    it("a host without a system profile: no nix-env call", async () => {
        const runner = new FakeRunner();
        new SimHost(0).attach(runner);
        const lines: string[] = [];
        expect(await cleanupGenerations(connect(runner), { keepGenerations: 1, gc: false }, {}, { now: NOW, log: (l) => lines.push(l) })).toEqual({ deleted: [], kept: [], protectedGenerations: [] });
        expect(runner.remoteCommands()).toHaveLength(1);
        expect(lines).toEqual(["cleanup: no generation to delete"]);
    });

    it("gc output without a freed line: freed is null", async () => {
        const runner = new FakeRunner();
        const sim = new SimHost(2).attach(runner);
        sim.gcOutput = "";
        expect((await cleanupGenerations(connect(runner), { gc: true }, {}, { now: NOW })).gc).toEqual({ freed: null });
    });

    it("uses the current time when none is given", async () => {
        const runner = new FakeRunner();
        const sim = new SimHost(3).attach(runner);
        sim.generations.get(1)!.mtime = new Date(Date.now() - 31 * DAY);
        sim.generations.get(2)!.mtime = new Date(Date.now() - 29 * DAY);
        expect((await cleanupGenerations(connect(runner), { deleteOlderThan: "30d", gc: false }, {})).deleted).toEqual([1]);
    });

    it("errors are FleetErrors in phase activate, message starting with cleanup:, with a hint", async () => {
        const unreadable = new FakeRunner();
        unreadable.on(remote("sh", "-c"), { code: 2, stderr: "sh: stat: not found\n" });
        const readError = await fleetErrorOf(cleanupGenerations(connect(unreadable), { keepGenerations: 1, gc: true }, {}, { now: NOW }));
        expect(readError).toMatchObject({ phase: "activate", host: "alpha", message: "cleanup: could not read the system generations", detail: "sh: stat: not found" });
        expect(readError.hint).toMatch(/POSIX sh/);
        expect(unreadable.remoteCommands()).toHaveLength(1);

        const noSudo = new FakeRunner();
        new SimHost(3).attach(noSudo);
        noSudo.on(remote("nix-env"), { code: 1, stderr: "sudo: a password is required\n" });
        const sudoError = await fleetErrorOf(cleanupGenerations(connect(noSudo, "deployer"), { keepGenerations: 1, gc: true }, {}, { now: NOW }));
        expect(sudoError).toMatchObject({ phase: "activate", message: "cleanup: could not delete generations 1, 2" });
        expect(sudoError.hint).toBe("nix-env needs root: give deployer passwordless sudo, or connect as root");
        expect(noSudo.remoteCommands().some((c) => c.startsWith("nix-store"))).toBe(false); // no gc after a failed delete

        const raced = new FakeRunner();
        const sim = new SimHost(3).attach(raced);
        sim.profile = 1; // someone rolled back between the read and the delete
        raced.on(remote("sh", "-c"), () => ({ stdout: new SimHost(3).scriptOutput() }));
        const raceError = await fleetErrorOf(cleanupGenerations(connect(raced), { keepGenerations: 1, gc: false }, {}, { now: NOW }));
        expect(raceError.message).toBe("cleanup: could not delete generations 1, 2");
        expect(raceError.hint).toBe("log in and run: nix-env -p /nix/var/nix/profiles/system --delete-generations 1 2");
        expect(raceError.detail).toMatch(/cannot delete current version/);

        const gcFails = new FakeRunner();
        new SimHost(3).attach(gcFails);
        gcFails.on(remote("nix-store", "--gc"), { code: 1, stderr: "error: getting status of '/nix/var/nix/gcroots/x': Permission denied\n" });
        const gcError = await fleetErrorOf(cleanupGenerations(connect(gcFails), { keepGenerations: 2, gc: true }, {}, { now: NOW }));
        expect(gcError).toMatchObject({ phase: "activate", message: "cleanup: deleted generations 1, but nix-store --gc failed", hint: "log in and run: nix-store --gc" });

        const badPolicy = new FakeRunner();
        new SimHost(3).attach(badPolicy);
        const policyError = await fleetErrorOf(cleanupGenerations(connect(badPolicy), { deleteOlderThan: "1w", gc: true }, {}, { now: NOW }));
        expect(policyError.message).toMatch(/^cleanup: deleteOlderThan/);
        expect(badPolicy.remoteCommands()).toHaveLength(1); // nothing changed on the host
    });
});
