//! Thin safe wrappers over PostgreSQL, below the planner, the executor and the commands:
//!
//! - [`nodes`]: Lists, strings, node tags;
//! - [`datum`]: a value as text and back (its type's output and input functions);
//! - [`guc`]: settings changed for a scope (search_path for deparsing, the portable output
//!   settings values travel in);
//! - [`perms`]: privilege checks as PostgreSQL's commands make them;
//! - [`snapshot`]: an active snapshot pushed for a scope;
//! - [`spi`]: read-only lookups that give the transaction no id;
//! - [`victims`]: the backends the distributed deadlock detector cancelled (shared memory);
//! - [`wakeup`]: a backend asking the maintenance worker for recovery now (shared memory).

pub mod datum;
pub mod guc;
pub mod nodes;
pub mod perms;
pub mod snapshot;
pub mod spi;
pub mod table_refs;
pub mod victims;
pub mod wakeup;
