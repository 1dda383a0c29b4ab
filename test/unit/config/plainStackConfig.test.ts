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

    it("holdsSecure finds a secure value at any depth, and only one", () => {
        expect(holdsSecure({ a: [{ b: { secure: "v1:x" } }] })).toBe(true);
        expect(holdsSecure({ secure: "v1:x", other: 1 })).toBe(false);
        expect(holdsSecure(["secure", { c: "secure" }])).toBe(false);
    });
});
