//! Single-server tests (`cargo pgrx test`): the catalog, settings and node functions on one
//! PostgreSQL, which can act as its own coordinator. Multi-node behaviour is tested by
//! pg_test/ (pg_regress) and tests/ (Rust integration tests) against a live cluster.

#[pgrx::pg_schema]
mod tests {
    use pgrx::prelude::*;

    fn count(sql: &str) -> i64 {
        Spi::get_one::<i64>(sql).unwrap().unwrap()
    }

    fn text(sql: &str) -> String {
        Spi::get_one::<String>(sql).unwrap().unwrap()
    }

    /// Registers this server as its own coordinator, at the address it listens on.
    fn register_self() {
        Spi::run("SELECT citus_set_coordinator_host('127.0.0.1', current_setting('port')::int)")
            .unwrap();
    }

    #[pg_test]
    fn catalog_starts_empty() {
        for table in [
            "pg_dist_node",
            "pg_dist_partition",
            "pg_dist_shard",
            "pg_dist_placement",
            "pg_dist_colocation",
        ] {
            assert_eq!(
                count(&format!("SELECT count(*) FROM pg_catalog.{table}")),
                0
            );
        }
        assert_eq!(text("SELECT tessera_version()"), env!("CARGO_PKG_VERSION"));
    }

    #[pg_test]
    fn settings_are_registered_with_defaults() {
        assert_eq!(text("SHOW citus.node_connection_timeout"), "30s");
        assert_eq!(text("SHOW citus.max_cached_conns_per_worker"), "1");
        assert_eq!(text("SHOW citus.node_conninfo"), "sslmode=prefer");
    }

    /// citus.node_conninfo is read by libpq's own parser: quoting, URIs, unknown keywords.
    #[pg_test]
    fn conninfo_is_read_by_libpq() {
        use crate::connection::libpq::parse_conninfo;
        use tessera_core::conninfo::quote_value;
        for v in ["", "plain", "with space", "it's", "back\\slash", "ünïcode"] {
            let s = format!("application_name={}", quote_value(v));
            assert_eq!(
                parse_conninfo(&s).unwrap(),
                vec![("application_name".to_string(), v.to_string())],
                "{s}"
            );
        }
        assert_eq!(
            parse_conninfo("sslmode=require  connect_timeout = '7'").unwrap(),
            vec![
                ("connect_timeout".to_string(), "7".to_string()),
                ("sslmode".to_string(), "require".to_string()),
            ]
        );
        assert_eq!(
            parse_conninfo("postgresql://?sslmode=disable").unwrap(),
            vec![("sslmode".to_string(), "disable".to_string())]
        );
        let e = parse_conninfo("sslmode=require no_such_option=1").unwrap_err();
        assert!(e.contains("no_such_option"), "{e}");
        assert!(parse_conninfo("sslmode").is_err());
        assert!(parse_conninfo("a='unterminated").is_err());
    }

    #[pg_test(error = "invalid configuration parameter name \"citus.no_such_setting\"")]
    fn citus_prefix_is_reserved() {
        Spi::run("SET citus.no_such_setting = 1").unwrap();
    }

    #[pg_test]
    fn coordinator_host_is_group_zero_and_updates_in_place() {
        Spi::run("SELECT citus_set_coordinator_host('10.0.0.9', 6000)").unwrap();
        register_self();
        assert_eq!(count("SELECT count(*) FROM pg_dist_node"), 1);
        assert_eq!(
            text(
                "SELECT format('%s %s %s', groupid, nodename, shouldhaveshards) FROM pg_dist_node"
            ),
            "0 127.0.0.1 f"
        );
        assert_eq!(
            text("SELECT role FROM citus_nodes"),
            "coordinator",
            "citus_nodes shows the coordinator's role"
        );
    }

    #[pg_test]
    fn run_command_on_workers_without_workers_returns_no_rows() {
        register_self();
        assert_eq!(
            count("SELECT count(*) FROM run_command_on_workers('select 1')"),
            0
        );
        assert_eq!(
            count("SELECT count(*) FROM citus_get_active_worker_nodes()"),
            0
        );
    }

    #[pg_test]
    fn run_command_on_all_nodes_reaches_the_coordinator_over_libpq() {
        register_self();
        assert_eq!(
            text("SELECT format('%s|%s', success, result) FROM run_command_on_all_nodes('select 6 * 7')"),
            "t|42"
        );
        // A failing command is a row with success = false, not an error.
        assert_eq!(
            text("SELECT format('%s|%s', success, result) FROM run_command_on_all_nodes('select 1/0')"),
            "f|division by zero"
        );
        // Parameters of the shape checks: more than one row or column.
        assert_eq!(
            text("SELECT result FROM run_command_on_all_nodes('select generate_series(1,2)')"),
            "expected a single row in query result"
        );
        assert_eq!(
            text("SELECT result FROM run_command_on_all_nodes('select 1, 2', parallel => false)"),
            "expected a single column in query target"
        );
    }

    #[pg_test(error = "port 0 is out of range: a port is between 1 and 65535")]
    fn add_node_checks_the_port() {
        Spi::run("SELECT citus_add_node('127.0.0.1', 0)").unwrap();
    }

    #[pg_test(
        error = "group 0 is the coordinator's: use citus_set_coordinator_host to register the coordinator"
    )]
    fn add_node_refuses_group_zero() {
        Spi::run("SELECT citus_add_node('127.0.0.1', 1, groupid => 0)").unwrap();
    }

    #[pg_test(error = "node at \"127.0.0.1:1\" does not exist")]
    fn remove_unknown_node_is_an_error() {
        Spi::run("SELECT citus_remove_node('127.0.0.1', 1)").unwrap();
    }

    #[pg_test(error = "unsupported node property \"isactive\"")]
    fn only_shouldhaveshards_can_be_set() {
        register_self();
        Spi::run("SELECT citus_set_node_property('127.0.0.1', 1, 'isactive', false)").unwrap();
    }

    #[pg_test(error = "cannot disable the coordinator")]
    fn coordinator_cannot_be_disabled() {
        register_self();
        Spi::run("SELECT citus_disable_node('127.0.0.1', current_setting('port')::int)").unwrap();
    }

    /// Runs `sql` and checks it fails with `sqlstate` and a message containing `needle`.
    fn expect_error(sql: &str, sqlstate: &str, needle: &str) {
        let block = format!(
            "DO $tessera_test$ BEGIN {sql}; RAISE EXCEPTION 'no error from: %', $q${sql}$q$; \
             EXCEPTION WHEN OTHERS THEN \
               IF SQLSTATE <> '{sqlstate}' OR strpos(SQLERRM, $q${needle}$q$) = 0 THEN \
                 RAISE EXCEPTION 'expected % \"%\", got % \"%\"', '{sqlstate}', $q${needle}$q$, SQLSTATE, SQLERRM; \
               END IF; \
             END $tessera_test$"
        );
        Spi::run(&block).unwrap();
    }

    #[pg_test]
    fn bad_input_gets_the_right_sqlstate() {
        register_self();
        // This server is not a worker of itself, whatever name reaches it.
        expect_error(
            "PERFORM citus_add_node('localhost', current_setting('port')::int)",
            "22023",
            "is this server itself, not a worker",
        );
        // Nothing listens on port 1: a connection error, the catalog unchanged.
        expect_error(
            "PERFORM citus_add_node('127.0.0.1', 1)",
            "08001",
            "could not connect to node 127.0.0.1:1",
        );
        assert_eq!(count("SELECT count(*) FROM pg_dist_node"), 1);
        expect_error(
            "PERFORM citus_add_node('127.0.0.1', current_setting('port')::int)",
            "42710",
            "already in the cluster",
        );
        expect_error(
            "PERFORM citus_add_node('', 5432)",
            "22023",
            "node name is empty",
        );
        expect_error(
            "PERFORM citus_add_node('a b', 5432)",
            "22023",
            "white space",
        );
        expect_error(
            "PERFORM citus_activate_node('127.0.0.1', 2)",
            "42704",
            "does not exist",
        );
        expect_error(
            "PERFORM citus_disable_node('127.0.0.1', 2)",
            "42704",
            "does not exist",
        );
        expect_error(
            "PERFORM citus_set_node_property('127.0.0.1', 2, 'shouldhaveshards', true)",
            "42704",
            "does not exist",
        );
        expect_error(
            "PERFORM citus_set_coordinator_host('127.0.0.1', 70000)",
            "22023",
            "out of range",
        );
    }
}
