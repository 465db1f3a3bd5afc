//! The rclone backend against a real `rclone serve restic --stdio` child serving a local
//! directory: the backend conformance suite, the on-disk layout rclone produces, shutdown,
//! and the error when rclone dies. Skipped without rclone unless CAIRN_REQUIRE_EXTERNAL=1.

use cairn_backend::BackendOptions;
use cairn_backend::open_backend;
use cairn_repo::backend::{Backend, FileType};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Path of rclone, or `None` (test skipped); panics when CI demands it.
fn rclone() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join("rclone"))
            .find(|f| f.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var("CAIRN_REQUIRE_EXTERNAL").as_deref() != Ok("1"),
            "rclone is required (CAIRN_REQUIRE_EXTERNAL=1) but not installed"
        );
        eprintln!("SKIPPED: rclone is not installed");
    }
    found
}

/// Options that run rclone with an empty config file plus a local remote `mylocal`, set up
/// only through environment variables (`rclone.program` may carry arguments: `env ...`).
fn env_opts(extra: &[&str]) -> BackendOptions {
    let mut pairs =
        vec!["rclone.program=env RCLONE_CONFIG=/dev/null RCLONE_CONFIG_MYLOCAL_TYPE=local rclone"];
    pairs.extend_from_slice(extra);
    BackendOptions {
        values: BackendOptions::parse_pairs(pairs).unwrap(),
        ..Default::default()
    }
}

fn open(loc: &str, opts: &BackendOptions) -> Arc<dyn Backend> {
    open_backend(loc, opts).unwrap_or_else(|e| panic!("open {loc}: {e}"))
}

fn id(n: u8) -> String {
    format!("{n:02x}").repeat(32)
}

#[test]
fn conformance_over_a_configured_remote() {
    if rclone().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let loc = format!("rclone:mylocal:{}", repo.display());
    let b = open(&loc, &env_opts(&["rclone.connections=3"]));
    assert_eq!(b.location(), loc);
    cairn_backend::conformance::run_all(&*b);
    // A second create on an initialised repository is refused.
    assert!(b.create().is_err(), "create over an existing config");
}

#[test]
fn rclone_stores_restics_layout() {
    if rclone().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    // rclone's on-the-fly remote syntax needs no configuration at all.
    let b = open(&format!("rclone::local:{}", repo.display()), &env_opts(&[]));
    b.create().unwrap();
    for d in ["keys", "locks", "snapshots", "index", "data"] {
        assert!(repo.join(d).is_dir(), "{d}/ created");
    }
    let pack = id(0x5e);
    b.write(FileType::Pack, &pack, b"pack bytes").unwrap();
    b.write(FileType::Snapshot, &id(1), b"snap").unwrap();
    b.write(FileType::Config, "config", b"cfg").unwrap();
    assert_eq!(
        std::fs::read(repo.join("data/5e").join(&pack)).unwrap(),
        b"pack bytes"
    );
    assert_eq!(
        std::fs::read(repo.join("snapshots").join(id(1))).unwrap(),
        b"snap"
    );
    assert_eq!(std::fs::read(repo.join("config")).unwrap(), b"cfg");
    // Files put there by others (restic, the local backend) are seen, with their sizes.
    std::fs::create_dir_all(repo.join("data/77")).unwrap();
    std::fs::write(repo.join("data/77").join(id(0x77)), [7u8; 77]).unwrap();
    let mut packs = b.list(FileType::Pack).unwrap();
    packs.sort();
    assert_eq!(packs, [(pack.clone(), 10), (id(0x77), 77)]);
    assert_eq!(
        b.read_range(FileType::Pack, &id(0x77), 70, 7).unwrap(),
        [7u8; 7]
    );
    // Closing the backend closes rclone's stdin: rclone exits at once (no 5 s kill timeout).
    let t = Instant::now();
    drop(b);
    assert!(
        t.elapsed() < Duration::from_secs(4),
        "closing took {:?}",
        t.elapsed()
    );
}

/// Start rclone through a shell that records its pid first (`exec` keeps the pid).
fn pid_opts(pidfile: &Path) -> BackendOptions {
    let prog = format!(
        "sh -c 'echo $$ > {}; exec env RCLONE_CONFIG=/dev/null rclone \"$@\"' sh",
        pidfile.display()
    );
    BackendOptions {
        values: [("rclone.program".to_string(), prog)].into_iter().collect(),
        ..Default::default()
    }
}

#[test]
fn a_killed_rclone_gives_a_clear_error() {
    if rclone().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pid");
    let loc = format!("rclone:{}", dir.path().join("repo").display());
    let b = open(&loc, &pid_opts(&pidfile));
    b.create().unwrap();
    b.write(FileType::Key, &id(3), b"key").unwrap();
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let e = b.read(FileType::Key, &id(3)).unwrap_err().to_string();
    assert!(e.contains("exited") && e.contains("SIGKILL"), "{e}");
    // Later calls fail too, without hanging.
    assert!(b.list(FileType::Key).is_err());
}

#[test]
fn an_unknown_remote_reports_rclones_message() {
    if rclone().is_none() {
        return;
    }
    let e = open_backend("rclone:nosuchremote:repo", &env_opts(&[]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("exit status"), "{e}");
    assert!(e.to_lowercase().contains("nosuchremote"), "{e}");
}
