//! The state of the remote transactions that follow the local one: which connections are in
//! a transaction block on their node, how much remote work each open savepoint saw, and
//! whether a rolled-back savepoint undid remote work the nodes cannot undo.
//!
//! The connection layer asks for a task's connection through [`RemoteTransactions`]
//! (registered at load), so the state lives here alone; [`super`]'s transaction callback reads
//! it at commit and clears it at abort. Nothing here allocates with palloc or raises an error,
//! so the abort path can use it.

use std::cell::RefCell;

use crate::connection::{ConnKey, Connection, RemoteTransactions};

/// One node's connection in a remote transaction block (BEGIN sent).
struct InBlock {
    key: ConnKey,
    conn: Connection,
}

#[derive(Default)]
struct RemoteXact {
    /// Connections in a remote transaction block, one per node and session key. A task that
    /// runs holds its connection; it is here again when the task is done.
    conns: Vec<InBlock>,
    /// A savepoint that contained remote work rolled back: the remote side cannot follow.
    poisoned: bool,
    /// Counts tasks run in the remote transaction, to tell whether a savepoint saw any.
    work: u64,
    /// `work` at the start of each open subtransaction (its length is the savepoint depth).
    savepoints: Vec<u64>,
}

thread_local! {
    static XACT: RefCell<RemoteXact> = RefCell::new(RemoteXact::default());
}

/// The transaction layer as the connection layer sees it.
pub(super) struct Remote;

impl RemoteTransactions for Remote {
    fn enter(&self, key: &ConnKey) -> Option<Connection> {
        XACT.with(|x| {
            let mut x = x.borrow_mut();
            x.work += 1;
            let i = x.conns.iter().position(|c| &c.key == key)?;
            Some(x.conns.swap_remove(i).conn)
        })
    }

    fn keep(&self, key: ConnKey, conn: Connection) {
        XACT.with(|x| x.borrow_mut().conns.push(InBlock { key, conn }));
    }
}

/// Whether any node has a remote transaction open.
pub fn has_remote_work() -> bool {
    XACT.with(|x| !x.borrow().conns.is_empty())
}

/// The keys of the open remote transactions, and whether a rolled-back savepoint undid
/// remote work.
pub(super) fn open() -> (Vec<ConnKey>, bool) {
    XACT.with(|x| {
        let x = x.borrow();
        (x.conns.iter().map(|c| c.key.clone()).collect(), x.poisoned)
    })
}

/// Forgets every remote transaction, closing its connection: the nodes roll back. Safe in
/// abort (no palloc, no error; a re-entered borrow leaves the state for the next call).
pub(super) fn close_all() {
    XACT.with(|x| {
        if let Ok(mut x) = x.try_borrow_mut() {
            x.conns.clear();
            x.poisoned = false;
            x.savepoints.clear();
        }
    });
}

/// A subtransaction starts.
pub(super) fn savepoint_start() {
    XACT.with(|x| {
        if let Ok(mut x) = x.try_borrow_mut() {
            let work = x.work;
            x.savepoints.push(work);
        }
    });
}

/// A subtransaction commits (its work becomes the parent's).
pub(super) fn savepoint_commit() {
    XACT.with(|x| {
        if let Ok(mut x) = x.try_borrow_mut() {
            x.savepoints.pop();
        }
    });
}

/// A subtransaction rolls back: if it ran remote work, the remote side cannot follow.
pub(super) fn savepoint_abort() {
    XACT.with(|x| {
        if let Ok(mut x) = x.try_borrow_mut() {
            if let Some(at_start) = x.savepoints.pop() {
                if x.work != at_start {
                    x.poisoned = true;
                }
            }
        }
    });
}
