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
# Dev-only passphrase for the sandbox stack's secrets. Real stacks set their own
# (PULUMI_CONFIG_PASSPHRASE or PULUMI_CONFIG_PASSPHRASE_FILE): see README.
if [ -z "${PULUMI_CONFIG_PASSPHRASE:-}" ] && [ -z "${PULUMI_CONFIG_PASSPHRASE_FILE:-}" ]; then
    export PULUMI_CONFIG_PASSPHRASE_FILE="$_fleet_root/scripts/dev-passphrase"
fi
unset _fleet_root
