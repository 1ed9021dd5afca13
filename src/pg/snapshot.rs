//! An active snapshot pushed for a scope: for catalog reads where PostgreSQL has none set
//! (a transaction's pre-commit callback) or where the statement's would be too old.

use pgrx::pg_sys;

/// Pops the snapshot it pushed when dropped, on an error's unwinding too: the unwinding runs
/// before the transaction's abort cleans the snapshot stack, so the snapshot on top is still
/// this one (PostgreSQL's own code pops what it pushes). `ActiveSnapshotSet` only guards
/// against popping an empty stack.
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

/// The rows of the read-only query `sql` (no parameters) as the latest committed state has
/// them, whatever the transaction's snapshot, each column as text (NULL as None).
pub fn read_latest(sql: &str) -> Vec<Vec<Option<String>>> {
    let _latest = PushedSnapshot::latest();
    let q = std::ffi::CString::new(sql).unwrap_or_default();
    let mut out = Vec::new();
    // SAFETY: a read-only query under the snapshot pushed above (read-only SPI queries use the
    // active snapshot as it is); every value is copied out before SPI_finish.
    unsafe {
        pg_sys::SPI_connect();
        if pg_sys::SPI_execute(q.as_ptr(), true, 0) == pg_sys::SPI_OK_SELECT as i32 {
            let table = pg_sys::SPI_tuptable;
            let desc = (*table).tupdesc;
            for i in 0..pg_sys::SPI_processed as usize {
                let tuple = *(*table).vals.add(i);
                let row = (1..=(*desc).natts)
                    .map(|n| {
                        let text = pg_sys::SPI_getvalue(tuple, desc, n);
                        (!text.is_null()).then(|| super::nodes::string(text))
                    })
                    .collect();
                out.push(row);
            }
        }
        pg_sys::SPI_finish();
    }
    out
}
