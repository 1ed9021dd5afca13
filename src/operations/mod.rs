//! Operations that carry a table's data between nodes.
//!
//! - `rows`: the one row mover (COPY text between any two places).
//! - `shard_move`: moving shard placements between nodes (`block_writes`), and the cleanup of
//!   the old placements.
//! - `replicate`: reference tables copied to a node that joins the cluster.

pub mod replicate;
pub mod rows;
pub mod shard_move;
