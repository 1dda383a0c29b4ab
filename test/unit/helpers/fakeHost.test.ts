import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import {
    activationUnit,
    parseUnitStatus,
    progressOf,
    restoreSteps,
    restoreUnit,
    startRestoreUnit,
    type ActivationProgress,
    type RestoreArguments,
} from "../../../src/deploy/activationUnit";
import { parseHostState, SYSTEM_PROFILE } from "../../../src/deploy/hostState";
import { SshConnection } from "../../../src/ssh/connection";
import { FakeHost, shortCommand } from "./fakeHost";
import { FakeRunner, masterCheck, masterStart, remote } from "./fakeRunner";
import { REAL_SCRIPT_TIMEOUT, runtimeDir, storePath, target, tempDir } from "./fixtures";

// The fake host stands in for systemd in most deploy tests: check that what it prints means to
// activationUnit.ts's parsers what the real `systemctl show` output means.
const v1 = storePath("nixos-system-alpha-1");
const next = storePath("nixos-system-alpha-2");
const { unit: UNIT, log: LOG } = activationUnit("feedfacefeedface");
const { unit: RUNIT, log: RLOG } = restoreUnit("feedfacefeedface");
const CP = "/tmp/nf-test/alpha.sock";

/** An ssh call riding the master at CP, as SshConnection.run sends it (root, no sudo). */
function remoteArgv(words: string[]): string[] {
    const quoted = words.map((word) => `'${word.replace(/'/g, "'\\''")}'`).join(" ");
    return ["ssh", "-o", `ControlPath=${CP}`, "-o", "ControlMaster=no", "-n", "root@alpha.example.org", quoted];
}

function host() {
    const fake = FakeHost.withGenerations(v1);
    fake.state.store.add(next);
    const runner = new FakeRunner();
    fake.attach(runner);
    const run = (name: string, ...args: string[]) => runner.run(remoteArgv(["sh", "-c", "SCRIPT", name, ...args]));
    const progress = async (): Promise<ActivationProgress> => {
        const { stdout } = await run("nixos-fleet-status", UNIT);
        const [unitPart = "", statePart = ""] = stdout.split("@state\n");
        expect(parseHostState(statePart)).toEqual(parseHostState(fake.stateOutput()));
        return progressOf(parseUnitStatus(unitPart));
    };
    return { fake, runner, run, progress };
}

describe("FakeHost (test helper)", { timeout: 1000 }, () => {
    it("a unit that exited 0, 4 or 1, was killed, or is unknown reads as activationUnit.ts expects", async () => {
        const cases: [(fake: FakeHost) => void, ActivationProgress][] = [
            [() => undefined, { kind: "exited", status: 0 }],
            [(fake) => fake.failingUnits.set(next, ["a.service"]), { kind: "exited", status: 4 }],
            [(fake) => fake.failingSystems.add(next), { kind: "exited", status: 1 }],
            [(fake) => fake.killedSystems.set(next, 9), { kind: "killed", signal: 9 }],
        ];
        for (const [arrange, expected] of cases) {
            const { fake, run, progress } = host();
            arrange(fake);
            expect((await run("nixos-fleet-activate", UNIT, LOG, next, "switch", "")).code).toBe(0);
            expect(await progress()).toEqual(expected);
            await run("nixos-fleet-cleanup", UNIT, LOG);
            expect(await progress()).toEqual({ kind: "gone" });
        }
        expect(await host().progress()).toEqual({ kind: "gone" });
    });

    it("a unit kept running for N status polls; the log grows from its first line to the whole output", async () => {
        const { fake, run, progress } = host();
        fake.unitRunningPolls = 2;
        await run("nixos-fleet-activate", UNIT, LOG, next, "switch", "");
        expect((await run("nixos-fleet-follow", UNIT, LOG, "0")).stdout).toBe("activating the configuration...\n");
        expect(await progress()).toEqual({ kind: "running" });
        expect(await progress()).toEqual({ kind: "running" });
        expect(await progress()).toEqual({ kind: "exited", status: 0 });
        expect((await run("nixos-fleet-follow", UNIT, LOG, "32")).stdout).toBe("setting up /etc...\nswitch: done\n");
    });

    it("starting a unit whose name is still loaded fails, as systemd-run does", async () => {
        const { run } = host();
        await run("nixos-fleet-activate", UNIT, LOG, next, "switch", "");
        const again = await run("nixos-fleet-activate", UNIT, LOG, next, "switch", "");
        expect(again.code).toBe(1);
        expect(again.stderr).toContain("already loaded");
    });

    it("a follow that drops streams its bytes, kills the master, and the host can stay away", async () => {
        const { fake, runner, run } = host();
        await runner.run(["ssh", "-o", `ControlPath=${CP}`, "-o", "ControlMaster=yes", "-n", "-N", "-f", "root@alpha.example.org"]);
        fake.followDrops.push({ afterBytes: 5, silent: true, downFor: 1 });
        await run("nixos-fleet-activate", UNIT, LOG, next, "switch", "");
        const chunks: string[] = [];
        const dropped = await runner.run(remoteArgv(["sh", "-c", "SCRIPT", "nixos-fleet-follow", UNIT, LOG, "0"]), { onStdout: (chunk) => chunks.push(chunk) });
        expect(dropped).toMatchObject({ code: 255, stderr: "", stdout: "activ" });
        expect(chunks).toEqual(["activ"]);
        expect((await runner.run(["ssh", "-o", `ControlPath=${CP}`, "-O", "check", "root@alpha.example.org"])).code).toBe(255);
        expect(runner.matching(masterCheck)).toHaveLength(1);
        const refused = await runner.run(["ssh", "-o", `ControlPath=${CP}`, "-o", "ControlMaster=yes", "-n", "-N", "-f", "root@alpha.example.org"]);
        expect(refused.stderr).toBe("ssh: connect to host alpha.example.org port 22: Connection refused\r\n");
        const back = await runner.run(["ssh", "-o", `ControlPath=${CP}`, "-o", "ControlMaster=yes", "-n", "-N", "-f", "root@alpha.example.org"]);
        expect(back.code).toBe(0);
        expect(runner.matching(masterStart)).toHaveLength(3);
    });

    it("disarm claims the decision once: 0, then 4 (a deployer holds it); a watchdog that decided first reverts and the claim fails (3)", async () => {
        const first = host();
        expect((await first.run("nixos-fleet-disarm", "/run/nixos-fleet", "t1")).code).toBe(0);
        expect(first.fake.decidedBy.get("t1")).toBe("deployer");
        expect((await first.run("nixos-fleet-disarm", "/run/nixos-fleet", "t1")).code).toBe(4);
        // A decision directory without a by-file (its claimant never said): read as the watchdog's.
        first.fake.decided.add("t0");
        expect((await first.run("nixos-fleet-disarm", "/run/nixos-fleet", "t0")).code).toBe(3);

        const { fake, runner, run } = host();
        fake.watchdogDecidesFirst = true;
        const arm = ["systemd-run", "--unit=nixos-fleet-watchdog-t2", "--description=x", "--", "sh", "-c", "SCRIPT", "nixos-fleet-watchdog"];
        await runner.run(remoteArgv([...arm, "/run/nixos-fleet", "t2", "30", "switch", "1", v1, v1, UNIT]));
        fake.state.generations.set(2, next);
        fake.state.profileGeneration = 2;
        fake.state.current = next;
        expect((await run("nixos-fleet-disarm", "/run/nixos-fleet", "t2")).code).toBe(3);
        expect(fake.decidedBy.get("t2")).toBe("watchdog");
        expect((await run("nixos-fleet-disarm", "/run/nixos-fleet", "t2")).code).toBe(3);
        expect(fake.watchdogs[0]).toMatchObject({ token: "t2", reverted: true, stopped: false });
        expect(fake.state).toMatchObject({ profileGeneration: 1, current: v1, bootDefault: v1 });
    });

    it("the preflight waits for other deploys: an armed watchdog whose activation ended reverts within the wait, then ready; what runs on past it: exit 13, named", async () => {
        const PRE = ["nixos-fleet-preflight", "/run/nixos/switch-to-configuration.lock", "20"] as const;
        {
            const { fake, run } = host();
            fake.state.generations.set(2, next);
            fake.state.profileGeneration = 2;
            fake.state.current = next;
            const stale = fake.staleWatchdog("e1", "ended", 1);
            // Ready, with what the host runs once the watchdog has reverted it.
            const ready = await run(...PRE, "60");
            expect(ready.code).toBe(0);
            expect(ready.stdout).toMatch(/^@ready\nprofile=system-1-link\n/);
            expect(stale).toMatchObject({ reverted: true, stopped: false });
            expect(fake.decidedBy.get("e1")).toBe("watchdog");
            expect(fake.state).toMatchObject({ profileGeneration: 1, current: v1 });
        }
        {
            const { fake, run } = host();
            fake.staleWatchdog("a1", "running", 1);
            fake.staleWatchdog("f1", "failed", 1, 300);
            const notStarted = fake.staleWatchdog("b1", "not started", 1);
            const busy = await run(...PRE, "60");
            expect(busy).toMatchObject({
                code: 13,
                stdout: "nixos-fleet-activate-a1.service nixos-fleet-watchdog-a1.service nixos-fleet-watchdog-f1.service nixos-fleet-watchdog-b1.service \n",
            });
            expect(fake.watchdogs.every((watchdog) => !watchdog.reverted && !watchdog.stopped)).toBe(true);
            // Waiting 120 s: the watchdog whose activation never appeared gives up, reverting nothing; the rest run on.
            const longer = await run(...PRE, "120");
            expect(longer).toMatchObject({ code: 13, stdout: "nixos-fleet-activate-a1.service nixos-fleet-watchdog-a1.service nixos-fleet-watchdog-f1.service \n" });
            expect(notStarted).toMatchObject({ gaveUp: true, reverted: false });
            expect(fake.activations).toEqual([]);
        }
        {
            const { fake, run } = host();
            expect((await run("nixos-fleet-preflight", "/run/nixos/switch-to-configuration.lock", "20")).code).toBe(2);
            fake.lockHeld = true;
            expect((await run(...PRE, "60")).code).toBe(11);
        }
    });

    it("the cleanup leaves a unit that still runs alone: loaded, its log and its decision files kept", async () => {
        const { fake, run } = host();
        fake.unitRunningPolls = 1;
        await run("nixos-fleet-activate", UNIT, LOG, next, "switch", "");
        fake.decided.add("feedfacefeedface");
        await run("nixos-fleet-cleanup", UNIT, LOG, "feedfacefeedface");
        expect(fake.unit(UNIT)).toMatchObject({ loaded: true, logExists: true });
        expect([...fake.decided]).toEqual(["feedfacefeedface"]);
        // Once it has ended, the same cleanup removes it.
        await run("nixos-fleet-status", UNIT);
        await run("nixos-fleet-cleanup", UNIT, LOG, "feedfacefeedface");
        expect(fake.unit(UNIT)).toMatchObject({ loaded: false, logExists: false });
        expect(fake.decided.size).toBe(0);
    });

    it("knobs: a start that times out after the unit started, a profile change whose answer is lost, systemctl failing (exit 20)", async () => {
        const { fake, run, runner } = host();
        fake.timeoutAfterNextStart = true;
        expect(await run("nixos-fleet-activate", UNIT, LOG, next, "switch", "")).toMatchObject({ code: null, signal: "SIGKILL", timedOut: true });
        expect(fake.unit(UNIT)).toMatchObject({ loaded: true });
        fake.timeoutAfterNextRestoreStart = true;
        expect(await run("nixos-fleet-restore-start", RUNIT, RLOG, "nixos-fleet-restore: done: ", "test", "", v1, v1, "")).toMatchObject({ timedOut: true });
        expect(fake.restore(RUNIT)).toMatchObject({ loaded: true });
        fake.systemctlFailsAtNextStatus = 1;
        expect((await run("nixos-fleet-status", UNIT)).code).toBe(20);
        expect((await run("nixos-fleet-status", UNIT)).code).toBe(0);
        fake.dropAfterNextProfileChange = true;
        const set = await runner.run(remoteArgv(["nix-env", "-p", SYSTEM_PROFILE, "--set", next]));
        expect(set).toMatchObject({ code: 255, stderr: "Connection closed by 127.0.0.1 port 22\r\n" });
        expect(fake.profileStorePath).toBe(next);
    });

    it("an unknown script name is refused loudly", async () => {
        const { run } = host();
        const result = await run("nixos-fleet-something-new", "x");
        expect(result).toMatchObject({ code: 1, stderr: "fake host: unexpected script name nixos-fleet-something-new\n" });
    });

    it("shortCommand names the scripts by $0 and shows empty arguments", () => {
        expect(shortCommand(["sh", "-c", "SCRIPT", "nixos-fleet-activate", UNIT, LOG, next, "switch", ""])).toBe(`nixos-fleet-activate ${UNIT} ${LOG} ${next} switch ''`);
        expect(shortCommand(["nix-env", "-p", "x"])).toBe("nix-env -p x");
    });

    it("shortCommand shows the restore script the restore unit runs as RESTORE_SCRIPT, and anything else there as not it", () => {
        const restore = "\necho \"nixos-fleet-restore: done: $1\"\n";
        expect(shortCommand(["sh", "-c", "START", "nixos-fleet-restore-start", RUNIT, RLOG, restore, "switch", "1", v1, v1, ""])).toBe(
            `nixos-fleet-restore-start ${RUNIT} ${RLOG} RESTORE_SCRIPT switch 1 ${v1} ${v1} ''`,
        );
        expect(shortCommand(["sh", "-c", "START", "nixos-fleet-restore-start", RUNIT, RLOG, "rm -rf /", "switch"])).toBe(
            `nixos-fleet-restore-start ${RUNIT} ${RLOG} <not the restore script> switch`,
        );
    });

    it("a restore unit: runs the restore at once, reads as exited 0 (or 1 when a step failed), and the cleanup forgets it", async () => {
        for (const [arrange, expected] of [
            [() => undefined, { kind: "exited", status: 0 }],
            [(fake: FakeHost) => fake.failingSystems.add(v1), { kind: "exited", status: 1 }],
        ] as const) {
            const { fake, run } = host();
            arrange(fake);
            // The deploy of `next` as generation 2, to be undone.
            fake.state.generations.set(2, next);
            fake.state.profileGeneration = 2;
            fake.state.current = next;
            const start = await run("nixos-fleet-restore-start", RUNIT, RLOG, "RESTORE nixos-fleet-restore: done: ", "switch", "1", v1, v1, "");
            expect(start.code).toBe(0);
            const { stdout } = await run("nixos-fleet-status", RUNIT);
            expect(progressOf(parseUnitStatus(stdout.split("@state\n")[0]!))).toEqual(expected);
            expect(fake.restores[0]).toMatchObject({ name: RUNIT, log: RLOG, loaded: true, logExists: true });
            expect(fake.state.profileGeneration).toBe(1);
            await run("nixos-fleet-cleanup", RUNIT, RLOG, "");
            expect(fake.restores[0]).toMatchObject({ loaded: false, logExists: false });
        }
    });

    it("a restore unit must be given the restore script, a log under /run/nixos-fleet and its five arguments", async () => {
        const { fake, run } = host();
        expect((await run("nixos-fleet-restore-start", RUNIT, RLOG, "something else", "switch", "1", v1, v1, "")).code).toBe(2);
        expect((await run("nixos-fleet-restore-start", RUNIT, "/tmp/log", "nixos-fleet-restore: done: ", "switch", "1", v1, v1, "")).code).toBe(12);
        expect((await run("nixos-fleet-restore-start", RUNIT, RLOG, "nixos-fleet-restore: done: ", "switch", "1", v1, v1)).code).toBe(2);
        expect(fake.restores).toEqual([]);
    });

    it("the cleanup with a token removes the decision files only once no watchdog of that token runs", async () => {
        const { fake, runner, run } = host();
        const arm = ["systemd-run", "--unit=nixos-fleet-watchdog-t3", "--description=x", "--", "sh", "-c", "SCRIPT", "nixos-fleet-watchdog"];
        await runner.run(remoteArgv([...arm, "/run/nixos-fleet", "t3", "30", "switch", "1", v1, v1, UNIT]));
        fake.decided.add("t3");
        await run("nixos-fleet-cleanup", UNIT, LOG, "t3");
        expect([...fake.decided]).toEqual(["t3"]);
        // The watchdog (not the deployer) decides and reverts: its script ends.
        fake.decided.delete("t3");
        fake.fireWatchdogs();
        expect([...fake.decided]).toEqual(["t3"]);
        expect([...fake.revertedFiles]).toEqual(["t3"]);
        await run("nixos-fleet-cleanup", UNIT, LOG, "t3");
        expect(fake.decided.size).toBe(0);
        expect(fake.revertedFiles.size).toBe(0);
    });
});

// The fake host runs the restore unit's steps itself. Check it against the real restore script,
// run here by sh with stand-ins on PATH (nix-env, rm: they only record) and previous systems whose
// switch-to-configuration records and exits as the fake's knobs say: the same commands in the same
// order, the same "nixos-fleet-restore:" lines, the same exit status.
describe("FakeHost's restore against the real restore script", { timeout: REAL_SCRIPT_TIMEOUT }, () => {
    /** The scripts startRestoreUnit sends: the unit's start script and the restore script, with the arguments. */
    async function restoreCommand(args: RestoreArguments): Promise<string[]> {
        const runner = new FakeRunner();
        runner.on(remote("sh", "-c"), {});
        const connection = new SshConnection(target(), { runner: runner.run, runtimeDir: runtimeDir() });
        await startRestoreUnit(connection, restoreUnit("feedfacefeedface"), args);
        return runner.matching(remote("sh", "-c"))[0]!.remoteCommand!;
    }

    interface Scenario {
        name: string;
        args: (systems: { old: string; prev: string; hand: string }) => RestoreArguments;
        /** Exit codes of switch-to-configuration per system and action (default 0), as the fake's knobs make them. */
        failing?: "prev" | "hand";
        unitsFail?: "prev" | "hand";
        nixEnvFails?: boolean;
    }
    const scenarios: Scenario[] = [
        { name: "switch", args: ({ prev }) => ({ action: "switch", generation: 2, profileStorePath: prev, currentStorePath: prev, profileOnly: false }) },
        { name: "boot", args: ({ prev }) => ({ action: "boot", generation: 2, profileStorePath: prev, currentStorePath: prev, profileOnly: false }) },
        { name: "test", args: ({ prev }) => ({ action: "test", profileStorePath: prev, currentStorePath: prev, profileOnly: false }) },
        { name: "dry-activate", args: ({ prev }) => ({ action: "dry-activate", profileStorePath: prev, currentStorePath: prev, profileOnly: false }) },
        { name: "profile only", args: ({ prev }) => ({ action: "switch", generation: 2, profileStorePath: prev, currentStorePath: prev, profileOnly: true }) },
        { name: "no profile before", args: ({ hand }) => ({ action: "switch", currentStorePath: hand, profileOnly: false }) },
        { name: "no profile, nothing running", args: () => ({ action: "switch", profileOnly: false }) },
        { name: "running system not the profile's", args: ({ prev, hand }) => ({ action: "switch", generation: 2, profileStorePath: prev, currentStorePath: hand, profileOnly: false }) },
        { name: "nix-env fails", nixEnvFails: true, args: ({ prev }) => ({ action: "switch", generation: 2, profileStorePath: prev, currentStorePath: prev, profileOnly: false }) },
        { name: "previous system fails", failing: "prev", args: ({ prev }) => ({ action: "switch", generation: 2, profileStorePath: prev, currentStorePath: prev, profileOnly: false }) },
        { name: "running system fails", failing: "hand", args: ({ prev, hand }) => ({ action: "switch", generation: 2, profileStorePath: prev, currentStorePath: hand, profileOnly: false }) },
        { name: "previous system's units fail (exit 4)", unitsFail: "prev", args: ({ prev }) => ({ action: "switch", generation: 2, profileStorePath: prev, currentStorePath: prev, profileOnly: false }) },
        { name: "units fail, first-ever deploy", unitsFail: "hand", args: ({ hand }) => ({ action: "test", currentStorePath: hand, profileOnly: false }) },
    ];

    /** Only the restore's own lines, and the profile links rm was given as one word (the glob may or may not match here). */
    const restoreLines = (text: string) => text.split("\n").filter((line) => line.startsWith("nixos-fleet-restore: "));
    const normalize = (command: string) => command.replace(/^rm -f .*$/, "rm -f <the system profile and its links>");

    for (const scenario of scenarios) {
        it(scenario.name, async () => {
            const dir = tempDir("nf-restore-");
            const record = path.join(dir, "ran");
            fs.writeFileSync(record, "");
            const bin = path.join(dir, "bin");
            fs.mkdirSync(bin);
            const stub = (file: string, body: string) => fs.writeFileSync(file, `#!/bin/sh\n${body}\n`, { mode: 0o755 });
            stub(path.join(bin, "nix-env"), scenario.nixEnvFails ? 'echo "nix-env $*" >> "$RECORD"; echo "error: lock held" >&2; exit 1' : 'echo "nix-env $*" >> "$RECORD"');
            stub(path.join(bin, "rm"), 'echo "rm $*" >> "$RECORD"');
            const systems = { old: path.join(dir, "system-old"), prev: path.join(dir, "system-prev"), hand: path.join(dir, "system-hand") };
            for (const [name, system] of Object.entries(systems)) {
                fs.mkdirSync(path.join(system, "bin"), { recursive: true });
                const test = scenario.failing === name ? 1 : scenario.unitsFail === name ? 4 : 0;
                const boot = scenario.failing === name ? 1 : 0;
                stub(path.join(system, "bin", "switch-to-configuration"), `echo "$0 $1" >> "$RECORD"\ncase "$1" in boot) exit ${boot} ;; *) exit ${test} ;; esac`);
            }
            const args = scenario.args(systems);
            const words = await restoreCommand(args);
            expect(words.slice(0, 2)).toEqual(["sh", "-c"]);
            expect(words[3]).toBe("nixos-fleet-restore-start");
            const [script, ...scriptArgs] = words.slice(6);

            // The real script, its output to one file as the unit's StandardOutput=/StandardError=append: have it.
            const log = path.join(dir, "log");
            const fd = fs.openSync(log, "a");
            const real = spawnSync("sh", ["-c", script!, "nixos-fleet-restore", ...scriptArgs], {
                stdio: ["ignore", fd, fd],
                env: { PATH: `${bin}:/usr/bin:/bin`, RECORD: record },
            });
            fs.closeSync(fd);
            expect(real.error).toBeUndefined();

            // The fake, on a host that deployed generation 3 over generation 2 (prev).
            const fake = FakeHost.withGenerations(systems.old, systems.prev);
            fake.state.store.add(systems.hand);
            fake.state.generations.set(3, next);
            fake.state.profileGeneration = 3;
            if (scenario.nixEnvFails) fake.switchGenerationFails = "error: lock held";
            if (scenario.failing) fake.failingSystems.add(systems[scenario.failing]);
            if (scenario.unitsFail) fake.failingUnits.set(systems[scenario.unitsFail], ["db.service"]);
            const runner = new FakeRunner();
            fake.attach(runner);
            const started = await runner.run(remoteArgv(words));
            expect(started.code).toBe(0);
            const unit = fake.restores[0]!;

            const realRan = fs.readFileSync(record, "utf8").split("\n").filter(Boolean).map(normalize);
            expect(unit.ran.map(normalize)).toEqual(realRan);
            const realOutput = fs.readFileSync(log, "utf8");
            expect(restoreLines(unit.output)).toEqual(restoreLines(realOutput));
            expect(restoreSteps(unit.output)).toEqual(restoreSteps(realOutput));
            expect(unit.exit).toEqual({ code: real.status });
            // The profile went where the real script sent it.
            if (realRan.some((command) => command.startsWith(`nix-env -p ${SYSTEM_PROFILE} --switch-generation`)) && !scenario.nixEnvFails) {
                expect(fake.state.profileGeneration).toBe(2);
            }
        });
    }
});
