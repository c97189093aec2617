#!/usr/bin/env bash
# Runs the dspm-audit image locally against a real account, with temporary
# credentials passed as environment variables only: no ~/.aws is mounted,
# and no value appears on a command line (docker is given the variables'
# names; it reads the values from this script's environment).
#
# Credentials, one of:
#   AUDIT_ROLE_ARN=arn:aws:iam::<ACCOUNT_ID>:role/dspm-audit deploy/docker/run.sh
#       assumes the audit role with `aws sts assume-role` (one hour) using
#       whatever your AWS CLI is signed in as;
#   aws-vault exec <profile> -- deploy/docker/run.sh
#       uses the temporary keys that aws-vault (or any tool) exported:
#       AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN.
#
# Settings: AWS_REGION (required), DSPM_IMAGE (default
# dspm-audit:<IMAGE_TAG> as `make image` tags it, e.g.
# localhost/dspm-audit:0.1.0-abc1234), DSPM_PORT (host port, default 8103,
# bound to 127.0.0.1 only), DOCKER (default docker; podman works too).
# Arguments replace the image's command: `deploy/docker/run.sh scan --format table`.
set -euo pipefail

die() {
    echo "run.sh: $*" >&2
    exit 1
}

: "${AWS_REGION:?set AWS_REGION to the home region of the account, e.g. AWS_REGION=ap-northeast-2}"
image=${DSPM_IMAGE:-dspm-audit:<IMAGE_TAG>}
case "$image" in *"<"*) die "set DSPM_IMAGE to the image to run, e.g. DSPM_IMAGE=localhost/dspm-audit:0.1.0-abc1234" ;; esac
port=${DSPM_PORT:-8103}
docker=${DOCKER:-docker}

if [ -n "${AUDIT_ROLE_ARN:-}" ]; then
    command -v aws >/dev/null || die "AUDIT_ROLE_ARN needs the AWS CLI (aws sts assume-role)"
    read -r AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN < <(
        aws sts assume-role \
            --role-arn "$AUDIT_ROLE_ARN" \
            --role-session-name "dspm-audit-local-$(id -un)" \
            --duration-seconds 3600 \
            --query 'Credentials.[AccessKeyId,SecretAccessKey,SessionToken]' \
            --output text
    ) || die "aws sts assume-role --role-arn $AUDIT_ROLE_ARN failed"
    export AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN
fi
for var in AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN; do
    [ -n "${!var:-}" ] || die "no $var: set AUDIT_ROLE_ARN, or run under aws-vault exec (temporary keys only)"
done

args=("$@")
[ "${#args[@]}" -gt 0 ] || args=(serve)

# The hardening of deploy/kubernetes and deploy/ecs, locally: read-only root,
# user 65532, no capabilities, no privilege escalation; the API on the
# loopback interface of this machine only.
exec "$docker" run --rm \
    --read-only \
    --user 65532:65532 \
    --cap-drop ALL \
    --security-opt no-new-privileges \
    --publish "127.0.0.1:$port:8103" \
    --env AWS_REGION \
    --env AWS_ACCESS_KEY_ID \
    --env AWS_SECRET_ACCESS_KEY \
    --env AWS_SESSION_TOKEN \
    "$image" "${args[@]}"
