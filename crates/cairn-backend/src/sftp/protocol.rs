//! SFTP protocol version 3 (draft-ietf-secsh-filexfer-02) packet encoding and decoding,
//! plus the OpenSSH extensions Cairn uses. Every decoder is total: malformed or truncated
//! input from the server gives a [`ProtoError`], never a panic, and packet sizes are capped.

use std::io::{self, Read};

/// Largest packet accepted from the server (OpenSSH sends at most 256 KiB + headers).
pub const MAX_PACKET: usize = 4 << 20;

/// `SSH_FXP_INIT`.
pub const FXP_INIT: u8 = 1;
/// `SSH_FXP_VERSION`.
pub const FXP_VERSION: u8 = 2;
const FXP_OPEN: u8 = 3;
const FXP_CLOSE: u8 = 4;
const FXP_READ: u8 = 5;
const FXP_WRITE: u8 = 6;
const FXP_LSTAT: u8 = 7;
const FXP_FSTAT: u8 = 8;
const FXP_SETSTAT: u8 = 9;
const FXP_FSETSTAT: u8 = 10;
const FXP_OPENDIR: u8 = 11;
const FXP_READDIR: u8 = 12;
const FXP_REMOVE: u8 = 13;
const FXP_MKDIR: u8 = 14;
const FXP_RMDIR: u8 = 15;
const FXP_STAT: u8 = 17;
const FXP_RENAME: u8 = 18;
const FXP_STATUS: u8 = 101;
const FXP_HANDLE: u8 = 102;
const FXP_DATA: u8 = 103;
const FXP_NAME: u8 = 104;
const FXP_ATTRS: u8 = 105;
const FXP_EXTENDED: u8 = 200;
const FXP_EXTENDED_REPLY: u8 = 201;

/// Open flag: read.
pub const FXF_READ: u32 = 0x01;
/// Open flag: write.
pub const FXF_WRITE: u32 = 0x02;
/// Open flag: create if missing.
pub const FXF_CREAT: u32 = 0x08;
/// Open flag: truncate.
pub const FXF_TRUNC: u32 = 0x10;
/// Open flag: fail if the file exists (with `FXF_CREAT`).
pub const FXF_EXCL: u32 = 0x20;

/// Status: success.
pub const FX_OK: u32 = 0;
/// Status: end of file / end of directory listing.
pub const FX_EOF: u32 = 1;
/// Status: no such file or directory.
pub const FX_NO_SUCH_FILE: u32 = 2;
/// Status: permission denied.
pub const FX_PERMISSION_DENIED: u32 = 3;
/// Status: generic failure (OpenSSH also uses it for "exists" and "no space").
pub const FX_FAILURE: u32 = 4;
/// Status: the server does not support the operation.
pub const FX_OP_UNSUPPORTED: u32 = 8;

const ATTR_SIZE: u32 = 0x01;
const ATTR_UIDGID: u32 = 0x02;
const ATTR_PERMISSIONS: u32 = 0x04;
const ATTR_ACMODTIME: u32 = 0x08;
const ATTR_EXTENDED: u32 = 0x8000_0000;

/// File type bits of `st_mode`.
const S_IFMT: u32 = 0o170_000;
const S_IFDIR: u32 = 0o040_000;
const S_IFREG: u32 = 0o100_000;

/// Name of a status code, for messages.
pub fn status_name(code: u32) -> &'static str {
    match code {
        0 => "ok",
        1 => "end of file",
        2 => "no such file",
        3 => "permission denied",
        4 => "failure",
        5 => "bad message",
        6 => "no connection",
        7 => "connection lost",
        8 => "operation unsupported",
        _ => "unknown status",
    }
}

/// A packet from the server that does not follow the protocol.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed SFTP packet: {0}")]
pub struct ProtoError(pub String);

fn bad(msg: &str) -> ProtoError {
    ProtoError(msg.to_string())
}

/// A cursor over a packet payload; every read is bounds-checked.
struct Wire<'a> {
    buf: &'a [u8],
}

impl<'a> Wire<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], ProtoError> {
        let (head, rest) = self
            .buf
            .split_at_checked(n)
            .ok_or_else(|| ProtoError(format!("truncated {what}")))?;
        self.buf = rest;
        Ok(head)
    }

    #[cfg(test)]
    fn u8(&mut self, what: &str) -> Result<u8, ProtoError> {
        let b = self.take(1, what)?;
        b.first().copied().ok_or_else(|| bad(what))
    }

    fn u32(&mut self, what: &str) -> Result<u32, ProtoError> {
        let b = self.take(4, what)?;
        let arr: [u8; 4] = b.try_into().map_err(|_| bad(what))?;
        Ok(u32::from_be_bytes(arr))
    }

    fn u64(&mut self, what: &str) -> Result<u64, ProtoError> {
        let b = self.take(8, what)?;
        let arr: [u8; 8] = b.try_into().map_err(|_| bad(what))?;
        Ok(u64::from_be_bytes(arr))
    }

    fn string(&mut self, what: &str) -> Result<&'a [u8], ProtoError> {
        let n = self.u32(what)?;
        let n = usize::try_from(n).map_err(|_| bad(what))?;
        self.take(n, what)
    }

    fn text(&mut self, what: &str) -> Result<String, ProtoError> {
        Ok(String::from_utf8_lossy(self.string(what)?).into_owned())
    }

    fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
}

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_be_bytes());
}

fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_be_bytes());
}

/// Append an SSH string (u32 length + bytes). Lengths above `u32::MAX` cannot occur: every
/// caller passes at most one packet's worth of data.
fn put_string(out: &mut Vec<u8>, s: &[u8]) {
    put_u32(out, u32::try_from(s.len()).unwrap_or(u32::MAX));
    out.extend_from_slice(s);
}

/// File attributes (`ATTRS`): the fields Cairn reads or sets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attrs {
    /// Size in bytes.
    pub size: Option<u64>,
    /// Owner and group ids.
    pub uid_gid: Option<(u32, u32)>,
    /// `st_mode` (type and permission bits).
    pub permissions: Option<u32>,
    /// Access and modification times (seconds).
    pub atime_mtime: Option<(u32, u32)>,
    /// Extended attribute pairs.
    pub extended: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Attrs {
    /// Attributes that only set permission bits.
    pub fn with_permissions(mode: u32) -> Attrs {
        Attrs {
            permissions: Some(mode),
            ..Attrs::default()
        }
    }

    /// True if the type bits say directory.
    pub fn is_dir(&self) -> bool {
        self.permissions.is_some_and(|p| p & S_IFMT == S_IFDIR)
    }

    /// True if the type bits say regular file.
    pub fn is_regular(&self) -> bool {
        self.permissions.is_some_and(|p| p & S_IFMT == S_IFREG)
    }

    fn encode(&self, out: &mut Vec<u8>) {
        let mut flags = 0;
        if self.size.is_some() {
            flags |= ATTR_SIZE;
        }
        if self.uid_gid.is_some() {
            flags |= ATTR_UIDGID;
        }
        if self.permissions.is_some() {
            flags |= ATTR_PERMISSIONS;
        }
        if self.atime_mtime.is_some() {
            flags |= ATTR_ACMODTIME;
        }
        if !self.extended.is_empty() {
            flags |= ATTR_EXTENDED;
        }
        put_u32(out, flags);
        if let Some(s) = self.size {
            put_u64(out, s);
        }
        if let Some((u, g)) = self.uid_gid {
            put_u32(out, u);
            put_u32(out, g);
        }
        if let Some(p) = self.permissions {
            put_u32(out, p);
        }
        if let Some((a, m)) = self.atime_mtime {
            put_u32(out, a);
            put_u32(out, m);
        }
        if !self.extended.is_empty() {
            put_u32(out, u32::try_from(self.extended.len()).unwrap_or(u32::MAX));
            for (k, v) in &self.extended {
                put_string(out, k);
                put_string(out, v);
            }
        }
    }

    fn decode(w: &mut Wire<'_>) -> Result<Attrs, ProtoError> {
        let flags = w.u32("attribute flags")?;
        let mut a = Attrs::default();
        if flags & ATTR_SIZE != 0 {
            a.size = Some(w.u64("size")?);
        }
        if flags & ATTR_UIDGID != 0 {
            a.uid_gid = Some((w.u32("uid")?, w.u32("gid")?));
        }
        if flags & ATTR_PERMISSIONS != 0 {
            a.permissions = Some(w.u32("permissions")?);
        }
        if flags & ATTR_ACMODTIME != 0 {
            a.atime_mtime = Some((w.u32("atime")?, w.u32("mtime")?));
        }
        if flags & ATTR_EXTENDED != 0 {
            let n = w.u32("extended count")?;
            for _ in 0..n {
                let k = w.string("extended name")?.to_vec();
                let v = w.string("extended value")?.to_vec();
                a.extended.push((k, v));
            }
        }
        Ok(a)
    }
}

/// A request from the client. Paths are sent as given (UTF-8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request<'a> {
    /// `SSH_FXP_OPEN`.
    Open {
        /// File path.
        path: &'a str,
        /// `FXF_*` flags.
        pflags: u32,
        /// Attributes for a created file.
        attrs: Attrs,
    },
    /// `SSH_FXP_CLOSE`.
    Close(&'a [u8]),
    /// `SSH_FXP_READ`.
    Read {
        /// File handle.
        handle: &'a [u8],
        /// Offset.
        offset: u64,
        /// Bytes wanted.
        len: u32,
    },
    /// `SSH_FXP_WRITE`.
    Write {
        /// File handle.
        handle: &'a [u8],
        /// Offset.
        offset: u64,
        /// Bytes to write.
        data: &'a [u8],
    },
    /// `SSH_FXP_LSTAT`.
    Lstat(&'a str),
    /// `SSH_FXP_STAT`.
    Stat(&'a str),
    /// `SSH_FXP_FSTAT`.
    Fstat(&'a [u8]),
    /// `SSH_FXP_SETSTAT`.
    Setstat(&'a str, Attrs),
    /// `SSH_FXP_FSETSTAT`.
    Fsetstat(&'a [u8], Attrs),
    /// `SSH_FXP_OPENDIR`.
    Opendir(&'a str),
    /// `SSH_FXP_READDIR`.
    Readdir(&'a [u8]),
    /// `SSH_FXP_REMOVE`.
    Remove(&'a str),
    /// `SSH_FXP_MKDIR`.
    Mkdir(&'a str, Attrs),
    /// `SSH_FXP_RMDIR`.
    Rmdir(&'a str),
    /// `SSH_FXP_RENAME` (fails if the target exists on OpenSSH).
    Rename(&'a str, &'a str),
    /// `SSH_FXP_EXTENDED`: a named extension with its arguments (each sent as a string).
    Extended(&'a str, Vec<&'a [u8]>),
}

impl Request<'_> {
    /// The packet type and body after the request id.
    fn body(&self, out: &mut Vec<u8>) -> u8 {
        match self {
            Request::Open {
                path,
                pflags,
                attrs,
            } => {
                put_string(out, path.as_bytes());
                put_u32(out, *pflags);
                attrs.encode(out);
                FXP_OPEN
            }
            Request::Close(h) => {
                put_string(out, h);
                FXP_CLOSE
            }
            Request::Read {
                handle,
                offset,
                len,
            } => {
                put_string(out, handle);
                put_u64(out, *offset);
                put_u32(out, *len);
                FXP_READ
            }
            Request::Write {
                handle,
                offset,
                data,
            } => {
                put_string(out, handle);
                put_u64(out, *offset);
                put_string(out, data);
                FXP_WRITE
            }
            Request::Lstat(p) => {
                put_string(out, p.as_bytes());
                FXP_LSTAT
            }
            Request::Stat(p) => {
                put_string(out, p.as_bytes());
                FXP_STAT
            }
            Request::Fstat(h) => {
                put_string(out, h);
                FXP_FSTAT
            }
            Request::Setstat(p, a) => {
                put_string(out, p.as_bytes());
                a.encode(out);
                FXP_SETSTAT
            }
            Request::Fsetstat(h, a) => {
                put_string(out, h);
                a.encode(out);
                FXP_FSETSTAT
            }
            Request::Opendir(p) => {
                put_string(out, p.as_bytes());
                FXP_OPENDIR
            }
            Request::Readdir(h) => {
                put_string(out, h);
                FXP_READDIR
            }
            Request::Remove(p) => {
                put_string(out, p.as_bytes());
                FXP_REMOVE
            }
            Request::Mkdir(p, a) => {
                put_string(out, p.as_bytes());
                a.encode(out);
                FXP_MKDIR
            }
            Request::Rmdir(p) => {
                put_string(out, p.as_bytes());
                FXP_RMDIR
            }
            Request::Rename(from, to) => {
                put_string(out, from.as_bytes());
                put_string(out, to.as_bytes());
                FXP_RENAME
            }
            Request::Extended(name, args) => {
                put_string(out, name.as_bytes());
                for a in args {
                    put_string(out, a);
                }
                FXP_EXTENDED
            }
        }
    }

    /// The complete packet (length, type, id, body) for request `id`.
    pub fn encode(&self, id: u32) -> Vec<u8> {
        let extra = match self {
            Request::Write { data, .. } => data.len(),
            _ => 0,
        };
        let mut out = Vec::with_capacity(64 + extra);
        out.extend_from_slice(&[0, 0, 0, 0, 0]);
        put_u32(&mut out, id);
        let ty = self.body(&mut out);
        finish_packet(out, ty)
    }
}

/// Fill in the length and type of a packet built behind a 5-byte placeholder.
fn finish_packet(mut out: Vec<u8>, ty: u8) -> Vec<u8> {
    let len = u32::try_from(out.len().saturating_sub(4)).unwrap_or(u32::MAX);
    if let Some(head) = out.get_mut(..5) {
        head[..4].copy_from_slice(&len.to_be_bytes());
        head[4] = ty;
    }
    out
}

/// The `SSH_FXP_INIT` packet asking for version 3.
pub fn encode_init() -> Vec<u8> {
    let mut out = vec![0, 0, 0, 0, 0];
    put_u32(&mut out, 3);
    finish_packet(out, FXP_INIT)
}

/// One directory entry of a `NAME` response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameEntry {
    /// The file name (raw bytes).
    pub filename: Vec<u8>,
    /// `ls -l` style line (unused).
    pub longname: Vec<u8>,
    /// Attributes.
    pub attrs: Attrs,
}

/// A response from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// `SSH_FXP_STATUS`.
    Status {
        /// `FX_*` code.
        code: u32,
        /// Server's message.
        message: String,
    },
    /// `SSH_FXP_HANDLE`.
    Handle(Vec<u8>),
    /// `SSH_FXP_DATA`.
    Data(Vec<u8>),
    /// `SSH_FXP_NAME`.
    Name(Vec<NameEntry>),
    /// `SSH_FXP_ATTRS`.
    Attrs(Attrs),
    /// `SSH_FXP_EXTENDED_REPLY`: extension-specific bytes.
    ExtendedReply(Vec<u8>),
}

/// Decode a response packet (type + payload after the length and type) into its request id
/// and body.
pub fn decode_response(ty: u8, payload: &[u8]) -> Result<(u32, Response), ProtoError> {
    let mut w = Wire { buf: payload };
    let id = w.u32("request id")?;
    let r = match ty {
        FXP_STATUS => {
            let code = w.u32("status code")?;
            // The message and language tag are optional in some old servers.
            let message = if w.is_empty() {
                String::new()
            } else {
                w.text("status message")?
            };
            Response::Status { code, message }
        }
        FXP_HANDLE => Response::Handle(w.string("handle")?.to_vec()),
        FXP_DATA => Response::Data(w.string("data")?.to_vec()),
        FXP_NAME => {
            let n = w.u32("name count")?;
            let mut v = Vec::new();
            for _ in 0..n {
                let filename = w.string("file name")?.to_vec();
                let longname = w.string("long name")?.to_vec();
                let attrs = Attrs::decode(&mut w)?;
                v.push(NameEntry {
                    filename,
                    longname,
                    attrs,
                });
            }
            Response::Name(v)
        }
        FXP_ATTRS => Response::Attrs(Attrs::decode(&mut w)?),
        FXP_EXTENDED_REPLY => Response::ExtendedReply(w.buf.to_vec()),
        other => return Err(ProtoError(format!("unexpected packet type {other}"))),
    };
    Ok((id, r))
}

/// The server's `SSH_FXP_VERSION`: protocol version and offered extensions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Version {
    /// Protocol version (3 for every server Cairn supports).
    pub version: u32,
    /// `(name, data)` of each extension.
    pub extensions: Vec<(String, Vec<u8>)>,
}

impl Version {
    /// True if the server offers extension `name`.
    pub fn has(&self, name: &str) -> bool {
        self.extensions.iter().any(|(n, _)| n == name)
    }
}

/// Decode the payload of a `VERSION` packet.
pub fn decode_version(payload: &[u8]) -> Result<Version, ProtoError> {
    let mut w = Wire { buf: payload };
    let version = w.u32("version")?;
    let mut extensions = Vec::new();
    while !w.is_empty() {
        let name = w.text("extension name")?;
        let data = w.string("extension data")?.to_vec();
        extensions.push((name, data));
    }
    Ok(Version {
        version,
        extensions,
    })
}

/// Limits the server announces via `limits@openssh.com`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest packet the server accepts.
    pub max_packet: u64,
    /// Largest READ length served in one response.
    pub max_read: u64,
    /// Largest WRITE length accepted.
    pub max_write: u64,
}

/// Decode the reply of `limits@openssh.com`.
pub fn decode_limits(data: &[u8]) -> Result<Limits, ProtoError> {
    let mut w = Wire { buf: data };
    Ok(Limits {
        max_packet: w.u64("max packet length")?,
        max_read: w.u64("max read length")?,
        max_write: w.u64("max write length")?,
    })
}

/// Read one packet: `Ok(None)` on a clean end of stream before a packet starts. Packets
/// longer than `max` or without a type byte are `InvalidData` errors.
pub fn read_packet(r: &mut impl Read, max: usize) -> io::Result<Option<(u8, Vec<u8>)>> {
    let mut len = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        let Some(rest) = len.get_mut(got..) else {
            break;
        };
        match r.read(rest) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let n = usize::try_from(u32::from_be_bytes(len)).unwrap_or(usize::MAX);
    if n == 0 || n > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "packet length {n} out of range (first bytes {:?})",
                String::from_utf8_lossy(&len)
            ),
        ));
    }
    let mut ty = [0u8; 1];
    r.read_exact(&mut ty)?;
    let mut payload = vec![0u8; n - 1];
    r.read_exact(&mut payload)?;
    Ok(Some((ty[0], payload)))
}

#[cfg(test)]
#[path = "protocol_tests.rs"]
mod tests;
