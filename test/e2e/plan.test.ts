// The plan before a deploy, end to end: package changes from the derivation closures in plain
// `pulumi preview` and in `npm run deploy -- --preview` (table and --json); the evaluation cache;
// targeted evaluation (a deploy of one host while another host's evaluation is broken); one build
// for hosts updated together. Real pulumi, Nix and
// OpenSSH against sandbox hosts; one fleet shared by the file, the tests run in order.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { runProcess } from "../../src/process/runner";
import { FleetProject } from "./helpers/fleetProject";

const HOSTS = ["psi", "rho"];
let project: FleetProject;

/** `npm run <command> -- args` in the test project (FleetProject.cli). */
const cli = (command: string, args: string[]) => project.cli(command, args);

interface PlannedRow {
    host: string;
    result: string;
    timings?: Record<string, number>;
    plan?: {
        storePathBefore: string | null;
        storePathAfter: string;
        packages: { known: boolean; changes?: { name: string; old: string[]; new: string[] }[]; reason?: string };
        build: { known: boolean; derivations?: number };
        copy: { known: boolean; reason?: string };
    };
}

beforeAll(async () => {
    project = await FleetProject.create({ hosts: HOSTS, portBase: 14200 });
    await project.sandbox.set("psi", { packages: ["hello@2.12", "curl@8.0"] });
    const first = await project.up();
    if (first.code !== 0) throw new Error(first.stdout + first.stderr);
});

afterAll(async () => {
    await project?.dispose();
});

describe("the plan", () => {
    it("names the packages added, upgraded and removed, in pulumi preview and in deploy --preview (table and --json)", async () => {
        await project.sandbox.set("psi", { packages: ["hello@2.13", "jq@1.7"] });
        const expected = [
            { name: "curl", old: ["8.0"], new: [] },
            { name: "hello", old: ["2.12"], new: ["2.13"] },
            { name: "jq", old: [], new: ["1.7"] },
            { name: "nixos-system-psi", old: ["24.05.1-sandbox"], new: ["24.05.1-sandbox"] },
        ].filter((change) => change.old.join() !== change.new.join());
        const states = await project.hostStates();
        const recorded = String(states.psi!.storePath);
        const configured = await project.evaluatedStorePath("psi");
        const short = (path: string) => `${path.slice(11, 19)}-${path.slice(44)}`;

        // Plain pulumi: the plan is on psi's row (its diagnostics); rho is unchanged and has none.
        // (Without --diff: Pulumi's diff view leaves info diagnostics out.)
        const preview = await project.pulumi(["preview", "--non-interactive", "-s", project.stack]);
        expect(preview.code, preview.stderr).toBe(0);
        const text = preview.stdout;
        expect(text).toContain(`system: ${short(recorded)} → ${short(configured)}`);
        // (How many derivations remain to build depends on what this machine's store already holds: at least the system.)
        expect(text).toMatch(/packages: 1 added, 1 removed, 1 changed; build: \d+ derivations?; copy: unknown \(known once the system is built\)/);
        expect(text).toContain("+ jq 1.7");
        expect(text).toContain("- curl 8.0");
        expect(text).toContain("~ hello 2.12 → 2.13");
        expect(text).not.toMatch(/rho: plan/);
        // psi's row names what the deploy changes: a preview's program reads no provenance, and the
        // recorded one stands in for the one the update writes (not "-provenance", as if dropped).
        expect(text).toMatch(/nixos:index:Host +psi +update +\[diff: ~[^\]]*storePath[^\]]*\]/);
        expect(text).not.toContain("provenance");

        // deploy --preview --json: the same plan, as data.
        const json = await cli("deploy", ["--stack", project.stack, "--preview", "--json"]);
        expect(json.code, json.stderr).toBe(0);
        const rows = (JSON.parse(json.stdout) as { hosts: PlannedRow[] }).hosts;
        expect(rows.map((row) => [row.host, row.result])).toEqual([["psi", "planned"], ["rho", "no change planned"]]);
        const plan = rows[0]!.plan!;
        expect(plan.storePathBefore).toBe(recorded);
        expect(plan.storePathAfter).toBe(configured);
        expect(plan.packages).toEqual({ known: true, changes: expected });
        expect(plan.build).toMatchObject({ known: true });
        expect(plan.build.derivations).toBeGreaterThanOrEqual(1);
        expect(rows[1]!.plan).toBeUndefined();
        // The provider's own plan lines are not repeated above the table.
        expect(json.stderr).not.toMatch(/\[psi\] plan/);

        // deploy --preview: the table shows both systems with their hashes, the plan under it.
        const table = await cli("deploy", ["--stack", project.stack, "--preview", "--hosts", "psi"]);
        expect(table.code, table.stderr).toBe(0);
        expect(table.stdout).toContain(`${short(recorded)} → ${short(configured)}`);
        expect(table.stdout).toMatch(/psi:\n  system: .*\n  packages: 1 added, 1 removed, 1 changed; build: \d+ derivations?;.*\n    - curl 8\.0\n    ~ hello 2\.12 → 2\.13\n    \+ jq 1\.7\n/);
    });

    it("an unchanged flake is not evaluated again; editing one file of it is evaluated again, with the edit's result", async () => {
        const plain = () => project.pulumi(["preview", "--non-interactive", "-s", project.stack]);
        const unchanged = await plain();
        expect(unchanged.code, unchanged.stderr).toBe(0);
        expect(unchanged.stdout).toMatch(/evaluate: 2 host\(s\) in [\d.]+s \(1 unchanged flake from the evaluation cache\)/);

        // One file of the flake: rho's knob file.
        await project.sandbox.set("rho", { version: 2 });
        const edited = await project.previewJson();
        expect(edited.diagnostics?.map((d) => d.message).join("\n")).toMatch(/evaluate: 2 host\(s\) in [\d.]+s \(1 nix eval, one per flake\)/);
        const rho = edited.steps.find((step) => step.urn.endsWith("::rho"))!;
        expect(rho.op).toBe("update");
        expect(rho.newState?.inputs?.storePath).toBe(await project.evaluatedStorePath("rho"));

        const again = await plain();
        expect(again.stdout).toMatch(/\(1 unchanged flake from the evaluation cache\)/);
    });

    it("the program sends the engine none of the SDK's per-resource progress messages, unless pulumi runs with --debug", async () => {
        const events = join(project.dir, "preview-events.jsonl");
        const preview = (extra: string[]) =>
            runProcess(["pulumi", "preview", "--non-interactive", "-s", project.stack, ...extra], {
                cwd: project.projectDir,
                env: { ...project.env(), PULUMI_CONFIG_PASSPHRASE_FILE: undefined, PULUMI_DEBUG_COMMANDS: "true" },
                timeoutMs: 300_000,
            });
        const quiet = await preview([`--event-log=${events}`]);
        expect(quiet.code, quiet.stderr).toBe(0);
        const debugMessages = readFileSync(events, "utf8")
            .split("\n")
            .filter((line) => line.includes('"severity":"debug"'))
            .map((line) => (JSON.parse(line) as { diagnosticEvent: { message: string } }).diagnosticEvent.message);
        // The Stack's own registration comes before the program runs; no Host's is reported.
        expect(debugMessages.filter((message) => /nixos:index:Host/.test(message))).toEqual([]);
        expect(quiet.stdout).toMatch(/evaluate: 2 host\(s\)/);

        const debug = await preview(["--debug"]);
        expect(debug.code, debug.stderr).toBe(0);
        expect(debug.stdout + debug.stderr).toMatch(/Registering resource: t=nixos:index:Host, name=psi/);
    });

    it("deploy --hosts and pulumi --target evaluate only their hosts: another host's broken evaluation blocks nothing, its state stays", async () => {
        // Break rho's evaluation (a string where its configuration compares a number).
        const knobFile = project.sandbox.layout.knobFile("rho");
        writeFileSync(knobFile, JSON.stringify({ ...JSON.parse(readFileSync(knobFile, "utf8")), size: "broken" }));
        await expect(project.evaluatedStorePath("rho")).rejects.toThrow(/cannot compare a string with an integer|comparison|string/);
        const before = await project.hostStates();

        // Untargeted, the program evaluates every host: rho's row says its evaluation failed, psi was not attempted.
        const all = await cli("deploy", ["--stack", project.stack, "--preview", "--json"]);
        expect(all.code, all.stderr).toBe(1);
        const report = JSON.parse(all.stdout) as { hosts: (PlannedRow & { phase?: string })[]; failed: string[]; notAttempted: string[] };
        expect(report.hosts.find((row) => row.host === "rho")).toMatchObject({ result: "failed", phase: "evaluate" });
        expect([report.failed, report.notAttempted]).toEqual([["rho"], ["psi"]]);

        const deploy = await cli("deploy", ["--stack", project.stack, "--hosts", "psi", "--yes", "--json"]);
        expect(deploy.code, deploy.stderr).toBe(0);
        expect((JSON.parse(deploy.stdout) as { hosts: PlannedRow[] }).hosts.map((row) => [row.host, row.result])).toEqual([["psi", "deployed"]]);
        expect(deploy.stderr).toMatch(/evaluate: 1 host\(s\) in [\d.]+s \(.*not targeted, not evaluated: rho\)/);
        const after = await project.hostStates();
        expect(after.rho).toEqual(before.rho);
        expect(after.psi!.storePath).toBe(await project.evaluatedStorePath("psi"));

        // Plain pulumi with --target: the same (the program reads the targets from the pulumi command line).
        const targeted = await project.pulumi(["preview", "--non-interactive", "-s", project.stack, "--target", `urn:pulumi:${project.stack}::nixos-fleet::nixos:index:Host::psi`]);
        expect(targeted.code, targeted.stdout + targeted.stderr).toBe(0);
        expect(targeted.stdout).toMatch(/not targeted, not evaluated: rho/);
    });

    it("hosts updated together build their systems in one nix-store --realise, and finish together", async () => {
        const knobFile = project.sandbox.layout.knobFile("rho");
        writeFileSync(knobFile, JSON.stringify({ ...JSON.parse(readFileSync(knobFile, "utf8")), size: 0 }));
        await project.sandbox.set("psi", { version: 2 });
        await project.sandbox.set("rho", { version: 3 });
        const deploy = await cli("deploy", ["--stack", project.stack, "--yes", "--json"]);
        expect(deploy.code, deploy.stderr).toBe(0);
        const rows = (JSON.parse(deploy.stdout) as { hosts: PlannedRow[] }).hosts;
        expect(rows.map((row) => [row.host, row.result])).toEqual([["psi", "deployed"], ["rho", "deployed"]]);
        expect(deploy.stderr).toMatch(/\[(psi|rho)\] built in one nix-store --realise of 2 systems/);
        // Neither waited on the other's build lock: their builds took the same time.
        expect(Math.abs(rows[0]!.timings!.build! - rows[1]!.timings!.build!)).toBeLessThan(1000);
    });
});
