//! pgvector across shards with real servers: exact nearest-neighbour search over a
//! distributed table (no index: every shard scans) gives the plain table's rows and distances
//! row for row, at the scenario's 1536 dimensions, through prepared statements; with an HNSW
//! index the shards use it; the session's `lock_timeout` and `hnsw.ef_search` reach the shard
//! queries, per session.

use std::time::{Duration, Instant};

use tessera_integration::*;

const DIMS: usize = 1536;

fn setup(c: &mut Client) {
    c.batch_execute(&format!(
        "DROP SCHEMA IF EXISTS vs CASCADE;
         CREATE EXTENSION IF NOT EXISTS vector;
         CREATE SCHEMA vs;
         SET search_path = vs, public;
         SELECT setseed(0.42);
         CREATE TABLE l_docs (tenant_id int NOT NULL, id int NOT NULL, embedding vector({DIMS}),
                              PRIMARY KEY (tenant_id, id));
         INSERT INTO l_docs
         SELECT i % 37, i, (SELECT array_agg(random() - 0.5 + (i % 5) * 0.01 + g * 0) FROM generate_series(1, {DIMS}) g)::vector
           FROM generate_series(1, 1200) i;
         CREATE TABLE d_docs AS SELECT * FROM l_docs;
         ALTER TABLE d_docs ADD PRIMARY KEY (tenant_id, id);
         SELECT create_distributed_table('d_docs', 'tenant_id', shard_count => 12);
         CREATE TABLE queries AS
         SELECT q, (SELECT array_agg(random() - 0.5 + q * 0 + g * 0) FROM generate_series(1, {DIMS}) g)::vector AS v
           FROM generate_series(1, 12) q;"
    ))
    .unwrap();
}

/// The rows (`id distance`) of the nearest-neighbour statement `stmt` for query vector `q`.
fn nearest(c: &mut Client, stmt: &postgres::Statement, q: &str, k: i64, off: i64) -> Vec<String> {
    c.query(stmt, &[&q, &k, &off])
        .unwrap()
        .iter()
        .map(|r| format!("{} {}", r.get::<_, i32>(0), r.get::<_, String>(1)))
        .collect()
}

#[test]
fn exact_search_matches_one_node_at_1536_dimensions() {
    let mut c = coordinator();
    setup(&mut c);
    let queries: Vec<String> = c
        .query("SELECT v::text FROM vs.queries ORDER BY q", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    // A generic plan, as an application's driver makes after a few executions.
    c.batch_execute("SET plan_cache_mode = force_generic_plan")
        .unwrap();
    let mut checked = 0;
    for op in ["<->", "<=>", "<#>", "<+>"] {
        let sql = |t: &str| {
            format!(
                "SELECT id, (embedding {op} $1::text::vector)::text FROM vs.{t}
                  ORDER BY embedding {op} $1::text::vector LIMIT $2 OFFSET $3"
            )
        };
        let dist = c.prepare(&sql("d_docs")).unwrap();
        let local = c.prepare(&sql("l_docs")).unwrap();
        for (i, q) in queries.iter().enumerate() {
            let (k, off) = if i % 3 == 0 { (10, 3) } else { (10, 0) };
            let want = nearest(&mut c, &local, q, k, off);
            let got = nearest(&mut c, &dist, q, k, off);
            assert_eq!(want.len(), 10);
            assert_eq!(
                got, want,
                "operator {op}, query {i}: distributed differs from one node"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 48);
    // A filter on the distribution column routes to one shard, with the same answer.
    let q = &queries[0];
    let sql = |t: &str| {
        format!(
            "SELECT id, (embedding <=> $1::text::vector)::text FROM vs.{t} WHERE tenant_id = 7
              ORDER BY embedding <=> $1::text::vector LIMIT $2 OFFSET $3"
        )
    };
    let dist = c.prepare(&sql("d_docs")).unwrap();
    let local = c.prepare(&sql("l_docs")).unwrap();
    assert_eq!(
        nearest(&mut c, &dist, q, 5, 0),
        nearest(&mut c, &local, q, 5, 0)
    );
}

#[test]
fn hnsw_index_is_used_on_every_shard_and_ef_search_follows_the_session() {
    let mut c = coordinator();
    c.batch_execute(
        "DROP SCHEMA IF EXISTS vs2 CASCADE;
         CREATE EXTENSION IF NOT EXISTS vector;
         CREATE SCHEMA vs2;
         CREATE TABLE vs2.items (tenant_id int NOT NULL, id int NOT NULL, embedding vector(1536));
         SELECT create_distributed_table('vs2.items', 'tenant_id', shard_count => 8);
         INSERT INTO vs2.items
         SELECT i % 64, i, (SELECT array_agg(sin(i * g)) FROM generate_series(1, 1536) g)::vector
           FROM generate_series(1, 400) i;
         CREATE INDEX ON vs2.items USING hnsw (embedding vector_cosine_ops);
         ANALYZE vs2.items;",
    )
    .unwrap();
    let q = "(SELECT embedding FROM vs2.items WHERE tenant_id = 1 AND id = 1)";
    c.batch_execute("SET citus.explain_all_tasks = on").unwrap();
    let plan: Vec<String> = c
        .query(
            &format!(
                "EXPLAIN (COSTS OFF) SELECT id FROM vs2.items ORDER BY embedding <=> {q} LIMIT 10"
            ),
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let index_scans = plan
        .iter()
        .filter(|l| l.contains("Index Scan using items_embedding_idx_"))
        .count();
    assert_eq!(
        index_scans,
        8,
        "every shard uses its HNSW index:\n{}",
        plan.join("\n")
    );

    // Two sessions, two ef_search values, at the same time: each shard's search returns at
    // most ef_search candidates, so ef_search = 1 gives one row per shard that has rows.
    let mut other = coordinator();
    c.batch_execute("SET hnsw.ef_search = 1").unwrap();
    let sql = format!("SELECT id FROM vs2.items ORDER BY embedding <=> {q} LIMIT 40");
    // 64 tenants over 8 shards: every shard holds rows (the hash is fixed, so this is too).
    let shards_with_rows: i64 = 8;
    assert_eq!(c.query(&sql, &[]).unwrap().len() as i64, shards_with_rows);
    assert_eq!(other.query(&sql, &[]).unwrap().len(), 40);
    c.batch_execute("RESET hnsw.ef_search").unwrap();
    assert_eq!(c.query(&sql, &[]).unwrap().len(), 40);
}

#[test]
fn lock_timeout_reaches_the_shard_queries() {
    let mut c = coordinator();
    c.batch_execute(
        "DROP TABLE IF EXISTS public.vs_locked;
         CREATE TABLE public.vs_locked (tenant_id int, v int);
         SELECT create_distributed_table('public.vs_locked', 'tenant_id', shard_count => 4);
         INSERT INTO public.vs_locked SELECT i, i FROM generate_series(1, 20) i;",
    )
    .unwrap();
    let row = c
        .query_one(
            "SELECT shard_name, nodeport FROM citus_shards WHERE table_name = 'public.vs_locked'::regclass
              ORDER BY shardid LIMIT 1",
            &[],
        )
        .unwrap();
    let (shard, port): (String, i32) = (row.get(0), row.get(1));
    // Another transaction on the worker holds the shard.
    let mut holder = connect(port as u16);
    holder
        .batch_execute(&format!(
            "BEGIN; LOCK TABLE {shard} IN ACCESS EXCLUSIVE MODE"
        ))
        .unwrap();
    c.batch_execute("SET lock_timeout = '300ms'").unwrap();
    let start = Instant::now();
    let err = c
        .query("SELECT count(*) FROM public.vs_locked", &[])
        .expect_err("the shard query waits for the lock no longer than lock_timeout");
    assert!(start.elapsed() < Duration::from_secs(20));
    assert_eq!(
        err.code().map(|s| s.code().to_string()).as_deref(),
        Some("55P03"),
        "{err}"
    );
    // RESET reaches the node too: with the lock still held, the statement now waits (past
    // the old lock_timeout) until the lock is released, then answers.
    c.batch_execute("RESET lock_timeout").unwrap();
    let waiter = std::thread::spawn(move || {
        let n: i64 = c
            .query_one("SELECT count(*) FROM public.vs_locked", &[])
            .unwrap()
            .get(0);
        (c, n)
    });
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        !waiter.is_finished(),
        "the statement waits for the lock without a timeout"
    );
    holder.batch_execute("ROLLBACK").unwrap();
    let (mut c, n) = waiter.join().unwrap();
    assert_eq!(n, 20);
    assert_eq!(
        c.query_one("SELECT count(*) FROM public.vs_locked", &[])
            .unwrap()
            .get::<_, i64>(0),
        20
    );
    c.batch_execute("DROP TABLE public.vs_locked").unwrap();
}

#[test]
fn index_builds_show_their_progress_and_concurrently_lets_writes_go_on() {
    let mut c = coordinator();
    c.batch_execute(
        "DROP TABLE IF EXISTS public.vs_build;
         CREATE EXTENSION IF NOT EXISTS vector;
         CREATE TABLE public.vs_build (tenant_id int NOT NULL, id int NOT NULL, embedding vector(64));
         SELECT create_distributed_table('public.vs_build', 'tenant_id', shard_count => 4);
         INSERT INTO public.vs_build
         SELECT i % 97, i, (SELECT array_agg(sin(i * g + g)) FROM generate_series(1, 64) g)::vector
           FROM generate_series(1, 60000) i;",
    )
    .unwrap();
    let build = std::thread::spawn(|| {
        let mut b = coordinator();
        b.batch_execute(
            "CREATE INDEX CONCURRENTLY vs_build_hnsw ON public.vs_build
               USING hnsw (embedding vector_l2_ops) WITH (m = 16, ef_construction = 200)",
        )
        .unwrap();
    });
    // While the shards' indexes are built, the view shows them, one per node at a time and
    // several nodes at once, and writes to the table go on (each INSERT done before the build
    // ends, within a lock_timeout far shorter than the build).
    c.batch_execute("SET lock_timeout = '2s'").unwrap();
    let mut seen: Vec<String> = Vec::new();
    let (mut most_per_node, mut most_nodes) = (0i64, 0i64);
    let mut wrote_during_build = 0;
    while !build.is_finished() {
        let rows = c
            .query(
                "SELECT node_port, shard, phase, error FROM tessera_index_build_progress
                  WHERE shard LIKE '%vs_build%' OR error IS NOT NULL",
                &[],
            )
            .unwrap();
        let mut ports = Vec::new();
        for r in &rows {
            let (port, shard, error): (i32, Option<String>, Option<String>) =
                (r.get(0), r.get(1), r.get(3));
            assert!(error.is_none(), "node {port} did not answer: {error:?}");
            let shard = shard.unwrap_or_default();
            if !seen.contains(&shard) {
                seen.push(shard);
            }
            ports.push(port);
        }
        ports.sort_unstable();
        let nodes = {
            let mut p = ports.clone();
            p.dedup();
            p.len() as i64
        };
        most_nodes = most_nodes.max(nodes);
        most_per_node = most_per_node.max(ports.len() as i64 - nodes + i64::from(nodes > 0));
        if wrote_during_build < 20 {
            c.execute(
                "INSERT INTO public.vs_build VALUES ($1, $1, array_fill(0.5::real, ARRAY[64])::vector)",
                &[&(100_000 + wrote_during_build)],
            )
            .unwrap();
            if !build.is_finished() {
                wrote_during_build += 1;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    build.join().unwrap();
    c.batch_execute("RESET lock_timeout").unwrap();
    assert!(
        seen.len() >= 2,
        "the progress view showed the shards' builds: {seen:?}"
    );
    assert!(most_nodes >= 2, "several nodes built at once");
    assert!(most_per_node <= 1, "at most one build per node at a time");
    assert!(wrote_during_build > 0, "writes went on during the build");
    let valid: i64 = c
        .query_one(
            "SELECT sum(result::int) FROM run_command_on_workers($$
               SELECT count(*) FROM pg_index WHERE indisvalid AND indexrelid::regclass::text LIKE 'vs_build_hnsw%'$$)",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(valid, 4);
    c.batch_execute("DROP TABLE public.vs_build").unwrap();
}

/// The most CREATE INDEX builds the progress view showed on one node at once while `sql` ran in
/// another session (with `tessera.max_index_builds_per_node = per_node`), and its outcome.
fn most_builds_per_node(per_node: i32, sql: &'static str) -> (i64, Result<(), postgres::Error>) {
    let build = std::thread::spawn(move || {
        let mut b = coordinator();
        b.batch_execute(&format!(
            "SET tessera.max_index_builds_per_node = {per_node}"
        ))
        .unwrap();
        b.batch_execute(sql)
    });
    let mut c = coordinator();
    let mut most = 0i64;
    while !build.is_finished() {
        let n: Option<i64> = c
            .query_one(
                "SELECT max(n) FROM (SELECT count(*) AS n FROM tessera_index_build_progress
                                      WHERE shard LIKE '%vs_lanes%' GROUP BY node_port) s",
                &[],
            )
            .unwrap()
            .get(0);
        most = most.max(n.unwrap_or(0));
        std::thread::sleep(Duration::from_millis(50));
    }
    (most, build.join().unwrap())
}

/// A plain CREATE INDEX (no CONCURRENTLY) that is its whole transaction builds up to
/// `tessera.max_index_builds_per_node` shards at a time on each node, each on a connection of
/// its own in the same distributed transaction (two-phase commit): all shards get the index,
/// or, when one shard's build fails, none does and nothing is left prepared. Inside a
/// transaction block it builds one at a time per node, and the transaction goes on.
#[test]
fn plain_create_index_builds_several_shards_per_node_at_once() {
    let mut c = coordinator();
    c.batch_execute(
        "SET client_min_messages = warning;
         DROP TABLE IF EXISTS public.vs_lanes;
         CREATE OR REPLACE FUNCTION public.vs_lanes_slow(i int) RETURNS int LANGUAGE plpgsql
           IMMUTABLE AS $$ BEGIN PERFORM pg_sleep(0.3); IF i = 7 THEN RAISE EXCEPTION 'bad row %', i; END IF; RETURN i; END $$;
         CREATE TABLE public.vs_lanes (id int PRIMARY KEY, v int);
         SELECT create_distributed_table('public.vs_lanes', 'id', shard_count => 8);
         INSERT INTO public.vs_lanes SELECT i, i * 10 FROM generate_series(1, 16) i;",
    )
    .unwrap();
    let shard_indexes = |c: &mut Client, name: &str| -> i64 {
        c.query_one(
            &format!(
                "SELECT sum(result::int) FROM run_command_on_workers($$
                   SELECT count(*) FROM pg_index WHERE indisvalid AND indexrelid::regclass::text LIKE '{name}%'$$)"
            ),
            &[],
        )
        .unwrap()
        .get(0)
    };
    let (most, r) = most_builds_per_node(
        2,
        "CREATE INDEX vs_lanes_two ON public.vs_lanes ((public.vs_lanes_slow(v)))",
    );
    r.unwrap();
    assert_eq!(most, 2, "two builds at once on a node");
    assert_eq!(shard_indexes(&mut c, "vs_lanes_two"), 8);
    let (most, r) = most_builds_per_node(
        1,
        "CREATE INDEX vs_lanes_one ON public.vs_lanes ((public.vs_lanes_slow(v)))",
    );
    r.unwrap();
    assert_eq!(most, 1, "one build at a time on a node");
    assert_eq!(shard_indexes(&mut c, "vs_lanes_one"), 8);
    // One shard's build fails (the row v = 7 is added to one shard): no shard keeps the index.
    c.batch_execute(
        "DROP INDEX public.vs_lanes_two, public.vs_lanes_one;
         INSERT INTO public.vs_lanes VALUES (100, 7)",
    )
    .unwrap();
    let (_, r) = most_builds_per_node(
        2,
        "CREATE INDEX vs_lanes_bad ON public.vs_lanes ((public.vs_lanes_slow(v)))",
    );
    let e = r.expect_err("the build fails on one shard");
    assert!(
        e.to_string().contains("bad row 7") || format!("{e:?}").contains("bad row 7"),
        "{e:?}"
    );
    assert_eq!(shard_indexes(&mut c, "vs_lanes_bad"), 0);
    let prepared: i64 = c
        .query_one(
            "SELECT sum(result::int) FROM run_command_on_workers('SELECT count(*) FROM pg_prepared_xacts')",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(prepared, 0, "nothing is left prepared");
    // In a transaction block: one connection per node, and the transaction goes on there. (A
    // table anew: CREATE INDEX also reads rows deleted in its own transaction.)
    c.batch_execute(
        "DROP TABLE public.vs_lanes;
         CREATE TABLE public.vs_lanes (id int PRIMARY KEY, v int);
         SELECT create_distributed_table('public.vs_lanes', 'id', shard_count => 8);
         INSERT INTO public.vs_lanes SELECT i, i * 10 FROM generate_series(1, 16) i;
         SET tessera.max_index_builds_per_node = 2;
         SET statement_timeout = '60s';
         BEGIN;
         CREATE INDEX vs_lanes_tx ON public.vs_lanes ((public.vs_lanes_slow(v)));
         INSERT INTO public.vs_lanes SELECT i, i FROM generate_series(200, 215) i;
         COMMIT;
         RESET tessera.max_index_builds_per_node;
         RESET statement_timeout;",
    )
    .unwrap();
    assert_eq!(shard_indexes(&mut c, "vs_lanes_tx"), 8);
    let n: i64 = c
        .query_one("SELECT count(*) FROM public.vs_lanes", &[])
        .unwrap()
        .get(0);
    assert_eq!(n, 32);
    // In an extended-protocol pipeline (several statements, one Sync: one transaction that
    // IsTransactionBlock() does not see), CREATE INDEX then INSERT, and INSERT then CREATE
    // INDEX: neither waits on the other's locks (pgbench's \startpipeline; a hang would end
    // with the statement_timeout's error).
    for (name, first, second) in [
        (
            "index_first",
            "CREATE INDEX vs_lanes_p1 ON public.vs_lanes ((public.vs_lanes_slow(v)));",
            "INSERT INTO public.vs_lanes VALUES (1001, 1001);",
        ),
        (
            "insert_first",
            "INSERT INTO public.vs_lanes VALUES (1002, 1002);",
            "CREATE INDEX vs_lanes_p2 ON public.vs_lanes ((public.vs_lanes_slow(v)));",
        ),
    ] {
        let file = std::env::temp_dir().join(format!("tessera_vs_lanes_{name}.sql"));
        std::fs::write(
            &file,
            format!("\\startpipeline\n{first}\n{second}\n\\endpipeline\n"),
        )
        .unwrap();
        let out = std::process::Command::new(pg_bin("pgbench"))
            .env_remove("RUST_BACKTRACE")
            .env(
                "PGOPTIONS",
                "-c tessera.max_index_builds_per_node=2 -c statement_timeout=30s",
            )
            .args([
                "-n",
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-M",
                "extended",
                "-t",
                "1",
            ])
            .args(["-p", &coordinator_port().to_string(), "-f"])
            .arg(&file)
            .arg("postgres")
            .output()
            .expect("pgbench runs");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success() && text.contains("actually processed: 1/1"),
            "{name}: {text}"
        );
    }
    assert_eq!(shard_indexes(&mut c, "vs_lanes_p1"), 8);
    assert_eq!(shard_indexes(&mut c, "vs_lanes_p2"), 8);
    c.batch_execute("DROP TABLE public.vs_lanes; DROP FUNCTION public.vs_lanes_slow(int);")
        .unwrap();
}

/// `tessera.ann_ef_search_scaling` asks each of 16 shards for fewer rows first
/// (`executor/fewer_rows.rs`): the answer is still the plain table's, row for row, where the
/// distribution column says where the vectors are (every tenant's vectors around its own
/// point, so one tenant's shard holds most of the nearest and is asked again) and where it
/// does not. IVFFlat with every list probed is an exact search, so the rows must match; the
/// application role runs it, through a generic plan with `LIMIT $2`.
#[test]
fn asking_shards_for_fewer_rows_keeps_the_nearest_rows() {
    let mut c = coordinator();
    c.batch_execute(
        "DROP SCHEMA IF EXISTS vs_few CASCADE;
         DROP ROLE IF EXISTS vs_few_app;
         CREATE ROLE vs_few_app LOGIN;
         CREATE EXTENSION IF NOT EXISTS vector;
         CREATE SCHEMA vs_few;
         GRANT USAGE ON SCHEMA vs_few TO vs_few_app;
         SELECT setseed(0.17);
         CREATE TABLE vs_few.l_items (tenant_id int NOT NULL, id int NOT NULL, embedding vector(8));
         INSERT INTO vs_few.l_items
         SELECT i % 32, i, (SELECT array_agg((i % 32) * 0.5 + random() + g * 0) FROM generate_series(1, 8) g)::vector
           FROM generate_series(1, 8000) i;
         CREATE TABLE vs_few.\"By Tenant\" AS SELECT * FROM vs_few.l_items;
         SELECT create_distributed_table('vs_few.\"By Tenant\"', 'tenant_id', shard_count => 16);
         CREATE TABLE vs_few.by_id AS SELECT * FROM vs_few.l_items;
         SELECT create_distributed_table('vs_few.by_id', 'id', shard_count => 16);
         CREATE INDEX ON vs_few.\"By Tenant\" USING ivfflat (embedding vector_l2_ops) WITH (lists = 4);
         CREATE INDEX ON vs_few.by_id USING ivfflat (embedding vector_l2_ops) WITH (lists = 4);
         GRANT SELECT ON vs_few.l_items, vs_few.\"By Tenant\", vs_few.by_id TO vs_few_app;",
    )
    .unwrap();
    let mut app = connect_as(coordinator_port(), "vs_few_app");
    app.batch_execute(
        "SET ivfflat.probes = 4;
         SET tessera.ann_ef_search_scaling = on;
         SET plan_cache_mode = force_generic_plan",
    )
    .unwrap();
    // Query points: at a tenant's own point (tenants 3 and 20), between two, and far away.
    let points: Vec<String> = [2.0, 10.5, 6.25, -3.0]
        .iter()
        .map(|x: &f64| format!("[{}]", vec![format!("{}", x + 0.5); 8].join(",")))
        .collect();
    let rows = |c: &mut Client, sql: &postgres::Statement, q: &str, k: i64| -> Vec<String> {
        c.query(sql, &[&q, &k])
            .unwrap()
            .iter()
            .map(|r| format!("{} {}", r.get::<_, i32>(0), r.get::<_, String>(1)))
            .collect()
    };
    let sql = |t: &str| {
        format!(
            "SELECT id, (embedding <-> $1::text::vector)::text FROM vs_few.{t}
              ORDER BY embedding <-> $1::text::vector LIMIT $2"
        )
    };
    let mut compared = 0;
    for table in ["\"By Tenant\"", "by_id"] {
        let dist = app.prepare(&sql(table)).unwrap();
        let local = app.prepare(&sql("l_items")).unwrap();
        for q in &points {
            for k in [200i64, 300, 100] {
                let want = rows(&mut app, &local, q, k);
                let got = rows(&mut app, &dist, q, k);
                assert_eq!(want.len(), k as usize);
                assert_eq!(got, want, "{table}, query {q}, LIMIT {k}");
                compared += 1;
            }
        }
    }
    assert_eq!(compared, 24);
    // A constant LIMIT with OFFSET: each shard is asked for fewer than the 250 rows first.
    let q = &points[0];
    let offset_sql = |t: &str| {
        format!("SELECT id FROM vs_few.{t} ORDER BY embedding <-> '{q}' LIMIT 200 OFFSET 50")
    };
    let ids = |c: &mut Client, sql: &str| -> Vec<i32> {
        c.query(sql, &[])
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect()
    };
    assert_eq!(
        ids(&mut app, &offset_sql("\"By Tenant\"")),
        ids(&mut app, &offset_sql("l_items"))
    );
    // EXPLAIN ANALYZE shows the first round's rows and how many shards were asked again: the
    // shard that holds tenant 3 at least, for a point at tenant 3's own; none where the rows
    // are spread by id.
    let explain = |c: &mut Client, t: &str| -> Vec<String> {
        c.query(
            &format!(
                "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF)
                 SELECT id FROM vs_few.{t} ORDER BY embedding <-> '{q}' LIMIT 200"
            ),
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
    };
    let again = |plan: &[String]| -> i64 {
        plan.iter()
            .find_map(|l| l.trim().strip_prefix("Shards Asked Again: "))
            .unwrap_or_else(|| panic!("no Shards Asked Again in\n{}", plan.join("\n")))
            .parse()
            .unwrap()
    };
    let by_tenant = explain(&mut app, "\"By Tenant\"");
    for line in ["Rows Per Shard: 30", "Rows Wanted: 200"] {
        assert!(
            by_tenant.iter().any(|l| l.trim() == line),
            "{line}:\n{}",
            by_tenant.join("\n")
        );
    }
    assert!(again(&by_tenant) >= 1, "{}", by_tenant.join("\n"));
    let by_id = explain(&mut app, "by_id");
    assert_eq!(again(&by_id), 0, "{}", by_id.join("\n"));
    // Plain EXPLAIN shows it too, and the shard query's ORDER BY costs no sort (the index
    // scan's order carries through).
    let plain: Vec<String> = app
        .query(
            &format!("EXPLAIN (COSTS OFF) SELECT id FROM vs_few.by_id ORDER BY embedding <-> '{q}' LIMIT 200"),
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let task = plain.iter().position(|l| l.contains("->  Task")).unwrap();
    assert!(plain.iter().any(|l| l.trim() == "Rows Per Shard: 30"));
    // Each shard's rows must come nearest first, whatever a node's own configuration says.
    assert!(
        plain
            .iter()
            .any(|l| l.contains("Task Settings:") && l.contains("ivfflat.iterative_scan=off")),
        "{}",
        plain.join("\n")
    );
    assert!(
        !plain[task..].iter().any(|l| l.contains("Sort")),
        "{}",
        plain.join("\n")
    );
    // In a transaction block (the remote transaction's connections), the same rows.
    app.batch_execute("BEGIN").unwrap();
    assert_eq!(
        ids(&mut app, &offset_sql("\"By Tenant\"")),
        ids(&mut app, &offset_sql("l_items"))
    );
    app.batch_execute("COMMIT").unwrap();
    // WITH TIES keeps every row tied with the last: each shard returns all the rows.
    let ties = explain_sql(
        &mut app,
        &format!("SELECT id FROM vs_few.by_id ORDER BY embedding <-> '{q}' FETCH FIRST 200 ROWS WITH TIES"),
    );
    assert!(!ties.iter().any(|l| l.contains("Rows Per Shard")));
    // Off, or under 128 rows: every shard is asked for all the rows.
    let few = explain_sql(
        &mut app,
        &format!("SELECT id FROM vs_few.by_id ORDER BY embedding <-> '{q}' LIMIT 127"),
    );
    assert!(!few.iter().any(|l| l.contains("Rows Per Shard")));
    app.batch_execute("SET tessera.ann_ef_search_scaling = off")
        .unwrap();
    assert!(!explain(&mut app, "by_id")
        .iter()
        .any(|l| l.contains("Rows Per Shard")));

    // HNSW: a shard whose nearest rows were deleted (not vacuumed yet) returns fewer rows
    // than it was asked for, with more behind its dead candidates: it is asked again. Without
    // that, most of tenant 3's rows would be missing from the answer.
    c.batch_execute(&format!(
        "DROP INDEX vs_few.\"By Tenant_embedding_idx\";
         CREATE INDEX ON vs_few.\"By Tenant\" USING hnsw (embedding vector_l2_ops);
         DELETE FROM vs_few.\"By Tenant\" WHERE id IN
           (SELECT id FROM vs_few.l_items ORDER BY embedding <-> '{q}' LIMIT 20);
         DELETE FROM vs_few.l_items WHERE id IN
           (SELECT id FROM vs_few.l_items ORDER BY embedding <-> '{q}' LIMIT 20);"
    ))
    .unwrap();
    app.batch_execute("RESET ivfflat.probes; SET tessera.ann_ef_search_scaling = on")
        .unwrap();
    let got = ids(
        &mut app,
        &format!("SELECT id FROM vs_few.\"By Tenant\" ORDER BY embedding <-> '{q}' LIMIT 150"),
    );
    let want = ids(
        &mut app,
        &format!("SELECT id FROM vs_few.l_items ORDER BY embedding <-> '{q}' LIMIT 150"),
    );
    let found = got.iter().filter(|id| want.contains(id)).count();
    assert!(found >= 120, "{found} of the 150 nearest");
    let hnsw = explain_sql(
        &mut app,
        &format!("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT id FROM vs_few.\"By Tenant\" ORDER BY embedding <-> '{q}' LIMIT 150"),
    );
    assert!(again(&hnsw) >= 1, "{}", hnsw.join("\n"));
    c.batch_execute("DROP SCHEMA vs_few CASCADE; DROP ROLE vs_few_app")
        .unwrap();
}

/// The lines of `EXPLAIN (COSTS OFF) sql`, or of `sql` when it is an EXPLAIN itself.
fn explain_sql(c: &mut Client, sql: &str) -> Vec<String> {
    let sql = if sql.starts_with("EXPLAIN") {
        sql.to_string()
    } else {
        format!("EXPLAIN (COSTS OFF) {sql}")
    };
    c.query(&sql, &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}
