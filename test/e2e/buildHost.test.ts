// A build host end to end, with the real pulumi, Nix and OpenSSH: one sandbox host (bld) builds the
// system of another (tgt). The preview says so; after the deploy tgt runs the system, bld's store
// holds it, and this machine's store does not (nothing was built or stored here). Then, with the
// build host down, the deploy fails in the build phase naming it, and tgt is untouched.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runProcess } from "../../src/process/runner";
import { FleetProject } from "./helpers/fleetProject";

const HOSTS = ["bld", "tgt"];
let project: FleetProject;

/** A version knob no other run has used: tgt's system path is then new to this machine's store. */
const uniqueVersion = (): number => 100_000 + Math.floor(Math.random() * 800_000);

async function inLocalStore(path: string): Promise<boolean> {
    const result = await runProcess(["nix", "--extra-experimental-features", "nix-command flakes", "path-info", path]);
    return result.code === 0;
}

beforeAll(async () => {
    project = await FleetProject.create({ hosts: HOSTS, portBase: 18200 });
    project.writeHost("tgt", { ...project.defaultHostFile("tgt"), buildHost: "bld" });
});

afterAll(async () => {
    await project?.dispose();
});

describe("buildHost", () => {
    it("builds the target's system on the build host; the deployer's store does not gain it", async () => {
        await project.sandbox.set("tgt", { version: uniqueVersion() });
        const want = await project.evaluatedStorePath("tgt");
        expect(await inLocalStore(want)).toBe(false);

        // Without --diff: Pulumi's diff view leaves out the plan (info diagnostics).
        const preview = await project.pulumi(["preview", "--non-interactive", "-s", project.stack]);
        expect(preview.code, preview.stdout + preview.stderr).toBe(0);
        expect(preview.stdout).toMatch(/tgt: plan\n\s+system: \(none recorded\) → \S+\n\s+built on: bld \(buildHost\)\n/);

        const up = await project.up();
        expect(up.code, up.stdout + up.stderr).toBe(0);
        expect(up.stdout).toMatch(/tgt: switch done, generation - → 1, built on bld, copied \d+ paths/);

        expect((await project.hostSystem("tgt")).current).toBe(want);
        await project.onHost("bld", ["nix-store", "--check-validity", want]);
        expect(await inLocalStore(want)).toBe(false);
        const states = await project.hostStates();
        expect(states.tgt?.lastDeploy).toMatchObject({ builtOn: "bld" });
        expect(states.bld?.lastDeploy).toMatchObject({ builtOn: "local" });
        expect(states.tgt?.buildHost).toMatchObject({ name: "bld", address: "bld" });
    });

    it("an unreachable build host fails tgt's build phase naming it; tgt keeps its system", async () => {
        const before = await project.hostSystem("tgt");
        await project.sandbox.set("tgt", { version: uniqueVersion() });
        await project.sandbox.stop(["bld"]);
        const up = await project.up();
        expect(up.code).not.toBe(0);
        const output = up.stdout + up.stderr;
        expect(output).toMatch(/host tgt: build failed: the build host bld \(root@bld\): /);
        expect(output).toMatch(/hint: .*tgt is built on bld \(buildHost\)/);
        expect(await project.hostSystem("tgt")).toEqual(before);
    });
});
