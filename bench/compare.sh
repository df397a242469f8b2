#!/usr/bin/env bash
# The side-by-side comparison of issue 7, in one command:
#
#   sudo bench/compare.sh [--duration S] [--reps N] [--only ID,ID,...] [--no-perf] [--no-build]
#                         [--keep] [--out DIR] [--quiet-wait S]
#
# Builds the release binaries (synline, synline-loadgen, synline-rxdrop, synline-acceptor,
# synline-compare-report), builds two network namespaces joined by a veth pair (client
# 198.18.0.2, server 198.18.0.1, the whole client prefix 198.18.0.0/15 routed back through
# the client with a permanent neighbour entry, checksum offload off on both ends, two queues
# on each end), and measures in turn, with the same generator (synline-loadgen: live-frames
# SYN flood, options like Linux, random sources from 198.18.128.0/17), the same duration and
# the same cores:
#
#   one core for the target (CPU1; the generator alone on CPU0; the server veth's NAPI in its
#   own kthread, pinned to CPU1):
#     xdp-drop      ceiling: XDP_DROP on the server veth
#     rxdrop-1q     ceiling: AF_XDP rxdrop (synline-rxdrop: synline's XDP program, sockets and
#                   poll loop, an engine with no listener that recycles every frame)
#     rxdrop-1q-big the same with 8192-slot rings instead of synline's 2048 (for reference)
#     reflect-1q    the reply ceiling: synline-rxdrop --reflect, the same datapath sending
#                   every frame back (addresses swapped, SYN-ACK set) without an engine
#     kernel-sc2    the Linux listener, tcp_syncookies=2
#     kernel-sc1    the Linux listener, tcp_syncookies=1, backlog 1M, tcp_synack_retries=0
#     nft-synproxy  nftables SYNPROXY in front of the Linux listener
#     synline-1q    synline run, one queue
#     synline-xdp-1q  synline run --xdp-cookies on: cookie SYN-ACKs answered in the XDP
#                   program (the flood path), one queue
#     xdp-synproxy-1q the kernel's selftest XDP SYN proxy (bench/xdp-synproxy.sh builds it
#                   from Debian's linux-source-6.12)
#   both cores shared by generator and target (two generator threads, one per core, so that
#   the veth spreads frames over both queues; NAPI inline in the sender's softirq):
#     rxdrop-2q     ceiling: AF_XDP rxdrop, two queues
#     reflect-2q    the reply ceiling, two queues
#     kernel-sc2-2c the Linux listener, tcp_syncookies=2
#     synline-2q    synline run, two queues, a worker pinned to each core
#     synline-xdp-2q  the flood path, two queues
#     xdp-synproxy-2c the kernel's XDP SYN proxy, both cores
#
# For each: valid SYN-ACKs/s counted at the client by the loadgen's XDP program (flood mode),
# handshakes/s completed at the server (handshake mode, every flow completing, --rate high
# enough to saturate), CPU per core over the middle of each run (/proc/stat), N repetitions.
# A perf profile (perf record -a -g) of one extra flood run of the kernel listener and of
# synline gives each core's top symbols. Results: bench/results/compare-<date>.{md,json,png}
# and bench/results/latest.md.
#
# Everything it creates (namespaces, processes) is removed on exit, also on failure or Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

DURATION=5
REPS=3
ONLY=""
PERF=1
BUILD=1
KEEP=0
OUT_DIR=bench/results
QUIET_WAIT=300
while (($#)); do
    case "$1" in
        --duration) DURATION=$2; shift 2 ;;
        --reps) REPS=$2; shift 2 ;;
        --only) ONLY=$2; shift 2 ;;
        --no-perf) PERF=0; shift ;;
        --no-build) BUILD=0; shift ;;
        --keep) KEEP=1; shift ;;
        --out) OUT_DIR=$2; shift 2 ;;
        --quiet-wait) QUIET_WAIT=$2; shift 2 ;;
        -h|--help) sed -n '2,35p' "$0"; exit 0 ;;
        *) echo "compare: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
[[ "$DURATION" =~ ^[0-9]+$ ]] && ((DURATION >= 4)) || { echo "compare: --duration must be a whole number of seconds, at least 4" >&2; exit 2; }
[[ "$REPS" =~ ^[0-9]+$ ]] && ((REPS >= 1)) || { echo "compare: --reps must be at least 1" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || { echo "compare: needs root (namespaces, XDP, AF_XDP, perf)" >&2; exit 1; }
for t in ip ethtool nft nstat taskset bpftool python3; do
    command -v "$t" >/dev/null || { echo "compare: $t is missing (deploy/setup.sh installs it)" >&2; exit 1; }
done
if ((PERF)) && ! command -v perf >/dev/null; then
    echo "compare: perf not found: no per-core profile (Debian: linux-perf)" >&2
    PERF=0
fi
(($(nproc) >= 2)) || { echo "compare: needs at least 2 CPUs (generator on CPU0, target on CPU1)" >&2; exit 1; }

BIN=$ROOT/target/release
SRV=cmp-srv-$$
CLI=cmp-cli-$$
SDEV=cmps$$
CDEV=cmpc$$
DST=198.18.0.1
PORT=8080
TMP=$(mktemp -d /tmp/synline-compare.XXXXXX)
RAW=$TMP/raw.jsonl
SOCK=$TMP/synline.sock
TARGET_PIDS=()
LG_PID=""
PERF_PID=""

log() { printf '%s compare: %s\n' "$(date +%T)" "$*" >&2; }

stop_pid() { # PID [signal]: ends one process this script started, and waits for it
    local pid=$1 sig=${2:-INT}
    [ -n "$pid" ] || return 0
    if kill -0 "$pid" 2>/dev/null; then
        kill "-$sig" "$pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

BPF_STATS_WAS=""
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    stop_pid "$PERF_PID"
    stop_pid "$LG_PID"
    local p
    for p in "${TARGET_PIDS[@]}"; do stop_pid "$p"; done
    ip netns del "$SRV" 2>/dev/null || true
    ip netns del "$CLI" 2>/dev/null || true
    [ -n "$BPF_STATS_WAS" ] && sysctl -qw "kernel.bpf_stats_enabled=$BPF_STATS_WAS" 2>/dev/null
    if ((rc != 0)) || ((KEEP)); then
        log "exit $rc; scratch files kept in $TMP"
    else
        rm -rf "$TMP"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- the exact commands, as run (namespace and device names as placeholders) ----
declare -A SEEN=()
COMMANDS=()
record() { # the command line, normalised, once
    local c=$*
    c=${c//$SRV/SRV}
    c=${c//$CLI/CLI}
    c=${c//$SDEV/veth-s}
    c=${c//$CDEV/veth-c}
    c=${c//$ROOT\//}
    c=${c//$TMP/\$TMP}
    [ -n "${SEEN[$c]:-}" ] && return 0
    SEEN[$c]=1
    COMMANDS+=("$c")
}
run() { record "$@"; "$@"; }
in_srv() { record ip netns exec SRV "$@"; ip netns exec "$SRV" "$@"; }
in_cli() { record ip netns exec CLI "$@"; ip netns exec "$CLI" "$@"; }
# SRV_SETUP: a shell command run in the server namespace once a target is up, @DEV@ standing
# for the server veth (bench/defaults.sh sets the device's NAPI knobs with it).
srv_setup() { if [ -n "${SRV_SETUP:-}" ]; then srv_sh "${SRV_SETUP//@DEV@/$SDEV}"; fi; }
srv_sh() { record ip netns exec SRV sh -c "'$1'"; ip netns exec "$SRV" sh -c "$1"; }

jstr() { # a JSON string
    local s=$1
    s=${s//\\/\\\\}
    s=${s//\"/\\\"}
    s=${s//$'\n'/\\n}
    s=${s//$'\t'/ }
    s=${s//$'\r'/}
    printf '"%s"' "$s"
}

# ---- a quiet machine ----
wait_quiet() {
    local waited=0 load
    while :; do
        load=$(cut -d' ' -f1 /proc/loadavg)
        if awk -v l="$load" 'BEGIN { exit !(l <= 0.5) }'; then
            break
        fi
        if ((waited >= QUIET_WAIT)); then
            log "load average still $load after ${waited}s: going ahead (noted in the results)"
            NOTES+=("The 1-minute load average was $load when the run started (waited ${waited} s for it to drop below 0.5).")
            break
        fi
        ((waited == 0)) && log "load average $load > 0.5: waiting for other work to finish (up to $QUIET_WAIT s)"
        sleep 10
        waited=$((waited + 10))
    done
    log "load average $(cut -d' ' -f1-3 /proc/loadavg)"
}

# ---- build ----
build() {
    if ! command -v cargo >/dev/null; then
        for d in "$HOME/.cargo/bin" "/home/${SUDO_USER:-}/.cargo/bin" /root/.cargo/bin; do
            [ -x "$d/cargo" ] && export PATH="$d:$PATH" && break
        done
    fi
    log "building release binaries"
    record cargo build --release -p synline -p synline-bench --bins
    cargo build --release -p synline -p synline-bench --bins 2>&1 | grep -Ev '^\s+(Compiling|Checking)' >&2 || true
    for b in synline synline-loadgen synline-rxdrop synline-acceptor synline-compare-report; do
        [ -x "$BIN/$b" ] || { echo "compare: $BIN/$b missing after the build" >&2; exit 1; }
    done
}

# ---- the topology ----
topology() {
    log "topology: $SRV [$SDEV 198.18.0.1] <-> [$CDEV 198.18.0.2] $CLI, 2 queues each end"
    run ip netns add "$SRV"
    run ip netns add "$CLI"
    run ip link add "$CDEV" numtxqueues 2 numrxqueues 2 netns "$CLI" type veth \
        peer name "$SDEV" numtxqueues 2 numrxqueues 2 netns "$SRV"
    local ns
    for ns in "$SRV" "$CLI"; do
        run ip -n "$ns" link set lo up
        ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.accept_ra=0 net.ipv6.conf.default.accept_ra=0
    done
    run ip -n "$SRV" addr add 198.18.0.1/24 dev "$SDEV"
    run ip -n "$CLI" addr add 198.18.0.2/24 dev "$CDEV"
    # veth leaves TCP checksums to an offload that never happens on an XDP frame.
    in_srv ethtool -K "$SDEV" tx off rx off >/dev/null
    in_cli ethtool -K "$CDEV" tx off rx off >/dev/null
    run ip -n "$SRV" link set "$SDEV" up
    run ip -n "$CLI" link set "$CDEV" up
    local cmac
    cmac=$(ip netns exec "$CLI" cat "/sys/class/net/$CDEV/address")
    SMAC=$(ip netns exec "$SRV" cat "/sys/class/net/$SDEV/address")
    # Every client address through the client: one permanent neighbour entry serves them all.
    run ip -n "$SRV" route add 198.18.0.0/15 via 198.18.0.2 dev "$SDEV"
    record ip -n SRV neigh replace 198.18.0.2 lladdr "<MAC of veth-c>" dev veth-s nud permanent
    ip -n "$SRV" neigh replace 198.18.0.2 lladdr "$cmac" dev "$SDEV" nud permanent
    # And the server's address on the client, for the sinks that drop ARP too.
    record ip -n CLI neigh replace 198.18.0.1 lladdr "<MAC of veth-s>" dev veth-c nud permanent
    ip -n "$CLI" neigh replace 198.18.0.1 lladdr "$SMAC" dev "$CDEV" nud permanent
}

queues() { # N: RX/TX queues on both ends (nothing attached)
    in_srv ethtool -L "$SDEV" rx "$1" tx "$1"
    in_cli ethtool -L "$CDEV" rx "$1" tx "$1"
}

# NAPI of the server veth (it exists only while an XDP program is attached there):
#   own:    threaded, its kthreads pinned to CPU1, the target's core;
#   inline: in the softirq of whoever sends (the generator's CPU).
napi() {
    local mode=$1 pids p i
    if [ "$mode" = inline ]; then
        srv_sh "echo 0 > /sys/class/net/$SDEV/threaded"
        return
    fi
    srv_sh "echo 1 > /sys/class/net/$SDEV/threaded"
    for i in $(seq 50); do
        pids=$(ps -eo pid=,comm= | awk -v d="napi/$SDEV-" 'index($2, d) == 1 { print $1 }')
        [ -n "$pids" ] && break
        sleep 0.1
    done
    [ -n "$pids" ] || { echo "compare: no napi/$SDEV-* kthread after enabling threaded NAPI" >&2; exit 1; }
    for p in $pids; do
        record taskset -pc 1 "<pid of napi/$SDEV-*>"
        taskset -pc 1 "$p" >/dev/null
    done
}

# ---- counters and CPU ----
nstat_json() { # nstat-format text on stdin -> one JSON object
    awk 'BEGIN { printf "{"; sep = "" }
         /^#/ || NF < 2 { next }
         $2 ~ /^[0-9]+$/ { printf "%s\"%s\":%s", sep, $1, $2; sep = "," }
         END { printf "}" }'
}

COUNTERS=none
counters() {
    case "$COUNTERS" in
        kernel) ip netns exec "$SRV" nstat -asz 2>/dev/null | nstat_json ;;
        synline) "$BIN/synline" stats --socket "$SOCK" 2>/dev/null | nstat_json ;;
        *) printf '{}' ;;
    esac
}

cpustat() { grep -E '^cpu[0-9]+ ' /proc/stat; }

# ---- one measurement ----
GEN_THREADS=1
GEN_CPUS=0
lg_args() { # MODE
    local a=(--iface "$CDEV" --dst "$DST:$PORT" --duration "$DURATION" --threads "$GEN_THREADS"
        --cpus "$GEN_CPUS" --options linux --mode "$1" --json -q)
    [ "$1" = handshake ] && a+=(--rate 1000000)
    printf '%s\n' "${a[@]}"
}

# measure CONFIG MODE REP [SINK_JSON_FILE]: one run of the generator; the record goes to RAW.
measure() {
    local id=$1 mode=$2 rep=$3 sinkfile=${4:-} ctr0 ctr1 st0 st1 lg sink=""
    local args
    mapfile -t args < <(lg_args "$mode")
    ctr0=$(counters)
    record ip netns exec CLI target/release/synline-loadgen "${args[@]}"
    ip netns exec "$CLI" "$BIN/synline-loadgen" "${args[@]}" >"$TMP/lg.json" 2>"$TMP/lg.err" &
    LG_PID=$!
    # The CPU window: the middle of the run, away from start-up and the drain.
    sleep 1
    st0=$(cpustat)
    sleep $((DURATION - 2))
    st1=$(cpustat)
    if ! wait "$LG_PID"; then
        LG_PID=""
        echo "compare: $id: the loadgen failed: $(cat "$TMP/lg.err")" >&2
        exit 1
    fi
    LG_PID=""
    sleep 0.3
    ctr1=$(counters)
    lg=$(tail -n 1 "$TMP/lg.json")
    [ -n "$sinkfile" ] && sink=",\"sink\":$(tail -n 1 "$sinkfile")"
    printf '{"config":"%s","mode":"%s","rep":%d,"loadgen":%s,"ctr0":%s,"ctr1":%s,"stat0":%s,"stat1":%s%s}\n' \
        "$id" "$mode" "$rep" "$lg" "$ctr0" "$ctr1" "$(jstr "$st0")" "$(jstr "$st1")" "$sink" >>"$RAW"
    log "$id rep $rep $mode: $(printf '%s' "$lg" | grep -o '"valid_pps":[0-9.]*') $(printf '%s' "$lg" | grep -o '"if_tx_packets":[0-9]*') $(printf '%s' "$lg" | grep -o '"handshakes_pps":[0-9.]*')"
}

# ---- the targets ----
start_bg() { # LOGFILE CMD...: a target process in the server namespace
    local logf=$1
    shift
    record ip netns exec SRV "$@"
    ip netns exec "$SRV" "$@" >"$logf" 2>&1 &
    TARGET_PIDS+=("$!")
}

stop_targets() {
    local p
    for p in "${TARGET_PIDS[@]}"; do stop_pid "$p"; done
    TARGET_PIDS=()
}

wait_for() { # FILE PATTERN: until the target says it is ready
    local i
    for i in $(seq 100); do
        grep -q "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "compare: target not ready ($2 not in $1):" >&2
    cat "$1" >&2
    exit 1
}

acceptor() { # BACKLOG CPUS
    start_bg "$TMP/acceptor.log" "$BIN/synline-acceptor" --listen "$DST:$PORT" --backlog "$1" \
        --threads 2 --cpus "$2"
    wait_for "$TMP/acceptor.log" listening
}

kernel_sysctls() { # SYNCOOKIES BACKLOG SYNACK_RETRIES
    in_srv sysctl -qw "net.ipv4.tcp_syncookies=$1" "net.core.somaxconn=$2" \
        "net.ipv4.tcp_max_syn_backlog=$2" "net.ipv4.tcp_synack_retries=$3"
}

xdp_pass() { in_srv "$BIN/synline-loadgen" xdp-pass --iface "$SDEV" "$@" >/dev/null; }

# ---- the configurations ----
CONFIG_JSON=()
describe() { # ID KIND LABEL REF_KERNEL REF_CEILING HOW [REF_REPLY]
    wanted "$1" || return 0
    # A trafgen row's figure is the server's own count: no ratio to the loadgen's ceilings.
    if [ "$GEN" = trafgen ]; then set -- "$1" "$2" "$3" "$4" "" "$6" ""; fi
    CONFIG_JSON+=("{\"id\":$(jstr "$1"),\"kind\":$(jstr "$2"),\"label\":$(jstr "$3"),\"ref_kernel\":$(jstr "$4"),\"ref_ceiling\":$(jstr "$5"),\"how\":$(jstr "$6"),\"ref_reply\":$(jstr "${7:-}")}")
}
wanted() { [ -z "$ONLY" ] || [[ ",$ONLY," == *",$1,"* ]]; }

ONE="the generator alone on CPU0 (1 thread), the server veth's NAPI threaded and pinned to CPU1"
BOTH="both cores shared: generator threads on CPU0 and CPU1 (the veth queues a frame by the sending CPU, so each feeds one queue), NAPI inline in the generator's softirq"

reps_of() { # ID MODES...: the repetitions of a target that is already running
    local id=$1 r m
    shift
    for r in $(seq "$REPS"); do
        if [ "$GEN" = trafgen ]; then measure_trafgen "$id" "$r"; continue; fi
        for m in "$@"; do measure "$id" "$m" "$r"; done
    done
}

# The second generator (issue 13, target 6): netsniff-ng's trafgen, a PF_PACKET TX ring, with
# deploy/load/trafgen/syn_flood.cfg (random sources in 198.18.128.0/17, Linux's options), one
# thread on CPU0 (0.6.8's --cpus 1 is always CPU 0), flood only. --rate (far above what it
# reaches, about 600k frames/s) puts trafgen on its sendto() path: its TX_RING path ends at once
# with "Flushing TX_RING failed: Resource temporarily unavailable" on this kernel's veth, whose
# full ring pushes back (EAGAIN), an error trafgen 0.6.8 does not expect there. The client veth drops the
# replies in XDP (the loadgen's lg_drop) as the loadgen's own program would after counting them.
# The figure is the server's own count of cookie SYN-ACKs sent (TcpExtSyncookiesSent: both
# listeners run tcp_syncookies=2, so every SYN-ACK is a cookie), set against the same counter
# in the same target's loadgen rows.
GEN=loadgen
TRAFGEN_CFG=deploy/load/trafgen/syn_flood.cfg
measure_trafgen() { # ID REP
    local id=$1 rep=$2 ctr0 ctr1 st0 st1 tx0 tx1 drop0 drop1 pid sent
    ctr0=$(counters)
    tx0=$(ip netns exec "$CLI" cat "/sys/class/net/$CDEV/statistics/tx_packets")
    drop0=$(ip netns exec "$CLI" cat "/sys/class/net/$CDEV/statistics/tx_dropped")
    record ip netns exec CLI timeout -s INT "$DURATION" trafgen --dev veth-c --conf "$TRAFGEN_CFG" --cpp -D "DMAC=<MAC of veth-s>" -D DST="$DST" -D DPORT="$PORT" --cpus 1 --num 0 --no-sock-mem --notouch-irq --rate 10000000pps
    # setsid: trafgen forks a worker, and timeout's SIGINT must reach the whole group.
    setsid ip netns exec "$CLI" timeout -s INT "$DURATION" trafgen --dev "$CDEV" --conf "$ROOT/$TRAFGEN_CFG" --cpp \
        -D "DMAC=$SMAC" -D "DST=$DST" -D "DPORT=$PORT" --cpus 1 --num 0 --no-sock-mem --notouch-irq \
        --rate 10000000pps \
        >"$TMP/tg.out" 2>"$TMP/tg.err" &
    pid=$!
    sleep 1
    st0=$(cpustat)
    sleep $((DURATION - 2))
    st1=$(cpustat)
    wait "$pid" || true
    sleep 0.3
    ctr1=$(counters)
    tx1=$(ip netns exec "$CLI" cat "/sys/class/net/$CDEV/statistics/tx_packets")
    drop1=$(ip netns exec "$CLI" cat "/sys/class/net/$CDEV/statistics/tx_dropped")
    sent=$(tr -d '\r' <"$TMP/tg.out" | awk '/ packets outgoing$/ { print $1 }' | tail -n 1)
    [ -n "$sent" ] || { echo "compare: $id: trafgen printed no packet count: $(cat "$TMP/tg.err")" >&2; exit 1; }
    printf '{"config":"%s","mode":"flood","rep":%d,"generator":"trafgen","loadgen":{"duration_s":%s,"sent":%s,"if_tx_packets":%s,"if_tx_dropped":%s},"ctr0":%s,"ctr1":%s,"stat0":%s,"stat1":%s}\n' \
        "$id" "$rep" "$DURATION" "$sent" "$((tx1 - tx0))" "$((drop1 - drop0))" "$ctr0" "$ctr1" "$(jstr "$st0")" "$(jstr "$st1")" >>"$RAW"
    log "$id rep $rep trafgen: sent $sent, delivered $((tx1 - tx0))"
}

trafgen_rows() { # the one-core kernel and synline rows again, with trafgen as the generator
    command -v trafgen >/dev/null || { echo "compare: trafgen is missing (Debian: netsniff-ng; deploy/setup.sh installs it)" >&2; exit 1; }
    ip netns exec "$CLI" "$BIN/synline-loadgen" xdp-pass --iface "$CDEV" --drop >/dev/null
    GEN=trafgen cfg_kernel kernel-sc2-trafgen 2 4096 5 1 own 1 1 0 "Linux listener, tcp_syncookies=2 (1 core), trafgen" "$ONE; the generator is trafgen" rxdrop-1q
    GEN=trafgen cfg_synline synline-1q-trafgen 1 own 1 1 0 "synline, 1 queue (1 core), trafgen" "$ONE; the generator is trafgen" kernel-sc2-trafgen rxdrop-1q
    ip netns exec "$CLI" "$BIN/synline-loadgen" xdp-pass --iface "$CDEV" --detach >/dev/null
}

cfg_xdp_drop() {
    describe xdp-drop ceiling "ceiling: XDP_DROP (1 core)" kernel-sc2 rxdrop-1q \
        "synline-loadgen xdp-pass --drop on the server veth (lg_drop); absorbed = frames the client veth delivered; $ONE."
    wanted xdp-drop || return 0
    queues 1
    GEN_THREADS=1 GEN_CPUS=0 COUNTERS=none
    xdp_pass --drop
    napi own
    reps_of xdp-drop flood
    xdp_pass --detach
}

cfg_rxdrop() { # ID QUEUES NAPI CPUS GEN_THREADS GEN_CPUS LABEL WHERE REF_KERNEL [RXDROP_ARGS...]
    local extra=("${@:10}")
    describe "$1" ceiling "$7" "$9" "$1" \
        "synline-rxdrop --cpus $4${extra[*]:+ ${extra[*]}}: synline's XDP program redirects the flood's target to one AF_XDP socket per queue (copy mode, workers under SCHED_FIFO 1 as synline run by default), a listener-less engine parses each frame, finds no listener (Verdict::Pass) and recycles it: rxdrop plus a parse and an empty-table lookup; absorbed = frames taken from the RX rings; $8."
    sink_reps "$1" "$2" "$3" "$4" "$5" "$6" "${extra[@]}"
}

cfg_reflect() { # ID QUEUES NAPI CPUS GEN_THREADS GEN_CPUS LABEL WHERE REF_KERNEL REF_CEILING
    describe "$1" reply-ceiling "$7" "$9" "${10}" \
        "synline-rxdrop --reflect --cpus $4: the reply ceiling. synline's XDP program, AF_XDP sockets (copy mode, synline's rings), pinned workers and poll loop (the same batches, kicks, refills and idle waits as synline run), but no engine: each received frame is sent back from the frame it came in, addresses and ports swapped, SYN+ACK set, ACK = SEQ + 1, the TCP checksum updated incrementally (synline_wire::reflect); nothing else is read or checked. The figure is the SYN-ACKs that reached the client (the loadgen's XDP program counts them; they carry the SYN's options, so it files them under invalid options, which costs it the same as a valid one); $8."
    sink_reps "$1" "$2" "$3" "$4" "$5" "$6" --reflect
}

# The repetitions of a synline-rxdrop row: the sink's totals come out when it stops, so one
# sink process per repetition.
sink_reps() { # ID QUEUES NAPI CPUS GEN_THREADS GEN_CPUS [RXDROP_ARGS...]
    local id=$1 nm=$3 cpus=$4 r
    local extra=("${@:7}")
    wanted "$id" || return 0
    queues "$2"
    GEN_THREADS=$5 GEN_CPUS=$6 COUNTERS=none
    for r in $(seq "$REPS"); do
        start_bg "$TMP/rxdrop.json" "$BIN/synline-rxdrop" --iface "$SDEV" --listen "$DST:$PORT" --cpus "$cpus" "${extra[@]}"
        wait_for "$TMP/rxdrop.json" "ready"
        napi "$nm"
        srv_setup
        measure_sink "$id" "$r"
    done
}

# A measurement whose figure comes from the sink's totals at exit (rxdrop).
measure_sink() { # ID REP
    local id=$1 rep=$2 st0 st1 lg args
    mapfile -t args < <(lg_args flood)
    record ip netns exec CLI target/release/synline-loadgen "${args[@]}"
    ip netns exec "$CLI" "$BIN/synline-loadgen" "${args[@]}" >"$TMP/lg.json" 2>"$TMP/lg.err" &
    LG_PID=$!
    sleep 1
    st0=$(cpustat)
    sleep $((DURATION - 2))
    st1=$(cpustat)
    wait "$LG_PID" || { LG_PID=""; echo "compare: $id: the loadgen failed: $(cat "$TMP/lg.err")" >&2; exit 1; }
    LG_PID=""
    stop_targets
    lg=$(tail -n 1 "$TMP/lg.json")
    local sink
    sink=$(grep '^{' "$TMP/rxdrop.json" | tail -n 1)
    printf '{"config":"%s","mode":"flood","rep":%d,"loadgen":%s,"ctr0":{},"ctr1":{},"stat0":%s,"stat1":%s,"sink":%s}\n' \
        "$id" "$rep" "$lg" "$(jstr "$st0")" "$(jstr "$st1")" "$sink" >>"$RAW"
    log "$id rep $rep: $(printf '%s' "$sink" | grep -o '"rx_frames":[0-9]*' | head -1) $(printf '%s' "$lg" | grep -o '"if_tx_packets":[0-9]*')"
}

cfg_kernel() { # ID SYNCOOKIES BACKLOG SYNACK_RETRIES QUEUES NAPI ACCEPT_CPUS GEN_THREADS GEN_CPUS LABEL WHERE REF_CEILING
    local id=$1
    describe "$id" target "${10}" "$([ "$5" = 2 ] && echo kernel-sc2-2c || echo kernel-sc2)" "${12}" \
        "the Linux listener: synline-acceptor (2 threads pinned to CPU $7, accept4 then close with SO_LINGER 0, so an RST like synline's) on $DST:$PORT, listen backlog $3, net.core.somaxconn=$3, tcp_max_syn_backlog=$3, tcp_syncookies=$2, tcp_synack_retries=$4; lg_pass (XDP_PASS) on the server veth so live frames arrive; ${11}."
    wanted "$id" || return 0
    queues "$5"
    GEN_THREADS=$8 GEN_CPUS=$9 COUNTERS=kernel
    kernel_sysctls "$2" "$3" "$4"
    acceptor "$3" "$7"
    xdp_pass
    napi "$6"
    reps_of "$id" flood handshake
    maybe_perf "$id" "${10}" "$9"
    stop_targets
    xdp_pass --detach
    kernel_sysctls 1 4096 5
}

NFT_RULES="table ip synproxy_bench {
    chain pre {
        type filter hook prerouting priority raw; policy accept;
        tcp dport $PORT tcp flags syn notrack
    }
    chain in {
        type filter hook input priority filter; policy accept;
        tcp dport $PORT ct state invalid,untracked synproxy mss 1460 wscale 7 timestamp sack-perm
        ct state invalid drop
    }
}"

cfg_nft() {
    describe nft-synproxy target "nftables SYNPROXY + Linux listener (1 core)" kernel-sc2 rxdrop-1q \
        "nft ruleset in the server namespace (below): SYNs to port $PORT untracked in raw prerouting, then synproxy mss 1460 wscale 7 timestamp sack-perm for untracked and invalid segments, nf_conntrack_tcp_loose=0, nf_conntrack_tcp_timeout_close=1 (the accepted connections are reset; their entries would otherwise fill the table); behind it the same acceptor with tcp_syncookies=1, backlog 4096, tcp_synack_retries=0; lg_pass on the server veth; $ONE."
    wanted nft-synproxy || return 0
    queues 1
    GEN_THREADS=1 GEN_CPUS=0 COUNTERS=kernel
    kernel_sysctls 1 4096 0
    printf '%s\n' "$NFT_RULES" >"$TMP/synproxy.nft"
    record "nft -f - <<EOF (in SRV)"
    while IFS= read -r l; do record "    $l"; done <<<"$NFT_RULES"
    record "EOF"
    ip netns exec "$SRV" nft -f "$TMP/synproxy.nft"
    in_srv sysctl -qw net.netfilter.nf_conntrack_tcp_loose=0 net.netfilter.nf_conntrack_tcp_timeout_close=1
    acceptor 4096 1
    xdp_pass
    napi own
    reps_of nft-synproxy flood handshake
    stop_targets
    xdp_pass --detach
    in_srv nft delete table ip synproxy_bench
}

cfg_synline() { # ID QUEUES NAPI CPUS GEN_THREADS GEN_CPUS LABEL WHERE REF_KERNEL REF_CEILING [RUN_ARGS...]
    local id=$1
    local extra="${*:11}"
    describe "$id" target "$7" "$9" "${10}" \
        "synline run --listen $DST:$PORT,tcp_syncookies=2 --cpus $4 $extra ${SYNLINE_ARGS:-} ($2 queue(s), AF_XDP copy mode, otherwise the default configuration: workers under SCHED_FIFO 1, 2048-slot rings, batches of 64, need_wakeup, no busy polling; the JSON log of accepted connections to /dev/null; each accepted connection reset with an RST as the daemon does); counters from synline stats --socket; $8." \
        "$([ "$2" = 1 ] && echo reflect-1q || echo reflect-2q)"
    wanted "$id" || return 0
    queues "$2"
    GEN_THREADS=$5 GEN_CPUS=$6 COUNTERS=synline
    rm -f "$SOCK"
    # SYNLINE_ARGS: extra `synline run` flags, e.g. SYNLINE_ARGS="--ring-size 8192".
    # shellcheck disable=SC2086
    record ip netns exec SRV target/release/synline run --accept log --iface veth-s --listen "$DST:$PORT,tcp_syncookies=2" --cpus "$4" $extra ${SYNLINE_ARGS:-} --stats-socket "\$TMP/synline.sock" ">/dev/null"
    # shellcheck disable=SC2086
    ip netns exec "$SRV" "$BIN/synline" run --accept log --iface "$SDEV" --listen "$DST:$PORT,tcp_syncookies=2" \
        --cpus "$4" $extra ${SYNLINE_ARGS:-} --stats-socket "$SOCK" --key-file "$TMP/synline.key" >/dev/null 2>"$TMP/synline.err" &
    TARGET_PIDS+=("$!")
    wait_for "$TMP/synline.err" " running "
    for _ in $(seq 50); do [ -S "$SOCK" ] && break; sleep 0.1; done
    napi "$3"
    srv_setup
    reps_of "$id" flood handshake
    maybe_perf "$id" "$7" "$6"
    stop_targets
    grep -E 'Xsk(Kern)?(RxDropped|FillRingEmpty|RxRingFull|TxRingFull)Q|SynlineXdpRedirected' "$TMP/synline.err" |
        awk '$2 != 0 { printf "%s=%s ", $1, $2 } END { print "" }' >"$TMP/$id.totals"
    log "$id daemon totals: $(cat "$TMP/$id.totals")"
}

cfg_xdp_synproxy() { # ID QUEUES NAPI GEN_THREADS GEN_CPUS LABEL WHERE REF_KERNEL REF_CEILING
    local id=$1
    describe "$id" target "$6" "$8" "$9" \
        "the kernel's selftest XDP SYN proxy (xdp_synproxy_kern.c of Debian's linux-source-6.12, built and loaded by bench/xdp-synproxy.sh: bpftool, MSS 1460, wscale 7, TTL 64, port $PORT allowed), attached natively to the server veth; every SYN gets a cookie SYN-ACK by XDP_TX after a conntrack lookup; flood mode only (its ACKs need iptables SYNPROXY behind it); $7."
    wanted "$id" || return 0
    queues "$2"
    GEN_THREADS=$4 GEN_CPUS=$5 COUNTERS=none
    record bench/xdp-synproxy.sh attach SRV veth-s "$PORT"
    "$ROOT/bench/xdp-synproxy.sh" attach "$SRV" "$SDEV" "$PORT" >/dev/null
    napi "$3"
    local r
    for r in $(seq "$REPS"); do measure "$id" flood "$r"; done
    maybe_perf "$id" "$6" "$5"
    "$ROOT/bench/xdp-synproxy.sh" detach "$SRV" "$SDEV"
}

# ---- perf: one extra flood run, perf record -a -g in its middle ----
PERF_JSON=()
# Every loaded program's bpf_stats, as bpftool prints them (JSON).
bpf_stats() { bpftool prog show -j 2>/dev/null || echo '[]'; }
XDP_COST=()
# argv: two bpf_stats snapshots; prints each target XDP program's ns per run between them
# (the loadgen's own programs, lg_*, left out).
BPF_STATS_PY='
import json, sys
a = {p["id"]: p for p in json.loads(sys.argv[1])}
out = []
for p in json.loads(sys.argv[2]):
    if p.get("type") != "xdp" or p.get("name", "").startswith("lg_"):
        continue
    q = a.get(p["id"], {})
    runs = p.get("run_cnt", 0) - q.get("run_cnt", 0)
    ns = p.get("run_time_ns", 0) - q.get("run_time_ns", 0)
    name = p.get("name", "?")
    if runs > 0:
        out.append(f"{name} {ns / runs:.0f} ns per run over {runs} runs")
print("; ".join(out) or "no XDP program ran")
'

maybe_perf() { # ID LABEL GEN_CPUS
    ((PERF)) || return 0
    case "$1" in kernel-sc2|synline-1q|synline-xdp-1q|xdp-synproxy-1q|synline-xdp-2q|xdp-synproxy-2c) ;; *) return 0 ;; esac
    local id=$1 label=$2 args cpu what bs0 bs1
    mapfile -t args < <(lg_args flood)
    # The XDP programs' own time per run in this flood (kernel.bpf_stats_enabled: run_time_ns
    # and run_cnt per program), in situ, with the real redirect or XDP_TX behind each run.
    bs0=$(bpf_stats)
    BPF_STATS_WAS=$(sysctl -n kernel.bpf_stats_enabled)
    sysctl -qw kernel.bpf_stats_enabled=1
    ip netns exec "$CLI" "$BIN/synline-loadgen" "${args[@]}" >"$TMP/lg.json" 2>"$TMP/lg.err" &
    LG_PID=$!
    sleep 1
    record perf record -a -g -o "\$TMP/perf-$id.data" -- sleep 3
    perf record -a -g -o "$TMP/perf-$id.data" -- sleep 3 >/dev/null 2>"$TMP/perf.err" || true
    wait "$LG_PID" || true
    LG_PID=""
    sysctl -qw "kernel.bpf_stats_enabled=$BPF_STATS_WAS"
    BPF_STATS_WAS=""
    bs1=$(bpf_stats)
    XDP_COST+=("$label: $(python3 -c "$BPF_STATS_PY" "$bs0" "$bs1")")
    for cpu in 0 1; do
        record perf report -i "\$TMP/perf-$id.data" --cpu "$cpu" --no-children --sort comm -g none --stdio --percent-limit 1
        record perf report -i "\$TMP/perf-$id.data" --cpu "$cpu" --no-children --sort comm,sym -g none --stdio --percent-limit 1.5
        {
            echo "by thread:"
            perf report -i "$TMP/perf-$id.data" --cpu "$cpu" --no-children --sort comm -g none \
                --stdio --percent-limit 1 2>/dev/null | grep -Ev '^#|^$' | head -n 8
            echo "top symbols:"
            perf report -i "$TMP/perf-$id.data" --cpu "$cpu" --no-children --sort comm,sym -g none \
                --stdio --percent-limit 1.5 2>/dev/null | grep -Ev '^#|^$' | head -n 18
        } | sed -E "s/[[:space:]]+\$//; s/$SDEV/veth-s/g; s/$CDEV/veth-c/g" >"$TMP/perf-$id-cpu$cpu.txt" || true
        if ((cpu == 0)); then what="the generator's core"; else what="the target's core"; fi
        PERF_JSON+=("{\"config\":$(jstr "$id"),\"label\":$(jstr "$label"),\"cpu\":$cpu,\"what\":$(jstr "$what"),\"file\":$(jstr "$TMP/perf-$id-cpu$cpu.txt")}")
    done
    log "$id: perf profile taken"
}

# ---- the run ----
NOTES=()
wait_quiet
((BUILD)) && build
STARTED=$(date -u '+%Y-%m-%d %H:%M:%S UTC')
DATE=$(date -u +%Y-%m-%d)
T0=$(date +%s)
topology

cfg_xdp_drop
cfg_rxdrop rxdrop-1q 1 own 1 1 0 "ceiling: AF_XDP rxdrop (1 core)" "$ONE" kernel-sc2
cfg_rxdrop rxdrop-1q-big 1 own 1 1 0 "ceiling: AF_XDP rxdrop, 8192-slot rings (1 core)" \
    "$ONE; the same sink with rings of 8192 descriptors and 16384 frames instead of synline's 2048 and 4096 (synline run --ring-size 8192 --frames 16384 does the same)" \
    kernel-sc2 --ring-size 8192 --frames 16384
cfg_reflect reflect-1q 1 own 1 1 0 "ceiling: AF_XDP reflector, no engine (1 core)" "$ONE" kernel-sc2 rxdrop-1q
cfg_kernel kernel-sc2 2 4096 5 1 own 1 1 0 "Linux listener, tcp_syncookies=2 (1 core)" "$ONE" rxdrop-1q
cfg_kernel kernel-sc1 1 1048576 0 1 own 1 1 0 "Linux listener, tcp_syncookies=1, backlog 1M (1 core)" "$ONE" rxdrop-1q
cfg_nft
cfg_synline synline-1q 1 own 1 1 0 "synline, 1 queue (1 core)" "$ONE" kernel-sc2 rxdrop-1q
cfg_synline synline-1q-fair 1 own 1 1 0 "synline, 1 queue, fair scheduler (1 core)" \
    "$ONE; --sched-fifo 0: the worker under the fair scheduler (the default before issue 13), sharing CPU1 with the NAPI kthread half and half" \
    kernel-sc2 rxdrop-1q --sched-fifo 0
cfg_synline synline-xdp-1q 1 own 1 1 0 "synline, flood path in XDP (1 core)" \
    "$ONE; --xdp-cookies on: the listener (tcp_syncookies=2) is in cookie mode, so the XDP program answers every SYN with the engine's cookie SYN-ACK by XDP_TX" \
    kernel-sc2 rxdrop-1q --xdp-cookies on
cfg_xdp_synproxy xdp-synproxy-1q 1 own 1 0 "kernel selftest XDP SYN proxy (1 core)" "$ONE" kernel-sc2 rxdrop-1q
if wanted kernel-sc2-trafgen || wanted synline-1q-trafgen; then trafgen_rows; fi
cfg_rxdrop rxdrop-2q 2 inline 0,1 2 0,1 "ceiling: AF_XDP rxdrop, 2 queues (both cores, shared)" "$BOTH" kernel-sc2-2c
cfg_reflect reflect-2q 2 inline 0,1 2 0,1 "ceiling: AF_XDP reflector, no engine, 2 queues (both cores, shared)" "$BOTH" kernel-sc2-2c rxdrop-2q
cfg_kernel kernel-sc2-2c 2 4096 5 2 inline 0,1 2 0,1 "Linux listener, tcp_syncookies=2 (both cores, shared)" "$BOTH" rxdrop-2q
cfg_synline synline-2q 2 inline 0,1 2 0,1 "synline, 2 queues (both cores, shared)" "$BOTH" kernel-sc2-2c rxdrop-2q
cfg_synline synline-2q-fair 2 inline 0,1 2 0,1 "synline, 2 queues, fair scheduler (both cores, shared)" \
    "$BOTH; --sched-fifo 0: the workers under the fair scheduler" kernel-sc2-2c rxdrop-2q --sched-fifo 0
cfg_synline synline-xdp-2q 2 inline 0,1 2 0,1 "synline, flood path in XDP, 2 queues (both cores, shared)" \
    "$BOTH; --xdp-cookies on" kernel-sc2-2c rxdrop-2q --xdp-cookies on
cfg_xdp_synproxy xdp-synproxy-2c 2 inline 2 0,1 "kernel selftest XDP SYN proxy (both cores, shared)" "$BOTH" kernel-sc2-2c rxdrop-2q

((${#XDP_COST[@]})) && NOTES+=("The XDP programs' own time per run during each perf run (kernel.bpf_stats_enabled=1, run_time_ns / run_cnt from bpftool; the stats themselves add two clock reads per run): $(printf '%s. ' "${XDP_COST[@]}")")
ELAPSED=$(($(date +%s) - T0))
log "measurements done in ${ELAPSED}s"
for f in "$TMP"/*.totals; do
    [ -e "$f" ] || continue
    NOTES+=("$(basename "$f" .totals) daemon totals at exit (non-zero drop counters, all repetitions and the perf run): $(cat "$f")")
done

# ---- the results ----
NOTES+=(
    "Who did what: in the one-core rows CPU0 runs only the generator (BPF_PROG_RUN in live-frames mode: system time) and CPU1 everything of the target: the server veth's NAPI kthread (the XDP program, the copy into the UMEM or the kernel's whole SYN path), the target's threads (synline's worker, the acceptor), and the client veth's receive of the replies (the loadgen's XDP program counting SYN-ACKs runs in the softirq of the CPU that sent them)."
    "In the one-core rows the generator offers far more than any target takes; the veth drops the excess at its 256-frame ring (if_tx_dropped), on the generator's core. Delivered is what got into the ring."
    "Dropped after the work: synline's and rxdrop's queues count frames the kernel dropped at the AF_XDP socket (SynlineXskKernFillRingEmpty, SynlineXskKernRxRingFull). In the one-core rows the NAPI kthread runs the XDP program and the redirect for every delivered frame, but the worker that refills the fill ring and drains the RX ring shares CPU1 with it, so many redirected frames find no room and are dropped after costing CPU1 their XDP run. The kernel listener's excess is dropped at the veth ring instead, on the generator's core, at no cost to CPU1. A NIC would drop such frames in hardware."
    "CPU figures come from /proc/stat, which the scheduler tick samples: the paced generator of handshake runs (1000 frames per millisecond, woken by a timer) mostly runs between ticks, so CPU0 shows close to 0% there although it sends 1M SYNs/s. The saturated cores are not affected."
    "A handshake run sends only completing flows (--mode handshake --rate 1000000, above what any target answers): every SYN-ACK is answered with the third ACK by the loadgen's XDP program, and the server's TcpPassiveOpens counts the connections made (the kernel's and synline's accept lists are drained by synline-acceptor and by the daemon itself, each connection reset)."
)
MACHINE="{\"nproc\":$(jstr "$(nproc)"),\"uname\":$(jstr "$(uname -r)"),\"cpu_model\":$(jstr "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"),\"mem\":$(jstr "$(awk '/MemTotal/ { printf "%.0f GiB memory", $2 / 1048576 }' /proc/meminfo)")}"
GIT="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
if [ -n "$(git status --porcelain -- crates bpf 2>/dev/null)" ]; then
    GIT="$GIT (with uncommitted changes under crates/ or bpf/)"
elif [ -n "$(git status --porcelain -- bench/src 2>/dev/null)" ]; then
    GIT="$GIT (synline's code as committed; uncommitted changes only in the bench tools)"
fi
NOTES+=("Code measured: commit $GIT. One full run took ${ELAPSED} s of measurements.")
join() { local IFS=,; printf '%s' "$*"; }
jarr() { local out=() x; for x in "$@"; do out+=("$(jstr "$x")"); done; printf '[%s]' "$(join "${out[@]}")"; }
{
    printf '{"date":%s,"started":%s,"duration":%s,"reps":%s,"git":%s,"machine":%s,' \
        "$(jstr "$DATE")" "$(jstr "$STARTED")" "$DURATION" "$REPS" "$(jstr "$GIT")" "$MACHINE"
    printf '"configs":[%s],' "$(join "${CONFIG_JSON[@]}")"
    printf '"perf":[%s],' "$(join "${PERF_JSON[@]}")"
    printf '"perf_how":%s,' "$(jstr "One extra $DURATION s flood run of each, with perf record -a -g -- sleep 3 started 1 s in; perf report --cpu N --no-children -g none, by thread (--sort comm, above 1%) and by symbol (--sort comm,sym, above 1.5%), in % of that core's samples (idle excluded: perf samples only running tasks).")"
    printf '"notes":%s,' "$(jarr "${NOTES[@]}")"
    printf '"commands":%s}\n' "$(jarr "sudo bench/compare.sh --duration $DURATION --reps $REPS" "# which runs:" "${COMMANDS[@]}")"
} >"$TMP/meta.json"

mkdir -p "$OUT_DIR"
PREFIX=$OUT_DIR/compare-$DATE
"$BIN/synline-compare-report" --meta "$TMP/meta.json" --raw "$RAW" --out-prefix "$PREFIX" \
    --latest "$OUT_DIR/latest.md" >"$TMP/report.out"
cat "$TMP/report.out"
log "wrote $PREFIX.md, $PREFIX.json, $PREFIX.png and $OUT_DIR/latest.md"
