//! The distributed plan: what the planner decided and the executor carries out.
//!
//! The planner hook turns a query on distributed tables into a [`DistPlan`]: the tier, the
//! worker SQL as a *template* (PostgreSQL's deparser output with the byte ranges where each
//! table reference sits), the tables those references name, and how to choose shards (a
//! pinned hash value, a parameter to hash at execution, or every shard). The plan travels
//! inside the CustomScan node as text ([`DistPlan::encode`]), because plans are copied and
//! cached by PostgreSQL and only node trees and strings survive that.
//!
//! At execution the glue resolves the shards of the anchor table, and [`DistPlan::shard_sql`]
//! splices each table's shard name into the template: no string search, only the ranges the
//! parser reported.

use serde::{Deserialize, Serialize};

use crate::sharding::shard_name;
use crate::sqltext::splice;

/// How a query is distributed (shown by EXPLAIN).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Tier {
    /// One distributed table, pinned to one shard by `dist_col = value`.
    FastPathRouter,
    /// Several tables (co-located or reference) pinned to one shard group.
    Router,
    /// Every shard group, results combined on the coordinator.
    MultiShard,
}

impl Tier {
    pub fn name(self) -> &'static str {
        match self {
            Tier::FastPathRouter => "Fast-Path Router",
            Tier::Router => "Router",
            Tier::MultiShard => "Multi-Shard",
        }
    }
}

/// The statement kind the workers run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    Select,
    Insert,
    Update,
    Delete,
    /// A MERGE (run whole on one node: the tables of one distributed schema).
    Merge,
}

/// Which shard group(s) a plan runs on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Pin {
    /// Every shard group (multi-shard).
    All,
    /// The shard group owning this hash value.
    Hash(i32),
    /// The shard group owning the hash of parameter `$n` (1-based), known at execution; the
    /// value is read as text into type `typid` of the distribution column first.
    Param { id: i32, typid: u32 },
    /// The only shard group (reference tables only).
    Single,
    /// The shard groups owning these hash values (`dist_col IN (constants)`), at least one:
    /// none left (every value NULL), the first shard group runs the statement, which then
    /// matches no row but still returns an aggregate's one row.
    Hashes(Vec<i32>),
}

/// A table the worker SQL names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableRef {
    pub relid: u32,
    pub schema: String,
    pub name: String,
    /// The schema name as SQL: quoted by PostgreSQL's own `quote_identifier` when the plan is
    /// made (its keyword list is the server's), so tasks splice it as it is.
    pub schema_sql: String,
}

/// A table reference in the template: bytes `start..end` name `tables[table]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Site {
    pub start: usize,
    pub end: usize,
    pub table: usize,
}

/// How an INSERT's rows become worker SQL: the template holds one VALUES row of parameters
/// (`$param_base+1 .. $param_base+columns`) at bytes `values_start..values_end`; the executor
/// evaluates the rows on the coordinator, routes each by its distribution value, and writes
/// one multi-row VALUES list per shard there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InsertShape {
    pub columns: usize,
    /// Which column (0-based) is the distribution column; `None` for reference tables.
    pub dist_column: Option<usize>,
    pub param_base: usize,
    pub values_start: usize,
    pub values_end: usize,
}

impl InsertShape {
    /// `($b+1, $b+2), ($b+3, $b+4)` for `rows` rows, parameters numbered from `first` (1-based).
    pub fn values_text(&self, first: usize, rows: usize) -> String {
        let mut out = String::new();
        let mut n = first;
        for r in 0..rows {
            if r > 0 {
                out.push_str(", ");
            }
            out.push('(');
            for c in 0..self.columns {
                if c > 0 {
                    out.push_str(", ");
                }
                out.push('$');
                out.push_str(&n.to_string());
                n += 1;
            }
            out.push(')');
        }
        out
    }
}

/// Everything the executor needs to run a distributed query.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DistPlan {
    pub tier: Tier,
    pub command: Command,
    pub template: String,
    pub sites: Vec<Site>,
    pub tables: Vec<TableRef>,
    /// The table whose shards define the shard groups (a hash-distributed one when any).
    pub anchor: usize,
    pub pin: Pin,
    /// The statement returns rows (SELECT, or DML with RETURNING).
    pub returns_rows: bool,
    /// Why the plan has this shape, one line each (shown by EXPLAIN VERBOSE).
    pub notes: Vec<String>,
    /// The external parameters (`$n`) the worker SQL refers to.
    pub params: Vec<usize>,
    pub insert: Option<InsertShape>,
    /// Expressions the coordinator evaluates at each execution and sends as parameters
    /// (`now()`, `current_user`, `current_setting(...)`: what the coordinator's session
    /// defines): (parameter id, the expression as PostgreSQL's node text).
    pub evaluated: Vec<(usize, String)>,
    /// The worker SQL turns floating-point values into text (`x::text`, `concat(x)`): the
    /// nodes then print floats with the session's `extra_float_digits`, not exactly.
    pub prints_floats: bool,
    /// The worker SQL prints dates or times as text (`d::text`) and returns no value that
    /// names a time zone: the nodes then print dates and times in the session's `DateStyle`,
    /// not in ISO form.
    pub session_date_style: bool,
    /// The worker SQL prints dates or times as text and also returns a value that names a time
    /// zone (which travels in ISO form only): it runs only while the session's `DateStyle` is
    /// ISO (checked at each execution: a cached plan outlives a `SET DateStyle`).
    #[serde(default)]
    pub needs_iso_dates: bool,
    /// A row-level security policy of a table it reads reads `session_user`: it runs only
    /// while the current role is the session user (checked at each execution too: a cached
    /// plan outlives a change of session user).
    #[serde(default)]
    pub reads_session_user: bool,
    /// Columns of the worker rows that hold partial aggregate states (0-based), with the
    /// aggregate (its OID on the coordinator) each is a state of: the scan hands them to
    /// `tessera_combine_agg` as `internal` values.
    #[serde(default)]
    pub partial_states: Vec<(usize, u32)>,
    /// The statement has data-modifying WITH queries that run on the node with it (a query on
    /// one distributed schema's tables runs whole there): it writes, whatever its command.
    #[serde(default)]
    pub modifying_cte: bool,
    /// The worker SQL calls a VOLATILE function: a SELECT that may write (a function that
    /// inserts), so its nodes take part in two-phase commit like writers.
    #[serde(default)]
    pub calls_volatile: bool,
    /// The shard queries return each shard's nearest rows by an ordering operator an index can
    /// serve (`ORDER BY embedding <=> $1 LIMIT k`): see [`Nearest`].
    #[serde(default)]
    pub nearest: Option<Nearest>,
}

/// A SELECT whose shard queries are nearest-neighbour searches: one table, ordered first by
/// a distance operator that an index access method can order by (pgvector's `<->`, `<=>`,
/// `<#>`, `<+>`, `<~>`, `<%>`; GiST's `<->`), with a LIMIT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Nearest {
    /// The kind of the table's index that serves the ORDER BY.
    pub index: NearestIndex,
    /// The shard query has a WHERE clause or row-level security (a filter an index scan applies
    /// after the search).
    pub filtered: bool,
    /// The rows each shard query returns: LIMIT + OFFSET, when both are constants or the LIMIT
    /// is a parameter (`limit_param`) and there is no OFFSET.
    pub limit: Option<i64>,
    /// The LIMIT is the external parameter `$n` (a prepared statement's `LIMIT $2`).
    pub limit_param: Option<usize>,
    /// The shard query's column (0-based) that holds the distance it orders by, when the
    /// coordinator can compare shards' rows by it: it is among the columns sent, a float8
    /// ordered by its `<`, and the LIMIT is not WITH TIES (`executor::fewer_rows` needs all
    /// three).
    #[serde(default)]
    pub distance_column: Option<usize>,
}

impl DistPlan {
    /// The statement changes rows on the nodes (it runs in the remote transaction).
    pub fn writes(&self) -> bool {
        self.command != Command::Select || self.modifying_cte
    }

    /// The statement certainly changes nothing on the nodes: a node it ran on that did nothing
    /// else commits one-phase.
    pub fn only_reads(&self) -> bool {
        !self.writes() && !self.calls_volatile
    }

    /// Makes the table `relid` the anchor (the first table when it is not in the plan).
    pub fn set_anchor(&mut self, relid: u32) {
        self.anchor = self
            .tables
            .iter()
            .position(|t| t.relid == relid)
            .unwrap_or(0);
    }

    /// The worker SQL for one shard group: `shard_ids[i]` is the shard of `tables[i]`.
    pub fn shard_sql(&self, shard_ids: &[i64]) -> String {
        self.shard_sql_with(shard_ids, Vec::new())
    }

    /// [`DistPlan::shard_sql`] with more edits of the template (non-overlapping).
    pub fn shard_sql_with(&self, shard_ids: &[i64], extra: Vec<(usize, usize, String)>) -> String {
        let mut edits: Vec<(usize, usize, String)> = self
            .sites
            .iter()
            .map(|s| {
                let t = &self.tables[s.table];
                (
                    s.start,
                    s.end,
                    format!(
                        "{}.{}",
                        t.schema_sql,
                        quote_shard_name(&shard_name(&t.name, shard_ids[s.table]))
                    ),
                )
            })
            .collect();
        edits.extend(extra);
        splice(&self.template, edits)
    }

    /// The plan as one string, for the CustomScan's private list (JSON: a Node string must be
    /// text, and copyObject copies it).
    pub fn encode(&self) -> String {
        let mut out = String::from(PLAN_FORMAT);
        out.push_str(&serde_json::to_string(self).expect("a plan always serializes"));
        out
    }

    /// The inverse of [`DistPlan::encode`], checking what the executor relies on.
    pub fn decode(s: &str) -> Result<DistPlan, String> {
        let json = s
            .strip_prefix(PLAN_FORMAT)
            .ok_or("not a Tessera plan of this version")?;
        let plan: DistPlan = serde_json::from_str(json).map_err(|e| e.to_string())?;
        if plan.anchor >= plan.tables.len().max(1) {
            return Err("bad anchor".into());
        }
        if plan
            .sites
            .iter()
            .any(|s| s.table >= plan.tables.len() || s.start > s.end || s.end > plan.template.len())
        {
            return Err("bad site".into());
        }
        Ok(plan)
    }
}

/// What an encoded plan starts with (its format's version).
const PLAN_FORMAT: &str = "tessera-plan-2:";

/// A shard's name (`<name>_<shardid>`) as SQL, quoted as PostgreSQL's `quote_identifier`
/// quotes it. Exact for shard names only: they end in `_<digits>`, which no keyword does, so
/// whether to quote depends on their characters alone. Other identifiers are quoted by
/// PostgreSQL's own function in the extension, whose keyword list is the server's.
pub fn quote_shard_name(s: &str) -> String {
    let plain = s
        .bytes()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == b'_')
        && s.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_');
    if plain {
        s.to_string()
    } else {
        format!("\"{}\"", s.replace('"', "\"\""))
    }
}

/// Joins the SQL of several shard groups on one node into one statement, so a node is asked
/// once per query instead of once per shard: `(q1) UNION ALL (q2) ...`.
pub fn union_all(queries: &[String]) -> String {
    if queries.len() == 1 {
        return queries[0].clone();
    }
    let mut out = String::new();
    for (i, q) in queries.iter().enumerate() {
        if i > 0 {
            out.push_str(" UNION ALL ");
        }
        out.push('(');
        out.push_str(q);
        out.push(')');
    }
    out
}

/// The names of Tessera's CustomScans: EXPLAIN shows them, and the planner finds their
/// methods by name (the executor registers them), so the planner needs nothing of the
/// executor's.
pub const ADAPTIVE_SCAN: &std::ffi::CStr = c"Tessera Adaptive";
pub const SUBQUERY_SCAN: &std::ffi::CStr = c"Tessera Subquery";
pub const WITH_SCAN: &std::ffi::CStr = c"Tessera WITH";

/// What the executor makes of a subplan's rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubKind {
    /// At most one row, one column: its value (NULL without a row).
    Scalar = 1,
    /// Every row's first column as an array.
    Array = 2,
    /// Whether there is a row.
    Exists = 3,
    /// Every column of every row, one array per column (a FROM item's rows).
    Rows = 4,
}

impl SubKind {
    pub fn from_code(c: i32) -> Option<SubKind> {
        match c {
            1 => Some(SubKind::Scalar),
            2 => Some(SubKind::Array),
            3 => Some(SubKind::Exists),
            4 => Some(SubKind::Rows),
            _ => None,
        }
    }
}

/// An index that returns rows in distance order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NearestIndex {
    /// pgvector's HNSW: approximate, `hnsw.ef_search` candidates (more with an iterative scan).
    Hnsw,
    /// pgvector's IVFFlat: approximate, the rows of `ivfflat.probes` lists.
    Ivfflat,
    /// Any other (GiST, SP-GiST): every row, in exact order.
    Exact,
}

impl NearestIndex {
    /// The setting that makes a scan of this index go on until a filter leaves enough rows.
    pub fn iterative_setting(self) -> Option<&'static str> {
        match self {
            NearestIndex::Hnsw => Some("hnsw.iterative_scan"),
            NearestIndex::Ivfflat => Some("ivfflat.iterative_scan"),
            NearestIndex::Exact => None,
        }
    }
}

impl Nearest {
    /// `hnsw.ef_search` for each of `shards` shard searches of a session that has `ef`: the
    /// union of the shards' candidates is what the coordinator picks from, and each shard's
    /// graph is smaller, so each is searched with `ef / sqrt(shards)` (rounded up), never
    /// fewer than the rows the shard must return (`rows`, LIMIT + OFFSET) or 10, never more
    /// than pgvector's limit of 1000. One shard gets `ef` itself.
    pub fn ef_search_per_shard(ef: i64, rows: Option<i64>, shards: usize) -> i64 {
        if shards <= 1 {
            return ef;
        }
        let scaled = (ef as f64 / (shards as f64).sqrt()).ceil() as i64;
        scaled.max(rows.unwrap_or(0)).max(10).min(ef.max(1000))
    }

    /// The rows each of `shards` shard searches returns first when the statement wants `rows`
    /// (LIMIT + OFFSET, at least [`FEWER_ROWS_FROM`]) and the rows are spread over the shards
    /// at random: the number of the `rows` nearest that one shard holds is about Poisson with
    /// mean `rows / shards`, so a shard is asked for that distribution's 99.9% quantile, with
    /// a margin of a fifth (as Qdrant does). None when that is not fewer than `rows`.
    ///
    /// Hash distribution is not random with respect to the vectors when the distribution
    /// column says something about them (a tenant's documents are alike), so the executor
    /// checks each shard that returned all it was asked for and asks it again for `rows`
    /// when its farthest row is nearer than the union's `rows`-th (`executor::fewer_rows`).
    pub fn fewer_rows_per_shard(rows: i64, shards: usize) -> Option<i64> {
        if shards < 2 || rows < FEWER_ROWS_FROM {
            return None;
        }
        let mean = rows as f64 / shards as f64;
        let each = ((poisson_quantile(mean, 0.999) * 1.2).ceil() as i64).max(1);
        (each < rows).then_some(each)
    }
}

/// [`Nearest::fewer_rows_per_shard`] applies from this many rows (LIMIT + OFFSET) on: below,
/// the search's cost is its candidate list, not the rows.
pub const FEWER_ROWS_FROM: i64 = 128;

/// The smallest k with P(X <= k) >= p for X Poisson with mean `mean` (the normal
/// approximation above a mean of 500, where e^-mean leaves f64's range).
fn poisson_quantile(mean: f64, p: f64) -> f64 {
    if mean > 500.0 {
        // z(0.999) = 3.09; half a count for the continuity correction.
        return (mean + 3.09 * mean.sqrt() + 0.5).ceil();
    }
    let mut pmf = (-mean).exp();
    let mut cdf = pmf;
    let mut k = 0.0;
    while cdf < p {
        k += 1.0;
        pmf *= mean / k;
        cdf += pmf;
    }
    k
}

/// One shard query of a search that asks for fewer rows ([`Nearest::fewer_rows_per_shard`]):
/// `sql`'s first `limit` rows by its distance (column `distance`, 0-based, whose order the
/// shard's index scan already has: no sort) with the shard group's number `group` as an extra
/// last column, so the coordinator knows whose rows they are. The subquery's alias is never
/// referenced.
pub fn numbered_shard_search(sql: &str, group: usize, distance: usize, limit: i64) -> String {
    format!(
        "SELECT *, {group} FROM ({sql}) tessera_shard ORDER BY {} LIMIT {limit}",
        distance + 1
    )
}

/// The shard groups of a search's first round that must be asked again for all `wanted` rows
/// (LIMIT + OFFSET), by number (`0..groups`): those whose farthest row is not farther than the
/// `wanted`-th nearest of every row returned (`rows`: shard group and distance; NULL or NaN
/// as infinitely far), since they may hold more of the nearest; when `short_is_all` (IVFFlat,
/// an exact scan: fewer rows than `each` means there are no more), only those that returned
/// all `each` rows they were asked for. HNSW returns fewer when dead rows were among its
/// candidates, so there a short shard group is asked again too (one that returned nothing
/// among them).
///
/// A shard group not asked again has no row nearer than its farthest, and that is farther
/// than `wanted` rows the union holds already: none of its other rows can be among the
/// nearest.
pub fn shard_groups_to_ask_again(
    rows: &[(usize, f64)],
    groups: usize,
    each: i64,
    wanted: i64,
    short_is_all: bool,
) -> Vec<bool> {
    let mut count = vec![0i64; groups];
    let mut farthest = vec![f64::NEG_INFINITY; groups];
    let mut all = Vec::with_capacity(rows.len());
    for &(g, d) in rows {
        if g >= groups {
            continue;
        }
        let d = if d.is_nan() { f64::INFINITY } else { d };
        count[g] += 1;
        farthest[g] = farthest[g].max(d);
        all.push(d);
    }
    let wanted = wanted.max(1) as usize;
    let bound = if all.len() < wanted {
        f64::INFINITY
    } else {
        *all.select_nth_unstable_by(wanted - 1, f64::total_cmp).1
    };
    (0..groups)
        .map(|g| (!short_is_all || count[g] >= each) && farthest[g] <= bound)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ef_search_scales_with_shards() {
        assert_eq!(Nearest::ef_search_per_shard(40, Some(10), 1), 40);
        assert_eq!(Nearest::ef_search_per_shard(40, Some(10), 4), 20);
        assert_eq!(Nearest::ef_search_per_shard(100, Some(10), 32), 18);
        // Never below the rows a shard returns, or 10.
        assert_eq!(Nearest::ef_search_per_shard(40, Some(30), 16), 30);
        assert_eq!(Nearest::ef_search_per_shard(20, None, 32), 10);
        // Never above pgvector's maximum, unless the session's own is.
        assert_eq!(Nearest::ef_search_per_shard(100, Some(5000), 4), 1000);
    }

    #[test]
    fn fewer_rows_per_shard_follows_the_poisson_quantile() {
        // Qdrant's example: 1000 rows over 10 shards asks each for about 160.
        let each = Nearest::fewer_rows_per_shard(1000, 10).unwrap();
        assert!((150..=170).contains(&each), "{each}");
        assert_eq!(Nearest::fewer_rows_per_shard(200, 4), Some(88));
        assert_eq!(Nearest::fewer_rows_per_shard(200, 32), Some(18));
        // Below the threshold, one shard, or no saving: every shard returns all rows.
        assert_eq!(Nearest::fewer_rows_per_shard(100, 32), None);
        assert_eq!(Nearest::fewer_rows_per_shard(1000, 1), None);
        assert_eq!(Nearest::fewer_rows_per_shard(128, 2), Some(108));
        // Large means use the normal approximation, continuous with the exact quantile.
        let exact = poisson_quantile(500.0, 0.999);
        let approx = (500.0f64 + 3.09 * 500.0f64.sqrt() + 0.5).ceil();
        assert!((exact - approx).abs() <= 2.0, "{exact} {approx}");
        assert!(Nearest::fewer_rows_per_shard(100_000, 4).unwrap() < 100_000);
        // Never more per shard with more shards.
        let mut last = i64::MAX;
        for shards in 2..64 {
            let each = Nearest::fewer_rows_per_shard(500, shards).unwrap_or(500);
            assert!(each <= last);
            last = each;
        }
    }

    #[test]
    fn numbered_shard_search_appends_the_shard_group() {
        assert_eq!(
            numbered_shard_search("SELECT a, d FROM t ORDER BY d LIMIT 200", 3, 1, 88),
            "SELECT *, 3 FROM (SELECT a, d FROM t ORDER BY d LIMIT 200) tessera_shard ORDER BY 2 LIMIT 88"
        );
    }

    #[test]
    fn shard_groups_asked_again() {
        // Group 0 returned its 3 rows, none farther than the 5th nearest of all: asked again.
        // Group 1 returned 3 rows, its farthest beyond that bound: not. Group 2 returned 2 of
        // 3 (IVFFlat: it has no more): not.
        let rows = [
            (0, 0.1),
            (0, 0.2),
            (0, 0.3),
            (1, 0.35),
            (1, 0.9),
            (1, 1.0),
            (2, 0.15),
            (2, 0.25),
        ];
        assert_eq!(
            shard_groups_to_ask_again(&rows, 3, 3, 5, true),
            vec![true, false, false]
        );
        // HNSW: a short group may have more behind dead candidates.
        assert_eq!(
            shard_groups_to_ask_again(&rows, 3, 3, 5, false),
            vec![true, false, true]
        );
        // A tie at the bound asks again; so does a union smaller than the rows wanted.
        let tied = [(0, 0.5), (0, 0.5), (1, 0.5), (1, 0.7)];
        assert_eq!(
            shard_groups_to_ask_again(&tied, 2, 2, 3, true),
            vec![true, false]
        );
        assert_eq!(
            shard_groups_to_ask_again(&tied, 2, 2, 10, true),
            vec![true, true]
        );
        // Negative distances (<#>) order as numbers; NaN is farthest; an unknown group is
        // ignored; an empty group is asked again only where short means nothing (HNSW).
        let neg = [(0, -5.0), (0, -4.0), (1, -1.0), (1, f64::NAN), (7, -9.0)];
        assert_eq!(
            shard_groups_to_ask_again(&neg, 3, 2, 2, true),
            vec![true, false, false]
        );
        assert_eq!(
            shard_groups_to_ask_again(&neg, 3, 2, 2, false),
            vec![true, false, true]
        );
        let inf = [(0, f64::INFINITY), (0, f64::INFINITY), (1, 1.0)];
        assert_eq!(
            shard_groups_to_ask_again(&inf, 2, 2, 1, true),
            vec![false, false]
        );
    }

    fn sample() -> DistPlan {
        let template =
            "SELECT count(*) AS count FROM public.events e JOIN \"My S\".\"T:1\" t ON true";
        let a = template.find("public.events").unwrap();
        let b = template.find("\"My S\"").unwrap();
        DistPlan {
            tier: Tier::MultiShard,
            command: Command::Select,
            template: template.to_string(),
            sites: vec![
                Site {
                    start: a,
                    end: a + "public.events".len(),
                    table: 0,
                },
                Site {
                    start: b,
                    end: b + "\"My S\".\"T:1\"".len(),
                    table: 1,
                },
            ],
            tables: vec![
                TableRef {
                    relid: 16400,
                    schema: "public".into(),
                    name: "events".into(),
                    schema_sql: "public".into(),
                },
                TableRef {
                    relid: 16500,
                    schema: "My S".into(),
                    name: "T:1".into(),
                    schema_sql: "\"My S\"".into(),
                },
            ],
            anchor: 0,
            pin: Pin::Param { id: 2, typid: 20 },
            returns_rows: true,
            notes: vec!["a note: with colons".into()],
            params: vec![1, 3],
            insert: Some(InsertShape {
                columns: 2,
                dist_column: Some(0),
                param_base: 3,
                values_start: 5,
                values_end: 9,
            }),
            evaluated: vec![(3, "{FUNCEXPR :funcid 1299}".into())],
            prints_floats: true,
            session_date_style: true,
            needs_iso_dates: false,
            reads_session_user: false,
            partial_states: vec![(2, 2158)],
            modifying_cte: false,
            calls_volatile: false,
            nearest: Some(Nearest {
                index: NearestIndex::Hnsw,
                filtered: true,
                limit: None,
                limit_param: Some(2),
                distance_column: Some(1),
            }),
        }
    }

    #[test]
    fn encode_decode_round_trip() {
        let p = sample();
        assert_eq!(DistPlan::decode(&p.encode()).unwrap(), p);
        for pin in [
            Pin::All,
            Pin::Single,
            Pin::Hash(-5),
            Pin::Hashes(vec![-5, 7]),
        ] {
            let q = DistPlan {
                pin,
                params: vec![],
                insert: None,
                ..sample()
            };
            assert_eq!(DistPlan::decode(&q.encode()).unwrap(), q);
        }
    }

    #[test]
    fn decode_rejects_garbage() {
        assert!(DistPlan::decode("").is_err());
        assert!(DistPlan::decode("3:abc").is_err());
        assert!(DistPlan::decode("tessera-plan-2:{}").is_err());
        let mut bad = sample();
        bad.anchor = 5;
        assert!(DistPlan::decode(&bad.encode()).is_err());
        let mut bad = sample();
        bad.sites[0].end = bad.template.len() + 1;
        assert!(DistPlan::decode(&bad.encode()).is_err());
        let e = sample().encode();
        assert!(DistPlan::decode(&e[..e.len() - 3]).is_err());
    }

    #[test]
    fn shard_sql_splices_every_site() {
        let p = sample();
        assert_eq!(
            p.shard_sql(&[102008, 7]),
            "SELECT count(*) AS count FROM public.events_102008 e JOIN \"My S\".\"T:1_7\" t ON true"
        );
    }

    #[test]
    fn insert_values_text() {
        let shape = sample().insert.unwrap();
        assert_eq!(shape.values_text(4, 1), "($4, $5)");
        assert_eq!(shape.values_text(4, 2), "($4, $5), ($6, $7)");
    }

    #[test]
    fn shard_name_quoting() {
        assert_eq!(quote_shard_name("events_102008"), "events_102008");
        assert_eq!(quote_shard_name("Events_1"), "\"Events_1\"");
        assert_eq!(quote_shard_name("select_1"), "select_1");
        assert_eq!(quote_shard_name("a\"b_1"), "\"a\"\"b_1\"");
        assert_eq!(quote_shard_name("tëst_1"), "\"tëst_1\"");
        assert_eq!(quote_shard_name("1a_1"), "\"1a_1\"");
    }

    #[test]
    fn union_all_of_shards() {
        assert_eq!(union_all(&["SELECT 1".into()]), "SELECT 1");
        assert_eq!(
            union_all(&["SELECT 1".into(), "SELECT 2".into()]),
            "(SELECT 1) UNION ALL (SELECT 2)"
        );
    }
}
