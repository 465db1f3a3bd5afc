//! Repository locks against the real restic: a lock held by one tool stops the other's
//! exclusive operations, `--retry-lock` waits for a lock to go away, and `unlock` removes
//! exactly the locks restic's `unlock` removes.

mod common;

use cairn_repo::backend::FileType;
use cairn_repo::lock::LockInfo;
use cairn_repo::repository::Repository;
use common::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn repo_with_snapshot(dir: &Path) -> PathBuf {
    let repo = dir.join("repo");
    let src = dir.join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("a"), b"alpha").unwrap();
    ok(cairn().arg("-r").arg(&repo).arg("init"));
    ok(cairn().arg("-r").arg(&repo).arg("backup").arg(&src));
    ok(cairn().arg("-r").arg(&repo).arg("backup").arg(&src));
    repo
}

fn lock_files(repo: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(repo.join("locks"))
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Start `cmd` reading stdin from a pipe we keep open, and wait until it holds a lock.
fn hold_lock_with(mut cmd: Command, repo: &Path) -> Child {
    let before = lock_files(repo).len();
    let child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while lock_files(repo).len() <= before {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no lock appeared"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Both tools re-check 200 ms after writing the lock.
    std::thread::sleep(Duration::from_millis(400));
    child
}

fn finish(mut child: Child) {
    use std::io::Write;
    // restic refuses to save an empty stdin snapshot.
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"some data").unwrap();
    drop(stdin);
    let status = child.wait().unwrap();
    assert!(status.success(), "lock holder failed: {status:?}");
}

fn open(repo: &Path) -> Repository {
    Repository::open(
        Arc::new(cairn_backend::LocalBackend::new(repo)),
        PASSWORD.as_bytes(),
        Default::default(),
    )
    .unwrap()
}

fn write_lock(repo: &Path, info: &LockInfo) -> String {
    open(repo)
        .save_unpacked(FileType::Lock, &info.to_json())
        .unwrap()
        .to_hex()
}

#[test]
fn restic_lock_stops_cairn_exclusive_commands_and_the_reverse() {
    let Some(restic_bin) = external("restic") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let repo = repo_with_snapshot(dir.path());
    let cache = dir.path().join("cache");

    // restic holds a shared (backup) lock.
    let mut rb = restic(&restic_bin, &cache);
    rb.arg("-r").arg(&repo).args(["backup", "--stdin"]);
    let holder = hold_lock_with(rb, &repo);
    for args in [
        &["forget", "--keep-last", "1"][..],
        &["prune"][..],
        &["tag", "--add", "x"][..],
    ] {
        let out = expect_code(cairn().arg("-r").arg(&repo).args(args), 11);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("locked"), "{args:?}: {err}");
    }
    // A shared lock does not stop another shared operation.
    ok(cairn().arg("-r").arg(&repo).arg("snapshots"));
    ok(cairn().arg("-r").arg(&repo).args(["check"]));
    finish(holder);
    assert!(lock_files(&repo).is_empty());

    // Cairn holds a shared lock; restic's exclusive commands refuse.
    let mut cb = cairn();
    cb.arg("-r").arg(&repo).args(["backup", "--stdin"]);
    let holder = hold_lock_with(cb, &repo);
    for args in [&["prune"][..], &["forget", "--keep-last", "1"][..]] {
        let out = restic(&restic_bin, &cache)
            .arg("-r")
            .arg(&repo)
            .args(args)
            .output()
            .unwrap();
        assert!(!out.status.success(), "restic {args:?} ran under a lock");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("locked"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    finish(holder);
    assert!(lock_files(&repo).is_empty(), "cairn left its lock behind");
    // Nothing was removed by the refused commands.
    let out = ok(cairn().arg("-r").arg(&repo).args(["snapshots", "--json"]));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // Two backups, plus one from each lock holder.
    assert_eq!(v.as_array().unwrap().len(), 4);
}

#[test]
fn retry_lock_waits_for_the_holder() {
    let dir = tempfile::tempdir().unwrap();
    let repo = repo_with_snapshot(dir.path());
    let src = dir.path().join("src");
    // This (live) test process holds an exclusive lock.
    let id = write_lock(&repo, &LockInfo::new(true));
    expect_code(cairn().arg("-r").arg(&repo).arg("backup").arg(&src), 11);
    let started = Instant::now();
    expect_code(
        cairn()
            .arg("-r")
            .arg(&repo)
            .args(["--retry-lock", "1s", "backup"])
            .arg(&src),
        11,
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    let remover = {
        let path = repo.join("locks").join(&id);
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(2));
            std::fs::remove_file(path).unwrap();
        })
    };
    let started = Instant::now();
    ok(cairn()
        .arg("-r")
        .arg(&repo)
        .args(["--retry-lock", "1m", "backup"])
        .arg(&src));
    assert!(started.elapsed() >= Duration::from_secs(2));
    remover.join().unwrap();
}

#[test]
fn unlock_removes_the_same_stale_locks_as_restic() {
    let restic_bin = external("restic");
    let dir = tempfile::tempdir().unwrap();
    let repo = repo_with_snapshot(dir.path());
    let dead_pid = {
        let mut c = Command::new("true").spawn().unwrap();
        let pid = c.id();
        c.wait().unwrap();
        pid
    };
    // A live lock holder: a cairn backup waiting on stdin. restic 0.14 probes the liveness
    // of same-host lock holders with SIGHUP, which Cairn must survive (restic ignores it too).
    let mut cb = cairn();
    cb.arg("-r").arg(&repo).args(["backup", "--stdin"]);
    let holder = hold_lock_with(cb, &repo);
    let live_id = lock_files(&repo).pop().unwrap();
    let old = LockInfo {
        time: "2020-01-01T00:00:00.123456789+00:00".into(),
        ..LockInfo::new(false)
    };
    let dead = LockInfo {
        pid: dead_pid,
        ..LockInfo::new(true)
    };
    let elsewhere = LockInfo {
        hostname: "some-other-host".into(),
        pid: dead_pid,
        ..LockInfo::new(false)
    };
    let old_id = write_lock(&repo, &old);
    let dead_id = write_lock(&repo, &dead);
    let elsewhere_id = write_lock(&repo, &elsewhere);

    let copy = dir.path().join("copy");
    ok(Command::new("cp").arg("-a").arg(&repo).arg(&copy));

    let out = ok(cairn().arg("-r").arg(&repo).arg("unlock"));
    assert!(String::from_utf8_lossy(&out.stdout).contains("removed 2 locks"));
    let mut expected = vec![live_id.clone(), elsewhere_id.clone()];
    expected.sort();
    assert_eq!(lock_files(&repo), expected);
    assert!(!lock_files(&repo).contains(&old_id) && !lock_files(&repo).contains(&dead_id));
    if let Some(bin) = restic_bin {
        ok(restic(&bin, &dir.path().join("cache"))
            .arg("-r")
            .arg(&copy)
            .arg("unlock"));
        assert_eq!(
            lock_files(&copy),
            lock_files(&repo),
            "restic unlock differs"
        );
    }
    // The holder survived restic's probe and finishes its backup normally.
    finish(holder);
    assert_eq!(lock_files(&repo), vec![elsewhere_id]);
    ok(cairn()
        .arg("-r")
        .arg(&repo)
        .args(["unlock", "--remove-all"]));
    assert!(lock_files(&repo).is_empty());
}
