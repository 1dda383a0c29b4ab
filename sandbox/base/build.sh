#!/usr/bin/env bash
# The base root every sandbox host boots: a minimal Debian with systemd, dbus, OpenSSH, sudo, Nix
# and busybox, built once with mmdebstrap from this machine's apt sources and shared read-only by
# all hosts (each host overlays its own writable layer on it). Cached by a key over this script,
# so a warm run only prints the path.
#   build.sh          build when missing, print the path
#   build.sh --path   print the path only (exit 1 when not built)
set -euo pipefail

PACKAGES=systemd,systemd-sysv,dbus,openssh-server,sudo,nix-bin,busybox,procps,iproute2,util-linux
SUITE=bookworm

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache=${NIXOS_FLEET_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/nixos-fleet}/sandbox-base
key=$(cat "${BASH_SOURCE[0]}" | sha256sum | cut -c1-16)
root=$cache/$SUITE-$key

if [ -f "$root/.complete" ]; then echo "$root"; exit 0; fi
if [ "${1:-}" = --path ]; then
    echo "sandbox base root not built: run npm run bootstrap (or bash sandbox/base/build.sh)" >&2
    exit 1
fi

say() { printf 'sandbox-base: %s\n' "$*" >&2; }
command -v mmdebstrap >/dev/null || { say "mmdebstrap is missing: run bash scripts/bootstrap-system"; exit 1; }
[ "$(id -u)" -eq 0 ] || { say "building the base root needs root"; exit 1; }

# The machine's own apt sources (no mirror is named here): deb822 files and one-line lists.
sources=()
for file in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [ -s "$file" ] && grep -qE '^[[:space:]]*(deb |URIs:)' "$file" && sources+=("$file")
done
[ ${#sources[@]} -gt 0 ] || { say "no apt sources in /etc/apt: cannot build the base root"; exit 1; }

mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9
if [ -f "$root/.complete" ]; then echo "$root"; exit 0; fi
tmp=$cache/.build-$$
rm -rf "$tmp" "$cache"/.build-*
log=$cache/build.log
say "building $root with mmdebstrap (once; about a minute)"
started=$(date +%s)
# Customisation that needs the chroot: the deployer user (no password, not locked: '*'), no
# host keys, hostname or machine id of this machine (each host gets its own), nothing that
# listens on a network before the host's own settings exist.
if ! mmdebstrap --mode=root --variant=minbase --include="$PACKAGES" \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/info/*' \
    --customize-hook='chroot "$1" useradd --create-home --uid 1500 --user-group --shell /bin/bash --comment "sandbox deployer" deployer' \
    --customize-hook='chroot "$1" usermod --password "*" deployer' \
    --customize-hook='rm -f "$1"/etc/ssh/ssh_host_* "$1"/etc/hostname "$1"/var/lib/dbus/machine-id; : > "$1"/etc/machine-id' \
    --customize-hook='rm -f "$1"/etc/systemd/system/multi-user.target.wants/e2scrub_reap.service "$1"/etc/systemd/system/timers.target.wants/*' \
    "$SUITE" "$tmp" "${sources[@]}" >"$log" 2>&1; then
    tail -n 15 "$log" >&2
    rm -rf "$tmp"
    say "mmdebstrap failed (log: $log): is the Debian package repository reachable?"
    exit 1
fi
touch "$tmp/.complete"
mv -T "$tmp" "$root"
say "built in $(( $(date +%s) - started ))s ($(du -sh "$root" | cut -f1))"
echo "$root"
