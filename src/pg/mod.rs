//! Thin safe wrappers over PostgreSQL, below the planner, the executor and the commands:
//!
//! - [`nodes`]: Lists, strings, node tags;
//! - [`datum`]: a value as text and back (its type's output and input functions);
//! - [`guc`]: settings changed for a scope (search_path for deparsing, the portable output
//!   settings values travel in);
//! - [`snapshot`]: an active snapshot pushed for a scope.

pub mod datum;
pub mod guc;
pub mod nodes;
pub mod snapshot;
