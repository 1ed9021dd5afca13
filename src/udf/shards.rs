//! Shard lookups and sizes: `get_shard_id_for_distribution_column`, `shard_name`,
//! `column_to_column_name` / `column_name_to_column`, and the bytes of shard placements
//! (`tessera_relation_bytes`, `shard_placement_sizes`).

use std::collections::BTreeMap;

use pgrx::prelude::*;
use pgrx::spi::Spi;
use pgrx::AnyElement;
use tessera_core::sharding::{self};

use super::distribute::{invalid, required};
use crate::connection::{run_tasks, ConnKey, RemoteTask};
use crate::ddl::propagate::group_nodes;
use crate::error::{OrReport, TResult, TesseraError};
use crate::metadata::node::{self as nodes};
use crate::metadata::table::{self as catalog};
use crate::sharding::{hash_proc_for_type, no_hash_function, type_name};

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
