//! Small, safe-to-call wrappers over PostgreSQL node trees: Lists, strings, node tags.
//!
//! Everything that reads or builds `List`s goes through here, so the planner and the utility
//! hook keep their `unsafe` blocks about the node semantics, not about list layout.

use std::ffi::{c_void, CStr, CString};

use pgrx::pg_sys;

/// The pointer elements of a List (an empty Vec for NIL).
///
/// # Safety
/// `list` is NIL or a valid pointer List.
pub unsafe fn list_ptrs(list: *mut pg_sys::List) -> Vec<*mut c_void> {
    if list.is_null() {
        return Vec::new();
    }
    // SAFETY: a valid List has `length` initialised cells at `elements`.
    unsafe {
        (0..(*list).length as usize)
            .map(|i| (*(*list).elements.add(i)).ptr_value)
            .collect()
    }
}

/// The elements of a List cast to `*mut T`.
///
/// # Safety
/// `list` is NIL or a valid List whose elements are `T` nodes.
pub unsafe fn list_of<T>(list: *mut pg_sys::List) -> Vec<*mut T> {
    // SAFETY: forwarded.
    unsafe { list_ptrs(list) }
        .into_iter()
        .map(|p| p as *mut T)
        .collect()
}

/// The elements of an integer List (an empty Vec for NIL).
///
/// # Safety
/// `list` is NIL or a valid integer List.
pub unsafe fn int_list(list: *mut pg_sys::List) -> Vec<i32> {
    if list.is_null() {
        return Vec::new();
    }
    // SAFETY: a valid List has `length` initialised cells at `elements`.
    unsafe {
        (0..(*list).length as usize)
            .map(|i| (*(*list).elements.add(i)).int_value)
            .collect()
    }
}

/// A new pointer List in the current memory context.
///
/// # Safety
/// Every element is a valid node pointer (or NIL-compatible for the List's use).
pub unsafe fn make_list<T>(items: &[*mut T]) -> *mut pg_sys::List {
    let mut list = std::ptr::null_mut();
    for &i in items {
        // SAFETY: lappend copies the pointer into a (possibly new) List.
        list = unsafe { pg_sys::lappend(list, i as *mut c_void) };
    }
    list
}

/// Whether `node` is non-null with tag `tag`.
///
/// # Safety
/// `node` is null or points to a node.
pub unsafe fn is_a(node: *const c_void, tag: pg_sys::NodeTag) -> bool {
    // SAFETY: every node starts with its tag.
    !node.is_null() && unsafe { *(node as *const pg_sys::NodeTag) } == tag
}

/// `expression_tree_walker(node, walker, ctx)`, without crossing into C for a node that has
/// no subnodes (the walker is then done with it: false). A walker calls it after looking at
/// `node` itself; skipping the call for leaves (a 500-row VALUES list is 1,500 constants)
/// saves the FFI boundary's setjmp per leaf, per walker.
///
/// # Safety
/// As `expression_tree_walker`: `node` is a valid node tree or null.
pub unsafe fn walk_children(
    node: *mut pg_sys::Node,
    walker: Option<unsafe extern "C-unwind" fn(*mut pg_sys::Node, *mut c_void) -> bool>,
    ctx: *mut c_void,
) -> bool {
    if node.is_null() {
        return false;
    }
    // SAFETY: every node starts with its tag.
    let tag = unsafe { *(node as *const pg_sys::NodeTag) };
    use pg_sys::NodeTag as T;
    match tag {
        // The primitive node types expression_tree_walker has nothing to walk in.
        T::T_Var
        | T::T_Const
        | T::T_Param
        | T::T_CaseTestExpr
        | T::T_SQLValueFunction
        | T::T_CoerceToDomainValue
        | T::T_SetToDefault
        | T::T_CurrentOfExpr
        | T::T_NextValueExpr
        | T::T_RangeTblRef
        | T::T_SortGroupClause
        | T::T_CTESearchClause => false,
        // SAFETY: forwarded.
        _ => unsafe { pg_sys::expression_tree_walker(node, walker, ctx) },
    }
}

/// A C string owned by PostgreSQL as a Rust String ("" for null).
///
/// # Safety
/// `p` is null or a NUL-terminated string.
pub unsafe fn string(p: *const std::ffi::c_char) -> String {
    if p.is_null() {
        String::new()
    } else {
        // SAFETY: forwarded.
        unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
    }
}

/// A palloc'd copy of `s` (NUL bytes cut off).
pub fn pstrdup(s: &str) -> *mut std::ffi::c_char {
    let c = CString::new(s.split('\0').next().unwrap_or_default()).unwrap_or_default();
    // SAFETY: pstrdup copies the string into the current memory context.
    unsafe { pg_sys::pstrdup(c.as_ptr()) }
}

/// The schema and name of a relation ("" when it is gone).
pub fn rel_schema_and_name(relid: pg_sys::Oid) -> (String, String) {
    // SAFETY: syscache lookups; the results are palloc'd strings or null.
    unsafe {
        let name = pg_sys::get_rel_name(relid);
        let nsp = pg_sys::get_namespace_name(pg_sys::get_rel_namespace(relid));
        (string(nsp), string(name))
    }
}
