#!/usr/bin/env bash
# How synline's defaults were chosen (issue 13, target 2), in one command:
#
#   sudo bench/defaults.sh [--reps N] [--duration S] [--out DIR]
#
# Runs bench/compare.sh's one-core topology (the generator alone on CPU0; the server veth's
# NAPI kthread, synline's worker and the replies' receive on CPU1) once per candidate setting,
# each a `synline run` flag against the default configuration, with the kernel listener and the
# AF_XDP reflector (the reply ceiling) measured in the same run, and the same for the two-queue
# topology's scheduling. Writes bench/results/defaults-<date>.md: SYN-ACKs/s (median of N
# rounds, with min-max) and the ratio to the default in the same sweep, and every round's
# results in bench/results/defaults-<date>.json.
#
# The candidates are the knobs issue 13 names: the scheduling of the worker, preferred busy
# polling (with the device's napi_defer_hard_irqs and gro_flush_timeout, without which it
# cannot keep NAPI in the worker's context), need_wakeup, the RX batch, the ring size.
set -euo pipefail
cd "$(dirname "$0")/.."
REPS=3
DURATION=5
OUT_DIR=bench/results
while (($#)); do
    case "$1" in
        --reps) REPS=$2; shift 2 ;;
        --duration) DURATION=$2; shift 2 ;;
        --out) OUT_DIR=$2; shift 2 ;;
        -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
        *) echo "defaults: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
[ "$(id -u)" -eq 0 ] || { echo "defaults: needs root (bench/compare.sh does)" >&2; exit 1; }
command -v python3 >/dev/null || { echo "defaults: python3 is missing (deploy/setup.sh installs it)" >&2; exit 1; }

TMP=$(mktemp -d /tmp/synline-defaults.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
DEFER='echo 2 > /sys/class/net/@DEV@/napi_defer_hard_irqs; echo 200000 > /sys/class/net/@DEV@/gro_flush_timeout'

# name | compare ids | synline run flags | SRV_SETUP | what it tries
VARIANTS=(
    "default|kernel-sc2,reflect-1q,synline-1q|||the default configuration, with the kernel listener and the reflector"
    "fair|synline-1q|--sched-fifo 0||the worker under the fair scheduler (the default before issue 13)"
    "fifo-50|synline-1q|--sched-fifo 50||SCHED_FIFO at priority 50 instead of 1"
    "busy-poll|synline-1q|--busy-poll|$DEFER|preferred busy polling, napi_defer_hard_irqs=2, gro_flush_timeout=200 us"
    "fair-busy-poll|synline-1q|--sched-fifo 0 --busy-poll|$DEFER|busy polling under the fair scheduler"
    "no-need-wakeup|synline-1q|--need-wakeup false||need_wakeup off: a syscall every round"
    "batch-16|synline-1q|--batch 16||16 frames per round"
    "batch-32|synline-1q|--batch 32||32 frames per round"
    "batch-256|synline-1q|--batch 256||256 frames per round"
    "ring-512|synline-1q|--ring-size 512||512-slot rings"
    "ring-8192|synline-1q|--ring-size 8192 --frames 16384||8192-slot rings"
    "default-2q|kernel-sc2-2c,reflect-2q,synline-2q|||two queues, both cores shared with the generator"
    "fair-2q|synline-2q|--sched-fifo 0||two queues under the fair scheduler"
)

# Rounds: every setting once per round, in an order rotated by one each round, so that no
# setting always runs first (after a run the machine is not the same for a few seconds: the
# first position measured lower in trials) and slow drifts of this shared VM fall on all.
built=0
n=${#VARIANTS[@]}
for r in $(seq "$REPS"); do
    for k in $(seq 0 $((n - 1))); do
        v=${VARIANTS[$(((k + r) % n))]}
        IFS='|' read -r name ids flags setup what <<<"$v"
        build=--no-build
        ((built)) || build=""
        built=1
        echo "defaults: round $r: $name: $what" >&2
        SYNLINE_ARGS="$flags" SRV_SETUP="$setup" bench/compare.sh --only "$ids" --reps 1 \
            --duration "$DURATION" --no-perf $build --quiet-wait 0 --out "$TMP/$name-r$r" >"$TMP/$name-r$r.log" 2>&1 ||
            { tail -n 20 "$TMP/$name-r$r.log" >&2; echo "defaults: $name failed" >&2; exit 1; }
    done
done

mkdir -p "$OUT_DIR"
DATE=$(date -u +%Y-%m-%d)
OUT="$OUT_DIR/defaults-$DATE.md"
GIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
printf '%s\n' "${VARIANTS[@]}" >"$TMP/variants"
python3 - "$TMP" "$REPS" "$DURATION" "$GIT" "$TMP/variants" "$OUT_DIR/defaults-$DATE.json" >"$OUT" <<'EOF'
import glob, json, statistics, sys
tmp, reps, dur, git, variants, out_json = sys.argv[1:7]
rows, keep = [], {}
for line in open(variants).read().splitlines():
    name, ids, flags, setup, what = line.split("|", 4)
    per_id = {}
    for r in range(1, int(reps) + 1):
        data = json.load(open(glob.glob(f"{tmp}/{name}-r{r}/compare-*.json")[0]))
        keep.setdefault(name, []).append({"round": r, "results": data["results"]})
        for c in data["results"]:
            per_id.setdefault(c["id"], []).append(c["synacks_pps"]["median"])
    for cid, v in per_id.items():
        rows.append((name, cid, flags, setup, what, v))
json.dump({"git": git, "reps": int(reps), "duration": int(dur), "variants": keep},
          open(out_json, "w"), indent=1)
def fmt(x):
    return f"{x/1e6:.2f}M" if x >= 1e6 else f"{x/1e3:.0f}k"
base = {}
for name, cid, *_ , v in rows:
    if name.startswith("default"):
        base[cid] = statistics.median(v)
print(f"# Choosing synline's defaults (issue 13)\n")
print(f"`sudo bench/defaults.sh --reps {reps} --duration {dur}` at commit {git}: bench/compare.sh's "
      "topologies, one `synline run` flag changed at a time. Each round runs every setting once "
      f"(one flood of {dur} s each), in an order rotated by one from round to round. SYN-ACKs/s: "
      f"valid SYN-ACKs counted at the client, the median over the {reps} rounds (min-max); the "
      "ratio is against the default configuration's median in the same topology. The kernel and "
      "reflector rows are measured in the default runs. Every round's results: "
      f"`{out_json.rsplit('/', 1)[-1]}`.\n")
print("| setting | configuration | SYN-ACKs/s | × default | what it tries |")
print("|---|---|---:|---:|---|")
for name, cid, flags, setup, what, v in rows:
    ref = base.get("synline-1q" if cid in ("synline-1q", "kernel-sc2", "reflect-1q") else "synline-2q")
    m = statistics.median(v)
    r = f"{m/ref:.2f}×" if ref and cid.startswith("synline") else "–"
    f = f"`{flags}`" if flags else "(none)"
    if setup:
        f += " + device: napi_defer_hard_irqs=2, gro_flush_timeout=200000"
    print(f"| {f} | {cid} | {fmt(m)} ({fmt(min(v))}–{fmt(max(v))}) | {r} | {what} |")
EOF
cat "$OUT"
echo "defaults: wrote $OUT" >&2
