//! What the coordinator's session defines is evaluated on the coordinator.
//!
//! A task runs in the worker's session, not the user's: there `now()` is the worker
//! transaction's start, `current_user` the connection's role, `current_setting('app.x')` the
//! worker's setting. So before a query is deparsed for the workers, [`take_out`] replaces each
//! largest sub-expression that reads no column, calls something STABLE (a stable function, or
//! one of the SQL value functions such as `CURRENT_USER` and `CURRENT_TIMESTAMP`) and nothing
//! VOLATILE, with a parameter `$n`. The scan evaluates those expressions once per execution in
//! the user's session and sends their values with the task (`DistPlan::evaluated`), so every
//! shard, and every placement of a reference table, sees the same value the coordinator does.
//! (Citus evaluates such expressions on the coordinator too.)
//!
//! Expressions that read columns stay on the workers: `created > now() - interval '1 day'`
//! becomes `created > $3`, but `date_trunc('day', created)` runs where the rows are, under the
//! session's `TimeZone`, which follows each task (`connection::Settings`).

use std::ffi::c_void;

use pgrx::pg_sys;
use pgrx::prelude::*;

use super::combine::MutatorFn;
use super::query::extern_param;
use crate::pg::nodes::{is_a, string};

struct Ctx {
    next: usize,
    out: Vec<(usize, String)>,
    /// Each expression taken out, with its parameter: the same expression twice is one
    /// parameter (GROUP BY `ts < now() - x` and the same in the SELECT list stay one
    /// expression for the node's parser).
    seen: Vec<(*mut pg_sys::Node, usize)>,
}

/// Replaces what the coordinator evaluates in `query` by parameters numbered from `first`;
/// returns the query with them (a new copy when anything changed; `query` itself is left as
/// it was) and each parameter's expression as node text. An INSERT's own column expressions
/// stay, unless the statement runs `whole` on the node.
///
/// # Safety
/// `query` is a valid analyzed Query.
pub unsafe fn take_out(
    query: *mut pg_sys::Query,
    first: usize,
    whole: bool,
) -> (*mut pg_sys::Query, Vec<(usize, String)>) {
    let mut cx = Ctx {
        next: first,
        out: Vec::new(),
        seen: Vec::new(),
    };
    // SAFETY: mutating a copy of a valid Query with our context.
    unsafe {
        // Sub-queries and SQL value functions included.
        if !pg_sys::contain_mutable_functions(query as *mut pg_sys::Node) {
            return (query, cx.out);
        }
        // An INSERT's own column expressions are evaluated on the coordinator already (its
        // rows), or read its SELECT's columns.
        let insert = (*query).commandType == pg_sys::CmdType::CMD_INSERT && !whole;
        let tlist = (*query).targetList;
        if insert {
            (*query).targetList = std::ptr::null_mut();
        }
        let q = query_mutate(query, &mut cx);
        if insert {
            (*query).targetList = tlist;
            (*q).targetList = tlist;
        }
        (q, cx.out)
    }
}

unsafe fn query_mutate(query: *mut pg_sys::Query, cx: &mut Ctx) -> *mut pg_sys::Query {
    // SAFETY: PostgreSQL 15's binding declares the callback without arguments; the C function
    // calls it with (node, context), which is `MutatorFn`'s signature.
    unsafe {
        pg_sys::query_tree_mutator(
            query,
            Some(std::mem::transmute::<
                MutatorFn,
                unsafe extern "C-unwind" fn() -> *mut pg_sys::Node,
            >(mutator)),
            cx as *mut Ctx as *mut c_void,
            0,
        )
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn mutator(
    node: *mut pg_sys::Node,
    ctx: *mut c_void,
) -> *mut pg_sys::Node {
    if node.is_null() {
        return node;
    }
    // SAFETY: called by the tree mutators with valid nodes and our context.
    unsafe {
        let cx = &mut *(ctx as *mut Ctx);
        if is_a(node as *const c_void, pg_sys::NodeTag::T_Query) {
            return query_mutate(node as *mut pg_sys::Query, cx) as *mut pg_sys::Node;
        }
        let conditional = is_a(node as *const c_void, pg_sys::NodeTag::T_CaseExpr)
            || is_a(node as *const c_void, pg_sys::NodeTag::T_CoalesceExpr);
        if conditional && !evaluable(node) {
            // CASE and COALESCE evaluate their arms only when reached: an arm evaluated here
            // ahead of time could raise an error (`current_setting('unset')`) that the query
            // never would. Such arms run where the rows are.
            return pg_sys::copyObjectImpl(node as *const c_void) as *mut pg_sys::Node;
        }
        if evaluable(node) {
            let known = cx
                .seen
                .iter()
                .find(|(n, _)| pg_sys::equal(*n as *const c_void, node as *const c_void))
                .map(|(_, id)| *id);
            let id = match known {
                Some(id) => id,
                None => {
                    let id = cx.next;
                    cx.next += 1;
                    let text = string(pg_sys::nodeToString(node as *const c_void));
                    cx.out.push((id, text));
                    cx.seen.push((node, id));
                    id
                }
            };
            return extern_param(
                id,
                pg_sys::exprType(node),
                pg_sys::exprTypmod(node),
                pg_sys::exprCollation(node),
            );
        }
        super::combine::mutate(node, mutator, ctx)
    }
}

/// An expression the coordinator evaluates: it calls something stable, nothing volatile, and
/// holds nothing that only means something in its place in the query.
unsafe fn evaluable(node: *mut pg_sys::Node) -> bool {
    use pg_sys::NodeTag::*;
    // SAFETY: reading a valid expression node.
    unsafe {
        let tag = *(node as *const pg_sys::NodeTag);
        let expression = matches!(
            tag,
            T_FuncExpr
                | T_OpExpr
                | T_DistinctExpr
                | T_NullIfExpr
                | T_ScalarArrayOpExpr
                | T_BoolExpr
                | T_SQLValueFunction
                | T_CoerceViaIO
                | T_RelabelType
                | T_ArrayCoerceExpr
                | T_CaseExpr
                | T_CoalesceExpr
                | T_MinMaxExpr
                | T_ArrayExpr
                | T_NullTest
                | T_BooleanTest
                | T_CoerceToDomain
        );
        expression
            && pg_sys::contain_mutable_functions(node)
            && !pg_sys::contain_volatile_functions(node)
            && !pg_sys::expression_returns_set(node)
            && !crate::pg::nodes::walk_children(node, Some(bound_walker), std::ptr::null_mut())
    }
}

/// True at anything bound to its place: columns, aggregates, window functions, sub-queries,
/// parameters (of the user's, or of a subquery run first), and the placeholders of CASE and
/// domain checks.
#[pg_guard]
unsafe extern "C-unwind" fn bound_walker(node: *mut pg_sys::Node, ctx: *mut c_void) -> bool {
    use pg_sys::NodeTag::*;
    if node.is_null() {
        return false;
    }
    // SAFETY: called by the tree walkers with valid nodes.
    unsafe {
        let tag = *(node as *const pg_sys::NodeTag);
        if matches!(
            tag,
            T_Var
                | T_Aggref
                | T_WindowFunc
                | T_GroupingFunc
                | T_SubLink
                | T_SubPlan
                | T_AlternativeSubPlan
                | T_Param
                | T_CaseTestExpr
                | T_CoerceToDomainValue
                | T_SetToDefault
                | T_CurrentOfExpr
                | T_NextValueExpr
                | T_PlaceHolderVar
                | T_Query
        ) {
            return true;
        }
        crate::pg::nodes::walk_children(node, Some(bound_walker), ctx)
    }
}

/// What a query prints as text on the nodes (`x::text`, `concat(x)`, `row_to_json(r)`), which
/// the session's output settings shape: floating-point values (`extra_float_digits`), dates
/// and times (`DateStyle`).
#[derive(Default)]
pub struct Prints {
    pub floats: bool,
    pub datetimes: bool,
}

/// What `query` prints as text (see [`Prints`]).
///
/// # Safety
/// `query` is a valid Query.
pub unsafe fn prints(query: *mut pg_sys::Query) -> Prints {
    let mut p = Prints::default();
    // SAFETY: walking a valid Query.
    unsafe {
        pg_sys::query_tree_walker(
            query,
            Some(prints_walker),
            &mut p as *mut Prints as *mut c_void,
            0,
        );
    }
    p
}

/// Whether `query` returns a value whose DateStyle output names a time zone (timestamptz,
/// timetz, or a row that may hold one): such values travel in ISO form only.
///
/// # Safety
/// `query` is a valid Query.
pub unsafe fn returns_zoned(query: *mut pg_sys::Query) -> bool {
    // SAFETY: reading the Query's output lists.
    unsafe {
        let outputs = if (*query).commandType == pg_sys::CmdType::CMD_SELECT {
            (*query).targetList
        } else {
            (*query).returningList
        };
        crate::pg::nodes::list_of::<pg_sys::TargetEntry>(outputs)
            .into_iter()
            .any(|t| {
                let ty = pg_sys::exprType((*t).expr as *mut pg_sys::Node);
                is_row(ty)
                    || [
                        pg_sys::TIMESTAMPTZOID,
                        pg_sys::TIMETZOID,
                        pg_sys::TIMESTAMPTZARRAYOID,
                        pg_sys::TIMETZARRAYOID,
                    ]
                    .contains(&ty)
            })
    }
}

fn is_row(t: pg_sys::Oid) -> bool {
    // SAFETY: a type cache lookup.
    t == pg_sys::RECORDOID
        || t == pg_sys::RECORDARRAYOID
        || unsafe { pg_sys::get_typtype(t) } == pg_sys::TYPTYPE_COMPOSITE as std::ffi::c_char
}

fn is_float(t: pg_sys::Oid) -> bool {
    [
        pg_sys::FLOAT4OID,
        pg_sys::FLOAT8OID,
        pg_sys::FLOAT4ARRAYOID,
        pg_sys::FLOAT8ARRAYOID,
    ]
    .contains(&t)
}

fn is_datetime(t: pg_sys::Oid) -> bool {
    [
        pg_sys::DATEOID,
        pg_sys::TIMEOID,
        pg_sys::TIMETZOID,
        pg_sys::TIMESTAMPOID,
        pg_sys::TIMESTAMPTZOID,
        pg_sys::DATEARRAYOID,
        pg_sys::TIMEARRAYOID,
        pg_sys::TIMETZARRAYOID,
        pg_sys::TIMESTAMPARRAYOID,
        pg_sys::TIMESTAMPTZARRAYOID,
    ]
    .contains(&t)
}

/// Adds what a value of type `t`, printed, depends on.
fn note(p: &mut Prints, t: pg_sys::Oid) {
    let row = is_row(t);
    p.floats |= row || is_float(t);
    p.datetimes |= row || is_datetime(t);
}

#[pg_guard]
unsafe extern "C-unwind" fn prints_walker(node: *mut pg_sys::Node, ctx: *mut c_void) -> bool {
    if node.is_null() {
        return false;
    }
    // SAFETY: called by the tree walkers with valid nodes and our context.
    unsafe {
        let p = &mut *(ctx as *mut Prints);
        if is_a(node as *const c_void, pg_sys::NodeTag::T_Query) {
            return pg_sys::query_tree_walker(
                node as *mut pg_sys::Query,
                Some(prints_walker),
                ctx,
                0,
            );
        }
        if is_a(node as *const c_void, pg_sys::NodeTag::T_CoerceViaIO) {
            // Through the argument type's output function.
            let c = node as *mut pg_sys::CoerceViaIO;
            note(p, pg_sys::exprType((*c).arg as *mut pg_sys::Node));
        }
        let args = if is_a(node as *const c_void, pg_sys::NodeTag::T_FuncExpr) {
            let f = node as *mut pg_sys::FuncExpr;
            Some(((*f).funcresulttype, (*f).args))
        } else if is_a(node as *const c_void, pg_sys::NodeTag::T_Aggref) {
            let a = node as *mut pg_sys::Aggref;
            let exprs: Vec<*mut pg_sys::Node> =
                crate::pg::nodes::list_of::<pg_sys::TargetEntry>((*a).args)
                    .into_iter()
                    .map(|t| (*t).expr as *mut pg_sys::Node)
                    .collect();
            Some(((*a).aggtype, crate::pg::nodes::make_list(&exprs)))
        } else {
            None
        };
        if let Some((rettype, args)) = args {
            // A function that makes text or JSON of its arguments prints them.
            let text = [
                pg_sys::TEXTOID,
                pg_sys::VARCHAROID,
                pg_sys::BPCHAROID,
                pg_sys::JSONOID,
                pg_sys::JSONBOID,
                pg_sys::TEXTARRAYOID,
            ]
            .contains(&rettype);
            if text {
                for a in crate::pg::nodes::list_of::<pg_sys::Node>(args) {
                    note(p, pg_sys::exprType(a));
                }
            }
        }
        crate::pg::nodes::walk_children(node, Some(prints_walker), ctx)
    }
}
