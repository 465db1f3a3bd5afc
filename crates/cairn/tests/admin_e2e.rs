//! End-to-end and interop tests of the administrative commands: `key`, `list`, `cache`,
//! `stats` and `migrate`, against the real restic where it matters.

mod common;
use common::*;
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json(o: &std::process::Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("bad JSON ({e}): {}", stdout(o)))
}

fn cairn_r(repo: &Path) -> Command {
    let mut c = cairn();
    c.arg("-r").arg(repo).arg("--no-cache");
    c
}

fn restic_r(bin: &Path, cache: &Path, repo: &Path) -> Command {
    let mut c = restic(bin, cache);
    c.arg("-r").arg(repo);
    c
}

fn write_file(p: &Path, s: &str) -> PathBuf {
    std::fs::write(p, s).unwrap();
    p.to_path_buf()
}

#[test]
fn keys_add_remove_passwd_interop() {
    let Some(rbin) = external("restic") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let repo = d.join("repo");
    let rcache = d.join("rcache");
    ok(cairn_r(&repo).arg("init"));
    let first = json(&ok(cairn_r(&repo).args(["--json", "key", "list"])));
    let first = first.as_array().unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0]["current"], true);
    let first_id = first[0]["id"].as_str().unwrap().to_string();
    assert_eq!(first_id.len(), 64);

    // cairn adds a key; restic opens the repository with it.
    let pw2 = write_file(&d.join("pw2"), "second password\n");
    let out = ok(cairn_r(&repo)
        .args([
            "key",
            "add",
            "--user",
            "bob",
            "--host",
            "hh",
            "--new-password-file",
        ])
        .arg(&pw2));
    let added = stdout(&out)
        .trim()
        .strip_prefix("saved new key with ID ")
        .unwrap()
        .to_string();
    let out = ok(restic_r(&rbin, &rcache, &repo)
        .env("RESTIC_PASSWORD", "second password")
        .args(["key", "list", "--json"]));
    let keys = json(&out);
    let current: Vec<&Value> = keys
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["current"] == true)
        .collect();
    assert_eq!(keys.as_array().unwrap().len(), 2);
    assert_eq!(current.len(), 1);
    assert!(added.starts_with(current[0]["id"].as_str().unwrap()));
    assert_eq!(current[0]["userName"], "bob");
    assert_eq!(current[0]["hostName"], "hh");

    // restic adds a key; cairn opens the repository with it and lists all three.
    let pw3 = write_file(&d.join("pw3"), "third password");
    ok(restic_r(&rbin, &rcache, &repo)
        .args(["key", "add", "--new-password-file"])
        .arg(&pw3));
    let keys = json(&ok(cairn_r(&repo)
        .env("RESTIC_PASSWORD", "third password")
        .args(["--json", "key", "list"])));
    let keys = keys.as_array().unwrap();
    assert_eq!(keys.len(), 3);
    let restic_key = keys.iter().find(|k| k["current"] == true).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(restic_key != first_id && restic_key != added);
    // Text listing: restic's columns, the key in use marked.
    let text = stdout(&ok(cairn_r(&repo).args(["key", "list"])));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], " ID        User  Host  Created");
    assert_eq!(lines.len(), 6, "{text}");
    assert!(text.contains(&format!("*{}", &first_id[..8])), "{text}");
    assert!(text.contains(&format!(" {}  bob", &added[..8])), "{text}");

    // The key in use cannot be removed.
    let out = expect_code(cairn_r(&repo).args(["key", "remove", &first_id[..10]]), 1);
    assert!(stderr(&out).contains("refusing to remove key currently used"));
    // Another key can; restic can no longer open the repository with its password.
    let out = ok(cairn_r(&repo).args(["key", "remove", &restic_key[..12]]));
    assert_eq!(stdout(&out).trim(), format!("removed key {restic_key}"));
    let out = restic_r(&rbin, &rcache, &repo)
        .env("RESTIC_PASSWORD", "third password")
        .args(["cat", "config"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("wrong password"), "{}", stderr(&out));
    expect_code(
        cairn_r(&repo)
            .env("RESTIC_PASSWORD", "third password")
            .args(["cat", "config"]),
        12,
    );

    // passwd: the new password works everywhere, the old one nowhere; other keys stay.
    let out = ok(cairn_r(&repo)
        .args(["--json", "key", "passwd", "--new-password-file"])
        .arg(write_file(&d.join("pw4"), "fourth")));
    let v = json(&out);
    assert_eq!(v["removed"], first_id.as_str());
    expect_code(cairn_r(&repo).args(["cat", "config"]), 12);
    ok(restic_r(&rbin, &rcache, &repo)
        .env("RESTIC_PASSWORD", "fourth")
        .args(["cat", "config"]));
    let keys = json(&ok(cairn_r(&repo)
        .env("RESTIC_PASSWORD", "fourth")
        .args(["--json", "key", "list"])));
    assert_eq!(keys.as_array().unwrap().len(), 2);

    // A new password read from standard input (not a terminal); empty ones are refused.
    let mut child = cairn_r(&repo)
        .env("RESTIC_PASSWORD", "fourth")
        .args(["key", "add"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"from stdin\n")
        .unwrap();
    assert!(child.wait_with_output().unwrap().status.success());
    ok(restic_r(&rbin, &rcache, &repo)
        .env("RESTIC_PASSWORD", "from stdin")
        .args(["cat", "config"]));
    let out = expect_code(
        cairn_r(&repo)
            .env("RESTIC_PASSWORD", "fourth")
            .args(["key", "add", "--new-password-file"])
            .arg(write_file(&d.join("empty"), "\n")),
        1,
    );
    assert!(stderr(&out).contains("--new-insecure-no-password"));
    ok(cairn_r(&repo).env("RESTIC_PASSWORD", "fourth").args([
        "key",
        "add",
        "--new-insecure-no-password",
    ]));
    ok(cairn_r(&repo)
        .arg("--insecure-no-password")
        .args(["cat", "config"]));
}

/// Sorted output lines.
fn sorted_lines(o: &std::process::Output) -> Vec<String> {
    let mut v: Vec<String> = stdout(o).lines().map(String::from).collect();
    v.sort();
    v
}

#[test]
fn list_matches_restic() {
    let Some(rbin) = external("restic") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (repo, src, rcache) = (d.join("repo"), d.join("src"), d.join("rcache"));
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::write(src.join("a.txt"), "alpha\n").unwrap();
    std::fs::write(src.join("sub/b.txt"), "beta\n").unwrap();
    ok(cairn_r(&repo).arg("init"));
    ok(cairn_r(&repo).arg("backup").arg(&src));
    std::fs::write(src.join("c.txt"), "gamma\n").unwrap();
    ok(restic_r(&rbin, &rcache, &repo).arg("backup").arg(&src));
    ok(cairn_r(&repo).arg("backup").arg(&src));

    for kind in ["snapshots", "index", "packs", "keys", "blobs"] {
        let ours = sorted_lines(&ok(cairn_r(&repo).args(["list", kind])));
        let theirs = sorted_lines(&ok(restic_r(&rbin, &rcache, &repo).args(["list", kind])));
        assert_eq!(ours, theirs, "list {kind}");
        assert!(!ours.is_empty(), "list {kind}");
        let arr = json(&ok(cairn_r(&repo).args(["--json", "list", kind])));
        assert_eq!(
            arr.as_array().unwrap().len(),
            ours.len(),
            "list --json {kind}"
        );
    }
    assert_eq!(
        sorted_lines(&ok(cairn_r(&repo).args(["list", "snapshots"]))).len(),
        3
    );

    // A lock held by a running backup (waiting for stdin) is listed by both.
    let mut child = cairn_r(&repo)
        .args(["backup", "--stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut locks = Vec::new();
    for _ in 0..100 {
        locks = sorted_lines(&ok(cairn_r(&repo).args(["list", "locks"])));
        if !locks.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let theirs = sorted_lines(&ok(restic_r(&rbin, &rcache, &repo).args([
        "--no-lock",
        "list",
        "locks",
    ])));
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success());
    assert_eq!(locks.len(), 1);
    assert_eq!(locks, theirs);

    // `list packs SNAPSHOT`: the packs that snapshot needs, a subset of all packs.
    let all = sorted_lines(&ok(cairn_r(&repo).args(["list", "packs"])));
    let needed = sorted_lines(&ok(cairn_r(&repo).args(["list", "packs", "latest"])));
    assert!(!needed.is_empty() && needed.iter().all(|p| all.contains(p)));
    expect_code(cairn_r(&repo).args(["list", "bogus"]), 1);
}

#[test]
fn cache_lists_and_cleans_like_restic() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("cache");
    let fresh = base.join("0123456789abcdef".repeat(4));
    let old = base.join("fedcba9876543210".repeat(4));
    std::fs::create_dir_all(fresh.join("snapshots/01")).unwrap();
    std::fs::write(fresh.join("version"), "1").unwrap();
    std::fs::write(fresh.join("snapshots/01/x"), vec![1u8; 300]).unwrap();
    std::fs::create_dir_all(old.join("index")).unwrap();
    std::fs::write(old.join("index/y"), vec![1u8; 20]).unwrap();
    std::fs::create_dir_all(base.join("not-a-cache-dir")).unwrap();
    std::fs::write(
        base.join("CACHEDIR.TAG"),
        "Signature: 8a477f597d28d172789f06886806bc55\n",
    )
    .unwrap();
    ok(Command::new("touch").args(["-d", "40 days ago"]).arg(&old));

    let c = |args: &[&str]| {
        let mut c = cairn();
        c.arg("--cache-dir").arg(&base).args(args);
        c
    };
    let out = stdout(&ok(&mut c(&["cache"])));
    let want = format!(
        "Repo ID     Last Used    Old  Size\n\
         -----------------------------------------\n\
         fedcba9876  40 days ago  yes         20 B\n\
         0123456789  0 days ago              301 B\n\
         -----------------------------------------\n\
         2 cache dirs in {}\n",
        base.display()
    );
    assert_eq!(out, want);
    if let Some(rbin) = external("restic") {
        let theirs = ok(Command::new(&rbin)
            .arg("--cache-dir")
            .arg(&base)
            .arg("cache"));
        assert_eq!(out, stdout(&theirs));
        let theirs = ok(Command::new(&rbin)
            .arg("--cache-dir")
            .arg(&base)
            .args(["cache", "--no-size"]));
        assert_eq!(
            stdout(&ok(&mut c(&["cache", "--no-size"]))),
            stdout(&theirs)
        );
    }
    let v = json(&ok(&mut c(&["--json", "cache"])));
    let v = v.as_array().unwrap();
    assert_eq!(v.len(), 2);
    assert_eq!(v[0]["old"], true);
    assert_eq!(v[0]["age_days"], 40);
    assert_eq!(v[1]["size"], 301);

    // A larger --max-age keeps everything; the default removes only the old directory.
    let out = stdout(&ok(&mut c(&["cache", "--cleanup", "--max-age", "60"])));
    assert_eq!(out, "no old cache dirs found\n");
    assert!(old.exists());
    let out = stdout(&ok(&mut c(&["cache", "--cleanup"])));
    assert_eq!(out, "remove 1 old cache directories\n");
    assert!(!old.exists() && fresh.exists() && base.join("not-a-cache-dir").exists());
    assert!(base.join("CACHEDIR.TAG").exists());

    let out = stdout(&ok(cairn()
        .arg("--cache-dir")
        .arg(dir.path().join("none"))
        .arg("cache")));
    assert!(out.starts_with("no cache dirs found, basedir is "), "{out}");
    let out = expect_code(&mut c(&["--no-cache", "cache"]), 1);
    assert!(stderr(&out).contains("cache is disabled"));
}

/// Fields both restic 0.14 and cairn report (0.14 has no compression figures).
fn common_fields(v: &Value) -> [u64; 4] {
    let n = |k: &str| v.get(k).and_then(Value::as_u64).unwrap_or(0);
    [
        n("total_size"),
        n("total_file_count"),
        n("total_blob_count"),
        n("snapshots_count"),
    ]
}

fn compare_stats(rbin: &Path, rcache: &Path, repo: &Path, pw: &str, args: &[&str]) -> Value {
    let mut ours = cairn_r(repo);
    ours.env("RESTIC_PASSWORD", pw)
        .args(["--json", "stats"])
        .args(args);
    let ours = json(&ok(&mut ours));
    let mut theirs = restic_r(rbin, rcache, repo);
    theirs
        .env("RESTIC_PASSWORD", pw)
        .args(["--no-lock", "--json", "stats"])
        .args(args);
    let theirs = json(&ok(&mut theirs));
    assert_eq!(
        common_fields(&ours),
        common_fields(&theirs),
        "stats {args:?}: cairn {ours} restic {theirs}"
    );
    ours
}

const MODES: [&str; 4] = [
    "restore-size",
    "files-by-contents",
    "raw-data",
    "blobs-per-file",
];

fn snapshot_ids(repo: &Path, pw: &str) -> Vec<String> {
    sorted_lines(&ok(cairn_r(repo)
        .env("RESTIC_PASSWORD", pw)
        .args(["list", "snapshots"])))
}

#[test]
fn stats_match_restic() {
    let Some(rbin) = external("restic") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let rcache = d.join("rcache");

    // A repository written by cairn: two snapshots of the fixture tree (duplicate contents,
    // hard links, special files), the second after a change.
    let (repo, src) = (d.join("repo"), d.join("src"));
    make_source_tree(&src);
    ok(cairn_r(&repo).arg("init"));
    ok(cairn_r(&repo).args(["backup", "--host", "one"]).arg(&src));
    ok(Command::new("python3")
        .arg(shared().join("fixtures/make-source-tree.py"))
        .arg("--modify")
        .arg(&src));
    ok(cairn_r(&repo).args(["backup", "--host", "two"]).arg(&src));
    let ids = snapshot_ids(&repo, PASSWORD);
    assert_eq!(ids.len(), 2);
    for mode in MODES {
        // blobs-per-file depends on the order snapshots are walked in, which restic does
        // not define across snapshots: compare it per snapshot only.
        if mode != "blobs-per-file" {
            compare_stats(&rbin, &rcache, &repo, PASSWORD, &["--mode", mode]);
            compare_stats(
                &rbin,
                &rcache,
                &repo,
                PASSWORD,
                &["--mode", mode, "--host", "two"],
            );
        }
        compare_stats(&rbin, &rcache, &repo, PASSWORD, &["--mode", mode, "latest"]);
        compare_stats(
            &rbin,
            &rcache,
            &repo,
            PASSWORD,
            &["--mode", mode, &ids[0][..8]],
        );
    }
    let raw = compare_stats(&rbin, &rcache, &repo, PASSWORD, &["--mode", "raw-data"]);
    let (size, unc) = (
        raw["total_size"].as_f64().unwrap(),
        raw["total_uncompressed_size"].as_f64().unwrap(),
    );
    assert!(unc > size, "{raw}");
    let saving = raw["compression_space_saving"].as_f64().unwrap();
    assert!((saving - (1.0 - size / unc) * 100.0).abs() < 1e-9, "{raw}");
    assert!(raw["compression_ratio"].as_f64().unwrap() > 1.0, "{raw}");

    // Text output.
    let text = stdout(&ok(cairn_r(&repo).args(["stats", "latest"])));
    assert!(
        text.starts_with("scanning...\nStats in restore-size mode:\n"),
        "{text}"
    );
    assert!(text.contains("     Snapshots processed:  1\n"), "{text}");
    expect_code(cairn_r(&repo).args(["stats", "--mode", "bogus"]), 1);

    // The restic-written v2 fixture.
    let fx = extract_fixture("repo-v2", d);
    let fx_ids = snapshot_ids(&fx, "fixture-password");
    for mode in MODES {
        if mode != "blobs-per-file" {
            compare_stats(&rbin, &rcache, &fx, "fixture-password", &["--mode", mode]);
        }
        for id in &fx_ids {
            compare_stats(
                &rbin,
                &rcache,
                &fx,
                "fixture-password",
                &["--mode", mode, id],
            );
        }
    }
}

#[test]
fn migrate_upgrades_v1_repositories() {
    let Some(rbin) = external("restic") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let rcache = d.join("rcache");
    let (repo, src) = (d.join("repo"), d.join("src"));
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("text.txt"), "compressible text\n".repeat(5000)).unwrap();
    ok(cairn_r(&repo).args(["init", "--repository-version", "1"]));
    ok(cairn_r(&repo).arg("backup").arg(&src));

    let out = stdout(&ok(cairn_r(&repo).arg("migrate")));
    assert_eq!(
        out,
        "available migrations:\n  upgrade_repo_v2\tupgrade a repository to version 2\n"
    );
    let out = stdout(&ok(cairn_r(&repo).args(["migrate", "upgrade_repo_v2"])));
    assert!(out.contains("migration upgrade_repo_v2: success"), "{out}");
    let config = json(&ok(restic_r(&rbin, &rcache, &repo).args(["cat", "config"])));
    assert_eq!(config["version"], 2);

    // New data is compressed now; restic reads everything.
    std::fs::write(
        src.join("more.txt"),
        "more compressible text\n".repeat(5000),
    )
    .unwrap();
    ok(cairn_r(&repo).arg("backup").arg(&src));
    let raw = json(&ok(
        cairn_r(&repo).args(["--json", "stats", "--mode", "raw-data"])
    ));
    assert!(
        raw["compression_ratio"].as_f64().unwrap_or(0.0) > 1.0,
        "{raw}"
    );
    ok(restic_r(&rbin, &rcache, &repo).args(["check", "--read-data"]));

    // Nothing left to do; applying again is refused without --force.
    let out = stdout(&ok(cairn_r(&repo).arg("migrate")));
    assert_eq!(out, "available migrations:\nno migrations found\n");
    let out = ok(cairn_r(&repo).args(["migrate", "upgrade_repo_v2"]));
    assert!(stderr(&out).contains("cannot be applied: repository is already upgraded"));
    ok(cairn_r(&repo).args(["migrate", "--force", "upgrade_repo_v2"]));
    expect_code(cairn_r(&repo).args(["migrate", "no_such_migration"]), 1);
    ok(restic_r(&rbin, &rcache, &repo).arg("check"));

    // A v1 repository written by restic.
    let fx = extract_fixture("repo-v1", d);
    let out = ok(cairn_r(&fx)
        .env("RESTIC_PASSWORD", "fixture-password")
        .args(["--json", "migrate", "upgrade_repo_v2"]));
    assert_eq!(json(&out)["applied"][0], "upgrade_repo_v2");
    let config = json(&ok(restic_r(&rbin, &rcache, &fx)
        .env("RESTIC_PASSWORD", "fixture-password")
        .args(["cat", "config"])));
    assert_eq!(config["version"], 2);
    ok(cairn_r(&fx)
        .env("RESTIC_PASSWORD", "fixture-password")
        .arg("backup")
        .arg(&src));
    ok(restic_r(&rbin, &rcache, &fx)
        .env("RESTIC_PASSWORD", "fixture-password")
        .args(["check", "--read-data"]));
}
