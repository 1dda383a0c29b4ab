// The fixed scripts of confirm.ts and activationUnit.ts, run here by sh with stand-ins on PATH
// (systemctl answers from a little state directory and records what it was asked; tail, timeout
// and sleep record; flock answers as told), in a temporary directory instead of /run/nixos-fleet.
// Where the fake host speaks for a script in the deploy tests (preflight, disarm), its answers are
// checked against the real script's on the same situation.
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { checkReadyToActivate } from "../../../src/deploy/activate";
import { activationUnit, followUnit, removeUnit, statusAfterFollow, unitStatus } from "../../../src/deploy/activationUnit";
import { armWatchdog, disarm } from "../../../src/deploy/confirm";
import { parseHostState } from "../../../src/deploy/hostState";
import { SshConnection } from "../../../src/ssh/connection";
import { FakeHost, type Claimant, type StaleActivation } from "../helpers/fakeHost";
import { FakeRunner, remote } from "../helpers/fakeRunner";
import { REAL_SCRIPT_TIMEOUT, runtimeDir, storePath, target, tempDir } from "../helpers/fixtures";

const v1 = storePath("nixos-system-alpha-1");
const v2 = storePath("nixos-system-alpha-2");
const v3 = storePath("nixos-system-alpha-3");

/** The remote command `send` makes (the first `sh -c` or systemd-run it sends), as words. */
async function sent(send: (connection: SshConnection) => Promise<unknown>): Promise<string[]> {
    const runner = new FakeRunner();
    runner.on(remote("sh", "-c"), { stdout: "@state\n" });
    runner.on(remote("systemd-run"), {});
    const connection = new SshConnection(target(), { runner: runner.run, runtimeDir: runtimeDir() });
    await send(connection);
    return runner.calls.find((call) => call.remoteCommand)!.remoteCommand!;
}

/** The keys of `key=value` lines. */
const keysOf = (text: string): string[] => text.split("\n").filter((line) => line.includes("=")).map((line) => line.slice(0, line.indexOf("=")));

const watchdogOf = (token: string) => ({ token, timeoutSeconds: 30, armedAt: 0 });

/** A directory for one run: the stand-ins, systemctl's state, the record of what ran, and the script's dir. */
function sandbox() {
    const root = tempDir("nf-scripts-");
    const bin = path.join(root, "bin");
    const state = path.join(root, "state");
    const dir = path.join(root, "run");
    const record = path.join(root, "ran");
    for (const made of [bin, state, dir]) fs.mkdirSync(made);
    fs.writeFileSync(record, "");
    const stub = (name: string, body: string) => fs.writeFileSync(path.join(bin, name), `#!/bin/sh\n${body}\n`, { mode: 0o755 });
    // For the preflight: systemd-run exists; flock fails on its calls FLOCK_FAIL_FROM..FLOCK_FAIL_TO
    // (the lock is held then); sleep only records.
    stub("systemd-run", "exit 0");
    stub(
        "flock",
        [
            'n=$(($(cat "$STATE/flock-calls" 2>/dev/null || echo 0) + 1)); echo "$n" > "$STATE/flock-calls"',
            'if [ -n "$FLOCK_FAIL_FROM" ] && [ "$n" -ge "$FLOCK_FAIL_FROM" ] && [ "$n" -le "${FLOCK_FAIL_TO:-999999}" ]; then exit 1; fi',
            "exit 0",
        ].join("\n"),
    );
    stub("sleep", 'echo "sleep $*" >> "$RECORD"');
    // systemctl: list-units prints state/units; show prints the SubState in state/substate-<unit>
    // (default dead, and LoadState=not-found then), by --value or as properties; stop records only.
    stub(
        "systemctl",
        [
            'echo "systemctl $*" >> "$RECORD"',
            'if [ -n "$SYSTEMCTL_FAILS" ]; then echo "Failed to connect to bus: Connection timed out" >&2; exit 1; fi',
            "for last; do :; done",
            'case "$1" in',
            // BUSY_CALLS: the units are listed by the first that many list-units only (then they have ended).
            '  list-units) n=$(($(cat "$STATE/list-calls" 2>/dev/null || echo 0) + 1)); echo "$n" > "$STATE/list-calls"',
            '    if [ -z "$BUSY_CALLS" ] || [ "$n" -le "$BUSY_CALLS" ]; then cat "$STATE/units" 2>/dev/null; fi ;;',
            // is-active: active when state/units lists the unit (a running one).
            '  is-active) grep -q "^$last " "$STATE/units" 2>/dev/null && exit 0; exit 3 ;;',
            '  show) sub=$(cat "$STATE/substate-$last" 2>/dev/null || echo dead)',
            '    case "$*" in',
            '      *MainPID*--value*) cat "$STATE/pid-$last" 2>/dev/null || echo 0 ;;',
            '      *--value*) echo "$sub" ;;',
            '      *) if [ "$sub" = dead ]; then echo LoadState=not-found; else echo LoadState=loaded; fi; echo "SubState=$sub" ;;',
            "    esac ;;",
            "esac",
            "exit 0",
        ].join("\n"),
    );
    return {
        root,
        dir,
        stub,
        /** A running unit, as `systemctl list-units --plain --no-legend` lists it. */
        listed(unit: string) {
            fs.appendFileSync(path.join(state, "units"), `${unit} loaded active running nixos-fleet\n`);
        },
        /** An active watchdog for `token`, and what its activation unit's SubState says. */
        watchdog(token: string, activation: StaleActivation | "exited") {
            fs.appendFileSync(path.join(state, "units"), `nixos-fleet-watchdog-${token}.service loaded active running nixos-fleet: automatic rollback\n`);
            const sub = { ended: "exited", exited: "exited", failed: "failed", running: "running", "not started": "dead" }[activation];
            fs.writeFileSync(path.join(state, `substate-nixos-fleet-activate-${token}.service`), `${sub}\n`);
        },
        substate(unit: string, sub: string, pid = 0) {
            fs.writeFileSync(path.join(state, `substate-${unit}`), `${sub}\n`);
            fs.writeFileSync(path.join(state, `pid-${unit}`), `${pid}\n`);
        },
        decide(token: string, by: Claimant) {
            fs.mkdirSync(path.join(dir, `decided-${token}`));
            fs.writeFileSync(path.join(dir, `decided-${token}`, "by"), `${by}\n`);
        },
        by(token: string): string | undefined {
            const file = path.join(dir, `decided-${token}`, "by");
            return fs.existsSync(file) ? fs.readFileSync(file, "utf8").trim() : undefined;
        },
        /**
         * Runs `sh -c SCRIPT NAME args…` as sent, with `dir` instead of /run/nixos-fleet where given,
         * a lock file in the sandbox instead of /run/nixos's, and the sandbox standing in for
         * /run/systemd/system (the preflight's "systemd runs" test).
         */
        run(words: string[], env: Record<string, string> = {}) {
            const [sh, c, script, name, ...args] = words;
            expect([sh, c]).toEqual(["sh", "-c"]);
            const local = (arg: string) => (arg === "/run/nixos-fleet" ? dir : arg === "/run/nixos/switch-to-configuration.lock" ? path.join(root, "lock", "stc.lock") : arg);
            const result = spawnSync("sh", ["-c", script!.split("/run/systemd/system").join(root), name!, ...args.map(local)], {
                encoding: "utf8",
                env: { PATH: `${bin}:/usr/bin:/bin`, RECORD: record, STATE: state, ...env },
            });
            expect(result.error).toBeUndefined();
            return result;
        },
        ran: (): string[] => fs.readFileSync(record, "utf8").split("\n").filter(Boolean),
        slept: (): number => fs.readFileSync(record, "utf8").split("\n").filter((line) => line === "sleep 1").length,
        stopped: (): string[] =>
            fs
                .readFileSync(record, "utf8")
                .split("\n")
                .filter((line) => line.startsWith("systemctl stop "))
                .map((line) => line.slice("systemctl stop ".length)),
    };
}

describe("the preflight script: waits while another nixos-fleet deploy is under way", { timeout: REAL_SCRIPT_TIMEOUT }, () => {
    const STALE = "5a1e5a1e5a1e5a1e";
    const preflightWords = (lockWait: number, busyWait: number) => sent((connection) => checkReadyToActivate(connection, lockWait, busyWait).catch(() => undefined));

    it("sends the lock, the lock wait and the busy wait; the script tests for systemd once (replaced here)", async () => {
        const words = await preflightWords(20, 60);
        expect(words.slice(3)).toEqual(["nixos-fleet-preflight", "/run/nixos/switch-to-configuration.lock", "20", "60"]);
        expect(words[2]!.split("/run/systemd/system")).toHaveLength(2);
        expect(words[2]).toContain("'nixos-fleet-activate-*' 'nixos-fleet-restore-*' 'nixos-fleet-watchdog-*'");
    });

    it("nothing else under way: exit 0 at once, with the host's state after the marker (the deploy's \"before\", one round trip)", async () => {
        const box = sandbox();
        const result = box.run(await preflightWords(20, 60));
        expect(result.status).toBe(0);
        expect(box.slept()).toBe(0);
        expect(result.stdout).toMatch(/^@ready\n/);
        expect(keysOf(result.stdout.slice("@ready\n".length))).toEqual(["profile", "profilePath", "current", "booted", "version"]);
    });

    it("another deploy's watchdog armed for 5 s more: waits a second at a time, then exit 0", async () => {
        const box = sandbox();
        box.listed(`nixos-fleet-watchdog-${STALE}.service`);
        const result = box.run(await preflightWords(20, 60), { BUSY_CALLS: "5" });
        expect(result.status).toBe(0);
        expect(box.slept()).toBe(5);
    });

    it("still under way after the busy wait: exit 13, the units printed", async () => {
        const box = sandbox();
        box.listed(`nixos-fleet-activate-${STALE}.service`);
        box.listed(`nixos-fleet-watchdog-${STALE}.service`);
        const result = box.run(await preflightWords(20, 3));
        expect(result.status).toBe(13);
        expect(result.stdout).toBe(`nixos-fleet-activate-${STALE}.service nixos-fleet-watchdog-${STALE}.service \n`);
        expect(box.slept()).toBe(3);
    });

    it("the lock held through the lock wait: exit 11", async () => {
        const box = sandbox();
        const result = box.run(await preflightWords(2, 60), { FLOCK_FAIL_FROM: "1" });
        expect(result.status).toBe(11);
        expect(box.slept()).toBe(2);
    });

    it("the fake host answers as the script does: ready with nothing under way, 13 naming the same units when a deploy runs on", async () => {
        for (const activation of [undefined, "running"] as const) {
            const box = sandbox();
            const fake = FakeHost.withGenerations(v1, v2, v3);
            if (activation) {
                fake.staleWatchdog(STALE, activation, 2);
                box.listed(`nixos-fleet-activate-${STALE}.service`);
                box.listed(`nixos-fleet-watchdog-${STALE}.service`);
            }
            // A short busy wait: the real script looks once a second (its sleep a stand-in), the fake at once.
            const words = await preflightWords(20, 3);
            const real = box.run(words);
            const runner = new FakeRunner();
            fake.attach(runner);
            const connection = new SshConnection(target(), { runner: runner.run, runtimeDir: runtimeDir() });
            const answered = await connection.run(words, { asRoot: true });
            expect(answered.code).toBe(real.status);
            // Ready: the host's state follows the marker (the real script read this machine's, not comparable).
            const [answeredBusy, answeredState] = answered.stdout.split("@ready\n");
            const [realBusy, realState] = real.stdout.split("@ready\n");
            expect(answeredBusy).toBe(realBusy);
            expect(answeredState === undefined).toBe(realState === undefined);
            if (realState !== undefined) expect(keysOf(answeredState!)).toEqual(keysOf(realState));
        }
    });

    // An interrupted deploy's watchdog (confirmTimeout 30 by default) reverts 30 s after its
    // activation ended, and its switch-to-configuration then holds the activation lock. The preflight
    // that waits for that watchdog counts those seconds in the same counter as the lock wait, so it
    // gives up at once with exit 11 ("another activation ... has held the lock for 20s"), though the
    // lock was held only a moment and the busy wait (60 s) was not used up.
    it("the lock wait is counted on its own: a stale watchdog's revert taking the lock 25 s into the busy wait is waited for, not exit 11", async () => {
        const box = sandbox();
        box.listed(`nixos-fleet-watchdog-${STALE}.service`);
        // The watchdog runs 30 s more; its revert holds the lock from the 26th look to the 28th.
        const result = box.run(await preflightWords(20, 60), { BUSY_CALLS: "30", FLOCK_FAIL_FROM: "26", FLOCK_FAIL_TO: "28" });
        expect(result.status).toBe(0);
    });
});

describe("the disarm and watchdog scripts: who decided, in decided-<token>/by", { timeout: REAL_SCRIPT_TIMEOUT }, () => {
    const TOKEN = "0a1b2c3d4e5f6a7b";

    for (const [name, by, code] of [
        ["nobody decided yet: exit 0, this deployer's claim, the watchdog stopped", undefined, 0],
        ["a deployer decided already (this one, whose answer was lost, or another): exit 4", "deployer", 4],
        ["the watchdog decided: exit 3", "watchdog", 3],
    ] as const) {
        it(`${name} (the fake host answers the same)`, async () => {
            const words = await sent((connection) => disarm(connection, watchdogOf(TOKEN)));
            expect(words.slice(3)).toEqual(["nixos-fleet-disarm", "/run/nixos-fleet", TOKEN]);
            const box = sandbox();
            if (by) box.decide(TOKEN, by);
            const real = box.run(words);
            expect(real.status).toBe(code);
            expect(box.by(TOKEN)).toBe(by ?? "deployer");
            expect(box.stopped()).toEqual(by ? [] : [`nixos-fleet-watchdog-${TOKEN}.service`]);

            const fake = FakeHost.withGenerations(v1, v2);
            const runner = new FakeRunner();
            fake.attach(runner);
            const connection = new SshConnection(target(), { runner: runner.run, runtimeDir: runtimeDir() });
            await armWatchdog(connection, parseHostState(fake.stateOutput()), "switch", 30, TOKEN);
            if (by) {
                fake.decided.add(TOKEN);
                fake.decidedBy.set(TOKEN, by);
            }
            expect(await disarm(connection, watchdogOf(TOKEN))).toBe(code !== 3);
            const answered = runner.calls.filter((call) => call.remoteCommand?.[3] === "nixos-fleet-disarm");
            expect(answered).toHaveLength(1);
            expect(fake.decidedBy.get(TOKEN)).toBe(by ?? "deployer");
            expect(fake.watchdogs[0]!.stopped).toBe(!by);
        });
    }

    it("the watchdog writes 'watchdog' into by when it claims the decision; a disarm after it exits 3", async () => {
        const armed = await sent((connection) => armWatchdog(connection, {}, "switch", 0, TOKEN));
        const dash = armed.indexOf("--");
        const words = armed.slice(dash + 1);
        expect(words[3]).toBe("nixos-fleet-watchdog");
        const box = sandbox();
        // Its activation has ended, and its timeout is 0: it claims the decision at once. Armed with an
        // empty state before, it has nothing to put back (no nix-env, no switch-to-configuration here).
        expect(words.slice(4)).toEqual(["/run/nixos-fleet", TOKEN, "0", "switch", "", "", "", activationUnit(TOKEN).unit]);
        box.watchdog(TOKEN, "exited");
        box.stub("nix-env", 'echo "nix-env $*" >> "$RECORD"; exit 1');
        const watchdogRun = box.run(words);
        expect(watchdogRun.status).toBe(0);
        // It waited its timeout (0 s), then decided; nothing else ran.
        expect(box.ran().filter((line) => !line.startsWith("systemctl show"))).toEqual(["sleep 0"]);
        expect(box.by(TOKEN)).toBe("watchdog");
        expect(fs.existsSync(path.join(box.dir, `reverted-${TOKEN}`))).toBe(true);
        expect(box.run(await sent((connection) => disarm(connection, watchdogOf(TOKEN)))).status).toBe(3);
        expect(box.by(TOKEN)).toBe("watchdog");
    });

    it("a disarm whose answer was lost, asked again: exit 4, the decision stays this deployer's, the watchdog stopped once", async () => {
        const box = sandbox();
        const words = await sent((connection) => disarm(connection, watchdogOf(TOKEN)));
        expect(box.run(words).status).toBe(0);
        expect(box.run(words).status).toBe(4);
        expect(box.by(TOKEN)).toBe("deployer");
        expect(box.stopped()).toEqual([`nixos-fleet-watchdog-${TOKEN}.service`]);
    });
});

describe("the activation unit's scripts", { timeout: REAL_SCRIPT_TIMEOUT }, () => {
    const { unit: UNIT, log: LOG } = activationUnit("0a1b2c3d4e5f6a7b");

    it("the follow is bounded: tail --pid runs under `timeout 30`; a tail that fails waits 1 s and the follow still exits 0", async () => {
        const words = await sent((connection) => followUnit(connection, activationUnit("0a1b2c3d4e5f6a7b"), 10, () => undefined));
        const box = sandbox();
        box.substate(UNIT, "running", 4711);
        box.stub("timeout", 'echo "timeout $*" >> "$RECORD"; shift; exec "$@"');
        box.stub("tail", 'echo "tail $*" >> "$RECORD"; exit 1');
        box.stub("sleep", 'echo "sleep $*" >> "$RECORD"');
        const real = box.run(words);
        expect(real.status).toBe(0);
        expect(box.ran().filter((line) => !line.startsWith("systemctl"))).toEqual([
            `timeout 30 tail -c +11 -s 0.05 --pid=4711 -f ${LOG}`,
            `tail -c +11 -s 0.05 --pid=4711 -f ${LOG}`,
            "sleep 1",
        ]);
    });

    it("the follow of a unit that has ended prints the log from the offset, with no timeout and no wait", async () => {
        const words = await sent((connection) => followUnit(connection, activationUnit("0a1b2c3d4e5f6a7b"), 10, () => undefined));
        const box = sandbox();
        box.substate(UNIT, "exited", 0);
        box.stub("timeout", 'echo "timeout $*" >> "$RECORD"; exit 99');
        box.stub("tail", 'echo "tail $*" >> "$RECORD"');
        box.stub("sleep", 'echo "sleep $*" >> "$RECORD"');
        expect(box.run(words).status).toBe(0);
        expect(box.ran().filter((line) => !line.startsWith("systemctl"))).toEqual([`tail -c +11 ${LOG}`]);
    });

    it("the follow prints the unit's status after the log, on stderr, so the activation's end needs no second round trip", async () => {
        const words = await sent((connection) => followUnit(connection, activationUnit("0a1b2c3d4e5f6a7b"), 10, () => undefined));
        const box = sandbox();
        box.substate(UNIT, "exited", 0);
        box.stub("tail", 'echo "tail $*" >> "$RECORD"; echo "switch: done"');
        const real = box.run(words);
        expect(real.status).toBe(0);
        // The log alone on stdout: the status never counts as activation output.
        expect(real.stdout).toBe("switch: done\n");
        const report = statusAfterFollow(real.stderr);
        expect(report?.status).toMatchObject({ loadState: "loaded", subState: "exited" });
        expect(report?.host).toBeDefined();
    });

    it("a follow whose status read failed (systemctl silent) or was cut off gives no status: the caller asks apart", async () => {
        const words = await sent((connection) => followUnit(connection, activationUnit("0a1b2c3d4e5f6a7b"), 10, () => undefined));
        const box = sandbox();
        const silent = box.run(words, { SYSTEMCTL_FAILS: "1" });
        expect(silent.status).toBe(0);
        expect(silent.stderr).toContain("@status-exit 20");
        expect(statusAfterFollow(silent.stderr)).toBeUndefined();
        box.substate(UNIT, "exited", 0);
        const whole = box.run(words).stderr;
        expect(statusAfterFollow(whole)).toBeDefined();
        // Cut anywhere before its last line, it is not taken.
        for (const cut of [whole.indexOf("@status"), whole.indexOf("@state"), whole.indexOf("@status-exit")]) {
            expect(statusAfterFollow(whole.slice(0, cut + 3))).toBeUndefined();
        }
        // Noise before it (an ssh warning) does not matter; a status printed by the log itself cannot reach stderr.
        expect(statusAfterFollow(`Warning: something\n${whole}`)?.status.subState).toBe("exited");
    });

    it("the status script exits 20, with no state, when systemctl itself fails; 0 with '@state' otherwise", async () => {
        const words = await sent((connection) => unitStatus(connection, activationUnit("0a1b2c3d4e5f6a7b")));
        const box = sandbox();
        const failed = box.run(words, { SYSTEMCTL_FAILS: "1" });
        expect(failed.status).toBe(20);
        expect(failed.stdout).not.toContain("@state");
        expect(failed.stderr).toContain("Failed to connect to bus");
        box.substate(UNIT, "exited");
        const read = box.run(words);
        expect(read.status).toBe(0);
        expect(read.stdout).toContain("SubState=exited\n@state\n");
    });

    /** The cleanup of UNIT as removeUnit sends it, its log written in a fresh sandbox (the path as sent, under /run/nixos-fleet, pointed there). */
    async function cleanupOfUnit() {
        const words = await sent((connection) => removeUnit(connection, activationUnit("0a1b2c3d4e5f6a7b")));
        const box = sandbox();
        const log = path.join(box.dir, `${UNIT}.log`);
        fs.writeFileSync(log, "activating the configuration...\n");
        return { box, log, local: words.map((word) => (word === LOG ? log : word)) };
    }

    it("the cleanup does nothing while the unit still runs (no stop, the log and decision files kept), and removes it once it has ended", async () => {
        const { box, log, local } = await cleanupOfUnit();
        box.substate(UNIT, "running", 4711);
        expect(box.run(local).status).toBe(0);
        expect(box.ran().filter((line) => !line.startsWith("systemctl show"))).toEqual([]);
        expect(fs.existsSync(log)).toBe(true);
        box.substate(UNIT, "exited");
        expect(box.run(local).status).toBe(0);
        expect(box.ran().filter((line) => !line.startsWith("systemctl show"))).toEqual([
            `systemctl stop ${UNIT}`,
            `systemctl reset-failed ${UNIT}`,
            "systemctl is-active --quiet nixos-fleet-watchdog-0a1b2c3d4e5f6a7b.service",
        ]);
        expect(fs.existsSync(log)).toBe(false);
    });

    it("the cleanup also removes what an interrupted deploy left: an ended unit of another token whose log is 10 minutes old and whose watchdog is not armed; nothing else", async () => {
        const { box, local } = await cleanupOfUnit();
        box.substate(UNIT, "exited");
        const hourAgo = new Date(Date.now() - 3600_000);
        /** Another deploy's unit and log (its log last written `at`), with its decision directory. */
        const left = (kind: "activate" | "restore", token: string, sub: string, at = hourAgo) => {
            const unit = `nixos-fleet-${kind}-${token}.service`;
            const file = path.join(box.dir, `${unit}.log`);
            fs.writeFileSync(file, "switch-to-configuration ...\n");
            fs.utimesSync(file, at, at);
            box.substate(unit, sub);
            fs.mkdirSync(path.join(box.dir, `decided-${token}`));
            return { unit, file, decided: path.join(box.dir, `decided-${token}`) };
        };
        const abandoned = left("activate", "1111111111111111", "failed");
        const abandonedRestore = left("restore", "2222222222222222", "exited");
        const recent = left("activate", "3333333333333333", "exited", new Date());
        const guarded = left("activate", "4444444444444444", "exited");
        box.watchdog("4444444444444444", "exited");
        const running = left("activate", "5555555555555555", "running");
        expect(box.run(local).status).toBe(0);

        const stopped = box.ran().filter((line) => line.startsWith("systemctl stop ") || line.startsWith("systemctl reset-failed "));
        expect(stopped).toEqual([
            `systemctl stop ${UNIT}`,
            `systemctl reset-failed ${UNIT}`,
            `systemctl stop ${abandoned.unit}`,
            `systemctl reset-failed ${abandoned.unit}`,
            `systemctl stop ${abandonedRestore.unit}`,
            `systemctl reset-failed ${abandonedRestore.unit}`,
        ]);
        for (const gone of [abandoned, abandonedRestore]) {
            expect(fs.existsSync(gone.file)).toBe(false);
            expect(fs.existsSync(gone.decided)).toBe(false);
        }
        for (const kept of [recent, guarded, running]) {
            expect(fs.existsSync(kept.file)).toBe(true);
            expect(fs.existsSync(kept.decided)).toBe(true);
        }
    });
});
