//! Key management on an open repository: list, add, remove and change passwords.
//!
//! Every key file seals the same master key under a different password (spec §3). A new key
//! is written, read back and opened before it is reported as saved (restic verifies new keys
//! the same way, since a broken key could lock users out); a password change writes the new
//! key before the old one is removed, so a crash in between leaves both keys working.

use super::{Repository, host_and_user, parallel_map};
use crate::backend::FileType;
use crate::key::{KdfParams, KeyFile};
use crate::{Id, RepoError, Result};

/// One key file as listed by [`Repository::list_keys`].
#[derive(Debug)]
pub struct KeyListing {
    /// Id (file name) of the key file.
    pub id: Id,
    /// Whether this key opened the repository.
    pub current: bool,
    /// The parsed key file, or why it could not be read.
    pub key: Result<KeyFile>,
}

impl Repository {
    /// Load every key file (in parallel), sorted by id. A key file that cannot be read or
    /// parsed is listed with its error instead of failing the whole listing.
    pub fn list_keys(&self) -> Result<Vec<KeyListing>> {
        let ids = self.list_ids(FileType::Key)?;
        let keys = parallel_map(&ids, |id| {
            let key = self
                .read_verified(FileType::Key, id)
                .and_then(|bytes| KeyFile::parse(&bytes));
            Ok(KeyListing {
                id: *id,
                current: *id == self.key_id,
                key,
            })
        })?;
        Ok(keys)
    }

    /// Add a key file that opens this repository with `password`, using the scrypt cost
    /// `params`, recorded as belonging to `username` on `hostname` (empty: the current user
    /// and host, restic's defaults for `key add --user/--host`). The new key is read back and opened before this returns; if that fails it
    /// is removed again and an error returned. Returns the new key's id.
    pub fn add_key(
        &self,
        password: &[u8],
        username: &str,
        hostname: &str,
        params: KdfParams,
    ) -> Result<Id> {
        let (host, user) = host_and_user();
        let username = if username.is_empty() { &user } else { username };
        let hostname = if hostname.is_empty() { &host } else { hostname };
        let (_kf, bytes) = KeyFile::create(&self.key, password, params, username, hostname)?;
        let id = Id::hash(&bytes);
        self.backend.write(FileType::Key, &id.to_hex(), &bytes)?;
        if let Err(e) = self.verify_key(&id, password) {
            let _ = self.backend.remove(FileType::Key, &id.to_hex());
            return Err(RepoError::Invalid(format!(
                "failed to access repository with new key: {e}"
            )));
        }
        Ok(id)
    }

    /// Read key `id` back from the backend and check that `password` opens it and that it
    /// seals this repository's master key.
    fn verify_key(&self, id: &Id, password: &[u8]) -> Result<()> {
        let bytes = self.read_verified(FileType::Key, id)?;
        let master = KeyFile::parse(&bytes)?.open(password)?;
        if master != self.key {
            return Err(RepoError::corrupt(
                format!("key {}", id.to_hex()),
                "seals a different master key",
            ));
        }
        Ok(())
    }

    /// Remove key `id`. Refuses to remove the key that opened the repository (as restic
    /// does), so the user cannot lock themselves out by accident.
    pub fn remove_key(&self, id: &Id) -> Result<()> {
        if *id == self.key_id {
            return Err(RepoError::Invalid(
                "refusing to remove key currently used to access repository".into(),
            ));
        }
        self.backend.remove(FileType::Key, &id.to_hex())?;
        Ok(())
    }

    /// Change the password: add a key for `password` (verified, owner as in
    /// [`Repository::add_key`]), then remove the key that opened the repository. Returns the new key's id. A crash between the two steps leaves
    /// both the old and the new password working.
    pub fn change_password(
        &self,
        password: &[u8],
        username: &str,
        hostname: &str,
        params: KdfParams,
    ) -> Result<Id> {
        let new_id = self.add_key(password, username, hostname, params)?;
        if new_id != self.key_id {
            self.backend.remove(FileType::Key, &self.key_id.to_hex())?;
        }
        Ok(new_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repository::test_support::test_repo;
    use std::sync::Arc;

    fn reopen(repo: &Repository, pw: &[u8]) -> Result<Repository> {
        Repository::open(Arc::clone(repo.backend()), pw, Default::default())
    }

    #[test]
    fn add_list_remove_and_change_password() {
        let repo = test_repo();
        let first = repo.key_id();
        let added = repo
            .add_key(b"second", "bob", "hh", KdfParams::testing())
            .unwrap();
        assert_ne!(added, first);

        let keys = repo.list_keys().unwrap();
        assert_eq!(keys.len(), 2);
        let mut ids: Vec<Id> = vec![first, added];
        ids.sort();
        assert_eq!(keys.iter().map(|k| k.id).collect::<Vec<_>>(), ids);
        for k in &keys {
            assert_eq!(k.current, k.id == first);
            let kf = k.key.as_ref().unwrap();
            if k.id == added {
                assert_eq!((kf.username.as_str(), kf.hostname.as_str()), ("bob", "hh"));
                assert_eq!(kf.params(), KdfParams::testing());
            }
        }

        // Both passwords open the repository, with the same master key.
        let second = reopen(&repo, b"second").unwrap();
        assert_eq!(second.key_id(), added);
        assert_eq!(second.master_key(), repo.master_key());
        assert!(matches!(
            reopen(&repo, b"nope"),
            Err(RepoError::WrongPassword)
        ));

        // The key in use cannot be removed; another one can.
        assert!(matches!(
            repo.remove_key(&first),
            Err(RepoError::Invalid(_))
        ));
        second.remove_key(&first).unwrap();
        assert!(matches!(
            reopen(&repo, b"pw"),
            Err(RepoError::WrongPassword)
        ));
        assert!(second.remove_key(&first).is_err());

        // Changing the password replaces the key in use.
        let third = second
            .change_password(b"third", "", "", KdfParams::testing())
            .unwrap();
        let keys = second.list_keys().unwrap();
        assert_eq!(keys.iter().map(|k| k.id).collect::<Vec<_>>(), vec![third]);
        assert!(matches!(
            reopen(&repo, b"second"),
            Err(RepoError::WrongPassword)
        ));
        let r3 = reopen(&repo, b"third").unwrap();
        assert_eq!(r3.master_key(), repo.master_key());
        // Empty owner fields default to the current user and host.
        let kf = keys[0].key.as_ref().unwrap();
        assert!(!kf.username.is_empty() || !kf.hostname.is_empty());
    }

    #[test]
    fn damaged_key_files_are_listed_with_an_error() {
        let repo = test_repo();
        let bogus = b"{not json".to_vec();
        let id = Id::hash(&bogus);
        repo.backend()
            .write(FileType::Key, &id.to_hex(), &bogus)
            .unwrap();
        let keys = repo.list_keys().unwrap();
        assert_eq!(keys.len(), 2);
        let bad = keys.iter().find(|k| k.id == id).unwrap();
        assert!(bad.key.is_err());
        assert!(!bad.current);
        assert!(keys.iter().any(|k| k.current && k.key.is_ok()));
    }

    #[test]
    fn empty_password_key_works() {
        let repo = test_repo();
        let id = repo.add_key(b"", "", "", KdfParams::testing()).unwrap();
        assert_eq!(reopen(&repo, b"").unwrap().key_id(), id);
    }
}
