//! Nearest-neighbour searches that ask each shard for fewer rows than the statement wants.
//!
//! With `tessera.ann_ef_search_scaling`, a search for many rows (LIMIT + OFFSET of at least
//! [`FEWER_ROWS_FROM`](tessera_core::plan::FEWER_ROWS_FROM)) over several shards asks each shard first for
//! [`Nearest::fewer_rows_per_shard`] rows (and searches it with a candidate list that size),
//! as Qdrant does: when the rows are spread over the shards at random, no shard holds more of
//! the nearest than that. Qdrant stops there; here the coordinator then checks the
//! assumption, because a table's distribution column may say something about its vectors (a
//! tenant's documents are alike, so one tenant's shard may hold most of the nearest): a shard
//! that returned all it was asked for, and whose farthest row is not farther than the union's
//! `rows`-th nearest, may hold more of them, and is asked again for `rows` (a second round,
//! one statement per node). The second round's rows replace that shard's first ones, so the
//! union the coordinator sorts is what asking every shard for `rows` would give, less the
//! rows of shards that could not be among the nearest.
//!
//! Each shard query carries its shard's number as an extra last column
//! ([`numbered_shard_search`]); the scan reads that column to set aside the first-round rows
//! of a shard asked again, and does not hand it on.

use tessera_core::plan::{numbered_shard_search, union_all, DistPlan, Nearest, NearestIndex};

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
    /// The shards the statement searches.
    pub shards: usize,
    /// The first round's shard queries of the task, as planned: (shard number, SQL). Empty
    /// in the second round.
    pub arms: Vec<(usize, String)>,
}

/// The first round's rows set aside: results before `first_round` are the first round's, and
/// a row of one whose shard number is marked in `again` is replaced by the second round's.
#[derive(Debug, Clone)]
pub struct SetAside {
    pub first_round: usize,
    pub again: Vec<bool>,
}

impl SetAside {
    /// Whether the row `row` of result `r` (of `nfields` columns, the last the shard number)
    /// was replaced.
    pub fn skips(&self, r: usize, result: &PgResult, row: usize) -> bool {
        if r >= self.first_round {
            return false;
        }
        let arm = result
            .value(row, result.nfields().saturating_sub(1))
            .and_then(|v| v.parse::<usize>().ok());
        arm.is_some_and(|a| self.again.get(a).copied().unwrap_or(false))
    }
}

/// Makes the SELECT `tasks` of `plan` ask for fewer rows per shard when the search allows it
/// (see the module's comment): an approximate index, the distance among the returned columns,
/// and no filter unless the index's iterative scan is on (which keeps each shard's count).
pub fn apply(plan: &DistPlan, tasks: &mut [Task]) {
    let Some(n) = plan.nearest else {
        return;
    };
    if !gucs::ann_ef_search_scaling()
        || n.index == NearestIndex::Exact
        || n.distance_column.is_none()
        || (n.filtered && task::iterative_scan(&n).and_then(|(_, v)| v).is_none())
        || tasks.iter().any(|t| !t.primary || t.copy_data.is_some())
    {
        return;
    }
    let Some(rows) = task::shard_rows(&n, tasks) else {
        return;
    };
    let shards: usize = tasks.iter().map(|t| t.shard_sqls.len().max(1)).sum();
    let Some(each) = Nearest::fewer_rows_per_shard(rows, shards) else {
        return;
    };
    let mut arm = 0;
    for t in tasks.iter_mut() {
        let mut arms = Vec::with_capacity(t.shard_sqls.len());
        for sql in &mut t.shard_sqls {
            arms.push((
                arm,
                std::mem::replace(sql, numbered_shard_search(sql, arm, each)),
            ));
            arm += 1;
        }
        t.sql = union_all(&t.shard_sqls);
        t.fewer = Some(FewerRows {
            each,
            rows,
            shards,
            arms,
        });
    }
}

/// The shards of a first round (`tasks`, their `results` in the same order) that may hold
/// more of the nearest rows, by shard number; none when every shard returned fewer rows than
/// it was asked for or its farthest row is farther than the union's `rows`-th nearest.
pub fn asked_again(plan: &DistPlan, tasks: &[Task], results: &[PgResult]) -> Vec<bool> {
    let (Some(n), Some(f)) = (plan.nearest, tasks.first().and_then(|t| t.fewer.as_ref())) else {
        return Vec::new();
    };
    let Some(dcol) = n.distance_column else {
        return Vec::new();
    };
    let arms: usize = tasks.iter().map(|t| t.shard_sqls.len()).sum();
    let mut count = vec![0i64; arms];
    let mut farthest = vec![f64::NEG_INFINITY; arms];
    let mut all = Vec::new();
    for r in results {
        let last = r.nfields().saturating_sub(1);
        for row in 0..r.ntuples() {
            let Some(arm) = r.value(row, last).and_then(|v| v.parse::<usize>().ok()) else {
                continue;
            };
            if arm >= arms {
                continue;
            }
            // NULL and NaN sort after every distance (ORDER BY ... ASC NULLS LAST).
            let d = r
                .value(row, dcol)
                .and_then(|v| v.parse::<f64>().ok())
                .filter(|d| !d.is_nan())
                .unwrap_or(f64::INFINITY);
            count[arm] += 1;
            farthest[arm] = farthest[arm].max(d);
            all.push(d);
        }
    }
    let wanted = f.rows.max(1) as usize;
    let bound = if all.len() < wanted {
        f64::INFINITY
    } else {
        *all.select_nth_unstable_by(wanted - 1, f64::total_cmp).1
    };
    (0..arms)
        .map(|a| count[a] >= f.each && farthest[a] <= bound)
        .collect()
}

/// The second round: every shard of `again` asked for all the statement's rows, one statement
/// per node (the first round's task for it).
pub fn second_round(tasks: &[Task], again: &[bool]) -> Vec<Task> {
    let mut out = Vec::new();
    for t in tasks {
        let Some(f) = &t.fewer else {
            continue;
        };
        let shard_sqls: Vec<String> = f
            .arms
            .iter()
            .filter(|(a, _)| again.get(*a).copied().unwrap_or(false))
            .map(|(a, sql)| numbered_shard_search(sql, *a, f.rows))
            .collect();
        if shard_sqls.is_empty() {
            continue;
        }
        out.push(Task {
            sql: union_all(&shard_sqls),
            shard_sqls,
            fewer: Some(FewerRows {
                each: f.rows,
                rows: f.rows,
                shards: f.shards,
                arms: Vec::new(),
            }),
            ..t.clone()
        });
    }
    out
}

/// Whether `tasks` are a first round that a second may follow.
pub fn first_round(tasks: &[Task]) -> bool {
    tasks
        .first()
        .and_then(|t| t.fewer.as_ref())
        .is_some_and(|f| !f.arms.is_empty())
}
