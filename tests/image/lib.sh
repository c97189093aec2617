# shellcheck shell=bash
# Shared by the scripts in tests/image/. Sourced, not run.

die() {
    echo "image: FAIL: $*" >&2
    exit 1
}

# buildah with the storage every script here uses: vfs needs no kernel overlay
# support and no fuse, so it works in an unprivileged sandbox too.
bh() {
    buildah --storage-driver vfs "$@"
}

# free_port: a TCP port on 127.0.0.1 that nothing listens on right now.
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_http URL SECONDS [PID]: poll until URL answers 200; fail after SECONDS,
# or at once if process PID has exited.
wait_http() {
    local url=$1 deadline=$((SECONDS + $2)) pid=${3:-}
    until curl -fsS --noproxy '*' -o /dev/null --max-time 1 "$url" 2>/dev/null; do
        [ "$SECONDS" -lt "$deadline" ] || return 1
        [ -z "$pid" ] || kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.05
    done
}
