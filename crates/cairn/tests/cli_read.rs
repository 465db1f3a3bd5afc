//! End-to-end tests of the read side through the binary: ls, find, diff, dump, cat, restore
//! options (include, sparse), special names and link targets, and interruption handling.

mod common;
use common::*;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

fn setup(d: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let repo = d.join("repo");
    let src = d.join("src");
    std::fs::create_dir_all(src.join("etc/ssh")).unwrap();
    std::fs::write(src.join("etc/ssh/sshd_config"), b"Port 22\n").unwrap();
    std::fs::write(src.join("etc/hosts"), b"127.0.0.1 localhost\n").unwrap();
    std::fs::write(src.join("notes.txt"), b"v1\n").unwrap();
    ok(cairn().arg("-r").arg(&repo).arg("init"));
    ok(cairn()
        .arg("-r")
        .arg(&repo)
        .args(["backup", "--tag", "one"])
        .arg(&src));
    (repo, src)
}

#[test]
fn ls_find_diff_dump_cat() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (repo, src) = setup(d);
    std::fs::write(src.join("notes.txt"), b"v2, longer\n").unwrap();
    std::fs::write(src.join("added.txt"), b"new\n").unwrap();
    ok(cairn()
        .arg("-r")
        .arg(&repo)
        .args(["backup", "--tag", "two"])
        .arg(&src));

    // ls --json: a snapshot line, then nodes with restic's fields.
    let out = ok(cairn()
        .arg("-r")
        .arg(&repo)
        .args(["ls", "--json", "latest"]));
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["struct_type"], "snapshot");
    let sshd = format!("{}/etc/ssh/sshd_config", src.display());
    assert!(
        lines
            .iter()
            .any(|l| l["path"] == sshd.as_str() && l["size"] == 8)
    );
    // ls --long of a subfolder.
    let out = ok(cairn()
        .arg("-r")
        .arg(&repo)
        .args(["ls", "--long", "latest"])
        .arg(src.join("etc")));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("hosts") && text.contains("-rw-") && !text.contains("sshd_config"),
        "{text}"
    );

    // find by name, JSON.
    let out = ok(cairn()
        .arg("-r")
        .arg(&repo)
        .args(["find", "--json", "sshd_*"]));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v.as_array().unwrap().len(),
        2,
        "found in both snapshots: {v}"
    );
    assert_eq!(v[0]["matches"][0]["path"], sshd.as_str());

    // diff between the two snapshots.
    let snaps = ok(cairn().arg("-r").arg(&repo).args(["snapshots", "--json"]));
    let snaps: Vec<serde_json::Value> = serde_json::from_slice(&snaps.stdout).unwrap();
    let (a, b) = (
        snaps[0]["short_id"].as_str().unwrap(),
        snaps[1]["short_id"].as_str().unwrap(),
    );
    let out = ok(cairn().arg("-r").arg(&repo).args(["diff", a, b]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("M    ") && text.contains("notes.txt"),
        "{text}"
    );
    assert!(
        text.contains("+    ") && text.contains("added.txt"),
        "{text}"
    );

    // dump a file, and a directory as tar.
    let out = ok(cairn()
        .arg("-r")
        .arg(&repo)
        .args(["dump", a])
        .arg(src.join("notes.txt")));
    assert_eq!(out.stdout, b"v1\n");
    let tarfile = d.join("etc.tar");
    ok(cairn()
        .arg("-r")
        .arg(&repo)
        .args(["dump", "--target"])
        .arg(&tarfile)
        .arg("latest")
        .arg(src.join("etc")));
    let mut ar = tar::Archive::new(std::fs::File::open(&tarfile).unwrap());
    let names: Vec<String> = ar
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().any(|n| n.ends_with("ssh/sshd_config")),
        "{names:?}"
    );

    // cat tree SNAPSHOT:subfolder.
    let spec = format!("latest:{}", src.join("etc").display());
    let out = ok(cairn().arg("-r").arg(&repo).args(["cat", "tree", &spec]));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["nodes"][0]["name"], "hosts");
}

#[test]
fn restore_include_and_subfolder() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (repo, src) = setup(d);
    let t = d.join("t");
    let inc = format!("{}/etc/ssh", src.display());
    ok(cairn()
        .arg("-r")
        .arg(&repo)
        .args(["restore", "latest", "--include", &inc, "--target"])
        .arg(&t));
    assert!(restored(&t, &src).join("etc/ssh/sshd_config").exists());
    assert!(!restored(&t, &src).join("etc/hosts").exists());
    assert!(!restored(&t, &src).join("notes.txt").exists());
    // ID:subfolder restores the folder's contents into the target.
    let t2 = d.join("t2");
    let spec = format!("latest:{}", src.join("etc").display());
    ok(cairn()
        .arg("-r")
        .arg(&repo)
        .args(["restore", &spec, "--target"])
        .arg(&t2));
    assert_eq!(
        std::fs::read(t2.join("hosts")).unwrap(),
        b"127.0.0.1 localhost\n"
    );
}

#[test]
fn sparse_files_and_raw_link_targets_round_trip() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let src = d.join("src");
    std::fs::create_dir(&src).unwrap();
    // 32 MiB file that is all hole except 4 KiB at the end.
    let f = std::fs::File::create(src.join("sparse.img")).unwrap();
    f.set_len(32 << 20).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, &[0xabu8; 4096], (32 << 20) - 4096).unwrap();
    drop(f);
    // A symlink whose target is not UTF-8, and a file name that is not UTF-8.
    let target = std::ffi::OsStr::from_bytes(b"target-\xff\xfe");
    std::os::unix::fs::symlink(target, src.join("rawlink")).unwrap();
    std::fs::write(src.join(raw_name(b"latin1-caf\xe9.txt")), b"x").unwrap();
    let repo = d.join("repo");
    ok(cairn().arg("-r").arg(&repo).arg("init"));
    ok(cairn().arg("-r").arg(&repo).arg("backup").arg(&src));
    let t = d.join("t");
    ok(cairn()
        .arg("-r")
        .arg(&repo)
        .args(["restore", "latest", "--sparse", "--verify", "--target"])
        .arg(&t));
    let r = restored(&t, &src);
    let m = std::fs::metadata(r.join("sparse.img")).unwrap();
    assert_eq!(m.len(), 32 << 20);
    assert!(
        m.blocks() * 512 < 1 << 20,
        "restored file is not sparse: {} blocks",
        m.blocks()
    );
    let data = std::fs::read(r.join("sparse.img")).unwrap();
    assert!(data[..(32 << 20) - 4096].iter().all(|b| *b == 0));
    assert!(data[(32 << 20) - 4096..].iter().all(|b| *b == 0xab));
    assert_eq!(
        std::fs::read_link(r.join("rawlink"))
            .unwrap()
            .as_os_str()
            .as_bytes(),
        target.as_bytes()
    );
    assert!(r.join(raw_name(b"latin1-caf\xe9.txt")).exists());
    // restic accepts the repository (it stores the raw target as linktarget_raw).
    if let Some(rb) = external("restic") {
        ok(restic(&rb, &d.join("cache"))
            .arg("-r")
            .arg(&repo)
            .args(["check", "--read-data"]));
    }
}

#[test]
fn files_from_with_globs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let src = d.join("src");
    std::fs::create_dir_all(src.join("a")).unwrap();
    std::fs::create_dir_all(src.join("b")).unwrap();
    std::fs::write(src.join("a/keep.conf"), b"1").unwrap();
    std::fs::write(src.join("b/keep.conf"), b"2").unwrap();
    std::fs::write(src.join("b/skip.txt"), b"3").unwrap();
    let list = d.join("list");
    std::fs::write(&list, format!("# comment\n\n{}/*/*.conf\n", src.display())).unwrap();
    let repo = d.join("repo");
    ok(cairn().arg("-r").arg(&repo).arg("init"));
    ok(cairn()
        .arg("-r")
        .arg(&repo)
        .arg("backup")
        .arg("--files-from")
        .arg(&list));
    let out = ok(cairn().arg("-r").arg(&repo).args(["snapshots", "--json"]));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let paths: Vec<&str> = v[0]["paths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert_eq!(paths.len(), 2, "{paths:?}");
    assert!(paths.iter().all(|p| p.ends_with("keep.conf")));
}

#[test]
fn interrupt_removes_the_lock_and_exits_130() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let src = d.join("src");
    std::fs::create_dir(&src).unwrap();
    let mut x: u64 = 7;
    for i in 0..24 {
        let mut data = Vec::with_capacity(4 << 20);
        while data.len() < 4 << 20 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            data.extend_from_slice(&x.to_le_bytes());
        }
        std::fs::write(src.join(format!("f{i}")), data).unwrap();
    }
    let repo = d.join("repo");
    ok(cairn().arg("-r").arg(&repo).arg("init"));
    let child = cairn()
        .arg("-r")
        .arg(&repo)
        .args(["backup", "--compression", "max"])
        .arg(&src)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the lock exists, then interrupt.
    let locks = repo.join("locks");
    for _ in 0..200 {
        if std::fs::read_dir(&locks)
            .map(|r| r.count() > 0)
            .unwrap_or(false)
        {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    if out.status.code() == Some(0) {
        return; // finished before the signal arrived: nothing to check
    }
    assert_eq!(out.status.code(), Some(130));
    assert_eq!(
        std::fs::read_dir(&locks).unwrap().count(),
        0,
        "lock left behind"
    );
}
