// The stack file read without pulumi: only when it alone says what `pulumi config --json` says.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { holdsSecure, plainStackConfig } from "../../../src/config/plainStackConfig";
import { tempDir } from "../helpers/fixtures";

function project(stackFile: string | undefined, pulumiYaml = "name: nixos-fleet\nruntime: nodejs\n"): string {
    const root = tempDir("nf-plain-config-");
    writeFileSync(join(root, "Pulumi.yaml"), pulumiYaml);
    if (stackFile !== undefined) writeFileSync(join(root, "Pulumi.prod.yaml"), stackFile);
    return root;
}

describe("plainStackConfig", () => {
    it("gives nixos-fleet's values as pulumi config --json does: text as is, the rest as JSON; other namespaces left out", () => {
        const root = project(
            [
                "encryptionsalt: v1:abc",
                "config:",
                "  nixos-fleet:hosts: [psi, \"@web\"]",
                "  nixos-fleet:parallel: 3",
                "  nixos-fleet:hostsDir: machines",
                "  nixos-fleet:overrides:",
                "    psi: { address: 10.0.0.1, port: 2222 }",
                "  aws:region: eu-west-1",
                "  aws:token: { secure: v1:xyz }",
            ].join("\n"),
        );
        expect(plainStackConfig(root, "prod")).toEqual({
            "nixos-fleet:hosts": '["psi","@web"]',
            "nixos-fleet:parallel": "3",
            "nixos-fleet:hostsDir": "machines",
            "nixos-fleet:overrides": '{"psi":{"address":"10.0.0.1","port":2222}}',
        });
        expect(plainStackConfig(project("config: {}\n"), "prod")).toEqual({});
        expect(plainStackConfig(project(""), "prod")).toEqual({});
    });

    it("leaves to pulumi what the file alone cannot answer", () => {
        const cases: [string, string | undefined, string?][] = [
            ["a secret of nixos-fleet", "config:\n  nixos-fleet:secrets:\n    psi:\n      token: { content: { secure: v1:abc } }\n"],
            ["a whole secret key", "config:\n  nixos-fleet:overrides: { secure: v1:abc }\n"],
            ["an ESC environment", "environment: [prod-env]\nconfig:\n  nixos-fleet:hosts: [psi]\n"],
            ["a key without a namespace (the project's)", "config:\n  hosts: [psi]\n"],
            ["the old nixos-fleet:config: form", "config:\n  nixos-fleet:config:hosts: [psi]\n"],
            ["an empty value", "config:\n  nixos-fleet:parallel:\n"],
            ["not YAML", "config: [\n"],
            ["config that is not a mapping", "config: [a, b]\n"],
            ["no stack file", undefined],
            ["project-level config", "config:\n  nixos-fleet:hosts: [psi]\n", "name: nixos-fleet\nconfig:\n  nixos-fleet:parallel: 2\n"],
            ["another config directory", "config:\n  nixos-fleet:hosts: [psi]\n", "name: nixos-fleet\nstackConfigDir: stacks\n"],
        ];
        for (const [what, file, pulumiYaml] of cases) {
            expect(plainStackConfig(project(file, pulumiYaml), "prod"), what).toBeUndefined();
        }
        // A stack named with its organization (acme/prod) is not read from a file here.
        expect(plainStackConfig(project("config: {}\n"), "acme/prod")).toBeUndefined();
        expect(plainStackConfig(project("config: {}\n"), "../prod")).toBeUndefined();
    });

    it("leaves to pulumi a file its YAML parser (Go yaml.v3) reads otherwise than YAML 1.2 does", () => {
        // Each of these gave other values (or an error) from `pulumi config --json` than from
        // this parser: `010` is 8 to pulumi (10 here), `1_0` is 10 (text here), `0b11` is 3,
        // a date is a time, `<<` merges (a "<<" key here), `.inf` is an error to pulumi.
        const cases: [string, string][] = [
            ["an octal of YAML 1.1", "  nixos-fleet:parallel: 010\n"],
            ["an octal at depth", "  nixos-fleet:rollout:\n    batchSize: 010\n"],
            ["a number with underscores", "  nixos-fleet:rollout:\n    batchSize: 1_0\n"],
            ["a binary number", "  nixos-fleet:defaults:\n    port: 0b11\n"],
            ["a hexadecimal number", "  nixos-fleet:parallel: 0x10\n"],
            ["an integer past 2^53", "  nixos-fleet:parallel: 12345678901234567890\n"],
            ["a date", "  nixos-fleet:defaults:\n    user: 2001-12-14\n"],
            ["an infinity", "  nixos-fleet:defaults:\n    port: .inf\n"],
            ["a merge key", "  nixos-fleet:defaults: &d\n    port: 22\n  nixos-fleet:overrides:\n    psi:\n      <<: *d\n      user: ops\n"],
            ["a merge key under config", "  <<: { nixos-fleet:parallel: 3 }\n"],
            ["a tag", "  nixos-fleet:parallel: !!str 010\n"],
            ["a tag at depth", "  nixos-fleet:rollout:\n    batchSize: !!int \"2\"\n"],
            ["an unknown tag", "  nixos-fleet:parallel: !foo 2\n"],
            ["a key that is not text", "  nixos-fleet:overrides:\n    1: { port: 2 }\n"],
            ["a null key", "  nixos-fleet:overrides:\n    ~: { port: 2 }\n"],
            ["a list as a key", "  nixos-fleet:overrides:\n    ? [psi]\n    : { port: 2 }\n"],
            ["a duplicate key", "  nixos-fleet:parallel: 2\n  nixos-fleet:parallel: 3\n"],
        ];
        for (const [what, lines] of cases) {
            expect(plainStackConfig(project(`config:\n  nixos-fleet:hosts: [psi]\n${lines}`), "prod"), what).toBeUndefined();
        }
        expect(plainStackConfig(project("%YAML 1.1\n---\nconfig:\n  nixos-fleet:parallel: 2\n"), "prod"), "a YAML directive").toBeUndefined();
        // What both read alike stays on the fast path: decimal numbers, addresses, booleans, aliases, text in quotes.
        expect(
            plainStackConfig(
                project(
                    "\ufeffconfig:\n  nixos-fleet:hosts: [psi, \"010\"]\n  nixos-fleet:parallel: 1e1\n  nixos-fleet:defaults: &d\n    address: 10.0.0.1\n    port: 22\n    sudo: true\n  nixos-fleet:overrides:\n    psi: *d\n",
                ),
                "prod",
            ),
        ).toEqual({
            "nixos-fleet:hosts": '["psi","010"]',
            "nixos-fleet:parallel": "10",
            "nixos-fleet:defaults": '{"address":"10.0.0.1","port":22,"sudo":true}',
            "nixos-fleet:overrides": '{"psi":{"address":"10.0.0.1","port":22,"sudo":true}}',
        });
    });

    it("holdsSecure finds a secure value at any depth, and only one", () => {
        expect(holdsSecure({ a: [{ b: { secure: "v1:x" } }] })).toBe(true);
        expect(holdsSecure({ secure: "v1:x", other: 1 })).toBe(false);
        expect(holdsSecure(["secure", { c: "secure" }])).toBe(false);
    });
});
