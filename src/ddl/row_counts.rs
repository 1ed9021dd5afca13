//! The coordinator's row counts of distributed tables: after ANALYZE or VACUUM of a
//! distributed table reaches its shards, the table's `reltuples` and `relpages` on the
//! coordinator become the sums over its shards (one placement each), as the shards' own
//! ANALYZE left them. The coordinator's copy of the table is empty, so its own statistics say
//! nothing; these sums are what PostgreSQL's planner on the coordinator and the row estimates
//! of Tessera's scans (`planner::scan::estimated_rows`) read.

use std::collections::BTreeMap;

use pgrx::pg_sys;
use pgrx::prelude::*;

use crate::connection::{run_tasks, ConnKey, RemoteTask, Scope};
use crate::ddl::propagate::group_nodes;
use crate::error::{TResult, TesseraError};
use crate::metadata::node as nodes;
use crate::metadata::table as catalog;

/// The summed `reltuples` (-1 if no shard was analyzed) and `relpages` of the shards named in
/// the JSON array `$1`, on one node.
///
/// It runs as the current user under the node's search_path: every operator is named with its
/// schema, so no user's operator can stand in.
const SHARD_COUNTS: &str = "SELECT coalesce(pg_catalog.sum(c.reltuples)
                 FILTER (WHERE c.reltuples OPERATOR(pg_catalog.>=) 0::real), -1)::float8,
        coalesce(pg_catalog.sum(c.relpages), 0)::float8
   FROM pg_catalog.json_array_elements_text($1::json) n
   JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) pg_catalog.to_regclass(n)::oid";

/// Sets the coordinator's row counts of each table in `relids` (and of a partitioned table's
/// partitions) from its shards. Runs in the remote transaction that just analyzed them.
pub(crate) fn refresh(relids: &[pg_sys::Oid]) -> TResult<()> {
    let mut tables = Vec::new();
    for &relid in relids {
        if !tables.contains(&relid) {
            tables.push(relid);
        }
        for p in crate::udf::partitions::partitions_of(relid)? {
            if catalog::find(p)?.is_some() && !tables.contains(&p) {
                tables.push(p);
            }
        }
    }
    let addresses = group_nodes(&nodes::all()?);
    for relid in tables {
        let (schema, table) = crate::pg::nodes::rel_schema_and_name(relid);
        // One placement per shard, on an active node: a worker's where there is one (a
        // reference table's copies are alike).
        let mut per_group: BTreeMap<i32, Vec<String>> = BTreeMap::new();
        for s in catalog::shards(relid)? {
            let reachable = |g: &i32| {
                *g == tessera_core::node::COORDINATOR_GROUP_ID || addresses.contains_key(g)
            };
            let group = s
                .groups
                .iter()
                .copied()
                .filter(reachable)
                .find(|g| *g != tessera_core::node::COORDINATOR_GROUP_ID)
                .or_else(|| s.groups.iter().copied().find(reachable));
            if let Some(g) = group {
                per_group
                    .entry(g)
                    .or_default()
                    .push(tessera_core::sqltext::json_string(
                        &crate::sharding::qualified_shard(&schema, &table, s.shard_id),
                    ));
            }
        }
        let (mut tuples, mut pages, mut analyzed) = (0f64, 0f64, false);
        let mut add = |t: f64, p: f64| {
            if t >= 0.0 {
                tuples += t;
                analyzed = true;
            }
            pages += p;
        };
        let mut tasks = Vec::new();
        for (group, names) in per_group {
            let json = format!("[{}]", names.join(","));
            if group == tessera_core::node::COORDINATOR_GROUP_ID {
                let (t, p) = Spi::connect(|client| {
                    let row = client.select(SHARD_COUNTS, None, &[json.into()])?.first();
                    Ok::<_, TesseraError>((
                        row.get::<f64>(1)?.unwrap_or(-1.0),
                        row.get::<f64>(2)?.unwrap_or(0.0),
                    ))
                })?;
                add(t, p);
            } else if let Some(node) = addresses.get(&group) {
                tasks.push(
                    RemoteTask::new(ConnKey::for_current_session(node), SHARD_COUNTS)
                        .with_params(vec![Some(json)])
                        .in_scope(Scope::Transaction),
                );
            }
        }
        for outcome in run_tasks(&tasks, tasks.len())? {
            let results = outcome.map_err(|e| e.into_tessera())?;
            if let Some(r) = results.last() {
                let t = r.value(0, 0).and_then(|v| v.parse().ok()).unwrap_or(-1.0);
                let p = r.value(0, 1).and_then(|v| v.parse().ok()).unwrap_or(0.0);
                add(t, p);
            }
        }
        if analyzed {
            set_row_counts(relid, tuples, pages);
        }
    }
    Ok(())
}

/// Writes `reltuples` and `relpages` of `relid` in place, as ANALYZE writes them.
fn set_row_counts(relid: pg_sys::Oid, tuples: f64, pages: f64) {
    // SAFETY: the table is locked (or found gone) by try_relation_open; vac_update_relstats
    // updates the pg_class row in place, as ANALYZE does, leaving the index and frozen-xid
    // fields alone (in_outer_xact, invalid xids).
    unsafe {
        let rel = pg_sys::try_relation_open(relid, pg_sys::AccessShareLock as pg_sys::LOCKMODE);
        if rel.is_null() {
            return;
        }
        pg_sys::vac_update_relstats(
            rel,
            pages.min(u32::MAX as f64) as pg_sys::BlockNumber,
            tuples,
            0,
            (*(*rel).rd_rel).relhasindex,
            pg_sys::InvalidTransactionId,
            pg_sys::InvalidTransactionId,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            true,
        );
        pg_sys::relation_close(rel, pg_sys::NoLock as pg_sys::LOCKMODE);
    }
}
