// The decision between the deployer and the host's watchdog (confirm.ts): the deployer claims it
// once (disarm) and remembers that; when the watchdog claimed it, the deployer waits for its revert.
import { describe, expect, it } from "vitest";
import { armWatchdog, awaitWatchdogRevert, claim, type Watchdog } from "../../../src/deploy/confirm";
import { parseHostState } from "../../../src/deploy/hostState";
import { SshConnection } from "../../../src/ssh/connection";
import { FakeHost, remoteCommandsOf } from "../helpers/fakeHost";
import { FakeRunner, masterStart, remote } from "../helpers/fakeRunner";
import { REAL_SCRIPT_TIMEOUT, fleetErrorOf, runtimeDir, storePath, target } from "../helpers/fixtures";

const v1 = storePath("nixos-system-alpha-1");
const v2 = storePath("nixos-system-alpha-2");
const TOKEN = "0a1b2c3d4e5f6a7b";
const DISARM = `nixos-fleet-disarm /run/nixos-fleet ${TOKEN}`;

async function setup() {
    const host = FakeHost.withGenerations(v1, v2);
    const runner = new FakeRunner();
    host.attach(runner);
    const dir = runtimeDir();
    const connection = new SshConnection(target(), { runner: runner.run, runtimeDir: dir });
    const before = parseHostState(host.stateOutput());
    const watchdog = await armWatchdog(connection, before, "switch", 30, TOKEN);
    const slept: number[] = [];
    const sleep = async (ms: number) => {
        slept.push(ms);
        if (slept.length > 100) throw new Error("kept waiting");
    };
    const context = { runner: runner.run, runtimeDir: `${dir}/confirm`, sleep };
    return { host, runner, connection, before, watchdog, slept, context };
}

const disarms = (runner: FakeRunner) => remoteCommandsOf(runner).filter((command) => command.startsWith("nixos-fleet-disarm"));

describe("claim", { timeout: 1000 }, () => {
    it("disarms once and remembers it: a second claim sends nothing and still holds the decision", async () => {
        const { host, runner, connection, watchdog } = await setup();
        expect(watchdog.claimed).toBeFalsy();
        expect(await claim(connection, watchdog)).toBe(true);
        expect(watchdog.claimed).toBe(true);
        expect(await claim(connection, watchdog)).toBe(true);
        expect(disarms(runner)).toEqual([DISARM]);
        expect(host.watchdogs[0]).toMatchObject({ stopped: true, reverted: false });
        expect([...host.decided]).toEqual([TOKEN]);
    });

    it("when the watchdog claimed the decision first: false, and nothing is remembered as claimed", async () => {
        const { host, connection, watchdog } = await setup();
        host.watchdogDecidesFirst = true;
        expect(await claim(connection, watchdog)).toBe(false);
        expect(watchdog.claimed).toBeFalsy();
        // Asking again does not turn the watchdog's decision into the deployer's.
        expect(await claim(connection, watchdog)).toBe(false);
        expect(watchdog.claimed).toBeFalsy();
        expect(host.watchdogs[0]).toMatchObject({ stopped: false, reverted: true });
    });

    it("a deployer had claimed it already (exit 4: this deployer's answer was lost, or another's): true, remembered, the watchdog not stopped again", async () => {
        const { host, runner, connection, watchdog } = await setup();
        host.decided.add(TOKEN);
        host.decidedBy.set(TOKEN, "deployer");
        expect(await claim(connection, watchdog)).toBe(true);
        expect(watchdog.claimed).toBe(true);
        expect(disarms(runner)).toEqual([DISARM]);
        expect(host.watchdogs[0]).toMatchObject({ stopped: false, reverted: false });
    });

    it("a decision directory without a by-file (its claimant never said) reads as the watchdog's: false", async () => {
        const { host, connection, watchdog } = await setup();
        host.decided.add(TOKEN);
        expect(await claim(connection, watchdog)).toBe(false);
        expect(watchdog.claimed).toBeFalsy();
    });

    it("a watchdog claimed earlier over another connection is not disarmed again (mkdir would fail and read as the watchdog's claim)", async () => {
        const { runner, connection, watchdog } = await setup();
        const other = new SshConnection(target(), { runner: runner.run, runtimeDir: runtimeDir() });
        expect(await claim(other, watchdog)).toBe(true);
        expect(await claim(connection, watchdog)).toBe(true);
        expect(disarms(runner)).toEqual([DISARM]);
    });
});

describe("awaitWatchdogRevert", { timeout: 1000 }, () => {
    const withEnd = (watchdog: Watchdog): Watchdog => ({ ...watchdog, activationEndedAt: Date.now() });

    it("returns what the host went back to, once it is back on the system it ran before", async () => {
        const { host, runner, before, watchdog, slept, context } = await setup();
        host.fireWatchdogs();
        const back = await awaitWatchdogRevert(target(), before, withEnd(watchdog), context, "why");
        expect(back).toBe("generation 2");
        // One wait for the watchdog's timeout after the activation's end (+ its poll, + 1 s), one look.
        expect(slept).toHaveLength(1);
        expect(slept[0]).toBeGreaterThan(31_000);
        expect(slept[0]).toBeLessThanOrEqual(32_000);
        expect(runner.matching(masterStart)).toHaveLength(2);
    });

    it("a host with no generation before: 'the previous system'", async () => {
        const installer = storePath("nixos-system-installer");
        const { host, runner, watchdog, context } = await setup();
        host.state.generations.clear();
        host.state.profileGeneration = undefined;
        host.state.current = installer;
        host.state.store.add(installer);
        const before = parseHostState(host.stateOutput());
        expect(await awaitWatchdogRevert(target(), before, withEnd(watchdog), context, "why")).toBe("the previous system");
        expect(runner.unexpected).toEqual([]);
    });

    it("a host that is not back as before after ten looks: outcome unknown, starting with the reason given", async () => {
        const { host, before, watchdog, slept, context } = await setup();
        // Reachable, but still on another system: not back.
        host.state.current = v1;
        const error = await fleetErrorOf(awaitWatchdogRevert(target(), before, withEnd(watchdog), context, "the host lost access after activation (x)"));
        expect(error).toMatchObject({ phase: "activate", host: "alpha", outcome: "unknown" });
        expect(error.message).toBe(
            "outcome unknown: the host lost access after activation (x); the host's watchdog should have restored it to generation 2, but it is still not reachable as before",
        );
        expect(slept.slice(1)).toEqual(Array(10).fill(2000));
    });
});

describe("the watchdog's script", { timeout: REAL_SCRIPT_TIMEOUT }, () => {
    /** The script armWatchdog hands to systemd-run (after `-- sh -c`). */
    async function watchdogScript(): Promise<string> {
        const { runner } = await setup();
        const words = runner.matching(remote("systemd-run"))[0]!.remoteCommand!;
        const dash = words.indexOf("--");
        expect(words.slice(dash + 1, dash + 3)).toEqual(["sh", "-c"]);
        return words[dash + 3]!;
    }

    it("logs its timeout as $timeout: systemd-run would expand ${…} in its command line itself", async () => {
        const script = await watchdogScript();
        expect(script).toContain('waiting $timeout seconds for a confirmation" >> "$dir/watchdog.log"');
        expect(script).toContain('no confirmation within $timeout seconds, reverting" >> "$dir/watchdog.log"');
        // Nothing systemd would substitute: no ${…}, no $$.
        expect(script).not.toContain("${");
        expect(script).not.toContain("$$");
    });
});
