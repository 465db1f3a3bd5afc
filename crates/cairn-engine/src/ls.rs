//! `ls`: the nodes of a snapshot tree, optionally restricted to directories, plus restic's
//! `--long` line format and its `--json` message shapes.
//!
//! Directory arguments follow restic: each must be absolute; a node is listed when its path
//! is inside (or equal to) one of them; without `recursive` only the directory itself and
//! its direct children are listed, with it everything below. Directories leading to a
//! requested directory are walked but not listed.

use crate::select::{WalkAction, walk_tree_raw};
use crate::{EngineError, Result};
use cairn_repo::Id;
use cairn_repo::gotime::GoTime;
use cairn_repo::node::{
    MODE_CHAR_DEVICE, MODE_DEVICE, MODE_DIR, MODE_NAMED_PIPE, MODE_SOCKET, MODE_SYMLINK, Node,
    NodeType,
};
use cairn_repo::repository::Repository;
use cairn_repo::snapshot::Snapshot;
use serde::Serialize;

/// Options of [`ls`].
#[derive(Clone, Debug, Default)]
pub struct LsOptions {
    /// Absolute directories to restrict the listing to (empty = everything).
    pub dirs: Vec<String>,
    /// Also list the contents of subdirectories of `dirs`.
    pub recursive: bool,
}

/// Which restic version's JSON field set to produce.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum JsonStyle {
    /// restic 0.14: no `message_type`, no `inode` (matches the fixtures).
    #[default]
    Restic014,
    /// restic ≥ 0.17: adds `message_type` and (non-zero) `inode`.
    Modern,
}

/// Path components after Go's `filepath.Clean` of an absolute path (`/` → no components).
fn abs_components(p: &[u8]) -> Vec<&[u8]> {
    let mut out: Vec<&[u8]> = Vec::new();
    for c in p.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out
}

/// restic's `fs.HasPathPrefix(base, p)` for absolute paths: `p` is `base` or below it.
fn has_path_prefix(base: &[&[u8]], p: &[&[u8]]) -> bool {
    p.len() >= base.len() && base.iter().zip(p).all(|(a, b)| a == b)
}

/// Lists the nodes below `tree` (visited in restic's order) that `opts` selects, calling
/// `visit(path, node)` for each; paths are raw bytes like `/a/b`.
pub fn ls_raw(
    repo: &Repository,
    tree: Id,
    opts: &LsOptions,
    visit: &mut dyn FnMut(&[u8], &Node) -> Result<()>,
) -> Result<()> {
    for d in &opts.dirs {
        if !d.starts_with('/') {
            return Err(EngineError::Invalid(
                "All path filters must be absolute, starting with a forward slash '/'".into(),
            ));
        }
    }
    let dirs: Vec<Vec<&[u8]>> = opts
        .dirs
        .iter()
        .map(|d| abs_components(d.as_bytes()))
        .collect();
    walk_tree_raw(repo, tree, b"/", &mut |path, node| {
        if dirs.is_empty() {
            visit(path, node)?;
            return Ok(WalkAction::Continue);
        }
        let comps = abs_components(path);
        // Inside one of the requested directories: list it.
        if dirs.iter().any(|d| has_path_prefix(d, &comps)) {
            visit(path, node)?;
            if opts.recursive {
                return Ok(WalkAction::Continue);
            }
        }
        // On the way to a requested directory: descend.
        if dirs.iter().any(|d| has_path_prefix(&comps, d)) {
            return Ok(WalkAction::Continue);
        }
        Ok(WalkAction::SkipChildren)
    })
}

/// [`ls_raw`] with display paths (invalid UTF-8 replaced by U+FFFD, as restic prints).
pub fn ls(
    repo: &Repository,
    tree: Id,
    opts: &LsOptions,
    visit: &mut dyn FnMut(&str, &Node) -> Result<()>,
) -> Result<()> {
    ls_raw(repo, tree, opts, &mut |p, n| {
        visit(&String::from_utf8_lossy(p), n)
    })
}

/// Go's `os.FileMode.String()` of raw mode bits (e.g. `-rw-r--r--`, `drwxr-xr-x`,
/// `urwxr-xr-x` for setuid, `dtrwxrwxrwx` for a sticky directory, `Dcrw-------` for a
/// character device). This is the `permissions` field of `ls --json`.
pub fn go_mode_string(mode: u32) -> String {
    const FLAGS: &[u8; 13] = b"dalTLDpSugct?";
    const RWX: &[u8; 9] = b"rwxrwxrwx";
    let mut s = String::with_capacity(14);
    for (i, c) in FLAGS.iter().enumerate() {
        if mode & (1u32 << (31 - i)) != 0 {
            s.push(char::from(*c));
        }
    }
    if s.is_empty() {
        s.push('-');
    }
    for (i, c) in RWX.iter().enumerate() {
        if mode & (1u32 << (8 - i)) != 0 {
            s.push(char::from(*c));
        } else {
            s.push('-');
        }
    }
    s
}

/// The mode column of `ls --long` / `find --long`: restic ORs the type bits derived from the
/// node type into the stored mode before formatting it Go-style.
pub fn mode_string(node: &Node) -> String {
    let type_bits = match node.node_type {
        NodeType::Dir => MODE_DIR,
        NodeType::Symlink => MODE_SYMLINK,
        NodeType::Dev => MODE_DEVICE,
        NodeType::CharDev => MODE_DEVICE | MODE_CHAR_DEVICE,
        NodeType::Fifo => MODE_NAMED_PIPE,
        NodeType::Socket => MODE_SOCKET,
        _ => 0,
    };
    go_mode_string(type_bits | node.mode)
}

/// Go's `TimeFormat` (`2006-01-02 15:04:05`) of a time in the local time zone.
pub fn format_local_time(t: &GoTime) -> String {
    t.0.with_timezone(&chrono::Local)
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// One `ls --long` line as restic prints it:
/// `{mode} {uid:5} {gid:5} {size:6} {mtime local} {path}[ -> {target}]`.
pub fn format_long(path: &str, node: &Node) -> String {
    let target = if node.node_type == NodeType::Symlink {
        format!(" -> {}", String::from_utf8_lossy(&node.linktarget))
    } else {
        String::new()
    };
    format!(
        "{} {:5} {:5} {:6} {} {}{}",
        mode_string(node),
        node.uid,
        node.gid,
        node.size,
        format_local_time(&node.mtime),
        path,
        target
    )
}

/// The first line of `ls --json`: the snapshot's own JSON fields followed by `id`,
/// `short_id`, (`message_type`) and `struct_type: "snapshot"`.
#[derive(Clone, Debug, Serialize)]
pub struct LsSnapshotJson<'a> {
    /// The snapshot document, fields in restic's order.
    #[serde(flatten)]
    pub snapshot: &'a Snapshot,
    /// Full snapshot id.
    pub id: Id,
    /// 8-digit short id.
    pub short_id: String,
    /// `"snapshot"` in restic ≥ 0.17 ([`JsonStyle::Modern`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_type: Option<&'static str>,
    /// Always `"snapshot"`.
    pub struct_type: &'static str,
}

impl<'a> LsSnapshotJson<'a> {
    /// The snapshot line for snapshot `id`.
    pub fn new(id: Id, snapshot: &'a Snapshot, style: JsonStyle) -> Self {
        LsSnapshotJson {
            snapshot,
            id,
            short_id: id.short(),
            message_type: (style == JsonStyle::Modern).then_some("snapshot"),
            struct_type: "snapshot",
        }
    }
}

fn is_zero_u32(v: &u32) -> bool {
    *v == 0
}

/// One node line of `ls --json` (restic's field order; `size` only for files, `mode` omitted
/// when 0).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LsNodeJson {
    /// Node name (invalid UTF-8 replaced).
    pub name: String,
    /// Node type (`file`, `dir`, …).
    #[serde(rename = "type")]
    pub node_type: String,
    /// Full path in the snapshot, e.g. `/tmp/a`.
    pub path: String,
    /// Owner uid.
    pub uid: u32,
    /// Owner gid.
    pub gid: u32,
    /// Size; present for regular files only (also when 0).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Go `FileMode` bits.
    #[serde(skip_serializing_if = "is_zero_u32")]
    pub mode: u32,
    /// [`go_mode_string`] of `mode`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub permissions: String,
    /// Modification time.
    pub mtime: GoTime,
    /// Access time.
    pub atime: GoTime,
    /// Change time.
    pub ctime: GoTime,
    /// Inode ([`JsonStyle::Modern`] only, omitted when 0).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inode: Option<u64>,
    /// `"node"` in restic ≥ 0.17 ([`JsonStyle::Modern`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_type: Option<&'static str>,
    /// Always `"node"`.
    pub struct_type: &'static str,
    /// Raw name bytes (for [`LsNodeJson::to_go_json`]).
    #[serde(skip)]
    pub raw_name: Vec<u8>,
    /// Raw path bytes (for [`LsNodeJson::to_go_json`]).
    #[serde(skip)]
    pub raw_path: Vec<u8>,
}

fn push_num(out: &mut Vec<u8>, key: &str, v: u64) {
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(v.to_string().as_bytes());
}

fn push_time(out: &mut Vec<u8>, key: &str, t: &GoTime) {
    out.extend_from_slice(key.as_bytes());
    out.push(b'"');
    out.extend_from_slice(t.format().as_bytes());
    out.push(b'"');
}

impl LsNodeJson {
    /// The JSON line for `node` at the display path `path`.
    pub fn new(path: &str, node: &Node, style: JsonStyle) -> Self {
        Self::new_raw(path.as_bytes(), node, style)
    }

    /// The JSON line for `node` at the raw path `path` (as [`ls_raw`] reports it); keeps the
    /// raw bytes so that [`LsNodeJson::to_go_json`] can escape invalid UTF-8 like restic.
    pub fn new_raw(path: &[u8], node: &Node, style: JsonStyle) -> Self {
        let modern = style == JsonStyle::Modern;
        LsNodeJson {
            raw_name: node.name.clone(),
            raw_path: path.to_vec(),
            name: node.name_lossy().into_owned(),
            node_type: node.node_type.as_str().to_string(),
            path: String::from_utf8_lossy(path).into_owned(),
            uid: node.uid,
            gid: node.gid,
            size: (node.node_type == NodeType::File).then_some(node.size),
            mode: node.mode,
            permissions: go_mode_string(node.mode),
            mtime: node.mtime,
            atime: node.atime,
            ctime: node.ctime,
            inode: (modern && node.inode != 0).then_some(node.inode),
            message_type: modern.then_some("node"),
            struct_type: "node",
        }
    }

    /// The line exactly as restic (Go's `encoding/json`) writes it: `<>&` escaped, and each
    /// byte of the raw name/path that is not valid UTF-8 written as the escape `\ufffd`.
    pub fn to_go_json(&self) -> Vec<u8> {
        use cairn_repo::gojson::{write_json_bytes_lossy, write_json_string};
        let mut o = Vec::with_capacity(320);
        o.extend_from_slice(b"{\"name\":");
        write_json_bytes_lossy(&mut o, &self.raw_name);
        o.extend_from_slice(b",\"type\":");
        write_json_string(&mut o, &self.node_type);
        o.extend_from_slice(b",\"path\":");
        write_json_bytes_lossy(&mut o, &self.raw_path);
        push_num(&mut o, ",\"uid\":", u64::from(self.uid));
        push_num(&mut o, ",\"gid\":", u64::from(self.gid));
        if let Some(size) = self.size {
            push_num(&mut o, ",\"size\":", size);
        }
        if self.mode != 0 {
            push_num(&mut o, ",\"mode\":", u64::from(self.mode));
        }
        if !self.permissions.is_empty() {
            o.extend_from_slice(b",\"permissions\":");
            write_json_string(&mut o, &self.permissions);
        }
        push_time(&mut o, ",\"mtime\":", &self.mtime);
        push_time(&mut o, ",\"atime\":", &self.atime);
        push_time(&mut o, ",\"ctime\":", &self.ctime);
        if let Some(inode) = self.inode {
            push_num(&mut o, ",\"inode\":", inode);
        }
        if let Some(m) = self.message_type {
            o.extend_from_slice(b",\"message_type\":");
            write_json_string(&mut o, m);
        }
        o.extend_from_slice(b",\"struct_type\":");
        write_json_string(&mut o, self.struct_type);
        o.push(b'}');
        o
    }
}

impl LsSnapshotJson<'_> {
    /// The line exactly as restic writes it (Go string escaping).
    pub fn to_go_json(&self) -> Vec<u8> {
        // Serializing strings, numbers and ids to memory cannot fail.
        cairn_repo::gojson::to_vec_go(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_mode_strings() {
        assert_eq!(go_mode_string(420), "-rw-r--r--");
        assert_eq!(go_mode_string(2147484141), "drwxr-xr-x");
        assert_eq!(go_mode_string(2148532735), "dtrwxrwxrwx");
        assert_eq!(go_mode_string(2151678445), "dgrwxr-xr-x");
        assert_eq!(go_mode_string(8389101), "urwxr-xr-x");
        assert_eq!(go_mode_string(134218239), "Lrwxrwxrwx");
        assert_eq!(go_mode_string(33554852), "prw-r--r--");
        assert_eq!(go_mode_string(67109248), "Drw-------");
        assert_eq!(go_mode_string(69206400), "Dcrw-------");
        assert_eq!(go_mode_string(0), "----------");
        assert_eq!(go_mode_string(1 << 19 | 0o700), "?rwx------");
    }

    #[test]
    fn long_mode_adds_type_bits() {
        let mut n = Node::new("x", NodeType::Dir);
        n.mode = 0o755; // type bits missing from the stored mode
        assert_eq!(mode_string(&n), "drwxr-xr-x");
        n.node_type = NodeType::CharDev;
        n.mode = 0o600;
        assert_eq!(mode_string(&n), "Dcrw-------");
    }

    #[test]
    fn long_line() {
        let mut n = Node::new("l", NodeType::Symlink);
        n.mode = 134218239;
        n.uid = 1000;
        n.gid = 100;
        n.linktarget = b"target".to_vec();
        let line = format_long("/a/l", &n);
        assert!(line.starts_with("Lrwxrwxrwx  1000   100      0 "), "{line}");
        assert!(line.ends_with(" /a/l -> target"), "{line}");
    }

    #[test]
    fn path_prefix() {
        let a = abs_components(b"/test");
        let b = abs_components(b"/test/foo");
        let c = abs_components(b"/testx");
        assert!(has_path_prefix(&a, &b));
        assert!(has_path_prefix(&a, &a));
        assert!(!has_path_prefix(&b, &a));
        assert!(!has_path_prefix(&a, &c));
        assert!(has_path_prefix(&abs_components(b"/"), &c));
        assert_eq!(abs_components(b"/a/./b/../c/"), vec![&b"a"[..], b"c"]);
    }

    #[test]
    fn node_json_shape() {
        let mut n = Node::new(b"caf\xe9".to_vec(), NodeType::File);
        n.mode = 420;
        n.inode = 7;
        let v = serde_json::to_value(LsNodeJson::new("/caf\u{fffd}", &n, JsonStyle::Restic014))
            .unwrap();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(|k| k.as_str()).collect();
        for k in [
            "name",
            "type",
            "path",
            "uid",
            "gid",
            "size",
            "mode",
            "permissions",
        ] {
            assert!(keys.contains(&k), "{k}");
        }
        assert!(!keys.contains(&"inode") && !keys.contains(&"message_type"));
        assert_eq!(v["name"], "caf\u{fffd}");
        assert_eq!(v["size"], 0);
        let m = serde_json::to_value(LsNodeJson::new("/x", &n, JsonStyle::Modern)).unwrap();
        assert_eq!(m["inode"], 7);
        assert_eq!(m["message_type"], "node");
        let d = Node::new("d", NodeType::Dir);
        let v = serde_json::to_value(LsNodeJson::new("/d", &d, JsonStyle::Restic014)).unwrap();
        assert!(v.get("size").is_none() && v.get("mode").is_none());
    }
}
