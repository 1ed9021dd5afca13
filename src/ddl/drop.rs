//! The `sql_drop` event trigger: a dropped distributed table takes its shards with it.

use std::collections::BTreeMap;

use pgrx::prelude::*;
use pgrx::spi::Spi;

use crate::ddl::propagate::{push_per_placement, run_per_group, PerGroup};
use crate::error::{OrReport, TResult, TesseraError};
use crate::metadata::node::{self as nodes};
use crate::metadata::table::{self as catalog};

/// The `sql_drop` event trigger: when distributed tables are dropped (directly, by CASCADE or
/// with their schema), drop their shards on every placement, in the same transaction, and
/// forget them in the catalog.
#[pg_extern(sql = false)]
fn tessera_drop_trigger() {
    (|| -> TResult<()> {
        // It runs as whoever dropped something: its queries see only built-in functions and
        // operators.
        let _path = crate::pg::guc::GucScope::catalog_only();
        crate::ddl::distributed_objects::forget_dropped()?;
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
