#!/usr/bin/env bash
# Schema-based sharding benchmarks: BENCH_TENANTS tenant schemas of BENCH_TABLES tables each,
# distributed on a Tessera cluster (citus.enable_schema_based_sharding, spread over 4 workers)
# and the same schemas on one plain PostgreSQL (the baseline); the same queries run alternately
# with pgbench for several rounds; medians and ratios are printed with the load average.
# Machines here are shared and noisy: read the ratios, not the absolute numbers.
#
#   point      SELECT by primary key in a random tenant's table          TPS ratio, added latency
#   point4     the same at 4 clients (-c 4 -j 4): CPU per query            TPS ratio
#   point10    point over the first 10 tenants only: the same ratio as     TPS ratio
#              point shows that routing does not cost more with more tenants
#   agg        count/sum/avg over a random tenant's rows                    TPS ratio
#   agg4       the same at 4 clients                                        TPS ratio
#
# pgbench runs the simple protocol (the schema name changes per transaction), on both sides.
# It also prints how long creating and distributing the tenants took, and how long
# citus_schemas and citus_tables take to answer with that many.
#
# Settings: BENCH_TENANTS (1000), BENCH_TABLES (10), BENCH_TENANT_ROWS (1000), BENCH_ROUNDS (3),
# BENCH_SECONDS per run (5), BENCH_PORT (9750; workers +1..+4), BENCH_BASELINE_PORT (9760).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh

TENANTS=${BENCH_TENANTS:-1000}
TABLES=${BENCH_TABLES:-10}
TENANT_ROWS=${BENCH_TENANT_ROWS:-1000}

start_servers

tmp=$(mktemp -d)
# The tenants: one file of statements, each its own transaction.
{
    echo "SET client_min_messages = warning;"
    for t in $(seq "$TENANTS"); do
        echo "CREATE SCHEMA tenant_$t;"
        echo "CREATE TABLE tenant_$t.items (id int PRIMARY KEY, x numeric NOT NULL, v text);"
        for k in $(seq 2 "$TABLES"); do
            echo "CREATE TABLE tenant_$t.t$k (id int PRIMARY KEY, v text);"
        done
        echo "INSERT INTO tenant_$t.items SELECT i, i % 100, md5(i::text) FROM generate_series(1, $TENANT_ROWS) i;"
    done
} >"$tmp/tenants.sql"

load() {
    local port=$1 distribute=$2
    # A previous run's tenants, one schema per transaction (all at once would take a lock per
    # table in one transaction).
    psql_on "$port" <<'SQL'
SET client_min_messages = warning;
SELECT format('DROP SCHEMA %I CASCADE', nspname) FROM pg_namespace WHERE nspname LIKE 'tenant\_%' \gexec
SQL
    local start end
    start=$(date +%s.%N)
    if [ "$distribute" = yes ]; then
        PGOPTIONS='-c citus.enable_schema_based_sharding=on' psql_on "$port" -f "$tmp/tenants.sql"
        psql_on "$port" -c "SELECT count(*) FROM run_command_on_workers('ANALYZE')" >/dev/null
    else
        psql_on "$port" -f "$tmp/tenants.sql"
    fi
    psql_on "$port" -c "ANALYZE" >/dev/null
    end=$(date +%s.%N)
    awk -v s="$start" -v e="$end" -v n="$TENANTS" -v k="$TABLES" -v p="$port" \
        'BEGIN {printf "    port %s: %d schemas x %d tables created and loaded in %.1f s\n", p, n, k, e - s}'
}
echo "==> $TENANTS tenants of $TABLES tables, $TENANT_ROWS rows each in items"
load "$BASE_PORT" no
load "$CLUSTER_PORT" yes
psql_on "$CLUSTER_PORT" -At -c "SELECT 'tenants per node: ' || string_agg(nodeport || '=' || n, ', ' ORDER BY nodeport)
    FROM (SELECT nodeport, count(DISTINCT colocation_id) n FROM citus_shards WHERE citus_table_type = 'schema' GROUP BY 1) s"

# timed PORT SQL: milliseconds one run of SQL takes (psql's \timing).
timed() {
    psql_on "$1" -c '\timing on' -c "$2" | awk '/^Time:/ {print $2}' | tail -1
}
echo "    citus_schemas: $(timed "$CLUSTER_PORT" 'SELECT count(*) FROM citus_schemas') ms;" \
    "citus_tables: $(timed "$CLUSTER_PORT" 'SELECT count(*) FROM citus_tables') ms"

printf '\\set t random(1, %s)\n\\set id random(1, %s)\nSELECT v FROM tenant_:t.items WHERE id = :id;\n' "$TENANTS" "$TENANT_ROWS" >"$tmp/point.sql"
printf '\\set t random(1, %s)\n\\set id random(1, %s)\nSELECT v FROM tenant_:t.items WHERE id = :id;\n' "$(( TENANTS < 10 ? TENANTS : 10 ))" "$TENANT_ROWS" >"$tmp/point10.sql"
printf '\\set t random(1, %s)\nSELECT count(*), sum(x), avg(x) FROM tenant_:t.items;\n' "$TENANTS" >"$tmp/agg.sql"

# pgbench_run PORT WORKLOAD: prints "tps latency_ms" (workloads ending in 4 run 4 clients).
pgbench_run() {
    local clients=1 script=$2
    case $2 in *4) clients=4 script=${2%4} ;; esac
    env -u RUST_BACKTRACE "$BINDIR/pgbench" -n -h 127.0.0.1 -p "$1" -U postgres -M simple \
        -T "$SECONDS_PER_RUN" -c "$clients" -j "$clients" -f "$script.sql" postgres 2>/dev/null |
        awk '/latency average/ {lat=$4} /^tps/ {tps=$3} END {print tps, lat}'
}

echo "==> $ROUNDS rounds x ${SECONDS_PER_RUN}s per workload and side, alternating"
WORKLOADS="point point4 point10 agg agg4"
for w in $WORKLOADS; do
    : >"$tmp/$w.c"
    : >"$tmp/$w.b"
done
for r in $(seq "$ROUNDS"); do
    for w in $WORKLOADS; do
        pgbench_run "$CLUSTER_PORT" "$tmp/$w" >>"$tmp/$w.c"
        pgbench_run "$BASE_PORT" "$tmp/$w" >>"$tmp/$w.b"
    done
    echo "    round $r done (load: $(cut -d' ' -f1-3 /proc/loadavg))"
done

col() { awk -v c="$1" '{print $c}' | median; }
echo
printf '%-10s %12s %12s %12s %12s %10s %12s\n' workload "tps cluster" "tps base" "ms cluster" "ms base" "ratio" "added ms"
for w in $WORKLOADS; do
    tc=$(col 1 <"$tmp/$w.c"); tb=$(col 1 <"$tmp/$w.b")
    lc=$(col 2 <"$tmp/$w.c"); lb=$(col 2 <"$tmp/$w.b")
    awk -v w="$w" -v tc="$tc" -v tb="$tb" -v lc="$lc" -v lb="$lb" 'BEGIN {
        printf "%-10s %12.1f %12.1f %12.3f %12.3f %10.2f %12.3f\n", w, tc, tb, lc, lb, tc / tb, lc - lb;
    }'
done
echo "ratio = TPS cluster / TPS baseline (higher is better; Citus 13.2 measured 0.18-0.19 for point here)"
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
rm -rf "$tmp"
