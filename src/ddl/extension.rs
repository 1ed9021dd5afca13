//! CREATE / ALTER / DROP EXTENSION: the same statement on every worker (so `vector` exists
//! wherever shards are), in the remote transaction. Tessera's own extension is each node's.

use std::ffi::CStr;

use pgrx::pg_sys;

use super::{Step, Utility};
use crate::error::TResult;
use crate::pg::nodes::list_ptrs;

/// # Safety
/// `u` is a CreateExtensionStmt or an AlterExtensionStmt.
pub(super) unsafe fn create_or_alter(u: &Utility) -> TResult<Step> {
    // SAFETY: both statements start with their tag and then `char *extname`; the tag was
    // checked by the table.
    let name = unsafe {
        if (*u.stmt).type_ == pg_sys::NodeTag::T_CreateExtensionStmt {
            (*u.node::<pg_sys::CreateExtensionStmt>()).extname
        } else {
            (*u.node::<pg_sys::AlterExtensionStmt>()).extname
        }
    };
    // SAFETY: extname is a NUL-terminated string of the parse tree.
    if unsafe { CStr::from_ptr(name) }.to_bytes() == b"tessera" {
        return Ok(Step::Pass);
    }
    let sql = u.text();
    Ok(super::on_every_worker(move || Ok(vec![sql])))
}

/// # Safety
/// `u` is a DropStmt of extensions.
pub(super) unsafe fn drop(u: &Utility) -> TResult<Step> {
    // SAFETY: a DROP EXTENSION's objects are String nodes.
    let is_tessera = unsafe {
        list_ptrs((*u.node::<pg_sys::DropStmt>()).objects)
            .iter()
            .any(|n| CStr::from_ptr((*(*n as *mut pg_sys::String)).sval).to_bytes() == b"tessera")
    };
    if is_tessera {
        return Ok(Step::Pass);
    }
    let sql = u.text();
    Ok(super::on_every_worker(move || Ok(vec![sql])))
}
