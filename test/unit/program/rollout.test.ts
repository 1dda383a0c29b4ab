import { describe, expect, it } from "vitest";
import { parseStackConfig } from "../../../src/config";
import { batchSizeOf, parseBatchSizeOption } from "../../../src/config/rollout";
import { engineParallel, heldBackByRollout, runBatches } from "../../../src/cli/runDeployment";
import type { EngineEvent } from "@pulumi/pulumi/automation";
import type { EngineRunOptions as UpOptions } from "../../../src/cli/engineRun";
import type { DeploymentOptions } from "../../../src/cli/runDeployment";
import { deploymentTargets, hostUrn } from "../../../src/cli/stack";
import { heldBackAfter, heldBackBy, planRollout, rolloutNotice } from "../../../src/program/rollout";
import { rolloutConsequence } from "../../../src/provider/hostProvider";
import { FleetError } from "../../../src/errors";
import { ProgressTracker, type HostSummary } from "../../../src/cli/progress";
import { buildReport } from "../../../src/cli/runDeployment";
import { onlyProblem, problemsOf } from "../config/helpers";

const baseDir = "/project";
const fleet = [
    { name: "alpha", tags: ["web"] },
    { name: "beta", tags: ["db"] },
    { name: "gamma", tags: ["web"] },
    { name: "delta", tags: [] },
    { name: "epsilon", tags: [] },
    { name: "zeta", tags: ["db"] },
];

describe("nixos-fleet:rollout in the stack settings", () => {
    it("accepts canary hosts and tags, a count or a percentage, maxFailures 0; defaults canary to none", () => {
        const stack = parseStackConfig({ hosts: ["@all"], rollout: { canary: ["alpha", "@db"], batchSize: "25%", maxFailures: 0 } }, { baseDir });
        expect(stack.rollout).toEqual({ canary: ["alpha", "@db"], batchSize: { percent: 25 }, maxFailures: 0 });
        expect(parseStackConfig({ hosts: ["a"], rollout: { batchSize: 2 } }, { baseDir }).rollout).toEqual({ canary: [], batchSize: { count: 2 }, maxFailures: 0 });
        expect(parseStackConfig({ hosts: ["a"], rollout: { batchSize: "3" } }, { baseDir }).rollout?.batchSize).toEqual({ count: 3 });
        expect(parseStackConfig({ hosts: ["a"] }, { baseDir }).rollout).toBeUndefined();
    });

    it("rejects bad values naming the key, with a hint", () => {
        const bad = (rollout: unknown) => problemsOf(() => parseStackConfig({ hosts: ["a"], rollout }, { baseDir, file: "Pulumi.prod.yaml" }));
        let problems = bad({ batchSize: 0 });
        expect(problems).toHaveLength(1);
        expect(problems[0]).toMatchObject({ field: "nixos-fleet:rollout.batchSize", file: "Pulumi.prod.yaml" });
        expect(problems[0]!.message).toMatch(/expected a number of hosts \(at least 1\) or a percentage like "25%" \(1% to 100%\), got 0/);
        expect(problems[0]!.hint).toMatch(/batchSize: 2 or batchSize: "25%"/);
        for (const value of ["0%", "101%", "2.5", "half", -1, 1.5, true]) expect(bad({ batchSize: value }).map((p) => p.field)).toEqual(["nixos-fleet:rollout.batchSize"]);
        problems = bad({ canary: ["Alpha"] });
        expect(problems.map((p) => p.field)).toEqual(["nixos-fleet:rollout.canary[0]"]);
        problems = bad({ canary: "alpha" });
        expect(problems[0]!.message).toMatch(/expected a list of host names and "@tag" selectors, got "alpha"/);
        problems = bad({ batchsize: 2 });
        expect(problems[0]!.message).toMatch(/batchsize/);
        expect(problems[0]!.field).toMatch(/^nixos-fleet:rollout/);
        for (const value of [-1, 1.5, "1"]) {
            problems = bad({ maxFailures: value });
            expect(problems[0]).toMatchObject({ field: "nixos-fleet:rollout.maxFailures" });
            expect(problems[0]!.message).toMatch(/expected a number of hosts from 0 to 10000/);
        }
        expect(parseStackConfig({ hosts: ["a"], rollout: { maxFailures: 2 } }, { baseDir }).rollout?.maxFailures).toBe(2);
        problems = bad("canary");
        expect(problems[0]!.message).toMatch(/expected a mapping with canary, batchSize, maxFailures/);
    });

    it("--batch-size takes the same values; anything else is a usage error naming the option", () => {
        expect(parseBatchSizeOption("2")).toEqual({ count: 2 });
        expect(parseBatchSizeOption("50%")).toEqual({ percent: 50 });
        expect(parseBatchSizeOption(undefined)).toBeUndefined();
        expect(() => parseBatchSizeOption("0")).toThrow(/--batch-size must be a number of hosts \(at least 1\) or a percentage like "25%" \(1% to 100%\), not "0"/);
        expect(() => parseBatchSizeOption("x", "NIXOS_FLEET_BATCH_SIZE")).toThrow(/^NIXOS_FLEET_BATCH_SIZE must be/);
        expect(batchSizeOf(" 7 ")).toEqual({ count: 7 });
        expect(batchSizeOf("007")).toBeUndefined();
    });
});

describe("planRollout", () => {
    it("without a rollout: one batch of every host", () => {
        expect(planRollout(fleet, undefined)).toEqual([{ number: 1, canary: false, hosts: fleet.map((h) => h.name) }]);
    });

    it("the canary (names and tags, in the stack's order) first, then the rest in batches of the size", () => {
        const batches = planRollout(fleet, { canary: ["gamma", "@db"], batchSize: { count: 2 }, maxFailures: 0 });
        expect(batches).toEqual([
            { number: 1, canary: true, hosts: ["beta", "gamma", "zeta"] },
            { number: 2, canary: false, hosts: ["alpha", "delta"] },
            { number: 3, canary: false, hosts: ["epsilon"] },
        ]);
    });

    it("a percentage is of the hosts after the canary, rounded up, at least one", () => {
        const sizes = (percent: number) => planRollout(fleet, { canary: ["alpha"], batchSize: { percent }, maxFailures: 0 }).map((b) => b.hosts.length);
        expect(sizes(40)).toEqual([1, 2, 2, 1]); // 5 hosts after the canary: 40% = 2
        expect(sizes(1)).toEqual([1, 1, 1, 1, 1, 1]);
        expect(sizes(100)).toEqual([1, 5]);
    });

    it("without batchSize the rest is one batch; the run's override wins over the setting", () => {
        expect(planRollout(fleet, { canary: ["alpha"], maxFailures: 0 }).map((b) => b.hosts.length)).toEqual([1, 5]);
        expect(planRollout(fleet, { canary: ["alpha"], batchSize: { count: 5 }, maxFailures: 0 }, { count: 3 }).map((b) => b.hosts.length)).toEqual([1, 3, 2]);
        expect(planRollout(fleet, undefined, { percent: 50 }).map((b) => [b.canary, b.hosts.length])).toEqual([[false, 3], [false, 3]]);
    });

    it("a canary that matches no host of the stack is a config error naming the setting", () => {
        const problems = problemsOf(() => planRollout(fleet, { canary: ["alpah", "@dbs"], maxFailures: 0 }));
        expect(problems.map((p) => [p.field, p.message])).toEqual([
            ["nixos-fleet:rollout.canary[0]", 'canary host "alpah" is not a host of this stack'],
            ["nixos-fleet:rollout.canary[1]", 'no host of this stack has tag "dbs"'],
        ]);
        expect(problems[0]!.hint).toMatch(/did you mean "alpha"\?.*the stack's hosts: alpha, beta/i);
        expect(onlyProblem(() => planRollout(fleet, { canary: ["@dbs"], maxFailures: 0 })).hint).toMatch(/tags of the stack's hosts: db, web/);
    });

    it("the notice says the batches and what a failure does; nothing for one batch", () => {
        const batches = planRollout(fleet.slice(0, 3), { canary: ["alpha"], batchSize: { count: 1 }, maxFailures: 0 });
        expect(rolloutNotice(batches, { count: 1 }, true)).toBe(
            "rollout, batches of 1 host (--batch-size for this run): batch 1 (canary): alpha; batch 2: beta; batch 3: gamma. " +
                "A batch starts only when every host of the one before deployed and passed its checks; when a host fails, the hosts of later batches are held back (not touched)",
        );
        expect(rolloutNotice(planRollout(fleet, undefined), undefined, false)).toBeUndefined();
        expect(rolloutNotice(batches, undefined, false, 2)).toMatch(
            /^rollout: batch 1 \(canary\): alpha; .*; when a host fails, pulumi up holds the hosts of later batches back \(not touched\); npm run deploy goes on while at most 2 hosts failed$/,
        );
    });
});

describe("held back by a failed batch", () => {
    const batches = planRollout(fleet, { canary: ["alpha"], batchSize: { count: 2 }, maxFailures: 0 });
    // alpha | beta, gamma | delta, epsilon | zeta (the stack's order)

    it("every host of the batches after the first failed one, with the reason", () => {
        const held = heldBackBy(batches, ["gamma", "zeta"]);
        expect([...held.keys()]).toEqual(["delta", "epsilon", "zeta"]);
        expect(held.get("zeta")).toBe("rollout: batch 2 failed (gamma), so later batches were not started");
        expect([...heldBackBy(batches, ["alpha"]).values()][0]).toBe("rollout: batch 1 (canary) failed (alpha), so later batches were not started");
        expect(heldBackBy(batches, []).size).toBe(0);
    });

    const row = (host: string, result: HostSummary["result"], reason?: string): HostSummary => ({
        host,
        result,
        ...(reason ? { reason } : {}),
        generationBefore: 1,
        generationAfter: 1,
        storePathBefore: null,
        storePathAfter: null,
        pathsCopied: 0,
        bytesCopied: 0,
        timings: {},
    });

    it("in deploy's rows: only hosts the run never reached become held back; a same-batch host stays not attempted", () => {
        const rows = heldBackByRollout(
            [row("alpha", "deployed"), row("beta", "unknown"), row("gamma", "not attempted", "another host failed (beta)"), row("delta", "not attempted", "x"), row("epsilon", "not attempted", "x"), row("zeta", "unchanged")],
            batches,
        );
        expect(rows.map((r) => [r.host, r.result, r.reason])).toEqual([
            ["alpha", "deployed", undefined],
            ["beta", "unknown", undefined],
            ["gamma", "not attempted", "another host failed (beta)"],
            ["delta", "held back", "rollout: batch 2 failed (beta), so later batches were not started"],
            ["epsilon", "held back", "rollout: batch 2 failed (beta), so later batches were not started"],
            ["zeta", "unchanged", undefined],
        ]);
        // with the stack's records, a held-back row shows what the host keeps running
        const recorded = new Map([["delta", { generation: 4, storePath: "/nix/store/x-delta" }]]);
        const withRecords = heldBackByRollout([row("beta", "failed"), row("delta", "not attempted", "x")], batches, recorded);
        expect(withRecords[1]).toMatchObject({ result: "held back", generationBefore: 4, generationAfter: 4, storePathBefore: "/nix/store/x-delta", storePathAfter: "/nix/store/x-delta" });
        // no failure, no rollout: rows as they were
        const plain = [row("alpha", "not attempted", "the stack is locked by another update")];
        expect(heldBackByRollout(plain, batches)).toEqual(plain);
    });

    it("the provider's error of a failed host names the hosts its failure holds back", () => {
        const rollout = { batch: 1, batches: 3, canary: true, later: ["beta", "gamma"] };
        expect(rolloutConsequence({ rollout }, new Error("x"))).toBe("\n  rollout: batch 1 of 3 (canary) failed here, so the hosts of later batches are held back (not touched): beta, gamma");
        const unknown = new FleetError({ phase: "activate", message: "outcome unknown: gone", outcome: "unknown" });
        expect(rolloutConsequence({ rollout: { ...rollout, canary: false, batch: 2 } }, unknown)).toMatch(/^\n {2}rollout: batch 2 of 3 did not end as it should \(outcome unknown\) here/);
        expect(rolloutConsequence({ rollout: { ...rollout, later: [] } }, new Error("x"))).toBe("");
        expect(rolloutConsequence({ rollout: { ...rollout, maxFailures: 1 } }, new Error("x"))).toBe(
            "\n  rollout: batch 1 of 3 (canary) failed here: pulumi up holds the hosts of later batches back (not touched): beta, gamma; npm run deploy goes on while at most 1 host failed",
        );
        expect(rolloutConsequence({}, new Error("x"))).toBe("");
    });
});

describe("deploymentTargets", () => {
    it("each host and its hooks, never the engine's dependents", () => {
        const hooks = [{ name: "notify" }, { name: "warm" }] as never;
        expect(deploymentTargets("prod", [{ name: "psi", hooks }, { name: "rho", hooks: [] }])).toEqual(
            new Map([
                [
                    "psi",
                    [
                        hostUrn("prod", "psi"),
                        "urn:pulumi:prod::nixos-fleet::nixos:index:Host$nixos:index:Hook::psi-notify",
                        "urn:pulumi:prod::nixos-fleet::nixos:index:Host$nixos:index:Hook::psi-warm",
                    ],
                ],
                ["rho", [hostUrn("prod", "rho")]],
            ]),
        );
    });
});

describe("maxFailures: deploy runs the batches itself", () => {
    const batches = planRollout(fleet, { canary: ["alpha"], batchSize: { count: 2 }, maxFailures: 1 });
    // alpha | beta, gamma | delta, epsilon | zeta

    it("heldBackAfter: later batches start while no more than maxFailures hosts failed in all", () => {
        expect(heldBackAfter(batches, ["alpha"], 1).size).toBe(0);
        const held = heldBackAfter(batches, ["alpha", "delta"], 1);
        expect([...held.keys()]).toEqual(["zeta"]);
        expect(held.get("zeta")).toBe("rollout: after batch 3, 2 hosts failed (alpha, delta), more than maxFailures (1), so later batches were not started");
        expect([...heldBackAfter(batches, ["beta", "gamma"], 1).keys()]).toEqual(["delta", "epsilon", "zeta"]);
    });

    /** A fake stack whose updates deploy every targeted host except those in `failing`. */
    function fakeStack(failing: string[]) {
        const calls: UpOptions[] = [];
        let sequence = 0;
        const event = (e: Record<string, unknown>) => ({ sequence: sequence++, timestamp: 0, ...e }) as unknown as EngineEvent;
        const stack = {
            envVars: {},
            preview: async () => {
                throw new Error("a rollout's batches run no preview");
            },
            up: async (options: UpOptions) => {
                calls.push(options);
                for (const urn of options.target ?? []) {
                    const host = urn.slice(urn.lastIndexOf("::") + 2);
                    options.onEvent!(event({ resourcePreEvent: { metadata: { op: "update", urn, old: { outputs: { generation: 1, storePath: "/nix/store/old" } }, new: { inputs: {} } } } }));
                    if (failing.includes(host)) {
                        options.onEvent!(event({ diagnosticEvent: { urn, severity: "error", message: `host ${host}: activate failed: boom` } }));
                    } else {
                        options.onEvent!(event({ resOutputsEvent: { metadata: { op: "update", urn, new: { outputs: { generation: 2, storePath: "/nix/store/new", lastDeploy: { activated: true, generationBefore: 1 } } } } } }));
                    }
                }
                if (options.target?.some((urn) => failing.some((host) => urn.endsWith(`::${host}`)))) throw new Error("update failed");
                return { code: 0, stdout: "", stderr: "" };
            },
        };
        return { stack: stack as DeploymentOptions["stack"], calls };
    }

    const options = (stack: DeploymentOptions["stack"], hosts = fleet.map((h) => h.name)) => ({
        stack,
        stackName: "prod",
        hosts,
        preview: false,
        yes: true,
        json: true,
        description: "deploy all hosts",
        batches,
        maxFailures: 1,
    });

    it("one targeted update per batch, in order, going on past failures up to maxFailures; then the rest held back, untouched", async () => {
        const { stack, calls } = fakeStack(["beta", "delta"]);
        const lines: string[] = [];
        const report = await runBatches(options(stack), (line) => lines.push(line));
        expect(calls.map((call) => call.target!.map((urn) => urn.slice(urn.lastIndexOf("::") + 2)))).toEqual([["alpha"], ["beta", "gamma"], ["delta", "epsilon"]]);
        expect(calls.map((call) => call.message)).toEqual(["deploy all hosts (rollout batch 1)", "deploy all hosts (rollout batch 2)", "deploy all hosts (rollout batch 3)"]);
        // Every host of an update at once: the engine's own default (4 × cores) would queue the rest.
        expect(calls.map((call) => call.parallel)).toEqual([1, 2, 2]);
        expect(report.hosts.map((h) => [h.host, h.result])).toEqual([
            ["alpha", "deployed"],
            ["beta", "failed"],
            ["gamma", "deployed"],
            ["delta", "failed"],
            ["epsilon", "deployed"],
            ["zeta", "held back"],
        ]);
        expect(report.hosts[5]!.reason).toBe("rollout: after batch 3, 2 hosts failed (beta, delta), more than maxFailures (1), so later batches were not started");
        expect(report.failed).toEqual(["beta", "delta"]);
        expect(lines).toContain("rollout: batch 2: beta, gamma");
        expect(lines).toContain("[beta] error: host beta: activate failed: boom");
    });

    it("--parallel splits a batch into updates of at most that many hosts; hosts an update did not reach stop the rollout", async () => {
        const { stack, calls } = fakeStack([]);
        const report = await runBatches({ ...options(stack), parallel: 1 }, () => undefined);
        expect(calls.map((call) => call.target!.length)).toEqual([1, 1, 1, 1, 1, 1]);
        expect(report.hosts.every((h) => h.result === "deployed")).toBe(true);

        // an update that ends before reaching a host (no events for it): nothing later starts
        const silent = {
            envVars: {},
            up: async (o: UpOptions) => {
                calls.length = 0;
                if (o.target!.some((urn) => urn.endsWith("::beta"))) throw new Error("update failed");
                return { code: 0, stdout: "", stderr: "" };
            },
        } as unknown as DeploymentOptions["stack"];
        const stopped = await runBatches(options(silent), () => undefined);
        expect(stopped.hosts.map((h) => [h.host, h.result])).toEqual([
            ["alpha", "not attempted"],
            ["beta", "not attempted"],
            ["gamma", "not attempted"],
            ["delta", "not attempted"],
            ["epsilon", "not attempted"],
            ["zeta", "not attempted"],
        ]);
        expect(stopped.hosts[3]!.reason).toMatch(/rollout batch 1 did not finish \(not attempted: alpha\), so later hosts were not started/);
    });

    it("SIGTERM during a batch: the engine gets the abort signal, no later batch starts, the rest are not attempted (cancelled)", async () => {
        const { EventEmitter } = await import("node:events");
        const proc = new EventEmitter();
        const { stack, calls } = fakeStack([]);
        const up = stack.up.bind(stack);
        const signals: (AbortSignal | undefined)[] = [];
        const terminating = {
            up: async (o: UpOptions) => {
                signals.push(o.signal);
                const result = await up(o);
                if (calls.length === 2) proc.emit("SIGTERM"); // while batch 2 runs
                return result;
            },
        } as unknown as DeploymentOptions["stack"];
        const lines: string[] = [];
        const report = await runBatches(options(terminating), (line) => lines.push(line), proc as never);
        expect(calls.map((call) => call.target!.map((urn) => urn.slice(urn.lastIndexOf("::") + 2)))).toEqual([["alpha"], ["beta", "gamma"]]);
        expect(signals[1]?.aborted).toBe(true);
        expect(report.hosts.map((h) => [h.host, h.result, h.reason ?? null])).toEqual([
            ["alpha", "deployed", null],
            ["beta", "deployed", null],
            ["gamma", "deployed", null],
            ["delta", "not attempted", "cancelled"],
            ["epsilon", "not attempted", "cancelled"],
            ["zeta", "not attempted", "cancelled"],
        ]);
        expect(report.errors).toEqual(["the run was interrupted (Ctrl-C, SIGTERM or SIGHUP): hosts not yet started were not attempted"]);
        expect(lines).toContain("interrupted (SIGTERM): pulumi is cancelling the update; hosts under way finish first (a wait for a reboot ends at once, its outcome unknown), the rest are not started");
        expect(proc.listenerCount("SIGTERM")).toBe(0);
    });

    it("only the selected hosts, in their batches; a run without failures deploys them all", async () => {
        const { stack, calls } = fakeStack([]);
        const report = await runBatches(options(stack, ["alpha", "zeta", "gamma"]), () => undefined);
        expect(calls.map((call) => call.target!.length)).toEqual([1, 1, 1]);
        expect(report.hosts.map((h) => [h.host, h.result])).toEqual([
            ["alpha", "deployed"],
            ["zeta", "deployed"],
            ["gamma", "deployed"],
        ]);
    });
});

describe("the engine's duplicate-URN refusal (pulumi/pulumi#24303)", () => {
    it("is not the host's failure: the host is not attempted and the error says what to do", () => {
        const lines: string[] = [];
        const tracker = new ProgressTracker((line) => lines.push(line));
        const urn = "urn:pulumi:prod::nixos-fleet::nixos:index:Host::psi";
        tracker.onEvent({ sequence: 1, timestamp: 0, diagnosticEvent: { urn, severity: "error", color: "never", message: `Duplicate resource URN '${urn}'; try giving it a unique name\n` } } as unknown as EngineEvent);
        const report = buildReport({ stackName: "prod", hosts: ["psi"] }, tracker, false, new Error("update failed"));
        expect(report.hosts[0]).toMatchObject({ host: "psi", result: "not attempted", reason: "the program failed before this host was reached" });
        expect(report.failed).toEqual([]);
        expect(report.errors[0]).toMatch(/^Duplicate resource URN '.*::psi'; try giving it a unique name: Pulumi refused this targeted update before deploying psi; this is a known Pulumi engine bug \(pulumi\/pulumi#24303\)/);
        expect(report.errors[0]).toContain("hint: run one update of the whole stack, `npm run pulumi -- up`");
        expect(lines[0]).toMatch(/^error: Duplicate resource URN/);
    });
});

describe("engineParallel", () => {
    it("is the configured hosts at once, else every target of the update (not the engine's 4 × cores)", () => {
        const targets = Array.from({ length: 20 }, (_, i) => `urn:pulumi:prod::p::nixos:index:Host::h${i}`);
        expect(engineParallel(undefined, targets)).toBe(20);
        expect(engineParallel(3, targets)).toBe(3);
        expect(engineParallel(undefined, [])).toBe(1);
        // `npm run deploy -- --parallel 5000000000`: the engine's flag is an int32 and would refuse the run.
        expect(engineParallel(5_000_000_000, targets)).toBe(2147483647);
    });
});
