//! Distributing tables: `create_distributed_table` and `create_reference_table` (the shard
//! lookups are in `udf::shards`, the `sql_drop` trigger that drops shards in `ddl::drop`).
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
use tessera_core::sharding::{self, HashRange};

use crate::ddl::propagate::{active_groups, run_per_group, PerGroup};
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

pub(super) fn invalid(msg: impl Into<String>) -> TesseraError {
    TesseraError::new(PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE, msg)
}

pub(super) fn required<T>(v: Option<T>, what: &str) -> TResult<T> {
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
    let columns = crate::operations::rows::Columns::of(table.relid)?;
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
        .map(|s| {
            crate::operations::rows::Target::shard(
                &ddl.schema,
                &ddl.table,
                s.shard_id,
                s.groups.clone(),
            )
        })
        .collect();
    let mut writer = crate::operations::rows::Writer::new(targets, &columns, all);
    crate::operations::rows::read_here(&query, |fields| {
        let idx = match (dist_col, fields[0]) {
            (None, _) => 0,
            (Some(c), None) => {
                return Err(TesseraError::new(
                    PgSqlErrorCode::ERRCODE_NOT_NULL_VIOLATION,
                    format!(
                        "cannot distribute {}: a row has NULL in the distribution column {}",
                        table.display,
                        pgrx::spi::quote_identifier(c)
                    ),
                )
                .hint("Every row of a distributed table needs a value in its distribution column: fill in or delete those rows first."));
            }
            (Some(_), Some(h)) => {
                let hash = std::str::from_utf8(h)
                    .ok()
                    .and_then(|h| h.parse().ok())
                    .ok_or_else(|| {
                        TesseraError::new(
                            PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
                            "worker_hash returned something other than an integer",
                        )
                    })?;
                sharding::shard_index_for_hash(hash, ranges_count)
            }
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
pub(crate) struct AttachTo {
    /// The parent's schema and name.
    pub(crate) parent: (String, String),
    pub(crate) parent_shards: Vec<Shard>,
    pub(crate) bound: String,
}

impl AttachTo {
    /// `ALTER TABLE <parent shard> ATTACH PARTITION <shard> <bound>` for shard `index`.
    pub(crate) fn attach_sql(&self, index: usize, shard: &str) -> String {
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
    crate::ddl::run_locally(&format!("TRUNCATE ONLY {}", names.join(", ")))
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
        return Err(crate::ddl::triggers_refused(&table.display));
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
pub(crate) fn add_foreign_keys(
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
        .map(|oid| crate::sharding::foreign_keys::check(*oid, dist))
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
