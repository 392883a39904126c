#!/usr/bin/env bash
# The idle cost of goes-master (issue 21): 60,000 idle WebSocket connections
# over 8 workers; CPU time and context switches of all goes processes over 30
# idle seconds (a whole period of the connections' 30 s timeout check, which
# a 20 s window can miss when the connects take less than 10 s), starting
# 35 s after the connects (per process with -v). It
# exits 1 when the goes processes use more than 2 % of a core (the issue's
# bound). Extra arguments go to bench/c1m.sh's driver, e.g.
#   bench/idle.sh -conns 19000 -workers 1 -v
exec "$(dirname "$0")/c1m.sh" -conns 60000 -workers 8 -echo=false -idle 30s -max-idle-cpu 2 "$@"
