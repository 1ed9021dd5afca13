//! The ProcessUtility hook: DDL on distributed tables reaches their shards, and extensions
//! reach every node, inside the user's transaction.
//!
//! Dispatch is a table ([`handler_for`]): each statement kind that can touch a distributed or
//! reference table has one handler, which looks at the statement before it runs locally and
//! says what happens: [`Step::Pass`] (not Tessera's: it runs as it would without Tessera),
//! [`Step::Propagate`] (it runs locally, then the handler's closure carries it to the nodes),
//! or an error. A statement kind that can name a table has a handler even when the answer is
//! a refusal or "local on purpose", so nothing that touches a distributed table slips through
//! unseen (default-deny); the kinds left out of the table cannot name a table.
//!
//! | statement | handler |
//! | --- | --- |
//! | CREATE / ALTER / DROP EXTENSION | `extension`: the same statement on every worker |
//! | CREATE INDEX, DROP INDEX | `index`: the index, renamed, on every shard; the shard indexes dropped |
//! | REINDEX CONCURRENTLY, ALTER INDEX options | `index`: refused (drop and create the index again) |
//! | ALTER TABLE column forms, RENAME COLUMN | `alter_table`: the user's statement on every shard, the table reference replaced by the shard's name (found by the parser's location) |
//! | ALTER TABLE ADD/DROP CONSTRAINT | `alter_table`: the new constraint's definition (or the DROP) on every shard, named `<name>_<shardid>` |
//! | RENAME of the table or an index, SET SCHEMA, REINDEX, CLUSTER | `shards`: the same on every shard, under the shard's names |
//! | ALTER TABLE SET / RESET (storage parameters), SET STATISTICS / STORAGE / COMPRESSION, OWNER TO, ROW LEVEL SECURITY | `alter_table`: the statement on every shard |
//! | CREATE TABLE ... PARTITION OF, ATTACH / DETACH PARTITION | `partitions`: the partition distributed with its parent (co-located), its shards attached to or detached from the parent's |
//! | INHERITS / INHERIT, a distributed table under a local parent, two levels of partitions, DETACH CONCURRENTLY | `partitions`: refused with a hint |
//! | CREATE TRIGGER, DROP TRIGGER; ENABLE / DISABLE TRIGGER; ALTER TRIGGER RENAME | `triggers` (refused unless `citus.enable_unsafe_triggers`): on every shard; `alter_table` |
//! | other ALTER TABLE forms, RENAME of a constraint, ALTER INDEX options | `alter_table`: refused with a hint |
//! | GRANT / REVOKE on tables | `grant`: the statement on every shard (its table list replaced by the shard); ALL TABLES IN SCHEMA: that statement rebuilt for each shard of the distributed tables in those schemas |
//! | TRUNCATE | `maintenance`: every shard truncated |
//! | VACUUM / ANALYZE of named tables | `maintenance`: the same on every shard (outside the transaction, as VACUUM must) |
//! | COPY TO | `copy`: rewritten to `COPY (SELECT ...) TO`, which reads the shards; COPY FROM refused |
//! | ENABLE / DISABLE / FORCE ROW LEVEL SECURITY, CREATE / ALTER / DROP / RENAME POLICY | the same on every shard (the shards enforce the policies) |
//! | CREATE / DROP STATISTICS, ALTER STATISTICS ... SET STATISTICS | `statistics`: the object on every shard, named `<name>_<shardid>`; its RENAME / SET SCHEMA refused |
//! | CREATE RULE, CREATE/ALTER PUBLICATION | `refused`: refused with a hint |
//! | CREATE / ALTER / DROP ROLE, GRANT role, ALTER ROLE ... SET / RENAME, DROP / REASSIGN OWNED | `roles`: on every worker (a password as its stored verifier) |
//! | CREATE / DROP SCHEMA, GRANT on schemas, functions, types | `objects`: on every worker (CREATE SCHEMA IF NOT EXISTS, DROP ... IF EXISTS) |
//! | CREATE / ALTER / DROP TYPE, DOMAIN, FUNCTION, PROCEDURE, AGGREGATE, OPERATOR, COLLATION; their RENAME / SET SCHEMA / OWNER TO | `objects`: as written on every worker, under the session's search_path |
//! | ALTER DEFAULT PRIVILEGES; CREATE / ALTER / DROP TEXT SEARCH CONFIGURATION, DICTIONARY, PARSER, TEMPLATE | `objects`: as written on every worker |
//! | COMMENT, SECURITY LABEL, LOCK TABLE | local on purpose: a comment or label is the coordinator's metadata; the coordinator's lock is what distributed writes take |
//! | DROP TABLE / DROP SCHEMA | passes; the `sql_drop` event trigger (`drop`) drops the shards |
//!
//! All remote work runs in the remote transaction that commits and aborts with the local one
//! (VACUUM aside): a worker that fails fails the statement, and nothing stays half-done.

mod alter_table;
mod copy;
mod copy_from;
pub mod distributed_objects;
mod drop;
mod extension;
mod grant;
mod index;
pub mod propagate;
pub mod row_counts;
pub mod tenant_tables;

pub(crate) use index::indexes_of;
mod maintenance;
pub(crate) mod objects;
mod partitions;
mod refused;
pub(crate) mod roles;
mod shards;
mod statistics;
mod triggers;

pub(crate) use triggers::triggers_refused;

use std::ffi::{c_char, CStr};

use pgrx::pg_sys;
use pgrx::pg_sys::ffi::pg_guard_ffi_boundary;
use pgrx::prelude::*;
use pgrx::spi::quote_identifier;

use crate::error::{OrReport, TResult, TesseraError};
use crate::metadata::node as nodes;
use crate::pg::nodes::{list_ptrs, rel_schema_and_name};
use propagate::{run_per_group, PerGroup};

thread_local! {
    /// Depth of [`run_locally`] sections: while positive, utility statements are PostgreSQL's
    /// alone.
    static LOCAL_UTILITY: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// Runs the utility statement `sql` on the coordinator's own tables only (Tessera's hook
/// passes it through): for Tessera's own statements on tables it is distributing, such as
/// emptying their local copies once their rows are in the shards.
pub(crate) fn run_locally(sql: &str) -> TResult<()> {
    struct Depth;
    impl Drop for Depth {
        fn drop(&mut self) {
            LOCAL_UTILITY.with(|d| d.set(d.get().saturating_sub(1)));
        }
    }
    LOCAL_UTILITY.with(|d| d.set(d.get() + 1));
    let _depth = Depth;
    crate::ddl::propagate::internally(|| pgrx::spi::Spi::run(sql))?;
    Ok(())
}

/// The ProcessUtility hook installed before Tessera's; the only copy of it.
static mut PREV_PROCESS_UTILITY_HOOK: pg_sys::ProcessUtility_hook_type = None;

pub fn init() {
    // SAFETY: _PG_init runs once per process, before any statement runs.
    unsafe {
        PREV_PROCESS_UTILITY_HOOK = pg_sys::ProcessUtility_hook;
        pg_sys::ProcessUtility_hook = Some(tessera_process_utility);
        pg_sys::RegisterXactCallback(Some(forget_pending_copies), std::ptr::null_mut());
        pg_sys::RegisterSubXactCallback(Some(forget_aborted_copies), std::ptr::null_mut());
    }
}

/// What carries a statement to the nodes once it ran locally.
type Finish = Box<dyn FnOnce() -> TResult<()>>;

/// What a handler decided before the local statement runs.
enum Step {
    /// Not Tessera's: the statement runs as it would without Tessera.
    Pass,
    /// Tessera's: the statement runs locally (PostgreSQL's internal queries not distributed),
    /// then the closure carries it to the nodes.
    Propagate(Finish),
}

/// One utility statement as ProcessUtility received it.
struct Utility {
    pstmt: *mut pg_sys::PlannedStmt,
    query_string: *const c_char,
    stmt: *mut pg_sys::Node,
    /// The statement is the client's own (not run from a function or another statement).
    toplevel: bool,
}

impl Utility {
    /// The statement's node, cast to its parse-node type.
    ///
    /// # Safety
    /// `T` is the struct of the statement's tag.
    unsafe fn node<T>(&self) -> *mut T {
        self.stmt as *mut T
    }

    /// The text of this statement within the query string.
    fn text(&self) -> String {
        // SAFETY: query_string is NUL-terminated; location and length are byte offsets into it
        // (PostgreSQL's, for this statement).
        let q = unsafe { CStr::from_ptr(self.query_string) }.to_string_lossy();
        // SAFETY: pstmt is the valid PlannedStmt ProcessUtility received.
        let (loc, len) = unsafe { ((*self.pstmt).stmt_location, (*self.pstmt).stmt_len) };
        if loc < 0 {
            return q.into_owned();
        }
        let start = (loc as usize).min(q.len());
        let end = if len <= 0 {
            q.len()
        } else {
            (start + len as usize).min(q.len())
        };
        q.get(start..end).unwrap_or(&q).to_string()
    }

    /// The statement text and where a parser location falls inside it.
    fn text_and_offset(&self, location: i32) -> (String, usize) {
        // SAFETY: pstmt is the valid PlannedStmt ProcessUtility received.
        let base = unsafe { (*self.pstmt).stmt_location };
        (self.text(), (location - base.max(0)).max(0) as usize)
    }
}

/// A statement kind's handler.
type Handler = unsafe fn(&Utility) -> TResult<Step>;

/// The table: the handler of each statement kind that can touch a distributed table.
fn handler_for(tag: pg_sys::NodeTag) -> Option<Handler> {
    use pg_sys::NodeTag::*;
    Some(match tag {
        T_CreateExtensionStmt | T_AlterExtensionStmt => extension::create_or_alter,
        T_DropStmt => drop,
        T_IndexStmt => index::create,
        T_ReindexStmt => index::reindex,
        T_AlterTableStmt => alter_table::alter,
        T_RenameStmt => alter_table::rename,
        T_AlterObjectSchemaStmt => alter_table::set_schema,
        T_GrantStmt => grant::grant,
        T_TruncateStmt => maintenance::truncate,
        T_VacuumStmt => maintenance::vacuum,
        T_CopyStmt => copy::copy,
        T_CreateStmt => partitions::create_table,
        T_CreateForeignTableStmt => partitions::create_foreign_table,
        T_CreateSchemaStmt => objects::create_schema,
        T_CreateEnumStmt | T_CreateRangeStmt | T_CreateDomainStmt | T_AlterEnumStmt
        | T_AlterTypeStmt | T_AlterDomainStmt => objects::as_written,
        T_CompositeTypeStmt => objects::create_composite,
        T_DefineStmt => objects::define,
        T_AlterFunctionStmt => objects::alter_function,
        // Default privileges: the workers' too, for objects made there (the shards take the
        // table's own privileges when they are made).
        T_AlterDefaultPrivilegesStmt => objects::as_written,
        T_AlterTSConfigurationStmt | T_AlterTSDictionaryStmt => objects::as_written,
        T_CreateFunctionStmt => objects::create_function,
        T_AlterOwnerStmt => alter_owner,
        T_CreateRoleStmt => roles::create,
        T_AlterRoleStmt => roles::alter,
        T_AlterRoleSetStmt | T_DropRoleStmt | T_GrantRoleStmt | T_DropOwnedStmt
        | T_ReassignOwnedStmt => roles::as_is,
        T_CreateTrigStmt => triggers::create,
        T_CreatePolicyStmt | T_AlterPolicyStmt => policy,
        T_RuleStmt => refused::rule,
        T_ClusterStmt => refused::cluster,
        T_CreateStatsStmt => statistics::create,
        T_AlterStatsStmt => statistics::alter,
        T_CreatePublicationStmt | T_AlterPublicationStmt => refused::publication,
        // Local on purpose (see the table above).
        T_CommentStmt | T_SecLabelStmt | T_LockStmt => return None,
        _ => return None,
    })
}

/// DROP: of an extension, an index; anything else passes (DROP TABLE's shards go with the
/// `sql_drop` event trigger).
///
/// # Safety
/// `u` is a DropStmt.
unsafe fn drop(u: &Utility) -> TResult<Step> {
    // SAFETY: the tag was checked by the table.
    let s = unsafe { u.node::<pg_sys::DropStmt>() };
    // SAFETY: reading the DropStmt's fields.
    match unsafe { (*s).removeType } {
        // SAFETY: a DropStmt of extensions.
        pg_sys::ObjectType::OBJECT_EXTENSION => unsafe { extension::drop(u) },
        // SAFETY: a DropStmt of indexes.
        pg_sys::ObjectType::OBJECT_INDEX => unsafe { index::drop(u) },
        // SAFETY: a DropStmt of policies.
        pg_sys::ObjectType::OBJECT_POLICY => unsafe { drop_policy(u) },
        // SAFETY: a DropStmt of statistics objects.
        pg_sys::ObjectType::OBJECT_STATISTIC_EXT => unsafe { statistics::drop(u) },
        // SAFETY: a DropStmt of triggers.
        pg_sys::ObjectType::OBJECT_TRIGGER => unsafe { triggers::drop(u) },
        // SAFETY: a DropStmt of schemas.
        pg_sys::ObjectType::OBJECT_SCHEMA => unsafe { objects::drop_schema(u) },
        k if SHARED_OBJECTS.contains(&k) => {
            // SAFETY: a DropStmt of one of these kinds.
            unsafe { objects::drop_object(u) }
        }
        _ => Ok(Step::Pass),
    }
}

/// CREATE POLICY and ALTER POLICY on a distributed table: the policy as the coordinator has it
/// afterwards (printed from pg_policy with every name qualified and its roles resolved), made
/// again on every shard. The shards enforce the policies, for the coordinator's connections
/// (which run as the current user) and for direct ones alike, so the shards' policies must be
/// the coordinator's exactly.
///
/// # Safety
/// `u` is a CreatePolicyStmt or an AlterPolicyStmt.
unsafe fn policy(u: &Utility) -> TResult<Step> {
    // SAFETY: the tag was checked by the table; each cast follows it; table is a RangeVar,
    // policy_name a NUL-terminated name.
    let (table, name) = unsafe {
        if (*u.stmt).type_ == pg_sys::NodeTag::T_CreatePolicyStmt {
            let s = u.node::<pg_sys::CreatePolicyStmt>();
            ((*s).table, crate::pg::nodes::string((*s).policy_name))
        } else {
            let s = u.node::<pg_sys::AlterPolicyStmt>();
            ((*s).table, crate::pg::nodes::string((*s).policy_name))
        }
    };
    // SAFETY: table is a valid RangeVar.
    let Some(relid) = (unsafe { distributed_range_var(table) })? else {
        return Ok(Step::Pass);
    };
    Ok(Step::Propagate(Box::new(move || {
        let defs = crate::sharding::ddl::policies(relid, Some(&name))?;
        make_again_per_shard(relid, "POLICY", &name, &defs)
    })))
}

/// On every shard of `relid`: `DROP <kind> IF EXISTS name ON <shard>`, then each definition,
/// the text before and after the shard's name (a policy or trigger made again as the
/// coordinator has it now).
fn make_again_per_shard(
    relid: pg_sys::Oid,
    kind: &str,
    name: &str,
    defs: &[(String, String)],
) -> TResult<()> {
    let (schema, table) = rel_schema_and_name(relid);
    let mut per_group = PerGroup::new();
    crate::ddl::propagate::push_per_shard(
        &mut per_group,
        relid,
        &schema,
        &table,
        |_, _, shard| {
            let mut cmds = vec![format!(
                "DROP {kind} IF EXISTS {} ON {shard}",
                quote_identifier(name)
            )];
            cmds.extend(
                defs.iter()
                    .map(|(before, after)| format!("{before}{shard}{after}")),
            );
            Ok(cmds)
        },
    )?;
    run_batched(per_group)
}

/// DROP POLICY on a distributed table: `DROP POLICY IF EXISTS` of the same policy on every
/// shard.
///
/// # Safety
/// `u` is a DropStmt of policies.
unsafe fn drop_policy(u: &Utility) -> TResult<Step> {
    let mut drops = Vec::new();
    // SAFETY: a DROP POLICY's objects are name lists: the table's name, then the policy's.
    unsafe {
        for names in list_ptrs((*u.node::<pg_sys::DropStmt>()).objects) {
            let names = names as *mut pg_sys::List;
            let parts = list_ptrs(names);
            let Some((&policy, table)) = parts.split_last() else {
                continue;
            };
            let table_names = crate::pg::nodes::make_list(table);
            let rv = pg_sys::makeRangeVarFromNameList(table_names);
            if let Some(relid) = distributed_range_var(rv)? {
                drops.push((
                    relid,
                    crate::pg::nodes::string((*(policy as *mut pg_sys::String)).sval),
                ));
            }
        }
    }
    if drops.is_empty() {
        return Ok(Step::Pass);
    }
    Ok(Step::Propagate(Box::new(move || {
        let mut per_group = PerGroup::new();
        for (relid, policy) in drops {
            let (schema, table) = rel_schema_and_name(relid);
            crate::ddl::propagate::push_per_placement(
                &mut per_group,
                relid,
                &schema,
                &table,
                |t| format!("DROP POLICY IF EXISTS {} ON {t}", quote_identifier(&policy)),
            )?;
        }
        run_batched(per_group)
    })))
}

/// The object kinds every node keeps (besides tables, roles and schemas): what defaults,
/// constraints and queries on the shards may use.
const SHARED_OBJECTS: [pg_sys::ObjectType::Type; 13] = [
    pg_sys::ObjectType::OBJECT_TYPE,
    pg_sys::ObjectType::OBJECT_DOMAIN,
    pg_sys::ObjectType::OBJECT_FUNCTION,
    pg_sys::ObjectType::OBJECT_PROCEDURE,
    pg_sys::ObjectType::OBJECT_ROUTINE,
    pg_sys::ObjectType::OBJECT_AGGREGATE,
    pg_sys::ObjectType::OBJECT_OPERATOR,
    pg_sys::ObjectType::OBJECT_COLLATION,
    pg_sys::ObjectType::OBJECT_SCHEMA,
    pg_sys::ObjectType::OBJECT_TSCONFIGURATION,
    pg_sys::ObjectType::OBJECT_TSDICTIONARY,
    pg_sys::ObjectType::OBJECT_TSPARSER,
    pg_sys::ObjectType::OBJECT_TSTEMPLATE,
];

/// Whether RENAME / SET SCHEMA / OWNER TO of this kind reaches every node (as written).
fn shared_kind(kind: pg_sys::ObjectType::Type) -> bool {
    SHARED_OBJECTS.contains(&kind)
        || kind == pg_sys::ObjectType::OBJECT_ATTRIBUTE
        || kind == pg_sys::ObjectType::OBJECT_DOMCONSTRAINT
}

/// [`shared_kind`], and for a function kind one the workers have (`object` is the statement's
/// object node).
///
/// # Safety
/// `object` is the statement's object node (an ObjectWithArgs for function kinds).
unsafe fn shared_object(kind: pg_sys::ObjectType::Type, object: *mut pg_sys::Node) -> bool {
    let function = matches!(
        kind,
        pg_sys::ObjectType::OBJECT_FUNCTION
            | pg_sys::ObjectType::OBJECT_PROCEDURE
            | pg_sys::ObjectType::OBJECT_ROUTINE
            | pg_sys::ObjectType::OBJECT_AGGREGATE
    );
    shared_kind(kind)
        // SAFETY: forwarded.
        && (!function || object.is_null() || unsafe { objects::function_is_shared(kind, object) })
}

/// ALTER ... OWNER TO of a shared object kind: as written.
///
/// # Safety
/// `u` is an AlterOwnerStmt.
unsafe fn alter_owner(u: &Utility) -> TResult<Step> {
    // SAFETY: the tag was checked by the table.
    let s = unsafe { u.node::<pg_sys::AlterOwnerStmt>() };
    // SAFETY: as above; object is the statement's object node.
    if unsafe { shared_object((*s).objectType, (*s).object) } {
        // SAFETY: as above.
        return unsafe { objects::as_written(u) };
    }
    // SAFETY: as above; a statistics object's object node is its name list.
    if unsafe { (*s).objectType } == pg_sys::ObjectType::OBJECT_STATISTIC_EXT {
        // SAFETY: as above.
        return unsafe { statistics::alter_owner((*s).object, (*s).newowner) };
    }
    Ok(Step::Pass)
}

fn tessera_installed() -> bool {
    // SAFETY: a syscache lookup by name; reading a backend-local flag.
    unsafe {
        !pg_sys::creating_extension
            && pg_sys::get_relname_relid(
                c"pg_dist_partition".as_ptr(),
                pg_sys::Oid::from(pg_sys::PG_CATALOG_NAMESPACE),
            ) != pg_sys::InvalidOid
    }
}

/// The relation a RangeVar names, or InvalidOid.
///
/// # Safety
/// `rv` is a valid RangeVar.
unsafe fn range_var_relid(rv: *mut pg_sys::RangeVar) -> pg_sys::Oid {
    // SAFETY: missing_ok lookup without a lock; the statement itself takes its locks.
    unsafe {
        pg_sys::RangeVarGetRelidExtended(
            rv,
            pg_sys::NoLock as i32,
            pg_sys::RVROption::RVR_MISSING_OK,
            None,
            std::ptr::null_mut(),
        )
    }
}

/// Whether `relid` is a distributed or reference table (a cached lookup).
fn is_distributed(relid: pg_sys::Oid) -> TResult<bool> {
    Ok(relid != pg_sys::InvalidOid && crate::metadata::cache::lookup(relid)?.is_some())
}

/// The distributed or reference table a RangeVar names, if it names one.
///
/// # Safety
/// `rv` is null or a valid RangeVar.
unsafe fn distributed_range_var(rv: *mut pg_sys::RangeVar) -> TResult<Option<pg_sys::Oid>> {
    if rv.is_null() {
        return Ok(None);
    }
    // SAFETY: forwarded.
    let relid = unsafe { range_var_relid(rv) };
    Ok(is_distributed(relid)?.then_some(relid))
}

/// The distributed table an index (named by a RangeVar) belongs to, if it belongs to one.
///
/// # Safety
/// `rv` is null or a valid RangeVar.
unsafe fn distributed_index_table(rv: *mut pg_sys::RangeVar) -> TResult<Option<pg_sys::Oid>> {
    if rv.is_null() {
        return Ok(None);
    }
    // SAFETY: missing_ok lookups.
    let table = unsafe {
        let index = range_var_relid(rv);
        if index == pg_sys::InvalidOid {
            return Ok(None);
        }
        pg_sys::IndexGetRelation(index, true)
    };
    Ok(is_distributed(table)?.then_some(table))
}

fn refused(what: &str, relid: pg_sys::Oid, hint: &str) -> TesseraError {
    let (schema, name) = rel_schema_and_name(relid);
    TesseraError::new(
        PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
        format!(
            "{what} is not supported on the distributed table {}.{} yet",
            quote_identifier(schema),
            quote_identifier(name)
        ),
    )
    .hint(hint)
}

/// The commands `commands` makes (after the local statement) on every active primary worker,
/// in the remote transaction; nothing when it makes none.
fn on_every_worker(commands: impl FnOnce() -> TResult<Vec<String>> + 'static) -> Step {
    Step::Propagate(Box::new(move || {
        let commands = commands()?;
        if commands.is_empty() {
            return Ok(());
        }
        let mut per_group = PerGroup::new();
        for n in nodes::all()?
            .iter()
            .filter(|n| n.isactive && n.noderole == "primary" && !n.is_coordinator())
        {
            let cmds = per_group.entry(n.groupid).or_default();
            cmds.extend(commands.iter().map(|sql| (sql.clone(), Vec::new())));
        }
        run_batched(per_group)
    }))
}

/// `sql_for(qualified shard)` for every shard of each table of `relids` (after the local
/// statement), on every node that holds a placement of it, batched per node, in the remote
/// transaction.
fn on_each_shard(relids: Vec<pg_sys::Oid>, sql_for: impl Fn(&str) -> String + 'static) -> Step {
    Step::Propagate(Box::new(move || {
        let mut per_group = PerGroup::new();
        for relid in relids {
            let (schema, table) = rel_schema_and_name(relid);
            propagate::push_per_placement(&mut per_group, relid, &schema, &table, &sql_for)?;
        }
        run_batched(per_group)
    }))
}

/// Runs the commands, batched into one command string per node (one round trip each), in
/// the remote transaction.
fn run_batched(per_group: PerGroup) -> TResult<()> {
    let all = nodes::all()?;
    let batched: PerGroup = per_group
        .into_iter()
        .map(|(g, cmds)| {
            if g == tessera_core::node::COORDINATOR_GROUP_ID {
                (g, cmds)
            } else {
                let sql = cmds
                    .into_iter()
                    .map(|(s, _)| s)
                    .collect::<Vec<_>>()
                    .join(";\n");
                (g, vec![(sql, Vec::new())])
            }
        })
        .collect();
    run_per_group(batched, &all)
}

/// What Tessera does after a statement on a distributed table ran locally: carry it to the
/// nodes.
struct Work(Finish);

thread_local! {
    /// The staged rows' way into the distributed table, after a COPY rewritten to fill a
    /// staging table ran (see [`copy::copy_from_via_table`]), by the rewritten statement: a
    /// statement a default or WHERE function runs during the COPY has its own. Kept here, not
    /// in the hook's frame, which an error in the COPY unwinds through; what such an error
    /// left is dropped when the transaction ends.
    static PENDING_COPY: std::cell::RefCell<Vec<(usize, copy::CopyFinish)>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Forgets, at the end of the transaction, the staged rows' ways an aborted COPY left behind
/// (one caught by a savepoint included).
#[pg_guard]
unsafe extern "C-unwind" fn forget_pending_copies(
    event: pg_sys::XactEvent::Type,
    _arg: *mut std::ffi::c_void,
) {
    if matches!(
        event,
        pg_sys::XactEvent::XACT_EVENT_ABORT
            | pg_sys::XactEvent::XACT_EVENT_PARALLEL_ABORT
            | pg_sys::XactEvent::XACT_EVENT_COMMIT
            | pg_sys::XactEvent::XACT_EVENT_PARALLEL_COMMIT
            | pg_sys::XactEvent::XACT_EVENT_PREPARE
    ) {
        PENDING_COPY.with(|p| {
            if let Ok(mut p) = p.try_borrow_mut() {
                p.clear();
            }
        });
        copy_from::forget(None);
    }
}

/// Forgets the streaming COPYs an error ended inside a subtransaction that rolls back.
#[pg_guard]
unsafe extern "C-unwind" fn forget_aborted_copies(
    event: pg_sys::SubXactEvent::Type,
    my: pg_sys::SubTransactionId,
    _parent: pg_sys::SubTransactionId,
    _arg: *mut std::ffi::c_void,
) {
    if event == pg_sys::SubXactEvent::SUBXACT_EVENT_ABORT_SUB {
        copy_from::forget(Some(my));
    }
}

/// [`decide`]'s answer: the statement to run (rewritten for COPY on a distributed table) and
/// Tessera's work around it (null: none; `copy`: the staged rows wait in [`PENDING_COPY`]).
/// Plain values, so that the hook's own frame holds nothing to drop.
#[repr(C)]
#[derive(Clone, Copy)]
struct Decision {
    pstmt: *mut pg_sys::PlannedStmt,
    work: *mut Work,
    copy: bool,
    /// A `COPY dist FROM` that streams to the shards ([`copy_from::run`]).
    stream: bool,
}

#[pg_guard]
unsafe extern "C-unwind" fn decide(
    pstmt: *mut pg_sys::PlannedStmt,
    query_string: *const c_char,
    context: pg_sys::ProcessUtilityContext::Type,
) -> Decision {
    let installed = tessera_installed() && LOCAL_UTILITY.with(|d| d.get()) == 0;
    if !installed {
        return Decision {
            pstmt,
            work: std::ptr::null_mut(),
            copy: false,
            stream: false,
        };
    }
    // SAFETY: arguments come from PostgreSQL.
    let pstmt = unsafe { copy::copy_to_as_query(pstmt) }.or_report();
    // SAFETY: as above.
    if unsafe { copy_from::streaming(pstmt) }.or_report() {
        return Decision {
            pstmt,
            work: std::ptr::null_mut(),
            copy: false,
            stream: true,
        };
    }
    // SAFETY: as above.
    let (pstmt, copy_finish) = unsafe { copy::copy_from_via_table(pstmt) }.or_report();
    if let Some(finish) = copy_finish {
        PENDING_COPY.with(|p| p.borrow_mut().push((pstmt as usize, finish)));
        return Decision {
            pstmt,
            work: std::ptr::null_mut(),
            copy: true,
            stream: false,
        };
    }
    // SAFETY: pstmt is a valid PlannedStmt; its utility statement a valid node (or null).
    let stmt = unsafe { (*pstmt).utilityStmt };
    let step = match (!stmt.is_null())
        // SAFETY: reading the node's tag.
        .then(|| handler_for(unsafe { (*stmt).type_ }))
        .flatten()
    {
        Some(handler) => {
            let u = Utility {
                pstmt,
                query_string,
                stmt,
                toplevel: context == pg_sys::ProcessUtilityContext::PROCESS_UTILITY_TOPLEVEL,
            };
            // SAFETY: the handler is the one of this statement's tag.
            unsafe { handler(&u) }.or_report()
        }
        None => Step::Pass,
    };
    let work = match step {
        Step::Pass => std::ptr::null_mut(),
        Step::Propagate(finish) => Box::into_raw(Box::new(Work(finish))),
    };
    Decision {
        pstmt,
        work,
        copy: false,
        stream: false,
    }
}

/// After the COPY `pstmt` into a staging table ran: its rows into the distributed table.
#[pg_guard]
unsafe extern "C-unwind" fn after_copy(pstmt: *mut pg_sys::PlannedStmt) {
    let finish = PENDING_COPY.with(|p| {
        let mut p = p.borrow_mut();
        let at = p.iter().rposition(|(s, _)| *s == pstmt as usize)?;
        Some(p.remove(at).1)
    });
    if let Some(finish) = finish {
        finish().or_report();
    }
}

/// Runs the statement, then Tessera's work around it.
#[allow(clippy::too_many_arguments)]
#[pg_guard]
unsafe extern "C-unwind" fn run_with_work(
    work: *mut Work,
    pstmt: *mut pg_sys::PlannedStmt,
    query_string: *const c_char,
    read_only_tree: bool,
    context: pg_sys::ProcessUtilityContext::Type,
    params: pg_sys::ParamListInfo,
    query_env: *mut pg_sys::QueryEnvironment,
    dest: *mut pg_sys::DestReceiver,
    qc: *mut pg_sys::QueryCompletion,
) {
    // SAFETY: `decide` made it with Box::into_raw; it is taken back once.
    let work = unsafe { Box::from_raw(work) };
    // SAFETY: called by PostgreSQL with valid arguments; passed on unchanged.
    let run_locally = || unsafe {
        match PREV_PROCESS_UTILITY_HOOK {
            Some(prev) => pg_guard_ffi_boundary(|| {
                prev(
                    pstmt,
                    query_string,
                    read_only_tree,
                    context,
                    params,
                    query_env,
                    dest,
                    qc,
                )
            }),
            None => pg_sys::standard_ProcessUtility(
                pstmt,
                query_string,
                read_only_tree,
                context,
                params,
                query_env,
                dest,
                qc,
            ),
        }
    };
    // The local part of a statement on a distributed table touches only the coordinator's own
    // (empty) tables: PostgreSQL's internal queries must not be distributed.
    crate::planner::local_only(run_locally);
    (work.0)().or_report();
}

unsafe extern "C-unwind" {
    /// PostgreSQL's `standard_ProcessUtility`, declared here without pgrx's error boundary
    /// (which every `pg_sys` function has) for [`tessera_process_utility`]'s pass-through.
    #[link_name = "standard_ProcessUtility"]
    fn standard_process_utility_unguarded(
        pstmt: *mut pg_sys::PlannedStmt,
        query_string: *const c_char,
        read_only_tree: bool,
        context: pg_sys::ProcessUtilityContext::Type,
        params: pg_sys::ParamListInfo,
        query_env: *mut pg_sys::QueryEnvironment,
        dest: *mut pg_sys::DestReceiver,
        qc: *mut pg_sys::QueryCompletion,
    );
}

/// The ProcessUtility hook. Not a guarded Rust function itself: when Tessera has nothing to
/// do with the statement, it is passed on from here, so that PostgreSQL's errors come back
/// to the client as they were raised, their CONTEXT lines included (a COPY's line and column,
/// a PL/pgSQL block's line), which pgrx's error boundary drops. This frame holds no value that
/// needs dropping, so an error may unwind through it.
#[allow(clippy::too_many_arguments)]
unsafe extern "C-unwind" fn tessera_process_utility(
    pstmt: *mut pg_sys::PlannedStmt,
    query_string: *const c_char,
    read_only_tree: bool,
    context: pg_sys::ProcessUtilityContext::Type,
    params: pg_sys::ParamListInfo,
    query_env: *mut pg_sys::QueryEnvironment,
    dest: *mut pg_sys::DestReceiver,
    qc: *mut pg_sys::QueryCompletion,
) {
    // SAFETY: called by PostgreSQL with valid arguments.
    unsafe {
        let d = decide(pstmt, query_string, context);
        if d.stream {
            return copy_from::run(d.pstmt, query_string, qc);
        }
        if !d.work.is_null() {
            return run_with_work(
                d.work,
                d.pstmt,
                query_string,
                read_only_tree,
                context,
                params,
                query_env,
                dest,
                qc,
            );
        }
        // A COPY into a staging table runs here too, so that its errors keep their line and
        // column.
        match PREV_PROCESS_UTILITY_HOOK {
            Some(prev) => prev(
                d.pstmt,
                query_string,
                read_only_tree,
                context,
                params,
                query_env,
                dest,
                qc,
            ),
            None => standard_process_utility_unguarded(
                d.pstmt,
                query_string,
                read_only_tree,
                context,
                params,
                query_env,
                dest,
                qc,
            ),
        }
        if d.copy {
            after_copy(d.pstmt);
        }
    }
}
