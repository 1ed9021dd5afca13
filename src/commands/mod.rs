//! The SQL functions of Tessera and the ProcessUtility hook.
//!
//! - `distribute`: `create_distributed_table`, `create_reference_table`, shard lookups, DROP.
//! - `node`: node management (`citus_add_node`, `citus_remove_node`, ...).
//! - `run_command`: `run_command_on_workers` / `run_command_on_all_nodes`.
//! - `utility`: the ProcessUtility hook (DDL propagation hangs here).

pub mod distribute;
pub mod node;
pub mod run_command;
pub mod utility;

use pgrx::prelude::*;

use crate::connection::{run_tasks, ConnKey, NodeAddress, PgResult, RemoteTask};
use crate::error::{TResult, TesseraError};

/// Runs one command on one node (with text parameters) and waits for it, interruptibly.
pub(crate) fn run_on_node(
    node: &NodeAddress,
    sql: &str,
    params: Vec<Option<String>>,
) -> TResult<Vec<PgResult>> {
    let task = RemoteTask::new(ConnKey::for_current_session(node), sql).with_params(params);
    let mut out = run_tasks(std::slice::from_ref(&task), 1)?;
    out.pop()
        .expect("one task, one outcome")
        .map_err(|e| e.into_tessera())
}

/// The single value of a one-row, one-column result, if any.
pub(crate) fn single_value(results: &[PgResult]) -> Option<String> {
    let r = results.last()?;
    if r.ntuples() == 1 && r.nfields() >= 1 {
        r.value(0, 0).map(str::to_owned)
    } else {
        None
    }
}

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
