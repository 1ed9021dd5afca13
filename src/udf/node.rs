//! Node management: `citus_set_coordinator_host`, `citus_add_node`, `citus_remove_node`,
//! `citus_disable_node`, `citus_activate_node`, `citus_set_node_property`.
//!
//! Each function takes a lock on `pg_dist_node` so concurrent changes serialise, checks its
//! input before changing anything, and changes the catalog inside the caller's transaction:
//! an error leaves the node list as it was. Adding or activating a node first connects to it
//! (bounded by `citus.node_connection_timeout`), creates the extension there if missing and
//! checks that it runs the same Tessera version.

use pgrx::prelude::*;
use pgrx::spi::Spi;
use tessera_core::node::{self as rules, NodeProperty, NodeRole};

use super::unknown_node;
use crate::connection::{cache, NodeAddress};
use crate::ddl::propagate::{run_on_node, single_value};
use crate::error::{OrReport, TResult, TesseraError};
use crate::metadata::node::{self as catalog, Node};

fn invalid(message: String) -> TesseraError {
    TesseraError::new(PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE, message)
}

/// The label of a `noderole` enum value.
fn role_label(role: pg_sys::Oid) -> TResult<NodeRole> {
    let label = Spi::get_one_with_args::<String>(
        "SELECT enumlabel::text FROM pg_catalog.pg_enum WHERE oid = $1",
        &[role.into()],
    )?
    .unwrap_or_default();
    NodeRole::parse(&label).ok_or_else(|| invalid(format!("unknown node role \"{label}\"")))
}

fn check_address(name: &str, port: i32) -> TResult<()> {
    rules::check_node_name(name).map_err(invalid)?;
    rules::check_port(port).map_err(invalid)?;
    Ok(())
}

fn find_or_error(name: &str, port: i32) -> TResult<Node> {
    catalog::find(name, port)?.ok_or_else(|| unknown_node(name, port))
}

/// Connects to a node, creates the extension there if it is missing, and checks that the node
/// is not this server and runs this version of Tessera.
fn prepare_node(address: &NodeAddress) -> TResult<()> {
    let installed = single_value(&run_on_node(
        address,
        "SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'tessera'",
        vec![],
    )?);
    if installed.is_none() {
        run_on_node(address, "CREATE EXTENSION IF NOT EXISTS tessera", vec![])?;
    }
    // The node gets the extensions the coordinator has (pgvector, ...), so shards can use them.
    let extensions: Vec<String> = Spi::connect(|client| {
        let mut out = Vec::new();
        for row in client.select(
            "SELECT format('CREATE SCHEMA IF NOT EXISTS %I; CREATE EXTENSION IF NOT EXISTS %I WITH SCHEMA %I VERSION %L',
                           n.nspname, e.extname, n.nspname, e.extversion)
               FROM pg_catalog.pg_extension e JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace
              WHERE e.extname NOT IN ('plpgsql', 'tessera')
              ORDER BY e.oid",
            None,
            &[],
        )? {
            out.push(row.get::<String>(1)?.unwrap_or_default());
        }
        Ok::<_, TesseraError>(out)
    })?;
    for sql in extensions {
        run_on_node(address, &sql, vec![])?;
    }
    let remote = run_on_node(
        address,
        "SELECT pg_catalog.tessera_version() || ' ' || system_identifier::text
           FROM pg_catalog.pg_control_system()",
        vec![],
    )?;
    let remote = single_value(&remote).unwrap_or_default();
    let (remote_version, remote_sysid) = remote.split_once(' ').unwrap_or((&remote, ""));
    let local_sysid = Spi::get_one::<String>(
        "SELECT system_identifier::text FROM pg_catalog.pg_control_system()",
    )?
    .unwrap_or_default();
    if remote_sysid == local_sysid {
        return Err(invalid(format!(
            "node {address} is this server itself, not a worker"
        ))
        .hint("Register the coordinator with citus_set_coordinator_host, and add workers by their own address and port."));
    }
    let local_version = env!("CARGO_PKG_VERSION");
    if remote_version != local_version {
        return Err(TesseraError::new(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!(
                "node {address} runs Tessera {remote_version}, but the coordinator runs {local_version}"
            ),
        )
        .hint("Install the same Tessera version on every node, restart the node, and try again."));
    }
    // The roles the node lacks, so that the connections of every user can open there: one
    // command string, so that the node gets all of them or none.
    let roles = crate::ddl::roles::sync_commands(|name| {
        Ok(single_value(&run_on_node(
            address,
            "SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = $1",
            vec![Some(name.to_string())],
        )?)
        .is_some())
    })?;
    if !roles.is_empty() {
        run_on_node(address, &roles.join(";\n"), vec![])?;
    }
    // The schemas, types and functions that its shards' defaults, constraints and queries may
    // use, made before the node joined.
    let objects = crate::ddl::objects::sync_commands()?;
    run_on_node(address, &objects.join(";\n"), vec![])?;
    Ok(())
}

#[pg_extern(sql = false)]
fn citus_set_coordinator_host(host: &str, port: i32, node_role: pg_sys::Oid, node_cluster: &str) {
    (|| -> TResult<()> {
        check_address(host, port)?;
        let role = role_label(node_role)?;
        catalog::lock_for_change()?;
        if let Some(other) = catalog::find(host, port)? {
            if !other.is_coordinator() {
                return Err(TesseraError::new(
                    PgSqlErrorCode::ERRCODE_DUPLICATE_OBJECT,
                    format!("node {host}:{port} is already registered as worker node {}", other.nodeid),
                )
                .hint("Remove the worker first with citus_remove_node, or give the coordinator's own address."));
            }
        }
        match catalog::coordinator()? {
            Some(c) => catalog::update_address(c.nodeid, host, port, role.as_str(), node_cluster)?,
            None => {
                catalog::insert(
                    rules::COORDINATOR_GROUP_ID,
                    host,
                    port,
                    role.as_str(),
                    node_cluster,
                    true,
                )?;
            }
        }
        Ok(())
    })()
    .or_report()
}

#[pg_extern(sql = false)]
fn citus_add_node(
    nodename: &str,
    nodeport: i32,
    groupid: i32,
    noderole: pg_sys::Oid,
    nodecluster: &str,
) -> i32 {
    (|| -> TResult<i32> {
        check_address(nodename, nodeport)?;
        let role = role_label(noderole)?;
        catalog::lock_for_change()?;
        if let Some(existing) = catalog::find(nodename, nodeport)? {
            return Err(TesseraError::new(
                PgSqlErrorCode::ERRCODE_DUPLICATE_OBJECT,
                format!(
                    "node {nodename}:{nodeport} is already in the cluster (nodeid {})",
                    existing.nodeid
                ),
            )
            .hint("Use citus_activate_node to bring back a disabled node."));
        }
        let group = rules::group_for_new_node(groupid, &catalog::group_ids()?).map_err(invalid)?;
        let address = NodeAddress {
            host: nodename.to_string(),
            port: nodeport,
        };
        prepare_node(&address)?;
        let nodeid = catalog::insert(group, nodename, nodeport, role.as_str(), nodecluster, false)?;
        crate::operations::replicate::replicate_to_new_node(group)?;
        Ok(nodeid)
    })()
    .or_report()
}

/// The old placements of moved shards on a node being removed (`pg_dist_cleanup`) are dropped
/// first. Those a query on the node still reads make the removal wait for a later try; those
/// on a node that does not answer are forgotten with the node, and a NOTICE names what stays
/// there. Records of a group another node still serves (or the coordinator's) stay.
fn forget_old_placements(node: &Node) -> TResult<()> {
    let group = node.groupid;
    if group == tessera_core::node::COORDINATOR_GROUP_ID
        || catalog::all()?
            .iter()
            .any(|n| n.groupid == group && n.nodeid != node.nodeid)
    {
        return Ok(());
    }
    crate::operations::shard_move::cleanup_orphaned(Some(group))?;
    let left: Vec<String> = crate::metadata::cleanup::pending()?
        .into_iter()
        .filter(|r| r.group == group)
        .map(|r| r.object_name)
        .collect();
    if left.is_empty() {
        return Ok(());
    }
    let (name, port) = (&node.nodename, node.nodeport);
    // Whether the node answers (an interrupt while asking is the caller's error).
    let task = crate::connection::RemoteTask::new(
        crate::connection::ConnKey::for_current_session(&node.address()),
        "SELECT 1",
    );
    let answers = crate::connection::run_tasks(std::slice::from_ref(&task), 1)?
        .pop()
        .is_some_and(|r| r.is_ok());
    if answers {
        return Err(TesseraError::new(
            PgSqlErrorCode::ERRCODE_OBJECT_IN_USE,
            format!(
                "cannot remove node {name}:{port}: the old shard placements {} there could not be dropped yet",
                left.join(", ")
            ),
        )
        .hint("A query on the node may still read them: run CALL citus_cleanup_orphaned_resources() once it ends, then remove the node again."));
    }
    crate::metadata::cleanup::forget_group(group)?;
    pgrx::notice!(
        "node {name}:{port} does not answer: the old shard placements {} stay there (drop them if the node is used again)",
        left.join(", ")
    );
    Ok(())
}

#[pg_extern(sql = false)]
fn citus_remove_node(nodename: &str, nodeport: i32) {
    (|| -> TResult<()> {
        catalog::lock_for_change()?;
        let node = find_or_error(nodename, nodeport)?;
        let placements = catalog::placement_count(node.groupid)?;
        if placements > 0 {
            return Err(TesseraError::new(
                PgSqlErrorCode::ERRCODE_OBJECT_IN_USE,
                format!(
                    "cannot remove node {nodename}:{nodeport}: it holds {placements} shard placement(s)"
                ),
            )
            .hint("Move its shards to other nodes first (citus_drain_node or rebalance_table_shards), or drop the tables."));
        }
        forget_old_placements(&node)?;
        catalog::delete(node.nodeid)?;
        cache::close_node(&node.address());
        Ok(())
    })()
    .or_report()
}

#[pg_extern(sql = false)]
fn citus_disable_node(nodename: &str, nodeport: i32, synchronous: bool) {
    let _ = synchronous; // the change is transactional here either way
    (|| -> TResult<()> {
        catalog::lock_for_change()?;
        let node = find_or_error(nodename, nodeport)?;
        if node.is_coordinator() {
            return Err(TesseraError::new(
                PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
                "cannot disable the coordinator",
            )
            .hint("Use citus_set_node_property(..., 'shouldhaveshards', false) to keep shards off it."));
        }
        catalog::set_active(node.nodeid, false)?;
        cache::close_node(&node.address());
        Ok(())
    })()
    .or_report()
}

#[pg_extern(sql = false)]
fn citus_activate_node(nodename: &str, nodeport: i32) -> i32 {
    (|| -> TResult<i32> {
        catalog::lock_for_change()?;
        let node = find_or_error(nodename, nodeport)?;
        if !node.is_coordinator() {
            prepare_node(&node.address())?;
        }
        catalog::set_active(node.nodeid, true)?;
        Ok(node.nodeid)
    })()
    .or_report()
}

#[pg_extern(sql = false)]
fn citus_set_node_property(nodename: &str, nodeport: i32, property: &str, value: bool) {
    (|| -> TResult<()> {
        let prop = NodeProperty::parse(property).ok_or_else(|| {
            invalid(format!("unsupported node property \"{property}\""))
                .hint("The only property that can be set is shouldhaveshards.")
        })?;
        catalog::lock_for_change()?;
        let node = find_or_error(nodename, nodeport)?;
        match prop {
            NodeProperty::ShouldHaveShards => catalog::set_should_have_shards(node.nodeid, value)?,
        }
        Ok(())
    })()
    .or_report()
}
