# Shared by the project's bash scripts: where things are, and how steps report.
# shellcheck shell=bash
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TOOLS_DIR="$ROOT/.tools"
PULUMI_VERSION="v3.248.0"
# Built binaries are cached outside the checkout so a fresh clone on the same machine reuses them.
CACHE_DIR="${NIXOS_FLEET_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/nixos-fleet}"

say() { printf '[%s] %s\n' "${STEP:-nixos-fleet}" "$*"; }
# die MESSAGE HINT: a clear message for a person, never a stack trace.
die() {
    printf '\nerror: %s\n' "$1" >&2
    [ -n "${2:-}" ] && printf 'hint:  %s\n' "$2" >&2
    exit 1
}
now_ms() { date +%s%3N; }
# step NAME COMMAND...: runs a step and reports how long it took.
step() {
    local name=$1 start rc
    shift
    start=$(now_ms)
    STEP=$name "$@"
    rc=$?
    STEP=$name say "done in $(( ($(now_ms) - start) / 1000 )).$(( ($(now_ms) - start) % 1000 / 100 ))s"
    return $rc
}
as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"
    elif command -v sudo >/dev/null 2>&1; then sudo "$@"
    else die "this step needs root: $*" "run scripts/bootstrap as root, or install sudo"
    fi
}
