#!/usr/bin/env bash
# Runs as pid 1 of a sandbox host's namespaces (made by `unshare --uts --mount --pid --fork
# --kill-child --propagation private --mount-proc`): gives the host its own /nix, /run, /root,
# /home, user database, sudoers, nix.conf and hostname, boots the boot default generation,
# then becomes sshd. Mounts are private to this namespace and vanish with it.
# Usage: init.sh <host dir> <host name> <tools dir>
set -euo pipefail
host_dir=$1
name=$2
tools=$3

hostname "$name"

# /run is a tmpfs as on NixOS: every (re)boot starts with an empty one.
mount -t tmpfs -o mode=755,size=64m sandbox-run /run

# Keep the host's own state dir reachable under /run before /root or /home are hidden (the
# sandbox dir may live below them). The mirror path contains the real one, which lets the
# sandbox find this host's processes by their arguments.
state=/run/sandbox/mnt$host_dir
mkdir -p "$state" /run/sandbox/bin /run/sshd
mount --bind "$host_dir" "$state"
mount --bind "$tools" /run/sandbox/bin
mount -o remount,bind,ro /run/sandbox/bin

mkdir -p /nix /home
mount --bind "$state/nix" /nix
mount --bind "$state/root" /root
mount --bind "$state/home" /home
for file in passwd group shadow hosts; do
    mount --bind "$state/etc/$file" "/etc/$file"
done
mount --bind "$state/etc/sudoers.d" /etc/sudoers.d
mkdir -p /etc/nix
mount --bind "$state/etc/nix" /etc/nix

# Boot: /run/booted-system and /run/current-system are the boot default generation, whose
# activation installs its users' SSH keys (as NixOS stage 2 runs the activation script).
mkdir -p /nix/var/nix/sandbox /nix/var/nix/gcroots /nix/var/nix/profiles
boot_default=/nix/var/nix/sandbox/boot-default
if [ -L "$boot_default" ] && system=$(readlink -f "$boot_default") && [ -x "$system/activate" ]; then
    ln -sfn "$system" /run/booted-system
    ln -sfn "$system" /run/current-system
    "$system/activate" || echo "sandbox init: activation of $system failed at boot" >&2
    echo "sandbox init: $name booted $system"
else
    echo "sandbox init: $name booted without a system generation"
fi
ln -sfn /run/current-system /nix/var/nix/gcroots/current-system
ln -sfn /run/booted-system /nix/var/nix/gcroots/booted-system

# A nix-daemon, as on NixOS: non-root users (deployer) reach the store through it.
nix-daemon >>"$state/nix-daemon.log" 2>&1 &

exec /usr/sbin/sshd -D -e -f "$state/sshd_config"
