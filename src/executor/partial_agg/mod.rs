//! Aggregates across shards through PostgreSQL's own partial aggregation: what a parallel query
//! does between its workers and its leader, done between the worker nodes and the coordinator.
//!
//! - On the workers, `tessera_partial_agg('agg(types)'::regprocedure, args...)` runs the
//!   aggregate's transition function over the shard's rows and returns the transition state,
//!   serialized: with the aggregate's `aggserialfn` when the state is `internal`, as the state
//!   type's text otherwise (a bytea either way).
//! - On the coordinator, `tessera_combine_agg(agg, input types, state, NULL::result type)`
//!   reads each state back (`aggdeserialfn`, or the state type's input function), merges them
//!   with the aggregate's `aggcombinefn` and applies its final function. The partial state
//!   reaches it as `internal`: the Tessera scan makes that value from the worker's column
//!   ([`partial_state_datum`]), and SQL cannot make one, so no user-supplied bytes ever reach a
//!   deserialization function (which trust their input, as parallel query's do).
//!
//! A serialized state is one flag byte (0: the state is NULL, 1: a value follows) and the
//! value; text states are printed and read under portable settings (ISO dates, exact floats),
//! whatever the session's.
//!
//! So every aggregate with a combine function works across shards (stddev, variance, regr_*,
//! and users' own) with the answer one node computes. The aggregate's own functions run with
//! the calling aggregate's context (`AggCheckCallContext` works in them) and with call
//! expressions built as the executor builds them (so polymorphic ones see their actual types).
//! `tessera_partial_agg` is callable by anyone, so it checks what it is given as the executor
//! would: the inputs must be the aggregate's own types (no `unknown`, no mixed polymorphic
//! types), a strict transition function without an initial value must take its state type, and
//! the caller and the aggregate's owner may execute what runs.

use std::ffi::{c_int, CStr};

use pgrx::pg_sys;
use pgrx::pg_sys::ffi::pg_guard_ffi_boundary;
use pgrx::prelude::*;

use crate::error::TesseraError;
use crate::pg::nodes::{is_a, list_of};

mod functions;

pub(crate) use functions::partial_state_datum;

// PostgreSQL functions the bindings lack. Each may raise an ERROR: every call goes through
// `pg_guard_ffi_boundary`, which turns it into a Rust panic that unwinds the callers' frames.
unsafe extern "C-unwind" {
    fn resolve_aggregate_transtype(
        aggfuncid: pg_sys::Oid,
        aggtranstype: pg_sys::Oid,
        input_types: *mut pg_sys::Oid,
        num_arguments: c_int,
    ) -> pg_sys::Oid;
    #[allow(clippy::too_many_arguments)]
    fn build_aggregate_transfn_expr(
        agg_input_types: *mut pg_sys::Oid,
        agg_num_inputs: c_int,
        agg_num_direct_inputs: c_int,
        agg_variadic: bool,
        agg_state_type: pg_sys::Oid,
        agg_input_collation: pg_sys::Oid,
        transfn_oid: pg_sys::Oid,
        invtransfn_oid: pg_sys::Oid,
        transfnexpr: *mut *mut pg_sys::Expr,
        invtransfnexpr: *mut *mut pg_sys::Expr,
    );
    fn build_aggregate_serialfn_expr(serialfn_oid: pg_sys::Oid, out: *mut *mut pg_sys::Expr);
    fn build_aggregate_deserialfn_expr(deserialfn_oid: pg_sys::Oid, out: *mut *mut pg_sys::Expr);
    fn build_aggregate_finalfn_expr(
        agg_input_types: *mut pg_sys::Oid,
        num_finalfn_inputs: c_int,
        agg_state_type: pg_sys::Oid,
        agg_result_type: pg_sys::Oid,
        agg_input_collation: pg_sys::Oid,
        finalfn_oid: pg_sys::Oid,
        out: *mut *mut pg_sys::Expr,
    );
    fn datumCopy(value: pg_sys::Datum, typbyval: bool, typlen: c_int) -> pg_sys::Datum;
}

/// One function of the aggregate, ready to call: its FmgrInfo (with the call expression set)
/// and a call frame, both in the memory of the calling aggregate's FmgrInfo.
#[derive(Clone, Copy)]
struct Call {
    flinfo: *mut pg_sys::FmgrInfo,
    fcinfo: pg_sys::FunctionCallInfo,
    nargs: usize,
}

impl Call {
    /// # Safety
    /// `expr` and `cxt` are valid; `cxt` outlives every call.
    unsafe fn new(
        fnoid: pg_sys::Oid,
        expr: *mut pg_sys::Expr,
        nargs: usize,
        collation: pg_sys::Oid,
        cxt: pg_sys::MemoryContext,
    ) -> Call {
        // SAFETY: both allocations are zeroed and sized for their structs (the call frame with
        // room for `nargs` arguments); fmgr_info_cxt fills the FmgrInfo in `cxt`.
        unsafe {
            let flinfo =
                pg_sys::MemoryContextAllocZero(cxt, std::mem::size_of::<pg_sys::FmgrInfo>())
                    as *mut pg_sys::FmgrInfo;
            pg_sys::fmgr_info_cxt(fnoid, flinfo, cxt);
            (*flinfo).fn_expr = expr as *mut pg_sys::Node;
            let size = std::mem::size_of::<pg_sys::FunctionCallInfoBaseData>()
                + nargs * std::mem::size_of::<pg_sys::NullableDatum>();
            let fcinfo = pg_sys::MemoryContextAllocZero(cxt, size) as pg_sys::FunctionCallInfo;
            (*fcinfo).flinfo = flinfo;
            (*fcinfo).fncollation = collation;
            (*fcinfo).nargs = nargs as i16;
            Call {
                flinfo,
                fcinfo,
                nargs,
            }
        }
    }

    fn strict(&self) -> bool {
        // SAFETY: flinfo was filled by fmgr_info_cxt and lives as long as this Call.
        unsafe { (*self.flinfo).fn_strict }
    }

    /// Calls the function with `args` (value, is-null) in the aggregate context `context`.
    ///
    /// # Safety
    /// `args` has `nargs` entries of the types the function takes.
    unsafe fn call(
        &self,
        context: *mut pg_sys::Node,
        args: &[(pg_sys::Datum, bool)],
    ) -> (pg_sys::Datum, bool) {
        debug_assert_eq!(args.len(), self.nargs);
        // SAFETY: the frame has room for `nargs` arguments (see `new`); a PostgreSQL error
        // raised by the function is caught at the boundary and re-raised by our pg_guard.
        unsafe {
            let f = self.fcinfo;
            (*f).context = context;
            (*f).resultinfo = std::ptr::null_mut();
            (*f).isnull = false;
            let slots = (*f).args.as_mut_slice(self.nargs);
            for (slot, &(value, isnull)) in slots.iter_mut().zip(args) {
                slot.value = value;
                slot.isnull = isnull;
            }
            let addr = (*self.flinfo).fn_addr.expect("fmgr_info_cxt sets fn_addr");
            let result = pg_guard_ffi_boundary(|| addr(f));
            (result, (*f).isnull)
        }
    }
}

/// What the worker or coordinator side needs of one aggregate, cached in the calling
/// aggregate's `fn_extra` for the whole query.
struct Info {
    aggfnoid: pg_sys::Oid,
    trans_len: i16,
    trans_byval: bool,
    /// The transition function (workers) or the combine function (coordinator).
    step: Call,
    /// `aggserialfn` (workers) or `aggdeserialfn` (coordinator), for `internal` states.
    serial: Option<Call>,
    /// The final function (coordinator).
    finalfn: Option<Call>,
    /// The state type's output (workers) or input (coordinator) function and its I/O parameter,
    /// for states that are not `internal`.
    io_fn: pg_sys::Oid,
    io_param: pg_sys::Oid,
    /// The aggregate's initial value (in the query's memory), or None for NULL.
    initval: Option<pg_sys::Datum>,
}

/// The transition state of one group.
struct State {
    info: *const Info,
    value: pg_sys::Datum,
    isnull: bool,
    /// A strict transition function's state before its first input (PostgreSQL's
    /// `noTransValue`).
    no_value: bool,
}

#[derive(Clone, Copy, PartialEq)]
enum Side {
    Worker,
    Coordinator,
}

fn error(code: PgSqlErrorCode, message: String) -> TesseraError {
    TesseraError::new(code, message)
        .hint("tessera_partial_agg and tessera_combine_agg are the distributed planner's; use the aggregate itself.")
}

/// `format_procedure` of an OID, for messages.
fn proc_name(oid: pg_sys::Oid) -> String {
    // SAFETY: format_procedure prints any OID (unknown ones as a number).
    unsafe { crate::pg::nodes::string(pg_sys::format_procedure(oid)) }
}

const POLYMORPHIC: [pg_sys::Oid; 11] = [
    pg_sys::ANYELEMENTOID,
    pg_sys::ANYARRAYOID,
    pg_sys::ANYNONARRAYOID,
    pg_sys::ANYENUMOID,
    pg_sys::ANYRANGEOID,
    pg_sys::ANYMULTIRANGEOID,
    pg_sys::ANYCOMPATIBLEOID,
    pg_sys::ANYCOMPATIBLEARRAYOID,
    pg_sys::ANYCOMPATIBLENONARRAYOID,
    pg_sys::ANYCOMPATIBLERANGEOID,
    pg_sys::ANYCOMPATIBLEMULTIRANGEOID,
];

/// The aggregate's result type for these input types, after checking that the inputs are the
/// ones it takes (exactly: the parser has already coerced a real call's arguments) and that
/// the current user may execute it.
///
/// # Safety
/// Runs catalog lookups; call inside a transaction.
unsafe fn check_inputs(aggfnoid: pg_sys::Oid, inputs: &[pg_sys::Oid]) -> pg_sys::Oid {
    // SAFETY: get_func_signature returns a palloc'd array of `nargs` declared types.
    unsafe {
        if pg_sys::pg_proc_aclcheck(
            aggfnoid,
            pg_sys::GetUserId(),
            pg_sys::ACL_EXECUTE as pg_sys::AclMode,
        ) != pg_sys::AclResult::ACLCHECK_OK
        {
            TesseraError::new(
                PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
                format!("permission denied for aggregate {}", proc_name(aggfnoid)),
            )
            .report();
        }
        let mut declared: *mut pg_sys::Oid = std::ptr::null_mut();
        let mut nargs: c_int = 0;
        let rettype = pg_sys::get_func_signature(aggfnoid, &mut declared, &mut nargs);
        let declared = std::slice::from_raw_parts_mut(declared, nargs as usize);
        let mismatch = || -> ! {
            error(
                PgSqlErrorCode::ERRCODE_DATATYPE_MISMATCH,
                format!(
                    "the inputs given do not match aggregate {}",
                    proc_name(aggfnoid)
                ),
            )
            .report()
        };
        if declared.len() != inputs.len()
            || inputs
                .iter()
                .any(|&a| a == pg_sys::UNKNOWNOID || a == pg_sys::CSTRINGOID)
        {
            mismatch();
        }
        // Arguments of one polymorphic kind must all have the same type (the parser coerces a
        // real call's anycompatible arguments to their common type before any call is made).
        for (i, (&d, &a)) in declared.iter().zip(inputs).enumerate() {
            let fits = if POLYMORPHIC.contains(&d) {
                declared[..i]
                    .iter()
                    .zip(inputs)
                    .all(|(&d2, &a2)| d2 != d || a2 == a)
            } else {
                d == a || d == pg_sys::ANYOID || pg_sys::IsBinaryCoercible(a, d)
            };
            if !fits {
                mismatch();
            }
        }
        let element = |kinds: &[pg_sys::Oid], arrays: &[pg_sys::Oid]| {
            let elem = declared
                .iter()
                .zip(inputs)
                .find(|(d, _)| kinds.contains(d))
                .map(|(_, &a)| a);
            let array = declared
                .iter()
                .zip(inputs)
                .find(|(d, _)| arrays.contains(d))
                .map(|(_, &a)| a);
            if let (Some(e), Some(arr)) = (elem, array) {
                if pg_sys::get_element_type(arr) != e {
                    mismatch();
                }
            }
        };
        element(
            &[pg_sys::ANYCOMPATIBLEOID, pg_sys::ANYCOMPATIBLENONARRAYOID],
            &[pg_sys::ANYCOMPATIBLEARRAYOID],
        );
        element(
            &[
                pg_sys::ANYELEMENTOID,
                pg_sys::ANYNONARRAYOID,
                pg_sys::ANYENUMOID,
            ],
            &[pg_sys::ANYARRAYOID],
        );
        pg_sys::enforce_generic_type_consistency(
            inputs.as_ptr(),
            declared.as_mut_ptr(),
            nargs,
            rettype,
            false,
        )
    }
}

/// The owner of a function.
///
/// # Safety
/// Runs a syscache lookup; call inside a transaction.
unsafe fn proc_owner(fnoid: pg_sys::Oid) -> pg_sys::Oid {
    // SAFETY: the tuple is pinned until ReleaseSysCache; proowner (attribute 4 of pg_proc) is
    // read by number.
    unsafe {
        let cache = pg_sys::SysCacheIdentifier::PROCOID as c_int;
        let tuple = pg_sys::SearchSysCache1(cache, pg_sys::Datum::from(fnoid));
        if tuple.is_null() {
            return pg_sys::InvalidOid;
        }
        let mut isnull = false;
        let owner = pg_sys::SysCacheGetAttr(cache, tuple, 4, &mut isnull);
        pg_sys::ReleaseSysCache(tuple);
        pg_sys::Oid::from(owner.value() as u32)
    }
}

/// As the executor checks: the aggregate's owner may execute each function the aggregate
/// runs.
///
/// # Safety
/// Runs catalog lookups; call inside a transaction.
unsafe fn check_support_functions(aggfnoid: pg_sys::Oid, functions: &[pg_sys::Oid]) {
    // SAFETY: catalog lookups.
    unsafe {
        let owner = proc_owner(aggfnoid);
        for &f in functions.iter().filter(|&&f| f != pg_sys::InvalidOid) {
            if pg_sys::pg_proc_aclcheck(f, owner, pg_sys::ACL_EXECUTE as pg_sys::AclMode)
                != pg_sys::AclResult::ACLCHECK_OK
            {
                TesseraError::new(
                    PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
                    format!("permission denied for function {}", proc_name(f)),
                )
                .report();
            }
        }
    }
}

/// pg_aggregate's row of an aggregate.
pub(crate) struct Catalog {
    pub(crate) kind: u8,
    pub(crate) transfn: pg_sys::Oid,
    pub(crate) finalfn: pg_sys::Oid,
    pub(crate) combinefn: pg_sys::Oid,
    pub(crate) serialfn: pg_sys::Oid,
    pub(crate) deserialfn: pg_sys::Oid,
    pub(crate) finalextra: bool,
    pub(crate) transtype: pg_sys::Oid,
    pub(crate) initval: Option<String>,
}

/// # Safety
/// Runs a syscache lookup; call inside a transaction.
pub(crate) unsafe fn catalog(aggfnoid: pg_sys::Oid) -> Catalog {
    // SAFETY: the tuple is pinned from SearchSysCache1 to ReleaseSysCache; every attribute is
    // read with SysCacheGetAttr by its number (pg_aggregate_d.h), so no struct layout is
    // assumed; the text of agginitval is copied out before the release.
    unsafe {
        let cache = pg_sys::SysCacheIdentifier::AGGFNOID as c_int;
        let tuple = pg_sys::SearchSysCache1(cache, pg_sys::Datum::from(aggfnoid));
        if tuple.is_null() {
            error(
                PgSqlErrorCode::ERRCODE_WRONG_OBJECT_TYPE,
                format!("{} is not an aggregate", proc_name(aggfnoid)),
            )
            .report();
        }
        let get = |attno: i16| {
            let mut isnull = false;
            let d = pg_sys::SysCacheGetAttr(cache, tuple, attno, &mut isnull);
            (d, isnull)
        };
        let oid = |attno: i16| pg_sys::Oid::from(get(attno).0.value() as u32);
        let (init, init_null) = get(21);
        let c = Catalog {
            kind: get(2).0.value() as u8,
            transfn: oid(4),
            finalfn: oid(5),
            combinefn: oid(6),
            serialfn: oid(7),
            deserialfn: oid(8),
            finalextra: get(12).0.value() != 0,
            transtype: oid(17),
            initval: (!init_null).then(|| {
                CStr::from_ptr(pg_sys::text_to_cstring(init.cast_mut_ptr()))
                    .to_string_lossy()
                    .into_owned()
            }),
        };
        pg_sys::ReleaseSysCache(tuple);
        c
    }
}

/// Builds what `side` needs of aggregate `aggfnoid` over `inputs`, in `cxt`.
///
/// # Safety
/// `cxt` lives for the whole query (the calling FmgrInfo's `fn_mcxt`).
unsafe fn build_info(
    side: Side,
    aggfnoid: pg_sys::Oid,
    inputs: &[pg_sys::Oid],
    variadic: bool,
    result_type: Option<pg_sys::Oid>,
    collation: pg_sys::Oid,
    cxt: pg_sys::MemoryContext,
) -> *const Info {
    // SAFETY: catalog lookups, then nodes and FmgrInfos built in `cxt` (switched to); the Info
    // is written into a zeroed allocation of its size in `cxt`; it holds no Rust-owned memory.
    unsafe {
        let rettype = check_inputs(aggfnoid, inputs);
        if let Some(r) = result_type {
            if r != rettype {
                error(
                    PgSqlErrorCode::ERRCODE_DATATYPE_MISMATCH,
                    format!(
                        "aggregate {} returns {}, not {}",
                        proc_name(aggfnoid),
                        crate::pg::nodes::string(pg_sys::format_type_be(rettype)),
                        crate::pg::nodes::string(pg_sys::format_type_be(r))
                    ),
                )
                .report();
            }
        }
        let cat = catalog(aggfnoid);
        let name = proc_name(aggfnoid);
        if cat.kind != b'n' {
            error(
                PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
                format!("{name} is an ordered-set aggregate"),
            )
            .report();
        }
        check_support_functions(
            aggfnoid,
            &match side {
                Side::Worker => vec![cat.transfn, cat.serialfn],
                Side::Coordinator => vec![cat.combinefn, cat.deserialfn, cat.finalfn],
            },
        );
        let mut types = inputs.to_vec();
        let n = types.len() as c_int;
        let transtype = pg_guard_ffi_boundary(|| {
            resolve_aggregate_transtype(aggfnoid, cat.transtype, types.as_mut_ptr(), n)
        });
        let internal = transtype == pg_sys::INTERNALOID;
        let missing = |what: &str| -> ! {
            error(
                PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
                format!("aggregate {name} has no {what} function, so it cannot be combined across shards"),
            )
            .report()
        };
        let (mut trans_len, mut trans_byval) = (0i16, false);
        pg_sys::get_typlenbyval(transtype, &mut trans_len, &mut trans_byval);
        let old = pg_sys::MemoryContextSwitchTo(cxt);
        let mut expr: *mut pg_sys::Expr = std::ptr::null_mut();
        let mut unused: *mut pg_sys::Expr = std::ptr::null_mut();
        let (mut io_fn, mut io_param) = (pg_sys::InvalidOid, pg_sys::InvalidOid);
        let (step, serial, finalfn);
        match side {
            Side::Worker => {
                pg_guard_ffi_boundary(|| {
                    build_aggregate_transfn_expr(
                        types.as_mut_ptr(),
                        n,
                        0,
                        variadic,
                        transtype,
                        collation,
                        cat.transfn,
                        pg_sys::InvalidOid,
                        &mut expr,
                        &mut unused,
                    )
                });
                step = Call::new(cat.transfn, expr, types.len() + 1, collation, cxt);
                // As ExecInitAgg: a strict transition function without an initial value takes
                // its first input as the state, so that input must be of the state type.
                if step.strict()
                    && cat.initval.is_none()
                    && !types
                        .first()
                        .is_some_and(|&t| pg_sys::IsBinaryCoercible(t, transtype))
                {
                    pg_sys::MemoryContextSwitchTo(old);
                    TesseraError::new(
                        PgSqlErrorCode::ERRCODE_INVALID_FUNCTION_DEFINITION,
                        format!("aggregate {name} needs to have compatible input type and transition type"),
                    )
                    .report();
                }
                serial = if internal {
                    if cat.serialfn == pg_sys::InvalidOid {
                        missing("serialization");
                    }
                    pg_guard_ffi_boundary(|| {
                        build_aggregate_serialfn_expr(cat.serialfn, &mut expr)
                    });
                    Some(Call::new(cat.serialfn, expr, 1, pg_sys::InvalidOid, cxt))
                } else {
                    let mut varlena = false;
                    pg_sys::getTypeOutputInfo(transtype, &mut io_fn, &mut varlena);
                    None
                };
                finalfn = None;
            }
            Side::Coordinator => {
                if cat.combinefn == pg_sys::InvalidOid {
                    missing("combine");
                }
                let mut state_type = transtype;
                pg_guard_ffi_boundary(|| {
                    build_aggregate_transfn_expr(
                        &mut state_type,
                        1,
                        0,
                        false,
                        transtype,
                        collation,
                        cat.combinefn,
                        pg_sys::InvalidOid,
                        &mut expr,
                        &mut unused,
                    )
                });
                step = Call::new(cat.combinefn, expr, 2, collation, cxt);
                serial = if internal {
                    if cat.deserialfn == pg_sys::InvalidOid {
                        missing("deserialization");
                    }
                    pg_guard_ffi_boundary(|| {
                        build_aggregate_deserialfn_expr(cat.deserialfn, &mut expr)
                    });
                    Some(Call::new(cat.deserialfn, expr, 2, pg_sys::InvalidOid, cxt))
                } else {
                    pg_sys::getTypeInputInfo(transtype, &mut io_fn, &mut io_param);
                    None
                };
                finalfn = (cat.finalfn != pg_sys::InvalidOid).then(|| {
                    let nargs = if cat.finalextra { types.len() + 1 } else { 1 };
                    pg_guard_ffi_boundary(|| {
                        build_aggregate_finalfn_expr(
                            types.as_mut_ptr(),
                            nargs as c_int,
                            transtype,
                            rettype,
                            collation,
                            cat.finalfn,
                            &mut expr,
                        )
                    });
                    Call::new(cat.finalfn, expr, nargs, collation, cxt)
                });
            }
        }
        let initval = cat.initval.as_ref().map(|s| {
            let (mut input, mut param) = (pg_sys::InvalidOid, pg_sys::InvalidOid);
            pg_sys::getTypeInputInfo(transtype, &mut input, &mut param);
            let s = std::ffi::CString::new(s.as_str()).expect("catalog text has no NUL");
            pg_sys::OidInputFunctionCall(input, s.as_ptr() as *mut _, param, -1)
        });
        let info = pg_sys::MemoryContextAllocZero(cxt, std::mem::size_of::<Info>()) as *mut Info;
        info.write(Info {
            aggfnoid,
            trans_len,
            trans_byval,
            step,
            serial,
            finalfn,
            io_fn,
            io_param,
            initval,
        });
        pg_sys::MemoryContextSwitchTo(old);
        info
    }
}
