//! Storage backends behind the [`cairn_repo::backend::Backend`] trait.

pub mod local;

pub use local::LocalBackend;
