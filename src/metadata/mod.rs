//! Typed access to Tessera's catalog tables.
//!
//! - `node`: `pg_dist_node`, the nodes of the cluster.
//! - `table`: distributed tables, shards, placements and colocation groups.
//! - `cache`: the planner's and executor's view of both, per backend, invalidated by relcache
//!   callbacks.
//!
//! Reads and writes of `node` and `table` go through SPI: they are rare, and the catalog must
//! see the user's transaction. The hot path (is this relation distributed? where are its
//! shards?) reads `cache`.

pub mod cache;
pub mod node;
pub mod table;
