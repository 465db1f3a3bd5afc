//! Storage backends behind the [`cairn_repo::backend::Backend`] trait.

pub mod cache;
pub mod local;

pub use cache::CachedBackend;
pub use local::LocalBackend;
