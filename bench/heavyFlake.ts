// P5's flake: N hosts whose configurations all use one deliberately heavy Nix computation (a
// stand-in for a big shared module, e.g. one nixpkgs instance), plus a little per-host work.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { nixSystem } from "../sandbox/knobs";

/** The flake text (pure; unit-tested for its shape). `work` sets how heavy the shared module is. */
export function heavyFlakeText(hosts: readonly string[], work: number, system = nixSystem()): string {
    const names = hosts.map((name) => JSON.stringify(name)).join(" ");
    return `{
  outputs = { self }:
    let
      # The shared heavy module: evaluated once per nix eval, whatever the number of hosts.
      heavy = builtins.foldl' (acc: i: acc + i * i - i / 3) 0 (builtins.genList (i: i) ${work});
      mkHost = name:
        let
          # Per host: a little module-like work of its own.
          own = builtins.foldl' (acc: i: acc + i) 0 (builtins.genList (i: i) 2000);
        in {
          config.system.build.toplevel = derivation {
            inherit name;
            system = "${system}";
            builder = "/bin/sh";
            args = [ "-c" "echo $heavy $own > $out" ];
            heavy = toString heavy;
            own = toString own;
          };
        };
    in {
      nixosConfigurations = builtins.listToAttrs (map (name: { inherit name; value = mkHost name; }) [ ${names} ]);
    };
}
`;
}

export function writeHeavyFlake(dir: string, hosts: readonly string[], work: number): string {
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, "flake.nix"), heavyFlakeText(hosts, work));
    return `path:${dir}`;
}
