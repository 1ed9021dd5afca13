//! `pg_dist_partition`, `pg_dist_shard`, `pg_dist_placement`, `pg_dist_colocation`: which
//! tables are distributed, their shards, where the shards live, and colocation groups.

use pgrx::prelude::*;
use pgrx::spi::Spi;

use crate::error::TResult;

/// How a table is distributed (`pg_dist_partition.partmethod`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Hash-distributed: `h`.
    Hash,
    /// One shard, placed on every node (reference table) or one node: `n`.
    None,
}

impl Method {
    fn code(self) -> &'static str {
        match self {
            Method::Hash => "h",
            Method::None => "n",
        }
    }
}

/// What kind of distributed table a row of `pg_dist_partition` describes, read from
/// `partmethod` and `repmodel` together as Citus stores them: a schema-sharded table is `n`
/// like a reference table, but has one placement, and must never be read from "any" one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableKind {
    /// `h`: hash-distributed by a column.
    Hash,
    /// `n` with repmodel `t`: one shard, a placement on every node.
    Reference,
    /// `n` otherwise: one shard on one node (a table of a distributed schema).
    SingleShard,
}

/// A row of `pg_dist_partition`, with what the callers need.
#[derive(Debug, Clone)]
pub struct DistTable {
    pub relid: pg_sys::Oid,
    pub method: Method,
    /// Distribution column attribute number (0 when none).
    pub dist_attnum: i16,
    pub colocation_id: i32,
    /// 't' for reference tables ("two-phase" replication model as in Citus), 's' otherwise.
    pub repmodel: char,
}

impl DistTable {
    pub fn kind(&self) -> TableKind {
        match (self.method, self.repmodel) {
            (Method::Hash, _) => TableKind::Hash,
            (Method::None, 't') => TableKind::Reference,
            (Method::None, _) => TableKind::SingleShard,
        }
    }
}

/// A shard with its hash range and the groups that hold it, in shard-index order.
#[derive(Debug, Clone)]
pub struct Shard {
    pub shard_id: i64,
    pub min: Option<i32>,
    pub max: Option<i32>,
    pub groups: Vec<i32>,
}

/// The distributed table `relid`, if it is one.
pub fn find(relid: pg_sys::Oid) -> TResult<Option<DistTable>> {
    Spi::connect(|client| {
        let rows = client.select(
            "SELECT partmethod::text, partkey, colocationid, repmodel::text
               FROM pg_catalog.pg_dist_partition WHERE logicalrelid = $1",
            None,
            &[relid.into()],
        )?;
        let Some(row) = rows.into_iter().next() else {
            return Ok(None);
        };
        let method = match row.get::<String>(1)?.as_deref() {
            Some("h") => Method::Hash,
            _ => Method::None,
        };
        let dist_attnum = row
            .get::<String>(2)?
            .and_then(|k| tessera_core::sharding::partkey_attnum(&k))
            .unwrap_or(0);
        Ok(Some(DistTable {
            relid,
            method,
            dist_attnum,
            colocation_id: row.get::<i32>(3)?.unwrap_or(0),
            repmodel: row
                .get::<String>(4)?
                .and_then(|s| s.chars().next())
                .unwrap_or('s'),
        }))
    })
}

/// Every distributed and reference table.
pub fn all_tables() -> TResult<Vec<pg_sys::Oid>> {
    Spi::connect(|client| {
        let mut out = Vec::new();
        for row in client.select(
            "SELECT logicalrelid::oid FROM pg_catalog.pg_dist_partition ORDER BY 1",
            None,
            &[],
        )? {
            out.extend(row.get::<pg_sys::Oid>(1)?);
        }
        Ok(out)
    })
}

/// The shards of `relid` in hash order, with their placements' groups.
pub fn shards(relid: pg_sys::Oid) -> TResult<Vec<Shard>> {
    Spi::connect(|client| {
        let mut out = Vec::new();
        for row in client.select(
            "SELECT s.shardid, s.shardminvalue::int, s.shardmaxvalue::int,
                    array_agg(p.groupid ORDER BY p.groupid) FILTER (WHERE p.groupid IS NOT NULL)
               FROM pg_catalog.pg_dist_shard s
               LEFT JOIN pg_catalog.pg_dist_placement p ON p.shardid = s.shardid
              WHERE s.logicalrelid = $1
              GROUP BY s.shardid, s.shardminvalue, s.shardmaxvalue
              ORDER BY s.shardminvalue::int NULLS FIRST, s.shardid",
            None,
            &[relid.into()],
        )? {
            out.push(Shard {
                shard_id: row.get::<i64>(1)?.unwrap_or_default(),
                min: row.get::<i32>(2)?,
                max: row.get::<i32>(3)?,
                groups: row.get::<Vec<i32>>(4)?.unwrap_or_default(),
            });
        }
        Ok(out)
    })
}

/// The colocation group with these properties that the first such table created, if any.
pub fn default_colocation(
    shard_count: i32,
    type_oid: pg_sys::Oid,
    collation: pg_sys::Oid,
) -> TResult<Option<i32>> {
    Ok(Spi::get_one_with_args::<i32>(
        "SELECT min(colocationid) FROM pg_catalog.pg_dist_colocation
          WHERE shardcount = $1 AND replicationfactor = 1
            AND distributioncolumntype = $2::oid AND distributioncolumncollation = $3::oid",
        &[
            shard_count.into(),
            oid_param(type_oid).into(),
            oid_param(collation).into(),
        ],
    )?)
}

/// `(shard count, column type, collation)` of a colocation group.
pub fn colocation(id: i32) -> TResult<Option<(i32, pg_sys::Oid, pg_sys::Oid)>> {
    Spi::connect(|client| {
        let rows = client.select(
            "SELECT shardcount, distributioncolumntype, distributioncolumncollation
               FROM pg_catalog.pg_dist_colocation WHERE colocationid = $1",
            None,
            &[id.into()],
        )?;
        let Some(row) = rows.into_iter().next() else {
            return Ok(None);
        };
        Ok(Some((
            row.get::<i32>(1)?.unwrap_or_default(),
            row.get::<pg_sys::Oid>(2)?.unwrap_or(pg_sys::InvalidOid),
            row.get::<pg_sys::Oid>(3)?.unwrap_or(pg_sys::InvalidOid),
        )))
    })
}

/// Creates a colocation group and returns its id.
pub fn insert_colocation(
    shard_count: i32,
    replication_factor: i32,
    type_oid: pg_sys::Oid,
    collation: pg_sys::Oid,
) -> TResult<i32> {
    let _write = super::CatalogWrite::begin();
    Ok(Spi::get_one_with_args::<i32>(
        "INSERT INTO pg_catalog.pg_dist_colocation
             (colocationid, shardcount, replicationfactor, distributioncolumntype, distributioncolumncollation)
         VALUES (nextval('pg_catalog.pg_dist_colocationid_seq'), $1, $2, $3::oid, $4::oid)
         RETURNING colocationid",
        &[
            shard_count.into(),
            replication_factor.into(),
            oid_param(type_oid).into(),
            oid_param(collation).into(),
        ],
    )?
    .unwrap_or_default())
}

/// A table of `colocation_id` (to copy its placements), if any.
pub fn any_table_in_colocation(colocation_id: i32) -> TResult<Option<pg_sys::Oid>> {
    Ok(Spi::get_one_with_args::<pg_sys::Oid>(
        "SELECT logicalrelid::oid FROM pg_catalog.pg_dist_partition
          WHERE colocationid = $1 ORDER BY logicalrelid::oid LIMIT 1",
        &[colocation_id.into()],
    )?)
}

pub fn next_shard_id() -> TResult<i64> {
    let _write = super::CatalogWrite::begin();
    Ok(
        Spi::get_one::<i64>("SELECT nextval('pg_catalog.pg_dist_shardid_seq')")?
            .unwrap_or_default(),
    )
}

/// The text of the Var node of column `attnum` of `relid`, as Citus stores a distribution
/// column in `pg_dist_partition.partkey` (what `column_to_column_name()` reads).
pub fn column_var_text(relid: pg_sys::Oid, attnum: i16) -> String {
    // SAFETY: a syscache lookup of an existing column; nodeToString returns a palloc'd string.
    unsafe {
        let (mut typid, mut typmod, mut collid) = (pg_sys::InvalidOid, -1, pg_sys::InvalidOid);
        pg_sys::get_atttypetypmodcoll(relid, attnum, &mut typid, &mut typmod, &mut collid);
        let var = pg_sys::makeVar(1, attnum, typid, typmod, collid, 0);
        crate::pg::nodes::string(pg_sys::nodeToString(var as *const std::ffi::c_void))
    }
}

/// Records a distributed table with its shards and placements.
pub fn insert_table(table: &DistTable, shards: &[Shard]) -> TResult<()> {
    let partkey = (table.dist_attnum > 0).then(|| column_var_text(table.relid, table.dist_attnum));
    let _write = super::CatalogWrite::begin();
    Spi::run_with_args(
        "INSERT INTO pg_catalog.pg_dist_partition (logicalrelid, partmethod, partkey, colocationid, repmodel)
         VALUES ($1, $2::\"char\", $3, $4, $5::\"char\")",
        &[
            table.relid.into(),
            table.method.code().into(),
            partkey.into(),
            table.colocation_id.into(),
            table.repmodel.to_string().into(),
        ],
    )?;
    for s in shards {
        Spi::run_with_args(
            "INSERT INTO pg_catalog.pg_dist_shard (logicalrelid, shardid, shardstorage, shardminvalue, shardmaxvalue)
             VALUES ($1, $2, 't', $3, $4)",
            &[
                table.relid.into(),
                s.shard_id.into(),
                s.min.map(|v| v.to_string()).into(),
                s.max.map(|v| v.to_string()).into(),
            ],
        )?;
        for g in &s.groups {
            Spi::run_with_args(
                "INSERT INTO pg_catalog.pg_dist_placement (shardid, shardstate, shardlength, groupid)
                 VALUES ($1, 1, 0, $2)",
                &[s.shard_id.into(), (*g).into()],
            )?;
        }
    }
    invalidate(table.relid);
    Ok(())
}

/// Forgets a distributed table: its placements, shards and partition row (the colocation
/// group goes too when no table is left in it). `still_exists` is false when the table itself
/// was dropped (its relcache entry is gone with it).
pub fn delete_table(relid: pg_sys::Oid, colocation_id: i32, still_exists: bool) -> TResult<()> {
    let _write = super::CatalogWrite::begin();
    Spi::run_with_args(
        "DELETE FROM pg_catalog.pg_dist_placement WHERE shardid IN
            (SELECT shardid FROM pg_catalog.pg_dist_shard WHERE logicalrelid = $1)",
        &[relid.into()],
    )?;
    Spi::run_with_args(
        "DELETE FROM pg_catalog.pg_dist_shard WHERE logicalrelid = $1",
        &[relid.into()],
    )?;
    Spi::run_with_args(
        "DELETE FROM pg_catalog.pg_dist_partition WHERE logicalrelid = $1",
        &[relid.into()],
    )?;
    Spi::run_with_args(
        "DELETE FROM pg_catalog.pg_dist_colocation c WHERE colocationid = $1
            AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_dist_partition p WHERE p.colocationid = c.colocationid)
            -- A distributed schema keeps its group while it has no table.
            AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_dist_schema s WHERE s.colocationid = c.colocationid)",
        &[colocation_id.into()],
    )?;
    if still_exists {
        invalidate(relid);
    }
    Ok(())
}

/// Points the placements of `shard_ids` on group `from` at group `to` (a shard move), and
/// tells every backend that the tables `relids` moved.
pub fn move_placements(
    shard_ids: &[i64],
    relids: &[pg_sys::Oid],
    from: i32,
    to: i32,
) -> TResult<()> {
    let _write = super::CatalogWrite::begin();
    Spi::run_with_args(
        "UPDATE pg_catalog.pg_dist_placement SET groupid = $3
          WHERE shardid = ANY($1) AND groupid = $2",
        &[shard_ids.to_vec().into(), from.into(), to.into()],
    )?;
    for relid in relids {
        invalidate(*relid);
    }
    Ok(())
}

/// An OID as a bigint parameter: pgrx sends InvalidOid (0) as NULL, which the catalog's NOT
/// NULL oid columns (collation 0 = none) must not receive.
fn oid_param(oid: pg_sys::Oid) -> i64 {
    i64::from(oid.to_u32())
}

/// Tells every backend (at commit) that the metadata of `relid` changed.
pub fn invalidate(relid: pg_sys::Oid) {
    // SAFETY: queues a transactional relcache invalidation for an existing relation.
    unsafe { pg_sys::CacheInvalidateRelcacheByRelid(relid) };
}
