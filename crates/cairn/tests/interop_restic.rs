//! Interoperability with the real restic binary, both directions, covering every node type
//! of the fixtures' source tree (files, dirs, symlinks, hardlinks, fifos, devices, xattrs,
//! setuid/setgid/sticky modes, non-UTF-8 names, foreign owners).

mod common;
use common::*;
use std::path::Path;

fn setup() -> Option<(std::path::PathBuf, tempfile::TempDir)> {
    let restic_bin = external("restic")?;
    external("python3")?;
    let dir = tempfile::tempdir().unwrap();
    Some((restic_bin, dir))
}

fn cairn_writes_restic_reads(version: &str) {
    let Some((rb, dir)) = setup() else { return };
    let d = dir.path();
    let src = d.join("src");
    make_source_tree(&src);
    let repo = d.join("repo");
    let cache = d.join("cache");
    ok(cairn()
        .args(["init", "--repository-version", version, "-r"])
        .arg(&repo));
    ok(cairn()
        .arg("-r")
        .arg(&repo)
        .args(["backup", "--tag", "t1"])
        .arg(&src));
    // restic verifies every byte and restores the tree with all metadata.
    ok(restic(&rb, &cache)
        .arg("-r")
        .arg(&repo)
        .args(["check", "--read-data"]));
    let r1 = d.join("restic-restore");
    ok(restic(&rb, &cache)
        .arg("-r")
        .arg(&repo)
        .args(["restore", "latest", "--target"])
        .arg(&r1));
    assert_same_tree(&src, &restored(&r1, &src));
    // And Cairn restores its own backup identically.
    let r2 = d.join("cairn-restore");
    ok(cairn()
        .arg("-r")
        .arg(&repo)
        .args(["restore", "latest", "--target"])
        .arg(&r2));
    assert_same_tree(&src, &restored(&r2, &src));
    // restic lists the snapshot Cairn wrote, with its tag.
    let out = ok(restic(&rb, &cache)
        .arg("-r")
        .arg(&repo)
        .args(["snapshots", "--json"]));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["tags"][0], "t1");
    assert_eq!(v[0]["paths"][0], src.to_str().unwrap());
}

#[test]
fn restic_reads_what_cairn_writes_v2() {
    cairn_writes_restic_reads("2");
}

#[test]
fn restic_reads_what_cairn_writes_v1() {
    cairn_writes_restic_reads("1");
}

fn restic_writes_cairn_reads(version: &str) {
    let Some((rb, dir)) = setup() else { return };
    let d = dir.path();
    let src = d.join("src");
    make_source_tree(&src);
    let repo = d.join("repo");
    let cache = d.join("cache");
    ok(restic(&rb, &cache)
        .arg("-r")
        .arg(&repo)
        .args(["init", "--repository-version", version]));
    ok(restic(&rb, &cache)
        .arg("-r")
        .arg(&repo)
        .arg("backup")
        .arg(&src));
    let r1 = d.join("restic-restore");
    ok(restic(&rb, &cache)
        .arg("-r")
        .arg(&repo)
        .args(["restore", "latest", "--target"])
        .arg(&r1));
    let r2 = d.join("cairn-restore");
    ok(cairn()
        .arg("-r")
        .arg(&repo)
        .args(["restore", "latest", "--target"])
        .arg(&r2));
    assert_same_tree(&r1, &r2);
    assert_same_tree(&src, &restored(&r2, &src));

    // Cairn backs up into the restic repository using restic's snapshot as parent: nothing
    // changed, so no file is read and no data blob is added (same chunker, same blob ids).
    let out = ok(cairn()
        .arg("-r")
        .arg(&repo)
        .args(["--json", "backup"])
        .arg(&src));
    let summary = last_json_line(&out.stdout);
    assert_eq!(summary["message_type"], "summary");
    assert_eq!(summary["files_new"], 0, "{summary}");
    assert_eq!(summary["files_changed"], 0, "{summary}");
    assert_eq!(summary["data_blobs"], 0, "{summary}");
    // restic accepts the mixed repository and can back up on top of Cairn's snapshot.
    ok(restic(&rb, &cache)
        .arg("-r")
        .arg(&repo)
        .args(["check", "--read-data"]));
    ok(restic(&rb, &cache)
        .arg("-r")
        .arg(&repo)
        .arg("backup")
        .arg(&src));
    ok(restic(&rb, &cache).arg("-r").arg(&repo).args(["check"]));
}

fn last_json_line(stdout: &[u8]) -> serde_json::Value {
    let text = String::from_utf8_lossy(stdout);
    let line = text
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .expect("a JSON line");
    serde_json::from_str(line).unwrap()
}

#[test]
fn cairn_reads_what_restic_writes_v2() {
    restic_writes_cairn_reads("2");
}

#[test]
fn cairn_reads_what_restic_writes_v1() {
    restic_writes_cairn_reads("1");
}

/// Changed data backed up by Cairn dedups against restic's chunks (same chunker cuts).
#[test]
fn large_file_chunks_dedup_across_tools() {
    let Some((rb, dir)) = setup() else { return };
    let d = dir.path();
    let src = d.join("src");
    std::fs::create_dir(&src).unwrap();
    // 6 MiB of pseudo-random data: several content-defined chunks.
    let mut data = Vec::with_capacity(6 << 20);
    let mut x: u64 = 0x9e3779b97f4a7c15;
    while data.len() < 6 << 20 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        data.extend_from_slice(&x.to_le_bytes());
    }
    std::fs::write(src.join("big.bin"), &data).unwrap();
    let repo = d.join("repo");
    let cache = d.join("cache");
    ok(restic(&rb, &cache).arg("-r").arg(&repo).arg("init"));
    ok(restic(&rb, &cache)
        .arg("-r")
        .arg(&repo)
        .arg("backup")
        .arg(&src));
    // A copy under another name: Cairn must find every chunk already stored.
    std::fs::write(src.join("copy.bin"), &data).unwrap();
    let out = ok(cairn()
        .arg("-r")
        .arg(&repo)
        .args(["--json", "backup"])
        .arg(&src));
    let s = last_json_line(&out.stdout);
    assert_eq!(s["data_blobs"], 0, "{s}");
    assert_eq!(s["files_new"], 1, "{s}");
    ok(restic(&rb, &cache)
        .arg("-r")
        .arg(&repo)
        .args(["check", "--read-data"]));
    let r = d.join("r");
    ok(restic(&rb, &cache)
        .arg("-r")
        .arg(&repo)
        .args(["restore", "latest", "--target"])
        .arg(&r));
    assert_eq!(
        std::fs::read(restored(&r, &src).join("copy.bin")).unwrap(),
        data
    );
    assert!(Path::new(&restored(&r, &src).join("big.bin")).exists());
}
