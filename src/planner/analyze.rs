//! What a query touches and how it is pinned: the facts the tiers are chosen from.
//!
//! [`analyze`] walks every level of a Query (the top level, subqueries in FROM, CTEs, sublinks)
//! and finds each relation Tessera distributes. At each level it collects the equalities of
//! the WHERE clause and join conditions into equivalence classes of columns; a class that also
//! equals a constant or a parameter pins every distribution column in it to that value. From
//! that:
//!
//! - a table is *pinned* when its distribution column's class holds a value (`= 5`, `= $1`);
//! - hash-distributed tables at one level are *joined on the distribution column* when their
//!   distribution columns share one class.

use std::ffi::c_void;
use std::rc::Rc;

use pgrx::pg_sys;
use pgrx::prelude::*;

use crate::error::{TResult, TesseraError};
use crate::metadata::cache::{self, TableMeta};
use crate::pg::nodes::{is_a, list_of};

/// The value a distribution column is pinned to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PinValue {
    /// A constant, already hashed with the column type's hash function.
    Hash(i32),
    /// An external parameter `$id` (1-based), hashed at execution.
    Param(i32),
    /// One of these constants (`IN (...)`, `= ANY ('{...}')`), hashed, sorted, without
    /// duplicates (NULLs, which match nothing, left out).
    Hashes(Vec<i32>),
}

/// One reference to a distributed or reference table.
pub struct DistRte {
    pub meta: Rc<TableMeta>,
    /// At the top level or in a transparent subquery of it (see `Analysis::hash_levels`): the
    /// query can run per shard group as far as this table is concerned.
    pub top_level: bool,
    /// In the outermost query's own range table (`rti` indexes it).
    pub outermost: bool,
    /// Range table index at its level.
    pub rti: u32,
    pub pin: Option<PinValue>,
    /// The equivalence class of its distribution column at its level (hash tables only).
    pub class: Option<usize>,
}

/// What [`analyze`] found.
pub struct Analysis {
    pub rtes: Vec<DistRte>,
    /// Ordinary tables (not distributed) the query also reads, by name.
    pub local_tables: Vec<pg_sys::Oid>,
    /// The query has levels other than the top one that are not transparent: CTEs, sublinks,
    /// subqueries that aggregate, sort, limit or de-duplicate.
    pub has_sublevels: bool,
    /// How many transparent levels (the top one and simple subqueries in its FROM, such as
    /// views) directly hold hash-distributed tables. More than one: the join between them is
    /// not checked, so the query is not pushed down across shards.
    pub hash_levels: usize,
    /// At the top level, the hash-distributed tables' distribution columns are all in one
    /// equivalence class (trivially true with fewer than two).
    pub top_joined_on_dist_col: bool,
    /// A reference table sits on the preserved side of an outer join with a distributed
    /// table at the top level (running it per shard would repeat its rows).
    pub reference_outer_join: bool,
    /// The query reads the kept rows of a WITH query (`tessera_cte_results`), which only the
    /// coordinator has: like a local table, it cannot be part of a shard query.
    pub cte_results: bool,
    /// A distributed table's row-level security policy reads `session_user` (see
    /// `policies::policy_reads_session_user`).
    pub reads_session_user: bool,
}

impl Analysis {
    pub fn hash_rtes(&self) -> impl Iterator<Item = &DistRte> {
        self.rtes.iter().filter(|r| !r.meta.is_reference())
    }
}

/// Does the query touch any table Tessera distributes? The planner hook's fast path: one
/// cached lookup per relation, no catalog scan.
///
/// # Safety
/// `query` is a valid analyzed Query.
pub unsafe fn touches_distributed(query: *mut pg_sys::Query) -> TResult<bool> {
    let mut found = FastCheck {
        any: false,
        error: None,
    };
    // SAFETY: walking the query tree with our context.
    unsafe {
        pg_sys::query_tree_walker(
            query,
            Some(fast_walker),
            &mut found as *mut FastCheck as *mut c_void,
            pg_sys::QTW_EXAMINE_RTES_BEFORE as i32,
        );
    }
    match found.error {
        Some(e) => Err(e),
        None => Ok(found.any),
    }
}

struct FastCheck {
    any: bool,
    error: Option<TesseraError>,
}

#[pg_guard]
unsafe extern "C-unwind" fn fast_walker(node: *mut pg_sys::Node, ctx: *mut c_void) -> bool {
    if node.is_null() {
        return false;
    }
    // SAFETY: called by the tree walkers with valid nodes and our FastCheck context.
    unsafe {
        let found = &mut *(ctx as *mut FastCheck);
        if is_a(node as *const c_void, pg_sys::NodeTag::T_RangeTblEntry) {
            let rte = node as *mut pg_sys::RangeTblEntry;
            if (*rte).rtekind == pg_sys::RTEKind::RTE_RELATION {
                match cache::lookup((*rte).relid) {
                    Ok(Some(_)) => {
                        found.any = true;
                        return true;
                    }
                    Ok(None) => {}
                    Err(e) => {
                        found.error = Some(e);
                        return true;
                    }
                }
            }
            return false;
        }
        if is_a(node as *const c_void, pg_sys::NodeTag::T_Query) {
            return pg_sys::query_tree_walker(
                node as *mut pg_sys::Query,
                Some(fast_walker),
                ctx,
                pg_sys::QTW_EXAMINE_RTES_BEFORE as i32,
            );
        }
        crate::pg::nodes::walk_children(node, Some(fast_walker), ctx)
    }
}

/// Walks every level of `query`.
///
/// # Safety
/// `query` is a valid analyzed Query.
pub unsafe fn analyze(query: *mut pg_sys::Query) -> TResult<Analysis> {
    let mut a = Analysis {
        rtes: Vec::new(),
        local_tables: Vec::new(),
        has_sublevels: false,
        hash_levels: 0,
        top_joined_on_dist_col: true,
        reference_outer_join: false,
        cte_results: false,
        reads_session_user: false,
    };
    // SAFETY: forwarded.
    unsafe { visit(query, true, true, &mut a)? };
    if a.hash_levels > 1 {
        a.top_joined_on_dist_col = false;
    }
    Ok(a)
}

/// A subquery PostgreSQL would pull up into its parent (a view's, typically): it neither
/// aggregates, sorts, limits nor de-duplicates, so running it per shard changes nothing.
unsafe fn is_simple(q: *mut pg_sys::Query) -> bool {
    // SAFETY: reading Query fields.
    unsafe {
        !(*q).hasAggs
            && (*q).groupClause.is_null()
            && (*q).havingQual.is_null()
            && (*q).sortClause.is_null()
            && (*q).limitCount.is_null()
            && (*q).limitOffset.is_null()
            && (*q).distinctClause.is_null()
            && !(*q).hasWindowFuncs
            && (*q).setOperations.is_null()
            && !(*q).hasTargetSRFs
            && (*q).cteList.is_null()
            && !(*q).hasSubLinks
            && (*q).rowMarks.is_null()
            && (*q).groupingSets.is_null()
    }
}

/// Equivalence classes of `(varno, varattno)` columns at one query level.
#[derive(Default)]
struct Classes {
    parent: Vec<usize>,
    keys: Vec<(u32, i16)>,
    /// Values each class is equal to: (class root resolved later, operator, the operator's
    /// input collation, value).
    values: Vec<(usize, pg_sys::Oid, pg_sys::Oid, ValueExpr)>,
}

#[derive(Clone, Copy)]
enum ValueExpr {
    Const(*mut pg_sys::Const),
    Param(i32),
    /// A non-null array constant the column equals one element of.
    Array(*mut pg_sys::Const),
}

impl Classes {
    fn id(&mut self, key: (u32, i16)) -> usize {
        if let Some(i) = self.keys.iter().position(|k| *k == key) {
            return i;
        }
        self.keys.push(key);
        self.parent.push(self.parent.len());
        self.parent.len() - 1
    }

    fn find(&mut self, mut i: usize) -> usize {
        while self.parent[i] != i {
            self.parent[i] = self.parent[self.parent[i]];
            i = self.parent[i];
        }
        i
    }

    fn union(&mut self, a: usize, b: usize) {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra != rb {
            self.parent[ra] = rb;
        }
    }
}

/// The Var under any RelabelType (binary-compatible casts), if the node is a plain Var of
/// this level.
unsafe fn plain_var(node: *mut pg_sys::Node) -> Option<*mut pg_sys::Var> {
    // SAFETY: following expression node pointers of a valid tree.
    unsafe {
        let n = without_relabel(node);
        if is_a(n as *const c_void, pg_sys::NodeTag::T_Var) {
            let v = n as *mut pg_sys::Var;
            if (*v).varlevelsup == 0 && (*v).varattno > 0 {
                return Some(v);
            }
        }
    }
    None
}

/// The node under any RelabelType (binary-compatible casts).
///
/// # Safety
/// `node` is null or a valid expression node.
unsafe fn without_relabel(node: *mut pg_sys::Node) -> *mut pg_sys::Node {
    let mut n = node;
    // SAFETY: following expression node pointers of a valid tree.
    unsafe {
        while is_a(n as *const c_void, pg_sys::NodeTag::T_RelabelType) {
            n = (*(n as *mut pg_sys::RelabelType)).arg as *mut pg_sys::Node;
        }
    }
    n
}

unsafe fn value_expr(node: *mut pg_sys::Node) -> Option<ValueExpr> {
    // SAFETY: as in plain_var.
    unsafe {
        let n = without_relabel(node);
        if is_a(n as *const c_void, pg_sys::NodeTag::T_Const) {
            let c = n as *mut pg_sys::Const;
            if !(*c).constisnull {
                return Some(ValueExpr::Const(c));
            }
        }
        if is_a(n as *const c_void, pg_sys::NodeTag::T_Param) {
            let p = n as *mut pg_sys::Param;
            if (*p).paramkind == pg_sys::ParamKind::PARAM_EXTERN {
                return Some(ValueExpr::Param((*p).paramid));
            }
        }
    }
    None
}

/// Adds the top-level AND-ed conditions of `node` to the classes; equalities with a value
/// only when `values` (they filter the rows of the whole level).
unsafe fn add_conjuncts(node: *mut pg_sys::Node, classes: &mut Classes, values: bool) {
    if node.is_null() {
        return;
    }
    // SAFETY: reading expression nodes of a valid tree.
    unsafe {
        if is_a(node as *const c_void, pg_sys::NodeTag::T_List) {
            for item in list_of::<pg_sys::Node>(node as *mut pg_sys::List) {
                add_conjuncts(item, classes, values);
            }
            return;
        }
        if is_a(node as *const c_void, pg_sys::NodeTag::T_BoolExpr) {
            let b = node as *mut pg_sys::BoolExpr;
            if (*b).boolop == pg_sys::BoolExprType::AND_EXPR {
                for item in list_of::<pg_sys::Node>((*b).args) {
                    add_conjuncts(item, classes, values);
                }
            }
            return;
        }
        if is_a(node as *const c_void, pg_sys::NodeTag::T_ScalarArrayOpExpr) {
            // `col = ANY (array constant)`, the parser's form of `col IN (constants)`.
            let sa = node as *mut pg_sys::ScalarArrayOpExpr;
            let args = list_of::<pg_sys::Node>((*sa).args);
            if !values || !(*sa).useOr || args.len() != 2 {
                return;
            }
            let Some(v) = plain_var(args[0]) else {
                return;
            };
            // `IN (1, 2)` is an ARRAY[...] expression with casts until the planner folds it:
            // folded here the same way (immutable functions only), into a copy.
            let mut array = args[1];
            if !is_a(array as *const c_void, pg_sys::NodeTag::T_Const)
                && !pg_sys::contain_mutable_functions(array)
            {
                array = pg_sys::eval_const_expressions(std::ptr::null_mut(), array);
            }
            array = without_relabel(array);
            if is_a(array as *const c_void, pg_sys::NodeTag::T_Const) {
                let c = array as *mut pg_sys::Const;
                if !(*c).constisnull {
                    let i = classes.id(((*v).varno as u32, (*v).varattno));
                    classes
                        .values
                        .push((i, (*sa).opno, (*sa).inputcollid, ValueExpr::Array(c)));
                }
            }
            return;
        }
        if !is_a(node as *const c_void, pg_sys::NodeTag::T_OpExpr) {
            return;
        }
        let op = node as *mut pg_sys::OpExpr;
        let args = list_of::<pg_sys::Node>((*op).args);
        if args.len() != 2 {
            return;
        }
        let left_type = pg_sys::exprType(args[0]);
        if !pg_sys::op_mergejoinable((*op).opno, left_type)
            && !pg_sys::op_hashjoinable((*op).opno, left_type)
        {
            return;
        }
        match (plain_var(args[0]), plain_var(args[1])) {
            (Some(a), Some(b)) => {
                let ia = classes.id(((*a).varno as u32, (*a).varattno));
                let ib = classes.id(((*b).varno as u32, (*b).varattno));
                classes.union(ia, ib);
            }
            (Some(v), None) | (None, Some(v)) if values => {
                let other = if plain_var(args[0]).is_some() {
                    args[1]
                } else {
                    args[0]
                };
                if let Some(value) = value_expr(other) {
                    let i = classes.id(((*v).varno as u32, (*v).varattno));
                    classes
                        .values
                        .push((i, (*op).opno, (*op).inputcollid, value));
                }
            }
            _ => {}
        }
    }
}

/// Adds the conditions of a FROM item; `values` is false below the nullable side of an outer
/// join, where a condition does not filter the rows of the whole level.
unsafe fn add_from_item(node: *mut pg_sys::Node, classes: &mut Classes, values: bool) {
    // SAFETY: reading jointree nodes of a valid tree.
    unsafe {
        if is_a(node as *const c_void, pg_sys::NodeTag::T_JoinExpr) {
            let j = node as *mut pg_sys::JoinExpr;
            let (left, right) = match (*j).jointype {
                pg_sys::JoinType::JOIN_INNER => (values, values),
                pg_sys::JoinType::JOIN_LEFT => (values, false),
                pg_sys::JoinType::JOIN_RIGHT => (false, values),
                _ => (false, false),
            };
            add_from_item((*j).larg, classes, left);
            add_from_item((*j).rarg, classes, right);
            // An outer join's condition decides which rows of the two sides meet, not which
            // rows the join returns: its column equalities count for co-location (rows meet
            // only within a shard group), but an equality with a value pins nothing (the
            // preserved side keeps every row, `ON m.tenant_id = 5` or not).
            let inner = (*j).jointype == pg_sys::JoinType::JOIN_INNER;
            add_conjuncts((*j).quals, classes, values && inner);
        } else if is_a(node as *const c_void, pg_sys::NodeTag::T_FromExpr) {
            let f = node as *mut pg_sys::FromExpr;
            for item in list_of::<pg_sys::Node>((*f).fromlist) {
                add_from_item(item, classes, values);
            }
            add_conjuncts((*f).quals, classes, values);
        }
    }
}

/// The pin of the class of `key`, if the class holds a value whose equality operator belongs
/// to the distribution column's hash operator family.
unsafe fn pin_of(
    classes: &mut Classes,
    key: (u32, i16),
    meta: &TableMeta,
) -> TResult<Option<PinValue>> {
    let Some(i) = classes.keys.iter().position(|k| *k == key) else {
        return Ok(None);
    };
    let root = classes.find(i);
    let values = classes.values.clone();
    let mut hashes = None;
    for (j, opno, collation, value) in values {
        if classes.find(j) != root {
            continue;
        }
        // SAFETY: catalog lookups.
        if !unsafe { pg_sys::op_in_opfamily(opno, meta.hash_opfamily) } {
            continue;
        }
        // Equal under another collation that is not deterministic ('Alice' COLLATE a
        // case-insensitive one) is not equal under the column's, by which rows are hashed.
        let other_collation = collation != meta.dist_collation && collation != pg_sys::InvalidOid;
        // SAFETY: a catalog lookup of a valid collation.
        if other_collation && !unsafe { pg_sys::get_collation_isdeterministic(collation) } {
            continue;
        }
        match value {
            // One value pins more than a list of them.
            ValueExpr::Const(c) => {
                // SAFETY: a non-null Const of the tree.
                return Ok(Some(PinValue::Hash(unsafe { hash_const(c, meta)? })));
            }
            ValueExpr::Param(id) => return Ok(Some(PinValue::Param(id))),
            ValueExpr::Array(c) if hashes.is_none() => {
                // SAFETY: a non-null array Const of the tree.
                hashes = Some(unsafe { hash_array(c, meta)? })
            }
            ValueExpr::Array(_) => {}
        }
    }
    Ok(hashes.map(PinValue::Hashes))
}

/// The hashes of an array constant's elements as values of the distribution column's type,
/// sorted and without duplicates; NULL elements match nothing and are left out.
unsafe fn hash_array(c: *mut pg_sys::Const, meta: &TableMeta) -> TResult<Vec<i32>> {
    // SAFETY: a non-null array Const; its element type's storage properties come from the
    // catalog, and the elements are read as that type.
    unsafe {
        let array =
            pg_sys::pg_detoast_datum((*c).constvalue.cast_mut_ptr()) as *mut pg_sys::ArrayType;
        let elem = (*array).elemtype;
        let (mut len, mut byval, mut align) = (0i16, false, 0 as std::ffi::c_char);
        pg_sys::get_typlenbyvalalign(elem, &mut len, &mut byval, &mut align);
        let mut datums: *mut pg_sys::Datum = std::ptr::null_mut();
        let mut nulls: *mut bool = std::ptr::null_mut();
        let mut n = 0;
        pg_sys::deconstruct_array(
            array,
            elem,
            len as i32,
            byval,
            align,
            &mut datums,
            &mut nulls,
            &mut n,
        );
        let mut out = Vec::with_capacity(n as usize);
        for k in 0..n as usize {
            if *nulls.add(k) {
                continue;
            }
            out.push(hash_member(*datums.add(k), elem, meta)?);
        }
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }
}

/// A hash operator family's standard hash function (hash.h's HASHSTANDARD_PROC).
const HASHSTANDARD_PROC: i16 = 1;

/// Hashes a constant as the shards' rows are hashed.
unsafe fn hash_const(c: *mut pg_sys::Const, meta: &TableMeta) -> TResult<i32> {
    // SAFETY: a non-null Const.
    unsafe { hash_member((*c).constvalue, (*c).consttype, meta) }
}

/// The hash of a value of type `typid` that an operator of the distribution column's hash
/// operator family compares with the column (`int8_col = 5`, `int2_col IN (1, 100000)`):
/// the family's hash function for that type, which hashes equal values of its types alike.
/// Failing one (a type the family knows only through a cast), the value converted through
/// text to the column's type.
unsafe fn hash_member(datum: pg_sys::Datum, typid: pg_sys::Oid, meta: &TableMeta) -> TResult<i32> {
    // SAFETY: catalog lookups; the hash function takes one value of its type.
    unsafe {
        if typid == meta.dist_type {
            return Ok(crate::sharding::hash_datum(
                meta.hash_proc,
                meta.dist_collation,
                datum,
            ));
        }
        let proc = pg_sys::get_opfamily_proc(meta.hash_opfamily, typid, typid, HASHSTANDARD_PROC);
        if proc != pg_sys::InvalidOid {
            return Ok(crate::sharding::hash_datum(
                proc,
                meta.dist_collation,
                datum,
            ));
        }
        let text = crate::pg::datum::value_to_text(datum, typid);
        let datum = crate::pg::datum::text_to_value(&text, meta.dist_type, -1)?;
        Ok(crate::sharding::hash_datum(
            meta.hash_proc,
            meta.dist_collation,
            datum,
        ))
    }
}

unsafe fn visit(
    query: *mut pg_sys::Query,
    top: bool,
    outermost: bool,
    a: &mut Analysis,
) -> TResult<()> {
    // SAFETY: reading a valid Query tree.
    unsafe {
        let mut classes = Classes::default();
        if !(*query).jointree.is_null() {
            add_from_item((*query).jointree as *mut pg_sys::Node, &mut classes, true);
        }
        let mut own = Vec::new();
        for (i, rte) in list_of::<pg_sys::RangeTblEntry>((*query).rtable)
            .into_iter()
            .enumerate()
        {
            let rti = i as u32 + 1;
            match (*rte).rtekind {
                pg_sys::RTEKind::RTE_RELATION => match cache::lookup((*rte).relid)? {
                    Some(meta) => {
                        let (pin, class) = if !meta.has_dist_column() {
                            (None, None)
                        } else {
                            let key = (rti, meta.table.dist_attnum);
                            let pin = pin_of(&mut classes, key, &meta)?;
                            let class = classes
                                .keys
                                .iter()
                                .position(|k| *k == key)
                                .map(|p| classes.find(p));
                            (pin, class)
                        };
                        own.push(a.rtes.len());
                        a.rtes.push(DistRte {
                            meta,
                            top_level: top,
                            outermost,
                            rti,
                            pin,
                            class,
                        });
                    }
                    None => {
                        // Not in FROM: the placeholders of a view's or materialized view's rule
                        // (`*OLD*`, `*NEW*` in PostgreSQL 15), which nothing reads.
                        let read = (*rte).inFromCl || rti as i32 == (*query).resultRelation;
                        if read && matches!((*rte).relkind as u8, b'r' | b'p' | b'm' | b'f') {
                            a.local_tables.push((*rte).relid);
                        }
                    }
                },
                pg_sys::RTEKind::RTE_FUNCTION => {
                    a.cte_results |= super::with_first::reads_cte_results(rte);
                }
                pg_sys::RTEKind::RTE_SUBQUERY => {
                    let transparent = top && is_simple((*rte).subquery);
                    if !transparent {
                        a.has_sublevels = true;
                    }
                    visit((*rte).subquery, transparent, false, a)?;
                }
                _ => {}
            }
        }
        for cte in list_of::<pg_sys::CommonTableExpr>((*query).cteList) {
            a.has_sublevels = true;
            visit((*cte).ctequery as *mut pg_sys::Query, false, false, a)?;
        }
        // Sublinks anywhere in this level's expressions, but not in a distributed table's
        // row-level security quals and WITH CHECK options, set aside for the walk.
        let set_aside = super::policies::set_aside(query, &mut a.reads_session_user)?;
        let mut sub = SublinkWalk {
            queries: Vec::new(),
        };
        pg_sys::query_tree_walker(
            query,
            Some(sublink_walker),
            &mut sub as *mut SublinkWalk as *mut c_void,
            (pg_sys::QTW_IGNORE_RT_SUBQUERIES | pg_sys::QTW_IGNORE_CTE_SUBQUERIES) as i32,
        );
        drop(set_aside);
        for q in sub.queries {
            a.has_sublevels = true;
            visit(q, false, false, a)?;
        }
        if top {
            let hash: Vec<&DistRte> = own
                .iter()
                .map(|&i| &a.rtes[i])
                .filter(|r| !r.meta.is_reference())
                .collect();
            if !hash.is_empty() {
                a.hash_levels += 1;
            }
            if hash.len() > 1 {
                let c0 = hash[0].class;
                if !(c0.is_some() && hash.iter().all(|r| r.class == c0)) {
                    a.top_joined_on_dist_col = false;
                }
            }
            if !(*query).jointree.is_null() {
                let mut bad = false;
                for item in list_of::<pg_sys::Node>((*(*query).jointree).fromlist) {
                    outer_join_sides(item, query, &mut bad)?;
                }
                a.reference_outer_join |= bad;
            }
        }
    }
    Ok(())
}

struct SublinkWalk {
    queries: Vec<*mut pg_sys::Query>,
}

#[pg_guard]
unsafe extern "C-unwind" fn sublink_walker(node: *mut pg_sys::Node, ctx: *mut c_void) -> bool {
    if node.is_null() {
        return false;
    }
    // SAFETY: called by the tree walkers with valid nodes and our context.
    unsafe {
        if is_a(node as *const c_void, pg_sys::NodeTag::T_Query) {
            (*(ctx as *mut SublinkWalk))
                .queries
                .push(node as *mut pg_sys::Query);
            return false;
        }
        crate::pg::nodes::walk_children(node, Some(sublink_walker), ctx)
    }
}

/// What a FROM item holds: (hash-distributed tables, reference tables).
unsafe fn contents(node: *mut pg_sys::Node, query: *mut pg_sys::Query) -> TResult<(bool, bool)> {
    // SAFETY: reading jointree nodes and range table entries of a valid Query.
    unsafe {
        if is_a(node as *const c_void, pg_sys::NodeTag::T_RangeTblRef) {
            let rti = (*(node as *mut pg_sys::RangeTblRef)).rtindex;
            let rte = pg_sys::list_nth((*query).rtable, rti - 1) as *mut pg_sys::RangeTblEntry;
            if (*rte).rtekind == pg_sys::RTEKind::RTE_RELATION {
                if let Some(m) = cache::lookup((*rte).relid)? {
                    return Ok((!m.is_reference(), m.is_reference()));
                }
            }
            if (*rte).rtekind == pg_sys::RTEKind::RTE_SUBQUERY {
                let sub = analyze((*rte).subquery)?;
                return Ok((
                    sub.hash_rtes().next().is_some(),
                    sub.rtes.iter().any(|r| r.meta.is_reference()),
                ));
            }
            return Ok((false, false));
        }
        if is_a(node as *const c_void, pg_sys::NodeTag::T_JoinExpr) {
            let j = node as *mut pg_sys::JoinExpr;
            let l = contents((*j).larg, query)?;
            let r = contents((*j).rarg, query)?;
            return Ok((l.0 || r.0, l.1 || r.1));
        }
        if is_a(node as *const c_void, pg_sys::NodeTag::T_FromExpr) {
            let mut out = (false, false);
            for item in list_of::<pg_sys::Node>((*(node as *mut pg_sys::FromExpr)).fromlist) {
                let c = contents(item, query)?;
                out = (out.0 || c.0, out.1 || c.1);
            }
            return Ok(out);
        }
    }
    Ok((false, false))
}

/// Sets `bad` when a reference table (or anything not sharded) is on the preserved side of an
/// outer join whose other side is sharded.
unsafe fn outer_join_sides(
    node: *mut pg_sys::Node,
    query: *mut pg_sys::Query,
    bad: &mut bool,
) -> TResult<()> {
    // SAFETY: reading jointree nodes of a valid Query.
    unsafe {
        if !is_a(node as *const c_void, pg_sys::NodeTag::T_JoinExpr) {
            return Ok(());
        }
        let j = node as *mut pg_sys::JoinExpr;
        outer_join_sides((*j).larg, query, bad)?;
        outer_join_sides((*j).rarg, query, bad)?;
        let (l, r) = (contents((*j).larg, query)?, contents((*j).rarg, query)?);
        let unsharded_left = !l.0;
        let unsharded_right = !r.0;
        match (*j).jointype {
            pg_sys::JoinType::JOIN_LEFT | pg_sys::JoinType::JOIN_ANTI if unsharded_left && r.0 => {
                *bad = true;
            }
            pg_sys::JoinType::JOIN_RIGHT if unsharded_right && l.0 => {
                *bad = true;
            }
            pg_sys::JoinType::JOIN_FULL if (unsharded_left || unsharded_right) && (l.0 || r.0) => {
                *bad = true;
            }
            _ => {}
        }
    }
    Ok(())
}
