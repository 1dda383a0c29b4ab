import { describe, expect, it } from "vitest";
import { parseStackConfig } from "../../../src/config";
import { batchSizeOf, parseBatchSizeOption } from "../../../src/config/rollout";
import { heldBackByRollout } from "../../../src/cli/runDeployment";
import { deploymentTargets, hostUrn } from "../../../src/cli/stack";
import { heldBackBy, planRollout, rolloutNotice } from "../../../src/program/rollout";
import { rolloutConsequence } from "../../../src/provider/hostProvider";
import { FleetError } from "../../../src/errors";
import type { HostSummary } from "../../../src/cli/progress";
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
        problems = bad({ maxFailures: 2 });
        expect(problems[0]).toMatchObject({ field: "nixos-fleet:rollout.maxFailures" });
        expect(problems[0]!.message).toMatch(/more is not supported yet/);
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
        expect(rolloutConsequence({}, new Error("x"))).toBe("");
    });
});

describe("deploymentTargets", () => {
    it("each host and its hooks, never the engine's dependents", () => {
        const hooks = [{ name: "notify" }, { name: "warm" }] as never;
        expect(deploymentTargets("prod", [{ name: "psi", hooks }, { name: "rho", hooks: [] }])).toEqual([
            hostUrn("prod", "psi"),
            "urn:pulumi:prod::nixos-fleet::nixos:index:Host$nixos:index:Hook::psi-notify",
            "urn:pulumi:prod::nixos-fleet::nixos:index:Host$nixos:index:Hook::psi-warm",
            hostUrn("prod", "rho"),
        ]);
    });
});
