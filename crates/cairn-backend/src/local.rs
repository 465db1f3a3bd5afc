//! The local filesystem backend: restic's on-disk layout, crash-safe writes
//! (temporary file, fsync, rename, fsync of the directory), read-only files like restic.

use cairn_repo::backend::{Backend, BackendError, FileType, PackUpload};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// A repository stored in a local directory.
#[derive(Debug, Clone)]
pub struct LocalBackend {
    root: PathBuf,
}

fn io_err(path: &Path, source: io::Error) -> BackendError {
    if source.kind() == io::ErrorKind::NotFound {
        BackendError::NotFound(path.display().to_string())
    } else {
        BackendError::Io {
            path: path.display().to_string(),
            source,
        }
    }
}

impl LocalBackend {
    /// A backend rooted at `root` (the directory need not exist yet).
    pub fn new(root: impl Into<PathBuf>) -> LocalBackend {
        LocalBackend { root: root.into() }
    }

    /// The repository directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The path of a repository file.
    pub fn path_of(&self, t: FileType, name: &str) -> PathBuf {
        match t {
            FileType::Config => self.root.join("config"),
            FileType::Pack => {
                let sub = name.get(..2).unwrap_or("00");
                self.root.join("data").join(sub).join(name)
            }
            _ => self.root.join(t.dir()).join(name),
        }
    }

    fn sync_dir(dir: &Path) -> Result<(), BackendError> {
        let d = File::open(dir).map_err(|e| io_err(dir, e))?;
        d.sync_all().map_err(|e| io_err(dir, e))
    }
}

fn parent_of(path: &Path) -> Result<&Path, BackendError> {
    path.parent()
        .ok_or_else(|| BackendError::Other(format!("{} has no parent", path.display())))
}

fn ensure_dir(dir: &Path) -> Result<(), BackendError> {
    if !dir.exists() {
        fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
    }
    Ok(())
}

/// A new, exclusive, 0600 temporary file in `dir` for the repository file `name`.
fn temp_file(dir: &Path, name: &str) -> Result<(File, PathBuf), BackendError> {
    let tmp = dir.join(format!("{name}-cairn-temp-{:016x}", rand::random::<u64>()));
    let f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| io_err(&tmp, e))?;
    Ok((f, tmp))
}

/// Make the complete temporary file `tmp` the repository file `path`: fsync, read-only like
/// restic's files, rename, fsync of the directory. Unless `replace`, an existing `path` is
/// kept (same name, same content) and `tmp` removed. On error `tmp` may be left to the caller.
fn install(f: &File, tmp: &Path, path: &Path, replace: bool) -> Result<(), BackendError> {
    f.sync_all().map_err(|e| io_err(tmp, e))?;
    f.set_permissions(fs::Permissions::from_mode(0o400))
        .map_err(|e| io_err(tmp, e))?;
    if !replace && path.exists() {
        let _ = fs::remove_file(tmp);
        return Ok(());
    }
    fs::rename(tmp, path).map_err(|e| io_err(path, e))?;
    LocalBackend::sync_dir(parent_of(path)?)
}

/// A pack streamed to a temporary file; see [`LocalBackend::start_pack`].
struct LocalPackUpload {
    file: File,
    tmp: PathBuf,
    backend: LocalBackend,
}

impl PackUpload for LocalPackUpload {
    fn append(&mut self, data: &[u8]) -> Result<(), BackendError> {
        self.file.write_all(data).map_err(|e| io_err(&self.tmp, e))
    }

    fn commit(mut self: Box<Self>, name: &str) -> Result<(), BackendError> {
        let path = self.backend.path_of(FileType::Pack, name);
        ensure_dir(parent_of(&path)?)?;
        // On error, drop removes the temporary file.
        install(&self.file, &self.tmp, &path, false)?;
        // Renamed into place (or removed, the pack existing already): nothing to clean up.
        self.tmp = PathBuf::new();
        Ok(())
    }
}

impl Drop for LocalPackUpload {
    fn drop(&mut self) {
        if !self.tmp.as_os_str().is_empty() {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// Filesystems whose directory listings show a completed rename at once on every client
/// (local disk filesystems); network and FUSE filesystems may cache listings.
const CONSISTENT_FILESYSTEMS: [i64; 9] = [
    0xEF53,      // ext2/3/4
    0x5846_5342, // xfs
    0x9123_683E, // btrfs
    0x0102_1994, // tmpfs
    0x2FC1_2FC1, // zfs
    0x794C_7630, // overlayfs
    0xF2F5_2010, // f2fs
    0x4244,      // hfs
    0x5346_544E, // ntfs (kernel driver)
];

impl Backend for LocalBackend {
    fn location(&self) -> String {
        self.root.display().to_string()
    }

    /// Zero on local disk filesystems (the lock re-check sees every completed write), restic's
    /// 200 ms elsewhere (NFS, SMB, FUSE mounts).
    // The filesystem type is i64 here but i32 on 32-bit targets.
    #[allow(clippy::unnecessary_cast)]
    fn lock_settle_time(&self) -> std::time::Duration {
        match nix::sys::statfs::statfs(&self.root.join("locks")) {
            Ok(st) if CONSISTENT_FILESYSTEMS.contains(&(st.filesystem_type().0 as i64)) => {
                std::time::Duration::ZERO
            }
            _ => std::time::Duration::from_millis(200),
        }
    }

    fn create(&self) -> Result<(), BackendError> {
        let config = self.path_of(FileType::Config, "config");
        if config.exists() {
            return Err(BackendError::AlreadyExists(config.display().to_string()));
        }
        let mut dirs = vec![self.root.clone()];
        for t in FileType::LISTABLE {
            dirs.push(self.root.join(t.dir()));
        }
        for i in 0..=255u8 {
            dirs.push(self.root.join("data").join(format!("{i:02x}")));
        }
        for d in dirs {
            fs::create_dir_all(&d).map_err(|e| io_err(&d, e))?;
            // Like restic: directories 0700 (unless the parent config says otherwise).
            let _ = fs::set_permissions(&d, fs::Permissions::from_mode(0o700));
        }
        Ok(())
    }

    fn list(&self, t: FileType) -> Result<Vec<(String, u64)>, BackendError> {
        let mut out = Vec::new();
        let dir = self.root.join(t.dir());
        if t == FileType::Config {
            return Ok(match fs::metadata(dir.join("config")) {
                Ok(m) => vec![("config".to_string(), m.len())],
                Err(_) => vec![],
            });
        }
        let mut dirs = Vec::new();
        if t == FileType::Pack {
            let rd = match fs::read_dir(&dir) {
                Ok(rd) => rd,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
                Err(e) => return Err(io_err(&dir, e)),
            };
            for e in rd {
                let e = e.map_err(|e| io_err(&dir, e))?;
                if e.file_type().map(|f| f.is_dir()).unwrap_or(false) {
                    dirs.push(e.path());
                }
            }
        } else {
            dirs.push(dir);
        }
        for d in dirs {
            let rd = match fs::read_dir(&d) {
                Ok(rd) => rd,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_err(&d, e)),
            };
            for e in rd {
                let e = e.map_err(|e| io_err(&d, e))?;
                let name = e.file_name();
                let Some(name) = name.to_str() else { continue };
                if name.len() != 64 || !name.bytes().all(|b| b.is_ascii_hexdigit()) {
                    continue;
                }
                let size = match e.metadata() {
                    Ok(m) => m.len(),
                    Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
                    Err(err) => return Err(io_err(&e.path(), err)),
                };
                out.push((name.to_string(), size));
            }
        }
        Ok(out)
    }

    fn read(&self, t: FileType, name: &str) -> Result<Vec<u8>, BackendError> {
        let p = self.path_of(t, name);
        fs::read(&p).map_err(|e| io_err(&p, e))
    }

    fn read_range(
        &self,
        t: FileType,
        name: &str,
        offset: u64,
        len: u64,
    ) -> Result<Vec<u8>, BackendError> {
        let p = self.path_of(t, name);
        let mut f = File::open(&p).map_err(|e| io_err(&p, e))?;
        f.seek(SeekFrom::Start(offset)).map_err(|e| io_err(&p, e))?;
        let len =
            usize::try_from(len).map_err(|_| BackendError::Other("range too large".into()))?;
        let mut buf = vec![0u8; len];
        f.read_exact(&mut buf).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                BackendError::Other(format!(
                    "{}: short read: wanted {len} bytes at offset {offset}",
                    p.display()
                ))
            } else {
                io_err(&p, e)
            }
        })?;
        Ok(buf)
    }

    fn stat(&self, t: FileType, name: &str) -> Result<u64, BackendError> {
        let p = self.path_of(t, name);
        fs::metadata(&p).map(|m| m.len()).map_err(|e| io_err(&p, e))
    }

    fn write(&self, t: FileType, name: &str, data: &[u8]) -> Result<(), BackendError> {
        let path = self.path_of(t, name);
        let dir = parent_of(&path)?;
        ensure_dir(dir)?;
        let (mut f, tmp) = temp_file(dir, name)?;
        let result = f
            .write_all(data)
            .map_err(|e| io_err(&tmp, e))
            // config may be replaced (upgrade); every other name is a content hash.
            .and_then(|()| install(&f, &tmp, &path, t == FileType::Config));
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    /// Packs are streamed to a temporary file in `data/` (not listed by Cairn or restic, which
    /// only look into its subdirectories) and renamed into place on commit.
    fn start_pack(&self) -> Result<Option<Box<dyn PackUpload>>, BackendError> {
        let dir = self.root.join(FileType::Pack.dir());
        let (file, tmp) = temp_file(&dir, "pack")?;
        Ok(Some(Box::new(LocalPackUpload {
            file,
            tmp,
            backend: self.clone(),
        })))
    }

    fn remove(&self, t: FileType, name: &str) -> Result<(), BackendError> {
        let p = self.path_of(t, name);
        fs::remove_file(&p).map_err(|e| io_err(&p, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_settle_time_is_zero_only_on_local_disk_filesystems() {
        use std::time::Duration;
        let missing = LocalBackend::new("/nonexistent/cairn-repo");
        assert_eq!(missing.lock_settle_time(), Duration::from_millis(200));
        let dir = tempfile::tempdir().unwrap();
        let b = LocalBackend::new(dir.path().join("repo"));
        b.create().unwrap();
        #[allow(clippy::unnecessary_cast)]
        let fs = nix::sys::statfs::statfs(dir.path())
            .unwrap()
            .filesystem_type()
            .0 as i64;
        let expected = if CONSISTENT_FILESYSTEMS.contains(&fs) {
            Duration::ZERO
        } else {
            Duration::from_millis(200)
        };
        assert_eq!(b.lock_settle_time(), expected);
    }

    #[test]
    fn write_read_list_remove() {
        let dir = tempfile::tempdir().unwrap();
        let b = LocalBackend::new(dir.path().join("repo"));
        b.create().unwrap();
        let name = "ab".repeat(32);
        b.write(FileType::Pack, &name, b"hello world").unwrap();
        assert!(dir.path().join("repo/data/ab").join(&name).exists());
        assert_eq!(b.read(FileType::Pack, &name).unwrap(), b"hello world");
        assert_eq!(b.read_range(FileType::Pack, &name, 6, 5).unwrap(), b"world");
        assert!(b.read_range(FileType::Pack, &name, 6, 50).is_err());
        assert_eq!(b.stat(FileType::Pack, &name).unwrap(), 11);
        // Temp files and other junk are not listed.
        fs::write(dir.path().join("repo/data/ab/junk-tmp"), b"x").unwrap();
        assert_eq!(b.list(FileType::Pack).unwrap(), vec![(name.clone(), 11)]);
        b.remove(FileType::Pack, &name).unwrap();
        assert!(b.list(FileType::Pack).unwrap().is_empty());
        assert!(b.read(FileType::Pack, &name).unwrap_err().is_not_found());
    }

    #[test]
    fn create_refuses_existing_config() {
        let dir = tempfile::tempdir().unwrap();
        let b = LocalBackend::new(dir.path());
        b.create().unwrap();
        b.write(FileType::Config, "config", b"x").unwrap();
        assert!(matches!(b.create(), Err(BackendError::AlreadyExists(_))));
        // Missing repository: listing is empty, reading config is NotFound.
        let missing = LocalBackend::new(dir.path().join("nope"));
        assert!(missing.list(FileType::Snapshot).unwrap().is_empty());
        assert!(
            missing
                .read(FileType::Config, "config")
                .unwrap_err()
                .is_not_found()
        );
    }
}
