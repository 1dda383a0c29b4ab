import { describe, expect, it } from "vitest";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { chooseDeployment, hostGenerationPin, recordsGeneration, unrecordedNotice } from "../../../src/cli/rollback";
import { readPins, stackConfigFile, writePins } from "../../../src/cli/pins";
import { plainStackConfig } from "../../../src/config/plainStackConfig";
import { configSourceOf, isoPinTime, readStackConfig } from "../../../src/config/stackConfig";
import { tempDir } from "../helpers/fixtures";
import { pinnedInputs } from "../../../src/program/fleet";
import { isFleetError } from "../../../src/errors";
import type { HostInputs, HostOutputs } from "../../../src/provider/hostInputs";

const path = (n: number) => `/nix/store/${String(n).repeat(32).slice(0, 32)}-nixos-system-psi`;
const recorded = {
    history: [
        { generation: 4, storePath: path(4), action: "switch", activatedAt: "2026-11-21T10:04:00.500Z" },
        { generation: 3, storePath: path(3), action: "switch", activatedAt: "2026-11-21T10:03:00.000Z" },
        { generation: 1, storePath: path(1), action: "switch", activatedAt: "2026-11-21T10:01:00.000Z" },
    ],
} as unknown as HostOutputs;

function thrown(work: () => unknown) {
    try {
        work();
    } catch (error) {
        if (isFleetError(error)) return error;
        throw error;
    }
    throw new Error("expected a FleetError");
}

describe("chooseDeployment", () => {
    it("--steps K is the K-th recorded deployment before the current one", () => {
        expect(chooseDeployment("psi", recorded, { kind: "steps", steps: 1 }).entry.generation).toBe(3);
        expect(chooseDeployment("psi", recorded, { kind: "steps", steps: 2 }).entry.generation).toBe(1);
    });

    it("too many steps says where the host is and how many deployments were recorded before it", () => {
        const error = thrown(() => chooseDeployment("psi", recorded, { kind: "steps", steps: 3 }));
        expect(error.host).toBe("psi");
        expect(error.message).toBe("cannot go back 3 deployment(s): the host is on generation 4, and the stack recorded only 2 deployments before it");
        expect(error.hint).toContain("4, 3, 1");
    });

    it("--to-generation finds the recorded generation, or lists the recorded ones", () => {
        expect(chooseDeployment("psi", recorded, { kind: "generation", generation: 1 }).entry.storePath).toBe(path(1));
        expect(thrown(() => chooseDeployment("psi", recorded, { kind: "generation", generation: 2 })).message).toBe(
            "generation 2 was not deployed by this stack (recorded: 4, 3, 1)",
        );
    });

    it("--to-stack-version without recorded numbers takes the newest deployment at the end of that update, to the second", () => {
        const end = new Date("2026-11-21T10:04:00.000Z"); // recorded to the second
        expect(chooseDeployment("psi", recorded, { kind: "stackVersion", version: 5, endTime: end }).entry.generation).toBe(4);
        const earlier = new Date("2026-11-21T10:02:00.000Z");
        expect(chooseDeployment("psi", recorded, { kind: "stackVersion", version: 3, endTime: earlier }).entry.generation).toBe(1);
        const before = new Date("2026-11-21T09:00:00.000Z");
        expect(thrown(() => chooseDeployment("psi", recorded, { kind: "stackVersion", version: 1, endTime: before })).message).toBe(
            "the host had not been deployed by stack version 1 yet",
        );
    });

    it("a host the stack never deployed cannot be rolled back", () => {
        expect(thrown(() => chooseDeployment("psi", undefined, { kind: "steps", steps: 1 })).message).toBe(
            "the stack has no recorded deployment of this host",
        );
    });

    it("a rollback recorded before records had a kind is still not a step (same generation and system as an older record)", () => {
        const legacy = {
            history: [
                { generation: 3, storePath: path(3), action: "switch", activatedAt: "2026-11-21T10:05:00.000Z" }, // the old rollback 4 → 3
                ...recorded.history,
            ],
        } as unknown as HostOutputs;
        expect(chooseDeployment("psi", legacy, { kind: "steps", steps: 1 }).entry.generation).toBe(1);
    });
});

describe("pins in the stack's config file", () => {
    it("adds and removes pins, keeping comments and other settings", () => {
        const file = join(tempDir("pins-"), "Pulumi.prod.yaml");
        writeFileSync(file, "# prod fleet\nconfig:\n  nixos-fleet:hosts: [psi, rho] # the lab\n");
        writePins(file, { psi: { storePath: path(3), generation: 3, reason: "rollback" } });
        expect(readPins(file)).toEqual({ psi: { storePath: path(3), generation: 3, reason: "rollback" } });
        const text = readFileSync(file, "utf8");
        expect(text).toContain("# prod fleet");
        expect(text).toContain("# the lab");
        writePins(file, { psi: undefined });
        expect(readPins(file)).toEqual({});
        expect(readFileSync(file, "utf8")).not.toContain("pins");
        expect(readFileSync(file, "utf8")).toContain("nixos-fleet:hosts");
    });

    it("writes a pin's texts quoted: pulumi reads an unquoted activatedAt as a time and hands it on reformatted", () => {
        const root = tempDir("pins-");
        writeFileSync(join(root, "Pulumi.yaml"), "name: nixos-fleet\n");
        const file = join(root, "Pulumi.prod.yaml");
        writeFileSync(file, "config:\n  nixos-fleet:hosts: [psi]\n");
        writePins(file, { psi: { storePath: path(3), generation: 3, activatedAt: "2026-11-30T10:04:54.560Z", reason: "rollback" } });
        expect(readFileSync(file, "utf8")).toContain('activatedAt: "2026-11-30T10:04:54.560Z"');
        expect(readFileSync(file, "utf8")).toContain("generation: 3\n");
        // So the file stays one that the commands read without pulumi (plainStackConfig), the time as written.
        expect(JSON.parse(plainStackConfig(root, "prod")!["nixos-fleet:pins"]!).psi.activatedAt).toBe("2026-11-30T10:04:54.560Z");
    });

    it("a pin's activatedAt as pulumi hands on one written unquoted (Go's time format) is read back as the ISO time", () => {
        expect(isoPinTime("2026-11-30 10:04:54.56 +0000 UTC")).toBe("2026-11-30T10:04:54.560Z");
        expect(isoPinTime("2026-11-30 10:04:54 +0000 UTC")).toBe("2026-11-30T10:04:54.000Z");
        expect(isoPinTime("2026-11-30 10:04:54.123456789 +0000 UTC")).toBe("2026-11-30T10:04:54.123Z");
        expect(isoPinTime("2026-11-30T10:04:54.560Z")).toBe("2026-11-30T10:04:54.560Z");
        expect(isoPinTime("2026-11-30 10:04:54.56 +0200 CEST")).toBe("2026-11-30 10:04:54.56 +0200 CEST");
        const config = readStackConfig(configSourceOf({ "nixos-fleet:hosts": '["psi"]', "nixos-fleet:pins": JSON.stringify({ psi: { storePath: path(3), activatedAt: "2026-11-30 10:04:54.56 +0000 UTC" } }) }), { baseDir: "/srv", file: "Pulumi.prod.yaml" });
        expect(config.pins.psi?.activatedAt).toBe("2026-11-30T10:04:54.560Z");
    });

    it("a stack named with its organization keeps them in its own Pulumi.<stack>.yaml, as pulumi does", () => {
        const root = tempDir("pins-");
        for (const stack of ["prod", "acme/prod", "organization/nixos-fleet/prod"]) {
            expect(stackConfigFile(root, stack)).toBe(join(root, "Pulumi.prod.yaml"));
        }
    });
});

describe("pinnedInputs", () => {
    it("deploys the pinned path without the configuration's drv, keeping the configured path for the preview", () => {
        const inputs = { name: "psi", storePath: path(5), drvPath: "/nix/store/x-a.drv" } as HostInputs;
        const pinned = pinnedInputs(inputs, { storePath: path(3), generation: 3, reason: "rollback" });
        expect(pinned.storePath).toBe(path(3));
        expect(pinned.drvPath).toBeUndefined();
        expect(pinned.pin).toEqual({ generation: 3, reason: "rollback", configuredStorePath: path(5) });
    });
});

describe("generations this stack did not deploy (--to-generation)", () => {
    it("recordsGeneration: only deployments of the configuration count", () => {
        expect(recordsGeneration(recorded, 3)).toBe(true);
        expect(recordsGeneration(recorded, 2)).toBe(false);
        expect(recordsGeneration(undefined, 1)).toBe(false);
    });

    it("hostGenerationPin: the host's own generation, by its store path; a missing one lists what the host has", () => {
        const rows = [
            { generation: 1, storePath: path(1) },
            { generation: 2, storePath: path(2) },
            { generation: 5, storePath: null },
        ];
        expect(hostGenerationPin("psi", rows, 2, "why")).toEqual({ storePath: path(2), generation: 2, reason: "why" });
        const missing = thrown(() => hostGenerationPin("psi", rows, 7, "why"));
        expect(missing.host).toBe("psi");
        expect(missing.message).toBe("generation 7 is neither recorded by this stack nor on the host (the host has: 1, 2, 5)");
        expect(thrown(() => hostGenerationPin("psi", rows, 5, "why")).message).toMatch(/generation 5 is on the host, but its link no longer points at a system/);
    });

    it("the confirmation names the store path and says the stack did not deploy it", () => {
        expect(unrecordedNotice("psi", { storePath: path(2), generation: 2 })).toBe(
            `psi: generation 2 (${path(2)}) was not deployed by this stack (made by hand, by another stack, or before the stack recorded the host): it has no recorded revision or operator`,
        );
    });
});

describe("steps after a rollback to a generation this stack did not deploy", () => {
    it("says the host is on a generation the stack did not deploy, and to use --to-generation", () => {
        const history = {
            history: [
                { generation: 2, storePath: path(2), action: "switch", activatedAt: "2026-11-21T10:05:00.000Z", kind: "rollback" },
                { generation: 3, storePath: path(3), action: "switch", activatedAt: "2026-11-21T10:03:00.000Z", kind: "deploy" },
            ],
        } as unknown as HostOutputs;
        const error = thrown(() => chooseDeployment("psi", history, { kind: "steps", steps: 1 }));
        expect(error.message).toBe("the host was last rolled back to generation 2, which this stack did not deploy, so steps cannot be counted from it");
        expect(error.hint).toMatch(/use --to-generation N/);
    });
});
