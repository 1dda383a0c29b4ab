import { describe, expect, it } from "vitest";
import {
    collectReports,
    flagsOf,
    formatReports,
    generationsCommand,
    parseGenerationsArgs,
    rowsOf,
    targetFor,
    type GenerationRow,
} from "../../../src/cli/generations";
import { hostFileSchema, resolveHost, type HostConfig } from "../../../src/config";
import type { HostGeneration, StackUpdate } from "../../../src/deploy/generations";
import type { HostOutputs } from "../../../src/provider/hostInputs";
import { FakeRunner, masterExit, masterStart, remote, sshOption, type RecordedCall } from "../helpers/fakeRunner";
import { drvPath, runtimeDir, storePath } from "../helpers/fixtures";

const gen1 = storePath("nixos-system-psi-1");
const gen2 = storePath("nixos-system-psi-2");

function host(name: string, fields: Record<string, unknown> = {}): HostConfig {
    const declared = hostFileSchema.parse({ address: `${name}.lab.example.org`, flake: "/srv/infra", ...fields });
    return resolveHost(declared, { name, file: `/srv/fleet/hosts/${name}.yaml`, baseDir: "/srv/fleet" });
}

function recorded(name: string, overrides: Partial<HostOutputs> = {}): HostOutputs {
    return {
        name,
        address: `${name}-recorded.lab.example.org`,
        port: 2222,
        user: "deploy",
        flake: "/srv/infra",
        attribute: `nixosConfigurations.${name}`,
        buildOn: "local",
        action: "switch",
        substituteOnDestination: false,
        tags: [],
        storePath: gen2,
        drvPath: drvPath("nixos-system-psi-2"),
        generation: 2,
        previousGeneration: 1,
        activatedAt: "2025-01-31T14:02:11.000Z",
        nixosVersion: null,
        runningStorePath: gen2,
        bootedStorePath: null,
        profileStorePath: gen2,
        history: [
            { generation: 2, storePath: gen2, action: "switch", activatedAt: "2025-01-31T14:02:11.000Z" },
            { generation: 1, storePath: gen1, action: "switch", activatedAt: "2025-01-30T09:15:02.000Z" },
        ],
        ...overrides,
    } as HostOutputs;
}

const updates: StackUpdate[] = [
    { version: 1, kind: "update", startTime: new Date("2025-01-30T09:15:00Z"), endTime: new Date("2025-01-30T09:15:05Z"), result: "succeeded" },
    { version: 2, kind: "update", startTime: new Date("2025-01-31T14:02:00Z"), endTime: new Date("2025-01-31T14:02:15Z"), result: "succeeded" },
];

function hostOutput(listing: string, links: [number, string, string][], running: string): string {
    return [
        "@generations",
        listing,
        "@links",
        ...links.map(([n, path, version]) => `link\t${n}\t${path}\t${version}`),
        "@state",
        `profile=system-${links[links.length - 1]![0]}-link`,
        `current=${running}`,
        "booted=",
        "",
    ].join("\n");
}

const destinationOf = (call: RecordedCall): string => call.argv[call.argv.length - (call.remote === undefined ? 1 : 2)]!;

describe("parseGenerationsArgs", () => {
    it("--hosts, --stack, --json, --help", () => {
        expect(parseGenerationsArgs(["--hosts", "psi,rho", "--stack", "prod", "--json"])).toEqual({ hosts: "psi,rho", stack: "prod", json: true, help: false });
        expect(parseGenerationsArgs(["--hosts=@compute"])).toMatchObject({ hosts: "@compute", json: false });
        expect(parseGenerationsArgs(["-h"]).help).toBe(true);
        expect(parseGenerationsArgs([])).toEqual({ hosts: undefined, stack: undefined, json: false, help: false });
    });

    it("rejects unknown options and stray arguments", () => {
        expect(() => parseGenerationsArgs(["--host", "psi"])).toThrow(/--host/);
        expect(() => parseGenerationsArgs(["psi"])).toThrow(/unexpected argument: psi/);
        expect(() => parseGenerationsArgs(["--stack"])).toThrow();
    });

    it("--help prints the options and exits 0; a usage error exits 2 without touching any stack", async () => {
        const written: string[] = [];
        const original = { out: process.stdout.write, err: process.stderr.write };
        process.stdout.write = ((chunk: string) => (written.push(chunk), true)) as typeof process.stdout.write;
        process.stderr.write = ((chunk: string) => (written.push(chunk), true)) as typeof process.stderr.write;
        try {
            expect(await generationsCommand(["--help"])).toBe(0);
            expect(written.join("")).toMatch(/--hosts.*\n.*--stack.*\n.*--json/);
            written.length = 0;
            expect(await generationsCommand(["--bogus"])).toBe(2);
            expect(written.join("")).toMatch(/bogus/);
        } finally {
            process.stdout.write = original.out;
            process.stderr.write = original.err;
        }
    });
});

describe("targetFor", () => {
    it("uses the recorded state's connection settings when the host is in the state", () => {
        const target = targetFor(host("psi"), recorded("psi"));
        expect(target).toMatchObject({ name: "psi", address: "psi-recorded.lab.example.org", port: 2222, user: "deploy" });
    });

    it("the host's config when a recorded connection setting is a secret (only ciphertext in the exported state)", () => {
        const secret = { "4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270", ciphertext: "v1:abc" };
        const target = targetFor(host("psi"), { ...recorded("psi"), sshOptions: secret } as unknown as Parameters<typeof targetFor>[1]);
        expect(target.address).toBe("psi.lab.example.org");
    });

    it("else the host's config, passing the port only when the file sets it", () => {
        expect(targetFor(host("rho"), undefined)).toMatchObject({ name: "rho", address: "rho.lab.example.org", user: "root", port: undefined, connectTimeout: 10 });
        expect(targetFor(host("rho", { port: 2200, user: "ops" }), undefined)).toMatchObject({ port: 2200, user: "ops" });
    });
});

describe("rowsOf", () => {
    it("attaches each generation's stack update, null when this stack did not deploy it", () => {
        const generations: HostGeneration[] = [
            { generation: 1, date: "2025-01-30 09:15:02", current: false, storePath: gen1, nixosVersion: "24.05.1", running: false, booted: false },
            { generation: 2, date: "2025-01-31 14:02:11", current: false, storePath: gen2, running: false, booted: true },
            { generation: 3, date: "2025-02-02 10:00:00", current: true, storePath: gen1, running: true, booted: false },
        ];
        const rows = rowsOf(generations, recorded("psi").history, updates);
        const unknown = { deployedAt: null, operator: null, flake: null };
        expect(rows).toEqual([
            { generation: 1, date: "2025-01-30 09:15:02", storePath: gen1, nixosVersion: "24.05.1", current: false, running: false, booted: false, stackVersion: 1, ...unknown, deployedAt: "2025-01-30T09:15:02.000Z" },
            { generation: 2, date: "2025-01-31 14:02:11", storePath: gen2, nixosVersion: null, current: false, running: false, booted: true, stackVersion: 2, ...unknown, deployedAt: "2025-01-31T14:02:11.000Z" },
            { generation: 3, date: "2025-02-02 10:00:00", storePath: gen1, nixosVersion: null, current: true, running: true, booted: false, stackVersion: null, ...unknown },
        ]);
    });

    it("a generation's row carries its deployment record: update number as recorded, time, operator, flake revision", () => {
        const flake = { url: "/srv/infra", revision: "e8c93f62e82d4085747a53dae0aa2b64cc04fd14", dirty: true, lastModified: 1, narHash: null };
        const history = [
            // a later rollback to generation 2 does not change who made it
            { generation: 2, storePath: gen2, action: "switch", activatedAt: "2025-02-05T00:00:00.000Z", kind: "rollback" as const, stackUpdate: 40, operator: "bob@desk", flake },
            { generation: 2, storePath: gen2, action: "switch", activatedAt: "2025-01-31T14:02:11.000Z", kind: "deploy" as const, stackUpdate: 31, operator: "alice@laptop", flake },
        ];
        const [row] = rowsOf([{ generation: 2, date: "2025-01-31 14:02:11", current: true, storePath: gen2, running: true, booted: false }], history, updates);
        expect(row).toMatchObject({ stackVersion: 31, deployedAt: "2025-01-31T14:02:11.000Z", operator: "alice@laptop", flake });
        const text = formatReports([{ host: "psi", generations: [row!] }], "prod");
        expect(text).toMatch(/stack update 31 +e8c93f62e82d-dirty +alice@laptop +running, boot/);
    });
});

describe("collectReports", () => {
    it("one master connection per host, one remote command each, hosts in parallel; an unreachable host gets an error entry", async () => {
        let inFlight = 0;
        let maxInFlight = 0;
        const runner = new FakeRunner()
            .on(masterStart, async (call) => {
                inFlight += 1;
                maxInFlight = Math.max(maxInFlight, inFlight);
                await new Promise((resolve) => setTimeout(resolve, 20));
                inFlight -= 1;
                if (destinationOf(call) === "root@tau.lab.example.org") {
                    return { code: 255, stderr: "ssh: connect to host tau.lab.example.org port 22: Connection refused\n" };
                }
                return {};
            })
            .on(remote("sh", "-c"), (call) =>
                destinationOf(call) === "deploy@psi-recorded.lab.example.org"
                    ? { stdout: hostOutput("   1   2025-01-30 09:15:02   \n   2   2025-01-31 14:02:11   (current)", [[1, gen1, "24.05.1"], [2, gen2, "24.05.2"]], gen2) }
                    : { stdout: hostOutput("   1   2025-02-03 12:00:00   (current)", [[1, storePath("nixos-system-rho-1"), ""]], storePath("nixos-system-rho-1")) },
            );
        const reports = await collectReports({
            hosts: [host("psi"), host("rho"), host("tau")],
            recorded: new Map([["psi", recorded("psi")]]),
            updates,
            runner: runner.run,
            runtimeDir: runtimeDir(),
        });
        expect(reports.map((r) => r.host)).toEqual(["psi", "rho", "tau"]);
        expect(reports[0]!.generations.map((g) => [g.generation, g.stackVersion, g.current, g.running])).toEqual([
            [1, 1, false, false],
            [2, 2, true, true],
        ]);
        expect(reports[1]!.generations.map((g) => [g.generation, g.stackVersion])).toEqual([[1, null]]);
        expect(reports[2]!.generations).toEqual([]);
        expect(reports[2]!.error).toBe(
            "host tau: connect failed: root@tau.lab.example.org refused the connection\n" +
                "  | ssh: connect to host tau.lab.example.org port 22: Connection refused\n" +
                "  hint: check that the host is up and sshd listens on that address and port",
        );
        expect(maxInFlight).toBe(3);
        const masters = runner.matching(masterStart).map(destinationOf);
        expect(masters.sort()).toEqual(["deploy@psi-recorded.lab.example.org", "root@rho.lab.example.org", "root@tau.lab.example.org"]);
        expect(runner.matching(remote("sh", "-c"))).toHaveLength(2);
        // Each remote command rides its host's master.
        for (const call of runner.matching(remote("sh", "-c"))) expect(sshOption(call.argv, "ControlMaster")).toBe("no");
        expect(runner.matching(masterExit)).toHaveLength(2);
    });
});

describe("formatReports", () => {
    const row = (overrides: Partial<GenerationRow>): GenerationRow => ({
        generation: 1,
        date: "2025-01-30 09:15:02",
        storePath: gen1,
        nixosVersion: "24.05.1",
        current: false,
        running: false,
        booted: false,
        stackVersion: null,
        deployedAt: null,
        operator: null,
        flake: null,
        ...overrides,
    });

    it("a table per host with flags and the deploying update; errors and empty hosts said plainly", () => {
        const text = formatReports(
            [
                { host: "psi", generations: [row({}), row({ generation: 2, storePath: gen2, nixosVersion: null, current: true, running: true, booted: true, stackVersion: 3 })] },
                { host: "rho", generations: [] },
                { host: "tau", generations: [], error: "host tau: connect failed: root@tau refused the connection\n  hint: check" },
            ],
            "prod",
        );
        const lines = text.split("\n");
        expect(lines[0]).toBe("psi (stack prod):");
        expect(lines[1]).toMatch(/^ {2}GEN +DATE +STORE PATH +NIXOS +DEPLOYED BY +REVISION +OPERATOR +FLAGS$/);
        expect(lines[2]).toMatch(new RegExp(`^ {2}1 +2025-01-30 09:15:02 +${gen1} +24\\.05\\.1 +- +- +-$`));
        expect(lines[3]).toMatch(new RegExp(`^ {2}2 +2025-01-30 09:15:02 +${gen2} +- +stack update 3 +- +- +running, boot, booted$`));
        expect(text).toContain("rho: no system generations");
        expect(text).toContain("tau: could not list generations\n  host tau: connect failed: root@tau refused the connection\n    hint: check");
    });

    it("flags", () => {
        expect(flagsOf(row({ running: true, current: true }))).toBe("running, boot");
        expect(flagsOf(row({ booted: true }))).toBe("booted");
        expect(flagsOf(row({}))).toBe("");
    });
});
