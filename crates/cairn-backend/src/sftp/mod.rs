//! The `sftp:` backend: restic's repository layout on an SFTP server reached through the
//! system's `ssh` (so the user's ssh configuration, keys and agent apply), with Cairn's own
//! SFTP v3 client. One ssh process carries up to `sftp.connections` concurrent operations,
//! each pipelining its reads and writes; a lost session is restarted on the next call.

mod client;
mod conn;
mod foreground;
pub mod location;
pub mod protocol;

use crate::layers::limit::Semaphore;
use crate::options::BackendOptions;
use cairn_repo::backend::{Backend, BackendError, FileType};
use client::Client;
use conn::SftpError;
use location::{SftpLocation, join};
use protocol::{Attrs, FX_NO_SUCH_FILE, FX_OP_UNSUPPORTED, FX_PERMISSION_DENIED};
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

/// Open the `sftp:` repository at `location` (the part after `sftp:`).
pub fn open(location: &str, opts: &BackendOptions) -> Result<Arc<dyn Backend>, BackendError> {
    Ok(Arc::new(SftpBackend::open(location, opts)?))
}

/// A repository on an SFTP server.
#[derive(Debug)]
pub struct SftpBackend {
    display: String,
    argv: Vec<String>,
    root: String,
    connections: usize,
    client: RwLock<Arc<Client>>,
    sem: Semaphore,
}

fn is_id(name: &str) -> bool {
    name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Go's `path.Dir`.
fn parent(p: &str) -> String {
    match p.rfind('/') {
        Some(0) => "/".into(),
        Some(i) => location::clean(p.get(..i).unwrap_or("")),
        None => ".".into(),
    }
}

fn err(op: &str, path: &str, e: SftpError) -> BackendError {
    match e {
        SftpError::Status { code, .. } if code == FX_NO_SUCH_FILE => {
            BackendError::NotFound(path.to_string())
        }
        SftpError::Status { code, message } if code == FX_PERMISSION_DENIED => BackendError::Io {
            path: path.to_string(),
            source: io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("sftp {op}: {message}"),
            ),
        },
        SftpError::Dead(m) => BackendError::Io {
            path: path.to_string(),
            source: io::Error::new(io::ErrorKind::ConnectionAborted, m),
        },
        other => BackendError::Other(format!("sftp {op} {path}: {other}")),
    }
}

impl SftpBackend {
    /// Parse `location` (after `sftp:`), start the ssh command and open the SFTP session.
    pub fn open(location: &str, opts: &BackendOptions) -> Result<SftpBackend, BackendError> {
        let bad = |e: String| BackendError::Other(format!("sftp:{location}: {e}"));
        let loc: SftpLocation = location::parse(location).map_err(bad)?;
        let argv = location::command(&loc, opts).map_err(bad)?;
        let connections = location::connections(opts).map_err(bad)?;
        let client = Client::start(&argv).map_err(BackendError::Other)?;
        Ok(SftpBackend {
            display: format!("sftp:{location}"),
            argv,
            root: loc.path,
            connections,
            client: RwLock::new(Arc::new(client)),
            sem: Semaphore::new(connections),
        })
    }

    /// Process id of the running ssh command (diagnostics and tests).
    #[doc(hidden)]
    pub fn session_pid(&self) -> Option<u32> {
        self.client.read().ok().map(|c| c.pid())
    }

    /// The live session, restarting ssh if the previous session died.
    fn client(&self) -> Result<Arc<Client>, BackendError> {
        {
            let c = self.client.read().unwrap_or_else(|e| e.into_inner());
            if c.dead().is_none() {
                return Ok(c.clone());
            }
        }
        let mut c = self.client.write().unwrap_or_else(|e| e.into_inner());
        if let Some(why) = c.dead() {
            tracing::warn!("{why}; starting a new sftp session");
            *c = Arc::new(Client::start(&self.argv).map_err(BackendError::Other)?);
        }
        Ok(c.clone())
    }

    fn path_of(&self, t: FileType, name: &str) -> String {
        match t {
            FileType::Config => join(&self.root, "config"),
            FileType::Pack => {
                let sub = name.get(..2).unwrap_or("00");
                join(&self.root, &format!("data/{sub}/{name}"))
            }
            _ => join(&self.root, &format!("{}/{name}", t.dir())),
        }
    }

    /// Create `dir` and its missing parents (mode 0700); existing directories are kept.
    fn mkdir_all(&self, c: &Client, dir: &str) -> Result<(), BackendError> {
        match c.stat(dir) {
            Ok(a) if a.is_dir() => return Ok(()),
            Ok(_) => {
                return Err(BackendError::Other(format!(
                    "sftp mkdir {dir}: exists and is not a directory"
                )));
            }
            Err(e) if e.is_status(FX_NO_SUCH_FILE) => {}
            Err(e) => return Err(err("stat", dir, e)),
        }
        let up = parent(dir);
        if up != dir && up != "." && up != "/" {
            self.mkdir_all(c, &up)?;
        }
        match c.mkdir(dir, 0o700) {
            Ok(()) => Ok(()),
            Err(e) => match c.stat(dir) {
                Ok(a) if a.is_dir() => Ok(()), // created concurrently
                _ => Err(err("mkdir", dir, e)),
            },
        }
    }

    /// Create many sibling directories with all requests in flight at once.
    fn mkdirs(&self, c: &Client, dirs: &[String]) -> Result<(), BackendError> {
        let sent: Vec<_> = dirs.iter().map(|d| (d, c.send_mkdir(d, 0o700))).collect();
        for (d, p) in sent {
            let r = p.and_then(|p| c.wait_status(p));
            if let Err(e) = r {
                match c.stat(d) {
                    Ok(a) if a.is_dir() => {}
                    _ => return Err(err("mkdir", d, e)),
                }
            }
        }
        Ok(())
    }

    /// Regular files with id names directly in `dir`; a missing directory is empty.
    fn list_files(&self, c: &Client, dir: &str) -> Result<Vec<(String, u64)>, BackendError> {
        let entries = match c.read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.is_status(FX_NO_SUCH_FILE) => return Ok(Vec::new()),
            Err(e) => return Err(err("readdir", dir, e)),
        };
        let mut out = Vec::new();
        for e in entries {
            let Ok(name) = String::from_utf8(e.filename) else {
                continue;
            };
            if !is_id(&name) {
                continue;
            }
            let attrs = if e.attrs.permissions.is_some() && e.attrs.size.is_some() {
                e.attrs
            } else {
                let p = join(dir, &name);
                match c.lstat(&p) {
                    Ok(a) => a,
                    Err(e) if e.is_status(FX_NO_SUCH_FILE) => continue,
                    Err(e) => return Err(err("lstat", &p, e)),
                }
            };
            if let (true, Some(size)) = (attrs.is_regular(), attrs.size) {
                out.push((name, size));
            }
        }
        Ok(out)
    }

    /// The subdirectories of `data/`.
    fn pack_dirs(&self, c: &Client) -> Result<Vec<String>, BackendError> {
        let data = join(&self.root, "data");
        let entries = {
            let _p = self.sem.acquire();
            match c.read_dir(&data) {
                Ok(e) => e,
                Err(e) if e.is_status(FX_NO_SUCH_FILE) => return Ok(Vec::new()),
                Err(e) => return Err(err("readdir", &data, e)),
            }
        };
        let mut dirs = Vec::new();
        for e in entries {
            let Ok(name) = String::from_utf8(e.filename) else {
                continue;
            };
            if name == "." || name == ".." {
                continue;
            }
            let p = join(&data, &name);
            let is_dir = if e.attrs.permissions.is_some() {
                e.attrs.is_dir()
            } else {
                c.lstat(&p).map(|a| a.is_dir()).unwrap_or(false)
            };
            if is_dir {
                dirs.push(p);
            }
        }
        Ok(dirs)
    }

    /// Open `path` for reading and learn its size, both requests in flight together.
    fn open_read(&self, c: &Client, path: &str) -> Result<(Vec<u8>, u64), BackendError> {
        let (h, attrs) = c.open_with_lstat(path).map_err(|e| err("open", path, e))?;
        match attrs.size {
            Some(s) => Ok((h, s)),
            None => {
                c.close_nowait(&h);
                Err(BackendError::Other(format!(
                    "sftp lstat {path}: the server did not report the size"
                )))
            }
        }
    }

    fn write_file(
        &self,
        c: &Client,
        t: FileType,
        path: &str,
        tmp: &str,
        data: &[u8],
    ) -> Result<(), BackendError> {
        let flags = protocol::FXF_WRITE | protocol::FXF_CREAT | protocol::FXF_EXCL;
        let h = match c.open(tmp, flags, Attrs::with_permissions(0o600)) {
            Err(e) if e.is_status(FX_NO_SUCH_FILE) => {
                self.mkdir_all(c, &parent(path))?;
                c.open(tmp, flags, Attrs::with_permissions(0o600))
            }
            r => r,
        }
        .map_err(|e| err("open", tmp, e))?;
        let written = (|| {
            c.write_all(&h, data).map_err(|e| err("write", tmp, e))?;
            if c.fsync {
                c.fsync(&h).map_err(|e| err("fsync", tmp, e))?;
            }
            // Files are immutable once stored; restic makes them read-only too.
            match c.fsetstat(&h, Attrs::with_permissions(0o400)) {
                Err(e) if !e.is_status(FX_OP_UNSUPPORTED) && !e.is_status(FX_PERMISSION_DENIED) => {
                    Err(err("chmod", tmp, e))
                }
                _ => Ok(()),
            }
        })();
        let closed = c.close(&h).map_err(|e| err("close", tmp, e));
        written.and(closed)?;
        if c.posix_rename {
            return c
                .posix_rename(tmp, path)
                .map_err(|e| err("rename", path, e));
        }
        match c.rename(tmp, path) {
            Ok(()) => Ok(()),
            Err(e) => match c.lstat(path) {
                Ok(_) if t == FileType::Config => {
                    // No atomic replace on this server: remove, then rename.
                    c.remove(path).map_err(|e| err("remove", path, e))?;
                    c.rename(tmp, path).map_err(|e| err("rename", path, e))
                }
                // Same name means same content (names are content hashes): keep the old file.
                Ok(_) => c.remove(tmp).map_err(|e| err("remove", tmp, e)),
                Err(_) => Err(err("rename", path, e)),
            },
        }
    }
}

impl Backend for SftpBackend {
    fn location(&self) -> String {
        self.display.clone()
    }

    fn create(&self) -> Result<(), BackendError> {
        let _p = self.sem.acquire();
        let c = self.client()?;
        let config = self.path_of(FileType::Config, "config");
        match c.lstat(&config) {
            Ok(_) => return Err(BackendError::AlreadyExists(config)),
            Err(e) if e.is_status(FX_NO_SUCH_FILE) => {}
            Err(e) => return Err(err("lstat", &config, e)),
        }
        if self.root != "." && self.root != "/" {
            self.mkdir_all(&c, &self.root)?;
        }
        let types: Vec<String> = FileType::LISTABLE
            .iter()
            .map(|t| join(&self.root, t.dir()))
            .collect();
        self.mkdirs(&c, &types)?;
        let data: Vec<String> = (0..=255u8)
            .map(|i| join(&self.root, &format!("data/{i:02x}")))
            .collect();
        self.mkdirs(&c, &data)
    }

    fn list(&self, t: FileType) -> Result<Vec<(String, u64)>, BackendError> {
        let c = self.client()?;
        if t == FileType::Config {
            let _p = self.sem.acquire();
            let p = self.path_of(t, "config");
            return match c.lstat(&p) {
                Ok(a) => Ok(a
                    .size
                    .map(|s| vec![("config".to_string(), s)])
                    .unwrap_or_default()),
                Err(e) if e.is_status(FX_NO_SUCH_FILE) => Ok(Vec::new()),
                Err(e) => Err(err("lstat", &p, e)),
            };
        }
        if t != FileType::Pack {
            let _p = self.sem.acquire();
            return self.list_files(&c, &join(&self.root, t.dir()));
        }
        // data/xx: list the subdirectories in parallel, one operation slot each.
        let dirs = self.pack_dirs(&c)?;
        let next = AtomicUsize::new(0);
        let workers = self.connections.min(dirs.len()).max(1);
        let results: Vec<Result<Vec<(String, u64)>, BackendError>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..workers)
                .map(|_| {
                    s.spawn(|| {
                        let mut out = Vec::new();
                        while let Some(d) = dirs.get(next.fetch_add(1, Ordering::Relaxed)) {
                            let _p = self.sem.acquire();
                            out.extend(self.list_files(&c, d)?);
                        }
                        Ok(out)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(BackendError::Other("sftp list: worker panicked".into()))
                    })
                })
                .collect()
        });
        let mut out = Vec::new();
        for r in results {
            out.extend(r?);
        }
        Ok(out)
    }

    fn read(&self, t: FileType, name: &str) -> Result<Vec<u8>, BackendError> {
        let _p = self.sem.acquire();
        let c = self.client()?;
        let path = self.path_of(t, name);
        let (h, size) = self.open_read(&c, &path)?;
        let len = usize::try_from(size).map_err(|_| BackendError::Other("file too large".into()));
        let r = len.and_then(|len| {
            c.read_exact_at(&h, 0, len)
                .map_err(|e| err("read", &path, e))
        });
        c.close_nowait(&h);
        r
    }

    fn read_range(
        &self,
        t: FileType,
        name: &str,
        offset: u64,
        len: u64,
    ) -> Result<Vec<u8>, BackendError> {
        let len =
            usize::try_from(len).map_err(|_| BackendError::Other("range too large".into()))?;
        let _p = self.sem.acquire();
        let c = self.client()?;
        let path = self.path_of(t, name);
        let h = c
            .open(&path, protocol::FXF_READ, Attrs::default())
            .map_err(|e| err("open", &path, e))?;
        let r = c
            .read_exact_at(&h, offset, len)
            .map_err(|e| err("read", &path, e));
        c.close_nowait(&h);
        r
    }

    fn stat(&self, t: FileType, name: &str) -> Result<u64, BackendError> {
        let _p = self.sem.acquire();
        let c = self.client()?;
        let path = self.path_of(t, name);
        let a = c.lstat(&path).map_err(|e| err("lstat", &path, e))?;
        a.size.ok_or_else(|| {
            BackendError::Other(format!(
                "sftp lstat {path}: the server did not report the size"
            ))
        })
    }

    fn write(&self, t: FileType, name: &str, data: &[u8]) -> Result<(), BackendError> {
        let _p = self.sem.acquire();
        let c = self.client()?;
        let path = self.path_of(t, name);
        let tmp = format!("{path}-cairn-temp-{:032x}", rand::random::<u128>());
        let r = self.write_file(&c, t, &path, &tmp, data);
        if r.is_err() {
            // Try not to leave a partial file behind (it is not an id, so lists skip it).
            let _ = c.remove(&tmp);
        }
        r
    }

    fn remove(&self, t: FileType, name: &str) -> Result<(), BackendError> {
        let _p = self.sem.acquire();
        let c = self.client()?;
        let path = self.path_of(t, name);
        let r = match c.remove(&path) {
            Err(e) if e.is_status(FX_PERMISSION_DENIED) => {
                // Servers on Windows refuse to delete read-only files: make it writable.
                let _ = c.setstat(&path, Attrs::with_permissions(0o600));
                c.remove(&path)
            }
            r => r,
        };
        r.map_err(|e| err("remove", &path, e))
    }
}

#[cfg(test)]
mod tests;
