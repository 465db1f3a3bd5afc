//! The `rclone:` backend end to end: Cairn drives `rclone serve restic --stdio` (a local remote
//! set up only through RCLONE_* environment variables) for init, backup, restore,
//! forget --prune and check --read-data, and the real restic, given the same repository
//! string and environment, agrees; a repository restic wrote through rclone is read by Cairn.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

fn setup() -> Option<(PathBuf, tempfile::TempDir)> {
    external("rclone")?;
    external("python3")?;
    let rb = external("restic")?;
    Some((rb, tempfile::tempdir().unwrap()))
}

/// An rclone remote `mylocal` of type local, defined only by environment variables, and no
/// rclone config file.
fn rclone_env(c: &mut Command) -> &mut Command {
    c.env("RCLONE_CONFIG", "/dev/null")
        .env("RCLONE_CONFIG_MYLOCAL_TYPE", "local")
}

fn cx(d: &Path, loc: &str) -> Command {
    let mut c = cairn();
    rclone_env(&mut c)
        .arg("--cache-dir")
        .arg(d.join("cairn-cache"))
        .args(["-r", loc]);
    c
}

fn rx(rb: &Path, d: &Path, loc: &str) -> Command {
    let mut c = restic(rb, &d.join("restic-cache"));
    rclone_env(&mut c).args(["-r", loc]);
    c
}

fn snapshot_count(out: &std::process::Output) -> usize {
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v.as_array().unwrap().len()
}

#[test]
fn cairn_writes_through_rclone_and_restic_agrees() {
    let Some((rb, dir)) = setup() else { return };
    let d = dir.path();
    let src = d.join("src");
    make_source_tree(&src);
    let repo = d.join("repo");
    let loc = format!("rclone:mylocal:{}", repo.display());

    // No repository there yet: "does not exist", not a transport error.
    expect_code(cx(d, &loc).arg("snapshots"), 10);
    ok(cx(d, &loc).arg("init"));
    assert!(repo.join("config").is_file() && repo.join("keys").is_dir());
    ok(cx(d, &loc).args(["backup", "--tag", "first"]).arg(&src));
    std::fs::write(src.join("added-later.txt"), b"second snapshot only\n").unwrap();
    ok(cx(d, &loc).args(["backup", "--tag", "second"]).arg(&src));
    ok(cx(d, &loc).args(["forget", "--keep-last", "1", "--prune"]));
    ok(cx(d, &loc).args(["check", "--read-data"]));
    let r1 = d.join("cairn-restore");
    ok(cx(d, &loc).args(["restore", "latest", "--target"]).arg(&r1));
    assert_same_tree(&src, &restored(&r1, &src));

    // restic, through its own rclone child, verifies every byte and restores the same tree.
    ok(rx(&rb, d, &loc).args(["check", "--read-data"]));
    let out = ok(rx(&rb, d, &loc).args(["snapshots", "--json"]));
    assert_eq!(snapshot_count(&out), 1, "forget kept one snapshot");
    let r2 = d.join("restic-restore");
    ok(rx(&rb, d, &loc)
        .args(["restore", "latest", "--target"])
        .arg(&r2));
    assert_same_tree(&src, &restored(&r2, &src));
    // What rclone stored is an ordinary repository on disk.
    ok(cairn().arg("-r").arg(&repo).arg("check"));
}

#[test]
fn restic_writes_through_rclone_and_cairn_reads() {
    let Some((rb, dir)) = setup() else { return };
    let d = dir.path();
    let src = d.join("src");
    make_source_tree(&src);
    let loc = format!("rclone:mylocal:{}", d.join("repo").display());
    ok(rx(&rb, d, &loc).arg("init"));
    ok(rx(&rb, d, &loc).arg("backup").arg(&src));
    // Cairn with restic's rclone options spelled out.
    let opts = [
        "-o",
        "rclone.args=serve restic --stdio --b2-hard-delete",
        "-o",
        "rclone.connections=2",
        "-o",
        "rclone.timeout=30s",
    ];
    ok(cx(d, &loc).args(opts).args(["check", "--read-data"]));
    let r = d.join("cairn-restore");
    ok(cx(d, &loc)
        .args(opts)
        .args(["restore", "latest", "--target"])
        .arg(&r));
    assert_same_tree(&src, &restored(&r, &src));
    // Cairn adds a snapshot to restic's repository; restic accepts the result.
    ok(cx(d, &loc).arg("backup").arg(&src));
    ok(rx(&rb, d, &loc).args(["check", "--read-data"]));
    let out = ok(rx(&rb, d, &loc).args(["snapshots", "--json"]));
    assert_eq!(snapshot_count(&out), 2);
}

#[test]
fn a_bad_rclone_setup_is_a_clear_error() {
    if external("rclone").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = expect_code(
        cx(dir.path(), "rclone:nosuchremote:repo").arg("snapshots"),
        1,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("nosuchremote"), "{err}");
    assert!(err.contains("exit status"), "{err}");
    let out = expect_code(
        cx(dir.path(), "rclone:x:")
            .args(["-o", "rclone.timeout=soon"])
            .arg("snapshots"),
        1,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("rclone.timeout"), "{err}");
}
