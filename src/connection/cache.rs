//! The per-backend connection cache: idle connections to nodes, kept between statements.
//!
//! A backend is single-threaded, so the cache is a thread-local map. A connection is taken out
//! while a task uses it and put back only if it is idle (not in a transaction, not busy); at
//! most `citus.max_cached_conns_per_worker` idle connections per node are kept.

use std::cell::RefCell;
use std::collections::HashMap;

use super::libpq::Connection;
use super::ConnKey;
use crate::gucs;

thread_local! {
    static IDLE: RefCell<HashMap<ConnKey, Vec<Connection>>> = RefCell::new(HashMap::new());
}

/// An idle, healthy connection for `key`, if one is cached.
pub(super) fn take(key: &ConnKey) -> Option<Connection> {
    IDLE.with(|idle| {
        let mut idle = idle.borrow_mut();
        let list = idle.get_mut(key)?;
        while let Some(conn) = list.pop() {
            if conn.is_idle() && !conn.has_unread_input() {
                return Some(conn);
            }
            // Closed by the node (restart, terminated backend, idle timeout): drop it and
            // try the next.
        }
        None
    })
}

/// Returns a connection after use; it is closed instead if it is not idle or the cache for its
/// node is full.
pub(super) fn put_back(key: ConnKey, conn: Connection) {
    if !conn.is_idle() || key.lane != 0 {
        return;
    }
    let limit = gucs::max_cached_conns_per_worker();
    IDLE.with(|idle| {
        let mut idle = idle.borrow_mut();
        let list = idle.entry(key).or_default();
        if list.len() < limit {
            list.push(conn);
        }
    });
}

/// Closes every cached connection to `node` (a node was removed or disabled).
pub fn close_node(node: &super::NodeAddress) {
    IDLE.with(|idle| idle.borrow_mut().retain(|k, _| &k.node != node));
}
