import { describe, expect, it } from "vitest";
import { formatPlan, planHost, planSummary } from "../../../src/deploy/plan";
import { FakeRunner, local } from "../helpers/fakeRunner";
import { drvPath, storePath } from "../helpers/fixtures";

const oldDrv = drvPath("nixos-system-psi-24.05.1");
const newDrv = drvPath("nixos-system-psi-24.05.2");
const oldOut = storePath("nixos-system-psi-24.05.1");
const newOut = storePath("nixos-system-psi-24.05.2");

function store(options: { oldDrvKnown?: boolean; newBuilt?: boolean } = {}): FakeRunner {
    const runner = new FakeRunner();
    runner.on(local("--requisites", oldDrv), options.oldDrvKnown === false ? { code: 1, stderr: "error: path is not valid" } : { stdout: [drvPath("hello-2.12"), drvPath("curl-8.0"), oldDrv].join("\n") });
    runner.on(local("--requisites", newDrv), { stdout: [drvPath("hello-2.13"), drvPath("jq-1.7"), newDrv].join("\n") });
    runner.on(local("--dry-run", newDrv), { stderr: options.newBuilt ? "" : `these 3 derivations will be built:\n  ${drvPath("hello-2.13")}\n  ${drvPath("jq-1.7")}\n  ${newDrv}\n` });
    runner.on(local("--recursive", newOut), options.newBuilt ? { stdout: JSON.stringify([{ path: newOut, narSize: 2048 }, { path: storePath("hello-2.13"), narSize: 1024 }, { path: storePath("bash-5.2"), narSize: 4096 }]) } : { code: 1, stderr: "error: path is not valid" });
    runner.on(local("--recursive", oldOut), { stdout: JSON.stringify([{ path: oldOut, narSize: 2048 }, { path: storePath("bash-5.2"), narSize: 4096 }]) });
    return runner;
}

describe("planHost", () => {
    it("compares the recorded derivation closure with the new one, before anything is built", async () => {
        const plan = await planHost(store().run, { old: { storePath: oldOut, drvPath: oldDrv }, new: { storePath: newOut, drvPath: newDrv }, buildOn: "local" });
        expect(plan.packages).toEqual({
            known: true,
            changes: [
                { name: "curl", old: ["8.0"], new: [] },
                { name: "hello", old: ["2.12"], new: ["2.13"] },
                { name: "jq", old: [], new: ["1.7"] },
                { name: "nixos-system-psi", old: ["24.05.1"], new: ["24.05.2"] },
            ],
        });
        expect(plan.build).toEqual({ known: true, derivations: 3 });
        expect(plan.copy).toEqual({ known: false, reason: "known once the system is built" });
        const text = formatPlan(plan).join("\n");
        expect(text).toContain(`system: ${oldOut.slice(11, 19)}-nixos-system-psi-24.05.1 → ${newOut.slice(11, 19)}-nixos-system-psi-24.05.2`);
        expect(text).toContain("packages: 1 added, 1 removed, 2 changed; build: 3 derivations; copy: unknown (known once the system is built)");
        expect(text).toContain("  + jq 1.7");
        expect(text).toContain("  - curl 8.0");
        expect(text).toContain("  ~ hello 2.12 → 2.13");
    });

    it("once built, counts the new closure's paths the recorded system does not hold", async () => {
        const plan = await planHost(store({ newBuilt: true }).run, { old: { storePath: oldOut, drvPath: oldDrv }, new: { storePath: newOut, drvPath: newDrv }, buildOn: "local" });
        expect(plan.build).toEqual({ known: true, derivations: 0 });
        expect(plan.copy).toEqual({ known: true, paths: 2, bytes: 3072 });
        expect(planSummary(plan)).toContain("copy: at most 2 paths (3.0 KiB)");
    });

    it("says unknown, and why, when the old side is not known", async () => {
        const never = await planHost(store().run, { new: { storePath: newOut, drvPath: newDrv }, buildOn: "local" });
        expect(never.packages).toEqual({ known: false, reason: "no recorded deployment to compare with" });
        expect(planSummary(never)).toContain("packages: unknown (no recorded deployment to compare with)");
        expect(formatPlan(never)[0]).toContain("(none recorded) →");

        const noDrv = await planHost(store().run, { old: { storePath: oldOut }, new: { storePath: newOut, drvPath: newDrv }, buildOn: "local" });
        expect(noDrv.packages.known).toBe(false);

        const collected = await planHost(store({ oldDrvKnown: false }).run, { old: { storePath: oldOut, drvPath: oldDrv }, new: { storePath: newOut, drvPath: newDrv }, buildOn: "local" });
        expect(collected.packages).toMatchObject({ known: false, reason: expect.stringContaining("is not in this machine's Nix store") });
    });

    it("a package query Nix could not answer (killed, timed out, no daemon) says so: not that the derivation is missing, and the rest of the plan stands", async () => {
        const answers = [
            [{ code: null, signal: "SIGKILL" as const }, /nix-store --query --requisites \S+nixos-system-psi-24\.05\.1\.drv was killed \(SIGKILL\)/],
            [{ code: null, signal: "SIGKILL" as const, timedOut: true }, /nix-store --query --requisites \S+ timed out/],
            [{ code: 1, stderr: "error: cannot connect to socket at '/nix/var/nix/daemon-socket/socket': Connection refused\n" }, /exited with 1: error: cannot connect to socket/],
        ] as const;
        for (const [reply, reason] of answers) {
            const runner = store().once(local("--requisites", oldDrv), reply);
            const plan = await planHost(runner.run, { old: { storePath: oldOut, drvPath: oldDrv }, new: { storePath: newOut, drvPath: newDrv }, buildOn: "local" });
            expect(plan.packages).toMatchObject({ known: false, reason: expect.stringMatching(reason) });
            expect(plan.packages).not.toMatchObject({ reason: expect.stringContaining("not in this machine's Nix store") });
            expect(plan.build).toEqual({ known: true, derivations: 3 });
        }
    });

    it("a host that builds its own system has no local build or copy count", async () => {
        const plan = await planHost(store().run, { old: { storePath: oldOut, drvPath: oldDrv }, new: { storePath: newOut, drvPath: newDrv }, buildOn: "target" });
        expect(plan.build).toEqual({ known: false, reason: "built on the host" });
        expect(plan.copy).toEqual({ known: false, reason: "built on the host" });
        expect(plan.packages.known).toBe(true);
    });
});
