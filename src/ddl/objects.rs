//! The objects a distributed table depends on, kept on every node: schemas, types (enum,
//! composite, range, domain), functions, procedures and aggregates (so that defaults, CHECK
//! constraints and queries that call them run on the shards), and the privileges on them.
//!
//! - CREATE SCHEMA reaches the workers as `CREATE SCHEMA ... AUTHORIZATION`, where missing
//!   (the statement's own elements, such as its tables, stay the coordinator's); DROP SCHEMA
//!   as `DROP SCHEMA IF EXISTS` (a schema a worker never got is no error there).
//! - Every other statement here reaches the workers as written, under the session's
//!   `search_path` (so `CREATE TYPE mood ...` lands in the schema it landed in here).
//! - GRANT / REVOKE on a schema creates the schema on a worker that lacks it first.
//!
//! All of it runs in the remote transaction: a worker that refuses fails the statement, with
//! that worker's reason, and no node keeps a change.

use pgrx::pg_sys;
use pgrx::spi::{quote_identifier, quote_literal, Spi};

use super::{Step, Utility};
use crate::error::TResult;
use crate::pg::nodes::{list_ptrs, string};

/// The commands on every active primary worker, in the remote transaction, after the session's
/// `search_path` (as the statement read it here).
fn on_every_worker(commands: impl FnOnce() -> TResult<Vec<String>> + 'static) -> TResult<Step> {
    let search_path = Spi::get_one::<String>("SELECT pg_catalog.current_setting('search_path')")?
        .unwrap_or_default();
    Ok(super::on_every_worker(move || {
        let mut commands = commands()?;
        if !commands.is_empty() {
            // A function body may read tables the workers do not have (a distributed table's
            // name is the coordinator's): its body is not checked there, as pg_dump does.
            commands.insert(
                0,
                format!(
                    "SELECT pg_catalog.set_config('search_path', {}, true), \
                            pg_catalog.set_config('check_function_bodies', 'off', true)",
                    quote_literal(&search_path)
                ),
            );
        }
        Ok(commands)
    }))
}

/// The statement as written, after making on the workers the schemas it may create its
/// object in (the one it names, those of the search_path) where they lack them: a schema made
/// before the workers joined would otherwise send the object to another schema there.
///
/// # Safety
/// `u` is one of the statements the table sends here.
pub(super) unsafe fn as_written(u: &Utility) -> TResult<Step> {
    let sql = u.text();
    // SAFETY: forwarded.
    let named = unsafe { named_schema(u) };
    // A session's temporary object (`CREATE FUNCTION pg_temp.f ...`) is the coordinator's
    // alone: on a worker it would be another session's, and its transaction could not prepare.
    if named
        .as_deref()
        .is_some_and(|s| s == "pg_temp" || s.starts_with("pg_temp_"))
    {
        return Ok(Step::Pass);
    }
    let path: Vec<String> = Spi::connect(|client| {
        let mut out = Vec::new();
        for row in client.select(
            "SELECT s::text FROM pg_catalog.unnest(pg_catalog.current_schemas(false)) s",
            None,
            &[],
        )? {
            out.extend(row.get::<String>(1)?);
        }
        Ok::<_, crate::error::TesseraError>(out)
    })?;
    on_every_worker(move || {
        let mut out = Vec::new();
        for schema in named.iter().chain(path.iter()) {
            if schema != "public" && schema != "pg_catalog" {
                out.extend(create_schema_command(schema)?);
            }
        }
        out.push(sql);
        Ok(out)
    })
}

/// The schema a CREATE statement names for its object (`CREATE FUNCTION s.f ...`), if any.
///
/// # Safety
/// `u` is a utility statement.
unsafe fn named_schema(u: &Utility) -> Option<String> {
    use pg_sys::NodeTag::*;
    // SAFETY: each cast follows the statement's tag; name lists hold String nodes.
    unsafe {
        let from_list = |l: *mut pg_sys::List| {
            let names = list_ptrs(l);
            (names.len() >= 2)
                .then(|| string((*(names[names.len() - 2] as *mut pg_sys::String)).sval))
        };
        match (*u.stmt).type_ {
            T_CreateFunctionStmt => from_list((*u.node::<pg_sys::CreateFunctionStmt>()).funcname),
            T_DefineStmt => from_list((*u.node::<pg_sys::DefineStmt>()).defnames),
            T_CreateEnumStmt => from_list((*u.node::<pg_sys::CreateEnumStmt>()).typeName),
            T_CreateDomainStmt => from_list((*u.node::<pg_sys::CreateDomainStmt>()).domainname),
            T_CreateRangeStmt => from_list((*u.node::<pg_sys::CreateRangeStmt>()).typeName),
            T_CompositeTypeStmt => {
                let rv = (*u.node::<pg_sys::CompositeTypeStmt>()).typevar;
                (!rv.is_null() && !(*rv).schemaname.is_null()).then(|| string((*rv).schemaname))
            }
            _ => None,
        }
    }
}

/// DROP of a type, domain, function, procedure, routine, aggregate, operator, collation or
/// text search object: as written, with IF EXISTS (an object made before a worker joined is
/// no error there).
///
/// # Safety
/// `u` is a DropStmt of one of those kinds.
pub(super) unsafe fn drop_object(u: &Utility) -> TResult<Step> {
    let text = u.text();
    // SAFETY: reading the DropStmt.
    let (missing_ok, kind) = unsafe {
        let s = u.node::<pg_sys::DropStmt>();
        ((*s).missing_ok, (*s).removeType)
    };
    // `DROP TEXT SEARCH CONFIGURATION`: four words before the names; `DROP TYPE`: two.
    let words = if matches!(
        kind,
        pg_sys::ObjectType::OBJECT_TSCONFIGURATION
            | pg_sys::ObjectType::OBJECT_TSDICTIONARY
            | pg_sys::ObjectType::OBJECT_TSPARSER
            | pg_sys::ObjectType::OBJECT_TSTEMPLATE
    ) {
        4
    } else {
        2
    };
    let sql = if missing_ok {
        text
    } else {
        with_if_exists(&text, words)
    };
    // (pg_dist_object forgets the dropped objects in the sql_drop trigger.)
    on_every_worker(move || Ok(vec![sql]))
}

/// `DROP <kind> IF EXISTS ...` from `DROP <kind> ...`, where `DROP <kind>` is `words` words.
fn with_if_exists(text: &str, words: usize) -> String {
    let mut seen = 0;
    let mut in_word = false;
    for (i, c) in text.char_indices() {
        if c.is_whitespace() {
            if in_word {
                seen += 1;
                if seen == words {
                    return format!("{} IF EXISTS{}", &text[..i], &text[i..]);
                }
            }
            in_word = false;
        } else {
            in_word = true;
        }
    }
    text.to_string()
}

/// CREATE FUNCTION / PROCEDURE: as written, unless the function cannot exist on a worker: one
/// whose arguments or result use a table's row type (the workers have shards, not the
/// table), or whose body is SQL-standard (`BEGIN ATOMIC`, checked against the tables when it
/// is created). Such a function stays the coordinator's, where queries that use it run.
///
/// # Safety
/// `u` is a CreateFunctionStmt.
pub(super) unsafe fn create_function(u: &Utility) -> TResult<Step> {
    // SAFETY: the tag was checked by the table; parameters are FunctionParameters; type names
    // are looked up with missing_ok (the local statement reports a missing one).
    unsafe {
        let s = u.node::<pg_sys::CreateFunctionStmt>();
        if !(*s).sql_body.is_null() {
            return Ok(Step::Pass);
        }
        let mut types: Vec<*mut pg_sys::TypeName> = list_ptrs((*s).parameters)
            .into_iter()
            .map(|p| (*(p as *mut pg_sys::FunctionParameter)).argType)
            .collect();
        types.push((*s).returnType);
        if types.into_iter().any(|t| names_table_row(t)) {
            return Ok(Step::Pass);
        }
        as_written(u)
    }
}

/// Whether a type is a table's row type (or an array of one): the workers have shards, not the
/// table, so an object made from it stays the coordinator's.
fn is_table_row(t: pg_sys::Oid) -> bool {
    // SAFETY: lsyscache lookups of a type and a relation.
    unsafe {
        let elem = pg_sys::get_element_type(t);
        let t = if elem == pg_sys::InvalidOid { t } else { elem };
        let rel = pg_sys::get_typ_typrelid(t);
        rel != pg_sys::InvalidOid
            && pg_sys::get_rel_relkind(rel) != pg_sys::RELKIND_COMPOSITE_TYPE as std::ffi::c_char
    }
}

/// [`is_table_row`] of a TypeName (false for one that is not found, or null).
///
/// # Safety
/// `t` is null or a valid TypeName.
unsafe fn names_table_row(t: *mut pg_sys::TypeName) -> bool {
    if t.is_null() {
        return false;
    }
    // SAFETY: a missing_ok type lookup.
    let oid = unsafe { pg_sys::LookupTypeNameOid(std::ptr::null_mut(), t, true) };
    oid != pg_sys::InvalidOid && is_table_row(oid)
}

/// CREATE TYPE ... AS (...): as written, unless a column is a table's row type.
///
/// # Safety
/// `u` is a CompositeTypeStmt.
pub(super) unsafe fn create_composite(u: &Utility) -> TResult<Step> {
    // SAFETY: the tag was checked by the table; coldeflist holds ColumnDefs.
    let table_row = unsafe {
        list_ptrs((*u.node::<pg_sys::CompositeTypeStmt>()).coldeflist)
            .into_iter()
            .any(|c| names_table_row((*(c as *mut pg_sys::ColumnDef)).typeName))
    };
    if table_row {
        return Ok(Step::Pass);
    }
    // SAFETY: as above.
    unsafe { as_written(u) }
}

/// CREATE AGGREGATE (and the other DefineStmt kinds): as written, unless an aggregate's
/// argument is a table's row type.
///
/// # Safety
/// `u` is a DefineStmt.
pub(super) unsafe fn define(u: &Utility) -> TResult<Step> {
    // SAFETY: the tag was checked by the table; an aggregate's args are (list of
    // FunctionParameter or TypeName, Integer).
    let table_row = unsafe {
        let s = u.node::<pg_sys::DefineStmt>();
        (*s).kind == pg_sys::ObjectType::OBJECT_AGGREGATE
            && list_ptrs((*s).args).into_iter().take(1).any(|l| {
                crate::pg::nodes::is_a(l as *const std::ffi::c_void, pg_sys::NodeTag::T_List)
                    && list_ptrs(l as *mut pg_sys::List).into_iter().any(|p| {
                        let t = if crate::pg::nodes::is_a(
                            p as *const std::ffi::c_void,
                            pg_sys::NodeTag::T_FunctionParameter,
                        ) {
                            (*(p as *mut pg_sys::FunctionParameter)).argType
                        } else {
                            p as *mut pg_sys::TypeName
                        };
                        names_table_row(t)
                    })
            })
    };
    if table_row {
        return Ok(Step::Pass);
    }
    // SAFETY: as above.
    unsafe { as_written(u) }
}

/// Whether a function (procedure, aggregate) `owa` of kind `kind` is one the workers have:
/// one [`create_function`] sends (no table row type in its signature, no SQL-standard body).
/// A function that is not found is (ALTER or DROP of it fails here, or it is a worker's only).
///
/// # Safety
/// `owa` is an ObjectWithArgs node.
pub(super) unsafe fn function_is_shared(
    kind: pg_sys::ObjectType::Type,
    owa: *mut pg_sys::Node,
) -> bool {
    // SAFETY: a missing_ok function lookup; then pg_proc through lsyscache and the syscache.
    unsafe {
        let oid = pg_sys::LookupFuncWithArgs(kind, owa as *mut pg_sys::ObjectWithArgs, true);
        oid == pg_sys::InvalidOid || oid_is_shared(oid)
    }
}

/// [`function_is_shared`] of a function by OID.
pub(crate) fn oid_is_shared(oid: pg_sys::Oid) -> bool {
    // SAFETY: pg_proc through lsyscache and the syscache.
    unsafe {
        let mut argtypes: *mut pg_sys::Oid = std::ptr::null_mut();
        let mut nargs: std::ffi::c_int = 0;
        let ret = pg_sys::get_func_signature(oid, &mut argtypes, &mut nargs);
        let mut types: Vec<pg_sys::Oid> =
            std::slice::from_raw_parts(argtypes, nargs as usize).to_vec();
        types.push(ret);
        let table_row = types.into_iter().any(is_table_row);
        let cache = pg_sys::SysCacheIdentifier::PROCOID as std::ffi::c_int;
        let tuple = pg_sys::SearchSysCache1(cache, pg_sys::Datum::from(oid));
        let mut no_body = true;
        if !tuple.is_null() {
            // prosqlbody is attribute 28 of pg_proc (pg_proc_d.h).
            pg_sys::SysCacheGetAttr(cache, tuple, 28, &mut no_body);
            pg_sys::ReleaseSysCache(tuple);
        }
        !table_row && no_body
    }
}

/// ALTER FUNCTION / PROCEDURE / ROUTINE: as written, for a function the workers have.
///
/// # Safety
/// `u` is an AlterFunctionStmt.
pub(super) unsafe fn alter_function(u: &Utility) -> TResult<Step> {
    // SAFETY: the tag was checked by the table.
    let shared = unsafe {
        let s = u.node::<pg_sys::AlterFunctionStmt>();
        function_is_shared((*s).objtype, (*s).func as *mut pg_sys::Node)
    };
    if shared {
        // SAFETY: as above.
        unsafe { as_written(u) }
    } else {
        Ok(Step::Pass)
    }
}

/// `CREATE SCHEMA` of the schema named `name`, as the coordinator has it, where missing.
pub(super) fn create_schema_command(name: &str) -> TResult<Option<String>> {
    let c = std::ffi::CString::new(name).unwrap_or_default();
    // SAFETY: a missing_ok name lookup.
    let nsp = unsafe { pg_sys::get_namespace_oid(c.as_ptr(), true) };
    create_schema_sql(nsp)
}

/// `CREATE SCHEMA name AUTHORIZATION owner` as the coordinator has it, for a node that lacks
/// the schema.
fn create_schema_sql(nsp: pg_sys::Oid) -> TResult<Option<String>> {
    Spi::connect(|client| {
        let rows = client.select(
            "SELECT nspname::text, pg_catalog.pg_get_userbyid(nspowner)::text
               FROM pg_catalog.pg_namespace WHERE oid = $1",
            None,
            &[nsp.into()],
        )?;
        let Some(row) = rows.into_iter().next() else {
            return Ok(None);
        };
        let name = row.get::<String>(1)?.unwrap_or_default();
        let owner = row.get::<String>(2)?.unwrap_or_default();
        Ok(Some(crate::sharding::ddl::create_schema_if_missing(
            &name,
            Some(&owner),
        )))
    })
}

/// CREATE SCHEMA: the schema (not its elements) on every worker.
///
/// # Safety
/// `u` is a CreateSchemaStmt.
pub(super) unsafe fn create_schema(u: &Utility) -> TResult<Step> {
    // SAFETY: the tag was checked by the table; schemaname is null for `CREATE SCHEMA
    // AUTHORIZATION role` (the schema is then named after the role).
    let name = unsafe {
        let s = u.node::<pg_sys::CreateSchemaStmt>();
        if !(*s).schemaname.is_null() {
            string((*s).schemaname)
        } else if !(*s).authrole.is_null() {
            string(pg_sys::get_rolespec_name((*s).authrole))
        } else {
            String::new()
        }
    };
    on_every_worker(move || {
        let c = std::ffi::CString::new(name.as_str()).unwrap_or_default();
        // SAFETY: a name lookup of the schema the local statement created.
        let nsp = unsafe { pg_sys::get_namespace_oid(c.as_ptr(), true) };
        Ok(create_schema_sql(nsp)?.into_iter().collect())
    })
}

/// DROP SCHEMA: `DROP SCHEMA IF EXISTS` of the same schemas, with the same behaviour.
///
/// # Safety
/// `u` is a DropStmt of schemas.
pub(super) unsafe fn drop_schema(u: &Utility) -> TResult<Step> {
    // SAFETY: a DROP SCHEMA's objects are String nodes; behavior is its CASCADE / RESTRICT.
    let sql = unsafe {
        let s = u.node::<pg_sys::DropStmt>();
        let names: Vec<String> = list_ptrs((*s).objects)
            .into_iter()
            .map(|n| quote_identifier(string((*(n as *mut pg_sys::String)).sval)))
            .collect();
        let cascade = (*s).behavior == pg_sys::DropBehavior::DROP_CASCADE;
        format!(
            "DROP SCHEMA IF EXISTS {}{}",
            names.join(", "),
            if cascade { " CASCADE" } else { "" }
        )
    };
    on_every_worker(move || Ok(vec![sql]))
}

/// GRANT / REVOKE on schemas, functions, procedures, routines, types, domains (tables are
/// `grant`'s): as written, creating a schema a worker lacks first.
///
/// # Safety
/// `u` is a GrantStmt that is not on tables.
pub(super) unsafe fn grant(u: &Utility) -> TResult<Step> {
    // SAFETY: a GRANT ON SCHEMA's objects are String nodes.
    let schemas: Vec<String> = unsafe {
        let s = u.node::<pg_sys::GrantStmt>();
        if (*s).objtype == pg_sys::ObjectType::OBJECT_SCHEMA {
            list_ptrs((*s).objects)
                .into_iter()
                .map(|n| string((*(n as *mut pg_sys::String)).sval))
                .collect()
        } else {
            Vec::new()
        }
    };
    // SAFETY: a GRANT on routines names them as ObjectWithArgs.
    let shared: Vec<bool> = unsafe {
        let s = u.node::<pg_sys::GrantStmt>();
        if matches!(
            (*s).objtype,
            pg_sys::ObjectType::OBJECT_FUNCTION
                | pg_sys::ObjectType::OBJECT_PROCEDURE
                | pg_sys::ObjectType::OBJECT_ROUTINE
        ) && (*s).targtype == pg_sys::GrantTargetType::ACL_TARGET_OBJECT
        {
            list_ptrs((*s).objects)
                .into_iter()
                .map(|o| function_is_shared((*s).objtype, o as *mut pg_sys::Node))
                .collect()
        } else {
            Vec::new()
        }
    };
    if !shared.is_empty() && shared.iter().all(|s| !s) {
        // Functions the workers do not have (see create_function): the coordinator's alone.
        return Ok(Step::Pass);
    }
    if shared.iter().any(|s| !s) {
        return Err(crate::error::TesseraError::new(
            pgrx::PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            "GRANT or REVOKE names functions the workers have and functions only the coordinator has",
        )
        .hint("Grant on them in separate statements: a function on a table's row type (or with a BEGIN ATOMIC body) is the coordinator's alone."));
    }
    let sql = u.text();
    on_every_worker(move || {
        let mut out = Vec::new();
        for name in schemas {
            let c = std::ffi::CString::new(name.as_str()).unwrap_or_default();
            // SAFETY: a name lookup.
            let nsp = unsafe { pg_sys::get_namespace_oid(c.as_ptr(), true) };
            out.extend(create_schema_sql(nsp)?);
        }
        out.push(sql);
        Ok(out)
    })
}

/// `DO $tag$ BEGIN <sql>; EXCEPTION WHEN duplicate_object OR duplicate_function THEN NULL;
/// END $tag$`, with a dollar quote that occurs nowhere in `sql`: a command that makes an object
/// a node may have already.
fn unless_exists(sql: &str) -> String {
    tessera_core::sqltext::do_block(&format!(
        "BEGIN {sql}; EXCEPTION WHEN duplicate_object OR duplicate_function THEN NULL; END"
    ))
}

/// `(oid, CREATE ..., what follows it)` of the users' range types, collations, operators and
/// text search dictionaries and configurations that no extension owns, printed with an empty
/// search_path (every name qualified).
const OTHER_OBJECTS: &str = "
  SELECT t.oid::int8,
         format('CREATE TYPE %s AS RANGE (SUBTYPE = %s, SUBTYPE_OPCLASS = %s%s%s%s%s)', t.oid::regtype,
                r.rngsubtype::regtype,
                (SELECT format('%I.%I', on_.nspname, oc.opcname) FROM pg_catalog.pg_opclass oc
                   JOIN pg_catalog.pg_namespace on_ ON on_.oid = oc.opcnamespace WHERE oc.oid = r.rngsubopc),
                CASE WHEN r.rngcollation <> 0 THEN (SELECT format(', COLLATION = %I.%I', cn.nspname, co.collname)
                       FROM pg_catalog.pg_collation co JOIN pg_catalog.pg_namespace cn ON cn.oid = co.collnamespace
                      WHERE co.oid = r.rngcollation) ELSE '' END,
                CASE WHEN r.rngcanonical <> 0 THEN ', CANONICAL = ' || r.rngcanonical::regproc ELSE '' END,
                CASE WHEN r.rngsubdiff <> 0 THEN ', SUBTYPE_DIFF = ' || r.rngsubdiff::regproc ELSE '' END,
                ', MULTIRANGE_TYPE_NAME = ' || r.rngmultitypid::regtype),
         format('ALTER TYPE %s OWNER TO %I', t.oid::regtype, pg_catalog.pg_get_userbyid(t.typowner))
    FROM pg_catalog.pg_type t JOIN pg_catalog.pg_range r ON r.rngtypid = t.oid
    JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
   WHERE t.oid >= 16384 AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
     AND NOT EXISTS (SELECT FROM pg_catalog.pg_depend d WHERE d.classid = 'pg_catalog.pg_type'::regclass
                                                          AND d.objid = t.oid AND d.deptype = 'e')
  UNION ALL
  SELECT c.oid::int8,
         format('CREATE COLLATION %I.%I (%s, DETERMINISTIC = %s)', n.nspname, c.collname,
                CASE c.collprovider
                  WHEN 'i' THEN format('PROVIDER = icu, LOCALE = %L', c.colliculocale)
                  ELSE format('PROVIDER = libc, LC_COLLATE = %L, LC_CTYPE = %L', c.collcollate, c.collctype) END,
                CASE WHEN c.collisdeterministic THEN 'true' ELSE 'false' END),
         format('ALTER COLLATION %I.%I OWNER TO %I', n.nspname, c.collname, pg_catalog.pg_get_userbyid(c.collowner))
    FROM pg_catalog.pg_collation c JOIN pg_catalog.pg_namespace n ON n.oid = c.collnamespace
   WHERE c.oid >= 16384 AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
     AND NOT EXISTS (SELECT FROM pg_catalog.pg_depend d WHERE d.classid = 'pg_catalog.pg_collation'::regclass
                                                          AND d.objid = c.oid AND d.deptype = 'e')
  UNION ALL
  SELECT o.oid::int8,
         format('CREATE OPERATOR %I.%s (FUNCTION = %s%s%s%s%s%s%s%s)', n.nspname, o.oprname,
                o.oprcode::regproc,
                CASE WHEN o.oprleft <> 0 THEN ', LEFTARG = ' || o.oprleft::regtype ELSE '' END,
                CASE WHEN o.oprright <> 0 THEN ', RIGHTARG = ' || o.oprright::regtype ELSE '' END,
                CASE WHEN o.oprcom <> 0 THEN (SELECT format(', COMMUTATOR = OPERATOR(%I.%s)', cn.nspname, co.oprname)
                       FROM pg_catalog.pg_operator co JOIN pg_catalog.pg_namespace cn ON cn.oid = co.oprnamespace
                      WHERE co.oid = o.oprcom) ELSE '' END,
                CASE WHEN o.oprnegate <> 0 THEN (SELECT format(', NEGATOR = OPERATOR(%I.%s)', cn.nspname, co.oprname)
                       FROM pg_catalog.pg_operator co JOIN pg_catalog.pg_namespace cn ON cn.oid = co.oprnamespace
                      WHERE co.oid = o.oprnegate) ELSE '' END,
                CASE WHEN o.oprrest <> 0 THEN ', RESTRICT = ' || o.oprrest::regproc ELSE '' END,
                CASE WHEN o.oprjoin <> 0 THEN ', JOIN = ' || o.oprjoin::regproc ELSE '' END,
                CASE WHEN o.oprcanhash THEN ', HASHES' ELSE '' END || CASE WHEN o.oprcanmerge THEN ', MERGES' ELSE '' END),
         format('ALTER OPERATOR %s OWNER TO %I', o.oid::regoperator, pg_catalog.pg_get_userbyid(o.oprowner))
    FROM pg_catalog.pg_operator o JOIN pg_catalog.pg_namespace n ON n.oid = o.oprnamespace
   WHERE o.oid >= 16384 AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema' AND o.oprcode <> 0
     AND NOT EXISTS (SELECT FROM pg_catalog.pg_depend d WHERE d.classid = 'pg_catalog.pg_operator'::regclass
                                                          AND d.objid = o.oid AND d.deptype = 'e')
  UNION ALL
  SELECT d.oid::int8,
         format('CREATE TEXT SEARCH DICTIONARY %I.%I (TEMPLATE = %I.%I%s)', n.nspname, d.dictname, tn.nspname, tt.tmplname,
                coalesce(', ' || d.dictinitoption, '')),
         format('ALTER TEXT SEARCH DICTIONARY %I.%I OWNER TO %I', n.nspname, d.dictname, pg_catalog.pg_get_userbyid(d.dictowner))
    FROM pg_catalog.pg_ts_dict d JOIN pg_catalog.pg_namespace n ON n.oid = d.dictnamespace
    JOIN pg_catalog.pg_ts_template tt ON tt.oid = d.dicttemplate JOIN pg_catalog.pg_namespace tn ON tn.oid = tt.tmplnamespace
   WHERE d.oid >= 16384 AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
     AND NOT EXISTS (SELECT FROM pg_catalog.pg_depend x WHERE x.classid = 'pg_catalog.pg_ts_dict'::regclass
                                                          AND x.objid = d.oid AND x.deptype = 'e')
  UNION ALL
  SELECT c.oid::int8,
         format('CREATE TEXT SEARCH CONFIGURATION %I.%I (PARSER = %I.%I)', n.nspname, c.cfgname, pn.nspname, p.prsname),
         concat_ws(';
',
           format('ALTER TEXT SEARCH CONFIGURATION %I.%I OWNER TO %I', n.nspname, c.cfgname, pg_catalog.pg_get_userbyid(c.cfgowner)),
           (SELECT string_agg(format('ALTER TEXT SEARCH CONFIGURATION %I.%I ADD MAPPING FOR %s WITH %s', n.nspname, c.cfgname,
                                     m.alias, m.dicts), ';
' ORDER BY m.alias)
              FROM (SELECT tt.alias, string_agg(format('%I.%I', dn.nspname, dd.dictname), ', ' ORDER BY cm.mapseqno) AS dicts
                      FROM pg_catalog.pg_ts_config_map cm
                      JOIN pg_catalog.ts_token_type(c.cfgparser) tt ON tt.tokid = cm.maptokentype
                      JOIN pg_catalog.pg_ts_dict dd ON dd.oid = cm.mapdict
                      JOIN pg_catalog.pg_namespace dn ON dn.oid = dd.dictnamespace
                     WHERE cm.mapcfg = c.oid GROUP BY tt.alias) m))
    FROM pg_catalog.pg_ts_config c JOIN pg_catalog.pg_namespace n ON n.oid = c.cfgnamespace
    JOIN pg_catalog.pg_ts_parser p ON p.oid = c.cfgparser JOIN pg_catalog.pg_namespace pn ON pn.oid = p.prsnamespace
   WHERE c.oid >= 16384 AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
     AND NOT EXISTS (SELECT FROM pg_catalog.pg_depend x WHERE x.classid = 'pg_catalog.pg_ts_config'::regclass
                                                          AND x.objid = c.oid AND x.deptype = 'e')";

/// The commands that take from a node's database every privilege it gives to anyone but its
/// owner (PUBLIC's defaults too, and with CASCADE what was granted on from them: a node added
/// back keeps nothing that was revoked while it was away), and give PUBLIC's defaults (CONNECT,
/// TEMPORARY) back when the coordinator's database has the defaults (`datacl` NULL); its grants
/// follow ([`DATABASE_GRANTS`]).
const DATABASE_PRIVILEGES_RESET: &str = "
  SELECT text FROM (
  SELECT 0 AS step, $do$DO $tessera$
      DECLARE g oid;
      BEGIN
        EXECUTE pg_catalog.format('REVOKE ALL ON DATABASE %I FROM PUBLIC CASCADE', pg_catalog.current_database());
        FOR g IN SELECT DISTINCT a.grantee
                   FROM pg_catalog.pg_database d, pg_catalog.aclexplode(d.datacl) a
                  WHERE d.datname = pg_catalog.current_database() AND a.grantee NOT IN (0, d.datdba) LOOP
          EXECUTE pg_catalog.format('REVOKE ALL ON DATABASE %I FROM %I CASCADE',
                                    pg_catalog.current_database(), pg_catalog.pg_get_userbyid(g));
        END LOOP;
      END $tessera$$do$ AS text
  UNION ALL
  SELECT 1, format('GRANT CONNECT, TEMPORARY ON DATABASE %I TO PUBLIC', d.datname)
    FROM pg_catalog.pg_database d
   WHERE d.datname = pg_catalog.current_database() AND d.datacl IS NULL) s
  ORDER BY step";

/// The current database's grants (other than to its owner), as rows for
/// [`crate::sharding::privileges::acl_grants`]: the whole GRANT statement as the text before
/// the object's name, nothing after (the database's name is in it).
const DATABASE_GRANTS: &str = "
  SELECT a.grantor, pg_catalog.pg_get_userbyid(a.grantor)::text, a.grantee, a.privilege_type,
         NULL::text, a.is_grantable,
         format('GRANT %s ON DATABASE %I TO %s%s', a.privilege_type, d.datname,
                CASE WHEN a.grantee = 0 THEN 'PUBLIC'
                     ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(a.grantee)) END,
                CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END),
         ''
    FROM pg_catalog.pg_database d, pg_catalog.aclexplode(d.datacl) a
   WHERE d.datname = pg_catalog.current_database() AND a.grantee <> d.datdba
   ORDER BY 7";

/// The current database's privileges as commands that make a node's the same: the reset
/// ([`DATABASE_PRIVILEGES_RESET`]), then each grant in grant-option order, made by the role
/// that made it on the coordinator (the database's owner, or, through a grant option, another
/// role: `SET LOCAL ROLE`, after the grant that gave it the option), so `REVOKE ... CASCADE`
/// reaches the same grants on the node. The node is added by a superuser, whose connection may
/// take any role.
fn database_privileges(client: &pgrx::spi::SpiClient<'_>) -> TResult<Vec<String>> {
    use crate::sharding::privileges::{acl_grants, in_grant_order};
    let mut out = Vec::new();
    for row in client.select(DATABASE_PRIVILEGES_RESET, None, &[])? {
        out.push(row.get::<String>(1)?.unwrap_or_default());
    }
    let owner = client
        .select(
            "SELECT datdba FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database()",
            None,
            &[],
        )?
        .first()
        .get::<pg_sys::Oid>(1)?
        .unwrap_or(pg_sys::InvalidOid);
    let current = client
        .select("SELECT current_user::text", None, &[])?
        .first()
        .get::<String>(1)?
        .unwrap_or_default();
    for g in in_grant_order(acl_grants(client, DATABASE_GRANTS, &[])?, owner) {
        out.push(if g.grantor == owner {
            g.before
        } else {
            format!(
                "SET LOCAL ROLE {}; {}; SET LOCAL ROLE {}",
                quote_identifier(&g.grantor_name),
                g.before,
                quote_identifier(&current)
            )
        });
    }
    Ok(out)
}

/// The commands that give a node added later the schemas, types, domains, functions,
/// procedures and aggregates that queries on its shards may need: users' objects that no
/// extension owns, in the order they were made (OID order, so an object comes after those it
/// was made from), each made only if the node lacks it. Functions that stay the coordinator's
/// (see [`create_function`]) are left out. The database's privileges come first, as `GRANT
/// ... ON DATABASE` gave them (the roles are made before). One command string: the node gets
/// all or none.
pub(crate) fn sync_commands() -> TResult<Vec<String>> {
    let mut out = vec!["SELECT pg_catalog.set_config('search_path', '', true), \
                pg_catalog.set_config('check_function_bodies', 'off', true)"
        .to_string()];
    // Printed with an empty search_path, every name is schema-qualified.
    let _qualified = crate::pg::guc::GucScope::new(&[(c"search_path", c"")]);
    Spi::connect(|client| -> TResult<()> {
        out.extend(database_privileges(client)?);
        for row in client.select(
            "SELECT format('CREATE SCHEMA IF NOT EXISTS %I AUTHORIZATION %I', n.nspname,
                           pg_catalog.pg_get_userbyid(n.nspowner))
                    || coalesce((SELECT string_agg(format(';\nGRANT %s ON SCHEMA %I TO %s%s', a.privilege_type, n.nspname,
                                                   CASE WHEN a.grantee = 0 THEN 'PUBLIC'
                                                        ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(a.grantee)) END,
                                                   CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END), '')
                                   FROM pg_catalog.aclexplode(n.nspacl) a WHERE a.grantee <> n.nspowner), '')
               FROM pg_catalog.pg_namespace n
              WHERE n.oid >= 16384 AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
                AND NOT EXISTS (SELECT FROM pg_catalog.pg_depend d
                                 WHERE d.classid = 'pg_catalog.pg_namespace'::regclass
                                   AND d.objid = n.oid AND d.deptype = 'e')
              ORDER BY n.oid",
            None,
            &[],
        )? {
            out.push(row.get::<String>(1)?.unwrap_or_default());
        }
        // Types (enum, composite, domain) and routines, in OID order, with their owners and
        // privileges; then what domains add to themselves.
        let mut made: Vec<(u32, String)> = Vec::new();
        let mut later: Vec<String> = Vec::new();
        for row in client.select(
            "SELECT t.oid::int8, CASE t.typtype
                 WHEN 'e' THEN format('CREATE TYPE %s AS ENUM (%s)', t.oid::regtype,
                        (SELECT string_agg(pg_catalog.quote_literal(e.enumlabel), ', ' ORDER BY e.enumsortorder)
                           FROM pg_catalog.pg_enum e WHERE e.enumtypid = t.oid))
                 WHEN 'c' THEN format('CREATE TYPE %s AS (%s)', t.oid::regtype,
                        (SELECT string_agg(pg_catalog.quote_ident(a.attname) || ' ' ||
                                           pg_catalog.format_type(a.atttypid, a.atttypmod), ', ' ORDER BY a.attnum)
                           FROM pg_catalog.pg_attribute a
                          WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped))
                 WHEN 'd' THEN format('CREATE DOMAIN %s AS %s%s', t.oid::regtype,
                        pg_catalog.format_type(t.typbasetype, t.typtypmod),
                        CASE WHEN t.typnotnull THEN ' NOT NULL' ELSE '' END)
               END,
               format('ALTER %s %s OWNER TO %I', CASE WHEN t.typtype = 'd' THEN 'DOMAIN' ELSE 'TYPE' END,
                      t.oid::regtype, pg_catalog.pg_get_userbyid(t.typowner)),
               CASE WHEN t.typacl IS NOT NULL THEN
                 format('REVOKE ALL ON TYPE %s FROM PUBLIC', t.oid::regtype) ||
                 coalesce((SELECT string_agg(format(';\nGRANT %s ON TYPE %s TO %s%s', a.privilege_type, t.oid::regtype,
                                                   CASE WHEN a.grantee = 0 THEN 'PUBLIC'
                                                        ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(a.grantee)) END,
                                                   CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END), '')
                             FROM pg_catalog.aclexplode(t.typacl) a WHERE a.grantee <> t.typowner), '')
               END,
               CASE WHEN t.typtype = 'd' THEN
                 concat_ws(';\n',
                   CASE WHEN t.typdefault IS NOT NULL THEN format('ALTER DOMAIN %s SET DEFAULT %s', t.oid::regtype, t.typdefault) END,
                   (SELECT string_agg(format('ALTER DOMAIN %s ADD CONSTRAINT %I %s', t.oid::regtype, c.conname,
                                             pg_catalog.pg_get_constraintdef(c.oid)), ';\n' ORDER BY c.oid)
                      FROM pg_catalog.pg_constraint c WHERE c.contypid = t.oid))
               END
               FROM pg_catalog.pg_type t
               JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
              WHERE t.oid >= 16384 AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
                AND (t.typtype IN ('e', 'd')
                     OR (t.typtype = 'c' AND (SELECT c.relkind FROM pg_catalog.pg_class c WHERE c.oid = t.typrelid) = 'c'))
                AND NOT EXISTS (SELECT FROM pg_catalog.pg_depend d
                                 WHERE d.classid = 'pg_catalog.pg_type'::regclass
                                   AND d.objid = t.oid AND d.deptype = 'e')",
            None,
            &[],
        )? {
            let oid = row.get::<i64>(1)?.unwrap_or_default() as u32;
            if let Some(sql) = row.get::<String>(2)? {
                made.push((oid, unless_exists(&sql)));
                made.push((oid, row.get::<String>(3)?.unwrap_or_default()));
                made.extend(row.get::<String>(4)?.map(|g| (oid, g)));
            }
            // A domain's default and constraints may call functions made after it (ALTER
            // DOMAIN ... ADD CONSTRAINT): they come after every routine.
            if let Some(after) = row.get::<String>(5)?.filter(|a| !a.is_empty()) {
                later.push(unless_exists(&after));
            }
        }
        for row in client.select(
            "SELECT p.oid::int8, p.prokind::text,
                    CASE WHEN p.prokind IN ('f', 'p') THEN pg_catalog.pg_get_functiondef(p.oid)
                    ELSE format('CREATE AGGREGATE %s(%s) (SFUNC = %s, STYPE = %s%s%s%s%s%s%s)',
                           p.oid::regproc, pg_catalog.pg_get_function_identity_arguments(p.oid),
                           a.aggtransfn::regproc, pg_catalog.format_type(a.aggtranstype, NULL),
                           CASE WHEN a.aggfinalfn <> 0 THEN ', FINALFUNC = ' || a.aggfinalfn::regproc ELSE '' END,
                           CASE WHEN a.aggfinalextra THEN ', FINALFUNC_EXTRA' ELSE '' END,
                           CASE WHEN a.aggcombinefn <> 0 THEN ', COMBINEFUNC = ' || a.aggcombinefn::regproc ELSE '' END,
                           CASE WHEN a.aggserialfn <> 0 THEN ', SERIALFUNC = ' || a.aggserialfn::regproc ||
                                                              ', DESERIALFUNC = ' || a.aggdeserialfn::regproc ELSE '' END,
                           CASE WHEN a.agginitval IS NOT NULL THEN ', INITCOND = ' || pg_catalog.quote_literal(a.agginitval) ELSE '' END,
                           CASE p.proparallel WHEN 's' THEN ', PARALLEL = SAFE' WHEN 'r' THEN ', PARALLEL = RESTRICTED' ELSE '' END)
                    END,
                    format('ALTER %s %s OWNER TO %I', CASE p.prokind WHEN 'a' THEN 'AGGREGATE' ELSE 'ROUTINE' END,
                           p.oid::regprocedure, pg_catalog.pg_get_userbyid(p.proowner)),
                    CASE WHEN p.proacl IS NOT NULL THEN
                      format('REVOKE ALL ON %s %s FROM PUBLIC', CASE p.prokind WHEN 'p' THEN 'PROCEDURE' ELSE 'FUNCTION' END,
                             p.oid::regprocedure) ||
                      coalesce((SELECT string_agg(format(';\nGRANT %s ON %s %s TO %s%s', a.privilege_type,
                                                        CASE p.prokind WHEN 'p' THEN 'PROCEDURE' ELSE 'FUNCTION' END,
                                                        p.oid::regprocedure,
                                                        CASE WHEN a.grantee = 0 THEN 'PUBLIC'
                                                             ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(a.grantee)) END,
                                                        CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END), '')
                                  FROM pg_catalog.aclexplode(p.proacl) a WHERE a.grantee <> p.proowner), '')
                    END
               FROM pg_catalog.pg_proc p
               JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
               LEFT JOIN pg_catalog.pg_aggregate a ON a.aggfnoid = p.oid
              WHERE p.oid >= 16384 AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
                AND p.prokind IN ('f', 'p', 'a') AND (p.prokind <> 'a' OR a.aggkind = 'n')
                AND p.prosqlbody IS NULL
                AND NOT EXISTS (SELECT FROM pg_catalog.pg_depend d
                                 WHERE d.classid = 'pg_catalog.pg_proc'::regclass
                                   AND d.objid = p.oid AND d.deptype = 'e')
                AND NOT EXISTS (SELECT FROM pg_catalog.unnest(p.proargtypes::oid[] || p.prorettype) u(t)
                                  JOIN pg_catalog.pg_type ty ON ty.oid = u.t
                                  JOIN pg_catalog.pg_class c ON c.oid = ty.typrelid
                                 WHERE c.relkind <> 'c')",
            None,
            &[],
        )? {
            let oid = row.get::<i64>(1)?.unwrap_or_default() as u32;
            let kind = row.get::<String>(2)?.unwrap_or_default();
            if let Some(sql) = row.get::<String>(3)? {
                // pg_get_functiondef says CREATE OR REPLACE: made or replaced alike.
                made.push((oid, if kind == "a" { unless_exists(&sql) } else { sql }));
                made.push((oid, row.get::<String>(4)?.unwrap_or_default()));
                made.extend(row.get::<String>(5)?.map(|g| (oid, g)));
            }
        }
        // Range types, collations, operators and text search dictionaries and configurations
        // (each with its owner), in the same OID order.
        for row in client.select(OTHER_OBJECTS, None, &[])? {
            let oid = row.get::<i64>(1)?.unwrap_or_default() as u32;
            if let Some(sql) = row.get::<String>(2)? {
                made.push((oid, unless_exists(&sql)));
                made.extend(row.get::<String>(3)?.map(|s| (oid, s)));
            }
        }
        // A stable sort: an object's own commands keep their order.
        made.sort_by_key(|(oid, _)| *oid);
        out.extend(made.into_iter().map(|(_, sql)| sql));
        out.extend(later);
        // Default privileges: a global entry replaces the built-in defaults (so they are
        // revoked first), a schema's adds to them.
        for row in client.select(
            "SELECT format('ALTER DEFAULT PRIVILEGES FOR ROLE %I%s ', pg_catalog.pg_get_userbyid(d.defaclrole),
                           CASE WHEN d.defaclnamespace = 0 THEN ''
                                ELSE format(' IN SCHEMA %I', (SELECT n.nspname FROM pg_catalog.pg_namespace n
                                                               WHERE n.oid = d.defaclnamespace)) END),
                    CASE d.defaclobjtype WHEN 'r' THEN 'TABLES' WHEN 'S' THEN 'SEQUENCES' WHEN 'f' THEN 'FUNCTIONS'
                                         WHEN 'T' THEN 'TYPES' WHEN 'n' THEN 'SCHEMAS' END,
                    d.defaclnamespace = 0, pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(d.defaclrole)),
                    (SELECT pg_catalog.array_agg(format('GRANT %s ON %%s TO %s%s', a.privilege_type,
                                CASE WHEN a.grantee = 0 THEN 'PUBLIC'
                                     ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(a.grantee)) END,
                                CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END))
                       FROM pg_catalog.aclexplode(d.defaclacl) a)
               FROM pg_catalog.pg_default_acl d
              WHERE d.defaclobjtype IN ('r', 'S', 'f', 'T', 'n')
              ORDER BY d.oid",
            None,
            &[],
        )? {
            let prefix = row.get::<String>(1)?.unwrap_or_default();
            let kind = row.get::<String>(2)?.unwrap_or_default();
            let global = row.get::<bool>(3)?.unwrap_or(false);
            let role = row.get::<String>(4)?.unwrap_or_default();
            if global {
                out.push(format!("{prefix}REVOKE ALL ON {kind} FROM PUBLIC, {role}"));
            }
            for grant in row.get::<Vec<String>>(5)?.unwrap_or_default() {
                out.push(format!("{prefix}{}", grant.replacen("%s", &kind, 1)));
            }
        }
        Ok(())
    })?;
    Ok(out)
}
