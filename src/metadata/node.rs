//! `pg_dist_node`: one row per node; the coordinator's row has group 0.

use pgrx::spi::Spi;

use crate::connection::NodeAddress;
use crate::error::TResult;

/// A row of `pg_dist_node`.
#[derive(Debug, Clone)]
pub struct Node {
    pub nodeid: i32,
    pub groupid: i32,
    pub nodename: String,
    pub nodeport: i32,
    pub isactive: bool,
    pub noderole: String,
    pub shouldhaveshards: bool,
}

impl Node {
    pub fn address(&self) -> NodeAddress {
        NodeAddress {
            host: self.nodename.clone(),
            port: self.nodeport,
        }
    }

    pub fn is_coordinator(&self) -> bool {
        self.groupid == tessera_core::node::COORDINATOR_GROUP_ID
    }
}

const COLUMNS: &str =
    "nodeid, groupid, nodename, nodeport, isactive, noderole::text, shouldhaveshards";

fn read(query: &str, args: &[pgrx::datum::DatumWithOid]) -> TResult<Vec<Node>> {
    Spi::connect(|client| {
        let rows = client.select(query, None, args)?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            out.push(Node {
                nodeid: row.get::<i32>(1)?.unwrap_or_default(),
                groupid: row.get::<i32>(2)?.unwrap_or_default(),
                nodename: row.get::<String>(3)?.unwrap_or_default(),
                nodeport: row.get::<i32>(4)?.unwrap_or_default(),
                isactive: row.get::<bool>(5)?.unwrap_or_default(),
                noderole: row.get::<String>(6)?.unwrap_or_default(),
                shouldhaveshards: row.get::<bool>(7)?.unwrap_or_default(),
            });
        }
        Ok(out)
    })
}

/// Every node, in nodeid order.
pub fn all() -> TResult<Vec<Node>> {
    read(
        &format!("SELECT {COLUMNS} FROM pg_catalog.pg_dist_node ORDER BY nodeid"),
        &[],
    )
}

/// The active primary nodes; workers only unless `with_coordinator`.
pub fn active_primaries(with_coordinator: bool) -> TResult<Vec<Node>> {
    Ok(all()?
        .into_iter()
        .filter(|n| n.isactive && n.noderole == "primary")
        .filter(|n| with_coordinator || !n.is_coordinator())
        .collect())
}

/// The node registered at `name:port`.
pub fn find(name: &str, port: i32) -> TResult<Option<Node>> {
    Ok(read(
        &format!(
            "SELECT {COLUMNS} FROM pg_catalog.pg_dist_node WHERE nodename = $1 AND nodeport = $2"
        ),
        &[name.into(), port.into()],
    )?
    .pop())
}

/// The coordinator's row, if registered.
pub fn coordinator() -> TResult<Option<Node>> {
    Ok(all()?.into_iter().find(Node::is_coordinator))
}

/// Serialises changes to the node list with other sessions' (reads go on).
pub fn lock_for_change() -> TResult<()> {
    Spi::run("LOCK TABLE pg_catalog.pg_dist_node IN SHARE ROW EXCLUSIVE MODE")?;
    Ok(())
}

/// Inserts a node and returns its nodeid.
pub fn insert(
    groupid: i32,
    name: &str,
    port: i32,
    role: &str,
    cluster: &str,
    is_coordinator: bool,
) -> TResult<i32> {
    let id = Spi::get_one_with_args::<i32>(
        "INSERT INTO pg_catalog.pg_dist_node
             (groupid, nodename, nodeport, noderole, nodecluster, hasmetadata, metadatasynced,
              shouldhaveshards, isactive)
         VALUES ($1, $2, $3, $4::pg_catalog.noderole, $5::name, $6, $6, NOT $6, true)
         RETURNING nodeid",
        &[
            groupid.into(),
            name.into(),
            port.into(),
            role.into(),
            cluster.into(),
            is_coordinator.into(),
        ],
    )?;
    super::cache::invalidate_nodes();
    Ok(id.unwrap_or_default())
}

/// Moves the coordinator's row to a new address.
pub fn update_address(
    nodeid: i32,
    name: &str,
    port: i32,
    role: &str,
    cluster: &str,
) -> TResult<()> {
    Spi::run_with_args(
        "UPDATE pg_catalog.pg_dist_node
            SET nodename = $2, nodeport = $3, noderole = $4::pg_catalog.noderole, nodecluster = $5::name
          WHERE nodeid = $1",
        &[
            nodeid.into(),
            name.into(),
            port.into(),
            role.into(),
            cluster.into(),
        ],
    )?;
    super::cache::invalidate_nodes();
    Ok(())
}

pub fn delete(nodeid: i32) -> TResult<()> {
    Spi::run_with_args(
        "DELETE FROM pg_catalog.pg_dist_node WHERE nodeid = $1",
        &[nodeid.into()],
    )?;
    super::cache::invalidate_nodes();
    Ok(())
}

pub fn set_active(nodeid: i32, active: bool) -> TResult<()> {
    Spi::run_with_args(
        "UPDATE pg_catalog.pg_dist_node SET isactive = $2 WHERE nodeid = $1",
        &[nodeid.into(), active.into()],
    )?;
    super::cache::invalidate_nodes();
    Ok(())
}

pub fn set_should_have_shards(nodeid: i32, value: bool) -> TResult<()> {
    Spi::run_with_args(
        "UPDATE pg_catalog.pg_dist_node SET shouldhaveshards = $2 WHERE nodeid = $1",
        &[nodeid.into(), value.into()],
    )?;
    super::cache::invalidate_nodes();
    Ok(())
}

/// Every group id in use.
pub fn group_ids() -> TResult<Vec<i32>> {
    Ok(all()?.into_iter().map(|n| n.groupid).collect())
}

/// How many shard placements a group holds.
pub fn placement_count(groupid: i32) -> TResult<i64> {
    Ok(crate::pg::spi::get_one_with_args::<i64>(
        "SELECT count(*) FROM pg_catalog.pg_dist_placement WHERE groupid = $1",
        &[groupid.into()],
    )?
    .unwrap_or(0))
}
