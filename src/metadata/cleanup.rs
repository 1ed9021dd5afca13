//! `pg_dist_cleanup`: objects on the nodes that are dropped later, such as a moved shard's old
//! placement (see `operations::shard_move`).

use pgrx::spi::Spi;

use crate::error::{TResult, TesseraError};

/// The table of a shard placement.
pub const OBJECT_SHARD_PLACEMENT: i32 = 1;
/// Drop it whenever cleanup runs (the record commits only with the operation that made it).
pub const POLICY_ALWAYS: i32 = 2;

/// A row of `pg_dist_cleanup`.
#[derive(Debug, Clone)]
pub struct Record {
    pub record_id: i64,
    /// The object, qualified and quoted as SQL.
    pub object_name: String,
    pub group: i32,
}

/// A new operation id (one move, say), for the records it makes.
pub fn next_operation_id() -> TResult<i64> {
    let _write = super::CatalogWrite::begin();
    Ok(
        Spi::get_one::<i64>("SELECT nextval('pg_catalog.pg_dist_operationid_seq')")?
            .unwrap_or_default(),
    )
}

/// Records the shard placement table `object_name` (qualified, quoted) on `group` to drop.
pub fn record_placement(operation_id: i64, object_name: &str, group: i32) -> TResult<()> {
    let _write = super::CatalogWrite::begin();
    Spi::run_with_args(
        "INSERT INTO pg_catalog.pg_dist_cleanup
             (record_id, operation_id, object_type, object_name, node_group_id, policy_type)
         VALUES (nextval('pg_catalog.pg_dist_cleanup_recordid_seq'), $1, $2, $3, $4, $5)",
        &[
            operation_id.into(),
            OBJECT_SHARD_PLACEMENT.into(),
            object_name.into(),
            group.into(),
            POLICY_ALWAYS.into(),
        ],
    )?;
    Ok(())
}

/// The shard placements waiting to be dropped, oldest first.
pub fn pending() -> TResult<Vec<Record>> {
    Spi::connect(|client| {
        let mut out = Vec::new();
        for row in client.select(
            "SELECT record_id, object_name, node_group_id FROM pg_catalog.pg_dist_cleanup
              WHERE object_type = $1
                -- Not what this transaction's own move left: it may still read it.
                AND xmin IS DISTINCT FROM pg_catalog.xid(pg_catalog.pg_current_xact_id_if_assigned())
              ORDER BY record_id",
            None,
            &[OBJECT_SHARD_PLACEMENT.into()],
        )? {
            out.push(Record {
                record_id: row.get::<i64>(1)?.unwrap_or_default(),
                object_name: row.get::<String>(2)?.unwrap_or_default(),
                group: row.get::<i32>(3)?.unwrap_or_default(),
            });
        }
        Ok::<_, TesseraError>(out)
    })
}

/// The schema `old` is called `new` now: its objects' records follow.
pub fn rename_schema(old: &str, new: &str) -> TResult<()> {
    let _write = super::CatalogWrite::begin();
    Spi::run_with_args(
        "UPDATE pg_catalog.pg_dist_cleanup
            SET object_name = pg_catalog.quote_ident($2) || '.' || pg_catalog.quote_ident((pg_catalog.parse_ident(object_name))[2])
          WHERE (pg_catalog.parse_ident(object_name))[1] = $1",
        &[old.into(), new.into()],
    )?;
    Ok(())
}

/// Forgets a record whose object is gone.
pub fn forget(record_id: i64) -> TResult<()> {
    let _write = super::CatalogWrite::begin();
    Spi::run_with_args(
        "DELETE FROM pg_catalog.pg_dist_cleanup WHERE record_id = $1",
        &[record_id.into()],
    )?;
    Ok(())
}

/// Forgets the records of objects on `group` (a node leaving the cluster), returning their
/// names: what they name stays on that node.
pub fn forget_group(group: i32) -> TResult<Vec<String>> {
    let _write = super::CatalogWrite::begin();
    Spi::connect_mut(|client| {
        let mut out = Vec::new();
        for row in client.update(
            "DELETE FROM pg_catalog.pg_dist_cleanup WHERE node_group_id = $1
             RETURNING object_name",
            None,
            &[group.into()],
        )? {
            out.push(row.get::<String>(1)?.unwrap_or_default());
        }
        out.sort();
        Ok::<_, TesseraError>(out)
    })
}
