//! Operations on a repository: backup, restore, ls, find, diff, dump, snapshot selection.
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

pub use error::{EngineError, Result};
