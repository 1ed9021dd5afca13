//! Statements on distributed tables that the shards cannot follow yet, refused with a hint:
//! run on the coordinator alone they would change (or read) only its empty local table, and
//! the user would be told it worked.

use pgrx::pg_sys;

use super::{distributed_range_var, refused, Step, Utility};
use crate::error::TResult;
use crate::pg::nodes::list_ptrs;

/// Refuses `what` when `rv` names a distributed table.
///
/// # Safety
/// `rv` is null or a valid RangeVar.
unsafe fn refuse_on(rv: *mut pg_sys::RangeVar, what: &str, hint: &str) -> TResult<Step> {
    // SAFETY: forwarded.
    match unsafe { distributed_range_var(rv) }? {
        Some(relid) => Err(refused(what, relid, hint)),
        None => Ok(Step::Pass),
    }
}

/// # Safety
/// `u` is a RuleStmt.
pub(super) unsafe fn rule(u: &Utility) -> TResult<Step> {
    // SAFETY: the tag was checked by the table.
    unsafe {
        refuse_on(
            (*u.node::<pg_sys::RuleStmt>()).relation,
            "CREATE RULE",
            "Use a view over the distributed table instead.",
        )
    }
}

/// CLUSTER of a distributed table: the same on every shard, with the shard's index.
///
/// # Safety
/// `u` is a ClusterStmt.
pub(super) unsafe fn cluster(u: &Utility) -> TResult<Step> {
    // SAFETY: the tag was checked by the table; relation is null (CLUSTER of every table) or a
    // valid RangeVar; indexname is null or NUL-terminated.
    unsafe {
        let s = u.node::<pg_sys::ClusterStmt>();
        match distributed_range_var((*s).relation)? {
            Some(relid) => Ok(super::shards::cluster(
                relid,
                (!(*s).indexname.is_null()).then(|| crate::pg::nodes::string((*s).indexname)),
            )),
            None => Ok(Step::Pass),
        }
    }
}

/// CREATE / ALTER PUBLICATION ... FOR TABLE dist: the coordinator's table holds no rows.
///
/// # Safety
/// `u` is a CreatePublicationStmt or an AlterPublicationStmt.
pub(super) unsafe fn publication(u: &Utility) -> TResult<Step> {
    // SAFETY: the tag was checked by the table; pubobjects holds PublicationObjSpecs.
    unsafe {
        let objects = if (*u.stmt).type_ == pg_sys::NodeTag::T_CreatePublicationStmt {
            (*u.node::<pg_sys::CreatePublicationStmt>()).pubobjects
        } else {
            let a = u.node::<pg_sys::AlterPublicationStmt>();
            // Taking a table out of a publication is always allowed.
            if (*a).action == pg_sys::AlterPublicationAction::AP_DropObjects {
                return Ok(Step::Pass);
            }
            (*a).pubobjects
        };
        for o in list_ptrs(objects) {
            let spec = o as *mut pg_sys::PublicationObjSpec;
            if !(*spec).pubtable.is_null() {
                refuse_on(
                    (*(*spec).pubtable).relation,
                    "a publication of a table",
                    "The coordinator's table holds no rows: publish the shards on the workers instead.",
                )?;
            }
        }
    }
    Ok(Step::Pass)
}
