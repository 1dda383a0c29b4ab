import { describe, expect, it } from "vitest";
import { hookInputsSchema, hookOutputFieldsSchema } from "../../../src/provider/hookProvider";
import { hostInputsSchema, hostOutputFieldsSchema } from "../../../src/provider/hostInputs";
import { packageSchema, type ObjectTypeSpec, type PropertySpec } from "../../../src/provider/schema";
import { packageVersion } from "../../../src/provider/version";
import { HostProvider } from "../../../src/provider/hostProvider";

type Resource = { inputProperties: Record<string, PropertySpec>; requiredInputs: string[]; properties: Record<string, PropertySpec>; required: string[] };
const schema = packageSchema("1.2.3") as { name: string; version: string; resources: Record<string, Resource>; types: Record<string, ObjectTypeSpec> };

/** Every $ref in a spec tree. */
function refs(value: unknown): string[] {
    if (Array.isArray(value)) return value.flatMap(refs);
    if (value === null || typeof value !== "object") return [];
    return Object.entries(value).flatMap(([key, inner]) => (key === "$ref" && typeof inner === "string" ? [inner] : refs(inner)));
}

describe("the package schema", () => {
    it("names the package and its version", () => {
        expect(schema.name).toBe("nixos");
        expect(schema.version).toBe("1.2.3");
    });

    it("Host's inputs and outputs are exactly the fields of their zod definitions", () => {
        const host = schema.resources["nixos:index:Host"]!;
        expect(Object.keys(host.inputProperties).sort()).toEqual(Object.keys(hostInputsSchema.shape).sort());
        expect(Object.keys(host.properties).sort()).toEqual([...Object.keys(hostInputsSchema.shape), ...Object.keys(hostOutputFieldsSchema.shape)].sort());
        expect(host.requiredInputs).toEqual(expect.arrayContaining(["address", "storePath"]));
        expect(host.requiredInputs).not.toContain("port");
        expect(host.inputProperties.port).toEqual({ type: "integer" });
        expect(host.inputProperties.sshOptions).toEqual({ type: "array", items: { type: "string" } });
    });

    it("Hook's too", () => {
        const hook = schema.resources["nixos:index:Hook"]!;
        expect(Object.keys(hook.inputProperties).sort()).toEqual(Object.keys(hookInputsSchema.shape).sort());
        expect(Object.keys(hook.properties).sort()).toEqual([...Object.keys(hookInputsSchema.shape), ...Object.keys(hookOutputFieldsSchema.shape)].sort());
    });

    it("nested objects are named types, and every reference resolves", () => {
        expect(schema.resources["nixos:index:Host"]!.properties.history).toEqual({ type: "array", items: { $ref: "#/types/nixos:index:DeploymentRecord" } });
        for (const ref of refs(schema)) {
            if (ref.startsWith("pulumi.json#")) continue;
            expect(schema.types[ref.replace("#/types/", "")], ref).toBeDefined();
        }
        // Inputs may leave out what has a default: a type shared by inputs and outputs requires only what both do.
        expect(schema.types["nixos:index:HealthCheckTcp"]!.required).toEqual(["port"]);
    });

    it("marks secret files' values secret (an SDK or YAML program generated from the schema encrypts them)", () => {
        const host = schema.resources["nixos:index:Host"]!;
        expect(host.inputProperties.secrets).toEqual({ type: "object", additionalProperties: { $ref: "#/types/nixos:index:SecretFile" } });
        const file = schema.types["nixos:index:SecretFile"]!;
        expect(file.properties.value).toEqual({ type: "string", secret: true });
        // Only the values: names and settings stay readable.
        expect(file.properties.path!.secret).toBeUndefined();
        const secretProperties = JSON.stringify(schema).match(/"secret":true/g) ?? [];
        expect(secretProperties).toHaveLength(1);
    });

    it("the plugin's version is the package's", () => {
        expect(packageVersion()).toBe(require("../../../package.json").version);
    });
});

describe("the schema's functions", () => {
    it("lists the one function the provider serves, with its output", () => {
        const schema = packageSchema("9.9.9") as { functions: Record<string, { outputs: { required: string[] } }> };
        expect(Object.keys(schema.functions)).toEqual(["nixos:index:providerInfo"]);
        expect(schema.functions["nixos:index:providerInfo"]!.outputs.required).toEqual(["version"]);
    });
});

describe("the schema's required inputs are what the provider's check requires (a program in another language follows the schema)", () => {
    const host = schema.resources["nixos:index:Host"]!;
    const URN = "urn:pulumi:dev::p::nixos:index:Host::web1";
    const values: Record<string, unknown> = {
        address: "192.0.2.1",
        flake: "github:example/fleet",
        attribute: "nixosConfigurations.web1",
        storePath: `/nix/store/${"a".repeat(32)}-nixos-system-web1`,
    };
    const provider = () =>
        new HostProvider({
            runner: async () => ({ code: 1, stdout: "", stderr: "", signal: null, timedOut: false }) as never,
            logger: { log: async () => undefined },
            version: "0.0.0-test",
            runtimeDir: "/nonexistent/nf-test",
        });

    it("the required inputs alone pass check (every other input is optional or filled in)", async () => {
        expect(Object.keys(values).sort()).toEqual([...host.requiredInputs].sort());
        const result = await provider().check(URN, { storePath: values.storePath }, { ...values });
        expect(result.failures).toBeUndefined();
        // Filled in with the defaults the schema leaves out of requiredInputs.
        expect(result.inputs).toMatchObject({ name: "web1", user: "root", buildOn: "local", action: "switch", confirmTimeout: 30, tags: [] });
    });

    it.each(Object.keys(values))("without %s, check fails on it", async (key) => {
        const { [key]: _left, ...rest } = values;
        const result = await provider().check(URN, { storePath: values.storePath }, rest);
        expect(result.failures?.map((failure) => failure.property)).toEqual([key]);
    });
});
