#!/usr/bin/env bash
# Starts a sandbox host's namespace in the background, detached from the caller's session (so a
# Ctrl-C of the CLI or the end of a test run does not take hosts down), and prints its pid.
# Usage: launch.sh <log file> <command…>
set -euo pipefail
log=$1
shift
# In a non-interactive shell the background job is not a group leader, so setsid execs in place
# and $! is the pid of the command itself.
setsid "$@" </dev/null >>"$log" 2>&1 &
echo $!
