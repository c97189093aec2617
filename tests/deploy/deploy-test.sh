#!/usr/bin/env bash
# `make deploy-test`: every check of the deploy kit, in order, each to the
# end even when an earlier one failed; one closing line with the totals.
#
#   lint         shell scripts (deploy/docker/run.sh, tests/deploy/*.sh) with ShellCheck
#   check        tests/deploy/check_deploy.py: parse, placeholders, Kubernetes
#                schemas, kustomize, hardening and consistency, parliament;
#                in a network namespace with loopback only, where one can be
#                made, to prove it needs no network
#   ecs          tests/deploy/ecs_register.py: register-task-definition in moto
#   docker-run   tests/deploy/docker-run-test.sh: deploy/docker/run.sh
#   hardening    tests/deploy/hardening.sh: the image's binary as uid 65532
#                on a read-only root
#
# Needs the venv with tests/deploy/requirements.txt and moto, shellcheck in
# .venv, IMAGE_REF (mk/image.mk), root for the hardening part.
set -euo pipefail
cd "$(dirname "$0")/../.."

python=${DSPM_TEST_PYTHON:-$PWD/.venv/bin/python}
total_passed=0
total_failed=0
out=$(mktemp)
trap 'rm -f "$out"' EXIT

# part NAME COMMAND...: run one part; add up its closing "N passed, M failed".
part() {
    local name=$1 status counts p f
    shift
    echo "== $name"
    set +e
    "$@" 2>&1 | tee "$out"
    status=${PIPESTATUS[0]}
    set -e
    counts=$(grep -Eo '[0-9]+ passed, [0-9]+ failed' "$out" | tail -n1 || true)
    p=$(awk '{ print $1 }' <<<"${counts:-0 passed, 0 failed}")
    f=$(awk '{ print $3 }' <<<"${counts:-0 passed, 0 failed}")
    if [ "$status" -ne 0 ] && [ "$f" -eq 0 ]; then
        f=1
    fi
    total_passed=$((total_passed + p))
    total_failed=$((total_failed + f))
}

shellcheck_all() {
    local n=0 file
    for file in deploy/docker/*.sh tests/deploy/*.sh; do
        .venv/bin/shellcheck -x -P tests/image "$file" || { echo "shellcheck: $n passed, 1 failed"; return 1; }
        n=$((n + 1))
        echo "  ok  shellcheck $file"
    done
    echo "shellcheck: $n passed, 0 failed"
}

# A network namespace holding only a loopback interface that is down: any
# attempt to reach the network fails. As root directly; otherwise as the
# namespace's root through a user namespace, where the kernel allows it.
offline=()
if unshare --net true 2>/dev/null; then
    offline=(unshare --net)
elif unshare --net --map-root-user true 2>/dev/null; then
    offline=(unshare --net --map-root-user)
fi
check_offline() {
    if [ "${#offline[@]}" -gt 0 ]; then
        echo "  (in a network namespace without network: ${offline[*]})"
    else
        echo "  (network not cut off: no network namespace could be made here; the checks make no network call)"
    fi
    "${offline[@]}" "$python" tests/deploy/check_deploy.py
}

part lint shellcheck_all
part check check_offline
part ecs "$python" tests/deploy/ecs_register.py
part docker-run tests/deploy/docker-run-test.sh
part hardening env DSPM_TEST_PYTHON="$python" tests/deploy/hardening.sh

echo "deploy-test: $total_passed passed, $total_failed failed"
[ "$total_failed" -eq 0 ]
