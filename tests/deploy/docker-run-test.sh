#!/usr/bin/env bash
# deploy/docker/run.sh, run with stand-ins for `docker` and `aws` that record
# what they were asked (no container engine, no AWS): the credentials reach
# the container as variables named on the command line, never as values and
# never as a mounted ~/.aws; the hardening flags are there; the API is bound
# to 127.0.0.1; and missing settings or long-term keys are refused.
set -euo pipefail
cd "$(dirname "$0")/../.."

work=$(mktemp -d)
passed=0
cleanup() {
    local status=$?
    rm -rf "$work"
    if [ "$status" -eq 0 ]; then
        echo "docker-run: $passed passed, 0 failed"
    else
        echo "docker-run: $passed passed, 1 failed"
    fi
}
trap cleanup EXIT
fail() { echo "docker-run: FAIL: $*" >&2; exit 1; }
pass() {
    passed=$((passed + 1))
    echo "  ok  $*"
}

mkdir "$work/bin"
# docker: one argument per line, and the credential variables it would read.
cat >"$work/bin/docker" <<'EOF'
#!/usr/bin/env bash
printf '%s\n' "$@" >"$RECORD/docker.args"
env | grep -E '^AWS_' | sort >"$RECORD/docker.env"
EOF
cat >"$work/bin/aws" <<'EOF'
#!/usr/bin/env bash
printf '%s\n' "$@" >"$RECORD/aws.args"
printf 'ASIAEXAMPLEEXAMPLE01\tsecretFromAssumeRoleEXAMPLEEXAMPLEEXAMPL\ttokenFromAssumeRole\n'
EOF
chmod +x "$work/bin/docker" "$work/bin/aws"

# run ENV... : run.sh with only PATH, RECORD and the given variables.
run() {
    rm -f "$work"/*.args "$work"/*.env
    env -i PATH="$work/bin:/usr/bin:/bin" RECORD="$work" HOME="$work/home" "$@" deploy/docker/run.sh
}
args() { cat "$work/docker.args"; }

echo "docker-run: deploy/docker/run.sh"
run AWS_REGION=eu-west-1 DSPM_IMAGE=localhost/dspm-audit:0.1.0-abc1234 \
    AUDIT_ROLE_ARN=arn:aws:iam::123456789012:role/dspm-audit >/dev/null
if ! grep -qx 'assume-role' "$work/aws.args" || ! grep -qx 'arn:aws:iam::123456789012:role/dspm-audit' "$work/aws.args"; then
    fail "aws sts assume-role was not asked for the role: $(cat "$work/aws.args")"
fi
pass "AUDIT_ROLE_ARN: credentials from aws sts assume-role"
if ! grep -qx 'AWS_SESSION_TOKEN=tokenFromAssumeRole' "$work/docker.env" \
    || ! grep -qx 'AWS_ACCESS_KEY_ID=ASIAEXAMPLEEXAMPLE01' "$work/docker.env"; then
    fail "docker did not get the assumed role's keys in its environment: $(cat "$work/docker.env")"
fi
pass "the assumed role's temporary keys reach docker's environment"
if args | grep -q -e 'secretFromAssumeRole' -e 'tokenFromAssumeRole' -e 'ASIAEXAMPLE'; then
    fail "a credential value is on docker's command line"
fi
for var in AWS_REGION AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN; do
    args | grep -qx "$var" || fail "docker is not passed --env $var"
done
pass "docker gets --env NAME for each variable, no value on its command line"
if args | grep -Eq -e '^(-v|--volume|--mount)' -e '\.aws'; then
    fail "run.sh mounts something: $(args | tr '\n' ' ')"
fi
pass "no volume, no mount, no ~/.aws"
for flag in --read-only --user 65532:65532 --cap-drop ALL --security-opt no-new-privileges; do
    args | grep -qx -- "$flag" || fail "docker run lacks $flag: $(args | tr '\n' ' ')"
done
args | grep -qx '127.0.0.1:8103:8103' || fail "the API is not bound to 127.0.0.1:8103"
[ "$(tail -n2 "$work/docker.args" | tr '\n' ' ')" = "localhost/dspm-audit:0.1.0-abc1234 serve " ] \
    || fail "image and command: $(tail -n2 "$work/docker.args" | tr '\n' ' ')"
pass "read-only root, user 65532:65532, no capabilities, no-new-privileges, 127.0.0.1 only, image serve"

run AWS_REGION=eu-west-1 DSPM_IMAGE=img:1 AWS_ACCESS_KEY_ID=ASIAVAULTEXAMPLE0001 \
    AWS_SECRET_ACCESS_KEY=vaultSecret AWS_SESSION_TOKEN=vaultToken DSPM_PORT=9000 >/dev/null
[ ! -e "$work/aws.args" ] || fail "aws was called although keys were given"
grep -qx 'AWS_SESSION_TOKEN=vaultToken' "$work/docker.env" || fail "aws-vault's keys did not reach docker"
args | grep -qx '127.0.0.1:9000:8103' || fail "DSPM_PORT not used"
pass "aws-vault style: exported temporary keys are passed through, no assume-role"

refused() { # refused WHAT MESSAGE-FRAGMENT ENV...
    local what=$1 fragment=$2 out
    shift 2
    if out=$(run "$@" 2>&1); then
        fail "$what: run.sh did not refuse"
    fi
    grep -q -- "$fragment" <<<"$out" || fail "$what: message lacks '$fragment': $out"
    [ ! -e "$work/docker.args" ] || fail "$what: docker was run anyway"
    pass "refused: $what"
}
refused "no AWS_REGION" "AWS_REGION" DSPM_IMAGE=img:1 AWS_ACCESS_KEY_ID=a AWS_SECRET_ACCESS_KEY=b AWS_SESSION_TOKEN=c
refused "long-term keys (no session token)" "AWS_SESSION_TOKEN" AWS_REGION=eu-west-1 DSPM_IMAGE=img:1 \
    AWS_ACCESS_KEY_ID=AKIAEXAMPLE AWS_SECRET_ACCESS_KEY=b
refused "no image chosen" "DSPM_IMAGE" AWS_REGION=eu-west-1 AWS_ACCESS_KEY_ID=a AWS_SECRET_ACCESS_KEY=b AWS_SESSION_TOKEN=c
