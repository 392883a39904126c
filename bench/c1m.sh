#!/usr/bin/env bash
# The many-connections benchmark: goes-master's WebSocket echo listener
# (one worker per 19,000 connections unless -workers says otherwise) and
# client processes on raw epoll (bench/c1m/client) of 18,000 connections
# each; extra arguments go to the driver (`go run ./c1m -h`), e.g.
#   bench/c1m.sh -conns 50000
#   bench/c1m.sh -conns 1000000 -workers 53 -connect-timeout 10m
#   bench/c1m.sh -server floor ...   (raw epoll echo in goes-master's place: the floor)
# It raises net.netfilter.nf_conntrack_max when run as root and the
# connections need it (and says so); without root it says what to run.
# Every phase has a deadline; it prints a results table.
set -euo pipefail
cd "$(dirname "$0")"
export PATH=/usr/local/go/bin:$PATH
go list ./... >/dev/null 2>&1 || go mod tidy
mkdir -p bin/c1m
(cd .. && go build -o bench/bin/c1m/goes-master ./cmd/goes-master)
go build -o bin/c1m/client ./c1m/client
go build -o bin/c1m/floor ./c1m/floor
go build -o bin/c1m/driver ./c1m
exec bin/c1m/driver -bin bin/c1m "$@"
