//! Schema-based sharding: `citus_schema_distribute`, `citus_schema_undistribute`,
//! `citus_schema_move`, and what distributes on its own (`citus.enable_schema_based_sharding`
//! for CREATE SCHEMA; any table made in a distributed schema).
//!
//! A distributed schema is one colocation group (`pg_dist_schema`): each of its tables is a
//! single-shard table (partmethod `n`, no distribution column), and all of them sit on one
//! node, so that a query on one tenant's tables runs whole there (`planner::single_node`).
//!
//! - **Placement**: the node named in the call, or `tessera.schema_placement_node`, or the
//!   least loaded node: fewest bytes of tenant schemas, then fewest tenant schemas, then the
//!   lowest group. (Citus places by colocation id modulo the node count, which can put many new
//!   schemas on one node.) An empty schema keeps its node in `pg_dist_schema.groupid`.
//! - **What a tenant table may be**: a regular or partitioned table of the schema, not yet
//!   distributed, whose foreign keys point into the schema or to reference tables, and that no
//!   table outside the schema references. Foreign tables and inheritance are refused with the
//!   reason.
//! - **Moves** (`citus_schema_move`) copy every table of the schema to the new node together
//!   (`operations::shard_move`), with writes blocked and reads going on.
//!
//! Everything runs in the caller's transaction: an error anywhere leaves the cluster as it was.

use pgrx::prelude::*;
use pgrx::spi::Spi;

use super::distribute::{self, ForeignKeys};
use crate::error::{OrReport, TResult, TesseraError};
use crate::gucs;
use crate::metadata::node::{self as nodes, Node};
use crate::metadata::schema::{self as dist_schema, DistSchema};
use crate::metadata::table::{self as catalog, TableKind};

/// Locks the schema `nsp` as an object (not its tables): distribute, undistribute and move take
/// it exclusively, and whatever makes a table in it (CREATE TABLE takes it shared, as does the
/// event trigger that distributes the table) waits for them, so that no table lands in a
/// schema half-moved or half-distributed.
pub(crate) fn lock_schema(nsp: pg_sys::Oid, mode: u32) {
    // SAFETY: a heavyweight lock on an existing object, released at the end of the
    // transaction.
    unsafe {
        pg_sys::LockDatabaseObject(
            pg_sys::NamespaceRelationId,
            nsp,
            0,
            mode as pg_sys::LOCKMODE,
        );
        // What the session that held the lock committed (a table made in the schema, the
        // schema's row) must be seen from here on: with a transaction id, every catalog query
        // below takes a snapshot of its own (in READ COMMITTED), not the statement's.
        pg_sys::GetCurrentTransactionId();
    };
}

/// Distributing, undistributing and moving a schema read what sessions that held its lock
/// committed: a transaction snapshot (REPEATABLE READ, SERIALIZABLE) would not see it.
fn check_read_committed(what: &str) -> TResult<()> {
    // SAFETY: reads the transaction's isolation level.
    if unsafe { pg_sys::XactIsoLevel } >= pg_sys::XACT_REPEATABLE_READ as i32 {
        return Err(TesseraError::new(
            PgSqlErrorCode::ERRCODE_ACTIVE_SQL_TRANSACTION,
            format!("cannot {what} in a REPEATABLE READ or SERIALIZABLE transaction"),
        )
        .hint("Run it in a READ COMMITTED transaction (the default), or on its own."));
    }
    Ok(())
}

/// For a session with a transaction snapshot that waited for the schema's lock: whether the
/// schema is (or is not) distributed as the latest committed state says too. A distribute,
/// undistribute or move that committed after the snapshot was taken makes the transaction a
/// serialization failure (retry it), rather than put a table on the wrong node.
pub(crate) fn check_unchanged(nsp: pg_sys::Oid, seen: Option<DistSchema>) -> TResult<()> {
    // SAFETY: reads the transaction's isolation level.
    if unsafe { pg_sys::XactIsoLevel } < pg_sys::XACT_REPEATABLE_READ as i32 {
        return Ok(());
    }
    if dist_schema::find_latest(nsp)? != seen {
        return Err(TesseraError::new(
            PgSqlErrorCode::ERRCODE_T_R_SERIALIZATION_FAILURE,
            "could not serialize access: the distributed schema changed (distributed, undistributed or moved) while this transaction ran",
        )
        .hint("Run the transaction again."));
    }
    Ok(())
}

/// Schemas that are never distributed.
const RESERVED: [&str; 5] = [
    "public",
    "pg_catalog",
    "information_schema",
    "citus",
    "pg_toast",
];

/// What the checks need to know about a schema.
pub(crate) struct SchemaFacts {
    name: String,
    /// Quoted as SQL.
    display: String,
    owner_ok: bool,
}

pub(crate) fn facts(nsp: pg_sys::Oid) -> TResult<SchemaFacts> {
    Spi::connect(|client| {
        let rows = client.select(
            "SELECT nspname::text, pg_catalog.quote_ident(nspname),
                    pg_catalog.pg_has_role(current_user, nspowner, 'MEMBER')
               FROM pg_catalog.pg_namespace WHERE oid = $1",
            None,
            &[nsp.into()],
        )?;
        let Some(row) = rows.into_iter().next() else {
            return Err(TesseraError::new(
                PgSqlErrorCode::ERRCODE_INVALID_SCHEMA_NAME,
                format!("schema with OID {} does not exist", nsp.to_u32()),
            ));
        };
        Ok(SchemaFacts {
            name: row.get::<String>(1)?.unwrap_or_default(),
            display: row.get::<String>(2)?.unwrap_or_default(),
            owner_ok: row.get::<bool>(3)?.unwrap_or(false),
        })
    })
}

fn must_own(f: &SchemaFacts) -> TResult<()> {
    if f.owner_ok {
        return Ok(());
    }
    Err(TesseraError::new(
        PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
        format!("must be owner of schema {}", f.display),
    )
    .hint("Only the schema's owner (or a superuser) can distribute, undistribute or move it."))
}

fn required<T>(v: Option<T>, what: &str) -> TResult<T> {
    v.ok_or_else(|| {
        TesseraError::new(
            PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED,
            format!("{what} cannot be NULL"),
        )
    })
}

fn not_distributed(f: &SchemaFacts) -> TesseraError {
    TesseraError::new(
        PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
        format!("schema {} is not distributed", f.display),
    )
    .hint("SELECT * FROM citus_schemas lists the distributed schemas; citus_schema_distribute() distributes one.")
}

/// Whether the schema may be distributed at all (not a system schema, not Tessera's own).
pub(crate) fn check_not_reserved(f: &SchemaFacts) -> TResult<()> {
    let temp = f.name.starts_with("pg_temp") || f.name.starts_with("pg_toast_temp");
    if RESERVED.contains(&f.name.as_str()) || temp {
        let why = match f.name.as_str() {
            "public" => "the public schema is shared by every user of the database",
            "citus" => "it holds Tessera's own objects",
            _ if temp => "it is a temporary schema",
            _ => "it is a system schema",
        };
        return Err(TesseraError::new(
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            format!("cannot distribute the schema {}: {why}", f.display),
        )
        .hint("Create a schema of its own for each tenant (CREATE SCHEMA tenant_x), and distribute that."));
    }
    Ok(())
}

/// A table of a schema, as the checks see it.
struct Rel {
    relid: pg_sys::Oid,
    display: String,
    relkind: String,
    /// A partition (its parent's name, quoted).
    parent: Option<(pg_sys::Oid, String)>,
    inherits: bool,
}

/// The regular, partitioned and foreign tables of `nsp`, in OID order.
fn tables_of(nsp: pg_sys::Oid) -> TResult<Vec<Rel>> {
    Spi::connect(|client| {
        let mut out = Vec::new();
        for row in client.select(
            "SELECT c.oid, c.oid::regclass::text, c.relkind::text,
                    (SELECT i.inhparent FROM pg_catalog.pg_inherits i
                      WHERE i.inhrelid = c.oid AND c.relispartition),
                    (SELECT i.inhparent::regclass::text FROM pg_catalog.pg_inherits i
                      WHERE i.inhrelid = c.oid AND c.relispartition),
                    EXISTS (SELECT 1 FROM pg_catalog.pg_inherits i
                             WHERE (i.inhrelid = c.oid AND NOT c.relispartition)
                                OR (i.inhparent = c.oid AND c.relkind <> 'p'))
               FROM pg_catalog.pg_class c
              WHERE c.relnamespace = $1 AND c.relkind IN ('r', 'p', 'f')
              ORDER BY c.oid",
            None,
            &[nsp.into()],
        )? {
            let parent = row.get::<pg_sys::Oid>(4)?;
            out.push(Rel {
                relid: row.get::<pg_sys::Oid>(1)?.unwrap_or(pg_sys::InvalidOid),
                display: row.get::<String>(2)?.unwrap_or_default(),
                relkind: row.get::<String>(3)?.unwrap_or_default(),
                parent: parent
                    .map(|p| (p, row.get::<String>(5).ok().flatten().unwrap_or_default())),
                inherits: row.get::<bool>(6)?.unwrap_or(false),
            });
        }
        Ok(out)
    })
}

fn cannot(f: &SchemaFacts, what: String, hint: &str) -> TesseraError {
    TesseraError::new(
        PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
        format!("cannot distribute the schema {}: {what}", f.display),
    )
    .hint(hint)
}

/// Checks that every table of the schema can be a tenant table.
fn check_tables(f: &SchemaFacts, tables: &[Rel]) -> TResult<()> {
    let ids: Vec<pg_sys::Oid> = tables.iter().map(|t| t.relid).collect();
    for t in tables {
        if t.relkind == "f" {
            return Err(cannot(
                f,
                format!("{} is a foreign table, whose rows live on another server and cannot be placed on the schema's node", t.display),
                "Move the foreign table to another schema (ALTER FOREIGN TABLE ... SET SCHEMA), then distribute the schema.",
            ));
        }
        if t.inherits {
            return Err(cannot(
                f,
                format!("{} uses table inheritance, and a tenant table's parent or children would be read from the coordinator's empty copy", t.display),
                "Remove the inheritance (ALTER TABLE ... NO INHERIT), or use declarative partitioning (PARTITION BY), whose partitions stay with their parent.",
            ));
        }
        if let Some((parent, parent_name)) = &t.parent {
            if !ids.contains(parent) {
                return Err(cannot(
                    f,
                    format!("{} is a partition of {parent_name}, which is in another schema", t.display),
                    "A partition follows its parent: keep partitions in their parent's schema, or detach this one first.",
                ));
            }
        }
        if let Some(dist) = catalog::find(t.relid)? {
            let what = match dist.kind() {
                TableKind::Reference => "a reference table",
                _ => "a distributed table already",
            };
            return Err(cannot(
                f,
                format!("{} is {what}", t.display),
                "Undistribute it first (undistribute_table), or move it to another schema.",
            ));
        }
        if t.parent.is_none() {
            let partitioned_twice = t.relkind == "p"
                && tables
                    .iter()
                    .any(|c| c.relkind == "p" && c.parent.as_ref().map(|p| p.0) == Some(t.relid));
            if partitioned_twice {
                return Err(cannot(
                    f,
                    format!(
                        "{} has partitions that are partitioned themselves",
                        t.display
                    ),
                    "Use one level of partitions in a distributed schema.",
                ));
            }
        }
    }
    check_foreign_keys(f, &ids)
}

/// Foreign keys from the schema's tables point into the schema or to reference tables, and no
/// table outside it references one of them.
fn check_foreign_keys(f: &SchemaFacts, ids: &[pg_sys::Oid]) -> TResult<()> {
    let bad: Option<(String, String, String, bool)> = Spi::connect(|client| {
        let rows = client.select(
            "SELECT c.conname::text, c.conrelid::regclass::text, c.confrelid::regclass::text,
                    c.conrelid = ANY($1)
               FROM pg_catalog.pg_constraint c
              WHERE c.contype = 'f' AND c.conparentid = 0
                AND (c.conrelid = ANY($1) OR c.confrelid = ANY($1))
                AND NOT (c.conrelid = ANY($1) AND c.confrelid = ANY($1))
                AND NOT (c.conrelid = ANY($1) AND EXISTS (
                        SELECT 1 FROM pg_catalog.pg_dist_partition p
                         WHERE p.logicalrelid::oid = c.confrelid AND p.repmodel = 't'))
              ORDER BY c.oid LIMIT 1",
            None,
            &[ids.to_vec().into()],
        )?;
        let Some(row) = rows.into_iter().next() else {
            return Ok::<_, TesseraError>(None);
        };
        Ok(Some((
            row.get::<String>(1)?.unwrap_or_default(),
            row.get::<String>(2)?.unwrap_or_default(),
            row.get::<String>(3)?.unwrap_or_default(),
            row.get::<bool>(4)?.unwrap_or(false),
        )))
    })?;
    let Some((name, from, to, outgoing)) = bad else {
        return Ok(());
    };
    Err(if outgoing {
        TesseraError::new(
            PgSqlErrorCode::ERRCODE_INVALID_TABLE_DEFINITION,
            format!(
                "cannot distribute the schema {}: the foreign key \"{name}\" of {from} references {to}, which is neither a table of the schema nor a reference table",
                f.display
            ),
        )
        .hint(format!("A tenant table can reference its own schema's tables and reference tables: make {to} a reference table (create_reference_table), or drop the foreign key."))
    } else {
        TesseraError::new(
            PgSqlErrorCode::ERRCODE_INVALID_TABLE_DEFINITION,
            format!(
                "cannot distribute the schema {}: the foreign key \"{name}\" of {from}, outside the schema, references its table {to}",
                f.display
            ),
        )
        .hint("Drop that foreign key, or move the referencing table into the schema too.")
    })
}

/// The tables in the order foreign keys need them: each after the tables it references
/// (tables in a cycle of foreign keys keep their OID order).
pub(crate) fn referenced_first(ids: Vec<pg_sys::Oid>) -> TResult<Vec<pg_sys::Oid>> {
    let edges: Vec<(pg_sys::Oid, pg_sys::Oid)> = Spi::connect(|client| {
        let mut out = Vec::new();
        for row in client.select(
            "SELECT conrelid, confrelid FROM pg_catalog.pg_constraint
              WHERE contype = 'f' AND conparentid = 0 AND conrelid <> confrelid
                AND conrelid = ANY($1) AND confrelid = ANY($1)",
            None,
            &[ids.clone().into()],
        )? {
            out.push((
                row.get::<pg_sys::Oid>(1)?.unwrap_or(pg_sys::InvalidOid),
                row.get::<pg_sys::Oid>(2)?.unwrap_or(pg_sys::InvalidOid),
            ));
        }
        Ok::<_, TesseraError>(out)
    })?;
    let mut left = ids;
    let mut out = Vec::with_capacity(left.len());
    while !left.is_empty() {
        let ready = left.iter().position(|t| {
            !edges
                .iter()
                .any(|(from, to)| from == t && left.contains(to))
        });
        out.push(left.remove(ready.unwrap_or(0)));
    }
    Ok(out)
}

/// The node a schema goes to.
pub(crate) enum Target {
    /// The least loaded node.
    Auto,
    Node(Node),
}

/// The node `name:port`, or node `id`, checked to take a schema.
fn target_node(name: Option<&str>, port: Option<i32>, id: Option<i32>) -> TResult<Option<Node>> {
    let all = nodes::all()?;
    let node = match (name, port, id) {
        (None, None, None) => return Ok(None),
        (Some(name), Some(port), None) => all
            .into_iter()
            .find(|n| n.nodename == name && n.nodeport == port)
            .ok_or_else(|| super::unknown_node(name, port))?,
        (None, None, Some(id)) => all.into_iter().find(|n| n.nodeid == id).ok_or_else(|| {
            TesseraError::new(
                PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
                format!("node with id {id} does not exist"),
            )
            .hint("SELECT * FROM citus_nodes lists the registered nodes.")
        })?,
        _ => {
            return Err(TesseraError::new(
                PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                "give the target node as node_name and node_port together, or as node_id",
            ))
        }
    };
    if node.is_coordinator() && !node.shouldhaveshards {
        return Err(TesseraError::new(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!(
                "node {}:{} is the coordinator, which holds no shards",
                node.nodename, node.nodeport
            ),
        )
        .hint("Choose a worker, or let the coordinator hold shards with citus_set_node_property(host, port, 'shouldhaveshards', true)."));
    }
    if !node.isactive || node.noderole != "primary" {
        return Err(TesseraError::new(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!(
                "node {}:{} is not an active primary node",
                node.nodename, node.nodeport
            ),
        )
        .hint("Activate it with citus_activate_node, or choose another node."));
    }
    Ok(Some(node))
}

/// `tessera.schema_placement_node` as a node (`host:port` or a node id).
pub(crate) fn placement_setting() -> TResult<Option<Node>> {
    let v = gucs::schema_placement_node();
    if v.is_empty() {
        return Ok(None);
    }
    let bad = || {
        TesseraError::new(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("invalid tessera.schema_placement_node \"{v}\""),
        )
        .hint("Set it to host:port of a node (as in citus_nodes), to a node id, or to '' for the least loaded node.")
    };
    if let Ok(id) = v.parse::<i32>() {
        return target_node(None, None, Some(id));
    }
    let (host, port) = v.rsplit_once(':').ok_or_else(bad)?;
    let port = port.parse::<i32>().map_err(|_| bad())?;
    target_node(Some(host), Some(port), None)
}

/// The least loaded group that takes shards: fewest bytes of tenant tables, then fewest
/// tenant schemas, then the lowest group.
fn least_loaded_group() -> TResult<i32> {
    let all = nodes::all()?;
    let groups = crate::ddl::propagate::active_groups(&all, true);
    if groups.is_empty() {
        return Err(TesseraError::new(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            "there are no active worker nodes to place the schema on",
        )
        .hint("Add workers with citus_add_node, or let the coordinator hold shards with citus_set_node_property(host, port, 'shouldhaveshards', true)."));
    }
    let bytes = super::shards::placement_sizes(true)?;
    let tenants: Vec<(i32, i64)> = Spi::connect(|client| {
        let mut out = Vec::new();
        for row in client.select(
            "SELECT groupid, count(*) FROM pg_catalog.pg_dist_schema GROUP BY groupid",
            None,
            &[],
        )? {
            out.push((
                row.get::<i32>(1)?.unwrap_or_default(),
                row.get::<i64>(2)?.unwrap_or_default(),
            ));
        }
        Ok::<_, TesseraError>(out)
    })?;
    let load = |g: i32| {
        let b: i64 = bytes.iter().filter(|x| x.0 == g).map(|x| x.2).sum();
        let t: i64 = tenants.iter().filter(|x| x.0 == g).map(|x| x.1).sum();
        (b, t, g)
    };
    Ok(groups
        .iter()
        .map(|g| load(*g))
        .min()
        .map(|(_, _, g)| g)
        .unwrap_or(groups[0]))
}

fn address(group: i32) -> TResult<String> {
    Ok(nodes::all()?
        .iter()
        .find(|n| n.groupid == group && n.noderole == "primary")
        .map(|n| format!("{}:{}", n.nodename, n.nodeport))
        .unwrap_or_else(|| format!("group {group}")))
}

/// Distributes the schema `nsp` with its tables.
pub(crate) fn distribute_schema(nsp: pg_sys::Oid, target: Target) -> TResult<()> {
    let f = facts(nsp)?;
    check_not_reserved(&f)?;
    must_own(&f)?;
    check_read_committed("distribute a schema")?;
    lock_schema(nsp, pg_sys::AccessExclusiveLock);
    if dist_schema::find(nsp)?.is_some() {
        return Err(TesseraError::new(
            PgSqlErrorCode::ERRCODE_DUPLICATE_OBJECT,
            format!("schema {} is already distributed", f.display),
        )
        .hint("citus_schema_move() moves it to another node."));
    }
    let tables = tables_of(nsp)?;
    check_tables(&f, &tables)?;
    let group = match target {
        Target::Node(n) => n.groupid,
        Target::Auto => least_loaded_group()?,
    };
    let colocation_id = catalog::insert_colocation(1, 1, pg_sys::InvalidOid, pg_sys::InvalidOid)?;
    dist_schema::insert(nsp, colocation_id, group)?;
    pgrx::notice!(
        "distributing the schema {} on node {}",
        f.display,
        address(group)?
    );
    let top: Vec<pg_sys::Oid> = tables
        .iter()
        .filter(|t| t.parent.is_none())
        .map(|t| t.relid)
        .collect();
    let ordered = referenced_first(top)?;
    for relid in &ordered {
        distribute::create_single_shard(*relid, colocation_id, group, ForeignKeys::Later)?;
    }
    distribute::empty_local_tables(&ordered)?;
    for relid in &ordered {
        distribute::add_table_foreign_keys(*relid)?;
    }
    Ok(())
}

/// `citus_schema_distribute(schemaname, node_name, node_port, node_id)`.
#[pg_extern(sql = false)]
fn citus_schema_distribute(
    schemaname: Option<pg_sys::Oid>,
    node_name: Option<&str>,
    node_port: Option<i32>,
    node_id: Option<i32>,
) {
    (|| {
        let nsp = required(schemaname, "schemaname")?;
        let target = match target_node(node_name, node_port, node_id)? {
            Some(n) => Target::Node(n),
            None => Target::Auto,
        };
        distribute_schema(nsp, target)
    })()
    .or_report()
}

/// The tables of a distributed schema that are not partitions, in OID order.
fn schema_tables(ds: &DistSchema) -> TResult<Vec<pg_sys::Oid>> {
    Spi::connect(|client| {
        let mut out = Vec::new();
        for row in client.select(
            "SELECT p.logicalrelid::oid FROM pg_catalog.pg_dist_partition p
               JOIN pg_catalog.pg_class c ON c.oid = p.logicalrelid
              WHERE p.colocationid = $1 AND NOT c.relispartition
              ORDER BY 1",
            None,
            &[ds.colocation_id.into()],
        )? {
            out.extend(row.get::<pg_sys::Oid>(1)?);
        }
        Ok::<_, TesseraError>(out)
    })
}

/// Brings the schema's tables back to the coordinator and forgets the schema.
fn undistribute_schema(nsp: pg_sys::Oid) -> TResult<()> {
    let f = facts(nsp)?;
    must_own(&f)?;
    check_read_committed("undistribute a schema")?;
    lock_schema(nsp, pg_sys::AccessExclusiveLock);
    let ds = dist_schema::find(nsp)?.ok_or_else(|| not_distributed(&f))?;
    let tables = schema_tables(&ds)?;
    let to_reference = Spi::get_one_with_args::<String>(
        "SELECT (SELECT c.conrelid::regclass::text || ' references ' || c.confrelid::regclass::text
                   FROM pg_catalog.pg_constraint c
                   JOIN pg_catalog.pg_dist_partition p ON p.logicalrelid::oid = c.confrelid
                  WHERE c.contype = 'f' AND p.repmodel = 't'
                    AND c.conrelid IN (SELECT logicalrelid::oid FROM pg_catalog.pg_dist_partition
                                        WHERE colocationid = $1)
                  ORDER BY c.oid LIMIT 1)",
        &[ds.colocation_id.into()],
    )?;
    if let Some(which) = to_reference {
        return Err(TesseraError::new(
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            format!(
                "cannot undistribute the schema {}: {which}, a reference table, whose rows are not on the coordinator's copy",
                f.display
            ),
        )
        .hint("Drop the foreign keys to reference tables, undistribute the schema, then add them back (after undistributing the reference table too)."));
    }
    pgrx::notice!("undistributing the schema {}", f.display);
    for relid in referenced_first(tables)? {
        super::undistribute::undistribute_tenant_table(relid)?;
    }
    dist_schema::delete(nsp)
}

/// `citus_schema_undistribute(schemaname)`.
#[pg_extern(sql = false)]
fn citus_schema_undistribute(schemaname: Option<pg_sys::Oid>) {
    (|| undistribute_schema(required(schemaname, "schemaname")?))().or_report()
}

/// Moves every table of the schema to `target`.
fn move_schema(nsp: pg_sys::Oid, target: Node, mode: &str) -> TResult<()> {
    let f = facts(nsp)?;
    must_own(&f)?;
    check_read_committed("move a schema")?;
    lock_schema(nsp, pg_sys::AccessExclusiveLock);
    let ds = dist_schema::find(nsp)?.ok_or_else(|| not_distributed(&f))?;
    match mode {
        "auto" | "block_writes" => {}
        "force_logical" => {
            return Err(TesseraError::new(
                PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
                "shard_transfer_mode 'force_logical' is not supported yet",
            )
            .hint(
                "Use 'block_writes' (or 'auto'): reads go on during the move, writes wait for it.",
            ))
        }
        other => {
            return Err(TesseraError::new(
                PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                format!("invalid shard_transfer_mode '{other}'"),
            ))
        }
    }
    if target.groupid == ds.group {
        return Err(TesseraError::new(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!(
                "schema {} is already on node {}:{}",
                f.display, target.nodename, target.nodeport
            ),
        )
        .hint("Choose another node: SELECT * FROM citus_nodes lists them."));
    }
    let tables = referenced_first(schema_tables(&ds)?)?;
    pgrx::notice!(
        "moving the schema {} from node {} to node {}:{}",
        f.display,
        address(ds.group)?,
        target.nodename,
        target.nodeport
    );
    crate::operations::shard_move::move_tables(&tables, ds.group, target.groupid)?;
    dist_schema::set_group(nsp, target.groupid)
}

/// `citus_schema_move(schema_id, target_node_name, target_node_port, shard_transfer_mode)`.
#[pg_extern(sql = false)]
fn citus_schema_move(
    schema_id: Option<pg_sys::Oid>,
    target_node_name: Option<&str>,
    target_node_port: Option<i32>,
    shard_transfer_mode: Option<pg_sys::Oid>,
) {
    (|| {
        let nsp = required(schema_id, "schema_id")?;
        let name = required(target_node_name, "target_node_name")?;
        let port = required(target_node_port, "target_node_port")?;
        let node = target_node(Some(name), Some(port), None)?.expect("a node was named");
        move_schema(nsp, node, &mode_text(shard_transfer_mode)?)
    })()
    .or_report()
}

/// `citus_schema_move(schema_id, target_node_id, shard_transfer_mode)`.
#[pg_extern(sql = false)]
fn citus_schema_move_with_nodeid(
    schema_id: Option<pg_sys::Oid>,
    target_node_id: Option<i32>,
    shard_transfer_mode: Option<pg_sys::Oid>,
) {
    (|| {
        let nsp = required(schema_id, "schema_id")?;
        let id = required(target_node_id, "target_node_id")?;
        let node = target_node(None, None, Some(id))?.expect("a node was named");
        move_schema(nsp, node, &mode_text(shard_transfer_mode)?)
    })()
    .or_report()
}

/// The label of a `citus.shard_transfer_mode` value (an enum value's OID).
fn mode_text(mode: Option<pg_sys::Oid>) -> TResult<String> {
    let Some(oid) = mode else {
        return Ok("auto".to_string());
    };
    Ok(Spi::get_one_with_args::<String>(
        "SELECT (SELECT enumlabel::text FROM pg_catalog.pg_enum WHERE oid = $1)",
        &[oid.into()],
    )?
    .unwrap_or_else(|| "auto".to_string()))
}
