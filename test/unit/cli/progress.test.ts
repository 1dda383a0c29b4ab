// Honest rows: every selected host ends as deployed, unchanged, failed (with phase and error),
// not attempted (with why) or held back, in the table, in --json and in the exit code. The engine
// events are fakes shaped like the engine's (its --event-log).
import type { EngineEvent } from "@pulumi/pulumi/automation";
import { EngineRunError } from "../../../src/cli/engineRun";
import { describe, expect, it } from "vitest";
import { ProgressTracker, phaseOf, renderSummary } from "../../../src/cli/progress";
import { buildReport, cancelledReport, confirmationNotices, exitCode, lockedMessage, untilEngineEnds } from "../../../src/cli/runDeployment";
import { hostsToRestore } from "../../../src/cli/rollback";
import { storePath } from "../helpers/fixtures";

/** A pulumi run that exited with `code`, as runEngine rejects it. */
const failedRun = (stdout: string, stderr: string, code: number) => new EngineRunError("up", { stdout, stderr, code });

const STACK = "prod";
const urn = (host: string) => `urn:pulumi:${STACK}::nixos-fleet::nixos:index:Host::${host}`;
const v = (n: number) => storePath(`nixos-system-v${n}`);
let sequence = 0;

function pre(host: string, op: string, old: Record<string, unknown> | undefined, inputs: Record<string, unknown>): EngineEvent {
    return {
        sequence: sequence++,
        timestamp: 0,
        resourcePreEvent: { metadata: { op, urn: urn(host), type: "nixos:index:Host", provider: "", old: old && { outputs: old }, new: { inputs } } },
    } as unknown as EngineEvent;
}

function outputs(host: string, op: string, out: Record<string, unknown>): EngineEvent {
    return { sequence: sequence++, timestamp: 0, resOutputsEvent: { metadata: { op, urn: urn(host), type: "nixos:index:Host", provider: "", new: { outputs: out } } } } as unknown as EngineEvent;
}

function diagnostic(message: string, severity: string, host?: string): EngineEvent {
    return { sequence: sequence++, timestamp: 0, diagnosticEvent: { urn: host ? urn(host) : undefined, message, color: "never", severity } } as unknown as EngineEvent;
}

const recorded = (generation: number, path: string) => ({ name: "x", generation, storePath: path });
const deployedOutputs = (before: number, after: number, path: string, activated = true) => ({
    generation: after,
    storePath: path,
    lastDeploy: { activated, generationBefore: before, generationAfter: after, pathsCopied: 3, bytesCopied: 2048, timings: { copy: 1200, activate: 800 } },
});

function run(events: EngineEvent[], hosts: string[], error?: unknown, planning = false) {
    const lines: string[] = [];
    const tracker = new ProgressTracker((line) => lines.push(line));
    for (const event of events) tracker.onEvent(event);
    const report = buildReport({ stackName: STACK, hosts }, tracker, planning, error);
    return { report, table: renderSummary(report.hosts), code: exitCode(report), json: JSON.parse(JSON.stringify(report)) as typeof report, lines };
}

const engineFailed = () =>
    failedRun("Updating (prod)\n…", "error: update failed\n", 255);

describe("honest rows", () => {
    it("deployed: the engine updated the host and the provider activated it", () => {
        const { report, table, code } = run(
            [pre("psi", "update", recorded(3, v(3)), { storePath: v(4) }), outputs("psi", "update", deployedOutputs(3, 4, v(4)))],
            ["psi"],
        );
        expect(report.hosts[0]).toMatchObject({ host: "psi", result: "deployed", generationBefore: 3, generationAfter: 4, pathsCopied: 3 });
        expect(table).toMatch(/^psi +3 → 4 .*3 paths, 2\.0 KiB .*deployed$/m);
        expect(code).toBe(0);
    });

    it("a system built on a build host says so in the build column; built here or on the host itself, nothing is added", () => {
        const built = (builtOn: string) => {
            const out = deployedOutputs(3, 4, v(4));
            return { ...out, lastDeploy: { ...out.lastDeploy, builtOn, timings: { ...out.lastDeploy.timings, build: 900 } } };
        };
        const { report, table } = run(
            [
                pre("psi", "update", recorded(3, v(3)), { storePath: v(4) }),
                outputs("psi", "update", built("bld")),
                pre("rho", "update", recorded(3, v(3)), { storePath: v(4) }),
                outputs("rho", "update", built("rho")),
                pre("tau", "update", recorded(3, v(3)), { storePath: v(4) }),
                outputs("tau", "update", built("local")),
            ],
            ["psi", "rho", "tau"],
        );
        expect(report.hosts.map((row) => row.builtOn)).toEqual(["bld", undefined, undefined]);
        expect(table).toMatch(/^psi .* 0\.9s on bld +1\.2s/m);
        expect(table).toMatch(/^rho .* 0\.9s +1\.2s/m);
        expect(table).toMatch(/^tau .* 0\.9s +1\.2s/m);
    });

    it("unchanged: only when the engine reported 'same' from the host's recorded state (or the provider found the system running)", () => {
        const { report, code } = run(
            [
                pre("psi", "same", recorded(3, v(3)), { storePath: v(3) }),
                outputs("psi", "same", recorded(3, v(3))),
                pre("rho", "update", recorded(2, v(2)), { storePath: v(2), port: 2222 }),
                outputs("rho", "update", deployedOutputs(2, 2, v(2), false)),
            ],
            ["psi", "rho"],
        );
        expect(report.hosts.map((h) => [h.host, h.result])).toEqual([
            ["psi", "unchanged"],
            ["rho", "unchanged"],
        ]);
        expect(code).toBe(0);
    });

    it("failed: with its phase and error; the table names the phase; exit 1", () => {
        const error = "host psi: activate failed: switch-to-configuration switch exited with 1; the host was restored to generation 3\n  | boom\n  hint: fix it";
        const { report, table, code, json } = run([pre("psi", "update", recorded(3, v(3)), { storePath: v(4) }), diagnostic(error, "error", "psi")], ["psi"], engineFailed());
        expect(report.hosts[0]).toMatchObject({ result: "failed", phase: "activate", error });
        expect(json.failed).toEqual(["psi"]);
        expect(table).toMatch(/FAILED \(activate\): switch-to-configuration switch exited with 1; the host was restored to generation 3$/m);
        expect(report.errors).toEqual([]); // the host's error is in its row, not repeated as a dump
        expect(code).toBe(1);
    });

    it("not attempted after another host failed (--parallel 1): never 'unchanged'; exit 1", () => {
        const { report, table, code, json } = run(
            [pre("psi", "update", recorded(3, v(3)), { storePath: v(4) }), diagnostic("host psi: connect failed: root@psi refused the connection", "error", "psi")],
            ["psi", "rho", "tau"],
            engineFailed(),
        );
        expect(report.hosts.map((h) => [h.host, h.result, h.reason])).toEqual([
            ["psi", "failed", undefined],
            ["rho", "not attempted", "another host failed (psi)"],
            ["tau", "not attempted", "another host failed (psi)"],
        ]);
        expect(json.notAttempted).toEqual(["rho", "tau"]);
        expect(table).not.toMatch(/unchanged/);
        expect(table).toMatch(/^rho .*not attempted: another host failed \(psi\)$/m);
        expect(code).toBe(1);
    });

    it("stack locked: every host not attempted, one clear sentence with the pulumi cancel hint, no Automation API dump", () => {
        const stderr =
            "error: the stack is currently locked by 1 lock(s). Either wait for the other process(es) to end or delete the lock file with `pulumi cancel`.\n" +
            "  file:///srv/state/.pulumi/locks/organization/nixos-fleet/prod/0d5e.json: created by alice@laptop (pid 4242) at 2026-03-01T10:00:00Z\n";
        const locked = failedRun("", stderr, 255);
        const { report, table, code, json } = run([], ["psi", "rho"], locked);
        expect(report.hosts.map((h) => [h.result, h.reason])).toEqual([
            ["not attempted", "the stack is locked by another update"],
            ["not attempted", "the stack is locked by another update"],
        ]);
        expect(report.errors).toEqual([lockedMessage(STACK, stderr)]);
        expect(report.errors[0]).toMatch(/^stack prod is locked by another update \(alice@laptop, pid 4242, since 2026-03-01T10:00:00Z\), so nothing was deployed\n {2}hint: .*pulumi cancel/);
        expect(JSON.stringify(json)).not.toMatch(/code: 255|stdout:|err\?:|currently locked by 1 lock/);
        expect(table).not.toMatch(/unchanged/);
        expect(code).toBe(1);
    });

    it("a stack the backend does not have (its file read without pulumi): one clear sentence with the hint, every host not attempted", () => {
        const { report, code } = run([], ["psi"], failedRun("", "error: no stack named 'prod' found\n", 255));
        expect(report.errors).toEqual([`stack "prod" does not exist in this project's backend, so nothing was changed\n  hint: create it with: npm run pulumi -- stack init prod`]);
        expect(report.hosts.map((h) => h.result)).toEqual(["not attempted"]);
        expect(code).toBe(1);
    });

    it("the lock is recognised from pulumi's message, also on Pulumi Cloud", () => {
        const cloud = failedRun("", "error: [409] Conflict: Another update is currently in progress.\n", 255);
        expect(run([], ["psi"], cloud).report.hosts[0]!.reason).toBe("the stack is locked by another update");
    });

    it("cancelled at the prompt: not attempted, cancelled, exit 1; a rollback's pins all go back", () => {
        const plan = run([pre("psi", "update", recorded(3, v(3)), { storePath: v(4) })], ["psi"], undefined, true).report;
        expect(plan.hosts[0]!.result).toBe("planned");
        const cancelled = cancelledReport(STACK, plan);
        expect(cancelled.hosts[0]).toMatchObject({ result: "not attempted", reason: "cancelled", generationAfter: 3 });
        expect(exitCode(cancelled)).toBe(1);
        expect(hostsToRestore(["psi"], false, { code: 1, report: cancelled, cancelled: true })).toEqual(["psi"]);
    });

    it("held back: a pinned host whose configuration is not deployed; exit 0", () => {
        const pinned = { storePath: v(3), pin: { generation: 3, configuredStorePath: v(5) } };
        const { report, table, code } = run([pre("psi", "same", recorded(3, v(3)), pinned), outputs("psi", "same", recorded(3, v(3)))], ["psi"]);
        expect(report.hosts[0]).toMatchObject({ result: "held back" });
        expect(report.hosts[0]!.reason).toMatch(/pinned to generation 3 by rollback; its configuration is deployed after rollback --clear/);
        expect(table).toMatch(/held back: pinned to generation 3/);
        expect(code).toBe(0);
        // in a preview too
        expect(run([pre("psi", "same", recorded(3, v(3)), pinned)], ["psi"], undefined, true).report.hosts[0]!.result).toBe("held back");
    });

    it("a program error: hosts not attempted because the program failed; the error is reported once", () => {
        const { report, code } = run([diagnostic("config failed: set nixos-fleet:hosts …", "error")], ["psi"], engineFailed());
        expect(report.hosts[0]).toMatchObject({ result: "not attempted", reason: "the program failed before this host was reached" });
        expect(report.errors).toEqual(["config failed: set nixos-fleet:hosts …"]);
        expect(code).toBe(1);
    });

    it("a program error naming a host's phase (its evaluation failed): that host FAILED (evaluate), the others not attempted", () => {
        const evalError =
            "host gamma: evaluate failed: evaluating the system of gamma failed\n  | error: cannot compare an integer with a string\n  hint: fix the Nix error above";
        for (const planning of [false, true]) {
            const { report, table, code, lines } = run([diagnostic(evalError, "error")], ["alpha", "gamma"], engineFailed(), planning);
            expect(report.hosts[1]).toMatchObject({ host: "gamma", result: "failed", phase: "evaluate", error: evalError });
            expect(report.hosts[1]!.reason).toBeUndefined();
            expect(report.hosts[0]).toMatchObject({ host: "alpha", result: "not attempted", reason: "the program failed before this host was reached" });
            expect(report.failed).toEqual(["gamma"]);
            expect(report.notAttempted).toEqual(["alpha"]);
            expect(table).toMatch(/^gamma .*FAILED \(evaluate\): evaluating the system of gamma failed$/m);
            // Said once live and once at the end, not once per host.
            expect(report.errors).toEqual([evalError]);
            expect(lines.filter((line) => line.includes("evaluate failed"))).toHaveLength(1);
            expect(code).toBe(1);
        }
        // A host merely named inside another message, or a program error without a host, changes no row.
        const other = run([diagnostic("config failed: hosts/gamma.yaml:3 host gamma: bad field", "error")], ["gamma"], engineFailed());
        expect(other.report.hosts[0]!.result).toBe("not attempted");
    });

    it("a host whose deploy started but never finished is unknown, not unchanged or failed", () => {
        const { report } = run([pre("psi", "update", recorded(3, v(3)), { storePath: v(4) })], ["psi"], engineFailed());
        expect(report.hosts[0]!.result).toBe("unknown");
        expect(report.hosts[0]!.error).toMatch(/ended before this host's deploy finished, so what it runs is not known/);
        expect(report.unknown).toEqual(["psi"]);
        expect(exitCode(report)).toBe(1);
    });

    it("a host the provider reports as 'outcome unknown' is unknown with its phase, never failed or restored", () => {
        const { report } = run(
            [
                pre("psi", "update", recorded(3, v(3)), { storePath: v(4) }),
                diagnostic("host psi: activate: outcome unknown: the connection was lost during activation and the host did not answer again within 60s", "error", "psi"),
            ],
            ["psi"],
            engineFailed(),
        );
        expect(report.hosts[0]).toMatchObject({ result: "unknown", phase: "activate" });
        expect(report.failed).toEqual([]);
        expect(report.unknown).toEqual(["psi"]);
        expect(exitCode(report)).toBe(1);
        expect(renderSummary(report.hosts)).toMatch(/UNKNOWN \(activate\): outcome unknown: the connection was lost/);
    });

    it("an engine error without host errors is reported by its own error lines, not the command dump", () => {
        const error = failedRun("lots of stdout", "warning: x\nerror: could not load plugin nixos\nerror: update failed\n", 255);
        const { report } = run([], ["psi"], error);
        expect(report.errors).toEqual(["could not load plugin nixos"]);
        expect(report.hosts[0]!.reason).toBe("the update ended before this host was reached");
    });

    it("a rollback keeps the pins of hosts that rolled back, restores those failed or not attempted", () => {
        const { report } = run(
            [
                pre("psi", "update", recorded(3, v(3)), { storePath: v(2) }),
                outputs("psi", "update", deployedOutputs(3, 2, v(2))),
                pre("rho", "update", recorded(3, v(3)), { storePath: v(2) }),
                diagnostic("host rho: copy failed: x", "error", "rho"),
            ],
            ["psi", "rho", "tau"],
            engineFailed(),
        );
        expect(hostsToRestore(["psi", "rho", "tau"], false, { code: 1, report })).toEqual(["rho", "tau"]);
        expect(hostsToRestore(["psi"], true, { code: 0, report })).toEqual(["psi"]);
    });
});

describe("phaseOf", () => {
    it("reads the phase from the formatted error", () => {
        expect(phaseOf("host psi: verify failed: 1 of 2 health checks failed")).toBe("verify");
        expect(phaseOf("error: host psi: connect failed: x")).toBe("connect");
        expect(phaseOf("something else")).toBeUndefined();
    });
});

describe("a plan that undoes a rollback", () => {
    const mark = { generation: 2, storePath: v(2), at: "2026-01-01T00:00:00.000Z", by: "alice@laptop", reason: "rollback to generation 2", rollbackTo: null };

    it("says so on the host's planned row (table and --json), and the confirmation notices name it", () => {
        const { report, table, code } = run(
            [
                pre("psi", "update", { ...recorded(2, v(2)), rolledBack: mark }, { storePath: v(4) }),
                pre("rho", "update", recorded(3, v(3)), { storePath: v(4) }),
            ],
            ["psi", "rho"],
            undefined,
            true,
        );
        expect(report.hosts.map((h) => [h.host, h.result, h.reason])).toEqual([
            ["psi", "planned", "undoes the rollback to generation 2 (by alice@laptop at 2026-01-01T00:00:00.000Z)"],
            ["rho", "planned", undefined],
        ]);
        expect(report.hosts[0]!.undoesRollback).toEqual(mark);
        expect(table).toMatch(/^psi .*planned: undoes the rollback to generation 2 \(by alice@laptop at 2026-01-01T00:00:00\.000Z\)$/m);
        expect(code).toBe(0);
        expect(confirmationNotices(report, ["first"])).toEqual([
            "first",
            "psi: this deploy undoes the rollback to generation 2 (by alice@laptop at 2026-01-01T00:00:00.000Z): the stack's config has no rollback pin for it (put the pin back and commit it to keep the rollback)",
        ]);
    });

    it("deploy --yes (no plan first): the deployed row says which rollback it undid (table and --json)", () => {
        const { report, table, json, code } = run(
            [
                pre("psi", "update", { ...recorded(2, v(2)), rolledBack: mark }, { storePath: v(4) }),
                outputs("psi", "update", deployedOutputs(2, 4, v(4))),
                pre("rho", "update", recorded(3, v(3)), { storePath: v(4) }),
                outputs("rho", "update", deployedOutputs(3, 4, v(4))),
            ],
            ["psi", "rho"],
        );
        expect(json.hosts.map((h) => [h.host, h.result, h.reason, h.undoesRollback])).toEqual([
            ["psi", "deployed", "undid the rollback to generation 2 (by alice@laptop at 2026-01-01T00:00:00.000Z)", mark],
            ["rho", "deployed", undefined, undefined],
        ]);
        expect(table).toMatch(/^psi .*deployed: undid the rollback to generation 2 \(by alice@laptop at 2026-01-01T00:00:00\.000Z\)$/m);
        expect(table).toMatch(/^rho .*deployed$/m);
        expect(code).toBe(0);
        expect(report.hosts[0]!.generationAfter).toBe(4);
    });

    it("a stale pin (to another system than the rolled-back one) says on the row and in the notices which rollback it replaces", () => {
        const { report } = run([pre("psi", "update", { ...recorded(2, v(2)), rolledBack: mark }, { storePath: v(1), pin: { generation: 1, reason: "old" } })], ["psi"], undefined, true);
        expect(report.hosts.map((h) => [h.result, h.reason])).toEqual([
            ["planned", "replaces the rollback to generation 2 (by alice@laptop at 2026-01-01T00:00:00.000Z) with the config's pin to generation 1 (old)"],
        ]);
        expect(confirmationNotices(report, [])).toEqual([
            "psi: this deploy replaces the rollback to generation 2 (by alice@laptop at 2026-01-01T00:00:00.000Z) with the config's pin to generation 1 (old) (if that pin is stale, put back the pin the newer rollback wrote and commit it)",
        ]);
    });

    it("with the pin still in the config, or the configuration equal to the rolled-back system: no such reason", () => {
        const { report } = run(
            [
                pre("psi", "update", { ...recorded(2, v(2)), rolledBack: mark }, { storePath: v(2), pin: { generation: 2 }, port: 2 }),
                pre("rho", "update", { ...recorded(2, v(2)), rolledBack: mark }, { storePath: v(2), port: 2 }),
            ],
            ["psi", "rho"],
            undefined,
            true,
        );
        expect(report.hosts.map((h) => [h.result, h.reason, h.undoesRollback])).toEqual([
            ["planned", undefined, undefined],
            ["planned", undefined, undefined],
        ]);
        expect(confirmationNotices(report, [])).toEqual([]);
    });
});

describe("the plan in a preview", () => {
    it("shows store paths with 8 characters of their hash, so a change never reads X → X", () => {
        const a = storePath("nixos-system-psi-1");
        const b = storePath("nixos-system-psi-1x").replace(/x$/, "");
        const { table } = run([pre("psi", "update", recorded(1, a), { storePath: b })], ["psi"], undefined, true);
        expect(table).toContain(`${a.slice(11, 19)}-nixos-system-psi-1 → ${b.slice(11, 19)}-nixos-system-psi-1`);
    });

    it("the provider's plan lines are not echoed when the preview prints its own table; otherwise they are", () => {
        const events = [pre("psi", "update", recorded(1, v(1)), { storePath: v(2) }), diagnostic("psi: plan\n  system: a → b", "info", "psi"), diagnostic("psi: something else", "info", "psi")];
        const hidden: string[] = [];
        const tracker = new ProgressTracker((line) => hidden.push(line), { hidePlans: true });
        for (const event of events) tracker.onEvent(event);
        expect(hidden).toEqual(["[psi] something else"]);
        expect(run(events, ["psi"]).lines).toEqual(["[psi] plan\n  system: a → b", "[psi] something else"]);
    });

    it("planRequest compares the recorded outputs with the new inputs, for changing hosts only", () => {
        const tracker = new ProgressTracker(() => undefined);
        tracker.onEvent(pre("psi", "update", { ...recorded(1, v(1)), drvPath: `${v(1)}.drv` }, { storePath: v(2), drvPath: `${v(2)}.drv`, buildOn: "local" }));
        tracker.onEvent(pre("rho", "same", recorded(1, v(1)), { storePath: v(1) }));
        tracker.onEvent(pre("tau", "create", undefined, { storePath: v(3), buildOn: "target" }));
        expect(tracker.planRequest("psi")).toEqual({ old: { storePath: v(1), drvPath: `${v(1)}.drv` }, new: { storePath: v(2), drvPath: `${v(2)}.drv` }, buildOn: "local" });
        expect(tracker.planRequest("rho")).toBeUndefined();
        expect(tracker.planRequest("tau")).toEqual({ old: undefined, new: { storePath: v(3) }, buildOn: "target" });
    });
});

describe("Ctrl-C during a run", () => {
    it("the process stays to report: the engine's failure is 'cancelled', started hosts unknown, the rest not attempted (cancelled)", async () => {
        const { EventEmitter } = await import("node:events");
        const proc = new EventEmitter();
        const lines: string[] = [];
        const tracker = new ProgressTracker((line) => lines.push(line));
        const engineFailure = failedRun("", "error: update canceled\n", 255);
        const { error, interrupted } = await untilEngineEnds(
            async () => {
                tracker.onEvent(pre("psi", "update", recorded(2, v(2)), { storePath: v(3) }));
                proc.emit("SIGINT");
                proc.emit("SIGINT"); // npm forwards it too
                throw engineFailure;
            },
            (line) => lines.push(line),
            proc as never,
        );
        expect(interrupted).toBe(true);
        expect(error).toBe(engineFailure);
        expect(proc.listenerCount("SIGINT")).toBe(0);
        expect(lines.filter((line) => line.startsWith("interrupted:"))).toHaveLength(1);
        const report = buildReport({ stackName: STACK, hosts: ["psi", "rho"] }, tracker, false, error, interrupted);
        expect(report.hosts.map((h) => [h.host, h.result, h.reason])).toEqual([
            ["psi", "unknown", undefined],
            ["rho", "not attempted", "cancelled"],
        ]);
        expect(report.errors).toEqual(["the run was interrupted (Ctrl-C, SIGTERM or SIGHUP): hosts not yet started were not attempted"]);
        expect(exitCode(report)).toBe(1);
    });

    it("SIGTERM (a kill, a CI timeout) is passed on to the engine as one graceful cancel; Ctrl-C is not passed twice", async () => {
        const { EventEmitter } = await import("node:events");
        const proc = new EventEmitter();
        const lines: string[] = [];
        const aborts: string[] = [];
        const { interrupted } = await untilEngineEnds(
            async (signal, isInterrupted) => {
                signal.addEventListener("abort", () => aborts.push("abort"));
                expect(isInterrupted()).toBe(false);
                proc.emit("SIGTERM");
                proc.emit("SIGTERM");
                expect(isInterrupted()).toBe(true);
                expect(signal.aborted).toBe(true);
                throw new Error("update canceled");
            },
            (line) => lines.push(line),
            proc as never,
        );
        expect(interrupted).toBe(true);
        expect(aborts).toEqual(["abort"]);
        expect(lines).toEqual(["interrupted (SIGTERM): pulumi is cancelling the update; hosts under way finish first (a wait for a reboot ends at once, its outcome unknown), the rest are not started"]);
        for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) expect(proc.listenerCount(signal)).toBe(0);

        // Ctrl-C: the terminal sent SIGINT to the engine already; a second one would stop it at once.
        let aborted = false;
        await untilEngineEnds(
            async (signal) => {
                proc.emit("SIGINT");
                aborted = signal.aborted;
            },
            () => undefined,
            proc as never,
        );
        expect(aborted).toBe(false);
    });

    it("a lock held by another update stays 'locked' even when interrupted", async () => {
        const tracker = new ProgressTracker(() => undefined);
        const locked = failedRun("", "error: the stack is currently locked by 1 lock(s)\n", 255);
        const report = buildReport({ stackName: STACK, hosts: ["psi"] }, tracker, false, locked, true);
        expect(report.hosts[0]!.reason).toBe("the stack is locked by another update");
    });
});

describe("pulumi killed outright (kill -9, the OOM killer)", () => {
    it("started hosts are unknown, the rest not attempted, and the report says the lock may stay and how to release it before a refresh, also when interrupted", () => {
        for (const interrupted of [false, true]) {
            const tracker = new ProgressTracker(() => undefined);
            tracker.onEvent(pre("psi", "update", recorded(2, v(2)), { storePath: v(3) }));
            const killed = new EngineRunError("up", { stdout: "", stderr: "", code: null, signal: "SIGKILL" });
            expect(killed.message).toBe("pulumi up was killed by SIGKILL");
            const report = buildReport({ stackName: STACK, hosts: ["psi", "rho"] }, tracker, false, killed, interrupted);
            expect(report.hosts.map((h) => [h.host, h.result])).toEqual([
                ["psi", "unknown"],
                ["rho", "not attempted"],
            ]);
            expect(report.hosts.some((h) => h.result === "deployed" || h.result === "unchanged")).toBe(false);
            expect(report.errors).toHaveLength(1);
            expect(report.errors[0]).toMatch(/^pulumi up was killed by SIGKILL before it ended its run: it may have left the stack locked/);
            expect(report.errors[0]).toContain("npm run pulumi -- cancel --stack prod`, then run `npm run pulumi -- refresh --stack prod`");
            expect(exitCode(report)).toBe(1);
        }
    });
});

describe("reboots on the rows", () => {
    it("a reboot that did not come back (the engine's partial failure) is an unknown outcome in the reboot phase, and the row shows it", () => {
        const message = "1 error occurred:\n\t* host psi: reboot: outcome unknown: the host did not come back from the reboot within 3s (waited 3s; last: root@psi refused the connection); the deployed system was activated before the reboot";
        // (The engine records the provider's partial outputs in the state but sends no outputs event for a failed host.)
        const { report, table, lines } = run([pre("psi", "update", recorded(1, v(1)), { storePath: v(2) }), diagnostic(message, "error", "psi")], ["psi"], engineFailed());
        expect(report.hosts[0]).toMatchObject({ result: "unknown", phase: "reboot" });
        expect(report.hosts[0]!.error).toMatch(/^host psi: reboot: outcome unknown: the host did not come back/);
        expect(report.unknown).toEqual(["psi"]);
        expect(lines[0]).toMatch(/^\[psi\] error: host psi: reboot: outcome unknown/);
        expect(table).toMatch(/did not come back \(unknown\)\s+UNKNOWN \(reboot\): outcome unknown: the host did not come back from the reboot within 3s/);
        // The host was activated before the reboot: the row never says it still has generation 1.
        expect(report.hosts[0]).toMatchObject({ generationBefore: 1, generationAfter: null, storePathAfter: null });
        expect(table.split("\n")[1]).toMatch(/^psi\s+1 → -\s/);
    });

    it("a deployed row carries rebootNeeded and the reboot this run made, also in --json", () => {
        const rebooted = { ...deployedOutputs(1, 2, v(2)), rebootNeeded: null, lastReboot: { outcome: "booted", at: "t", previousBootId: "a", bootId: "b", waitedSeconds: 4.2, bootedStorePath: v(2) } };
        rebooted.lastDeploy.timings = { ...rebooted.lastDeploy.timings, reboot: 4300 } as typeof rebooted.lastDeploy.timings;
        const needed = { ...deployedOutputs(1, 2, v(3)), rebootNeeded: "kernel changed" };
        const { json, table } = run(
            [pre("psi", "update", recorded(1, v(1)), { storePath: v(2) }), outputs("psi", "update", rebooted), pre("rho", "update", recorded(1, v(1)), { storePath: v(3) }), outputs("rho", "update", needed)],
            ["psi", "rho"],
        );
        expect(json.hosts[0]).toMatchObject({ result: "deployed", rebootNeeded: null, reboot: { outcome: "booted", waitedSeconds: 4.2 } });
        expect(json.hosts[1]).toMatchObject({ result: "deployed", rebootNeeded: "kernel changed" });
        expect(json.hosts[1]).not.toHaveProperty("reboot");
        expect(table).toMatch(/^psi .*rebooted in 4\.2s\s+deployed$/m);
        expect(table).toMatch(/^rho .*needed \(kernel changed\)\s+deployed$/m);
    });
});
