//! Typed errors inside Tessera, converted to an `ereport` once, at the edge.
//!
//! Code in the middle returns `Result<T, TesseraError>`; the SQL functions and hooks call
//! [`TesseraError::report`] (or [`OrReport::or_report`]) where the error leaves Rust. Every
//! error carries a SQLSTATE, a message that says what was wrong, and usually a hint that says
//! what to do. Errors that came from a worker keep the worker's SQLSTATE, message, detail and
//! hint, and name the node in the detail.

use pgrx::pg_sys::panic::ErrorReport;
use pgrx::{PgLogLevel, PgSqlErrorCode};

#[derive(Debug, Clone)]
pub struct TesseraError {
    pub code: PgSqlErrorCode,
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
}

pub type TResult<T> = Result<T, TesseraError>;

impl TesseraError {
    pub fn new(code: PgSqlErrorCode, message: impl Into<String>) -> Self {
        TesseraError {
            code,
            message: message.into(),
            detail: None,
            hint: None,
        }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    fn emit(self, level: PgLogLevel) {
        let mut report = ErrorReport::new(self.code, self.message, "tessera");
        if let Some(d) = self.detail {
            report = report.set_detail(d);
        }
        if let Some(h) = self.hint {
            report = report.set_hint(h);
        }
        report.report(level);
    }

    /// Raises this error as a PostgreSQL ERROR. Does not return.
    pub fn report(self) -> ! {
        self.emit(PgLogLevel::ERROR);
        unreachable!("ereport(ERROR) returned")
    }

    /// Emits this error as a WARNING and goes on.
    pub fn warn(self) {
        self.emit(PgLogLevel::WARNING);
    }
}

impl std::fmt::Display for TesseraError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// `result.or_report()`: the value, or the error raised as an ERROR.
pub trait OrReport<T> {
    fn or_report(self) -> T;
}

impl<T> OrReport<T> for TResult<T> {
    fn or_report(self) -> T {
        match self {
            Ok(v) => v,
            Err(e) => e.report(),
        }
    }
}

/// An SPI failure is an internal error: Tessera's own catalog queries should not fail.
impl From<pgrx::spi::SpiError> for TesseraError {
    fn from(e: pgrx::spi::SpiError) -> Self {
        TesseraError::new(
            PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
            format!("Tessera catalog access failed: {e}"),
        )
    }
}

/// The SQLSTATE for a five-character code sent by a worker.
pub fn sqlstate_from_str(code: &str) -> PgSqlErrorCode {
    let b = code.as_bytes();
    if b.len() != 5 {
        return PgSqlErrorCode::ERRCODE_INTERNAL_ERROR;
    }
    // MAKE_SQLSTATE: six bits per character, first character lowest.
    let mut v: isize = 0;
    for (i, c) in b.iter().enumerate() {
        v |= (((*c as isize) - ('0' as isize)) & 0x3F) << (6 * i);
    }
    PgSqlErrorCode::from(v)
}
