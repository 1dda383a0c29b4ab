// After a refresh, scripts/pulumi runs refresh-check: the hosts this refresh could not reach are
// named and the exit status is 1; marks left by earlier refreshes do not count.
import { describe, expect, it } from "vitest";
import { refreshCheckCommand, refreshProblem, unreachableSince } from "../../../src/cli/refreshCheck";
import { FakeRunner } from "../helpers/fakeRunner";

const host = (name: string, unreachable: unknown, type = "nixos:index:Host") => ({ type, outputs: { name, unreachable } });
const mark = (checkedAt: string) => ({ since: "2026-01-01T00:00:00.000Z", checkedAt, error: "host tau: connect failed: root@tau refused the connection" });
const exported = {
    deployment: {
        resources: [
            host("psi", null),
            host("tau", mark("2026-01-02T00:00:05.123Z")),
            host("rho", mark("2026-01-01T12:00:00.000Z")), // an older refresh's mark
            host("tau-migrate", mark("2026-01-02T00:00:05.123Z"), "nixos:index:Hook"),
        ],
    },
};

describe("refresh-check", () => {
    it("finds only hosts marked by a refresh that started at or after the given second", () => {
        expect(unreachableSince(exported, new Date("2026-01-02T00:00:05.900Z")).map((h) => h.host)).toEqual(["tau"]);
        expect(unreachableSince(exported, new Date("2026-01-02T00:00:06.000Z"))).toEqual([]);
        expect(unreachableSince({}, new Date(0))).toEqual([]);
    });

    it("names each host with its error and since when, with a hint; nothing when all were reached", () => {
        expect(refreshProblem(unreachableSince(exported, new Date("2026-01-02T00:00:00.000Z")))).toBe(
            "refresh could not reach 1 host: tau; their last recorded state was kept, marked unreachable (the others were recorded)\n" +
                "  tau: host tau: connect failed: root@tau refused the connection (unreachable since 2026-01-01T00:00:00.000Z)\n" +
                "  hint: bring them back (or fix the connection error), then run npm run pulumi -- refresh again",
        );
        expect(refreshProblem([])).toBeUndefined();
    });

    it("reads the stack's state with pulumi stack export and exits 1 when a host was missed, 0 otherwise", async () => {
        const runner = new FakeRunner();
        runner.on((call) => call.argv[0] === "pulumi", { stdout: JSON.stringify(exported) });
        const writes: string[] = [];
        const write = process.stderr.write.bind(process.stderr);
        process.stderr.write = ((chunk: string) => (writes.push(chunk), true)) as typeof process.stderr.write;
        try {
            expect(await refreshCheckCommand(["prod", String(Date.parse("2026-01-02T00:00:00Z") / 1000)], runner.run)).toBe(1);
            expect(await refreshCheckCommand(["prod", String(Date.parse("2026-01-03T00:00:00Z") / 1000)], runner.run)).toBe(0);
        } finally {
            process.stderr.write = write;
        }
        expect(runner.calls.map((call) => call.argv)).toEqual([
            ["pulumi", "stack", "export", "--stack", "prod"],
            ["pulumi", "stack", "export", "--stack", "prod"],
        ]);
        expect(writes.join("")).toMatch(/^error: refresh could not reach 1 host: tau;/);
        await expect(refreshCheckCommand(["prod", "soon"], runner.run)).rejects.toThrow(/usage: refresh-check/);
    });
});
