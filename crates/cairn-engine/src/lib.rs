//! Operations on a repository: backup, restore, ls, find, diff, dump, snapshot selection.
//! Operations report progress through counters and callbacks; they never print.

#[cfg(any())] // enabled once cairn-repo's format modules land
pub mod backup;
pub mod error;
pub mod filter;
#[cfg(any())]
pub mod fsmeta;

pub use error::{EngineError, Result};
