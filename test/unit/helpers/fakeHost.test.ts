import { describe, expect, it } from "vitest";
import { activationUnit, parseUnitStatus, progressOf, type ActivationProgress } from "../../../src/deploy/activationUnit";
import { parseHostState } from "../../../src/deploy/hostState";
import { FakeHost, shortCommand } from "./fakeHost";
import { FakeRunner, masterCheck, masterStart } from "./fakeRunner";
import { storePath } from "./fixtures";

// The fake host stands in for systemd in most deploy tests: check that what it prints means to
// activationUnit.ts's parsers what the real `systemctl show` output means.
const v1 = storePath("nixos-system-alpha-1");
const next = storePath("nixos-system-alpha-2");
const { unit: UNIT, log: LOG } = activationUnit("feedfacefeedface");
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

    it("disarm claims the decision once: 0, then 3; a watchdog that decided first reverts and the claim fails", async () => {
        const first = host();
        expect((await first.run("nixos-fleet-disarm", "/run/nixos-fleet", "t1")).code).toBe(0);
        expect((await first.run("nixos-fleet-disarm", "/run/nixos-fleet", "t1")).code).toBe(3);

        const { fake, runner, run } = host();
        fake.watchdogDecidesFirst = true;
        const arm = ["systemd-run", "--unit=nixos-fleet-watchdog-t2", "--description=x", "--", "sh", "-c", "SCRIPT", "nixos-fleet-watchdog"];
        await runner.run(remoteArgv([...arm, "/run/nixos-fleet", "t2", "30", "switch", "1", v1, v1, UNIT]));
        fake.state.generations.set(2, next);
        fake.state.profileGeneration = 2;
        fake.state.current = next;
        expect((await run("nixos-fleet-disarm", "/run/nixos-fleet", "t2")).code).toBe(3);
        expect(fake.watchdogs[0]).toMatchObject({ token: "t2", reverted: true, stopped: false });
        expect(fake.state).toMatchObject({ profileGeneration: 1, current: v1, bootDefault: v1 });
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
});
