#!/usr/bin/env bash
# The kernel's own XDP SYN proxy (tools/testing/selftests/bpf/progs/xdp_synproxy_kern.c), as a
# comparison row for bench/compare.sh. Its source comes from Debian's linux-source-6.12
# package (installed if missing); nothing of it is kept in this repository. The 6.1 source
# of Debian's default linux-source does not pass the verifier of the 6.18 kernel measured here
# (over a million instructions processed), the 6.12 one does.
#
#   bench/xdp-synproxy.sh build                 -> target/xdp-synproxy/xdp_synproxy_kern.o
#   bench/xdp-synproxy.sh attach NETNS DEV PORT -> loads it (pinned under /sys/fs/bpf), sets
#                                                  MSS 1460/1440, wscale 7, TTL 64 and the port,
#                                                  attaches it natively to DEV in NETNS
#   bench/xdp-synproxy.sh detach NETNS DEV      -> detaches it and removes the pins
#
# The loader is this script (bpftool), not the selftest's xdp_synproxy.c; it writes the same
# two maps: values[0] = mss6 << 32 | ttl << 24 | wscale << 16 | mss4, and allowed_ports (a
# list ending in 0).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=target/xdp-synproxy
PIN=/sys/fs/bpf/synline-xdp-synproxy
SRC=linux-source-6.12

build() {
    [ -f "$OUT/xdp_synproxy_kern.o" ] && return 0
    if [ ! -f "/usr/src/$SRC.tar.xz" ]; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$SRC" >/dev/null
    fi
    mkdir -p "$OUT/src"
    tar -xJf "/usr/src/$SRC.tar.xz" -C "$OUT/src" --strip-components=6 \
        "$SRC/tools/testing/selftests/bpf/progs/xdp_synproxy_kern.c" \
        "$SRC/tools/testing/selftests/bpf/progs/bpf_compiler.h"
    bpftool btf dump file /sys/kernel/btf/vmlinux format c >"$OUT/src/vmlinux.h"
    clang -O2 -g -target bpf -mcpu=v3 -D__TARGET_ARCH_x86 -I"$OUT/src" \
        -I/usr/include/x86_64-linux-gnu -w -c "$OUT/src/xdp_synproxy_kern.c" \
        -o "$OUT/xdp_synproxy_kern.o"
}

le_bytes() { # VALUE NBYTES: little-endian bytes, for bpftool
    local v=$1 n=$2 i out=""
    for ((i = 0; i < n; i++)); do out+="$((v >> (8 * i) & 255)) "; done
    echo "$out"
}

map_id() { # PROG_ID NAME
    local id
    for id in $(bpftool prog show id "$1" -j | python3 -c 'import json,sys; print(" ".join(map(str, json.load(sys.stdin).get("map_ids", []))))'); do
        if bpftool map show id "$id" -j | python3 -c "import json,sys; sys.exit(json.load(sys.stdin)['name'] != '$2')"; then
            echo "$id"
            return 0
        fi
    done
    echo "xdp-synproxy: no map $2" >&2
    return 1
}

attach() { # NETNS DEV PORT
    build
    mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf
    rm -rf "$PIN"
    mkdir -p "$PIN"
    bpftool prog loadall "$OUT/xdp_synproxy_kern.o" "$PIN/progs" pinmaps "$PIN/maps"
    local prog values ports
    prog=$(bpftool prog show pinned "$PIN/progs/syncookie_xdp" -j | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
    values=$(map_id "$prog" values)
    ports=$(map_id "$prog" allowed_ports)
    # shellcheck disable=SC2046
    bpftool map update id "$values" key 0 0 0 0 value $(le_bytes $(((1440 << 32) | (64 << 24) | (7 << 16) | 1460)) 8)
    # shellcheck disable=SC2046
    bpftool map update id "$ports" key 0 0 0 0 value $(le_bytes "$3" 2)
    bpftool map update id "$ports" key 1 0 0 0 value 0 0
    ip netns exec "$1" bpftool net attach xdpdrv id "$prog" dev "$2"
}

detach() { # NETNS DEV
    ip netns exec "$1" ip link set dev "$2" xdp off 2>/dev/null || true
    rm -rf "$PIN"
}

case "${1:-}" in
    build) build ;;
    attach) shift; attach "$@" ;;
    detach) shift; detach "$@" ;;
    *) sed -n '2,17p' "$0"; exit 2 ;;
esac
