#!/usr/bin/env bash
# Runs the walkthrough against the local demo cluster, echoing each statement.
set -euo pipefail
cd "$(dirname "$0")/.."
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
PORT=${TESSERA_PORT:-9700}
env -u RUST_BACKTRACE "$("$PG_CONFIG" --bindir)/psql" -X -v ON_ERROR_STOP=1 -e \
    -h 127.0.0.1 -p "$PORT" -U postgres -d postgres -f demo/walkthrough.sql
echo
echo "The cluster keeps running: 'scripts/cluster.sh psql' (TESSERA_PORT=$PORT) opens psql on the"
echo "coordinator; 'make cluster-down' stops it."
