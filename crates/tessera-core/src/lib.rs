//! Tessera logic that needs no PostgreSQL server.
//!
//! The extension crate (`tessera`) is glue between PostgreSQL and the plain Rust here: this crate
//! never links against PostgreSQL, so everything in it is tested with ordinary `#[test]`s.
//!
//! - [`conninfo`]: building libpq connection strings from a node address and the
//!   `citus.node_conninfo` setting, with quoting and password redaction.
//! - [`node`]: the rules of node management (roles, group ids, which properties may change).
//! - [`command_result`]: how the result of a command run on a node is shown to the user
//!   (`run_command_on_workers` semantics).
//! - [`sharding`]: hash ranges of shards, the shard of a hash value, placement, shard names.
//! - [`plan`]: the distributed plan the planner hook builds and the CustomScan carries out.
//! - [`deadlock`]: the wait-for graph of distributed transactions and its victims.

#![forbid(unsafe_code)]

pub mod command_result;
pub mod conninfo;
pub mod copy;
pub mod deadlock;
pub mod node;
pub mod plan;
pub mod sharding;
pub mod sqltext;
