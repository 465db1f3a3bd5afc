//! An in-memory backend and a ready repository for unit tests of this crate.

use super::{InitOptions, Repository};
use crate::backend::{Backend, BackendError, FileType};
use crate::key::KdfParams;
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::sync::Arc;

/// A backend holding its files in memory.
#[derive(Debug, Default)]
pub struct MemBackend {
    files: Mutex<BTreeMap<(FileType, String), Vec<u8>>>,
}

impl Backend for MemBackend {
    fn location(&self) -> String {
        "memory".into()
    }
    fn create(&self) -> Result<(), BackendError> {
        Ok(())
    }
    fn list(&self, t: FileType) -> Result<Vec<(String, u64)>, BackendError> {
        Ok(self
            .files
            .lock()
            .iter()
            .filter(|((ft, _), _)| *ft == t)
            .map(|((_, n), d)| (n.clone(), d.len() as u64))
            .collect())
    }
    fn read(&self, t: FileType, name: &str) -> Result<Vec<u8>, BackendError> {
        self.files
            .lock()
            .get(&(t, name.to_string()))
            .cloned()
            .ok_or_else(|| BackendError::NotFound(name.into()))
    }
    fn read_range(
        &self,
        t: FileType,
        name: &str,
        offset: u64,
        len: u64,
    ) -> Result<Vec<u8>, BackendError> {
        let d = self.read(t, name)?;
        d.get(offset as usize..(offset + len) as usize)
            .map(<[u8]>::to_vec)
            .ok_or_else(|| BackendError::Other("short read".into()))
    }
    fn stat(&self, t: FileType, name: &str) -> Result<u64, BackendError> {
        Ok(self.read(t, name)?.len() as u64)
    }
    fn write(&self, t: FileType, name: &str, data: &[u8]) -> Result<(), BackendError> {
        self.files
            .lock()
            .insert((t, name.to_string()), data.to_vec());
        Ok(())
    }
    fn remove(&self, t: FileType, name: &str) -> Result<(), BackendError> {
        self.files
            .lock()
            .remove(&(t, name.to_string()))
            .map(|_| ())
            .ok_or_else(|| BackendError::NotFound(name.into()))
    }
}

/// A new v2 repository in memory with password `pw` and a cheap KDF.
pub fn test_repo() -> Repository {
    Repository::init(
        Arc::new(MemBackend::default()),
        b"pw",
        InitOptions {
            kdf: KdfParams::testing(),
            ..Default::default()
        },
    )
    .unwrap()
}
