#!/usr/bin/env bash
# The raw baseline nixos-fleet is measured against: what `inv deploy --hosts a,b,c` amounted to,
# a plain shell fan-out of `nix copy` and `ssh` per host, in parallel, no shared connections.
#   baseline.sh SSH_CONFIG ACTION HOST=STOREPATH...
set -euo pipefail
ssh_config=$1 action=$2
shift 2
export NIX_SSHOPTS="-F $ssh_config"
pids=()
for pair in "$@"; do
    host=${pair%%=*} path=${pair#*=}
    (
        nix --extra-experimental-features 'nix-command flakes' copy --no-check-sigs --to "ssh-ng://root@$host" "$path"
        ssh -F "$ssh_config" "root@$host" "nix-env -p /nix/var/nix/profiles/system --set $path && $path/bin/switch-to-configuration $action"
    ) >/dev/null 2>&1 &
    pids+=($!)
done
rc=0
for pid in "${pids[@]}"; do wait "$pid" || rc=1; done
exit $rc
