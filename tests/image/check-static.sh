#!/usr/bin/env bash
# Checks that the release binary is what the scratch image needs: a stripped
# static-pie executable with no interpreter and no shared libraries, that
# carries its dependency list for scanners (cargo-auditable's .dep-v0 section).
#
#   tests/image/check-static.sh target/x86_64-unknown-linux-musl/release/dspm-audit
set -euo pipefail

bin=${1:?usage: check-static.sh BINARY}
fail() { echo "check-static: FAIL: $*" >&2; exit 1; }

[ -x "$bin" ] || fail "$bin is missing or not executable"

kind=$(file -b "$bin")
echo "file: $kind"
case "$kind" in
*"static-pie linked"*) ;;
*) fail "not a static-pie executable" ;;
esac
case "$kind" in
*", stripped"*) ;;
*) fail "not stripped" ;;
esac

# ldd exits non-zero on a static binary; what it prints is what matters.
deps=$(ldd "$bin" 2>&1 || true)
echo "ldd: $deps"
case "$deps" in
*"statically linked"* | *"not a dynamic executable"*) ;;
*) fail "ldd lists shared libraries" ;;
esac

if objdump -h "$bin" | grep -q '\.interp'; then
    fail "has a program interpreter (.interp)"
fi
objdump -h "$bin" | grep -q '\.dep-v0' || fail "no .dep-v0 section: not built with cargo auditable"
echo "audit data: .dep-v0 present"
echo "size: $(stat -c %s "$bin") bytes"
echo "check-static: OK $bin"
