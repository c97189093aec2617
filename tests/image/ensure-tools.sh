#!/usr/bin/env bash
# Installs, only when missing, the tools that the image targets in
# mk/image.mk use. Each check is cheap, so calling this on every build costs
# well under a second once everything is there.
#
#   tests/image/ensure-tools.sh musl auditable buildah ...
set -euo pipefail

CARGO_AUDITABLE_VERSION=${CARGO_AUDITABLE_VERSION:-0.7.7}
CARGO_AUDIT_VERSION=${CARGO_AUDIT_VERSION:-0.22.2}
CARGO_DENY_VERSION=${CARGO_DENY_VERSION:-0.20.2}

apt_updated=0
apt_install() {
    if [ "$(id -u)" -ne 0 ]; then
        echo "ensure-tools: need root to apt-get install $*; install it by hand" >&2
        exit 1
    fi
    if [ "$apt_updated" -eq 0 ]; then
        apt-get update -qq
        apt_updated=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# cargo_tool SUBCOMMAND CRATE VERSION: `cargo SUBCOMMAND` exists, or install it.
cargo_tool() {
    local sub=$1 crate=$2 version=$3
    if ! cargo "$sub" --version >/dev/null 2>&1; then
        echo "ensure-tools: installing $crate $version" >&2
        cargo install --locked --quiet "$crate@$version"
    fi
}

ensure() {
    case "$1" in
    musl)
        if ! rustup target list --installed | grep -qx x86_64-unknown-linux-musl; then
            rustup target add x86_64-unknown-linux-musl
        fi
        command -v musl-gcc >/dev/null || apt_install musl-tools
        # `file` and `objdump` verify the result.
        command -v file >/dev/null || apt_install file
        command -v objdump >/dev/null || apt_install binutils
        ;;
    auditable) cargo_tool auditable cargo-auditable "$CARGO_AUDITABLE_VERSION" ;;
    audit) cargo_tool audit cargo-audit "$CARGO_AUDIT_VERSION" ;;
    deny) cargo_tool deny cargo-deny "$CARGO_DENY_VERSION" ;;
    buildah) command -v buildah >/dev/null || apt_install buildah ;;
    curl) command -v curl >/dev/null || apt_install curl ;;
    *) echo "ensure-tools: unknown tool '$1'" >&2; exit 2 ;;
    esac
}

for tool in "$@"; do
    ensure "$tool"
done
