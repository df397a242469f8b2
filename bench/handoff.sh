#!/usr/bin/env bash
# The kernel handoff measured side by side (issue 11), in one run, on one topology:
#
#   delivered   connections delivered to the application's accept() per second, with one core
#               for the server side (CPU1: NAPI, synline's worker, the acceptor): the kernel's
#               listener alone vs synline handing every connection to that same listener;
#               the load is synline-loadgen --mode handshake (completing clients) on CPU0
#   lossless    the highest SYN flood rate (cookies, tcp_syncookies=2) that synline answers
#               with no SYN lost, found by stepping the rate up
#   flood       at the loadgen's maximum rate, the share of CURLS curl clients nginx serves,
#               behind synline and behind the kernel alone (tcp_syncookies=1, Linux's
#               default), and where synline's losses are counted
#   per-packet  what the XDP program costs per segment of an established connection, with
#               the handoff on and off (BPF_PROG_TEST_RUN, the kernel's own timing)
#
# Writes bench/results/handoff-<date>.md and prints it. Needs root, 2 CPUs, the release
# build (made here), nginx, curl. Addresses: 198.18.0.0/15 only.
#
#   sudo bench/handoff.sh [--duration 5] [--curls 200]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
DURATION=5
CURLS=200
while (($#)); do
    case "$1" in
        --duration) DURATION=$2; shift 2 ;;
        --curls) CURLS=$2; shift 2 ;;
        -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
        *) echo "handoff: unknown argument $1" >&2; exit 2 ;;
    esac
done
[ "$(id -u)" -eq 0 ] || { echo "handoff: needs root" >&2; exit 1; }
(($(nproc) >= 2)) || { echo "handoff: needs 2 CPUs" >&2; exit 1; }

export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release -q -p synline -p synline-bench --bin synline --bin synline-loadgen --bin synline-acceptor
BIN=$ROOT/target/release
SRV=ho-srv-$$
CLI=ho-cli-$$
TMP=$(mktemp -d /tmp/synline-handoff.XXXXXX)
PIDS=()
NGINX=
log() { printf '%s handoff: %s\n' "$(date +%T)" "$*" >&2; }
stop_all() {
    local p
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    PIDS=()
}
cleanup() {
    trap - EXIT INT TERM
    stop_all
    if [ -n "$NGINX" ]; then kill "$NGINX" 2>/dev/null || true; fi
    ip netns del "$SRV" 2>/dev/null || true
    ip netns del "$CLI" 2>/dev/null || true
    if [ -n "${KEEP:-}" ]; then echo "handoff: kept $TMP" >&2; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

ip netns add "$SRV"
ip netns add "$CLI"
ip link add veth-s netns "$SRV" type veth peer name veth-c netns "$CLI"
for ns in "$SRV" "$CLI"; do
    ip -n "$ns" link set lo up
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.accept_ra=0 net.core.somaxconn=65535
done
ip -n "$SRV" addr add 198.18.0.1/24 dev veth-s
ip -n "$CLI" addr add 198.18.0.2/24 dev veth-c
ip netns exec "$SRV" ethtool -K veth-s tx off rx off >/dev/null
ip netns exec "$CLI" ethtool -K veth-c tx off rx off >/dev/null
ip -n "$SRV" link set veth-s up
ip -n "$CLI" link set veth-c up
# The server reaches every generated client through the client end (one neighbour entry).
CMAC=$(ip netns exec "$CLI" cat /sys/class/net/veth-c/address)
SMAC=$(ip netns exec "$SRV" cat /sys/class/net/veth-s/address)
ip -n "$SRV" route add 198.18.0.0/15 via 198.18.0.2 dev veth-s
ip -n "$SRV" neigh replace 198.18.0.2 lladdr "$CMAC" dev veth-s nud permanent
# The server veth's NAPI (it exists while an XDP program is attached) threaded and pinned to
# CPU1, the target's core; the generator on CPU0.
pin_napi() {
    local p pids=""
    ip netns exec "$SRV" sh -c 'echo 1 > /sys/class/net/veth-s/threaded'
    for _ in $(seq 50); do
        pids=$(ps -eo pid=,comm= | awk 'index($2, "napi/veth-s-") == 1 { print $1 }')
        [ -n "$pids" ] && break
        sleep 0.1
    done
    for p in $pids; do taskset -pc 1 "$p" >/dev/null; done
}
# A veth takes live XDP frames only when its receiving end runs XDP: lg_pass while no synline.
xdp_pass() {
    ip netns exec "$SRV" "$BIN/synline-loadgen" xdp-pass --iface veth-s "$@" >/dev/null
    [ "${1:-}" = --detach ] || pin_napi
}

loadgen() { # ARGS...: one loadgen run on CPU0, its JSON summary on stdout
    ip netns exec "$CLI" "$BIN/synline-loadgen" --iface veth-c --dst 198.18.0.1:8080 \
        --dst-mac "$SMAC" --cpus 0 --json --quiet "$@"
}
jq_() { python3 -c "import json,sys; j=json.load(sys.stdin); print($1)"; }
wait_log() { for _ in $(seq 100); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done; cat "$1" >&2; return 1; }
start_synline() { # extra args
    ip netns exec "$SRV" "$BIN/synline" run --iface veth-s --cpus 1 \
        --stats-socket "$TMP/s.sock" --key-file "$TMP/synline.key" "$@" 2>"$TMP/synline.err" &
    PIDS+=("$!")
    wait_log "$TMP/synline.err" " running "
    pin_napi
}
start_acceptor() {
    RUST_BACKTRACE=0 ip netns exec "$SRV" "$BIN/synline-acceptor" --listen 198.18.0.1:8080 --backlog 65535 \
        --threads 1 --cpus 1 >"$TMP/acceptor.out" &
    PIDS+=("$!")
    wait_log "$TMP/acceptor.out" listening
}
accepted() { tail -n 1 "$TMP/acceptor.out" | tr -dc '0-9'; } # after stop_all

# ---- delivered: connections into accept() per second ----
# Completing clients at a paced rate, stepped up; the best accept() rate each target reaches.
RATES="25000 50000 100000 150000 200000 300000"
delivered() { # label: prints "label best_rate_accepted_per_s offered_at_best"
    local best=0 at=0 rate n secs
    for rate in $RATES; do
        start_acceptor
        [ "$1" = synline ] && { start_synline --listen 198.18.0.1:8080; wait_log "$TMP/synline.err" "application listens"; }
        loadgen --mode handshake --rate "$rate" --duration "$DURATION" >"$TMP/d-$1-$rate.json"
        stop_all
        n=$(accepted)
        secs=$(jq_ 'j["duration_s"]' <"$TMP/d-$1-$rate.json")
        n=$(python3 -c "print(int($n / $secs))")
        echo "| $1 | $rate | $n |" >>"$TMP/delivered.rows"
        if [ "$n" -gt "$best" ]; then best=$n; at=$rate; fi
    done
    echo "$best $at"
}
log "delivered: kernel alone"
xdp_pass
K_DEL=$(delivered kernel)
xdp_pass --detach
log "delivered: synline handing to the same listener"
S_DEL=$(delivered synline)
DELIVERED_ROWS=$(cat "$TMP/delivered.rows")

# ---- lossless: the highest cookie flood rate answered without loss ----
log "lossless: stepping the flood rate"
start_acceptor
start_synline --listen 198.18.0.1:8080,tcp_syncookies=2
# The first milliseconds after an attach drop frames at the veth (NAPI starting): warm up.
loadgen --rate 5000 --duration 1 >/dev/null
LOSSLESS=0
LOSSLESS_ROWS=""
for rate in 25000 50000 100000 150000 200000 300000 400000 500000; do
    j=$(loadgen --rate "$rate" --duration 3)
    sent=$(echo "$j" | jq_ 'j["sent"]')
    valid=$(echo "$j" | jq_ 'j["valid"]')
    echo "$j" >"$TMP/lossless-$rate.json"
    LOSSLESS_ROWS+="| $rate | $sent | $valid | $(python3 -c "print(f'{100*(1-$valid/max($sent,1)):.3f} %')") |"$'\n'
    if [ "$valid" -ge "$sent" ]; then LOSSLESS=$rate; else break; fi
done
stop_all

# ---- flood: the share of curl clients served at the loadgen's maximum rate ----
mkdir -p "$TMP/www"
echo ok >"$TMP/www/index.html"
chmod -R a+rX "$TMP"
cat >"$TMP/nginx.conf" <<EOF
daemon off; worker_processes 1; pid $TMP/nginx.pid; error_log $TMP/nginx.err;
events { worker_connections 4096; }
http { access_log off; client_body_temp_path $TMP/b; proxy_temp_path $TMP/p; fastcgi_temp_path $TMP/f;
  uwsgi_temp_path $TMP/u; scgi_temp_path $TMP/s; server { listen 8080 backlog=4096; root $TMP/www; } }
EOF
flood_share() { # label: flood flat out for DURATION+4 s while CURLS curl clients fetch
    local label=$1
    loadgen --duration $((DURATION + 4)) >"$TMP/flood.json" &
    local lg=$!
    sleep 1
    local ok
    ok=$(ip netns exec "$CLI" bash -c "seq $CURLS | xargs -P 20 -I{} curl -s -o /dev/null -m 20 -w '%{http_code}\n' http://198.18.0.1:8080/" | grep -c '^200$' || true)
    wait "$lg" || true
    echo "$label $ok $(jq_ 'j["sent_pps"]' <"$TMP/flood.json") $(jq_ 'j["valid_pps"]' <"$TMP/flood.json")"
}
log "flood: kernel alone (nginx, tcp_syncookies=1)"
ip netns exec "$SRV" nginx -c "$TMP/nginx.conf" &
NGINX=$!
sleep 0.5
xdp_pass
K_FLOOD=$(flood_share kernel)
xdp_pass --detach
K_NSTAT=$(ip netns exec "$SRV" nstat -az TcpExtListenOverflows TcpExtListenDrops TcpExtSyncookiesSent TcpExtTCPReqQFullDrop | awk 'NR>1{printf "%s=%s ", $1, $2}')
log "flood: behind synline"
ip netns exec "$SRV" nstat -n >/dev/null
start_synline --listen 198.18.0.1:8080
wait_log "$TMP/synline.err" "application listens"
S_FLOOD=$(flood_share synline)
S_STATS=$(ip netns exec "$SRV" "$BIN/synline" stats --socket "$TMP/s.sock" | awk '$2 != 0 && ($1 ~ /RingFull|KernRxDropped|FillRingEmpty|Drop|SyncookiesSent|InSyns|KernelHandoffs|ListenOverflows|TCPReqQFull/) {printf "%s=%s ", $1, $2}')
stop_all
kill "$NGINX" 2>/dev/null; wait "$NGINX" 2>/dev/null || true

# ---- latency: connect() to the first byte of a server that speaks first ----
cat >"$TMP/banner.py" <<'PYEOF'
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("198.18.0.1", 8080)); s.listen(4096); print("listening", flush=True)
while True:
    c, _ = s.accept(); c.send(b"x"); c.close()
PYEOF
cat >"$TMP/latency.py" <<'PYEOF'
import socket, time, statistics
t = []
for _ in range(500):
    c = socket.socket(); t0 = time.perf_counter()
    c.connect(("198.18.0.1", 8080)); c.recv(1); t.append((time.perf_counter() - t0) * 1e6); c.close()
t.sort()
print(f"{statistics.median(t):.0f} {t[int(len(t) * 0.99)]:.0f}")
PYEOF
latency() {
    ip netns exec "$SRV" python3 "$TMP/banner.py" >"$TMP/banner.out" &
    PIDS+=("$!")
    wait_log "$TMP/banner.out" listening
    [ "$1" = synline ] && { start_synline --listen 198.18.0.1:8080; wait_log "$TMP/synline.err" "application listens"; }
    ip netns exec "$CLI" python3 "$TMP/latency.py"
    stop_all
}
log "latency: kernel alone"
xdp_pass
K_LAT=$(latency kernel)
xdp_pass --detach
log "latency: behind synline"
S_LAT=$(latency synline)

# ---- per-packet: the XDP program's cost per established segment ----
log "per-packet: BPF_PROG_TEST_RUN"
PER_PACKET=$(CI=true cargo test --release -q -p synline-xdp --test kernel_flows cost -- --nocapture 2>&1 | grep -E "handoff (true|false)" | sed 's/^ *//')

DATE=$(date +%Y-%m-%d)
OUT=bench/results/handoff-$DATE.md
python3 - "$K_DEL" "$S_DEL" "$K_FLOOD" "$S_FLOOD" "$CURLS" "$LOSSLESS" "$K_LAT" "$S_LAT" >"$OUT" <<PY
import sys
kd, sd, kf, sf, curls, lossless, klat, slat = sys.argv[1:]
klat, slat = klat.split(), slat.split()
(k, k_at), (s, s_at) = map(int, kd.split()), map(int, sd.split())
kf, sf = kf.split(), sf.split()
FENCE = chr(96) * 3
print(f"""# Kernel handoff, measured $DATE (bench/handoff.sh, $(uname -r), $(nproc) vCPUs, veth, one queue)

## Connections delivered to the application's accept() per second (server side on one core)

| target | best accept()s per second | at offered handshakes/s | ratio |
|---|---:|---:|---:|
| Linux listener alone (synline-acceptor, tcp_syncookies=1) | {k:,} | {k_at:,} | 1.00 |
| synline run (kernel handoff) in front of the same listener | {s:,} | {s_at:,} | {s/max(k,1):.2f} |

Load: synline-loadgen --mode handshake (each SYN-ACK answered by the third ACK in XDP), paced,
one thread on CPU0, $DURATION s per step; the acceptor (synline-acceptor: accept4, then close with
SO_LINGER 0), synline's worker and the veth's NAPI kthread all on CPU1. Every step:

| target | offered handshakes/s | accept()s per second |
|---|---:|---:|
$DELIVERED_ROWS

## Highest SYN flood rate synline answers without loss (tcp_syncookies=2, release build)

**{int(lossless):,} SYN/s** (the last step with every SYN answered by a valid cookie SYN-ACK).

| offered SYN/s | sent | valid SYN-ACKs | lost |
|---:|---:|---:|---:|
$LOSSLESS_ROWS
## At the loadgen's maximum rate: share of {curls} curl clients served by nginx

| target | flood SYN/s offered | valid SYN-ACKs/s | curl clients served |
|---|---:|---:|---:|
| nginx behind the Linux listener alone (tcp_syncookies=1) | {float(kf[2]):,.0f} | {float(kf[3]):,.0f} | {kf[1]} / {curls} ({100*int(kf[1])/int(curls):.0f} %) |
| nginx behind synline (kernel handoff, Linux defaults) | {float(sf[2]):,.0f} | {float(sf[3]):,.0f} | {sf[1]} / {curls} ({100*int(sf[1])/int(curls):.0f} %) |

Where the kernel's flood went: $K_NSTAT

Where synline's went (non-zero counters): $S_STATS

## Latency: connect() to the first byte of a server that speaks first (500 connections, idle)

| target | median µs | 99th percentile µs |
|---|---:|---:|
| Linux listener alone | {klat[0]} | {klat[1]} |
| synline in front of it (SYN-ACK from the engine, handoff, accept(), the byte) | {slat[0]} | {slat[1]} |

## What the XDP program costs per segment (BPF_PROG_TEST_RUN, mean of 100,000 runs)

{FENCE}
$PER_PACKET
{FENCE}
""")
PY
cat "$OUT"
