#!/usr/bin/env bash
# The main job: installs what is needed, builds synline, and runs it between two network
# namespaces with real Linux clients (deploy/netns-demo.sh), on the embedded default
# configuration (Linux defaults for every listener setting). Everything it creates is removed
# at the end, also when interrupted.
set -euo pipefail
cd "$(dirname "$0")/.."
./deploy/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release -p synline -p synline-bench --bin synline --bin synline-loadgen
exec ./deploy/netns-demo.sh
