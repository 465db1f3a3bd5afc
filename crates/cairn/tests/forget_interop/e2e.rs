//! The fixture repository with restic 0.14's recorded decisions through the CLI, text output,
//! real removals checked with restic, the safety rules, exit codes and `--prune`.

use super::*;

fn vectors() -> Value {
    let p = shared().join("fixtures/forget-vectors.json");
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

fn fixture_copy(dir: &Path) -> PathBuf {
    extract_fixture("repo-forget", dir)
}

fn fixture_cairn(repo: &Path) -> std::process::Command {
    let mut c = cairn();
    c.env("RESTIC_PASSWORD", "fixture-password")
        .env("TZ", "UTC")
        .arg("-r")
        .arg(repo);
    c
}

fn fixture_restic_ids(rb: &Path, repo: &Path, cache: &Path) -> Vec<String> {
    let out = ok(restic(rb, cache)
        .env("RESTIC_PASSWORD", "fixture-password")
        .arg("-r")
        .arg(repo)
        .args(["snapshots", "--json"]));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut ids: Vec<String> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

fn snapshot_files(repo: &Path) -> usize {
    std::fs::read_dir(repo.join("snapshots")).unwrap().count()
}

#[test]
fn fixture_vectors_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let repo = fixture_copy(dir.path());
    let v = vectors();
    for case in v["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let args = strings(&case["args"]).unwrap();
        let out = fixture_cairn(&repo)
            .args(["forget", "--dry-run", "--json"])
            .args(&args)
            .output()
            .unwrap();
        if name == "tag" {
            assert_eq!(out.status.code(), Some(1), "{name}");
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                err.contains("refusing to delete last snapshot of snapshot group"),
                "{err}"
            );
            assert!(err.contains("host beta, path [/"), "{err}");
            continue;
        }
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let got = parse_groups(&out.stdout);
        let groups = case["groups"].as_array().unwrap();
        assert_eq!(got.len(), groups.len(), "{name}");
        for want in groups {
            let key = (
                want["host"].as_str().unwrap().to_string(),
                strings(&want["paths"]),
                strings(&want["tags"]),
            );
            let g = &got[&key];
            let mut keep = strings(&want["keep"]).unwrap();
            let mut remove = strings(&want["remove"]).unwrap();
            let mut matches: Vec<Vec<String>> = want["keep_reasons"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| strings(&r["matches"]).unwrap())
                .collect();
            if name == "weekly100" && key.0 == "alpha" {
                // restic ≥ 0.16 keeps the oldest snapshot while weekly counts are left.
                let oldest = remove.pop().unwrap();
                assert!(oldest.starts_with("6306f0af"));
                keep.push(oldest);
                matches.push(vec!["oldest weekly snapshot".into()]);
            }
            assert_eq!(g.keep, keep, "{name} {key:?}");
            assert_eq!(g.remove, remove, "{name} {key:?}");
            assert_eq!(g.matches, matches, "{name} {key:?}");
        }
    }
    // JSON shape: snapshots carry id/short_id, paths sorted like restic, reasons embed the
    // snapshot; empty lists are null.
    let out = ok(fixture_cairn(&repo).args([
        "forget",
        "--dry-run",
        "--json",
        "--keep-last",
        "1",
        "--host",
        "beta",
        "--path",
        "/etc",
    ]));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let g = &v[0];
    assert_eq!(g["host"], "beta");
    assert_eq!(g["tags"], Value::Null);
    assert_eq!(g["paths"], serde_json::json!(["/etc", "/home"]));
    assert_eq!(g["keep"][0]["short_id"], "e598586d");
    assert_eq!(
        g["remove"][0]["paths"],
        serde_json::json!(["/etc", "/home"])
    );
    assert_eq!(g["remove"][0]["id"].as_str().unwrap().len(), 64);
    assert_eq!(g["reasons"][0]["snapshot"]["id"], g["keep"][0]["id"]);
    assert_eq!(
        g["reasons"][0]["matches"],
        serde_json::json!(["last snapshot"])
    );
    let out = ok(fixture_cairn(&repo).args([
        "forget",
        "--dry-run",
        "--json",
        "--keep-last",
        "5",
        "--host",
        "beta",
        "--path",
        "/etc",
    ]));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["remove"], Value::Null);
    // Nothing was removed by the dry runs.
    assert_eq!(snapshot_files(&repo), 26);
}

#[test]
fn fixture_text_output() {
    let dir = tempfile::tempdir().unwrap();
    let repo = fixture_copy(dir.path());
    let out = ok(fixture_cairn(&repo).args([
        "forget",
        "--dry-run",
        "--keep-last",
        "2",
        "--keep-tag",
        "important",
    ]));
    let text = String::from_utf8_lossy(&out.stdout);
    for want in [
        "Applying Policy: keep 2 latest snapshots and all snapshots with tags [[important]]",
        "snapshots for (host [alpha], paths [/srv]):",
        "keep 4 snapshots:",
        "remove 19 snapshots:",
        "Reasons",
        "has tags [important]",
        "last snapshot",
        "e598586d",
        "Would have removed the following snapshots:\n{0c6ad703 113bfc7f",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
    let out = ok(fixture_cairn(&repo).args(["forget", "--dry-run", "-c", "-l", "1", "-g", "host"]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("snapshots for (host [beta]):"), "{text}");
    assert!(!text.contains("Reasons"), "{text}");
    let out = ok(fixture_cairn(&repo).args(["-q", "forget", "--dry-run", "-l", "1"]));
    assert!(out.stdout.is_empty());
}

#[test]
fn real_forget_removes_files_and_restic_agrees() {
    let Some(rb) = external("restic") else { return };
    let dir = tempfile::tempdir().unwrap();
    let repo = fixture_copy(dir.path());
    let cache = dir.path().join("cache");
    let v = vectors();
    let combo = v["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "combo")
        .unwrap();
    let args = strings(&combo["args"]).unwrap();
    let out = ok(fixture_cairn(&repo).arg("forget").args(&args));
    assert!(String::from_utf8_lossy(&out.stdout).contains("removed 17 snapshots"));
    let mut want: Vec<String> = combo["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| strings(&g["keep"]).unwrap())
        .collect();
    want.sort();
    assert_eq!(fixture_restic_ids(&rb, &repo, &cache), want);
    assert_eq!(snapshot_files(&repo), want.len());
    // Applying the same policy again removes nothing.
    let out = ok(fixture_cairn(&repo).args(["forget", "--json"]).args(&args));
    let g = parse_groups(&out.stdout);
    assert!(g.values().all(|g| g.remove.is_empty()));
    assert_eq!(snapshot_files(&repo), want.len());
    // No lock left behind.
    assert_eq!(std::fs::read_dir(repo.join("locks")).unwrap().count(), 0);
}

#[test]
fn safety_rules_and_exit_codes() {
    let Some(rb) = external("restic") else { return };
    let dir = tempfile::tempdir().unwrap();
    let repo = fixture_copy(dir.path());
    let cache = dir.path().join("cache");
    let fail = |args: &[&str], code: i32, msg: &str| {
        let out = expect_code(fixture_cairn(&repo).arg("forget").args(args), code);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(msg), "{args:?}: {err}");
    };
    fail(
        &[],
        1,
        "no policy was specified, no snapshots will be removed",
    );
    fail(
        &["--unsafe-allow-remove-all"],
        1,
        "--unsafe-allow-remove-all is not allowed unless a snapshot filter option is specified",
    );
    fail(
        &["--keep-tag", "important"],
        1,
        "refusing to delete last snapshot of snapshot group",
    );
    fail(&["--group-by", "host,color"], 1, "unknown grouping option");
    fail(&["ffffffff"], 1, "no snapshot");
    // Usage errors (clap): exit 2.
    fail(&["--keep-daily", "-1"], 2, "use 'unlimited' instead");
    fail(&["--keep-within", "5x"], 2, "invalid unit");
    fail(&["--keep-last", "1", "--unknown-flag"], 2, "--unknown-flag");
    let out = expect_code(
        fixture_cairn(&repo).args(["--no-lock", "forget", "-l", "1"]),
        1,
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("--no-lock is only applicable"));
    assert_eq!(snapshot_files(&repo), 26);
    // --no-lock with --dry-run takes no lock (works on a read-only locks dir).
    ok(fixture_cairn(&repo).args(["--no-lock", "forget", "--dry-run", "-l", "1"]));
    // Wrong password: exit 12; missing repository: exit 10.
    expect_code(
        fixture_cairn(&repo)
            .env("RESTIC_PASSWORD", "wrong")
            .args(["forget", "-l", "1"]),
        12,
    );
    expect_code(
        cairn()
            .arg("-r")
            .arg(dir.path().join("missing"))
            .args(["forget", "-l", "1"]),
        10,
    );

    // Removing everything of a host needs the flag and a filter.
    ok(fixture_cairn(&repo).args(["forget", "--unsafe-allow-remove-all", "--host", "beta"]));
    let ids = fixture_restic_ids(&rb, &repo, &cache);
    assert_eq!(ids.len(), 23);
    // "unlimited" keeps everything (and the oldest rule keeps the rest).
    let out = ok(fixture_cairn(&repo).args([
        "forget",
        "--dry-run",
        "--json",
        "--keep-daily",
        "unlimited",
    ]));
    let g = parse_groups(&out.stdout);
    assert_eq!(g.len(), 1);
    // Explicit IDs (unique prefixes) are removed without a policy; filters are ignored.
    let out =
        ok(fixture_cairn(&repo).args(["forget", "--host", "nobody", "9fffb0d6", "d6e4ddd5d5"]));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Ignoring filters"));
    let ids = fixture_restic_ids(&rb, &repo, &cache);
    assert_eq!(ids.len(), 21);
    assert!(
        !ids.iter()
            .any(|i| i.starts_with("9fffb0d6") || i.starts_with("d6e4ddd5"))
    );
    // `latest` with filters.
    ok(fixture_cairn(&repo).args(["forget", "--tag", "important", "latest"]));
    let ids = fixture_restic_ids(&rb, &repo, &cache);
    assert_eq!(ids.len(), 20);
    assert!(!ids.iter().any(|i| i.starts_with("4798d0cd")));
}

#[test]
fn forget_with_prune() {
    let Some(rb) = external("restic") else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let repo = d.join("repo");
    let cache = d.join("cache");
    ok(cairn().args(["init", "-r"]).arg(&repo));
    let src = d.join("src");
    std::fs::create_dir_all(&src).unwrap();
    for i in 0..3u8 {
        std::fs::write(src.join("f.txt"), vec![i; 200_000]).unwrap();
        ok(cairn().arg("-r").arg(&repo).arg("backup").arg(&src));
    }
    let json_lines = |out: &Output| -> Vec<Value> {
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let cairn_repo = |args: &[&str]| {
        let mut c = cairn();
        c.arg("-r").arg(&repo).args(args);
        c
    };
    // Dry run: the snapshots to forget still exist, but prune treats their data as unused.
    let out = ok(&mut cairn_repo(&[
        "--json",
        "forget",
        "-l",
        "1",
        "--prune",
        "--dry-run",
    ]));
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0][0]["remove"].as_array().unwrap().len(), 2);
    assert_eq!(lines[1]["message_type"], "summary");
    assert_eq!(lines[1]["dry_run"], true);
    assert!(
        lines[1]["blobs"]["unused"].as_u64().unwrap() >= 2,
        "{}",
        lines[1]
    );
    let before = ok(&mut cairn_repo(&["--json", "prune", "--dry-run"]));
    assert_eq!(json_lines(&before)[0]["blobs"]["unused"], 0);
    // The real run removes the snapshots and then their data.
    let out = ok(&mut cairn_repo(&[
        "--json",
        "forget",
        "-l",
        "1",
        "--prune",
        "--max-unused",
        "0",
    ]));
    let lines = json_lines(&out);
    assert_eq!(lines[1]["dry_run"], false, "{lines:?}");
    let listed = ok(restic(&rb, &cache)
        .arg("-r")
        .arg(&repo)
        .args(["snapshots", "--json"]));
    let v: Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 1);
    ok(restic(&rb, &cache)
        .arg("-r")
        .arg(&repo)
        .args(["check", "--read-data"]));
    let after = ok(&mut cairn_repo(&["--json", "prune", "--dry-run"]));
    assert_eq!(json_lines(&after)[0]["blobs"]["unused"], 0);
    ok(cairn_repo(&["restore", "latest", "--target"]).arg(d.join("r")));
    assert_eq!(
        std::fs::read(restored(&d.join("r"), &src).join("f.txt")).unwrap(),
        vec![2u8; 200_000]
    );
    // Nothing removed: prune does not run (restic runs it only after removals).
    let out = ok(&mut cairn_repo(&["forget", "-l", "1", "--prune"]));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("running prune"));
}
