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

use std::ffi::c_void;

use pgrx::pg_sys;
use pgrx::prelude::*;

use tessera_core::plan::{Command, DistPlan, InsertShape, Pin, TableRef, Tier};

use super::analyze::{analyze, Analysis, PinValue};
use super::combine;
use super::deparse::{querydef, sites};
use crate::error::{TResult, TesseraError};
use crate::metadata::cache::TableMeta;
use crate::pg::nodes::{is_a, list_of, make_list, pstrdup};

fn unsupported(what: impl Into<String>, hint: &str) -> TesseraError {
    TesseraError::new(PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED, what).hint(hint)
}

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
        if (*parse).hasModifyingCTE {
            // Its WITH queries run first, each as a statement of its own.
            return super::with_first::plan(parse, query_string, cursor_options, bound_params);
        }
        let first = plan_one(parse, query_string, cursor_options, bound_params);
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
        // Subqueries in WHERE become parameters of the shard queries.
        if reads_or_changes && sublinks {
            if let Some(stmt) = retry(parse, Retry::Where, args)? {
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
            if let Some(stmt) = retry(parse, Retry::Outputs, args)? {
                return Ok(stmt);
            }
        }
        // Its distributed subqueries and CTEs run first and the coordinator finishes.
        let copy = pg_sys::copyObjectImpl(parse as *const c_void) as *mut pg_sys::Query;
        if let Some(stmt) =
            super::coordinator::plan(copy, query_string, cursor_options, bound_params)?
        {
            return Ok(stmt);
        }
        // Joined with distributed tables, their rows go to the shards as parameters.
        if reads_or_changes {
            if let Some(stmt) = retry(parse, Retry::From, args)? {
                return Ok(stmt);
            }
        }
        Err(e)
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
/// numbered after the user's; `None` when nothing was taken out or the copy is refused too.
unsafe fn retry(
    parse: *mut pg_sys::Query,
    how: Retry,
    (query_string, cursor_options, bound_params): (
        *const std::ffi::c_char,
        i32,
        pg_sys::ParamListInfo,
    ),
) -> TResult<Option<*mut pg_sys::PlannedStmt>> {
    use super::recursive::{self, Clauses};
    // SAFETY: planning a copy of a valid analyzed Query.
    unsafe {
        let copy = pg_sys::copyObjectImpl(parse as *const c_void) as *mut pg_sys::Query;
        let base = param_base(parse, bound_params);
        let mut subplans =
            recursive::extract(copy, Clauses::Where, base + 1, query_string, bound_params);
        let next = base + 1 + subplans.iter().map(|s| s.width).sum::<usize>();
        let more = match how {
            Retry::Where => Vec::new(),
            Retry::Outputs => {
                recursive::extract(copy, Clauses::Outputs, next, query_string, bound_params)
            }
            Retry::From => recursive::broadcast_from(copy, next, query_string, bound_params),
        };
        // Nothing taken out (beyond WHERE's, for the other ways): nothing new to try.
        if more.is_empty() && (how != Retry::Where || subplans.is_empty()) {
            return Ok(None);
        }
        subplans.extend(more);
        if !super::analyze::touches_distributed(copy)? {
            // Nothing distributed is left: the coordinator evaluates the rest
            // (`coordinator::plan`), where its functions, sequences and settings are.
            return Ok(None);
        }
        let Ok(stmt) = plan_one(copy, query_string, cursor_options, bound_params) else {
            return Ok(None);
        };
        if how == Retry::Outputs && !recursive::runs_whole_on_workers(stmt, base + 1) {
            return Ok(None);
        }
        recursive::attach(stmt, &subplans)?;
        Ok(Some(stmt))
    }
}

unsafe fn plan_one(
    parse: *mut pg_sys::Query,
    query_string: *const std::ffi::c_char,
    cursor_options: i32,
    bound_params: pg_sys::ParamListInfo,
) -> TResult<*mut pg_sys::PlannedStmt> {
    // SAFETY: reading and copying a valid analyzed Query.
    unsafe {
        let a = analyze(parse)?;
        if a.rtes.is_empty() {
            // Every plan runs on some table's shards; a query without one is the
            // coordinator's (the retries hand such queries to `coordinator::plan`).
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
            _ => Err(unsupported(
                "this kind of statement is not supported on distributed tables",
                "Use SELECT, INSERT, UPDATE or DELETE.",
            )),
        }
    }
}

/// The number past every parameter of the user's statement: the first free parameter id is
/// one more.
unsafe fn param_base(parse: *mut pg_sys::Query, bound_params: pg_sys::ParamListInfo) -> usize {
    // SAFETY: walking a valid Query; reading the bound parameters' count.
    unsafe {
        let mut base = params_of(parse).into_iter().max().unwrap_or(0);
        if !bound_params.is_null() {
            base = base.max((*bound_params).numParams.max(0) as usize);
        }
        base
    }
}

/// A new `$id` parameter node of the given type.
///
/// # Safety
/// Allocates in the current memory context.
pub(super) unsafe fn extern_param(
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

/// The column entries of an INSERT (not junk); an assignment into a field or an element of a
/// column is refused.
unsafe fn insert_columns(parse: *mut pg_sys::Query) -> TResult<Vec<*mut pg_sys::TargetEntry>> {
    // SAFETY: reading the Query's target list.
    unsafe {
        let tles: Vec<*mut pg_sys::TargetEntry> =
            list_of::<pg_sys::TargetEntry>((*parse).targetList)
                .into_iter()
                .filter(|t| !(**t).resjunk)
                .collect();
        for &tle in &tles {
            let e = (*tle).expr as *const c_void;
            if is_a(e, pg_sys::NodeTag::T_FieldStore) || is_a(e, pg_sys::NodeTag::T_SubscriptingRef)
            {
                return Err(unsupported(
                    "INSERT into a field or element of a column of a distributed table is not supported",
                    "Insert the whole column value.",
                ));
            }
        }
        Ok(tles)
    }
}

/// Which of the INSERT's columns takes the distribution column (None for a reference table);
/// an INSERT without it is refused.
unsafe fn insert_dist_column(
    meta: &TableMeta,
    tles: &[*mut pg_sys::TargetEntry],
) -> TResult<Option<usize>> {
    if meta.is_reference() {
        return Ok(None);
    }
    // SAFETY: each entry is a live TargetEntry of the Query being planned.
    let resno = |t: &*mut pg_sys::TargetEntry| unsafe { (**t).resno };
    match tles.iter().position(|t| resno(t) == meta.table.dist_attnum) {
        Some(i) => Ok(Some(i)),
        None => Err(TesseraError::new(
            PgSqlErrorCode::ERRCODE_NOT_NULL_VIOLATION,
            format!(
                "cannot perform an INSERT without a value for the distribution column of {}.{}",
                meta.schema, meta.name
            ),
        )
        .hint("Every row of a distributed table needs a value in its distribution column.")),
    }
}

/// Puts parameters `$base+1, $base+2, ...` in place of the column expressions of the INSERT
/// `q`: the VALUES row of the worker template.
unsafe fn values_as_params(q: *mut pg_sys::Query, base: usize) {
    // SAFETY: editing the target list of a Query copy.
    unsafe {
        let mut i = 0;
        for tle in list_of::<pg_sys::TargetEntry>((*q).targetList) {
            if (*tle).resjunk {
                continue;
            }
            let e = (*tle).expr as *mut pg_sys::Node;
            (*tle).expr = extern_param(
                base + i + 1,
                pg_sys::exprType(e),
                pg_sys::exprTypmod(e),
                pg_sys::exprCollation(e),
            ) as *mut pg_sys::Expr;
            i += 1;
        }
    }
}

/// The one value every hash-distributed table is pinned to, if there is one.
fn common_pin(a: &Analysis) -> Option<Pin> {
    let mut hash = a.hash_rtes().peekable();
    hash.peek()?;
    let mut pin: Option<Pin> = None;
    for r in a.hash_rtes() {
        let p = match &r.pin {
            None => return None,
            Some(PinValue::Hash(h)) => Pin::Hash(*h),
            Some(PinValue::Param(id)) => Pin::Param {
                id: *id,
                typid: r.meta.dist_type.to_u32(),
            },
        };
        match &pin {
            None => pin = Some(p),
            Some(existing) if *existing == p => {}
            // Different constants may still be one shard group: compare shard indexes.
            Some(Pin::Hash(h1)) => match p {
                Pin::Hash(h2) => {
                    // One shard group when the table's stored ranges put both in one shard.
                    let (a, b) = (r.meta.shard_for_hash(*h1), r.meta.shard_for_hash(h2));
                    if a.is_err() || a.ok() != b.ok() {
                        return None;
                    }
                }
                _ => return None,
            },
            Some(_) => return None,
        }
    }
    pin
}

/// Why a query cannot run on every shard group, if it cannot.
fn multi_shard_blocker(a: &Analysis) -> Option<TesseraError> {
    if a.hash_rtes().any(|r| !r.top_level) {
        return Some(unsupported(
            "cannot push down a subquery, CTE or sublink on a distributed table that is not pinned to one distribution value",
            "Add <distribution column> = <value> inside the subquery, or rewrite it as a join on the distribution column.",
        ));
    }
    if !a.top_joined_on_dist_col {
        return Some(unsupported(
            "cannot push down a join of distributed tables that is not on their distribution columns",
            "Join co-located tables with equality on the distribution column (a.tenant_id = b.tenant_id), or pin the query to one distribution value.",
        ));
    }
    if a.reference_outer_join {
        return Some(unsupported(
            "cannot push down an outer join whose preserved side is a reference table or subquery and whose other side is a distributed table",
            "Put the distributed table on the preserved side, or use an inner join.",
        ));
    }
    None
}

/// The tables of the plan, a hash-distributed one first when any (the anchor).
fn tables_of(a: &Analysis) -> (Vec<TableRef>, usize) {
    let mut tables: Vec<TableRef> = Vec::new();
    let mut metas = a.rtes.iter().map(|r| &r.meta).collect::<Vec<_>>();
    metas.sort_by_key(|m| m.is_reference());
    for m in metas {
        if tables.iter().any(|t| t.relid == m.table.relid.to_u32()) {
            continue;
        }
        tables.push(TableRef {
            relid: m.table.relid.to_u32(),
            schema: m.schema.clone(),
            name: m.name.clone(),
        });
    }
    (tables, 0)
}

struct ParamIds(Vec<usize>);

#[pg_guard]
unsafe extern "C-unwind" fn param_walker(node: *mut pg_sys::Node, ctx: *mut c_void) -> bool {
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
        pg_sys::expression_tree_walker(node, Some(param_walker), ctx)
    }
}

/// The external parameters a query refers to.
///
/// # Safety
/// `query` is a valid Query.
pub unsafe fn params_of(query: *mut pg_sys::Query) -> Vec<usize> {
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
        pg_sys::expression_tree_walker(node, Some(rte_walker), ctx)
    }
}

/// Every relation RTE of the query, below the top level included: the plan's range table gets
/// them so the executor checks the user's privileges on each and plan-cache invalidation and
/// locking see them.
pub(super) unsafe fn sublevel_relations(
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
pub unsafe fn make_node<T>(tag: pg_sys::NodeTag) -> *mut T {
    // SAFETY: palloc0 in the current memory context; every node starts with its tag.
    unsafe {
        let p = pg_sys::palloc0(std::mem::size_of::<T>()) as *mut T;
        *(p as *mut pg_sys::NodeTag) = tag;
        p
    }
}

/// The CustomScan for `plan`, reading rows shaped like `scan_tlist`.
///
/// # Safety
/// `scan_tlist` is a List of TargetEntry.
pub unsafe fn custom_scan(
    plan: &DistPlan,
    scan_tlist: *mut pg_sys::List,
    rows: f64,
) -> *mut pg_sys::CustomScan {
    // SAFETY: building plan nodes in the planner's memory context.
    unsafe {
        let cscan = make_node::<pg_sys::CustomScan>(pg_sys::NodeTag::T_CustomScan);
        let encoded = pstrdup(&plan.encode());
        (*cscan).custom_private = make_list(&[pg_sys::makeString(encoded)]);
        (*cscan).custom_scan_tlist = scan_tlist;
        (*cscan).methods = super::scan_methods(tessera_core::plan::ADAPTIVE_SCAN);
        (*cscan).scan.scanrelid = 0;
        (*cscan).scan.plan.plan_rows = rows;
        (*cscan).scan.plan.startup_cost = 0.0;
        (*cscan).scan.plan.total_cost = rows * 0.01 + 100.0;
        (*cscan).scan.plan.plan_width = 32;
        cscan
    }
}

/// Target entries that read scan column i+1 (INDEX_VAR) for each entry of `scan_tlist`.
unsafe fn index_var_tlist(scan_tlist: *mut pg_sys::List) -> *mut pg_sys::List {
    let mut out = Vec::new();
    // SAFETY: reading TargetEntries and building Vars.
    unsafe {
        for (i, tle) in list_of::<pg_sys::TargetEntry>(scan_tlist)
            .into_iter()
            .enumerate()
        {
            let expr = (*tle).expr as *mut pg_sys::Node;
            let var = pg_sys::makeVar(
                pg_sys::INDEX_VAR,
                (i + 1) as i16,
                pg_sys::exprType(expr),
                pg_sys::exprTypmod(expr),
                pg_sys::exprCollation(expr),
                0,
            );
            out.push(pg_sys::makeTargetEntry(
                var as *mut pg_sys::Expr,
                (i + 1) as i16,
                (*tle).resname,
                false,
            ));
        }
        make_list(&out)
    }
}

/// The visible target entries of `list`, renumbered from 1.
unsafe fn visible(list: *mut pg_sys::List) -> *mut pg_sys::List {
    let mut out = Vec::new();
    // SAFETY: reading and copying TargetEntries.
    unsafe {
        for tle in list_of::<pg_sys::TargetEntry>(list) {
            if (*tle).resjunk {
                continue;
            }
            out.push(pg_sys::makeTargetEntry(
                (*tle).expr,
                (out.len() + 1) as i16,
                (*tle).resname,
                false,
            ));
        }
        make_list(&out)
    }
}

/// A PlannedStmt whose whole plan is `cscan`.
unsafe fn planned_stmt(
    parse: *mut pg_sys::Query,
    cscan: *mut pg_sys::CustomScan,
    a: &Analysis,
) -> *mut pg_sys::PlannedStmt {
    // SAFETY: building the statement from the analyzed Query's parts.
    unsafe {
        let stmt = make_node::<pg_sys::PlannedStmt>(pg_sys::NodeTag::T_PlannedStmt);
        (*stmt).commandType = (*parse).commandType;
        (*stmt).queryId = (*parse).queryId;
        (*stmt).hasReturning = !(*parse).returningList.is_null();
        (*stmt).canSetTag = (*parse).canSetTag;
        (*stmt).planTree = cscan as *mut pg_sys::Plan;
        let mut rtable = list_of::<pg_sys::RangeTblEntry>((*parse).rtable);
        rtable.extend(sublevel_relations(parse));
        (*stmt).rtable = make_list(&rtable);
        #[cfg(not(feature = "pg15"))]
        {
            (*stmt).permInfos = (*parse).rteperminfos;
        }
        let mut relids = Vec::new();
        for r in &a.rtes {
            let oid = r.meta.table.relid;
            if !relids.contains(&oid) {
                relids.push(oid);
            }
        }
        let mut list = std::ptr::null_mut();
        for oid in relids {
            list = pg_sys::lappend_oid(list, oid);
        }
        (*stmt).relationOids = list;
        (*stmt).stmt_location = (*parse).stmt_location;
        (*stmt).stmt_len = (*parse).stmt_len;
        stmt
    }
}

unsafe fn base_plan(
    tier: Tier,
    command: Command,
    query: *mut pg_sys::Query,
    a: &Analysis,
    pin: Pin,
    returns_rows: bool,
) -> TResult<DistPlan> {
    let (tables, anchor) = tables_of(a);
    // What the coordinator's session defines is evaluated there, and sent as parameters
    // numbered after every parameter the query has (INSERT plans take theirs out first, before
    // the parameters of their VALUES row).
    // SAFETY: walking and copying a valid Query.
    let (query, evaluated) = unsafe {
        let first = params_of(query).into_iter().max().unwrap_or(0) + 1;
        super::evaluate::take_out(query, first)
    };
    // SAFETY: walking and deparsing a valid Query.
    let (prints, zoned, template) = unsafe {
        (
            super::evaluate::prints(query),
            super::evaluate::returns_zoned(query),
            querydef(query),
        )
    };
    let sites = sites(&template, &tables)?;
    Ok(DistPlan {
        tier,
        command,
        template,
        sites,
        tables,
        anchor,
        pin,
        returns_rows,
        notes: Vec::new(),
        // SAFETY: walking a valid Query.
        params: unsafe { params_of(query) },
        insert: None,
        evaluated,
        prints_floats: prints.floats,
        session_date_style: prints.datetimes && !zoned,
    })
}

unsafe fn plan_select(
    parse: *mut pg_sys::Query,
    a: &Analysis,
    query_string: *const std::ffi::c_char,
    cursor_options: i32,
    bound_params: pg_sys::ParamListInfo,
) -> TResult<*mut pg_sys::PlannedStmt> {
    // SAFETY: reading the analyzed Query.
    unsafe {
        let only_reference = a.hash_rtes().next().is_none();
        let pin = if only_reference {
            Some(Pin::Single)
        } else {
            common_pin(a)
        };
        if let Some(pin) = pin {
            let tier = if a.rtes.len() == 1 && !a.has_sublevels && !only_reference {
                Tier::FastPathRouter
            } else {
                Tier::Router
            };
            let plan = base_plan(tier, Command::Select, parse, a, pin, true)?;
            let scan_tlist = visible((*parse).targetList);
            let cscan = custom_scan(&plan, scan_tlist, 100.0);
            (*cscan).scan.plan.targetlist = index_var_tlist(scan_tlist);
            return Ok(planned_stmt(parse, cscan, a));
        }
        if !(*parse).rowMarks.is_null() {
            return Err(unsupported(
                "SELECT ... FOR UPDATE/SHARE is only supported when the query is pinned to one distribution value",
                "Add <distribution column> = <value> to the WHERE clause.",
            ));
        }
        if let Some(e) = multi_shard_blocker(a) {
            return Err(e);
        }
        if !combine::needs_combine(parse) {
            let plan = base_plan(Tier::MultiShard, Command::Select, parse, a, Pin::All, true)?;
            let scan_tlist = visible((*parse).targetList);
            let cscan = custom_scan(&plan, scan_tlist, 1000.0);
            (*cscan).scan.plan.targetlist = index_var_tlist(scan_tlist);
            return Ok(planned_stmt(parse, cscan, a));
        }
        if a.has_sublevels {
            return Err(unsupported(
                "cannot combine aggregates, ORDER BY or LIMIT across shards for a query with subqueries, CTEs or sublinks",
                "Pin the query to one distribution value, or move the subquery into a join on the distribution column.",
            ));
        }
        let split = combine::split(parse, a)?;
        let mut plan = base_plan(
            Tier::MultiShard,
            Command::Select,
            split.worker,
            a,
            Pin::All,
            true,
        )?;
        plan.notes = split.notes.clone();
        let stmt =
            combine::plan_combine(&split, &plan, query_string, cursor_options, bound_params)?;
        // The combine plan's range table holds only the scan's function; add the user's tables
        // for privilege checks, locking and plan invalidation.
        let mut rtable = list_of::<pg_sys::RangeTblEntry>((*stmt).rtable);
        rtable.extend(
            list_of::<pg_sys::RangeTblEntry>((*parse).rtable)
                .into_iter()
                .filter(|r| (**r).rtekind == pg_sys::RTEKind::RTE_RELATION),
        );
        (*stmt).rtable = make_list(&rtable);
        for r in &a.rtes {
            (*stmt).relationOids = pg_sys::lappend_oid((*stmt).relationOids, r.meta.table.relid);
        }
        (*stmt).queryId = (*parse).queryId;
        (*stmt).stmt_location = (*parse).stmt_location;
        (*stmt).stmt_len = (*parse).stmt_len;
        Ok(stmt)
    }
}

/// The target relation of an INSERT/UPDATE/DELETE and its metadata.
unsafe fn target(parse: *mut pg_sys::Query, a: &Analysis) -> TResult<usize> {
    // SAFETY: reading the Query's result relation.
    let rti = unsafe { (*parse).resultRelation } as u32;
    a.rtes
        .iter()
        .position(|r| r.outermost && r.rti == rti)
        .ok_or_else(|| {
            unsupported(
                "cannot modify a local table with a query that reads distributed tables",
                "Read the distributed rows into the application, or distribute the target table too.",
            )
        })
}

/// Refuses a change of the distribution column (its value decides the shard).
unsafe fn check_dist_col_unchanged(tlist: *mut pg_sys::List, dist_attnum: i16) -> TResult<()> {
    // SAFETY: reading TargetEntries.
    unsafe {
        for tle in list_of::<pg_sys::TargetEntry>(tlist) {
            if !(*tle).resjunk && (*tle).resno == dist_attnum && dist_attnum > 0 {
                return Err(unsupported(
                    "modifying the distribution column of a distributed table is not supported",
                    "Delete the row and insert it with the new value instead.",
                ));
            }
        }
    }
    Ok(())
}

unsafe fn plan_modify(
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
            (Tier::MultiShard, Pin::All)
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

struct ValuesSubst {
    values_rti: i32,
    row: Vec<*mut pg_sys::Node>,
}

#[pg_guard]
unsafe extern "C-unwind" fn values_mutator(
    node: *mut pg_sys::Node,
    ctx: *mut c_void,
) -> *mut pg_sys::Node {
    if node.is_null() {
        return node;
    }
    // SAFETY: called by expression_tree_mutator with valid nodes and our context.
    unsafe {
        let s = &*(ctx as *mut ValuesSubst);
        if is_a(node as *const c_void, pg_sys::NodeTag::T_Var) {
            let v = node as *mut pg_sys::Var;
            if (*v).varno == s.values_rti && (*v).varlevelsup == 0 && (*v).varattno > 0 {
                if let Some(&e) = s.row.get((*v).varattno as usize - 1) {
                    return pg_sys::copyObjectImpl(e as *const c_void) as *mut pg_sys::Node;
                }
            }
        }
        combine::mutate(node, values_mutator, ctx)
    }
}

unsafe fn plan_insert(
    parse: *mut pg_sys::Query,
    a: &Analysis,
    bound_params: pg_sys::ParamListInfo,
) -> TResult<*mut pg_sys::PlannedStmt> {
    // SAFETY: reading and copying the analyzed Query.
    unsafe {
        let t = target(parse, a)?;
        let meta = a.rtes[t].meta.clone();
        let rtes = list_of::<pg_sys::RangeTblEntry>((*parse).rtable);
        if a.rtes
            .iter()
            .any(|r| r.rti != a.rtes[t].rti || !r.outermost)
        {
            // ON CONFLICT's EXCLUDED pseudo-relation is the target again; anything else is a
            // read of another distributed table.
            let other = a
                .rtes
                .iter()
                .any(|r| !r.outermost || r.meta.table.relid != meta.table.relid);
            if other {
                return Err(unsupported(
                    "INSERT into a distributed table cannot read other distributed tables",
                    "Read the values first, then insert them.",
                ));
            }
        }
        let on_conflict = (*parse).onConflict;
        if !on_conflict.is_null() {
            check_dist_col_unchanged((*on_conflict).onConflictSet, meta.table.dist_attnum)?;
        }
        // The rows: each a list of the target entries' expressions, VALUES columns substituted.
        let values_rti = rtes
            .iter()
            .position(|r| (**r).rtekind == pg_sys::RTEKind::RTE_VALUES)
            .map(|i| i as i32 + 1);
        let tles = insert_columns(parse)?;
        let mut rows: Vec<*mut pg_sys::List> = Vec::new();
        match values_rti {
            None => {
                let exprs: Vec<*mut pg_sys::Node> = tles
                    .iter()
                    .map(|t| {
                        pg_sys::copyObjectImpl((**t).expr as *const c_void) as *mut pg_sys::Node
                    })
                    .collect();
                rows.push(make_list(&exprs));
            }
            Some(rti) => {
                let vrte = rtes[rti as usize - 1];
                for row in list_of::<pg_sys::List>((*vrte).values_lists) {
                    let mut subst = ValuesSubst {
                        values_rti: rti,
                        row: list_of::<pg_sys::Node>(row),
                    };
                    let exprs: Vec<*mut pg_sys::Node> = tles
                        .iter()
                        .map(|t| {
                            values_mutator(
                                (**t).expr as *mut pg_sys::Node,
                                &mut subst as *mut ValuesSubst as *mut c_void,
                            )
                        })
                        .collect();
                    rows.push(make_list(&exprs));
                }
            }
        }
        for &row in &rows {
            if pg_sys::contain_subplans(row as *mut pg_sys::Node) {
                return Err(unsupported(
                    "subqueries in the VALUES of an INSERT into a distributed table are not supported",
                    "Compute the value first and insert it as a constant or parameter.",
                ));
            }
            pg_sys::fix_opfuncids(row as *mut pg_sys::Node);
        }
        let dist_column = insert_dist_column(&meta, &tles)?;
        // The template: the INSERT with one VALUES row of parameters after the user's.
        let base = param_base(parse, bound_params);
        let user_params: Vec<usize> = params_of(parse);
        let q = pg_sys::copyObjectImpl(parse as *const c_void) as *mut pg_sys::Query;
        // ON CONFLICT and RETURNING: what the coordinator evaluates goes first.
        let (q, evaluated) = super::evaluate::take_out(q, base + 1);
        let base = base + evaluated.len();
        values_as_params(q, base);
        if let Some(rti) = values_rti {
            let vrte = pg_sys::list_nth((*q).rtable, rti - 1) as *mut pg_sys::RangeTblEntry;
            (*vrte).rtekind = pg_sys::RTEKind::RTE_RESULT;
            (*vrte).values_lists = std::ptr::null_mut();
            (*(*q).jointree).fromlist = std::ptr::null_mut();
        }
        let returning = !(*parse).returningList.is_null();
        let mut plan = base_plan(
            Tier::Router,
            Command::Insert,
            q,
            a,
            if meta.is_reference() {
                Pin::Single
            } else {
                Pin::All
            },
            returning,
        )?;
        plan.params = user_params;
        plan.evaluated = evaluated;
        plan.set_anchor(meta.table.relid.to_u32());
        set_insert_shape(&mut plan, tles.len(), dist_column, base)?;
        let scan_tlist = visible((*parse).returningList);
        let cscan = custom_scan(&plan, scan_tlist, rows.len() as f64);
        (*cscan).scan.plan.targetlist = index_var_tlist(scan_tlist);
        (*cscan).custom_exprs = make_list(&rows);
        Ok(planned_stmt(parse, cscan, a))
    }
}

/// The INSERT's shape in its plan: `columns` values per row, parameters after `base`, the
/// VALUES row of the template found by the parser.
fn set_insert_shape(
    plan: &mut DistPlan,
    columns: usize,
    dist_column: Option<usize>,
    base: usize,
) -> TResult<()> {
    let (values_start, values_end) = values_range(&plan.template, base + 1)?;
    plan.insert = Some(InsertShape {
        columns,
        dist_column,
        param_base: base,
        values_start,
        values_end,
    });
    Ok(())
}

/// The byte range of `($first, ...)` — the VALUES row of parameters — in an INSERT template,
/// found through the parser's location of the first and last parameter.
fn values_range(sql: &str, first: usize) -> TResult<(usize, usize)> {
    let c = std::ffi::CString::new(sql).unwrap_or_default();
    let mut locations: Vec<(i32, usize)> = Vec::new();
    // SAFETY: parsing the deparsed INSERT and reading its VALUES row.
    unsafe {
        let stmts = pg_sys::raw_parser(c.as_ptr(), pg_sys::RawParseMode::RAW_PARSE_DEFAULT);
        for raw in list_of::<pg_sys::RawStmt>(stmts) {
            let stmt = (*raw).stmt;
            if !is_a(stmt as *const c_void, pg_sys::NodeTag::T_InsertStmt) {
                continue;
            }
            let select = (*(stmt as *mut pg_sys::InsertStmt)).selectStmt as *mut pg_sys::SelectStmt;
            if select.is_null() {
                continue;
            }
            for row in list_of::<pg_sys::List>((*select).valuesLists) {
                for item in list_of::<pg_sys::Node>(row) {
                    if is_a(item as *const c_void, pg_sys::NodeTag::T_ParamRef) {
                        let p = item as *mut pg_sys::ParamRef;
                        locations.push(((*p).number, (*p).location.max(0) as usize));
                    }
                }
            }
        }
    }
    let bad = || {
        TesseraError::new(
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            "cannot place this INSERT's rows in the statement sent to the shards",
        )
        .detail(format!("worker statement: {sql}"))
        .hint("Write the INSERT as INSERT INTO table (columns) VALUES (...) or INSERT ... SELECT, and report the statement to the Tessera developers.")
    };
    let (first_no, first_at) = *locations.first().ok_or_else(bad)?;
    let (_, last_at) = *locations.last().ok_or_else(bad)?;
    if first_no as usize != first {
        return Err(bad());
    }
    let bytes = sql.as_bytes();
    let open = sql[..first_at].rfind('(').ok_or_else(bad)?;
    if !sql[open + 1..first_at].trim().is_empty() {
        return Err(bad());
    }
    let mut end = last_at + 1;
    while end < bytes.len() && bytes[end].is_ascii_digit() {
        end += 1;
    }
    let close = end + sql[end..].find(')').ok_or_else(bad)?;
    if !sql[end..close].trim().is_empty() {
        return Err(bad());
    }
    Ok((open, close + 1))
}

/// The one-row INSERT ... VALUES `parse` as INSERT ... SELECT of its row: a copy whose
/// column expressions are the outputs of a SELECT without FROM (for a row with set-returning
/// functions, which only a SELECT can expand).
unsafe fn values_as_select(parse: *mut pg_sys::Query) -> *mut pg_sys::Query {
    // SAFETY: building the SELECT and its range table entry in a copy of the analyzed INSERT.
    unsafe {
        let q = pg_sys::copyObjectImpl(parse as *const c_void) as *mut pg_sys::Query;
        let tles: Vec<*mut pg_sys::TargetEntry> = list_of::<pg_sys::TargetEntry>((*q).targetList)
            .into_iter()
            .filter(|t| !(**t).resjunk)
            .collect();
        let rti = pg_sys::list_length((*q).rtable) + 1;
        let select = make_node::<pg_sys::Query>(pg_sys::NodeTag::T_Query);
        (*select).commandType = pg_sys::CmdType::CMD_SELECT;
        (*select).querySource = pg_sys::QuerySource::QSRC_ORIGINAL;
        (*select).canSetTag = true;
        (*select).hasTargetSRFs = true;
        (*select).jointree = pg_sys::makeFromExpr(std::ptr::null_mut(), std::ptr::null_mut());
        let mut outputs = Vec::with_capacity(tles.len());
        let mut names = Vec::with_capacity(tles.len());
        for (k, &t) in tles.iter().enumerate() {
            let e = (*t).expr as *mut pg_sys::Node;
            (*select).hasSubLinks |= pg_sys::checkExprHasSubLink(e);
            outputs.push(pg_sys::makeTargetEntry(
                e as *mut pg_sys::Expr,
                (k + 1) as i16,
                (*t).resname,
                false,
            ));
            names.push(pg_sys::makeString(pstrdup(&format!("c{}", k + 1))));
            (*t).expr = pg_sys::makeVar(
                rti,
                (k + 1) as i16,
                pg_sys::exprType(e),
                pg_sys::exprTypmod(e),
                pg_sys::exprCollation(e),
                0,
            ) as *mut pg_sys::Expr;
        }
        (*select).targetList = make_list(&outputs);
        let rte = make_node::<pg_sys::RangeTblEntry>(pg_sys::NodeTag::T_RangeTblEntry);
        (*rte).rtekind = pg_sys::RTEKind::RTE_SUBQUERY;
        (*rte).subquery = select;
        (*rte).eref = pg_sys::makeAlias(c"*SELECT*".as_ptr(), make_list(&names));
        (*q).rtable = pg_sys::lappend((*q).rtable, rte as *mut c_void);
        let rtr = make_node::<pg_sys::RangeTblRef>(pg_sys::NodeTag::T_RangeTblRef);
        (*rtr).rtindex = rti;
        (*(*q).jointree).fromlist = make_list(&[rtr]);
        (*q).hasTargetSRFs = false;
        q
    }
}

/// The range-table index of an INSERT's SELECT, if it has one.
unsafe fn sub_rti(parse: *mut pg_sys::Query) -> Option<i32> {
    // SAFETY: reading the Query's range table.
    unsafe {
        list_of::<pg_sys::RangeTblEntry>((*parse).rtable)
            .iter()
            .position(|r| (**r).rtekind == pg_sys::RTEKind::RTE_SUBQUERY)
            .map(|i| i as i32 + 1)
    }
}

/// INSERT ... SELECT: between co-located tables, selecting the distribution column into the
/// distribution column, the whole statement runs on each shard group (`INSERT INTO target_N
/// SELECT ... FROM source_N`) and no row passes through the coordinator. Otherwise the SELECT
/// runs as a query of its own (distributed or local) and its rows go to the shards through
/// the coordinator ([`plan_insert_via_coordinator`]).
unsafe fn plan_insert_select(
    parse: *mut pg_sys::Query,
    a: &Analysis,
    t: usize,
    query_string: *const std::ffi::c_char,
    bound_params: pg_sys::ParamListInfo,
) -> TResult<*mut pg_sys::PlannedStmt> {
    // SAFETY: reading the analyzed INSERT and its SELECT.
    unsafe {
        let meta = a.rtes[t].meta.clone();
        let sub_rti = sub_rti(parse).expect("an INSERT ... SELECT has its SELECT as a subquery");
        let sub_rte = pg_sys::list_nth((*parse).rtable, sub_rti - 1) as *mut pg_sys::RangeTblEntry;
        let sub = (*sub_rte).subquery;
        let via_coordinator = |why: &str| {
            plan_insert_via_coordinator(parse, a, t, sub_rti, why, query_string, bound_params)
        };
        let sa = analyze(sub)?;
        if !sa.local_tables.is_empty() {
            return via_coordinator("the SELECT reads a local table");
        }
        if sa.cte_results {
            return via_coordinator("the SELECT reads the rows of a WITH query");
        }
        if pg_sys::contain_volatile_functions(sub as *mut pg_sys::Node) {
            return via_coordinator("the SELECT calls a VOLATILE function");
        }
        if meta.is_reference() && sa.hash_rtes().next().is_some() {
            return via_coordinator("a reference table is filled from a distributed table");
        }
        if sa
            .hash_rtes()
            .any(|r| r.meta.table.colocation_id != meta.table.colocation_id)
        {
            return via_coordinator("the tables are not co-located");
        }
        let (tier, pin) = if meta.is_reference() {
            if sa.rtes.is_empty() {
                return via_coordinator("the SELECT reads no table");
            }
            (Tier::Router, Pin::Single)
        } else {
            if sa.hash_rtes().next().is_none() {
                return via_coordinator("the SELECT reads no co-located distributed table");
            }
            if multi_shard_blocker(&sa).is_some() {
                return via_coordinator("the SELECT cannot run on each shard group alone");
            }
            if combine::needs_combine(sub) && !combine::grouped_by_dist_col(sub, &sa) {
                return via_coordinator("the SELECT aggregates, sorts or limits across shards");
            }
            if !(*sub).sortClause.is_null()
                || !(*sub).limitCount.is_null()
                || !(*sub).limitOffset.is_null()
            {
                return via_coordinator("the SELECT has ORDER BY or LIMIT");
            }
            // The target's distribution column must take the source's distribution column.
            let Some(dist_tle) = list_of::<pg_sys::TargetEntry>((*parse).targetList)
                .into_iter()
                .find(|x| (**x).resno == meta.table.dist_attnum && !(**x).resjunk)
            else {
                return via_coordinator("the distribution column gets no value");
            };
            let e = combine::strip((*dist_tle).expr as *mut pg_sys::Node);
            let from_source = is_a(e as *const c_void, pg_sys::NodeTag::T_Var) && {
                let v = e as *mut pg_sys::Var;
                (*v).varno == sub_rti
                    && list_of::<pg_sys::TargetEntry>((*sub).targetList)
                        .into_iter()
                        .find(|x| (**x).resno == (*v).varattno)
                        .is_some_and(|x| combine::is_dist_col((*x).expr as *mut pg_sys::Node, &sa))
            };
            if !from_source {
                return via_coordinator(
                    "the distribution column is not filled from the source's distribution column",
                );
            }
            match common_pin(&sa) {
                Some(pin) => (Tier::Router, pin),
                None => (Tier::MultiShard, Pin::All),
            }
        };
        if pg_sys::contain_volatile_functions((*parse).targetList as *mut pg_sys::Node) {
            // A column default such as nextval() of a serial column: the coordinator's
            // sequence gives the values.
            return via_coordinator("a column's value is VOLATILE (a default such as nextval())");
        }
        let returning = !(*parse).returningList.is_null();
        let worker = in_column_order(parse, sub_rti);
        let mut plan = base_plan(tier, Command::Insert, worker, a, pin, returning)?;
        plan.set_anchor(meta.table.relid.to_u32());
        plan.notes
            .push("INSERT ... SELECT between co-located tables, run on each shard group".into());
        let scan_tlist = visible((*parse).returningList);
        let cscan = custom_scan(&plan, scan_tlist, 1000.0);
        (*cscan).scan.plan.targetlist = index_var_tlist(scan_tlist);
        Ok(planned_stmt(parse, cscan, a))
    }
}

/// Which Vars [`renumber_vars`] points elsewhere: those of range-table index `from` at the
/// level it starts on, to `to`.
struct Renumber {
    from: i32,
    to: i32,
}

/// Points the Vars of range-table index `from` at `to` (the scan's outer tuple, `OUTER_VAR`,
/// for the row the SELECT's own plan returns; another entry of a new query level).
#[pg_guard]
unsafe extern "C-unwind" fn renumber_vars(
    node: *mut pg_sys::Node,
    ctx: *mut c_void,
) -> *mut pg_sys::Node {
    if node.is_null() {
        return node;
    }
    // SAFETY: called by expression_tree_mutator with valid nodes and our context.
    unsafe {
        let r = &*(ctx as *mut Renumber);
        if is_a(node as *const c_void, pg_sys::NodeTag::T_Var) {
            let v = pg_sys::copyObjectImpl(node as *const c_void) as *mut pg_sys::Var;
            if (*v).varno == r.from && (*v).varlevelsup == 0 {
                (*v).varno = r.to;
                if r.to > 0 {
                    // The deparser names a Var by its syntactic position.
                    (*v).varnosyn = r.to as u32;
                    (*v).varattnosyn = (*v).varattno;
                }
            }
            return v as *mut pg_sys::Node;
        }
        combine::mutate(node, renumber_vars, ctx)
    }
}

/// The INSERT ... SELECT `parse`, its SELECT wrapped (when needed) in one that returns the
/// INSERT's columns in their order. PostgreSQL's deparser prints an INSERT ... SELECT as the
/// column list of its target list followed by the SELECT as it is, which is right only when
/// the k-th column takes the SELECT's k-th output; the rewriter has sorted the target list by
/// column number and added the other columns' defaults (`created DEFAULT now()`), so the
/// worker would get `INSERT INTO t (a, b, created) SELECT b_value, a_value FROM ...`. The
/// wrapper, `SELECT a_value, b_value, now() FROM (the SELECT) "*SELECT*"`, puts each value
/// under its column.
unsafe fn in_column_order(parse: *mut pg_sys::Query, sub_rti: i32) -> *mut pg_sys::Query {
    // SAFETY: reading the analyzed INSERT; building the wrapper in a copy of it.
    unsafe {
        let tles: Vec<*mut pg_sys::TargetEntry> =
            list_of::<pg_sys::TargetEntry>((*parse).targetList)
                .into_iter()
                .filter(|t| !(**t).resjunk)
                .collect();
        let sub_rte = pg_sys::list_nth((*parse).rtable, sub_rti - 1) as *mut pg_sys::RangeTblEntry;
        let sub_width = list_of::<pg_sys::TargetEntry>((*(*sub_rte).subquery).targetList)
            .into_iter()
            .filter(|t| !(**t).resjunk)
            .count();
        let aligned = sub_width == tles.len()
            && tles.iter().enumerate().all(|(k, &t)| {
                let e = combine::strip((*t).expr as *mut pg_sys::Node);
                is_a(e as *const c_void, pg_sys::NodeTag::T_Var) && {
                    let v = e as *mut pg_sys::Var;
                    (*v).varno == sub_rti
                        && (*v).varlevelsup == 0
                        && (*v).varattno as usize == k + 1
                }
            });
        if aligned {
            return parse;
        }
        let q = pg_sys::copyObjectImpl(parse as *const c_void) as *mut pg_sys::Query;
        let rte = pg_sys::list_nth((*q).rtable, sub_rti - 1) as *mut pg_sys::RangeTblEntry;
        let inner = make_node::<pg_sys::RangeTblEntry>(pg_sys::NodeTag::T_RangeTblEntry);
        (*inner).rtekind = pg_sys::RTEKind::RTE_SUBQUERY;
        (*inner).subquery = (*rte).subquery;
        (*inner).eref = pg_sys::copyObjectImpl((*rte).eref as *const c_void) as *mut pg_sys::Alias;
        (*inner).inFromCl = true;
        let wrapper = make_node::<pg_sys::Query>(pg_sys::NodeTag::T_Query);
        (*wrapper).commandType = pg_sys::CmdType::CMD_SELECT;
        (*wrapper).querySource = pg_sys::QuerySource::QSRC_ORIGINAL;
        (*wrapper).canSetTag = true;
        (*wrapper).rtable = make_list(&[inner]);
        let rtr = make_node::<pg_sys::RangeTblRef>(pg_sys::NodeTag::T_RangeTblRef);
        (*rtr).rtindex = 1;
        (*wrapper).jointree = pg_sys::makeFromExpr(make_list(&[rtr]), std::ptr::null_mut());
        let mut renumber = Renumber {
            from: sub_rti,
            to: 1,
        };
        let mut outputs = Vec::with_capacity(tles.len());
        let mut names = Vec::with_capacity(tles.len());
        let qtles: Vec<*mut pg_sys::TargetEntry> = list_of::<pg_sys::TargetEntry>((*q).targetList)
            .into_iter()
            .filter(|t| !(**t).resjunk)
            .collect();
        for (k, &t) in qtles.iter().enumerate() {
            let e = renumber_vars(
                (*t).expr as *mut pg_sys::Node,
                &mut renumber as *mut Renumber as *mut c_void,
            );
            outputs.push(pg_sys::makeTargetEntry(
                e as *mut pg_sys::Expr,
                (k + 1) as i16,
                (*t).resname,
                false,
            ));
            names.push(pg_sys::makeString(pstrdup(&format!("c{}", k + 1))));
            (*wrapper).hasSubLinks |= pg_sys::checkExprHasSubLink(e);
            (*t).expr = pg_sys::makeVar(
                sub_rti,
                (k + 1) as i16,
                pg_sys::exprType(e),
                pg_sys::exprTypmod(e),
                pg_sys::exprCollation(e),
                0,
            ) as *mut pg_sys::Expr;
        }
        (*wrapper).targetList = make_list(&outputs);
        (*rte).subquery = wrapper;
        (*(*rte).eref).colnames = make_list(&names);
        q
    }
}

/// INSERT ... SELECT whose rows pass through the coordinator: the SELECT is planned as a
/// query of its own (so it may be distributed, join local tables, aggregate across shards),
/// and the scan evaluates the INSERT's column expressions over each of its rows (defaults and
/// `nextval()` included) and routes the rows to the shards in batches of multi-row INSERTs,
/// all shards of a batch at once, inside the distributed transaction. The statement sent is
/// the user's INSERT with its SELECT replaced by a VALUES list of parameters, so ON CONFLICT
/// and RETURNING keep working.
#[allow(clippy::too_many_arguments)]
unsafe fn plan_insert_via_coordinator(
    parse: *mut pg_sys::Query,
    a: &Analysis,
    t: usize,
    sub_rti: i32,
    why: &str,
    query_string: *const std::ffi::c_char,
    bound_params: pg_sys::ParamListInfo,
) -> TResult<*mut pg_sys::PlannedStmt> {
    // SAFETY: reading and copying the analyzed Query; planning its SELECT.
    unsafe {
        let meta = a.rtes[t].meta.clone();
        if !(*parse).cteList.is_null() {
            return Err(unsupported(
                format!("WITH before INSERT ... SELECT into a distributed table is not supported when the rows pass through the coordinator ({why})"),
                "Move the WITH clause into the SELECT: INSERT INTO t WITH x AS (...) SELECT ... FROM x.",
            ));
        }
        let tles = insert_columns(parse)?;
        let dist_column = insert_dist_column(&meta, &tles)?;
        // The row: the INSERT's column expressions over the SELECT's output.
        let mut renumber = Renumber {
            from: sub_rti,
            to: pg_sys::OUTER_VAR,
        };
        let exprs: Vec<*mut pg_sys::Node> = tles
            .iter()
            .map(|t| {
                renumber_vars(
                    (**t).expr as *mut pg_sys::Node,
                    &mut renumber as *mut Renumber as *mut c_void,
                )
            })
            .collect();
        let row = make_list(&exprs);
        if pg_sys::contain_subplans(row as *mut pg_sys::Node) {
            return Err(unsupported(
                "subqueries in the column expressions of an INSERT ... SELECT into a distributed table are not supported",
                "Compute the value in the SELECT.",
            ));
        }
        pg_sys::fix_opfuncids(row as *mut pg_sys::Node);

        // The SELECT, planned on its own (through this planner hook when it is distributed).
        let sub_rte = pg_sys::list_nth((*parse).rtable, sub_rti - 1) as *mut pg_sys::RangeTblEntry;
        let sub =
            pg_sys::copyObjectImpl((*sub_rte).subquery as *const c_void) as *mut pg_sys::Query;
        let child = pg_sys::planner(sub, query_string, 0, bound_params);

        // The template: the INSERT with its SELECT replaced by one VALUES row of parameters
        // after the user's.
        let base = param_base(parse, bound_params);
        let q = pg_sys::copyObjectImpl(parse as *const c_void) as *mut pg_sys::Query;
        let qsub = pg_sys::list_nth((*q).rtable, sub_rti - 1) as *mut pg_sys::RangeTblEntry;
        (*qsub).rtekind = pg_sys::RTEKind::RTE_RESULT;
        (*qsub).subquery = std::ptr::null_mut();
        (*(*q).jointree).fromlist = std::ptr::null_mut();
        // ON CONFLICT and RETURNING: what the coordinator evaluates goes first.
        let (q, evaluated) = super::evaluate::take_out(q, base + 1);
        let base = base + evaluated.len();
        values_as_params(q, base);
        let qa = analyze(q)?;
        let returning = !(*parse).returningList.is_null();
        let (tier, pin) = if meta.is_reference() {
            (Tier::Router, Pin::Single)
        } else {
            (Tier::MultiShard, Pin::All)
        };
        let mut plan = base_plan(tier, Command::Insert, q, &qa, pin, returning)?;
        plan.params.retain(|&p| p <= base);
        plan.evaluated = evaluated;
        plan.set_anchor(meta.table.relid.to_u32());
        set_insert_shape(&mut plan, tles.len(), dist_column, base)?;
        plan.notes
            .push(format!("INSERT ... SELECT through the coordinator: {why}"));
        let scan_tlist = visible((*parse).returningList);
        let cscan = custom_scan(&plan, scan_tlist, (*(*child).planTree).plan_rows);
        (*cscan).scan.plan.targetlist = index_var_tlist(scan_tlist);
        (*cscan).custom_exprs = make_list(&[row]);
        (*cscan).custom_private = pg_sys::lappend((*cscan).custom_private, child as *mut c_void);
        if (*parse).onConflict.is_null() && (*parse).returningList.is_null() {
            // Plain rows: sent with COPY, which the shards take much faster than large
            // multi-row INSERTs. The column list, quoted, for `COPY shard (...) FROM STDIN`.
            let relid = meta.table.relid;
            let mut cols = Vec::with_capacity(tles.len());
            for &tle in &tles {
                let name = pg_sys::get_attname(relid, (*tle).resno, false);
                cols.push(tessera_core::plan::quote_ident(&crate::pg::nodes::string(
                    name,
                )));
            }
            (*cscan).custom_private = pg_sys::lappend(
                (*cscan).custom_private,
                pg_sys::makeString(pstrdup(&cols.join(", "))) as *mut c_void,
            );
        }
        let stmt = planned_stmt(parse, cscan, a);
        (*stmt).relationOids =
            pg_sys::list_concat_unique_oid((*stmt).relationOids, (*child).relationOids);
        (*stmt).invalItems = pg_sys::list_concat((*stmt).invalItems, (*child).invalItems);
        Ok(stmt)
    }
}
