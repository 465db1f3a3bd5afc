//! `copy` (plain and re-chunking), `init --copy-chunker-params`, `rewrite` and `repair
//! snapshots`, checked with the real restic (check --read-data, ls, restore).

mod common;
use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

struct Env {
    restic: PathBuf,
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Option<Env> {
        let restic = external("restic")?;
        external("python3")?;
        Some(Env {
            restic,
            dir: tempfile::tempdir().unwrap(),
        })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn restic(&self, repo: &Path) -> Command {
        let mut c = restic(&self.restic, &self.path("restic-cache"));
        c.arg("-r").arg(repo);
        c
    }

    /// A password file for the --from-* options.
    fn pw_file(&self) -> PathBuf {
        let p = self.path("pw");
        if !p.exists() {
            std::fs::write(&p, format!("{PASSWORD}\n")).unwrap();
        }
        p
    }

    fn check_read_data(&self, repo: &Path) {
        let out = ok(self.restic(repo).args(["check", "--read-data"]));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("no errors were found"), "{text}");
    }

    /// `restic restore SNAP` into a fresh directory.
    fn restic_restore(&self, repo: &Path, snap: &str, target: &str, extra: &[&str]) -> PathBuf {
        let t = self.path(target);
        ok(self
            .restic(repo)
            .args(["restore", snap, "--target"])
            .arg(&t)
            .args(extra));
        t
    }
}

fn cairn_r(repo: &Path) -> Command {
    let mut c = cairn();
    c.arg("-r").arg(repo);
    c
}

/// Parse every JSON line of stdout.
fn json_lines(out: &std::process::Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with('{') || l.starts_with('['))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn summary(out: &std::process::Output) -> Value {
    json_lines(out)
        .into_iter()
        .rfind(|v| v["message_type"] == "summary")
        .unwrap_or_else(|| panic!("no summary in {}", String::from_utf8_lossy(&out.stdout)))
}

fn snapshots(repo: &Path) -> Vec<Value> {
    let out = ok(cairn_r(repo).args(["snapshots", "--json"]));
    serde_json::from_slice::<Vec<Value>>(&out.stdout).unwrap()
}

fn backup(repo: &Path, src: &Path, extra: &[&str]) -> Value {
    summary(&ok(cairn_r(repo)
        .args(["backup", "--json"])
        .args(extra)
        .arg(src)))
}

fn chunker_polynomial(out: &std::process::Output) -> String {
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["chunker_polynomial"].as_str().unwrap().to_string()
}

fn cairn_copy(e: &Env, from: &Path, to: &Path, extra: &[&str]) -> Value {
    summary(&ok(cairn_r(to)
        .args(["copy", "--json", "--from-repo"])
        .arg(from)
        .arg("--from-password-file")
        .arg(e.pw_file())
        .args(extra)))
}

#[test]
fn copy_with_copied_chunker_params_keeps_blobs() {
    let Some(e) = Env::new() else { return };
    let src_dir = e.path("src");
    make_source_tree(&src_dir);
    let (src, dst) = (e.path("src-repo"), e.path("dst-repo"));
    ok(cairn().args(["init", "-r"]).arg(&src));
    backup(&src, &src_dir, &[]);
    ok(cairn_r(&dst)
        .args(["init", "--copy-chunker-params", "--from-repo"])
        .arg(&src)
        .arg("--from-password-file")
        .arg(e.pw_file()));
    let pol = chunker_polynomial(&ok(cairn_r(&src).args(["cat", "config"])));
    assert_eq!(
        pol,
        chunker_polynomial(&ok(cairn_r(&dst).args(["cat", "config"])))
    );
    // --from-repo alone is refused, as in restic.
    let out = expect_code(
        cairn_r(&e.path("other"))
            .args(["init", "--from-repo"])
            .arg(&src),
        1,
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("--copy-chunker-params"));

    // A wrong source password is exit code 12, as for the main repository.
    expect_code(
        cairn_r(&dst)
            .args(["copy", "--from-repo"])
            .arg(&src)
            .env("RESTIC_FROM_PASSWORD", "wrong"),
        12,
    );
    let s = cairn_copy(&e, &src, &dst, &[]);
    assert_eq!(
        (s["snapshots_copied"].as_u64(), s["rechunked"].as_bool()),
        (Some(1), Some(false))
    );
    let (a, b) = (&snapshots(&src)[0], &snapshots(&dst)[0]);
    assert_eq!(a["tree"], b["tree"], "blobs are copied as they are");
    assert_eq!(b["original"], a["id"]);
    assert_eq!(
        (&a["time"], &a["hostname"], &a["paths"]),
        (&b["time"], &b["hostname"], &b["paths"])
    );
    e.check_read_data(&dst);
    let t = e.restic_restore(&dst, "latest", "restore1", &[]);
    assert_same_tree(&src_dir, &restored(&t, &src_dir));

    // Copying again adds nothing (source given through the environment this time); a new
    // snapshot is copied alone with only its new blob.
    let s = summary(&ok(cairn_r(&dst)
        .args(["copy", "--json"])
        .env("RESTIC_FROM_REPOSITORY", &src)
        .env(
            "RESTIC_FROM_PASSWORD_COMMAND",
            format!("cat {}", e.pw_file().display()),
        )));
    assert_eq!(
        (
            s["snapshots_copied"].as_u64(),
            s["snapshots_skipped"].as_u64()
        ),
        (Some(0), Some(1))
    );
    assert_eq!(s["data_blobs"], 0);
    std::fs::write(src_dir.join("new-file.txt"), b"a file added later\n").unwrap();
    backup(&src, &src_dir, &[]);
    let loc_file = e.path("src-location");
    std::fs::write(&loc_file, format!("{}\n", src.display())).unwrap();
    let s = summary(&ok(cairn_r(&dst)
        .args(["copy", "--json", "--from-repository-file"])
        .arg(&loc_file)
        .env("RESTIC_FROM_PASSWORD", PASSWORD)));
    assert_eq!(
        (
            s["snapshots_copied"].as_u64(),
            s["snapshots_skipped"].as_u64()
        ),
        (Some(1), Some(1))
    );
    assert_eq!(s["data_blobs"], 1);
    assert_eq!(snapshots(&dst).len(), 2);
    // The same check restic makes: restic copy finds nothing left to copy.
    let out = ok(e
        .restic(&dst)
        .args(["copy", "--from-repo"])
        .arg(&src)
        .arg("--from-password-file")
        .arg(e.pw_file()));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("saved"));
    assert_eq!(snapshots(&dst).len(), 2);
}

#[test]
fn copy_with_different_params_rechunks_and_keeps_dedup() {
    let Some(e) = Env::new() else { return };
    let src_dir = e.path("src");
    make_source_tree(&src_dir);
    // A second large file, so that several files are re-chunked.
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let big: Vec<u8> = (0..5 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    std::fs::write(src_dir.join("big.bin"), &big).unwrap();
    let (src, dst, plain) = (e.path("src-repo"), e.path("dst-repo"), e.path("plain-repo"));
    for r in [&src, &dst, &plain] {
        ok(cairn().args(["init", "-r"]).arg(r));
    }
    backup(&src, &src_dir, &[]);
    let s = cairn_copy(&e, &src, &dst, &[]);
    assert_eq!(s["snapshots_copied"], 1);
    assert_eq!(s["rechunked"], true);
    assert!(s["files_rechunked"].as_u64().unwrap() >= 2, "{s}");
    let (a, b) = (&snapshots(&src)[0], &snapshots(&dst)[0]);
    assert_ne!(a["tree"], b["tree"], "trees of re-chunked files change");
    assert_eq!(b["original"], a["id"]);
    e.check_read_data(&dst);
    let t = e.restic_restore(&dst, "latest", "restore1", &[]);
    assert_same_tree(&src_dir, &restored(&t, &src_dir));
    // A second copy recognises the re-chunked snapshot.
    let s = cairn_copy(&e, &src, &dst, &[]);
    assert_eq!(
        (
            s["snapshots_copied"].as_u64(),
            s["snapshots_skipped"].as_u64()
        ),
        (Some(0), Some(1))
    );

    // A backup of the same files into the destination finds every chunk already stored.
    let b = backup(&dst, &src_dir, &["--force"]);
    assert_eq!(b["data_blobs"], 0, "{b}");
    // Without re-chunking (restic's way) the large files are stored again.
    let s = cairn_copy(&e, &src, &plain, &["--no-rechunk"]);
    assert_eq!(s["rechunked"], false);
    assert_eq!(snapshots(&plain)[0]["tree"], a["tree"]);
    let b = backup(&plain, &src_dir, &["--force"]);
    assert!(b["data_blobs"].as_u64().unwrap() >= 2, "{b}");
}

#[test]
fn copy_between_restic_and_cairn_repositories() {
    let Some(e) = Env::new() else { return };
    let src_dir = e.path("src");
    make_source_tree(&src_dir);
    // restic-written source → Cairn destination.
    let restic_src = e.path("restic-src");
    ok(e.restic(&restic_src).arg("init"));
    ok(e.restic(&restic_src).arg("backup").arg(&src_dir));
    let cairn_repo = e.path("cairn-repo");
    ok(cairn().args(["init", "-r"]).arg(&cairn_repo));
    let s = cairn_copy(&e, &restic_src, &cairn_repo, &[]);
    assert_eq!(
        (s["snapshots_copied"].as_u64(), s["rechunked"].as_bool()),
        (Some(1), Some(true))
    );
    e.check_read_data(&cairn_repo);
    let t = e.restic_restore(&cairn_repo, "latest", "restore1", &[]);
    assert_same_tree(&src_dir, &restored(&t, &src_dir));

    // Cairn source → restic-initialised destination with copied chunker parameters.
    let restic_dst = e.path("restic-dst");
    ok(e.restic(&restic_dst)
        .args(["init", "--copy-chunker-params", "--from-repo"])
        .arg(&cairn_repo)
        .arg("--from-password-file")
        .arg(e.pw_file()));
    let pol = chunker_polynomial(&ok(cairn_r(&cairn_repo).args(["cat", "config"])));
    let restic_cfg = ok(e.restic(&restic_dst).args(["cat", "config"]));
    assert_eq!(chunker_polynomial(&restic_cfg), pol);
    let s = cairn_copy(&e, &cairn_repo, &restic_dst, &[]);
    assert_eq!(
        (s["snapshots_copied"].as_u64(), s["rechunked"].as_bool()),
        (Some(1), Some(false))
    );
    e.check_read_data(&restic_dst);
    let t = e.restic_restore(&restic_dst, "latest", "restore2", &[]);
    assert_same_tree(&src_dir, &restored(&t, &src_dir));

    // restic copies out of a Cairn repository too (into a fresh restic repository).
    let restic_dst2 = e.path("restic-dst2");
    ok(e.restic(&restic_dst2).arg("init"));
    let out = ok(e
        .restic(&restic_dst2)
        .args(["copy", "--from-repo"])
        .arg(&cairn_repo)
        .arg("--from-password-file")
        .arg(e.pw_file()));
    assert!(String::from_utf8_lossy(&out.stdout).contains("saved"));
    e.check_read_data(&restic_dst2);
    let t = e.restic_restore(&restic_dst2, "latest", "restore3", &[]);
    assert_same_tree(&src_dir, &restored(&t, &src_dir));
}

/// A small tree with a few `*.log` files.
fn log_tree(dir: &Path) {
    for (p, data) in [
        ("a.txt", "alpha\n"),
        ("b.log", "log b\n"),
        ("sub/c.log", "log c\n"),
        ("sub/d.txt", "delta\n"),
        ("keep/e.txt", "echo\n"),
    ] {
        let f = dir.join(p);
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(f, data).unwrap();
    }
}

fn restic_ls(e: &Env, repo: &Path, snap: &str) -> String {
    String::from_utf8_lossy(&ok(e.restic(repo).args(["ls", snap])).stdout).into_owned()
}

fn ids(repo: &Path) -> Vec<String> {
    let mut v: Vec<String> = snapshots(repo)
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

#[test]
fn rewrite_excludes_files_and_changes_metadata() {
    let Some(e) = Env::new() else { return };
    let src_dir = e.path("src");
    log_tree(&src_dir);
    let repo = e.path("repo");
    ok(cairn().args(["init", "-r"]).arg(&repo));
    backup(&repo, &src_dir, &["--tag", "t1"]);
    let orig = snapshots(&repo)[0].clone();
    let orig_id = orig["id"].as_str().unwrap().to_string();

    // Nothing to do, and nothing matching: no snapshot changes.
    expect_code(cairn_r(&repo).arg("rewrite"), 1);
    let out = ok(cairn_r(&repo).args(["rewrite", "--exclude", "*.nothing"]));
    assert!(String::from_utf8_lossy(&out.stdout).contains("no snapshots were modified"));
    // A dry run writes nothing.
    let before = ids(&repo);
    let out = ok(cairn_r(&repo).args(["rewrite", "-n", "--exclude", "*.log"]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("would modify 1 snapshots"), "{text}");
    assert!(text.contains("excluding /"), "{text}");
    assert_eq!(ids(&repo), before);

    let out = ok(cairn_r(&repo).args(["rewrite", "--json", "--exclude", "*.log", &orig_id[..8]]));
    assert_eq!(summary(&out)["snapshots_modified"], 1);
    let snaps = snapshots(&repo);
    assert_eq!(snaps.len(), 2, "the original is kept without --forget");
    let new = snaps
        .iter()
        .find(|s| s["id"] != orig["id"])
        .unwrap()
        .clone();
    let new_id = new["id"].as_str().unwrap().to_string();
    assert_eq!(new["original"], orig["id"]);
    assert_eq!(new["tags"], serde_json::json!(["t1", "rewrite"]));
    assert_eq!(
        (&new["time"], &new["hostname"]),
        (&orig["time"], &orig["hostname"])
    );
    assert_eq!(new["summary"]["total_files_processed"], 3);
    let listing = restic_ls(&e, &repo, &new_id);
    assert!(!listing.contains(".log"), "{listing}");
    assert!(listing.contains("d.txt"), "{listing}");
    assert!(restic_ls(&e, &repo, &orig_id).contains("c.log"));
    e.check_read_data(&repo);
    // The rewritten snapshot restores like the original restored without the excluded files.
    let got = e.restic_restore(&repo, &new_id, "rewritten", &[]);
    let want = e.restic_restore(&repo, &orig_id, "original", &["--exclude", "*.log"]);
    assert_same_tree(&want, &got);
    assert!(restored(&got, &src_dir).join("a.txt").exists());
    assert!(!restored(&got, &src_dir).join("sub/c.log").exists());

    // --forget replaces the snapshot; --new-host changes the host; no tag is added.
    let out = ok(cairn_r(&repo).args([
        "rewrite",
        "--forget",
        "--exclude",
        "d.txt",
        "--new-host",
        "elsewhere",
        &new_id,
    ]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("removed old snapshot"), "{text}");
    let snaps = snapshots(&repo);
    assert_eq!(snaps.len(), 2);
    assert!(snaps.iter().all(|s| s["id"] != new["id"]));
    let last = snaps.iter().find(|s| s["id"] != orig["id"]).unwrap();
    assert_eq!(last["hostname"], "elsewhere");
    assert_eq!(last["original"], new["id"]);
    assert_eq!(last["tags"], serde_json::json!(["t1", "rewrite"]));
    assert!(!restic_ls(&e, &repo, last["id"].as_str().unwrap()).contains("d.txt"));
    // Metadata only: --new-time on the original.
    ok(cairn_r(&repo).args(["rewrite", "--new-time", "2020-02-03 04:05:06", &orig_id]));
    assert!(snapshots(&repo).iter().any(|s| {
        s["time"]
            .as_str()
            .unwrap()
            .starts_with("2020-02-03T04:05:06")
    }));
    e.check_read_data(&repo);
}

/// Index files of `repo`.
fn index_files(repo: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(repo.join("index"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// The packs holding blobs of `kind` listed in the index files that are new since `before`.
fn new_packs(e: &Env, repo: &Path, before: &[String], kind: &str) -> Vec<String> {
    let mut packs = Vec::new();
    for idx in index_files(repo).iter().filter(|i| !before.contains(i)) {
        let out = ok(e.restic(repo).args(["cat", "index", idx]));
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        for p in v["packs"].as_array().unwrap() {
            if p["blobs"]
                .as_array()
                .unwrap()
                .iter()
                .all(|b| b["type"] == kind)
            {
                packs.push(p["id"].as_str().unwrap().to_string());
            }
        }
    }
    packs
}

#[test]
fn repair_snapshots_after_losing_packs() {
    let Some(e) = Env::new() else { return };
    let src_dir = e.path("src");
    let repo = e.path("repo");
    ok(cairn().args(["init", "-r"]).arg(&repo));
    let write = |p: &str, data: String| {
        let f = src_dir.join(p);
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(f, data).unwrap();
    };
    write("a/one.txt", "first file\n".repeat(100));
    write("a/two.txt", "second file\n".repeat(100));
    backup(&repo, &src_dir, &[]);
    let i1 = index_files(&repo);
    write("b/three.txt", "third file\n".repeat(100));
    write("b/four.txt", "fourth file\n".repeat(100));
    backup(&repo, &src_dir, &[]);
    let lost_data = new_packs(&e, &repo, &i1, "data");
    let i2 = index_files(&repo);
    write("c/five.txt", "fifth file\n".repeat(100));
    backup(&repo, &src_dir, &[]);
    let lost_trees = new_packs(&e, &repo, &i2, "tree");
    assert_eq!((lost_data.len(), lost_trees.len()), (1, 1));
    let snaps = snapshots(&repo);
    let (s1, s2) = (
        snaps[0]["id"].as_str().unwrap(),
        snaps[1]["id"].as_str().unwrap(),
    );
    for p in lost_data.iter().chain(&lost_trees) {
        std::fs::remove_file(repo.join("data").join(&p[..2]).join(p)).unwrap();
    }
    ok(e.restic(&repo).arg("rebuild-index"));
    expect_code(e.restic(&repo).arg("check"), 1);

    // A dry run reports and changes nothing.
    let before = ids(&repo);
    let out = ok(cairn_r(&repo).args(["repair", "snapshots", "--dry-run"]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("would modify 2 snapshots"), "{text}");
    assert_eq!(ids(&repo), before);

    let out = ok(cairn_r(&repo).args(["repair", "snapshots", "--forget"]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("b/three.txt\": removed missing content"),
        "{text}"
    );
    assert!(text.contains("removed empty snapshot"), "{text}");
    assert!(text.contains("modified 2 snapshots"), "{text}");
    let after = snapshots(&repo);
    assert_eq!(
        after.len(),
        2,
        "first kept, second replaced, third (no root tree) removed"
    );
    assert_eq!(after[0]["id"], s1);
    let repaired = &after[1];
    assert_eq!(repaired["original"], s2);
    assert!(
        repaired["tags"].is_null(),
        "no tag with --forget: {repaired}"
    );
    // restic agrees the repository is consistent now and restores what is left.
    ok(e.restic(&repo).arg("check"));
    let t = e.restic_restore(&repo, repaired["id"].as_str().unwrap(), "restore", &[]);
    let r = restored(&t, &src_dir);
    assert_eq!(
        std::fs::read(r.join("a/one.txt")).unwrap(),
        std::fs::read(src_dir.join("a/one.txt")).unwrap()
    );
    assert_eq!(std::fs::metadata(r.join("b/three.txt")).unwrap().len(), 0);
    assert!(!r.join("c").exists());
    // Repairing again changes nothing.
    let out = ok(cairn_r(&repo).args(["repair", "snapshots"]));
    assert!(String::from_utf8_lossy(&out.stdout).contains("no snapshots were modified"));
}
