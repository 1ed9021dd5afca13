//! UPDATE and DELETE: router or multi-shard, run in the remote transaction.

use pgrx::pg_sys;

use tessera_core::plan::{Command, Pin, Tier};

use crate::error::TResult;
use crate::planner::analyze::Analysis;
use crate::planner::modify::{check_dist_col_unchanged, target};
use crate::planner::scan::{custom_scan, index_var_tlist, planned_stmt, visible};
use crate::planner::tiers::{base_plan, common_pin, multi_shard_blocker, multi_shard_pin};
use crate::planner::unsupported;

pub(crate) unsafe fn plan_modify(
    parse: *mut pg_sys::Query,
    a: &Analysis,
) -> TResult<*mut pg_sys::PlannedStmt> {
    // SAFETY: reading the analyzed Query.
    unsafe {
        let t = target(parse, a)?;
        let meta = a.rtes[t].meta.clone();
        let command = if (*parse).commandType == pg_sys::CmdType::CMD_UPDATE {
            check_dist_col_unchanged((*parse).targetList, meta.table.dist_attnum)?;
            Command::Update
        } else {
            Command::Delete
        };
        if pg_sys::contain_volatile_functions(parse as *mut pg_sys::Node) {
            return Err(unsupported(
                "functions used in UPDATE and DELETE on distributed tables must not be VOLATILE",
                "Compute the value first (for example in a CTE-free SELECT on the coordinator) and pass it as a constant or parameter.",
            ));
        }
        let (tier, pin) = if meta.is_reference() {
            if a.hash_rtes().next().is_some() {
                return Err(unsupported(
                    "cannot modify a reference table with a query that reads distributed tables",
                    "Read the distributed rows first, then modify the reference table with constants.",
                ));
            }
            (Tier::Router, Pin::Single)
        } else if let Some(pin) = common_pin(a) {
            (
                if a.rtes.len() == 1 && !a.has_sublevels {
                    Tier::FastPathRouter
                } else {
                    Tier::Router
                },
                pin,
            )
        } else {
            if let Some(e) = multi_shard_blocker(a) {
                return Err(e);
            }
            (Tier::MultiShard, multi_shard_pin(a))
        };
        let returning = !(*parse).returningList.is_null();
        let mut plan = base_plan(tier, command, parse, a, pin, returning)?;
        plan.set_anchor(meta.table.relid.to_u32());
        let scan_tlist = visible((*parse).returningList);
        let cscan = custom_scan(&plan, scan_tlist, 1.0);
        (*cscan).scan.plan.targetlist = index_var_tlist(scan_tlist);
        Ok(planned_stmt(parse, cscan, a))
    }
}
