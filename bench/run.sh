#!/usr/bin/env bash
# Builds the servers and runs the benchmark harness; extra arguments go to
# the harness (see `go run ./harness -h`), e.g. `bench/run.sh -quick`.
set -euo pipefail
cd "$(dirname "$0")"
export PATH=/usr/local/go/bin:$PATH
if ! command -v wrk >/dev/null || ! command -v ab >/dev/null; then
	SUDO=""
	[ "$(id -u)" -eq 0 ] || SUDO=sudo
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends wrk apache2-utils >/dev/null
fi
# The main module may have gained dependencies since go.sum was written.
go list ./... >/dev/null 2>&1 || go mod tidy
mkdir -p bin
for s in servers/*/; do
	go build -o "bin/$(basename "$s")" "./$s"
done
go build -o bin/harness ./harness
exec bin/harness -bin bin "$@"
