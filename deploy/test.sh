#!/usr/bin/env bash
# Every test: formatting, lints, unit, property, per-rule state tests, the virtual-time peer
# simulation, the two-worker stress test, the kernel fixtures, the XDP program under
# BPF_PROG_TEST_RUN (needs root: fails loudly when CI=true and it is not), the systemd unit
# and the .deb, and each fuzz target for a bounded time (FUZZ_SECONDS, default 60).
set -euo pipefail
cd "$(dirname "$0")/.."
./deploy/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"

if [ "${CI:-}" = "true" ] && [ "$(id -u)" -ne 0 ]; then
    echo "test: CI=true but not root: the XDP and namespace tests cannot run" >&2
    exit 1
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets -q
echo "== cargo test"
cargo test --workspace

echo "== systemd unit (systemd-analyze verify) and the .deb (cargo-deb)"
./deploy/check-package.sh

echo "== fuzz (${FUZZ_SECONDS:=60} s per target)"
if ! command -v cargo-fuzz >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked -q
fi
for target in $(cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz list); do
    dirs=("corpus/$target")
    [ -d "fuzz/seeds/$target" ] && dirs+=("seeds/$target")
    mkdir -p "fuzz/corpus/$target"
    (cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run "$target" "${dirs[@]}" -- \
        -max_total_time="$FUZZ_SECONDS" -print_final_stats=1 2>&1 | grep -E "^(#|stat::number_of_executed_units|Done|==)" | tail -3)
done
echo "== all tests passed"
