export const placeholder = "nixos-fleet";
