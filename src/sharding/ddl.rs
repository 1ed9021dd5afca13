//! The DDL of a shard: the statements that create, on a node, a table with the same columns,
//! constraints, indexes and storage options as a distributed table, under the shard's name.
//!
//! The statements are generated once per table from PostgreSQL's own catalog printers
//! (`format_type`, `pg_get_expr`, `pg_get_constraintdef`, `pg_get_indexdef`) with `search_path`
//! set to `pg_catalog`, so every name they print is schema-qualified and quoted; then each
//! shard's copy only swaps in the shard's relation and constraint names.
//!
//! Column defaults that call `nextval` are left out of shards: the coordinator evaluates them
//! before routing a row, so that sequences stay global. Identity columns become plain NOT NULL
//! columns on shards for the same reason.

use pgrx::prelude::*;
use tessera_core::sharding::shard_name;

use crate::error::{TResult, TesseraError};

/// What a shard's DDL is made from.
pub struct TableDdl {
    pub schema: String,
    pub table: String,
    /// Column definitions, in attribute order.
    columns: Vec<String>,
    /// `(name, definition, inherited)` of CHECK, UNIQUE and PRIMARY KEY constraints. An
    /// inherited CHECK constraint of a partition is named after its parent's shard (see
    /// [`TableDdl::shard_ddl`]).
    constraints: Vec<(String, String, bool)>,
    /// ` PARTITION BY ...` of a partitioned table, or empty.
    partition_by: String,
    /// `(name, pg_get_indexdef output)` of indexes that do not back a constraint.
    indexes: Vec<(String, String)>,
    /// `fillfactor=70, ...` or empty.
    reloptions: String,
    /// The table's owner (quoted), whom the shards belong to as well.
    owner: String,
    /// The table's privileges as GRANTs, the text before and after the shard's name (table and
    /// column privileges; the owner's own are implied): the connections of other roles read
    /// the shards with them.
    grants: Vec<(String, String)>,
    /// Default privileges for tables exist (on the coordinator, and so on the workers, which
    /// get them too): a new shard takes them, so its privileges are cleared before the
    /// table's own are granted.
    reset_acl: bool,
    /// `ENABLE` / `FORCE ROW LEVEL SECURITY` as the table has them.
    row_security: Vec<&'static str>,
    /// The table's policies: the text before and after the shard's name of each CREATE POLICY.
    policies: Vec<(String, String)>,
    /// The table's own triggers (a partition's clones of its parent's come with the parent's
    /// when the shard is attached): the text before and after the shard's name of each
    /// CREATE TRIGGER.
    pub triggers: Vec<(String, String)>,
    /// Extended statistics (CREATE STATISTICS).
    statistics: Vec<ShardStatistics>,
    /// Foreign keys: added to the shards once they exist and hold their rows
    /// (`sharding::foreign_keys` checks and rewrites them).
    pub foreign_keys: Vec<pg_sys::Oid>,
}

/// `CREATE SCHEMA schema [AUTHORIZATION owner]` on a node, only when the node lacks it: CREATE
/// SCHEMA IF NOT EXISTS wants the right to create schemas even when the schema is there, and
/// the role that runs it (a table's owner) may not have that right.
pub fn create_schema_if_missing(schema: &str, owner: Option<&str>) -> String {
    tessera_core::sqltext::do_block(&format!(
        "BEGIN IF pg_catalog.to_regnamespace({}) IS NULL THEN CREATE SCHEMA {}{}; END IF; END",
        pgrx::spi::quote_literal(quote_ident(schema)),
        quote_ident(schema),
        owner
            .map(|o| format!(" AUTHORIZATION {}", quote_ident(o)))
            .unwrap_or_default()
    ))
}

/// Revokes every privilege on the shard `shard` (a qualified name) from every role but its
/// owner: what the node's default privileges gave it. Every operator is named with its schema
/// (it runs under the node's search_path).
fn revoke_all_sql(shard: &str) -> String {
    let lit = pgrx::spi::quote_literal(shard);
    tessera_core::sqltext::do_block(&format!(
        "DECLARE g oid; BEGIN
           FOR g IN SELECT DISTINCT a.grantee
                      FROM pg_catalog.pg_class c, pg_catalog.aclexplode(c.relacl) a
                     WHERE c.oid OPERATOR(pg_catalog.=) pg_catalog.to_regclass({lit})::oid
                       AND a.grantee OPERATOR(pg_catalog.<>) c.relowner LOOP
             EXECUTE pg_catalog.format('REVOKE ALL ON TABLE %s FROM %s', {lit},
                     CASE WHEN g OPERATOR(pg_catalog.=) 0::oid THEN 'PUBLIC'
                          ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(g)) END);
           END LOOP;
         END"
    ))
}

/// Runs `f` with `search_path` set to `pg_catalog` (so catalog printers qualify every name),
/// restoring the previous setting afterwards.
fn with_qualified_names<T>(f: impl FnOnce() -> TResult<T>) -> TResult<T> {
    let _scope = crate::pg::guc::GucScope::new(&[(c"search_path", c"pg_catalog")]);
    f()
}

fn quote_ident(s: &str) -> String {
    pgrx::spi::quote_identifier(s)
}

/// The CREATE POLICY statements of `relid`'s policies (or of the one named `only`), each as
/// the text before and after the shard's name, with every name schema-qualified (printed under
/// an empty search_path), so a shard reads them as the coordinator does.
pub fn policies(relid: pg_sys::Oid, only: Option<&str>) -> TResult<Vec<(String, String)>> {
    with_qualified_names(|| Spi::connect(|client| policies_in(client, relid, only)))
}

fn policies_in(
    client: &pgrx::spi::SpiClient<'_>,
    relid: pg_sys::Oid,
    only: Option<&str>,
) -> TResult<Vec<(String, String)>> {
    let mut policies = Vec::new();
    for row in client.select(
        "SELECT format('CREATE POLICY %I ON ', p.polname),
                format(' AS %s FOR %s TO %s%s%s',
                       CASE WHEN p.polpermissive THEN 'PERMISSIVE' ELSE 'RESTRICTIVE' END,
                       CASE p.polcmd WHEN 'r' THEN 'SELECT' WHEN 'a' THEN 'INSERT'
                            WHEN 'w' THEN 'UPDATE' WHEN 'd' THEN 'DELETE' ELSE 'ALL' END,
                       CASE WHEN p.polroles = '{0}' THEN 'PUBLIC'
                            ELSE (SELECT string_agg(pg_catalog.quote_ident(r.rolname), ', ' ORDER BY r.rolname)
                                    FROM pg_catalog.pg_roles r WHERE r.oid = ANY (p.polroles)) END,
                       coalesce(' USING (' || pg_catalog.pg_get_expr(p.polqual, p.polrelid) || ')', ''),
                       coalesce(' WITH CHECK (' || pg_catalog.pg_get_expr(p.polwithcheck, p.polrelid) || ')', '')),
                p.polname::text,
                ARRAY(SELECT d.refobjid FROM pg_catalog.pg_depend d
                       WHERE d.classid = 'pg_catalog.pg_policy'::pg_catalog.regclass AND d.objid = p.oid
                         AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
                         AND d.refobjid <> p.polrelid)
           FROM pg_catalog.pg_policy p
          WHERE p.polrelid = $1 AND ($2::text IS NULL OR p.polname = $2)
          ORDER BY p.polname",
        None,
        &[relid.into(), only.map(str::to_string).into()],
    )? {
        let after = row.get::<String>(2)?.unwrap_or_default();
        let name = row.get::<String>(3)?.unwrap_or_default();
        let reads = row.get::<Vec<pg_sys::Oid>>(4)?.unwrap_or_default();
        policies.push((
            row.get::<String>(1)?.unwrap_or_default(),
            policy_on_shards(relid, &name, &after, &reads)?,
        ));
    }
    Ok(policies)
}

/// A policy's clauses (`after`, printed with every name qualified) as the shards read them.
/// A reference table its expressions read (in a sublink: `tenant_id IN (SELECT ... FROM
/// members ...)`) is named by its shard, which every node has. Its own table, another
/// distributed table, or a table the workers do not have cannot be read on a shard, where the
/// policy is enforced: refused.
fn policy_on_shards(
    relid: pg_sys::Oid,
    policy: &str,
    after: &str,
    reads: &[pg_sys::Oid],
) -> TResult<String> {
    if reads.is_empty() && !after.contains(" FROM ") {
        return Ok(after.to_string());
    }
    let mut tables = vec![crate::pg::nodes::rel_schema_and_name(relid)];
    tables.extend(
        reads
            .iter()
            .map(|r| crate::pg::nodes::rel_schema_and_name(*r)),
    );
    let names: Vec<(&str, &str)> = tables
        .iter()
        .map(|(s, n)| (s.as_str(), n.as_str()))
        .collect();
    let prefix = "CREATE POLICY p ON tessera_policy_target";
    let sql = format!("{prefix}{after}");
    let mut edits = Vec::new();
    for (start, end, i) in crate::pg::table_refs::table_sites(&sql, &names)? {
        if start < prefix.len() {
            continue;
        }
        let why = match i {
            0 => "reads its own table in a subquery",
            _ => match crate::metadata::cache::lookup(reads[i - 1])? {
                Some(m) if m.is_reference() => {
                    let shard = m.shards.first().map(|s| s.shard_id).unwrap_or_default();
                    edits.push((
                        start - prefix.len(),
                        end - prefix.len(),
                        super::qualified_shard(&m.schema, &m.name, shard),
                    ));
                    continue;
                }
                Some(_) => "reads another distributed table",
                None => "reads a table that is not distributed, which the worker nodes do not have",
            },
        };
        let (schema, table) = &tables[0];
        let (rs, rn) = &tables[i];
        return Err(TesseraError::new(
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            format!("policy \"{policy}\" on the distributed table {schema}.{table} {why} ({rs}.{rn})"),
        )
        .hint("The shards enforce a distributed table's policies on their nodes: a policy may read the row's own columns, settings and functions, and reference tables (create_reference_table)."));
    }
    Ok(tessera_core::sqltext::splice(after, edits))
}

impl TableDdl {
    /// Reads the definition of `relid`; `dist_attnum` is the distribution column (0 for
    /// reference tables), which every UNIQUE and PRIMARY KEY constraint must include.
    pub fn load(relid: pg_sys::Oid, dist_attnum: i16) -> TResult<TableDdl> {
        let mut ddl = with_qualified_names(|| Self::load_qualified(relid, dist_attnum))?;
        ddl.statistics = statistics(relid, None)?;
        Ok(ddl)
    }

    fn load_qualified(relid: pg_sys::Oid, dist_attnum: i16) -> TResult<TableDdl> {
        Spi::connect(|client| {
            let (schema, table, reloptions, partition_by) = {
                let row = client
                    .select(
                        "SELECT n.nspname::text, c.relname::text,
                                coalesce(array_to_string(c.reloptions, ', '), ''),
                                CASE WHEN c.relkind = 'p'
                                     THEN ' PARTITION BY ' || pg_catalog.pg_get_partkeydef(c.oid) ELSE '' END
                           FROM pg_catalog.pg_class c
                           JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                          WHERE c.oid = $1",
                        None,
                        &[relid.into()],
                    )?
                    .first();
                (
                    row.get::<String>(1)?.unwrap_or_default(),
                    row.get::<String>(2)?.unwrap_or_default(),
                    row.get::<String>(3)?.unwrap_or_default(),
                    row.get::<String>(4)?.unwrap_or_default(),
                )
            };

            let mut columns = Vec::new();
            for row in client.select(
                "SELECT a.attname::text, pg_catalog.format_type(a.atttypid, a.atttypmod),
                        a.attnotnull OR a.attidentity <> '', pg_catalog.pg_get_expr(d.adbin, d.adrelid),
                        a.attgenerated = 's',
                        CASE WHEN a.attcollation <> t.typcollation AND a.attcollation <> 0
                             THEN (SELECT pg_catalog.quote_ident(cn.nspname) || '.' || pg_catalog.quote_ident(co.collname)
                                     FROM pg_catalog.pg_collation co
                                     JOIN pg_catalog.pg_namespace cn ON cn.oid = co.collnamespace
                                    WHERE co.oid = a.attcollation) END
                   FROM pg_catalog.pg_attribute a
                   JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
                   LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
                  WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
                  ORDER BY a.attnum",
                None,
                &[relid.into()],
            )? {
                let name = row.get::<String>(1)?.unwrap_or_default();
                let ty = row.get::<String>(2)?.unwrap_or_default();
                let not_null = row.get::<bool>(3)?.unwrap_or(false);
                let default = row.get::<String>(4)?;
                let generated = row.get::<bool>(5)?.unwrap_or(false);
                let collation = row.get::<String>(6)?;
                let mut col = format!("{} {ty}", quote_ident(&name));
                if let Some(c) = collation {
                    col.push_str(&format!(" COLLATE {c}"));
                }
                match default {
                    Some(expr) if generated => {
                        col.push_str(&format!(" GENERATED ALWAYS AS ({expr}) STORED"))
                    }
                    Some(expr) if !expr.contains("nextval(") => {
                        col.push_str(&format!(" DEFAULT {expr}"))
                    }
                    _ => {}
                }
                if not_null {
                    col.push_str(" NOT NULL");
                }
                columns.push(col);
            }

            let mut constraints = Vec::new();
            let mut foreign_keys = Vec::new();
            for row in client.select(
                "SELECT conname::text, pg_catalog.pg_get_constraintdef(oid, true), contype::text,
                        coalesce($2 = ANY (conkey), false), oid,
                        contype = 'c' AND coninhcount > 0, conparentid <> 0
                   FROM pg_catalog.pg_constraint
                  WHERE conrelid = $1 AND contype IN ('c', 'u', 'p', 'x', 'f')
                  ORDER BY contype DESC, conname",
                None,
                &[relid.into(), dist_attnum.into()],
            )? {
                let name = row.get::<String>(1)?.unwrap_or_default();
                let def = row.get::<String>(2)?.unwrap_or_default();
                let kind = row.get::<String>(3)?.unwrap_or_default();
                let has_dist_col = row.get::<bool>(4)?.unwrap_or(false);
                let inherited_check = row.get::<bool>(6)?.unwrap_or(false);
                let from_parent = row.get::<bool>(7)?.unwrap_or(false);
                match kind.as_str() {
                    "u" | "p" if dist_attnum > 0 && !has_dist_col => {
                        return Err(TesseraError::new(
                            PgSqlErrorCode::ERRCODE_INVALID_TABLE_DEFINITION,
                            format!("cannot distribute relation \"{table}\": constraint \"{name}\" does not include the distribution column"),
                        )
                        .hint("Distributed tables cannot have UNIQUE or PRIMARY KEY constraints that do not include the distribution column: add it to the constraint, or distribute by a column the constraint includes."));
                    }
                    // A partition's copy of its parent's foreign key comes with the parent's:
                    // PostgreSQL makes it when the shard is attached.
                    "f" if from_parent => {}
                    "f" => {
                        foreign_keys.push(row.get::<pg_sys::Oid>(5)?.unwrap_or(pg_sys::InvalidOid))
                    }
                    "x" => {
                        return Err(TesseraError::new(
                            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
                            format!("cannot distribute relation \"{table}\": constraint \"{name}\" is an EXCLUDE constraint, which Tessera does not distribute yet"),
                        )
                        .hint("Drop the constraint before distributing the table."));
                    }
                    _ => constraints.push((name, def, inherited_check)),
                }
            }

            let owner = client
                .select(
                    "SELECT pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(relowner))
                       FROM pg_catalog.pg_class WHERE oid = $1",
                    None,
                    &[relid.into()],
                )?
                .first()
                .get::<String>(1)?
                .unwrap_or_default();
            let grants = super::privileges::table_grants(client, relid)?;
            let (enabled, forced) = {
                let row = client
                    .select(
                        "SELECT relrowsecurity, relforcerowsecurity FROM pg_catalog.pg_class WHERE oid = $1",
                        None,
                        &[relid.into()],
                    )?
                    .first();
                (
                    row.get::<bool>(1)?.unwrap_or(false),
                    row.get::<bool>(2)?.unwrap_or(false),
                )
            };
            let mut row_security = Vec::new();
            if enabled {
                row_security.push("ENABLE");
            }
            if forced {
                row_security.push("FORCE");
            }
            let policies = policies_in(client, relid, None)?;

            let triggers = triggers_in(client, relid, &schema, &table, None)?;
            let reset_acl = client
                .select(
                    "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_default_acl WHERE defaclobjtype = 'r')",
                    None,
                    &[],
                )?
                .first()
                .get::<bool>(1)?
                .unwrap_or(false);

            let mut indexes = Vec::new();
            for row in client.select(
                "SELECT ic.relname::text, pg_catalog.pg_get_indexdef(i.indexrelid)
                   FROM pg_catalog.pg_index i
                   JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
                  WHERE i.indrelid = $1
                    AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint c WHERE c.conindid = i.indexrelid)
                  ORDER BY ic.relname",
                None,
                &[relid.into()],
            )? {
                indexes.push((
                    row.get::<String>(1)?.unwrap_or_default(),
                    row.get::<String>(2)?.unwrap_or_default(),
                ));
            }

            Ok(TableDdl {
                schema,
                table,
                columns,
                constraints,
                partition_by,
                indexes,
                foreign_keys,
                reloptions,
                owner,
                grants,
                row_security,
                policies,
                triggers,
                reset_acl,
                statistics: Vec::new(),
            })
        })
    }

    /// The schema-qualified, quoted name of the table's shard `shard_id`.
    pub fn qualified_shard(&self, shard_id: i64) -> String {
        super::qualified_shard(&self.schema, &self.table, shard_id)
    }

    /// The statements that create shard `shard_id` (one string, statements separated by `;`),
    /// creating the table's schema first when `with_schema`.
    pub fn shard_ddl(&self, shard_id: i64, with_schema: bool) -> TResult<String> {
        self.partition_shard_ddl(shard_id, shard_id, with_schema)
    }

    /// [`TableDdl::shard_ddl`] of a partition's shard that will be attached to the parent's
    /// shard `parent_shard_id`. PostgreSQL attaches a partition only when it has each of the
    /// parent's CHECK constraints under the same name, so the inherited ones are named as
    /// the parent's shard names them (as ALTER TABLE on the parent's shard names them when it
    /// recurses).
    pub fn partition_shard_ddl(
        &self,
        shard_id: i64,
        parent_shard_id: i64,
        with_schema: bool,
    ) -> TResult<String> {
        let shard = self.qualified_shard(shard_id);
        let mut sql = String::new();
        if with_schema {
            sql.push_str(&create_schema_if_missing(&self.schema, None));
            sql.push_str(";\n");
        }
        sql.push_str(&format!(
            "CREATE TABLE {shard} ({}){}",
            self.columns.join(", "),
            self.partition_by
        ));
        if !self.reloptions.is_empty() {
            sql.push_str(&format!(" WITH ({})", self.reloptions));
        }
        sql.push_str(";\n");
        for (name, def, inherited) in &self.constraints {
            let id = if *inherited {
                parent_shard_id
            } else {
                shard_id
            };
            sql.push_str(&format!(
                "ALTER TABLE {shard} ADD CONSTRAINT {} {def};\n",
                quote_ident(&shard_name(name, id))
            ));
        }
        sql.push_str(&format!("ALTER TABLE {shard} OWNER TO {};\n", self.owner));
        if self.reset_acl {
            sql.push_str(&revoke_all_sql(&shard));
            sql.push_str(";\n");
        }
        for (before, after) in &self.grants {
            sql.push_str(&format!("{before}{shard}{after};\n"));
        }
        for what in &self.row_security {
            sql.push_str(&format!("ALTER TABLE {shard} {what} ROW LEVEL SECURITY;\n"));
        }
        for (before, after) in &self.policies {
            sql.push_str(&format!("{before}{shard}{after};\n"));
        }
        for (name, def) in &self.indexes {
            sql.push_str(&shard_index_ddl(
                &self.schema,
                &self.table,
                name,
                def,
                shard_id,
            )?);
            sql.push_str(";\n");
        }
        for (before, after) in &self.triggers {
            sql.push_str(&format!("{before}{shard}{after};\n"));
        }
        for s in &self.statistics {
            for stmt in s.create_sql(shard_id, &shard) {
                sql.push_str(&stmt);
                sql.push_str(";\n");
            }
        }
        Ok(sql)
    }
}

/// The CREATE TRIGGER statements of `relid`'s own triggers (or of the one named `only`), each
/// as the text before and after the shard's name, with every name qualified.
pub fn triggers(relid: pg_sys::Oid, only: Option<&str>) -> TResult<Vec<(String, String)>> {
    with_qualified_names(|| {
        let (schema, table) = crate::pg::nodes::rel_schema_and_name(relid);
        Spi::connect(|client| triggers_in(client, relid, &schema, &table, only))
    })
}

fn triggers_in(
    client: &pgrx::spi::SpiClient<'_>,
    relid: pg_sys::Oid,
    schema: &str,
    table: &str,
    only: Option<&str>,
) -> TResult<Vec<(String, String)>> {
    // `CREATE [CONSTRAINT] TRIGGER name ... ON schema.table ...`: the first ` ON <table> ` after
    // the trigger's name is the table's (a column list that holds the same text would be
    // quoted, so followed by a quote).
    let marker = format!(" ON {}.{} ", quote_ident(schema), quote_ident(table));
    let mut out = Vec::new();
    for row in client.select(
        "SELECT pg_catalog.pg_get_triggerdef(oid), tgname::text FROM pg_catalog.pg_trigger
          WHERE tgrelid = $1 AND NOT tgisinternal AND tgparentid = 0
            AND ($2::text IS NULL OR tgname = $2)
          ORDER BY tgname",
        None,
        &[relid.into(), only.map(str::to_string).into()],
    )? {
        let def = row.get::<String>(1)?.unwrap_or_default();
        let name = format!(
            " {} ",
            quote_ident(&row.get::<String>(2)?.unwrap_or_default())
        );
        let after_name = def.find(&name).map_or(0, |i| i + name.len() - 1);
        let at = def[after_name..]
            .find(&marker)
            .map(|i| i + after_name)
            .ok_or_else(|| {
                TesseraError::new(
                    PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
                    "cannot carry this trigger definition to the shards",
                )
                .detail(format!("trigger definition: {def}"))
            })?;
        let split = at + " ON ".len();
        out.push((
            def[..split].to_string(),
            def[at + marker.len() - 1..].to_string(),
        ));
    }
    Ok(out)
}

/// The CREATE INDEX of shard `shard_id` for an index of the table `schema.table`, from the
/// index's `pg_get_indexdef` output (printed with `search_path = pg_catalog`, so the table is
/// schema-qualified).
pub fn shard_index_ddl(
    schema: &str,
    table: &str,
    index: &str,
    def: &str,
    shard_id: i64,
) -> TResult<String> {
    let qualified_table = format!("{}.{}", quote_ident(schema), quote_ident(table));
    let shard = format!(
        "{}.{}",
        quote_ident(schema),
        quote_ident(&shard_name(table, shard_id))
    );
    // pg_get_indexdef prints `CREATE [UNIQUE ]INDEX <name> ON [ONLY ]<table> USING ...` with
    // names quoted and qualified as here: swap in the shard's names.
    let (prefix, rest) = if let Some(r) = def.strip_prefix("CREATE UNIQUE INDEX ") {
        ("CREATE UNIQUE INDEX ", r)
    } else if let Some(r) = def.strip_prefix("CREATE INDEX ") {
        ("CREATE INDEX ", r)
    } else {
        return Err(unexpected_indexdef(def));
    };
    let rest = rest
        .strip_prefix(&format!("{} ON ", quote_ident(index)))
        .ok_or_else(|| unexpected_indexdef(def))?;
    // A partitioned table's index prints as `ON ONLY`; the shard's index covers the shard's
    // partitions, as the table's covers its partitions once they are attached.
    let rest = rest.strip_prefix("ONLY ").unwrap_or(rest);
    let rest = rest
        .strip_prefix(&qualified_table)
        .ok_or_else(|| unexpected_indexdef(def))?;
    Ok(format!(
        "{prefix}{} ON {shard}{rest}",
        quote_ident(&shard_name(index, shard_id))
    ))
}

/// `pg_get_indexdef` of an index, with every name qualified.
pub fn index_def(index: pg_sys::Oid) -> TResult<(String, String)> {
    with_qualified_names(|| {
        Spi::connect(|client| {
            let row = client
                .select(
                    "SELECT c.relname::text, pg_catalog.pg_get_indexdef(c.oid)
                       FROM pg_catalog.pg_class c WHERE c.oid = $1",
                    None,
                    &[index.into()],
                )?
                .first();
            Ok((
                row.get::<String>(1)?.unwrap_or_default(),
                row.get::<String>(2)?.unwrap_or_default(),
            ))
        })
    })
}

fn unexpected_indexdef(def: &str) -> TesseraError {
    TesseraError::new(
        PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
        "cannot carry this index definition to the shards",
    )
    .detail(format!("index definition: {def}"))
    .hint("Create the index with a plain CREATE INDEX ... ON table USING method (columns).")
}

/// A partition's bound as its ATTACH PARTITION takes it (`FOR VALUES ...` or `DEFAULT`), with
/// every name qualified and the values printed the way any node reads them (ISO dates with
/// numeric time zone offsets, exact floats), whatever the session's DateStyle and TimeZone.
pub fn partition_bound(relid: pg_sys::Oid) -> TResult<String> {
    let _portable = crate::pg::guc::GucScope::portable_output();
    with_qualified_names(|| {
        Spi::get_one_with_args::<String>(
            "SELECT pg_catalog.pg_get_expr(relpartbound, oid) FROM pg_catalog.pg_class
              WHERE oid = $1 AND relispartition",
            &[relid.into()],
        )?
        .ok_or_else(|| {
            TesseraError::new(
                PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                "the table is not a partition",
            )
        })
    })
}

/// An extended statistics object of a table, as its shards make it.
pub struct ShardStatistics {
    schema: String,
    name: String,
    /// What `pg_get_statisticsobjdef` prints between the name and ` FROM <table>`: the kinds
    /// and the columns or expressions.
    body: String,
    /// `stxstattarget`, when set (not -1).
    target: Option<i32>,
    /// The owner's name, quoted: the shards' objects get it (whoever makes them).
    owner: Option<String>,
}

impl ShardStatistics {
    /// The shard's statistics object name, qualified and quoted.
    pub fn shard_name(&self, shard_id: i64) -> String {
        super::qualified_shard(&self.schema, &self.name, shard_id)
    }

    /// The statements that make the object on shard `shard` (`shard_id`).
    pub fn create_sql(&self, shard_id: i64, shard: &str) -> Vec<String> {
        let name = self.shard_name(shard_id);
        let mut sql = vec![format!(
            "CREATE STATISTICS {name}{} FROM {shard}",
            self.body
        )];
        if let Some(t) = self.target {
            sql.push(format!("ALTER STATISTICS {name} SET STATISTICS {t}"));
        }
        if let Some(owner) = &self.owner {
            sql.push(format!("ALTER STATISTICS {name} OWNER TO {owner}"));
        }
        sql
    }
}

/// The extended statistics of `relid` (or the one object `only`), with every name qualified.
pub fn statistics(relid: pg_sys::Oid, only: Option<pg_sys::Oid>) -> TResult<Vec<ShardStatistics>> {
    with_qualified_names(|| {
        let (schema, table) = crate::pg::nodes::rel_schema_and_name(relid);
        let from = format!(" FROM {}.{}", quote_ident(&schema), quote_ident(&table));
        Spi::connect(|client| {
            let mut out = Vec::new();
            for row in client.select(
                "SELECT n.nspname::text, s.stxname::text, pg_catalog.pg_get_statisticsobjdef(s.oid),
                        s.stxstattarget,
                        pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(s.stxowner))
                   FROM pg_catalog.pg_statistic_ext s
                   JOIN pg_catalog.pg_namespace n ON n.oid = s.stxnamespace
                  WHERE s.stxrelid = $1 AND ($2::oid IS NULL OR s.oid = $2)
                  ORDER BY s.stxname",
                None,
                &[relid.into(), only.into()],
            )? {
                let schema = row.get::<String>(1)?.unwrap_or_default();
                let name = row.get::<String>(2)?.unwrap_or_default();
                let def = row.get::<String>(3)?.unwrap_or_default();
                let target = row.get::<i32>(4)?.filter(|t| *t >= 0);
                let owner = row.get::<String>(5)?;
                let prefix = format!(
                    "CREATE STATISTICS {}.{}",
                    quote_ident(&schema),
                    quote_ident(&name)
                );
                let body = def
                    .strip_prefix(&prefix)
                    .and_then(|r| r.strip_suffix(&from))
                    .ok_or_else(|| {
                        TesseraError::new(
                            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
                            "cannot carry this statistics object to the shards",
                        )
                        .detail(format!("definition: {def}"))
                    })?
                    .to_string();
                out.push(ShardStatistics {
                    schema,
                    name,
                    body,
                    target,
                    owner,
                });
            }
            Ok(out)
        })
    })
}
