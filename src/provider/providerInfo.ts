// `nixos:index:providerInfo`: the one function the provider serves. The program calls it first
// (program/providerStart.ts), which also makes the engine start the plugin early.
export const PROVIDER_INFO_TOKEN = "nixos:index:providerInfo";

export interface ProviderInfo {
    /** The nixos-fleet package version of the provider plugin serving the stack. */
    version: string;
}
