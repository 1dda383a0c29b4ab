#!/usr/bin/env bash
# `sandbox console`: runs a command as root inside a running host without SSH. It joins the
# host's cgroup first (so `sandbox stop` also ends it), then the container's namespaces.
# Usage: enter.sh <cgroup dirs (colon-separated)> <container pid 1> <command…>
set -euo pipefail
IFS=: read -r -a cgroups <<<"$1"
pid=$2
shift 2
for dir in "${cgroups[@]}"; do
    mkdir -p "$dir/console"
    echo "$$" >"$dir/console/cgroup.procs"
done
exec nsenter --target "$pid" --mount --uts --ipc --pid --cgroup --root --wd -- "$@"
