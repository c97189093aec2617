#!/usr/bin/env bash
# The hardening that deploy/ declares, tested on the image that
# `make image-buildah` built: its binary serves `serve --demo` as kernel uid
# and gid 65532, with no capabilities, no_new_privs, and every mount it can
# see read-only (the root file system and /proc; no /dev, no /tmp at all),
# as a Kubernetes pod with readOnlyRootFilesystem and runAsUser 65532 (or a
# Fargate task with readonlyRootFilesystem and user 65532:65532) runs it;
# and a live audit (the AWS client path: signing, HTTP, parsing) of a seeded
# moto on loopback runs in the same sandbox with zero ERROR results.
#
# How: buildah mounts the image; its files are copied, byte for byte and
# checked, to a scratch folder (the image store is readable by root only,
# and the sandbox below runs as 65532 from the start). bubblewrap builds the
# root the way a container runtime does: an empty tmpfs with the image's
# files bind-mounted read-only and /proc, then the whole root remounted
# read-only. (A runtime also mounts /dev; the binary needs no device, so the
# sandbox has none and every mount is read-only.) It runs as 65532 because setpriv switches to 65532
# (dropping every capability and setting no_new_privs) before bwrap starts,
# and bwrap's user namespace maps 65532 to 65532. The network namespace is
# shared, so the server's loopback port is reachable from here.
#
# From outside, /proc/PID/status and /proc/PID/mountinfo of the server prove
# the uid, capabilities and read-only mounts; curl queries /health, /ready
# and /v1/audit; the image's `healthcheck` runs in a second sandbox like a
# container health check. moto is started here on a free 127.0.0.1 port and
# stopped on exit. Needs root (setpriv), bwrap, buildah, curl, jq and the
# venv's moto (make venv).
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/image/lib.sh

: "${IMAGE_REF:?set by mk/image.mk}"
UID_GID=65532
for var in $(compgen -e | grep -E '^AWS_' || true); do unset "$var"; done

passed=0
container=""
stage=""
server_pid=""
moto_pid=""
log=""
cleanup() {
    local status=$?
    if [ -n "$moto_pid" ]; then
        kill -TERM "$moto_pid" 2>/dev/null || true
        wait "$moto_pid" 2>/dev/null || true
    fi
    if [ -n "$server_pid" ]; then
        kill -TERM "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    if [ -n "$container" ]; then
        bh umount "$container" >/dev/null 2>&1 || true
        bh rm "$container" >/dev/null 2>&1 || true
    fi
    [ -z "$stage" ] || rm -rf "$stage"
    [ -z "$log" ] || rm -f "$log"
    if [ "$status" -eq 0 ]; then
        echo "hardening: $passed passed, 0 failed"
    else
        echo "hardening: $passed passed, 1 failed"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
fail() { echo "hardening: FAIL: $*" >&2; exit 1; }
pass() {
    passed=$((passed + 1))
    echo "  ok  $*"
}

[ "$(id -u)" = 0 ] || fail "needs root (setpriv switches to uid $UID_GID)"
command -v bwrap >/dev/null || fail "bwrap missing: apt-get install bubblewrap"
bh inspect --type image "$IMAGE_REF" >/dev/null 2>&1 || fail "no image $IMAGE_REF: run make image-buildah"

echo "hardening: $IMAGE_REF"
user=$(bh inspect --type image --format '{{.Docker.Config.User}}' "$IMAGE_REF")
[ "$user" = "$UID_GID:$UID_GID" ] || fail "the image's USER is '$user', deploy/ declares $UID_GID:$UID_GID"
pass "image USER $user, as deploy/ declares"

# --- the image's files, staged --------------------------------------------
container=$(bh from --pull-never --name "dspm-audit-hardening-$$" "$IMAGE_REF")
root=$(bh mount "$container")
stage=$(mktemp -d)
chmod 0755 "$stage"
mkdir "$stage/root"
cp -a "$root/." "$stage/root/"
listing() { (cd "$1" && find . -mindepth 1 -printf '%p %y %m %U:%G %s\n' | sort); }
hashes() { (cd "$1" && find . -type f -exec sha256sum {} + | sort -k2); }
[ "$(listing "$root")" = "$(listing "$stage/root")" ] || fail "staged copy differs from the image (listing)"
[ "$(hashes "$root")" = "$(hashes "$stage/root")" ] || fail "staged copy differs from the image (sha256)"
pass "image files staged unchanged: $(listing "$stage/root" | tr '\n' ' ')"
bh umount "$container" >/dev/null

# sandbox ARGS...: run ARGS inside the image's root, as deploy/ declares,
# with only the variables in sandbox_env (pairs of --setenv NAME VALUE).
sandbox_env=()
sandbox() {
    local binds=()
    local entry
    for entry in "$stage/root"/*; do
        binds+=(--ro-bind "$entry" "/$(basename "$entry")")
    done
    setpriv --reuid="$UID_GID" --regid="$UID_GID" --clear-groups \
        --inh-caps=-all --bounding-set=-all --no-new-privs -- \
        bwrap --unshare-user --uid "$UID_GID" --gid "$UID_GID" \
        --unshare-pid --unshare-ipc --unshare-uts --unshare-cgroup-try \
        --die-with-parent --new-session \
        --tmpfs / "${binds[@]}" --proc /proc \
        --remount-ro /proc --remount-ro / \
        --cap-drop ALL --clearenv "${sandbox_env[@]}" \
        -- "$@"
}

# --- serve --demo -----------------------------------------------------------
port=$(free_port)
base="http://127.0.0.1:$port"
sandbox_env=(--setenv DSPM_LISTEN "127.0.0.1:$port")
log=$(mktemp)
entrypoint=$(bh inspect --type image --format '{{index .Docker.Config.Entrypoint 0}}' "$IMAGE_REF")
sandbox "$entrypoint" serve --demo >"$log" 2>&1 &
server_pid=$!
if ! wait_http "$base/health" 20 "$server_pid"; then
    cat "$log" >&2
    fail "serve --demo did not answer on $base/health in the sandbox"
fi
pass "serve --demo answers on 127.0.0.1:$port inside the sandbox"

listener=$(ss -Htlnp "sport = :$port" | grep -o 'pid=[0-9]*' | head -n1 | cut -d= -f2)
[ -n "$listener" ] || fail "no process listens on $port"
status_of() { awk -v k="$1:" '$1 == k { $1 = ""; sub(/^ /, ""); print }' "/proc/$listener/status"; }
[ "$(status_of Uid | tr -s '\t ' ' ')" = "$UID_GID $UID_GID $UID_GID $UID_GID" ] \
    || fail "server uids (real, effective, saved, fs): $(status_of Uid)"
[ "$(status_of Gid | tr -s '\t ' ' ')" = "$UID_GID $UID_GID $UID_GID $UID_GID" ] \
    || fail "server gids: $(status_of Gid)"
[ "$(status_of Groups)" = "" ] || fail "server has supplementary groups: $(status_of Groups)"
pass "server runs as kernel uid/gid $UID_GID (real, effective, saved, fs), no supplementary groups"
for cap in CapInh CapPrm CapEff CapBnd CapAmb; do
    [ "$(status_of "$cap")" = 0000000000000000 ] || fail "server $cap = $(status_of "$cap")"
done
[ "$(status_of NoNewPrivs)" = 1 ] || fail "server NoNewPrivs = $(status_of NoNewPrivs)"
pass "no capabilities (inheritable, permitted, effective, bounding, ambient), no_new_privs set"

# Every mount the server sees, with its per-mount options (field 6).
mounts=$(awk '{ print $5, $6 }' "/proc/$listener/mountinfo")
writable=$(awk '$2 !~ /^ro(,|$)/' <<<"$mounts")
[ -z "$writable" ] || fail "writable mounts in the server's view:
$writable
all mounts:
$mounts"
grep -q '^/ ro' <<<"$mounts" || fail "the root is not a read-only mount: $mounts"
pass "every mount is read-only: $(awk '{ print $1 }' <<<"$mounts" | tr '\n' ' ')"

health=$(curl -fsS --noproxy '*' --max-time 5 "$base/health") || fail "GET /health"
jq -e '.status == "ok"' <<<"$health" >/dev/null || fail "GET /health: $health"
pass "GET /health: 200 $health"
ready_code=$(curl -sS --noproxy '*' --max-time 5 -o /dev/null -w '%{http_code}' "$base/ready") || fail "GET /ready"
[ "$ready_code" = 200 ] || fail "GET /ready: HTTP $ready_code"
pass "GET /ready: 200"
body=$(curl -fsS --noproxy '*' --max-time 30 "$base/v1/audit") || fail "GET /v1/audit"
results=$(jq -e '.results | length' <<<"$body") || fail "GET /v1/audit: no results"
[ "$results" -gt 0 ] || fail "GET /v1/audit: 0 results"
pass "GET /v1/audit: 200, $results results, served from a read-only root"

sandbox "$entrypoint" healthcheck >/dev/null 2>&1 || fail "healthcheck in a second sandbox failed while serving"
pass "healthcheck (as a container health check runs it, same sandbox): exit 0"

if grep -Eiq 'read-only file system|permission denied|EROFS|EACCES' "$log"; then
    cat "$log" >&2
    fail "the server reported a file system error"
fi
pass "server log has no file system error ($(wc -l <"$log") lines)"

kill -TERM "$server_pid" 2>/dev/null || true
wait "$server_pid" 2>/dev/null || true
server_pid=""

# --- a live audit of a seeded moto, in the sandbox --------------------------
python=${DSPM_TEST_PYTHON:-.venv/bin/python}
[ -x "$(dirname "$python")/moto_server" ] || fail "no moto_server next to $python: run make venv"
moto_port=$(free_port)
endpoint="http://127.0.0.1:$moto_port"
setsid "$(dirname "$python")/moto_server" -H 127.0.0.1 -p "$moto_port" >"$log" 2>&1 &
moto_pid=$!
wait_http "$endpoint/moto-api/" 30 "$moto_pid" || { cat "$log" >&2; fail "moto did not start on $endpoint"; }
"$python" tests/moto/seed.py --endpoint "$endpoint" seed >/dev/null || fail "seeding moto failed"
# moto's auth stays off: any temporary key pair is accepted.
sandbox_env=(--setenv AWS_REGION us-east-1 --setenv AWS_ENDPOINT_URL "$endpoint"
    --setenv AWS_ACCESS_KEY_ID testing --setenv AWS_SECRET_ACCESS_KEY testing
    --setenv AWS_SESSION_TOKEN testing --setenv DSPM_AWS_RETRY_BASE_MS 20)
set +e
report=$(sandbox "$entrypoint" scan --format json 2>"$log")
code=$?
set -e
[ "$code" = 0 ] || [ "$code" = 1 ] || { cat "$log" >&2; fail "scan in the sandbox exited $code"; }
summary=$(jq -r '[.source, (.results | length), ([.results[] | select(.status == "ERROR")] | length)] | @tsv' <<<"$report") \
    || fail "scan in the sandbox printed no report"
read -r source total errors <<<"$summary"
[ "$source" = aws ] && [ "$total" -gt 0 ] || fail "scan in the sandbox: source $source, $total results"
[ "$errors" = 0 ] || fail "scan in the sandbox: $errors ERROR results: $(jq -c '[.results[] | select(.status == "ERROR") | .reason][:3]' <<<"$report")"
pass "live audit of a seeded moto in the sandbox: $total results, 0 ERROR (exit $code)"
