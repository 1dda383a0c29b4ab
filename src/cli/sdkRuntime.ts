// The Automation API's Stack (automation/stack.js) requires the SDK's runtime index for one value,
// `grpcChannelOptions`. That index also loads closure serialization, npm's arborist and the
// TypeScript compiler: about 0.8 s at the start of every operator command, which never serialize
// a closure. So before the Automation API is loaded, the index is stood in for by an object that
// has `grpcChannelOptions` at hand (from runtime/settings, where the index gets it) and loads the
// real index on first use of anything else; every later require gets the real index.
import Module from "node:module";

type Exports = Record<string | symbol, unknown>;

export function deferRuntimeIndex(resolve: (id: string) => string = require.resolve, load: (id: string) => unknown = require, cache: NodeJS.Dict<NodeJS.Module> = require.cache): void {
    const file = resolve("@pulumi/pulumi/runtime");
    if (cache[file]) return;
    const settings = load("@pulumi/pulumi/runtime/settings") as { grpcChannelOptions: unknown };
    let real: Exports | undefined;
    const index = (): Exports => {
        if (!real) {
            if (cache[file] === standIn) delete cache[file];
            real = load(file) as Exports;
        }
        return real;
    };
    const exports = new Proxy({} as Exports, {
        get: (_target, key) => (key === "grpcChannelOptions" && !real ? settings.grpcChannelOptions : index()[key]),
        has: (_target, key) => key in index(),
    });
    const standIn = new Module(file);
    standIn.filename = file;
    standIn.loaded = true;
    standIn.exports = exports;
    cache[file] = standIn;
}
