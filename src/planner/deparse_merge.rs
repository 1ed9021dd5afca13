//! MERGE as worker SQL.
//!
//! PostgreSQL 15's deparser prints SELECT, INSERT, UPDATE and DELETE, but no MERGE
//! (`get_query_def` learned it in 17). A MERGE is its target joined to one source, and a list
//! of actions whose conditions and values are expressions over both. Each part is printed by
//! the deparser itself, in a SELECT over the MERGE's own WITH list and range table: the WITH
//! list alone, then the source in FROM, then the target after it, then each expression as
//! that SELECT's WHERE. Each part is what one printing adds to the one before it, so names,
//! quoting, casts and aliases are the deparser's throughout, and the range table's names are
//! the same in every printing (they are chosen from the whole range table). A printing that
//! does not extend the one before it is refused (0A000), never guessed at.

use std::ffi::c_void;

use pgrx::pg_sys;

use crate::error::TResult;
use crate::pg::nodes::{is_a, list_of, make_list, string};
use crate::planner::query::make_node;
use crate::planner::unsupported;

const REWRITE: &str = "Write the change as INSERT ... ON CONFLICT DO UPDATE, or as an UPDATE and an INSERT in one transaction.";

fn unprintable(what: &str, hint: &str) -> crate::error::TesseraError {
    unsupported(
        format!("cannot send this MERGE to the distributed schema's node: {what}"),
        hint,
    )
}

/// What `after` adds to `before`, less the `joint` keyword it starts with and the white space
/// around that (the deparser indents and wraps lines).
fn extension(before: &str, after: &str, joint: &str) -> TResult<String> {
    after
        .strip_prefix(before)
        .and_then(|rest| rest.trim_start().strip_prefix(joint))
        .map(|rest| rest.trim_start().to_string())
        .ok_or_else(|| {
            unprintable(
                "the deparser printed its parts in an unexpected form",
                REWRITE,
            )
        })
}

/// The target column an action's entry sets, quoted.
///
/// # Safety
/// `relid` is the MERGE target's relation; `te` a valid TargetEntry of one of its actions.
unsafe fn column(relid: pg_sys::Oid, te: *mut pg_sys::TargetEntry) -> String {
    // SAFETY: the attribute exists (the entry was made from it); quote_identifier returns its
    // argument or a palloc'd quoted copy.
    unsafe {
        let name = pg_sys::get_attname(relid, (*te).resno, false);
        string(pg_sys::quote_identifier(name))
    }
}

/// Whether an action's entry assigns the whole column (not `col[1] = ...` or `col.f = ...`,
/// which the printed `SET col = ...` would not say).
///
/// # Safety
/// `te` is a valid TargetEntry.
unsafe fn whole_column(te: *mut pg_sys::TargetEntry) -> bool {
    // SAFETY: reading node tags and the fields of the matching node types.
    unsafe {
        let mut e = (*te).expr as *mut pg_sys::Node;
        while is_a(e as *const c_void, pg_sys::NodeTag::T_CoerceToDomain) {
            e = (*(e as *mut pg_sys::CoerceToDomain)).arg as *mut pg_sys::Node;
        }
        if is_a(e as *const c_void, pg_sys::NodeTag::T_FieldStore) {
            return false;
        }
        !is_a(e as *const c_void, pg_sys::NodeTag::T_SubscriptingRef)
            || (*(e as *mut pg_sys::SubscriptingRef))
                .refassgnexpr
                .is_null()
    }
}

/// Whether a value the deparser prints bare would be a whole-row reference (`v.*`): under
/// the coercions it leaves out (implicit casts), a Var of a whole row. In a VALUES list or a
/// SET, `v.*` is read back as all of v's columns, not as one row value.
///
/// # Safety
/// `e` is a valid expression node.
unsafe fn whole_row(e: *mut pg_sys::Node) -> bool {
    // SAFETY: reading node tags and the fields of the matching node types.
    unsafe {
        let mut e = e;
        loop {
            let tag = (*e).type_;
            let implicit = pg_sys::CoercionForm::COERCE_IMPLICIT_CAST;
            let inner = match tag {
                pg_sys::NodeTag::T_RelabelType => {
                    let r = e as *mut pg_sys::RelabelType;
                    ((*r).relabelformat == implicit).then(|| (*r).arg as *mut pg_sys::Node)
                }
                pg_sys::NodeTag::T_CoerceViaIO => {
                    let c = e as *mut pg_sys::CoerceViaIO;
                    ((*c).coerceformat == implicit).then(|| (*c).arg as *mut pg_sys::Node)
                }
                pg_sys::NodeTag::T_ConvertRowtypeExpr => {
                    let c = e as *mut pg_sys::ConvertRowtypeExpr;
                    ((*c).convertformat == implicit).then(|| (*c).arg as *mut pg_sys::Node)
                }
                pg_sys::NodeTag::T_CoerceToDomain => {
                    let c = e as *mut pg_sys::CoerceToDomain;
                    ((*c).coercionformat == implicit).then(|| (*c).arg as *mut pg_sys::Node)
                }
                pg_sys::NodeTag::T_FuncExpr => {
                    let f = e as *mut pg_sys::FuncExpr;
                    ((*f).funcformat == implicit && !(*f).args.is_null())
                        .then(|| pg_sys::list_nth((*f).args, 0) as *mut pg_sys::Node)
                }
                pg_sys::NodeTag::T_Var => return (*(e as *mut pg_sys::Var)).varattno == 0,
                _ => None,
            };
            match inner {
                Some(i) if !i.is_null() => e = i,
                _ => return false,
            }
        }
    }
}

/// The text of a MERGE `query` (analyzed and rewritten, given aliases by the caller), printed
/// part by part with `print` (`pg_get_querydef` under the caller's settings).
///
/// # Safety
/// `query` is a valid MERGE Query the caller owns (its target's entry is changed).
pub(super) unsafe fn merge_text(
    query: *mut pg_sys::Query,
    print: &dyn Fn(*mut pg_sys::Query) -> String,
) -> TResult<String> {
    // SAFETY: reading and copying the valid Query; the SELECTs are private copies.
    unsafe {
        let target = (*query).resultRelation;
        let jointree = (*query).jointree;
        if target <= 0 || jointree.is_null() {
            return Err(unprintable("it has no target table", REWRITE));
        }
        let source = list_of::<pg_sys::Node>((*jointree).fromlist);
        if source.len() != 1 {
            return Err(unprintable("its source is not one FROM item", REWRITE));
        }
        let rte = pg_sys::list_nth((*query).rtable, target - 1) as *mut pg_sys::RangeTblEntry;
        // The deparser prints only what the query's FROM names (the target is not, in a MERGE).
        (*rte).inFromCl = true;
        let relid = (*rte).relid;

        // The SELECT each part is printed in: the MERGE's WITH list and range table.
        let base = pg_sys::copyObjectImpl(query as *const c_void) as *mut pg_sys::Query;
        (*base).commandType = pg_sys::CmdType::CMD_SELECT;
        (*base).resultRelation = 0;
        (*base).mergeActionList = std::ptr::null_mut();
        (*base).mergeUseOuterJoin = false;
        (*base).targetList = std::ptr::null_mut();
        (*base).returningList = std::ptr::null_mut();
        (*base).withCheckOptions = std::ptr::null_mut();
        (*base).onConflict = std::ptr::null_mut();
        let select = |from: &[*mut pg_sys::Node], quals: *mut pg_sys::Node| -> String {
            let q = pg_sys::copyObjectImpl(base as *const c_void) as *mut pg_sys::Query;
            (*q).jointree = pg_sys::makeFromExpr(make_list(from), quals);
            print(q)
        };
        let target_ref = make_node::<pg_sys::RangeTblRef>(pg_sys::NodeTag::T_RangeTblRef);
        (*target_ref).rtindex = target;
        let both = [source[0], target_ref as *mut pg_sys::Node];

        let with_only = select(&[], std::ptr::null_mut());
        let with = with_only
            .strip_suffix("SELECT")
            .ok_or_else(|| {
                unprintable(
                    "the deparser printed its WITH list in an unexpected form",
                    REWRITE,
                )
            })?
            .to_string();
        let from_source = select(&source, std::ptr::null_mut());
        let source_text = extension(&with_only, &from_source, "FROM")?;
        let from_both = select(&both, std::ptr::null_mut());
        let target_text = extension(&from_source, &from_both, ",")?;
        if target_text.ends_with(')') {
            return Err(unprintable(
                "its target would need a column alias list",
                REWRITE,
            ));
        }
        let expr = |e: *mut pg_sys::Node| -> TResult<String> {
            extension(&from_both, &select(&both, e), "WHERE")
        };

        let on = if (*jointree).quals.is_null() {
            "true".to_string()
        } else {
            expr((*jointree).quals)?
        };
        let mut sql = format!(
            "{}MERGE INTO {target_text} USING {source_text} ON {on}",
            with.trim_start()
        );
        for action in list_of::<pg_sys::MergeAction>((*query).mergeActionList) {
            sql.push_str(if (*action).matched {
                " WHEN MATCHED"
            } else {
                " WHEN NOT MATCHED"
            });
            if !(*action).qual.is_null() {
                sql.push_str(" AND ");
                sql.push_str(&expr((*action).qual)?);
            }
            let entries = list_of::<pg_sys::TargetEntry>((*action).targetList);
            if entries.iter().any(|&te| (*te).resjunk) {
                return Err(unprintable(
                    "it sets several columns from one sub-SELECT (SET (a, b) = (SELECT ...))",
                    "Set each column on its own (SET a = (SELECT ...), b = (SELECT ...)), or from a row of values (SET (a, b) = (x, y)).",
                ));
            }
            if entries
                .iter()
                .any(|&te| whole_row((*te).expr as *mut pg_sys::Node))
            {
                return Err(unprintable(
                    "it gives a whole row of its source as one value (INSERT VALUES (s) or SET col = s)",
                    "Write the row value out: ROW(s.a, s.b) (with a cast to the column's type if it needs one).",
                ));
            }
            if entries.iter().any(|&te| !whole_column(te)) {
                return Err(unprintable(
                    "it sets an array element or a field of a column (SET col[i] = ... or SET col.f = ...)",
                    "Set the whole column to its new value (for an array, SET col = col[:i-1] || x || col[i+1:]).",
                ));
            }
            match (*action).commandType {
                pg_sys::CmdType::CMD_UPDATE => {
                    let mut sets = Vec::with_capacity(entries.len());
                    for &te in &entries {
                        let value = expr((*te).expr as *mut pg_sys::Node)?;
                        sets.push(format!("{} = {value}", column(relid, te)));
                    }
                    sql.push_str(" THEN UPDATE SET ");
                    sql.push_str(&sets.join(", "));
                }
                pg_sys::CmdType::CMD_DELETE => sql.push_str(" THEN DELETE"),
                pg_sys::CmdType::CMD_NOTHING => sql.push_str(" THEN DO NOTHING"),
                pg_sys::CmdType::CMD_INSERT => {
                    sql.push_str(" THEN INSERT");
                    // After the column list: INSERT (cols) OVERRIDING ... VALUE VALUES (...).
                    let overriding = match (*action).override_ {
                        pg_sys::OverridingKind::OVERRIDING_SYSTEM_VALUE => {
                            " OVERRIDING SYSTEM VALUE"
                        }
                        pg_sys::OverridingKind::OVERRIDING_USER_VALUE => " OVERRIDING USER VALUE",
                        _ => "",
                    };
                    if entries.is_empty() {
                        sql.push_str(" DEFAULT VALUES");
                    } else {
                        let mut columns = Vec::with_capacity(entries.len());
                        let mut values = Vec::with_capacity(entries.len());
                        for &te in &entries {
                            columns.push(column(relid, te));
                            values.push(expr((*te).expr as *mut pg_sys::Node)?);
                        }
                        sql.push_str(&format!(
                            " ({}){overriding} VALUES ({})",
                            columns.join(", "),
                            values.join(", ")
                        ));
                    }
                }
                _ => {
                    return Err(unprintable(
                        "one of its actions is of an unknown kind",
                        REWRITE,
                    ))
                }
            }
        }
        Ok(sql)
    }
}
