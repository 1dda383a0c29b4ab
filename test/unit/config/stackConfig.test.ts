import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { configSourceOf, parseStackConfig, readStackConfig } from "../../../src/config";
import { onlyProblem, problemsOf } from "./helpers";

const baseDir = "/project";
const STORE_PATH = "/nix/store/0c9ai3jbqkcvjrds8hhhpqx3xzhglgnq-nixos-system-alpha-24.05";

describe("parseStackConfig", () => {
    it("applies defaults and resolves hostsDir against the project root", () => {
        const stack = parseStackConfig({ hosts: ["alpha", "@web"] }, { baseDir });
        expect(stack).toEqual({
            hosts: ["alpha", "@web"],
            hostsDir: path.join(baseDir, "hosts"),
            baseDir,
            defaults: {},
            overrides: {},
            pins: {},
            secrets: {},
        });
    });

    it("accepts every setting", () => {
        const stack = parseStackConfig(
            {
                hosts: ["@sandbox"],
                hostsDir: "fleet/hosts",
                defaults: { sshConfigFile: ".sandbox/ssh_config", connectTimeout: 5 },
                overrides: { alpha: { port: 2222, action: "test" } },
                pins: { beta: { storePath: STORE_PATH, reason: "bad kernel", generation: 41 } },
                parallel: 2,
            },
            { baseDir },
        );
        expect(stack.hostsDir).toBe(path.join(baseDir, "fleet/hosts"));
        expect(stack.defaults).toEqual({ sshConfigFile: ".sandbox/ssh_config", connectTimeout: 5 });
        expect(stack.overrides).toEqual({ alpha: { port: 2222, action: "test" } });
        expect(stack.pins.beta).toEqual({ storePath: STORE_PATH, reason: "bad kernel", generation: 41 });
        expect(stack.parallel).toBe(2);
    });

    it("requires hosts, naming the config key", () => {
        const problem = onlyProblem(() => parseStackConfig({}, { baseDir, file: "Pulumi.dev.yaml" }));
        expect(problem).toMatchObject({ phase: "config", field: "nixos-fleet:hosts", file: "Pulumi.dev.yaml" });
        expect(problem.message).toMatch(/^set nixos-fleet:hosts to the hosts this stack deploys/);
        expect(problem.hint).toContain("npm run pulumi -- config set --path 'nixos-fleet:hosts[0]' psi --stack dev");
        expect(problem.hint).toMatch(/nixos-fleet:hosts: \[alpha, "@web"\]/);
    });

    it("without hosts says only that, whatever the rest of the config holds", () => {
        for (const raw of [null, undefined, {}, { pins: { psi: { storePath: "nonsense" } } }, { parallel: 0, overrides: { x: { port: "a" } } }]) {
            const problem = onlyProblem(() => parseStackConfig(raw, { baseDir, file: "Pulumi.new.yaml" }));
            expect(problem.message).toMatch(/^set nixos-fleet:hosts /);
            expect(problem.hint).toContain("--stack new");
        }
    });

    it("rejects an empty host list and bad selectors", () => {
        expect(onlyProblem(() => parseStackConfig({ hosts: [] }, { baseDir })).message).toMatch(/at least one host name or @tag/);
        const problem = onlyProblem(() => parseStackConfig({ hosts: ["alpha", "@Web"] }, { baseDir }));
        expect(problem).toMatchObject({ field: "nixos-fleet:hosts[1]", message: 'expected a host name or "@tag", got "@Web"' });
    });

    it("validates overrides with the host field rules and names the key path", () => {
        const problem = onlyProblem(() => parseStackConfig({ hosts: ["alpha"], overrides: { alpha: { port: "abc" } } }, { baseDir }));
        expect(problem).toMatchObject({ field: "nixos-fleet:overrides.alpha.port", message: 'expected an integer from 1 to 65535, got "abc"' });
    });

    it("rejects unknown fields in overrides and defaults with suggestions", () => {
        const problems = problemsOf(() =>
            parseStackConfig({ hosts: ["alpha"], overrides: { alpha: { prot: 1 } }, defaults: { sshConfig: "x" } }, { baseDir }),
        );
        expect(problems.map((problem) => [problem.field, problem.message])).toEqual(
            expect.arrayContaining([
                ["nixos-fleet:overrides.alpha.prot", 'unknown field "prot"'],
                ["nixos-fleet:defaults.sshConfig", 'unknown field "sshConfig"'],
            ]),
        );
        expect(problems.find((problem) => problem.field?.endsWith("prot"))?.hint).toMatch(/did you mean "port"/);
        expect(problems.find((problem) => problem.field?.endsWith("sshConfig"))?.hint).toMatch(/did you mean "sshConfigFile"/);
    });

    it("rejects address as a stack-wide default", () => {
        const problem = onlyProblem(() => parseStackConfig({ hosts: ["alpha"], defaults: { address: "x" } }, { baseDir }));
        expect(problem).toMatchObject({ field: "nixos-fleet:defaults.address", message: "address cannot be a stack-wide default" });
    });

    it("rejects host-key bypasses and whitespace paths in defaults too", () => {
        const problems = problemsOf(() =>
            parseStackConfig({ hosts: ["alpha"], defaults: { sshOptions: ["StrictHostKeyChecking=no"], identityFile: "a b" } }, { baseDir }),
        );
        expect(problems.map((problem) => problem.field).sort()).toEqual(["nixos-fleet:defaults.identityFile", "nixos-fleet:defaults.sshOptions[0]"]);
    });

    it("validates pins", () => {
        const problems = problemsOf(() =>
            parseStackConfig(
                {
                    hosts: ["alpha"],
                    pins: {
                        alpha: { storePath: "/nix/store/abc-nixos-system" },
                        beta: { storePath: STORE_PATH, generation: 0 },
                        Gamma: { storePath: STORE_PATH },
                    },
                },
                { baseDir },
            ),
        );
        expect(problems.map((problem) => problem.field)).toEqual([
            "nixos-fleet:pins.alpha.storePath",
            "nixos-fleet:pins.beta.generation",
            "nixos-fleet:pins.Gamma",
        ]);
        expect(problems[0]?.message).toMatch(/expected a top-level Nix store path/);
        expect(problems[2]?.message).toMatch(/^invalid key "Gamma": expected a host name/);
    });

    it("rejects unknown settings and bad parallel", () => {
        const problems = problemsOf(() => parseStackConfig({ hosts: ["alpha"], hostDir: "x", parallel: 0 }, { baseDir }));
        expect(problems.map((problem) => [problem.field, problem.message])).toEqual(
            expect.arrayContaining([
                ["nixos-fleet:hostDir", 'unknown field "hostDir"'],
                ["nixos-fleet:parallel", "expected a number of hosts from 1 to 1000, got 0"],
            ]),
        );
    });

    it("rejects a value that is not a mapping", () => {
        expect(onlyProblem(() => parseStackConfig("alpha", { baseDir }))).toMatchObject({ field: "nixos-fleet" });
    });
});

describe("readStackConfig", () => {
    it("decodes Pulumi's JSON text for structured values and keeps plain strings", () => {
        const values: Record<string, string> = {
            hosts: '["@sandbox"]',
            hostsDir: "hosts",
            defaults: '{"sshConfigFile":".sandbox/ssh_config"}',
            parallel: "3",
        };
        const stack = readStackConfig({ get: (key) => values[key] }, { baseDir });
        expect(stack).toMatchObject({ hosts: ["@sandbox"], hostsDir: path.join(baseDir, "hosts"), parallel: 3, defaults: { sshConfigFile: ".sandbox/ssh_config" } });
    });
});

describe("readStackConfig: strict about the nixos-fleet namespace", () => {
    const read = (all: Record<string, string>) => problemsOf(() => readStackConfig(configSourceOf(all), { baseDir, file: "Pulumi.prod.yaml" }));

    it.each([
        ["paralel", "parallel"],
        ["overides", "overrides"],
        ["defualts", "defaults"],
        ["host", "hosts"],
        ["hostDir", "hostsDir"],
    ])("nixos-fleet:%s is an error with did you mean %s", (key, suggestion) => {
        const problem = read({ "nixos-fleet:hosts": '["alpha"]', [`nixos-fleet:${key}`]: "2" }).find((p) => p.field === `nixos-fleet:${key}`);
        expect(problem).toMatchObject({ message: `unknown field "${key}"`, file: "Pulumi.prod.yaml" });
        expect(problem?.hint).toMatch(new RegExp(`did you mean "${suggestion}"`));
    });

    it("unknown keys inside overrides and unknown host names in overrides name a suggestion", () => {
        const problems = read({ "nixos-fleet:hosts": '["alpha"]', "nixos-fleet:overrides": '{"alpha":{"prot":2222,"identityFiel":"k"}}' });
        expect(problems.map((p) => [p.field, p.hint?.match(/did you mean "[^"]+"/)?.[0]])).toEqual([
            ["nixos-fleet:overrides.alpha.prot", 'did you mean "port"'],
            ["nixos-fleet:overrides.alpha.identityFiel", 'did you mean "identityFile"'],
        ]);
    });

    it("keys of other namespaces are not ours to judge", () => {
        const stack = readStackConfig(configSourceOf({ "nixos-fleet:hosts": '["alpha"]', "aws:region": "eu-west-1", "nixos-fleetx:y": "1" }), { baseDir });
        expect(stack.hosts).toEqual(["alpha"]);
    });

    it("a source without keys() still reads the known keys (older callers)", () => {
        expect(readStackConfig({ get: (key) => (key === "hosts" ? '["alpha"]' : undefined) }, { baseDir }).hosts).toEqual(["alpha"]);
    });
});
