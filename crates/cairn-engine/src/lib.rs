//! Operations on a repository: backup, restore, ls, find, diff, dump, snapshot selection, and
//! maintenance (forget, prune, check, repair, stats, copy, rewrite).
//! Operations report progress through counters and callbacks; they never print.

pub mod backup;
pub mod error;
pub mod filter;
pub mod fsmeta;

pub mod diff;
pub mod dump;
pub mod find;
pub mod ls;
pub mod restore;
pub mod select;

pub mod check;
pub mod copy;
pub mod forget;
pub mod prune;
pub mod repair;
pub mod rewrite;
pub mod stats;

pub use error::{EngineError, Result};
