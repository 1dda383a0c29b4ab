import { describe, expect, it } from "vitest";
import { planFleet } from "../../../src/program/fleet";
import { describeRevision, flakeRevisionOf, operatorOf, readProvenance, readStackHistoryOnce, type ProvenanceResult } from "../../../src/program/provenance";
import { DIFF_KEYS } from "../../../src/provider/hostInputs";
import { changedKeys } from "../../../src/provider/hostProvider";
import { FakeRunner, local } from "../helpers/fakeRunner";
import { FakeHistory } from "../helpers/fakeHistory";
import { tempDir } from "../helpers/fixtures";

// What Debian's Nix 2.8 prints (`nix flake metadata --json`), trimmed.
const NIX_2_8_CLEAN_GIT = {
    lastModified: 1795967240,
    locked: { lastModified: 1795967240, narHash: "sha256-bZsJ", ref: "master", rev: "e8c93f62e82d4085747a53dae0aa2b64cc04fd14", revCount: 1, type: "git", url: "file:///srv/infra" },
    revision: "e8c93f62e82d4085747a53dae0aa2b64cc04fd14",
    url: "git+file:///srv/infra?ref=master&rev=e8c93f62e82d4085747a53dae0aa2b64cc04fd14",
};
const NIX_2_8_DIRTY_GIT = {
    lastModified: 1795967240,
    locked: { lastModified: 1795967240, narHash: "sha256-W7oe", type: "git", url: "file:///srv/infra" },
    url: "git+file:///srv/infra",
};
const NIX_2_8_PATH = {
    lastModified: 1795967240,
    locked: { lastModified: 1795967240, narHash: "sha256-W7oe", path: "/srv/infra", type: "path" },
    url: "path:/srv/infra?lastModified=1795967240&narHash=sha256-W7oe",
};
// Nix 2.16 and later name the commit of a dirty tree.
const NEWER_DIRTY_GIT = {
    lastModified: 1795967240,
    dirtyRevision: "e8c93f62e82d4085747a53dae0aa2b64cc04fd14-dirty",
    locked: { dirtyRev: "e8c93f62e82d4085747a53dae0aa2b64cc04fd14-dirty", narHash: "sha256-W7oe", type: "git", url: "file:///srv/infra" },
};

describe("flakeRevisionOf", () => {
    it("a clean git flake: its commit, not dirty", () => {
        expect(flakeRevisionOf("/srv/infra", NIX_2_8_CLEAN_GIT)).toEqual({
            url: "/srv/infra",
            revision: "e8c93f62e82d4085747a53dae0aa2b64cc04fd14",
            dirty: false,
            lastModified: 1795967240,
            narHash: "sha256-bZsJ",
        });
    });

    it("a dirty git flake on Nix 2.8: dirty, commit unknown (2.8 prints no dirtyRevision)", () => {
        expect(flakeRevisionOf("/srv/infra", NIX_2_8_DIRTY_GIT)).toMatchObject({ revision: null, dirty: true, narHash: "sha256-W7oe" });
    });

    it("a dirty git flake on newer Nix: the commit it is based on, dirty", () => {
        expect(flakeRevisionOf("/srv/infra", NEWER_DIRTY_GIT)).toMatchObject({ revision: "e8c93f62e82d4085747a53dae0aa2b64cc04fd14", dirty: true });
    });

    it("a path: flake has no revision: lastModified and narHash identify it, dirty is unknown", () => {
        expect(flakeRevisionOf("path:/srv/infra", NIX_2_8_PATH)).toEqual({
            url: "path:/srv/infra",
            revision: null,
            dirty: null,
            lastModified: 1795967240,
            narHash: "sha256-W7oe",
        });
    });

    it("describes revisions for tables", () => {
        expect(describeRevision(flakeRevisionOf("x", NIX_2_8_CLEAN_GIT))).toBe("e8c93f62e82d");
        expect(describeRevision(flakeRevisionOf("x", NEWER_DIRTY_GIT))).toBe("e8c93f62e82d-dirty");
        expect(describeRevision(flakeRevisionOf("x", NIX_2_8_DIRTY_GIT))).toBe("dirty");
        expect(describeRevision(flakeRevisionOf("x", NIX_2_8_PATH))).toBe("W7oe");
        expect(describeRevision(null)).toBe("-");
    });
});

describe("operatorOf", () => {
    it("user@machine, or NIXOS_FLEET_OPERATOR", () => {
        expect(operatorOf({}, () => ({ user: "alice", host: "laptop" }))).toBe("alice@laptop");
        expect(operatorOf({ NIXOS_FLEET_OPERATOR: "ci (pipeline 42)" }, () => ({ user: "x", host: "y" }))).toBe("ci (pipeline 42)");
    });
});

function historyRunner(fake: FakeHistory, runner = new FakeRunner()): FakeRunner {
    return runner.on(local("pulumi", "stack", "history"), async (call) => {
        const size = Number(call.argv[call.argv.indexOf("--page-size") + 1]);
        const page = Number(call.argv[call.argv.indexOf("--page") + 1]);
        return { stdout: JSON.stringify(await fake.history(size, page)) };
    });
}

describe("readProvenance (what the program computes, for pulumi up by hand too)", () => {
    it("reads each flake once and the whole stack history: this update is one past the newest", async () => {
        const runner = historyRunner(new FakeHistory({ versions: false }).add(25)).on(local("flake", "metadata"), {
            stdout: JSON.stringify(NIX_2_8_CLEAN_GIT),
        });
        const result = await readProvenance(["/srv/infra", "/srv/infra"], { runner: runner.run, projectRoot: "/srv/fleet", stackName: "prod", env: { NIXOS_FLEET_OPERATOR: "alice@laptop" } });
        expect(result.stackUpdate).toBe(26);
        expect(result.operator).toBe("alice@laptop");
        expect(result.flakes.get("/srv/infra")).toMatchObject({ revision: NIX_2_8_CLEAN_GIT.revision, dirty: false });
        expect(result.warnings).toEqual([]);
        expect(runner.matching(local("flake", "metadata"))).toHaveLength(1);
        const history = runner.matching(local("pulumi", "stack", "history"));
        expect(history.map((call) => call.argv.slice(3))).toEqual([
            ["--stack", "prod", "--json", "--page-size", "100", "--page", "1"],
        ]);
        expect(history[0]!.options.cwd).toBe("/srv/fleet");
    });

    it("a dirty local git flake on Nix 2.8: the commit it is based on comes from git", async () => {
        const runner = historyRunner(new FakeHistory({ versions: false }))
            .on(local("flake", "metadata"), { stdout: JSON.stringify(NIX_2_8_DIRTY_GIT) })
            .on(local("git", "-C", "/srv/infra", "rev-parse"), { stdout: "e8c93f62e82d4085747a53dae0aa2b64cc04fd14\n" });
        const result = await readProvenance(["/srv/infra"], { runner: runner.run, projectRoot: "/srv/fleet", stackName: "prod", env: {} });
        expect(result.flakes.get("/srv/infra")).toMatchObject({ revision: "e8c93f62e82d4085747a53dae0aa2b64cc04fd14", dirty: true });
        expect(result.stackUpdate).toBe(1);
    });

    it("takes the metadata the evaluation read (one `nix flake metadata` per flake and run); runs its own only to say why that could not be read", async () => {
        const runner = historyRunner(new FakeHistory({ versions: false }).add(3)).on(local("flake", "metadata"), { code: 1, stderr: "error: cannot read the flake\n" });
        const asked: string[] = [];
        const shared = async (flake: string) => {
            asked.push(flake);
            return flake === "/srv/infra" ? NIX_2_8_CLEAN_GIT : undefined;
        };
        const result = await readProvenance(["/srv/infra", "/srv/broken"], { runner: runner.run, projectRoot: "/srv/fleet", stackName: "prod", env: {}, metadata: shared });
        expect(asked.sort()).toEqual(["/srv/broken", "/srv/infra"]);
        expect(result.flakes.get("/srv/infra")).toMatchObject({ revision: NIX_2_8_CLEAN_GIT.revision, dirty: false });
        expect(result.flakes.get("/srv/broken")).toBeNull();
        // Only the unreadable one is run again, for its error.
        expect(runner.matching(local("flake", "metadata")).map((call) => call.argv[call.argv.length - 1])).toEqual(["/srv/broken"]);
        expect(result.warnings.join("\n")).toMatch(/revision of the flake \/srv\/broken.*cannot read the flake/s);
    });

    it("what cannot be read is null in the record and a warning, never a failed deploy", async () => {
        const runner = new FakeRunner()
            .on(local("pulumi", "stack", "history"), { code: 255, stderr: "error: no stack named 'prod' found\n" })
            .on(local("flake", "metadata"), { code: 1, stderr: "error: getting status of '/srv/infra': No such file\n" });
        const result = await readProvenance(["/srv/infra"], { runner: runner.run, projectRoot: "/srv/fleet", stackName: "prod", env: {} });
        expect(result.stackUpdate).toBeNull();
        expect(result.flakes.get("/srv/infra")).toBeNull();
        expect(result.warnings.join("\n")).toMatch(/update history.*no stack named 'prod' found/s);
        expect(result.warnings.join("\n")).toMatch(/revision of the flake \/srv\/infra/);
    });
});

describe("readStackHistoryOnce (index.ts starts the read first thing; Fleet.create takes it)", () => {
    it("reads a stack's history once per runner, project and stack, and again for another stack or runner", async () => {
        const runner = historyRunner(new FakeHistory({ versions: false }).add(3));
        const first = readStackHistoryOnce({ runner: runner.run, projectRoot: "/srv/fleet", stackName: "prod" });
        expect(readStackHistoryOnce({ runner: runner.run, projectRoot: "/srv/fleet", stackName: "prod" })).toBe(first);
        expect(await first).toHaveLength(3);
        await readStackHistoryOnce({ runner: runner.run, projectRoot: "/srv/fleet", stackName: "staging" });
        await readStackHistoryOnce({ runner: runner.run, projectRoot: "/srv/other", stackName: "prod" });
        const other = historyRunner(new FakeHistory({ versions: false }).add(1));
        expect(await readStackHistoryOnce({ runner: other.run, projectRoot: "/srv/fleet", stackName: "prod" })).toHaveLength(1);
        const stacks = runner.matching(local("pulumi", "stack", "history")).map((call) => `${String(call.options.cwd)} ${call.argv[call.argv.indexOf("--stack") + 1]}`);
        expect(stacks).toEqual(["/srv/fleet prod", "/srv/fleet staging", "/srv/other prod"]);
    });

    it("a failed read is no unhandled rejection while nobody asks, and the asker still gets its error", async () => {
        const runner = new FakeRunner().on(local("pulumi", "stack", "history"), { code: 255, stderr: "error: no stack named 'prod' found\n" });
        const unhandled: unknown[] = [];
        const onUnhandled = (reason: unknown) => unhandled.push(reason);
        process.on("unhandledRejection", onUnhandled);
        try {
            readStackHistoryOnce({ runner: runner.run, projectRoot: "/srv/fleet", stackName: "prod" });
            await new Promise((resolve) => setTimeout(resolve, 20));
            expect(unhandled).toEqual([]);
            await expect(readStackHistoryOnce({ runner: runner.run, projectRoot: "/srv/fleet", stackName: "prod" })).rejects.toThrow(/no stack named 'prod'/);
        } finally {
            process.off("unhandledRejection", onUnhandled);
        }
    });
});

describe("provenance in the Host inputs", () => {
    it("is not diffed: a new revision or update number alone deploys nothing", () => {
        expect(DIFF_KEYS).not.toContain("provenance");
        const a = { storePath: "/nix/store/x", provenance: { stackUpdate: 3, operator: "a@b", flake: null } };
        const b = { storePath: "/nix/store/x", provenance: { stackUpdate: 4, operator: "c@d", flake: null } };
        expect(changedKeys(a, b)).toEqual([]);
    });

    it("planFleet gives every host its flake's revision, the operator and the update number", async () => {
        const { mkdirSync, writeFileSync } = await import("node:fs");
        const { join } = await import("node:path");
        const root = tempDir("nf-plan-");
        mkdirSync(join(root, "hosts"));
        writeFileSync(join(root, "hosts/psi.yaml"), "address: psi.lab\nflake: /srv/infra\n");
        const out = "/nix/store/0000000000000000000000000000000a-nixos-system-psi";
        const runner = new FakeRunner().on(local("eval", "--json"), { stdout: JSON.stringify({ psi: { out, drv: `${out}.drv` } }) });
        const provenance: ProvenanceResult = {
            flakes: new Map([["/srv/infra", { url: "/srv/infra", revision: "abc", dirty: false, lastModified: 1, narHash: null }]]),
            stackUpdate: 12,
            operator: "alice@laptop",
            warnings: ["w"],
        };
        const plan = await planFleet({
            config: { get: (key) => (key === "hosts" ? '["psi"]' : undefined) },
            projectRoot: root,
            stackName: "prod",
            runner: runner.run,
            provenance: async (flakes) => {
                expect(flakes).toEqual(["/srv/infra"]);
                return provenance;
            },
        });
        expect(plan.hosts[0]!.inputs.provenance).toEqual({ stackUpdate: 12, operator: "alice@laptop", flake: provenance.flakes.get("/srv/infra") });
        expect(plan.warnings).toEqual(["w"]);
    });
});
