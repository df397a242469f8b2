#!/usr/bin/env bash
# The main job, in namespaces: a server namespace with Debian's nginx and synline on one end
# of a veth pair (synline answers every SYN; nginx gets each accepted connection from its own
# accept()), a client namespace on the other end with curl (the Linux kernel is the client),
# then a SYN flood from synline-loadgen while curl clients keep being served; the counters
# shown, everything removed at the end, also when interrupted.
#
# Addresses are from the benchmarking ranges only: 198.18.0.1/24 (synline), 198.18.0.2/24
# (clients), 2001:2::1/64 and 2001:2::2/64.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${SYNLINE_BIN:-./target/release/synline}
LOADGEN=${LOADGEN_BIN:-./target/release/synline-loadgen}
FLOOD_PPS=${FLOOD_PPS:-100000}
CURLS=${CURLS:-200}
TMPD=$(mktemp -d /tmp/synline-demo.XXXXXX)
NGINX=
SRV=synline-demo-srv-$$
CLI=synline-demo-cli-$$
SOCK=/tmp/synline-demo-$$.sock
LOG=/tmp/synline-demo-$$.log
PID=

cleanup() {
    trap - EXIT INT TERM
    if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
        kill -INT "$PID" 2>/dev/null || true
        wait "$PID" 2>/dev/null || true
    fi
    if [ -n "$NGINX" ]; then kill "$NGINX" 2>/dev/null || true; wait "$NGINX" 2>/dev/null || true; fi
    ip netns del "$SRV" 2>/dev/null || true
    ip netns del "$CLI" 2>/dev/null || true
    rm -rf "$SOCK" "$LOG" "$TMPD"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

[ "$(id -u)" -eq 0 ] || { echo "netns-demo: needs root (network namespaces, XDP)" >&2; exit 1; }

echo "== topology: $SRV [veth-s 198.18.0.1, 2001:2::1] <-> [veth-c 198.18.0.2, 2001:2::2] $CLI"
ip netns add "$SRV"
ip netns add "$CLI"
ip link add veth-s netns "$SRV" type veth peer name veth-c netns "$CLI"
for ns in "$SRV" "$CLI"; do
    ip -n "$ns" link set lo up
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.accept_ra=0 net.ipv6.conf.default.accept_ra=0
done
ip -n "$SRV" addr add 198.18.0.1/24 dev veth-s
ip -n "$SRV" addr add 2001:2::1/64 dev veth-s nodad
ip -n "$CLI" addr add 198.18.0.2/24 dev veth-c
ip -n "$CLI" addr add 2001:2::2/64 dev veth-c nodad
# veth leaves TCP checksums to an offload that never happens on a redirected frame.
ip netns exec "$SRV" ethtool -K veth-s tx off rx off >/dev/null
ip netns exec "$CLI" ethtool -K veth-c tx off rx off >/dev/null
ip -n "$SRV" link set veth-s up
ip -n "$CLI" link set veth-c up

# A real server: Debian's nginx in the server namespace, on port 80 of both addresses.
WWW=$TMPD/www
mkdir -p "$WWW"
echo "hello from nginx, through synline" >"$WWW/index.html"
head -c 1048576 /dev/urandom >"$WWW/big.bin"
chmod -R a+rX "$TMPD"
cat >"$TMPD/nginx.conf" <<EOF
daemon off; worker_processes 1; pid $TMPD/nginx.pid; error_log $TMPD/nginx.err;
events {}
http { access_log off; client_body_temp_path $TMPD/body; proxy_temp_path $TMPD/proxy;
  fastcgi_temp_path $TMPD/fcgi; uwsgi_temp_path $TMPD/uwsgi; scgi_temp_path $TMPD/scgi;
  server { listen 80; listen [::]:80; root $WWW; } }
EOF
echo "== nginx in $SRV on port 80 (its own listen() and accept(), nothing changed)"
ip netns exec "$SRV" nginx -c "$TMPD/nginx.conf" &
NGINX=$!
for _ in $(seq 50); do ip netns exec "$SRV" ss -Hltn 'sport = :80' | grep -q . && break; sleep 0.1; done

echo "== synline run on veth-s for 198.18.0.1:80 and [2001:2::1]:80 (embedded defaults: Linux's)"
ip netns exec "$SRV" "$BIN" run --iface veth-s \
    --listen 198.18.0.1:80 --listen '[2001:2::1]:80' \
    --stats-socket "$SOCK" --key-file "$TMPD/synline.key" 2>"$LOG" &
PID=$!
for _ in $(seq 100); do grep -q "application listens" "$LOG" 2>/dev/null && [ -S "$SOCK" ] && break; sleep 0.1; done
grep -q "application listens" "$LOG" || { cat "$LOG"; echo "netns-demo: synline did not start" >&2; exit 1; }
sed 's/^/  /' "$LOG"

echo "== curl from $CLI (the Linux kernel is the client): synline answers the SYN, nginx serves"
for url in http://198.18.0.1/ 'http://[2001:2::1]/'; do
    ip netns exec "$CLI" curl -sS -m 5 -o "$TMPD/index.out" -w "  %{http_code}, %{size_download} bytes in %{time_total} s from $url: " "$url"
    cat "$TMPD/index.out"
done
for url in http://198.18.0.1/big.bin 'http://[2001:2::1]/big.bin'; do
    ip netns exec "$CLI" curl -sS -m 10 -o "$TMPD/got.bin" -w "  %{http_code}, %{size_download} bytes from $url" "$url"
    if cmp -s "$TMPD/got.bin" "$WWW/big.bin"; then echo " (byte for byte)"; else echo " (DIFFERENT)"; exit 1; fi
done

echo "== a SYN flood ($FLOOD_PPS SYN/s from random 198.18.128.0/17 sources, synline-loadgen) while $CURLS curl clients fetch the page"
SRV_MAC=$(ip netns exec "$SRV" cat /sys/class/net/veth-s/address)
ip netns exec "$CLI" "$LOADGEN" --iface veth-c --dst 198.18.0.1:80 --dst-mac "$SRV_MAC" \
    --rate "$FLOOD_PPS" --duration 8 --json --quiet >"$TMPD/flood.json" 2>"$TMPD/flood.err" &
FLOOD=$!
sleep 1
served=$(ip netns exec "$CLI" bash -c "seq $CURLS | xargs -P 20 -I{} curl -s -o /dev/null -m 10 -w '%{http_code}\n' http://198.18.0.1/" | grep -c '^200$' || true)
wait "$FLOOD" || true
echo "  $served of $CURLS curl clients served during the flood"
python3 - "$TMPD/flood.json" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
print(f"  flood: {j['sent']} SYNs at {j['sent_pps']:.0f}/s; {j['valid']} valid SYN-ACKs came back, {j['invalid']} invalid")
PY

echo "== synline stats (nstat format, non-zero counters)"
"$BIN" stats --socket "$SOCK" | awk 'NR == 1 || $2 != 0'
echo "== the kernel in $SRV made every connection synline accepted"
ip netns exec "$SRV" nstat -az TcpPassiveOpens TcpExtListenOverflows TcpRetransSegs | sed 's/^/  /'

echo "== traffic not for a listener still reaches the kernel"
ip netns exec "$CLI" ping -c 1 -W 2 198.18.0.1 >/dev/null && echo "  ping 198.18.0.1: answered by the kernel"
