// `nixos:index:providerInfo`: the one function the provider serves. The program calls it first
// (resources/providerStart.ts), which also makes the engine start the plugin early, and says in it
// whether this run is a preview or an update (the engine's calls to a provider do not say so
// before the update itself).
export const PROVIDER_INFO_TOKEN = "nixos:index:providerInfo";

export interface ProviderInfo {
    /** The nixos-fleet package version of the provider plugin serving the stack. */
    version: string;
}

/** What the program sends with the call. */
export interface ProviderInfoArgs {
    /** pulumi.runtime.isDryRun() of the program's run: true for a preview (also `pulumi up`'s own), false for an update. */
    dryRun?: boolean;
}

/** Whether the program said this run is a preview or an update; "unknown" when it did not (another or an older program). */
export type RunKind = "preview" | "update" | "unknown";

export function runKindOf(args: unknown): RunKind {
    const dryRun = typeof args === "object" && args !== null ? (args as ProviderInfoArgs).dryRun : undefined;
    return dryRun === true ? "preview" : dryRun === false ? "update" : "unknown";
}
