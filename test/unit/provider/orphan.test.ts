// The plugin whose engine died outright: cancels, waits for the calls under way, then exits.
import { describe, expect, it } from "vitest";
import { exitWhenOrphaned } from "../../../src/provider/orphan";
import { DeferredProvider } from "../../../src/provider/deferredProvider";

const tick = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("exitWhenOrphaned", () => {
    it("does nothing while the engine lives; once it is gone: one cancel, and the exit only after the last call under way", async () => {
        let parent = 4242;
        let calls = 2;
        const cancels: number[] = [];
        const exits: number[] = [];
        let silenced = 0;
        const stop = exitWhenOrphaned({
            parentPid: 4242,
            currentParent: () => parent,
            cancel: async () => void cancels.push(Date.now()),
            callsUnderWay: () => calls,
            exit: (code) => exits.push(code),
            silenceOutput: () => void (silenced += 1),
            intervalMs: 5,
        });
        try {
            await tick(30);
            expect([cancels.length, exits.length, silenced]).toEqual([0, 0, 0]);
            parent = 1;
            await tick(30);
            expect(cancels.length).toBe(1);
            // Its output went to the dead engine: writes there must fail quietly (silenced once).
            expect(silenced).toBe(1);
            expect(exits).toEqual([]);
            calls = 1;
            await tick(30);
            expect(exits).toEqual([]);
            calls = 0;
            await tick(30);
            expect(exits).toEqual([0]);
            expect(cancels.length).toBe(1);
        } finally {
            stop();
        }
    });

    it("the deferred provider counts the engine's deploying calls while they run", async () => {
        let finish!: () => void;
        const provider = new DeferredProvider("1.0.0", async () => ({
            update: () => new Promise((resolve) => (finish = () => resolve({ outs: {} }))),
        }));
        expect(provider.callsUnderWay).toBe(0);
        const update = provider.update("id", "urn", {}, {});
        await tick(5);
        expect(provider.callsUnderWay).toBe(1);
        finish();
        await update;
        expect(provider.callsUnderWay).toBe(0);
        // A call that fails is counted out too.
        const failing = new DeferredProvider("1.0.0", async () => ({ read: async () => Promise.reject(new Error("unreachable")) }));
        await expect(failing.read("id", "urn", {})).rejects.toThrow("unreachable");
        expect(failing.callsUnderWay).toBe(0);
    });
});
