#!/bin/sh
# Build monitorctl-postgres-base:15 from Debian's archive alone, for a Docker engine that reaches no
# image registry: a minimal bookworm root file system made by mmdebstrap (imported as
# monitorctl-debian:bookworm), then docker/base/Dockerfile on it. Does nothing for an image that
# exists already. Needs root (mmdebstrap) and a running Docker engine.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
if ! docker image inspect monitorctl-debian:bookworm >/dev/null 2>&1; then
    echo "building monitorctl-debian:bookworm with mmdebstrap from $mirror"
    mmdebstrap --quiet --variant=minbase --include=ca-certificates bookworm - "$mirror" \
        | docker import - monitorctl-debian:bookworm >/dev/null
fi
if ! docker image inspect monitorctl-postgres-base:15 >/dev/null 2>&1; then
    echo "building monitorctl-postgres-base:15 (docker/base)"
    log=$(mktemp)
    docker build --quiet -t monitorctl-postgres-base:15 "$here/base" >"$log" 2>&1 || { cat "$log" >&2; rm -f "$log"; exit 1; }
    rm -f "$log"
fi
