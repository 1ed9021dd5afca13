#!/usr/bin/env bash
# Write benchmarks: a Tessera cluster (32 shards over 4 workers) against one plain PostgreSQL
# (the baseline), the same statements alternately for several rounds; medians and ratios are
# printed with the load average. Machines here are shared and noisy: read the ratios.
#
#   copy       COPY of BENCH_COPY_ROWS rows from a CSV file (server side)   rows/s ratio
#   insert500  INSERT ... VALUES of 500 rows per statement, 1 client (simple protocol)  rows/s ratio
#   insert1    single-row INSERT, 1 client (latency)                        TPS ratio
#   insert4    single-row INSERT, 4 clients (throughput)                    TPS ratio
#   tx1        a transaction that updates one row (one shard: one-phase)   TPS ratio
#   tx2        a transaction that updates two rows on two workers (2PC)    TPS ratio; and
#              on the cluster, tx2 against tx1 (what two-phase commit costs)
#   distribute create_distributed_table of a local table of BENCH_MOVE_ROWS rows (the row
#              mover: local rows into 32 shards)                            rows/s ratio
#   undistribute  undistribute_table of it (rows from the shards back)      rows/s ratio
#   move       citus_schema_move of a tenant schema's table of BENCH_MOVE_ROWS rows to
#              another worker                                               rows/s ratio
#              (the three against one node copying the same rows into an equal table with
#              INSERT ... SELECT: what carrying them between nodes costs; one session, as
#              these operations run)
#
# Settings: BENCH_ROUNDS (3), BENCH_SECONDS per run (5), BENCH_COPY_ROWS (1000000),
# BENCH_MOVE_ROWS (200000),
# BENCH_PORT (9750; workers +1..+4), BENCH_BASELINE_PORT (9760).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh

COPY_ROWS=${BENCH_COPY_ROWS:-1000000}
MOVE_ROWS=${BENCH_MOVE_ROWS:-200000}
CSV=/tmp/tessera_bench_rows.csv

start_servers 'rm -f "$CSV"'

load() {
    local port=$1 distribute=$2
    psql_on "$port" <<SQL
SET client_min_messages = warning;
DROP TABLE IF EXISTS bench_copy, bench_ins, bench_acct;
CREATE TABLE bench_copy (id bigint PRIMARY KEY, tenant int NOT NULL, v text, n numeric);
CREATE TABLE bench_ins (id bigint, tenant int, v text);
CREATE TABLE bench_acct (id bigint PRIMARY KEY, balance bigint NOT NULL);
INSERT INTO bench_acct SELECT i, 0 FROM generate_series(1, 10000) i;
SQL
    if [ "$distribute" = yes ]; then
        psql_on "$port" -c "SET client_min_messages = warning;
            SELECT create_distributed_table('bench_copy', 'id', shard_count => 32);
            SELECT create_distributed_table('bench_ins', 'id', shard_count => 32);
            SELECT create_distributed_table('bench_acct', 'id', shard_count => 32);" >/dev/null
    fi
    psql_on "$port" <<SQL
SET client_min_messages = warning;
DROP TABLE IF EXISTS bench_mv, bench_mv_copy;
DROP SCHEMA IF EXISTS bench_tenant CASCADE;
CREATE TABLE bench_mv (id bigint PRIMARY KEY, tenant int NOT NULL, v text, n numeric, at timestamptz);
INSERT INTO bench_mv SELECT i, i % 1000, md5(i::text), i / 10.0, '2026-01-01'::timestamptz + i * interval '1 s'
  FROM generate_series(1, $MOVE_ROWS) i;
CREATE TABLE bench_mv_copy (LIKE bench_mv INCLUDING ALL);
CREATE SCHEMA bench_tenant;
CREATE TABLE bench_tenant.items (LIKE bench_mv INCLUDING ALL);
INSERT INTO bench_tenant.items SELECT * FROM bench_mv;
SQL
    if [ "$distribute" = yes ]; then
        psql_on "$port" -c "SET client_min_messages = warning;
            SELECT citus_schema_distribute('bench_tenant');" >/dev/null
    fi
    psql_on "$port" -c "VACUUM ANALYZE" >/dev/null
}
echo "==> loading"
load "$BASE_PORT" no
load "$CLUSTER_PORT" yes
psql_on "$BASE_PORT" -c "COPY (SELECT i, i % 1000, md5(i::text), i / 10.0 FROM generate_series(1, $COPY_ROWS) i) TO '$CSV' WITH (FORMAT csv)"

# Two accounts on two different workers, and one more on the first's.
read -r A B < <(psql_on "$CLUSTER_PORT" -At -F ' ' -c "
    WITH placed AS (SELECT i, (SELECT nodeport FROM citus_shards
                                WHERE shardid = get_shard_id_for_distribution_column('bench_acct', i)) AS port
                      FROM generate_series(1, 100) i)
    SELECT (SELECT min(i) FROM placed WHERE port = (SELECT port FROM placed WHERE i = 1)),
           (SELECT min(i) FROM placed WHERE port <> (SELECT port FROM placed WHERE i = 1))")

tmp=$(mktemp -d)
{
    echo '\set base random(1, 1000000000)'
    printf 'INSERT INTO bench_ins VALUES '
    for i in $(seq 1 500); do
        [ "$i" -gt 1 ] && printf ', '
        printf '(:base + %d, %d, '"'"'v%d'"'"')' "$i" "$((i % 1000))" "$i"
    done
    echo ';'
} >"$tmp/insert500.sql"
printf '\\set id random(1, 1000000000)\nINSERT INTO bench_ins VALUES (:id, :id %% 1000, '"'"'x'"'"');\n' >"$tmp/insert1.sql"
printf 'BEGIN;\nUPDATE bench_acct SET balance = balance + 1 WHERE id = %s;\nUPDATE bench_acct SET balance = balance - 1 WHERE id = %s;\nCOMMIT;\n' "$A" "$A" >"$tmp/tx1.sql"
printf 'BEGIN;\nUPDATE bench_acct SET balance = balance + 1 WHERE id = %s;\nUPDATE bench_acct SET balance = balance - 1 WHERE id = %s;\nCOMMIT;\n' "$A" "$B" >"$tmp/tx2.sql"

# pgbench_run PORT SCRIPT CLIENTS: prints "tps latency_ms" (the 500-row INSERT in the simple
# protocol: pgbench prepares at most 255 parameters).
pgbench_run() {
    local mode=prepared
    case $2 in *insert500.sql) mode=simple ;; esac
    env -u RUST_BACKTRACE "$BINDIR/pgbench" -n -h 127.0.0.1 -p "$1" -U postgres -M "$mode" \
        -T "$SECONDS_PER_RUN" -c "$3" -j "$3" -f "$2" postgres 2>/dev/null |
        awk '/latency average/ {lat=$4} /^tps/ {tps=$3} END {print tps, lat}'
}
# copy_run PORT: rows per second of one COPY of the file into an empty table.
copy_run() {
    psql_on "$1" -c "TRUNCATE bench_copy"
    local start end
    start=$(date +%s.%N)
    psql_on "$1" -c "COPY bench_copy FROM '$CSV' WITH (FORMAT csv)"
    end=$(date +%s.%N)
    awk -v s="$start" -v e="$end" -v n="$COPY_ROWS" 'BEGIN {printf "%.1f 0\n", n / (e - s)}'
}

# timed PORT SQL: rows per second of MOVE_ROWS rows carried by one statement.
timed() {
    local start end
    start=$(date +%s.%N)
    psql_on "$1" -c "SET client_min_messages = warning; $2" >/dev/null
    end=$(date +%s.%N)
    awk -v s="$start" -v e="$end" -v n="$MOVE_ROWS" 'BEGIN {printf "%.1f 0\n", n / (e - s)}'
}
# The baseline of the mover workloads: the same rows into an equal table on one node.
local_copy() {
    psql_on "$BASE_PORT" -c "TRUNCATE bench_mv_copy" >/dev/null
    timed "$BASE_PORT" "INSERT INTO bench_mv_copy SELECT * FROM bench_mv"
}
# move_run: the tenant schema to the next worker in turn.
move_run() {
    local target
    target=$(psql_on "$CLUSTER_PORT" -At -c "
        SELECT nodeport FROM pg_dist_node
         WHERE noderole = 'primary' AND groupid > 0
           AND groupid <> (SELECT groupid FROM pg_dist_schema WHERE schemaid = 'bench_tenant'::regnamespace)
         ORDER BY nodeport LIMIT 1")
    timed "$CLUSTER_PORT" "SELECT citus_schema_move('bench_tenant', '127.0.0.1', $target)"
    psql_on "$CLUSTER_PORT" -c "SET client_min_messages = warning; CALL citus_cleanup_orphaned_resources()" >/dev/null
}

echo "==> $ROUNDS rounds, alternating (two-phase commit pair: accounts $A and $B)"
WORKLOADS="copy insert500 insert1 insert4 tx1 tx2 distribute undistribute move"
for w in $WORKLOADS; do : >"$tmp/$w.c"; : >"$tmp/$w.b"; done
for r in $(seq "$ROUNDS"); do
    for w in $WORKLOADS; do
        for side in c b; do
            port=$CLUSTER_PORT
            [ "$side" = b ] && port=$BASE_PORT
            case $w in
                copy) copy_run "$port" >>"$tmp/$w.$side" ;;
                distribute | undistribute | move)
                    if [ "$side" = b ]; then
                        local_copy >>"$tmp/$w.b"
                    elif [ "$w" = distribute ]; then
                        timed "$port" "SELECT create_distributed_table('bench_mv', 'id', shard_count => 32)" >>"$tmp/$w.c"
                    elif [ "$w" = undistribute ]; then
                        timed "$port" "SELECT undistribute_table('bench_mv')" >>"$tmp/$w.c"
                    else
                        move_run >>"$tmp/$w.c"
                    fi ;;
                insert4) pgbench_run "$port" "$tmp/insert1.sql" 4 >>"$tmp/$w.$side" ;;
                *) pgbench_run "$port" "$tmp/$w.sql" 1 >>"$tmp/$w.$side" ;;
            esac
        done
    done
    echo "    round $r done (load: $(cut -d' ' -f1-3 /proc/loadavg))"
done

col() { awk -v c="$1" '{print $c}' | median; }
echo
printf '%-10s %14s %14s %10s\n' workload "cluster" "single node" "ratio"
for w in $WORKLOADS; do
    c=$(col 1 <"$tmp/$w.c"); b=$(col 1 <"$tmp/$w.b")
    case $w in
        copy | distribute | undistribute | move) unit="rows/s" ;;
        insert500) unit="rows/s"; c=$(awk -v x="$c" 'BEGIN {print x * 500}'); b=$(awk -v x="$b" 'BEGIN {print x * 500}') ;;
        *) unit="TPS" ;;
    esac
    awk -v w="$w" -v c="$c" -v b="$b" -v u="$unit" 'BEGIN {
        printf "%-10s %10.0f %-3s %10.0f %-3s %10.2f\n", w, c, (u == "TPS" ? "tps" : "r/s"), b, (u == "TPS" ? "tps" : "r/s"), c / b }'
done
t1=$(col 1 <"$tmp/tx1.c"); t2=$(col 1 <"$tmp/tx2.c")
awk -v a="$t1" -v b="$t2" 'BEGIN {printf "two-phase commit on the cluster: tx2 / tx1 = %.2f (TPS of a 2-worker transaction against a 1-shard one)\n", b / a}'
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
rm -rf "$tmp"
