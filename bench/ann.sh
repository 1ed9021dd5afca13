#!/usr/bin/env bash
# Distributed nearest-neighbour search: recall@10 and QPS of a distributed table (4 and 32
# shards over 4 workers) against the same rows in one plain PostgreSQL with the same HNSW
# index, for hnsw.ef_search in {10, 20, 40, 100} set in the session only (connection
# options), at 1 client (latency) and 4 clients (throughput).
#
# Data: a Gaussian mixture (BENCH_ANN_CLUSTERS centres uniform in [-1, 1] per dimension, noise
# of BENCH_ANN_SIGMA (0.5) per dimension, fixed seed), BENCH_ANN_ROWS rows of
# BENCH_ANN_DIMS dimensions (100000 x 128), and BENCH_ANN_QUERIES held-out query vectors
# (200) drawn from the same mixture; the ground truth is an exact search (no index) on the
# baseline. Every run on both sides uses the same index options (m = 16, ef_construction = 64).
# Then the scenario's 1536 dimensions at BENCH_ANN_ROWS_1536 rows (10000), 4 shards.
#
# Printed per (table, ef_search): recall@10, QPS at 1 and at 4 clients, and the QPS ratio to
# the baseline at the same ef_search; then, per distributed table, the QPS at matched recall
# (its fastest ef_search whose recall is at least the baseline's at ef_search 100) as a ratio
# to the baseline at ef_search 100; and the same with tessera.ann_ef_search_scaling on. Then
# LIMIT 200 at ef_search 200: recall@200 and QPS with every shard asked for 200 rows and with
# scaling on (each shard asked first for fewer, `executor/fewer_rows.rs`).
# Machines here are shared and noisy: read the ratios, not the absolute numbers.
#
# Settings: BENCH_SECONDS per pgbench run (5), BENCH_PORT (9750), BENCH_BASELINE_PORT (9760).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh

ROWS=${BENCH_ANN_ROWS:-100000}
DIMS=${BENCH_ANN_DIMS:-128}
QUERIES=${BENCH_ANN_QUERIES:-200}
CLUSTERS=${BENCH_ANN_CLUSTERS:-50}
SIGMA=${BENCH_ANN_SIGMA:-0.5}
ROWS_1536=${BENCH_ANN_ROWS_1536:-10000}
EFS=(10 20 40 100)

start_servers

# The data set, made on the baseline: points (id, embedding) and held-out queries (q, v).
make_data() { # TABLE_SUFFIX ROWS DIMS QUERIES
    local s=$1 rows=$2 dims=$3 queries=$4
    psql_on "$CLUSTER_PORT" -c "SET client_min_messages = warning" -c "DROP TABLE IF EXISTS ann_queries$s, ann_truth$s"
    psql_on "$BASE_PORT" <<SQL
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS vector;
DROP TABLE IF EXISTS ann_centres$s, ann_points$s, ann_queries$s, ann_truth$s;
SELECT setseed(0.17);
CREATE TABLE ann_centres$s AS
SELECT c, array_agg(random() * 2 - 1 ORDER BY d) AS x FROM generate_series(1, $CLUSTERS) c, generate_series(1, $dims) d GROUP BY c;
-- Each point: a centre plus Gaussian noise (Box-Muller), SIGMA per dimension.
CREATE TABLE ann_points$s AS
SELECT i AS id, (SELECT array_agg(x[d] + $SIGMA * sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random()) ORDER BY d)
                   FROM generate_series(1, $dims) d)::vector($dims) AS embedding
  FROM generate_series(1, $rows + $queries) i
  JOIN ann_centres$s ON c = 1 + (i * 7919) % $CLUSTERS;
CREATE TABLE ann_queries$s AS SELECT id - $rows AS q, embedding AS v FROM ann_points$s WHERE id > $rows;
DELETE FROM ann_points$s WHERE id > $rows;
SET max_parallel_workers_per_gather = 0;
CREATE TABLE ann_truth$s AS
SELECT q, ARRAY(SELECT id FROM ann_points$s ORDER BY embedding <-> v LIMIT 10) AS ids FROM ann_queries$s;
SQL
}

# load PORT TABLE SHARDS SUFFIX DIMS: the points into TABLE (distributed with SHARDS shards
# when SHARDS > 0); the queries and the ground truth as plain tables on the coordinator, so a
# query's vector is at hand there as an application's would be (it sends it as a parameter).
load() {
    local port=$1 table=$2 shards=$3 s=$4 dims=$5
    psql_on "$port" <<SQL
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS vector;
DROP TABLE IF EXISTS $table;
CREATE TABLE $table (id int PRIMARY KEY, embedding vector($dims));
CREATE TABLE IF NOT EXISTS ann_queries$s (q int PRIMARY KEY, v vector($dims));
CREATE TABLE IF NOT EXISTS ann_truth$s (q int PRIMARY KEY, ids int[]);
SQL
    if [ "$shards" -gt 0 ]; then
        psql_on "$port" -c "SELECT create_distributed_table('$table', 'id', shard_count => $shards)" >/dev/null
        if [ "$(psql_on "$port" -Atc "SELECT count(*) FROM ann_queries$s")" = 0 ]; then
            psql_on "$BASE_PORT" -c "COPY ann_queries$s TO STDOUT" | psql_on "$port" -c "COPY ann_queries$s FROM STDIN"
            psql_on "$BASE_PORT" -c "COPY ann_truth$s TO STDOUT" | psql_on "$port" -c "COPY ann_truth$s FROM STDIN"
        fi
    fi
    psql_on "$BASE_PORT" -c "COPY ann_points$s TO STDOUT" | psql_on "$port" -c "COPY $table FROM STDIN"
    local t0 t1
    t0=$(date +%s.%N)
    # The graph fits in memory on every side (the shards' builds fit in the workers' default).
    psql_on "$port" -c "SET maintenance_work_mem = '1GB'" \
        -c "CREATE INDEX ON $table USING hnsw (embedding vector_l2_ops) WITH (m = 16, ef_construction = 64)"
    t1=$(date +%s.%N)
    psql_on "$port" -c "ANALYZE $table"
    echo "$t0 $t1" | awk '{printf "%.1f", $2 - $1}'
}

# recall PORT TABLE SUFFIX EF [SCALING] [K]: mean recall@K (10) over the held-out queries
# (each search a statement of its own, run by a function over the local ground-truth table:
# ann_truth$SUFFIX for 10, ann_truth${SUFFIX}_k$K otherwise).
recall() {
    local port=$1 table=$2 s=$3 ef=$4 scaling=${5:-off} k=${6:-10} truth
    truth=ann_truth$s
    [ "$k" = 10 ] || truth=ann_truth${s}_k$k
    psql_on "$port" <<SQL
CREATE OR REPLACE FUNCTION ann_found(qid int, t regclass, queries regclass, k int) RETURNS int[] LANGUAGE plpgsql AS \$\$
DECLARE qv vector; r int[];
BEGIN
  EXECUTE format('SELECT v FROM %s WHERE q = \$1', queries) INTO qv USING qid;
  EXECUTE format('SELECT ARRAY(SELECT id FROM %s ORDER BY embedding <-> \$1 LIMIT \$2)', t) INTO r USING qv, k;
  RETURN r;
END \$\$;
SQL
    PGOPTIONS="-c hnsw.ef_search=$ef -c tessera.ann_ef_search_scaling=$scaling" psql_on "$port" -At -c \
        "SELECT round(avg((SELECT count(*) FROM unnest(ann_found(t.q, '$table', 'ann_queries$s', $k)) f WHERE f = ANY (t.ids)) / $k.0), 3) FROM $truth t"
}

# qps PORT TABLE SUFFIX EF CLIENTS [SCALING] [K]: queries per second of pgbench (prepared),
# LIMIT K (10).
qps() {
    local port=$1 table=$2 s=$3 ef=$4 clients=$5 scaling=${6:-off} k=${7:-10}
    local script
    script=$(mktemp)
    printf '\\set q random(1, %d)\nSELECT id FROM %s ORDER BY embedding <-> (SELECT v FROM ann_queries%s WHERE q = :q) LIMIT %d;\n' \
        "$QUERIES" "$table" "$s" "$k" >"$script"
    PGOPTIONS="-c hnsw.ef_search=$ef -c tessera.ann_ef_search_scaling=$scaling" \
        env -u RUST_BACKTRACE "$BINDIR/pgbench" -n -h 127.0.0.1 -p "$port" -U postgres -M prepared \
        -T "$SECONDS_PER_RUN" -c "$clients" -j "$clients" -f "$script" postgres 2>/dev/null |
        awk '/^tps/ {printf "%.0f", $3}'
    rm -f "$script"
}

echo "==> data: $ROWS x $DIMS (Gaussian mixture of $CLUSTERS, sigma $SIGMA), $QUERIES held-out queries, exact ground truth"
make_data "" "$ROWS" "$DIMS" "$QUERIES"
echo "==> HNSW build (m 16, ef_construction 64): seconds"
b_base=$(load "$BASE_PORT" ann_base 0 "" "$DIMS")
b4=$(load "$CLUSTER_PORT" ann_d4 4 "" "$DIMS")
b32=$(load "$CLUSTER_PORT" ann_d32 32 "" "$DIMS")
echo "    baseline $b_base   4 shards $b4   32 shards $b32   (ratio 4 shards: $(echo "$b4 $b_base" | awk '{printf "%.2f", $1 / $2}'))"

declare -A R Q1 Q4
run_target() { # NAME PORT TABLE SCALING
    local name=$1 port=$2 table=$3 scaling=$4
    for ef in "${EFS[@]}"; do
        R[$name,$ef]=$(recall "$port" "$table" "" "$ef" "$scaling")
        Q1[$name,$ef]=$(qps "$port" "$table" "" "$ef" 1 "$scaling")
        Q4[$name,$ef]=$(qps "$port" "$table" "" "$ef" 4 "$scaling")
    done
}
echo "==> recall@10 and QPS (${SECONDS_PER_RUN}s per pgbench run; load $(cut -d' ' -f1-3 /proc/loadavg))"
run_target base "$BASE_PORT" ann_base off
run_target d4 "$CLUSTER_PORT" ann_d4 off
run_target d32 "$CLUSTER_PORT" ann_d32 off
run_target d4s "$CLUSTER_PORT" ann_d4 on
run_target d32s "$CLUSTER_PORT" ann_d32 on

printf '    %-24s %4s %7s %8s %8s %8s %8s\n' table ef recall qps@1 ratio qps@4 ratio
for name in base d4 d32 d4s d32s; do
    case $name in
        base) label="one node" ;; d4) label="4 shards" ;; d32) label="32 shards" ;;
        d4s) label="4 shards, ef scaled" ;; d32s) label="32 shards, ef scaled" ;;
    esac
    for ef in "${EFS[@]}"; do
        printf '    %-24s %4s %7s %8s %8s %8s %8s\n' "$label" "$ef" "${R[$name,$ef]}" "${Q1[$name,$ef]}" \
            "$(echo "${Q1[$name,$ef]} ${Q1[base,$ef]}" | awk '{printf "%.2f", $1 / $2}')" "${Q4[$name,$ef]}" \
            "$(echo "${Q4[$name,$ef]} ${Q4[base,$ef]}" | awk '{printf "%.2f", $1 / $2}')"
    done
done

echo "==> QPS at matched recall: the fastest ef_search whose recall >= one node's at ef_search 100 (${R[base,100]})"
for name in d4 d32 d4s d32s; do
    best1=0 best4=0 at=""
    for ef in "${EFS[@]}"; do
        if awk -v a="${R[$name,$ef]}" -v b="${R[base,100]}" 'BEGIN {exit !(a >= b)}'; then
            if [ "${Q1[$name,$ef]}" -gt "$best1" ]; then best1=${Q1[$name,$ef]} best4=${Q4[$name,$ef]} at=$ef; fi
        fi
    done
    if [ -z "$at" ]; then
        echo "    $name: no ef_search reaches that recall"
    else
        echo "    $name: ef_search $at, recall ${R[$name,$at]}: 1 client $(echo "$best1 ${Q1[base,100]}" | awk '{printf "%.2f", $1 / $2}')x, 4 clients $(echo "$best4 ${Q4[base,100]}" | awk '{printf "%.2f", $1 / $2}')x one node at ef_search 100"
    fi
done
echo "    (recall never below one node at the same ef_search:" \
    "$(for ef in "${EFS[@]}"; do for n in d4 d32; do awk -v a="${R[$n,$ef]}" -v b="${R[base,$ef]}" 'BEGIN {exit !(a < b)}' && printf ' %s@%s below' "$n" "$ef"; done; done; echo ' checked'))"

# Many rows per query: LIMIT 200 at ef_search 200 (the least that returns 200 rows on one
# node). With scaling on, each shard is asked first for fewer rows (and searched with that
# many candidates), and again for 200 when it may hold more of the nearest.
echo "==> LIMIT 200, ef_search 200: recall@200 and QPS, every shard asked for 200 rows (off) or fewer first (scaling on)"
psql_on "$BASE_PORT" -c "SET client_min_messages = warning" -c "DROP TABLE IF EXISTS ann_truth_k200" \
    -c "CREATE TABLE ann_truth_k200 AS SELECT q, ARRAY(SELECT id FROM ann_points ORDER BY embedding <-> v LIMIT 200) AS ids FROM ann_queries"
psql_on "$CLUSTER_PORT" -c "SET client_min_messages = warning" -c "DROP TABLE IF EXISTS ann_truth_k200" \
    -c "CREATE TABLE ann_truth_k200 (q int PRIMARY KEY, ids int[])"
psql_on "$BASE_PORT" -c "COPY ann_truth_k200 TO STDOUT" | psql_on "$CLUSTER_PORT" -c "COPY ann_truth_k200 FROM STDIN"
printf '    %-24s %7s %8s %8s %8s %8s\n' table recall qps@1 ratio qps@4 ratio
for t in "base $BASE_PORT ann_base off" "d4 $CLUSTER_PORT ann_d4 off" "d4s $CLUSTER_PORT ann_d4 on" \
    "d32 $CLUSTER_PORT ann_d32 off" "d32s $CLUSTER_PORT ann_d32 on"; do
    read -r name port table scaling <<<"$t"
    R[$name,k200]=$(recall "$port" "$table" "" 200 "$scaling" 200)
    Q1[$name,k200]=$(qps "$port" "$table" "" 200 1 "$scaling" 200)
    Q4[$name,k200]=$(qps "$port" "$table" "" 200 4 "$scaling" 200)
    case $name in
        base) label="one node" ;; d4) label="4 shards" ;; d32) label="32 shards" ;;
        d4s) label="4 shards, fewer rows" ;; d32s) label="32 shards, fewer rows" ;;
    esac
    printf '    %-24s %7s %8s %8s %8s %8s\n' "$label" "${R[$name,k200]}" "${Q1[$name,k200]}" \
        "$(echo "${Q1[$name,k200]} ${Q1[base,k200]}" | awk '{printf "%.2f", $1 / $2}')" "${Q4[$name,k200]}" \
        "$(echo "${Q4[$name,k200]} ${Q4[base,k200]}" | awk '{printf "%.2f", $1 / $2}')"
done
for n in 4 32; do
    echo "    $n shards: fewer rows first against 200 from every shard: $(echo "${Q1[d${n}s,k200]} ${Q1[d$n,k200]}" | awk '{printf "%.2f", $1 / $2}')x at 1 client, $(echo "${Q4[d${n}s,k200]} ${Q4[d$n,k200]}" | awk '{printf "%.2f", $1 / $2}')x at 4 clients"
done

echo "==> 1536 dimensions: $ROWS_1536 rows, 4 shards, ef_search 40"
make_data _1536 "$ROWS_1536" 1536 50
load "$BASE_PORT" ann_base_1536 0 _1536 1536 >/dev/null
load "$CLUSTER_PORT" ann_d4_1536 4 _1536 1536 >/dev/null
QUERIES_SAVED=$QUERIES
QUERIES=50
r_b=$(recall "$BASE_PORT" ann_base_1536 _1536 40)
r_d=$(recall "$CLUSTER_PORT" ann_d4_1536 _1536 40)
q_b1=$(qps "$BASE_PORT" ann_base_1536 _1536 40 1)
q_d1=$(qps "$CLUSTER_PORT" ann_d4_1536 _1536 40 1)
q_b4=$(qps "$BASE_PORT" ann_base_1536 _1536 40 4)
q_d4=$(qps "$CLUSTER_PORT" ann_d4_1536 _1536 40 4)
QUERIES=$QUERIES_SAVED
echo "    one node: recall $r_b, qps $q_b1 (1 client), $q_b4 (4 clients)"
echo "    4 shards: recall $r_d, qps $q_d1 (1 client, $(echo "$q_d1 $q_b1" | awk '{printf "%.2f", $1 / $2}')x), $q_d4 (4 clients, $(echo "$q_d4 $q_b4" | awk '{printf "%.2f", $1 / $2}')x)"
