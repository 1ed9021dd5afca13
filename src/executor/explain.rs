//! EXPLAIN of the Tessera Adaptive scan: the tier, how many tasks, and the worker's own plan
//! for one task (every task with `citus.explain_all_tasks`), so a user sees the query spread
//! over the shards.

use std::ffi::CString;

use pgrx::pg_sys;
use pgrx::prelude::*;

use super::task::{self, Task};
use super::TesseraScanState;
use crate::connection::Scope;
use crate::connection::{run_tasks, ConnKey, RemoteTask};
use crate::error::{OrReport, TResult};
use crate::gucs;
use crate::transaction;

fn cstr(s: &str) -> CString {
    CString::new(s.replace('\0', "")).unwrap_or_default()
}

/// The worker's EXPLAIN of one task's first shard group, one line per element.
fn remote_plan(
    t: &Task,
    costs: bool,
    sql: &str,
    settings: std::rc::Rc<crate::connection::Settings>,
) -> TResult<Vec<String>> {
    // SAFETY: reads the transaction state.
    let in_block = unsafe { pg_sys::IsTransactionBlock() };
    let scope = if in_block || transaction::has_remote_work() {
        Scope::Transaction
    } else {
        Scope::Autocommit
    };
    let explain = format!("EXPLAIN (COSTS {}) {sql}", if costs { "on" } else { "off" });
    let remote = RemoteTask::new(ConnKey::for_current_session(&t.node), explain)
        .in_scope(scope)
        .with_params(t.params.clone())
        .with_param_types(t.types.clone())
        .with_settings(settings);
    let mut out = Vec::new();
    for outcome in run_tasks(&[remote], 1)? {
        let results = outcome.map_err(|e| e.into_tessera())?;
        if let Some(r) = results.last() {
            for row in 0..r.ntuples() {
                out.push(r.value(row, 0).unwrap_or_default().to_string());
            }
        }
    }
    Ok(out)
}

#[pg_guard]
pub(super) unsafe extern "C-unwind" fn explain_scan(
    node: *mut pg_sys::CustomScanState,
    _ancestors: *mut pg_sys::List,
    es: *mut pg_sys::ExplainState,
) {
    // SAFETY: node is our scan state (Begin ran); es is the live ExplainState.
    unsafe {
        let state = node as *mut TesseraScanState;
        // Tasks take the subqueries' results: run them first (as Citus does for EXPLAIN).
        super::ensure_subplans(node).or_report();
        let run = &mut *(*state).run;
        // An INSERT's rows are evaluated only when it runs (they may call nextval()).
        let tasks: Option<Vec<Task>> = match &run.tasks {
            Some(t) => Some(t.clone()),
            None if run.plan.insert.is_some() => None,
            None => Some(
                task::build(run, (*node).ss.ps.state, (*node).ss.ps.ps_ExprContext).or_report(),
            ),
        };
        let plan = &run.plan;
        let prop = |label: &str, value: &str| {
            let (l, v) = (cstr(label), cstr(value));
            pg_sys::ExplainPropertyText(l.as_ptr(), v.as_ptr(), es);
        };
        prop("Tier", plan.tier.name());
        super::subplans::explain(&run.subs, &run.coordinator_params, es);
        let child = !run.child.is_null();
        if child {
            let why = plan
                .notes
                .iter()
                .find_map(|n| n.strip_prefix("INSERT ... SELECT through the coordinator: "))
                .unwrap_or("");
            let by = if run.copy_columns.is_some() {
                ", sent with COPY"
            } else {
                ""
            };
            prop(
                "Insert Method",
                &format!("rows of the SELECT routed through the coordinator ({why}){by}"),
            );
        }
        // After a run: how many shards a search asking for fewer rows asked again.
        let asked_again = (run.ran && run.numbered).then(|| {
            run.set_aside
                .as_ref()
                .map_or(0, |s| s.again.iter().filter(|a| **a).count())
        });
        explain_tasks(tasks, plan, asked_again, es);
        if child {
            super::insert_select::explain((*state).run, es);
        }
    }
}

/// The tasks: their count and the worker plan of one (or all) of them; the query template
/// when they are not built yet (an INSERT before it runs).
///
/// # Safety
/// `es` is the live ExplainState.
unsafe fn explain_tasks(
    tasks: Option<Vec<Task>>,
    plan: &tessera_core::plan::DistPlan,
    asked_again: Option<usize>,
    es: *mut pg_sys::ExplainState,
) {
    let prop = |label: &str, value: &str| {
        let (l, v) = (cstr(label), cstr(value));
        // SAFETY: es is live; the strings outlive the call (PostgreSQL copies them).
        unsafe { pg_sys::ExplainPropertyText(l.as_ptr(), v.as_ptr(), es) };
    };
    let es_ptr = es;
    // SAFETY: reading and writing the live ExplainState; remote plans over libpq.
    unsafe {
        let Some(tasks) = tasks else {
            prop("Query Template", &plan.template);
            return;
        };
        let shard_groups: usize = tasks
            .iter()
            .filter(|t| t.primary)
            .map(|t| t.shard_sqls.len())
            .sum();
        pg_sys::ExplainPropertyInteger(
            c"Task Count".as_ptr(),
            std::ptr::null(),
            shard_groups as i64,
            es,
        );
        let all = gucs::explain_all_tasks();
        let shown: Vec<(&Task, &String)> = tasks
            .iter()
            .flat_map(|t| t.shard_sqls.iter().map(move |s| (t, s)))
            .take(if all { usize::MAX } else { 1 })
            .collect();
        if shown.is_empty() {
            return;
        }
        prop(
            "Tasks Shown",
            &if all || shard_groups <= 1 {
                "All".to_string()
            } else {
                format!("One of {shard_groups}")
            },
        );
        let own = task::statement_settings(plan, &tasks);
        if !own.is_empty() {
            let list: Vec<String> = own.iter().map(|(n, v)| format!("{n}={v}")).collect();
            prop("Task Settings", &list.join(", "));
        }
        if let Some(f) = tasks.first().and_then(|t| t.fewer.as_ref()) {
            // Each shard first; a shard group that may hold more of the nearest then again
            // for all the rows wanted (`fewer_rows`).
            pg_sys::ExplainPropertyInteger(
                c"Rows Per Shard".as_ptr(),
                std::ptr::null(),
                f.each,
                es,
            );
            pg_sys::ExplainPropertyInteger(c"Rows Wanted".as_ptr(), std::ptr::null(), f.rows, es);
            if let Some(n) = asked_again {
                pg_sys::ExplainPropertyInteger(
                    c"Shards Asked Again".as_ptr(),
                    std::ptr::null(),
                    n as i64,
                    es,
                );
            }
        }
        let settings = task::task_settings(plan, &tasks);
        let text = (*es).format == pg_sys::ExplainFormat::EXPLAIN_FORMAT_TEXT;
        for (t, sql) in shown {
            let lines = remote_plan(t, (*es).costs, sql, settings.clone()).or_report();
            if text {
                let s = (*es).str_;
                pg_sys::appendStringInfoSpaces(s, (*es).indent * 2);
                pg_sys::appendStringInfoString(s, c"->  Task\n".as_ptr());
                (*es_ptr).indent += 3;
                prop("Query", &abbreviated(sql));
                prop(
                    "Node",
                    &format!("host={} port={}", t.node.host, t.node.port),
                );
                for l in &lines {
                    pg_sys::appendStringInfoSpaces(s, (*es).indent * 2);
                    let c = cstr(l);
                    pg_sys::appendStringInfoString(s, c.as_ptr());
                    pg_sys::appendStringInfoString(s, c"\n".as_ptr());
                }
                (*es_ptr).indent -= 3;
            } else {
                let label = c"Task";
                pg_sys::ExplainOpenGroup(label.as_ptr(), label.as_ptr(), true, es);
                prop("Query", &abbreviated(sql));
                prop(
                    "Node",
                    &format!("host={} port={}", t.node.host, t.node.port),
                );
                prop("Remote Plan", &lines.join("\n"));
                pg_sys::ExplainCloseGroup(label.as_ptr(), label.as_ptr(), true, es);
            }
        }
    }
}

/// A task's SQL for EXPLAIN: whole up to 2000 bytes; longer (the multi-row INSERT of a batch)
/// cut there, with its length.
fn abbreviated(sql: &str) -> String {
    const MAX: usize = 2000;
    if sql.len() <= MAX {
        return sql.to_string();
    }
    let mut end = MAX;
    while !sql.is_char_boundary(end) {
        end -= 1;
    }
    format!("{} ... ({} bytes in all)", &sql[..end], sql.len())
}
