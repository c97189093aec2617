#!/usr/bin/env bash
# What `docker build .` would send with Dockerfile.scratch: builds, with
# buildah and the project's .dockerignore, an image that copies the whole
# context, from a scratch copy of the sources salted with decoy secrets and
# build output, and requires that exactly Cargo.toml, Cargo.lock and src/
# (minus the decoys) arrive. The work tree itself is never touched.
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/image/lib.sh

work=$(mktemp -d)
tag="localhost/dspm-audit-context-test:$$"
container=""
cleanup() {
    if [ -n "$container" ]; then
        bh umount "$container" >/dev/null 2>&1 || true
        bh rm "$container" >/dev/null 2>&1 || true
    fi
    bh rmi "$tag" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

ctx=$work/context
mkdir -p "$ctx"
cp .dockerignore Cargo.toml Cargo.lock "$ctx/"
cp -r src "$ctx/src"
expected=$(cd "$ctx" && find Cargo.toml Cargo.lock src ! -type d | sort)

# Decoys: each must stay out.
mkdir -p "$ctx/.aws" "$ctx/.git" "$ctx/target/release" "$ctx/.venv/bin" "$ctx/deploy" "$ctx/src/secrets"
for decoy in .aws/credentials .git/config target/release/dspm-audit .venv/bin/python \
    .env .env.local deploy/tls.key deploy/cert.pem src/secrets/dev.pem src/.env.test \
    src/secrets/.aws; do
    echo decoy >"$ctx/$decoy"
done

printf 'FROM scratch\nCOPY . /context/\n' >"$work/Dockerfile"
bh build --quiet --isolation chroot --layers=false -f "$work/Dockerfile" -t "$tag" "$ctx" >/dev/null

container=$(bh from --pull-never "$tag")
root=$(bh mount "$container")
sent=$(cd "$root/context" && find . ! -type d | sed 's|^\./||' | sort)
if [ "$sent" != "$expected" ]; then
    echo "--- unexpected in the build context:" >&2
    comm -13 <(echo "$expected") <(echo "$sent") >&2
    echo "--- missing from it:" >&2
    comm -23 <(echo "$expected") <(echo "$sent") >&2
    die ".dockerignore does not keep the build context to Cargo.toml, Cargo.lock and src/"
fi
echo "  ok  build context: Cargo.toml, Cargo.lock, src/ ($(wc -l <<<"$sent") files); decoy secrets, target/, .venv/, .git/ left out"
