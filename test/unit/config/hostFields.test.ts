// One list of host fields: a field declared once in HOST_FIELDS appears in the host-file schema,
// the defaults, the resource's inputs, the provider's Pulumi schema and, for a connection
// setting, the SSH target and the Hook's inputs.
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { HOST_DEFAULTS, HOST_FIELDS, type HostFieldName, type HostFieldSpec } from "../../../src/config/hostFields";
import { hostFileSchema, hostPatchSchema, resolveHost } from "../../../src/config/hostSchema";
import { connectionOf, hostInputsOf, hostLookup } from "../../../src/program/hostInputs";
import { hookInputsSchema } from "../../../src/provider/hookProvider";
import { hostInputsSchema, sshTargetOf } from "../../../src/provider/hostInputs";
import { packageSchema } from "../../../src/provider/schema";
import { HostProvider } from "../../../src/provider/hostProvider";

/** A valid ed25519 public key line (the blob names its own type). */
function ed25519Key(): string {
    const type = Buffer.from("ssh-ed25519");
    const length = (n: number) => Buffer.from([0, 0, 0, n]);
    return `ssh-ed25519 ${Buffer.concat([length(type.length), type, length(32), Buffer.alloc(32, 7)]).toString("base64")}`;
}

/**
 * A valid value, different from the default, for every field. A new field without one here fails
 * the test below by name (add it here: the rest of the test needs no edit).
 */
const SAMPLES: Record<HostFieldName, unknown> = {
    address: "web1.example.org",
    port: 2222,
    user: "ops",
    identityFile: "/keys/id_ed25519",
    proxyJump: "jump.example.org",
    hostKey: ed25519Key(),
    knownHostsFile: "/keys/known_hosts",
    sshConfigFile: "/keys/ssh_config",
    sshOptions: ["ServerAliveInterval=15"],
    insecureSkipHostKeyCheck: true,
    connectTimeout: 5,
    confirmTimeout: 0,
    reconnectTimeout: 90,
    keepGenerations: 5,
    deleteOlderThan: "30d",
    gc: true,
    healthChecks: { units: ["nginx.service"] },
    flake: "github:example/fleet",
    attribute: "nixosConfigurations.other",
    buildOn: "target",
    action: "boot",
    substituteOnDestination: true,
    tags: ["web"],
    buildHost: "builder",
    reboot: "auto",
    rebootTimeout: 120,
    hooks: [{ name: "migrate", command: ["/run/current-system/sw/bin/true"] }],
};

const source = { name: "web1", file: "/project/hosts/web1.yaml", baseDir: "/project" };
const system = { storePath: "/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-nixos-system-web1", drvPath: "/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-nixos-system-web1.drv" };
const schema = packageSchema("0.0.0") as { resources: Record<string, { inputProperties: Record<string, unknown>; requiredInputs: string[]; properties: Record<string, unknown> }> };
const hostSchema = schema.resources["nixos:index:Host"]!;
const hookSchema = schema.resources["nixos:index:Hook"]!;

/** The stack's other hosts: buildHost's sample names one. */
const otherHosts = hostLookup([resolveHost({ address: "build.example.org", port: 2200 }, { ...source, name: "builder", file: "/project/hosts/builder.yaml" })]);

/** A host whose file sets `name` to its sample value (and the address every host needs). */
function hostSetting(name: HostFieldName) {
    const fields = hostPatchSchema.parse({ address: SAMPLES.address, [name]: SAMPLES[name] });
    return resolveHost({ address: SAMPLES.address as string, ...fields }, source);
}

describe.each(Object.entries(HOST_FIELDS) as [HostFieldName, HostFieldSpec][])("host field %s", (name, spec) => {
    it("has a sample value for this test", () => {
        expect(SAMPLES, `add a sample value for the new field ${name} to SAMPLES`).toHaveProperty(name);
    });

    it("is a field of host files, stack defaults and overrides, with its rule", () => {
        expect(hostFileSchema.shape[name]).toBe(spec.file);
        expect(hostPatchSchema.safeParse({ [name]: SAMPLES[name] }).success).toBe(true);
    });

    it("resolves to its default when a host file leaves it out, else to the file's value", () => {
        const bare = resolveHost({ address: SAMPLES.address as string }, source) as unknown as Record<string, unknown>;
        if ("default" in spec && name !== "flake") expect(bare[name]).toEqual(spec.default);
        if ("default" in spec) expect(HOST_DEFAULTS).toHaveProperty(name, spec.default);
        else expect(HOST_DEFAULTS).not.toHaveProperty(name);
        if (!("default" in spec) && !spec.derivedDefault && name !== "address") expect(bare[name]).toBeUndefined();
        const set = hostSetting(name) as unknown as Record<string, unknown>;
        expect(set[name]).toBeDefined();
        if (name !== "address") expect(set[name]).not.toEqual(bare[name]);
    });

    if (spec.localPath) {
        it("is a local path: resolved against the project root", () => {
            const fields = hostPatchSchema.parse({ [name]: "keys/file" });
            const resolved = resolveHost({ address: "web1.example.org", ...fields }, source) as unknown as Record<string, unknown>;
            expect(resolved[name]).toBe("/project/keys/file");
        });
    }

    it(spec.input ? "is a Host input, in the resource's schema and passed from the host" : "is not passed to the Host resource", () => {
        const inputs = hostInputsOf(hostSetting(name), system, undefined, otherHosts) as unknown as Record<string, unknown>;
        if (spec.input) {
            expect(hostInputsSchema.shape).toHaveProperty(name);
            const rule = (hostInputsSchema.shape as Record<string, z.ZodType>)[name]!;
            // A field check fills in is its rule with the field's default (a program may leave it out).
            if (spec.inputDefault) {
                expect((rule as z.ZodDefault).unwrap()).toBe(spec.input);
                expect(rule.parse(undefined)).toEqual(spec.default);
                expect(hostSchema.requiredInputs).not.toContain(name);
            } else expect(rule).toBe(spec.input);
            expect(hostSchema.inputProperties).toHaveProperty(name);
            expect(hostSchema.properties).toHaveProperty(name);
            expect(inputs[name]).toBeDefined();
            expect(hostInputsSchema.safeParse(inputs).success).toBe(true);
        } else {
            expect(hostInputsSchema.shape).not.toHaveProperty(name);
            expect(hostSchema.inputProperties).not.toHaveProperty(name);
            expect(inputs).not.toHaveProperty(name);
        }
    });

    it("set in a host file, passes the provider's check as the program sends it, unchanged (a stack written before sees no change)", async () => {
        const inputs = hostInputsOf(hostSetting(name), system, undefined, otherHosts) as unknown as Record<string, unknown>;
        const provider = new HostProvider({
            runner: async () => ({ code: 1, stdout: "", stderr: "", signal: null, timedOut: false }) as never,
            logger: { log: async () => undefined },
            version: "0.0.0-test",
            runtimeDir: "/nonexistent/nf-test",
        });
        // Not a new host (olds has a store path): check makes no plan.
        const result = await provider.check("urn:pulumi:dev::p::nixos:index:Host::web1", { storePath: system.storePath }, inputs);
        expect(result.failures).toBeUndefined();
        expect(result.inputs).toEqual(inputs);
    });

    it(spec.connection ? "is a connection setting: in the SSH target and the Hook's inputs" : "is not a connection setting", () => {
        const inputs = hostInputsOf(hostSetting(name), system, undefined, otherHosts);
        const value = (inputs as unknown as Record<string, unknown>)[name];
        if (spec.connection) {
            expect(sshTargetOf(inputs)).toHaveProperty(name, value);
            expect(connectionOf(inputs)).toHaveProperty(name, value);
            expect(hookInputsSchema.shape).toHaveProperty(name);
            expect(hookSchema.inputProperties).toHaveProperty(name);
        } else {
            expect(sshTargetOf(inputs)).not.toHaveProperty(name);
            expect(connectionOf(inputs)).not.toHaveProperty(name);
            expect(hookInputsSchema.shape).not.toHaveProperty(name);
            expect(hookSchema.inputProperties).not.toHaveProperty(name);
        }
    });
});

describe("the derived lists", () => {
    it("the host-file schema has exactly the declared fields", () => {
        expect(Object.keys(hostPatchSchema.shape).sort()).toEqual(Object.keys(HOST_FIELDS).sort());
    });

    it("the Host's inputs are the declared input fields plus the name, the system and the run's data", () => {
        const declared = Object.entries(HOST_FIELDS as Record<string, HostFieldSpec>).filter(([, spec]) => spec.input).map(([name]) => name);
        const others = Object.keys(hostInputsSchema.shape).filter((key) => !declared.includes(key));
        expect(others.sort()).toEqual(["buildGroup", "drvPath", "name", "pin", "provenance", "rollout", "secrets", "storePath"]);
    });

    it("the Hook's connection is the host's name and the declared connection fields", () => {
        const connection = Object.entries(HOST_FIELDS as Record<string, HostFieldSpec>).filter(([, spec]) => spec.connection).map(([name]) => name);
        const hookOwn = ["hook", "command", "runAs", "trigger", "timeoutSeconds"];
        expect(Object.keys(hookInputsSchema.shape).filter((key) => !hookOwn.includes(key)).sort()).toEqual(["name", ...connection].sort());
    });
});
