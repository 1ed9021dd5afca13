# What every benchmark script shares (sourced from the repository's root): the settings, the
# benchmark cluster (ports BENCH_PORT..+4) and the plain baseline server (BENCH_BASELINE_PORT)
# started from the same binaries, psql against either, and the median of a column of numbers.
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
BINDIR=$("$PG_CONFIG" --bindir)
ROUNDS=${BENCH_ROUNDS:-3}
SECONDS_PER_RUN=${BENCH_SECONDS:-5}
CLUSTER_PORT=${BENCH_PORT:-9750}
BASE_PORT=${BENCH_BASELINE_PORT:-9760}
WORK=/var/tmp/tessera/bench
export PG_CONFIG

cluster() { TESSERA_RECREATE_STALE=1 TESSERA_PORT=$CLUSTER_PORT TESSERA_CLUSTER_DIR=$WORK/cluster bash scripts/cluster.sh "$@"; }
# The baseline is a "cluster" with no workers and no Tessera preloaded: one plain server.
baseline() { TESSERA_PORT=$BASE_PORT TESSERA_WORKERS=0 TESSERA_PRELOAD='' TESSERA_CLUSTER_DIR=$WORK/baseline bash scripts/cluster.sh "$@"; }
psql_on() { env -u RUST_BACKTRACE "$BINDIR/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$1" -U postgres -d postgres "${@:2}"; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

# start_servers [EXTRA]: starts both, and stops them (then runs EXTRA) when the script exits.
start_servers() {
    echo "==> starting the cluster (port $CLUSTER_PORT) and the baseline (port $BASE_PORT)"
    cluster start >/dev/null
    baseline start >/dev/null
    # shellcheck disable=SC2064 # EXTRA is meant to be expanded now.
    trap "cluster stop >/dev/null; baseline stop >/dev/null; ${1:-:}" EXIT
}
