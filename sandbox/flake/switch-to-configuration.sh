#!/bin/sh
# Toy switch-to-configuration for sandbox hosts, with NixOS semantics:
#   switch        set the boot default, then activate (re-point /run/current-system)
#   boot          set the boot default only
#   test          activate only (the next reboot returns to the boot default)
#   dry-activate  print what switch/test would change, change nothing
# The boot default is the system profile's generation at the time of switch/boot (as the
# bootloader installer in NixOS records it); `sandbox reboot` boots it into /run/booted-system.
# Called as: sh switch-to-configuration.sh <toplevel> <action>  (the toplevel's bin/ wrapper).
set -eu

toplevel=$1
action=${2:-}
state=/nix/var/nix/sandbox
profile=/nix/var/nix/profiles/system

usage() { echo "usage: switch-to-configuration switch|boot|test|dry-activate" >&2; exit 1; }
case "$action" in switch|boot|test|dry-activate|boot-activation) ;; *) usage ;; esac

home_of() { getent passwd "$1" | cut -d: -f6; }

# NixOS installs users' keys from the configuration (users.users.<u>.openssh.authorizedKeys).
install_keys() {
    for user in root deployer; do
        src=$toplevel/etc/ssh/authorized_keys.d/$user
        home=$(home_of "$user")
        [ -f "$src" ] && [ -n "$home" ] || continue
        mkdir -p "$home/.ssh"
        cp "$src" "$home/.ssh/authorized_keys.tmp"
        chmod 600 "$home/.ssh/authorized_keys.tmp"
        chown "$user:" "$home/.ssh" "$home/.ssh/authorized_keys.tmp"
        chmod 700 "$home/.ssh"
        mv -f "$home/.ssh/authorized_keys.tmp" "$home/.ssh/authorized_keys"
    done
}

# Atomic re-pointing: a new symlink renamed over the old one.
point() { ln -sfn "$2" "$1.tmp.$$" && mv -T "$1.tmp.$$" "$1"; }

record() {
    mkdir -p "$state"
    printf '{"time":"%s","action":"%s","toplevel":"%s"}\n' \
        "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$action" "$toplevel" >>"$state/activations.log"
}

current=$(readlink /run/current-system 2>/dev/null || echo none)

if [ "$action" = dry-activate ]; then
    echo "would activate $toplevel"
    if [ "$current" = "$toplevel" ]; then
        echo "/run/current-system: unchanged"
    else
        echo "/run/current-system: $current -> $toplevel"
    fi
    for user in root deployer; do
        home=$(home_of "$user")
        if ! cmp -s "$toplevel/etc/ssh/authorized_keys.d/$user" "$home/.ssh/authorized_keys" 2>/dev/null; then
            echo "would install new authorized keys for $user"
        fi
    done
    [ -e "$toplevel/etc/sandbox/fail" ] && echo "activation would fail (sandbox knob fail=true)"
    exit 0
fi

if [ "$action" = boot-activation ]; then
    # Run by the sandbox at boot: the booted system's keys, nothing recorded.
    install_keys
    exit 0
fi

record

if [ "$action" = switch ] || [ "$action" = boot ]; then
    mkdir -p "$state"
    target=$toplevel
    [ -L "$profile" ] && target=$(readlink -f "$profile")
    point "$state/boot-default" "$target"
    ln -sfn "$state/boot-default" /nix/var/nix/gcroots/sandbox-boot-default 2>/dev/null || true
    if [ "$target" != "$toplevel" ]; then
        echo "warning: boot default is the system profile's generation $target, not $toplevel" >&2
    fi
fi

if [ "$action" = switch ] || [ "$action" = test ]; then
    # sandbox knob slow=N: a long activation, for tests that interrupt a deploy
    if [ -e "$toplevel/etc/sandbox/slow" ]; then sleep "$(cat "$toplevel/etc/sandbox/slow")"; fi
    install_keys
    point /run/current-system "$toplevel"
    if [ -e "$toplevel/etc/sandbox/fail" ]; then
        echo "switch-to-configuration: activation of $toplevel failed (sandbox knob fail=true): /run/current-system already points to it" >&2
        exit 1
    fi
fi

echo "$action: done ($toplevel)"
