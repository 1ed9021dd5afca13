//! Foreign keys of distributed tables: which ones can be enforced on the shards, and the
//! definition each shard gets.
//!
//! As in Citus, a foreign key is enforced by the workers when every pair of rows it relates
//! lives on one node: between co-located hash-distributed tables when the key includes the
//! distribution columns at the same position (shard N references shard N), and from any
//! distributed or reference table to a reference table (every node has a copy). Anything else
//! is refused with the reason.

use std::rc::Rc;

use pgrx::prelude::*;
use pgrx::spi::{quote_identifier, Spi};

use crate::error::{TResult, TesseraError};
use crate::metadata::cache::{self, TableMeta};
use crate::metadata::table::{DistTable, TableKind};

/// A foreign key, checked, with the referenced table's name located in its definition.
pub struct ForeignKey {
    pub name: String,
    def: String,
    /// Byte range of the referenced table's name in `def`.
    name_at: (usize, usize),
    referenced: Rc<TableMeta>,
}

fn refused(what: String) -> TesseraError {
    TesseraError::new(PgSqlErrorCode::ERRCODE_INVALID_TABLE_DEFINITION, what).hint(
        "Foreign keys work between co-located distributed tables when they include the distribution column at the same position, and from distributed or reference tables to reference tables.",
    )
}

/// Checks the new foreign key `con` of the distributed table `table`.
pub fn check(con: pg_sys::Oid, table: &DistTable) -> TResult<ForeignKey> {
    let (name, def, confrelid, conkey, confkey) = Spi::connect(|client| {
        let row = client
            .select(
                "SELECT conname::text, pg_catalog.pg_get_constraintdef(oid, true), confrelid, conkey, confkey
                   FROM pg_catalog.pg_constraint WHERE oid = $1",
                None,
                &[con.into()],
            )?
            .first();
        Ok::<_, TesseraError>((
            row.get::<String>(1)?.unwrap_or_default(),
            row.get::<String>(2)?.unwrap_or_default(),
            row.get::<pg_sys::Oid>(3)?.unwrap_or(pg_sys::InvalidOid),
            row.get::<Vec<i16>>(4)?.unwrap_or_default(),
            row.get::<Vec<i16>>(5)?.unwrap_or_default(),
        ))
    })?;
    let referenced = cache::lookup(confrelid)?.ok_or_else(|| {
        let (s, n) = crate::pg::nodes::rel_schema_and_name(confrelid);
        let e = refused(format!(
            "cannot create foreign key \"{name}\": the referenced table {s}.{n} is not distributed"
        ));
        if table.kind() == TableKind::SingleShard {
            e.hint("A table of a distributed schema can reference tables of its own schema and reference tables only: make the referenced table a reference table (create_reference_table), or drop the foreign key.")
        } else {
            e
        }
    })?;
    let referencing_is_reference = table.kind() == TableKind::Reference;
    if table.kind() == TableKind::SingleShard || referenced.table.kind() == TableKind::SingleShard {
        // A tenant schema's tables: to its own tables (one node holds them all) or to
        // reference tables.
        let same_group = referenced.table.colocation_id == table.colocation_id;
        if !referenced.is_reference() && !same_group {
            return Err(TesseraError::new(
                PgSqlErrorCode::ERRCODE_INVALID_TABLE_DEFINITION,
                format!(
                    "cannot create foreign key \"{name}\": {}.{} is in another distributed schema or is not a table of the same distributed schema",
                    referenced.schema, referenced.name
                ),
            )
            .hint("A table of a distributed schema can reference tables of its own schema and reference tables only."));
        }
    } else if !referenced.is_reference() {
        if referencing_is_reference {
            return Err(refused(format!(
                "cannot create foreign key \"{name}\" from a reference table to a distributed table"
            )));
        }
        if referenced.table.colocation_id != table.colocation_id {
            return Err(refused(format!(
                "cannot create foreign key \"{name}\": the tables are not co-located"
            )));
        }
        let at = conkey.iter().position(|k| *k == table.dist_attnum);
        let ref_at = confkey
            .iter()
            .position(|k| *k == referenced.table.dist_attnum);
        if at.is_none() || at != ref_at {
            return Err(refused(format!(
                "cannot create foreign key \"{name}\": it must include the distribution column of both tables, at the same position"
            )));
        }
    }
    const KEYWORD: &str = " REFERENCES ";
    let start = def
        .find(KEYWORD)
        .map(|i| i + KEYWORD.len())
        .ok_or_else(|| {
            TesseraError::new(
                PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
                "cannot carry this foreign key to the shards",
            )
            .detail(format!("constraint definition: {def}"))
            .hint("Write the constraint as FOREIGN KEY (columns) REFERENCES table (columns).")
        })?;
    let end = tessera_core::sqltext::qualified_name_end(&def, start).ok_or_else(|| {
        TesseraError::new(
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            "cannot carry this foreign key to the shards",
        )
        .detail(format!("constraint definition: {def}"))
        .hint("Write the constraint as FOREIGN KEY (columns) REFERENCES table (columns).")
    })?;
    Ok(ForeignKey {
        name,
        def,
        name_at: (start, end),
        referenced,
    })
}

impl ForeignKey {
    /// The definition for shard `index` (in hash order) of the referencing table.
    pub fn shard_def(&self, index: usize) -> String {
        let r = &self.referenced;
        let shard = if r.is_reference() {
            &r.shards[0]
        } else {
            &r.shards[index.min(r.shards.len().saturating_sub(1))]
        };
        let target = format!(
            "{}.{}",
            quote_identifier(&r.schema),
            quote_identifier(tessera_core::sharding::shard_name(&r.name, shard.shard_id))
        );
        tessera_core::sqltext::splice(&self.def, vec![(self.name_at.0, self.name_at.1, target)])
    }
}
