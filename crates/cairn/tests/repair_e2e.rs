//! End-to-end tests of `cairn repair index` and `cairn repair packs` against the real restic:
//! rebuilt indexes describe the same packs and blobs as before (or as restic's own
//! `rebuild-index` would), `restic check --read-data` accepts the result, and snapshots restore
//! identically; damaged packs are salvaged down to the damaged blob.

mod common;
use cairn_backend::LocalBackend;
use cairn_repo::backend::FileType;
use cairn_repo::index::IndexFile;
use cairn_repo::repository::{Repository, WriteOptions};
use cairn_repo::{BlobType, Id};
use common::*;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

/// A scratch directory with the restic binary and its cache.
struct Env {
    dir: tempfile::TempDir,
    rb: PathBuf,
}

impl Env {
    fn new() -> Option<Env> {
        let rb = external("restic")?;
        Some(Env {
            dir: tempfile::tempdir().unwrap(),
            rb,
        })
    }
    fn path(&self) -> &Path {
        self.dir.path()
    }
    fn restic(&self, repo: &Path, pw: &str) -> Command {
        let mut c = restic(&self.rb, &self.path().join("restic-cache"));
        c.env("RESTIC_PASSWORD", pw).arg("-r").arg(repo);
        c
    }
}

fn cairn_at(repo: &Path, pw: &str) -> Command {
    let mut c = cairn();
    c.env("RESTIC_PASSWORD", pw)
        .arg("--no-cache")
        .arg("-r")
        .arg(repo);
    c
}

/// Files with pseudo-random (incompressible) content; one is large enough to be chunked.
fn write_tree(dir: &Path, seed: u32) {
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    let sizes = [0usize, 10, 4096, 70_000, 300_000, 1_700_000];
    for (i, n) in sizes.iter().enumerate() {
        let data: Vec<u8> = (0..*n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        let sub = if i % 2 == 0 { "" } else { "sub" };
        std::fs::write(dir.join(sub).join(format!("f{i}")), data).unwrap();
    }
}

/// A cairn repository with two snapshots of two different trees; returns repo and sources.
fn cairn_repo(env: &Env) -> (PathBuf, [PathBuf; 2]) {
    let repo = env.path().join("repo");
    ok(cairn().args(["init", "-r"]).arg(&repo));
    let srcs = [env.path().join("src1"), env.path().join("src2")];
    for (i, s) in srcs.iter().enumerate() {
        write_tree(s, i as u32 + 1);
        ok(cairn_at(&repo, PASSWORD).arg("backup").arg(s));
    }
    (repo, srcs)
}

fn open(repo: &Path, pw: &str) -> Repository {
    Repository::open(
        Arc::new(LocalBackend::new(repo)),
        pw.as_bytes(),
        WriteOptions::default(),
    )
    .unwrap()
}

/// One index entry: pack, blob type, blob id, offset, length.
type Entry = (Id, BlobType, Id, u32, u32);

/// Everything the index files say: the packs and all blob entries.
fn index_state(repo: &Path, pw: &str) -> (BTreeSet<Id>, BTreeSet<Entry>) {
    let r = open(repo, pw);
    let (mut packs, mut blobs) = (BTreeSet::new(), BTreeSet::new());
    for id in r.list_ids(FileType::Index).unwrap() {
        let f = IndexFile::from_json(&r.load_unpacked(FileType::Index, &id).unwrap()).unwrap();
        for p in f.packs {
            packs.insert(p.id);
            for b in p.blobs {
                blobs.insert((p.id, b.blob_type, b.id, b.offset, b.length));
            }
        }
    }
    (packs, blobs)
}

fn remove_dir_files(dir: &Path) {
    for e in std::fs::read_dir(dir).unwrap() {
        std::fs::remove_file(e.unwrap().path()).unwrap();
    }
}

fn snapshot_ids(repo: &Path, pw: &str) -> Vec<String> {
    let out = ok(cairn_at(repo, pw).args(["snapshots", "--json"]));
    let v: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    v.iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect()
}

fn restore_and_compare(env: &Env, repo: &Path, srcs: &[PathBuf; 2], tag: &str) {
    for (id, src) in snapshot_ids(repo, PASSWORD).iter().zip(srcs) {
        let target = env.path().join(format!("restore-{tag}-{}", &id[..8]));
        ok(cairn_at(repo, PASSWORD)
            .args(["restore", id, "--target"])
            .arg(&target));
        assert_same_tree(src, &restored(&target, src));
    }
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn rebuilds_the_whole_index_after_all_index_files_are_lost() {
    let Some(env) = Env::new() else { return };
    let (repo, srcs) = cairn_repo(&env);
    let before = index_state(&repo, PASSWORD);
    remove_dir_files(&repo.join("index"));
    let out = ok(cairn_at(&repo, PASSWORD).args(["repair", "index"]));
    let text = stdout(&out);
    for line in [
        "loading indexes...",
        "getting pack files to read...",
        "reading pack files",
        "rebuilding index",
        "done",
    ] {
        assert!(text.contains(line), "missing {line:?} in:\n{text}");
    }
    assert!(stderr(&out).contains("adding pack file to index"));
    assert_eq!(index_state(&repo, PASSWORD), before);
    ok(env.restic(&repo, PASSWORD).args(["check", "--read-data"]));
    restore_and_compare(&env, &repo, &srcs, "rebuilt");
}

#[test]
fn restores_a_deleted_index_file_and_replaces_an_undecodable_one() {
    let Some(env) = Env::new() else { return };
    let (repo, _srcs) = cairn_repo(&env);
    let before = index_state(&repo, PASSWORD);
    let index_dir = repo.join("index");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&index_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 2, "each backup writes an index file");
    std::fs::remove_file(&files[0]).unwrap();
    // An undecodable index file: its name matches its content, which is not encrypted.
    let garbage = b"{\"packs\": this is not an index}".to_vec();
    let garbage_id = Id::hash(&garbage);
    std::fs::write(index_dir.join(garbage_id.to_hex()), &garbage).unwrap();
    // restic refuses the damaged index; the cairn repair replaces it.
    assert_ne!(
        env.restic(&repo, PASSWORD)
            .arg("check")
            .output()
            .unwrap()
            .status
            .code(),
        Some(0)
    );
    let out = ok(cairn_at(&repo, PASSWORD).args(["repair", "index", "--json"]));
    let err = stderr(&out);
    assert!(
        err.contains("removing invalid index") && err.contains(&garbage_id.to_hex()),
        "{err}"
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["message_type"], "summary");
    assert_eq!(summary["invalid_index_files"][0], garbage_id.to_hex());
    assert_eq!(summary["packs_unreadable"].as_array().unwrap().len(), 0);
    assert!(summary["packs_read"].as_u64().unwrap() >= 1);
    assert!(!index_dir.join(garbage_id.to_hex()).exists());
    assert_eq!(index_state(&repo, PASSWORD), before);
    ok(env.restic(&repo, PASSWORD).args(["check", "--read-data"]));
}

#[test]
fn reindexes_a_pack_left_out_of_the_index() {
    let Some(env) = Env::new() else { return };
    let (repo, srcs) = cairn_repo(&env);
    let before = index_state(&repo, PASSWORD);
    // Rewrite one index file without its first pack (as after a crash between pack upload
    // and index write), keeping everything else.
    let r = open(&repo, PASSWORD);
    let idx = r.list_ids(FileType::Index).unwrap();
    let mut f = IndexFile::from_json(&r.load_unpacked(FileType::Index, &idx[0]).unwrap()).unwrap();
    let dropped = f.packs.remove(0).id;
    r.save_unpacked(FileType::Index, &f.to_json()).unwrap();
    r.backend()
        .remove(FileType::Index, &idx[0].to_hex())
        .unwrap();
    assert!(!index_state(&repo, PASSWORD).0.contains(&dropped));
    let out = ok(cairn_at(&repo, PASSWORD).args(["repair", "index"]));
    assert!(
        stderr(&out).contains(&format!("adding pack file to index {dropped}")),
        "{}",
        stderr(&out)
    );
    assert_eq!(index_state(&repo, PASSWORD), before);
    ok(env.restic(&repo, PASSWORD).args(["check", "--read-data"]));
    restore_and_compare(&env, &repo, &srcs, "reindexed");
}

/// `restic check` findings with the repository path and progress noise removed.
fn check_findings(env: &Env, repo: &Path) -> (Option<i32>, Vec<String>) {
    let out = env.restic(repo, PASSWORD).arg("check").output().unwrap();
    let mut lines: Vec<String> = format!("{}\n{}", stdout(&out), stderr(&out))
        .lines()
        .filter(|l| {
            !l.is_empty()
                && !l.contains("using temporary cache")
                && !l.contains("created new cache")
                && !l.contains("repository ")
                && !l.starts_with('[')
        })
        .map(|l| l.replace(repo.to_str().unwrap(), "REPO"))
        .collect();
    lines.sort();
    (out.status.code(), lines)
}

#[test]
fn drops_a_missing_pack_like_restic_rebuild_index() {
    let Some(env) = Env::new() else { return };
    let (repo, _srcs) = cairn_repo(&env);
    let (packs, _) = index_state(&repo, PASSWORD);
    // Remove the data pack of the second snapshot (the largest pack file).
    let r = open(&repo, PASSWORD);
    let sizes: BTreeMap<String, u64> = r
        .backend()
        .list(FileType::Pack)
        .unwrap()
        .into_iter()
        .collect();
    let victim = *packs.iter().max_by_key(|p| sizes[&p.to_hex()]).unwrap();
    r.backend()
        .remove(FileType::Pack, &victim.to_hex())
        .unwrap();
    let copy = env.path().join("copy");
    ok(Command::new("cp").arg("-a").arg(&repo).arg(&copy));

    let out = ok(cairn_at(&repo, PASSWORD).args(["repair", "index"]));
    assert!(
        stderr(&out).contains(&format!("removing not found pack file {victim}")),
        "{}",
        stderr(&out)
    );
    ok(env.restic(&copy, PASSWORD).arg("rebuild-index"));
    let ours = index_state(&repo, PASSWORD);
    assert!(!ours.0.contains(&victim));
    assert_eq!(ours, index_state(&copy, PASSWORD));
    // restic check sees the same (missing data) in both.
    let (code_ours, findings_ours) = check_findings(&env, &repo);
    let (code_restic, findings_restic) = check_findings(&env, &copy);
    assert_eq!(code_ours, Some(1));
    assert_eq!(code_ours, code_restic);
    assert_eq!(findings_ours, findings_restic);
}

/// Flip one byte inside a data blob of a data pack with several blobs; returns the pack and
/// the damaged blob.
fn damage_data_blob(repo: &Path, pw: &str) -> (Id, Id, Vec<u8>) {
    let (_, blobs) = index_state(repo, pw);
    let mut per_pack: BTreeMap<Id, Vec<&Entry>> = BTreeMap::new();
    for e in &blobs {
        per_pack.entry(e.0).or_default().push(e);
    }
    let (pack, entries) = per_pack
        .iter()
        .filter(|(_, v)| v.len() >= 3 && v.iter().all(|e| e.1 == BlobType::Data))
        .max_by_key(|(_, v)| v.len())
        .expect("a data pack with several blobs");
    let victim = entries.iter().max_by_key(|e| e.4).unwrap();
    let path = repo
        .join("data")
        .join(&pack.to_hex()[..2])
        .join(pack.to_hex());
    let mut raw = std::fs::read(&path).unwrap();
    raw[victim.3 as usize + victim.4 as usize / 2] ^= 0x20;
    std::fs::remove_file(&path).unwrap();
    std::fs::write(&path, &raw).unwrap();
    (*pack, victim.2, raw)
}

fn repair_damaged_pack(env: &Env, repo: &Path, pw: &str) {
    let before = index_state(repo, pw);
    let (pack, blob, damaged) = damage_data_blob(repo, pw);
    let out = env
        .restic(repo, pw)
        .args(["check", "--read-data"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let cwd = env.path().join("cwd");
    std::fs::create_dir_all(&cwd).unwrap();
    let out = ok(cairn_at(repo, pw)
        .current_dir(&cwd)
        .args(["repair", "packs", &pack.to_hex()]));
    let (text, err) = (stdout(&out), stderr(&out));
    assert!(
        text.contains("salvaging intact data from specified pack files"),
        "{text}"
    );
    assert!(
        err.contains(&format!("failed to load blob {blob}")),
        "{err}"
    );
    assert!(err.contains("repair snapshots --forget"), "{err}");
    // A backup copy of the pack as it was, in the current directory.
    assert!(std::fs::read(cwd.join(format!("pack-{pack}"))).unwrap() == damaged);
    // The pack is gone; its other blobs are indexed in new packs; only the damaged one is lost.
    let after = index_state(repo, pw);
    assert!(!after.0.contains(&pack));
    assert!(
        !repo
            .join("data")
            .join(&pack.to_hex()[..2])
            .join(pack.to_hex())
            .exists()
    );
    let ids = |s: &(BTreeSet<Id>, BTreeSet<Entry>)| -> BTreeSet<(BlobType, Id)> {
        s.1.iter().map(|e| (e.1, e.2)).collect()
    };
    let mut expected = ids(&before);
    expected.remove(&(BlobType::Data, blob));
    assert_eq!(ids(&after), expected);
    for e in before.1.iter().filter(|e| e.0 == pack && e.2 != blob) {
        assert!(after.1.iter().any(|a| a.2 == e.2 && a.0 != pack));
    }
    // restic's data check finds no damaged pack any more, only the lost blob in snapshots.
    let out = env
        .restic(repo, pw)
        .args(["check", "--read-data"])
        .output()
        .unwrap();
    let all = format!("{}{}", stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(all.contains(&blob.to_hex()[..8]), "{all}");
    assert!(!all.contains(&pack.to_hex()[..8]), "{all}");
    let findings: Vec<&str> = all
        .lines()
        .filter(|l| !l.starts_with("error for tree ") && !l.contains("repository contains errors"))
        .filter(|l| {
            ["error", "not found", "damaged", "invalid", "Pack", "pack "]
                .iter()
                .any(|w| l.contains(w))
        })
        .collect();
    assert!(!findings.is_empty(), "{all}");
    for l in findings {
        assert!(
            l.contains(&format!("blob {blob} not found in index")),
            "unexpected finding: {l}\n{all}"
        );
    }
}

#[test]
fn repair_packs_salvages_all_but_the_damaged_blob() {
    let Some(env) = Env::new() else { return };
    let (repo, _) = cairn_repo(&env);
    repair_damaged_pack(&env, &repo, PASSWORD);
}

fn extract_fixture(env: &Env, name: &str) -> PathBuf {
    common::extract_fixture(name, env.path())
}

const FIXTURE_PW: &str = "fixture-password";

#[test]
fn repairs_a_restic_written_repository() {
    let Some(env) = Env::new() else { return };
    let repo = extract_fixture(&env, "repo-v2");
    let before = index_state(&repo, FIXTURE_PW);
    remove_dir_files(&repo.join("index"));
    ok(cairn_at(&repo, FIXTURE_PW).args(["repair", "index"]));
    assert_eq!(index_state(&repo, FIXTURE_PW), before);
    ok(env.restic(&repo, FIXTURE_PW).args(["check", "--read-data"]));
    // --read-all-packs gives the same index again.
    ok(cairn_at(&repo, FIXTURE_PW).args(["repair", "index", "--read-all-packs"]));
    assert_eq!(index_state(&repo, FIXTURE_PW), before);
    repair_damaged_pack(&env, &repo, FIXTURE_PW);
}
