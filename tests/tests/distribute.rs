//! Distributing a table is all-or-nothing across nodes: a worker that is down when shards are
//! created fails the call with a clear error, and no shard is left behind on the workers that
//! were reached (their remote transactions roll back with the local one).

use std::time::{Duration, Instant};

use tessera_integration::*;

fn shard_tables_on(port: u16, prefix: &str) -> i64 {
    connect(port)
        .query_one(
            "SELECT count(*) FROM pg_class WHERE relname LIKE $1 || '\\_%'",
            &[&prefix],
        )
        .unwrap()
        .get(0)
}

#[test]
fn a_worker_down_half_way_leaves_nothing_behind() {
    let ports = worker_ports();
    let down = *ports.last().unwrap();
    let mut c = coordinator();
    c.batch_execute(
        "DROP TABLE IF EXISTS half_way; CREATE TABLE half_way (id bigint, v text);
         INSERT INTO half_way SELECT i, 'v' || i FROM generate_series(1, 5000) i;",
    )
    .unwrap();
    {
        let _node = StoppedNode::stop(down);
        let start = Instant::now();
        let err = c
            .query("SELECT create_distributed_table('half_way', 'id')", &[])
            .expect_err("a node is down");
        assert!(start.elapsed() < Duration::from_secs(30));
        assert_eq!(
            err.code(),
            Some(&postgres::error::SqlState::SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION),
            "{err}"
        );
        let db = err.as_db_error().unwrap();
        assert!(
            db.message().contains(&format!("127.0.0.1:{down}")),
            "the error names the node: {}",
            db.message()
        );
        for p in &ports[..ports.len() - 1] {
            assert_eq!(shard_tables_on(*p, "half_way"), 0, "no shard left on {p}");
        }
    }
    // Nothing changed on the coordinator: the rows are still local, no catalog rows.
    let local: i64 = c
        .query_one("SELECT count(*) FROM ONLY half_way", &[])
        .unwrap()
        .get(0);
    assert_eq!(local, 5000);
    let parts: i64 = c
        .query_one(
            "SELECT count(*) FROM pg_dist_partition WHERE logicalrelid = 'half_way'::regclass",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(parts, 0);
    // With the node back, the same call succeeds and every row reaches a shard.
    c.execute("SELECT create_distributed_table('half_way', 'id')", &[])
        .unwrap();
    let total: i64 = ports
        .iter()
        .map(|p| {
            let mut w = connect(*p);
            let shards: Vec<String> = w
                .query(
                    "SELECT oid::regclass::text FROM pg_class WHERE relname ~ '^half_way_[0-9]+$'",
                    &[],
                )
                .unwrap()
                .iter()
                .map(|r| r.get(0))
                .collect();
            shards
                .iter()
                .map(|s| {
                    w.query_one(&format!("SELECT count(*) FROM {s}"), &[])
                        .unwrap()
                        .get::<_, i64>(0)
                })
                .sum::<i64>()
        })
        .sum();
    assert_eq!(total, 5000);
    c.batch_execute("DROP TABLE half_way").unwrap();
    for p in &ports {
        assert_eq!(
            shard_tables_on(*p, "half_way"),
            0,
            "DROP removed the shards on {p}"
        );
    }
}
