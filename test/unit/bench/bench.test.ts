import { describe, expect, it } from "vitest";
import { DEFAULT_OPTIONS, parseBenchArgs } from "../../../bench/options";
import { figure, median, ratio, summaryLine } from "../../../bench/stats";
import { combineResults, renderChart, type BenchResults } from "../../../bench/chart";
import { descendantsRss, parseProcStat } from "../../../bench/memory";
import { heavyFlakeText } from "../../../bench/heavyFlake";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FloorProgram, floorResourcesOf } from "../../../bench/floor";
import { EmptyProgram } from "../../../bench/empty";

describe("bench options", () => {
    it("defaults to every scenario at the issue's sizes", () => {
        expect(parseBenchArgs([])).toEqual(DEFAULT_OPTIONS);
        expect(DEFAULT_OPTIONS).toMatchObject({ hosts: 50, changed: 20, paths: 1500, bigHosts: 200, portBase: 19200 });
    });

    it("--only picks scenarios (any case, in P order) and sizes take both --x N and --x=N", () => {
        expect(parseBenchArgs(["--only", "p4,P1", "--hosts", "10", "--paths=0", "--big-hosts=20", "--rounds", "1"])).toEqual({
            ...DEFAULT_OPTIONS, only: ["P1", "P4"], hosts: 10, changed: 10, paths: 0, bigHosts: 20, rounds: 1,
        });
        expect(parseBenchArgs(["--hosts", "30", "--changed", "5"])).toMatchObject({ hosts: 30, changed: 5 });
    });

    it("refuses unknown scenarios, options and bad numbers with the usage", () => {
        expect(() => parseBenchArgs(["--only", "P7"])).toThrow(/--only takes scenarios among P1,P2,P3,P4,P5,P6, not 'P7'/);
        expect(() => parseBenchArgs(["--only", ""])).toThrow(/--only takes/);
        expect(() => parseBenchArgs(["--fast"])).toThrow(/unknown option '--fast'.*npm run bench/);
        expect(() => parseBenchArgs(["--hosts", "0"])).toThrow(/--hosts takes a whole number ≥ 1, not '0'/);
        expect(() => parseBenchArgs(["--hosts"])).toThrow(/--hosts takes a whole number/);
        expect(() => parseBenchArgs(["--rounds", "2.5"])).toThrow(/--rounds takes a whole number/);
        expect(() => parseBenchArgs(["--port-base", "80"])).toThrow(/--port-base takes a whole number ≥ 1024/);
    });

    it("refuses sizes that do not fit together", () => {
        expect(() => parseBenchArgs(["--hosts", "10", "--changed", "11"])).toThrow(/--changed 11 is more than --hosts 10/);
        expect(() => parseBenchArgs(["--hosts", "2", "--changed", "1"])).toThrow(/P1 compares 3 hosts/);
        expect(parseBenchArgs(["--only", "P2", "--hosts", "2", "--changed", "1"]).hosts).toBe(2);
    });
});

describe("bench figures", () => {
    it("median of odd and even counts, ratio against the baseline", () => {
        expect(median([3, 1, 2])).toBe(2);
        expect(median([4, 1, 3, 2])).toBe(2.5);
        expect(() => median([])).toThrow(/no values/);
        expect(ratio(2600, 2000)).toBeCloseTo(1.3);
        expect(() => ratio(1, 0)).toThrow(/baseline of 0/);
    });

    it("a figure meets its target when at or below it", () => {
        const base = { id: "P1", label: "no-op preview", size: "3 hosts", unit: "x" as const, target: 1.3 };
        expect(figure({ ...base, value: 1.3 }).met).toBe(true);
        expect(figure({ ...base, value: 1.31 }).met).toBe(false);
        expect(() => figure({ ...base, value: Number.NaN })).toThrow(/P1: no value/);
        expect(summaryLine(figure({ ...base, value: 2.456 }))).toMatch(/^P1 +no-op preview +2\.46× +target ≤ 1\.30× +NOT met +\(3 hosts\)$/);
        expect(summaryLine(figure({ ...base, unit: "MiB", target: 1024, value: 636.2 }))).toMatch(/636 MiB +target ≤ 1024 MiB +met/);
    });
});

describe("bench chart", () => {
    const results: BenchResults = {
        date: "2026-11-29 19:30 UTC",
        machine: "2 cores",
        options: {},
        figures: [
            figure({ id: "P1", label: "no-op <preview>", size: "3 hosts", unit: "x", target: 1.3, value: 2.6 }),
            figure({ id: "P6", label: "memory", size: "200 hosts", unit: "MiB", target: 1024, value: 512 }),
        ],
    };

    it("draws one bar per figure as a share of its target, coloured by whether it is met, text escaped", () => {
        const svg = renderChart(results);
        expect(svg.startsWith("<svg xmlns=\"http://www.w3.org/2000/svg\"")).toBe(true);
        const bars = [...svg.matchAll(/<rect x="400" y="[\d.]+" width="([\d.]+)" height="\d+" fill="(#[0-9a-f]+)"\/>/g)];
        expect(bars.map((bar) => bar[2])).toEqual(["#c0392b", "#3a7d44"]);
        // P1 is at 2× its target (the scale's end, 300 px), P6 at half of it.
        expect(Number(bars[0]![1])).toBeCloseTo(300);
        expect(Number(bars[1]![1])).toBeCloseTo(75);
        expect(svg).toContain("P1 no-op &lt;preview&gt;, 3 hosts");
        expect(svg).toContain("2.60× (target ≤ 1.30×)");
        expect(svg).not.toContain("<preview>");
        // The target line sits at share 1 of a scale running to 2: 400 + 150.
        expect(svg).toMatch(/<line x1="550\.0"/);
    });

    it("refuses an empty result set", () => {
        expect(() => renderChart({ ...results, figures: [] })).toThrow(/no figures/);
    });
});

describe("bench memory", () => {
    it("reads pid, parent and resident pages from /proc/<pid>/stat, even with ') ' in the command name", () => {
        const fields = ["S", "41", ...Array.from({ length: 19 }, () => "0"), "250", "0"];
        expect(parseProcStat(`77 (node (x) y) ${fields.join(" ")}`)).toEqual({ pid: 77, ppid: 41, rssBytes: 250 * 4096 });
        expect(() => parseProcStat("garbage")).toThrow(/unreadable/);
    });

    it("sums every descendant of the root, not the root or unrelated processes", () => {
        const procs = [
            { pid: 10, ppid: 1, rssBytes: 1000 }, // root (the bench)
            { pid: 11, ppid: 10, rssBytes: 100 }, // pulumi
            { pid: 12, ppid: 11, rssBytes: 20 }, // language host
            { pid: 13, ppid: 12, rssBytes: 3 }, // node program
            { pid: 20, ppid: 1, rssBytes: 5000 }, // someone else
        ];
        expect(descendantsRss(procs, 10)).toBe(123);
        expect(descendantsRss(procs, 13)).toBe(0);
    });
});

describe("P5's flake", () => {
    it("names every host and computes the heavy module once, outside the per-host function", () => {
        const text = heavyFlakeText(["a", "b\"c"], 1234, "x86_64-linux");
        expect(text).toContain('[ "a" "b\\"c" ]');
        expect(text).toContain("builtins.genList (i: i) 1234");
        expect(text.indexOf("heavy = builtins.foldl'")).toBeLessThan(text.indexOf("mkHost = name:"));
    });
});

describe("bench chart of several runs", () => {
    it("joins the runs' figures by scenario and their distinct dates", () => {
        const run = (date: string, id: string): BenchResults => ({
            date, machine: "2 cores", options: {},
            figures: [figure({ id, label: "x", size: "1 host", unit: "x", target: 1, value: 0.5 })],
        });
        const combined = combineResults([run("d1", "P5"), run("d1", "P1"), run("d2", "P6")]);
        expect(combined.date).toBe("d1, d2");
        expect(combined.machine).toBe("2 cores");
        expect(combined.figures.map((f) => f.id)).toEqual(["P1", "P5", "P6"]);
        expect(() => combineResults([])).toThrow(/no results/);
    });
});

describe("P1's floor", () => {
    it("takes each Host the stack recorded (name from its URN, its inputs and outputs as recorded), nothing else", () => {
        const exported = {
            deployment: {
                resources: [
                    { type: "pulumi:pulumi:Stack", urn: "urn:pulumi:dev::nixos-fleet::pulumi:pulumi:Stack::nixos-fleet-dev" },
                    { type: "pulumi:providers:nixos", urn: "urn:pulumi:dev::nixos-fleet::pulumi:providers:nixos::default", inputs: {} },
                    { type: "nixos:index:Host", urn: "urn:pulumi:dev::nixos-fleet::nixos:index:Host::psi", inputs: { address: "10.0.0.1" }, outputs: { address: "10.0.0.1", generation: 3 } },
                    { type: "nixos:index:Hook", urn: "urn:pulumi:dev::nixos-fleet::nixos:index:Host$nixos:index:Hook::psi-migrate", inputs: {} },
                    { type: "nixos:index:Host", urn: "urn:pulumi:dev::nixos-fleet::nixos:index:Host::rho" },
                ],
            },
        };
        expect(floorResourcesOf(exported)).toEqual([
            { name: "psi", inputs: { address: "10.0.0.1" }, outputs: { address: "10.0.0.1", generation: 3 } },
            { name: "rho", inputs: {}, outputs: {} },
        ]);
        expect(floorResourcesOf({})).toEqual([]);
    });
});

describe("the bench's helper projects", () => {
    it("remove their temporary directory when they fail to start (the caller has nothing to dispose of)", async () => {
        const root = mkdtempSync(join(tmpdir(), "nf-bench-test-"));
        const tmp = join(root, "tmp");
        const empty = join(root, "no-pulumi-here");
        mkdirSync(tmp);
        mkdirSync(empty);
        const saved = process.env.TMPDIR;
        process.env.TMPDIR = tmp;
        try {
            // No pulumi on PATH: `pulumi stack init` cannot run.
            const env = { PATH: empty };
            await expect(FloorProgram.create(root, env, [{ name: "psi", inputs: {}, outputs: {} }])).rejects.toThrow();
            await expect(EmptyProgram.create(root, env)).rejects.toThrow();
            expect(readdirSync(tmp)).toEqual([]);
        } finally {
            if (saved === undefined) delete process.env.TMPDIR;
            else process.env.TMPDIR = saved;
            rmSync(root, { recursive: true, force: true });
        }
    });

    it("are removed when the bench exits before disposing of them (Ctrl-C: the sandbox hosts stopped, then process.exit)", () => {
        const tmp = mkdtempSync(join(tmpdir(), "nf-bench-test-"));
        try {
            const script = [
                'const { benchTempDir, removeBenchTempDir } = require("./bench/tempDirs");',
                'const kept = benchTempDir("nf-bench-empty-");',
                'removeBenchTempDir(benchTempDir("nf-bench-floor-"));',
                'benchTempDir("nf-bench-floor-");',
                "console.log(kept);",
                "process.exit(130);",
            ].join("\n");
            const child = spawnSync(process.execPath, ["-r", "ts-node/register/transpile-only", "-e", script], {
                cwd: join(__dirname, "../../.."),
                env: { ...process.env, TMPDIR: tmp },
                encoding: "utf8",
            });
            expect(child.status).toBe(130);
            const made = child.stdout.trim();
            expect(made.startsWith(join(tmp, "nf-bench-empty-"))).toBe(true);
            expect(existsSync(made)).toBe(false);
            expect(readdirSync(tmp).filter((name) => name.startsWith("nf-bench-"))).toEqual([]);
        } finally {
            rmSync(tmp, { recursive: true, force: true });
        }
    });
});
