//! Distributing tables: `create_distributed_table`, `create_reference_table`, and the lookups
//! `get_shard_id_for_distribution_column` and `shard_name`; the `sql_drop` event trigger that
//! drops a distributed table's shards with it.
//!
//! Distributing a table, inside the caller's transaction:
//! 1. check the table, the column, its hash function, the colocation request and the nodes;
//! 2. choose shard ranges and placements (a colocated table copies its group's placements);
//! 3. create every shard on its node, all nodes at once, in the remote transaction that
//!    commits or aborts with the local one (shards on the coordinator are created locally);
//! 4. move the table's rows into the shards and empty the local table;
//! 5. record the table, shards and placements in the catalog.
//!
//! An error at any step aborts the transaction, and with it every remote shard creation.

use std::collections::BTreeMap;

use pgrx::prelude::*;
use pgrx::spi::Spi;
use pgrx::AnyElement;
use tessera_core::sharding::{self, HashRange};

use super::{active_groups, group_nodes, push_per_placement, run_per_group, PerGroup};
use crate::connection::{run_tasks, ConnKey, RemoteTask};
use crate::error::{OrReport, TResult, TesseraError};
use crate::gucs;
use crate::metadata::node::{self as nodes, Node};
use crate::metadata::table::{self as catalog, DistTable, Method, Shard};
use crate::sharding::ddl::TableDdl;
use crate::sharding::{hash_proc_for_type, no_hash_function, type_name};

/// What the checks found out about the table to distribute.
pub(super) struct Table {
    pub(super) relid: pg_sys::Oid,
    /// `relid::regclass::text`: quoted and qualified as needed, safe to put in SQL.
    pub(super) display: String,
    /// A partitioned table (its partitions are distributed with it).
    pub(super) partitioned: bool,
}

/// What a table is to partitioning, as [`check_table`] needs to know.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    /// A table on its own, or a partitioned table (whose partitions come with it).
    Table,
    /// A partition, distributed because its parent is.
    Partition,
}

fn invalid(msg: impl Into<String>) -> TesseraError {
    TesseraError::new(PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE, msg)
}

fn required<T>(v: Option<T>, what: &str) -> TResult<T> {
    v.ok_or_else(|| {
        TesseraError::new(
            PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED,
            format!("{what} cannot be NULL"),
        )
    })
}

/// Checks that `relid` is a plain or partitioned table the user owns and that is not
/// distributed yet, and locks it against writes for the rest of the transaction.
pub(super) fn check_table(relid: pg_sys::Oid, role: Role) -> TResult<Table> {
    let (display, relkind, persistence, owner_ok, inherits, partition_of, nested) =
        Spi::connect(|client| {
            let row = client
                .select(
                    "SELECT c.oid::regclass::text, c.relkind::text, c.relpersistence::text,
                        pg_catalog.pg_has_role(current_user, c.relowner, 'MEMBER'),
                        EXISTS (SELECT 1 FROM pg_catalog.pg_inherits i
                                 WHERE (i.inhrelid = c.oid AND NOT c.relispartition)
                                    OR (i.inhparent = c.oid AND c.relkind <> 'p')),
                        (SELECT i.inhparent::regclass::text FROM pg_catalog.pg_inherits i
                          WHERE i.inhrelid = c.oid AND c.relispartition),
                        c.relkind = 'p' AND (c.relispartition OR EXISTS (
                            SELECT 1 FROM pg_catalog.pg_inherits i
                              JOIN pg_catalog.pg_class k ON k.oid = i.inhrelid
                             WHERE i.inhparent = c.oid AND k.relkind = 'p'))
                   FROM pg_catalog.pg_class c WHERE c.oid = $1",
                    None,
                    &[relid.into()],
                )?
                .first();
            Ok::<_, TesseraError>((
                row.get::<String>(1)?,
                row.get::<String>(2)?.unwrap_or_default(),
                row.get::<String>(3)?.unwrap_or_default(),
                row.get::<bool>(4)?.unwrap_or(false),
                row.get::<bool>(5)?.unwrap_or(false),
                row.get::<String>(6)?,
                row.get::<bool>(7)?.unwrap_or(false),
            ))
        })?;
    let display = display.ok_or_else(|| {
        TesseraError::new(
            PgSqlErrorCode::ERRCODE_UNDEFINED_TABLE,
            format!("relation with OID {} does not exist", relid.to_u32()),
        )
    })?;
    if !owner_ok {
        return Err(TesseraError::new(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!("must be owner of table {display}"),
        )
        .hint("Only the table's owner (or a superuser) can distribute it."));
    }
    if nested {
        return Err(TesseraError::new(
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            format!("cannot distribute {display}: it is a partitioned table with more than one level of partitions"),
        )
        .hint("Distribute a table partitioned one level deep: partitions that are partitioned themselves are not supported."));
    }
    if relkind != "r" && relkind != "p" {
        let what = match relkind.as_str() {
            "v" => "a view",
            "m" => "a materialized view",
            "f" => "a foreign table",
            "S" => "a sequence",
            _ => "not a table",
        };
        return Err(TesseraError::new(
            PgSqlErrorCode::ERRCODE_WRONG_OBJECT_TYPE,
            format!("cannot distribute {display}: it is {what}"),
        )
        .hint("Only regular and partitioned tables can be distributed."));
    }
    // Row-level security and policies go to the shards with the table (sharding::ddl).
    if inherits {
        // Scans of a parent would read the coordinator's empty copy of a distributed child.
        return Err(TesseraError::new(
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            format!("cannot distribute {display}: it has inheritance parents or children"),
        )
        .hint("Remove the inheritance (ALTER TABLE ... NO INHERIT) first, or use declarative partitioning (PARTITION BY), whose partitions are distributed with their parent."));
    }
    if let (Some(parent), Role::Table) = (&partition_of, role) {
        return Err(TesseraError::new(
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            format!("cannot distribute {display}: it is a partition of {parent}"),
        )
        .hint(format!("Distribute the partitioned table {parent}: its partitions are distributed with it, co-located.")));
    }
    if persistence == "t" {
        return Err(TesseraError::new(
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            format!("cannot distribute temporary table {display}"),
        ));
    }
    if catalog::find(relid)?.is_some() {
        return Err(TesseraError::new(
            PgSqlErrorCode::ERRCODE_DUPLICATE_OBJECT,
            format!("table {display} is already distributed"),
        )
        .hint("Use undistribute_table first to distribute it differently."));
    }
    Spi::run(&format!("LOCK TABLE {display} IN EXCLUSIVE MODE"))?;
    Ok(Table {
        relid,
        display,
        partitioned: relkind == "p",
    })
}

/// The distribution column: `(attnum, type, collation)`.
pub(super) fn check_column(
    table: &Table,
    column: &str,
) -> TResult<(i16, pg_sys::Oid, pg_sys::Oid)> {
    Spi::connect(|client| {
        let rows = client.select(
            "SELECT attnum, atttypid, attcollation FROM pg_catalog.pg_attribute
              WHERE attrelid = $1 AND attname = $2 AND attnum > 0 AND NOT attisdropped",
            None,
            &[table.relid.into(), column.into()],
        )?;
        let Some(row) = rows.into_iter().next() else {
            return Err(TesseraError::new(
                PgSqlErrorCode::ERRCODE_UNDEFINED_COLUMN,
                format!(
                    "column \"{column}\" of relation {} does not exist",
                    table.display
                ),
            )
            .hint("Give the name of the distribution column as it is stored (case-sensitive, without quotes)."));
        };
        Ok((
            row.get::<i16>(1)?.unwrap_or_default(),
            row.get::<pg_sys::Oid>(2)?.unwrap_or(pg_sys::InvalidOid),
            row.get::<pg_sys::Oid>(3)?.unwrap_or(pg_sys::InvalidOid),
        ))
    })
}

/// The groups that take new shards, in group order.
fn shard_groups(all: &[Node]) -> TResult<Vec<i32>> {
    let groups = active_groups(all, true);
    if groups.is_empty() {
        return Err(TesseraError::new(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            "there are no active worker nodes to place shards on",
        )
        .hint("Add workers with citus_add_node, or let the coordinator hold shards with citus_set_node_property(host, port, 'shouldhaveshards', true)."));
    }
    Ok(groups)
}

/// Moves the local rows of `table` into its shards and empties the local table. Returns the
/// number of rows moved.
fn move_rows(
    table: &Table,
    ddl: &TableDdl,
    dist_col: Option<&str>,
    shards: &[Shard],
    ranges_count: i32,
    all: &[Node],
    empty_now: bool,
) -> TResult<i64> {
    let columns = super::rows::Columns::of(table.relid)?;
    let hash_expr = match dist_col {
        Some(c) => format!(
            "pg_catalog.worker_hash(t.{})",
            pgrx::spi::quote_identifier(c)
        ),
        None => "0".to_string(),
    };
    let query = format!(
        "SELECT {hash_expr}, {} FROM ONLY {} t",
        columns.select_list("t"),
        table.display
    );
    let targets = shards
        .iter()
        .map(|s| super::rows::Target::shard(&ddl.schema, &ddl.table, s))
        .collect();
    let mut writer = super::rows::Writer::new(targets, &columns, all);
    super::rows::read_here(&query, |fields| {
        let idx = match (dist_col, fields[0]) {
            (Some(_), Some(h)) => {
                let hash = std::str::from_utf8(h)
                    .ok()
                    .and_then(|h| h.parse().ok())
                    .unwrap_or(0);
                sharding::shard_index_for_hash(hash, ranges_count)
            }
            _ => 0,
        };
        writer.push(idx, &fields[1..])
    })?;
    let moved = writer.finish()?;
    if moved > 0 {
        if empty_now {
            Spi::run(&format!("TRUNCATE ONLY {}", table.display))?;
        }
        pgrx::notice!(
            "moved {moved} rows of {} into its shards; the local table is now empty",
            table.display
        );
    }
    Ok(moved)
}

/// Where a partition's shards are attached: the parent's shards (in the same order as the
/// partition's) and the partition's bound (`FOR VALUES ...` or `DEFAULT`).
pub(super) struct AttachTo {
    /// The parent's schema and name.
    pub(super) parent: (String, String),
    pub(super) parent_shards: Vec<Shard>,
    pub(super) bound: String,
}

impl AttachTo {
    /// `ALTER TABLE <parent shard> ATTACH PARTITION <shard> <bound>` for shard `index`.
    pub(super) fn attach_sql(&self, index: usize, shard: &str) -> String {
        format!(
            "ALTER TABLE {} ATTACH PARTITION {shard} {};\n",
            crate::sharding::qualified_shard(
                &self.parent.0,
                &self.parent.1,
                self.parent_shards[index].shard_id
            ),
            self.bound
        )
    }
}

/// What [`build`] does with the table's foreign keys.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum ForeignKeys {
    /// Made on the new shards once the rows are in; the local table is emptied.
    Now,
    /// Left for the caller, which distributes the tables they reference first, then empties
    /// the local tables together ([`empty_local_tables`], as foreign keys between them
    /// want) and makes the keys ([`add_table_foreign_keys`]).
    Later,
}

/// Empties the coordinator's copies of the tables (their rows are in the shards now), in one
/// TRUNCATE, as foreign keys between them want.
pub(crate) fn empty_local_tables(relids: &[pg_sys::Oid]) -> TResult<()> {
    let mut names = Vec::new();
    for &relid in relids {
        let mut all = vec![relid];
        all.extend(super::partitions::partitions_of(relid)?);
        for r in all {
            // SAFETY: a syscache lookup of a table the caller locked.
            if unsafe { pg_sys::get_rel_relkind(r) } as u8 == pg_sys::RELKIND_RELATION {
                let (schema, name) = crate::pg::nodes::rel_schema_and_name(r);
                names.push(format!(
                    "{}.{}",
                    pgrx::spi::quote_identifier(schema),
                    pgrx::spi::quote_identifier(name)
                ));
            }
        }
    }
    if names.is_empty() {
        return Ok(());
    }
    super::ddl::run_locally(&format!("TRUNCATE ONLY {}", names.join(", ")))
}

/// Creates the shards of `table` on their nodes (attached to the parent's shards, for a
/// partition), moves the rows, records the catalog.
pub(super) fn build(
    table: &Table,
    dist: DistTable,
    dist_col: Option<&str>,
    shards: Vec<Shard>,
    all: &[Node],
    attach: Option<&AttachTo>,
    foreign_keys: ForeignKeys,
) -> TResult<()> {
    let ddl = TableDdl::load(table.relid, dist.dist_attnum)?;
    if !ddl.triggers.is_empty() && !gucs::enable_unsafe_triggers() {
        return Err(super::ddl::triggers_refused(&table.display));
    }
    let mut per_group: PerGroup = BTreeMap::new();
    for (index, s) in shards.iter().enumerate() {
        for g in &s.groups {
            let local = *g == tessera_core::node::COORDINATOR_GROUP_ID;
            // The schema exists on the coordinator; on workers it may not yet.
            let sql = match attach {
                Some(a) => {
                    let mut sql = ddl.partition_shard_ddl(
                        s.shard_id,
                        a.parent_shards[index].shard_id,
                        !local,
                    )?;
                    sql.push_str(&a.attach_sql(index, &ddl.qualified_shard(s.shard_id)));
                    sql
                }
                None => ddl.shard_ddl(s.shard_id, !local)?,
            };
            let cmds = per_group.entry(*g).or_default();
            match cmds.first_mut() {
                Some((batch, _)) if !local => batch.push_str(&sql),
                _ => cmds.push((sql, Vec::new())),
            }
        }
    }
    run_per_group(per_group, all)?;
    let now = foreign_keys == ForeignKeys::Now;
    move_rows(
        table,
        &ddl,
        dist_col,
        &shards,
        shards.len() as i32,
        all,
        now,
    )?;
    if now {
        add_foreign_keys(&ddl, &dist, &shards, all)?;
    }
    catalog::insert_table(&dist, &shards)
}

/// The foreign keys of the distributed table `relid` on its shards (for tables built with
/// [`ForeignKeys::Later`], once the tables they reference are distributed too).
pub(crate) fn add_table_foreign_keys(relid: pg_sys::Oid) -> TResult<()> {
    let Some(dist) = catalog::find(relid)? else {
        return Ok(());
    };
    let ddl = TableDdl::load(relid, dist.dist_attnum)?;
    add_foreign_keys(&ddl, &dist, &catalog::shards(relid)?, &nodes::all()?)?;
    // A partition's own keys (its copies of the parent's come with the parent's).
    for partition in super::partitions::partitions_of(relid)? {
        add_table_foreign_keys(partition)?;
    }
    Ok(())
}

/// Distributes `relid` as a single-shard table of the colocation group `colocation_id` (a
/// distributed schema's), its shard on `group`; a partitioned table with its partitions.
pub(crate) fn create_single_shard(
    relid: pg_sys::Oid,
    colocation_id: i32,
    group: i32,
    foreign_keys: ForeignKeys,
) -> TResult<()> {
    let table = check_table(relid, Role::Table)?;
    let all = nodes::all()?;
    let shards = vec![Shard {
        shard_id: catalog::next_shard_id()?,
        min: None,
        max: None,
        groups: vec![group],
    }];
    let dist = DistTable {
        relid,
        method: Method::None,
        dist_attnum: 0,
        colocation_id,
        repmodel: 's',
    };
    build(&table, dist, None, shards, &all, None, foreign_keys)?;
    if table.partitioned {
        for partition in super::partitions::partitions_of(relid)? {
            super::partitions::distribute_partition(relid, partition, foreign_keys)?;
        }
    }
    Ok(())
}

/// The table's foreign keys on its new shards (checked as `ALTER TABLE ... ADD CONSTRAINT`
/// checks them: to a co-located table on the distribution column, or to a reference table).
pub(super) fn add_foreign_keys(
    ddl: &TableDdl,
    dist: &DistTable,
    shards: &[Shard],
    all: &[Node],
) -> TResult<()> {
    if ddl.foreign_keys.is_empty() {
        return Ok(());
    }
    let keys = ddl
        .foreign_keys
        .iter()
        .map(|oid| super::foreign_keys::check(*oid, dist))
        .collect::<TResult<Vec<_>>>()?;
    let mut per_group: PerGroup = BTreeMap::new();
    for (index, s) in shards.iter().enumerate() {
        let shard = ddl.qualified_shard(s.shard_id);
        let mut sql = String::new();
        for fk in &keys {
            sql.push_str(&format!(
                "ALTER TABLE {shard} ADD CONSTRAINT {} {};\n",
                pgrx::spi::quote_identifier(sharding::shard_name(&fk.name, s.shard_id)),
                fk.shard_def(index)
            ));
        }
        for g in &s.groups {
            per_group
                .entry(*g)
                .or_default()
                .push((sql.clone(), Vec::new()));
        }
    }
    run_per_group(per_group, all)
}

fn create_distributed(
    relid: pg_sys::Oid,
    column: &str,
    distribution_type: &str,
    colocate_with: &str,
    shard_count: Option<i32>,
) -> TResult<()> {
    match distribution_type {
        "hash" => {}
        "append" | "range" => {
            return Err(TesseraError::new(
                PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
                format!("distribution_type '{distribution_type}' is not supported"),
            )
            .hint("Use hash distribution (the default)."))
        }
        other => {
            return Err(invalid(format!("unknown distribution_type '{other}'")).hint("Use 'hash'."))
        }
    }
    let table = check_table(relid, Role::Table)?;
    let (attnum, type_oid, collation) = check_column(&table, column)?;
    if hash_proc_for_type(type_oid).is_none() {
        return Err(no_hash_function(&type_name(type_oid)));
    }
    if let Some(n) = shard_count {
        sharding::check_shard_count(n).map_err(invalid)?;
    }

    // Colocation: a named table's group, a new group, or the default group for these properties.
    let (colocation_id, count, source) = match colocate_with {
        "none" => {
            let count = shard_count.unwrap_or_else(gucs::shard_count);
            sharding::check_shard_count(count).map_err(invalid)?;
            (
                catalog::insert_colocation(count, 1, type_oid, collation)?,
                count,
                None,
            )
        }
        "default" => {
            let count = shard_count.unwrap_or_else(gucs::shard_count);
            sharding::check_shard_count(count).map_err(invalid)?;
            match catalog::default_colocation(count, type_oid, collation)? {
                Some(id) => (id, count, catalog::any_table_in_colocation(id)?),
                None => (
                    catalog::insert_colocation(count, 1, type_oid, collation)?,
                    count,
                    None,
                ),
            }
        }
        name => {
            let other_oid = Spi::get_one_with_args::<pg_sys::Oid>(
                "SELECT to_regclass($1)::oid",
                &[name.into()],
            )?
            .ok_or_else(|| {
                TesseraError::new(
                    PgSqlErrorCode::ERRCODE_UNDEFINED_TABLE,
                    format!("relation \"{name}\" given as colocate_with does not exist"),
                )
            })?;
            let other = catalog::find(other_oid)?
                .filter(|t| t.method == Method::Hash)
                .ok_or_else(|| {
                    invalid(format!(
                        "cannot colocate with \"{name}\": it is not a hash-distributed table"
                    ))
                    .hint("Distribute that table first, or use colocate_with => 'none'.")
                })?;
            let (count, other_type, other_coll) = catalog::colocation(other.colocation_id)?
                .unwrap_or((0, pg_sys::InvalidOid, pg_sys::InvalidOid));
            if other_type != type_oid || other_coll != collation {
                return Err(invalid(format!(
                    "cannot colocate {} with \"{name}\": the distribution column types differ ({} and {})",
                    table.display,
                    type_name(type_oid),
                    type_name(other_type)
                ))
                .hint("Colocated tables need distribution columns of the same type and collation."));
            }
            if let Some(n) = shard_count {
                if n != count {
                    return Err(invalid(format!(
                        "cannot colocate {} with \"{name}\": shard_count {n} differs from its {count} shards",
                        table.display
                    ))
                    .hint("Leave shard_count out to take the colocated table's shard count."));
                }
            }
            (other.colocation_id, count, Some(other_oid))
        }
    };

    let all = nodes::all()?;
    let shards = match source {
        // Same ranges and the same groups as the colocated table.
        Some(src) => catalog::shards(src)?
            .into_iter()
            .map(|s| {
                Ok(Shard {
                    shard_id: catalog::next_shard_id()?,
                    ..s
                })
            })
            .collect::<TResult<Vec<_>>>()?,
        None => {
            let groups = shard_groups(&all)?;
            let placement =
                sharding::place_round_robin(count as usize, &groups, colocation_id.max(0) as usize);
            sharding::shard_ranges(count)
                .into_iter()
                .zip(placement)
                .map(|(HashRange { min, max }, g)| {
                    Ok(Shard {
                        shard_id: catalog::next_shard_id()?,
                        min: Some(min),
                        max: Some(max),
                        groups: vec![g],
                    })
                })
                .collect::<TResult<Vec<_>>>()?
        }
    };
    let dist = DistTable {
        relid,
        method: Method::Hash,
        dist_attnum: attnum,
        colocation_id,
        repmodel: 's',
    };
    build(
        &table,
        dist,
        Some(column),
        shards,
        &all,
        None,
        ForeignKeys::Now,
    )?;
    if table.partitioned {
        for partition in super::partitions::partitions_of(relid)? {
            super::partitions::distribute_partition(relid, partition, ForeignKeys::Now)?;
        }
    }
    Ok(())
}

#[pg_extern(sql = false)]
fn create_distributed_table(
    table_name: Option<pg_sys::Oid>,
    distribution_column: Option<&str>,
    distribution_type: Option<&str>,
    colocate_with: Option<&str>,
    shard_count: Option<i32>,
) {
    (|| {
        let relid = required(table_name, "table_name")?;
        let column = required(distribution_column, "distribution_column")?;
        create_distributed(
            relid,
            column,
            distribution_type.unwrap_or("hash"),
            colocate_with.unwrap_or("default"),
            shard_count,
        )
    })()
    .or_report()
}

fn create_reference(relid: pg_sys::Oid) -> TResult<()> {
    let table = check_table(relid, Role::Table)?;
    if table.partitioned {
        return Err(TesseraError::new(
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            format!("cannot make {} a reference table: it is partitioned", table.display),
        )
        .hint("Partitioned tables can be hash-distributed: use create_distributed_table(table, column)."));
    }
    let all = nodes::all()?;
    let groups = active_groups(&all, false);
    if groups.is_empty() {
        return Err(TesseraError::new(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            "there are no active nodes to place the reference table on",
        )
        .hint("Register the coordinator with citus_set_coordinator_host and add workers with citus_add_node."));
    }
    // All reference tables share one colocation group: one shard, on every node.
    let colocation_id = match Spi::get_one::<i32>(
        "SELECT min(colocationid) FROM pg_catalog.pg_dist_colocation WHERE shardcount = 1 AND replicationfactor = -1",
    )? {
        Some(id) => id,
        None => catalog::insert_colocation(1, -1, pg_sys::InvalidOid, pg_sys::InvalidOid)?,
    };
    let shards = vec![Shard {
        shard_id: catalog::next_shard_id()?,
        min: None,
        max: None,
        groups,
    }];
    let dist = DistTable {
        relid,
        method: Method::None,
        dist_attnum: 0,
        colocation_id,
        repmodel: 't',
    };
    build(&table, dist, None, shards, &all, None, ForeignKeys::Now)
}

#[pg_extern(sql = false)]
fn create_reference_table(table_name: Option<pg_sys::Oid>) {
    (|| create_reference(required(table_name, "table_name")?))().or_report()
}

fn not_distributed(relid: pg_sys::Oid) -> TesseraError {
    let name = Spi::get_one_with_args::<String>("SELECT $1::regclass::text", &[relid.into()])
        .ok()
        .flatten()
        .unwrap_or_default();
    invalid(format!("relation {name} is not a distributed table"))
        .hint("Distribute it with create_distributed_table or create_reference_table.")
}

#[pg_extern(sql = false)]
fn get_shard_id_for_distribution_column(
    table_name: Option<pg_sys::Oid>,
    distribution_value: Option<AnyElement>,
) -> i64 {
    (|| -> TResult<i64> {
        let relid = required(table_name, "table_name")?;
        let table = catalog::find(relid)?.ok_or_else(|| not_distributed(relid))?;
        let shards = catalog::shards(relid)?;
        if table.kind() != crate::metadata::table::TableKind::Hash {
            return shards
                .first()
                .map(|s| s.shard_id)
                .ok_or_else(|| not_distributed(relid));
        }
        let value = required(distribution_value, "distribution_value")?;
        let col_type = Spi::get_one_with_args::<pg_sys::Oid>(
            "SELECT atttypid FROM pg_catalog.pg_attribute WHERE attrelid = $1 AND attnum = $2",
            &[relid.into(), table.dist_attnum.into()],
        )?
        .unwrap_or(pg_sys::InvalidOid);
        let hash = if value.oid() == col_type {
            let proc = hash_proc_for_type(col_type)
                .ok_or_else(|| no_hash_function(&type_name(col_type)))?;
            crate::sharding::hash_datum(proc, pg_sys::DEFAULT_COLLATION_OID, value.datum())
        } else {
            // Another type (an unknown literal arrives as text): convert through text.
            let cast = format!(
                "SELECT pg_catalog.worker_hash(CAST($1::text AS {}))",
                type_name(col_type)
            );
            let as_text = anyelement_text(&value)?;
            Spi::get_one_with_args::<i32>(&cast, &[as_text.into()])?.unwrap_or(0)
        };
        // By the stored ranges, as queries route: moved and split shards answer for what
        // they hold.
        let meta = crate::metadata::cache::lookup(relid)?.ok_or_else(|| not_distributed(relid))?;
        Ok(meta.shards[meta.shard_for_hash(hash)?].shard_id)
    })()
    .or_report()
}

/// The text form of a value of any type (its output function).
fn anyelement_text(value: &AnyElement) -> TResult<String> {
    let mut out_func = pg_sys::InvalidOid;
    let mut varlena = false;
    // SAFETY: getTypeOutputInfo fills the two out-parameters for a valid type; the output
    // function returns a palloc'd C string.
    unsafe {
        pg_sys::getTypeOutputInfo(value.oid(), &mut out_func, &mut varlena);
        let cstr = pg_sys::OidOutputFunctionCall(out_func, value.datum());
        Ok(std::ffi::CStr::from_ptr(cstr)
            .to_string_lossy()
            .into_owned())
    }
}

/// `column_to_column_name(table, partkey)`: the name of the column a `pg_dist_partition.partkey`
/// (a Var node's text) names, as Citus's function of that name.
#[pg_extern(sql = false)]
fn column_to_column_name(table_name: pg_sys::Oid, column_var_text: &str) -> String {
    (|| -> TResult<String> {
        let attnum = tessera_core::sharding::partkey_attnum(column_var_text).ok_or_else(|| {
            TesseraError::new(
                PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                format!("not a column reference: {column_var_text}"),
            )
            .hint("Pass pg_dist_partition.partkey, or the result of column_name_to_column().")
        })?;
        column_name(table_name, attnum)
    })()
    .or_report()
}

/// `column_name_to_column(table, column)`: the Var node text of a column, the form
/// `pg_dist_partition.partkey` stores.
#[pg_extern(sql = false)]
fn column_name_to_column(table_name: pg_sys::Oid, column_name: &str) -> String {
    (|| -> TResult<String> {
        let name = std::ffi::CString::new(column_name).map_err(|_| {
            TesseraError::new(
                PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                "a column name holds a NUL byte",
            )
        })?;
        // SAFETY: a syscache lookup by name.
        let attnum = unsafe { pg_sys::get_attnum(table_name, name.as_ptr()) };
        if attnum <= 0 {
            return Err(TesseraError::new(
                PgSqlErrorCode::ERRCODE_UNDEFINED_COLUMN,
                format!(
                    "column \"{column_name}\" of relation {} does not exist",
                    display_name(table_name)
                ),
            ));
        }
        Ok(catalog::column_var_text(table_name, attnum))
    })()
    .or_report()
}

/// The name of column `attnum` of `relid` (an error for a dropped or missing column).
pub(super) fn column_name(relid: pg_sys::Oid, attnum: i16) -> TResult<String> {
    // SAFETY: a syscache lookup with missing_ok; the name is a palloc'd string or null.
    let name = unsafe { pg_sys::get_attname(relid, attnum, true) };
    if name.is_null() {
        return Err(TesseraError::new(
            PgSqlErrorCode::ERRCODE_UNDEFINED_COLUMN,
            format!(
                "column {attnum} of relation {} does not exist",
                display_name(relid)
            ),
        ));
    }
    // SAFETY: a non-null NUL-terminated string.
    Ok(unsafe { crate::pg::nodes::string(name) })
}

/// `schema.table` of a relation, for messages.
fn display_name(relid: pg_sys::Oid) -> String {
    let (schema, name) = crate::pg::nodes::rel_schema_and_name(relid);
    format!("{schema}.{name}")
}

#[pg_extern(sql = false)]
fn shard_name(table_name: pg_sys::Oid, shard_id: i64) -> String {
    (|| -> TResult<String> {
        let (schema, name) = Spi::connect(|client| {
            let row = client
                .select(
                    "SELECT n.nspname::text, c.relname::text FROM pg_catalog.pg_class c
                       JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = $1",
                    None,
                    &[table_name.into()],
                )?
                .first();
            Ok::<_, TesseraError>((
                row.get::<String>(1)?.unwrap_or_default(),
                row.get::<String>(2)?.unwrap_or_default(),
            ))
        })?;
        let shard = pgrx::spi::quote_identifier(sharding::shard_name(&name, shard_id));
        Ok(if schema == "public" {
            shard
        } else {
            format!("{}.{shard}", pgrx::spi::quote_identifier(schema))
        })
    })()
    .or_report()
}

/// The `sql_drop` event trigger: when distributed tables are dropped (directly, by CASCADE or
/// with their schema), drop their shards on every placement, in the same transaction, and
/// forget them in the catalog.
#[pg_extern(sql = false)]
fn tessera_drop_trigger() {
    (|| -> TResult<()> {
        // It runs as whoever dropped something: its queries see only built-in functions and
        // operators.
        let _path = crate::pg::guc::GucScope::catalog_only();
        super::distributed_objects::forget_dropped()?;
        crate::metadata::schema::forget_dropped()?;
        let dropped: Vec<(pg_sys::Oid, String, String, i32)> = Spi::connect(|client| {
            let mut out = Vec::new();
            for row in client.select(
                "SELECT d.objid, d.schema_name::text, d.object_name::text, p.colocationid
                   FROM pg_catalog.pg_event_trigger_dropped_objects() d
                   JOIN pg_catalog.pg_dist_partition p ON p.logicalrelid::oid = d.objid
                  WHERE d.object_type = 'table'",
                None,
                &[],
            )? {
                out.push((
                    row.get::<pg_sys::Oid>(1)?.unwrap_or(pg_sys::InvalidOid),
                    row.get::<String>(2)?.unwrap_or_default(),
                    row.get::<String>(3)?.unwrap_or_default(),
                    row.get::<i32>(4)?.unwrap_or_default(),
                ));
            }
            Ok::<_, TesseraError>(out)
        })?;
        if dropped.is_empty() {
            return Ok(());
        }
        let all = nodes::all()?;
        let mut per_group: PerGroup = BTreeMap::new();
        for (relid, schema, name, colocation_id) in &dropped {
            push_per_placement(&mut per_group, *relid, schema, name, |t| {
                format!("DROP TABLE IF EXISTS {t} CASCADE")
            })?;
            catalog::delete_table(*relid, *colocation_id, false)?;
        }
        run_per_group(per_group, &all)
    })()
    .or_report()
}

/// The bytes on disk of one relation's files (every fork, every segment), as
/// `pg_relation_size` sums them, read from its `pg_class` row without opening the relation: a
/// new session asking for thousands of shards' sizes builds no relcache entry for each, which
/// costs more than the sizes themselves. No lock is taken: a relation dropped meanwhile counts
/// the files still there (or none). NULL for a relation that does not exist.
#[pg_extern(sql = false)]
fn tessera_relation_bytes(rel: pg_sys::Oid) -> Option<i64> {
    // SAFETY: a syscache lookup, released before returning; the path is palloc'd by
    // GetRelationPath and read at once.
    unsafe {
        let tuple = pg_sys::SearchSysCache1(
            pg_sys::SysCacheIdentifier::RELOID as std::ffi::c_int,
            pg_sys::Datum::from(rel),
        );
        if tuple.is_null() {
            return None;
        }
        let form = pg_sys::heap_tuple_get_struct::<pg_sys::FormData_pg_class>(tuple);
        let (kind, filenode, space, persistence) = (
            (*form).relkind as u8,
            (*form).relfilenode,
            (*form).reltablespace,
            (*form).relpersistence as u8,
        );
        pg_sys::ReleaseSysCache(tuple);
        // Views, partitioned tables and indexes, foreign tables: no files. A mapped catalog
        // (relfilenode 0) is not a shard.
        if !matches!(kind, b'r' | b'i' | b't' | b'm' | b'S') || filenode == pg_sys::InvalidOid {
            return Some(0);
        }
        let space = if space == pg_sys::InvalidOid {
            pg_sys::MyDatabaseTableSpace
        } else {
            space
        };
        let backend = if persistence == b't' {
            pg_sys::MyBackendId
        } else {
            pg_sys::InvalidBackendId
        };
        let mut bytes = 0i64;
        for fork in 0..=pg_sys::ForkNumber::INIT_FORKNUM {
            let path = crate::pg::nodes::string(pg_sys::GetRelationPath(
                pg_sys::MyDatabaseId,
                space,
                filenode,
                backend,
                fork,
            ));
            for segment in 0.. {
                let file = if segment == 0 {
                    path.clone()
                } else {
                    format!("{path}.{segment}")
                };
                match std::fs::metadata(&file) {
                    Ok(m) => bytes += m.len() as i64,
                    Err(_) => break,
                }
            }
        }
        Some(bytes)
    }
}

/// The size of every shard placement, asked of each node that holds some, all nodes at once.
/// A node that cannot be reached contributes no rows (and a WARNING).
#[pg_extern(sql = false)]
fn shard_placement_sizes(
) -> TableIterator<'static, (name!(groupid, i32), name!(shard_id, i64), name!(size, i64))> {
    TableIterator::new(placement_sizes(false).or_report())
}

/// `(group, shard, bytes)` of every placement (of the distributed schemas' tables only, when
/// `tenants_only`), asked of each node that holds some, all nodes at once.
pub(super) fn placement_sizes(tenants_only: bool) -> TResult<Vec<(i32, i64, i64)>> {
    // By name through the catalog, which every role reads (to_regclass would want USAGE on
    // the schema); the size functions check no privilege.
    // A shard's size is pg_total_relation_size's sum: the table, its indexes, its TOAST table
    // and the TOAST table's index, each from its files (`tessera_relation_bytes`).
    const QUERY: &str = "SELECT s.shard, sum(citus.tessera_relation_bytes(r.rel))::bigint
           FROM (SELECT (e->>0)::bigint AS shard, c.oid, c.reltoastrelid
                   FROM pg_catalog.json_array_elements($1::json) e
                   JOIN pg_catalog.pg_namespace n ON n.nspname = e->>1
                   JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = e->>2) s,
                LATERAL (SELECT s.oid
                         UNION ALL SELECT s.reltoastrelid WHERE s.reltoastrelid <> 0
                         UNION ALL SELECT i.indexrelid FROM pg_catalog.pg_index i
                                    WHERE i.indrelid IN (s.oid, s.reltoastrelid)) r(rel)
          GROUP BY s.shard";
    // `[[shardid, "schema", "shard"], ...]` per group.
    let mut per_group: BTreeMap<i32, Vec<String>> = BTreeMap::new();
    Spi::connect(|client| {
        for row in client.select(
            "SELECT pl.groupid, s.shardid, n.nspname::text, c.relname::text
               FROM pg_catalog.pg_dist_shard s
               JOIN pg_catalog.pg_dist_placement pl ON pl.shardid = s.shardid
               JOIN pg_catalog.pg_class c ON c.oid = s.logicalrelid
               JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
              WHERE NOT $1 OR EXISTS (
                    SELECT 1 FROM pg_catalog.pg_dist_partition p
                      JOIN pg_catalog.pg_dist_schema ds ON ds.colocationid = p.colocationid
                     WHERE p.logicalrelid = s.logicalrelid)",
            None,
            &[tenants_only.into()],
        )? {
            let group = row.get::<i32>(1)?.unwrap_or_default();
            let shard = row.get::<i64>(2)?.unwrap_or_default();
            let schema = row.get::<String>(3)?.unwrap_or_default();
            let table = row.get::<String>(4)?.unwrap_or_default();
            per_group.entry(group).or_default().push(format!(
                "[{shard},{},{}]",
                tessera_core::sqltext::json_string(&schema),
                tessera_core::sqltext::json_string(&sharding::shard_name(&table, shard))
            ));
        }
        Ok::<_, TesseraError>(())
    })?;
    let addresses = group_nodes(&nodes::all()?);
    let mut out = Vec::new();
    let mut tasks = Vec::new();
    let mut task_groups = Vec::new();
    for (group, items) in per_group {
        let json = format!("[{}]", items.join(","));
        if group == tessera_core::node::COORDINATOR_GROUP_ID {
            Spi::connect(|client| {
                for row in client.select(QUERY, None, &[json.clone().into()])? {
                    out.push((
                        group,
                        row.get::<i64>(1)?.unwrap_or_default(),
                        row.get::<i64>(2)?.unwrap_or_default(),
                    ));
                }
                Ok::<_, TesseraError>(())
            })?;
        } else if let Some(node) = addresses.get(&group) {
            tasks.push(
                RemoteTask::new(ConnKey::for_current_session(node), QUERY)
                    .with_params(vec![Some(json)]),
            );
            task_groups.push(group);
        }
    }
    for (group, result) in task_groups.into_iter().zip(run_tasks(&tasks, tasks.len())?) {
        match result {
            Ok(results) => {
                if let Some(r) = results.last() {
                    for i in 0..r.ntuples() {
                        let id = r.value(i, 0).and_then(|v| v.parse().ok()).unwrap_or(0);
                        let size = r.value(i, 1).and_then(|v| v.parse().ok()).unwrap_or(0);
                        out.push((group, id, size));
                    }
                }
            }
            Err(e) => e.into_tessera().warn(),
        }
    }
    Ok(out)
}

/// Gives a node that joins the cluster (group `group`) a copy of every reference table: the
/// shard table, its rows (from the coordinator's copy), and the placement row, all in the
/// caller's transaction.
pub(crate) fn replicate_to_new_node(group: i32) -> TResult<()> {
    let tables: Vec<pg_sys::Oid> = Spi::connect(|client| {
        let mut out = Vec::new();
        for row in client.select(
            "SELECT logicalrelid::oid FROM pg_catalog.pg_dist_partition WHERE repmodel = 't' ORDER BY 1",
            None,
            &[],
        )? {
            out.push(row.get::<pg_sys::Oid>(1)?.unwrap_or(pg_sys::InvalidOid));
        }
        Ok::<_, TesseraError>(out)
    })?;
    if tables.is_empty() {
        return Ok(());
    }
    let all = nodes::all()?;
    for relid in tables {
        let Some(shard) = catalog::shards(relid)?.into_iter().next() else {
            continue;
        };
        if shard.groups.contains(&group) {
            continue;
        }
        let ddl = TableDdl::load(relid, 0)?;
        let shard_table = ddl.qualified_shard(shard.shard_id);
        if !shard
            .groups
            .contains(&tessera_core::node::COORDINATOR_GROUP_ID)
        {
            return Err(TesseraError::new(
                PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                format!("cannot copy reference table shard {shard_table} to the new node: the coordinator holds no copy of it"),
            )
            .hint("Register the coordinator with citus_set_coordinator_host before creating reference tables."));
        }
        let mut per_group = PerGroup::new();
        per_group
            .entry(group)
            .or_default()
            .push((ddl.shard_ddl(shard.shard_id, true)?, Vec::new()));
        run_per_group(per_group, &all)?;
        // The rows, from the coordinator's copy.
        let columns = super::rows::Columns::of(relid)?;
        let mut target = super::rows::Target::shard(&ddl.schema, &ddl.table, &shard);
        target.groups = vec![group];
        let mut writer = super::rows::Writer::new(vec![target], &columns, &all);
        super::rows::read_here(
            &format!(
                "SELECT {} FROM ONLY {shard_table} t",
                columns.select_list("t")
            ),
            |fields| writer.push(0, fields),
        )?;
        writer.finish()?;
        Spi::run_with_args(
            "INSERT INTO pg_catalog.pg_dist_placement (shardid, shardstate, shardlength, groupid)
             VALUES ($1, 1, 0, $2)",
            &[shard.shard_id.into(), group.into()],
        )?;
    }
    Ok(())
}
