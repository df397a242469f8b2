#!/usr/bin/env bash
# Checks what an operator installs: the systemd unit passes `systemd-analyze verify` (with
# ExecStart pointed at the binary just built, as it is not installed here), and the .deb that
# deploy/package.sh builds holds the binary, the unit, the configuration files, the man pages
# and the completions. Exits non-zero naming what is wrong.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
fail() { echo "check-package: $*" >&2; exit 1; }

deb=$(./deploy/package.sh)
[ -f "$deb" ] || fail "deploy/package.sh made no .deb"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sed "s|/usr/bin/synline|$PWD/target/release/synline|g" deploy/synline.service >"$tmp/synline.service"
# verify wants the unit's user to exist only when it starts it; it checks syntax, the binary,
# the sandboxing and capability names.
if ! out=$(systemd-analyze verify "$tmp/synline.service" 2>&1); then
    echo "$out" >&2
    fail "systemd-analyze verify deploy/synline.service failed"
fi
[ -z "$out" ] || { echo "$out" >&2; fail "systemd-analyze verify deploy/synline.service warned"; }
echo "check-package: systemd-analyze verify: clean"

contents=$(dpkg-deb -c "$deb")
for f in ./usr/bin/synline ./lib/systemd/system/synline.service ./etc/synline/synline.toml \
    ./etc/default/synline ./usr/share/man/man1/synline.1 ./usr/share/man/man1/synline-run.1.gz \
    ./usr/share/man/man1/synline-check.1 ./usr/share/bash-completion/completions/synline \
    ./usr/share/zsh/vendor-completions/_synline ./usr/share/fish/vendor_completions.d/synline.fish; do
    grep -q " ${f%.gz}\(.gz\)\?$" <<<"$contents" || fail "$deb lacks $f"
done
# The control members are read into a directory, not piped into `grep -q`: grep exits at its
# first match, dpkg-deb then dies of SIGPIPE, and pipefail turns a found conffiles into a failure
# (that is how CI once failed here while every local run passed).
dpkg-deb -e "$deb" "$tmp/control"
[ -f "$tmp/control/conffiles" ] || fail "$deb has no conffiles"
for f in /etc/synline/synline.toml /etc/default/synline; do
    grep -qx "$f" "$tmp/control/conffiles" || fail "$deb does not keep $f as a conffile"
done
echo "check-package: $(basename "$deb"): binary, unit, configuration, man pages, completions"
