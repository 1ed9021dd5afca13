//! The state of the remote transactions that follow the local one: which connections are in
//! a transaction block on their node, whether each may have written there, which of the local
//! transaction's savepoints each node has, and the savepoint commands a node still needs.
//!
//! The connection layer asks for a task's connection through [`RemoteTransactions`]
//! (registered at load), so the state lives here alone; [`super`]'s transaction callbacks read
//! it at commit and clear it at abort. Nothing here allocates with palloc or raises an error,
//! so the abort paths (of the transaction and of a subtransaction) can use it.
//!
//! Savepoints follow lazily: a node gets `SAVEPOINT` for each open local savepoint before its
//! next command (so a node first used inside a savepoint has it too), and a savepoint
//! released or rolled back locally is released or rolled back on each node that has it
//! before that node's next command (or its COMMIT). No network traffic happens in the
//! subtransaction callbacks.

use std::cell::RefCell;

use crate::connection::{ConnKey, Connection, RemoteTransactions};

/// One node's remote transaction block (BEGIN sent).
struct InBlock {
    key: ConnKey,
    /// Out while a task uses it (None); a task that ends with a broken connection never
    /// brings it back, and the transaction then cannot commit.
    conn: Option<Connection>,
    /// A task brought the connection back at least once. A block is recorded when its first
    /// task takes the connection (so that a savepoint rolled back while that task still runs
    /// is rolled back on the node too); if that task loses the connection, the node has
    /// nothing of the transaction and the record goes ([`RemoteTransactions::lost`]).
    kept: bool,
    /// A task that may change rows ran here.
    wrote: bool,
    /// The local savepoints (subtransaction ids) this node has, outermost first.
    savepoints: Vec<u32>,
    /// Savepoint commands to send before the node's next command.
    pending: String,
}

#[derive(Default)]
struct RemoteXact {
    conns: Vec<InBlock>,
    /// The open local subtransactions, outermost first.
    savepoints: Vec<u32>,
}

thread_local! {
    static XACT: RefCell<RemoteXact> = RefCell::new(RemoteXact::default());
}

fn savepoint_name(sub: u32) -> String {
    format!("tessera_sp_{sub}")
}

/// The transaction layer as the connection layer sees it.
pub(super) struct Remote;

impl RemoteTransactions for Remote {
    fn enter(&self, key: &ConnKey) -> Result<(Option<Connection>, Option<String>), String> {
        XACT.with(|x| {
            let mut x = x.borrow_mut();
            let open = x.savepoints.clone();
            match x.conns.iter_mut().find(|c| &c.key == key) {
                // One task at a time uses a node's connection: one that is not back was lost
                // with a task that failed, and the node rolled its part back.
                Some(c) if c.conn.is_none() => Err(
                    "the connection to this node was lost earlier in the transaction (or is still in use by another of its commands), and with it the transaction's changes there: roll back and run the transaction again"
                        .to_string(),
                ),
                Some(c) => {
                    let mut pre = std::mem::take(&mut c.pending);
                    for &s in open.iter().skip(c.savepoints.len()) {
                        pre.push_str(&format!("SAVEPOINT {};", savepoint_name(s)));
                    }
                    c.savepoints = open;
                    let conn = c.conn.take();
                    Ok((conn, (!pre.is_empty()).then_some(pre)))
                }
                None => {
                    let mut pre = format!("{};", super::begin_command());
                    for &s in &open {
                        pre.push_str(&format!("SAVEPOINT {};", savepoint_name(s)));
                    }
                    x.conns.push(InBlock {
                        key: key.clone(),
                        conn: None,
                        kept: false,
                        wrote: false,
                        // The preamble makes them.
                        savepoints: open,
                        pending: String::new(),
                    });
                    Ok((None, Some(pre)))
                }
            }
        })
    }

    fn keep(&self, key: ConnKey, conn: Connection, wrote: bool) {
        XACT.with(|x| {
            let mut x = x.borrow_mut();
            let open = x.savepoints.clone();
            match x.conns.iter_mut().find(|c| c.key == key) {
                Some(c) => {
                    c.conn = Some(conn);
                    c.kept = true;
                    c.wrote |= wrote;
                }
                None => x.conns.push(InBlock {
                    key,
                    conn: Some(conn),
                    kept: true,
                    wrote,
                    // The preamble that opened the block made them.
                    savepoints: open,
                    pending: String::new(),
                }),
            }
        })
    }

    fn lost(&self, key: &ConnKey) {
        XACT.with(|x| {
            if let Ok(mut x) = x.try_borrow_mut() {
                x.conns
                    .retain(|c| &c.key != key || c.kept || c.conn.is_some());
            }
        })
    }
}

/// Whether any node has a remote transaction open.
pub fn has_remote_work() -> bool {
    XACT.with(|x| !x.borrow().conns.is_empty()) || crate::connection::has_parked()
}

/// One node's remote transaction, as the commit sees it.
pub(super) struct Open {
    pub key: ConnKey,
    pub wrote: bool,
    /// Its connection is back (not lost with a task that failed).
    pub usable: bool,
}

/// The open remote transactions.
pub(super) fn open() -> Vec<Open> {
    XACT.with(|x| {
        x.borrow()
            .conns
            .iter()
            .map(|c| Open {
                key: c.key.clone(),
                wrote: c.wrote,
                usable: c.conn.is_some(),
            })
            .collect()
    })
}

/// Forgets every remote transaction, closing its connection: the nodes roll back (a prepared
/// one stays, for its COMMIT PREPARED or recovery). Safe in abort (no palloc, no error; a
/// re-entered borrow leaves the state for the next call).
pub(super) fn close_all() {
    XACT.with(|x| {
        if let Ok(mut x) = x.try_borrow_mut() {
            x.conns.clear();
            x.savepoints.clear();
        }
    });
}

/// A subtransaction starts.
pub(super) fn savepoint_start(sub: u32) {
    XACT.with(|x| {
        if let Ok(mut x) = x.try_borrow_mut() {
            x.savepoints.push(sub);
        }
    });
}

/// A subtransaction ends: committed (its work becomes the parent's: RELEASE on the nodes that
/// have it) or rolled back (ROLLBACK TO, then RELEASE, on the nodes that have it).
pub(super) fn savepoint_end(sub: u32, committed: bool) {
    XACT.with(|x| {
        if let Ok(mut x) = x.try_borrow_mut() {
            if let Some(at) = x.savepoints.iter().position(|s| *s == sub) {
                x.savepoints.truncate(at);
            }
            let name = savepoint_name(sub);
            for c in &mut x.conns {
                let Some(at) = c.savepoints.iter().position(|s| *s == sub) else {
                    continue;
                };
                c.savepoints.truncate(at);
                if !committed {
                    c.pending.push_str("ROLLBACK TO SAVEPOINT ");
                    c.pending.push_str(&name);
                    c.pending.push(';');
                }
                c.pending.push_str("RELEASE SAVEPOINT ");
                c.pending.push_str(&name);
                c.pending.push(';');
            }
        }
    });
}
