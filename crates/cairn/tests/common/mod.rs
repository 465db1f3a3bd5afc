//! Helpers shared by the end-to-end and interop tests: running the built binary and the real
//! restic, building source trees, and comparing restored trees with their source.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const PASSWORD: &str = "test-password";

/// The shared fixtures folder (`../shared` beside the checkout).
pub fn shared() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared")
}

/// Extract the fixture repository `restic-0.14.0-<name>.tar.gz` (`repo-v1`, `repo-v2`,
/// `repo-forget`) into `into`, made writable; returns its path (`into/<name>`).
pub fn extract_fixture(name: &str, into: &Path) -> PathBuf {
    let archive = shared()
        .join("fixtures")
        .join(format!("restic-0.14.0-{name}.tar.gz"));
    assert!(archive.exists(), "missing fixture {}", archive.display());
    ok(Command::new("tar")
        .arg("xzf")
        .arg(&archive)
        .arg("-C")
        .arg(into));
    let repo = into.join(name);
    ok(Command::new("chmod").args(["-R", "u+w"]).arg(&repo));
    repo
}

/// The cairn binary under test.
pub fn cairn() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cairn"));
    c.env("RESTIC_PASSWORD", PASSWORD)
        .env("CAIRN_TEST_KDF", "1")
        .env_remove("RESTIC_REPOSITORY")
        .env_remove("CAIRN_REPOSITORY")
        .env_remove("CAIRN_PASSWORD")
        .env("XDG_DATA_HOME", "/nonexistent-xdg-data")
        .env("XDG_CONFIG_HOME", "/nonexistent-xdg-config");
    c
}

/// True when CI demands that external programs exist.
pub fn external_required() -> bool {
    std::env::var("CAIRN_REQUIRE_EXTERNAL").is_ok_and(|v| v == "1")
}

/// Path of an external program, or `None` (test skipped) on a developer machine without it.
/// Panics in CI (`CAIRN_REQUIRE_EXTERNAL=1`) when it is missing.
pub fn external(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(name))
            .find(|f| f.is_file())
    });
    if found.is_none() {
        assert!(
            !external_required(),
            "{name} is required (CAIRN_REQUIRE_EXTERNAL=1) but not installed"
        );
        eprintln!("SKIPPED: {name} is not installed");
    }
    found
}

/// The real restic, with the test password and a private cache.
pub fn restic(bin: &Path, cache: &Path) -> Command {
    let mut c = Command::new(bin);
    c.env("RESTIC_PASSWORD", PASSWORD)
        .env("RESTIC_CACHE_DIR", cache)
        .env_remove("RESTIC_REPOSITORY");
    c
}

/// Run a command; panic with its output unless it exits with `code`.
pub fn expect_code(c: &mut Command, code: i32) -> Output {
    let out = c.output().expect("spawn");
    assert_eq!(
        out.status.code(),
        Some(code),
        "{c:?} exited {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Run a command that must succeed.
pub fn ok(c: &mut Command) -> Output {
    expect_code(c, 0)
}

/// Build the fixtures' source tree (every node type) in `dir` (which must not exist).
pub fn make_source_tree(dir: &Path) {
    let script = shared().join("fixtures/make-source-tree.py");
    assert!(script.exists(), "missing {}", script.display());
    ok(Command::new("python3").arg(&script).arg(dir));
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// One entry's comparable metadata.
#[derive(Debug, PartialEq)]
struct Entry {
    kind: &'static str,
    perm: u32,
    uid: u32,
    gid: u32,
    mtime: (i64, i64),
    size: u64,
    sha256: String,
    link: Vec<u8>,
    rdev: u64,
    xattrs: BTreeMap<String, Vec<u8>>,
}

fn kind_of(ft: &std::fs::FileType) -> &'static str {
    if ft.is_dir() {
        "dir"
    } else if ft.is_symlink() {
        "symlink"
    } else if ft.is_file() {
        "file"
    } else if ft.is_fifo() {
        "fifo"
    } else if ft.is_char_device() {
        "chardev"
    } else if ft.is_block_device() {
        "blockdev"
    } else if ft.is_socket() {
        "socket"
    } else {
        "other"
    }
}

fn sha256_file(p: &Path) -> String {
    use sha2::{Digest, Sha256};
    let data = std::fs::read(p).unwrap_or_default();
    hex::encode(Sha256::digest(&data))
}

fn entry(p: &Path, m: &std::fs::Metadata) -> Entry {
    let kind = kind_of(&m.file_type());
    let mut xattrs = BTreeMap::new();
    if kind != "symlink"
        && let Ok(names) = xattr::list(p)
    {
        for n in names {
            let name = n.to_string_lossy().into_owned();
            if name.starts_with("user.") {
                xattrs.insert(name, xattr::get(p, &n).ok().flatten().unwrap_or_default());
            }
        }
    }
    Entry {
        kind,
        perm: m.mode() & 0o7777,
        uid: m.uid(),
        gid: m.gid(),
        mtime: (m.mtime(), m.mtime_nsec()),
        size: if kind == "file" { m.size() } else { 0 },
        sha256: if kind == "file" {
            sha256_file(p)
        } else {
            String::new()
        },
        link: if kind == "symlink" {
            std::fs::read_link(p)
                .map(|l| l.as_os_str().as_bytes().to_vec())
                .unwrap_or_default()
        } else {
            Vec::new()
        },
        rdev: if kind == "chardev" || kind == "blockdev" {
            m.rdev()
        } else {
            0
        },
        xattrs,
    }
}

/// Walk a tree: relative raw path → (entry, inode).
fn walk(root: &Path) -> BTreeMap<Vec<u8>, (Entry, u64, u64)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let p = root.join(&rel);
        let m = std::fs::symlink_metadata(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        if m.is_dir() {
            for e in std::fs::read_dir(&p).unwrap().flatten() {
                stack.push(rel.join(e.file_name()));
            }
        }
        if rel.as_os_str().is_empty() {
            continue;
        }
        let ent = entry(&p, &m);
        if ent.kind == "socket" {
            continue; // restic does not back up sockets
        }
        out.insert(
            rel.as_os_str().as_bytes().to_vec(),
            (ent, m.ino(), m.nlink()),
        );
    }
    out
}

/// Compare two trees (contents, types, modes, owners, mtimes, link targets, devices, user
/// xattrs, hardlink groups); returns a list of differences.
pub fn diff_trees(a: &Path, b: &Path) -> Vec<String> {
    let (ta, tb) = (walk(a), walk(b));
    let mut diffs = Vec::new();
    let show = |k: &[u8]| String::from_utf8_lossy(k).into_owned();
    for (k, (ea, _, _)) in &ta {
        match tb.get(k) {
            None => diffs.push(format!("missing in {}: {}", b.display(), show(k))),
            Some((eb, _, _)) => {
                if ea != eb {
                    diffs.push(format!("{}: {:?} != {:?}", show(k), ea, eb));
                }
            }
        }
    }
    for k in tb.keys() {
        if !ta.contains_key(k) {
            diffs.push(format!("extra in {}: {}", b.display(), show(k)));
        }
    }
    // Hardlinks: paths sharing an inode in `a` must share one in `b`.
    let mut groups: BTreeMap<u64, Vec<&Vec<u8>>> = BTreeMap::new();
    for (k, (e, ino, nlink)) in &ta {
        if e.kind == "file" && *nlink > 1 {
            groups.entry(*ino).or_default().push(k);
        }
    }
    for paths in groups.values().filter(|g| g.len() > 1) {
        let inos: Vec<Option<u64>> = paths.iter().map(|p| tb.get(*p).map(|x| x.1)).collect();
        if inos.windows(2).any(|w| w[0] != w[1]) {
            diffs.push(format!(
                "hardlink group not preserved: {:?}",
                paths.iter().map(|p| show(p)).collect::<Vec<_>>()
            ));
        }
    }
    if !is_root() {
        diffs.retain(|d| !d.contains("uid"));
    }
    diffs
}

/// Assert two trees are equal.
pub fn assert_same_tree(a: &Path, b: &Path) {
    let d = diff_trees(a, b);
    assert!(
        d.is_empty(),
        "trees differ ({} vs {}):\n{}",
        a.display(),
        b.display(),
        d.join("\n")
    );
}

/// Path of a restored copy of an absolute source path below a restore target.
pub fn restored(target: &Path, src: &Path) -> PathBuf {
    target.join(src.strip_prefix("/").unwrap_or(src))
}

/// A raw byte name as a path component.
pub fn raw_name(b: &[u8]) -> &OsStr {
    OsStr::from_bytes(b)
}
