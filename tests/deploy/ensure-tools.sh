#!/usr/bin/env bash
# Installs, only when missing, the system tools `make deploy-test` uses:
# bwrap (Debian bubblewrap), setpriv (util-linux), ss (iproute2), curl, jq.
# Cheap when all are there.
set -euo pipefail

missing=()
need() { command -v "$1" >/dev/null || missing+=("$2"); }
need bwrap bubblewrap
need setpriv util-linux
need ss iproute2
need curl curl
need jq jq
[ "${#missing[@]}" -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
    echo "ensure-tools: need root to apt-get install ${missing[*]}; install them by hand" >&2
    exit 1
fi
echo "ensure-tools: installing ${missing[*]}" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
