//! Tree nodes (one file, directory, link, device… inside a tree blob), their byte-exact Go
//! JSON encoding and Go-compatible decoding (spec §10.2–10.5), and Go `os.FileMode` helpers.

use crate::error::{RepoError, Result};
use crate::gojson::reader::JsonReader;
use crate::gojson::{self, RawJson};
use crate::gotime::GoTime;
use crate::id::Id;
use base64::Engine;
use std::borrow::Cow;

/// Go `os.ModeDir`.
pub const MODE_DIR: u32 = 1 << 31;
/// Go `os.ModeAppend` (never stored by restic).
pub const MODE_APPEND: u32 = 1 << 30;
/// Go `os.ModeExclusive` (never stored by restic).
pub const MODE_EXCLUSIVE: u32 = 1 << 29;
/// Go `os.ModeTemporary` (never stored by restic).
pub const MODE_TEMPORARY: u32 = 1 << 28;
/// Go `os.ModeSymlink`.
pub const MODE_SYMLINK: u32 = 1 << 27;
/// Go `os.ModeDevice` (block device alone, character device with [`MODE_CHAR_DEVICE`]).
pub const MODE_DEVICE: u32 = 1 << 26;
/// Go `os.ModeNamedPipe` (FIFO).
pub const MODE_NAMED_PIPE: u32 = 1 << 25;
/// Go `os.ModeSocket`.
pub const MODE_SOCKET: u32 = 1 << 24;
/// Go `os.ModeSetuid` (POSIX 0o4000).
pub const MODE_SETUID: u32 = 1 << 23;
/// Go `os.ModeSetgid` (POSIX 0o2000).
pub const MODE_SETGID: u32 = 1 << 22;
/// Go `os.ModeCharDevice`.
pub const MODE_CHAR_DEVICE: u32 = 1 << 21;
/// Go `os.ModeSticky` (POSIX 0o1000).
pub const MODE_STICKY: u32 = 1 << 20;
/// Go `os.ModeIrregular` (unknown file type).
pub const MODE_IRREGULAR: u32 = 1 << 19;
/// Go `os.ModePerm` (0o777).
pub const MODE_PERM: u32 = 0o777;
/// Go `os.ModeType`: all file-type bits.
pub const MODE_TYPE: u32 = MODE_DIR
    | MODE_SYMLINK
    | MODE_NAMED_PIPE
    | MODE_SOCKET
    | MODE_DEVICE
    | MODE_CHAR_DEVICE
    | MODE_IRREGULAR;
/// The bits restic keeps in a node's `mode`.
pub const MODE_STORED_MASK: u32 = MODE_PERM | MODE_TYPE | MODE_SETUID | MODE_SETGID | MODE_STICKY;

const S_IFMT: u32 = 0o170_000;
const S_IFSOCK: u32 = 0o140_000;
const S_IFLNK: u32 = 0o120_000;
const S_IFREG: u32 = 0o100_000;
const S_IFBLK: u32 = 0o060_000;
const S_IFDIR: u32 = 0o040_000;
const S_IFCHR: u32 = 0o020_000;
const S_IFIFO: u32 = 0o010_000;

/// Converts a POSIX `st_mode` into the Go `FileMode` bits restic stores (type bits,
/// permissions, setuid/setgid/sticky moved to Go's positions). An unknown file type gets
/// [`MODE_IRREGULAR`] (Go 1.19 would leave it looking like a regular file).
pub fn go_mode_from_unix(st_mode: u32) -> u32 {
    let mut mode = st_mode & MODE_PERM;
    mode |= match st_mode & S_IFMT {
        S_IFREG => 0,
        S_IFDIR => MODE_DIR,
        S_IFLNK => MODE_SYMLINK,
        S_IFBLK => MODE_DEVICE,
        S_IFCHR => MODE_DEVICE | MODE_CHAR_DEVICE,
        S_IFIFO => MODE_NAMED_PIPE,
        S_IFSOCK => MODE_SOCKET,
        _ => MODE_IRREGULAR,
    };
    if st_mode & 0o4000 != 0 {
        mode |= MODE_SETUID;
    }
    if st_mode & 0o2000 != 0 {
        mode |= MODE_SETGID;
    }
    if st_mode & 0o1000 != 0 {
        mode |= MODE_STICKY;
    }
    mode
}

/// POSIX permission bits (`0o7777` range) for `chmod` from Go `FileMode` bits.
pub fn unix_perm_from_go(mode: u32) -> u32 {
    let mut perm = mode & MODE_PERM;
    if mode & MODE_SETUID != 0 {
        perm |= 0o4000;
    }
    if mode & MODE_SETGID != 0 {
        perm |= 0o2000;
    }
    if mode & MODE_STICKY != 0 {
        perm |= 0o1000;
    }
    perm
}

/// The `type` of a node. The string, not the mode bits, is authoritative.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub enum NodeType {
    /// Regular file (`file`).
    #[default]
    File,
    /// Directory (`dir`).
    Dir,
    /// Symbolic link (`symlink`).
    Symlink,
    /// Block device (`dev`).
    Dev,
    /// Character device (`chardev`).
    CharDev,
    /// Named pipe (`fifo`).
    Fifo,
    /// Unix socket (`socket`; restic does not back these up).
    Socket,
    /// Unclassifiable file (`irregular`, restic ≥ 0.17).
    Irregular,
    /// Any other string found in a tree (kept for round trips; `""` when absent).
    Other(String),
}

impl NodeType {
    /// The string restic writes.
    pub fn as_str(&self) -> &str {
        match self {
            NodeType::File => "file",
            NodeType::Dir => "dir",
            NodeType::Symlink => "symlink",
            NodeType::Dev => "dev",
            NodeType::CharDev => "chardev",
            NodeType::Fifo => "fifo",
            NodeType::Socket => "socket",
            NodeType::Irregular => "irregular",
            NodeType::Other(s) => s,
        }
    }

    /// Parses a `type` string; unknown strings become [`NodeType::Other`].
    pub fn parse(s: &str) -> NodeType {
        match s {
            "file" => NodeType::File,
            "dir" => NodeType::Dir,
            "symlink" => NodeType::Symlink,
            "dev" => NodeType::Dev,
            "chardev" => NodeType::CharDev,
            "fifo" => NodeType::Fifo,
            "socket" => NodeType::Socket,
            "irregular" => NodeType::Irregular,
            other => NodeType::Other(other.to_string()),
        }
    }

    /// The type restic derives from Go `FileMode` type bits (`None` for unknown combinations).
    pub fn from_go_mode(mode: u32) -> Option<NodeType> {
        Some(match mode & MODE_TYPE {
            0 => NodeType::File,
            MODE_DIR => NodeType::Dir,
            MODE_SYMLINK => NodeType::Symlink,
            m if m == MODE_DEVICE | MODE_CHAR_DEVICE => NodeType::CharDev,
            MODE_DEVICE => NodeType::Dev,
            MODE_NAMED_PIPE => NodeType::Fifo,
            MODE_SOCKET => NodeType::Socket,
            MODE_IRREGULAR => NodeType::Irregular,
            _ => return None,
        })
    }
}

impl From<&str> for NodeType {
    fn from(s: &str) -> NodeType {
        NodeType::parse(s)
    }
}

impl std::str::FromStr for NodeType {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> std::result::Result<NodeType, Self::Err> {
        Ok(NodeType::parse(s))
    }
}

impl std::fmt::Display for NodeType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One extended attribute (`{"name": …, "value": base64}`). An empty value is written as
/// `""`; a `null` value reads as empty.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExtendedAttribute {
    /// Attribute name, e.g. `user.fixture` (a Go string: invalid UTF-8 is not representable).
    pub name: String,
    /// Raw value bytes.
    pub value: Vec<u8>,
}

/// One entry of a tree. Field meanings as in spec §10.3.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Node {
    /// Raw name bytes (unquoted; may be invalid UTF-8). Never empty in valid trees.
    pub name: Vec<u8>,
    /// Node type.
    pub node_type: NodeType,
    /// Go `FileMode` bits (see [`go_mode_from_unix`]); omitted from JSON when 0.
    pub mode: u32,
    /// Modification time.
    pub mtime: GoTime,
    /// Access time (restic writes mtime here unless `--with-atime`).
    pub atime: GoTime,
    /// Inode change time.
    pub ctime: GoTime,
    /// Owner uid.
    pub uid: u32,
    /// Owner gid.
    pub gid: u32,
    /// Owner user name ("" if unknown).
    pub user: String,
    /// Owner group name ("" if unknown).
    pub group: String,
    /// Inode number.
    pub inode: u64,
    /// `st_dev` of the file.
    pub device_id: u64,
    /// File size (regular files).
    pub size: u64,
    /// `st_nlink`.
    pub links: u64,
    /// Raw symlink target bytes.
    pub linktarget: Vec<u8>,
    /// Extended attributes.
    pub extended_attributes: Vec<ExtendedAttribute>,
    /// restic ≥ 0.17 `generic_attributes` (Windows), kept as raw JSON; written sorted by key.
    pub generic_attributes: Vec<(String, RawJson)>,
    /// `st_rdev` for devices.
    pub device: u64,
    /// Data blob IDs of a file (`Some(vec![])` for an empty file); `None` → `null`.
    pub content: Option<Vec<Id>>,
    /// Tree blob of a directory.
    pub subtree: Option<Id>,
    /// Error text recorded while reading metadata.
    pub error: String,
}

/// Go's `base64.StdEncoding` (padded; like Go, non-zero trailing bits are accepted).
const B64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_encode_padding(true)
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::RequireCanonical),
);

fn push_key(out: &mut Vec<u8>, key: &str) {
    out.extend_from_slice(b",\"");
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\":");
}

fn push_num_field(out: &mut Vec<u8>, key: &str, v: u64, omit_zero: bool) {
    if v != 0 || !omit_zero {
        push_key(out, key);
        gojson::write_json_u64(out, v);
    }
}

fn push_str_field(out: &mut Vec<u8>, key: &str, v: &str) {
    if !v.is_empty() {
        push_key(out, key);
        gojson::write_json_string(out, v);
    }
}

fn push_time(out: &mut Vec<u8>, key: &str, t: &GoTime) {
    push_key(out, key);
    out.push(b'"');
    t.write_to(out);
    out.push(b'"');
}

impl Node {
    /// A node with the given raw name and type and everything else zero.
    pub fn new(name: impl Into<Vec<u8>>, node_type: NodeType) -> Node {
        Node {
            name: name.into(),
            node_type,
            ..Node::default()
        }
    }

    /// The name for display (invalid UTF-8 replaced).
    pub fn name_lossy(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.name)
    }

    /// Appends the exact Go/restic JSON encoding of this node (compact, no newline).
    pub fn encode_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"name\":");
        gojson::write_json_string(out, &gojson::go_quote(&self.name));
        push_key(out, "type");
        gojson::write_json_string(out, self.node_type.as_str());
        push_num_field(out, "mode", u64::from(self.mode), true);
        push_time(out, "mtime", &self.mtime);
        push_time(out, "atime", &self.atime);
        push_time(out, "ctime", &self.ctime);
        push_num_field(out, "uid", u64::from(self.uid), false);
        push_num_field(out, "gid", u64::from(self.gid), false);
        push_str_field(out, "user", &self.user);
        push_str_field(out, "group", &self.group);
        push_num_field(out, "inode", self.inode, true);
        push_num_field(out, "device_id", self.device_id, true);
        push_num_field(out, "size", self.size, true);
        push_num_field(out, "links", self.links, true);
        if !self.linktarget.is_empty() {
            push_key(out, "linktarget");
            gojson::write_json_bytes_lossy(out, &self.linktarget);
            if std::str::from_utf8(&self.linktarget).is_err() {
                push_key(out, "linktarget_raw");
                out.push(b'"');
                out.extend_from_slice(B64.encode(&self.linktarget).as_bytes());
                out.push(b'"');
            }
        }
        if !self.extended_attributes.is_empty() {
            push_key(out, "extended_attributes");
            out.push(b'[');
            for (i, xa) in self.extended_attributes.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(b"{\"name\":");
                gojson::write_json_string(out, &xa.name);
                out.extend_from_slice(b",\"value\":\"");
                out.extend_from_slice(B64.encode(&xa.value).as_bytes());
                out.extend_from_slice(b"\"}");
            }
            out.push(b']');
        }
        if !self.generic_attributes.is_empty() {
            push_key(out, "generic_attributes");
            out.push(b'{');
            // Go writes maps sorted by key; for duplicate keys the last one wins.
            let mut attrs: Vec<&(String, RawJson)> = self.generic_attributes.iter().collect();
            attrs.sort_by(|a, b| a.0.cmp(&b.0));
            let mut first = true;
            for (i, (k, v)) in attrs.iter().map(|a| (&a.0, &a.1)).enumerate() {
                if attrs.get(i + 1).is_some_and(|next| &next.0 == k) {
                    continue;
                }
                if !first {
                    out.push(b',');
                }
                first = false;
                gojson::write_json_string(out, k);
                out.push(b':');
                out.extend_from_slice(v.as_bytes());
            }
            out.push(b'}');
        }
        push_num_field(out, "device", self.device, true);
        push_key(out, "content");
        match &self.content {
            None => out.extend_from_slice(b"null"),
            Some(ids) => {
                out.push(b'[');
                for (i, id) in ids.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    gojson::write_json_id(out, id);
                }
                out.push(b']');
            }
        }
        if let Some(id) = &self.subtree {
            push_key(out, "subtree");
            gojson::write_json_id(out, id);
        }
        push_str_field(out, "error", &self.error);
        out.push(b'}');
    }

    /// The exact JSON encoding of this node alone.
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(400);
        self.encode_to(&mut out);
        out
    }

    /// Decodes one node object with Go/restic semantics (unknown fields ignored, missing ones
    /// zero, `linktarget_raw` overriding `linktarget`, the name unquoted).
    pub fn from_json(json: &[u8]) -> Result<Node> {
        let mut r = JsonReader::new(json);
        let node = decode_node(&mut r).and_then(|n| r.finish().map(|()| n));
        node.map_err(|e| RepoError::corrupt("node", e))
    }
}

fn lower_key<'a>(key: Cow<'a, str>) -> Cow<'a, str> {
    // Go matches field names case-insensitively (exact match preferred; all our names are
    // lowercase, so ASCII lowercasing is equivalent for ASCII keys).
    if key.bytes().any(|c| c.is_ascii_uppercase()) {
        Cow::Owned(key.to_ascii_lowercase())
    } else {
        key
    }
}

fn decode_b64(r: &JsonReader<'_>, s: &str) -> std::result::Result<Vec<u8>, String> {
    let res = if s.contains(['\r', '\n']) {
        // Go's decoder skips CR and LF.
        let cleaned: String = s.chars().filter(|&c| c != '\r' && c != '\n').collect();
        B64.decode(cleaned)
    } else {
        B64.decode(s)
    };
    res.map_err(|e| r.error(format_args!("invalid base64: {e}")))
}

fn read_id(r: &mut JsonReader<'_>) -> std::result::Result<Id, String> {
    let s = r.read_string()?;
    Id::from_name(&s).ok_or_else(|| r.error(format_args!("invalid ID {s:?}")))
}

fn read_time(r: &mut JsonReader<'_>, t: &mut GoTime) -> std::result::Result<(), String> {
    if !r.try_null()? {
        let s = r.read_string()?;
        *t = GoTime::parse(&s).map_err(|e| r.error(e))?;
    }
    Ok(())
}

fn read_uint(r: &mut JsonReader<'_>, max: u64) -> std::result::Result<Option<u64>, String> {
    if r.try_null()? {
        Ok(None)
    } else {
        r.read_uint(max).map(Some)
    }
}

fn read_string_field(r: &mut JsonReader<'_>, s: &mut String) -> std::result::Result<(), String> {
    if !r.try_null()? {
        *s = r.read_string()?.into_owned();
    }
    Ok(())
}

fn read_xattr(r: &mut JsonReader<'_>) -> std::result::Result<ExtendedAttribute, String> {
    let mut xa = ExtendedAttribute::default();
    if r.try_null()? {
        return Ok(xa);
    }
    r.begin_object()?;
    let mut first = true;
    while let Some(key) = r.next_key(&mut first)? {
        match lower_key(key).as_ref() {
            "name" => read_string_field(r, &mut xa.name)?,
            "value" => {
                xa.value = if r.try_null()? {
                    Vec::new()
                } else {
                    let s = r.read_string()?;
                    decode_b64(r, &s)?
                };
            }
            _ => r.skip_value()?,
        }
    }
    Ok(xa)
}

/// Decodes one node object at the reader's position (fast path used by tree decoding).
pub(crate) fn decode_node(r: &mut JsonReader<'_>) -> std::result::Result<Node, String> {
    let mut n = Node {
        node_type: NodeType::Other(String::new()),
        ..Node::default()
    };
    let mut quoted_name: Cow<'_, str> = Cow::Borrowed("");
    let mut link_raw: Option<Vec<u8>> = None;
    r.begin_object()?;
    let mut first = true;
    while let Some(key) = r.next_key(&mut first)? {
        let u32_max = u64::from(u32::MAX);
        match lower_key(key).as_ref() {
            "name" => {
                if !r.try_null()? {
                    quoted_name = r.read_string()?;
                }
            }
            "type" => {
                if !r.try_null()? {
                    n.node_type = NodeType::parse(&r.read_string()?);
                }
            }
            "mode" => {
                if let Some(v) = read_uint(r, u32_max)? {
                    n.mode = u32::try_from(v).unwrap_or(u32::MAX);
                }
            }
            "mtime" => read_time(r, &mut n.mtime)?,
            "atime" => read_time(r, &mut n.atime)?,
            "ctime" => read_time(r, &mut n.ctime)?,
            "uid" => {
                if let Some(v) = read_uint(r, u32_max)? {
                    n.uid = u32::try_from(v).unwrap_or(u32::MAX);
                }
            }
            "gid" => {
                if let Some(v) = read_uint(r, u32_max)? {
                    n.gid = u32::try_from(v).unwrap_or(u32::MAX);
                }
            }
            "user" => read_string_field(r, &mut n.user)?,
            "group" => read_string_field(r, &mut n.group)?,
            "inode" => n.inode = read_uint(r, u64::MAX)?.unwrap_or(n.inode),
            "device_id" => n.device_id = read_uint(r, u64::MAX)?.unwrap_or(n.device_id),
            "size" => n.size = read_uint(r, u64::MAX)?.unwrap_or(n.size),
            "links" => n.links = read_uint(r, u64::MAX)?.unwrap_or(n.links),
            "device" => n.device = read_uint(r, u64::MAX)?.unwrap_or(n.device),
            "linktarget" => {
                if !r.try_null()? {
                    n.linktarget = r.read_string()?.into_owned().into_bytes();
                }
            }
            "linktarget_raw" => {
                link_raw = if r.try_null()? {
                    None
                } else {
                    let s = r.read_string()?;
                    Some(decode_b64(r, &s)?)
                };
            }
            "extended_attributes" => {
                n.extended_attributes.clear();
                if !r.try_null()? {
                    r.begin_array()?;
                    let mut first = true;
                    while r.next_element(&mut first)? {
                        n.extended_attributes.push(read_xattr(r)?);
                    }
                }
            }
            "generic_attributes" => {
                // Go decodes into the existing map (merging); null resets it. Duplicate keys
                // are resolved after the loop (a per-key scan here was quadratic).
                if r.try_null()? {
                    n.generic_attributes.clear();
                } else {
                    r.begin_object()?;
                    let mut first = true;
                    while let Some(k) = r.next_key(&mut first)? {
                        let raw = RawJson::new(r.raw_value()?)?;
                        n.generic_attributes.push((k.into_owned(), raw));
                    }
                }
            }
            "content" => {
                n.content = if r.try_null()? {
                    None
                } else {
                    let mut ids = Vec::new();
                    r.begin_array()?;
                    let mut first = true;
                    while r.next_element(&mut first)? {
                        ids.push(read_id(r)?);
                    }
                    Some(ids)
                };
            }
            "subtree" => {
                n.subtree = if r.try_null()? {
                    None
                } else {
                    Some(read_id(r)?)
                };
            }
            "error" => read_string_field(r, &mut n.error)?,
            _ => r.skip_value()?,
        }
    }
    // Sorted by key; for a key given more than once the last value wins, as in a Go map.
    // The sort is stable, so reversing puts each key's last value first for `dedup_by`.
    n.generic_attributes.sort_by(|a, b| a.0.cmp(&b.0));
    n.generic_attributes.reverse();
    n.generic_attributes
        .dedup_by(|later, kept| later.0 == kept.0);
    n.generic_attributes.reverse();
    n.name = gojson::go_unquote(&quoted_name)?;
    if let Some(raw) = link_raw {
        n.linktarget = raw;
    }
    Ok(n)
}

#[cfg(test)]
mod tests;
