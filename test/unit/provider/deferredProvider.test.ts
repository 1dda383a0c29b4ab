// The plugin answers the engine's handshake and providerInfo before loading the Host resource's
// code; the first other call loads it, once.
import type * as provider from "@pulumi/pulumi/provider";
import { describe, expect, it } from "vitest";
import { DeferredProvider } from "../../../src/provider/deferredProvider";
import { PROVIDER_INFO_TOKEN } from "../../../src/provider/providerInfo";
import { HostProvider } from "../../../src/provider/hostProvider";

/** What the SDK's provider server (provider/server.js) calls on a provider when it has it. */
const SERVED = ["version", "schema", "getSchema", "cancel", "parameterizeArgs", "parameterizeValue", "check", "diff", "create", "read", "update", "delete", "construct", "call", "invoke"];

function deferred() {
    const calls: string[] = [];
    let loads = 0;
    const inner: provider.Provider = {
        version: "9.9.9",
        check: async (urn) => (calls.push(`check ${urn}`), { inputs: { checked: urn } }),
        diff: async () => (calls.push("diff"), { changes: false }),
        create: async () => ({ id: "x", outs: {} }),
        cancel: async () => void calls.push("cancel"),
        invoke: async (token) => (calls.push(`invoke ${token}`), { outputs: {} }),
    };
    const hosts = new DeferredProvider("1.2.3", async () => {
        loads += 1;
        return inner;
    });
    return { hosts, calls, loads: () => loads };
}

describe("DeferredProvider", () => {
    it("answers providerInfo with its version before loading the provider, then loads it (once) while the program evaluates", async () => {
        const { hosts, loads, calls } = deferred();
        expect(hosts.version).toBe("1.2.3");
        expect(await hosts.invoke(PROVIDER_INFO_TOKEN, {})).toEqual({ outputs: { version: "1.2.3" } });
        expect(loads()).toBe(0);
        await new Promise((resolve) => setImmediate(resolve));
        expect(loads()).toBe(1);
        await hosts.check("urn:a", {}, {});
        expect(loads()).toBe(1);
        expect(calls).toEqual([`invoke ${PROVIDER_INFO_TOKEN}`, "check urn:a"]);
    });

    it("loads the provider once, on the first other call, and passes every call through", async () => {
        const { hosts, calls, loads } = deferred();
        const [a, b] = await Promise.all([hosts.check("urn:a", {}, {}), hosts.check("urn:b", {}, {})]);
        expect(a).toEqual({ inputs: { checked: "urn:a" } });
        expect(b).toEqual({ inputs: { checked: "urn:b" } });
        await hosts.diff("id", "urn:a", {}, {});
        await hosts.invoke("nixos:index:other", {});
        expect(loads()).toBe(1);
        expect(calls).toEqual(["check urn:a", "check urn:b", "diff", "invoke nixos:index:other"]);
    });

    it("hands the program's providerInfo arguments (the run's kind) to the provider when it loads, and at once once loaded", async () => {
        const said: unknown[] = [];
        const inner: provider.Provider = { check: async () => ({ inputs: {} }), invoke: async (_token, inputs) => (said.push(inputs), { outputs: {} }) };
        const hosts = new DeferredProvider("1.2.3", async () => inner);
        await hosts.invoke(PROVIDER_INFO_TOKEN, { dryRun: false });
        expect(said).toEqual([]);
        await hosts.check("urn:a", {}, {});
        expect(said).toEqual([{ dryRun: false }]);
        await hosts.invoke(PROVIDER_INFO_TOKEN, { dryRun: true });
        expect(said).toEqual([{ dryRun: false }, { dryRun: true }]);
    });

    describe("a Host's check that reaches the provider before the program's providerInfo (the engine forwards the two on their own)", () => {
        function recording(runKindWaitMs: number) {
            const seen: string[] = [];
            let kind = "unknown";
            const inner: provider.Provider = {
                check: async (urn) => (seen.push(`check ${urn} in a run of kind ${kind}`), { inputs: {} }),
                diff: async (_id, urn) => (seen.push(`diff ${urn} in a run of kind ${kind}`), { changes: false }),
                invoke: async (_token, inputs) => ((kind = (inputs as { dryRun: boolean }).dryRun ? "preview" : "update"), { outputs: {} }),
            };
            return { seen, hosts: new DeferredProvider("1.2.3", async () => inner, { runKindWaitMs }) };
        }

        it("waits for it: the provider checks and diffs knowing whether the run is a preview or an update", async () => {
            const { hosts, seen } = recording(60_000);
            const check = hosts.check("urn:a", {}, {});
            const diff = hosts.diff("id", "urn:a", {}, {});
            await new Promise((resolve) => setTimeout(resolve, 20));
            expect(seen).toEqual([]);
            await hosts.invoke(PROVIDER_INFO_TOKEN, { dryRun: false });
            await Promise.all([check, diff]);
            expect(seen).toEqual(["check urn:a in a run of kind update", "diff urn:a in a run of kind update"]);
        });

        it("waits for it also when it comes while the provider loads", async () => {
            let finishLoad!: () => void;
            let kind = "unknown";
            const inner: provider.Provider = {
                check: async () => ({ inputs: { kind } }),
                invoke: async (_token, inputs) => ((kind = (inputs as { dryRun: boolean }).dryRun ? "preview" : "update"), { outputs: {} }),
            };
            const hosts = new DeferredProvider("1.2.3", () => new Promise((resolve) => (finishLoad = () => resolve(inner))), { runKindWaitMs: 60_000 });
            const check = hosts.check("urn:a", {}, {});
            const info = hosts.invoke(PROVIDER_INFO_TOKEN, { dryRun: true });
            finishLoad();
            await info;
            expect(await check).toEqual({ inputs: { kind: "preview" } });
        });

        it("a provider whose providerInfo fails does not hold the checks that wait for it forever", async () => {
            const inner: provider.Provider = {
                check: async () => ({ inputs: { checked: true } }),
                create: async () => ({ id: "x", outs: {} }),
                invoke: async () => {
                    throw new Error("providerInfo broke");
                },
            };
            const hosts = new DeferredProvider("1.2.3", async () => inner, { runKindWaitMs: 60_000 });
            // Loaded already (by an earlier call): providerInfo reaches it at once.
            await hosts.create("urn:loads", {});
            const info = hosts.invoke(PROVIDER_INFO_TOKEN, { dryRun: true });
            const check = hosts.check("urn:a", {}, {});
            await expect(info).rejects.toThrow("providerInfo broke");
            const outcome = await Promise.race([check, new Promise((resolve) => setTimeout(() => resolve("still waiting after 1 s"), 1000))]);
            expect(outcome).toEqual({ inputs: { checked: true } });
        });

        it("a program that never asks (pulumi import) costs the wait once per run, then calls go on at once, as a run of unknown kind", async () => {
            const { hosts, seen } = recording(50);
            const started = Date.now();
            await hosts.check("urn:a", {}, {});
            expect(Date.now() - started).toBeGreaterThanOrEqual(45);
            const again = Date.now();
            await hosts.check("urn:b", {}, {});
            await hosts.diff("id", "urn:b", {}, {});
            expect(Date.now() - again).toBeLessThan(45);
            expect(seen).toEqual(["check urn:a in a run of kind unknown", "check urn:b in a run of kind unknown", "diff urn:b in a run of kind unknown"]);
        });
    });

    it("cancel before anything loaded loads nothing, and still reaches the provider when a call loads it", async () => {
        const { hosts, calls, loads } = deferred();
        await hosts.cancel();
        expect(loads()).toBe(0);
        // A call that was on its way when the operator pressed Ctrl-C: its deploy sees the cancel.
        await hosts.check("urn:a", {}, {});
        expect(calls).toEqual(["cancel", "check urn:a"]);
        await hosts.cancel();
        expect(calls).toEqual(["cancel", "check urn:a", "cancel"]);
    });

    it("after a load, cancel reaches the provider once", async () => {
        const { hosts, calls } = deferred();
        await hosts.check("urn:a", {}, {});
        await hosts.cancel();
        expect(calls).toEqual(["check urn:a", "cancel"]);
    });

    it("a load that throws fails each call with its error, and a cancel after it does not fail", async () => {
        let loads = 0;
        const hosts = new DeferredProvider("1.2.3", async () => {
            loads += 1;
            throw new SyntaxError("Unexpected token '}' (dist/src/provider/hostProvider.js:12)");
        });
        await expect(hosts.check("urn:a", {}, {})).rejects.toThrow(/^the nixos provider 1\.2\.3 could not load its Host code: Unexpected token .*; run `npm run bootstrap`/);
        await expect(hosts.diff("id", "urn:a", {}, {})).rejects.toThrow(/Unexpected token/);
        await expect(hosts.cancel()).resolves.toBeUndefined();
        expect(loads).toBe(1);
        expect(await hosts.invoke(PROVIDER_INFO_TOKEN, {})).toEqual({ outputs: { version: "1.2.3" } });
    });

    it("a method the provider lacks fails loudly", async () => {
        const { hosts } = deferred();
        await expect(hosts.read("id", "urn:a")).rejects.toThrow(/has no read/);
    });

    it("serves everything the Host provider serves (a method it gains cannot go missing behind the deferral)", () => {
        const hostProvider = new HostProvider({ runner: async () => Promise.reject(new Error("unused")), logger: { log: async () => undefined }, version: "1.2.3", runtimeDir: "/nonexistent" });
        const deferral = new DeferredProvider("1.2.3", async () => hostProvider);
        const served = (object: object) => SERVED.filter((name) => (object as Record<string, unknown>)[name] !== undefined);
        expect(served(hostProvider).length).toBeGreaterThan(5);
        expect(served(deferral)).toEqual(served(hostProvider));
    });
});
