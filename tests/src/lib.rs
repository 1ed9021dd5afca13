//! Helpers for integration tests against a live Tessera cluster started by
//! `scripts/cluster.sh` (`make test` starts one on ports 9800..9804).
//!
//! Settings come from the same environment as the launcher: `TESSERA_PORT` (coordinator),
//! `TESSERA_WORKERS`, `TESSERA_CLUSTER_DIR`, `PG_CONFIG`, `TESSERA_OS_USER`.

use std::process::Command;
use std::time::{Duration, Instant};

pub use postgres::{Client, NoTls};

pub fn coordinator_port() -> u16 {
    std::env::var("TESSERA_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(9800)
}

pub fn worker_ports() -> Vec<u16> {
    let n: u16 = std::env::var("TESSERA_WORKERS")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(4);
    (1..=n).map(|i| coordinator_port() + i).collect()
}

fn cluster_dir() -> String {
    std::env::var("TESSERA_CLUSTER_DIR")
        .unwrap_or_else(|_| format!("/var/tmp/tessera/cluster-{}", coordinator_port()))
}

/// A connection to the node on `port`, as the superuser `postgres`.
pub fn connect(port: u16) -> Client {
    connect_as(port, "postgres")
}

/// A connection to the node on `port` as `user` (the test cluster trusts every local login).
pub fn connect_as(port: u16, user: &str) -> Client {
    Client::connect(
        &format!("host=127.0.0.1 port={port} user={user} dbname=postgres connect_timeout=10"),
        NoTls,
    )
    .unwrap_or_else(|e| panic!("cannot connect to node on port {port} as {user}: {e}"))
}

pub fn coordinator() -> Client {
    connect(coordinator_port())
}

/// Polls `f` every 50 ms until it returns true or `limit` passes; returns whether it did.
pub fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    f()
}

/// How many backends on the node at `port` are running a query that contains `needle`
/// (not counting the session that asks).
pub fn active_queries_like(port: u16, needle: &str) -> i64 {
    let mut c = connect(port);
    c.query_one(
        "SELECT count(*) FROM pg_stat_activity
          WHERE state = 'active' AND pid <> pg_backend_pid() AND strpos(query, $1) > 0",
        &[&needle],
    )
    .unwrap()
    .get(0)
}

/// The path of the PostgreSQL program `name` (pg_ctl, pgbench) of `PG_CONFIG`'s installation.
pub fn pg_bin(name: &str) -> String {
    let pg_config = std::env::var("PG_CONFIG")
        .unwrap_or_else(|_| "/usr/lib/postgresql/15/bin/pg_config".into());
    let bindir = String::from_utf8(
        Command::new(&pg_config)
            .arg("--bindir")
            .output()
            .expect("pg_config runs")
            .stdout,
    )
    .unwrap();
    format!("{}/{name}", bindir.trim())
}

fn pg_ctl(args: &[&str]) -> std::process::Output {
    let pg_ctl = pg_bin("pg_ctl");
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    let mut cmd = if is_root {
        let user = std::env::var("TESSERA_OS_USER").unwrap_or_else(|_| "postgres".into());
        let mut c = Command::new("runuser");
        c.args(["-u", &user, "--", "env", "-u", "RUST_BACKTRACE", &pg_ctl]);
        c
    } else {
        let mut c = Command::new(&pg_ctl);
        c.env_remove("RUST_BACKTRACE");
        c
    };
    cmd.args(args).output().expect("pg_ctl runs")
}

/// A node stopped for a test; started again when dropped, whatever the test's outcome.
pub struct StoppedNode {
    port: u16,
}

impl StoppedNode {
    pub fn stop(port: u16) -> StoppedNode {
        let dir = format!("{}/node-{port}", cluster_dir());
        let out = pg_ctl(&["stop", "-w", "-m", "fast", "-D", &dir]);
        assert!(out.status.success(), "pg_ctl stop failed: {out:?}");
        StoppedNode { port }
    }
}

impl Drop for StoppedNode {
    fn drop(&mut self) {
        let dir = format!("{}/node-{}", cluster_dir(), self.port);
        let log = format!("{}/logs/node-{}.log", cluster_dir(), self.port);
        let out = pg_ctl(&["start", "-w", "-t", "60", "-D", &dir, "-l", &log]);
        assert!(out.status.success(), "pg_ctl start failed: {out:?}");
    }
}

/// A node's postmaster stopped with SIGSTOP for a test (its running backends go on; new
/// connections, cancel requests included, are accepted by the kernel and then wait), resumed
/// with SIGCONT when dropped, whatever the test's outcome.
pub struct FrozenPostmaster {
    pid: String,
}

impl FrozenPostmaster {
    pub fn freeze(port: u16) -> FrozenPostmaster {
        let pidfile = format!("{}/node-{port}/postmaster.pid", cluster_dir());
        let text = std::fs::read_to_string(&pidfile).expect("postmaster.pid is readable");
        let pid = text.lines().next().expect("a pid").trim().to_string();
        let ok = Command::new("kill").args(["-STOP", &pid]).status();
        assert!(ok.is_ok_and(|s| s.success()), "kill -STOP {pid}");
        FrozenPostmaster { pid }
    }
}

impl Drop for FrozenPostmaster {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-CONT", &self.pid]).status();
    }
}

/// Every process of a node stopped with SIGSTOP for a test (the postmaster first, so that it
/// starts no new ones, then its children; resumed children first): its open connections stay open and nothing answers
/// on them, as behind a network partition. Resumed with SIGCONT when dropped, whatever the
/// test's outcome.
pub struct FrozenNode {
    pids: Vec<String>,
}

impl FrozenNode {
    pub fn freeze(port: u16) -> FrozenNode {
        let postmaster = postmaster_pid(port);
        // The guard first: whatever fails below, dropping it resumes what was stopped.
        let mut frozen = FrozenNode {
            pids: vec![postmaster.clone()],
        };
        let ok = Command::new("kill").args(["-STOP", &postmaster]).status();
        assert!(ok.is_ok_and(|s| s.success()), "kill -STOP {postmaster}");
        let children = Command::new("pgrep")
            .args(["-P", &postmaster])
            .output()
            .expect("pgrep runs");
        for pid in String::from_utf8_lossy(&children.stdout).split_whitespace() {
            frozen.pids.insert(0, pid.to_string());
            let _ = Command::new("kill").args(["-STOP", pid]).status();
        }
        frozen
    }
}

impl Drop for FrozenNode {
    fn drop(&mut self) {
        for pid in &self.pids {
            let _ = Command::new("kill").args(["-CONT", pid]).status();
        }
    }
}

/// The postmaster pid of the node on `port`.
pub fn postmaster_pid(port: u16) -> String {
    let pidfile = format!("{}/node-{port}/postmaster.pid", cluster_dir());
    let text = std::fs::read_to_string(&pidfile).expect("postmaster.pid is readable");
    text.lines().next().expect("a pid").trim().to_string()
}

/// A node killed for a test as a machine that loses power would be: SIGKILL to its postmaster
/// and every process of it, at once. Started again (crash recovery) when dropped, or by
/// [`KilledNode::restart`].
pub struct KilledNode {
    port: u16,
    started: bool,
}

impl KilledNode {
    pub fn kill(port: u16) -> KilledNode {
        let pid = postmaster_pid(port);
        // The children first, while the postmaster cannot start new ones (stopped), then it.
        let _ = Command::new("kill").args(["-STOP", &pid]).status();
        let _ = Command::new("pkill").args(["-9", "-P", &pid]).status();
        let ok = Command::new("kill").args(["-9", &pid]).status();
        assert!(ok.is_ok_and(|s| s.success()), "kill -9 {pid}");
        let gone = eventually(Duration::from_secs(10), || {
            !std::path::Path::new(&format!("/proc/{pid}")).exists()
        });
        assert!(gone, "node {port} did not die");
        KilledNode {
            port,
            started: false,
        }
    }

    /// Starts the node again (crash recovery) and waits until it accepts connections.
    pub fn restart(&mut self) {
        if self.started {
            return;
        }
        self.started = true;
        let dir = format!("{}/node-{}", cluster_dir(), self.port);
        let log = format!("{}/logs/node-{}.log", cluster_dir(), self.port);
        let out = pg_ctl(&["start", "-w", "-t", "60", "-D", &dir, "-l", &log]);
        assert!(out.status.success(), "pg_ctl start failed: {out:?}");
    }
}

impl Drop for KilledNode {
    fn drop(&mut self) {
        self.restart();
    }
}

/// Waits until the node on `port` accepts connections again (after a crash restart), up to
/// a minute; returns a connection.
pub fn reconnect(port: u16) -> Client {
    let start = Instant::now();
    loop {
        let attempt = Client::connect(
            &format!("host=127.0.0.1 port={port} user=postgres dbname=postgres connect_timeout=5"),
            NoTls,
        )
        .and_then(|mut c| c.simple_query("SELECT 1").map(|_| c));
        match attempt {
            Ok(c) => return c,
            Err(_) if start.elapsed() < Duration::from_secs(60) => {
                std::thread::sleep(Duration::from_millis(200))
            }
            Err(e) => panic!("node on port {port} did not come back: {e}"),
        }
    }
}

/// How many times the node on `port` has become ready to accept connections since its log
/// began: one more after each crash restart.
pub fn times_ready(port: u16) -> usize {
    node_log(port)
        .matches("database system is ready to accept connections")
        .count()
}

/// The server log of the node on `port` (empty if it cannot be read).
pub fn node_log(port: u16) -> String {
    std::fs::read_to_string(format!("{}/logs/node-{port}.log", cluster_dir())).unwrap_or_default()
}

/// Kills backend `pid` of the node on `port` with SIGKILL and waits until the server has
/// restarted as after a crash (every backend gone, shared memory made anew); returns a new
/// connection.
pub fn crash_backend(port: u16, pid: i32) -> Client {
    let before = times_ready(port);
    let killed = Command::new("kill").args(["-9", &pid.to_string()]).status();
    assert!(killed.is_ok_and(|s| s.success()), "kill -9 {pid}");
    assert!(
        eventually(Duration::from_secs(60), || times_ready(port) > before),
        "node {port} did not restart after the crash"
    );
    reconnect(port)
}

/// The node that holds distribution value `id` of the distributed table `table`.
pub fn port_of(c: &mut Client, table: &str, id: i32) -> u16 {
    let port: i32 = c
        .query_one(
            &format!(
                "SELECT nodeport FROM citus_shards
                  WHERE shardid = get_shard_id_for_distribution_column('{table}', {id})"
            ),
            &[],
        )
        .unwrap()
        .get(0);
    port as u16
}

/// Two values of `table`'s distribution column (1 and another below 100) whose shards are on
/// different workers, with those workers' ports.
pub fn ids_on_two_nodes(c: &mut Client, table: &str) -> (i32, i32, u16, u16) {
    let first = port_of(c, table, 1);
    let (other, port) = (2..100)
        .map(|i| (i, port_of(c, table, i)))
        .find(|&(_, p)| p != first)
        .expect("values on two nodes");
    (1, other, first, port)
}
