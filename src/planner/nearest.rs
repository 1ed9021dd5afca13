//! Nearest-neighbour searches: a SELECT whose shard queries are `ORDER BY <distance> LIMIT k`
//! over one table, a shape a shard's ANN index (pgvector's HNSW or IVFFlat, GiST) can serve.
//! The plan records it ([`Nearest`]) so that the executor runs those shard queries with the
//! settings that make the node use its index (see `executor::task::task_settings`). The query
//! vector may be a subquery (`ORDER BY embedding <=> (SELECT embedding FROM items WHERE id =
//! 1)`): an index scan orders by it as by a parameter.

use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::c_void;

use pgrx::pg_sys;
use pgrx::spi::Spi;
use tessera_core::plan::Nearest;

use crate::pg::nodes::{is_a, list_of};
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
        let jointree = (*w).jointree;
        if jointree.is_null() || list_of::<pg_sys::Node>((*jointree).fromlist).len() != 1 {
            return None;
        }
        let first = *list_of::<pg_sys::SortGroupClause>((*w).sortClause).first()?;
        let tle = list_of::<pg_sys::TargetEntry>((*w).targetList)
            .into_iter()
            .find(|t| (**t).ressortgroupref == (*first).tleSortGroupRef)?;
        let e = strip((*tle).expr as *mut pg_sys::Node);
        if !is_a(e as *const c_void, pg_sys::NodeTag::T_OpExpr) {
            return None;
        }
        let op = e as *mut pg_sys::OpExpr;
        if list_of::<pg_sys::Node>((*op).args).len() != 2 || !orders_an_index((*op).opno) {
            return None;
        }
        let (limit, limit_param) = shard_limit((*w).limitCount, (*w).limitOffset);
        Some(Nearest {
            filtered: !(*jointree).quals.is_null(),
            limit,
            limit_param,
        })
    }
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

thread_local! {
    /// Operators looked up: whether an index access method orders by each.
    static ORDERING: RefCell<HashMap<u32, bool>> = RefCell::new(HashMap::new());
}

/// Whether `opno` is an ordering operator of some index operator family (`pg_amop` with
/// purpose `o`): an index scan can return rows in its order.
fn orders_an_index(opno: pg_sys::Oid) -> bool {
    if let Some(known) = ORDERING.with(|c| c.borrow().get(&opno.to_u32()).copied()) {
        return known;
    }
    let ordering = Spi::get_one_with_args::<bool>(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_amop WHERE amopopr = $1 AND amoppurpose = 'o')",
        &[opno.into()],
    )
    .ok()
    .flatten()
    .unwrap_or(false);
    ORDERING.with(|c| c.borrow_mut().insert(opno.to_u32(), ordering));
    ordering
}
