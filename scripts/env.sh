# Source this to use the project's Pulumi exactly as `npm run pulumi` does:
#   source scripts/env.sh && pulumi preview -s dev
# Offline by design: no update checks, no plugin downloads, state in a file:// backend here.
# shellcheck shell=bash
_fleet_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ -x "$_fleet_root/.tools/bin/pulumi" ]; then
    export PATH="$_fleet_root/.tools/bin:$PATH"
fi
export PULUMI_HOME="${PULUMI_HOME:-$_fleet_root/.tools/pulumi-home}"
export PULUMI_BACKEND_URL="${PULUMI_BACKEND_URL:-file://$_fleet_root/.pulumi-state}"
export PULUMI_SKIP_UPDATE_CHECK=true
export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true
export PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK=true
# The program is type-checked by `npm run typecheck`; ts-node only transpiles (much faster).
export PULUMI_NODEJS_TRANSPILE_ONLY=true
# The dev passphrase (scripts/dev-passphrase) is for the dev stack only, so it is not exported
# here: `pulumi` below is a function that adds it to commands on the dev stack (`-s dev`, or dev
# selected) when no passphrase is set. Real stacks set their own (PULUMI_CONFIG_PASSPHRASE or
# PULUMI_CONFIG_PASSPHRASE_FILE): see README.
_NIXOS_FLEET_ROOT="$_fleet_root"
# shellcheck source=scripts/lib/passphrase.sh
source "$_fleet_root/scripts/lib/passphrase.sh"
pulumi() { ( nixos_fleet_dev_passphrase "$@" && command pulumi "$@" ); }
unset _fleet_root
