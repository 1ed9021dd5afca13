//! Connections to other nodes: the only code in Tessera that touches libpq.
//!
//! Data flow: a caller builds [`RemoteTask`]s (a node and a command with text parameters) and
//! hands them to [`dispatch::run_tasks`]. Each task takes an idle connection for its node from
//! the per-backend [`cache`], or opens one with `PQconnectStartParams`; every connection is
//! non-blocking, and one loop drives all of them at once, sleeping in PostgreSQL's
//! WaitEventSet ([`wait`]) on their sockets and the process latch, so a query cancel,
//! `statement_timeout` or shutdown interrupts the wait. Work still running on a node when the
//! caller errors out is cancelled on that node (the connection's `Drop`). Finished connections
//! go back to the cache for the next statement.
//!
//! Connection parameters come from the node's address, the current database and user, and the
//! `citus.node_conninfo` setting; passwords never appear in a message.

pub mod cache;
pub mod dispatch;
pub mod libpq;
mod wait;

use std::fmt;

use pgrx::pg_sys;
use pgrx::PgSqlErrorCode;
use tessera_core::conninfo::{self, ConnParams};

use crate::error::{sqlstate_from_str, TesseraError};
use crate::gucs;

pub use dispatch::{
    forget_parked, has_parked, park, run_tasks, settle_parked, Dispatch, RemoteTask, TaskResult,
};
pub use libpq::{Connection, PgResult};

/// Where a task's connection comes from and goes back to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Autocommit on a cached connection.
    Autocommit,
    /// Inside the remote transaction that follows the local one (the transaction layer's).
    Transaction,
}

/// The transaction layer's side of tasks in [`Scope::Transaction`]. It holds the connections
/// that are in a remote transaction block and registers itself at load
/// ([`register_remote_transactions`]); this layer only asks it for a task's connection and
/// hands the connection back, so the arrow points one way (transaction → connection).
pub trait RemoteTransactions: Sync {
    /// A task runs in the remote transaction of `key`'s node: the connection already in a
    /// transaction block there with the commands it needs first (savepoints made, released
    /// or rolled back since), or None with the commands that open the block (BEGIN with the
    /// transaction's isolation level, and its open savepoints), which the task sends before
    /// its own unless its command ends the transaction.
    /// Err: the node's connection was lost earlier in the transaction (the message says so).
    fn enter(&self, key: &ConnKey) -> Result<(Option<Connection>, Option<String>), String>;
    /// The task is done (even after an error): its connection stays in the remote transaction
    /// until the local one ends. `wrote`: the task may have changed rows there.
    fn keep(&self, key: ConnKey, conn: Connection, wrote: bool);
    /// The task's connection is gone (it broke, or the task was dropped while it ran). If
    /// it was the first task on that node in the transaction, the node has nothing of the
    /// transaction. No palloc, no error: called while unwinding and in abort too.
    fn lost(&self, key: &ConnKey);
}

static REMOTE_TRANSACTIONS: std::sync::OnceLock<&'static dyn RemoteTransactions> =
    std::sync::OnceLock::new();

/// Registers the transaction layer (once, at load).
pub fn register_remote_transactions(r: &'static dyn RemoteTransactions) {
    let _ = REMOTE_TRANSACTIONS.set(r);
}

fn remote_transactions() -> &'static dyn RemoteTransactions {
    *REMOTE_TRANSACTIONS
        .get()
        .expect("the transaction layer registers itself in _PG_init")
}

/// The address of a node: what `pg_dist_node` says about where to reach it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NodeAddress {
    pub host: String,
    pub port: i32,
}

impl fmt::Display for NodeAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Which cached connections may serve a task: same node, database and user, and lane.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ConnKey {
    pub node: NodeAddress,
    pub dbname: std::rc::Rc<str>,
    pub user: std::rc::Rc<str>,
    /// 0: the session's connection to the node (and its remote transaction). Another lane is
    /// one more connection to the same node, with a remote transaction of its own that the
    /// local transaction commits with the others (two-phase), for work that runs side by side
    /// on one node (shard index builds). Such connections are closed after use, not cached.
    pub lane: u16,
}

impl ConnKey {
    /// The key for a connection to `node` as the current user, in the current database.
    pub fn for_current_session(node: &NodeAddress) -> ConnKey {
        let (dbname, user) = session_names();
        ConnKey {
            node: node.clone(),
            dbname,
            user,
            lane: 0,
        }
    }

    /// The same key in another lane (see [`ConnKey::lane`]).
    pub fn in_lane(mut self, lane: u16) -> ConnKey {
        self.lane = lane;
        self
    }

    /// The libpq parameters for a new connection with this key.
    pub fn params(&self) -> Result<ConnParams, TesseraError> {
        let extra = libpq::parse_conninfo(&gucs::node_conninfo())
            .and_then(|pairs| conninfo::validate_extra(pairs).map_err(|e| e.0))
            .map_err(|e| {
                TesseraError::new(
                    PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                    format!("invalid citus.node_conninfo: {e}"),
                )
                .hint("Fix citus.node_conninfo in postgresql.conf and reload the configuration.")
            })?;
        Ok(ConnParams::new(
            &self.node.host,
            self.node.port,
            &self.dbname,
            &self.user,
            &extra,
            gucs::node_connection_timeout_ms(),
        )
        // The node's backend is known as this one's (distributed deadlock detection).
        // SAFETY: reading this process's pid.
        .with_application_name(&tessera_core::deadlock::application_name(unsafe {
            pg_sys::MyProcPid
        })))
    }
}

/// (user OID, database name, user name).
type SessionNames = (pg_sys::Oid, std::rc::Rc<str>, std::rc::Rc<str>);

unsafe extern "C" {
    /// PostgreSQL's `bytea_output` setting (varlena.c), not in pgrx's bindings.
    static bytea_output: std::ffi::c_int;
}

thread_local! {
    /// Recently made [`Settings::shared`], by the settings' values.
    static SHARED_SETTINGS: std::cell::RefCell<Vec<([i64; 8], std::rc::Rc<Settings>)>> =
        const { std::cell::RefCell::new(Vec::new()) };
    /// The current user's OID, the database's name and the user's name: looked up once per
    /// user, not once per task (a role rename clears it, see [`init`]).
    static SESSION_NAMES: std::cell::RefCell<Option<SessionNames>> =
        const { std::cell::RefCell::new(None) };
}

/// The names connections to the nodes are opened with: this database, the current user.
fn session_names() -> (std::rc::Rc<str>, std::rc::Rc<str>) {
    // SAFETY: GetUserId is valid in a backend running SQL.
    let uid = unsafe { pg_sys::GetUserId() };
    SESSION_NAMES.with(|c| {
        if let Some((u, d, n)) = c.borrow().as_ref() {
            if *u == uid {
                return (d.clone(), n.clone());
            }
        }
        let names: (std::rc::Rc<str>, std::rc::Rc<str>) =
            (current_database().into(), current_user().into());
        *c.borrow_mut() = Some((uid, names.0.clone(), names.1.clone()));
        names
    })
}

/// Forgets the cached role name when any role changes (ALTER ROLE ... RENAME).
#[pgrx::pg_guard]
unsafe extern "C-unwind" fn roles_changed(_arg: pg_sys::Datum, _cache: i32, _hash: u32) {
    SESSION_NAMES.with(|c| {
        if let Ok(mut c) = c.try_borrow_mut() {
            *c = None;
        }
    });
}

/// Registers the syscache callback that keeps [`session_names`] right.
pub fn init() {
    // SAFETY: _PG_init, once per process; the callback lives as long as the library.
    unsafe {
        pg_sys::CacheRegisterSyscacheCallback(
            pg_sys::SysCacheIdentifier::AUTHOID as i32,
            Some(roles_changed),
            pg_sys::Datum::from(0),
        );
    }
}

fn current_database() -> String {
    // SAFETY: MyDatabaseId is set for any backend that runs SQL; get_database_name returns a
    // palloc'd copy or NULL.
    unsafe {
        let p = pg_sys::get_database_name(pg_sys::MyDatabaseId);
        if p.is_null() {
            String::new()
        } else {
            std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned()
        }
    }
}

fn current_user() -> String {
    // SAFETY: GetUserId is valid in a backend running SQL; with noerr = false the name exists.
    unsafe {
        let p = pg_sys::GetUserNameFromId(pg_sys::GetUserId(), false);
        std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned()
    }
}

/// The settings of the coordinator's session that change what a statement means on a node. A
/// node's session gets them before it runs a task, whenever they differ from what that
/// connection last got:
///
/// - `TimeZone` and the input order of `DateStyle` (`DMY`, `MDY`, `YMD`): `ts::date` and
///   `'02/01/2026'` read from a text column mean the same on the node as on the coordinator;
/// - `IntervalStyle`, `bytea_output`: the node prints and reads them as the session does;
/// - the output style of `DateStyle` is `ISO` on the node, so that values travel back in a form
///   the coordinator reads exactly (the SQL, German and Postgres styles print time zone
///   abbreviations, which read back as other zones), except for a statement that prints dates
///   or times as text on the node (`d::text`) and returns no time zone: that one gets the
///   session's style;
/// - `extra_float_digits` is 3 on the node, so floating-point values travel exactly (the
///   coordinator's own setting applies when it prints them), except for a statement that
///   prints floats as text on the node (`x::text`): that one gets the session's setting.
///
/// Settings of a custom class (a dot in the name: `app.tenant_id`, `hnsw.ef_search`) that the
/// session set (SET, SET LOCAL, set_config) follow too, so that a row-level security policy
/// or a function that reads `current_setting('app.tenant_id')` on a shard reads the session's
/// value: those the session chose (SET, its connection options, the database's and the role's
/// defaults) and any role may set; one it no longer chooses gets the coordinator's value.
/// So do the settings named in `tessera.propagate_settings` (pgvector's, `statement_timeout`,
/// `lock_timeout`, `work_mem`), which get the node's default back when the session no longer
/// chooses them, and a statement's own settings for its shard queries (`enable_sort` off for
/// a nearest-neighbour search), which last for that statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub date_style: String,
    pub interval_style: String,
    pub time_zone: String,
    pub extra_float_digits: String,
    pub bytea_output: String,
    /// The session's settings that follow (of a custom class, or listed in
    /// `tessera.propagate_settings`), with the statement's own settings for its shard queries
    /// in place of the session's (`enable_sort` off for a nearest-neighbour query), by name.
    pub custom: Vec<(String, String)>,
    /// The names in `custom` that are the statement's own, not the session's: when a later
    /// statement does not set them, the node gets its own default back.
    pub own: Vec<String>,
}

impl Settings {
    /// The command that sets them on a node that has `have` (`is_local` false: for the
    /// session; a remote transaction that rolls back closes its connection, and a `ROLLBACK
    /// TO SAVEPOINT` makes the connection forget what it has, so a setting undone on the node
    /// is set again), with its text parameters.
    pub fn command(&self, have: Option<&Settings>) -> (String, Vec<Option<String>>) {
        let mut sql = String::from(
            "SELECT pg_catalog.set_config('datestyle', $1, false), \
             pg_catalog.set_config('intervalstyle', $2, false), \
             pg_catalog.set_config('timezone', $3, false), \
             pg_catalog.set_config('extra_float_digits', $4, false), \
             pg_catalog.set_config('bytea_output', $5, false)",
        );
        let mut values = vec![
            Some(self.date_style.clone()),
            Some(self.interval_style.clone()),
            Some(self.time_zone.clone()),
            Some(self.extra_float_digits.clone()),
            Some(self.bytea_output.clone()),
        ];
        // A custom setting the session no longer chooses gets the coordinator's value now (its
        // reset value: a valid one, where an empty string may not be); a placeholder the
        // coordinator has no value for is reset on the node (set_config with NULL), where the
        // library that defines it may be loaded and refuse an empty string. A setting of
        // PostgreSQL's own (`work_mem`, a statement's `enable_sort`) gets the node's default.
        let dropped = have
            .map(|h| {
                h.custom
                    .iter()
                    .filter(|(n, _)| !self.custom.iter().any(|(m, _)| m == n))
                    .filter_map(|(n, _)| {
                        if !n.contains('.') || h.own.contains(n) {
                            return Some((n.clone(), None));
                        }
                        let c = std::ffi::CString::new(n.as_str()).ok()?;
                        // SAFETY: a lookup by name (missing_ok); the value is copied at once.
                        let v = unsafe { pg_sys::GetConfigOption(c.as_ptr(), true, false) };
                        let v = if v.is_null() {
                            None
                        } else {
                            // SAFETY: a NUL-terminated string GetConfigOption returned.
                            Some(
                                unsafe { std::ffi::CStr::from_ptr(v) }
                                    .to_string_lossy()
                                    .into_owned(),
                            )
                            .filter(|v| !v.is_empty())
                        };
                        Some((n.clone(), v))
                    })
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        let chosen = self.custom.iter().map(|(n, v)| (n, Some(v.clone())));
        for (name, value) in chosen.chain(dropped.iter().map(|(n, v)| (n, v.clone()))) {
            let k = values.len();
            sql.push_str(&format!(
                ", pg_catalog.set_config(${}, ${}, false)",
                k + 1,
                k + 2
            ));
            values.push(Some(name.clone()));
            values.push(value);
        }
        (sql, values)
    }

    /// [`Settings::for_statement`], shared: made again only when one of the settings changed
    /// (their C variables are compared, and the time zone by its pointer), so a statement costs
    /// a few integer compares instead of five settings printed as text.
    pub fn shared(
        session_date_style: bool,
        prints_floats: bool,
        for_task: &[(&str, String)],
    ) -> std::rc::Rc<Settings> {
        let custom = with_task_settings(custom_settings(), for_task);
        // SAFETY: reading the settings' C variables.
        let key = unsafe {
            [
                pg_sys::DateStyle as i64,
                pg_sys::DateOrder as i64,
                pg_sys::IntervalStyle as i64,
                pg_sys::extra_float_digits as i64,
                bytea_output as i64,
                pg_sys::session_timezone as usize as i64,
                i64::from(session_date_style),
                i64::from(prints_floats),
            ]
        };
        SHARED_SETTINGS.with(|c| {
            let mut c = c.borrow_mut();
            let own = own_names(for_task);
            if let Some((_, s)) = c
                .iter()
                .find(|(k, s)| *k == key && s.custom == custom && s.own == own)
            {
                return s.clone();
            }
            let s = std::rc::Rc::new(Settings::with(
                session_date_style,
                prints_floats,
                custom,
                own,
            ));
            if c.len() >= 8 {
                c.remove(0);
            }
            c.push((key, s.clone()));
            s
        })
    }

    /// For a statement's tasks: with the session's DateStyle output, and its
    /// extra_float_digits, only when the statement prints such values as text on the node;
    /// `for_task` in place of the session's values.
    pub fn for_statement(
        session_date_style: bool,
        prints_floats: bool,
        for_task: &[(&str, String)],
    ) -> Settings {
        Settings::with(
            session_date_style,
            prints_floats,
            with_task_settings(custom_settings(), for_task),
            own_names(for_task),
        )
    }

    /// [`Settings::for_statement`] with its custom settings and their own names found already.
    fn with(
        session_date_style: bool,
        prints_floats: bool,
        custom: Vec<(String, String)>,
        own: Vec<String>,
    ) -> Settings {
        let date_style = guc_value(c"DateStyle");
        Settings {
            date_style: if session_date_style {
                date_style
            } else {
                iso_with_order(&date_style)
            },
            interval_style: guc_value(c"IntervalStyle"),
            time_zone: guc_value(c"TimeZone"),
            extra_float_digits: if prints_floats {
                guc_value(c"extra_float_digits")
            } else {
                "3".into()
            },
            bytea_output: guc_value(c"bytea_output"),
            custom,
            own,
        }
    }

    /// The session's own: for commands whose text the node reads as the session would (DDL:
    /// `DEFAULT '02/01/2026'`), and that return no values.
    pub fn session() -> Settings {
        Settings::for_statement(true, true, &[])
    }
}

/// The session's value of `name` when the session chose it (SET, SET LOCAL, its connection's
/// options, the role's or database's default) and it follows to the nodes.
pub fn session_setting(name: &str) -> Option<String> {
    custom_settings()
        .into_iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

/// The names of a statement's own settings.
fn own_names(for_task: &[(&str, String)]) -> Vec<String> {
    for_task.iter().map(|(n, _)| n.to_string()).collect()
}

/// The session's settings with a statement's own in place of (or added to) them, by name.
fn with_task_settings(
    mut session: Vec<(String, String)>,
    for_task: &[(&str, String)],
) -> Vec<(String, String)> {
    if for_task.is_empty() {
        return session;
    }
    session.retain(|(n, _)| !for_task.iter().any(|(t, _)| n.eq_ignore_ascii_case(t)));
    session.extend(for_task.iter().map(|(n, v)| (n.to_string(), v.clone())));
    session.sort();
    session
}

/// The settings that follow the session to the nodes, by name, with the session's value: those
/// of a custom class (a dot in the name) except Tessera's own (`citus.*`, `tessera.*`, which
/// are the coordinator's), and those named in `tessera.propagate_settings`; each only when this
/// session chose it and any role may set it.
///
/// Only those variables are looked at, from a list of their positions in the GUC table kept
/// while the number of settings and the list stay the same (a new placeholder or an
/// extension's settings add to the table).
fn custom_settings() -> Vec<(String, String)> {
    let list = crate::gucs::propagate_settings_text();
    // SAFETY: the GUC table of this backend, read (not changed). Entries are read through the
    // table at each call, never kept: loading a library replaces a placeholder's entry with
    // the real variable (same name, same position) and frees the placeholder.
    unsafe {
        let count = pg_sys::GetNumConfigOptions();
        let vars = pg_sys::get_guc_variables();
        CUSTOM_GUCS.with(|c| {
            let mut c = c.borrow_mut();
            if c.0 != count || c.2 != list {
                let listed = crate::gucs::setting_names(&list);
                c.1 = (0..count as usize)
                    .filter(|&i| {
                        let g = *vars.add(i);
                        if g.is_null() {
                            return false;
                        }
                        let name = std::ffi::CStr::from_ptr((*g).name).to_bytes();
                        let custom = name.contains(&b'.')
                            && !name.starts_with(b"citus.")
                            && !name.starts_with(b"tessera.");
                        let listed = listed
                            .iter()
                            .any(|l| l.as_bytes().eq_ignore_ascii_case(name))
                            && !NEVER_PROPAGATED
                                .iter()
                                .any(|n| n.as_bytes().eq_ignore_ascii_case(name));
                        custom || listed
                    })
                    .map(|i| {
                        let name = std::ffi::CStr::from_ptr((**vars.add(i)).name);
                        (i, name.to_owned())
                    })
                    .collect();
                c.0 = count;
                c.2 = list;
            }
            let mut out = Vec::new();
            // A placeholder's real context is unknown until its library loads: inside a
            // SECURITY DEFINER function of a role the session's user is not a member of (a
            // superuser's, or one granted SET on a parameter), the nodes' connections run as
            // that role, so the session's placeholders stay behind. (SET ROLE to a role the
            // session's user belongs to is no such step up.)
            let (current, session) = (pg_sys::GetUserId(), pg_sys::GetSessionUserId());
            let elevated = current != session && !pg_sys::is_member_of_role(session, current);
            let mut stale = false;
            for (i, name) in &c.1 {
                let g = *vars.add(*i);
                // A removed placeholder (MarkGUCPrefixReserved) can shift the table under an
                // unchanged count: the position must still hold the same setting.
                if g.is_null() || std::ffi::CStr::from_ptr((*g).name) != name.as_c_str() {
                    // Found again on the next call.
                    stale = true;
                    continue;
                }
                if elevated && (*g).flags & pg_sys::GUC_CUSTOM_PLACEHOLDER as i32 != 0 {
                    continue;
                }
                // What this session chose (SET, the connection's options, the database's or
                // the role's defaults), not the server's configuration file; and only what any
                // role may set (a node's connection runs as the current user).
                if !SESSION_SOURCES.contains(&(*g).source)
                    || (*g).context != pg_sys::GucContext::PGC_USERSET
                {
                    continue;
                }
                let value = pg_sys::GetConfigOption((*g).name, true, false);
                if value.is_null() {
                    continue;
                }
                out.push((
                    std::ffi::CStr::from_ptr((*g).name)
                        .to_string_lossy()
                        .into_owned(),
                    std::ffi::CStr::from_ptr(value)
                        .to_string_lossy()
                        .into_owned(),
                ));
            }
            if stale {
                c.0 = -1;
            }
            out.sort();
            out
        })
    }
}

/// Settings `tessera.propagate_settings` cannot name: those every task sets itself (a value the
/// coordinator reads back depends on them), and those that change what a node's session is
/// (its role, its encoding, how it reads the statement's text, its transactions).
const NEVER_PROPAGATED: [&str; 20] = [
    "datestyle",
    "intervalstyle",
    "timezone",
    "extra_float_digits",
    "bytea_output",
    "client_encoding",
    "standard_conforming_strings",
    "search_path",
    "role",
    "session_authorization",
    "transaction_isolation",
    "transaction_read_only",
    "transaction_deferrable",
    "default_transaction_isolation",
    "default_transaction_read_only",
    "timezone_abbreviations",
    "array_nulls",
    "xmloption",
    "xmlbinary",
    "backslash_quote",
];

/// The sources of a setting that are the session's choice.
const SESSION_SOURCES: [pg_sys::GucSource::Type; 5] = [
    pg_sys::GucSource::PGC_S_DATABASE,
    pg_sys::GucSource::PGC_S_USER,
    pg_sys::GucSource::PGC_S_DATABASE_USER,
    pg_sys::GucSource::PGC_S_CLIENT,
    pg_sys::GucSource::PGC_S_SESSION,
];

thread_local! {
    /// (number of settings when made, the positions of the ones that follow among them, the
    /// `tessera.propagate_settings` text they were chosen by).
    #[allow(clippy::type_complexity)]
    static CUSTOM_GUCS: std::cell::RefCell<(std::ffi::c_int, Vec<(usize, std::ffi::CString)>, String)> =
        const { std::cell::RefCell::new((-1, Vec::new(), String::new())) };
}

/// `ISO` output with the input order of `style` (a `DateStyle` value such as `SQL, DMY`).
fn iso_with_order(style: &str) -> String {
    let order = style
        .split(',')
        .map(str::trim)
        .find(|p| matches!(p.to_ascii_uppercase().as_str(), "DMY" | "MDY" | "YMD"))
        .unwrap_or("MDY");
    format!("ISO, {order}")
}

fn guc_value(name: &std::ffi::CStr) -> String {
    // SAFETY: GetConfigOption returns the setting's current value as a C string that stays
    // valid until the setting changes; it is copied at once. These settings always exist.
    unsafe {
        let p = pg_sys::GetConfigOption(name.as_ptr(), false, false);
        if p.is_null() {
            String::new()
        } else {
            std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned()
        }
    }
}

/// An error that happened on, or on the way to, a node.
#[derive(Debug, Clone)]
pub struct RemoteError {
    pub node: NodeAddress,
    /// The worker's SQLSTATE (five ASCII characters), or 08xxx for connection failures.
    pub sqlstate: [u8; 5],
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
}

impl RemoteError {
    pub fn connection(node: &NodeAddress, message: impl Into<String>) -> RemoteError {
        RemoteError {
            node: node.clone(),
            sqlstate: *b"08001",
            message: conninfo::redact(message.into().trim_end()),
            detail: None,
            hint: None,
        }
    }

    pub fn connection_lost(node: &NodeAddress, message: impl Into<String>) -> RemoteError {
        RemoteError {
            sqlstate: *b"08006",
            ..RemoteError::connection(node, message)
        }
    }

    pub fn is_connection_error(&self) -> bool {
        self.sqlstate.starts_with(b"08")
    }

    pub fn sqlstate_str(&self) -> &str {
        std::str::from_utf8(&self.sqlstate).unwrap_or("XX000")
    }

    /// The error as the user sees it: the worker's words, with the node named.
    pub fn into_tessera(self) -> TesseraError {
        let mut e = TesseraError::new(sqlstate_from_str(self.sqlstate_str()), self.message.clone());
        if self.is_connection_error() {
            e.message = format!("could not connect to node {}: {}", self.node, self.message);
            e.hint = Some(format!(
                "Check that the node at {} is running and accepts connections, or disable it with citus_disable_node.",
                self.node
            ));
        } else {
            e.hint = self.hint;
        }
        let on_node = format!("while executing command on {}", self.node);
        e.detail = Some(match self.detail {
            Some(d) => format!("{d}\n{on_node}"),
            None => on_node,
        });
        e
    }
}
