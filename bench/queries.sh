#!/usr/bin/env bash
# Query-engine benchmarks: the same tables on a Tessera cluster (32 shards over 4 workers) and
# on one plain PostgreSQL (the baseline), the same queries run alternately with pgbench
# (prepared protocol, one client) for several rounds; medians and ratios are printed with the
# load average. Machines here are shared and noisy: read the ratios, not the absolute numbers.
#
#   router        SELECT by primary key (distribution column = $1)     TPS ratio, added latency
#   router4       the same at 4 clients (-c 4 -j 4): CPU per query       TPS ratio
#   routernow     the router query with `AND created < now()`: now() is   TPS ratio
#                 evaluated on the coordinator and sent as a parameter
#   routernow4    the same at 4 clients                                   TPS ratio
#   aggregate     count/sum/avg over 1M rows                             time ratio
#   group by      GROUP BY a non-distribution column over 1M rows        time ratio
#   fan-out       count(*) of a 1k-row table (32 shards)                 added latency
#   join          co-located join of two 1M-row tables + GROUP BY        time ratio
#   insselect     TRUNCATE + INSERT ... SELECT of 20k rows into a table of
#                 another colocation group (rows through the coordinator) time ratio
#
# Settings: BENCH_ROUNDS (3), BENCH_SECONDS per run (5), BENCH_ROWS (1000000), BENCH_PORT for
# the cluster (9750; workers +1..+4), BENCH_BASELINE_PORT (9760).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh

ROWS=${BENCH_ROWS:-1000000}

start_servers

load() {
    local port=$1 distribute=$2
    psql_on "$port" <<SQL
SET client_min_messages = warning;
DROP TABLE IF EXISTS bench_kv, bench_kv2, bench_small, bench_sink;
CREATE TABLE bench_kv (id bigint PRIMARY KEY, g int NOT NULL, x numeric NOT NULL, v text,
                       created timestamptz NOT NULL DEFAULT '2026-01-01');
INSERT INTO bench_kv SELECT i, i % 100, (i % 1000) / 10.0, md5(i::text) FROM generate_series(1, $ROWS) i;
CREATE TABLE bench_kv2 (id bigint PRIMARY KEY, w int NOT NULL);
INSERT INTO bench_kv2 SELECT i, i % 7 FROM generate_series(1, $ROWS) i;
CREATE TABLE bench_small (id bigint PRIMARY KEY, v int);
INSERT INTO bench_small SELECT i, i FROM generate_series(1, 1000) i;
CREATE TABLE bench_sink (id bigint, g int, x numeric);
SQL
    if [ "$distribute" = yes ]; then
        psql_on "$port" -c "SET client_min_messages = warning;
            SELECT create_distributed_table('bench_kv', 'id', shard_count => 32);
            SELECT create_distributed_table('bench_kv2', 'id', colocate_with => 'bench_kv');
            SELECT create_distributed_table('bench_small', 'id', shard_count => 32);
            SELECT create_distributed_table('bench_sink', 'id', shard_count => 16, colocate_with => 'none');" >/dev/null
        # The workers' shards get statistics, as a long-running cluster's would.
        psql_on "$port" -c "SELECT count(*) FROM run_command_on_workers('ANALYZE')" >/dev/null
    fi
    psql_on "$port" -c "VACUUM ANALYZE" >/dev/null
}
echo "==> loading $ROWS rows (cluster: create_distributed_table, 32 shards)"
load "$BASE_PORT" no
load "$CLUSTER_PORT" yes

tmp=$(mktemp -d)
# pgbench_run PORT WORKLOAD: prints "tps latency_ms" (workloads ending in 4 run 4 clients).
pgbench_run() {
    local clients=1 script=$2
    case $2 in *4) clients=4 script=${2%4} ;; esac
    env -u RUST_BACKTRACE "$BINDIR/pgbench" -n -h 127.0.0.1 -p "$1" -U postgres -M prepared \
        -T "$SECONDS_PER_RUN" -c "$clients" -j "$clients" -f "$script.sql" postgres 2>/dev/null |
        awk '/latency average/ {lat=$4} /^tps/ {tps=$3} END {print tps, lat}'
}

printf '\\set id random(1, %s)\nSELECT v FROM bench_kv WHERE id = :id;\n' "$ROWS" >"$tmp/router.sql"
printf '\\set id random(1, %s)\nSELECT v FROM bench_kv WHERE id = :id AND created < now();\n' "$ROWS" >"$tmp/routernow.sql"
printf 'SELECT count(*), sum(x), avg(x) FROM bench_kv;\n' >"$tmp/aggregate.sql"
printf 'SELECT g, count(*), sum(x) FROM bench_kv GROUP BY g;\n' >"$tmp/groupby.sql"
printf 'SELECT count(*) FROM bench_small;\n' >"$tmp/fanout.sql"
printf 'SELECT b.w, count(*), avg(a.x) FROM bench_kv a JOIN bench_kv2 b USING (id) GROUP BY b.w;\n' >"$tmp/join.sql"
printf 'TRUNCATE bench_sink;\nINSERT INTO bench_sink SELECT id, g, x FROM bench_kv WHERE id <= 20000;\n' >"$tmp/insselect.sql"

echo "==> $ROUNDS rounds x ${SECONDS_PER_RUN}s per workload and side, alternating"
WORKLOADS="router router4 routernow routernow4 aggregate groupby fanout join insselect"
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
printf '%-12s %12s %12s %12s %12s %10s %12s\n' workload "tps cluster" "tps base" "ms cluster" "ms base" "ratio" "added ms"
for w in $WORKLOADS; do
    tc=$(col 1 <"$tmp/$w.c"); tb=$(col 1 <"$tmp/$w.b")
    lc=$(col 2 <"$tmp/$w.c"); lb=$(col 2 <"$tmp/$w.b")
    awk -v w="$w" -v tc="$tc" -v tb="$tb" -v lc="$lc" -v lb="$lb" 'BEGIN {
        # router: TPS ratio cluster/baseline (higher is better); others: time ratio (lower is better).
        ratio = (w ~ /^router/) ? tc / tb : lc / lb;
        printf "%-12s %12.1f %12.1f %12.3f %12.3f %10.2f %12.3f\n", w, tc, tb, lc, lb, ratio, lc - lb;
    }'
done
echo "ratio: router* = TPS cluster / TPS baseline; the others = time cluster / time baseline"
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
rm -rf "$tmp"
