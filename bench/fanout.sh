#!/usr/bin/env bash
# Builds the fan-out benchmark's servers and client and runs its driver;
# extra arguments go to the driver (see `go run ./fanout -h`), e.g.
# `bench/fanout.sh -quick` or `bench/fanout.sh -servers floor,goes1`
# (or `-servers floor,floor-uring -uring-modes defer,sqpoll`).
set -euo pipefail
cd "$(dirname "$0")"
export PATH=/usr/local/go/bin:$PATH
# The main module may have gained dependencies since go.sum was written.
go list ./... >/dev/null 2>&1 || go mod tidy
mkdir -p bin/fanout
for s in fanout/servers/*/; do
	go build -o "bin/fanout/$(basename "$s")" "./$s"
done
go build -o bin/fanout/client ./fanout/client
go build -o bin/fanout/driver ./fanout
exec bin/fanout/driver -bin bin/fanout "$@"
