#!/usr/bin/env bash
# A local Tessera cluster: one coordinator and N workers on 127.0.0.1, run as an unprivileged
# OS user (PostgreSQL refuses to run as root).
#
#   scripts/cluster.sh start     initialise what is missing, start every node, create the
#                                extension everywhere and register the nodes on the coordinator
#   scripts/cluster.sh stop      stop every node (fast shutdown)
#   scripts/cluster.sh restart   stop, then start (picks up a reinstalled library)
#   scripts/cluster.sh status    which nodes run, and the coordinator's node list
#   scripts/cluster.sh psql ...  psql on the coordinator (extra arguments go to psql)
#   scripts/cluster.sh destroy   stop and delete every node's data
#
# Settings (environment):
#   TESSERA_CLUSTER_DIR  data, logs and sockets     (default /var/tmp/tessera/cluster-$TESSERA_PORT)
#   TESSERA_PORT         the coordinator's port     (default 9700; workers use PORT+1 .. PORT+N)
#   TESSERA_WORKERS      how many workers           (default 4)
#   TESSERA_OS_USER      the OS user that runs the servers when started as root (default postgres)
#   PG_CONFIG            which PostgreSQL           (default /usr/lib/postgresql/15/bin/pg_config)
#   TESSERA_RECREATE_STALE=1  rebuild the cluster (losing its data) when the installed Tessera SQL
#                        script changed since the cluster was made; otherwise that is an error
#   TESSERA_RECOVERY_INTERVAL  citus.recover_2pc_interval of every node (default: Tessera's; the
#                        test cluster sets -1, and its tests turn recovery on when they test it)
#   TESSERA_PRELOAD      shared_preload_libraries   (default pg_stat_statements,tessera); without
#                        tessera the nodes are plain PostgreSQL servers (benchmark baselines)
set -euo pipefail

PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
PORT=${TESSERA_PORT:-9700}
WORKERS=${TESSERA_WORKERS:-4}
DIR=${TESSERA_CLUSTER_DIR:-/var/tmp/tessera/cluster-$PORT}
OS_USER=${TESSERA_OS_USER:-postgres}
PRELOAD=${TESSERA_PRELOAD-pg_stat_statements,tessera}
BINDIR=$("$PG_CONFIG" --bindir)
LIB="$("$PG_CONFIG" --pkglibdir)/tessera.so"
HOST=127.0.0.1

say() { printf '[cluster %s] %s\n' "$PORT" "$*"; }
die() { printf '[cluster %s] error: %s\n' "$PORT" "$*" >&2; exit 1; }

case "$WORKERS" in '' | *[!0-9]*) die "TESSERA_WORKERS must be a number, not '$WORKERS'" ;; esac
case "$PORT" in '' | *[!0-9]*) die "TESSERA_PORT must be a number, not '$PORT'" ;; esac

# Runs a command as the cluster's OS user, without RUST_BACKTRACE (a server started with it
# appends Rust backtraces to error details).
as_owner() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u "$OS_USER" -- env -u RUST_BACKTRACE -u RUST_LIB_BACKTRACE "$@"
    else
        env -u RUST_BACKTRACE -u RUST_LIB_BACKTRACE "$@"
    fi
}

ports() { seq "$PORT" $((PORT + WORKERS)); }
datadir() { echo "$DIR/node-$1"; }
is_running() { as_owner "$BINDIR/pg_ctl" status -D "$(datadir "$1")" >/dev/null 2>&1; }
port_taken() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }
run_psql() {
    local port=$1
    shift
    env -u RUST_BACKTRACE "$BINDIR/psql" -X -q -v ON_ERROR_STOP=1 -h "$HOST" -p "$port" -U "$OS_USER" -d postgres "$@"
}

CREATED_COORDINATOR=0

init_node() {
    local port=$1 d
    d=$(datadir "$port")
    [ -f "$d/PG_VERSION" ] && return
    [ "$port" = "$PORT" ] && CREATED_COORDINATOR=1
    say "initdb node on port $port"
    as_owner "$BINDIR/initdb" -D "$d" -U "$OS_USER" --auth=trust --encoding=UTF8 --locale=C.UTF-8 >"$DIR/logs/initdb-$port.log" 2>&1 ||
        die "initdb failed for port $port: see $DIR/logs/initdb-$port.log"
    cat >>"$d/postgresql.conf" <<CONF

# --- Tessera local cluster ---
port = $port
listen_addresses = '$HOST'
unix_socket_directories = '$DIR/sockets'
shared_preload_libraries = '$PRELOAD'
wal_level = logical
max_prepared_transactions = 100
max_connections = 200
max_wal_senders = 10
max_replication_slots = 10
logging_collector = off
log_min_messages = warning
log_line_prefix = '%m [%p] '
CONF
    # The test cluster turns the maintenance worker's recovery off (its tests turn it on):
    # recovery running between two statements of a test would change what they show.
    if [ -n "${TESSERA_RECOVERY_INTERVAL:-}" ]; then
        echo "citus.recover_2pc_interval = '$TESSERA_RECOVERY_INTERVAL'" >>"$d/postgresql.conf"
    fi
}

# The checksum of the installed extension script: a cluster made with another script has a
# catalog that does not match the library (unreleased versions reuse their version number).
sql_stamp() { cat "$("$PG_CONFIG" --sharedir)"/extension/tessera--*.sql 2>/dev/null | sha256sum | cut -d' ' -f1; }

check_stale() {
    local stamp="$DIR/tessera-sql.sha256" now
    now=$(sql_stamp)
    # A cluster with data but no stamp was made by an older launcher: its script is unknown.
    if [ -f "$(datadir "$PORT")/PG_VERSION" ] && { [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$now" ]; }; then
        if [ "${TESSERA_RECREATE_STALE:-0}" = 1 ]; then
            say "the installed Tessera SQL changed since this cluster was made: rebuilding it"
            destroy
        else
            die "the installed Tessera SQL changed since this cluster was made in $DIR; run 'scripts/cluster.sh destroy' (its data is lost) and start again"
        fi
    fi
}

start() {
    command -v "$BINDIR/pg_ctl" >/dev/null || die "no PostgreSQL at $BINDIR (run 'make setup')"
    case ",$PRELOAD," in *,tessera,*) check_stale ;; esac
    if [ "$(id -u)" -eq 0 ]; then
        id "$OS_USER" >/dev/null 2>&1 || die "OS user '$OS_USER' does not exist (set TESSERA_OS_USER)"
    fi
    mkdir -p "$DIR/logs" "$DIR/sockets"
    [ "$(id -u)" -eq 0 ] && chown -R "$OS_USER" "$DIR"
    local p
    for p in $(ports); do
        init_node "$p"
    done
    for p in $(ports); do
        if is_running "$p"; then
            if [ "$LIB" -nt "$(datadir "$p")/postmaster.pid" ]; then
                say "node $p runs an older build of tessera.so: restarting it"
                as_owner "$BINDIR/pg_ctl" restart -w -t 60 -m fast -D "$(datadir "$p")" -l "$DIR/logs/node-$p.log" >/dev/null ||
                    die "node on port $p did not restart: see $DIR/logs/node-$p.log"
            else
                say "node $p already running"
            fi
            continue
        fi
        if port_taken "$p"; then
            die "port $p is in use by another process; stop it or choose other ports with TESSERA_PORT"
        fi
        say "starting node on port $p"
        as_owner "$BINDIR/pg_ctl" start -w -t 60 -D "$(datadir "$p")" -l "$DIR/logs/node-$p.log" >/dev/null ||
            die "node on port $p did not start: see $DIR/logs/node-$p.log"
    done
    case ",$PRELOAD," in
    *,tessera,*) ;;
    *)
        say "plain PostgreSQL on $HOST:$PORT (tessera not preloaded)"
        return
        ;;
    esac
    for p in $(ports); do
        run_psql "$p" -c "SET client_min_messages = warning; CREATE EXTENSION IF NOT EXISTS tessera" >/dev/null
    done
    # Stamped only by the run that made the cluster, so the stamp names the script its
    # catalog was created from.
    if [ "$CREATED_COORDINATOR" = 1 ]; then
        sql_stamp >"$DIR/tessera-sql.sha256"
    fi
    run_psql "$PORT" -c "SELECT citus_set_coordinator_host('$HOST', $PORT)" >/dev/null
    for p in $(seq $((PORT + 1)) $((PORT + WORKERS))); do
        local known
        known=$(run_psql "$PORT" -tA -c "SELECT count(*) FROM pg_dist_node WHERE nodename = '$HOST' AND nodeport = $p")
        if [ "$known" = "0" ]; then
            run_psql "$PORT" -c "SELECT citus_add_node('$HOST', $p)" >/dev/null
            say "registered worker $HOST:$p"
        else
            run_psql "$PORT" -c "SELECT citus_activate_node('$HOST', $p)" >/dev/null
        fi
    done
    say "cluster up: coordinator $HOST:$PORT, $WORKERS workers (data in $DIR)"
}

stop() {
    local p
    for p in $(ports); do
        if [ -f "$(datadir "$p")/postmaster.pid" ] && is_running "$p"; then
            say "stopping node on port $p"
            as_owner "$BINDIR/pg_ctl" stop -w -m fast -D "$(datadir "$p")" >/dev/null || true
        fi
    done
}

status() {
    local p rc=0
    for p in $(ports); do
        if [ -d "$(datadir "$p")" ] && is_running "$p"; then
            echo "node $HOST:$p running"
        else
            echo "node $HOST:$p stopped"
            rc=3
        fi
    done
    if is_running "$PORT" 2>/dev/null; then
        run_psql "$PORT" -c "SELECT * FROM citus_nodes ORDER BY role, nodeport" || true
    fi
    return $rc
}

destroy() {
    stop
    say "deleting $DIR"
    rm -rf "$DIR"
}

cmd=${1:-status}
shift || true
case "$cmd" in
start) start ;;
stop) stop ;;
restart) stop && start ;;
status) status ;;
psql) run_psql "$PORT" "$@" ;;
destroy) destroy ;;
*) die "usage: $0 {start|stop|restart|status|psql|destroy}" ;;
esac
