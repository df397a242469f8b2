#!/usr/bin/env bash
# Installs what building and testing synline needs on a Debian 12 machine: the C toolchain
# for the XDP program (clang, llvm, libbpf, libelf, zlib), m4 (libxdp-sys), pkg-config,
# iproute2 and ethtool (namespaces, veth channels), ping (end-to-end tests), tcpdump
# (fixtures), procps (kill, sysctl), curl, python3 and nginx (the servers and clients of the
# kernel-handoff tests and the demo), util-linux (setpriv), bpftool, prometheus (promtool
# checks the metrics endpoint), systemd (systemd-analyze verifies the unit), and the Rust
# toolchain rust-toolchain.toml pins.
# Idempotent: installs only what is missing.
set -euo pipefail

pkgs=(clang llvm libbpf-dev libelf-dev zlib1g-dev pkg-config m4 ethtool iproute2 iputils-ping tcpdump gcc make nftables fonts-dejavu-core procps curl python3 nginx util-linux bpftool prometheus systemd netsniff-ng)
missing=()
for p in "${pkgs[@]}"; do
    [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" = "install ok installed" ] || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "setup: installing ${missing[*]}"
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    # No service starts from a package's install script (nginx would take port 80 of this
    # host): the tests start their own servers in their own namespaces.
    policy=/usr/sbin/policy-rc.d
    own_policy=false
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
        $SUDO chmod +x "$policy"
        own_policy=true
    fi
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
    if $own_policy; then $SUDO rm -f "$policy"; fi
fi

if ! command -v cargo >/dev/null 2>&1; then
    [ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
fi
if ! command -v cargo >/dev/null 2>&1; then
    echo "setup: no Rust toolchain; installing rustup (stable)"
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal -c rustfmt,clippy
    export PATH="$HOME/.cargo/bin:$PATH"
fi
# rust-toolchain.toml pins the toolchain; rustup installs it if this machine lacks it.
if command -v rustup >/dev/null 2>&1 && ! rustup show active-toolchain >/dev/null 2>&1; then
    rustup toolchain install
fi
need=$(sed -n 's/^rust-version = "\(.*\)"/\1/p' Cargo.toml)
have=$(rustc --version | awk '{print $2}')
if [ "$(printf '%s\n%s\n' "$need" "$have" | sort -V | head -1)" != "$need" ]; then
    echo "setup: rustc $have is older than the workspace's rust-version $need (rust-toolchain.toml pins it: install rustup and run again)" >&2
    exit 1
fi
echo "setup: $(cargo --version), $(clang --version | head -1)"
