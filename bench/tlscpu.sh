#!/usr/bin/env bash
# Server CPU per HTTPS request (issue 20): goes-master (an https://
# listener, one worker, the hello handler) built from this tree, and nginx
# (Debian's nginx-light, one worker, return 200 "hello"), the same ECDSA
# P-256 certificate, the same TLS 1.3 cipher (TLS_AES_128_GCM_SHA256),
# loaded in turn for -rounds rounds; the figure is
# utime+stime of every server process over the load divided by the
# requests completed.
#  - keep-alive: `wrk -t1 -c50 -d8s` after a 2 s warm-up;
#  - full handshakes, a new connection per request: `ab -n 3000 -c 20`
#    (OpenSSL 3.0's client: X25519, TLS 1.3), then bench/tlscpu (Go's
#    client, -n 3000 -c 20) offering X25519 only (like for like with ab
#    and nginx), offering Go's default groups (X25519MLKEM768 first: goes
#    takes it, nginx/OpenSSL 3.0 cannot and takes X25519), and X25519 with
#    session resumption (tickets). Each row says what was negotiated.
# Each handshake row also counts the server threads' context switches per
# connection (/proc/PID/task/*/status): a slow client (ab: one OpenSSL
# thread for 20 connections) leaves the server idle between handshakes,
# and each then pays its wake-ups.
# GOES_MASTER=path measures another goes-master binary (e.g. one built
# from main). TLSCPU_PROFILE=dir writes CPU profiles of goes' worker
# (the admin endpoint's /debug/pprof/profile?worker=0) for the first
# round of keep-alive and of each handshake client, and `pprof -top` of
# each. TLSCPU_ONLY=keepalive|handshakes runs only that part.
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
go build -o "$tmp/tlscpu" ./tlscpu
only=${TLSCPU_ONLY:-}
prof=${TLSCPU_PROFILE:-}
[ -z "$prof" ] || mkdir -p "$prof"
command -v wrk >/dev/null || { echo "wrk is missing (apt-get install -y wrk)"; exit 1; }
nginx=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$nginx" ] || { echo "nginx is missing (apt-get install -y nginx-light)"; exit 1; }
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
	-subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
	-keyout "$tmp/key.pem" -out "$tmp/cert.pem" 2>/dev/null

# ticks of pids' utime+stime
# (the fields after the command name, which may hold spaces)
ticks() { local t=0 p; for p in "$@"; do [ -r /proc/$p/stat ] && t=$((t + $(sed 's/.*) //' /proc/$p/stat | awk '{print $12+$13}'))); done; echo $t; }
# context switches (voluntary and not) of pids' threads
switches() { cat $(for p in "$@"; do echo /proc/$p/task/*/status; done) 2>/dev/null | awk '/_ctxt_switches/ {n += $2} END {print n + 0}'; }
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

# handshakes NAME WHAT PIDS... -- COMMAND...: runs COMMAND (one new
# connection per request) and prints µs of server CPU per connection
handshakes() {
	local name=$1 what=$2; shift 2
	local pids=()
	while [ "$1" != -- ]; do pids+=("$1"); shift; done
	shift
	local before; before=$(ticks "${pids[@]}")
	local sw0; sw0=$(switches "${pids[@]}")
	local out; out=$("$@" 2>&1)
	local after; after=$(ticks "${pids[@]}")
	local sw; sw=$(($(switches "${pids[@]}") - sw0))
	local done failed how
	if [ "$1" = ab ]; then
		done=$(echo "$out" | awk '/Complete requests/ {print $3}')
		failed=$(echo "$out" | awk '/Failed requests/ {print $3}')
		how="(ab: OpenSSL's client)"
	else
		done=$(echo "$out" | awk '{print $1; exit}')
		failed=$(echo "$out" | sed -n 's/^[0-9]* handshakes (\([0-9]*\) failed).*/\1/p')
		how=$(echo "$out" | sed 's/^[^:]*: //')
	fi
	awk -v n="$name" -v w="$what" -v t=$((after - before)) -v hz="$hz" -v r="$done" -v f="$failed" -v how="$how" -v sw="$sw" \
		'BEGIN { printf "%-6s %-16s %5d (%s failed)  server CPU %7.1f µs/handshake  %5.1f switches/handshake  %s\n", n, w, r, f, t / hz * 1e6 / r, sw / r, how }'
}

# profile NAME SECONDS: a CPU profile of goes' worker, in the background
profile() {
	[ -n "$prof" ] || return 0
	curl -s -o "$prof/$1.pprof" "http://127.0.0.1:$aport/debug/pprof/profile?worker=0&seconds=$2" &
	profpid=$!
	sleep 0.2
}
profiled() {
	[ -n "$prof" ] || return 0
	wait "$profpid" || true
	go tool pprof -top -nodecount=40 "$gm" "$prof/$1.pprof" >"$prof/$1.top" 2>/dev/null || true
}

port=$((20000 + RANDOM % 20000))
aport=$((port + 2))
cat >"$tmp/goes.json" <<JSON
{"admin": "127.0.0.1:$aport", "listeners": [{"name": "https", "listen": "https://127.0.0.1:$port", "count": 1, "handler": "hello",
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
    # The cipher goes (crypto/tls, with AES-NI) takes: TLS_AES_128_GCM_SHA256;
    # left to itself nginx takes the client's first, AES-256-GCM.
    ssl_prefer_server_ciphers on;
    ssl_conf_command Ciphersuites TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256;
    location / { return 200 "hello"; } } }
CONF
"$nginx" -c "$tmp/nginx.conf" -p "$tmp/ng"
stop() { "$gm" stop --config "$tmp/goes.json" --run-dir "$tmp/run" >/dev/null 2>&1 || true; kill "$(cat "$tmp/ng/nginx.pid")" 2>/dev/null || true; }
trap 'stop; rm -rf "$tmp"' EXIT
sleep 1
npid=$(cat "$tmp/ng/nginx.pid")
# The group each server settles on with OpenSSL's defaults (ab's, wrk's).
for side in "goes $port" "nginx $nport"; do
	set -- $side
	echo "$1 with OpenSSL $(openssl version | awk '{print $2}')'s client: $(openssl s_client -connect 127.0.0.1:$2 </dev/null 2>/dev/null | grep -E '^(Server Temp Key|New,)' | tr '\n' ' ')"
done
if [ "$only" != handshakes ]; then
	for i in $(seq "$rounds"); do
		[ "$i" != 1 ] || profile keepalive 6
		load goes "https://127.0.0.1:$port/" $(tree "$gpid")
		[ "$i" != 1 ] || profiled keepalive
		load nginx "https://127.0.0.1:$nport/" $(tree "$npid")
	done
fi
[ "$only" != keepalive ] || exit 0
for i in $(seq "$rounds"); do
	for side in "goes $port $gpid" "nginx $nport $npid"; do
		set -- $side
		name=$1 p=$2 pids=$(tree "$3")
		[ "$i" != 1 ] || [ "$name" != goes ] || profile handshake-ab 2
		handshakes "$name" "ab" $pids -- ab -n 3000 -c 20 "https://127.0.0.1:$p/"
		[ "$i" != 1 ] || [ "$name" != goes ] || profiled handshake-ab
		for v in "x25519:-groups x25519" "default:-groups default" "x25519-resumed:-groups x25519 -resume"; do
			what=${v%%:*}
			[ "$i" != 1 ] || [ "$name" != goes ] || profile "handshake-$what" 2
			handshakes "$name" "$what" $pids -- "$tmp/tlscpu" -addr "127.0.0.1:$p" -n 3000 -c 20 ${v#*:}
			[ "$i" != 1 ] || [ "$name" != goes ] || profiled "handshake-$what"
		done
	done
done
