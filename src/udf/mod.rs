//! The SQL functions of Tessera.
//!
//! - `distribute`: `create_distributed_table`, `create_reference_table`.
//! - `shards`: shard lookups (`get_shard_id_for_distribution_column`, `shard_name`,
//!   `column_to_column_name`) and sizes.
//! - `node`: node management (`citus_add_node`, `citus_remove_node`, ...).
//! - `run_command`: `run_command_on_workers` / `run_command_on_all_nodes`.
//! - `undistribute`: `undistribute_table`.
//! - `schemas`: schema-based sharding (`citus_schema_distribute`, `_undistribute`, `_move`).
//! - `functions`: `create_distributed_function`.
//! - `partitions`: partitions of distributed tables and the time-partition helpers.

pub mod distribute;
pub mod functions;
pub mod node;
pub mod partitions;
pub mod run_command;
pub mod schemas;
pub mod shards;
pub mod undistribute;

use pgrx::prelude::*;

use crate::error::TesseraError;

/// The version of the library loaded in this server.
#[pg_extern(sql = false)]
fn tessera_version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

/// A `TesseraError` for an unknown `host:port`.
pub(crate) fn unknown_node(name: &str, port: i32) -> TesseraError {
    TesseraError::new(
        PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
        format!("node at \"{name}:{port}\" does not exist"),
    )
    .hint("SELECT * FROM citus_nodes lists the registered nodes.")
}
