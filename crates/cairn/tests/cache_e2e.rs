//! End-to-end tests of the metadata cache: `CAIRN_CACHE_LOCAL=1` forces it for a local
//! repository, so the restic cache layout can be checked after real commands.

mod common;
use common::*;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

/// `cairn -r REPO` with the cache forced on for local repositories.
fn cached(repo: &Path) -> Command {
    let mut c = cairn();
    c.env("CAIRN_CACHE_LOCAL", "1")
        .env_remove("CAIRN_CACHE_DIR")
        .env_remove("RESTIC_CACHE_DIR")
        .arg("-r")
        .arg(repo);
    c
}

/// Names of the files in a repository directory (`snapshots`, `index`).
fn repo_files(repo: &Path, dir: &str) -> BTreeSet<String> {
    std::fs::read_dir(repo.join(dir))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

/// Names of the cached files of a type, checking each sits in its `<xx>/` directory.
fn cache_files(cache_repo: &Path, dir: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let Ok(subs) = std::fs::read_dir(cache_repo.join(dir)) else {
        return out;
    };
    for sub in subs {
        let sub = sub.unwrap();
        let prefix = sub.file_name().to_string_lossy().into_owned();
        for f in std::fs::read_dir(sub.path()).unwrap() {
            let name = f.unwrap().file_name().to_string_lossy().into_owned();
            assert!(name.starts_with(&prefix), "{name} in {prefix}/");
            out.insert(name);
        }
    }
    out
}

fn config_id(repo: &Path) -> String {
    let out = ok(cairn().arg("-r").arg(repo).args(["cat", "config"]));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["id"].as_str().unwrap().to_string()
}

fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn source(d: &Path) -> PathBuf {
    let src = d.join("src");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::write(src.join("a.txt"), b"alpha\n").unwrap();
    std::fs::write(src.join("sub/b.bin"), vec![9u8; 200_000]).unwrap();
    src
}

#[test]
fn forced_cache_for_a_local_repository_has_restics_layout() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let repo = d.join("repo");
    let cache = d.join("cache");
    let src = source(d);
    ok(cairn().arg("-r").arg(&repo).arg("init"));
    ok(cached(&repo)
        .arg("--cache-dir")
        .arg(&cache)
        .arg("backup")
        .arg(&src));

    let id = config_id(&repo);
    let cr = cache.join(&id);
    let tag = std::fs::read_to_string(cache.join("CACHEDIR.TAG")).unwrap();
    assert!(tag.starts_with("Signature: 8a477f597d28d172789f06886806bc55\n"));
    assert_eq!(std::fs::read_to_string(cr.join("version")).unwrap(), "1");
    assert_eq!(mode(&cr), 0o700);
    // Written snapshots and index files went into the cache as well.
    let snaps = repo_files(&repo, "snapshots");
    assert_eq!(snaps.len(), 1);
    assert_eq!(cache_files(&cr, "snapshots"), snaps);
    assert!(!repo_files(&repo, "index").is_empty());
    assert_eq!(cache_files(&cr, "index"), repo_files(&repo, "index"));
    let snap = snaps.iter().next().unwrap();
    let cached_snap = cr.join("snapshots").join(&snap[..2]).join(snap);
    assert_eq!(
        std::fs::read(&cached_snap).unwrap(),
        std::fs::read(repo.join("snapshots").join(snap)).unwrap()
    );
    assert_eq!(mode(&cached_snap), 0o600);

    // Reading commands work through the cache, and restore gives back the source.
    let out = ok(cached(&repo)
        .arg("--cache-dir")
        .arg(&cache)
        .args(["snapshots", "--json"]));
    let v: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v.len(), 1);
    let target = d.join("restore");
    ok(cached(&repo)
        .arg("--cache-dir")
        .arg(&cache)
        .args(["restore", "latest", "--target"])
        .arg(&target));
    let restored = target.join(src.strip_prefix("/").unwrap());
    assert_eq!(std::fs::read(restored.join("a.txt")).unwrap(), b"alpha\n");
    assert_eq!(
        std::fs::read(restored.join("sub/b.bin")).unwrap(),
        vec![9u8; 200_000]
    );
    // The packs holding trees were fetched into the cache while restoring (data packs not).
    let cache_root = std::fs::read_dir(&cache)
        .unwrap()
        .flatten()
        .find(|e| e.path().join("version").exists())
        .unwrap()
        .path();
    let cached_packs: Vec<_> = std::fs::read_dir(cache_root.join("data"))
        .unwrap()
        .flatten()
        .flat_map(|sub| std::fs::read_dir(sub.path()).unwrap().flatten())
        .collect();
    let repo_packs: usize = std::fs::read_dir(repo.join("data"))
        .unwrap()
        .flatten()
        .map(|sub| std::fs::read_dir(sub.path()).unwrap().count())
        .sum();
    assert!(!cached_packs.is_empty(), "no tree pack cached");
    assert!(cached_packs.len() < repo_packs, "data packs cached too");

    // A damaged cached snapshot is replaced by the repository's copy.
    std::fs::write(&cached_snap, b"garbage").unwrap();
    ok(cached(&repo)
        .arg("--cache-dir")
        .arg(&cache)
        .args(["snapshots", "--json"]));
    assert_eq!(
        std::fs::read(&cached_snap).unwrap(),
        std::fs::read(repo.join("snapshots").join(snap)).unwrap()
    );

    // A snapshot removed by another client leaves the cache at the next listing.
    ok(cached(&repo)
        .arg("--cache-dir")
        .arg(&cache)
        .arg("backup")
        .arg(&src));
    assert_eq!(cache_files(&cr, "snapshots").len(), 2);
    std::fs::remove_file(repo.join("snapshots").join(snap)).unwrap();
    let out = ok(cached(&repo)
        .arg("--cache-dir")
        .arg(&cache)
        .args(["snapshots", "--json"]));
    let v: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v.len(), 1);
    assert_eq!(
        cache_files(&cr, "snapshots"),
        repo_files(&repo, "snapshots")
    );
}

#[test]
fn no_cache_and_local_repositories_leave_no_cache() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let repo = d.join("repo");
    let src = source(d);
    ok(cairn().arg("-r").arg(&repo).arg("init"));

    // --no-cache wins over CAIRN_CACHE_LOCAL and --cache-dir.
    let none = d.join("no-cache");
    ok(cached(&repo)
        .arg("--cache-dir")
        .arg(&none)
        .arg("--no-cache")
        .arg("backup")
        .arg(&src));
    ok(cached(&repo)
        .arg("--cache-dir")
        .arg(&none)
        .arg("--no-cache")
        .args(["snapshots", "--json"]));
    assert!(!none.exists());

    // Without CAIRN_CACHE_LOCAL a local repository is read directly: no per-repository cache.
    let plain = d.join("plain");
    ok(cairn()
        .env_remove("CAIRN_CACHE_LOCAL")
        .arg("-r")
        .arg(&repo)
        .arg("--cache-dir")
        .arg(&plain)
        .arg("backup")
        .arg(&src));
    assert!(!plain.join(config_id(&repo)).exists());
}
