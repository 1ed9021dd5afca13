//! Typed access to Tessera's catalog tables.
//!
//! - `node`: `pg_dist_node`, the nodes of the cluster.
//! - `table`: distributed tables, shards, placements and colocation groups.
//!
//! Node functions read and write through SPI: they are rare, and the catalog must see the
//! user's transaction. The planner's hot-path lookups (is this relation distributed?) will go
//! through an in-memory cache invalidated by relcache callbacks.

pub mod node;
pub mod table;
