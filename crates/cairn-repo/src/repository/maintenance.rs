//! Maintenance support on an open repository: writing complete index files for a set of packs
//! and removing files, in the crash-safe order prune and the repairs need.

use super::packer::index_pack;
use super::{Repository, parallel_map};
use crate::backend::FileType;
use crate::index::IndexFile;
use crate::pack::PackBlob;
use crate::{Id, Result};

/// Blobs per index file written by [`Repository::write_index_files`] (restic: 50 000).
const MAX_BLOBS_PER_INDEX_FILE: usize = 50_000;

impl Repository {
    /// Write index files describing exactly `packs` (pack id and its blobs), split into files of
    /// at most 50 000 blobs, marking each as superseding `supersedes` (as restic does when it
    /// rewrites the index). Returns the ids of the new index files. The caller removes the old
    /// index files afterwards with [`Repository::remove_files`]: a crash in between leaves both,
    /// which only duplicates index entries.
    pub fn write_index_files(
        &self,
        packs: impl IntoIterator<Item = (Id, Vec<PackBlob>)>,
        supersedes: &[Id],
    ) -> Result<Vec<Id>> {
        let mut files = Vec::new();
        let mut current = IndexFile::default();
        let mut blobs = 0usize;
        for (pack_id, pack_blobs) in packs {
            if blobs > 0 && blobs + pack_blobs.len() > MAX_BLOBS_PER_INDEX_FILE {
                files.push(std::mem::take(&mut current));
                blobs = 0;
            }
            blobs += pack_blobs.len();
            current.packs.push(index_pack(pack_id, &pack_blobs));
        }
        if !current.packs.is_empty() {
            files.push(current);
        }
        for f in &mut files {
            f.supersedes = supersedes.to_vec();
        }
        parallel_map(&files, |f| {
            self.save_unpacked(FileType::Index, &f.to_json())
        })
    }

    /// Remove files of one type (in parallel). A file that is already gone is not an error
    /// (an interrupted earlier run may have removed it).
    pub fn remove_files(&self, t: FileType, ids: &[Id]) -> Result<()> {
        parallel_map(ids, |id| match self.backend.remove(t, &id.to_hex()) {
            Err(e) if e.is_not_found() => Ok(()),
            r => r.map_err(Into::into),
        })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BlobType;
    use crate::index::Index;

    fn blob(n: u8, offset: u32) -> PackBlob {
        PackBlob {
            blob_type: BlobType::Data,
            id: Id([n; 32]),
            offset,
            length: 100,
            uncompressed_length: None,
        }
    }

    #[test]
    fn index_files_are_split_and_reload_to_the_same_index() {
        let repo = super::super::test_support::test_repo();
        let many: Vec<PackBlob> = (0..60_000u32)
            .map(|i| {
                let mut id = [0u8; 32];
                id[..4].copy_from_slice(&i.to_le_bytes());
                PackBlob {
                    id: Id(id),
                    ..blob(0, i)
                }
            })
            .collect();
        let packs = vec![
            (Id([1; 32]), vec![blob(1, 0), blob(2, 100)]),
            (Id([2; 32]), many),
            (Id([3; 32]), vec![blob(3, 0)]),
        ];
        let old = vec![Id([9; 32])];
        let ids = repo.write_index_files(packs.clone(), &old).unwrap();
        // A pack is never split: the oversized one gets a file of its own.
        assert_eq!(ids.len(), 3);
        let mut loaded = Index::new();
        for id in &ids {
            let f =
                IndexFile::from_json(&repo.load_unpacked(FileType::Index, id).unwrap()).unwrap();
            assert_eq!(f.supersedes, old);
            loaded.add_index_file(&f);
        }
        let mut expected = Index::new();
        for (p, b) in &packs {
            expected.add_pack(*p, b);
        }
        assert_eq!(loaded.len(), expected.len());
        assert_eq!(loaded.pack_count(), 3);
        repo.remove_files(FileType::Index, &ids).unwrap();
        repo.remove_files(FileType::Index, &ids).unwrap();
        assert!(repo.list_ids(FileType::Index).unwrap().is_empty());
    }
}
