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

use crate::sharding::shard_name;
use crate::sqltext::splice;

/// How a query is distributed (shown by EXPLAIN).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

    fn code(self) -> &'static str {
        match self {
            Tier::FastPathRouter => "F",
            Tier::Router => "R",
            Tier::MultiShard => "M",
        }
    }

    fn from_code(s: &str) -> Option<Tier> {
        match s {
            "F" => Some(Tier::FastPathRouter),
            "R" => Some(Tier::Router),
            "M" => Some(Tier::MultiShard),
            _ => None,
        }
    }
}

/// The statement kind the workers run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Select,
    Insert,
    Update,
    Delete,
}

impl Command {
    fn code(self) -> &'static str {
        match self {
            Command::Select => "S",
            Command::Insert => "I",
            Command::Update => "U",
            Command::Delete => "D",
        }
    }

    fn from_code(s: &str) -> Option<Command> {
        match s {
            "S" => Some(Command::Select),
            "I" => Some(Command::Insert),
            "U" => Some(Command::Update),
            "D" => Some(Command::Delete),
            _ => None,
        }
    }
}

/// Which shard group(s) a plan runs on.
#[derive(Debug, Clone, PartialEq, Eq)]
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
}

/// A table the worker SQL names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableRef {
    pub relid: u32,
    pub schema: String,
    pub name: String,
}

/// A table reference in the template: bytes `start..end` name `tables[table]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Site {
    pub start: usize,
    pub end: usize,
    pub table: usize,
}

/// How an INSERT's rows become worker SQL: the template holds one VALUES row of parameters
/// (`$param_base+1 .. $param_base+columns`) at bytes `values_start..values_end`; the executor
/// evaluates the rows on the coordinator, routes each by its distribution value, and writes
/// one multi-row VALUES list per shard there.
#[derive(Debug, Clone, PartialEq, Eq)]
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
#[derive(Debug, Clone, PartialEq, Eq)]
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
}

impl DistPlan {
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
                        quote_ident(&t.schema),
                        quote_ident(&shard_name(&t.name, shard_ids[s.table]))
                    ),
                )
            })
            .collect();
        edits.extend(extra);
        splice(&self.template, edits)
    }

    /// The plan as one string (length-prefixed fields), for the CustomScan's private list.
    pub fn encode(&self) -> String {
        let mut f: Vec<String> = vec![
            "tessera-plan-1".into(),
            self.tier.code().into(),
            self.command.code().into(),
            self.template.clone(),
            self.anchor.to_string(),
            if self.returns_rows { "1" } else { "0" }.into(),
        ];
        match &self.pin {
            Pin::All => f.push("all".into()),
            Pin::Single => f.push("single".into()),
            Pin::Hash(h) => f.push(format!("hash:{h}")),
            Pin::Param { id, typid } => f.push(format!("param:{id}:{typid}")),
        }
        f.push(self.tables.len().to_string());
        for t in &self.tables {
            f.push(t.relid.to_string());
            f.push(t.schema.clone());
            f.push(t.name.clone());
        }
        f.push(self.sites.len().to_string());
        for s in &self.sites {
            f.push(format!("{}:{}:{}", s.start, s.end, s.table));
        }
        f.push(self.notes.len().to_string());
        f.extend(self.notes.iter().cloned());
        f.push(
            self.params
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join(","),
        );
        match &self.insert {
            None => f.push("-".into()),
            Some(i) => f.push(format!(
                "{}:{}:{}:{}:{}",
                i.columns,
                i.dist_column.map_or("-".to_string(), |d| d.to_string()),
                i.param_base,
                i.values_start,
                i.values_end
            )),
        }
        f.push(if self.prints_floats { "1" } else { "0" }.into());
        f.push(if self.session_date_style { "1" } else { "0" }.into());
        f.push(self.evaluated.len().to_string());
        for (id, expr) in &self.evaluated {
            f.push(id.to_string());
            f.push(expr.clone());
        }
        let mut out = String::new();
        for field in f {
            out.push_str(&field.len().to_string());
            out.push(':');
            out.push_str(&field);
        }
        out
    }

    /// The inverse of [`DistPlan::encode`].
    pub fn decode(s: &str) -> Result<DistPlan, String> {
        let mut fields = Fields { s, pos: 0 };
        if fields.next()? != "tessera-plan-1" {
            return Err("not a Tessera plan of this version".into());
        }
        let tier = Tier::from_code(fields.next()?).ok_or("bad tier")?;
        let command = Command::from_code(fields.next()?).ok_or("bad command")?;
        let template = fields.next()?.to_string();
        let anchor = fields.number()?;
        let returns_rows = fields.next()? == "1";
        let pin_text = fields.next()?;
        let pin = match pin_text {
            "all" => Pin::All,
            "single" => Pin::Single,
            _ if pin_text.starts_with("hash:") => {
                Pin::Hash(pin_text[5..].parse().map_err(|_| "bad hash pin")?)
            }
            _ if pin_text.starts_with("param:") => {
                let mut it = pin_text[6..].split(':');
                let id = it.next().and_then(|x| x.parse().ok()).ok_or("bad pin")?;
                let typid = it.next().and_then(|x| x.parse().ok()).ok_or("bad pin")?;
                Pin::Param { id, typid }
            }
            _ => return Err("bad pin".into()),
        };
        let ntables = fields.number()?;
        let mut tables = Vec::with_capacity(ntables);
        for _ in 0..ntables {
            tables.push(TableRef {
                relid: fields.number()? as u32,
                schema: fields.next()?.to_string(),
                name: fields.next()?.to_string(),
            });
        }
        let nsites = fields.number()?;
        let mut sites = Vec::with_capacity(nsites);
        for _ in 0..nsites {
            let text = fields.next()?;
            let parts: Vec<usize> = text
                .split(':')
                .map(|p| p.parse().map_err(|_| "bad site"))
                .collect::<Result<_, _>>()?;
            if parts.len() != 3 || parts[2] >= tables.len() || parts[0] > parts[1] {
                return Err("bad site".into());
            }
            sites.push(Site {
                start: parts[0],
                end: parts[1],
                table: parts[2],
            });
        }
        let nnotes = fields.number()?;
        let mut notes = Vec::with_capacity(nnotes);
        for _ in 0..nnotes {
            notes.push(fields.next()?.to_string());
        }
        let params_text = fields.next()?;
        let params = if params_text.is_empty() {
            Vec::new()
        } else {
            params_text
                .split(',')
                .map(|p| p.parse().map_err(|_| "bad params".to_string()))
                .collect::<Result<_, _>>()?
        };
        let insert_text = fields.next()?;
        let insert = if insert_text == "-" {
            None
        } else {
            let parts: Vec<&str> = insert_text.split(':').collect();
            if parts.len() != 5 {
                return Err("bad insert shape".into());
            }
            let num = |s: &str| {
                s.parse::<usize>()
                    .map_err(|_| "bad insert shape".to_string())
            };
            Some(InsertShape {
                columns: num(parts[0])?,
                dist_column: if parts[1] == "-" {
                    None
                } else {
                    Some(num(parts[1])?)
                },
                param_base: num(parts[2])?,
                values_start: num(parts[3])?,
                values_end: num(parts[4])?,
            })
        };
        let prints_floats = fields.next()? == "1";
        let session_date_style = fields.next()? == "1";
        let nevaluated = fields.number()?;
        let mut evaluated = Vec::with_capacity(nevaluated);
        for _ in 0..nevaluated {
            let id = fields.number()?;
            evaluated.push((id, fields.next()?.to_string()));
        }
        if anchor >= tables.len().max(1) {
            return Err("bad anchor".into());
        }
        Ok(DistPlan {
            tier,
            command,
            template,
            sites,
            tables,
            anchor,
            pin,
            returns_rows,
            notes,
            params,
            insert,
            evaluated,
            prints_floats,
            session_date_style,
        })
    }
}

struct Fields<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Fields<'a> {
    fn next(&mut self) -> Result<&'a str, String> {
        let rest = &self.s[self.pos..];
        let colon = rest.find(':').ok_or("truncated plan")?;
        let len: usize = rest[..colon].parse().map_err(|_| "bad field length")?;
        let start = self.pos + colon + 1;
        let end = start + len;
        let field = self.s.get(start..end).ok_or("truncated plan")?;
        self.pos = end;
        Ok(field)
    }

    fn number(&mut self) -> Result<usize, String> {
        self.next()?.parse().map_err(|_| "bad number".to_string())
    }
}

/// An identifier quoted as PostgreSQL's `quote_identifier` does it when quoting is needed
/// (always quoting is also valid SQL; this keeps worker SQL readable).
pub fn quote_ident(s: &str) -> String {
    let plain = !s.is_empty()
        && s.bytes()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == b'_')
        && s.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_');
    if plain && !is_keyword(s) {
        s.to_string()
    } else {
        format!("\"{}\"", s.replace('"', "\"\""))
    }
}

/// A conservative list: quoting a non-keyword is harmless, missing a keyword is not, so any
/// word PostgreSQL reserves in any position is here.
fn is_keyword(s: &str) -> bool {
    const WORDS: &[&str] = &[
        "all",
        "analyse",
        "analyze",
        "and",
        "any",
        "array",
        "as",
        "asc",
        "asymmetric",
        "both",
        "case",
        "cast",
        "check",
        "collate",
        "column",
        "constraint",
        "create",
        "current_catalog",
        "current_date",
        "current_role",
        "current_time",
        "current_timestamp",
        "current_user",
        "default",
        "deferrable",
        "desc",
        "distinct",
        "do",
        "else",
        "end",
        "except",
        "false",
        "fetch",
        "for",
        "foreign",
        "from",
        "grant",
        "group",
        "having",
        "in",
        "initially",
        "intersect",
        "into",
        "lateral",
        "leading",
        "limit",
        "localtime",
        "localtimestamp",
        "not",
        "null",
        "offset",
        "on",
        "only",
        "or",
        "order",
        "placing",
        "primary",
        "references",
        "returning",
        "select",
        "session_user",
        "some",
        "symmetric",
        "system_user",
        "table",
        "then",
        "to",
        "trailing",
        "true",
        "union",
        "unique",
        "user",
        "using",
        "variadic",
        "when",
        "where",
        "window",
        "with",
        "authorization",
        "binary",
        "collation",
        "concurrently",
        "cross",
        "current_schema",
        "freeze",
        "full",
        "ilike",
        "inner",
        "is",
        "isnull",
        "join",
        "left",
        "like",
        "natural",
        "notnull",
        "outer",
        "overlaps",
        "right",
        "similar",
        "tablesample",
        "verbose",
    ];
    WORDS.contains(&s)
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

#[cfg(test)]
mod tests {
    use super::*;

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
                },
                TableRef {
                    relid: 16500,
                    schema: "My S".into(),
                    name: "T:1".into(),
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
        }
    }

    #[test]
    fn encode_decode_round_trip() {
        let p = sample();
        assert_eq!(DistPlan::decode(&p.encode()).unwrap(), p);
        for pin in [Pin::All, Pin::Single, Pin::Hash(-5)] {
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
    fn quoting() {
        assert_eq!(quote_ident("events"), "events");
        assert_eq!(quote_ident("Events"), "\"Events\"");
        assert_eq!(quote_ident("select"), "\"select\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_ident("tëst"), "\"tëst\"");
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
