//! Sharding glue: hashing a distribution value with its type's default hash function, and the
//! SQL functions built on it. The shard math itself (ranges, shard of a hash, placement, shard
//! names) is plain Rust in `tessera_core::sharding`.
//!
//! - `ddl`: the statements that create a shard of a table on a node.
//! - `foreign_keys`: which foreign keys the shards can enforce, and their shard definitions.

pub mod ddl;
pub mod foreign_keys;
pub(crate) mod privileges;

use pgrx::prelude::*;
use pgrx::AnyElement;

use crate::error::{TResult, TesseraError};

/// The columns of `relid` an INSERT of its rows names (not dropped, not generated), in
/// attribute order.
pub fn insertable_column_names(relid: pg_sys::Oid) -> TResult<Vec<String>> {
    pgrx::spi::Spi::connect(|client| {
        let mut cols = Vec::new();
        for row in client.select(
            "SELECT attname::text FROM pg_catalog.pg_attribute
              WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped AND attgenerated = ''
              ORDER BY attnum",
            None,
            &[relid.into()],
        )? {
            cols.push(row.get::<String>(1)?.unwrap_or_default());
        }
        Ok::<_, TesseraError>(cols)
    })
}

/// [`insertable_column_names`], quoted.
pub fn insertable_columns(relid: pg_sys::Oid) -> TResult<Vec<String>> {
    Ok(insertable_column_names(relid)?
        .iter()
        .map(pgrx::spi::quote_identifier)
        .collect())
}

/// The schema-qualified, quoted name of shard `shard_id` of the table `schema.table` (or of one
/// of its indexes or constraints, named the same way).
pub fn qualified_shard(schema: &str, table: &str, shard_id: i64) -> String {
    format!(
        "{}.{}",
        pgrx::spi::quote_identifier(schema),
        pgrx::spi::quote_identifier(tessera_core::sharding::shard_name(table, shard_id))
    )
}

/// The default hash function (support proc 1 of the default hash opclass) of a type.
pub fn hash_proc_for_type(typid: pg_sys::Oid) -> Option<pg_sys::Oid> {
    // SAFETY: lookup_type_cache returns a long-lived cache entry (or raises an ERROR for an
    // unknown type, which pgrx turns into a Rust panic that unwinds to the caller).
    let proc = unsafe {
        let entry = pg_sys::lookup_type_cache(typid, pg_sys::TYPECACHE_HASH_PROC as i32);
        (*entry).hash_proc
    };
    (proc != pg_sys::InvalidOid).then_some(proc)
}

/// The error for a type that cannot be hashed.
pub fn no_hash_function(type_name: &str) -> TesseraError {
    TesseraError::new(
        PgSqlErrorCode::ERRCODE_UNDEFINED_FUNCTION,
        format!("could not identify a hash function for type {type_name}"),
    )
    .hint("Distribute by a column whose type has a default hash operator class (integer, bigint, text, uuid, ...).")
}

/// Hashes a (non-NULL) value with `proc`, as PostgreSQL's hash indexes and hash joins do.
pub fn hash_datum(proc: pg_sys::Oid, collation: pg_sys::Oid, datum: pg_sys::Datum) -> i32 {
    // SAFETY: proc is a hash support function taking one argument of the datum's type and
    // returning int4; an ERROR it raises unwinds through pgrx's guard.
    let h = unsafe { pg_sys::OidFunctionCall1Coll(proc, collation, datum) };
    h.value() as i32
}

/// The name of a type, for messages.
pub fn type_name(typid: pg_sys::Oid) -> String {
    crate::pg::spi::get_one_with_args::<String>(
        "SELECT pg_catalog.format_type($1, NULL)",
        &[typid.into()],
    )
    .ok()
    .flatten()
    .unwrap_or_else(|| format!("oid {}", typid.to_u32()))
}

/// Citus's `worker_hash(value)`: the int4 hash of a value with its type's default hash function.
#[pg_extern(sql = false)]
fn worker_hash(value: AnyElement) -> i32 {
    let run = || -> TResult<i32> {
        let proc = hash_proc_for_type(value.oid())
            .ok_or_else(|| no_hash_function(&type_name(value.oid())))?;
        Ok(hash_datum(
            proc,
            pg_sys::DEFAULT_COLLATION_OID,
            value.datum(),
        ))
    };
    crate::error::OrReport::or_report(run())
}
