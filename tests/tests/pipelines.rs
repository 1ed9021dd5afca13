//! Several commands for one node in one round trip (libpq pipeline mode), where a node refuses
//! one of them: a statement it cannot prepare fails the statement with the node's own error,
//! the commands after it in the pipeline fail with it, and the connection (kept by the
//! transaction after ROLLBACK TO SAVEPOINT) prepares the statement again next time instead of
//! naming a statement the node never made.

use tessera_integration::*;

/// A multi-row INSERT with a row for every value 1..=n: one shard statement per shard.
fn insert_all(n: i32) -> String {
    let rows: Vec<String> = (1..=n).map(|i| format!("(${i}, 'p')")).collect();
    format!("INSERT INTO it_pipe VALUES {}", rows.join(", "))
}

#[test]
fn a_statement_a_node_cannot_prepare_fails_with_its_error_and_is_prepared_again() {
    let mut admin = coordinator();
    admin
        .batch_execute(
            "SET client_min_messages = warning;
             DROP TABLE IF EXISTS it_pipe;
             CREATE TABLE it_pipe (id int PRIMARY KEY, v text);
             SELECT create_distributed_table('it_pipe', 'id', shard_count => 16);",
        )
        .unwrap();
    let row = admin
        .query_one(
            "SELECT shard_name::text, nodeport FROM citus_shards
              WHERE shardid = get_shard_id_for_distribution_column('it_pipe', 7)",
            &[],
        )
        .unwrap();
    let shard: String = row.get(0);
    let port = row.get::<_, i32>(1) as u16;
    let mut worker = connect(port);
    let rename = |w: &mut Client, from: &str, to: &str| {
        w.batch_execute(&format!("ALTER TABLE public.{from} RENAME TO {to}"))
            .unwrap()
    };
    let hidden = format!("{shard}_away");

    let values: Vec<i32> = (1..=40).collect();
    let params: Vec<&(dyn postgres::types::ToSql + Sync)> = values
        .iter()
        .map(|v| v as &(dyn postgres::types::ToSql + Sync))
        .collect();
    let mut c = coordinator();
    c.batch_execute("SET plan_cache_mode = force_generic_plan")
        .unwrap();
    let insert = c.prepare(&insert_all(40)).unwrap();

    // The node cannot prepare the shard statement: the statement fails with its error.
    rename(&mut worker, &shard, &hidden);
    c.batch_execute("BEGIN; SAVEPOINT s").unwrap();
    let err = c.execute(&insert, &params).expect_err("the shard is gone");
    let db = err.as_db_error().expect("an error from the server");
    assert_eq!(db.code().code(), "42P01", "{db:?}");
    assert!(db.message().contains(&shard), "{db:?}");
    c.batch_execute("ROLLBACK TO SAVEPOINT s").unwrap();

    // The shard is back: the same connection prepares the statement again and the rows go in.
    rename(&mut worker, &hidden, &shard);
    c.execute(&insert, &params).unwrap();
    c.batch_execute("COMMIT").unwrap();
    let n: i64 = admin
        .query_one("SELECT count(*) FROM it_pipe", &[])
        .unwrap()
        .get(0);
    assert_eq!(n, 40);

    // Outside a transaction block too, and the next statement of the session works.
    c.execute("DELETE FROM it_pipe", &[]).unwrap();
    rename(&mut worker, &shard, &hidden);
    let err = c.execute(&insert, &params).expect_err("the shard is gone");
    assert_eq!(err.as_db_error().unwrap().code().code(), "42P01");
    rename(&mut worker, &hidden, &shard);
    c.execute("DELETE FROM it_pipe", &[]).unwrap();
    c.execute(&insert, &params).unwrap();
    let n: i64 = c
        .query_one("SELECT count(*) FROM it_pipe", &[])
        .unwrap()
        .get(0);
    assert_eq!(n, 40);
    admin.batch_execute("DROP TABLE it_pipe").unwrap();
}
