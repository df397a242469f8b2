#!/usr/bin/env bash
# The main job, in namespaces: a server namespace running synline on one end of a veth pair,
# a client namespace on the other end running real Linux connect() calls, the connections
# and the counters shown, everything removed at the end, also when interrupted.
#
# Addresses are from the benchmarking ranges only: 198.18.0.1/24 (synline), 198.18.0.2/24
# (clients), 2001:2::1/64 and 2001:2::2/64.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${SYNLINE_BIN:-./target/release/synline}
CLIENTS=${CLIENTS:-10}
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
    ip netns del "$SRV" 2>/dev/null || true
    ip netns del "$CLI" 2>/dev/null || true
    rm -f "$SOCK" "$LOG"
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

# TCP_DEFER_ACCEPT: the child is made when the client's first bytes arrive, so the log shows
# them, and connect() has returned before synline resets the connection it cannot serve yet.
echo "== synline run on veth-s: 198.18.0.1:8080 and [2001:2::1]:8080, TCP_DEFER_ACCEPT=1"
ip netns exec "$SRV" "$BIN" run --iface veth-s \
    --listen 198.18.0.1:8080,backlog=128,TCP_DEFER_ACCEPT=1 \
    --listen '[2001:2::1]:8080,backlog=128,TCP_DEFER_ACCEPT=1' \
    --stats-socket "$SOCK" >"$LOG" &
PID=$!
for _ in $(seq 100); do [ -S "$SOCK" ] && break; sleep 0.1; done
[ -S "$SOCK" ] || { echo "netns-demo: synline did not start" >&2; exit 1; }

echo "== $CLIENTS IPv4 and $CLIENTS IPv6 clients connect() from $CLI (the Linux kernel is the client)"
ip netns exec "$CLI" python3 - "$CLIENTS" <<'PY'
import socket, sys, time
n = int(sys.argv[1])
ok = 0
for fam, addr in ((socket.AF_INET, "198.18.0.1"), (socket.AF_INET6, "2001:2::1")):
    for i in range(n):
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.settimeout(5)
        t = time.monotonic()
        try:
            s.connect((addr, 8080))
        except OSError as e:
            print(f"  connect {addr}:8080: {e}")
            s.close()
            continue
        ms = (time.monotonic() - t) * 1000
        ok += 1
        port = s.getsockname()[1]
        try:
            # synline logs the connection and resets it (no application behind it yet): the
            # request may meet that RST.
            s.send(b"GET /%d HTTP/1.0\r\n\r\n" % i)
        except OSError:
            pass
        s.close()
        print(f"  connect {addr}:8080 from port {port}: established in {ms:.2f} ms")
print(f"  {ok} of {2 * n} connections established")
sys.exit(0 if ok == 2 * n else 1)
PY
sleep 0.3

echo "== what synline logged (one JSON line per accepted connection, then an RST to the client)"
head -n 4 "$LOG"
echo "  ... $(wc -l <"$LOG") lines"

echo "== synline stats (nstat format, non-zero counters)"
"$BIN" stats --socket "$SOCK" | awk 'NR == 1 || $2 != 0'

echo "== traffic not for a listener still reaches the kernel"
ip netns exec "$CLI" ping -c 1 -W 2 198.18.0.1 >/dev/null && echo "  ping 198.18.0.1: answered by the kernel"
