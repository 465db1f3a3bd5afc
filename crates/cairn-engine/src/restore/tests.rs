//! Restore tests against real (temporary) repositories: contents, node types, metadata,
//! names, sparse files, filters.

use super::*;
use cairn_repo::BlobType;
use cairn_repo::gotime::GoTime;
use cairn_repo::key::KdfParams;
use cairn_repo::node::{
    ExtendedAttribute, MODE_DIR, MODE_NAMED_PIPE, MODE_SETGID, MODE_SETUID, MODE_STICKY,
    MODE_SYMLINK, Node, NodeType,
};
use cairn_repo::repository::InitOptions;
use cairn_repo::tree::Tree;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;

pub(super) const T_FILE: i64 = 1_614_834_367_123_456_789;
pub(super) const T_DIR: i64 = 1_609_459_200_000_000_001;

pub(super) fn new_repo() -> (tempfile::TempDir, Repository) {
    let dir = tempfile::tempdir().unwrap();
    let be = Arc::new(cairn_backend::LocalBackend::new(dir.path().join("repo")));
    let repo = Repository::init(
        be,
        b"pw",
        InitOptions {
            kdf: KdfParams::testing(),
            ..Default::default()
        },
    )
    .unwrap();
    (dir, repo)
}

pub(super) fn t(ns: i64) -> GoTime {
    GoTime::from_unix_with_offset(
        ns.div_euclid(1_000_000_000),
        ns.rem_euclid(1_000_000_000) as u32,
        3600,
    )
}

fn ids() -> (u32, u32) {
    (
        nix::unistd::geteuid().as_raw(),
        nix::unistd::getegid().as_raw(),
    )
}

pub(super) fn base(name: &[u8], ty: NodeType, mode: u32) -> Node {
    let mut n = Node::new(name.to_vec(), ty);
    n.mode = mode;
    n.mtime = t(T_FILE);
    n.atime = t(T_FILE - 1_000_000_007);
    n.ctime = t(T_FILE);
    (n.uid, n.gid) = ids();
    n
}

/// A file node whose content is `chunks` (each saved as one blob).
pub(super) fn file(repo: &Repository, name: &[u8], chunks: &[&[u8]]) -> Node {
    let mut n = base(name, NodeType::File, 0o644);
    let mut content = Vec::new();
    for c in chunks {
        content.push(repo.save_blob(BlobType::Data, c).unwrap().0);
        n.size += c.len() as u64;
    }
    n.content = Some(content);
    n.links = 1;
    n
}

pub(super) fn tree(repo: &Repository, mut nodes: Vec<Node>) -> Id {
    nodes.sort_by(|a, b| a.name.cmp(&b.name));
    let t = Tree { nodes };
    repo.save_blob(BlobType::Tree, &t.encode().unwrap())
        .unwrap()
        .0
}

pub(super) fn dir(repo: &Repository, name: &[u8], children: Vec<Node>) -> Node {
    let mut n = base(name, NodeType::Dir, MODE_DIR | 0o755);
    n.mtime = t(T_DIR);
    n.atime = t(T_DIR);
    n.subtree = Some(tree(repo, children));
    n
}

pub(super) fn symlink(name: &[u8], target: &[u8]) -> Node {
    let mut n = base(name, NodeType::Symlink, MODE_SYMLINK | 0o777);
    n.linktarget = target.to_vec();
    n.links = 1;
    n
}

pub(super) fn opts(target: &Path) -> RestoreOptions {
    RestoreOptions {
        target: target.to_path_buf(),
        ..Default::default()
    }
}

pub(super) fn run(repo: &Repository, root: Id, o: &RestoreOptions) -> RestoreResult {
    let progress = RestoreProgress::new();
    let res = restore(repo, root, o, &progress, &|_| {}).unwrap();
    let p = progress.snapshot();
    assert!(p.planned);
    assert_eq!(p.files_done, p.total_files, "{p:?}");
    res
}

pub(super) fn mtime_ns(p: &Path) -> i128 {
    let m = std::fs::symlink_metadata(p).unwrap();
    i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec())
}

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) | 1)
        .collect()
}

#[test]
fn contents_modes_and_times() {
    let (tmp, repo) = new_repo();
    let a = pattern(70_000, 1);
    let b = pattern(50_001, 2);
    let c = b"tail".to_vec();
    let mut multi = file(&repo, b"multi.bin", &[&a, &b, &a, &c]);
    multi.mode = 0o600;
    let shared = file(&repo, b"shared.bin", &[&b]);
    let empty = file(&repo, b"empty.txt", &[]);
    let mut setuid = file(&repo, b"setuid-exec", &[b"#!/bin/sh\necho hi\n"]);
    setuid.mode = MODE_SETUID | 0o755;
    let mut setgid_dir = dir(&repo, b"setgid-dir", vec![]);
    setgid_dir.mode = MODE_DIR | MODE_SETGID | 0o755;
    let mut sticky = dir(&repo, b"sticky", vec![]);
    sticky.mode = MODE_DIR | MODE_STICKY | 0o777;
    let deep = dir(
        &repo,
        b"a",
        vec![dir(&repo, b"b", vec![file(&repo, b"deep.txt", &[b"deep"])])],
    );
    let empty_dir = dir(&repo, b"empty-dir", vec![]);
    let root = tree(
        &repo,
        vec![
            multi, shared, empty, setuid, setgid_dir, sticky, deep, empty_dir,
        ],
    );
    repo.flush().unwrap();

    let target = tmp.path().join("out");
    let res = run(&repo, root, &opts(&target));
    assert_eq!(res.errors, 0, "{:?}", res.warnings);
    assert_eq!(res.files_restored, 5);
    assert_eq!(res.dirs, 5);
    // atime first: reading the files below may update it.
    for f in ["multi.bin", "empty.txt", "setuid-exec", "a/b/deep.txt"] {
        let m = std::fs::metadata(target.join(f)).unwrap();
        let atime = i128::from(m.atime()) * 1_000_000_000 + i128::from(m.atime_nsec());
        assert_eq!(atime, i128::from(T_FILE - 1_000_000_007), "{f} atime");
    }
    let mut want = a.clone();
    want.extend_from_slice(&b);
    want.extend_from_slice(&a);
    want.extend_from_slice(&c);
    assert_eq!(std::fs::read(target.join("multi.bin")).unwrap(), want);
    assert_eq!(std::fs::read(target.join("shared.bin")).unwrap(), b);
    assert_eq!(std::fs::read(target.join("empty.txt")).unwrap(), b"");
    assert_eq!(std::fs::read(target.join("a/b/deep.txt")).unwrap(), b"deep");
    assert_eq!(res.bytes_written, (want.len() + b.len() + 4 + 18) as u64);

    assert_eq!(mode(&target.join("multi.bin")), 0o600);
    assert_eq!(mode(&target.join("empty.txt")), 0o644);
    assert_eq!(mode(&target.join("setuid-exec")), 0o4755);
    assert_eq!(mode(&target.join("setgid-dir")), 0o2755);
    assert_eq!(mode(&target.join("sticky")), 0o1777);
    assert_eq!(mode(&target.join("a/b")), 0o755);
    assert!(target.join("empty-dir").is_dir());

    let want_m = i128::from(T_FILE);
    let want_d = i128::from(T_DIR);
    for f in ["multi.bin", "empty.txt", "setuid-exec", "a/b/deep.txt"] {
        assert_eq!(mtime_ns(&target.join(f)), want_m, "{f}");
    }
    for d in ["a", "a/b", "empty-dir", "setgid-dir"] {
        assert_eq!(mtime_ns(&target.join(d)), want_d, "{d}");
    }
}

#[test]
fn symlinks_fifos_and_raw_names() {
    let (tmp, repo) = new_repo();
    let link = symlink(b"link-\xfe", b"/nonexistent/\xff\xfetarget");
    let rel = symlink(b"rel", b"sub\xe9/file");
    let mut fifo = base(b"fifo", NodeType::Fifo, MODE_NAMED_PIPE | 0o640);
    fifo.mtime = t(T_FILE + 5);
    let latin = file(&repo, b"caf\xe9.txt", &[b"latin1"]);
    let odd = file(&repo, b"quote\"and\\back\tslash", &[b"odd"]);
    let sub = dir(&repo, b"sub\xe9", vec![file(&repo, b"file", &[b"inner"])]);
    let root = tree(&repo, vec![link, rel, fifo, latin, odd, sub]);
    repo.flush().unwrap();

    let target = tmp.path().join("out");
    let res = run(&repo, root, &opts(&target));
    assert_eq!(res.errors, 0, "{:?}", res.warnings);
    let p = |n: &[u8]| target.join(std::ffi::OsStr::from_bytes(n));
    let lt = std::fs::read_link(p(b"link-\xfe")).unwrap();
    assert_eq!(lt.as_os_str().as_bytes(), b"/nonexistent/\xff\xfetarget");
    assert_eq!(mtime_ns(&p(b"link-\xfe")), i128::from(T_FILE));
    // The relative link resolves to the restored file.
    assert_eq!(std::fs::read(p(b"rel")).unwrap(), b"inner");
    let fm = std::fs::symlink_metadata(p(b"fifo")).unwrap();
    assert!(fm.file_type().is_fifo());
    assert_eq!(fm.permissions().mode() & 0o7777, 0o640);
    assert_eq!(mtime_ns(&p(b"fifo")), i128::from(T_FILE + 5));
    assert_eq!(std::fs::read(p(b"caf\xe9.txt")).unwrap(), b"latin1");
    assert_eq!(
        std::fs::read(p(b"quote\"and\\back\tslash")).unwrap(),
        b"odd"
    );
    assert_eq!(std::fs::read(p(b"sub\xe9/file")).unwrap(), b"inner");
}

#[test]
fn hardlinks_are_linked_not_copied() {
    let (tmp, repo) = new_repo();
    let mut nodes = Vec::new();
    for name in [&b"hl-a"[..], b"hl-b"] {
        let mut n = file(&repo, name, &[b"same content"]);
        (n.inode, n.device_id, n.links) = (42, 7, 3);
        nodes.push(n);
    }
    let mut third = file(&repo, b"hl-c", &[b"same content"]);
    (third.inode, third.device_id, third.links) = (42, 7, 3);
    // Same inode on another device: a different file.
    let mut other = file(&repo, b"other", &[b"same content"]);
    (other.inode, other.device_id, other.links) = (42, 8, 2);
    nodes.push(dir(&repo, b"d", vec![third]));
    nodes.push(other);
    let root = tree(&repo, nodes);
    repo.flush().unwrap();

    let target = tmp.path().join("out");
    let res = run(&repo, root, &opts(&target));
    assert_eq!(res.errors, 0, "{:?}", res.warnings);
    let ino = |p: &str| std::fs::metadata(target.join(p)).unwrap().ino();
    assert_eq!(ino("hl-a"), ino("hl-b"));
    assert_eq!(ino("hl-a"), ino("d/hl-c"));
    assert_ne!(ino("hl-a"), ino("other"));
    assert_eq!(std::fs::metadata(target.join("hl-a")).unwrap().nlink(), 3);
    assert_eq!(
        std::fs::read(target.join("d/hl-c")).unwrap(),
        b"same content"
    );
    // Content was written once per inode.
    assert_eq!(res.bytes_written, 2 * 12);
}

#[test]
fn devices_need_root() {
    let (tmp, repo) = new_repo();
    let mut chr = base(
        b"chardev-null",
        NodeType::CharDev,
        (1 << 26) | (1 << 21) | 0o600,
    );
    chr.device = 259;
    let root = tree(&repo, vec![chr]);
    repo.flush().unwrap();
    let target = tmp.path().join("out");
    let res = run(&repo, root, &opts(&target));
    let p = target.join("chardev-null");
    if nix::unistd::geteuid().is_root() {
        assert_eq!(res.errors, 0, "{:?}", res.warnings);
        let m = std::fs::symlink_metadata(&p).unwrap();
        assert!(m.file_type().is_char_device());
        assert_eq!(m.rdev(), 259);
        assert_eq!(mtime_ns(&p), i128::from(T_FILE));
    } else {
        assert_eq!(res.errors, 0);
        assert!(res.warnings.iter().any(|w| w.contains("chardev-null")));
    }
}

#[test]
fn ownership_and_setuid_as_root() {
    if !nix::unistd::geteuid().is_root() {
        return;
    }
    let (tmp, repo) = new_repo();
    let mut f = file(&repo, b"foreign", &[b"x"]);
    (f.uid, f.gid) = (12345, 54321);
    f.mode = MODE_SETUID | MODE_SETGID | 0o755;
    let mut l = symlink(b"link", b"foreign");
    (l.uid, l.gid) = (23456, 65432);
    let mut d = dir(&repo, b"d", vec![]);
    (d.uid, d.gid) = (1111, 2222);
    let root = tree(&repo, vec![f, l, d]);
    repo.flush().unwrap();
    let target = tmp.path().join("out");
    let res = run(&repo, root, &opts(&target));
    assert_eq!(res.errors, 0, "{:?}", res.warnings);
    let m = std::fs::symlink_metadata(target.join("foreign")).unwrap();
    assert_eq!((m.uid(), m.gid()), (12345, 54321));
    assert_eq!(m.permissions().mode() & 0o7777, 0o6755);
    let m = std::fs::symlink_metadata(target.join("link")).unwrap();
    assert_eq!((m.uid(), m.gid()), (23456, 65432));
    let m = std::fs::symlink_metadata(target.join("d")).unwrap();
    assert_eq!((m.uid(), m.gid()), (1111, 2222));
}

#[test]
fn extended_attributes() {
    let (tmp, repo) = new_repo();
    let probe = tmp.path().join("probe");
    std::fs::write(&probe, b"").unwrap();
    if xattr::set(&probe, "user.probe", b"1").is_err() {
        return; // file system without user xattrs
    }
    let mut f = file(&repo, b"with-xattr.txt", &[b"xattr content"]);
    f.extended_attributes = vec![ExtendedAttribute {
        name: "user.fixture".into(),
        value: b"xattr-value-\x00\xff".to_vec(),
    }];
    let mut d = dir(&repo, b"d", vec![]);
    d.extended_attributes = vec![ExtendedAttribute {
        name: "user.dir".into(),
        value: b"dv".to_vec(),
    }];
    let root = tree(&repo, vec![f, d]);
    repo.flush().unwrap();
    let target = tmp.path().join("out");
    let res = run(&repo, root, &opts(&target));
    assert_eq!(res.errors, 0, "{:?}", res.warnings);
    let v = xattr::get(target.join("with-xattr.txt"), "user.fixture").unwrap();
    assert_eq!(v.as_deref(), Some(&b"xattr-value-\x00\xff"[..]));
    let v = xattr::get(target.join("d"), "user.dir").unwrap();
    assert_eq!(v.as_deref(), Some(&b"dv"[..]));

    // Restoring over it again removes user attributes the snapshot does not have.
    xattr::set(target.join("with-xattr.txt"), "user.stale", b"x").unwrap();
    let res = run(&repo, root, &opts(&target));
    assert_eq!(res.errors, 0, "{:?}", res.warnings);
    assert!(
        xattr::get(target.join("with-xattr.txt"), "user.stale")
            .unwrap()
            .is_none()
    );
}

#[test]
fn sparse_files_leave_holes() {
    let (tmp, repo) = new_repo();
    let zeros = vec![0u8; 1 << 20];
    let data = pattern(10_000, 3);
    // Zero runs inside a blob too: 8 KiB of zeros between data.
    let mut mixed = pattern(5000, 4);
    mixed.extend_from_slice(&[0u8; 3 * 4096]);
    mixed.extend_from_slice(&pattern(100, 5));
    let f = file(
        &repo,
        b"sparse.bin",
        &[&zeros, &data, &zeros, &mixed, &zeros],
    );
    let root = tree(&repo, vec![f]);
    repo.flush().unwrap();
    let mut want = zeros.clone();
    want.extend_from_slice(&data);
    want.extend_from_slice(&zeros);
    want.extend_from_slice(&mixed);
    want.extend_from_slice(&zeros);

    let dense = tmp.path().join("dense");
    run(&repo, root, &opts(&dense));
    let sparse = tmp.path().join("sparse");
    let mut o = opts(&sparse);
    o.sparse = true;
    o.verify = true;
    let res = run(&repo, root, &o);
    assert_eq!(res.errors, 0, "{:?}", res.warnings);
    assert!(res.verify_errors.is_empty());
    for p in [&dense, &sparse] {
        assert_eq!(std::fs::read(p.join("sparse.bin")).unwrap(), want);
    }
    let blocks = |p: &Path| std::fs::metadata(p.join("sparse.bin")).unwrap().blocks() * 512;
    let size = want.len() as u64;
    assert!(
        blocks(&sparse) < size / 4,
        "sparse: {} of {size}",
        blocks(&sparse)
    );
    assert!(
        blocks(&dense) >= size - 4096,
        "dense: {} of {size}",
        blocks(&dense)
    );
}

#[test]
fn nonzero_runs_align_to_blocks() {
    use super::files::nonzero_runs;
    assert!(nonzero_runs(&[0u8; 10_000], 123).is_empty());
    let mut d = vec![0u8; 3 * 4096];
    d[5000] = 1;
    // Block [4096, 8192) of the file is the only non-zero one.
    assert_eq!(nonzero_runs(&d, 0), vec![(4096, 8192)]);
    // Unaligned start: the data starts at file offset 100.
    assert_eq!(nonzero_runs(&d, 100), vec![(3996, 8092)]);
    d[0] = 1;
    d[8192] = 1;
    assert_eq!(nonzero_runs(&d, 0), vec![(0, 3 * 4096)]);
}

#[test]
fn reads_are_coalesced_and_split() {
    use super::fetch::plan_reads;
    let mib = 1u64 << 20;
    // Adjacent and close blobs share a read; a gap over 1 MiB starts a new one.
    let ext = [
        (0, 100),
        (100, 300),
        (400, 500),
        (500 + mib + 1, 600 + mib + 1),
    ];
    assert_eq!(
        plan_reads(&ext),
        vec![(0..3, 0, 500), (3..4, 500 + mib + 1, 600 + mib + 1)]
    );
    // A gap of exactly 1 MiB is still read through.
    assert_eq!(plan_reads(&[(0, 10), (10 + mib, 20 + mib)]).len(), 1);
    // Reads stay within MAX_RANGE (2 MiB); an oversized blob gets its own read.
    let max = super::fetch::MAX_RANGE;
    assert_eq!(max, 2 * mib);
    let ext: Vec<(u64, u64)> = (0..40).map(|i| (i * mib, (i + 1) * mib)).collect();
    let reads = plan_reads(&ext);
    assert_eq!(reads.len(), 20);
    assert!(reads.iter().all(|(_, s, e)| e - s <= max));
    assert_eq!(reads.iter().map(|(r, _, _)| r.len()).sum::<usize>(), 40);
    assert_eq!(
        plan_reads(&[(5, 5 + 20 * mib)]),
        vec![(0..1, 5, 5 + 20 * mib)]
    );
    // A blob that would cross the limit starts the next read.
    let half = mib / 2;
    let ext = [(0, 3 * half), (3 * half, 5 * half), (5 * half, 6 * half)];
    assert_eq!(
        plan_reads(&ext),
        vec![(0..1, 0, 3 * half), (1..3, 3 * half, 6 * half)]
    );
    assert!(plan_reads(&[]).is_empty());
}

#[test]
fn reads_are_dealt_out_from_separate_parts() {
    use super::fetch::interleave;
    assert_eq!(interleave(5, 2), [0, 3, 1, 4, 2]);
    assert_eq!(interleave(6, 3), [0, 2, 4, 1, 3, 5]);
    assert_eq!(interleave(3, 8), [0, 1, 2]);
    assert_eq!(interleave(4, 1), [0, 1, 2, 3]);
    assert!(interleave(0, 2).is_empty());
    let mut all = interleave(1001, 4);
    all.sort_unstable();
    assert_eq!(all, (0..1001).collect::<Vec<_>>());
}

fn filter_tree(repo: &Repository) -> Id {
    let ssh = dir(
        repo,
        b"ssh",
        vec![
            file(repo, b"sshd_config", &[b"sshd"]),
            file(repo, b"ssh_config", &[b"ssh"]),
        ],
    );
    let etc = dir(repo, b"etc", vec![ssh, file(repo, b"HOSTS", &[b"hosts"])]);
    let usr = dir(repo, b"usr", vec![file(repo, b"x.conf", &[b"x"])]);
    tree(repo, vec![etc, usr, file(repo, b"top.conf", &[b"t"])])
}

fn listing(root: &Path) -> Vec<String> {
    fn walk(base: &Path, p: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(p).unwrap() {
            let e = e.unwrap();
            let rel = e
                .path()
                .strip_prefix(base)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            out.push(rel);
            if e.file_type().unwrap().is_dir() {
                walk(base, &e.path(), out);
            }
        }
    }
    let mut out = Vec::new();
    if root.exists() {
        walk(root, root, &mut out);
    }
    out.sort();
    out
}

#[test]
fn include_and_exclude_select_paths() {
    let (tmp, repo) = new_repo();
    let root = filter_tree(&repo);
    repo.flush().unwrap();

    let t1 = tmp.path().join("inc");
    let mut o = opts(&t1);
    o.includes = vec!["/etc/ssh/sshd_config".into()];
    let res = run(&repo, root, &o);
    assert_eq!(res.errors, 0);
    assert_eq!(listing(&t1), ["etc", "etc/ssh", "etc/ssh/sshd_config"]);
    // Parent directories of selected files get their metadata.
    assert_eq!(mtime_ns(&t1.join("etc/ssh")), i128::from(T_DIR));

    let t2 = tmp.path().join("exc");
    let mut o = opts(&t2);
    o.excludes = vec!["*.conf".into(), "/etc/ssh".into()];
    run(&repo, root, &o);
    assert_eq!(listing(&t2), ["etc", "etc/HOSTS", "usr"]);

    let t3 = tmp.path().join("iexc");
    let mut o = opts(&t3);
    o.iexcludes = vec!["hosts".into(), "/USR".into(), "SSH".into()];
    run(&repo, root, &o);
    assert_eq!(listing(&t3), ["etc", "top.conf"]);

    let t4 = tmp.path().join("iinc");
    let mut o = opts(&t4);
    o.iincludes = vec!["*.CONF".into()];
    run(&repo, root, &o);
    assert_eq!(listing(&t4), ["top.conf", "usr", "usr/x.conf"]);

    let mut o = opts(&tmp.path().join("bad"));
    o.includes = vec!["a".into()];
    o.excludes = vec!["b".into()];
    let p = RestoreProgress::new();
    assert!(matches!(
        restore(&repo, root, &o, &p, &|_| {}),
        Err(EngineError::Invalid(_))
    ));
}

#[test]
fn dry_run_writes_nothing() {
    let (tmp, repo) = new_repo();
    let root = filter_tree(&repo);
    repo.flush().unwrap();
    let target = tmp.path().join("out");
    let mut o = opts(&target);
    o.dry_run = true;
    let res = run(&repo, root, &o);
    assert!(!target.exists());
    assert_eq!(res.files_restored, 5);
    assert_eq!(res.dirs, 3);
    assert_eq!(res.bytes_written, 4 + 3 + 5 + 1 + 1);
}

#[test]
fn deep_trees_from_a_small_stack() {
    let (tmp, repo) = new_repo();
    let mut node = file(&repo, b"leaf.txt", &[b"at the bottom"]);
    for _ in 0..1000 {
        node = dir(&repo, b"d", vec![node]);
    }
    let root = tree(&repo, vec![node]);
    repo.flush().unwrap();
    let target = tmp.path().join("out");
    // Called from a thread with a small stack: the walk runs on its own.
    let res = std::thread::Builder::new()
        .stack_size(256 << 10)
        .spawn({
            let target = target.clone();
            move || {
                let p = RestoreProgress::new();
                restore(&repo, root, &opts(&target), &p, &|_| {}).unwrap()
            }
        })
        .unwrap()
        .join()
        .unwrap();
    assert_eq!((res.errors, res.dirs, res.files_restored), (0, 1000, 1));
    let leaf = target.join("d/".repeat(1000)).join("leaf.txt");
    assert_eq!(std::fs::read(&leaf).unwrap(), b"at the bottom");
    assert_eq!(mtime_ns(&target.join("d")), i128::from(T_DIR));
}
