//! Nearest-neighbour searches that ask each shard for fewer rows than the statement wants.
//!
//! With `tessera.ann_ef_search_scaling`, a search for many rows (LIMIT + OFFSET of at least
//! [`FEWER_ROWS_FROM`](tessera_core::plan::FEWER_ROWS_FROM)) over several shards asks each shard first for
//! [`Nearest::fewer_rows_per_shard`] rows (and searches it with a candidate list that size),
//! as Qdrant does: when the rows are spread over the shards at random, no shard holds more of
//! the nearest than that. Qdrant stops there; here the coordinator then checks the
//! assumption, because a table's distribution column may say something about its vectors (a
//! tenant's documents are alike, so one tenant's shard may hold most of the nearest): a shard
//! whose farthest row is not farther than the union's `rows`-th nearest may hold more of
//! them (for IVFFlat only when it returned all it was asked for; HNSW returns fewer when dead
//! rows were among its candidates), and is asked again for `rows` (a second round, one
//! statement per first-round task). The second round's rows replace that shard's first ones, so the
//! union the coordinator sorts is what asking every shard for `rows` would give, less the
//! rows of shards that could not be among the nearest.
//!
//! The rule is exact for exact searches (IVFFlat probing every list, a scan). An HNSW shard
//! search is approximate either way; its second round is a search of its own, with a
//! candidate list for all the rows, and both rounds of an autocommit statement read their own
//! snapshots, as two statements do.
//!
//! Each shard query carries its shard group's number as an extra last column
//! ([`numbered_shard_search`]); the scan reads that column to set aside the first-round rows
//! of a shard group asked again, and does not hand it on.
//!
//! Not used where a second round could change the answer or cannot happen: with a volatile
//! function (it would run twice), `WITH TIES`, a relaxed-order iterative scan (a shard's
//! farthest row then says nothing of the rows after it), or an HNSW search for more rows
//! than pgvector's candidate list can hold (1000).

use tessera_core::plan::{
    numbered_shard_search, shard_groups_to_ask_again, union_all, DistPlan, Nearest, NearestIndex,
};

use super::task::{self, Task};
use crate::connection::PgResult;
use crate::gucs;

/// A search whose shard queries return fewer rows than the statement wants.
#[derive(Debug, Clone)]
pub struct FewerRows {
    /// The rows each shard query of the task returns.
    pub each: i64,
    /// The rows the statement wants (LIMIT + OFFSET).
    pub rows: i64,
    /// The shard groups the statement searches.
    pub groups: usize,
    pub round: Round,
}

#[derive(Debug, Clone)]
pub enum Round {
    /// The task's shard queries as planned, by shard group number: asked again from these.
    First(Vec<(usize, String)>),
    Second,
}

/// The first round's rows set aside: results before `first_round` are the first round's, and
/// a row of one whose shard group is marked in `again` is replaced by the second round's.
#[derive(Debug, Clone)]
pub struct SetAside {
    pub first_round: usize,
    pub again: Vec<bool>,
}

impl SetAside {
    /// Whether the row `row` of result `r` (its last column the shard group's number) was
    /// replaced.
    pub fn skips(&self, r: usize, result: &PgResult, row: usize) -> bool {
        if r >= self.first_round || result.nfields() == 0 {
            return false;
        }
        group_of(result, row).is_some_and(|g| self.again.get(g).copied().unwrap_or(false))
    }
}

fn group_of(result: &PgResult, row: usize) -> Option<usize> {
    result
        .value(row, result.nfields() - 1)
        .and_then(|v| v.parse::<usize>().ok())
}

/// Makes the SELECT `tasks` of `plan` ask for fewer rows per shard when the search allows it
/// (see the module's comment).
pub fn apply(plan: &DistPlan, tasks: &mut [Task]) {
    let Some(n) = plan.nearest else {
        return;
    };
    let Some(distance) = n.distance_column else {
        return;
    };
    // The iterative scan the shards run: off, or HNSW's strict order (which a filter needs).
    let iterative = task::iterative_scan(&n).and_then(|(_, v)| v);
    let ordered = match iterative.as_deref() {
        None => !n.filtered,
        Some("strict_order") => n.index == NearestIndex::Hnsw,
        Some(_) => false,
    };
    if !gucs::ann_ef_search_scaling()
        || n.index == NearestIndex::Exact
        || !ordered
        || plan.calls_volatile
        || tasks.iter().any(|t| !t.primary || t.copy_data.is_some())
    {
        return;
    }
    let Some(rows) = task::shard_rows(&n, tasks) else {
        return;
    };
    let groups: usize = tasks.iter().map(|t| t.shard_sqls.len().max(1)).sum();
    let Some(each) = Nearest::fewer_rows_per_shard(rows, groups) else {
        return;
    };
    if n.index == NearestIndex::Hnsw && each > 1000 {
        return;
    }
    let mut group = 0;
    for t in tasks.iter_mut() {
        let mut planned = Vec::with_capacity(t.shard_sqls.len());
        for sql in &mut t.shard_sqls {
            let numbered = numbered_shard_search(sql, group, distance, each);
            planned.push((group, std::mem::replace(sql, numbered)));
            group += 1;
        }
        t.sql = union_all(&t.shard_sqls);
        // The statement spells out `each`, which follows a `LIMIT $n`'s value: not one to
        // keep prepared on the node.
        t.prepare = t.prepare && n.limit_param.is_none();
        t.fewer = Some(FewerRows {
            each,
            rows,
            groups,
            round: Round::First(planned),
        });
    }
}

/// Whether `tasks` are a first round that a second may follow.
pub fn first_round(tasks: &[Task]) -> bool {
    matches!(
        tasks.first().and_then(|t| t.fewer.as_ref()),
        Some(FewerRows {
            round: Round::First(_),
            ..
        })
    )
}

/// The shard groups of a first round (`tasks`, their `results` in the same order) to ask
/// again, by number (`tessera_core::plan::shard_groups_to_ask_again`).
pub fn asked_again(plan: &DistPlan, tasks: &[Task], results: &[PgResult]) -> Vec<bool> {
    let (Some(n), Some(f)) = (plan.nearest, tasks.first().and_then(|t| t.fewer.as_ref())) else {
        return Vec::new();
    };
    let Some(distance) = n.distance_column else {
        return Vec::new();
    };
    let mut rows = Vec::new();
    for r in results {
        // A result of other columns than asked for is reported by the scan.
        if r.nfields() < distance + 2 {
            continue;
        }
        for row in 0..r.ntuples() {
            let Some(group) = group_of(r, row) else {
                continue;
            };
            let d = r
                .value(row, distance)
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(f64::INFINITY);
            rows.push((group, d));
        }
    }
    // IVFFlat returns every row of the lists it probes, whatever the LIMIT: a shard group
    // that returned fewer than asked has no more.
    let short_is_all = n.index != NearestIndex::Hnsw;
    shard_groups_to_ask_again(&rows, f.groups, f.each, f.rows, short_is_all)
}

/// The second round: every shard group of `again` asked for all the statement's rows, one
/// statement per first-round task that holds one.
pub fn second_round(plan: &DistPlan, tasks: &[Task], again: &[bool]) -> Vec<Task> {
    let Some(distance) = plan.nearest.and_then(|n| n.distance_column) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for t in tasks {
        let Some(FewerRows {
            rows,
            groups,
            round: Round::First(planned),
            ..
        }) = &t.fewer
        else {
            continue;
        };
        let shard_sqls: Vec<String> = planned
            .iter()
            .filter(|(g, _)| again.get(*g).copied().unwrap_or(false))
            .map(|(g, sql)| numbered_shard_search(sql, *g, distance, *rows))
            .collect();
        if shard_sqls.is_empty() {
            continue;
        }
        out.push(Task {
            sql: union_all(&shard_sqls),
            shard_sqls,
            // Which groups are asked again differs from one execution to the next.
            prepare: false,
            fewer: Some(FewerRows {
                each: *rows,
                rows: *rows,
                groups: *groups,
                round: Round::Second,
            }),
            ..t.clone()
        });
    }
    out
}
