//! Facts of a query tree the planners share: its external parameters, the relations below
//! its top level, new parameter nodes.

use std::ffi::c_void;

use pgrx::pg_sys;
use pgrx::prelude::*;

use crate::pg::nodes::{is_a, list_of};

/// A new `$id` parameter node of the given type.
///
/// # Safety
/// Allocates in the current memory context.
pub(crate) unsafe fn extern_param(
    id: usize,
    typ: pg_sys::Oid,
    typmod: i32,
    coll: pg_sys::Oid,
) -> *mut pg_sys::Node {
    // SAFETY: a new Param node.
    unsafe {
        let p = make_node::<pg_sys::Param>(pg_sys::NodeTag::T_Param);
        (*p).paramkind = pg_sys::ParamKind::PARAM_EXTERN;
        (*p).paramid = id as i32;
        (*p).paramtype = typ;
        (*p).paramtypmod = typmod;
        (*p).paramcollid = coll;
        (*p).location = -1;
        p as *mut pg_sys::Node
    }
}

struct ParamIds(Vec<usize>);

#[pg_guard]
pub(crate) unsafe extern "C-unwind" fn param_walker(
    node: *mut pg_sys::Node,
    ctx: *mut c_void,
) -> bool {
    if node.is_null() {
        return false;
    }
    // SAFETY: called by the tree walkers with valid nodes and our context.
    unsafe {
        if is_a(node as *const c_void, pg_sys::NodeTag::T_Param) {
            let p = node as *mut pg_sys::Param;
            if (*p).paramkind == pg_sys::ParamKind::PARAM_EXTERN {
                let ids = &mut *(ctx as *mut ParamIds);
                let id = (*p).paramid.max(0) as usize;
                if !ids.0.contains(&id) {
                    ids.0.push(id);
                }
            }
            return false;
        }
        if is_a(node as *const c_void, pg_sys::NodeTag::T_Query) {
            return pg_sys::query_tree_walker(
                node as *mut pg_sys::Query,
                Some(param_walker),
                ctx,
                0,
            );
        }
        crate::pg::nodes::walk_children(node, Some(param_walker), ctx)
    }
}

/// The external parameters a query refers to.
///
/// # Safety
/// `query` is a valid Query.
pub(crate) unsafe fn params_of(query: *mut pg_sys::Query) -> Vec<usize> {
    let mut ids = ParamIds(Vec::new());
    // SAFETY: walking a valid Query.
    unsafe {
        pg_sys::query_tree_walker(
            query,
            Some(param_walker),
            &mut ids as *mut ParamIds as *mut c_void,
            0,
        );
    }
    ids.0.sort_unstable();
    ids.0
}

struct RelRtes(Vec<*mut pg_sys::RangeTblEntry>);

#[pg_guard]
unsafe extern "C-unwind" fn rte_walker(node: *mut pg_sys::Node, ctx: *mut c_void) -> bool {
    if node.is_null() {
        return false;
    }
    // SAFETY: called by the tree walkers with valid nodes and our context.
    unsafe {
        if is_a(node as *const c_void, pg_sys::NodeTag::T_RangeTblEntry) {
            let rte = node as *mut pg_sys::RangeTblEntry;
            if (*rte).rtekind == pg_sys::RTEKind::RTE_RELATION {
                (*(ctx as *mut RelRtes)).0.push(rte);
            }
            return false;
        }
        if is_a(node as *const c_void, pg_sys::NodeTag::T_Query) {
            return pg_sys::query_tree_walker(
                node as *mut pg_sys::Query,
                Some(rte_walker),
                ctx,
                pg_sys::QTW_EXAMINE_RTES_BEFORE as i32,
            );
        }
        crate::pg::nodes::walk_children(node, Some(rte_walker), ctx)
    }
}

/// Every relation RTE of the query, below the top level included: the plan's range table gets
/// them so the executor checks the user's privileges on each and plan-cache invalidation and
/// locking see them.
pub(crate) unsafe fn sublevel_relations(
    query: *mut pg_sys::Query,
) -> Vec<*mut pg_sys::RangeTblEntry> {
    let mut found = RelRtes(Vec::new());
    // SAFETY: walking a valid Query.
    unsafe {
        let top = list_of::<pg_sys::RangeTblEntry>((*query).rtable);
        pg_sys::query_tree_walker(
            query,
            Some(rte_walker),
            &mut found as *mut RelRtes as *mut c_void,
            pg_sys::QTW_EXAMINE_RTES_BEFORE as i32,
        );
        found.0.retain(|r| !top.contains(r));
    }
    found.0
}

/// A palloc'd, zeroed node of type `T` with tag `tag`.
///
/// # Safety
/// `T` is the node struct of `tag`.
pub(crate) unsafe fn make_node<T>(tag: pg_sys::NodeTag) -> *mut T {
    // SAFETY: palloc0 in the current memory context; every node starts with its tag.
    unsafe {
        let p = pg_sys::palloc0(std::mem::size_of::<T>()) as *mut T;
        *(p as *mut pg_sys::NodeTag) = tag;
        p
    }
}

/// The number past every parameter of the user's statement: the first free parameter id is
/// one more.
pub(crate) unsafe fn param_base(
    parse: *mut pg_sys::Query,
    bound_params: pg_sys::ParamListInfo,
) -> usize {
    // SAFETY: walking a valid Query; reading the bound parameters' count.
    unsafe {
        let mut base = params_of(parse).into_iter().max().unwrap_or(0);
        if !bound_params.is_null() {
            base = base.max((*bound_params).numParams.max(0) as usize);
        }
        base
    }
}

/// Tessera's functions that run on a worker as they do on the coordinator (they read no
/// catalog); every other function of the extension reads the coordinator's catalog, which the
/// workers' copy of the extension has empty.
const WORKER_SAFE_FUNCTIONS: [&str; 7] = [
    "worker_hash",
    "tessera_version",
    "tessera_partial_agg",
    "tessera_combine_agg",
    "tessera_cte_results",
    "tessera_subquery_results",
    "tessera_worker_results",
];

/// The first of Tessera's own functions the query calls that must run on the coordinator
/// (`citus_get_active_worker_nodes()`, `get_shard_id_for_distribution_column()`, ...), if any.
///
/// # Safety
/// `q` is a valid analyzed Query.
pub(crate) unsafe fn coordinator_function(q: *mut pg_sys::Query) -> Option<String> {
    struct Ctx {
        ext: pg_sys::Oid,
        found: Option<String>,
    }
    #[pgrx::pg_guard]
    unsafe extern "C-unwind" fn walker(node: *mut pg_sys::Node, ctx: *mut c_void) -> bool {
        if node.is_null() {
            return false;
        }
        // SAFETY: called by the tree walkers with valid nodes and our context.
        unsafe {
            let cx = &mut *(ctx as *mut Ctx);
            if is_a(node as *const c_void, pg_sys::NodeTag::T_FuncExpr) {
                let f = (*(node as *mut pg_sys::FuncExpr)).funcid;
                // Built-in functions are not the extension's; others are looked up in pg_depend.
                if f.to_u32() >= pg_sys::FirstNormalObjectId
                    && pg_sys::getExtensionOfObject(pg_sys::ProcedureRelationId, f) == cx.ext
                {
                    let name = crate::pg::nodes::string(pg_sys::get_func_name(f));
                    if !WORKER_SAFE_FUNCTIONS.contains(&name.as_str()) {
                        cx.found = Some(name);
                        return true;
                    }
                }
            }
            if is_a(node as *const c_void, pg_sys::NodeTag::T_Query) {
                return pg_sys::query_tree_walker(node as *mut pg_sys::Query, Some(walker), ctx, 0);
            }
            crate::pg::nodes::walk_children(node, Some(walker), ctx)
        }
    }
    // SAFETY: a name lookup; walking a valid Query with our context.
    unsafe {
        let ext = pg_sys::get_extension_oid(c"tessera".as_ptr(), true);
        if ext == pg_sys::InvalidOid {
            return None;
        }
        let mut cx = Ctx { ext, found: None };
        pg_sys::query_tree_walker(q, Some(walker), &mut cx as *mut Ctx as *mut c_void, 0);
        cx.found
    }
}
