// The resource types nixos-fleet's provider serves: one definition, for the resources, the
// provider and the operator commands (this file loads nothing, so the commands need no SDK).
export const HOST_TYPE = "nixos:index:Host";
export const HOOK_TYPE = "nixos:index:Hook";
