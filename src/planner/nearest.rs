//! Nearest-neighbour searches: a SELECT whose shard queries are `ORDER BY <distance> LIMIT k`
//! over one table with an index that returns rows in that order (pgvector's HNSW or IVFFlat,
//! GiST). The plan records it ([`Nearest`]) so that the executor runs those shard queries with
//! the settings that make the node use its index (see `executor::task::task_settings`). The
//! query vector may be a parameter or a subquery (`ORDER BY embedding <=> (SELECT embedding
//! FROM items WHERE id = 1)`): an index scan orders by either.

use std::ffi::c_void;

use pgrx::pg_sys;
use pgrx::spi::Spi;
use tessera_core::plan::{Nearest, NearestIndex};
use tessera_core::sqltext::unparenthesized;

use crate::pg::nodes::{is_a, list_of, string};
use crate::planner::combine::strip;

/// The nearest-neighbour shape of the shard query `w`, if it has it.
///
/// # Safety
/// `w` is a valid analyzed Query.
pub(crate) unsafe fn nearest(w: *mut pg_sys::Query) -> Option<Nearest> {
    // SAFETY: reading a valid Query.
    unsafe {
        if (*w).commandType != pg_sys::CmdType::CMD_SELECT
            || (*w).hasAggs
            || (*w).hasWindowFuncs
            || (*w).hasTargetSRFs
            || !(*w).groupClause.is_null()
            || !(*w).distinctClause.is_null()
            || !(*w).setOperations.is_null()
            || !(*w).cteList.is_null()
            || (*w).limitCount.is_null()
            || (*w).sortClause.is_null()
        {
            return None;
        }
        let rtes = list_of::<pg_sys::RangeTblEntry>((*w).rtable);
        if rtes.len() != 1 || (*rtes[0]).rtekind != pg_sys::RTEKind::RTE_RELATION {
            return None;
        }
        let rte = rtes[0];
        let jointree = (*w).jointree;
        if jointree.is_null() || list_of::<pg_sys::Node>((*jointree).fromlist).len() != 1 {
            return None;
        }
        let first = *list_of::<pg_sys::SortGroupClause>((*w).sortClause).first()?;
        let tle = list_of::<pg_sys::TargetEntry>((*w).targetList)
            .into_iter()
            .find(|t| (**t).ressortgroupref == (*first).tleSortGroupRef)?;
        let e = strip((*tle).expr as *mut pg_sys::Node);
        if !is_a(e as *const c_void, pg_sys::NodeTag::T_OpExpr) || (*first).nulls_first {
            return None;
        }
        // Nearest first: the ORDER BY sorts ascending (an index returns the smallest first).
        let (mut family, mut input, mut strategy) = (pg_sys::InvalidOid, pg_sys::InvalidOid, 0i16);
        if !pg_sys::get_ordering_op_properties(
            (*first).sortop,
            &mut family,
            &mut input,
            &mut strategy,
        ) || strategy != pg_sys::BTLessStrategyNumber as i16
        {
            return None;
        }
        let op = e as *mut pg_sys::OpExpr;
        let args = list_of::<pg_sys::Node>((*op).args);
        // An index orders by `indexed <op> query`: the query side holds no column of the row.
        if args.len() != 2 || pg_sys::contain_vars_of_level(args[1], 0) {
            return None;
        }
        let index = ordering_index((*rte).relid, (*op).opno, strip(args[0]))?;
        // The distance's place among the columns the shard returns (resjunk ones are not
        // sent), when the coordinator can compare rows by it as the ORDER BY does: a float8
        // by its `<` (every pgvector distance), and a LIMIT that keeps no ties beyond it.
        let comparable = !(*tle).resjunk
            && pg_sys::exprType(e) == pg_sys::FLOAT8OID
            && (*first).sortop == pg_sys::Oid::from(pg_sys::Float8LessOperator)
            && (*w).limitOption != pg_sys::LimitOption::LIMIT_OPTION_WITH_TIES;
        let distance_column = if !comparable {
            None
        } else {
            Some(
                list_of::<pg_sys::TargetEntry>((*w).targetList)
                    .into_iter()
                    .take_while(|t| *t != tle)
                    .filter(|t| !(**t).resjunk)
                    .count(),
            )
        };
        let (limit, limit_param) = shard_limit((*w).limitCount, (*w).limitOffset);
        let quals = (*jointree).quals;
        Some(Nearest {
            index,
            filtered: !(quals.is_null() || is_true(quals)) || !(*rte).securityQuals.is_null(),
            limit,
            limit_param,
            distance_column,
        })
    }
}

/// Whether `n` is the constant `true` (`WHERE true`).
unsafe fn is_true(n: *mut pg_sys::Node) -> bool {
    // SAFETY: reading a valid expression.
    unsafe {
        if !is_a(n as *const c_void, pg_sys::NodeTag::T_Const) {
            return false;
        }
        let c = n as *mut pg_sys::Const;
        (*c).consttype == pg_sys::BOOLOID && !(*c).constisnull && (*c).constvalue.value() != 0
    }
}

/// The kind of a valid index of `relid` whose first key is `key` and whose operator family
/// orders by `opno` (`pg_amop` purpose `o`): an index scan returns the rows in that order.
///
/// # Safety
/// `key` is a valid expression over the relation (range table index 1).
unsafe fn ordering_index(
    relid: pg_sys::Oid,
    opno: pg_sys::Oid,
    key: *mut pg_sys::Node,
) -> Option<NearestIndex> {
    // SAFETY: reading the expression; deparse_expression of a valid expression in the context
    // of its relation.
    let (attno, text) = unsafe {
        if is_a(key as *const c_void, pg_sys::NodeTag::T_Var) {
            ((*(key as *mut pg_sys::Var)).varattno, String::new())
        } else {
            let rel = pg_sys::get_rel_name(relid);
            if rel.is_null() {
                return None;
            }
            let ctx = pg_sys::deparse_context_for(rel, relid);
            (
                0,
                string(pg_sys::deparse_expression(key, ctx, false, false)),
            )
        }
    };
    let found = Spi::connect(|client| {
        let rows = client.select(
            "SELECT am.amname::text, i.indkey[0]::int,
                    pg_catalog.pg_get_indexdef(i.indexrelid, 1, false)
               FROM pg_catalog.pg_index i
               JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid
               JOIN pg_catalog.pg_am am ON am.oid = c.relam
               JOIN pg_catalog.pg_opclass oc ON oc.oid = i.indclass[0]
              WHERE i.indrelid = $1 AND i.indisvalid AND i.indpred IS NULL
                AND EXISTS (SELECT 1 FROM pg_catalog.pg_amop o
                             WHERE o.amopfamily = oc.opcfamily AND o.amopopr = $2
                               AND o.amoppurpose = 'o')
              ORDER BY i.indexrelid",
            None,
            &[relid.into(), opno.into()],
        )?;
        let mut out = None;
        for row in rows {
            let am: String = row.get(1)?.unwrap_or_default();
            let first: i32 = row.get(2)?.unwrap_or(-1);
            let def: String = row.get(3)?.unwrap_or_default();
            let matches = if attno > 0 {
                first == i32::from(attno)
            } else {
                first == 0 && unparenthesized(&def) == unparenthesized(&text)
            };
            if matches {
                out = Some(match am.as_str() {
                    "hnsw" => NearestIndex::Hnsw,
                    "ivfflat" => NearestIndex::Ivfflat,
                    _ => NearestIndex::Exact,
                });
                break;
            }
        }
        Ok::<_, pgrx::spi::Error>(out)
    });
    found.ok().flatten()
}

/// The rows each shard query returns: (constant LIMIT + OFFSET, or the parameter of a
/// `LIMIT $n` without OFFSET).
unsafe fn shard_limit(
    count: *mut pg_sys::Node,
    offset: *mut pg_sys::Node,
) -> (Option<i64>, Option<usize>) {
    // SAFETY: reading valid expressions.
    unsafe {
        let offset = if offset.is_null() {
            Some(0)
        } else {
            super::combine::const_int8(offset)
        };
        if let (Some(c), Some(o)) = (super::combine::const_int8(count), offset) {
            return (Some(c.saturating_add(o)), None);
        }
        let c = strip(count);
        if offset == Some(0) && is_a(c as *const c_void, pg_sys::NodeTag::T_Param) {
            let p = c as *mut pg_sys::Param;
            if (*p).paramkind == pg_sys::ParamKind::PARAM_EXTERN && (*p).paramid > 0 {
                return (None, Some((*p).paramid as usize));
            }
        }
        (None, None)
    }
}
