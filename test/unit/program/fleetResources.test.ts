// The Fleet registers exactly the resources index.ts registered before it existed: top-level Hosts
// (no parent, so existing stacks keep their URNs and preview with no changes), hooks as children of
// their Host, in rollout order (not-targeted hosts in their batches too, with their dependencies). The URNs the operator commands
// build (cli/stack.ts) and `pulumi up --target` parsing (program/targets.ts) must match them.
import * as pulumi from "@pulumi/pulumi";
import { beforeAll, describe, expect, it } from "vitest";
import { resolveHost, type HostConfig, type StackConfig } from "../../../src/config";
import { PROJECT, deploymentTargets, hostNameOfUrn, hostUrn, hookUrns } from "../../../src/cli/stack";
import type { FleetPlan } from "../../../src/program/fleet";
import { Fleet, registrationOrder } from "../../../src/program/fleetResources";
import { hostInputsOf } from "../../../src/program/hostInputs";
import { hostsFromPulumiArgs } from "../../../src/program/targets";

const STACK = "dev";
const registered: { type: string; name: string; inputs: Record<string, unknown> }[] = [];

beforeAll(() => {
    pulumi.runtime.setMocks(
        {
            newResource: (args) => {
                registered.push({ type: args.type, name: args.name, inputs: args.inputs as Record<string, unknown> });
                return { id: `${args.name}-id`, state: { ...args.inputs, generation: 1 } };
            },
            call: () => ({}),
        },
        PROJECT,
        STACK,
        true,
    );
});

function host(name: string, fields: Record<string, unknown> = {}): HostConfig {
    return resolveHost({ address: `${name}.example.org`, ...fields }, { name, file: `/project/hosts/${name}.yaml`, baseDir: "/project" });
}

const system = (name: string) => ({ storePath: `/nix/store/${"a".repeat(32)}-nixos-system-${name}`, drvPath: `/nix/store/${"a".repeat(32)}-nixos-system-${name}.drv` });

/** alpha (with a hook) in batch 1, beta in batch 2; gamma not targeted. */
function plan(): FleetPlan {
    const alpha = host("alpha", { hooks: [{ name: "migrate", command: ["/bin/true"] }] });
    const beta = host("beta");
    const gamma = host("gamma");
    return {
        stack: {} as StackConfig,
        hosts: [alpha, beta].map((config) => ({ config, inputs: hostInputsOf(config, system(config.name)) })),
        batches: [
            { number: 1, canary: true, hosts: ["alpha", "gamma"] },
            { number: 2, canary: false, hosts: ["beta"] },
        ],
        warnings: [],
        evaluation: { evaluated: 1, cached: 0 },
        notTargeted: [gamma],
    };
}

const valueOf = <T>(output: pulumi.Output<T>): Promise<T> => new Promise((resolve) => output.apply(resolve));

describe("Fleet", () => {
    let fleet: Fleet;
    beforeAll(() => {
        fleet = new Fleet(plan(), { secretPaths: [], otherStacks: [] });
    });

    it("is not a component: its Hosts are top-level resources with the URNs existing stacks have", async () => {
        expect(fleet).not.toBeInstanceOf(pulumi.Resource);
        for (const name of ["alpha", "beta", "gamma"]) {
            const urn = await valueOf(fleet.hosts[name]!.urn);
            expect(urn).toBe(`urn:pulumi:${STACK}::nixos-fleet::nixos:index:Host::${name}`);
            expect(urn).toBe(hostUrn(STACK, name));
            expect(hostNameOfUrn(urn)).toBe(name);
            expect(hostsFromPulumiArgs(["up", "--target", urn])).toEqual([name]);
        }
    });

    it("registers each hook as a child of its Host, with the URN `deploy --hosts` targets", async () => {
        const alpha = plan().hosts[0]!.config;
        const urn = await valueOf(fleet.hooks["alpha-migrate"]!.urn);
        expect(urn).toBe(`urn:pulumi:${STACK}::nixos-fleet::nixos:index:Host$nixos:index:Hook::alpha-migrate`);
        expect(hookUrns(STACK, alpha)).toEqual([urn]);
        expect(deploymentTargets(STACK, [alpha]).get("alpha")).toEqual([await valueOf(fleet.hosts.alpha!.urn), urn]);
        // A stack named with its organization (Pulumi Cloud's acme/prod, the file backend's
        // organization/<project>/<stack>): its URNs name the stack alone.
        for (const qualified of [`acme/${STACK}`, `organization/nixos-fleet/${STACK}`]) {
            expect(hookUrns(qualified, alpha)).toEqual([urn]);
            expect(deploymentTargets(qualified, [alpha]).get("alpha")).toEqual([await valueOf(fleet.hosts.alpha!.urn), urn]);
        }
    });

    it("registers every host in rollout order, targeted or not, and each host's hooks", async () => {
        await valueOf(fleet.hooks["alpha-migrate"]!.urn);
        // A hook reaches the engine once its parent's URN is known, so only the hosts' order is fixed
        // (gamma, with nothing to resolve, reaches the mocks before alpha; beta waits for both).
        const names = registered.map((r) => `${r.type} ${r.name}`);
        expect(names.filter((name) => name.startsWith("nixos:index:Host "))).toEqual(["nixos:index:Host gamma", "nixos:index:Host alpha", "nixos:index:Host beta"]);
        expect(names.filter((name) => name.startsWith("nixos:index:Hook "))).toEqual(["nixos:index:Hook alpha-migrate"]);
        expect(registered.find((r) => r.name === "gamma")!.inputs).toHaveProperty("notEvaluated", "not targeted");
        expect(registered.find((r) => r.name === "alpha-migrate")!.inputs).toMatchObject({ name: "alpha", address: "alpha.example.org", hook: "migrate", command: ["/bin/true"] });
    });

    it("gives the stack the same outputs as before: each host's store path, generation and NixOS version", async () => {
        const outputs = fleet.outputs.hosts;
        expect(Object.keys(outputs)).toEqual(["alpha", "gamma", "beta"]);
        expect(Object.keys(outputs.alpha!)).toEqual(["storePath", "generation", "nixosVersion"]);
        expect(await valueOf(outputs.alpha!.storePath)).toBe(system("alpha").storePath);
    });
});

describe("registrationOrder", () => {
    it("a not-targeted host keeps its place and its dependencies (a targeted run registering it without them was refused: pulumi/pulumi#24303)", () => {
        // psi | bld | rho | tgt, only tgt targeted (deploy --hosts tgt)
        const tgt = host("tgt");
        const order = registrationOrder({
            batches: [
                { number: 1, canary: true, hosts: ["psi"] },
                { number: 2, canary: false, hosts: ["bld"] },
                { number: 3, canary: false, hosts: ["rho"] },
                { number: 4, canary: false, hosts: ["tgt"] },
            ],
            hosts: [{ config: tgt, inputs: hostInputsOf(tgt, system("tgt")) }],
            notTargeted: [host("bld"), host("psi"), host("rho")],
        });
        expect(order).toEqual([
            { name: "psi", after: [] },
            { name: "bld", after: ["psi"] },
            { name: "rho", after: ["bld"] },
            { name: "tgt", after: ["rho"] },
        ]);
    });

    it("every host of a batch depends on every host of the batch before", () => {
        const order = registrationOrder(plan());
        expect(order).toEqual([
            { name: "alpha", after: [] },
            { name: "gamma", after: [] },
            { name: "beta", after: ["alpha", "gamma"] },
        ]);
    });
});
