import { describe, expect, it } from "vitest";
import { SharedBuilder } from "../../../src/nix/sharedBuild";
import { FakeRunner, local } from "../helpers/fakeRunner";
import { drvPath, fleetErrorOf } from "../helpers/fixtures";

const psi = drvPath("nixos-system-psi-2");
const rho = drvPath("nixos-system-rho-2");
const tau = drvPath("nixos-system-tau-2");
const builds = (runner: FakeRunner) => runner.matching(local("nix-store", "--realise")).map((call) => call.argv.slice(1));
const GROUP = ["psi", "rho", "tau"];

describe("SharedBuilder", () => {
    it("the first host to build realises every changed system of the run in ONE nix-store --realise; the others wait for it", async () => {
        const runner = new FakeRunner().on(local("nix-store", "--realise"), {});
        const builder = new SharedBuilder(runner.run);
        builder.note("psi", psi);
        builder.note("rho", rho);
        builder.note("tau", tau);
        const first = await builder.build(rho, "rho", GROUP);
        // Hosts whose update starts later find their system built.
        const later = await Promise.all([builder.build(psi, "psi", GROUP), builder.build(tau, "tau", GROUP)]);
        expect(builds(runner)).toEqual([["--realise", "--keep-going", rho, psi, tau]]);
        expect([first, ...later]).toEqual([{ systems: 3 }, { systems: 3 }, { systems: 3 }]);
    });

    it("a build waits until the engine has diffed the rest of its group (the engine diffs one host after another)", async () => {
        const runner = new FakeRunner().on(local("nix-store", "--realise"), {});
        const builder = new SharedBuilder(runner.run);
        builder.note("psi", psi);
        const first = builder.build(psi, "psi", GROUP);
        await new Promise((resolve) => setTimeout(resolve, 5));
        expect(builds(runner)).toEqual([]);
        builder.note("rho", rho);
        builder.note("tau"); // unchanged: nothing to build
        expect(await first).toEqual({ systems: 2 });
        expect(await builder.build(rho, "rho", GROUP)).toEqual({ systems: 2 });
        expect(builds(runner)).toEqual([["--realise", "--keep-going", psi, rho]]);
    });

    it("says when the build starts (started), and when the engine has diffed the whole group (settled): the work that waits for them", async () => {
        const runner = new FakeRunner().on(local("nix-store", "--realise"), {});
        const builder = new SharedBuilder(runner.run);
        const events: string[] = [];
        builder.note("psi", psi);
        void builder.settled(GROUP).then(() => events.push("settled"));
        const first = builder.build(psi, "psi", GROUP, () => events.push("started psi"));
        await new Promise((resolve) => setTimeout(resolve, 5));
        expect(events).toEqual([]);
        builder.note("rho", rho);
        builder.note("tau");
        await first;
        expect(events).toEqual(["settled", "started psi"]);
        await builder.build(rho, "rho", GROUP, () => events.push("started rho"));
        expect(events).toEqual(["settled", "started psi", "started rho"]);
        // Once settled, it stays so.
        let again = false;
        await builder.settled(GROUP).then(() => (again = true));
        expect(again).toBe(true);
    });

    it("waits at most maxWaitMs for a group member the engine never diffs", async () => {
        const runner = new FakeRunner().on(local("nix-store", "--realise"), {});
        const builder = new SharedBuilder(runner.run, { maxWaitMs: 20 });
        builder.note("psi", psi);
        expect(await builder.build(psi, "psi", GROUP)).toEqual({ systems: 1 });
        expect(builds(runner)).toEqual([["--realise", psi]]);
    });

    it("a host deployed alone builds as before (nix-store --realise <drv>), without waiting", async () => {
        const runner = new FakeRunner().on(local("nix-store", "--realise"), {});
        const builder = new SharedBuilder(runner.run, { maxWaitMs: 60_000 });
        builder.note("psi", psi);
        expect(await builder.build(psi, "psi")).toEqual({ systems: 1 });
        expect(await builder.build(rho, "rho", ["rho"])).toEqual({ systems: 1 });
        expect(builds(runner)).toEqual([["--realise", psi], ["--realise", rho]]);
    });

    it("when the shared build fails, each host builds its own: only the broken system's host fails, with its own error", async () => {
        const runner = new FakeRunner().on(local("nix-store", "--realise"), (call) =>
            call.argv.includes(rho) ? { code: 1, stderr: `error: builder for '${rho}' failed with exit code 2\n` } : {},
        );
        const builder = new SharedBuilder(runner.run);
        builder.note("psi", psi);
        builder.note("rho", rho);
        builder.note("tau", tau);
        const [a, b, c] = [builder.build(psi, "psi", GROUP), builder.build(rho, "rho", GROUP), builder.build(tau, "tau", GROUP)];
        expect(await a).toEqual({ systems: 1 });
        expect(await c).toEqual({ systems: 1 });
        const error = await fleetErrorOf(b);
        expect(error).toMatchObject({ phase: "build", host: "rho" });
        expect(error.detail).toContain("failed with exit code 2");
        expect(builds(runner)).toEqual([["--realise", "--keep-going", psi, rho, tau], ["--realise", psi], ["--realise", rho], ["--realise", tau]]);
    });
});

describe("SharedBuilder: a host that no longer needs its system (its handshake failed for good)", { timeout: 1000 }, () => {
    /** A build that runs until it is stopped, and says so. */
    const untilStopped = (call: { options: { signal?: AbortSignal } }) =>
        new Promise<{ code: null; signal: NodeJS.Signals }>((resolve) => call.options.signal?.addEventListener("abort", () => resolve({ code: null, signal: "SIGTERM" })));

    it("stops the host's own build (SIGTERM, so Nix stops its builders and releases its locks)", async () => {
        const runner = new FakeRunner().on(local("nix-store", "--realise"), untilStopped);
        const builder = new SharedBuilder(runner.run);
        builder.note("psi", psi);
        const unwanted = new AbortController();
        const build = builder.build(psi, "psi", ["psi"], undefined, unwanted.signal);
        await new Promise((resolve) => setTimeout(resolve, 5));
        unwanted.abort();
        expect(await fleetErrorOf(build)).toMatchObject({ phase: "build", host: "psi" });
        const [call] = runner.matching(local("nix-store", "--realise"));
        expect(call?.options.signal?.aborted).toBe(true);
        expect(call?.options.abortSignal).toBe("SIGTERM");
    });

    it("a shared build goes on while another host still wants a system of it, and is stopped (SIGTERM) once none does", async () => {
        const runner = new FakeRunner().on(local("nix-store", "--realise"), untilStopped);
        const builder = new SharedBuilder(runner.run);
        builder.note("psi", psi);
        builder.note("rho", rho);
        const [psiGone, rhoGone] = [new AbortController(), new AbortController()];
        const psiBuild = builder.build(psi, "psi", ["psi", "rho"], undefined, psiGone.signal);
        psiBuild.catch(() => undefined);
        await new Promise((resolve) => setTimeout(resolve, 5));
        psiGone.abort();
        await new Promise((resolve) => setTimeout(resolve, 5));
        const [shared] = runner.matching(local("nix-store", "--realise"));
        expect(shared?.argv).toEqual(["nix-store", "--realise", "--keep-going", psi, rho]);
        // rho's deploy has not even joined it yet: it still wants its system.
        expect(shared?.options.signal?.aborted).toBe(false);
        const rhoBuild = builder.build(rho, "rho", ["psi", "rho"], undefined, rhoGone.signal);
        await new Promise((resolve) => setTimeout(resolve, 5));
        expect(shared?.options.signal?.aborted).toBe(false);
        rhoGone.abort();
        expect(shared?.options.signal?.aborted).toBe(true);
        expect(shared?.options.abortSignal).toBe("SIGTERM");
        await fleetErrorOf(rhoBuild);
        await fleetErrorOf(psiBuild);
        // Nobody builds its own system after the stopped shared build: nobody needs it.
        expect(builds(runner)).toEqual([["--realise", "--keep-going", psi, rho]]);
    });

    it("a host that joins the shared build already given up counts as not wanting it", async () => {
        const runner = new FakeRunner().on(local("nix-store", "--realise"), untilStopped);
        const builder = new SharedBuilder(runner.run);
        builder.note("psi", psi);
        builder.note("rho", rho);
        const psiGone = new AbortController();
        const psiBuild = builder.build(psi, "psi", ["psi", "rho"], undefined, psiGone.signal);
        psiBuild.catch(() => undefined);
        psiGone.abort();
        const rhoGone = new AbortController();
        rhoGone.abort();
        await fleetErrorOf(builder.build(rho, "rho", ["psi", "rho"], undefined, rhoGone.signal));
        const [shared] = runner.matching(local("nix-store", "--realise"));
        expect(shared?.options.signal?.aborted).toBe(true);
    });
});
