//! Typed access to Tessera's catalog tables.
//!
//! - `node`: `pg_dist_node`, the nodes of the cluster.
//! - `table`: distributed tables, shards, placements and colocation groups.
//! - `schema`: distributed schemas (schema-based sharding).
//! - `cleanup`: objects on the nodes to drop later (old placements of moved shards).
//! - `cache`: the planner's and executor's view of both, per backend, invalidated by relcache
//!   callbacks.
//!
//! Reads and writes of `node` and `table` go through SPI: they are rare, and the catalog must
//! see the user's transaction. The hot path (is this relation distributed? where are its
//! shards?) reads `cache`.

pub mod cache;
pub mod cleanup;
pub mod node;
pub mod schema;
pub mod table;

use pgrx::pg_sys;

/// Tessera's own writes to its catalog tables, made as the bootstrap superuser while this
/// guard lives: the catalog is not writable by the roles that distribute, alter and drop
/// tables they own (as Citus's C code writes its catalog below the permission checks), and
/// the rights to do those things are checked before (ownership of the table).
///
/// Only catalog statements run under it, never user code: `search_path` is
/// `pg_catalog, pg_temp` for its length (so no function or operator of the user's can stand in
/// for a built-in one the statements name), and the security context is restricted (no SET
/// ROLE, no temporary objects) as for a maintenance command run on a user's behalf.
pub struct CatalogWrite {
    user: pg_sys::Oid,
    context: i32,
    _path: crate::pg::guc::GucScope,
}

impl CatalogWrite {
    pub fn begin() -> CatalogWrite {
        let (mut user, mut context) = (pg_sys::InvalidOid, 0);
        // SAFETY: reads and sets the backend's current user id; the previous one is restored
        // by Drop (or by the transaction's abort, which restores it on error).
        unsafe {
            pg_sys::GetUserIdAndSecContext(&mut user, &mut context);
            pg_sys::SetUserIdAndSecContext(
                pg_sys::Oid::from(pg_sys::BOOTSTRAP_SUPERUSERID),
                context
                    | pg_sys::SECURITY_LOCAL_USERID_CHANGE as i32
                    | pg_sys::SECURITY_RESTRICTED_OPERATION as i32,
            );
        }
        let path = crate::pg::guc::GucScope::catalog_only();
        CatalogWrite {
            user,
            context,
            _path: path,
        }
    }
}

impl Drop for CatalogWrite {
    fn drop(&mut self) {
        // SAFETY: restores what begin() read.
        unsafe { pg_sys::SetUserIdAndSecContext(self.user, self.context) };
    }
}
