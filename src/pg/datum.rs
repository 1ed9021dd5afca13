//! Values as text and back, with their types' output and input functions (the form values
//! travel in to and from other nodes; see `guc::GucScope::portable_output`).

use std::ffi::CString;

use pgrx::pg_sys;
use pgrx::prelude::*;

use super::nodes::string;
use crate::error::{TResult, TesseraError};

/// A value as text, with its type's output function.
///
/// # Safety
/// `value` is a non-null datum of type `typid`.
pub unsafe fn value_to_text(value: pg_sys::Datum, typid: pg_sys::Oid) -> String {
    // SAFETY: forwarded; the output function returns a palloc'd C string.
    unsafe {
        let (mut out, mut varlena) = (pg_sys::InvalidOid, false);
        pg_sys::getTypeOutputInfo(typid, &mut out, &mut varlena);
        string(pg_sys::OidOutputFunctionCall(out, value))
    }
}

/// A value of type `typid` read from text with its input function.
pub fn text_to_value(text: &str, typid: pg_sys::Oid, typmod: i32) -> TResult<pg_sys::Datum> {
    let c = CString::new(text).map_err(|_| {
        TesseraError::new(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            "value holds a NUL byte",
        )
    })?;
    // SAFETY: the input function of an existing type; an ERROR unwinds through pgrx.
    unsafe {
        let (mut input, mut ioparam) = (pg_sys::InvalidOid, pg_sys::InvalidOid);
        pg_sys::getTypeInputInfo(typid, &mut input, &mut ioparam);
        Ok(pg_sys::OidInputFunctionCall(
            input,
            c.as_ptr() as *mut std::ffi::c_char,
            ioparam,
            typmod,
        ))
    }
}
