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

/// The argument slots of a call.
///
/// # Safety
/// `fcinfo` is the current call's.
unsafe fn args<'a>(fcinfo: pg_sys::FunctionCallInfo) -> &'a [pg_sys::NullableDatum] {
    // SAFETY: the function manager passes `nargs` argument slots.
    unsafe { (*fcinfo).args.as_slice((*fcinfo).nargs as usize) }
}

/// The aggregate memory context of the calling aggregate; errors outside one.
///
/// # Safety
/// `fcinfo` is the current call's.
unsafe fn agg_context(fcinfo: pg_sys::FunctionCallInfo, what: &str) -> pg_sys::MemoryContext {
    // SAFETY: AggCheckCallContext reads the call's context node.
    unsafe {
        let mut cxt: pg_sys::MemoryContext = std::ptr::null_mut();
        if pg_sys::AggCheckCallContext(fcinfo, &mut cxt) != pg_sys::AGG_CONTEXT_AGGREGATE as c_int {
            error(
                PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
                format!("{what} called in non-aggregate context"),
            )
            .report();
        }
        cxt
    }
}

/// The Info cached in the calling FmgrInfo's `fn_extra`, built on the first call.
///
/// # Safety
/// `fcinfo` is the current call's.
unsafe fn cached(
    fcinfo: pg_sys::FunctionCallInfo,
    build: impl FnOnce(pg_sys::MemoryContext) -> *const Info,
) -> *const Info {
    // SAFETY: fn_extra is ours (set only here) and lives in fn_mcxt with the FmgrInfo.
    unsafe {
        let flinfo = (*fcinfo).flinfo;
        if (*flinfo).fn_extra.is_null() {
            (*flinfo).fn_extra = build((*flinfo).fn_mcxt) as *mut std::ffi::c_void;
        }
        (*flinfo).fn_extra as *const Info
    }
}

/// `datumCopy` of a by-reference value into `cxt`.
///
/// # Safety
/// `value` is a valid non-null datum of the state type.
unsafe fn copy_into(
    info: &Info,
    cxt: pg_sys::MemoryContext,
    value: pg_sys::Datum,
) -> pg_sys::Datum {
    if info.trans_byval {
        return value;
    }
    // SAFETY: datumCopy allocates in the current context, switched to `cxt`; an ERROR it
    // raises (a state over 1 GB, out of memory) comes back as a Rust panic.
    unsafe {
        let old = pg_sys::MemoryContextSwitchTo(cxt);
        let d =
            pg_guard_ffi_boundary(|| datumCopy(value, info.trans_byval, info.trans_len as c_int));
        pg_sys::MemoryContextSwitchTo(old);
        d
    }
}

/// Whether a varlena datum is a read-write expanded object.
///
/// # Safety
/// `value` is a valid non-null varlena datum.
unsafe fn is_expanded_rw(value: pg_sys::Datum) -> bool {
    // SAFETY: the first byte is a varlena header; 0x01 marks an external pointer whose tag
    // (second byte) 3 says expanded read-write.
    unsafe {
        let p = value.cast_mut_ptr::<u8>();
        *p == 0x01 && *p.add(1) == 3
    }
}

/// Whether a varlena datum is a read-write expanded object whose memory is a child of `cxt`
/// (PostgreSQL keeps such a state as it is instead of copying it).
///
/// # Safety
/// `value` is a valid non-null varlena datum.
unsafe fn expanded_in(value: pg_sys::Datum, cxt: pg_sys::MemoryContext) -> bool {
    // SAFETY: the first byte is a varlena header; 0x01 marks an external pointer whose tag
    // (second byte) says expanded read-write (3), and then DatumGetEOHP reads its header.
    unsafe {
        is_expanded_rw(value)
            && pg_sys::MemoryContextGetParent((*pg_sys::DatumGetEOHP(value)).eoh_context) == cxt
    }
}

/// A new group's state: the initial value, copied into the aggregate context.
///
/// # Safety
/// `cxt` is the aggregate context; `info` lives for the query.
unsafe fn new_state(info: *const Info, cxt: pg_sys::MemoryContext) -> *mut State {
    // SAFETY: a zeroed allocation of a State in the aggregate context, written whole.
    unsafe {
        let i = &*info;
        let st = pg_sys::MemoryContextAllocZero(cxt, std::mem::size_of::<State>()) as *mut State;
        st.write(State {
            info,
            value: i
                .initval
                .map(|v| copy_into(i, cxt, v))
                .unwrap_or(pg_sys::Datum::from(0)),
            isnull: i.initval.is_none(),
            no_value: i.initval.is_none(),
        });
        st
    }
}

/// Runs one step (transition or combine) over `input` and keeps the new state, as PostgreSQL's
/// executor does: a strict step skips NULL input and takes the first input as the state when
/// there is no initial value; a new by-reference state is copied into the aggregate context.
///
/// # Safety
/// `st` is a group state of `cxt`; `input` holds values of the step's input types.
unsafe fn advance(
    st: *mut State,
    cxt: pg_sys::MemoryContext,
    context: *mut pg_sys::Node,
    input: &[(pg_sys::Datum, bool)],
) {
    // SAFETY: the state and its Info are valid for the query; values are the caller's.
    unsafe {
        let info = &*(*st).info;
        if info.step.strict() {
            if input.iter().any(|&(_, null)| null) {
                return;
            }
            if (*st).no_value {
                (*st).value = copy_into(info, cxt, input[0].0);
                (*st).isnull = false;
                (*st).no_value = false;
                return;
            }
            if (*st).isnull {
                return;
            }
        }
        let mut all = Vec::with_capacity(input.len() + 1);
        all.push(((*st).value, (*st).isnull));
        all.extend_from_slice(input);
        let (mut value, isnull) = info.step.call(context, &all);
        if !info.trans_byval && value != (*st).value {
            // Only varlena states can be expanded objects.
            let varlena = info.trans_len == -1;
            if !(isnull || varlena && expanded_in(value, cxt)) {
                value = copy_into(info, cxt, value);
            }
            if !(*st).isnull {
                if varlena && is_expanded_rw((*st).value) {
                    pg_sys::DeleteExpandedObject((*st).value);
                } else {
                    pg_sys::pfree((*st).value.cast_mut_ptr());
                }
            }
        }
        (*st).value = value;
        (*st).isnull = isnull;
        (*st).no_value = false;
    }
}

/// The group state passed in, or a new one.
///
/// # Safety
/// `fcinfo` is a transition call whose first argument is our state or NULL.
unsafe fn state_of(
    fcinfo: pg_sys::FunctionCallInfo,
    info: *const Info,
    cxt: pg_sys::MemoryContext,
) -> *mut State {
    // SAFETY: a non-null first argument is a State this module made in the aggregate context.
    unsafe {
        let a = args(fcinfo)[0];
        if a.isnull {
            new_state(info, cxt)
        } else {
            a.value.cast_mut_ptr::<State>()
        }
    }
}

macro_rules! v1 {
    ($finfo:ident) => {
        #[unsafe(no_mangle)]
        #[doc(hidden)]
        pub extern "C" fn $finfo() -> &'static pg_sys::Pg_finfo_record {
            const V1: pg_sys::Pg_finfo_record = pg_sys::Pg_finfo_record { api_version: 1 };
            &V1
        }
    };
}

v1!(pg_finfo_tessera_partial_agg_sfunc);
v1!(pg_finfo_tessera_partial_agg_ffunc);
v1!(pg_finfo_tessera_combine_agg_sfunc);
v1!(pg_finfo_tessera_combine_agg_ffunc);

/// `tessera_partial_agg_sfunc(internal, regprocedure, VARIADIC "any")`: one row into the
/// aggregate's transition state.
///
/// # Safety
/// Called by PostgreSQL's function manager as an aggregate's transition function.
#[unsafe(no_mangle)]
#[pg_guard]
pub unsafe extern "C-unwind" fn tessera_partial_agg_sfunc(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    // SAFETY: argument slots are the function manager's; types of the values are checked
    // against the aggregate's signature (check_inputs) before its functions see them.
    unsafe {
        let cxt = agg_context(fcinfo, "tessera_partial_agg");
        let a = args(fcinfo);
        if a[1].isnull {
            error(
                PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED,
                "tessera_partial_agg needs an aggregate".into(),
            )
            .report();
        }
        let aggfnoid = pg_sys::Oid::from(a[1].value.value() as u32);
        let info = cached(fcinfo, |mcxt| {
            let inputs: Vec<pg_sys::Oid> = (2..a.len())
                .map(|i| pg_sys::get_fn_expr_argtype((*fcinfo).flinfo, i as c_int))
                .collect();
            build_info(
                Side::Worker,
                aggfnoid,
                &inputs,
                pg_sys::get_fn_expr_variadic((*fcinfo).flinfo),
                None,
                (*fcinfo).fncollation,
                mcxt,
            )
        });
        if (*info).aggfnoid != aggfnoid {
            error(
                PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                "tessera_partial_agg's aggregate must be a constant".into(),
            )
            .report();
        }
        let st = state_of(fcinfo, info, cxt);
        let input: Vec<(pg_sys::Datum, bool)> =
            a[2..].iter().map(|d| (d.value, d.isnull)).collect();
        advance(st, cxt, (*fcinfo).context, &input);
        pg_sys::Datum::from(st)
    }
}

/// `tessera_partial_agg_ffunc(internal)`: the group's transition state, serialized (a flag
/// byte, then the value).
///
/// # Safety
/// Called by PostgreSQL's function manager as an aggregate's final function.
#[unsafe(no_mangle)]
#[pg_guard]
pub unsafe extern "C-unwind" fn tessera_partial_agg_ffunc(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    // SAFETY: the state is one made by tessera_partial_agg_sfunc; its value is of the state
    // type its Info describes.
    unsafe {
        agg_context(fcinfo, "tessera_partial_agg");
        let a = args(fcinfo)[0];
        // No row reached this group's state (an empty shard): nothing to combine.
        if a.isnull {
            (*fcinfo).isnull = true;
            return pg_sys::Datum::from(0);
        }
        let st = a.value.cast_mut_ptr::<State>();
        let info = &*(*st).info;
        let mut bytes = vec![u8::from(!(*st).isnull)];
        if !(*st).isnull {
            match &info.serial {
                Some(serial) => {
                    let (d, isnull) = serial.call((*fcinfo).context, &[((*st).value, false)]);
                    if isnull {
                        bytes[0] = 0;
                    } else {
                        let v = pg_sys::pg_detoast_datum_packed(d.cast_mut_ptr());
                        bytes.extend_from_slice(varlena_bytes(v));
                    }
                }
                None => {
                    let _portable = crate::pg::guc::GucScope::portable_output();
                    let text = pg_sys::OidOutputFunctionCall(info.io_fn, (*st).value);
                    bytes.extend_from_slice(CStr::from_ptr(text).to_bytes());
                }
            }
        }
        pg_sys::Datum::from(bytea_of(&bytes))
    }
}

/// The data bytes of a detoasted varlena (short or long header).
///
/// # Safety
/// `v` is a detoasted (possibly short-header) varlena that outlives the slice.
unsafe fn varlena_bytes<'a>(v: *const pg_sys::varlena) -> &'a [u8] {
    // SAFETY: pgrx's readers of a varlena header (short or long), as varatt.h defines them;
    // the data follows the header for the length it gives.
    unsafe {
        std::slice::from_raw_parts(
            pgrx::varlena::vardata_any(v) as *const u8,
            pgrx::varlena::varsize_any_exhdr(v),
        )
    }
}

/// A new bytea (palloc'd in the current context) holding `bytes`.
fn bytea_of(bytes: &[u8]) -> *mut pg_sys::varlena {
    // SAFETY: cstring_to_text_with_len copies `len` bytes into a new varlena; text and bytea
    // share the layout, and the bytes need no terminator.
    unsafe {
        pg_sys::cstring_to_text_with_len(
            bytes.as_ptr() as *const std::ffi::c_char,
            bytes.len() as c_int,
        )
    }
}

/// What the Tessera scan hands `tessera_combine_agg` for a worker's partial-state column: the
/// serialized state and the aggregate it is a state of (from the plan, not from the row).
#[repr(C)]
struct PartialState {
    magic: u64,
    aggfnoid: pg_sys::Oid,
    bytes: *mut pg_sys::varlena,
}

const PARTIAL_STATE_MAGIC: u64 = 0x7465_7373_6572_6131;

/// The `internal` datum for a partial-state column of a worker row: `text` is the bytea as the
/// worker printed it; the state is allocated in `cxt`, which lives until the query ends (a Sort
/// above the scan keeps rows).
///
/// # Safety
/// `text` is NUL-terminated; `cxt` is valid for the rest of the query.
pub(crate) unsafe fn partial_state_datum(
    text: &CStr,
    aggfnoid: pg_sys::Oid,
    cxt: pg_sys::MemoryContext,
) -> pg_sys::Datum {
    // SAFETY: byteain parses the worker's text into a bytea; the struct is written whole into
    // an allocation of its size.
    unsafe {
        let old = pg_sys::MemoryContextSwitchTo(cxt);
        let bytes = pg_sys::OidInputFunctionCall(
            pg_sys::Oid::from(pg_sys::F_BYTEAIN),
            text.as_ptr() as *mut std::ffi::c_char,
            pg_sys::InvalidOid,
            -1,
        );
        let st = pg_sys::palloc(std::mem::size_of::<PartialState>()) as *mut PartialState;
        st.write(PartialState {
            magic: PARTIAL_STATE_MAGIC,
            aggfnoid,
            bytes: bytes.cast_mut_ptr(),
        });
        pg_sys::MemoryContextSwitchTo(old);
        pg_sys::Datum::from(st)
    }
}

/// The input types of `tessera_combine_agg`'s second argument (an oid[]).
///
/// # Safety
/// `d` is a non-null oid[] datum.
unsafe fn oid_array(d: pg_sys::Datum) -> Vec<pg_sys::Oid> {
    // SAFETY: deconstruct_array of a detoasted oid[] (4-byte, by value, int alignment).
    unsafe {
        let arr = pg_sys::pg_detoast_datum(d.cast_mut_ptr()) as *mut pg_sys::ArrayType;
        if (*arr).elemtype != pg_sys::OIDOID || (*arr).ndim > 1 {
            error(
                PgSqlErrorCode::ERRCODE_DATATYPE_MISMATCH,
                "tessera_combine_agg needs the input types as oid[]".into(),
            )
            .report();
        }
        let mut elems: *mut pg_sys::Datum = std::ptr::null_mut();
        let mut nulls: *mut bool = std::ptr::null_mut();
        let mut n: c_int = 0;
        pg_sys::deconstruct_array(
            arr,
            pg_sys::OIDOID,
            4,
            true,
            pg_sys::TYPALIGN_INT as std::ffi::c_char,
            &mut elems,
            &mut nulls,
            &mut n,
        );
        (0..n as usize)
            .map(|i| {
                if *nulls.add(i) {
                    error(
                        PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED,
                        "tessera_combine_agg's input types cannot be NULL".into(),
                    )
                    .report();
                }
                pg_sys::Oid::from((*elems.add(i)).value() as u32)
            })
            .collect()
    }
}

/// The coordinator side's Info, from the aggregate and input types given.
///
/// # Safety
/// `fcinfo` is a call of tessera_combine_agg's transition or final function.
unsafe fn combine_info(
    fcinfo: pg_sys::FunctionCallInfo,
    aggfnoid: Option<(pg_sys::Datum, pg_sys::Datum)>,
) -> *const Info {
    // SAFETY: reading the call's arguments, or (in the final function, which gets only NULLs)
    // the constants of the calling Aggref.
    unsafe {
        cached(fcinfo, |mcxt| {
            let (fnoid, types) = match aggfnoid {
                Some(v) => v,
                None => {
                    let aggref = pg_sys::AggGetAggref(fcinfo);
                    let consts: Vec<*mut pg_sys::Const> = if aggref.is_null() {
                        Vec::new()
                    } else {
                        list_of::<pg_sys::TargetEntry>((*aggref).args)
                            .into_iter()
                            .take(2)
                            .map(|t| (*t).expr as *mut pg_sys::Const)
                            .filter(|c| {
                                is_a(*c as *const std::ffi::c_void, pg_sys::NodeTag::T_Const)
                                    && !(**c).constisnull
                            })
                            .collect()
                    };
                    if consts.len() != 2 {
                        error(
                            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                            "tessera_combine_agg's aggregate and input types must be constants"
                                .into(),
                        )
                        .report();
                    }
                    ((*consts[0]).constvalue, (*consts[1]).constvalue)
                }
            };
            let result = pg_sys::get_fn_expr_argtype((*fcinfo).flinfo, 4);
            build_info(
                Side::Coordinator,
                pg_sys::Oid::from(fnoid.value() as u32),
                &oid_array(types),
                false,
                Some(result),
                (*fcinfo).fncollation,
                mcxt,
            )
        })
    }
}

/// `tessera_combine_agg_sfunc(internal, oid, oid[], internal, anyelement)`: one worker's
/// partial state into the group's state.
///
/// # Safety
/// Called by PostgreSQL's function manager as an aggregate's transition function.
#[unsafe(no_mangle)]
#[pg_guard]
pub unsafe extern "C-unwind" fn tessera_combine_agg_sfunc(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    // SAFETY: argument slots are the function manager's; the partial state is read back with
    // the state type's own deserialization or input function, which check what they read.
    unsafe {
        let cxt = agg_context(fcinfo, "tessera_combine_agg");
        let a = args(fcinfo);
        if a[1].isnull || a[2].isnull {
            error(
                PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED,
                "tessera_combine_agg needs an aggregate and its input types".into(),
            )
            .report();
        }
        let info = combine_info(fcinfo, Some((a[1].value, a[2].value)));
        if (*info).aggfnoid != pg_sys::Oid::from(a[1].value.value() as u32) {
            error(
                PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                "tessera_combine_agg's aggregate must be a constant".into(),
            )
            .report();
        }
        let st = state_of(fcinfo, info, cxt);
        if a[3].isnull {
            return pg_sys::Datum::from(st);
        }
        // SAFETY: an `internal` argument cannot come from SQL: this one is the Tessera scan's
        // (partial_state_datum), checked by its mark and its aggregate.
        let given = a[3].value.cast_mut_ptr::<PartialState>();
        if (*given).magic != PARTIAL_STATE_MAGIC || (*given).aggfnoid != (*info).aggfnoid {
            error(
                PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                "tessera_combine_agg was given a state of another aggregate".into(),
            )
            .report();
        }
        let i = &*info;
        let payload = varlena_bytes(pg_sys::pg_detoast_datum_packed((*given).bytes));
        let Some((&flag, value)) = payload.split_first() else {
            error(
                PgSqlErrorCode::ERRCODE_INVALID_BINARY_REPRESENTATION,
                "an empty partial aggregate state".into(),
            )
            .report();
        };
        let partial = if flag == 0 {
            (pg_sys::Datum::from(0), true)
        } else {
            match &i.serial {
                Some(deserial) => deserial.call(
                    (*fcinfo).context,
                    &[
                        (pg_sys::Datum::from(bytea_of(value)), false),
                        (pg_sys::Datum::from(0), true),
                    ],
                ),
                None => {
                    let _portable = crate::pg::guc::GucScope::portable_output();
                    let text = std::ffi::CString::new(value)
                        .map_err(|_| ())
                        .unwrap_or_else(|_| {
                            error(
                                PgSqlErrorCode::ERRCODE_INVALID_BINARY_REPRESENTATION,
                                "a partial aggregate state holds a NUL byte".into(),
                            )
                            .report()
                        });
                    (
                        pg_sys::OidInputFunctionCall(
                            i.io_fn,
                            text.as_ptr() as *mut _,
                            i.io_param,
                            -1,
                        ),
                        false,
                    )
                }
            }
        };
        advance(st, cxt, (*fcinfo).context, &[partial]);
        pg_sys::Datum::from(st)
    }
}

/// `tessera_combine_agg_ffunc(internal, oid, oid[], internal, anyelement)`: the aggregate's final
/// function over the combined state (its initial value when no worker sent one).
///
/// # Safety
/// Called by PostgreSQL's function manager as an aggregate's final function.
#[unsafe(no_mangle)]
#[pg_guard]
pub unsafe extern "C-unwind" fn tessera_combine_agg_ffunc(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    // SAFETY: the state is one made by tessera_combine_agg_sfunc, or none (then the Info comes
    // from the Aggref's constants, checked like the transition function's arguments).
    unsafe {
        let cxt = agg_context(fcinfo, "tessera_combine_agg");
        let a = args(fcinfo)[0];
        let st = if a.isnull {
            new_state(combine_info(fcinfo, None), cxt)
        } else {
            a.value.cast_mut_ptr::<State>()
        };
        let info = &*(*st).info;
        // As finalize_aggregate: the final function (or the caller) sees a read-only state.
        let value = if !(*st).isnull && info.trans_len == -1 {
            pg_sys::MakeExpandedObjectReadOnlyInternal((*st).value)
        } else {
            (*st).value
        };
        match &info.finalfn {
            None => {
                (*fcinfo).isnull = (*st).isnull;
                value
            }
            Some(f) => {
                let mut input = vec![(value, (*st).isnull)];
                input.resize(f.nargs, (pg_sys::Datum::from(0), true));
                if f.strict() && input.iter().any(|&(_, null)| null) {
                    (*fcinfo).isnull = true;
                    return pg_sys::Datum::from(0);
                }
                let (d, isnull) = f.call((*fcinfo).context, &input);
                (*fcinfo).isnull = isnull;
                d
            }
        }
    }
}
