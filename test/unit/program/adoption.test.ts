// `pulumi import` reads the host's connection settings from the stack's own config file: the same
// inputs the program sends (so the next `up` of an unchanged system finds nothing to do).
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { loadStackHosts } from "../../../src/config";
import { readStackConfigFile } from "../../../src/config/stackFile";
import { unreadableConfig } from "../../../src/cli/stack";
import { configuredHostInputs } from "../../../src/program/adoption";
import { hostInputsOf } from "../../../src/program/hostInputs";
import { tempDir } from "../helpers/fixtures";

function project(config: Record<string, unknown> | null) {
    const dir = tempDir("nf-adopt-");
    mkdirSync(join(dir, "hosts"));
    writeFileSync(join(dir, "hosts", "gamma.yaml"), stringify({ address: "10.0.0.3", port: 2222, flake: "/srv/infra", tags: ["web"] }));
    writeFileSync(join(dir, "hosts", "delta.yaml"), stringify({ address: "10.0.0.4", flake: "/srv/infra" }));
    if (config) writeFileSync(join(dir, "Pulumi.prod.yaml"), stringify({ config }));
    return dir;
}

describe("configuredHostInputs (pulumi import)", () => {
    it("gives the program's inputs for the host, stack defaults and overrides applied, without a system", async () => {
        const dir = project({ "nixos-fleet:hosts": ["@web"], "nixos-fleet:overrides": { gamma: { user: "deploy" } }, "nixos-fleet:defaults": { connectTimeout: 5 } });
        const configured = await configuredHostInputs(dir)("prod", "gamma", "gamma");
        const settings = readStackConfigFile(dir, "prod");
        const [host] = await loadStackHosts(settings);
        const { storePath: _s, drvPath: _d, ...expected } = hostInputsOf(host!, { storePath: "", drvPath: "" });
        expect(configured).toEqual(expected);
        expect(configured).toMatchObject({ name: "gamma", address: "10.0.0.3", port: 2222, user: "deploy", connectTimeout: 5 });
        expect(configured).not.toHaveProperty("storePath");
    });

    it("a host the stack does not select, a resource named unlike its host, a stack without a file: clear errors", async () => {
        const dir = project({ "nixos-fleet:hosts": ["gamma"] });
        await expect(configuredHostInputs(dir)("prod", "delta", "delta")).rejects.toThrow(/delta is not a host of stack prod/);
        await expect(configuredHostInputs(dir)("prod", "gamma", "g")).rejects.toMatchObject({ message: expect.stringMatching(/names the resource "g" but the host "gamma"/), hint: "pulumi import nixos:index:Host gamma gamma" });
        await expect(configuredHostInputs(dir)("staging", "gamma", "gamma")).rejects.toThrow(/cannot read the stack's config file Pulumi\.staging\.yaml/);
    });

    it("a stack file without hosts says to set them", async () => {
        const dir = project({ "nixos-fleet:parallel": 2 });
        expect(() => readStackConfigFile(dir, "prod")).toThrow(/the stack does not list its hosts/);
    });
});

describe("a malformed Pulumi.<stack>.yaml", () => {
    const text = "config:\n  nixos-fleet:hosts: [alpha\n  bad: : :\n";

    it("names the file, line and column (import and the operator commands), not a raw parser or Automation API dump", async () => {
        const dir = project(null);
        writeFileSync(join(dir, "Pulumi.prod.yaml"), text);
        expect(() => readStackConfigFile(dir, "prod")).toThrow(/^Pulumi\.prod\.yaml:3:3: not valid YAML: Flow sequence in block collection must be sufficiently indented and end with a \]$/);
        const automationError = new Error("code: -2\n stderr: Command failed with exit code 1: pulumi config --show-secrets --json --stack prod\nerror: invalid YAML file: yaml: line 1: did not find expected ',' or ']'\n");
        const error = unreadableConfig("prod", dir, automationError);
        expect(error).toMatchObject({ phase: "config", message: expect.stringMatching(/^Pulumi\.prod\.yaml:3:3: not valid YAML: /), hint: "fix Pulumi.prod.yaml: pulumi reads the stack's config from it" });
    });

    it("another config failure says pulumi's own error line", () => {
        const dir = project({ "nixos-fleet:hosts": ["gamma"] });
        const error = unreadableConfig("prod", dir, new Error("code: 255\n stderr: ...\nerror: could not decrypt configuration value\n"));
        expect(error).toMatchObject({ message: "cannot read the config of stack prod: could not decrypt configuration value", hint: "check Pulumi.prod.yaml, or run: npm run pulumi -- config --stack prod" });
    });
});
