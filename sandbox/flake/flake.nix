# A toy NixOS-shaped flake for the sandbox fleet: no inputs, no nixpkgs.
# `sandbox start` copies it to <SANDBOX_DIR>/flake/ (outside git: a flake in a git tree only sees
# tracked files) and writes one knob file per host to hosts/<name>.json (pure evaluation cannot
# read environment variables). Evaluation never builds: every value below is a plain derivation.
{
  description = "nixos-fleet sandbox hosts (toy NixOS configurations)";

  outputs = { self }:
    let
      # Derivations use the machine's /bin/sh and coreutils (Nix runs with sandbox = false).
      hostPath = "/usr/bin:/bin:/usr/sbin:/sbin";
      mkDrv = system: name: script: extra:
        derivation ({
          inherit name system;
          builder = "/bin/sh";
          args = [ "-c" script ];
          PATH = hostPath;
        } // extra);

      # A key nobody holds: breakSsh=true installs it instead of the deployer's.
      brokenKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHNVFdSkC3NQt1W2bJfJZfpAqETWuU8CICiusLPl37PV broken-key@sandbox";

      defaults = {
        system = "x86_64-linux"; version = 1; fail = false; breakSsh = false; size = 0; slow = 0;
        failedUnits = [ ]; packages = [ ]; paths = 0; kernel = 1; authorizedKeys = [ ]; webPort = 0;
      };

      # Shared by every host of a system type; unchanged when one host's knobs change.
      sharedFor = system: {
        activationScript = ./switch-to-configuration.sh;
        base = mkDrv system "sandbox-base-1" ''
          mkdir -p $out/share/sandbox $out/lib
          echo "sandbox base files (shared by all hosts)" > $out/share/sandbox/README
          printf 'NAME=NixOS\nID=nixos\nVARIANT=sandbox\n' > $out/lib/os-release
        '' { };
        tools = mkDrv system "sandbox-tools-1" ''
          mkdir -p $out/bin
          printf '#!/bin/sh\necho "hello from $(hostname)"\n' > $out/bin/sandbox-hello
          chmod +x $out/bin/sandbox-hello
        '' { };
      };

      mkHost = name: knobs:
        let
          cfg = defaults // knobs;
          shared = sharedFor cfg.system;
          version = toString cfg.version;
          nixosVersion = "24.05.${version}-sandbox";
          rootKeys = if cfg.breakSsh then [ brokenKey ] else cfg.authorizedKeys;
          keysText = builtins.concatStringsSep "\n" rootKeys + "\n";

          # Per host: identity, keys, systemd units and knobs of this configuration.
          # web.service serves a page naming the host and version on its own 127.0.0.1 port; a
          # unit named in failedUnits fails for real when started (web: before serving).
          etc = mkDrv cfg.system "sandbox-etc-${name}-${version}" ''
            mkdir -p $out/ssh/authorized_keys.d $out/sandbox $out/systemd/system $out/www
            echo "$hostName" > $out/hostname
            printf '%s' "$keysText" > $out/ssh/authorized_keys.d/root
            printf '%s' "$keysText" > $out/ssh/authorized_keys.d/deployer
            echo "$nixosVersion" > $out/sandbox/version
            if [ "$fail" = 1 ]; then touch $out/sandbox/fail; fi
            if [ "$slow" != 0 ]; then echo "$slow" > $out/sandbox/slow; fi
            printf '<html><body><h1>%s</h1><p>NixOS %s</p></body></html>\n' "$hostName" "$nixosVersion" > $out/www/index.html
            failing() {
              printf "/bin/sh -c 'echo \"%s.service: failing on purpose (sandbox knob failedUnits)\" >&2; exit 1'\n" "$1"
            }
            {
              echo "[Unit]"
              echo "Description=sandbox web page of $hostName (NixOS $nixosVersion)"
              echo "[Service]"
              case " $failedUnits " in *" web "*) echo "ExecStartPre=$(failing web)" ;; esac
              echo "ExecStart=/bin/busybox httpd -f -p 127.0.0.1:$webPort -h $out/www"
            } > $out/systemd/system/web.service
            for unit in $failedUnits; do
              [ "$unit" = web ] && continue
              printf '[Unit]\nDescription=sandbox unit %s (fails: knob failedUnits)\n[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=%s\n' \
                "$unit" "$(failing "$unit")" > "$out/systemd/system/$unit.service"
            done
          '' {
            hostName = name;
            inherit keysText nixosVersion;
            fail = if cfg.fail then "1" else "0";
            slow = toString cfg.slow;
            webPort = toString cfg.webPort;
            failedUnits = builtins.concatStringsSep " " cfg.failedUnits;
          };

          # Extra packages (knob packages = [ "hello@2.12" … ]): one derivation per name and version,
          # the same for every host that names it, like a nixpkgs package.
          extraPackages = map (spec:
            let parts = builtins.match "([^@]+)@(.+)" spec;
                pname = builtins.elemAt parts 0; pversion = builtins.elemAt parts 1;
            in mkDrv cfg.system "${pname}-${pversion}" ''
              mkdir -p $out/bin
              printf '#!/bin/sh\necho "%s %s"\n' "$pname" "$pversion" > $out/bin/$pname
              chmod +x $out/bin/$pname
            '' { inherit pname pversion; }) cfg.packages;

          # Extra store paths (knob paths = N), sized like a real closure's: of every 20, one of
          # 1–8 MiB, three of 64 KiB–1 MiB, sixteen of 1–64 KiB (about 330 KiB on average).
          # Named by version only, so hosts at the same version share them and a new version
          # brings all new ones (like a nixpkgs bump).
          pathBytes = i:
            let r = i - (i / 20) * 20; spread = i * 7919;
                mod = a: b: a - (a / b) * b;
            in if r == 0 then 1048576 * (1 + mod spread 8)
               else if r <= 3 then 65536 * (1 + mod spread 16)
               else 1024 * (1 + mod spread 64);
          extraPaths = builtins.genList (i:
            mkDrv cfg.system "sandbox-lib${toString i}-${version}" ''
              mkdir -p $out
              head -c "$bytes" /dev/urandom > $out/data
            '' { bytes = toString (pathBytes i); }) cfg.paths;

          # Kernel, initrd and kernel modules (knob kernel = N), shared by every host at the same N,
          # linked from the system as NixOS links them: `ln -s <path> $out/kernel` in the builder,
          # so the plan reads them from the derivation before the system is built.
          kernelVersion = toString cfg.kernel;
          kernelImage = mkDrv cfg.system "sandbox-linux-${kernelVersion}" ''
            mkdir -p $out
            echo "sandbox kernel $kernelVersion" > $out/bzImage
          '' { inherit kernelVersion; };
          initrd = mkDrv cfg.system "sandbox-initrd-${kernelVersion}" ''
            mkdir -p $out
            echo "sandbox initrd for kernel $kernelVersion" > $out/initrd
          '' { inherit kernelVersion; };
          kernelModules = mkDrv cfg.system "sandbox-kernel-modules-${kernelVersion}" ''
            mkdir -p $out/lib/modules/$kernelVersion
          '' { inherit kernelVersion; };

          # Optional payload of `size` MiB, for copy benchmarks.
          blob = mkDrv cfg.system "sandbox-blob-${name}-${version}-${toString cfg.size}M" ''
            mkdir -p $out
            echo "$hostName" > $out/owner
            head -c $((size * 1048576)) /dev/urandom > $out/blob
          '' { hostName = name; size = toString cfg.size; };

          toplevel = mkDrv cfg.system "nixos-system-${name}-${nixosVersion}" ''
            mkdir -p $out/bin $out/sw/bin
            ln -s $base $out/base
            ln -s $tools $out/tools
            ln -s $etc $out/etc
            ln -s ${kernelImage}/bzImage $out/kernel
            ln -s ${initrd}/initrd $out/initrd
            ln -s ${kernelModules} $out/kernel-modules
            if [ -n "$blob" ]; then ln -s $blob $out/blob; fi
            echo "$nixosVersion" > $out/nixos-version
            printf '#!/bin/sh\ncat %s/nixos-version\n' "$out" > $out/bin/nixos-version
            printf '#!/bin/sh\nexec /bin/sh %s %s "$@"\n' "$activationScript" "$out" > $out/bin/switch-to-configuration
            printf '#!/bin/sh\nexec /bin/sh %s %s boot-activation\n' "$activationScript" "$out" > $out/activate
            chmod +x $out/bin/* $out/activate
            ln -s $out/bin/nixos-version $out/sw/bin/nixos-version
            ln -s $tools/bin/sandbox-hello $out/sw/bin/sandbox-hello
            mkdir -p $out/sw/packages
            for p in $packages; do ln -s $p $out/sw/packages/; done
            for p in $extraPaths; do echo "$p"; done > $out/sw/paths
          '' {
            packages = extraPackages;
            inherit extraPaths;
            inherit (shared) base tools activationScript;
            inherit etc nixosVersion;
            blob = if cfg.size > 0 then blob else "";
          };
        in {
          config = {
            networking.hostName = name;
            system.nixos.version = nixosVersion;
            system.build.toplevel = toplevel;
            sandbox = cfg;
          };
        };

      hostFiles = builtins.readDir ./hosts;
      jsonNames = builtins.filter (f: builtins.match ".*\\.json" f != null && hostFiles.${f} == "regular")
        (builtins.attrNames hostFiles);
      hostName = file: builtins.head (builtins.match "(.*)\\.json" file);
    in {
      nixosConfigurations = builtins.listToAttrs (map (file: {
        name = hostName file;
        value = mkHost (hostName file) (builtins.fromJSON (builtins.readFile (./hosts + "/${file}")));
      }) jsonNames);
    };
}
