#!/usr/bin/env bash
# Builds the bitnet-rs server image from deploy/Containerfile: a `FROM scratch` runtime holding
# only the static `bitnet` binary, the licence files of what it links, and the shipped model.
#
# Default (prebuilt): compiles the static binary here (glibc, `-C target-feature=+crt-static`,
# --target x86_64-unknown-linux-gnu), checks it is static, collects the licences
# (deploy/collect-licenses.sh) into target/image/, and builds the image with the Containerfile's
# `prebuilt` binary stage: no base image is pulled, so this works on a machine with no access to
# a container registry.
# --from-source: the binary stage compiles inside RUST_IMAGE (pulled from a registry) instead.
#
# Usage: deploy/build-image.sh [--from-source] [--tag TAG] [--engine podman|docker]
#   TAG defaults to localhost/bitnet-rs:VERSION; the engine to podman if installed, else docker.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
cd "$here"

log() { printf '[build-image] %s\n' "$*" >&2; }

from_source=0
tag=""
engine=""
while [ $# -gt 0 ]; do
    case "$1" in
        --from-source) from_source=1 ;;
        --tag) tag="${2:?--tag needs a value}"; shift ;;
        --engine) engine="${2:?--engine needs a value}"; shift ;;
        -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
        *) log "unknown argument: $1"; exit 2 ;;
    esac
    shift
done
if [ -z "$engine" ]; then
    if command -v podman >/dev/null 2>&1; then engine=podman
    elif command -v docker >/dev/null 2>&1; then engine=docker
    else log "neither podman nor docker is installed (Debian: apt-get install podman)"; exit 1
    fi
fi
version="$(cargo pkgid -p bitnet-cli | sed 's/.*[#@]//')"
tag="${tag:-localhost/bitnet-rs:$version}"
# Docker's format keeps HEALTHCHECK (the OCI image format has no place for it).
format_args=()
[ "$engine" = podman ] && format_args=(--format docker)

if [ "$from_source" -eq 1 ]; then
    log "building $tag with $engine, compiling inside the builder image"
    exec "$engine" build "${format_args[@]}" -f deploy/Containerfile -t "$tag" .
fi

target=x86_64-unknown-linux-gnu
stage=target/image
log "compiling a static bitnet for $target (release)"
RUSTFLAGS="-C target-feature=+crt-static" CARGO_PROFILE_RELEASE_DEBUG=0 \
    cargo build --release --locked -p bitnet-cli --target "$target"
binary="target/$target/release/bitnet"
if readelf -d "$binary" 2>/dev/null | grep -q NEEDED; then
    log "$binary links shared libraries:"; readelf -d "$binary" | grep NEEDED >&2; exit 1
fi
if readelf -l "$binary" | grep -q INTERP; then
    log "$binary needs a dynamic loader (not static)"; exit 1
fi
rm -rf "$stage"
mkdir -p "$stage"
cp "$binary" "$stage/bitnet"
strip --strip-debug "$stage/bitnet"
"$stage/bitnet" --version >/dev/null
bash deploy/collect-licenses.sh "$stage/licenses" "$target"
log "building $tag with $engine from the prebuilt binary ($(du -h "$stage/bitnet" | cut -f1))"
"$engine" build "${format_args[@]}" -f deploy/Containerfile --build-arg BINARY_FROM=prebuilt \
    -t "$tag" .
log "built $tag"
