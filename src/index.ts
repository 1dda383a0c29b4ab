// nixos-fleet as a library: deploy NixOS systems from any Pulumi program.
//
//   import { Host, evaluateSystem } from "nixos-fleet";
//   const system = await evaluateSystem({ flake: ".", attribute: "nixosConfigurations.web1" });
//   new Host("web1", { address: server.ip, hostKey: server.hostKey, ...system });
//
// `Fleet` does what nixos-fleet's own program does: every host of a hosts/ folder and the stack's
// `nixos-fleet:*` config, as Hosts and Hooks (`export = async () => (await Fleet.create()).outputs`).
// `Host` is the nixos:index:Host resource (served by the pulumi-resource-nixos plugin this
// package ships in bin/); `Hook` runs a command on a host after each deploy that changed it.
import { evaluateSystem as evaluate, type NixosSystem } from "./nix/evaluate";
import { runProcess } from "./process/runner";

export { Host, HOST_TYPE, type HostArgs } from "./resources/host";
export { Hook, HOOK_TYPE, type HookArgs } from "./resources/hook";
export { Fleet, FleetReportedError, type FleetArgs, type FleetHostOutputs, type FleetRegistration } from "./program/fleetResources";
export type { DeploymentRecord, HostInputs, HostOutputs, LastDeploy } from "./provider/hostInputs";
export type { NixosSystem } from "./nix/evaluate";
export { FleetError, formatError } from "./errors";

export interface EvaluateSystemArgs {
    /** Flake reference, e.g. "." or "github:org/infra" or "path:/srv/infra". */
    flake: string;
    /** Attribute of the NixOS configuration, e.g. "nixosConfigurations.web1". */
    attribute: string;
    /** Directory relative flake references resolve against (default: the program's); the result's `flake` is absolute. */
    cwd?: string;
}

/**
 * Evaluates a NixOS system without building it: its flake, attribute, store path and .drv path,
 * ready to spread into a Host's args. Throws a FleetError naming the attribute when Nix fails.
 */
export function evaluateSystem(args: EvaluateSystemArgs): Promise<NixosSystem> {
    return evaluate({ flake: args.flake, attribute: args.attribute }, { runner: runProcess, cwd: args.cwd ?? process.cwd() });
}
