#!/usr/bin/env bash
# The scratch image, tested as an operator would meet it:
#   0. the build context that Dockerfile.scratch is sent (context-test.sh);
#   1. its config: user, entrypoint, cmd, healthcheck, port, env, labels;
#   2. its root filesystem: the binary and nothing else;
#   3. a real run with buildah (chroot isolation, so host loopback), no AWS
#      settings at all, `serve --demo` on a free loopback port, queried from
#      outside with curl, and the image's own `healthcheck` run inside.
# Containers and the server are removed on every exit, failure included.
# Needs IMAGE_REF (exported by mk/image.mk); `make image-test` builds it first.
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/image/lib.sh

: "${IMAGE_REF:?set by mk/image.mk}"
bh inspect --type image "$IMAGE_REF" >/dev/null 2>&1 || die "no image $IMAGE_REF: run make image"

# Nothing from this shell's AWS configuration may leak into the run.
for var in $(compgen -e | grep -E '^AWS_' || true); do unset "$var"; done

container=""
server_pid=""
passed=0
log=""
audit_body=""
cleanup() {
    local status=$?
    rm -f "$log" "$audit_body"
    if [ -n "$server_pid" ]; then
        kill -TERM -- "-$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    if [ -n "$container" ]; then
        bh umount "$container" >/dev/null 2>&1 || true
        bh rm "$container" >/dev/null 2>&1 || true
    fi
    # The closing line in the form test runners use, pass or fail.
    if [ "$status" -eq 0 ]; then
        echo "image-test: $passed passed, 0 failed"
    else
        echo "image-test: $passed passed, 1 failed"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

pass() {
    passed=$((passed + 1))
    echo "  ok  $*"
}

echo "image-test: $IMAGE_REF"
echo "context:"
tests/image/context-test.sh || die "build context check failed"
passed=$((passed + 1))

# --- 1. config --------------------------------------------------------------
echo "config:"
config=$(bh inspect --type image "$IMAGE_REF" | jq '.Docker.config')
want() { # want JQ-EXPRESSION EXPECTED-JSON DESCRIPTION
    local got
    got=$(jq -c "$1" <<<"$config")
    [ "$got" = "$2" ] || die "$3: expected $2, got $got"
    pass "$3 = $got"
}
want '.User' '"65532:65532"' "user"
want '.Entrypoint' '["/dspm-audit"]' "entrypoint"
want '.Cmd' '["serve"]' "cmd"
want '.Healthcheck.Test' '["CMD","/dspm-audit","healthcheck"]' "healthcheck"
want '.ExposedPorts | keys' '["8103/tcp"]' "exposed ports"
want '[.Env[] | select(startswith("DSPM_LISTEN="))]' '["DSPM_LISTEN=0.0.0.0:8103"]' "env DSPM_LISTEN"
want '[.Env[] | select(startswith("AWS_"))]' '[]' "no AWS_* env"
for label in title version source licenses description revision; do
    value=$(jq -r --arg k "org.opencontainers.image.$label" '.Labels[$k] // ""' <<<"$config")
    [ -n "$value" ] || die "label org.opencontainers.image.$label is missing or empty"
    pass "label $label = $value"
done
want '.Labels["org.opencontainers.image.licenses"]' '"LicenseRef-Proprietary"' "license label"
if [ -n "${IMAGE_VERSION:-}" ]; then
    want '.Labels["org.opencontainers.image.version"]' "\"$IMAGE_VERSION\"" "version label"
fi

# --- 2. root filesystem -----------------------------------------------------
echo "filesystem:"
container=$(bh from --pull-never --name "dspm-audit-image-test-$$" "$IMAGE_REF")
root=$(bh mount "$container")
files=$(cd "$root" && find . -mindepth 1 -printf '%p %y %m %U:%G\n' | sort)
[ "$files" = "./dspm-audit f 755 0:0" ] \
    || die "the image must hold only /dspm-audit (file, 0755, root-owned, read-only to the runtime user); it holds:
$files"
pass "only /dspm-audit (0755, owner 0:0)"
kind=$(file -b "$root/dspm-audit")
case "$kind" in
*"static-pie linked"*) pass "binary: static-pie" ;;
*) die "binary in the image is not static-pie: $kind" ;;
esac
bh umount "$container" >/dev/null

# --- 3. run -----------------------------------------------------------------
echo "run:"
port=$(free_port)
base="http://127.0.0.1:$port"
entrypoint=$(jq -r '.Entrypoint[0]' <<<"$config")
log=$(mktemp)
# setsid: the server gets its own process group, which cleanup ends whole.
setsid buildah --storage-driver vfs run --isolation chroot \
    --env "DSPM_LISTEN=127.0.0.1:$port" \
    "$container" -- "$entrypoint" serve --demo >"$log" 2>&1 &
server_pid=$!

if ! wait_http "$base/health" 20 "$server_pid"; then
    echo "--- server output ---" >&2
    cat "$log" >&2
    kill -0 "$server_pid" 2>/dev/null || die "serve --demo exited before answering on $base/health"
    die "serve --demo did not answer 200 on $base/health within 20 s"
fi
pass "serve --demo answers on 127.0.0.1:$port (no AWS settings)"

listener=$(ss -Htlnp "sport = :$port" | grep -o 'pid=[0-9]*' | head -n1 | cut -d= -f2)
if [ -n "$listener" ]; then
    uid=$(awk '/^Uid:/ {print $2}' "/proc/$listener/status")
    [ "$uid" = 65532 ] || die "the server runs as uid $uid, not 65532"
    pass "server process runs as uid 65532"
fi

health=$(curl -fsS --noproxy '*' --max-time 5 "$base/health") || die "GET /health failed"
jq -e '.status == "ok" and (.version | type == "string")' <<<"$health" >/dev/null \
    || die "GET /health: unexpected body: $health"
pass "GET /health: $health"

audit_body=$(mktemp)
code=$(curl -sS --noproxy '*' --max-time 30 -o "$audit_body" -w '%{http_code}' \
    "$base/v1/audit?framework=cis-aws-3.0") || die "GET /v1/audit failed"
[ "$code" = 200 ] || die "GET /v1/audit?framework=cis-aws-3.0: HTTP $code: $(head -c 500 "$audit_body")"
count=$(jq -e '.results | length' "$audit_body") \
    || die "GET /v1/audit: no results array: $(head -c 500 "$audit_body")"
pass "GET /v1/audit?framework=cis-aws-3.0: 200, $count results"

bh run --isolation chroot --env "DSPM_LISTEN=127.0.0.1:$port" \
    "$container" -- "$entrypoint" healthcheck >/dev/null 2>&1 \
    || die "healthcheck inside the container failed while the server was up"
pass "healthcheck inside: exit 0 while serving"

kill -TERM -- "-$server_pid" 2>/dev/null || true
wait "$server_pid" 2>/dev/null || true
server_pid=""
set +e
bh run --isolation chroot --env "DSPM_LISTEN=127.0.0.1:$port" \
    "$container" -- "$entrypoint" healthcheck >/dev/null 2>&1
status=$?
set -e
[ "$status" = 1 ] || die "healthcheck with no server: expected exit 1, got $status"
pass "healthcheck inside: exit 1 once the server is gone"
