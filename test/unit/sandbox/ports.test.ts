// Sandbox port allocation keeps out of the kernel's ephemeral port range (faked here), and every
// port base the repo uses lies below Linux's default range.
import * as fs from "node:fs";
import * as path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { DEFAULT_OPTIONS } from "../../../bench/options";
import {
    DEFAULT_EPHEMERAL_RANGE,
    DEFAULT_PORT_BASE,
    EPHEMERAL_RANGE_FILE,
    allocatePorts,
    ephemeralPortRange,
    parsePortRange,
    portsInRange,
    readPorts,
    releasePort,
    searchWindow,
    writePorts,
    type PortRange,
} from "../../../sandbox/ports";
import { tempDir } from "../helpers/fixtures";

const ROOT = path.resolve(__dirname, "../../..");

/** Ports few things use on a test machine (below every base the repo's tests and bench use). */
const BASE = 9740;

const sandboxes: string[] = [];

/** A sandbox dir for one allocation; its port claims are released after the test. */
function sandboxDir(): { dir: string; portsFile: string } {
    const dir = tempDir("nf-ports-");
    sandboxes.push(dir);
    return { dir, portsFile: path.join(dir, "ports.json") };
}

afterEach(() => {
    for (const dir of sandboxes.splice(0)) {
        for (const port of Object.values(readPorts(path.join(dir, "ports.json")))) releasePort(port, dir);
    }
});

describe("the kernel's ephemeral port range", () => {
    it("is read as two numbers; anything else is not a range", () => {
        expect(parsePortRange("32768\t60999\n")).toEqual({ low: 32768, high: 60999 });
        expect(parsePortRange(" 1024 65535")).toEqual({ low: 1024, high: 65535 });
        for (const bad of ["", "32768", "60999 32768", "0 100", "1 70000", "a b", "1 2 3"]) expect(parsePortRange(bad), bad).toBeUndefined();
    });

    it("comes from the given file, and is Linux's default when the file is missing or garbled", () => {
        const dir = tempDir("nf-ports-");
        const file = path.join(dir, "ip_local_port_range");
        fs.writeFileSync(file, "20000\t30000\n");
        expect(ephemeralPortRange(file)).toEqual({ low: 20000, high: 30000 });
        fs.writeFileSync(file, "nonsense\n");
        expect(ephemeralPortRange(file)).toEqual(DEFAULT_EPHEMERAL_RANGE);
        expect(ephemeralPortRange(path.join(dir, "missing"))).toEqual({ low: 32768, high: 60999 });
    });
});

describe("allocatePorts avoids the ephemeral range", () => {
    const range: PortRange = { low: BASE + 4, high: BASE + 600 };

    it("takes ports from the base while there is room below the range", async () => {
        const { dir, portsFile } = sandboxDir();
        const ports = await allocatePorts(portsFile, dir, ["a", "a.web"], BASE, range);
        for (const port of Object.values(ports)) {
            expect(port).toBeGreaterThanOrEqual(BASE);
            expect(port).toBeLessThan(range.low);
        }
        expect(new Set(Object.values(ports)).size).toBe(2);
        expect(readPorts(portsFile)).toEqual(ports);
    });

    it("fails naming the range, its /proc file and a lower base when the search would reach the range", async () => {
        const { dir, portsFile } = sandboxDir();
        const names = ["a", "b", "c", "a.web", "b.web", "c.web"];
        const error = await allocatePorts(portsFile, dir, names, BASE, range).then(
            () => undefined,
            (e: Error) => e,
        );
        expect(error?.message).toMatch(new RegExp(`^no free port for host \\S+ in ${BASE}\\.\\.${range.low - 1}: the search stops below the kernel's ephemeral port range ${range.low}\\.\\.${range.high} \\(/proc/sys/net/ipv4/ip_local_port_range\\)`));
        expect(error?.message).toMatch(/Choose a lower port base .* below 9744$/);
        expect(portsInRange(readPorts(portsFile), range)).toEqual([]);
    });

    it("refuses a base inside the range before taking any port", async () => {
        const { dir, portsFile } = sandboxDir();
        await expect(allocatePorts(portsFile, dir, ["a"], BASE + 10, range)).rejects.toThrow(
            `sandbox port base ${BASE + 10} lies in the kernel's ephemeral port range ${range.low}..${range.high} (${EPHEMERAL_RANGE_FILE})`,
        );
        await expect(allocatePorts(portsFile, dir, ["a"], range.high, range)).rejects.toThrow(/Choose a base below 9744 /);
        expect(fs.existsSync(portsFile)).toBe(false);
    });

    it("takes ports above the range from a base above it", async () => {
        const { dir, portsFile } = sandboxDir();
        const low: PortRange = { low: 1024, high: BASE - 1 };
        const ports = await allocatePorts(portsFile, dir, ["a"], BASE, low);
        expect(ports.a).toBeGreaterThanOrEqual(BASE);
    });

    it("keeps a host's recorded port, even one inside the range, and names it", async () => {
        const { dir, portsFile } = sandboxDir();
        writePorts(portsFile, { a: BASE + 20, "a.web": BASE + 1 });
        // No new port is needed, so the base (inside the range) is not searched.
        expect(await allocatePorts(portsFile, dir, ["a", "a.web"], BASE + 10, range)).toEqual({ a: BASE + 20, "a.web": BASE + 1 });
        expect(portsInRange(readPorts(portsFile), range)).toEqual(["a"]);
    });
});

describe("the repo's port bases lie below Linux's default ephemeral range", () => {
    it("the sandbox default and the bench default leave their whole search below 32768", () => {
        for (const base of [DEFAULT_PORT_BASE, DEFAULT_OPTIONS.portBase]) {
            const window = searchWindow(base, DEFAULT_EPHEMERAL_RANGE);
            expect(window.last - window.first + 1, `base ${base}`).toBe(2000);
        }
    });

    it("every e2e file's portBase is below 32768, with ~1000 ports to itself", () => {
        const dir = path.join(ROOT, "test", "e2e");
        const bases: Array<[string, number]> = [];
        for (const file of fs.readdirSync(dir).filter((f) => f.endsWith(".test.ts"))) {
            const text = fs.readFileSync(path.join(dir, file), "utf8");
            for (const match of text.matchAll(/(?:portBase: |SANDBOX_PORT_BASE: ")(\d+)/g)) bases.push([file, Number(match[1])]);
        }
        expect(bases.length).toBeGreaterThanOrEqual(15);
        bases.sort((a, b) => a[1] - b[1]);
        for (const [file, base] of bases) expect(base, file).toBeLessThan(DEFAULT_EPHEMERAL_RANGE.low - 500);
        for (let i = 1; i < bases.length; i++) {
            expect(bases[i]![1] - bases[i - 1]![1], `${bases[i - 1]![0]} and ${bases[i]![0]}`).toBeGreaterThanOrEqual(1000);
        }
        const bench = DEFAULT_OPTIONS.portBase;
        for (const [file, base] of bases) expect(Math.abs(base - bench), `${file} and the bench`).toBeGreaterThanOrEqual(1000);
    });
});
