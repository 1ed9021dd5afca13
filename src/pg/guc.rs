//! Settings changed for the length of a scope: a GUC nest level, restored when the scope ends
//! (and by the transaction's abort when an ERROR unwinds through it).

use std::ffi::CStr;

use pgrx::pg_sys;

/// Settings changed for as long as the scope lives (a GUC nest level: restored on drop, and by
/// the transaction's abort when an ERROR unwinds through it).
pub struct GucScope {
    level: Option<i32>,
}

impl GucScope {
    /// Sets each `(name, value)` for the scope.
    pub fn new(settings: &[(&CStr, &CStr)]) -> GucScope {
        // SAFETY: a nest level opened here and closed in Drop; set_config_option with
        // GUC_ACTION_SAVE records the old values in that level. These settings are USERSET.
        unsafe {
            let level = pg_sys::NewGUCNestLevel();
            for (name, value) in settings {
                pg_sys::set_config_option(
                    name.as_ptr(),
                    value.as_ptr(),
                    pg_sys::GucContext::PGC_USERSET,
                    pg_sys::GucSource::PGC_S_SESSION,
                    pg_sys::GucAction::GUC_ACTION_SAVE,
                    true,
                    0,
                    false,
                );
            }
            GucScope { level: Some(level) }
        }
    }

    /// `search_path = pg_catalog, pg_temp` for the scope: the queries run inside see only the
    /// built-in functions and operators, whoever runs them and whatever their own path holds
    /// (pg_temp last is never searched for functions or operators).
    pub fn catalog_only() -> GucScope {
        GucScope::new(&[(c"search_path", c"pg_catalog, pg_temp")])
    }

    /// The output settings under which values are printed for another node: dates and times
    /// in ISO form and intervals in PostgreSQL's (both read the same under any `DateStyle` /
    /// `IntervalStyle`), floating-point values exactly. A no-op when the session has them
    /// already, so the common case costs three integer compares.
    pub fn portable_output() -> GucScope {
        // SAFETY: reading the settings' C variables.
        let others = unsafe {
            pg_sys::IntervalStyle == pg_sys::INTSTYLE_POSTGRES as i32
                && pg_sys::extra_float_digits > 0
        };
        let portable = iso_dates() && others;
        if portable {
            return GucScope { level: None };
        }
        GucScope::new(&[
            (c"DateStyle", c"ISO"),
            (c"IntervalStyle", c"postgres"),
            (c"extra_float_digits", c"3"),
        ])
    }
}

impl Drop for GucScope {
    fn drop(&mut self) {
        // While an ERROR unwinds, the transaction's abort restores the settings.
        if let (Some(level), false) = (self.level, std::thread::panicking()) {
            // SAFETY: closes the nest level this scope opened (scopes nest like the stack).
            unsafe { pg_sys::AtEOXact_GUC(true, level) };
        }
    }
}

/// The current value of the setting `name`, None when no such setting exists (an extension's
/// setting before its library is loaded in this backend, unless the session set it).
pub fn value(name: &CStr) -> Option<String> {
    // SAFETY: a lookup by name (missing_ok); the value is copied at once.
    unsafe {
        let p = pgrx::pg_sys::GetConfigOption(name.as_ptr(), true, false);
        (!p.is_null()).then(|| CStr::from_ptr(p).to_string_lossy().into_owned())
    }
}

/// The session prints dates and times in ISO form (`DateStyle = ISO, ...`).
pub fn iso_dates() -> bool {
    // SAFETY: reading the setting's C variable.
    unsafe { pg_sys::DateStyle == pg_sys::USE_ISO_DATES as i32 }
}

/// The refusal of a distributed query that prints dates or times as text on the shards and
/// also returns time-zoned values, under a DateStyle other than ISO: the text follows the
/// session's DateStyle on the nodes, the zoned values travel in ISO form only (another style's
/// zone abbreviation need not read back the same), and one setting cannot do both.
pub fn datestyle_conflict() -> crate::error::TesseraError {
    crate::error::TesseraError::new(
        pgrx::PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
        "cannot print dates or times as text on the shards in a query that also returns time-zoned values, under a DateStyle other than ISO",
    )
    .hint("SET DateStyle = 'ISO' for the query, or print the value with to_char(), whose output does not depend on DateStyle.")
}
