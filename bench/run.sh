#!/usr/bin/env bash
# Tessera benchmarks: each workload runs against a Tessera cluster and against a single plain
# PostgreSQL (the baseline) built from the same binaries, alternately, for several rounds; the
# script prints the median of each side and their ratio. Machines here are shared and noisy:
# read the ratios, not the absolute numbers, and look at the load average printed with them.
#
# Settings: BENCH_ROUNDS (3), BENCH_SECONDS per run (5), BENCH_PORT for the cluster (9750;
# workers +1..+4), BENCH_BASELINE_PORT (9760).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh

start_servers

# pgbench_latency PORT SCRIPT: average latency in ms of one transaction of SCRIPT.
pgbench_latency() {
    local port=$1 script=$2
    env -u RUST_BACKTRACE "$BINDIR/pgbench" -n -h 127.0.0.1 -p "$port" -U postgres -M prepared \
        -T "$SECONDS_PER_RUN" -c 1 -f "$script" postgres 2>/dev/null |
        awk '/latency average/ {print $4}'
}

tmp=$(mktemp -d)
printf 'SELECT * FROM run_command_on_workers($$select 1$$);\n' >"$tmp/rc_parallel.sql"
printf 'SELECT * FROM run_command_on_workers($$select 1$$, parallel => false);\n' >"$tmp/rc_serial.sql"
printf 'select 1;\nselect 1;\nselect 1;\nselect 1;\n' >"$tmp/four_direct.sql"

echo "==> workload: round trip to 4 workers ($ROUNDS rounds x ${SECONDS_PER_RUN}s each side)"
echo "    cluster:  SELECT * FROM run_command_on_workers('select 1')   (4 workers, in parallel)"
echo "    serial:   the same with parallel => false"
echo "    baseline: 4 x 'select 1' from one client, one round trip each, on the plain server"
: >"$tmp/p"
: >"$tmp/s"
: >"$tmp/b"
for r in $(seq "$ROUNDS"); do
    pgbench_latency "$CLUSTER_PORT" "$tmp/rc_parallel.sql" >>"$tmp/p"
    pgbench_latency "$BASE_PORT" "$tmp/four_direct.sql" >>"$tmp/b"
    pgbench_latency "$CLUSTER_PORT" "$tmp/rc_serial.sql" >>"$tmp/s"
    echo "    round $r: parallel $(tail -1 "$tmp/p") ms, serial $(tail -1 "$tmp/s") ms, baseline $(tail -1 "$tmp/b") ms  (load: $(cut -d' ' -f1-3 /proc/loadavg))"
done
p=$(median <"$tmp/p")
s=$(median <"$tmp/s")
b=$(median <"$tmp/b")
echo
printf '%-46s %10s\n' "median latency per call" "ms"
printf '%-46s %10.3f\n' "run_command_on_workers (parallel)" "$p"
printf '%-46s %10.3f\n' "run_command_on_workers (parallel => false)" "$s"
printf '%-46s %10.3f\n' "baseline: 4 direct round trips" "$b"
awk -v p="$p" -v s="$s" -v b="$b" 'BEGIN {
    printf "ratio parallel / baseline  = %.2f\n", p / b;
    printf "ratio serial / parallel    = %.2f\n", s / p;
}'
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
rm -rf "$tmp"
