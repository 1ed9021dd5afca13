//! The tier of a query: the value every distributed table is pinned to (router), why a query
//! cannot run on every shard group, and the DistPlan of a tier (worker SQL deparsed once, its
//! tables, what the coordinator evaluates).

use pgrx::pg_sys;

use tessera_core::plan::{Command, DistPlan, Pin, TableRef, Tier};

use crate::error::{TResult, TesseraError};
use crate::planner::analyze::{Analysis, PinValue};
use crate::planner::deparse::{querydef, sites};
use crate::planner::query::params_of;
use crate::planner::unsupported;

/// The one value every hash-distributed table is pinned to, if there is one.
pub(crate) fn common_pin(a: &Analysis) -> Option<Pin> {
    let mut hash = a.hash_rtes().peekable();
    hash.peek()?;
    let mut pin: Option<Pin> = None;
    for r in a.hash_rtes() {
        let p = match &r.pin {
            None => return None,
            Some(PinValue::Hash(h)) => Pin::Hash(*h),
            // A list of values is one shard group when the stored ranges put them all in one.
            Some(PinValue::Hashes(hashes)) => {
                let first = *hashes.first()?;
                let shard = r.meta.shard_for_hash(first).ok()?;
                for h in &hashes[1..] {
                    if r.meta.shard_for_hash(*h).ok()? != shard {
                        return None;
                    }
                }
                Pin::Hash(first)
            }
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

/// The shard groups a query that is not pinned to one runs on: those of the values every
/// hash-distributed table's distribution column is limited to (`IN (...)`, one list for all:
/// the tables are joined on their distribution columns), or all of them.
pub(crate) fn multi_shard_pin(a: &Analysis) -> Pin {
    let mut list: Option<&Vec<i32>> = None;
    for r in a.hash_rtes() {
        match (&r.pin, list) {
            (Some(PinValue::Hashes(h)), None) => list = Some(h),
            (Some(PinValue::Hashes(h)), Some(l)) if h == l => {}
            _ => return Pin::All,
        }
    }
    list.map_or(Pin::All, |l| Pin::Hashes(l.clone()))
}

/// Why a query cannot run on every shard group, if it cannot.
pub(crate) fn multi_shard_blocker(a: &Analysis) -> Option<TesseraError> {
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
            schema_sql: pgrx::spi::quote_identifier(&m.schema),
        });
    }
    (tables, 0)
}

pub(crate) unsafe fn base_plan(
    tier: Tier,
    command: Command,
    query: *mut pg_sys::Query,
    a: &Analysis,
    pin: Pin,
    returns_rows: bool,
) -> TResult<DistPlan> {
    // SAFETY: forwarded.
    unsafe { base_plan_of(tier, command, query, a, pin, returns_rows, false) }
}

/// [`base_plan`]; `whole` for a statement that runs on the node as it is (an INSERT's own
/// column expressions included, which the other INSERT plans evaluate on the coordinator).
pub(crate) unsafe fn base_plan_of(
    tier: Tier,
    command: Command,
    query: *mut pg_sys::Query,
    a: &Analysis,
    pin: Pin,
    returns_rows: bool,
    whole: bool,
) -> TResult<DistPlan> {
    let (tables, anchor) = tables_of(a);
    // What the coordinator's session defines is evaluated there, and sent as parameters
    // numbered after every parameter the query has (INSERT plans take theirs out first, before
    // the parameters of their VALUES row).
    // SAFETY: walking and copying a valid Query.
    let (query, evaluated) = unsafe {
        let first = params_of(query).into_iter().max().unwrap_or(0) + 1;
        super::evaluate::take_out(query, first, whole)
    };
    // What is left runs on the workers.
    // SAFETY: walking a valid Query.
    if let Some(f) = unsafe { super::query::coordinator_function(query) } {
        return Err(unsupported(
            format!("cannot run {f}() on the workers: it reads the coordinator's catalog"),
            "Call it in a statement of its own and use its result as a value (or join its rows with a local table).",
        ));
    }
    // SAFETY: walking and deparsing a valid Query.
    let (prints, zoned, template) = unsafe {
        (
            super::evaluate::prints(query),
            super::evaluate::returns_zoned(query),
            querydef(query)?,
        )
    };
    // A value printed as text on the nodes follows the session's DateStyle there, but a
    // time-zoned value the nodes return travels in ISO form only (another style's zone
    // abbreviation need not read back the same): both at once, under another DateStyle, would
    // print the text in the wrong style.
    if prints.datetimes && zoned && !crate::pg::guc::iso_dates() {
        return Err(crate::pg::guc::datestyle_conflict());
    }
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
        needs_iso_dates: prints.datetimes && zoned,
        reads_session_user: a.reads_session_user,
        partial_states: Vec::new(),
        modifying_cte: false,
        // SAFETY: walking a valid Query.
        calls_volatile: unsafe { pg_sys::contain_volatile_functions(query as *mut pg_sys::Node) },
        nearest: None,
    })
}
