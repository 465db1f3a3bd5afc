//! Storage backends behind the [`cairn_repo::backend::Backend`] trait: local disk, SFTP, S3,
//! restic's REST protocol and rclone, plus the layers around them (cache, retries, limits).

pub mod cache;
pub mod conformance;
pub mod layers;
pub mod local;
pub mod open;
pub mod options;
pub mod rclone;
pub mod rest;
pub mod s3;
pub mod sftp;

pub use cache::CachedBackend;
pub use local::LocalBackend;
pub use open::open_backend;
pub use options::BackendOptions;
