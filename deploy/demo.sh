#!/usr/bin/env bash
# The main job: installs what is needed, builds, and runs the demo on the embedded default
# configuration (see README: until the AF_XDP daemon lands this is `synline demo`, the engine
# answering a SYN the Linux kernel sent, captured in a namespace).
set -euo pipefail
cd "$(dirname "$0")/.."
./deploy/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release -p synline
exec ./target/release/synline demo
