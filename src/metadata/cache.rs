//! The per-backend metadata cache: "is this relation distributed, and where are its shards?"
//! for the price of a hash lookup.
//!
//! Entries are filled from the catalog on first use (SPI) and dropped by a relcache callback:
//! every change to a table's distribution metadata queues a relcache invalidation for that
//! table (`metadata::table`), every change to `pg_dist_node` one for `pg_dist_node`
//! ([`invalidate_nodes`]), and an invalidation of everything (InvalidOid) clears it all. Local
//! tables are cached as "not distributed" the same way, so the planner hook's fast path does
//! no catalog access after the first query on a table.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use pgrx::pg_sys;
use pgrx::prelude::*;

use super::table::{self, DistTable, Shard, TableKind};
use crate::connection::NodeAddress;
use crate::error::{TResult, TesseraError};

/// A distributed table as the planner and executor see it.
#[derive(Debug)]
pub struct TableMeta {
    pub table: DistTable,
    pub schema: String,
    pub name: String,
    /// Shards in hash order (one shard for reference tables).
    pub shards: Vec<Shard>,
    /// Type, typmod and collation of the distribution column (InvalidOid when none).
    pub dist_type: pg_sys::Oid,
    pub dist_collation: pg_sys::Oid,
    /// The default hash function and hash operator family of the distribution column's type.
    pub hash_proc: pg_sys::Oid,
    pub hash_opfamily: pg_sys::Oid,
    /// The stored hash range of each shard, in `shards` order (empty for reference tables).
    pub ranges: Vec<tessera_core::sharding::HashRange>,
}

impl TableMeta {
    pub fn is_reference(&self) -> bool {
        self.table.kind() == TableKind::Reference
    }

    /// A hash-distributed table: rows are routed by a distribution column (a reference table
    /// or a distributed schema's table has one shard and no such column).
    pub fn has_dist_column(&self) -> bool {
        self.table.kind() == TableKind::Hash
    }

    /// The index of the shard whose stored range holds `hash` (moved and split shards route
    /// by what the catalog says, not by an assumed uniform cut).
    pub fn shard_for_hash(&self, hash: i32) -> TResult<usize> {
        tessera_core::sharding::find_shard(&self.ranges, hash).ok_or_else(|| {
            TesseraError::new(
                PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                format!(
                    "no shard of {}.{} holds the hash value {hash}",
                    self.schema, self.name
                ),
            )
            .hint("The shard ranges in pg_dist_shard must cover every hash value without gaps: check that catalog table.")
        })
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Installed {
    Unknown,
    No,
    /// Yes, with the OIDs of pg_dist_partition and pg_dist_node.
    Yes(pg_sys::Oid, pg_sys::Oid),
}

thread_local! {
    static TABLES: RefCell<HashMap<pg_sys::Oid, Option<Rc<TableMeta>>>> = RefCell::new(HashMap::new());
    static NODES: RefCell<Option<Rc<HashMap<i32, NodeAddress>>>> = const { RefCell::new(None) };
    static INSTALLED: Cell<Installed> = const { Cell::new(Installed::Unknown) };
    /// Set while the cache reads the catalog: the catalog queries themselves are planned
    /// too, and must not recurse into the cache.
    static FILLING: Cell<bool> = const { Cell::new(false) };
    /// Bumped by every invalidation: an entry read while one arrived is not kept.
    static GENERATION: Cell<u64> = const { Cell::new(0) };
}

/// Resets FILLING however the catalog read ends (an error unwinds through it).
struct Filling;

impl Filling {
    fn start() -> Filling {
        FILLING.with(|f| f.set(true));
        Filling
    }
}

impl Drop for Filling {
    fn drop(&mut self) {
        FILLING.with(|f| f.set(false));
    }
}

pub fn init() {
    // SAFETY: _PG_init, once per process; the callback lives as long as the library.
    unsafe {
        pg_sys::CacheRegisterRelcacheCallback(Some(relcache_callback), pg_sys::Datum::from(0));
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn relcache_callback(_arg: pg_sys::Datum, relid: pg_sys::Oid) {
    // Nothing here allocates in PostgreSQL memory or raises errors.
    GENERATION.with(|g| g.set(g.get() + 1));
    let installed = INSTALLED.with(|i| i.get());
    let clear_all = match installed {
        Installed::Yes(partition, node) => {
            relid == pg_sys::InvalidOid || relid == partition || relid == node
        }
        _ => true,
    };
    if clear_all {
        INSTALLED.with(|i| i.set(Installed::Unknown));
        TABLES.with(|t| t.borrow_mut().clear());
        NODES.with(|n| n.borrow_mut().take());
        return;
    }
    TABLES.with(|t| t.borrow_mut().remove(&relid));
    if Some(relid) == node_relid(installed) {
        NODES.with(|n| n.borrow_mut().take());
    }
}

fn node_relid(i: Installed) -> Option<pg_sys::Oid> {
    match i {
        Installed::Yes(_, n) => Some(n),
        _ => None,
    }
}

/// Whether Tessera's catalog exists in this database (cached; a syscache lookup otherwise).
pub fn installed() -> bool {
    match INSTALLED.with(|i| i.get()) {
        Installed::Yes(..) => return true,
        Installed::No => return false,
        Installed::Unknown => {}
    }
    // SAFETY: plain catalog lookups by name; `creating_extension` is a backend global.
    let state = unsafe {
        if pg_sys::creating_extension {
            return false;
        }
        let ns = pg_sys::PG_CATALOG_NAMESPACE;
        let partition = pg_sys::get_relname_relid(c"pg_dist_partition".as_ptr(), ns.into());
        let node = pg_sys::get_relname_relid(c"pg_dist_node".as_ptr(), ns.into());
        let ext = pg_sys::get_extension_oid(c"tessera".as_ptr(), true);
        if partition == pg_sys::InvalidOid
            || node == pg_sys::InvalidOid
            || ext == pg_sys::InvalidOid
        {
            Installed::No
        } else {
            Installed::Yes(partition, node)
        }
    };
    INSTALLED.with(|i| i.set(state));
    matches!(state, Installed::Yes(..))
}

/// The distribution metadata of `relid`, or `None` for a table Tessera does not distribute.
pub fn lookup(relid: pg_sys::Oid) -> TResult<Option<Rc<TableMeta>>> {
    // Catalog and system relations are never distributed (and looking them up while the
    // cache reads the catalog would recurse).
    if relid.to_u32() < pg_sys::FirstNormalObjectId || FILLING.with(|f| f.get()) || !installed() {
        return Ok(None);
    }
    if let Some(hit) = TABLES.with(|t| t.borrow().get(&relid).cloned()) {
        return Ok(hit);
    }
    let generation = GENERATION.with(|g| g.get());
    let loaded = {
        let _filling = Filling::start();
        load(relid)
    };
    let entry = loaded?.map(Rc::new);
    if GENERATION.with(|g| g.get()) == generation {
        TABLES.with(|t| t.borrow_mut().insert(relid, entry.clone()));
    }
    Ok(entry)
}

fn load(relid: pg_sys::Oid) -> TResult<Option<TableMeta>> {
    let Some(table) = table::find(relid)? else {
        return Ok(None);
    };
    let shards = table::shards(relid)?;
    // SAFETY: syscache lookups of an existing relation and its attribute; the names are
    // copied out before the next catalog access.
    let (schema, name, dist_type, dist_collation) = unsafe {
        let name = pg_sys::get_rel_name(relid);
        let ns = pg_sys::get_rel_namespace(relid);
        let schema = pg_sys::get_namespace_name(ns);
        if name.is_null() || schema.is_null() {
            return Ok(None);
        }
        let (mut typ, mut typmod, mut coll) = (pg_sys::InvalidOid, 0, pg_sys::InvalidOid);
        if table.dist_attnum > 0 {
            pg_sys::get_atttypetypmodcoll(
                relid,
                table.dist_attnum,
                &mut typ,
                &mut typmod,
                &mut coll,
            );
        }
        (
            std::ffi::CStr::from_ptr(schema)
                .to_string_lossy()
                .into_owned(),
            std::ffi::CStr::from_ptr(name)
                .to_string_lossy()
                .into_owned(),
            typ,
            coll,
        )
    };
    let (hash_proc, hash_opfamily) = if dist_type != pg_sys::InvalidOid {
        // SAFETY: lookup_type_cache returns a long-lived cache entry for an existing type.
        unsafe {
            let entry = pg_sys::lookup_type_cache(
                dist_type,
                (pg_sys::TYPECACHE_HASH_PROC | pg_sys::TYPECACHE_HASH_OPFAMILY) as i32,
            );
            ((*entry).hash_proc, (*entry).hash_opf)
        }
    } else {
        (pg_sys::InvalidOid, pg_sys::InvalidOid)
    };
    // A single-shard table's one shard holds every hash value (its bounds are NULL).
    let ranges = if table.kind() == TableKind::Reference {
        Vec::new()
    } else {
        shards
            .iter()
            .map(|s| tessera_core::sharding::HashRange {
                min: s.min.unwrap_or(i32::MIN),
                max: s.max.unwrap_or(i32::MAX),
            })
            .collect()
    };
    Ok(Some(TableMeta {
        table,
        schema,
        name,
        ranges,
        shards,
        dist_type,
        dist_collation,
        hash_proc,
        hash_opfamily,
    }))
}

/// The address of the active primary node of `group`.
pub fn group_address(group: i32) -> TResult<NodeAddress> {
    let nodes = active_groups()?;
    nodes.get(&group).cloned().ok_or_else(|| {
        TesseraError::new(
            PgSqlErrorCode::ERRCODE_CONNECTION_DOES_NOT_EXIST,
            format!("no active node holds group {group}, which has shard placements"),
        )
        .hint("Activate the node with citus_activate_node(), or add it back with citus_add_node().")
    })
}

/// The group of the active primary node at `address`, if one is there.
pub fn group_of(address: &NodeAddress) -> TResult<Option<i32>> {
    Ok(active_groups()?
        .iter()
        .find(|(_, a)| *a == address)
        .map(|(g, _)| *g))
}

/// Group → address of every active primary node (cached until `pg_dist_node` changes).
fn active_groups() -> TResult<Rc<HashMap<i32, NodeAddress>>> {
    Ok(match NODES.with(|n| n.borrow().clone()) {
        Some(n) => n,
        None => {
            let mut map = HashMap::new();
            for n in super::node::all()? {
                if n.isactive && n.noderole == "primary" {
                    map.insert(n.groupid, n.address());
                }
            }
            let map = Rc::new(map);
            NODES.with(|n| *n.borrow_mut() = Some(map.clone()));
            map
        }
    })
}

/// Tells every backend (at commit; this one at the next command) that `pg_dist_node` changed.
pub fn invalidate_nodes() {
    // SAFETY: a name lookup, then a transactional relcache invalidation of an existing table.
    unsafe {
        let rel = pg_sys::get_relname_relid(
            c"pg_dist_node".as_ptr(),
            pg_sys::PG_CATALOG_NAMESPACE.into(),
        );
        if rel != pg_sys::InvalidOid {
            pg_sys::CacheInvalidateRelcacheByRelid(rel);
        }
    }
}
