#!/bin/sh
# Toy switch-to-configuration for sandbox hosts (real systemd inside), with NixOS semantics:
#   switch        set the boot default, then activate
#   boot          set the boot default only
#   test          activate only (the next reboot returns to the boot default)
#   dry-activate  print what switch/test would change, change nothing
# Activation, as NixOS's does it: take /run/nixos/switch-to-configuration.lock (a second
# activation while one runs aborts), stop units the new system no longer has, install the users'
# SSH keys, re-point /run/current-system, reload systemd (the sandbox-nixos generator links the
# new system's units), restart changed units and start new ones, then report failed units:
# exit 4 = "switched, but units failed", exit 1 = the activation itself failed.
# The boot default (/nix/var/nix/sandbox/boot-default, the sandbox's boot loader entry) is the
# system profile's generation at the time of switch/boot; a reboot boots it.
# Called as: sh switch-to-configuration.sh <toplevel> <action>  (the toplevel's bin/ wrapper).
# Environment honoured as NixOS does: NIXOS_INSTALL_BOOTLOADER=1 (switch/boot), LOCALE_ARCHIVE.
set -eu

toplevel=$1
action=${2:-}
state=/nix/var/nix/sandbox
profile=/nix/var/nix/profiles/system
lock=/run/nixos/switch-to-configuration.lock

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

old_units=/run/current-system/etc/systemd/system
new_units=$toplevel/etc/systemd/system
unit_names() { [ -d "$1" ] && ls -1 "$1" 2>/dev/null || true; }

# Which units the switch stops, restarts and starts (by unit file, as NixOS compares them).
plan_units() {
    to_stop=""
    to_restart=""
    to_start=""
    for unit in $(unit_names "$old_units"); do
        [ -e "$new_units/$unit" ] || to_stop="$to_stop $unit"
    done
    for unit in $(unit_names "$new_units"); do
        if [ ! -e "$old_units/$unit" ]; then
            to_start="$to_start $unit"
        elif ! cmp -s "$old_units/$unit" "$new_units/$unit"; then
            to_restart="$to_restart $unit"
        fi
    done
}

current=$(readlink /run/current-system 2>/dev/null || echo none)

if [ "$action" = dry-activate ]; then
    plan_units
    echo "would activate $toplevel"
    if [ "$current" = "$toplevel" ]; then
        echo "/run/current-system: unchanged"
    else
        echo "/run/current-system: $current -> $toplevel"
    fi
    [ -z "$to_stop" ] || echo "would stop the following units:$to_stop"
    [ -z "$to_restart" ] || echo "would restart the following units:$to_restart"
    [ -z "$to_start" ] || echo "would start the following units:$to_start"
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
    # Run at boot (sandbox-activate.service): the booted system's keys; systemd starts its units.
    install_keys
    exit 0
fi

# One activation at a time, as NixOS: the lock is held until this script exits.
mkdir -p /run/nixos
exec 9>>"$lock"
if ! flock -n 9; then
    echo "Could not acquire lock $lock: another switch-to-configuration is running" >&2
    exit 1
fi

record

if [ "$action" = switch ] || [ "$action" = boot ]; then
    mkdir -p "$state"
    target=$toplevel
    [ -L "$profile" ] && target=$(readlink -f "$profile")
    [ "${NIXOS_INSTALL_BOOTLOADER:-}" = 1 ] && echo "installing the boot loader..."
    point "$state/boot-default" "$target"
    ln -sfn "$state/boot-default" /nix/var/nix/gcroots/sandbox-boot-default 2>/dev/null || true
    if [ "$target" != "$toplevel" ]; then
        echo "warning: boot default is the system profile's generation $target, not $toplevel" >&2
    fi
fi

if [ "$action" = switch ] || [ "$action" = test ]; then
    # sandbox knob slow=N: a long activation, for tests that interrupt a deploy
    if [ -e "$toplevel/etc/sandbox/slow" ]; then sleep "$(cat "$toplevel/etc/sandbox/slow")"; fi
    plan_units
    if [ -n "$to_stop" ]; then
        echo "stopping the following units:$to_stop"
        # shellcheck disable=SC2086
        systemctl stop $to_stop || true
    fi
    echo "activating the configuration..."
    install_keys
    point /run/current-system "$toplevel"
    echo "reloading systemd"
    systemctl daemon-reload
    # As NixOS: failures from before this switch are forgotten; only new ones are reported.
    systemctl reset-failed
    if [ -e "$toplevel/etc/sandbox/fail" ]; then
        echo "switch-to-configuration: activation of $toplevel failed (sandbox knob fail=true): /run/current-system already points to it" >&2
        exit 1
    fi
    if [ -n "$to_restart" ]; then
        echo "restarting the following units:$to_restart"
        # shellcheck disable=SC2086
        systemctl restart $to_restart || true
    fi
    if [ -n "$to_start" ]; then
        echo "starting the following units:$to_start"
        # shellcheck disable=SC2086
        systemctl start $to_start || true
    fi
    failed=""
    for unit in $(unit_names "$new_units"); do
        if systemctl is-failed --quiet "$unit"; then failed="$failed $unit"; fi
    done
    if [ -n "$failed" ]; then
        echo "warning: the following units failed:$failed" >&2
        for unit in $failed; do
            systemctl status --no-pager --lines=5 "$unit" >&2 || true
        done
        exit 4
    fi
fi

echo "$action: done ($toplevel)"
