#!/usr/bin/env bash
# Prints the artefact's figures beside their budgets. Measures, never fails on
# a figure: a budget overrun is printed as OVER for a person to act on.
#   binary size, image size (uncompressed layers), files in the image,
#   start -> first /health 200 (median of 10, binary run directly, --demo,
#   loopback), idle RSS (VmRSS one second after the first 200).
# Needs STATIC_BIN and IMAGE_REF (exported by mk/image.mk).
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/image/lib.sh

: "${STATIC_BIN:?set by mk/image.mk}" "${IMAGE_REF:?set by mk/image.mk}"
for var in $(compgen -e | grep -E '^AWS_' || true); do unset "$var"; done

work=$(mktemp -d)
container=""
cleanup() {
    [ -z "$container" ] || { bh umount "$container" >/dev/null 2>&1 || true; bh rm "$container" >/dev/null 2>&1 || true; }
    rm -rf "$work"
}
trap cleanup EXIT

# row NAME VALUE BUDGET UNIT: one line, with OK or OVER.
row() {
    local verdict=OK
    awk -v v="$2" -v b="$3" 'BEGIN { exit !(v > b) }' && verdict=OVER
    printf '%-28s %12s %-4s  budget %8s %-4s %s\n' "$1" "$2" "$4" "$3" "$4" "$verdict"
}

binary_bytes=$(stat -c %s "$STATIC_BIN")

# The image's layers, uncompressed, as a registry-independent figure.
bh push --quiet --disable-compression "$IMAGE_REF" "dir:$work/image" >/dev/null
image_bytes=0
for digest in $(jq -r '.layers[].digest | sub("sha256:"; "")' "$work/image/manifest.json"); do
    image_bytes=$((image_bytes + $(stat -c %s "$work/image/$digest")))
done
gzip_bytes=0
for digest in $(jq -r '.layers[].digest | sub("sha256:"; "")' "$work/image/manifest.json"); do
    gzip_bytes=$((gzip_bytes + $(gzip -6 -c "$work/image/$digest" | wc -c)))
done
config_digest=$(jq -r '.config.digest | sub("sha256:"; "")' "$work/image/manifest.json")
image_bytes=$((image_bytes + $(stat -c %s "$work/image/$config_digest")))

container=$(bh from --pull-never --name "dspm-audit-bench-$$" "$IMAGE_REF")
files=$(find "$(bh mount "$container")" -mindepth 1 -not -type d | wc -l)

startup=$(python3 tests/image/startup.py "$STATIC_BIN" 10 1.0)
figure() { awk -v k="$1" '$1 == k { print $2 }' <<<"$startup"; }

mb() { awk -v b="$1" 'BEGIN { printf "%.2f", b / 1000000 }'; }
mb_from_kib() { awk -v k="$1" 'BEGIN { printf "%.2f", k * 1024 / 1000000 }'; }

echo "image-bench: $IMAGE_REF ($(nproc) cores, $(uname -m))"
row "static binary" "$(mb "$binary_bytes")" 6 MB
row "image, uncompressed" "$(mb "$image_bytes")" 7 MB
row "files in image" "$files" 1 ""
row "start -> /health 200, median" "$(figure startup_ms_median)" 50 ms
printf '%-28s %12s  (min %s ms, max %s ms, 10 runs)\n' "" "" "$(figure startup_ms_min)" "$(figure startup_ms_max)"
row "idle RSS (VmRSS)" "$(mb_from_kib "$(figure rss_kib_idle)")" 10 MB
printf '%-28s %12s  (%s MB at the first 200)\n' "" "" "$(mb_from_kib "$(figure rss_kib_at_ready)")"
printf '%-28s %12s MB  (gzip -6 of the layer, what a registry stores)\n' "image, compressed" "$(mb "$gzip_bytes")"
