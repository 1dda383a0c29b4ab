// Reboots: the decision (boot links, policy, action), the reboot and its bounded wait for a new
// boot (reconnects, timeout, a boot loader that did not take the system), and a deploy with
// `reboot: auto` end to end against the fake host.
import { afterEach, describe, expect, it } from "vitest";
import { deployHost, DeployedUnchecked, type DeployContext, type DeployRequest } from "../../../src/deploy/deployHost";
import {
    bootFilesOfDerivation,
    changedBootLinks,
    describeNeed,
    parseBootFiles,
    rebootHost,
    readBootFiles,
    rebootNeedAfterRead,
    recordedBootedSide,
    shouldReboot,
    type BootFiles,
} from "../../../src/deploy/reboot";
import { planHost, rebootLine } from "../../../src/deploy/plan";
import { FleetError, formatFleetError } from "../../../src/errors";
import { SshConnection } from "../../../src/ssh/connection";
import { rebootOutputs } from "../../../src/provider/hostProvider";
import { rebootCell, renderSummary } from "../../../src/cli/progress";
import { fakeClock } from "../helpers/clock";
import { FakeHost, KERNEL_1, attachLocalNix } from "../helpers/fakeHost";
import { FakeRunner, local, masterStart, remote } from "../helpers/fakeRunner";
import { deployRequest, drvPath, runtimeDir, storePath, target } from "../helpers/fixtures";

const v1 = storePath("nixos-system-alpha-1");
const v2 = storePath("nixos-system-alpha-2");
const next = storePath("nixos-system-alpha-3");
const KERNEL_2 = "/nix/store/jjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjj-linux-6.6.2";

const files = (kernel: string | null): BootFiles => ({
    kernel: kernel && `${kernel}/bzImage`,
    initrd: kernel && `${kernel}-initrd/initrd`,
    "kernel-modules": kernel && `${kernel}-modules`,
});

describe("the reboot decision", () => {
    it("compares the kernel, initrd and kernel-modules links, as NixOS's auto-upgrade does", () => {
        expect(changedBootLinks(files(KERNEL_1), files(KERNEL_1))).toEqual([]);
        expect(changedBootLinks(files(KERNEL_1), files(KERNEL_2))).toEqual(["kernel", "initrd", "kernel-modules"]);
        expect(changedBootLinks(files(KERNEL_1), { ...files(KERNEL_1), initrd: "/nix/store/x-initrd/initrd" })).toEqual(["initrd"]);
        // A container's system has no boot links: two of them need no reboot.
        expect(changedBootLinks(files(null), files(null))).toEqual([]);
    });

    it("parses readlink output; a missing link is null", () => {
        expect(parseBootFiles(`kernel=${KERNEL_1}/bzImage\ninitrd=\nkernel-modules=${KERNEL_1}-modules\n`)).toEqual({
            kernel: `${KERNEL_1}/bzImage`,
            initrd: null,
            "kernel-modules": `${KERNEL_1}-modules`,
        });
    });

    it("reads the new system's links from its derivation before it is built (ln -s <path> $out/<link>)", () => {
        const aterm = `Derive([("out","/nix/store/…","","")],[],[],"x86_64-linux","/bin/sh",["-c","mkdir -p $out\\nln -s ${KERNEL_2}/bzImage $out/kernel\\nln -s ${KERNEL_2}-modules $out/kernel-modules\\nln -s ${KERNEL_2}-initrd/initrd $out/initrd\\n"],[])`;
        expect(bootFilesOfDerivation(aterm)).toEqual(files(KERNEL_2));
        expect(bootFilesOfDerivation('Derive([],[],[],"x","/bin/sh",["-c","mkdir $out"],[])')).toBeUndefined();
    });

    it.each([
        ["never", "switch", true, false],
        ["auto", "switch", true, true],
        ["auto", "switch", false, false],
        ["always", "switch", false, true],
        ["auto", "test", true, false],
        ["always", "dry-activate", true, false],
    ] as const)("policy %s, action %s, kernel changed %s: reboot %s", (policy, action, changed, expected) => {
        const need = { changed: changed ? (["kernel"] as const).slice() : [], bootPending: false };
        expect(shouldReboot(policy, action, need, true)).toBe(expected);
    });

    it("auto reboots to activate a boot deploy; always does not reboot a host the deploy did not change", () => {
        expect(shouldReboot("auto", "boot", { changed: [], bootPending: true }, true)).toBe(true);
        expect(shouldReboot("always", "switch", { changed: [], bootPending: false }, false)).toBe(false);
        expect(describeNeed({ changed: ["kernel", "initrd"], bootPending: true })).toBe("kernel, initrd changed; action boot: the deployed system runs after a reboot");
    });
});

describe("readBootFiles", () => {
    it("reads every system named in one command, in order; a missing section is an error, not a guess", async () => {
        const fake = FakeHost.withGenerations(storePath("nixos-system-alpha-1"));
        const runner = new FakeRunner();
        fake.attach(runner);
        const connection = new SshConnection(target(), { runner: runner.run, runtimeDir: runtimeDir() });
        const deployed = storePath("nixos-system-alpha-2");
        const files = await readBootFiles(connection, ["/run/booted-system", deployed]);
        expect(files).toHaveLength(2);
        expect(files[0]!.kernel).toBe(`${KERNEL_1}/bzImage`);
        expect(runner.calls.filter((call) => call.remoteCommand?.[3] === "nixos-fleet-boot-files").map((call) => call.remoteCommand!.slice(4))).toEqual([["/run/booted-system", deployed]]);
        const short = new FakeRunner();
        short.on(masterStart, {});
        short.on(remote("sh", "-c"), { stdout: "@system\nkernel=/nix/store/x\n" });
        const cut = new SshConnection(target(), { runner: short.run, runtimeDir: runtimeDir() });
        await expect(readBootFiles(cut, ["/run/booted-system", deployed])).rejects.toThrow(/could not read the kernel, initrd and kernel-modules links of \/run\/booted-system and /);
    });
});

describe("the plan's reboot line", () => {
    it("flags a kernel change against the booted system; says unknown when the booted side is unknown", async () => {
        const runner = new FakeRunner();
        // Nothing else of the plan is asked here (a later rule wins over this one).
        runner.on(() => true, { code: 1 });
        // Not built yet: the new system's links come from its derivation.
        runner.on(local("sh", "-c"), { code: 3 });
        runner.on(local("cat"), { stdout: `["-c","ln -s ${KERNEL_2}/bzImage $out/kernel\\nln -s ${KERNEL_2}-initrd/initrd $out/initrd\\nln -s ${KERNEL_2}-modules $out/kernel-modules"]` });
        const request = { new: { storePath: next, drvPath: drvPath("nixos-system-alpha-3") }, buildOn: "local" as const };
        const flagged = await planHost(runner.run, { ...request, booted: { known: true, files: files(KERNEL_1) } });
        expect(rebootLine(flagged.reboot)).toBe("reboot needed (kernel, initrd, kernel-modules changed)");
        const same = await planHost(runner.run, { ...request, booted: { known: true, files: files(KERNEL_2) } });
        expect(rebootLine(same.reboot)).toBe("no reboot needed");
        const unreachable = await planHost(runner.run, { ...request, booted: { known: false, reason: "the booted system could not be read: host alpha: connect failed" } });
        expect(rebootLine(unreachable.reboot)).toBe("reboot: unknown (the booted system could not be read: host alpha: connect failed)");
    });
});

describe("the booted side of a plan (recorded, never read from the host)", () => {
    const booted = storePath("nixos-system-alpha-booted");
    const bootFiles = `kernel=${KERNEL_2}/bzImage\ninitrd=${KERNEL_2}-initrd/initrd\nkernel-modules=${KERNEL_2}-modules\n`;

    it("a recorded value that is not a store path (the state is not checked by the input rules) reaches no command", async () => {
        const runner = new FakeRunner();
        runner.on(() => true, { stdout: bootFiles });
        for (const bootedStorePath of ["--help", "-rf", "/etc/passwd", "/nix/store/short-name"]) {
            const side = await recordedBootedSide(runner.run, { bootedStorePath, storePath: booted, drvPath: "--option" });
            expect(side).toEqual({ known: false, reason: "no booted system is recorded for the host (`pulumi refresh` reads it)" });
        }
        const viaDerivation = await recordedBootedSide(new FakeRunner().on(local("sh", "-c"), { code: 3 }).run, { bootedStorePath: booted, storePath: booted, drvPath: "--option" });
        expect(viaDerivation.known).toBe(false);
        expect(runner.calls).toEqual([]);
    });

    it("reads the recorded booted system's links in this machine's store and says which record it used", async () => {
        const runner = new FakeRunner();
        runner.on(local("sh", "-c"), { stdout: bootFiles });
        const side = await recordedBootedSide(runner.run, { bootedStorePath: booted, lastSeenAt: "2026-11-29T21:00:00Z" });
        expect(side).toEqual({ known: true, files: { kernel: `${KERNEL_2}/bzImage`, initrd: `${KERNEL_2}-initrd/initrd`, "kernel-modules": `${KERNEL_2}-modules` }, source: `booted ${booted.slice(11, 19)}-nixos-system-alpha-booted as seen 2026-11-29T21:00:00Z` });
        expect(runner.calls.every((call) => call.argv[0] !== "ssh")).toBe(true);
        const flagged = await planHost(runner.run, { new: { storePath: next }, buildOn: "local", booted: side });
        // The new system has the same links (the same fake store answers for it).
        expect(rebootLine(flagged.reboot)).toBe(`no reboot needed (booted ${booted.slice(11, 19)}-nixos-system-alpha-booted as seen 2026-11-29T21:00:00Z)`);
    });

    it("falls back to the recorded deployment's derivation when the booted system is it and is not in the store", async () => {
        const runner = new FakeRunner();
        runner.on(local("sh", "-c"), { code: 3 });
        runner.on(local("cat"), { stdout: `["-c","ln -s ${KERNEL_2}/bzImage $out/kernel\nln -s ${KERNEL_2}-initrd/initrd $out/initrd\nln -s ${KERNEL_2}-modules $out/kernel-modules"]` });
        const side = await recordedBootedSide(runner.run, { bootedStorePath: v1, storePath: v1, drvPath: drvPath("nixos-system-alpha-1") });
        expect(side.known && side.files.kernel).toBe(`${KERNEL_2}/bzImage`);
    });

    it("says unknown, and why, when nothing usable is recorded", async () => {
        const runner = new FakeRunner();
        runner.on(local("sh", "-c"), { code: 3 });
        expect(await recordedBootedSide(runner.run, undefined)).toEqual({ known: false, reason: "the host has not been deployed by this stack yet; its booted system is read when it is" });
        expect(await recordedBootedSide(runner.run, { bootedStorePath: null })).toEqual({ known: false, reason: "no booted system is recorded for the host (`pulumi refresh` reads it)" });
        const gone = await recordedBootedSide(runner.run, { bootedStorePath: booted });
        expect(gone).toEqual({ known: false, reason: `the recorded booted system ${booted.slice(11, 19)}-nixos-system-alpha-booted is not in this machine's store` });
    });
});

describe("rebootNeeded after pulumi refresh", () => {
    const linksOf = (kernel: string) => `kernel=${kernel}/bzImage\ninitrd=${kernel}-initrd/initrd\nkernel-modules=${kernel}-modules\n`;
    const store = (paths: Record<string, string>) => {
        const runner = new FakeRunner();
        runner.on(local("sh", "-c"), (call) => {
            const path = call.argv[call.argv.length - 1]!;
            return paths[path] ? { stdout: paths[path] } : { code: 3 };
        });
        return runner;
    };

    it("is null once the host booted the recorded system (rebooted outside nixos-fleet)", async () => {
        const runner = store({});
        const before = { storePath: v2, bootedStorePath: v1, rebootNeeded: "kernel changed" };
        expect(await rebootNeedAfterRead(runner.run, before, { storePath: v2, bootedStorePath: v2, runningStorePath: v2, action: "switch" })).toBeNull();
    });

    it("compares the booted and the recorded system's links when the host booted another system", async () => {
        const runner = store({ [v1]: linksOf(KERNEL_1), [v2]: linksOf(KERNEL_2), [next]: linksOf(KERNEL_2) });
        const before = { storePath: v2, bootedStorePath: null, rebootNeeded: "kernel changed" };
        expect(await rebootNeedAfterRead(runner.run, before, { storePath: v2, bootedStorePath: v1, runningStorePath: v2 })).toBe("kernel, initrd, kernel-modules changed");
        expect(await rebootNeedAfterRead(runner.run, before, { storePath: v2, bootedStorePath: next, runningStorePath: v2 })).toBeNull();
    });

    it("keeps the recorded answer while nothing changed, and says nothing (unknown) when a system is not in the store", async () => {
        const runner = store({});
        const before = { storePath: v2, bootedStorePath: v1, rebootNeeded: "kernel changed" };
        expect(await rebootNeedAfterRead(runner.run, before, { storePath: v2, bootedStorePath: v1, runningStorePath: v2 })).toBe("kernel changed");
        expect(await rebootNeedAfterRead(runner.run, before, { storePath: v2, bootedStorePath: next, runningStorePath: v2 })).toBeUndefined();
        expect(await rebootNeedAfterRead(runner.run, before, { storePath: v2, bootedStorePath: null, runningStorePath: v2 })).toBeUndefined();
    });
});

function connectionTo(host: FakeHost) {
    const runner = new FakeRunner();
    host.attach(runner);
    const connection = new SshConnection(target({ user: "deploy" }), { runner: runner.run, runtimeDir: runtimeDir() });
    return { runner, connection };
}

describe("rebootHost", () => {
    let clock: ReturnType<typeof fakeClock> | undefined;
    afterEach(() => clock?.stop());

    it("leaves a marker, issues systemctl reboot through sudo, treats the dropped connection as expected, and waits for the new boot", async () => {
        clock = fakeClock();
        const host = FakeHost.withGenerations(v1, v2);
        host.state.bootDefault = next;
        host.onReboot = { downFor: 3 };
        host.startingProbes = 1;
        const { runner, connection } = connectionTo(host);
        await connection.open();
        const log: string[] = [];
        const result = await rebootHost(connection, { timeoutSeconds: 60, storePath: next, sleep: clock.sleep, log: (line) => log.push(line) });
        expect(result).toMatchObject({ previousBootId: "boot-1", bootId: "boot-2", bootedStorePath: next });
        // 3 refused attempts, one probe seeing systemd still starting, then the ready boot: 5 waits of 2 s.
        expect(clock.slept).toEqual([2000, 2000, 2000, 2000, 2000]);
        expect(result.waitedSeconds).toBe(10);
        const reboot = runner.matching(remote("systemctl", "reboot"));
        expect(reboot).toHaveLength(1);
        expect(reboot[0]!.viaSudo).toBe(true);
        expect(log).toEqual([
            "rebooting (boot id boot-1); waiting up to 60s for the new boot",
            "rebooted: the new boot answered after 10s (boot id boot-2)",
        ]);
    });

    it("a host that never comes back: an unknown outcome naming the host, the phase and the wait, within the timeout", async () => {
        clock = fakeClock();
        const host = FakeHost.withGenerations(v1, v2);
        host.state.bootDefault = next;
        host.onReboot = { downFor: Infinity };
        const { runner, connection } = connectionTo(host);
        const error = await rebootHost(connection, { timeoutSeconds: 7, storePath: next, sleep: clock.sleep }).then(
            () => undefined,
            (e: unknown) => e,
        );
        expect(error).toBeInstanceOf(FleetError);
        const fleetError = error as FleetError;
        expect(fleetError).toMatchObject({ phase: "reboot", host: "alpha", outcome: "unknown" });
        expect(formatFleetError(fleetError)).toMatch(/^host alpha: reboot: outcome unknown: the host did not come back from the reboot within 7s \(waited 7s; last: .*refused.*\); the deployed system was activated before the reboot/);
        expect(fleetError.hint).toMatch(/pulumi -- refresh/);
        // Bounded: the waits add up to the timeout, never more.
        expect(clock.slept.reduce((a, b) => a + b, 0)).toBe(7000);
        expect(runner.matching(masterStart).length).toBe(1 + 4);
    });

    it("the old boot answering (still shutting down) is not taken for the new one", async () => {
        clock = fakeClock();
        const host = FakeHost.withGenerations(v1, v2);
        host.state.bootDefault = next;
        const { runner, connection } = connectionTo(host);
        // systemctl reboot returns, but the host keeps its boot (and marker) for two probes.
        runner.on(remote("systemctl", "reboot"), {});
        let probes = 0;
        const onProbe = () => {
            probes += 1;
            if (probes < 3) return void host.beforeScript.set("nixos-fleet-reboot-probe", onProbe);
            host.reboot();
            host.bootId = "boot-2";
            host.rebootMarker = false;
        };
        host.beforeScript.set("nixos-fleet-reboot-probe", onProbe);
        const result = await rebootHost(connection, { timeoutSeconds: 60, storePath: next, sleep: clock.sleep });
        expect(result.bootId).toBe("boot-2");
        expect(clock.slept).toHaveLength(3);
    });

    it("a boot loader that did not take the system: a clear failure naming both systems", async () => {
        clock = fakeClock();
        const host = FakeHost.withGenerations(v1, v2);
        host.state.bootDefault = v2;
        const { connection } = connectionTo(host);
        const error = (await rebootHost(connection, { timeoutSeconds: 60, storePath: next, sleep: clock.sleep }).catch((e: unknown) => e)) as FleetError;
        expect(error).toMatchObject({ phase: "reboot", outcome: "failed" });
        expect(error.message).toBe(`the host booted ${v2} (/run/booted-system), not the deployed ${next}: the boot loader did not take it`);
    });

    it("a refused reboot fails at once, without waiting", async () => {
        clock = fakeClock();
        const host = FakeHost.withGenerations(v1, v2);
        host.onReboot = { downFor: 0, refuse: true };
        const { connection } = connectionTo(host);
        const error = (await rebootHost(connection, { timeoutSeconds: 60, storePath: next, sleep: clock.sleep }).catch((e: unknown) => e)) as FleetError;
        expect(error.message).toMatch(/^the host refused to reboot: systemctl reboot exited with 1/);
        expect(clock.slept).toEqual([]);
    });
});

describe("deployHost with reboot", () => {
    let clock: ReturnType<typeof fakeClock> | undefined;
    afterEach(() => clock?.stop());

    function setup(kernelOfNext: string) {
        clock = fakeClock();
        const host = FakeHost.withGenerations(v1, v2);
        host.kernels.set(next, kernelOfNext);
        const runner = new FakeRunner();
        host.attach(runner);
        attachLocalNix(runner, host, new Map([[next, [{ path: next, narSize: 4_000 }]]]));
        const log: string[] = [];
        const context: DeployContext = { runner: runner.run, runtimeDir: runtimeDir(), log: (line) => log.push(line), sleep: clock.sleep };
        const request = (overrides: Partial<DeployRequest>): DeployRequest =>
            deployRequest({
                secrets: [{ name: "db", path: "/run/keys/db", value: "s3cret", owner: "root", group: "root", mode: "0400", uploadAt: "pre-activation" }],
                ...overrides,
            });
        return { host, runner, log, context, request };
    }

    it("reboot never (default): deploys, then reports the reboot as needed without rebooting", async () => {
        const { runner, log, context, request } = setup(KERNEL_2);
        const outcome = await deployHost(request({}), context);
        expect(outcome.reboot).toEqual({ need: { changed: ["kernel", "initrd", "kernel-modules"], bootPending: false } });
        expect(runner.matching(remote("systemctl", "reboot"))).toHaveLength(0);
        expect(log).toContain("reboot needed (kernel, initrd, kernel-modules changed); reboot is never, so the host was not rebooted");
        expect(rebootOutputs(outcome, next)).toEqual({ rebootNeeded: "kernel, initrd, kernel-modules changed" });
    });

    it("reboot auto: reboots after the activation, checks the booted system, writes /run/keys again, and records it", async () => {
        const { host, runner, context, request } = setup(KERNEL_2);
        const outcome = await deployHost(request({ reboot: "auto", rebootTimeout: 60 }), context);
        expect(runner.matching(remote("systemctl", "reboot"))).toHaveLength(1);
        expect(host.state.booted).toBe(next);
        expect(outcome.after.bootedStorePath).toBe(next);
        expect(outcome.reboot?.rebooted).toMatchObject({ previousBootId: "boot-1", bootId: "boot-2", bootedStorePath: next });
        // The secret is written before the activation and again after the reboot (/run is new).
        const puts = runner.calls.filter((call) => call.remoteCommand?.[3] === "nixos-fleet-secret-put" && call.remoteCommand[4] === "/run/keys/db");
        expect(puts).toHaveLength(2);
        expect(host.secretFiles.get("/run/keys/db")).toBe("s3cret");
        expect(outcome.timings.reboot).toBeGreaterThan(0);
        expect(rebootOutputs(outcome, next)).toMatchObject({ rebootNeeded: null, lastReboot: { outcome: "booted", bootId: "boot-2", bootedStorePath: next } });
    });

    it("reboot auto: the activation unit is removed before the reboot, not cut off by it", async () => {
        const { runner, context, request } = setup(KERNEL_2);
        let cleanupEnded = false;
        let endedBeforeReboot: boolean | undefined;
        runner.once((call) => call.remoteCommand?.[3] === "nixos-fleet-cleanup", async () => {
            await new Promise((resolve) => setTimeout(resolve, 100));
            cleanupEnded = true;
            return {};
        });
        const answer = runner.run;
        await deployHost(request({ reboot: "auto", rebootTimeout: 60 }), {
            ...context,
            runner: async (argv, options) => {
                if (argv.some((word) => /systemctl.*reboot/.test(word)) && endedBeforeReboot === undefined) endedBeforeReboot = cleanupEnded;
                return answer(argv, options);
            },
        });
        expect(runner.matching(remote("systemctl", "reboot"))).toHaveLength(1);
        expect(endedBeforeReboot).toBe(true);
    });

    it("reboot auto with an unchanged kernel: no reboot", async () => {
        const { runner, context, request } = setup(KERNEL_1);
        const outcome = await deployHost(request({ reboot: "auto" }), context);
        expect(runner.matching(remote("systemctl", "reboot"))).toHaveLength(0);
        expect(outcome.reboot).toEqual({ need: { changed: [], bootPending: false } });
    });

    it("a reboot that does not come back: DeployedUnchecked with the activation done and the reboot's outcome unknown", async () => {
        const { host, context, request } = setup(KERNEL_2);
        host.onReboot = { downFor: Infinity };
        const error = (await deployHost(request({ reboot: "auto", rebootTimeout: 5 }), context).catch((e: unknown) => e)) as DeployedUnchecked;
        expect(error).toBeInstanceOf(DeployedUnchecked);
        expect(error).toMatchObject({ phase: "reboot", outcome: "unknown", host: "alpha" });
        expect(error.partial).toMatchObject({ activated: true, after: { currentStorePath: next, profileStorePath: next } });
        const outputs = rebootOutputs(error.partial, next, undefined, error);
        expect(outputs.rebootNeeded).toBeUndefined();
        expect(outputs.lastReboot).toMatchObject({ outcome: "unknown", waitedSeconds: 5, previousBootId: "boot-1", bootId: null, bootedStorePath: null });
        expect(outputs.lastReboot?.error).toMatch(/did not come back from the reboot within 5s .*hint: check the host's console/);
    });

    it("the next deploy that finds the host booted into the deployed system resolves the unknown reboot in the state", async () => {
        const { host, context, request } = setup(KERNEL_2);
        host.onReboot = { downFor: Infinity };
        const error = (await deployHost(request({ reboot: "auto", rebootTimeout: 5 }), context).catch((e: unknown) => e)) as DeployedUnchecked;
        const recorded = rebootOutputs(error.partial, next, undefined, error);
        // The host comes back (booted into its boot default: the deployed system); the next deploy finds it so.
        host.refuseConnections = 0;
        const outcome = await deployHost(request({ reboot: "auto", rebootTimeout: 5 }), context);
        expect(outcome.activated).toBe(false);
        const outputs = rebootOutputs(outcome, next, recorded);
        expect(outputs.rebootNeeded).toBeNull();
        expect(outputs.lastReboot).toMatchObject({ outcome: "booted", bootedStorePath: next });
        expect(outputs.lastReboot?.error).toMatch(/did not come back .*; found booted into the deployed system at /);
    });
});

describe("the deploy table's reboot column", () => {
    it("says whether a planned or deployed host needs a reboot, and how long a reboot took", () => {
        const plan = { reboot: { known: true as const, needed: true, changed: ["kernel" as const] } };
        expect(rebootCell({ result: "planned", plan: plan as never })).toBe("needed (kernel changed)");
        expect(rebootCell({ result: "planned", plan: { reboot: { known: true, needed: false, changed: [] } } as never })).toBe("no");
        expect(rebootCell({ result: "planned", plan: { reboot: { known: false, reason: "x" } } as never })).toBe("unknown");
        expect(rebootCell({ result: "deployed", rebootNeeded: "kernel, initrd changed" })).toBe("needed (kernel, initrd changed)");
        expect(rebootCell({ result: "deployed", rebootNeeded: null, reboot: { outcome: "booted", waitedSeconds: 2.4 } as never })).toBe("rebooted in 2.4s");
        expect(rebootCell({ result: "unknown", reboot: { outcome: "unknown", waitedSeconds: 3 } as never })).toBe("did not come back (unknown)");
        expect(rebootCell({ result: "deployed", rebootNeeded: null })).toBe("no");
        expect(rebootCell({ result: "unchanged" })).toBe("-");
    });

    it("is a column of its own before the result (the result cell stays as it was)", () => {
        const table = renderSummary([
            { host: "psi", result: "deployed", generationBefore: 1, generationAfter: 2, storePathBefore: null, storePathAfter: null, pathsCopied: 1, bytesCopied: 10, timings: {}, rebootNeeded: "kernel changed" },
        ]);
        expect(table.split("\n")[0]).toMatch(/activate\s+reboot\s+result$/);
        expect(table.split("\n")[1]).toMatch(/needed \(kernel changed\)\s+deployed$/);
    });
});
