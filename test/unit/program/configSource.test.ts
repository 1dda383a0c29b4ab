import { describe, expect, it } from "vitest";
import { formatError, isFleetError } from "../../../src/errors";
import { namespaceConfig, namespaceValues, parseConfigEnvironment, programConfig } from "../../../src/program/configSource";
import { planFleet } from "../../../src/program/fleet";
import type { ProcessRunner } from "../../../src/process/runner";

const noProcesses: ProcessRunner = async (argv) => {
    throw new Error(`unexpected process: ${argv.join(" ")}`);
};

describe("the program's config source", () => {
    it("a missing, empty or null PULUMI_CONFIG is an empty config", () => {
        for (const text of [undefined, "", "  ", "null"]) {
            expect(parseConfigEnvironment(text)).toEqual({});
            expect(programConfig("nixos-fleet", text).get("hosts")).toBeUndefined();
        }
    });

    it("reads ns:key (and the legacy ns:config:key) as Pulumi's text values", () => {
        const config = namespaceConfig(
            parseConfigEnvironment(JSON.stringify({ "nixos-fleet:hosts": '["psi"]', "nixos-fleet:config:parallel": "2", "aws:region": "x" })),
            "nixos-fleet",
        );
        expect(config.get("hosts")).toBe('["psi"]');
        expect(config.get("parallel")).toBe("2");
        expect(config.get("region")).toBeUndefined();
    });

    it("a config that is not a JSON mapping is a config error, not a crash", () => {
        expect(() => parseConfigEnvironment("[1]")).toThrow(/not a mapping/);
        expect(() => parseConfigEnvironment("{")).toThrow(/not JSON/);
    });

    it("a new stack without config (PULUMI_CONFIG=null) says: set nixos-fleet:hosts …, with an example", async () => {
        let error: unknown;
        try {
            await planFleet({ config: programConfig("nixos-fleet", "null"), projectRoot: "/srv/fleet", stackName: "new", runner: noProcesses });
        } catch (caught) {
            error = caught;
        }
        expect(isFleetError(error)).toBe(true);
        const text = formatError(error);
        expect(text).not.toMatch(/Cannot convert undefined or null/);
        expect(text).toContain("set nixos-fleet:hosts to the hosts this stack deploys");
        expect(text).toContain("npm run pulumi -- config set --path 'nixos-fleet:hosts[0]' psi --stack new");
    });
});

describe("namespaceValues", () => {
    it("keeps the namespace's keys, without the prefix, JSON-decoded when they can be", () => {
        const values = namespaceValues({ "nixos-fleet:overrides": '{"alpha":{"port":22}}', "nixos-fleet:config:parallel": "2", "nixos-fleet:note": "plain text", "aws:region": "x" }, "nixos-fleet");
        expect(values).toEqual({ overrides: { alpha: { port: 22 } }, parallel: 2, note: "plain text" });
    });
});
