//! Privilege checks as PostgreSQL's own commands make them.

use pgrx::pg_sys;

/// A parse state whose range table holds `rel` (opened with `lockmode`) as an INSERT target,
/// with INSERT checked on the columns of `attlist` (a List of column names; NIL: every
/// column) as COPY FROM checks it; raises PostgreSQL's permission error. Returns the parse
/// state (for `BeginCopyFrom`) and the columns' attribute numbers.
///
/// # Safety
/// `rel` is an open relation; `attlist` a valid List of String nodes or NIL.
pub unsafe fn insert_checked(
    rel: pg_sys::Relation,
    lockmode: pg_sys::LOCKMODE,
    attlist: *mut pg_sys::List,
) -> (*mut pg_sys::ParseState, Vec<i32>) {
    // SAFETY: forwarded; the parse state and its range table entry are palloc'd in the
    // current memory context.
    unsafe {
        let pstate = pg_sys::make_parsestate(std::ptr::null_mut());
        let nsitem = pg_sys::addRangeTableEntryForRelation(
            pstate,
            rel,
            lockmode,
            std::ptr::null_mut(),
            false,
            false,
        );
        let rte = (*nsitem).p_rte;
        (*rte).requiredPerms = pg_sys::ACL_INSERT as pg_sys::AclMode;
        let attnums = super::nodes::int_list(pg_sys::CopyGetAttnums((*rel).rd_att, rel, attlist));
        for &attnum in &attnums {
            (*rte).insertedCols = pg_sys::bms_add_member(
                (*rte).insertedCols,
                attnum - pg_sys::FirstLowInvalidHeapAttributeNumber,
            );
        }
        pg_sys::ExecCheckRTPerms((*pstate).p_rtable, true);
        (pstate, attnums)
    }
}

/// Whether row-level security binds the current role on the table `relid` (its policies
/// filter what it reads and check what it writes), as PostgreSQL's COPY asks before it runs.
pub fn row_security_binds(relid: pg_sys::Oid) -> bool {
    // SAFETY: a catalog check by OID; a table that does not exist has no row-level security.
    unsafe {
        pg_sys::check_enable_rls(relid, pg_sys::InvalidOid, true)
            == pg_sys::CheckEnableRlsResult::RLS_ENABLED as i32
    }
}
