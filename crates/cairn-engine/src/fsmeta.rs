//! Reading file system metadata into restic nodes (and the uid/gid name caches).

use cairn_repo::gotime::GoTime;
use cairn_repo::node::{ExtendedAttribute, Node, NodeType, go_mode_from_unix};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::Metadata;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

/// Cached uid → user name and gid → group name lookups (NSS calls are slow).
#[derive(Default)]
pub struct NameCache {
    users: Mutex<HashMap<u32, String>>,
    groups: Mutex<HashMap<u32, String>>,
}

impl NameCache {
    /// User name of a uid, or "" when unknown.
    pub fn user(&self, uid: u32) -> String {
        if let Some(n) = self.users.lock().get(&uid) {
            return n.clone();
        }
        let name = nix::unistd::User::from_uid(uid.into())
            .ok()
            .flatten()
            .map(|u| u.name)
            .unwrap_or_default();
        self.users.lock().insert(uid, name.clone());
        name
    }

    /// Group name of a gid, or "" when unknown.
    pub fn group(&self, gid: u32) -> String {
        if let Some(n) = self.groups.lock().get(&gid) {
            return n.clone();
        }
        let name = nix::unistd::Group::from_gid(gid.into())
            .ok()
            .flatten()
            .map(|g| g.name)
            .unwrap_or_default();
        self.groups.lock().insert(gid, name.clone());
        name
    }

    /// uid of a user name, if it exists on this system.
    pub fn uid_of(&self, name: &str) -> Option<u32> {
        nix::unistd::User::from_name(name)
            .ok()
            .flatten()
            .map(|u| u.uid.as_raw())
    }

    /// gid of a group name, if it exists on this system.
    pub fn gid_of(&self, name: &str) -> Option<u32> {
        nix::unistd::Group::from_name(name)
            .ok()
            .flatten()
            .map(|g| g.gid.as_raw())
    }
}

/// Node type of a file type. Sockets are recorded (restic skips them; both tools' restores
/// leave them out), so a snapshot lists everything that was there.
pub fn node_type_of(ft: &std::fs::FileType) -> Option<NodeType> {
    Some(if ft.is_dir() {
        NodeType::Dir
    } else if ft.is_symlink() {
        NodeType::Symlink
    } else if ft.is_file() {
        NodeType::File
    } else if ft.is_fifo() {
        NodeType::Fifo
    } else if ft.is_char_device() {
        NodeType::CharDev
    } else if ft.is_block_device() {
        NodeType::Dev
    } else if ft.is_socket() {
        NodeType::Socket
    } else {
        NodeType::Irregular
    })
}

/// Time of (seconds, nanoseconds).
pub fn time_of(secs: i64, nanos: i64) -> GoTime {
    GoTime::from_unix(secs, u32::try_from(nanos).unwrap_or(0))
}

/// Build a node (without content/subtree) from `lstat` metadata, like restic's `NodeFromFileInfo`,
/// except extended attributes: the caller reads them with [`read_xattrs`] or, for a file it
/// opens anyway, [`read_file_xattrs`]. Errors reading a symlink target are recorded in the
/// returned warning list.
pub fn node_from_metadata(
    path: &Path,
    name: &OsStr,
    meta: &Metadata,
    names: &NameCache,
    with_atime: bool,
    warnings: &mut Vec<String>,
) -> Option<Node> {
    let node_type = node_type_of(&meta.file_type())?;
    let mtime = time_of(meta.mtime(), meta.mtime_nsec());
    let mut node = Node {
        name: name.as_bytes().to_vec(),
        mode: go_mode_from_unix(meta.mode()),
        mtime,
        atime: if with_atime {
            time_of(meta.atime(), meta.atime_nsec())
        } else {
            mtime
        },
        ctime: time_of(meta.ctime(), meta.ctime_nsec()),
        uid: meta.uid(),
        gid: meta.gid(),
        user: names.user(meta.uid()),
        group: names.group(meta.gid()),
        inode: meta.ino(),
        device_id: meta.dev(),
        ..Node::default()
    };
    match node_type {
        NodeType::File => {
            node.size = meta.size();
            node.links = meta.nlink();
            node.content = Some(Vec::new());
        }
        NodeType::Symlink => {
            node.links = meta.nlink();
            match std::fs::read_link(path) {
                Ok(t) => node.linktarget = t.as_os_str().as_bytes().to_vec(),
                Err(e) => warnings.push(format!("{}: reading link target: {e}", path.display())),
            }
        }
        NodeType::Dev | NodeType::CharDev => {
            node.links = meta.nlink();
            node.device = meta.rdev();
        }
        _ => {}
    }
    node.node_type = node_type;
    Some(node)
}

/// Extended attributes of `path` (not followed if a symlink), sorted by name; errors other
/// than "not supported" are recorded in `warnings`.
pub fn read_xattrs(path: &Path, warnings: &mut Vec<String>) -> Vec<ExtendedAttribute> {
    collect_xattrs(path, xattr::list(path), |n| xattr::get(path, n), warnings)
}

/// Extended attributes of an open file (no path lookup); `path` names it in warnings.
pub fn read_file_xattrs(
    file: &std::fs::File,
    path: &Path,
    warnings: &mut Vec<String>,
) -> Vec<ExtendedAttribute> {
    use xattr::FileExt;
    collect_xattrs(path, file.list_xattr(), |n| file.get_xattr(n), warnings)
}

fn collect_xattrs(
    path: &Path,
    names: std::io::Result<xattr::XAttrs>,
    get: impl Fn(&OsStr) -> std::io::Result<Option<Vec<u8>>>,
    warnings: &mut Vec<String>,
) -> Vec<ExtendedAttribute> {
    let mut out = Vec::new();
    let names = match names {
        Ok(n) => n,
        Err(e) if is_unsupported(&e) => return out,
        Err(e) => {
            warnings.push(format!(
                "{}: listing extended attributes: {e}",
                path.display()
            ));
            return out;
        }
    };
    for n in names {
        match get(&n) {
            Ok(Some(v)) => out.push(ExtendedAttribute {
                name: n.to_string_lossy().into_owned(),
                value: v,
            }),
            Ok(None) => {}
            Err(e) => warnings.push(format!(
                "{}: reading extended attribute {}: {e}",
                path.display(),
                n.to_string_lossy()
            )),
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

fn is_unsupported(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENOTSUP) | Some(libc::ENOSYS) | Some(libc::EPERM) | Some(libc::EACCES)
    )
}
