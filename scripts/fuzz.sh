#!/usr/bin/env bash
# Random queries (SQLsmith) against a running Tessera cluster: fails when any node crashed,
# PANICked, or answered with an internal error (SQLSTATE XX000) or a Rust panic turned into an
# ERROR ("index out of bounds", "called `Option::unwrap()`", "panicked", ...). Ordinary errors
# (syntax, types, "not supported across shards yet") are only counted.
#
#   scripts/fuzz.sh     make the schema tessera_fuzz (a distributed table, a co-located one, a
#                       reference table and a local table, with rows), run SQLsmith, read the
#                       node logs written since the start, print a summary
#
# Settings (environment), the cluster's as in scripts/cluster.sh:
#   TESSERA_PORT            the coordinator's port  (default 9800, the test cluster)
#   TESSERA_WORKERS         how many workers        (default 4)
#   TESSERA_CLUSTER_DIR     where the node logs are (default /var/tmp/tessera/cluster-$TESSERA_PORT)
#   TESSERA_FUZZ_SEED       SQLsmith's seed         (default 1: the same queries every run)
#   TESSERA_FUZZ_QUERIES    how many queries        (default 10000, about 35 s here)
#   TESSERA_FUZZ_SECONDS    bound on SQLsmith's run (default 60)
#
# What it leaves: $DIR/logs/fuzz-sqlsmith.log (SQLsmith's report), $DIR/logs/fuzz-repro-N.sql
# (the first statement of each distinct internal error; fuzz-repro-pg-N.sql for PostgreSQL's
# own) and the schema tessera_fuzz, so a reproducer can be run again with
# scripts/cluster.sh psql -f FILE. The next run makes the schema afresh.
# Exit status: 0 passed, 1 a crash, PANIC, internal error or panic, 2 could not run.
set -euo pipefail

PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
PORT=${TESSERA_PORT:-9800}
WORKERS=${TESSERA_WORKERS:-4}
DIR=${TESSERA_CLUSTER_DIR:-/var/tmp/tessera/cluster-$PORT}
SEED=${TESSERA_FUZZ_SEED:-1}
QUERIES=${TESSERA_FUZZ_QUERIES:-10000}
SECONDS_MAX=${TESSERA_FUZZ_SECONDS:-60}
HOST=127.0.0.1
LOGS="$DIR/logs"
BINDIR=$("$PG_CONFIG" --bindir)

say() { printf '[fuzz %s] %s\n' "$PORT" "$*"; }
die() { printf '[fuzz %s] error: %s\n' "$PORT" "$*" >&2; exit 2; }

for v in PORT WORKERS SEED QUERIES SECONDS_MAX; do
    case "${!v}" in '' | *[!0-9]*) die "$v must be a number, not '${!v}'" ;; esac
done
command -v sqlsmith >/dev/null || die "sqlsmith is not installed (run 'make setup')"
[ -d "$LOGS" ] || die "no node logs in $LOGS: is the cluster at TESSERA_CLUSTER_DIR running?"

run_psql() {
    env -u RUST_BACKTRACE "$BINDIR/psql" -X -q -v ON_ERROR_STOP=1 -h "$HOST" -p "$PORT" -U postgres -d postgres "$@"
}

# Rust panics reach the client as ERRORs with the panic message; these are their shapes.
# shellcheck disable=SC2016 # backquotes are part of the panic messages
PANIC_RE='panicked|called `(Option|Result)::unwrap\(\)`|index out of bounds|with overflow|attempt to (divide|calculate the remainder)|is not a char boundary|slice index|range (start|end) index|assertion failed|assertion `|not yet implemented|entered unreachable code|explicit panic|already (mutably )?borrowed'
# A crashed or PANICked node, or an assertion of an assert-enabled build.
CRASH_RE='terminated by signal|PANIC:|TRAP:'
# PostgreSQL's own internal errors, each seen raised by the same statement on plain local
# tables: pg_stop_making_pinned_objects() called by a superuser, CASE over casts to unknown,
# intervaltypmodout() of a bad typmod (`interval(i, 51)`; the same typmod reaches interval_in when
# the coordinator reads the shards' values, and interval()'s planner support function for a
# constant: `SELECT interval(interval '1 day', 51)` on a plain server), an aggregate's final function (float8_stddev_pop)
# called on an array it did not make. Listed, not failed on; add one only after checking it
# on a local table.
PG_OWN_RE='cannot advance OID counter anymore|failed to find conversion function from unknown to|invalid INTERVAL typmod|unrecognized interval typmod|expected [0-9]+-element float8 array'

ports() { seq "$PORT" $((PORT + WORKERS)); }

run_psql -c "SELECT 1" >/dev/null 2>&1 || die "no coordinator on $HOST:$PORT (start it with scripts/cluster.sh start)"

say "schema tessera_fuzz: a distributed table, a co-located one, a reference table, a local table"
run_psql >/dev/null <<'SQL'
SET client_min_messages = warning;
DROP SCHEMA IF EXISTS tessera_fuzz CASCADE;
CREATE SCHEMA tessera_fuzz;
SET search_path = tessera_fuzz;
CREATE TABLE events (tenant_id int NOT NULL, event_id int NOT NULL, kind text, amount numeric(10,2),
                     score float8, flag bool, created_at timestamptz, took interval, tags text[],
                     PRIMARY KEY (tenant_id, event_id));
CREATE TABLE messages (tenant_id int NOT NULL, event_id int, msg_id bigint NOT NULL, body text, len int,
                       PRIMARY KEY (tenant_id, msg_id));
CREATE TABLE kinds (kind text PRIMARY KEY, label text, weight int);
CREATE TABLE notes (note_id int PRIMARY KEY, tenant_id int, kind text, body text, noted date);
SELECT create_distributed_table('events', 'tenant_id', shard_count => 8);
SELECT create_distributed_table('messages', 'tenant_id', colocate_with => 'events');
SELECT create_reference_table('kinds');
INSERT INTO events
SELECT i % 10 + 1, i, (ARRAY['click', 'view', 'buy', NULL])[i % 4 + 1], i * 1.5, i / 7.0, i % 3 = 0,
       TIMESTAMPTZ '2026-01-01 00:00+00' + i * INTERVAL '5 hours', make_interval(mins => i),
       ARRAY['t' || i % 5]
  FROM generate_series(1, 300) i;
INSERT INTO messages
SELECT i % 10 + 1, i % 300 + 1, i, 'message ' || i, i % 40 FROM generate_series(1, 600) i;
INSERT INTO kinds VALUES ('click', 'Click', 1), ('view', 'View', 2), ('buy', 'Buy', 10);
INSERT INTO notes
SELECT i, i % 10 + 1, (ARRAY['click', 'view', 'buy'])[i % 3 + 1], 'note ' || i, DATE '2026-01-01' + i
  FROM generate_series(1, 50) i;
ANALYZE events, messages, kinds, notes;
SQL

# Only what the nodes log from now on counts.
declare -A START
for p in $(ports); do
    f="$LOGS/node-$p.log"
    START[$p]=$( [ -f "$f" ] && stat -c %s "$f" || echo 0)
done

report="$LOGS/fuzz-sqlsmith.log"
say "sqlsmith: seed $SEED, at most $QUERIES queries, at most ${SECONDS_MAX}s"
# Verbose error logging in SQLsmith's own sessions puts each error's SQLSTATE in the log.
set +e
timeout "$SECONDS_MAX" sqlsmith \
    --target="host=$HOST port=$PORT dbname=postgres user=postgres options=-clog_error_verbosity=verbose" \
    --exclude-catalog --max-queries="$QUERIES" --seed="$SEED" --verbose >"$report" 2>&1
rc=$?
set -e
case $rc in
0) ;;
124) say "sqlsmith stopped after ${SECONDS_MAX}s (TESSERA_FUZZ_SECONDS)" ;;
*) say "sqlsmith exited with status $rc (see $report)" ;;
esac

# The new part of each node's log, one entry per line (continuation lines start with a tab).
new_log() {
    local p=$1 f="$LOGS/node-$1.log"
    [ -f "$f" ] || return 0
    tail -c +$((START[$p] + 1)) "$f" | awk '
        /^\t/ { sub(/^\t/, " "); buf = buf " " $0; next }
        { if (started) print buf; buf = $0; started = 1 }
        END { if (started) print buf }'
}

# Numbers of the entries that are crashes, PANICs, internal errors or panics.
bad_lines() {
    {
        grep -nE "(ERROR|FATAL): +XX000:|$CRASH_RE" "$1" || true
        grep -nE ' (ERROR|FATAL): ' "$1" | grep -E "$PANIC_RE" || true
    } | cut -d: -f1 | sort -n | uniq
}

# "node: message<TAB>statement" for each bad entry of a node's log: the statement is the
# STATEMENT entry that follows from the same process, or for a crash the postmaster's
# "Failed process was running" detail.
bad_entries() {
    local node=$1 joined=$2 lines
    lines=$(mktemp)
    bad_lines "$joined" >"$lines"
    awk -v node="$node" '
        function pid_of(line) { return match(line, /\[[0-9]+\]/) ? substr(line, RSTART + 1, RLENGTH - 2) : "" }
        function text_of(line,    t) { t = substr(line, index(line, "] ") + 2); sub(/^[A-Z]+: +/, "", t); return t }
        NR == FNR { want[$1] = 1; next }
        FNR in want { pending[pid_of($0)] = node ": " text_of($0); next }
        / (STATEMENT|DETAIL): / {
            p = pid_of($0)
            if (!(p in pending)) next
            t = text_of($0)
            if ($0 ~ / STATEMENT: /) { print pending[p] "\t" t; delete pending[p] }
            else if (sub(/^Failed process was running: /, "", t)) { print pending[p] "\t" t; delete pending[p] }
        }
        END { for (p in pending) print pending[p] "\t" }' "$lines" "$joined"
    rm -f "$lines"
}

bad=$(mktemp)
joined=$(mktemp)
errors=0
for p in $(ports); do
    new_log "$p" >"$joined"
    n=$(grep -cE ' ERROR: ' "$joined" || true)
    errors=$((errors + n))
    # Workers run Tessera's shard queries, whose sessions do not log SQLSTATEs: there only
    # panics and crashes count by their text; a worker's XX000 reaches the coordinator's log.
    if [ "$p" = "$PORT" ]; then node=coordinator; else node="worker $p"; fi
    bad_entries "$node" "$joined" >>"$bad"
done
rm -f "$joined"
# SQLsmith's own list of errors (messages cut at 80 characters), when the logs show nothing:
# a panic there means the logs were not read right.
if [ ! -s "$bad" ]; then
    grep -E '^[0-9]+	(ERROR|FATAL|PANIC)' "$report" | grep -E "$PANIC_RE|$CRASH_RE" |
        sed -E 's/^[0-9]+\t[A-Z]+: +/sqlsmith report: /; s/$/\t/' >>"$bad" || true
fi
own=$(mktemp)
grep -E "$PG_OWN_RE" "$bad" >"$own" || true
grep -vE "$PG_OWN_RE" "$bad" >"$bad.tessera" || true
mv "$bad.tessera" "$bad"

queries=$(grep -oE '^queries: [0-9]+' "$report" | tail -1 | cut -d' ' -f2 || true)
distinct=$(grep -cE '^[0-9]+	ERROR' "$report" || true)
rate=$(grep -oE 'error rate: [0-9.]+' "$report" | tail -1 | cut -d' ' -f3 || true)
say "summary: ${queries:-?} queries generated, $errors errors logged by the nodes, $distinct distinct error messages in SQLsmith's report, error rate ${rate:-?}"

# One line per distinct problem (numbers of 4+ digits, such as shard ids, made N), with how
# often it happened, and a file with the first statement that raised it.
list() {
    awk -F'\t' -v logs="$LOGS" -v tag="$2" '
    { i = index($1, ": ")
      m = substr($1, i + 2)
      gsub(/[0-9][0-9][0-9][0-9]+/, "N", m)
      m = substr($1, 1, i + 1) m
      if (!(m in n)) order[++k] = m
      n[m]++
      if (!(m in st) && $2 != "") st[m] = $2 }
    END {
        for (i = 1; i <= k; i++) {
            m = order[i]
            printf "  %5d  %s\n", n[m], m
            if (m in st) {
                f = logs "/fuzz-repro-" tag i ".sql"
                printf "-- %s\n%s;\n", m, st[m] > f
                close(f)
                printf "         reproducer: %s\n", f
            }
        }
    }' "$1"
}

rm -f "$LOGS"/fuzz-repro-*.sql
if [ -s "$own" ]; then
    say "PostgreSQL's own internal errors, not counted as failures (count, node: message):"
    list "$own" pg-
fi
rm -f "$own"
if [ ! -s "$bad" ]; then
    say "no crash, PANIC, internal error or panic: passed"
    rm -f "$bad"
    exit 0
fi
say "internal errors, panics or crashes (count, node: message):"
list "$bad" ""
rm -f "$bad"
say "failed (seed $SEED; SQLsmith's report: $report)"
exit 1
