//! Row-level security of distributed tables, as the planner sees it: the shards hold the
//! same policies and enforce them (the shard queries run as the current role), so a policy's
//! quals are not part of the distributed query; a policy that would mean something else on
//! the shards (`session_user` under SET ROLE) is refused.

use std::ffi::c_void;

use pgrx::pg_sys;
use pgrx::prelude::*;

use crate::error::{TResult, TesseraError};
use crate::metadata::cache;
use crate::pg::nodes::is_a;
use crate::pg::nodes::list_of;

/// Whether the row-level security quals `quals` (of the distributed table `rte`) read
/// `session_user`; refused while the current role is not the session user (SET ROLE, a
/// SECURITY DEFINER function): the shards enforce the same policies, on connections whose
/// session user is the current role, so there `session_user` would name another role and the
/// rows allowed would not be the table's. (A cached plan checks again when it runs, in
/// `executor::task::run`, with [`session_user_differs`].)
pub(super) unsafe fn policy_reads_session_user(
    rte: *mut pg_sys::RangeTblEntry,
    quals: *mut pg_sys::Node,
) -> TResult<bool> {
    // SAFETY: reading this backend's roles and a valid expression tree.
    unsafe {
        if !session_user_walker(quals, std::ptr::null_mut()) {
            return Ok(false);
        }
        if pg_sys::GetSessionUserId() == pg_sys::GetUserId() {
            return Ok(true);
        }
        let name = crate::pg::nodes::string(pg_sys::get_rel_name((*rte).relid));
        Err(session_user_differs(Some(&name)))
    }
}

/// The refusal of a query bound by a policy that reads `session_user` (of the table `name`)
/// while the current role is not the session user.
pub(crate) fn session_user_differs(name: Option<&str>) -> TesseraError {
    let what = match name {
        Some(n) => format!("the distributed table \"{n}\""),
        None => "a distributed table".to_string(),
    };
    TesseraError::new(
        PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
        format!("cannot query {what} while the current role is not the session user: a row-level security policy of the table reads session_user, which the shards would see as the current role"),
    )
    .hint("Write the policy with current_user, or run the query as the session user (RESET ROLE, outside SECURITY DEFINER functions).")
}

/// True at a `session_user` anywhere in the tree (sub-queries included).
#[pg_guard]
unsafe extern "C-unwind" fn session_user_walker(node: *mut pg_sys::Node, ctx: *mut c_void) -> bool {
    if node.is_null() {
        return false;
    }
    // SAFETY: called with valid nodes by the tree walkers.
    unsafe {
        if is_a(node as *const c_void, pg_sys::NodeTag::T_SQLValueFunction)
            && (*(node as *mut pg_sys::SQLValueFunction)).op
                == pg_sys::SQLValueFunctionOp::SVFOP_SESSION_USER
        {
            return true;
        }
        if is_a(node as *const c_void, pg_sys::NodeTag::T_Query) {
            return pg_sys::query_tree_walker(
                node as *mut pg_sys::Query,
                Some(session_user_walker),
                ctx,
                0,
            );
        }
        crate::pg::nodes::walk_children(node, Some(session_user_walker), ctx)
    }
}

/// Row-level security quals (of range table entries, and a query's WITH CHECK options) taken
/// off for a walk, put back when dropped (an error's unwinding included).
pub(super) struct SecurityQualsAside(Vec<(*mut *mut pg_sys::List, *mut pg_sys::List)>);

impl SecurityQualsAside {
    pub(super) fn new() -> SecurityQualsAside {
        SecurityQualsAside(Vec::new())
    }

    /// Takes the list at `slot` off until the walk ends.
    pub(super) fn take(&mut self, slot: *mut *mut pg_sys::List) {
        // SAFETY: `slot` is a field of the Query being planned, which outlives the walk.
        unsafe {
            self.0.push((slot, *slot));
            *slot = std::ptr::null_mut();
        }
    }
}

impl Drop for SecurityQualsAside {
    fn drop(&mut self) {
        for &(slot, quals) in &self.0 {
            // SAFETY: the fields belong to the Query being planned, which outlives the walk.
            unsafe { *slot = quals };
        }
    }
}

/// Refuses a distributed table read through a view owned by another role (its range table
/// entry checked as the view's owner) when the table has row-level security: PostgreSQL
/// applies the owner's policies (or none, for the table's owner), while the shards, whose
/// queries run as the current role, would apply the current role's, and the rows would not be
/// the table's.
pub(super) unsafe fn refuse_view_owner_policies(rte: *mut pg_sys::RangeTblEntry) -> TResult<()> {
    // SAFETY: reading a valid range table entry and the catalog.
    unsafe {
        let as_user = (*rte).checkAsUser;
        if as_user == pg_sys::InvalidOid || as_user == pg_sys::GetUserId() {
            return Ok(());
        }
        // Policies that apply to neither role (both bypass them, or the table has none) mean
        // the same rows on both sides.
        let enabled = pg_sys::CheckEnableRlsResult::RLS_ENABLED as i32;
        if pg_sys::check_enable_rls((*rte).relid, as_user, true) != enabled
            && pg_sys::check_enable_rls((*rte).relid, pg_sys::InvalidOid, true) != enabled
        {
            return Ok(());
        }
        let name = crate::pg::nodes::string(pg_sys::get_rel_name((*rte).relid));
        Err(TesseraError::new(
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            format!("cannot read the distributed table \"{name}\" through a view owned by another role: the table has row-level security, which the shards would apply for the current role instead of the view's owner"),
        )
        .hint("Make the view security_invoker (ALTER VIEW ... SET (security_invoker = true)), or query the table directly."))
    }
}

/// Sets aside, for the walk of `query`'s level, the row-level security quals of its
/// distributed tables and the WITH CHECK options of a distributed target: the shards hold the
/// same policies and enforce them (the shard queries run as the current role), so a policy that
/// reads a reference table is not a subquery of the distributed query. On the way it refuses a
/// view's CHECK OPTION on a distributed target (nothing would check it: the shard statements
/// name the table) and a view owned by another role over a table with policies
/// ([`refuse_view_owner_policies`]), and notes in `reads_session_user` whether a policy reads
/// `session_user` ([`policy_reads_session_user`]).
pub(super) unsafe fn set_aside(
    query: *mut pg_sys::Query,
    reads_session_user: &mut bool,
) -> TResult<SecurityQualsAside> {
    // SAFETY: `query` is the valid Query being planned; its range table entries and options
    // are read, and the lists set aside are put back when the guard drops.
    unsafe {
        let mut set_aside = SecurityQualsAside::new();
        for rte in list_of::<pg_sys::RangeTblEntry>((*query).rtable) {
            if (*rte).rtekind != pg_sys::RTEKind::RTE_RELATION
                || cache::lookup((*rte).relid)?.is_none()
            {
                continue;
            }
            refuse_view_owner_policies(rte)?;
            if !(*rte).securityQuals.is_null() {
                *reads_session_user |=
                    policy_reads_session_user(rte, (*rte).securityQuals as *mut pg_sys::Node)?;
                set_aside.take(&mut (*rte).securityQuals);
            }
        }
        // The WITH CHECK side of a distributed target's policies, which its shards enforce
        // as well (so a policy's read of a reference table is not the INSERT's).
        if (*query).resultRelation > 0 && !(*query).withCheckOptions.is_null() {
            let rte = pg_sys::list_nth((*query).rtable, (*query).resultRelation - 1)
                as *mut pg_sys::RangeTblEntry;
            if cache::lookup((*rte).relid)?.is_some() {
                for w in list_of::<pg_sys::WithCheckOption>((*query).withCheckOptions) {
                    if (*w).kind == pg_sys::WCOKind::WCO_VIEW_CHECK {
                        // The shard statements name the table, not the view: nothing would
                        // check the view's condition.
                        return Err(TesseraError::new(
                                PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
                                format!(
                                    "cannot write to a distributed table through the view \"{}\" WITH CHECK OPTION",
                                    crate::pg::nodes::string((*w).relname)
                                ),
                            )
                            .hint("Write to the table directly, or drop the view's CHECK OPTION (ALTER VIEW ... RESET (check_option))."));
                    }
                    *reads_session_user |= policy_reads_session_user(rte, (*w).qual)?;
                }
                set_aside.take(&mut (*query).withCheckOptions);
            }
        }
        Ok(set_aside)
    }
}
