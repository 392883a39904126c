#!/usr/bin/env bash
# Builds goes-master and the accept-balance benchmark and runs it; extra
# arguments go to the driver (see `go run ./balance -h`), e.g.
# `bench/balance.sh -n 20000` or `bench/balance.sh -margins default`.
set -euo pipefail
cd "$(dirname "$0")"
export PATH=/usr/local/go/bin:$PATH
go list ./... >/dev/null 2>&1 || go mod tidy
mkdir -p bin/balance
go build -o bin/balance/goes-master github.com/goes-project/goes/cmd/goes-master
go build -o bin/balance/driver ./balance
exec bin/balance/driver -master bin/balance/goes-master "$@"
