#!/usr/bin/env bash
# `make push`: publishes the image to Amazon ECR under two tags,
#   VERSION-COMMIT  (immutable in spirit: one commit, one tag) and
#   VERSION         (moves to the newest push of that version),
# never `latest`. Refuses a dirty work tree, whose commit tag would lie.
#
# With a Docker engine: a multi-arch (IMAGE_PLATFORMS) buildx build from source,
# pushed directly. Without: the amd64 image that `make image` built with buildah.
#
#   AWS_ACCOUNT_ID=123456789012 AWS_REGION=eu-west-1 ECR_REPOSITORY=dspm-audit make push
#
# Credentials come from the usual AWS CLI chain (profile, SSO, instance role).
# This script is documentation that runs; no test or CI job calls it.
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/image/lib.sh

: "${AWS_ACCOUNT_ID:?set AWS_ACCOUNT_ID (12 digits)}"
: "${AWS_REGION:?set AWS_REGION (e.g. eu-west-1)}"
: "${ECR_REPOSITORY:?set ECR_REPOSITORY (e.g. dspm-audit)}"
: "${IMAGE_VERSION:?set by mk/image.mk}" "${IMAGE_REVISION:?set by mk/image.mk}"
[[ "$AWS_ACCOUNT_ID" =~ ^[0-9]{12}$ ]] || die "AWS_ACCOUNT_ID must be 12 digits"
[[ "$IMAGE_VERSION" =~ ^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$ ]] \
    || die "version '$IMAGE_VERSION' from Cargo.toml is not semantic"
if [ -z "${PUSH_ALLOW_DIRTY:-}" ] && ! git diff --quiet HEAD --; then
    die "uncommitted changes: commit first (or PUSH_ALLOW_DIRTY=1 for a throwaway push)"
fi

registry="$AWS_ACCOUNT_ID.dkr.ecr.$AWS_REGION.amazonaws.com"
repo="$registry/$ECR_REPOSITORY"
tags=("$IMAGE_VERSION-$IMAGE_REVISION" "$IMAGE_VERSION")

if docker info >/dev/null 2>&1; then
    aws ecr get-login-password --region "$AWS_REGION" \
        | docker login --username AWS --password-stdin "$registry"
    docker buildx build -f Dockerfile.scratch \
        --platform "${IMAGE_PLATFORMS:-linux/amd64,linux/arm64}" \
        --build-arg VERSION="$IMAGE_VERSION" \
        --build-arg REVISION="$IMAGE_REVISION" \
        --build-arg SOURCE_URL="${IMAGE_SOURCE:-unknown}" \
        "${tags[@]/#/--tag=$repo:}" \
        --push .
else
    : "${IMAGE_REF:?set by mk/image.mk}"
    make --no-print-directory image-buildah
    aws ecr get-login-password --region "$AWS_REGION" \
        | buildah login --username AWS --password-stdin "$registry"
    for tag in "${tags[@]}"; do
        bh push --format docker "$IMAGE_REF" "docker://$repo:$tag"
    done
fi
printf 'pushed %s\n' "${tags[@]/#/$repo:}"
