// `npm run generations` end to end: a stack deployed twice with the real pulumi CLI, one generation
// made by hand, one host down; the real command (scripts/cli) must list exactly what each host's
// own `nix-env --list-generations` says, the store paths its links point at, and the stack update
// that deployed each generation.
import type { GenerationRow } from "../../src/cli/generations";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runProcess, type RunResult } from "../../src/process/runner";
import { FleetProject } from "./helpers/fleetProject";

const HOSTS = ["psi", "rho", "tau"];
let project: FleetProject;
/** Stack versions of the two `pulumi up`s, in order. */
const upVersions: number[] = [];

type JsonGeneration = GenerationRow;
interface JsonHost {
    host: string;
    generations: JsonGeneration[];
    error?: string;
}

/** The real command, as an operator runs it: scripts/cli from the project directory. */
async function generations(args: string[]): Promise<RunResult> {
    return runProcess(["bash", "scripts/cli", "generations", ...args], {
        cwd: project.projectDir,
        env: { ...project.env(), PULUMI_CONFIG_PASSPHRASE_FILE: undefined },
        timeoutMs: 120_000,
    });
}

async function latestVersion(): Promise<number> {
    const result = await project.pulumi(["stack", "history", "--json", "--page-size", "100000", "-s", project.stack]);
    expect(result.code, result.stderr).toBe(0);
    const history = JSON.parse(result.stdout) as { version: number; kind: string }[];
    // A file:// backend reports version 0 for every update; the numbering is then 1.. oldest first.
    if (history.some((update) => update.version > 0)) return Math.max(...history.map((update) => update.version));
    return history.length;
}

/** What the host itself says, read independently of the command (as root, no SSH). */
async function onHostGenerations(name: string) {
    const listing = await project.onHost(name, ["nix-env", "-p", "/nix/var/nix/profiles/system", "--list-generations"]);
    const rows = listing.split("\n").filter((line) => line.trim()).map((line) => {
        const words = line.trim().split(/\s+/);
        return { generation: Number(words[0]), date: `${words[1]} ${words[2]}`, current: words[3] === "(current)" };
    });
    const withPaths = [];
    for (const row of rows) {
        const storePath = await project.onHost(name, ["readlink", "-f", `/nix/var/nix/profiles/system-${row.generation}-link`]);
        const nixosVersion = await project.onHost(name, ["cat", `${storePath}/nixos-version`]);
        withPaths.push({ ...row, storePath, nixosVersion });
    }
    const running = await project.onHost(name, ["readlink", "-f", "/run/current-system"]);
    return { generations: withPaths, running };
}

beforeAll(async () => {
    project = await FleetProject.create({ hosts: HOSTS, portBase: 29200 });

    const first = await project.up();
    expect(first.code, first.stdout + first.stderr).toBe(0);
    upVersions.push(await latestVersion());
    await project.sandbox.set("psi", { version: 2 });
    const second = await project.up();
    expect(second.code, second.stdout + second.stderr).toBe(0);
    upVersions.push(await latestVersion());

    // rho gets a generation by hand (not by this stack): nixos-rebuild on the host itself.
    await project.sandbox.set("rho", { version: 3 });
    await project.onHost("rho", ["nixos-rebuild", "switch", "--flake", `${project.sandbox.flakeRef}#rho`]);
}, 600_000);

afterAll(async () => {
    await project?.dispose();
});

describe("npm run generations", () => {
    it("--json lists every host's generations exactly as the host does, with store paths, versions and stack updates", async () => {
        const result = await generations(["--stack", project.stack, "--json"]);
        expect(result.code, result.stdout + result.stderr).toBe(0);
        const hosts = JSON.parse(result.stdout) as JsonHost[];
        expect(hosts.map((h) => h.host)).toEqual(HOSTS);
        for (const entry of hosts) {
            expect(entry.error).toBeUndefined();
            const truth = await onHostGenerations(entry.host);
            expect(entry.generations.map((g) => ({ generation: g.generation, date: g.date, current: g.current, storePath: g.storePath, nixosVersion: g.nixosVersion }))).toEqual(
                truth.generations,
            );
            // Exactly one generation runs: the one whose link is /run/current-system (the profile's here).
            expect(entry.generations.filter((g) => g.running).map((g) => g.storePath)).toEqual([truth.running]);
            expect(entry.generations.find((g) => g.running)!.current).toBe(true);
            // Sandbox hosts have not rebooted since their first start: no /run/booted-system.
            expect(entry.generations.some((g) => g.booted)).toBe(false);
        }

        const [first, second] = upVersions;
        expect(second).toBeGreaterThan(first!);
        const versions = Object.fromEntries(hosts.map((h) => [h.host, h.generations.map((g) => [g.generation, g.stackVersion])]));
        expect(versions).toEqual({
            psi: [[1, first], [2, second]],
            rho: [[1, first], [2, null]], // generation 2 was made by hand
            tau: [[1, first]],
        });
        const states = await project.hostStates();
        const psi = hosts.find((h) => h.host === "psi")!;
        expect(psi.generations[1]!.storePath).toBe(states.psi!.storePath);
        expect(psi.generations[1]!.nixosVersion).toBe("24.05.2-sandbox");
    });

    it("human output: a table per host with the flags; --hosts picks hosts", async () => {
        const result = await generations(["--stack", project.stack, "--hosts", "psi"]);
        expect(result.code, result.stdout + result.stderr).toBe(0);
        const lines = result.stdout.split("\n");
        expect(lines[0]).toBe(`psi (stack ${project.stack}):`);
        expect(lines[1]).toMatch(/GEN +DATE +STORE PATH +NIXOS +DEPLOYED BY +REVISION +OPERATOR +FLAGS/);
        expect(lines[2]).toMatch(new RegExp(`^ +1 .*-nixos-system-psi-24\\.05\\.1-sandbox +24\\.05\\.1-sandbox +stack update ${upVersions[0]} +\\S+ +\\S+@\\S+$`));
        expect(lines[3]).toMatch(new RegExp(`^ +2 .*-nixos-system-psi-24\\.05\\.2-sandbox +24\\.05\\.2-sandbox +stack update ${upVersions[1]} +\\S+ +\\S+@\\S+ +running, boot$`));
        expect(result.stdout).not.toMatch(/^rho|^tau/m);

        const rho = await generations(["--stack", project.stack, "--hosts", "rho"]);
        expect(rho.stdout).toMatch(/^ +2 .*-nixos-system-rho-24\.05\.3-sandbox +24\.05\.3-sandbox +- +- +- +running, boot$/m);
    });

    it("one SSH login per host per run", async () => {
        const before = await Promise.all(HOSTS.map((name) => project.acceptedLogins(name)));
        const result = await generations(["--stack", project.stack, "--json"]);
        expect(result.code, result.stderr).toBe(0);
        const after = await Promise.all(HOSTS.map((name) => project.acceptedLogins(name)));
        expect(HOSTS.map((_, i) => after[i]! - before[i]!)).toEqual([1, 1, 1]);
    });

    it("an unreachable host: its own error entry, exit status 1 naming it, the others still listed", async () => {
        await project.sandbox.stop(["tau"]);
        try {
            const result = await generations(["--stack", project.stack, "--json"]);
            expect(result.code).toBe(1);
            expect(result.stderr).toMatch(/could not list generations of 1 host: tau/);
            const hosts = JSON.parse(result.stdout) as JsonHost[];
            expect(hosts.map((h) => [h.host, h.generations.length, h.error === undefined])).toEqual([
                ["psi", 2, true],
                ["rho", 2, true],
                ["tau", 0, false],
            ]);
            expect(hosts[2]!.error).toMatch(/^host tau: connect failed: root@tau refused the connection\n/);
            expect(hosts[2]!.error).toMatch(/hint: check that the host is up and sshd listens on that address and port/);

            const human = await generations(["--stack", project.stack]);
            expect(human.code).toBe(1);
            expect(human.stdout).toMatch(/^tau: could not list generations\n {2}host tau: connect failed: /m);
            expect(human.stdout).toMatch(/^psi \(stack /m);
        } finally {
            await project.sandbox.start(["tau"]);
        }
    });

    it("usage: --help exits 0 and names the options; an unknown option or host is an error", async () => {
        const help = await generations(["--help"]);
        expect(help.code).toBe(0);
        for (const option of ["--hosts", "--stack", "--json"]) expect(help.stdout).toContain(option);
        const bad = await generations(["--stack", project.stack, "--host", "psi"]);
        expect(bad.code).toBe(2);
        expect(bad.stderr).toMatch(/--host/);
        const unknown = await generations(["--stack", project.stack, "--hosts", "omega"]);
        expect(unknown.code).toBe(1);
        expect(unknown.stderr).toMatch(/omega/);
    });
});
