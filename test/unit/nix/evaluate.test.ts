import { describe, expect, it } from "vitest";
import { applyExpression, evaluateSystem, evaluateSystems, type EvaluationTarget } from "../../../src/nix/evaluate";
import { FakeRunner, local, type RecordedCall } from "../helpers/fakeRunner";
import { drvPath, fleetErrorOf, storePath } from "../helpers/fixtures";

const host = (name: string, flake = "/srv/infra", attribute = `nixosConfigurations.${name}`): EvaluationTarget => ({ name, flake, attribute });

/** The arguments of a recorded `nix eval`: installable and --apply expression. */
function evalArgs(call: RecordedCall): { installable: string; apply: string } {
    const argv = call.argv;
    const at = argv.indexOf("--json");
    return { installable: argv[at + 1]!, apply: argv[argv.indexOf("--apply") + 1]! };
}

/** Host names an --apply expression asks for, in order. */
const namesIn = (apply: string): string[] => [...apply.matchAll(/"([^"]+)" = let/g)].map((match) => match[1]!);

/** A fake `nix eval` that answers for every host in the expression, except those in `broken`. */
function fakeNixEval(runner: FakeRunner, broken: Record<string, string> = {}): void {
    runner.on(local("eval", "--json"), (call) => {
        const names = namesIn(evalArgs(call).apply);
        const failing = names.find((name) => broken[name] !== undefined);
        if (failing) return { code: 1, stderr: broken[failing] };
        return { stdout: JSON.stringify(Object.fromEntries(names.map((name) => [name, { out: storePath(`nixos-system-${name}`), drv: drvPath(`nixos-system-${name}`) }]))) };
    });
}

describe("applyExpression", () => {
    it("selects each host's toplevel out and drv paths under a quoted name", () => {
        expect(applyExpression([{ name: "psi", rest: ["psi"] }])).toBe(
            'o: { "psi" = let t = o."psi".config.system.build.toplevel; in { out = t.outPath; drv = t.drvPath; }; }',
        );
    });

    it("quotes every attribute segment and lists all hosts in one function", () => {
        const expression = applyExpression([
            { name: "a", rest: ["x", "y-1"] },
            { name: "b", rest: ["b"] },
        ]);
        expect(expression).toContain('o."x"."y-1".config');
        expect(namesIn(expression)).toEqual(["a", "b"]);
    });

    it("escapes quotes and backslashes, and ${ so Nix does not interpolate", () => {
        const expression = applyExpression([{ name: 'we"ird\\${x}', rest: ["${builtins.abort 1}"] }]);
        expect(expression).toContain('"we\\"ird\\\\\\${x}" = let');
        expect(expression).toContain('o."\\${builtins.abort 1}".config');
        expect(expression).not.toMatch(/[^\\]\$\{/);
    });
});

describe("evaluateSystems", () => {
    it("evaluates many hosts of one flake with one nix eval and returns each host's paths", async () => {
        const runner = new FakeRunner();
        fakeNixEval(runner);
        const systems = await evaluateSystems([host("alpha"), host("beta"), host("gamma")], { runner: runner.run, cwd: "/srv/project" });
        expect(runner.calls).toHaveLength(1);
        const call = runner.calls[0]!;
        expect(call.argv.slice(0, 3)).toEqual(["nix", "--extra-experimental-features", "nix-command flakes"]);
        expect(evalArgs(call).installable).toBe("/srv/infra#nixosConfigurations");
        expect(namesIn(evalArgs(call).apply)).toEqual(["alpha", "beta", "gamma"]);
        expect(call.options.cwd).toBe("/srv/project");
        expect(systems.get("beta")).toEqual({ storePath: storePath("nixos-system-beta"), drvPath: drvPath("nixos-system-beta") });
        expect([...systems.keys()]).toEqual(["alpha", "beta", "gamma"]);
    });

    it("runs one nix eval per flake", async () => {
        const runner = new FakeRunner();
        fakeNixEval(runner);
        const systems = await evaluateSystems([host("alpha"), host("psi", "/srv/other"), host("beta")], { runner: runner.run });
        const evals = runner.calls.map((call) => ({ installable: evalArgs(call).installable, names: namesIn(evalArgs(call).apply) }));
        expect(evals).toEqual([
            { installable: "/srv/infra#nixosConfigurations", names: ["alpha", "beta"] },
            { installable: "/srv/other#nixosConfigurations", names: ["psi"] },
        ]);
        expect(systems.size).toBe(3);
    });

    it("on failure blames the failing host with one eval per host; the error names it and keeps Nix's message", async () => {
        const runner = new FakeRunner();
        fakeNixEval(runner, { beta: "error: undefined variable 'pkgs'\n       at /srv/infra/beta.nix:3:5\n" });
        const error = await fleetErrorOf(evaluateSystems([host("alpha"), host("beta"), host("gamma")], { runner: runner.run }));
        expect(error.phase).toBe("evaluate");
        expect(error.host).toBe("beta");
        expect(error.message).toBe("evaluating the system of beta failed");
        expect(error.detail).toContain("undefined variable 'pkgs'");
        // The group once, then each host alone.
        expect(runner.calls.map((call) => namesIn(evalArgs(call).apply))).toEqual([["alpha", "beta", "gamma"], ["alpha"], ["beta"], ["gamma"]]);
    });

    it("several failing hosts: one error naming all of them, with each host's Nix output", async () => {
        const runner = new FakeRunner();
        fakeNixEval(runner, { alpha: "error: alpha is broken\n", gamma: "error: gamma is broken\n" });
        const error = await fleetErrorOf(evaluateSystems([host("alpha"), host("beta"), host("gamma")], { runner: runner.run }));
        expect(error.message).toBe("evaluation failed for 2 hosts: alpha, gamma");
        expect(error.detail).toContain("alpha:\nerror: alpha is broken");
        expect(error.detail).toContain("gamma:\nerror: gamma is broken");
        expect(error.detail).not.toContain("beta");
    });

    it("a single-host flake that fails is not evaluated again", async () => {
        const runner = new FakeRunner();
        fakeNixEval(runner, { psi: "error: infinite recursion encountered\n" });
        const error = await fleetErrorOf(evaluateSystems([host("psi")], { runner: runner.run }));
        expect(runner.calls).toHaveLength(1);
        expect(error.host).toBe("psi");
        expect(error.detail).toContain("infinite recursion");
    });

    it("a missing attribute says the flake has no NixOS configuration for the host", async () => {
        const runner = new FakeRunner();
        fakeNixEval(runner, { rho: "error: attribute 'rho' missing\n\n       at «string»:1:30:\n" });
        const error = await fleetErrorOf(evaluateSystems([host("rho")], { runner: runner.run }));
        expect(error.host).toBe("rho");
        expect(error.message).toBe("the flake /srv/infra has no NixOS configuration for this host");
        expect(error.hint).toContain("nix flake show /srv/infra");
    });

    it("a flake without the output at all is also reported as a missing configuration", async () => {
        const runner = new FakeRunner();
        fakeNixEval(runner, { rho: "error: flake 'path:/srv/infra' does not provide attribute 'packages.x86_64-linux.nixosConfigurations' or 'nixosConfigurations'\n" });
        const error = await fleetErrorOf(evaluateSystems([host("rho")], { runner: runner.run }));
        expect(error.message).toContain("has no NixOS configuration");
    });

    // A typo inside the host's own NixOS modules (e.g. `config.services.nginxx`) gives the same
    // "attribute '…' missing" as a missing host configuration: only the host's own attribute
    // segment (e.g. 'psi') missing means the flake has no configuration for the host.
    it("an attribute missing inside the host's modules is reported as an evaluation error, not a missing configuration", async () => {
        const runner = new FakeRunner();
        fakeNixEval(runner, { psi: "error: attribute 'nginxx' missing\n\n       at /nix/store/…-source/hosts/psi.nix:12:7:\n" });
        const error = await fleetErrorOf(evaluateSystems([host("psi")], { runner: runner.run }));
        expect(error.message).toBe("evaluating the system of psi failed");
    });

    it("rejects an attribute that is not a dotted identifier path before running anything", async () => {
        const runner = new FakeRunner();
        fakeNixEval(runner);
        for (const attribute of ["psi", 'nixosConfigurations."psi"', "nixosConfigurations.psi; builtins.abort", "nixosConfigurations..psi"]) {
            const error = await fleetErrorOf(evaluateSystems([host("alpha"), host("psi", "/srv/infra", attribute)], { runner: runner.run }));
            expect(error.host).toBe("psi");
            expect(error.message).toContain(`attribute "${attribute}"`);
        }
        expect(runner.calls).toHaveLength(0);
    });

    it("reports a host whose evaluation yields no store path", async () => {
        const runner = new FakeRunner().on(local("eval"), { stdout: JSON.stringify({ alpha: { out: "not-a-path", drv: "x.drv" } }) });
        const error = await fleetErrorOf(evaluateSystems([host("alpha")], { runner: runner.run }));
        expect(error.host).toBe("alpha");
        expect(error.message).toBe("the evaluation did not produce a system store path");
    });

    it("a custom attribute prefix is its own group and selects the rest of the path", async () => {
        const runner = new FakeRunner();
        fakeNixEval(runner);
        await evaluateSystems([host("alpha", "/srv/infra", "fleet.prod.alpha")], { runner: runner.run });
        const { installable, apply } = evalArgs(runner.calls[0]!);
        expect(installable).toBe("/srv/infra#fleet");
        expect(apply).toContain('o."prod"."alpha".config.system.build.toplevel');
    });
});

describe("evaluateSystem (the library's)", () => {
    it("returns a local flake reference made absolute against the directory it was evaluated in (the provider runs elsewhere)", async () => {
        const runner = new FakeRunner();
        fakeNixEval(runner);
        // Before: flake "." came back as ".", so buildOn: target archived the provider's directory, not /srv/infra.
        for (const [flake, absolute] of [[".", "/srv/infra"], ["./sub", "/srv/infra/sub"], ["path:.?dir=x", "path:/srv/infra?dir=x"], ["github:o/r", "github:o/r"]] as const) {
            const system = await evaluateSystem({ flake, attribute: "nixosConfigurations.web1" }, { runner: runner.run, cwd: "/srv/infra" });
            expect(system).toEqual({ flake: absolute, attribute: "nixosConfigurations.web1", storePath: storePath("nixos-system-web1"), drvPath: drvPath("nixos-system-web1") });
            expect(evalArgs(runner.calls.at(-1)!).installable).toBe(`${absolute}#nixosConfigurations`);
        }
    });
});
