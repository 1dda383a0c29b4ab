# shellcheck shell=bash
# The dev passphrase (scripts/dev-passphrase) is public and protects only the `dev` stack's
# secrets. Sourced by scripts/env.sh: the project's pulumi gets it for the dev stack, and only when
# neither PULUMI_CONFIG_PASSPHRASE nor PULUMI_CONFIG_PASSPHRASE_FILE is set. Every other stack
# needs its own (the program and the operator commands refuse the dev one, saying how).

# nixos_fleet_stack_of ARGS...: the stack a pulumi command line works on: -s/--stack in any form,
# the name of `stack init <name>`, else the selected stack (empty when there is none) of the
# project the command runs in (-C/--cwd, else the current directory's).
nixos_fleet_stack_of() {
    # The last -s/--stack (and -C/--cwd) wins, as in pulumi's own flag parsing.
    local arg stack="" want_value="" want_cwd="" seen_stack="" init_name="" cwd=()
    for arg in "$@"; do
        if [ -n "$want_value" ]; then stack=$arg; want_value=""; continue; fi
        if [ -n "$want_cwd" ]; then cwd=(--cwd "$arg"); want_cwd=""; continue; fi
        case "$arg" in
            -s|--stack) want_value=1 ;;
            -C|--cwd) want_cwd=1 ;;
            --cwd=*) cwd=(--cwd "${arg#--cwd=}") ;;
            # pulumi's flag parser also takes -C=dir and -Cdir.
            -C=*) cwd=(--cwd "${arg#-C=}") ;;
            -C?*) cwd=(--cwd "${arg#-C}") ;;
            --stack=*) stack=${arg#--stack=} ;;
            -s=*) stack=${arg#-s=} ;;
            -s?*) stack=${arg#-s} ;;
            --) break ;;
            -*) ;;
            stack) [ -z "$seen_stack" ] && seen_stack=1 ;;
            init) [ "$seen_stack" = 1 ] && seen_stack=init ;;
            *) [ "$seen_stack" = init ] && [ -z "$init_name" ] && init_name=$arg ;;
        esac
    done
    if [ -n "$stack" ]; then printf '%s\n' "$stack"; return 0; fi
    if [ -n "$init_name" ]; then printf '%s\n' "$init_name"; return 0; fi
    command pulumi ${cwd[@]+"${cwd[@]}"} stack --show-name --non-interactive 2>/dev/null || true
}

# nixos_fleet_dev_passphrase ARGS...: exports the dev passphrase file when ARGS work on the dev stack
# and no passphrase is set. Call it in a subshell (or just before exec) so nothing leaks into the caller.
nixos_fleet_dev_passphrase() {
    [ -n "${PULUMI_CONFIG_PASSPHRASE+set}" ] && return 0
    [ -n "${PULUMI_CONFIG_PASSPHRASE_FILE:-}" ] && return 0
    if [ "$(nixos_fleet_stack_of "$@")" = dev ]; then
        export PULUMI_CONFIG_PASSPHRASE_FILE="$_NIXOS_FLEET_ROOT/scripts/dev-passphrase"
    fi
    return 0
}
