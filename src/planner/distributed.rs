//! The distributed planner: picks the tier of a query on distributed tables and builds its
//! PlannedStmt around a Tessera Adaptive CustomScan.
//!
//! | query | tier | plan |
//! | --- | --- | --- |
//! | every distributed table pinned to one shard group (`dist_col = 5`, `= $1`) | (fast-path) router | the whole query on one node |
//! | SELECT without aggregates, sort or limit | multi-shard | the query on every shard group, rows appended |
//! | SELECT with aggregates, GROUP BY, ORDER BY, LIMIT, DISTINCT | multi-shard | a worker query per shard group + a combine query planned by PostgreSQL over the scan |
//! | UPDATE / DELETE | router or multi-shard | the statement on each shard group, in the remote transaction |
//! | INSERT ... VALUES | router | rows evaluated on the coordinator, routed by hash, one multi-row INSERT per shard |
//!
//! Multi-shard plans need every distributed table at the top level, co-located and joined on
//! the distribution column; otherwise the query is refused with the reason and a way out.
//!
//! This file holds the ladder: the query as it is (`plan_one`, which dispatches by command to
//! `select`, `modify::update_delete`, `modify::insert_values`, `modify::insert_select`), then
//! retries with its subqueries taken out (`subplans`), finished on the coordinator
//! (`on_coordinator`), or sent to the shards as parameters. `tiers` picks the tier and builds the
//! DistPlan; `scan` the CustomScan and PlannedStmt around it; `query` the facts of a query
//! tree they share.

use std::ffi::c_void;

use pgrx::pg_sys;

use super::analyze::analyze;
use crate::error::TResult;
use crate::planner::modify::insert_select::plan_insert_select;
use crate::planner::modify::insert_values::{plan_insert, values_as_select};
use crate::planner::modify::update_delete::plan_modify;
use crate::planner::modify::{sub_rti, target};
use crate::planner::query::param_base;
use crate::planner::select::plan_select;
use crate::planner::unsupported;

/// Plans a query that touches distributed tables.
///
/// # Safety
/// The planner hook's arguments.
pub unsafe fn plan(
    parse: *mut pg_sys::Query,
    query_string: *const std::ffi::c_char,
    cursor_options: i32,
    bound_params: pg_sys::ParamListInfo,
) -> TResult<*mut pg_sys::PlannedStmt> {
    // SAFETY: planning a valid analyzed Query, or a copy of it.
    unsafe {
        let a = analyze(parse)?;
        // One distributed schema's tables: the whole statement on its node.
        if let Some(stmt) = super::single_node::plan(parse, &a)? {
            return Ok(stmt);
        }
        if (*parse).hasModifyingCTE {
            // Its WITH queries run first, each as a statement of its own.
            return super::with_first::plan(parse, query_string, cursor_options, bound_params);
        }
        let first = plan_analyzed(parse, a, query_string, cursor_options, bound_params);
        let Err(e) = first else { return first };
        // Refused as it is: plan a copy again with subqueries taken out (planned on their own
        // and run first), in these ways, the cheapest first.
        let command = (*parse).commandType;
        let reads_or_changes = matches!(
            command,
            pg_sys::CmdType::CMD_SELECT | pg_sys::CmdType::CMD_UPDATE | pg_sys::CmdType::CMD_DELETE
        );
        let sublinks = (*parse).hasSubLinks;
        let args = (query_string, cursor_options, bound_params);
        let mut why_not = None;
        // Subqueries in WHERE become parameters of the shard queries.
        if reads_or_changes && sublinks {
            if let Some(stmt) = retry(parse, Retry::Where, &mut why_not, args)? {
                return Ok(stmt);
            }
        }
        // Those in the SELECT list, SET or HAVING too, when the query then runs whole on the
        // workers.
        if matches!(
            command,
            pg_sys::CmdType::CMD_SELECT | pg_sys::CmdType::CMD_UPDATE
        ) && sublinks
        {
            if let Some(stmt) = retry(parse, Retry::Outputs, &mut why_not, args)? {
                return Ok(stmt);
            }
        }
        // Its distributed subqueries and CTEs run first and the coordinator finishes.
        let copy = pg_sys::copyObjectImpl(parse as *const c_void) as *mut pg_sys::Query;
        if let Some(stmt) =
            super::on_coordinator::plan(copy, query_string, cursor_options, bound_params)?
        {
            return Ok(stmt);
        }
        // Joined with distributed tables, their rows go to the shards as parameters.
        if reads_or_changes {
            if let Some(stmt) = retry(parse, Retry::From, &mut why_not, args)? {
                return Ok(stmt);
            }
        }
        Err(why_not.unwrap_or(e))
    }
}

/// What a retry of a refused query takes out of it, beside the sublinks of its WHERE.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Retry {
    /// Nothing more.
    Where,
    /// The sublinks of its target list and HAVING.
    Outputs,
    /// Its FROM items that read distributed or local tables.
    From,
}

/// Plans a copy of `parse` with subqueries taken out as `how` says, their results parameters
/// numbered after the user's; `None` when nothing was taken out or the copy is refused too (with
/// `why_not` set when the refusal says more than the first one).
unsafe fn retry(
    parse: *mut pg_sys::Query,
    how: Retry,
    why_not: &mut Option<crate::error::TesseraError>,
    (query_string, cursor_options, bound_params): (
        *const std::ffi::c_char,
        i32,
        pg_sys::ParamListInfo,
    ),
) -> TResult<Option<*mut pg_sys::PlannedStmt>> {
    use super::subplans::{self, Clauses};
    // SAFETY: planning a copy of a valid analyzed Query.
    unsafe {
        let copy = pg_sys::copyObjectImpl(parse as *const c_void) as *mut pg_sys::Query;
        let base = param_base(parse, bound_params);
        let mut subplans =
            subplans::extract(copy, Clauses::Where, base + 1, query_string, bound_params);
        let next = base + 1 + subplans.iter().map(|s| s.width).sum::<usize>();
        let more = match how {
            Retry::Where => Vec::new(),
            Retry::Outputs => {
                subplans::extract(copy, Clauses::Outputs, next, query_string, bound_params)
            }
            Retry::From => subplans::broadcast_from(copy, next, query_string, bound_params),
        };
        // Nothing taken out (beyond WHERE's, for the other ways): nothing new to try.
        if more.is_empty() && (how != Retry::Where || subplans.is_empty()) {
            return Ok(None);
        }
        subplans.extend(more);
        if !super::analyze::touches_distributed(copy)? {
            // Nothing distributed is left: the coordinator evaluates the rest
            // (`on_coordinator::plan`), where its functions, sequences and settings are.
            return Ok(None);
        }
        let Ok(stmt) = plan_one(copy, query_string, cursor_options, bound_params) else {
            return Ok(None);
        };
        // The combine step reads the values too: the scan hands them to it.
        let mut for_coordinator = None;
        if how == Retry::Outputs && !subplans::runs_whole_on_workers(stmt, base + 1) {
            match subplans::to_coordinator(stmt, base + 1) {
                Ok(found) => for_coordinator = Some(found),
                Err(subplans::NotOnCoordinator::EvaluatedFirst) => {
                    *why_not = Some(super::unsupported(
                        "a subquery whose value is needed before the shards' rows arrive (in LIMIT, OFFSET, a window frame's offsets, or a HAVING condition that reads no column) is not supported in a query whose rows the coordinator combines",
                        "Compute the value in an earlier statement and pass it as a parameter or a constant, or make the condition read a grouped column or an aggregate.",
                    ));
                    return Ok(None);
                }
                Err(subplans::NotOnCoordinator::NotCombine) => return Ok(None),
            }
        }
        subplans::attach(stmt, &subplans)?;
        if let Some((scan, params)) = for_coordinator {
            crate::executor::scan_private::set_coordinator_params(scan, &params);
        }
        Ok(Some(stmt))
    }
}

unsafe fn plan_one(
    parse: *mut pg_sys::Query,
    query_string: *const std::ffi::c_char,
    cursor_options: i32,
    bound_params: pg_sys::ParamListInfo,
) -> TResult<*mut pg_sys::PlannedStmt> {
    // SAFETY: forwarded.
    unsafe {
        let a = analyze(parse)?;
        // A retry's copy may now be a statement on one distributed schema's tables.
        if let Some(stmt) = super::single_node::plan(parse, &a)? {
            return Ok(stmt);
        }
        plan_analyzed(parse, a, query_string, cursor_options, bound_params)
    }
}

/// [`plan_one`] with the query's analysis made already.
unsafe fn plan_analyzed(
    parse: *mut pg_sys::Query,
    a: super::analyze::Analysis,
    query_string: *const std::ffi::c_char,
    cursor_options: i32,
    bound_params: pg_sys::ParamListInfo,
) -> TResult<*mut pg_sys::PlannedStmt> {
    // SAFETY: reading and copying a valid analyzed Query.
    unsafe {
        if a.rtes.is_empty() {
            // Every plan runs on some table's shards; a query without one is the
            // coordinator's (the retries hand such queries to `on_coordinator::plan`).
            return Err(unsupported(
                "cannot run this query on the workers: it reads no distributed table",
                "Run the subqueries on distributed tables as statements of their own.",
            ));
        }
        if (*parse).hasModifyingCTE {
            return Err(unsupported(
                "data-modifying statements in WITH are not supported on distributed tables",
                "Run the modification as its own statement.",
            ));
        }
        if (*parse).commandType == pg_sys::CmdType::CMD_INSERT
            && sub_rti(parse).is_none()
            && (*parse).hasTargetSRFs
        {
            // `VALUES (generate_series(1, 3), 'x')`: the row is a SELECT that returns a set,
            // run on the coordinator; its rows go to the shards.
            let q = values_as_select(parse);
            let a = analyze(q)?;
            let t = target(q, &a)?;
            return plan_insert_select(q, &a, t, query_string, bound_params);
        }
        if (*parse).commandType == pg_sys::CmdType::CMD_INSERT && sub_rti(parse).is_some() {
            // Pushed down to the shard groups, or its rows routed through the coordinator:
            // the SELECT may read local tables and tables of other colocation groups.
            let t = target(parse, &a)?;
            return plan_insert_select(parse, &a, t, query_string, bound_params);
        }
        if a.cte_results {
            return Err(unsupported(
                "cannot push down a query that reads the rows of a WITH query to the shards this way",
                "Read the WITH query's rows in a join with a distributed table or in its own SELECT (they then go to the shards as parameters), or split the statement.",
            ));
        }
        if let Some(&local) = a.local_tables.first() {
            let (schema, name) = crate::pg::nodes::rel_schema_and_name(local);
            return Err(unsupported(
                format!("cannot plan a query that mixes the local table {schema}.{name} with distributed tables this way"),
                "A local table joins a distributed table in a SELECT, as an inner join or on the nullable side of an outer join (its rows then go to the shards). Otherwise distribute it with create_distributed_table() (co-located), or make it a reference table with create_reference_table().",
            ));
        }
        let colocations: Vec<i32> = a.hash_rtes().map(|r| r.meta.table.colocation_id).collect();
        let tenant = a.hash_rtes().any(|r| !r.meta.has_dist_column());
        if tenant && colocations.windows(2).any(|w| w[0] != w[1]) {
            return Err(unsupported(
                "cannot run a query that joins tables of two distributed schemas, or of a distributed schema and distributed tables, in one statement yet",
                "Query each distributed schema on its own (each runs whole on its node), or make the table the tenants share a reference table.",
            ));
        }
        if colocations.windows(2).any(|w| w[0] != w[1]) {
            return Err(unsupported(
                "cannot push down this query: it joins distributed tables that are not co-located",
                "Create the tables with the same shard count and colocate_with => '<other table>', or join them through a reference table.",
            ));
        }
        match (*parse).commandType {
            pg_sys::CmdType::CMD_SELECT => {
                plan_select(parse, &a, query_string, cursor_options, bound_params)
            }
            pg_sys::CmdType::CMD_UPDATE | pg_sys::CmdType::CMD_DELETE => plan_modify(parse, &a),
            pg_sys::CmdType::CMD_INSERT => plan_insert(parse, &a, bound_params),
            pg_sys::CmdType::CMD_MERGE if tenant => Err(unsupported(
                "cannot run this MERGE on the distributed schema's node: it calls a sequence or VOLATILE function (so does a column default its INSERT leaves out, such as nextval() or gen_random_uuid()), one of Tessera's functions, or writes a reference table",
                "Give such columns their values in the INSERT action, or write the change as INSERT ... ON CONFLICT DO UPDATE (Tessera evaluates sequences for it on the coordinator).",
            )),
            pg_sys::CmdType::CMD_MERGE => Err(unsupported(
                "MERGE is supported only on the tables of one distributed schema (with reference tables) yet",
                "Use INSERT ... ON CONFLICT DO UPDATE, or an UPDATE and an INSERT in one transaction.",
            )),
            _ => Err(unsupported(
                "this kind of statement is not supported on distributed tables",
                "Use SELECT, INSERT, UPDATE or DELETE.",
            )),
        }
    }
}
