//! Metadata (ownership, extended attributes, times, mode — in restic's order) and the last
//! passes: special nodes and hard links, metadata-only files, directory metadata.

use super::files::{Action, remove_in_the_way};
use super::plan::{NodeJob, NodeKind, Plan};
use super::{Reporter, RestoreOptions, run_parallel, show};
use cairn_repo::node::{ExtendedAttribute, Node, NodeType, unix_perm_from_go};
use nix::sys::stat::{Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// Privileges and cached name lookups for ownership.
pub(crate) struct MetaCtx {
    root: bool,
    euid: u32,
    egid: u32,
    by_name: bool,
    users: Mutex<HashMap<String, Option<u32>>>,
    groups: Mutex<HashMap<String, Option<u32>>>,
}

impl MetaCtx {
    /// Context for the current process.
    pub(crate) fn new(by_name: bool) -> MetaCtx {
        let euid = nix::unistd::geteuid().as_raw();
        MetaCtx {
            root: euid == 0,
            euid,
            egid: nix::unistd::getegid().as_raw(),
            by_name,
            users: Mutex::new(HashMap::new()),
            groups: Mutex::new(HashMap::new()),
        }
    }

    /// Whether the process runs as root (can chown and mknod).
    pub(crate) fn is_root(&self) -> bool {
        self.root
    }

    /// uid and gid to restore (numeric, or looked up by name with `ownership_by_name`).
    fn owner(&self, meta: &Meta) -> (u32, u32) {
        let Some(names) = meta.names.as_deref().filter(|_| self.by_name) else {
            return (meta.uid, meta.gid);
        };
        let uid = lookup(&self.users, &names.0, |n| {
            nix::unistd::User::from_name(n)
                .ok()
                .flatten()
                .map(|u| u.uid.as_raw())
        })
        .unwrap_or(meta.uid);
        let gid = lookup(&self.groups, &names.1, |n| {
            nix::unistd::Group::from_name(n)
                .ok()
                .flatten()
                .map(|g| g.gid.as_raw())
        })
        .unwrap_or(meta.gid);
        (uid, gid)
    }
}

fn lookup(
    cache: &Mutex<HashMap<String, Option<u32>>>,
    name: &str,
    f: impl Fn(&str) -> Option<u32>,
) -> Option<u32> {
    if name.is_empty() {
        return None;
    }
    if let Some(v) = cache.lock().get(name) {
        return *v;
    }
    let v = f(name);
    cache.lock().insert(name.to_string(), v);
    v
}

/// The metadata of one node that a restore applies (a compact copy of the node's fields:
/// the plan keeps one per restored entry).
#[derive(Debug, Clone, Default)]
pub(crate) struct Meta {
    /// Go `FileMode` bits.
    pub mode: u32,
    /// Owner uid.
    pub uid: u32,
    /// Owner gid.
    pub gid: u32,
    /// Modification time: seconds and nanoseconds since the epoch.
    pub mtime: (i64, u32),
    /// Access time.
    pub atime: (i64, u32),
    /// User and group names (only kept for `ownership_by_name`).
    pub names: Option<Box<(String, String)>>,
    /// Extended attributes.
    pub xattrs: Box<[ExtendedAttribute]>,
}

impl Meta {
    /// The fields of `node` a restore needs; `names`: keep the owner names.
    pub(crate) fn from_node(node: &mut Node, names: bool) -> Meta {
        Meta {
            mode: node.mode,
            uid: node.uid,
            gid: node.gid,
            mtime: node.mtime.unix(),
            atime: node.atime.unix(),
            names: names.then(|| {
                Box::new((
                    std::mem::take(&mut node.user),
                    std::mem::take(&mut node.group),
                ))
            }),
            xattrs: std::mem::take(&mut node.extended_attributes).into_boxed_slice(),
        }
    }

    /// The modification time in nanoseconds since the epoch.
    pub(crate) fn mtime_ns(&self) -> i128 {
        i128::from(self.mtime.0) * 1_000_000_000 + i128::from(self.mtime.1)
    }
}

/// Where metadata is applied: an open file (cheaper: no path lookups) or a path (never
/// followed when it is a symlink).
#[derive(Clone, Copy)]
pub(crate) enum MetaTarget<'a> {
    /// An open regular file.
    File(&'a File),
    /// A path; `symlink` when it is a symbolic link (no chmod, `l*` calls).
    Path {
        /// Whether the path is a symlink.
        symlink: bool,
    },
}

fn timespec((s, ns): (i64, u32)) -> TimeSpec {
    TimeSpec::new(s, i64::from(ns))
}

fn xattr_unsupported(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOTSUP) | Some(libc::ENODATA))
        || e.raw_os_error() == Some(libc::EOPNOTSUPP)
}

/// Restore ownership, extended attributes, times and mode of one node (restic's order:
/// lchown, xattrs, times, chmod — chmod last because chown clears setuid/setgid). As in
/// restic, permission errors are ignored when not running as root. `existed`: the path
/// existed before, so `user.*` attributes the snapshot does not have are removed.
pub(crate) fn apply(
    t: MetaTarget<'_>,
    path: &Path,
    node: &Meta,
    existed: bool,
    ctx: &MetaCtx,
    rep: &Reporter<'_>,
    loc: &dyn Fn() -> Vec<u8>,
) {
    let mut first_err: Option<(&str, io::Error)> = None;
    let mut note = |what: &'static str, e: io::Error| {
        let perm = e.kind() == io::ErrorKind::PermissionDenied;
        if (ctx.root || !perm) && first_err.is_none() {
            first_err = Some((what, e));
        }
    };

    // Ownership.
    let (uid, gid) = ctx.owner(node);
    if ctx.root || (uid == ctx.euid && gid != ctx.egid) {
        let r = match t {
            MetaTarget::File(f) => std::os::unix::fs::fchown(f, Some(uid), Some(gid)),
            MetaTarget::Path { .. } => std::os::unix::fs::lchown(path, Some(uid), Some(gid)),
        };
        if let Err(e) = r {
            note("chown", e);
        }
    }

    // Extended attributes (problems are warnings).
    for xa in &node.xattrs {
        let r = match t {
            MetaTarget::File(f) => xattr::FileExt::set_xattr(f, &xa.name, &xa.value),
            MetaTarget::Path { .. } => xattr::set(path, &xa.name, &xa.value),
        };
        if let Err(e) = r
            && !xattr_unsupported(&e)
        {
            rep.warn(format!(
                "{}: cannot restore extended attribute {:?}: {e}",
                show(&loc()),
                xa.name
            ));
        }
    }
    if existed {
        remove_unexpected_xattrs(&t, path, node, rep, loc);
    }

    // Times.
    let (atime, mtime) = (timespec(node.atime), timespec(node.mtime));
    let r = match t {
        MetaTarget::File(f) => nix::sys::stat::futimens(f.as_raw_fd(), &atime, &mtime),
        MetaTarget::Path { .. } => {
            nix::sys::stat::utimensat(None, path, &atime, &mtime, UtimensatFlags::NoFollowSymlink)
        }
    };
    if let Err(e) = r {
        note("set times", io::Error::from(e));
    }

    // Mode (not for symlinks).
    let perm = std::fs::Permissions::from_mode(unix_perm_from_go(node.mode));
    let r = match t {
        MetaTarget::File(f) => Some(f.set_permissions(perm)),
        MetaTarget::Path { symlink: false } => Some(std::fs::set_permissions(path, perm)),
        MetaTarget::Path { symlink: true } => None,
    };
    if let Some(Err(e)) = r {
        note("chmod", e);
    }

    if let Some((what, e)) = first_err {
        rep.error(format!(
            "{}: cannot restore metadata ({what}): {e}",
            show(&loc())
        ));
    }
}

fn remove_unexpected_xattrs(
    t: &MetaTarget<'_>,
    path: &Path,
    node: &Meta,
    rep: &Reporter<'_>,
    loc: &dyn Fn() -> Vec<u8>,
) {
    let listed = match t {
        MetaTarget::File(f) => xattr::FileExt::list_xattr(*f),
        MetaTarget::Path { .. } => xattr::list(path),
    };
    let Ok(names) = listed else {
        return;
    };
    for name in names {
        let bytes = name.as_bytes();
        // Only the user namespace: security.* / system.* are managed by the system.
        if !bytes.starts_with(b"user.") || node.xattrs.iter().any(|x| x.name.as_bytes() == bytes) {
            continue;
        }
        let r = match t {
            MetaTarget::File(f) => xattr::FileExt::remove_xattr(*f, &name),
            MetaTarget::Path { .. } => xattr::remove(path, &name),
        };
        if let Err(e) = r
            && !xattr_unsupported(&e)
        {
            rep.warn(format!(
                "{}: cannot remove extended attribute {:?}: {e}",
                show(&loc()),
                name.to_string_lossy()
            ));
        }
    }
}

/// Counts from [`finish`].
#[derive(Debug, Default)]
pub(crate) struct FinishStats {
    /// Links and special nodes created.
    pub nodes_created: u64,
    /// Directories whose metadata was restored.
    pub dirs: u64,
    /// Entries deleted.
    pub deleted: u64,
}

/// Create a symlink, fifo or device node at its path (something in the way is removed first).
fn create_node(job: &NodeJob, recursive: bool) -> io::Result<()> {
    let path = &job.path;
    if job.exists {
        remove_in_the_way(path, recursive)?;
    }
    let perm = Mode::from_bits_truncate(0o600);
    match job.node_type {
        NodeType::Symlink => std::os::unix::fs::symlink(OsStr::from_bytes(&job.linktarget), path),
        NodeType::Fifo => nix::unistd::mkfifo(path, perm).map_err(io::Error::from),
        NodeType::Dev => nix::sys::stat::mknod(path, SFlag::S_IFBLK, perm, job.device as _)
            .map_err(io::Error::from),
        NodeType::CharDev => nix::sys::stat::mknod(path, SFlag::S_IFCHR, perm, job.device as _)
            .map_err(io::Error::from),
        _ => Err(io::Error::other(format!(
            "cannot create node of type {}",
            job.node_type
        ))),
    }
}

/// Last passes: links and special nodes, metadata-only files, directory metadata (children
/// before parents, after everything inside them is done).
pub(crate) fn finish(
    plan: &Plan,
    opts: &RestoreOptions,
    threads: usize,
    ctx: &MetaCtx,
    rep: &Reporter<'_>,
) -> FinishStats {
    let progress = rep.progress();
    let created = AtomicU64::new(0);
    run_parallel(threads, plan.nodes.len(), |i| {
        let Some(job) = plan.nodes.get(i) else {
            return;
        };
        let loc = &job.location;
        if opts.dry_run {
            created.fetch_add(1, Ordering::Relaxed);
            progress.files_done.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let r = match &job.kind {
            NodeKind::Special => create_node(job, opts.delete),
            NodeKind::Hardlink(first) => {
                let r = if job.exists {
                    remove_in_the_way(&job.path, opts.delete)
                } else {
                    Ok(())
                };
                r.and_then(|()| std::fs::hard_link(first, &job.path))
            }
        };
        progress.files_done.fetch_add(1, Ordering::Relaxed);
        match r {
            Ok(()) => {
                created.fetch_add(1, Ordering::Relaxed);
                let symlink = job.node_type == NodeType::Symlink;
                apply(
                    MetaTarget::Path { symlink },
                    &job.path,
                    &job.meta,
                    false,
                    ctx,
                    rep,
                    &|| loc.clone(),
                );
            }
            Err(e)
                if matches!(job.node_type, NodeType::Dev | NodeType::CharDev)
                    && !ctx.is_root()
                    && matches!(e.raw_os_error(), Some(libc::EPERM)) =>
            {
                rep.warn(format!(
                    "{}: cannot create device node (needs root): {e}",
                    show(loc)
                ));
            }
            Err(e) => rep.error(format!("{}: {e}", show(loc))),
        }
    });

    // Files whose content is already correct: metadata only.
    let meta_only: Vec<usize> = plan
        .files
        .iter()
        .enumerate()
        .filter(|(_, f)| f.action == Action::MetadataOnly)
        .map(|(i, _)| i)
        .collect();
    if !opts.dry_run {
        run_parallel(threads, meta_only.len(), |i| {
            if let Some(job) = meta_only.get(i).and_then(|&j| plan.files.get(j)) {
                apply(
                    MetaTarget::Path { symlink: false },
                    &plan.file_path(job),
                    &job.meta,
                    true,
                    ctx,
                    rep,
                    &|| plan.file_location(job),
                );
            }
        });
    }

    let mut dirs = 0;
    for d in &plan.dirs {
        if !opts.dry_run {
            apply(
                MetaTarget::Path { symlink: false },
                &d.path,
                &d.meta,
                !d.fresh,
                ctx,
                rep,
                &|| d.location.clone(),
            );
        }
        dirs += 1;
        progress.dirs_done.fetch_add(1, Ordering::Relaxed);
    }
    FinishStats {
        nodes_created: created.into_inner(),
        dirs,
        deleted: plan.deleted,
    }
}
