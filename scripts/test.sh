#!/usr/bin/env bash
# Set up everything the test suite needs on a fresh Debian/Ubuntu machine, then run it.
#   - Debian packages: PostgreSQL 15 (real database tests), Go + golang.org/x/mod (interop tests),
#     docker.io + debootstrap (the replay sandbox's container tests), bubblewrap (its process backend)
#   - a PostgreSQL role/database for the tests (custody/custody on 127.0.0.1)
#   - a virtualenv in .venv with Custody and its test dependencies
#   - a Docker engine (dockerd started in the background if none answers) and the sandbox image
#     (custody-sandbox:latest, built offline from a debootstrap rootfs cached in /var/cache/custody)
# Extra arguments go to pytest (the suite runs on every core: -n auto; pass -n 0 to run it in one process).
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO="" AS_PG="runuser -u postgres --"
[ "$(id -u)" -eq 0 ] || { SUDO="sudo"; AS_PG="sudo -u postgres"; }

need=()
command -v pg_ctlcluster >/dev/null 2>&1 || need+=(postgresql)
command -v go >/dev/null 2>&1 || need+=(golang-go)
[ -d /usr/share/gocode/src/golang.org/x/mod ] || need+=(golang-golang-x-mod-dev)
command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
command -v bwrap >/dev/null 2>&1 || need+=(bubblewrap)
if [ ${#need[@]} -gt 0 ]; then
  echo "== installing ${need[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

echo "== starting PostgreSQL"
PGVER=$(ls /usr/lib/postgresql | sort -n | tail -1)
if ! pg_lsclusters -h | grep -q "^$PGVER *main"; then
  $SUDO pg_createcluster "$PGVER" main >/dev/null
fi
$SUDO pg_ctlcluster "$PGVER" main start 2>/dev/null || true  # "already running" is fine
for _ in $(seq 1 30); do
  $AS_PG psql -qAtc "SELECT 1" >/dev/null 2>&1 && break
  sleep 1
done
$AS_PG psql -qAtc "SELECT 1 FROM pg_roles WHERE rolname='custody'" | grep -q 1 \
  || $AS_PG psql -qc "CREATE ROLE custody LOGIN SUPERUSER PASSWORD 'custody'"
$AS_PG psql -qAtc "SELECT 1 FROM pg_database WHERE datname='custody_test'" | grep -q 1 \
  || $AS_PG psql -qc "CREATE DATABASE custody_test OWNER custody"

echo "== python environment"
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q -e ".[test]"

echo "== Docker engine and the sandbox image"
docker_ok=1
if ! docker info >/dev/null 2>&1; then
  echo "   starting dockerd (log: /var/log/custody-dockerd.log)"
  $SUDO sh -c 'nohup dockerd >/var/log/custody-dockerd.log 2>&1 &'
  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && break
    sleep 1
  done
  docker info >/dev/null 2>&1 || { docker_ok=0; echo "   dockerd did not answer within 60 s:"; tail -20 /var/log/custody-dockerd.log || true; }
fi
if [ "$docker_ok" = 1 ]; then
  # debootstrap rootfs cached in /var/cache/custody (about a minute the first time), base image reused,
  # then docker build from a local wheelhouse (about 20-30 s)
  .venv/bin/python - <<'PY' || docker_ok=0
import json, time
from sandbox.cli_functions import build
r = build(log=lambda line: None)
print("   sandbox image", r["image_id"], "seconds", json.dumps(r["seconds"]), "cached", json.dumps(r["cached"]))
PY
  docker image prune -f --filter "label=org.custody.sandbox" >/dev/null 2>&1 || true  # older builds' layers
fi
if [ "$docker_ok" != 1 ] && [ "${CUSTODY_REQUIRE_DOCKER:-0}" = 1 ]; then
  echo "Docker is required (CUSTODY_REQUIRE_DOCKER=1) but the engine or the sandbox image is not available" >&2
  exit 1
fi

echo "== tests"
export CUSTODY_TEST_POSTGRES_URL="${CUSTODY_TEST_POSTGRES_URL:-postgresql+psycopg://custody:custody@127.0.0.1:5432/custody_test}"
# on every core (pytest-xdist); tests that share the Docker engine run in one worker (tests/conftest.py)
exec .venv/bin/python -m pytest -n auto --dist loadgroup "$@"
