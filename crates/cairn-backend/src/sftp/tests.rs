//! Backend tests without ssh: OpenSSH's `sftp-server` and a small Python server (short reads,
//! no extensions, hostile answers) run directly as the `sftp.command`.

use super::*;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const SFTP_SERVER: &str = "/usr/lib/openssh/sftp-server";

fn required() -> bool {
    std::env::var("CAIRN_REQUIRE_EXTERNAL").is_ok_and(|v| v == "1")
}

/// `path` if the program exists; otherwise skip (or fail in CI).
fn program(path: &str) -> Option<PathBuf> {
    let found = if path.starts_with('/') {
        Some(PathBuf::from(path)).filter(|p| p.is_file())
    } else {
        std::env::var_os("PATH").and_then(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join(path))
                .find(|f| f.is_file())
        })
    };
    if found.is_none() {
        assert!(!required(), "{path} is required but missing");
        eprintln!("SKIPPED: {path} is not installed");
    }
    found
}

fn opts(pairs: &[String]) -> BackendOptions {
    BackendOptions {
        values: BackendOptions::parse_pairs(pairs.iter().map(String::as_str)).unwrap(),
        ..Default::default()
    }
}

fn fake_server(dir: &Path) -> Option<String> {
    let py = program("python3")?;
    let script = dir.join("fake_server.py");
    std::fs::write(&script, include_str!("fake_server.py")).unwrap();
    Some(format!("{} {}", py.display(), script.display()))
}

#[test]
fn openssh_sftp_server_conforms() {
    let Some(server) = program(SFTP_SERVER) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let loc = format!("localhost:{}", repo.display());
    let b =
        SftpBackend::open(&loc, &opts(&[format!("sftp.command={}", server.display())])).unwrap();
    {
        let c = b.client().unwrap();
        assert!(c.posix_rename && c.fsync, "OpenSSH offers its extensions");
    }
    crate::conformance::run_all(&b);
    // restic's layout on disk, read-only files, nothing left behind.
    assert!(repo.join("data/00").is_dir() && repo.join("data/ff").is_dir());
    assert!(repo.join("snapshots").is_dir() && repo.join("locks").is_dir());
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(repo.join("config"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o400);
    let leftovers: Vec<_> = walk(&repo)
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("temp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // create() refuses an existing repository.
    assert!(matches!(b.create(), Err(BackendError::AlreadyExists(_))));
}

fn walk(p: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(p).unwrap().flatten() {
        if e.file_type().unwrap().is_dir() {
            out.extend(walk(&e.path()));
        }
        out.push(e.path());
    }
    out
}

#[test]
fn relative_paths_and_config_replacement() {
    let Some(server) = program(SFTP_SERVER) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // sftp-server runs in the test's working directory: use `cd` to root it in the temp dir.
    let cmd = format!(
        "sh -c 'cd {} && exec {}'",
        dir.path().display(),
        server.display()
    );
    let b = SftpBackend::open("host:sub/repo", &opts(&[format!("sftp.command={cmd}")])).unwrap();
    b.create().unwrap();
    assert!(dir.path().join("sub/repo/data/7f").is_dir());
    b.write(FileType::Config, "config", b"one").unwrap();
    b.write(FileType::Config, "config", b"two!").unwrap();
    assert_eq!(b.read(FileType::Config, "config").unwrap(), b"two!");
    assert_eq!(
        b.list(FileType::Config).unwrap(),
        vec![("config".to_string(), 4)]
    );
    // A write into a missing data/xx directory creates it.
    std::fs::remove_dir(dir.path().join("sub/repo/data/ab")).unwrap();
    let id = "ab".repeat(32);
    b.write(FileType::Pack, &id, b"pack").unwrap();
    assert_eq!(b.list(FileType::Pack).unwrap(), vec![(id.clone(), 4)]);
    // Files that are not ids and directories are not listed.
    std::fs::write(dir.path().join("sub/repo/keys/not-an-id"), b"x").unwrap();
    std::fs::create_dir(dir.path().join("sub/repo/keys").join("cd".repeat(32))).unwrap();
    assert!(b.list(FileType::Key).unwrap().is_empty());
}

#[test]
fn server_without_extensions_and_with_short_reads_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let Some(cmd) = fake_server(dir.path()) else {
        return;
    };
    let repo = dir.path().join("repo");
    let b = SftpBackend::open(
        &format!("h:{}", repo.display()),
        &opts(&[format!("sftp.command={cmd}"), "sftp.connections=3".into()]),
    )
    .unwrap();
    {
        let c = b.client().unwrap();
        assert!(!c.posix_rename && !c.fsync);
    }
    crate::conformance::run_all(&b);
    // Without posix-rename the config is still replaced, and an existing pack is kept.
    b.write(FileType::Config, "config", b"old").unwrap();
    b.write(FileType::Config, "config", b"new").unwrap();
    assert_eq!(b.read(FileType::Config, "config").unwrap(), b"new");
    let id = "12".repeat(32);
    b.write(FileType::Pack, &id, b"same").unwrap();
    b.write(FileType::Pack, &id, b"same").unwrap();
    assert_eq!(b.list(FileType::Pack).unwrap(), vec![(id, 4)]);
}

fn open_err(cmd: &str, loc: &str) -> String {
    SftpBackend::open(loc, &opts(&[format!("sftp.command={cmd}")]))
        .map(|_| ())
        .unwrap_err()
        .to_string()
}

#[test]
fn dead_ssh_reports_exit_status_and_stderr() {
    let Some(sh) = program("sh") else { return };
    let t = Instant::now();
    let e = open_err(
        &format!(
            "{} -c 'echo Permission denied, please try again. >&2; exit 255'",
            sh.display()
        ),
        "h:/x",
    );
    assert!(e.contains("Permission denied, please try again."), "{e}");
    assert!(e.contains("exit status: 255"), "{e}");
    assert!(t.elapsed() < Duration::from_secs(4), "failed fast");
    let e = open_err("/nonexistent/ssh-program", "h:/x");
    assert!(e.contains("/nonexistent/ssh-program"), "{e}");
}

#[test]
fn text_instead_of_sftp_is_a_clear_error() {
    let Some(sh) = program("sh") else { return };
    let t = Instant::now();
    let e = open_err(
        &format!("{} -c 'echo Welcome to the server; sleep 20'", sh.display()),
        "h:/x",
    );
    assert!(e.contains("not an SFTP server"), "{e}");
    assert!(e.contains("Welc"), "{e}");
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "the child is killed, not waited for"
    );
}

fn fake_with_pack(mode: &str) -> Option<(tempfile::TempDir, SftpBackend, String)> {
    let dir = tempfile::tempdir().unwrap();
    let cmd = fake_server(dir.path())?;
    let repo = dir.path().join("repo");
    std::fs::create_dir_all(repo.join("data/ee")).unwrap();
    let id = "ee".repeat(32);
    std::fs::write(repo.join("data/ee").join(&id), vec![7u8; 100_000]).unwrap();
    let b = SftpBackend::open(
        &format!("h:{}", repo.display()),
        &opts(&[format!("sftp.command={cmd} {mode}")]),
    )
    .unwrap();
    Some((dir, b, id))
}

#[test]
fn malformed_answer_fails_cleanly_and_the_session_restarts() {
    let Some((_dir, b, id)) = fake_with_pack("garbage") else {
        return;
    };
    let e = b.read(FileType::Pack, &id).unwrap_err().to_string();
    assert!(e.contains("unexpected packet type 250"), "{e}");
    // The session was closed; the next call starts a new one that works for non-reads.
    assert_eq!(b.stat(FileType::Pack, &id).unwrap(), 100_000);
}

#[test]
fn server_exit_mid_session_is_reported() {
    let Some((_dir, b, id)) = fake_with_pack("die") else {
        return;
    };
    let e = b
        .read_range(FileType::Pack, &id, 10, 10)
        .unwrap_err()
        .to_string();
    assert!(e.contains("exit status: 3"), "{e}");
    assert_eq!(b.stat(FileType::Pack, &id).unwrap(), 100_000);
}

#[test]
fn helpers() {
    assert_eq!(parent("/a/b"), "/a");
    assert_eq!(parent("/a"), "/");
    assert_eq!(parent("a"), ".");
    assert_eq!(parent("a/b/c"), "a/b");
    assert!(is_id(&"0a".repeat(32)));
    assert!(!is_id(&"0a".repeat(31)));
    assert!(!is_id(&format!("{}-cairn-temp-1", "0a".repeat(32))));
    let s = Semaphore::new(2);
    let (a, b) = (s.acquire(), s.acquire());
    assert_eq!(s.available(), 0);
    drop((a, b));
    assert_eq!(s.available(), 2);
}

#[test]
fn bad_locations_and_options_fail_before_starting_ssh() {
    let e = SftpBackend::open("hostonly", &opts(&[]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("hostname or path not found"), "{e}");
    let e = SftpBackend::open(
        "h:/x",
        &opts(&["sftp.command=ssh h".into(), "sftp.args=-v".into()]),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("cannot specify both"), "{e}");
    let e = SftpBackend::open("h:/x", &opts(&["sftp.connections=0".into()]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("at least 1"), "{e}");
}
