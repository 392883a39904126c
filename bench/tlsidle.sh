#!/usr/bin/env bash
# What an idle TLS connection costs (issue 20): bench/tlsidle (a Go driver)
# opens -conns connections (default 5,000) to a server process, a handshake
# and one echo each, lets them idle 3 s and prints the server's growth per
# connection: RSS and, for goes, Go heap and stacks after a GC, and its
# goroutines. Rows: goes on the epoll engine (EngineAuto) and on the
# standard one, wss and raw TLS, then nginx (Debian's nginx-light, one
# worker, HTTPS keep-alive, one request per connection; installed when
# missing and run as root). Extra arguments go to every row, e.g.
#   bench/tlsidle.sh -conns 2000
#   bench/tlsidle.sh -x25519      # clients without the post-quantum key share
set -euo pipefail
cd "$(dirname "$0")"
export PATH=/usr/local/go/bin:$PATH
mkdir -p bin
go build -o bin/tlsidle ./tlsidle
for engine in auto std; do
	for scheme in wss tls; do
		bin/tlsidle -engine "$engine" -scheme "$scheme" "$@"
	done
done
if ! command -v nginx >/dev/null && [ ! -x /usr/sbin/nginx ]; then
	if [ "$(id -u)" = 0 ]; then
		apt-get install -y nginx-light >/dev/null
	else
		echo "nginx: not installed (run as root to install nginx-light)"
		exit 0
	fi
fi
bin/tlsidle -server nginx "$@"
