//! A backup killed with SIGKILL at several moments leaves a repository that the real restic
//! accepts, and the next backup completes, reusing what was already stored and indexed.

mod common;
use common::*;
use std::process::Stdio;
use std::time::Duration;

fn pseudo_random(seed: u64, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let mut x = seed | 1;
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

#[test]
fn sigkill_during_backup_leaves_a_valid_repository() {
    let Some(rb) = external("restic") else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let src = d.join("src");
    std::fs::create_dir(&src).unwrap();
    for i in 0..48u64 {
        std::fs::write(
            src.join(format!("f{i:02}.bin")),
            pseudo_random(i + 1, 3 << 20),
        )
        .unwrap();
    }
    let repo = d.join("repo");
    let cache = d.join("cache");
    ok(cairn().arg("-r").arg(&repo).args(["init"]));
    let backup = || {
        let mut c = cairn();
        c.arg("-r")
            .arg(&repo)
            .args(["--pack-size", "4", "--compression", "off", "backup"])
            .arg(&src)
            .env("CAIRN_INDEX_FLUSH_PACKS", "2")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        c
    };
    let mut killed_with_data = false;
    for delay_ms in [50u64, 250, 600, 1200] {
        let mut child = backup().spawn().unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let finished = child.try_wait().unwrap().is_some();
        let _ = child.kill();
        let _ = child.wait();
        if !finished {
            killed_with_data |= std::fs::read_dir(repo.join("index")).unwrap().count() > 0;
        }
        // The killed process left a stale lock: restic recognises it as stale (same host,
        // dead PID) and removes it; then the repository must check clean.
        ok(restic(&rb, &cache).arg("-r").arg(&repo).arg("unlock"));
        ok(restic(&rb, &cache).arg("-r").arg(&repo).arg("check"));
    }
    // The next backup completes, and the data restores intact.
    let out = ok(cairn()
        .arg("-r")
        .arg(&repo)
        .args(["--json", "backup"])
        .arg(&src));
    let text = String::from_utf8_lossy(&out.stdout);
    let summary: serde_json::Value =
        serde_json::from_str(text.lines().rev().find(|l| l.contains("summary")).unwrap()).unwrap();
    if killed_with_data {
        // Something stored and indexed before a kill is not stored again.
        let total = 48u64 * (3 << 20);
        assert!(summary["data_added"].as_u64().unwrap() < total, "{summary}");
    }
    ok(restic(&rb, &cache)
        .arg("-r")
        .arg(&repo)
        .args(["check", "--read-data"]));
    let r = d.join("restore");
    ok(restic(&rb, &cache)
        .arg("-r")
        .arg(&repo)
        .args(["restore", "latest", "--target"])
        .arg(&r));
    for i in 0..48u64 {
        let got = std::fs::read(restored(&r, &src).join(format!("f{i:02}.bin"))).unwrap();
        assert!(got == pseudo_random(i + 1, 3 << 20), "f{i:02}.bin differs");
    }
}
