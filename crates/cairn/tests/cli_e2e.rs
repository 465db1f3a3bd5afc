//! End-to-end tests of the built `cairn` binary: the default repository, exit codes,
//! backup options, JSON output.

mod common;
use common::*;
use std::path::Path;

fn json_lines(out: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(out)
        .lines()
        .filter(|l| l.starts_with('{') || l.starts_with('['))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn summary(out: &[u8]) -> serde_json::Value {
    json_lines(out)
        .into_iter()
        .rev()
        .find(|v| v["message_type"] == "summary")
        .expect("summary line")
}

fn snapshots(repo: &Path) -> Vec<serde_json::Value> {
    let out = ok(cairn().arg("-r").arg(repo).args(["snapshots", "--json"]));
    serde_json::from_slice::<Vec<serde_json::Value>>(&out.stdout).unwrap()
}

fn small_tree(root: &Path) {
    std::fs::create_dir_all(root.join("sub/deeper")).unwrap();
    std::fs::write(root.join("a.txt"), b"alpha\n").unwrap();
    std::fs::write(root.join("b.tmp"), b"temporary\n").unwrap();
    std::fs::write(root.join("sub/c.txt"), b"gamma\n").unwrap();
    std::fs::write(root.join("sub/deeper/d.txt"), vec![7u8; 300_000]).unwrap();
}

#[test]
fn default_repository_is_created_once_with_a_private_password() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    small_tree(&d.join("src"));
    let run = |args: &[&str]| {
        let mut c = cairn();
        c.env_remove("RESTIC_PASSWORD")
            .env("XDG_DATA_HOME", d.join("data"))
            .env("XDG_CONFIG_HOME", d.join("config"))
            .args(args);
        c
    };
    let src = d.join("src");
    let out = ok(run(&["backup"]).arg(&src));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("created the default repository"), "{err}");
    assert!(err.contains("keep a copy"), "{err}");
    let pw = d.join("config/cairn/default-repo.password");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&pw).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(d.join("data/cairn/repo/config").exists());
    // Second run: no announcement, same repository.
    let out = ok(run(&["backup"]).arg(&src));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("created the default"));
    let out = ok(&mut run(&["snapshots", "--json"]));
    let v: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v.len(), 2);
    // The real password unlocks it with any restic-compatible tool.
    let pwtext = std::fs::read_to_string(&pw).unwrap();
    let repo = d.join("data/cairn/repo");
    ok(cairn()
        .env("RESTIC_PASSWORD", pwtext.trim())
        .arg("-r")
        .arg(&repo)
        .arg("snapshots"));
}

#[test]
fn exit_codes_follow_restic() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let repo = d.join("repo");
    // Missing repository: 10.
    expect_code(cairn().arg("-r").arg(&repo).arg("snapshots"), 10);
    ok(cairn().arg("-r").arg(&repo).arg("init"));
    // Initialising twice fails cleanly.
    let out = expect_code(cairn().arg("-r").arg(&repo).arg("init"), 1);
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));
    // Wrong password: 12.
    expect_code(
        cairn()
            .env("RESTIC_PASSWORD", "wrong")
            .arg("-r")
            .arg(&repo)
            .arg("snapshots"),
        12,
    );
    // A source that does not exist next to one that does: partial backup, 3.
    small_tree(&d.join("src"));
    let out = expect_code(
        cairn()
            .arg("-r")
            .arg(&repo)
            .arg("backup")
            .arg(d.join("src"))
            .arg(d.join("missing")),
        3,
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing"));
    assert_eq!(
        snapshots(&repo).len(),
        1,
        "the partial backup still saves a snapshot"
    );
    // Nothing that exists: fatal, 1.
    expect_code(
        cairn()
            .arg("-r")
            .arg(&repo)
            .arg("backup")
            .arg(d.join("missing")),
        1,
    );
}

#[test]
fn exclusive_lock_blocks_backup_with_code_11() {
    use cairn_repo::backend::FileType;
    use cairn_repo::lock::LockInfo;
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    ok(cairn().arg("-r").arg(&repo).arg("init"));
    // Another live process (this test) holds an exclusive lock.
    let r = cairn_repo::repository::Repository::open(
        std::sync::Arc::new(cairn_backend::LocalBackend::new(&repo)),
        PASSWORD.as_bytes(),
        Default::default(),
    )
    .unwrap();
    r.save_unpacked(FileType::Lock, &LockInfo::new(true).to_json())
        .unwrap();
    small_tree(&dir.path().join("src"));
    let out = expect_code(
        cairn()
            .arg("-r")
            .arg(&repo)
            .arg("backup")
            .arg(dir.path().join("src")),
        11,
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("locked"));
    // unlock leaves a live lock alone; --remove-all removes it.
    ok(cairn().arg("-r").arg(&repo).arg("unlock"));
    expect_code(
        cairn()
            .arg("-r")
            .arg(&repo)
            .arg("backup")
            .arg(dir.path().join("src")),
        11,
    );
    ok(cairn()
        .arg("-r")
        .arg(&repo)
        .args(["unlock", "--remove-all"]));
    ok(cairn()
        .arg("-r")
        .arg(&repo)
        .arg("backup")
        .arg(dir.path().join("src")));
}

#[test]
fn backup_options_excludes_tags_dry_run_and_skip_unchanged() {
    // Under the target's private temp dir: the snapshot records the metadata of every parent
    // directory, and /tmp changes all the time while other tests run.
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let d = dir.path();
    let repo = d.join("repo");
    let src = d.join("src");
    small_tree(&src);
    std::fs::create_dir(src.join("cache")).unwrap();
    std::fs::write(
        src.join("cache/CACHEDIR.TAG"),
        b"Signature: 8a477f597d28d172789f06886806bc55\n",
    )
    .unwrap();
    std::fs::write(src.join("cache/big.bin"), b"cached").unwrap();
    ok(cairn().arg("-r").arg(&repo).arg("init"));
    // Dry run writes nothing.
    let out = ok(cairn()
        .arg("-r")
        .arg(&repo)
        .args(["--json", "backup", "--dry-run"])
        .arg(&src));
    assert_eq!(summary(&out.stdout)["dry_run"], true);
    assert!(snapshots(&repo).is_empty());
    assert_eq!(std::fs::read_dir(repo.join("index")).unwrap().count(), 0);
    // The same selection options for both backups below.
    const SELECT: [&str; 7] = [
        "--exclude",
        "*.tmp",
        "--exclude-caches",
        "--exclude-larger-than",
        "100k",
        "--host",
        "h1",
    ];
    let out = ok(cairn()
        .arg("-r")
        .arg(&repo)
        .args(["--json", "backup", "--tag", "a,b"])
        .args(SELECT)
        .arg(&src));
    let s = summary(&out.stdout);
    // a.txt, sub/c.txt, cache/CACHEDIR.TAG (kept); b.tmp, big.bin and the 300 kB file excluded.
    assert_eq!(s["files_new"], 3, "{s}");
    let snaps = snapshots(&repo);
    assert_eq!(snaps[0]["tags"], serde_json::json!(["a", "b"]));
    assert_eq!(snaps[0]["hostname"], "h1");
    assert_eq!(snaps[0]["excludes"], serde_json::json!(["*.tmp"]));
    assert!(snaps[0]["summary"]["total_files_processed"].as_u64() == Some(3));
    // Unchanged: with --skip-if-unchanged no new snapshot.
    let out = ok(cairn()
        .arg("-r")
        .arg(&repo)
        .args(["--json", "backup", "--skip-if-unchanged"])
        .args(SELECT)
        .arg(&src));
    let s = summary(&out.stdout);
    assert_eq!(s["files_unmodified"], 3, "{s}");
    assert!(s.get("snapshot_id").is_none(), "{s}");
    assert_eq!(snapshots(&repo).len(), 1);
}

#[test]
fn stdin_backup_and_snapshot_listing() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    ok(cairn()
        .arg("-r")
        .arg(&repo)
        .args(["init", "--repository-version", "1"]));
    let mut child = cairn()
        .arg("-r")
        .arg(&repo)
        .args([
            "backup",
            "--stdin",
            "--stdin-filename",
            "dump.sql",
            "--tag",
            "db",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&vec![b'x'; 1 << 20])
        .unwrap();
    assert!(child.wait_with_output().unwrap().status.success());
    let snaps = snapshots(&repo);
    assert_eq!(snaps[0]["paths"], serde_json::json!(["/dump.sql"]));
    // Grouped JSON output.
    let out =
        ok(cairn()
            .arg("-r")
            .arg(&repo)
            .args(["snapshots", "--json", "--group-by", "host,tags"]));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["group_key"]["tags"], serde_json::json!(["db"]));
    assert_eq!(v[0]["snapshots"].as_array().unwrap().len(), 1);
    // Human table.
    let out = ok(cairn().arg("-r").arg(&repo).arg("snapshots"));
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 snapshots"));
    // cat config shows the version.
    let out = ok(cairn().arg("-r").arg(&repo).args(["cat", "config"]));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["version"], 1);
}

#[test]
fn damaged_pack_is_an_error_naming_the_file_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let repo = d.join("repo");
    let src = d.join("src");
    small_tree(&src);
    ok(cairn().arg("-r").arg(&repo).arg("init"));
    ok(cairn().arg("-r").arg(&repo).arg("backup").arg(&src));
    // Truncate every pack file.
    for sub in std::fs::read_dir(repo.join("data")).unwrap().flatten() {
        for f in std::fs::read_dir(sub.path()).unwrap().flatten() {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(f.path(), std::fs::Permissions::from_mode(0o600)).unwrap();
            let data = std::fs::read(f.path()).unwrap();
            std::fs::write(f.path(), &data[..data.len() / 2]).unwrap();
        }
    }
    let out = cairn()
        .arg("-r")
        .arg(&repo)
        .args(["restore", "latest", "--target"])
        .arg(d.join("r"))
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    assert_ne!(
        out.status.code(),
        Some(101),
        "panicked: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/data/") || err.contains("blob"), "{err}");
}
