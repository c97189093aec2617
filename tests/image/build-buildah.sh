#!/usr/bin/env bash
# Builds the scratch image with buildah (no container engine needed) from the
# binary that `make static` built on this machine: Dockerfile.scratch with
# BINARY_SOURCE=prebuilt, and a build context holding that binary alone.
# Needs STATIC_BIN and IMAGE_REF, which mk/image.mk exports.
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/image/lib.sh

: "${STATIC_BIN:?set by mk/image.mk}" "${IMAGE_REF:?set by mk/image.mk}"
[ -x "$STATIC_BIN" ] || die "no binary at $STATIC_BIN: run make static"

context=$(dirname "$STATIC_BIN")/image-context
rm -rf "$context"
mkdir -p "$context"
cp -p "$STATIC_BIN" "$context/dspm-audit"

# buildah 1.28 leaves the working container of the `FROM ${BINARY_SOURCE}` stage
# and that stage's unnamed image behind; remove exactly those afterwards.
containers_before=$(bh containers -aq --notruncate | sort)
# A rebuild moves the tag; the image it leaves untagged is removed too.
previous=$(bh inspect --type image --format '{{.FromImageID}}' "$IMAGE_REF" 2>/dev/null || true)

# --format docker: the OCI image format has no HEALTHCHECK; Docker's keeps it.
# The timestamp is fixed so that the same binary gives the same image.
bh build \
    --isolation chroot \
    --format docker \
    --timestamp 0 \
    --layers=false \
    --file Dockerfile.scratch \
    --build-arg BINARY_SOURCE=prebuilt \
    --build-arg VERSION="${IMAGE_VERSION:-0.0.0-dev}" \
    --build-arg REVISION="${IMAGE_REVISION:-unknown}" \
    --build-arg SOURCE_URL="${IMAGE_SOURCE:-unknown}" \
    --tag "$IMAGE_REF" \
    "$context"
rm -rf "$context"

for id in $(comm -13 <(echo "$containers_before") <(bh containers -aq --notruncate | sort)); do
    image=$(bh inspect --type container --format '{{.FromImageID}}' "$id")
    bh rm "$id" >/dev/null
    if bh images -q --no-trunc --filter dangling=true | grep -q "$image"; then
        bh rmi "$image" >/dev/null
    fi
done
if [ -n "$previous" ] && bh images -q --no-trunc --filter dangling=true | grep -q "$previous"; then
    bh rmi "$previous" >/dev/null
fi
echo "built $IMAGE_REF"
