import Module from "node:module";
import { describe, expect, it } from "vitest";
import { deferRuntimeIndex } from "../../../src/cli/sdkRuntime";
import { withoutResultQueries } from "../../../src/cli/stack";

describe("deferRuntimeIndex", () => {
    const FILE = "/sdk/runtime/index.js";
    const setup = () => {
        const cache: NodeJS.Dict<NodeJS.Module> = {};
        const loads: string[] = [];
        const channelOptions = { "grpc.max_receive_message_length": 1 };
        const load = (id: string) => {
            loads.push(id);
            if (id === "@pulumi/pulumi/runtime/settings") return { grpcChannelOptions: channelOptions };
            const real = { grpcChannelOptions: channelOptions, serializeFunction: () => "real" };
            const module = new Module(id);
            module.exports = real;
            cache[id] = module;
            return real;
        };
        deferRuntimeIndex(() => FILE, load, cache);
        return { cache, loads, channelOptions };
    };

    it("answers grpcChannelOptions without loading the runtime index", () => {
        const { cache, loads, channelOptions } = setup();
        const standIn = cache[FILE]!.exports as Record<string, unknown>;
        expect(standIn.grpcChannelOptions).toBe(channelOptions);
        expect(loads).toEqual(["@pulumi/pulumi/runtime/settings"]);
    });

    it("loads the real index on first use of anything else, and later requires get the real one", () => {
        const { cache, loads } = setup();
        const standIn = cache[FILE]!.exports as Record<string, () => string>;
        expect(standIn.serializeFunction!()).toBe("real");
        expect(loads).toEqual(["@pulumi/pulumi/runtime/settings", FILE]);
        expect((cache[FILE]!.exports as Record<string, unknown>).serializeFunction).toBe(standIn.serializeFunction);
        expect(cache[FILE]!.exports).not.toBe(standIn);
        expect("serializeFunction" in standIn).toBe(true);
    });

    it("leaves an index that is already loaded alone", () => {
        const cache: NodeJS.Dict<NodeJS.Module> = { [FILE]: new Module(FILE) };
        const before = cache[FILE];
        deferRuntimeIndex(() => FILE, () => { throw new Error("must not load"); }, cache);
        expect(cache[FILE]).toBe(before);
    });
});

describe("withoutResultQueries", () => {
    it("answers the outputs and summary reads up() ends with, without running pulumi", async () => {
        const ran: string[] = [];
        const stack = {
            outputs: async () => {
                ran.push("stack output");
                return { a: 1 };
            },
            info: async () => {
                ran.push("stack history");
                return {};
            },
        };
        const light = withoutResultQueries(stack as never) as unknown as typeof stack;
        expect(await light.outputs()).toEqual({});
        expect(await light.info()).toBeUndefined();
        expect(ran).toEqual([]);
    });
});
