//! `cairn check` against the real restic on damaged repositories: for every kind of damage,
//! wherever `restic check` fails Cairn fails too and names the damaged file; hint-only
//! situations pass in both; `--read-data-subset n/t` reads the same packs as restic; the
//! restic 0.14 fixture repositories (v1 and v2) check clean.

mod common;
use cairn_backend::LocalBackend;
use cairn_repo::backend::FileType;
use cairn_repo::index::{IndexFile, IndexPack};
use cairn_repo::pack::PackBlob;
use cairn_repo::repository::{Repository, WriteOptions};
use cairn_repo::{BlobType, Id};
use common::*;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

/// A finished run of one tool.
struct Run {
    code: i32,
    text: String,
}

fn run(c: &mut Command) -> Run {
    let t0 = std::time::Instant::now();
    let out = c.output().expect("spawn");
    eprintln!(
        "TIMING {:?} {:?}",
        t0.elapsed(),
        c.get_args().collect::<Vec<_>>()
    );
    Run {
        code: out.status.code().unwrap_or(-1),
        text: format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

struct Tools {
    restic: PathBuf,
    cache: tempfile::TempDir,
}

impl Tools {
    fn get() -> Option<Tools> {
        Some(Tools {
            restic: external("restic")?,
            cache: tempfile::tempdir().unwrap(),
        })
    }

    fn cairn(&self, repo: &Path, args: &[&str]) -> Run {
        run(cairn().arg("-r").arg(repo).arg("check").args(args))
    }

    fn restic(&self, repo: &Path, args: &[&str]) -> Run {
        run(restic(&self.restic, self.cache.path())
            .arg("-r")
            .arg(repo)
            .arg("check")
            .args(args))
    }

    /// Run both; both must agree on success or failure. Returns (cairn, restic).
    fn both(&self, what: &str, repo: &Path, args: &[&str]) -> (Run, Run) {
        let c = self.cairn(repo, args);
        let r = self.restic(repo, args);
        assert_eq!(
            c.code == 0,
            r.code == 0,
            "{what} {args:?}: cairn exited {} but restic {}\ncairn:\n{}\nrestic:\n{}",
            c.code,
            r.code,
            c.text,
            r.text
        );
        (c, r)
    }

    /// Both must find the damage (restic too, so the damage is real) and Cairn's output must
    /// name one of `ids` (full or short hex).
    fn found(&self, what: &str, repo: &Path, args: &[&str], ids: &[Id]) -> Run {
        let (c, r) = self.both(what, repo, args);
        assert_ne!(
            r.code, 0,
            "{what} {args:?}: restic found nothing:\n{}",
            r.text
        );
        assert_eq!(c.code, 1, "{what} {args:?}:\n{}", c.text);
        assert!(
            ids.iter().any(|id| c.text.contains(&id.short())),
            "{what} {args:?}: cairn does not name any of {ids:?}:\n{}",
            c.text
        );
        assert!(c.text.contains("repository contains errors"), "{}", c.text);
        c
    }

    /// Both must pass.
    fn clean(&self, what: &str, repo: &Path, args: &[&str]) -> Run {
        let (c, r) = self.both(what, repo, args);
        assert_eq!(r.code, 0, "{what}: {}", r.text);
        assert!(c.text.contains("no errors were found"), "{}", c.text);
        c
    }
}

/// Deterministic incompressible bytes.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn open(repo: &Path) -> Repository {
    let be = Arc::new(LocalBackend::new(repo));
    let r = Repository::open(be, PASSWORD.as_bytes(), WriteOptions::default()).unwrap();
    r.load_index().unwrap();
    r
}

fn pack_path(repo: &Path, id: &Id) -> PathBuf {
    let hex = id.to_hex();
    repo.join("data").join(&hex[..2]).join(hex)
}

fn flip(path: &Path, at: usize) {
    let mut b = std::fs::read(path).unwrap();
    b[at] ^= 0x55;
    std::fs::write(path, b).unwrap();
}

/// A fresh copy of `base` for one scenario.
fn copy(base: &Path) -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let repo = d.path().join("repo");
    ok(Command::new("cp").arg("-a").arg(base).arg(&repo));
    (d, repo)
}

/// Packs and their blobs, sorted by offset.
fn packs(repo: &Path) -> HashMap<Id, Vec<PackBlob>> {
    let mut p = open(repo).index().packs();
    for v in p.values_mut() {
        v.sort_by_key(|b| b.offset);
    }
    p
}

/// Back up `dirs` one after the other (one snapshot each) into a new v2 repository.
fn build(d: &Path, dirs: &[PathBuf]) -> PathBuf {
    let repo = d.join("repo");
    ok(cairn().arg("-r").arg(&repo).arg("init"));
    for dir in dirs {
        ok(cairn()
            .arg("-r")
            .arg(&repo)
            .arg("backup")
            .arg("-q")
            .arg(dir));
    }
    repo
}

/// Rewrite the index file listing `pack` with `edit` applied to the file.
fn rewrite_index(repo: &Path, pack: &Id, edit: impl FnOnce(&mut IndexFile)) {
    let r = open(repo);
    for id in r.list_ids(FileType::Index).unwrap() {
        let mut f = IndexFile::from_json(&r.load_unpacked(FileType::Index, &id).unwrap()).unwrap();
        if f.packs.iter().any(|p| p.id == *pack) {
            edit(&mut f);
            r.save_unpacked(FileType::Index, &f.to_json()).unwrap();
            r.remove_files(FileType::Index, &[id]).unwrap();
            return;
        }
    }
    panic!("pack {pack} not in any index");
}

fn index_of(repo: &Path, pack: &Id) -> Id {
    let r = open(repo);
    for id in r.list_ids(FileType::Index).unwrap() {
        let f = IndexFile::from_json(&r.load_unpacked(FileType::Index, &id).unwrap()).unwrap();
        if f.packs.iter().any(|p| p.id == *pack) {
            return id;
        }
    }
    panic!("pack {pack} not in any index");
}

#[test]
fn restic_fixtures_and_a_cairn_repository_check_clean() {
    let Some(t) = Tools::get() else { return };
    let d = tempfile::tempdir().unwrap();
    for name in ["repo-v1", "repo-v2"] {
        let repo = extract_fixture(name, d.path());
        for args in [&[][..], &["--read-data"]] {
            let out = run(cairn()
                .env("RESTIC_PASSWORD", "fixture-password")
                .arg("-r")
                .arg(&repo)
                .arg("check")
                .args(args));
            assert_eq!(out.code, 0, "{name}: {}", out.text);
            for phase in [
                "load indexes",
                "check all packs",
                "check snapshots, trees and blobs",
                "no errors were found",
            ] {
                assert!(out.text.contains(phase), "{}", out.text);
            }
        }
    }

    let src = d.path().join("src");
    make_source_tree(&src);
    let repo = build(d.path(), &[src]);
    t.clean("cairn repository", &repo, &[]);
    let c = t.clean("cairn repository", &repo, &["--read-data"]);
    assert!(c.text.contains("read all data"), "{}", c.text);
    // restic 0.17's JSON summary.
    let out = ok(cairn()
        .arg("-r")
        .arg(&repo)
        .args(["check", "--read-data", "--json"]));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v,
        serde_json::json!({"message_type": "summary", "num_errors": 0, "broken_packs": null,
            "suggest_repair_index": false, "suggest_prune": false})
    );
    let e = run(cairn().arg("-r").arg(&repo).args([
        "check",
        "--read-data",
        "--read-data-subset",
        "1/2",
    ]));
    assert_eq!(e.code, 1);
    assert!(e.text.contains("cannot be used together"), "{}", e.text);
}

#[test]
fn damage_is_found_like_restic() {
    let Some(t) = Tools::get() else { return };
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("src");
    make_source_tree(&src);
    let rnd = d.path().join("rnd");
    std::fs::create_dir(&rnd).unwrap();
    std::fs::write(rnd.join("a"), noise(1, 1_600_000)).unwrap();
    std::fs::write(rnd.join("b"), noise(2, 1_300_000)).unwrap();
    let base = build(d.path(), &[src, rnd]);
    let all = packs(&base);
    let (tree_packs, data_packs): (Vec<_>, Vec<_>) = all
        .iter()
        .partition(|(_, b)| b[0].blob_type == BlobType::Tree);
    // The data pack with the most blobs, and the tree pack of the first snapshot.
    let (data, data_blobs) = data_packs
        .iter()
        .map(|(id, b)| (**id, (*b).clone()))
        .max_by_key(|(_, b)| b.len())
        .unwrap();
    assert!(data_blobs.len() >= 2, "{data_blobs:?}");
    let base_repo = open(&base);
    let snaps = base_repo.load_snapshots().unwrap();
    assert_eq!(snaps.len(), 2);
    let (snap1, s1) = &snaps[0];
    let tree = base_repo.locate(BlobType::Tree, &s1.tree).unwrap();
    assert!(tree_packs.iter().any(|(id, _)| **id == tree.pack_id));
    // The snapshot whose root tree is listed in the same index file as `data`.
    let data_index = index_of(&base, &data);
    let snap2 = snaps
        .iter()
        .find(|(_, s)| {
            let p = base_repo.locate(BlobType::Tree, &s.tree).unwrap().pack_id;
            index_of(&base, &p) == data_index
        })
        .map(|(id, _)| *id)
        .unwrap();
    drop(base_repo);
    t.clean("undamaged", &base, &["--read-data"]);

    // A flipped byte inside a data blob: found only by reading data.
    let (_g, repo) = copy(&base);
    flip(
        &pack_path(&repo, &data),
        data_blobs[1].offset as usize + 100,
    );
    t.clean("blob byte", &repo, &[]);
    t.found("blob byte", &repo, &["--read-data"], &[data]);

    // A flipped byte in a pack header.
    let (_g, repo) = copy(&base);
    let p = pack_path(&repo, &data);
    let len = std::fs::metadata(&p).unwrap().len() as usize;
    flip(&p, len - 30);
    t.clean("header byte", &repo, &[]);
    t.found("header byte", &repo, &["--read-data"], &[data]);

    // A truncated pack: the size is wrong, found without reading data.
    let (_g, repo) = copy(&base);
    let p = pack_path(&repo, &data);
    let b = std::fs::read(&p).unwrap();
    std::fs::write(&p, &b[..b.len() - 100]).unwrap();
    t.found("truncated pack", &repo, &[], &[data]);
    t.found("truncated pack", &repo, &["--read-data"], &[data]);

    // A missing pack.
    let (_g, repo) = copy(&base);
    std::fs::remove_file(pack_path(&repo, &data)).unwrap();
    let c = t.found("missing pack", &repo, &[], &[data]);
    assert!(c.text.contains("does not exist"), "{}", c.text);
    // (restic 0.14 retries a missing pack for about 45 s with --read-data: Cairn only.)
    let c = t.cairn(&repo, &["--read-data"]);
    assert_eq!(c.code, 1);
    assert!(c.text.contains(&data.to_hex()), "{}", c.text);

    // A removed index file: its packs are not indexed (named with -v), the second snapshot's
    // trees are missing.
    let (_g, repo) = copy(&base);
    std::fs::remove_file(repo.join("index").join(data_index.to_hex())).unwrap();
    t.found("removed index", &repo, &[], &[snap2]);
    let v = run(cairn().arg("-r").arg(&repo).args(["check", "-v"]));
    assert!(
        v.text
            .contains(&format!("pack {data}: not referenced in any index")),
        "{}",
        v.text
    );

    // An index rewritten without one pack: its blobs are missing from the snapshot's files.
    let (_g, repo) = copy(&base);
    rewrite_index(&repo, &data, |f| f.packs.retain(|p| p.id != data));
    t.found("index without a pack", &repo, &[], &[snap2]);
    t.found("index without a pack", &repo, &["--read-data"], &[snap2]);

    // A damaged tree blob: found without reading data (trees are loaded), naming the pack.
    let (_g, repo) = copy(&base);
    flip(&pack_path(&repo, &tree.pack_id), tree.offset as usize + 20);
    let c = t.found("tree blob", &repo, &[], &[tree.pack_id]);
    assert!(c.text.contains(&s1.tree.short()) && c.text.contains(&snap1.short()));
    t.found("tree blob", &repo, &["--read-data"], &[tree.pack_id]);

    // The index points at the wrong offset for a tree.
    let (_g, repo) = copy(&base);
    rewrite_index(&repo, &tree.pack_id, |f| {
        for p in &mut f.packs {
            for b in &mut p.blobs {
                if b.id == s1.tree {
                    b.offset += 1;
                }
            }
        }
    });
    t.found("tree offset", &repo, &[], &[s1.tree]);
    t.found("tree offset", &repo, &["--read-data"], &[tree.pack_id]);

    // The index swaps two data blobs of a pack: sizes still match, only reading finds it.
    let (_g, repo) = copy(&base);
    rewrite_index(&repo, &data, |f| {
        let p = f.packs.iter_mut().find(|p| p.id == data).unwrap();
        let (a, b) = (p.blobs[0].id, p.blobs[1].id);
        p.blobs[0].id = b;
        p.blobs[1].id = a;
    });
    t.clean("swapped blobs", &repo, &[]);
    t.found("swapped blobs", &repo, &["--read-data"], &[data]);

    // An undecryptable snapshot file.
    let (_g, repo) = copy(&base);
    flip(&repo.join("snapshots").join(snap1.to_hex()), 40);
    t.found("snapshot", &repo, &[], &[*snap1]);

    // An undecryptable index file: the check stops after loading the index.
    let (_g, repo) = copy(&base);
    let idx = index_of(&repo, &tree.pack_id);
    flip(&repo.join("index").join(idx.to_hex()), 40);
    let c = t.found("index file", &repo, &["--read-data"], &[idx]);
    assert!(c.text.contains("repair index"), "{}", c.text);
    assert!(!c.text.contains("check all packs"), "{}", c.text);

    // Hints only: a pack in no index (an extra copy under another name) and a pack listed in
    // two index files.
    let (_g, repo) = copy(&base);
    let extra = Id::hash(b"not a real pack");
    let dst = pack_path(&repo, &extra);
    std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
    std::fs::copy(pack_path(&repo, &data), &dst).unwrap();
    let c = t.clean("orphan pack", &repo, &["--read-data"]);
    assert!(
        c.text.contains("1 additional files were found"),
        "{}",
        c.text
    );
    let r = open(&repo);
    let entry = IndexPack::from_blobs(data, &data_blobs);
    r.save_unpacked(
        FileType::Index,
        &IndexFile {
            supersedes: vec![],
            packs: vec![entry],
        }
        .to_json(),
    )
    .unwrap();
    let c = t.clean("duplicate pack", &repo, &["--read-data"]);
    assert!(
        c.text.contains("contained in several indexes"),
        "{}",
        c.text
    );
    let out = ok(cairn().arg("-r").arg(&repo).args(["check", "--json"]));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["suggest_repair_index"], true);
    assert_eq!(v["suggest_prune"], true);
    assert_eq!(v["num_errors"], 0);

    // JSON on damage: the broken pack is listed.
    let (_g, repo) = copy(&base);
    flip(&pack_path(&repo, &data), data_blobs[0].offset as usize + 50);
    let out = expect_code(
        cairn()
            .arg("-r")
            .arg(&repo)
            .args(["check", "--read-data", "--json"]),
        1,
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["broken_packs"], serde_json::json!([data.to_hex()]));
    assert!(v["num_errors"].as_u64().unwrap() >= 1);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.lines()
            .any(|l| l.contains("\"message_type\":\"error\"") && l.contains(&data.to_hex())),
        "{err}"
    );
}

#[test]
fn read_data_subset_selects_the_same_packs_as_restic() {
    let Some(t) = Tools::get() else { return };
    let d = tempfile::tempdir().unwrap();
    // Ten small snapshots: ten data packs and ten tree packs.
    let dirs: Vec<PathBuf> = (0..10u64)
        .map(|i| {
            let dir = d.path().join(format!("s{i}"));
            std::fs::create_dir(&dir).unwrap();
            std::fs::write(dir.join("f"), noise(100 + i, 3000)).unwrap();
            dir
        })
        .collect();
    let base = build(d.path(), &dirs);
    let all = packs(&base);
    assert!(all.len() >= 16, "{}", all.len());
    // Damage two data packs; each group n/t must fail exactly when it holds one of them.
    let mut data: Vec<Id> = all
        .iter()
        .filter(|(_, b)| b[0].blob_type == BlobType::Data)
        .map(|(id, _)| *id)
        .collect();
    data.sort();
    let damaged = [data[0], data[data.len() - 1]];
    for id in &damaged {
        let b = &all[id][0];
        flip(&pack_path(&base, id), b.offset as usize + 40);
    }
    for total in [2u32, 3, 5] {
        for n in 1..=total {
            let subset = format!("{n}/{total}");
            let hit: Vec<Id> = damaged
                .iter()
                .filter(|id| u32::from(id.0[0]) % total == n - 1)
                .copied()
                .collect();
            let (c, r) = t.both("subset", &base, &["--read-data-subset", &subset]);
            assert_eq!(
                r.code != 0,
                !hit.is_empty(),
                "{subset}: restic:\n{}",
                r.text
            );
            for id in &hit {
                assert!(c.text.contains(&id.to_hex()), "{subset}:\n{}", c.text);
            }
            let selected = all
                .keys()
                .filter(|id| u32::from(id.0[0]) % total == n - 1)
                .count();
            assert!(
                c.text.contains(&format!(
                    "read group #{n} of {selected} data packs (out of total {} packs in {total} groups)",
                    all.len()
                )),
                "{}",
                c.text
            );
        }
    }
    // Percentages and sizes are random choices; 100% reads everything.
    let c = t.cairn(&base, &["--read-data-subset", "100%"]);
    assert_eq!(c.code, 1);
    assert!(damaged.iter().all(|id| c.text.contains(&id.to_hex())));
    let c = t.cairn(&base, &["--read-data-subset", "1G"]);
    assert_eq!(c.code, 1);
    assert!(damaged.iter().all(|id| c.text.contains(&id.to_hex())));
    let c = t.cairn(&base, &["--read-data-subset", "0%"]);
    assert_eq!(c.code, 1);
    assert!(c.text.contains("above 0.0%"), "{}", c.text);
}
