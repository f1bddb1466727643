#!/usr/bin/env bash
# Builds the phasm image (default tag phasm:dev) from the repository's
# Dockerfile: the binary is built here, static (CGO_ENABLED=0), and copied
# into a temporary build context with the host's CA certificates when
# there are any. Nothing is pulled: the image is FROM scratch.
set -euo pipefail
cd "$(dirname "$0")/../../.."
tag=${1:-phasm:dev}
GO=${GO:-go}
ctx=$(mktemp -d "${TMPDIR:-/tmp}/phasm-image.XXXXXX")
trap 'rm -rf "$ctx"' EXIT
mkdir -p "$ctx/certs" "$ctx/data" "$ctx/tmp"
CGO_ENABLED=0 "$GO" build -trimpath -ldflags='-s -w' -o "$ctx/phasm" ./cmd/phasm
if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
  cp /etc/ssl/certs/ca-certificates.crt "$ctx/certs/"
fi
docker build -q -t "$tag" -f Dockerfile "$ctx"
echo "built image $tag"
