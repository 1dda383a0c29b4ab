// `npm run generations` end to end: a stack deployed twice with the real pulumi CLI, one generation
// made by hand, one host down; the real command (scripts/cli) must list exactly what each host's
// own `nix-env --list-generations` says, the store paths its links point at, and the stack update
// that deployed each generation. Then, on the same fleet, the history and rollback promises
// (issue 10): more than 10 updates with labels that never change and a 3-host --to-stack-version
// rollback to the first, two rollbacks in a row, a checkout without the pin, a failed host under
// --parallel 1, refresh with a host stopped, state delete + import without activation, a fresh stack.
import type { GenerationRow } from "../../src/cli/generations";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parse, stringify } from "yaml";
import { writePins } from "../../src/cli/pins";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runProcess, type RunResult } from "../../src/process/runner";
import { FleetProject } from "./helpers/fleetProject";

const HOSTS = ["psi", "rho", "tau"];
let project: FleetProject;
/** Stack versions of the two `pulumi up`s, in order. */
const upVersions: number[] = [];
/** The labels the first listing showed (see labelsOf). */
let initialLabels: Labels | undefined;

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
        initialLabels = labelsOf(hosts);
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

// --- history, rollback, pins, refresh and import (issue 10), on the same fleet, in order ---

/** The operator commands through scripts/cli, without a terminal (stdin is not a TTY). */
async function cli(command: string, args: string[]): Promise<RunResult> {
    return runProcess(["bash", "scripts/cli", command, ...args], {
        cwd: project.projectDir,
        env: { ...project.env(), PULUMI_CONFIG_PASSPHRASE_FILE: undefined },
        timeoutMs: 300_000,
    });
}

type Labels = Record<string, [number, string | null, number | null][]>;

/** Per host: [generation, store path, stack update label] as `generations --json` shows them. */
function labelsOf(hosts: JsonHost[]): Labels {
    return Object.fromEntries(hosts.map((h) => [h.host, h.generations.map((g): [number, string | null, number | null] => [g.generation, g.storePath, g.stackVersion])]));
}

async function labels(): Promise<Labels> {
    const result = await generations(["--stack", project.stack, "--json"]);
    expect(result.code, result.stdout + result.stderr).toBe(0);
    return labelsOf(JSON.parse(result.stdout) as JsonHost[]);
}

/** Activations the host's switch-to-configuration ever ran (the sandbox's own log). */
async function activations(name: string): Promise<number> {
    return Number(await project.onHost(name, ["sh", "-c", "cat /nix/var/nix/sandbox/activations.log 2>/dev/null | wc -l"]));
}

const stackFile = () => join(project.projectDir, `Pulumi.${project.stack}.yaml`);
const say = (result: RunResult) => `${result.stdout}\n${result.stderr}`;

describe("history and rollback you can trust (same fleet, in order)", () => {
    /** The system each host ran after the first update: generation 1's. */
    const firstSystems: Record<string, string> = {};

    it("refresh with one host stopped: the others are recorded, the stopped one keeps its state marked unreachable, named in a warning and an error", async () => {
        expect(initialLabels, "the first test lists the generations").toBeDefined();
        for (const name of HOSTS) firstSystems[name] = initialLabels![name]!.find(([generation]) => generation === 1)![1]!;
        const before = await project.hostStates();
        const rhoRuns = await project.hostSystem("rho");
        await project.sandbox.stop(["tau"]);
        try {
            // As the guide runs it: npm run pulumi -- refresh (scripts/pulumi), which exits 1 naming tau.
            const result = await runProcess(["bash", "scripts/pulumi", "refresh", "--yes", "--skip-preview", "--non-interactive", "-s", project.stack], {
                cwd: project.projectDir,
                env: { ...project.env(), PULUMI_CONFIG_PASSPHRASE_FILE: undefined },
                timeoutMs: 300_000,
            });
            const text = say(result);
            expect(result.code, text).toBe(1);
            expect(result.stderr).toMatch(/error: refresh could not reach 1 host: tau; their last recorded state was kept, marked unreachable \(the others were recorded\)\n {2}tau: host tau: connect failed: root@tau refused the connection \(unreachable since \S+\)/);
            expect(text).toMatch(/warning: tau: unreachable, not refreshed \(connect failed: root@tau refused the connection\): its last recorded state is kept \(generation 1, \/nix\/store\/\S+\) and marked unreachable; last seen \S+/);
            // Pulumi's own summary counts it as errored: a refresh with a host down never looks clean.
            expect(text).toMatch(/error: tau: not refreshed: unreachable \(its recorded state is kept\)/);
            expect(text).toMatch(/1 errored/);
            const after = await project.hostStates();
            // rho was read: the generation made by hand is now what the stack records for it.
            expect(after.rho).toMatchObject({ storePath: rhoRuns.current, generation: 2, unreachable: null });
            expect(Date.parse(String(after.psi!.lastSeenAt))).toBeGreaterThan(Date.parse(String(before.psi!.lastSeenAt)));
            // tau: everything it had, plus the mark; last seen stays the last time it was reached.
            const { unreachable, lastSeenAt, ...tau } = after.tau!;
            const { unreachable: _none, lastSeenAt: seenBefore, ...tauBefore } = before.tau!;
            expect(tau).toEqual(tauBefore);
            expect(lastSeenAt).toBe(seenBefore);
            expect(unreachable).toMatchObject({ error: "host tau: connect failed: root@tau refused the connection" });
        } finally {
            await project.sandbox.start(["tau"]);
        }
    });

    it("--parallel 1 with every host failing: the host the engine ran says failed; the hosts the run never reached are 'not attempted' (not 'unchanged') and untouched; exit 1", async () => {
        // Every host fails: the engine takes hosts in whatever order their registrations reach it
        // (they race), so the first one it runs is the one that fails, and with --parallel 1 it
        // never starts the other two.
        const names = ["psi", "rho", "tau"] as const;
        for (const name of names) await project.sandbox.set(name, { version: 4, fail: true });
        const servers = { psi: await project.hostSystem("psi"), rho: await project.hostSystem("rho"), tau: await project.hostSystem("tau") };
        try {
            const result = await cli("deploy", ["--stack", project.stack, "--yes", "--parallel", "1", "--json"]);
            expect(result.code, result.stderr).toBe(1);
            const report = JSON.parse(result.stdout) as { hosts: { host: string; result: string; phase?: string; reason?: string }[]; failed: string[]; notAttempted: string[] };
            expect(report.failed).toHaveLength(1);
            const failed = report.failed[0]!;
            expect(report.hosts.find((row) => row.host === failed)).toMatchObject({ result: "failed", phase: "activate" });
            const others = report.hosts.filter((row) => row.host !== failed);
            expect(others.map((row) => [row.result, row.reason])).toEqual([
                ["not attempted", `another host failed (${failed})`],
                ["not attempted", `another host failed (${failed})`],
            ]);
            expect(report.notAttempted).toEqual(others.map((row) => row.host));
            // The failed host was restored; the others were never touched.
            for (const name of names) expect(await project.hostSystem(name)).toEqual(servers[name]);
        } finally {
            await project.sandbox.set("psi", { version: 3, fail: false });
            await project.sandbox.set("rho", { version: 3, fail: false });
            await project.sandbox.set("tau", { version: 1, fail: false });
        }
    });

    it("rollback twice goes back twice (3 → 2 → 1), and the state remembers the rollback: to what, when, by whom", async () => {
        const deployed = await cli("deploy", ["--hosts", "psi", "--stack", project.stack, "--yes"]);
        expect(deployed.code, say(deployed)).toBe(0);
        expect((await project.hostSystem("psi")).current).toMatch(/nixos-system-psi-24\.05\.3-sandbox$/);
        const first = await cli("rollback", ["--hosts", "psi", "--stack", project.stack, "--yes"]);
        expect(first.code, say(first)).toBe(0);
        expect((await project.hostSystem("psi")).current).toMatch(/nixos-system-psi-24\.05\.2-sandbox$/);
        const second = await cli("rollback", ["--hosts", "psi", "--stack", project.stack, "--yes"]);
        expect(second.code, say(second)).toBe(0);
        expect((await project.hostSystem("psi")).current).toBe(firstSystems.psi);
        const state = (await project.hostStates()).psi!;
        expect(state.rolledBack).toMatchObject({ generation: 1, storePath: firstSystems.psi, by: expect.stringMatching(/^\S+@\S+$/) });
        expect(Date.now() - Date.parse(String((state.rolledBack as { at: string }).at))).toBeLessThan(120_000);
    });

    it("a checkout without the pin: plain preview and deploy's plan say on psi's row that it undoes the rollback; deploy without --yes refuses; with --yes it proceeds", async () => {
        const pinned = readFileSync(stackFile(), "utf8");
        const withoutPins = parse(pinned) as { config: Record<string, unknown>; encryptionsalt?: string };
        delete withoutPins.config["nixos-fleet:pins"];
        writeFileSync(stackFile(), stringify(withoutPins));
        const before = await activations("psi");

        const preview = await project.preview();
        expect(preview.code, say(preview)).toBe(0);
        expect(say(preview)).toMatch(/psi: this update undoes the rollback to generation 1 \(by \S+@\S+ at \S+\): the stack's config has no rollback pin for psi/);
        expect(say(preview)).toMatch(/put the pin back in Pulumi\.e2e\.yaml \(nixos-fleet:pins\.psi, as `npm run rollback` wrote it\) and commit it/);

        // deploy shows the plan (the same rows as deploy --preview), then asks: no terminal, so it refuses.
        const refused = await cli("deploy", ["--hosts", "psi", "--stack", project.stack]);
        expect(refused.code).not.toBe(0);
        expect(refused.stdout).toMatch(/\[psi\] warning: psi: this update undoes the rollback to generation 1/);
        expect(refused.stdout).toMatch(/^psi .*planned: undoes the rollback to generation 1 \(by \S+@\S+ at \S+\)$/m);
        expect(refused.stderr).toMatch(/deploy psi needs confirmation, and there is no terminal to ask on:\n {2}psi: this deploy undoes the rollback to generation 1/);
        expect(refused.stderr).toMatch(/hint: add --yes/);
        expect((await project.hostSystem("psi")).current).toBe(firstSystems.psi);
        expect(await activations("psi")).toBe(before);

        const confirmed = await cli("deploy", ["--hosts", "psi", "--stack", project.stack, "--yes"]);
        expect(confirmed.code, say(confirmed)).toBe(0);
        expect((await project.hostSystem("psi")).current).toMatch(/nixos-system-psi-24\.05\.3-sandbox$/);
        expect((await project.hostStates()).psi!.rolledBack).toBeNull();
        // With --yes there is no plan to show it: the row says it afterwards.
        expect(confirmed.stdout).toMatch(/^psi .*deployed: undid the rollback to generation 1 \(by \S+@\S+ at \S+\)$/m);

        // That deploy went back to the newest generation (nix-env reuses it): not a step of its own,
        // so the next rollback goes to the deployment before it, not "unchanged" on the same one.
        const again = await cli("rollback", ["--hosts", "psi", "--stack", project.stack, "--yes"]);
        expect(again.code, say(again)).toBe(0);
        expect((await project.hostSystem("psi")).current).toMatch(/nixos-system-psi-24\.05\.2-sandbox$/);
    });

    it("more than 10 updates: labels never change, and a 3-host --to-stack-version rollback to the first puts each host on what it ran after it", async () => {
        // Cheap real updates: refreshes (tau's unreachable mark goes once it is read again).
        while ((await latestVersion()) <= 10) {
            const refreshed = await project.refresh();
            expect(refreshed.code, say(refreshed)).toBe(0);
        }
        expect((await project.hostStates()).tau!.unreachable).toBeNull();
        const labelsAfter = await labels();
        for (const name of HOSTS) {
            for (const [generation, storePath, label] of initialLabels![name]!) {
                expect(labelsAfter[name], `${name} generation ${generation}`).toContainEqual([generation, storePath, label]);
            }
        }

        const result = await cli("rollback", ["--hosts", "psi,rho,tau", "--to-stack-version", String(upVersions[0]), "--stack", project.stack, "--yes", "--json"]);
        expect(result.code, result.stderr).toBe(0);
        for (const name of HOSTS) expect((await project.hostSystem(name)).current, name).toBe(firstSystems[name]);
    });

    it("state delete + pulumi import adopts a running host without activating it; a generation this stack never recorded can be rolled back to, confirming its store path", async () => {
        // rho's configuration is made what it runs now (its first system), without its pin.
        writePins(stackFile(), { rho: undefined });
        await project.sandbox.set("rho", { version: 1 });
        const rhoRuns = await project.hostSystem("rho");
        expect(rhoRuns.current).toBe(firstSystems.rho);
        const before = await activations("rho");
        const urn = `urn:pulumi:${project.stack}::nixos-fleet::nixos:index:Host::rho`;
        const deleted = await project.pulumi(["state", "delete", urn, "--yes", "-s", project.stack]);
        expect(deleted.code, say(deleted)).toBe(0);
        expect((await project.hostStates()).rho).toBeUndefined();

        const imported = await project.pulumi(["import", "nixos:index:Host", "rho", "rho", "--yes", "--protect=false", "--generate-code=false", "--non-interactive", "-s", project.stack]);
        expect(imported.code, say(imported)).toBe(0);
        expect(say(imported)).not.toMatch(/toJavaScript/);
        const rho = (await project.hostStates()).rho!;
        expect(rho).toMatchObject({ storePath: rhoRuns.current, generation: rhoRuns.generation, runningStorePath: rhoRuns.current, history: [] });
        expect(rho.adoptedAt).toEqual(expect.any(String));
        expect(await activations("rho")).toBe(before);
        expect(await project.hostSystem("rho")).toEqual(rhoRuns);
        // Its configuration evaluates to what it runs: nothing to do (psi and tau stay pinned).
        expect((await project.previewJson()).steps.filter((step) => step.op !== "same")).toEqual([]);

        // Generation 2 (made by hand) is on rho; the stack never recorded it.
        const handMade = initialLabels!.rho!.find(([generation]) => generation === 2)![1]!;
        const refused = await cli("rollback", ["--hosts", "rho", "--to-generation", "2", "--stack", project.stack]);
        expect(refused.code).not.toBe(0);
        expect(refused.stderr).toContain(`no terminal to ask on:\n  rho: generation 2 (${handMade}) was not deployed by this stack`);
        expect(await project.hostSystem("rho")).toEqual(rhoRuns);
        const rolled = await cli("rollback", ["--hosts", "rho", "--to-generation", "2", "--stack", project.stack, "--yes"]);
        expect(rolled.code, say(rolled)).toBe(0);
        expect(rolled.stdout).toContain(`note: rho: generation 2 (${handMade}) was not deployed by this stack`);
        expect(await project.hostSystem("rho")).toMatchObject({ generation: 2, current: handMade });
    });

    it("a fresh stack without any config: one clear sentence, set nixos-fleet:hosts …", async () => {
        const init = await project.pulumi(["stack", "init", "fresh"]);
        expect(init.code, say(init)).toBe(0);
        const preview = await project.pulumi(["preview", "--non-interactive", "-s", "fresh"]);
        expect(preview.code).not.toBe(0);
        expect(say(preview)).toMatch(/set nixos-fleet:hosts to the hosts this stack deploys/);
        expect(say(preview)).not.toMatch(/Cannot convert undefined or null to object/);
    });
});
