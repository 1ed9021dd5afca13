//! CREATE INDEX on a distributed table: the new index, renamed `<index>_<shardid>`, on every
//! shard (pgvector's hnsw and ivfflat included); DROP INDEX drops the shard indexes.
//! `CREATE INDEX CONCURRENTLY` builds the coordinator's index, then each shard's outside a
//! transaction block, `tessera.max_index_builds_per_node` at a time per node, every node at
//! once; `DROP INDEX CONCURRENTLY` likewise. Forms the shards cannot follow yet (REINDEX
//! CONCURRENTLY, ALTER INDEX, RENAME) are refused.

use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::spi::Spi;

use super::{
    distributed_index_table, is_distributed, range_var_relid, refused, rel_schema_and_name, Step,
    Utility,
};
use crate::ddl::propagate::{push_per_placement, push_per_shard, PerGroup};
use crate::error::{TResult, TesseraError};
use crate::metadata::table as catalog;
use crate::pg::nodes::list_ptrs;
use crate::sharding::ddl::{index_def, shard_index_ddl};

/// The indexes of `relid`.
pub(crate) fn indexes_of(relid: pg_sys::Oid) -> TResult<Vec<pg_sys::Oid>> {
    Spi::connect(|client| {
        let mut out = Vec::new();
        for row in client.select(
            "SELECT indexrelid FROM pg_catalog.pg_index WHERE indrelid = $1",
            None,
            &[relid.into()],
        )? {
            out.push(row.get::<pg_sys::Oid>(1)?.unwrap_or(pg_sys::InvalidOid));
        }
        Ok(out)
    })
}

/// Runs the shards' `... CONCURRENTLY` index commands outside a transaction block on the
/// workers, `tessera.max_index_builds_per_node` at a time per node, every node at once; the
/// coordinator's own placements (of reference tables) in the statement's transaction, not
/// concurrently (SPI runs in a transaction block), after the others.
fn run_concurrently(mut per_group: PerGroup) -> TResult<()> {
    if let Some(local) = per_group.get_mut(&tessera_core::node::COORDINATOR_GROUP_ID) {
        for (sql, _) in local.iter_mut() {
            *sql = sql.replacen(" CONCURRENTLY", "", 1);
        }
    }
    crate::ddl::propagate::run_per_group_in_rounds(
        per_group,
        &crate::metadata::node::all()?,
        crate::gucs::max_index_builds_per_node(),
    )
}

/// `CREATE [UNIQUE] INDEX CONCURRENTLY ...` of a shard's `CREATE [UNIQUE] INDEX ...`.
fn concurrently(ddl: &str) -> String {
    for prefix in ["CREATE UNIQUE INDEX ", "CREATE INDEX "] {
        if let Some(rest) = ddl.strip_prefix(prefix) {
            return format!("{prefix}CONCURRENTLY {rest}");
        }
    }
    ddl.to_string()
}

/// # Safety
/// `u` is an IndexStmt.
pub(super) unsafe fn create(u: &Utility) -> TResult<Step> {
    // SAFETY: the tag was checked by the table.
    let s = unsafe { u.node::<pg_sys::IndexStmt>() };
    // SAFETY: an IndexStmt's relation is a valid RangeVar.
    let relid = unsafe { range_var_relid((*s).relation) };
    if relid == pg_sys::InvalidOid || catalog::find(relid)?.is_none() {
        return Ok(Step::Pass);
    }
    // SAFETY: reading the IndexStmt.
    let concurrent = unsafe { (*s).concurrent };
    // SAFETY: reading the IndexStmt; a lookup of an index name in the table's schema.
    let (exists, unique) = unsafe {
        let exists = (*s).if_not_exists
            && !(*s).idxname.is_null()
            && pg_sys::get_relname_relid((*s).idxname, pg_sys::get_rel_namespace(relid))
                != pg_sys::InvalidOid;
        (exists, (*s).unique)
    };
    // CREATE INDEX CONCURRENTLY commits the coordinator's index before the shards are built:
    // what the shards would refuse is refused first (an IndexStmt's indexParams are IndexElems).
    if concurrent && !exists && unique {
        let dist = catalog::find(relid)?.expect("checked above");
        if dist.dist_attnum > 0 {
            // SAFETY: a lookup of the table's column name by number.
            let column = unsafe {
                crate::pg::nodes::string(pg_sys::get_attname(relid, dist.dist_attnum, false))
            };
            // SAFETY: as above.
            let covers = unsafe {
                list_ptrs((*s).indexParams).into_iter().any(|e| {
                    let e = e as *mut pg_sys::IndexElem;
                    if !(*e).name.is_null() {
                        return crate::pg::nodes::string((*e).name) == column;
                    }
                    // `((tenant_id))`: an expression that is the column itself.
                    let x = (*e).expr;
                    if x.is_null()
                        || !crate::pg::nodes::is_a(
                            x as *const std::ffi::c_void,
                            pg_sys::NodeTag::T_ColumnRef,
                        )
                    {
                        return false;
                    }
                    let fields = list_ptrs((*(x as *mut pg_sys::ColumnRef)).fields);
                    fields.len() == 1
                        && crate::pg::nodes::is_a(
                            fields[0] as *const std::ffi::c_void,
                            pg_sys::NodeTag::T_String,
                        )
                        && crate::pg::nodes::string((*(fields[0] as *mut pg_sys::String)).sval)
                            == column
                })
            };
            if !covers {
                return Err(TesseraError::new(
                    PgSqlErrorCode::ERRCODE_INVALID_TABLE_DEFINITION,
                    "cannot create a unique index on a distributed table without its distribution column",
                )
                .hint("Include the distribution column in the unique index."));
            }
        }
    }
    // A plain CREATE INDEX that is its whole transaction builds up to
    // tessera.max_index_builds_per_node shards at a time per node, each connection in a remote
    // transaction of its own (committed together, two-phase). Inside a transaction block or a
    // function the session's one connection per node builds them one after another: a later
    // command there would wait for the locks the other connections hold until the commit.
    let per_node = crate::gucs::max_index_builds_per_node();
    // Not for a partitioned table: its partitions' shard indexes are renamed afterwards, on
    // the session's connection, which cannot see an index another one built.
    // SAFETY: reading the transaction state and the table's kind.
    let lanes = !concurrent
        && per_node > 1
        && u.toplevel
        && unsafe {
            !pg_sys::IsTransactionBlock()
                && pg_sys::get_rel_relkind(relid) == pg_sys::RELKIND_RELATION as std::ffi::c_char
        };
    let before = indexes_of(relid)?;
    Ok(Step::Propagate(Box::new(move || {
        if concurrent {
            // The local build released its lock on the table: the lock it held (writes go on,
            // DDL and other index builds wait) holds again while the shards are built.
            // SAFETY: a lock by OID in the current transaction.
            unsafe {
                pg_sys::LockRelationOid(relid, pg_sys::ShareUpdateExclusiveLock as pg_sys::LOCKMODE)
            };
        }
        let (schema, table) = rel_schema_and_name(relid);
        let dist = catalog::find(relid)?.expect("checked before");
        let mut per_group = PerGroup::new();
        let new: Vec<pg_sys::Oid> = indexes_of(relid)?
            .into_iter()
            .filter(|i| !before.contains(i))
            .collect();
        for &index in &new {
            let (name, def) = index_def(index)?;
            if dist.dist_attnum > 0 && def.starts_with("CREATE UNIQUE INDEX") {
                let covers = Spi::get_one_with_args::<bool>(
                    // Key columns only: an INCLUDE column does not make the index unique on it.
                    "SELECT $2 = ANY ((indkey::int2[])[0:indnkeyatts - 1])
                       FROM pg_catalog.pg_index WHERE indexrelid = $1",
                    &[index.into(), dist.dist_attnum.into()],
                )?
                .unwrap_or(false);
                if !covers {
                    return Err(TesseraError::new(
                        PgSqlErrorCode::ERRCODE_INVALID_TABLE_DEFINITION,
                        format!("cannot create unique index \"{name}\" on a distributed table without its distribution column"),
                    )
                    .hint("Include the distribution column in the unique index."));
                }
            }
            push_per_shard(&mut per_group, relid, &schema, &table, |_, shard_id, _| {
                let ddl = shard_index_ddl(&schema, &table, &name, &def, shard_id)?;
                Ok(vec![if concurrent { concurrently(&ddl) } else { ddl }])
            })?;
        }
        if concurrent {
            // The coordinator's index is built and committed already.
            return run_concurrently(per_group).map_err(|e| {
                e.hint(
                    "A shard whose build failed keeps an invalid index, as CREATE INDEX \
                     CONCURRENTLY leaves one: DROP INDEX the index and create it again.",
                )
            });
        }
        // Not after other remote work in this transaction, nor in an extended-protocol
        // pipeline (several statements before one Sync share the transaction, and
        // IsTransactionBlock() does not say so): a command on the session's connection would
        // wait on a lane's locks, or a lane on its. The statement then commits at once, as
        // PreventInTransactionBlock has it, so no later statement of a pipeline joins it.
        // SAFETY: reading and setting this backend's transaction flags.
        let lanes = lanes
            && !crate::transaction::has_remote_work()
            && unsafe { pg_sys::MyXactFlags } as u32 & pg_sys::XACT_FLAGS_PIPELINING == 0;
        if lanes {
            // SAFETY: as above.
            unsafe { pg_sys::MyXactFlags |= pg_sys::XACT_FLAGS_NEEDIMMEDIATECOMMIT as i32 };
            crate::ddl::propagate::run_per_group_in_lanes(
                per_group,
                &crate::metadata::node::all()?,
                per_node,
            )?;
        } else {
            super::run_batched(per_group)?;
        }
        for index in new {
            crate::udf::partitions::name_partition_indexes(relid, index, None)?;
        }
        Ok(())
    })))
}

/// # Safety
/// `u` is a DropStmt of indexes.
pub(super) unsafe fn drop(u: &Utility) -> TResult<Step> {
    // SAFETY: the tag and removeType were checked by the caller.
    let s = unsafe { u.node::<pg_sys::DropStmt>() };
    let mut indexes = Vec::new();
    // SAFETY: a DROP INDEX's objects are name lists.
    for names in unsafe { list_ptrs((*s).objects) } {
        // SAFETY: as above; missing_ok lookups.
        let (index, table) = unsafe {
            let rv = pg_sys::makeRangeVarFromNameList(names as *mut pg_sys::List);
            let index = range_var_relid(rv);
            if index == pg_sys::InvalidOid {
                continue;
            }
            (index, pg_sys::IndexGetRelation(index, true))
        };
        if table == pg_sys::InvalidOid || catalog::find(table)?.is_none() {
            continue;
        }
        let (schema, _) = rel_schema_and_name(table);
        let (_, index_name) = rel_schema_and_name(index);
        indexes.push((table, schema, index_name));
    }
    if indexes.is_empty() {
        return Ok(Step::Pass);
    }
    // SAFETY: reading the DropStmt.
    let concurrent = unsafe { (*s).concurrent };
    Ok(Step::Propagate(Box::new(move || {
        let mut per_group = PerGroup::new();
        for (table, schema, index) in indexes {
            push_per_placement(&mut per_group, table, &schema, &index, |i| {
                if concurrent {
                    format!("DROP INDEX CONCURRENTLY IF EXISTS {i}")
                } else {
                    format!("DROP INDEX IF EXISTS {i}")
                }
            })?;
        }
        if concurrent {
            return run_concurrently(per_group);
        }
        super::run_batched(per_group)
    })))
}

/// REINDEX of a distributed table or of one of its indexes: the same on every shard (in the
/// remote transaction, so CONCURRENTLY, which cannot run in one, is refused).
///
/// # Safety
/// `u` is a ReindexStmt.
pub(super) unsafe fn reindex(u: &Utility) -> TResult<Step> {
    // SAFETY: the tag was checked by the table; relation is null or a valid RangeVar; params
    // are DefElems.
    unsafe {
        let s = u.node::<pg_sys::ReindexStmt>();
        let (table, index) = match (*s).kind {
            pg_sys::ReindexObjectType::REINDEX_OBJECT_TABLE => {
                let relid = if (*s).relation.is_null() {
                    pg_sys::InvalidOid
                } else {
                    range_var_relid((*s).relation)
                };
                (is_distributed(relid)?.then_some(relid), None)
            }
            pg_sys::ReindexObjectType::REINDEX_OBJECT_INDEX => (
                distributed_index_table((*s).relation)?,
                Some(range_var_relid((*s).relation)),
            ),
            _ => (None, None),
        };
        let Some(table) = table else {
            return Ok(Step::Pass);
        };
        let options: Vec<String> = list_ptrs((*s).params)
            .into_iter()
            .map(|d| crate::pg::nodes::string((*(d as *mut pg_sys::DefElem)).defname))
            .collect();
        if options.iter().any(|o| o != "verbose") {
            return Err(refused(
                "REINDEX with CONCURRENTLY or TABLESPACE",
                table,
                "Run REINDEX without those options: the shards are reindexed in parallel on the workers.",
            ));
        }
        Ok(super::shards::reindex(table, index, !options.is_empty()))
    }
}

/// ALTER INDEX (options, RENAME) of a distributed table's index: refused.
///
/// # Safety
/// `rv` is null or a valid RangeVar naming an index.
pub(super) unsafe fn refuse_alter(
    rv: *mut pg_sys::RangeVar,
    what: &str,
    hint: &str,
) -> TResult<()> {
    // SAFETY: forwarded.
    match unsafe { distributed_index_table(rv) }? {
        Some(t) => Err(refused(what, t, hint)),
        None => Ok(()),
    }
}
