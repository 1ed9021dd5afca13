//! The layout of a Tessera Adaptive scan's `custom_private`, written by the planner and read by
//! the executor in one place. PostgreSQL keeps, copies and serializes it with the plan (a
//! cached plan runs it again), so it is a List of nodes with one fixed slot per item:
//!
//! | slot | holds |
//! | --- | --- |
//! | [`PLAN`] | the encoded `DistPlan` (a String node) |
//! | [`CHILD`] | INSERT ... SELECT through the coordinator: the SELECT's PlannedStmt; else NULL |
//! | [`COPY_COLUMNS`] | with it, the quoted column list for `COPY shard (...) FROM STDIN` (a String node) when the rows can go with COPY; else NULL |
//! | [`SUBPLANS`] | the subqueries that run first: a List of `List(param, kind, element type, width, PlannedStmt)` |
//! | [`COORDINATOR_PARAMS`] | the subqueries' parameters the coordinator's combine step reads too: a List of `List(parameter id, PARAM_EXEC id, type)` |

use std::ffi::{c_char, c_void};

use pgrx::pg_sys;

use crate::pg::nodes::{is_a, list_of, make_list, pstrdup};
use tessera_core::plan::SubKind;

const PLAN: usize = 0;
const CHILD: usize = 1;
const COPY_COLUMNS: usize = 2;
const SUBPLANS: usize = 3;
const COORDINATOR_PARAMS: usize = 4;
const SLOTS: usize = 5;

/// A subquery that runs first (a sublink taken out of the query), as the scan carries it.
pub struct SubplanItem {
    pub param: usize,
    pub kind: SubKind,
    /// The type of the value (Scalar), of the array's elements (Array), or bool (Exists);
    /// unset for Rows (each column has its own).
    pub elem_type: pg_sys::Oid,
    /// How many parameters it fills, `param ..= param + width - 1`: 1, or one per column for
    /// Rows.
    pub width: usize,
    pub stmt: *mut pg_sys::PlannedStmt,
}

/// The `custom_private` of a new scan of the encoded plan `encoded`.
///
/// # Safety
/// Builds nodes in the current memory context.
pub(crate) unsafe fn new(encoded: &str) -> *mut pg_sys::List {
    // SAFETY: building a String node and a List with empty slots.
    unsafe {
        let mut items: Vec<*mut pg_sys::Node> = vec![std::ptr::null_mut(); SLOTS];
        items[PLAN] = pg_sys::makeString(pstrdup(encoded)) as *mut pg_sys::Node;
        make_list(&items)
    }
}

/// The slot `slot` of `cscan`'s `custom_private` (null when empty or missing).
///
/// # Safety
/// `cscan` is a Tessera Adaptive scan.
unsafe fn slot(cscan: *mut pg_sys::CustomScan, slot: usize) -> *mut pg_sys::Node {
    // SAFETY: custom_private is a List of nodes (see the table above).
    unsafe {
        list_of::<pg_sys::Node>((*cscan).custom_private)
            .get(slot)
            .copied()
            .unwrap_or(std::ptr::null_mut())
    }
}

/// Sets slot `slot` of `cscan`'s `custom_private`.
///
/// # Safety
/// `cscan` is a Tessera Adaptive scan built by [`new`].
unsafe fn set(cscan: *mut pg_sys::CustomScan, slot: usize, node: *mut pg_sys::Node) {
    // SAFETY: the List has SLOTS cells (new made it), so the cell exists.
    unsafe {
        let list = (*cscan).custom_private;
        assert!(!list.is_null() && ((*list).length as usize) > slot);
        (*(*list).elements.add(slot)).ptr_value = node as *mut c_void;
    }
}

/// A String node's text, if `node` is one.
///
/// # Safety
/// `node` is null or a node.
unsafe fn string_of(node: *mut pg_sys::Node) -> Option<*const c_char> {
    // SAFETY: the tag is checked before the cast.
    unsafe {
        (!node.is_null() && is_a(node as *const c_void, pg_sys::NodeTag::T_String))
            .then(|| (*(node as *mut pg_sys::String)).sval as *const c_char)
    }
}

/// The encoded plan's text (it lives as long as the plan).
///
/// # Safety
/// `cscan` is a Tessera Adaptive scan.
pub(crate) unsafe fn plan_text(cscan: *mut pg_sys::CustomScan) -> Option<*const c_char> {
    // SAFETY: forwarded.
    unsafe { string_of(slot(cscan, PLAN)) }
}

/// Gives an INSERT ... SELECT scan the SELECT it runs, and the column list when its rows can go
/// with COPY.
///
/// # Safety
/// `cscan` is a Tessera Adaptive scan built by [`new`]; `child` a PlannedStmt.
pub(crate) unsafe fn set_child(
    cscan: *mut pg_sys::CustomScan,
    child: *mut pg_sys::PlannedStmt,
    copy_columns: Option<&str>,
) {
    // SAFETY: forwarded; a String node made here.
    unsafe {
        set(cscan, CHILD, child as *mut pg_sys::Node);
        if let Some(cols) = copy_columns {
            set(
                cscan,
                COPY_COLUMNS,
                pg_sys::makeString(pstrdup(cols)) as *mut pg_sys::Node,
            );
        }
    }
}

/// The SELECT of an INSERT ... SELECT through the coordinator (null when none).
///
/// # Safety
/// `cscan` is a Tessera Adaptive scan.
pub(crate) unsafe fn child(cscan: *mut pg_sys::CustomScan) -> *mut pg_sys::PlannedStmt {
    // SAFETY: the tag is checked before the cast.
    unsafe {
        let n = slot(cscan, CHILD);
        if !n.is_null() && is_a(n as *const c_void, pg_sys::NodeTag::T_PlannedStmt) {
            n as *mut pg_sys::PlannedStmt
        } else {
            std::ptr::null_mut()
        }
    }
}

/// The quoted column list for sending an INSERT ... SELECT's rows with COPY, if they can go so.
///
/// # Safety
/// `cscan` is a Tessera Adaptive scan.
pub(crate) unsafe fn copy_columns(cscan: *mut pg_sys::CustomScan) -> Option<String> {
    // SAFETY: a String node's NUL-terminated text.
    unsafe {
        string_of(slot(cscan, COPY_COLUMNS)).map(|p| crate::pg::nodes::string(p as *mut c_char))
    }
}

/// Adds subqueries that run first to the scan.
///
/// # Safety
/// `cscan` is a Tessera Adaptive scan built by [`new`]; each `stmt` a PlannedStmt.
pub(crate) unsafe fn push_subplans(cscan: *mut pg_sys::CustomScan, items: &[SubplanItem]) {
    // SAFETY: building Integer nodes and Lists; the slot holds a List (or NIL).
    unsafe {
        let mut list = slot(cscan, SUBPLANS) as *mut pg_sys::List;
        for s in items {
            let item = make_list(&[
                pg_sys::makeInteger(s.param as i32) as *mut pg_sys::Node,
                pg_sys::makeInteger(s.kind as i32) as *mut pg_sys::Node,
                pg_sys::makeInteger(s.elem_type.to_u32() as i32) as *mut pg_sys::Node,
                pg_sys::makeInteger(s.width as i32) as *mut pg_sys::Node,
                s.stmt as *mut pg_sys::Node,
            ]);
            list = pg_sys::lappend(list, item as *mut c_void);
        }
        set(cscan, SUBPLANS, list as *mut pg_sys::Node);
    }
}

/// The subqueries that run first.
///
/// # Safety
/// `cscan` is a Tessera Adaptive scan.
pub(crate) unsafe fn subplans(cscan: *mut pg_sys::CustomScan) -> Vec<SubplanItem> {
    // SAFETY: the slot holds a List of 5-item Lists (Integer x 4, PlannedStmt); each node's
    // tag is checked before it is read as that type.
    unsafe {
        let list = slot(cscan, SUBPLANS);
        if list.is_null() || !is_a(list as *const c_void, pg_sys::NodeTag::T_List) {
            return Vec::new();
        }
        let int = |n: *mut pg_sys::Node| (*(n as *mut pg_sys::Integer)).ival;
        list_of::<pg_sys::List>(list as *mut pg_sys::List)
            .into_iter()
            .filter_map(|item| {
                let parts = list_of::<pg_sys::Node>(item);
                let [param, kind, elem, width, stmt] = parts.as_slice() else {
                    return None;
                };
                let integer =
                    |n: &*mut pg_sys::Node| is_a(*n as *const c_void, pg_sys::NodeTag::T_Integer);
                if ![param, kind, elem, width].into_iter().all(integer)
                    || !is_a(*stmt as *const c_void, pg_sys::NodeTag::T_PlannedStmt)
                {
                    return None;
                }
                Some(SubplanItem {
                    param: int(*param) as usize,
                    kind: SubKind::from_code(int(*kind))?,
                    elem_type: pg_sys::Oid::from(int(*elem) as u32),
                    width: int(*width) as usize,
                    stmt: *stmt as *mut pg_sys::PlannedStmt,
                })
            })
            .collect()
    }
}

/// A subquery's parameter that the plan above the scan reads as well (a sublink in the select
/// list or HAVING of a query combined on the coordinator): the scan sets the executor's
/// `PARAM_EXEC` parameter `exec` to the value it computed for parameter `param`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CoordinatorParam {
    pub param: usize,
    pub exec: usize,
    pub typid: pg_sys::Oid,
}

/// Records the parameters the plan above the scan reads.
///
/// # Safety
/// `cscan` is a Tessera Adaptive scan built by [`new`].
pub(crate) unsafe fn set_coordinator_params(
    cscan: *mut pg_sys::CustomScan,
    params: &[CoordinatorParam],
) {
    // SAFETY: building Integer nodes and Lists.
    unsafe {
        let items: Vec<*mut pg_sys::Node> = params
            .iter()
            .map(|p| {
                make_list(&[
                    pg_sys::makeInteger(p.param as i32) as *mut pg_sys::Node,
                    pg_sys::makeInteger(p.exec as i32) as *mut pg_sys::Node,
                    pg_sys::makeInteger(p.typid.to_u32() as i32) as *mut pg_sys::Node,
                ]) as *mut pg_sys::Node
            })
            .collect();
        set(
            cscan,
            COORDINATOR_PARAMS,
            make_list(&items) as *mut pg_sys::Node,
        );
    }
}

/// The parameters the plan above the scan reads.
///
/// # Safety
/// `cscan` is a Tessera Adaptive scan.
pub(crate) unsafe fn coordinator_params(cscan: *mut pg_sys::CustomScan) -> Vec<CoordinatorParam> {
    // SAFETY: the slot holds a List of 3-Integer Lists; each tag is checked before the read.
    unsafe {
        let list = slot(cscan, COORDINATOR_PARAMS);
        if list.is_null() || !is_a(list as *const c_void, pg_sys::NodeTag::T_List) {
            return Vec::new();
        }
        list_of::<pg_sys::List>(list as *mut pg_sys::List)
            .into_iter()
            .filter_map(|item| {
                let parts = list_of::<pg_sys::Node>(item);
                let [param, exec, typid] = parts.as_slice() else {
                    return None;
                };
                let int = |n: &*mut pg_sys::Node| {
                    is_a(*n as *const c_void, pg_sys::NodeTag::T_Integer)
                        .then(|| (*(*n as *mut pg_sys::Integer)).ival)
                };
                Some(CoordinatorParam {
                    param: int(param)? as usize,
                    exec: int(exec)? as usize,
                    typid: pg_sys::Oid::from(int(typid)? as u32),
                })
            })
            .collect()
    }
}
