#!/usr/bin/env bash
# The idle cost of goes-master (issue 21): N idle WebSocket connections
# (default 60,000 over 8 workers), CPU time and context switches of all
# goes processes over 20 idle seconds, per process with -v. Extra
# arguments go to bench/c1m.sh's driver, e.g.
#   bench/idle.sh -conns 19000 -workers 1 -v
exec "$(dirname "$0")/c1m.sh" -conns 60000 -workers 8 -echo=false "$@"
