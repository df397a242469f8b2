#!/usr/bin/env bash
# SYN flood, or flood plus completing clients, from a Linux host through a real NIC.
#
# Not with the kernel's pktgen, which cannot send a TCP SYN. pktgen (net/core/pktgen.c, driven
# through /proc/net/pktgen as the kernel's samples/pktgen scripts do) builds every packet in
# fill_packet_ipv4() / fill_packet_ipv6(): Ethernet, IPv4 (protocol IPPROTO_UDP, TTL 32) or IPv6
# (next header IPPROTO_UDP, hop limit 32), a UDP header, then pktgen's own header (magic
# 0xbe9be955, sequence number, timestamp). Its per-packet knobs are addresses, UDP ports, MACs,
# VLAN and MPLS tags, size, TOS and queue; there is no protocol setting, no TCP header, flags,
# sequence number or option. Turning its datagrams into SYNs would take a second program on the
# way out (tc or XDP) that rewrites every byte after the IP header: then that program makes the
# SYNs, not pktgen. xdp-trafficgen, the other kernel-side generator, sends UDP too (its "tcp"
# command sends the data segments of one connection, not SYNs).
#
# So this script runs synline-loadgen, which makes the frames the way xdp-trafficgen does (XDP
# live frames: BPF_PROG_RUN with BPF_F_TEST_XDP_LIVE_FRAMES on a prepared frame, transmitted by
# XDP_TX) and puts in each one what a SYN flood needs: a random source address within the client
# prefix, a random port, a keyed ISN, checksums (bench/src/bin/loadgen/loadgen.bpf.c). Its SYN-ACK checking and
# third ACKs (mix and handshake modes) come with it. These are the frames of
# deploy/load/trex/synline_syn_flood.py, checked by deploy/load/check_frames.py.
#
# Needs root and Linux 5.18 or later (live frames); the NIC's driver must run XDP natively and
# implement ndo_xdp_xmit, as for xdp-trafficgen (mlx5, ice, i40e, ixgbe, bnxt, virtio_net and
# veth do, among others); the target needs a route back to the client prefix through this host.
#
# Usage: syn_flood.sh -i IFACE -d DST_IP [options] [-- extra synline-loadgen flags]
#   -i IFACE    interface to send from (the loadgen's XDP program is attached to it)
#   -d DST_IP   target address, IPv4 or IPv6
#   -p PORT     target port                                      [8080]
#   -m MAC      target's (or next hop's) MAC                     [its neighbour entry on IFACE]
#   -S PREFIX   client prefix                  [198.18.128.0/17, 2001:2:0:8000::/64 for IPv6]
#   -o OPTS     TCP options: none | mss | linux                  [linux]
#   -r RATE     SYNs per second, 0 for flat out (mix: the flood's) [0]
#   -t THREADS  sending threads                                  [1]
#   -C CPUS     pin thread i to the i-th CPU of this list, e.g. 2,3
#   -n COUNT    SYNs to send, then stop
#   -T SECONDS  seconds to send                                  [10 unless -n]
#   -M MODE     flood | mix | handshake                          [flood]
#   -c CPS      completing clients per second (mix)              [1000]
#   -j          final summary as JSON on stdout
#   -N          print the synline-loadgen command and exit
#   -P          use the kernel's pktgen (refused: see above)
#   -h          this help
# Environment: LOADGEN, the synline-loadgen binary [target/release/synline-loadgen of this
# repository, else synline-loadgen on PATH].
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"

usage() {
    sed -n '/^# Usage:/,/^# repository, else/p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

die() {
    echo "syn_flood.sh: $*" >&2
    exit 2
}

refuse_pktgen() {
    cat >&2 <<'EOF'
syn_flood.sh: refusing -P: the kernel's pktgen cannot send TCP SYNs.
  net/core/pktgen.c builds every packet as Ethernet + IP + UDP + pktgen's header
  (iph->protocol = IPPROTO_UDP in fill_packet_ipv4, nexthdr = IPPROTO_UDP in
  fill_packet_ipv6); /proc/net/pktgen has no setting for the protocol, TCP flags,
  sequence numbers or options. A "SYN flood" from it would be a UDP flood.
  Run without -P: synline-loadgen sends the SYNs (XDP live frames, as xdp-trafficgen).
EOF
    exit 2
}

iface="" dst="" port=8080 dst_mac="" src_net="" opts="" rate="" threads="" cpus=""
count="" seconds="" mode="" cps="" json=0 dry=0
while getopts ":i:d:p:m:S:o:r:t:C:n:T:M:c:jNPh" o; do
    case "$o" in
    i) iface="$OPTARG" ;;
    d) dst="$OPTARG" ;;
    p) port="$OPTARG" ;;
    m) dst_mac="$OPTARG" ;;
    S) src_net="$OPTARG" ;;
    o) opts="$OPTARG" ;;
    r) rate="$OPTARG" ;;
    t) threads="$OPTARG" ;;
    C) cpus="$OPTARG" ;;
    n) count="$OPTARG" ;;
    T) seconds="$OPTARG" ;;
    M) mode="$OPTARG" ;;
    c) cps="$OPTARG" ;;
    j) json=1 ;;
    N) dry=1 ;;
    P) refuse_pktgen ;;
    h) usage; exit 0 ;;
    :) die "-$OPTARG needs a value (-h for help)" ;;
    *) die "unknown option -$OPTARG (-h for help)" ;;
    esac
done
shift $((OPTIND - 1))

[ -n "$iface" ] || die "-i IFACE is required (-h for help)"
[ -n "$dst" ] || die "-d DST_IP is required (-h for help)"
case "$port" in '' | *[!0-9]*) die "-p $port: not a port" ;; esac
if [ "$port" -lt 1 ] || [ "$port" -gt 65535 ]; then die "-p $port: not a port"; fi
case "$mode" in '' | flood | mix | handshake) ;; *) die "-M $mode: flood, mix or handshake" ;; esac
case "$opts" in '' | none | mss | linux) ;; *) die "-o $opts: none, mss or linux" ;; esac
if [ -n "$cps" ] && [ "${mode:-flood}" != mix ]; then
    die "-c sets the completing clients of -M mix"
fi

if [ -z "${LOADGEN:-}" ]; then
    if [ -x "$repo/target/release/synline-loadgen" ]; then
        LOADGEN="$repo/target/release/synline-loadgen"
    elif command -v synline-loadgen >/dev/null 2>&1; then
        LOADGEN="$(command -v synline-loadgen)"
    else
        die "no synline-loadgen: build it (cargo build --release -p synline-bench --bin synline-loadgen) or set LOADGEN"
    fi
fi

case "$dst" in
*:*) target="[$dst]:$port" ;;
*) target="$dst:$port" ;;
esac
cmd=("$LOADGEN" --iface "$iface" --dst "$target")
[ -n "$dst_mac" ] && cmd+=(--dst-mac "$dst_mac")
[ -n "$src_net" ] && cmd+=(--src-net "$src_net")
[ -n "$opts" ] && cmd+=(--options "$opts")
[ -n "$rate" ] && cmd+=(--rate "$rate")
[ -n "$threads" ] && cmd+=(--threads "$threads")
[ -n "$cpus" ] && cmd+=(--cpus "$cpus")
[ -n "$count" ] && cmd+=(--count "$count")
[ -n "$seconds" ] && cmd+=(--duration "$seconds")
[ -n "$mode" ] && cmd+=(--mode "$mode")
[ -n "$cps" ] && cmd+=(--complete-rate "$cps")
[ "$json" = 1 ] && cmd+=(--json)
cmd+=("$@")

if [ "$dry" = 1 ]; then
    printf '%q ' "${cmd[@]}"
    echo
    exit 0
fi
[ "$(id -u)" -eq 0 ] || die "needs root (XDP program, BPF_PROG_RUN)"
[ -e "/sys/class/net/$iface" ] || die "no interface $iface in this network namespace"
echo "syn_flood.sh: pktgen cannot send TCP SYNs; sending with synline-loadgen (XDP live frames)" >&2
exec "${cmd[@]}"
