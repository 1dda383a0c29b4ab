// The nixos provider plugin takes about half a second to start (Node.js, the SDK's gRPC server).
// The engine starts a plugin when the program first needs it: for a Host, only once the program
// has loaded its modules, read the stack and evaluated every host, and then the program waits for
// it. Asking the provider which version it is, first thing, makes the engine start it while the
// program does that work; the answer tells the program which provider serves the stack. The
// question says whether the run is a preview or an update (the provider's plans differ): every
// Host asks it (once per run) before it registers, so any program's provider hears it, and a
// Host's check that reaches the provider first waits for it (provider/deferredProvider.ts).
import { invoke } from "@pulumi/pulumi/runtime/invoke";
import { isDryRun } from "@pulumi/pulumi/runtime/settings";
import { PROVIDER_INFO_TOKEN, type ProviderInfo, type ProviderInfoArgs } from "../provider/providerInfo";

/** What startProvider learnt: the provider's answer, or why there is none. */
export type ProviderStart = { info: ProviderInfo } | { error: string };

let started: Promise<ProviderStart> | undefined;

/**
 * Starts the provider plugin (once per program run) and resolves with its answer; never rejects:
 * a provider that cannot start fails the first Host's registration with the engine's own error.
 */
export function startProvider(call: typeof invoke = invoke, dryRun: () => boolean = isDryRun): Promise<ProviderStart> {
    started ??= call(PROVIDER_INFO_TOKEN, { dryRun: dryRun() } satisfies ProviderInfoArgs).then(
        (result) => {
            const version = (result as { version?: unknown } | undefined)?.version;
            return typeof version === "string" ? { info: { version } } : { error: `the provider's answer has no version: ${JSON.stringify(result)}` };
        },
        (error: unknown) => ({ error: error instanceof Error ? error.message : String(error) }),
    );
    return started;
}

/** A warning when the provider serving the stack is another version than the program's, else undefined. */
export function providerVersionWarning(start: ProviderStart, programVersion: string): string | undefined {
    if (!("info" in start) || start.info.version === programVersion) return undefined;
    return (
        `the nixos provider serving this stack is version ${start.info.version}, the program is ${programVersion}: ` +
        "the engine found another pulumi-resource-nixos than this package's (Pulumi.yaml `plugins`, or one installed with `pulumi plugin install`); " +
        "run `pulumi plugin ls` and remove or update the stale one"
    );
}

/** Forgets the started provider (tests). */
export function resetProviderStart(): void {
    started = undefined;
}
