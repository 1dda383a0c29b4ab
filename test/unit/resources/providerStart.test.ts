import { afterEach, describe, expect, it } from "vitest";
import { providerVersionWarning, resetProviderStart, startProvider } from "../../../src/resources/providerStart";
import { PROVIDER_INFO_TOKEN, runKindOf } from "../../../src/provider/providerInfo";

afterEach(() => resetProviderStart());

describe("startProvider", () => {
    it("asks the provider once per run, however often it is called", async () => {
        const calls: string[] = [];
        const call = async (token: string) => {
            calls.push(token);
            return { version: "1.2.3" };
        };
        const first = startProvider(call as never);
        const second = startProvider(call as never);
        expect(await first).toEqual({ info: { version: "1.2.3" } });
        expect(await second).toEqual({ info: { version: "1.2.3" } });
        expect(calls).toEqual([PROVIDER_INFO_TOKEN]);
    });

    it("says whether the run is a preview or an update (the provider's plans differ)", async () => {
        const args: unknown[] = [];
        const call = async (_token: string, inputs: unknown) => (args.push(inputs), { version: "1" });
        await startProvider(call as never, () => false);
        resetProviderStart();
        await startProvider(call as never, () => true);
        expect(args).toEqual([{ dryRun: false }, { dryRun: true }]);
        expect([runKindOf(args[0]), runKindOf(args[1]), runKindOf({}), runKindOf(undefined), runKindOf({ dryRun: "false" })]).toEqual(["update", "preview", "unknown", "unknown", "unknown"]);
    });

    it("never rejects: a provider that cannot answer is an error value", async () => {
        const failing = async () => {
            throw new Error("could not load plugin nixos");
        };
        expect(await startProvider(failing as never)).toEqual({ error: "could not load plugin nixos" });
        resetProviderStart();
        expect(await startProvider((async () => ({})) as never)).toEqual({ error: "the provider's answer has no version: {}" });
    });
});

describe("providerVersionWarning", () => {
    it("names both versions and the stale plugin when they differ, and says nothing when they match or are unknown", () => {
        const warning = providerVersionWarning({ info: { version: "0.0.9" } }, "0.1.0");
        expect(warning).toContain("version 0.0.9, the program is 0.1.0");
        expect(warning).toContain("pulumi plugin ls");
        expect(providerVersionWarning({ info: { version: "0.1.0" } }, "0.1.0")).toBeUndefined();
        expect(providerVersionWarning({ error: "no provider" }, "0.1.0")).toBeUndefined();
    });
});
