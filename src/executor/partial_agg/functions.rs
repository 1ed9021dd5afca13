//! The four functions the aggregates across shards are made of: `tessera_partial_agg`'s
//! transition and final functions (on the workers: rows into the aggregate's state, the state
//! serialized) and `tessera_combine_agg`'s (on the coordinator: the states read back, merged
//! and finished). What they call is found and checked in the parent module.

use std::ffi::{c_int, CStr};

use pgrx::pg_sys;
use pgrx::pg_sys::ffi::pg_guard_ffi_boundary;
use pgrx::prelude::*;

use super::*;

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
