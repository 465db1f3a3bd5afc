//! File operations on an SFTP session: pipelined reads and writes (many requests in flight per
//! file), stat, directory listing, mkdir, remove, rename and the OpenSSH extensions.

use super::conn::{Connection, Pending, SftpError};
use super::protocol::{self, Attrs, NameEntry, Request, Response};
use std::collections::VecDeque;

/// Bytes per READ/WRITE request when the server does not announce its limits.
const DEFAULT_CHUNK: usize = 32 << 10;
/// Upper bound for the request size even if the server allows more.
const MAX_CHUNK: usize = 255 << 10;
/// Bytes in flight per file (requests sent and not yet answered).
const WINDOW_BYTES: usize = 4 << 20;

/// An SFTP client: a session plus what the server supports.
#[derive(Debug)]
pub struct Client {
    conn: Connection,
    /// `posix-rename@openssh.com` is available (atomic replace).
    pub posix_rename: bool,
    /// `fsync@openssh.com` is available.
    pub fsync: bool,
    read_chunk: usize,
    write_chunk: usize,
}

fn unexpected(what: &str, r: &Response) -> SftpError {
    let kind = match r {
        Response::Status { .. } => "status",
        Response::Handle(_) => "handle",
        Response::Data(_) => "data",
        Response::Name(_) => "name",
        Response::Attrs(_) => "attrs",
        Response::ExtendedReply(_) => "extended reply",
    };
    SftpError::Unexpected(format!("{kind} in reply to {what}"))
}

/// Turn a status response into `Ok(())` for `FX_OK`, an error otherwise.
fn status(what: &str, r: Response) -> Result<(), SftpError> {
    match r {
        Response::Status { code, .. } if code == protocol::FX_OK => Ok(()),
        Response::Status { code, message } => Err(SftpError::Status { code, message }),
        other => Err(unexpected(what, &other)),
    }
}

/// Turn an error status into an error, anything else into `Ok`.
fn not_status(r: Response) -> Result<Response, SftpError> {
    match r {
        Response::Status { code, message } => Err(SftpError::Status { code, message }),
        other => Ok(other),
    }
}

fn chunk_from(limit: u64) -> usize {
    usize::try_from(limit)
        .unwrap_or(MAX_CHUNK)
        .clamp(4096, MAX_CHUNK)
}

/// A read request in flight: where its bytes go in the output buffer.
struct InFlight {
    pos: usize,
    len: usize,
    pending: Pending,
}

impl Client {
    /// Start the session with `argv` and ask for the server's limits when offered.
    pub fn start(argv: &[String]) -> Result<Client, String> {
        let conn = Connection::start(argv)?;
        let v = &conn.version;
        let mut c = Client {
            posix_rename: v.has("posix-rename@openssh.com"),
            fsync: v.has("fsync@openssh.com"),
            read_chunk: DEFAULT_CHUNK,
            write_chunk: DEFAULT_CHUNK,
            conn,
        };
        if c.conn.version.has("limits@openssh.com") {
            let r = c
                .conn
                .call(&Request::Extended("limits@openssh.com", vec![]))
                .map_err(|e| format!("limits@openssh.com: {e}"))?;
            if let Response::ExtendedReply(d) = r
                && let Ok(l) = protocol::decode_limits(&d)
            {
                // Leave room for the packet headers within the maximum packet size.
                let packet = l.max_packet.saturating_sub(1024);
                if l.max_read > 0 {
                    c.read_chunk = chunk_from(l.max_read.min(packet));
                }
                if l.max_write > 0 {
                    c.write_chunk = chunk_from(l.max_write.min(packet));
                }
            }
        }
        tracing::debug!(
            "sftp: read {} / write {} bytes per request, posix-rename {}, fsync {}",
            c.read_chunk,
            c.write_chunk,
            c.posix_rename,
            c.fsync
        );
        Ok(c)
    }

    /// Why the session died, if it did.
    pub fn dead(&self) -> Option<String> {
        self.conn.dead()
    }

    /// Open a file; returns its handle.
    pub fn open(&self, path: &str, pflags: u32, attrs: Attrs) -> Result<Vec<u8>, SftpError> {
        let r = self.conn.call(&Request::Open {
            path,
            pflags,
            attrs,
        })?;
        match not_status(r)? {
            Response::Handle(h) => Ok(h),
            other => Err(unexpected("open", &other)),
        }
    }

    /// Close a handle and wait for the result.
    pub fn close(&self, handle: &[u8]) -> Result<(), SftpError> {
        status("close", self.conn.call(&Request::Close(handle))?)
    }

    /// Close a handle without waiting (for read-only handles, whose close cannot lose data).
    pub fn close_nowait(&self, handle: &[u8]) {
        let _ = self.conn.send(&Request::Close(handle));
    }

    /// Attributes of a path (symlinks not followed).
    pub fn lstat(&self, path: &str) -> Result<Attrs, SftpError> {
        attrs_of("lstat", self.conn.call(&Request::Lstat(path))?)
    }

    /// Attributes of a path (symlinks followed).
    pub fn stat(&self, path: &str) -> Result<Attrs, SftpError> {
        attrs_of("stat", self.conn.call(&Request::Stat(path))?)
    }

    /// Open `path` for reading and lstat it, both requests in flight together.
    pub fn open_with_lstat(&self, path: &str) -> Result<(Vec<u8>, Attrs), SftpError> {
        let open = self.conn.send(&Request::Open {
            path,
            pflags: protocol::FXF_READ,
            attrs: Attrs::default(),
        })?;
        let stat = self.conn.send(&Request::Lstat(path));
        let h = match not_status(self.conn.wait(open)?)? {
            Response::Handle(h) => h,
            other => return Err(unexpected("open", &other)),
        };
        match stat
            .and_then(|p| self.conn.wait(p))
            .and_then(|r| attrs_of("lstat", r))
        {
            Ok(a) => Ok((h, a)),
            Err(e) => {
                self.close_nowait(&h);
                Err(e)
            }
        }
    }

    /// Process id of the ssh command.
    pub fn pid(&self) -> u32 {
        self.conn.pid()
    }

    /// Set attributes of an open file.
    pub fn fsetstat(&self, handle: &[u8], attrs: Attrs) -> Result<(), SftpError> {
        status(
            "fsetstat",
            self.conn.call(&Request::Fsetstat(handle, attrs))?,
        )
    }

    /// Set attributes of a path.
    pub fn setstat(&self, path: &str, attrs: Attrs) -> Result<(), SftpError> {
        status("setstat", self.conn.call(&Request::Setstat(path, attrs))?)
    }

    /// Delete a file.
    pub fn remove(&self, path: &str) -> Result<(), SftpError> {
        status("remove", self.conn.call(&Request::Remove(path))?)
    }

    /// Create a directory.
    pub fn mkdir(&self, path: &str, mode: u32) -> Result<(), SftpError> {
        self.send_mkdir(path, mode)
            .and_then(|p| self.wait_status(p))
    }

    /// Send a mkdir without waiting (pipelined directory creation).
    pub fn send_mkdir(&self, path: &str, mode: u32) -> Result<Pending, SftpError> {
        self.conn
            .send(&Request::Mkdir(path, Attrs::with_permissions(mode)))
    }

    /// Wait for a request that answers with a status.
    pub fn wait_status(&self, p: Pending) -> Result<(), SftpError> {
        status("request", self.conn.wait(p)?)
    }

    /// Rename; fails on OpenSSH when `to` exists.
    pub fn rename(&self, from: &str, to: &str) -> Result<(), SftpError> {
        status("rename", self.conn.call(&Request::Rename(from, to))?)
    }

    /// Atomic rename that replaces `to` (`posix-rename@openssh.com`).
    pub fn posix_rename(&self, from: &str, to: &str) -> Result<(), SftpError> {
        let req = Request::Extended(
            "posix-rename@openssh.com",
            vec![from.as_bytes(), to.as_bytes()],
        );
        status("posix-rename", self.conn.call(&req)?)
    }

    /// Flush an open file to stable storage (`fsync@openssh.com`).
    pub fn fsync(&self, handle: &[u8]) -> Result<(), SftpError> {
        let req = Request::Extended("fsync@openssh.com", vec![handle]);
        status("fsync", self.conn.call(&req)?)
    }

    /// Every entry of a directory (including `.` and `..` as the server sends them).
    pub fn read_dir(&self, path: &str) -> Result<Vec<NameEntry>, SftpError> {
        let h = match not_status(self.conn.call(&Request::Opendir(path))?)? {
            Response::Handle(h) => h,
            other => return Err(unexpected("opendir", &other)),
        };
        let mut out = Vec::new();
        let res = loop {
            match self.conn.call(&Request::Readdir(&h)) {
                Ok(Response::Name(v)) => out.extend(v),
                Ok(Response::Status { code, .. }) if code == protocol::FX_EOF => break Ok(()),
                Ok(r) => break not_status(r).and_then(|r| Err(unexpected("readdir", &r))),
                Err(e) => break Err(e),
            }
        };
        self.close_nowait(&h);
        res.map(|()| out)
    }

    /// Read exactly `len` bytes at `offset` with up to [`WINDOW_BYTES`] in flight. A file
    /// that ends early is an error (`FX_EOF` status); short answers are re-requested.
    pub fn read_exact_at(
        &self,
        handle: &[u8],
        offset: u64,
        len: usize,
    ) -> Result<Vec<u8>, SftpError> {
        let mut out = vec![0u8; len];
        let chunk = self.read_chunk;
        let window = (WINDOW_BYTES / chunk).max(2);
        let mut queue: VecDeque<InFlight> = VecDeque::new();
        let mut retry: VecDeque<(usize, usize)> = VecDeque::new();
        let mut next = 0usize;
        let send = |pos: usize, n: usize| -> Result<InFlight, SftpError> {
            let pending = self.conn.send(&Request::Read {
                handle,
                offset: offset.saturating_add(pos as u64),
                len: u32::try_from(n).unwrap_or(u32::MAX),
            })?;
            Ok(InFlight {
                pos,
                len: n,
                pending,
            })
        };
        loop {
            while queue.len() < window {
                if let Some((pos, n)) = retry.pop_front() {
                    queue.push_back(send(pos, n)?);
                } else if next < len {
                    let n = chunk.min(len - next);
                    queue.push_back(send(next, n)?);
                    next += n;
                } else {
                    break;
                }
            }
            let Some(f) = queue.pop_front() else { break };
            match self.conn.wait(f.pending)? {
                Response::Data(d) => {
                    let dst = f
                        .pos
                        .checked_add(d.len())
                        .filter(|_| d.len() <= f.len)
                        .and_then(|end| out.get_mut(f.pos..end))
                        .ok_or_else(|| {
                            SftpError::Unexpected(format!(
                                "{} bytes in reply to a read of {}",
                                d.len(),
                                f.len
                            ))
                        })?;
                    dst.copy_from_slice(&d);
                    if d.is_empty() {
                        return Err(SftpError::Unexpected("empty read reply".into()));
                    }
                    if d.len() < f.len {
                        retry.push_back((f.pos + d.len(), f.len - d.len()));
                    }
                }
                Response::Status { code, .. } if code == protocol::FX_EOF => {
                    return Err(SftpError::Status {
                        code,
                        message: format!(
                            "short read: file ends before byte {} (wanted {len} bytes at offset {offset})",
                            offset.saturating_add(f.pos as u64)
                        ),
                    });
                }
                other => {
                    return Err(not_status(other).map_or_else(|e| e, |r| unexpected("read", &r)));
                }
            }
        }
        Ok(out)
    }

    /// Write all of `data` at offset 0 with up to [`WINDOW_BYTES`] in flight.
    pub fn write_all(&self, handle: &[u8], data: &[u8]) -> Result<(), SftpError> {
        let chunk = self.write_chunk;
        let window = (WINDOW_BYTES / chunk).max(2);
        let mut queue: VecDeque<Pending> = VecDeque::new();
        let mut chunks = data.chunks(chunk).enumerate();
        loop {
            while queue.len() < window {
                let Some((i, part)) = chunks.next() else {
                    break;
                };
                queue.push_back(self.conn.send(&Request::Write {
                    handle,
                    offset: (i * chunk) as u64,
                    data: part,
                })?);
            }
            let Some(p) = queue.pop_front() else { break };
            status("write", self.conn.wait(p)?)?;
        }
        Ok(())
    }
}

fn attrs_of(what: &str, r: Response) -> Result<Attrs, SftpError> {
    match not_status(r)? {
        Response::Attrs(a) => Ok(a),
        other => Err(unexpected(what, &other)),
    }
}
