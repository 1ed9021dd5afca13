//! An active snapshot pushed for a scope: for catalog reads where PostgreSQL has none set
//! (a transaction's pre-commit callback) or where the statement's would be too old.

use pgrx::pg_sys;

/// Pops the snapshot it pushed when dropped (an error's unwinding included: the
/// transaction's abort would pop it too, so it pops only while a snapshot is set).
pub struct PushedSnapshot(());

impl PushedSnapshot {
    /// The transaction's snapshot (a fresh one per call in READ COMMITTED).
    pub fn transaction() -> PushedSnapshot {
        // SAFETY: pushes a registered snapshot onto the active stack; popped by Drop.
        unsafe { pg_sys::PushActiveSnapshot(pg_sys::GetTransactionSnapshot()) };
        PushedSnapshot(())
    }

    /// The latest committed state, whatever the transaction's isolation level.
    pub fn latest() -> PushedSnapshot {
        // SAFETY: as above.
        unsafe { pg_sys::PushActiveSnapshot(pg_sys::GetLatestSnapshot()) };
        PushedSnapshot(())
    }
}

impl Drop for PushedSnapshot {
    fn drop(&mut self) {
        // SAFETY: pops the snapshot pushed by the constructor, if the stack still holds one.
        unsafe {
            if pg_sys::ActiveSnapshotSet() {
                pg_sys::PopActiveSnapshot();
            }
        }
    }
}
