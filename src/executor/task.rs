//! Tasks: the worker SQL of each shard group, which node runs it, with which parameters.
//!
//! [`build`] resolves the plan's shard groups against the metadata cache (so a plan stays
//! valid while shards keep their ids), evaluates a pinned parameter and, for INSERT, the rows
//! (on the coordinator: defaults, `nextval`, functions), and routes each row by the hash of
//! its distribution value. [`run`] sends every task at once.

use std::ffi::c_void;
use std::rc::Rc;

use pgrx::pg_sys;
use pgrx::prelude::*;

use tessera_core::plan::{union_all, Command, DistPlan, Pin};

use super::ScanRun;
use crate::connection::Scope;
use crate::connection::{ConnKey, Dispatch, NodeAddress, PgResult, RemoteTask};
use crate::error::{TResult, TesseraError};
use crate::gucs;
use crate::metadata::cache::{self, TableMeta};
use crate::pg::datum::{text_to_value, value_to_text};
use crate::transaction;

/// One statement for one node.
#[derive(Debug, Clone)]
pub struct Task {
    pub group: i32,
    pub node: NodeAddress,
    /// The statement sent (several shard groups of a SELECT joined by UNION ALL).
    pub sql: String,
    /// The SQL of each shard group in `sql`, for EXPLAIN.
    pub shard_sqls: Vec<String>,
    pub params: Vec<Option<String>>,
    pub types: Vec<u32>,
    /// Its rows and row count are the statement's (false for the other placements of a
    /// reference table, which get the same write).
    pub primary: bool,
    /// Run as a prepared statement on the node (a statement shape that repeats).
    pub prepare: bool,
    /// The rows of a `COPY ... FROM STDIN` task.
    pub copy_data: Option<Rc<Vec<u8>>>,
    /// A nearest-neighbour search that asks its shards for fewer rows (`fewer_rows`).
    pub fewer: Option<super::fewer_rows::FewerRows>,
}

/// A parameter's type as the workers know it: built-in types have the same OID everywhere;
/// others (extension types such as `vector`) are left for the worker to infer.
pub(super) fn portable_type(typid: pg_sys::Oid) -> u32 {
    let t = typid.to_u32();
    if t < pg_sys::FirstNormalObjectId {
        t
    } else {
        0
    }
}

/// Parameter `$id` of the execution: (value as text, type).
///
/// # Safety
/// `params` is null or the executor's ParamListInfo.
unsafe fn param(params: pg_sys::ParamListInfo, id: usize) -> (Option<String>, pg_sys::Oid) {
    // SAFETY: reading (or fetching through the hook) an existing parameter slot. The hook is
    // a C function that may raise an ERROR (PL/pgSQL's "record is not assigned yet"): called
    // through pgrx's boundary, which turns it into a Rust panic that unwinds this frame.
    unsafe {
        if params.is_null() || id == 0 || id > (*params).numParams as usize {
            return (None, pg_sys::InvalidOid);
        }
        let mut workspace = pg_sys::ParamExternData::default();
        let prm = match (*params).paramFetch {
            Some(fetch) => pg_sys::submodules::ffi::pg_guard_ffi_boundary(|| {
                fetch(params, id as i32, false, &mut workspace)
            }),
            None => (*params).params.as_mut_ptr().add(id - 1),
        };
        if prm.is_null() || (*prm).ptype == pg_sys::InvalidOid {
            return (None, pg_sys::InvalidOid);
        }
        if (*prm).isnull {
            return (None, (*prm).ptype);
        }
        (
            Some(value_to_text((*prm).value, (*prm).ptype)),
            (*prm).ptype,
        )
    }
}

/// The user's parameters the worker SQL needs, `$1..$n`: referenced ones with their values
/// and types, the others as NULL text (so the worker can type them).
unsafe fn user_params(
    plan: &DistPlan,
    params: pg_sys::ParamListInfo,
    extra: &[super::subplans::Extra],
) -> (Vec<Option<String>>, Vec<u32>) {
    let n = plan
        .params
        .iter()
        .copied()
        .max()
        .unwrap_or(0)
        .max(plan.insert.as_ref().map_or(0, |i| i.param_base));
    let mut values = Vec::with_capacity(n);
    let mut types = Vec::with_capacity(n);
    // The values travel to the nodes as text: printed the way any node reads them.
    let _portable = crate::pg::guc::GucScope::portable_output();
    for id in 1..=n {
        if let Some((_, v, t)) = extra.iter().find(|e| e.0 == id) {
            values.push(v.clone());
            types.push(*t);
        } else if plan.params.contains(&id) {
            // SAFETY: forwarded.
            let (v, t) = unsafe { param(params, id) };
            values.push(v);
            types.push(portable_type(t));
        } else {
            values.push(None);
            types.push(pg_sys::TEXTOID.to_u32());
        }
    }
    (values, types)
}

fn metas(plan: &DistPlan) -> TResult<Vec<Rc<TableMeta>>> {
    plan.tables
        .iter()
        .map(|t| {
            cache::lookup(pg_sys::Oid::from(t.relid))?.ok_or_else(|| {
                TesseraError::new(
                    PgSqlErrorCode::ERRCODE_UNDEFINED_TABLE,
                    format!("table {}.{} is no longer distributed", t.schema, t.name),
                )
                .hint("Run the statement again: it will be planned anew.")
            })
        })
        .collect()
}

/// The groups one shard group's task runs on: every placement of a reference table for a
/// write, otherwise one (a worker's, when a reference table also has one on the coordinator).
fn target_groups(anchor: &TableMeta, index: usize, write: bool) -> Vec<i32> {
    let groups = &anchor.shards[index].groups;
    if write || groups.len() <= 1 {
        return groups.clone();
    }
    let worker = groups.iter().copied().find(|g| *g != 0);
    vec![worker.unwrap_or(groups[0])]
}

/// One INSERT row evaluated on the coordinator: each column's (text, type), and the hash of
/// the distribution value (None when it is NULL or there is none).
pub type Row = (Vec<(Option<String>, u32)>, Option<i32>);

/// What every task of an execution shares: the tables' metadata, the anchor, the user's
/// parameters.
struct Common {
    metas: Vec<Rc<TableMeta>>,
    anchor: Rc<TableMeta>,
    uparams: Vec<Option<String>>,
    utypes: Vec<u32>,
    write: bool,
}

impl Common {
    unsafe fn new(
        plan: &DistPlan,
        estate: *mut pg_sys::EState,
        extra: &[super::subplans::Extra],
    ) -> TResult<Common> {
        let metas = metas(plan)?;
        let anchor = metas[plan.anchor].clone();
        // SAFETY: the executor's parameters.
        let (uparams, utypes) = unsafe { user_params(plan, (*estate).es_param_list_info, extra) };
        Ok(Common {
            metas,
            anchor,
            uparams,
            utypes,
            write: plan.writes(),
        })
    }

    /// The shard of each table in shard group `k` of the anchor: a co-located table's shard is
    /// the one whose stored range is the anchor shard's (found by range, not by position).
    fn shard_ids(&self, k: usize) -> TResult<Vec<i64>> {
        self.metas
            .iter()
            .map(|m| {
                if !m.has_dist_column() {
                    return Ok(m.shards[0].shard_id);
                }
                if Rc::ptr_eq(m, &self.anchor) {
                    return Ok(m.shards[k].shard_id);
                }
                let range = self.anchor.ranges[k];
                let i = m.shard_for_hash(range.min)?;
                if m.ranges[i] != range {
                    return Err(TesseraError::new(
                        PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                        format!(
                            "the shards of the co-located tables {}.{} and {}.{} do not cover the same hash ranges",
                            self.anchor.schema, self.anchor.name, m.schema, m.name
                        ),
                    )
                    .hint("Co-located tables must be split and moved together: check pg_dist_shard."));
                }
                Ok(m.shards[i].shard_id)
            })
            .collect()
    }

    /// The tasks of shard group `k`: one, or one per placement for a reference-table write.
    fn push(
        &self,
        tasks: &mut Vec<Task>,
        k: usize,
        sql: String,
        params: Vec<Option<String>>,
        types: Vec<u32>,
    ) -> TResult<()> {
        for (i, g) in target_groups(&self.anchor, k, self.write)
            .into_iter()
            .enumerate()
        {
            tasks.push(Task {
                group: g,
                node: cache::group_address(g)?,
                sql: sql.clone(),
                shard_sqls: vec![sql.clone()],
                params: params.clone(),
                types: types.clone(),
                primary: i == 0,
                prepare: true,
                copy_data: None,
                fewer: None,
            });
        }
        Ok(())
    }
}

/// The tasks of an INSERT of `rows`: the rows of each shard in one multi-row statement.
///
/// # Safety
/// `estate` is the scan's.
pub unsafe fn insert_tasks(
    plan: &DistPlan,
    estate: *mut pg_sys::EState,
    rows: &[Row],
    extra: &[super::subplans::Extra],
) -> TResult<Vec<Task>> {
    let shape = plan.insert.as_ref().expect("an INSERT plan");
    // SAFETY: forwarded.
    let c = unsafe { Common::new(plan, estate, extra)? };
    let mut tasks = Vec::new();
    for (k, list) in route(&c, shape, rows)? {
        let values = shape.values_text(shape.param_base + 1, list.len());
        let sql = plan.shard_sql_with(
            &c.shard_ids(k)?,
            vec![(shape.values_start, shape.values_end, values)],
        );
        let mut params = c.uparams.clone();
        let mut types = c.utypes.clone();
        params.resize(shape.param_base, None);
        types.resize(shape.param_base, pg_sys::TEXTOID.to_u32());
        for r in list {
            for (v, t) in &rows[r].0 {
                params.push(v.clone());
                types.push(*t);
            }
        }
        c.push(&mut tasks, k, sql, params, types)?;
    }
    Ok(tasks)
}

/// The tasks of an INSERT of `rows` sent as COPY: per shard, `COPY shard (columns) FROM
/// STDIN` with its rows in COPY text format. For INSERTs without ON CONFLICT or RETURNING.
///
/// # Safety
/// `estate` is the scan's.
pub unsafe fn copy_tasks(
    plan: &DistPlan,
    estate: *mut pg_sys::EState,
    rows: &[Row],
    columns: &str,
) -> TResult<Vec<Task>> {
    let shape = plan.insert.as_ref().expect("an INSERT plan");
    // SAFETY: forwarded.
    let c = unsafe { Common::new(plan, estate, &[])? };
    let target = &plan.tables[plan.anchor];
    let mut tasks = Vec::new();
    for (k, list) in route(&c, shape, rows)? {
        let shard_id = c.anchor.shards[if c.anchor.has_dist_column() { k } else { 0 }].shard_id;
        let sql = format!(
            "COPY {}.{} ({columns}) FROM STDIN",
            target.schema_sql,
            tessera_core::plan::quote_shard_name(&tessera_core::sharding::shard_name(
                &target.name,
                shard_id
            )),
        );
        let mut data = Vec::with_capacity(list.len() * 32);
        for r in list {
            tessera_core::copy::push_row(
                &mut data,
                rows[r]
                    .0
                    .iter()
                    .map(|(v, _)| v.as_deref().map(str::as_bytes)),
            );
        }
        let data = Rc::new(data);
        let first = tasks.len();
        c.push(&mut tasks, k, sql, Vec::new(), Vec::new())?;
        for t in &mut tasks[first..] {
            t.prepare = false;
            t.copy_data = Some(data.clone());
        }
    }
    Ok(tasks)
}

/// The shard (index) of each row, rows grouped by shard in first-seen order.
fn route(
    c: &Common,
    shape: &tessera_core::plan::InsertShape,
    rows: &[Row],
) -> TResult<Vec<(usize, Vec<usize>)>> {
    let mut by_shard: Vec<(usize, Vec<usize>)> = Vec::new();
    for (r, (_, hash)) in rows.iter().enumerate() {
        let k = match (shape.dist_column, hash) {
            (None, _) => 0,
            (Some(_), Some(h)) => c.anchor.shard_for_hash(*h)?,
            (Some(col), None) => {
                return Err(TesseraError::new(
                    PgSqlErrorCode::ERRCODE_NOT_NULL_VIOLATION,
                    format!(
                        "cannot perform an INSERT with NULL in the distribution column (column {} of the insert)",
                        col + 1
                    ),
                )
                .hint("Every row of a distributed table needs a value in its distribution column."));
            }
        };
        match by_shard.iter_mut().find(|(s, _)| *s == k) {
            Some((_, list)) => list.push(r),
            None => by_shard.push((k, vec![r])),
        }
    }
    Ok(by_shard)
}

/// Builds the tasks of one execution.
///
/// # Safety
/// `estate` and `econtext` are the scan's.
pub unsafe fn build(
    run: &ScanRun,
    estate: *mut pg_sys::EState,
    econtext: *mut pg_sys::ExprContext,
) -> TResult<Vec<Task>> {
    let plan = &run.plan;
    if plan.insert.is_some() {
        // SAFETY: the ExprStates were built in Begin for this scan.
        let rows = unsafe { eval_rows(run, econtext)? };
        let extra = run.extra.as_deref().unwrap_or(&[]);
        // SAFETY: forwarded.
        return unsafe { insert_tasks(plan, estate, &rows, extra) };
    }
    let extra = run.extra.as_deref().unwrap_or(&[]);
    // SAFETY: forwarded.
    let c = unsafe { Common::new(plan, estate, extra)? };
    let anchor = c.anchor.clone();
    let mut tasks = Vec::new();
    let indices: Vec<usize> = match &plan.pin {
        Pin::All => (0..anchor.shards.len()).collect(),
        Pin::Single => vec![0],
        Pin::Hash(h) => vec![anchor.shard_for_hash(*h)?],
        Pin::Hashes(hashes) => {
            let mut shards = hashes
                .iter()
                .map(|h| anchor.shard_for_hash(*h))
                .collect::<TResult<Vec<usize>>>()?;
            shards.sort_unstable();
            shards.dedup();
            if shards.is_empty() {
                shards.push(0);
            }
            shards
        }
        Pin::Param { id, typid } => {
            let value = match extra.iter().find(|e| e.0 == *id as usize) {
                Some((_, v, _)) => v.clone(),
                // SAFETY: the executor's parameters.
                None => unsafe { param((*estate).es_param_list_info, *id as usize) }.0,
            };
            match value {
                // `dist_col = NULL` matches no row, but the statement still runs, on one
                // shard group: an aggregate without GROUP BY returns its one row (count 0).
                None => vec![0],
                Some(text) => {
                    let datum = text_to_value(&text, pg_sys::Oid::from(*typid), -1)?;
                    let h =
                        crate::sharding::hash_datum(anchor.hash_proc, anchor.dist_collation, datum);
                    vec![anchor.shard_for_hash(h)?]
                }
            }
        }
    };
    for k in indices {
        c.push(
            &mut tasks,
            k,
            plan.shard_sql(&c.shard_ids(k)?),
            c.uparams.clone(),
            c.utypes.clone(),
        )?;
    }
    if plan.command == Command::Select && tasks.len() > 1 {
        let per_node = match scope(plan) {
            Scope::Autocommit => gucs::max_adaptive_executor_pool_size(),
            Scope::Transaction => 1,
        };
        tasks = batch_per_node(tasks, per_node);
        super::fewer_rows::apply(plan, &mut tasks);
    }
    Ok(tasks)
}

/// Joins the SELECT tasks of each node into `per_node` statements (fewer when it has fewer
/// shard groups), each a UNION ALL of its shard groups.
fn batch_per_node(tasks: Vec<Task>, per_node: usize) -> Vec<Task> {
    let mut nodes: Vec<Vec<Task>> = Vec::new();
    for t in tasks {
        match nodes.iter_mut().find(|n| n[0].group == t.group) {
            Some(n) => n.push(t),
            None => nodes.push(vec![t]),
        }
    }
    let mut out: Vec<Task> = Vec::new();
    for node_tasks in nodes {
        let width = per_node.clamp(1, node_tasks.len());
        let first = out.len();
        for (i, t) in node_tasks.into_iter().enumerate() {
            if i < width {
                out.push(t);
            } else {
                out[first + i % width].shard_sqls.push(t.sql);
            }
        }
    }
    for o in &mut out {
        o.sql = union_all(&o.shard_sqls);
    }
    out
}

/// Where the tasks run: in the remote transaction inside a transaction block, after earlier
/// remote work, and for every write; otherwise on cached autocommit connections.
pub fn scope(plan: &DistPlan) -> Scope {
    // SAFETY: reads the transaction state.
    let in_block = unsafe { pg_sys::IsTransactionBlock() };
    if plan.writes() || in_block || transaction::has_remote_work() {
        Scope::Transaction
    } else {
        Scope::Autocommit
    }
}

/// The INSERT rows of the statement, evaluated on the coordinator.
unsafe fn eval_rows(run: &ScanRun, econtext: *mut pg_sys::ExprContext) -> TResult<Vec<Row>> {
    let anchor = cache::lookup(pg_sys::Oid::from(run.plan.tables[run.plan.anchor].relid))?;
    let mut out = Vec::with_capacity(run.insert_rows.len());
    for &row in &run.insert_rows {
        // SAFETY: forwarded.
        out.push(unsafe { eval_row(run, anchor.as_deref(), row, econtext) });
    }
    Ok(out)
}

/// One INSERT row: its column expressions evaluated in the per-tuple context (reset after),
/// as text for the worker, with the hash of its distribution value.
///
/// # Safety
/// `row` is a List of ExprState of this scan, or Const for a constant; `econtext` is the scan's, with its outer tuple
/// set when the expressions read one.
pub unsafe fn eval_row(
    run: &ScanRun,
    anchor: Option<&TableMeta>,
    row: *mut pg_sys::List,
    econtext: *mut pg_sys::ExprContext,
) -> Row {
    let shape = run.plan.insert.as_ref().expect("an INSERT plan");
    let mut outputs = run.outputs.borrow_mut();
    let mut values = Vec::with_capacity(shape.columns);
    let mut hash = None;
    // SAFETY: evaluating the row expressions in the per-tuple context, reset per row.
    unsafe {
        for (c, item) in crate::pg::nodes::list_of::<pg_sys::Node>(row)
            .into_iter()
            .enumerate()
        {
            let (datum, isnull, typid) =
                if crate::pg::nodes::is_a(item as *const c_void, pg_sys::NodeTag::T_Const) {
                    let k = item as *mut pg_sys::Const;
                    ((*k).constvalue, (*k).constisnull, (*k).consttype)
                } else {
                    let state = item as *mut pg_sys::ExprState;
                    let mut isnull = false;
                    let datum = pg_sys::ExecEvalExprSwitchContext(state, econtext, &mut isnull);
                    (
                        datum,
                        isnull,
                        pg_sys::exprType((*state).expr as *mut pg_sys::Node),
                    )
                };
            if isnull {
                values.push((None, portable_type(typid)));
                continue;
            }
            if Some(c) == shape.dist_column {
                if let Some(m) = anchor {
                    hash = Some(crate::sharding::hash_datum(
                        m.hash_proc,
                        m.dist_collation,
                        datum,
                    ));
                }
            }
            // The column's output function, looked up once per scan.
            if outputs.len() <= c {
                outputs.resize_with(c + 1, || None);
            }
            let slot = &mut outputs[c];
            if slot.as_ref().is_none_or(|(t, _)| *t != typid) {
                let (mut out, mut varlena) = (pg_sys::InvalidOid, false);
                pg_sys::getTypeOutputInfo(typid, &mut out, &mut varlena);
                let mut finfo = pg_sys::FmgrInfo::default();
                pg_sys::fmgr_info_cxt(out, &mut finfo, (*econtext).ecxt_per_query_memory);
                *slot = Some((typid, finfo));
            }
            let finfo = &mut slot.as_mut().expect("set above").1;
            // The C string lives in the per-tuple memory, reset below.
            let old = pg_sys::MemoryContextSwitchTo((*econtext).ecxt_per_tuple_memory);
            // Printed the way any node reads it (the expression itself was evaluated under
            // the session's settings).
            let portable = crate::pg::guc::GucScope::portable_output();
            let text = crate::pg::nodes::string(pg_sys::OutputFunctionCall(finfo, datum));
            drop(portable);
            pg_sys::MemoryContextSwitchTo(old);
            values.push((Some(text), portable_type(typid)));
        }
        pg_sys::MemoryContextReset((*econtext).ecxt_per_tuple_memory);
    }
    (values, hash)
}

/// The settings a statement's shard queries run under: the session's (`Settings`), and for a
/// nearest-neighbour search (`DistPlan::nearest`) the statement's own, see
/// [`statement_settings`].
pub fn task_settings(plan: &DistPlan, tasks: &[Task]) -> Rc<crate::connection::Settings> {
    let own = statement_settings(plan, tasks);
    crate::connection::Settings::shared(plan.session_date_style, plan.prints_floats, &own)
}

/// A nearest-neighbour search's own settings for its shard queries (shown by EXPLAIN):
///
/// - `enable_sort` off (`tessera.enable_ann_index_scan`), so that the shard uses the index
///   that serves the ORDER BY even where a scan and sort look cheaper (a small shard), and
///   `jit` off (a plan with sorting disabled looks expensive enough to compile). With a WHERE
///   clause or row-level security only when the index is exact or the session turned on its
///   iterative scan (sent along, so the node scans as the decision assumed): a plain ANN
///   index scan filters its candidates after the search and may leave a shard short of rows;
/// - `hnsw.ef_search` of at least the rows a shard returns (LIMIT + OFFSET, up to pgvector's
///   1000) when the index is HNSW and the session did not choose one, so that no shard runs out
///   of candidates before its LIMIT (`LIMIT 100` against the default of 40); scaled to the number of shards searched with `tessera.ann_ef_search_scaling`
///   (`Nearest::ef_search_per_shard`).
pub fn statement_settings(plan: &DistPlan, tasks: &[Task]) -> Vec<(&'static str, String)> {
    let mut own: Vec<(&'static str, String)> = Vec::new();
    let Some(n) = plan.nearest else {
        return own;
    };
    let iterative = iterative_scan(&n);
    // A search asking for fewer rows per shard (`fewer_rows`).
    let fewer = tasks.first().and_then(|t| t.fewer.as_ref());
    let force = gucs::enable_ann_index_scan()
        && (!n.filtered || matches!(iterative, None | Some((_, Some(_)))));
    if force {
        own.push(("enable_sort", "off".into()));
        own.push(("jit", "off".into()));
        if let (true, Some((name, Some(v)))) = (n.filtered, &iterative) {
            own.push((name, v.clone()));
        }
    }
    // A search asking for fewer rows relies on each shard's rows coming nearest first: a
    // node's own configuration must not turn a relaxed-order iterative scan on.
    if let (Some(_), Some((name, None))) = (fewer, &iterative) {
        // (Only where this pgvector has the setting.)
        let c = std::ffi::CString::new(*name).expect("no NUL in a setting name");
        if crate::pg::guc::value(&c).is_some() {
            own.push((name, "off".into()));
        }
    }
    if n.index == tessera_core::plan::NearestIndex::Hnsw {
        // The session's own choice is kept (unless scaled); a value it did not choose (the
        // configuration's, or pgvector's default of 40) is raised to the rows a shard must
        // return.
        let session = crate::connection::session_setting("hnsw.ef_search")
            .and_then(|v| v.parse::<i64>().ok());
        let effective = session
            .or_else(|| crate::pg::guc::value(c"hnsw.ef_search").and_then(|v| v.parse().ok()))
            .unwrap_or(40);
        // A search asking for fewer rows per shard needs that many candidates per shard.
        let rows = fewer.map(|f| f.each).or_else(|| shard_rows(&n, tasks));
        let shards: usize = fewer.map_or_else(
            || tasks.iter().map(|t| t.shard_sqls.len().max(1)).sum(),
            |f| f.groups,
        );
        let mut ef = effective;
        if gucs::ann_ef_search_scaling() {
            ef = tessera_core::plan::Nearest::ef_search_per_shard(ef, rows, shards);
        }
        if force && session.is_none() {
            ef = ef.max(rows.unwrap_or(0).clamp(0, 1000));
        }
        if ef != effective {
            own.push(("hnsw.ef_search", ef.to_string()));
        }
    }
    own
}

/// The setting that turns on the iterative scan of `n`'s index, with the session's value when
/// it is on.
pub(super) fn iterative_scan(
    n: &tessera_core::plan::Nearest,
) -> Option<(&'static str, Option<String>)> {
    n.index.iterative_setting().map(|name| {
        let c = std::ffi::CString::new(name).expect("no NUL in a setting name");
        (
            name,
            crate::pg::guc::value(&c).filter(|v| !v.is_empty() && v != "off"),
        )
    })
}

/// The rows each shard query of the search `n` returns (LIMIT + OFFSET), when known: a
/// constant, or the value of its `LIMIT $n` parameter.
pub(super) fn shard_rows(n: &tessera_core::plan::Nearest, tasks: &[Task]) -> Option<i64> {
    n.limit.or_else(|| {
        let id = n.limit_param?;
        let t = tasks.first()?;
        t.params.get(id - 1)?.as_deref()?.parse::<i64>().ok()
    })
}

/// The rows of an execution: every result at hand, or a stream of rows still arriving.
pub enum Rows {
    Done(Vec<PgResult>),
    Stream(Box<Dispatch>),
    /// A search that asked its shards for fewer rows, and some shards again: the first
    /// round's results, then the second's; the first round's rows of those shards are set
    /// aside (`fewer_rows`).
    SetAside(Vec<PgResult>, super::fewer_rows::SetAside),
}

/// Runs every task at once; returns the primary tasks' results and affected-row count. With
/// `stream` (a SELECT outside a remote transaction), the tasks are only started and their
/// rows come from the returned stream as the nodes send them.
pub fn run(plan: &DistPlan, tasks: &[Task], stream: bool) -> TResult<(Rows, u64)> {
    if plan.needs_iso_dates && !crate::pg::guc::iso_dates() {
        return Err(crate::pg::guc::datestyle_conflict());
    }
    // SAFETY: reading this backend's roles.
    if plan.reads_session_user && unsafe { pg_sys::GetSessionUserId() != pg_sys::GetUserId() } {
        return Err(crate::planner::session_user_differs(None));
    }
    let scope = scope(plan);
    // A search that may ask some shards again looks at all the first round's rows first.
    let first_round = super::fewer_rows::first_round(tasks);
    let stream = stream && !first_round && scope == Scope::Autocommit && !plan.writes();
    let dispatch = start(plan, tasks, scope, stream);
    if stream {
        return Ok((Rows::Stream(Box::new(dispatch)), 0));
    }
    let (mut results, affected) = collect(tasks, dispatch)?;
    if first_round {
        let again = super::fewer_rows::asked_again(plan, tasks, &results);
        let more = super::fewer_rows::second_round(plan, tasks, &again);
        if !more.is_empty() {
            let first_round = results.len();
            results.extend(collect(&more, start(plan, &more, scope, false))?.0);
            let set_aside = super::fewer_rows::SetAside { first_round, again };
            return Ok((Rows::SetAside(results, set_aside), affected));
        }
    }
    Ok((Rows::Done(results), affected))
}

/// Starts every task at once, in `scope`, with the statement's settings.
fn start(plan: &DistPlan, tasks: &[Task], scope: Scope, stream: bool) -> Dispatch {
    let settings = task_settings(plan, tasks);
    let remote: Vec<RemoteTask> = tasks
        .iter()
        .map(|t| {
            let mut r = RemoteTask::new(ConnKey::for_current_session(&t.node), t.sql.clone())
                .in_scope(scope)
                .with_settings(settings.clone())
                .with_params(t.params.clone())
                .with_param_types(t.types.clone())
                .prepared(t.prepare)
                .streaming(stream)
                .reading_only(plan.only_reads());
            r.copy_data = t.copy_data.clone();
            r
        })
        .collect();
    let n = remote.len();
    Dispatch::start(remote, n)
}

/// The primary tasks' last results, and the rows they changed.
fn collect(tasks: &[Task], dispatch: Dispatch) -> TResult<(Vec<PgResult>, u64)> {
    let outcomes = dispatch.finish()?;
    let mut results = Vec::new();
    let mut affected = 0;
    for (t, outcome) in tasks.iter().zip(outcomes) {
        let mut r = outcome.map_err(|e| e.into_tessera())?;
        if !t.primary {
            continue;
        }
        if let Some(last) = r.pop() {
            affected += last.affected_rows();
            results.push(last);
        }
    }
    Ok((results, affected))
}
