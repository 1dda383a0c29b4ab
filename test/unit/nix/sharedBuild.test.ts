import { describe, expect, it } from "vitest";
import { SharedBuilder } from "../../../src/nix/sharedBuild";
import { FakeRunner, local } from "../helpers/fakeRunner";
import { drvPath, fleetErrorOf } from "../helpers/fixtures";

const psi = drvPath("nixos-system-psi-2");
const rho = drvPath("nixos-system-rho-2");
const tau = drvPath("nixos-system-tau-2");
const builds = (runner: FakeRunner) => runner.matching(local("nix-store", "--realise")).map((call) => call.argv.slice(1));

describe("SharedBuilder", () => {
    it("realises the systems of hosts that ask together in ONE nix-store --realise", async () => {
        const runner = new FakeRunner().on(local("nix-store", "--realise"), {});
        const builder = new SharedBuilder(runner.run, { quietMs: 5 });
        const results = await Promise.all([builder.build(psi, "psi"), builder.build(rho, "rho"), builder.build(tau, "tau")]);
        expect(builds(runner)).toEqual([["--realise", "--keep-going", psi, rho, tau]]);
        expect(results).toEqual([{ hosts: ["psi", "rho", "tau"] }, { hosts: ["psi", "rho", "tau"] }, { hosts: ["psi", "rho", "tau"] }]);
    });

    it("one host alone builds as before (nix-store --realise <drv>)", async () => {
        const runner = new FakeRunner().on(local("nix-store", "--realise"), {});
        const builder = new SharedBuilder(runner.run, { quietMs: 5 });
        expect(await builder.build(psi, "psi")).toEqual({ hosts: ["psi"] });
        expect(builds(runner)).toEqual([["--realise", psi]]);
    });

    it("requests far apart are separate builds", async () => {
        const runner = new FakeRunner().on(local("nix-store", "--realise"), {});
        const builder = new SharedBuilder(runner.run, { quietMs: 5 });
        await builder.build(psi, "psi");
        await builder.build(rho, "rho");
        expect(builds(runner)).toEqual([["--realise", psi], ["--realise", rho]]);
    });

    it("waits at most maxWaitMs for more requests", async () => {
        const runner = new FakeRunner().on(local("nix-store", "--realise"), {});
        const builder = new SharedBuilder(runner.run, { quietMs: 1000, maxWaitMs: 20 });
        const started = Date.now();
        await builder.build(psi, "psi");
        expect(Date.now() - started).toBeLessThan(900);
    });

    it("when the shared build fails, each host builds its own: only the broken system's host fails, with its own error", async () => {
        const runner = new FakeRunner()
            .on(local("nix-store", "--realise"), (call) => (call.argv.includes(rho) ? { code: 1, stderr: `error: builder for '${rho}' failed with exit code 2\n` } : {}));
        const builder = new SharedBuilder(runner.run, { quietMs: 5 });
        const [a, b, c] = [builder.build(psi, "psi"), builder.build(rho, "rho"), builder.build(tau, "tau")];
        expect(await a).toEqual({ hosts: ["psi"] });
        expect(await c).toEqual({ hosts: ["tau"] });
        const error = await fleetErrorOf(b);
        expect(error).toMatchObject({ phase: "build", host: "rho" });
        expect(error.detail).toContain("failed with exit code 2");
        expect(builds(runner)).toEqual([["--realise", "--keep-going", psi, rho, tau], ["--realise", psi], ["--realise", rho], ["--realise", tau]]);
    });
});
