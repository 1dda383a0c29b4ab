#!/usr/bin/env bash
# Runs one sandbox host: a systemd-nspawn container booting real systemd on an overlay of the
# shared base root (read-only) and the host's own writable layer, with the host's /nix store
# bound in. Started by `sandbox start` inside its own mount namespace (unshare --mount
# --propagation private), so the overlay and nspawn's runtime files never appear on the machine.
# A reboot inside the host (`reboot`, `systemctl reboot`) makes nspawn exit with 133: the host is
# booted again, with a fresh /run (unless its boot is held: see hold-boot below). Any other exit
# (poweroff, `sandbox stop`) ends this script.
# Usage: boot.sh <host dir> <name> <lowerdirs> <tools dir> <cgroup dirs (colon-separated)> <flake dir>
set -uo pipefail
host_dir=$1
name=$2
lower=$3
tools=$4
IFS=: read -r -a cgroups <<<"$5"
flake=$6

# Every process of the host lives below its own cgroup (in each hierarchy), so `stop` finds and
# ends all of them even after a crash; nspawn adds its payload/ and supervisor/ below the one it
# starts in, which keeps two hosts' containers apart.
join() {
    local dir
    for dir in "${cgroups[@]}"; do
        mkdir -p "$dir/$1"
        echo "$BASHPID" >"$dir/$1/cgroup.procs"
    done
}
join launcher

mkdir -p /run/systemd/nspawn
mount -t tmpfs -o mode=755,size=1m sandbox-nspawn /run/systemd/nspawn
mkdir -p "$host_dir/rootfs" "$host_dir/work"
mount -t overlay sandbox-root -o "lowerdir=$lower,upperdir=$host_dir/upper,workdir=$host_dir/work" "$host_dir/rootfs" || exit 1

for boot in $(seq 1 100000); do
    echo "--- $(date -u +%FT%TZ) boot $boot of $name"
    (
        join container
        exec systemd-nspawn --boot --directory="$host_dir/rootfs" --machine="$name" \
            --register=no --keep-unit --console=pipe --link-journal=no --resolv-conf=off --timezone=off \
            --bind="$host_dir/nix:/nix" --bind-ro="$tools:/opt/sandbox/bin" --bind-ro="$flake"
    ) </dev/null
    rc=$?
    [ "$rc" -eq 133 ] || { echo "--- $(date -u +%FT%TZ) $name stopped (nspawn exit $rc)"; exit "$rc"; }
    # A held boot (fleet.holdBoot): the host stays down, as a machine stuck in its firmware or boot
    # loader would, until the hold is released (fleet.releaseBoot) or the host is stopped.
    if [ -e "$host_dir/hold-boot" ]; then
        echo "--- $(date -u +%FT%TZ) $name: boot held ($host_dir/hold-boot)"
        while [ -e "$host_dir/hold-boot" ]; do sleep 0.2; done
    fi
done
