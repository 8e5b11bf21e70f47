#!/usr/bin/env bash
# `make test-docker`: the SQL, migration, acceptance and ledger-shape tests against PostgreSQL in a
# Docker container, through monitorctl's testcontainers backend (docs/containers.md).
#
# Sets up what is missing and undoes what it started: installs docker.io and mmdebstrap from Debian's
# archive when absent; starts dockerd when no engine answers (and stops it at the end); builds the
# base image from Debian's archive when the official postgres image cannot be pulled; removes every
# container the tests started (label monitorctl.test), whatever the outcome.
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
VENV=${VENV:-.venv}
say() { echo "test-docker: $*"; }

need=()
command -v dockerd >/dev/null || need+=(docker.io)
command -v mmdebstrap >/dev/null || need+=(mmdebstrap)
if [ ${#need[@]} -gt 0 ]; then
    say "installing ${need[*]}"
    $SUDO apt-get update -q >/dev/null
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" >/dev/null
fi

started=""
log=$(mktemp)
cleanup() {
    ids=$(docker ps -aq --filter label=monitorctl.test 2>/dev/null || true)
    if [ -n "$ids" ]; then
        say "removing containers $(echo $ids)"
        docker rm -f $ids >/dev/null || true
    fi
    if [ -n "$started" ]; then
        say "stopping the dockerd it started (pid $started)"
        $SUDO kill "$started" 2>/dev/null || true
        for _ in $(seq 60); do kill -0 "$started" 2>/dev/null || break; sleep 0.5; done
    fi
    rm -f "$log"
}
trap cleanup EXIT

if ! docker info >/dev/null 2>&1; then
    say "no Docker engine answers: starting dockerd (log: $log)"
    $SUDO dockerd >"$log" 2>&1 &
    started=$!
    for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
    docker info >/dev/null 2>&1 || { cat "$log" >&2; say "dockerd did not start"; exit 1; }
fi

base=$("$VENV/bin/python" -c 'from monitorctl import embedded; print(embedded.OFFICIAL_BASE)')
if docker image inspect "$base" >/dev/null 2>&1 || timeout 60 docker pull -q "$base" >/dev/null 2>&1; then
    say "base image: $base"
else
    say "$base cannot be pulled: building the base image from Debian's archive"
    $SUDO sh docker/build-base.sh
fi

MONITOR_TEST_BACKEND=docker TESTCONTAINERS_RYUK_DISABLED=true \
    "$VENV/bin/pytest" -q -o addopts="-ra" tests/sql tests/migration tests/acceptance tests/shapes
