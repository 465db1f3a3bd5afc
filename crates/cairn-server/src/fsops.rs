//! Blocking file-system operations on one repository directory (same layout as restic's local
//! backend: `config`, `keys/`, `locks/`, `snapshots/`, `index/`, `data/xx/`).

use crate::paths::{OBJECT_TYPES, is_id};
use std::fs::{DirBuilder, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Marker in temporary upload names (`<name>.cairn-serve-tmp-<random>`).
pub const TEMP_MARKER: &str = ".cairn-serve-tmp-";

/// File and directory modes for new entries.
#[derive(Debug, Clone, Copy)]
pub struct Modes {
    /// Mode of new files (0600, or 0660 with group access).
    pub file: u32,
    /// Mode of new directories (0700, or 0770 with group access).
    pub dir: u32,
}

/// Path of a file of type `tpe` named `id` (packs under `data/<id[0:2]>/`).
pub fn object_path(repo: &Path, tpe: &str, id: &str) -> PathBuf {
    if tpe == "data" {
        repo.join(tpe).join(id.get(..2).unwrap_or("")).join(id)
    } else {
        repo.join(tpe).join(id)
    }
}

fn mkdir(dir: &Path, modes: Modes, recursive: bool) -> io::Result<()> {
    match DirBuilder::new()
        .recursive(recursive)
        .mode(modes.dir)
        .create(dir)
    {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        r => r,
    }
}

/// Create the repository directory structure (idempotent).
pub fn create_repo(repo: &Path, modes: Modes) -> io::Result<()> {
    mkdir(repo, modes, true)?;
    for t in OBJECT_TYPES {
        mkdir(&repo.join(t), modes, false)?;
    }
    for i in 0..=255u8 {
        mkdir(&repo.join("data").join(format!("{i:02x}")), modes, false)?;
    }
    Ok(())
}

/// Open a regular file for reading; returns it with its size.
pub fn open(path: &Path) -> io::Result<(File, u64)> {
    let f = File::open(path)?;
    let m = f.metadata()?;
    if !m.is_file() {
        return Err(io::ErrorKind::NotFound.into());
    }
    Ok((f, m.len()))
}

/// List the files of a type: (name, size) of regular files whose names are IDs. For `data`,
/// the two-character sub-directories are read. A missing type directory is NotFound.
pub fn list(repo: &Path, tpe: &str) -> io::Result<Vec<(String, u64)>> {
    fn push_files(d: &Path, out: &mut Vec<(String, u64)>) -> io::Result<()> {
        for e in std::fs::read_dir(d)? {
            let e = e?;
            let name = e.file_name();
            let Some(name) = name.to_str() else { continue };
            if !is_id(name) || !e.file_type()?.is_file() {
                continue;
            }
            match e.metadata() {
                Ok(m) => out.push((name.to_string(), m.len())),
                // Removed between readdir and stat.
                Err(err) if err.kind() == io::ErrorKind::NotFound => {}
                Err(err) => return Err(err),
            }
        }
        Ok(())
    }
    let dir = repo.join(tpe);
    let mut out = Vec::new();
    if tpe == "data" {
        for e in std::fs::read_dir(&dir)? {
            let e = e?;
            if e.file_type()?.is_dir() {
                push_files(&e.path(), &mut out)?;
            }
        }
    } else {
        push_files(&dir, &mut out)?;
    }
    Ok(out)
}

/// Remove a file; returns its size, or `None` if it did not exist.
pub fn remove(path: &Path) -> io::Result<Option<u64>> {
    let size = match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => return Err(io::Error::other("is a directory")),
        Ok(m) => m.len(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    match std::fs::remove_file(path) {
        Ok(()) => Ok(Some(size)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Create a temporary file beside `target` (creating missing parent directories).
pub fn create_temp(target: &Path, modes: Modes) -> io::Result<(File, PathBuf)> {
    let parent = target.parent().unwrap_or(Path::new("."));
    let base = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut created_dirs = false;
    let mut last = io::Error::other("could not create a temporary file");
    for _ in 0..10 {
        let tmp = parent.join(format!("{base}{TEMP_MARKER}{:016x}", rand::random::<u64>()));
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(modes.file)
            .open(&tmp)
        {
            Ok(f) => return Ok((f, tmp)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = e,
            Err(e) if e.kind() == io::ErrorKind::NotFound && !created_dirs => {
                created_dirs = true;
                mkdir(parent, modes, true)?;
            }
            Err(e) => return Err(e),
        }
    }
    Err(last)
}

/// Why a finished upload could not be put in place.
#[derive(Debug)]
pub enum PlaceError {
    /// The final name exists already (no overwrites).
    Exists,
    /// An I/O error.
    Io(io::Error),
}

/// Fsync a directory, ignoring file systems that cannot.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    let d = File::open(dir)?;
    match d.sync_all() {
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::EINVAL) | Some(libc::ENOTSUP) | Some(libc::ENOENT)
            ) =>
        {
            Ok(())
        }
        r => r,
    }
}

/// Move a complete, fsynced temporary file to its final name without replacing an existing
/// file (hard link + unlink; rename after an existence check where hard links are not
/// supported), then fsync the directory. The temp file is removed in every case.
pub fn place(tmp: &Path, target: &Path) -> Result<(), PlaceError> {
    let res = match std::fs::hard_link(tmp, target) {
        Ok(()) => {
            let _ = std::fs::remove_file(tmp);
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(PlaceError::Exists),
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::EPERM) | Some(libc::ENOTSUP) | Some(libc::EXDEV) | Some(libc::EMLINK)
            ) =>
        {
            if std::fs::symlink_metadata(target).is_ok() {
                Err(PlaceError::Exists)
            } else {
                std::fs::rename(tmp, target).map_err(PlaceError::Io)
            }
        }
        Err(e) => Err(PlaceError::Io(e)),
    };
    if res.is_err() {
        let _ = std::fs::remove_file(tmp);
    }
    res?;
    if let Some(parent) = target.parent() {
        sync_dir(parent).map_err(PlaceError::Io)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;

    const M: Modes = Modes {
        file: 0o600,
        dir: 0o700,
    };

    #[test]
    fn create_list_place_remove() {
        let d = tempfile::tempdir().unwrap();
        let repo = d.path().join("r");
        create_repo(&repo, M).unwrap();
        create_repo(&repo, M).unwrap();
        assert!(repo.join("data/ff").is_dir());
        let mode = std::fs::metadata(repo.join("keys"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
        let id = "ab".repeat(32);
        let target = object_path(&repo, "data", &id);
        assert_eq!(target, repo.join("data/ab").join(&id));
        let (mut f, tmp) = create_temp(&target, M).unwrap();
        f.write_all(b"hello").unwrap();
        f.sync_all().unwrap();
        drop(f);
        // A temp file is not listed.
        assert!(list(&repo, "data").unwrap().is_empty());
        place(&tmp, &target).unwrap();
        assert!(!tmp.exists());
        assert_eq!(list(&repo, "data").unwrap(), vec![(id.clone(), 5)]);
        let mode = std::fs::metadata(&target).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // No overwrite.
        let (_f, tmp2) = create_temp(&target, M).unwrap();
        assert!(matches!(place(&tmp2, &target), Err(PlaceError::Exists)));
        assert!(!tmp2.exists());
        assert_eq!(open(&target).unwrap().1, 5);
        assert!(open(&repo.join("data")).is_err());
        assert_eq!(remove(&target).unwrap(), Some(5));
        assert_eq!(remove(&target).unwrap(), None);
        assert!(list(&repo.join("missing"), "keys").is_err());
    }

    #[test]
    fn temp_creates_missing_dirs() {
        let d = tempfile::tempdir().unwrap();
        let id = "cd".repeat(32);
        let target = object_path(d.path(), "keys", &id);
        let (_f, tmp) = create_temp(&target, M).unwrap();
        assert!(tmp.starts_with(d.path().join("keys")));
        place(&tmp, &target).unwrap();
        assert_eq!(list(d.path(), "keys").unwrap(), vec![(id, 0)]);
    }
}
