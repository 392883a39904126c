#!/usr/bin/env bash
# Server CPU per HTTPS keep-alive request (issue 20): goes-master (an
# https:// listener, one worker, the hello handler) built from this tree,
# and nginx (Debian's nginx-light, one worker, return 200 "hello"), each
# loaded by `wrk -t1 -c50 -d8s` over TLS after a 2 s warm-up, alternating
# for -rounds rounds; the figure is utime+stime of every server process over
# the load window divided by the requests wrk completed. Then the same with
# a new connection per request (`ab -n 3000 -c 20`, no keep-alive): a full
# handshake each (ab's OpenSSL offers no post-quantum key share).
# GOES_MASTER=path measures another goes-master binary (e.g. one built
# from main).
#   bench/tlscpu.sh [rounds]
set -euo pipefail
cd "$(dirname "$0")"
export PATH=/usr/local/go/bin:$PATH
rounds=${1:-2}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
gm=${GOES_MASTER:-}
if [ -z "$gm" ]; then
	(cd .. && go build -o "$tmp/goes-master" ./cmd/goes-master)
	gm=$tmp/goes-master
fi
command -v wrk >/dev/null || { echo "wrk is missing (apt-get install -y wrk)"; exit 1; }
nginx=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$nginx" ] || { echo "nginx is missing (apt-get install -y nginx-light)"; exit 1; }
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
	-subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
	-keyout "$tmp/key.pem" -out "$tmp/cert.pem" 2>/dev/null

# ticks of pids' utime+stime
# (the fields after the command name, which may hold spaces)
ticks() { local t=0 p; for p in "$@"; do [ -r /proc/$p/stat ] && t=$((t + $(sed 's/.*) //' /proc/$p/stat | awk '{print $12+$13}'))); done; echo $t; }
tree() { local p=$1; echo "$p"; for c in $(cat /proc/$p/task/*/children 2>/dev/null); do tree "$c"; done; }
hz=$(getconf CLK_TCK)

# load NAME URL PIDS...: prints µs of server CPU per request
load() {
	local name=$1 url=$2; shift 2
	wrk -t1 -c50 -d2s "$url" >/dev/null
	local before; before=$(ticks "$@")
	local out; out=$(wrk -t1 -c50 -d8s "$url")
	local after; after=$(ticks "$@")
	local reqs; reqs=$(echo "$out" | awk '/requests in/ {print $1}')
	local rps; rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
	awk -v n="$name" -v t=$((after - before)) -v hz="$hz" -v r="$reqs" -v rps="$rps" \
		'BEGIN { printf "%-8s %9s req/s  server CPU %6.1f µs/request\n", n, rps, t / hz * 1e6 / r }'
}

# handshakes NAME URL PIDS...: prints µs of server CPU per connection
handshakes() {
	local name=$1 url=$2; shift 2
	local before; before=$(ticks "$@")
	local out; out=$(ab -n 3000 -c 20 "$url" 2>&1)
	local after; after=$(ticks "$@")
	local done; done=$(echo "$out" | awk '/Complete requests/ {print $3}')
	local failed; failed=$(echo "$out" | awk '/Failed requests/ {print $3}')
	awk -v n="$name" -v t=$((after - before)) -v hz="$hz" -v r="$done" -v f="$failed" \
		'BEGIN { printf "%-8s %6d handshakes (%s failed)  server CPU %7.1f µs/handshake\n", n, r, f, t / hz * 1e6 / r }'
}

port=$((20000 + RANDOM % 20000))
cat >"$tmp/goes.json" <<JSON
{"listeners": [{"name": "https", "listen": "https://127.0.0.1:$port", "count": 1, "handler": "hello",
  "cert_file": "$tmp/cert.pem", "key_file": "$tmp/key.pem"}]}
JSON
"$gm" start -d --config "$tmp/goes.json" --run-dir "$tmp/run" >/dev/null
gpid=$(cat "$tmp"/run/*.pid 2>/dev/null || cat "$tmp/run/goes.pid")
nport=$((port + 1))
mkdir -p "$tmp/ng"
cat >"$tmp/nginx.conf" <<CONF
worker_processes 1; daemon on; pid $tmp/ng/nginx.pid; error_log $tmp/ng/error.log;
events { worker_connections 1024; }
http { access_log off; keepalive_requests 1000000;
  client_body_temp_path $tmp/ng/b; proxy_temp_path $tmp/ng/p; fastcgi_temp_path $tmp/ng/f; uwsgi_temp_path $tmp/ng/u; scgi_temp_path $tmp/ng/s;
  server { listen 127.0.0.1:$nport ssl; ssl_protocols TLSv1.2 TLSv1.3;
    ssl_certificate $tmp/cert.pem; ssl_certificate_key $tmp/key.pem;
    location / { return 200 "hello"; } } }
CONF
"$nginx" -c "$tmp/nginx.conf" -p "$tmp/ng"
stop() { "$gm" stop --config "$tmp/goes.json" --run-dir "$tmp/run" >/dev/null 2>&1 || true; kill "$(cat "$tmp/ng/nginx.pid")" 2>/dev/null || true; }
trap 'stop; rm -rf "$tmp"' EXIT
sleep 1
npid=$(cat "$tmp/ng/nginx.pid")
for i in $(seq "$rounds"); do
	load goes "https://127.0.0.1:$port/" $(tree "$gpid")
	load nginx "https://127.0.0.1:$nport/" $(tree "$npid")
done
for i in $(seq "$rounds"); do
	handshakes goes "https://127.0.0.1:$port/" $(tree "$gpid")
	handshakes nginx "https://127.0.0.1:$nport/" $(tree "$npid")
done
