#!/usr/bin/env bash
# Builds target/debian/synline_<version>_<arch>.deb: the release binary, the systemd unit
# (deploy/synline.service), /etc/synline/synline.toml and /etc/default/synline to edit, and
# the man pages and shell completions the binary writes (`synline generate`). Installs
# cargo-deb first if it is missing. Prints the package's path.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
command -v cargo-deb >/dev/null 2>&1 || cargo install cargo-deb --locked -q
cargo build --release -q -p synline --bin synline
rm -rf target/assets
target/release/synline generate man --dir target/assets/man
target/release/synline generate completions --dir target/assets/completions
cargo deb -q -p synline --no-build --no-strip 2>&1 | grep -v '^warning: ' >&2 || true
ls -t target/debian/synline_*.deb | sed -n 1p
