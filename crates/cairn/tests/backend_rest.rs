//! Cairn with `rest:` repositories on a real REST server (`rclone serve restic` on
//! 127.0.0.1): init, backup, restore, forget --prune, check --read-data; then the real restic
//! reads the same repository and agrees, and Cairn reads what restic wrote there.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `rclone serve restic`, killed on drop.
pub struct RestServer {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    _dir: tempfile::TempDir,
}

impl Drop for RestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl RestServer {
    /// Serve a fresh directory on a free port with extra rclone flags.
    pub fn start(rclone: &Path, extra: &[&str]) -> RestServer {
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let addr = format!("127.0.0.1:{port}");
            let dir = tempfile::tempdir().unwrap();
            let mut child = Command::new(rclone)
                .env("RCLONE_CONFIG", "/dev/null")
                .args(["serve", "restic", "--addr", &addr])
                .args(extra)
                .arg(dir.path())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break; // port taken: try another
                }
                if std::net::TcpStream::connect(&addr).is_ok() {
                    return RestServer {
                        child,
                        url: format!("http://{addr}"),
                        _dir: dir,
                    };
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("rclone serve restic did not start");
    }
}

/// `cairn -r <repo> --cache-dir <cache>` plus arguments.
fn cairn_at(repo: &str, cache: &Path) -> Command {
    let mut c = cairn();
    c.arg("-r").arg(repo).arg("--cache-dir").arg(cache);
    c
}

fn setup() -> Option<(PathBuf, PathBuf, tempfile::TempDir)> {
    let rclone = external("rclone")?;
    let restic_bin = external("restic")?;
    external("python3")?;
    Some((rclone, restic_bin, tempfile::tempdir().unwrap()))
}

fn snapshot_ids(out: &[u8]) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_slice(out).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn cairn_on_a_rest_server_and_restic_agrees() {
    let Some((rclone, rb, dir)) = setup() else {
        return;
    };
    let d = dir.path();
    let server = RestServer::start(&rclone, &[]);
    let repo = format!("rest:{}/repo/", server.url);
    let cache = d.join("cache");
    let rcache = d.join("restic-cache");
    let src = d.join("src");
    make_source_tree(&src);

    ok(cairn_at(&repo, &cache).arg("init"));
    // A second init is refused.
    let out = expect_code(cairn_at(&repo, &cache).arg("init"), 1);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("already"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    ok(cairn_at(&repo, &cache)
        .args(["backup", "--tag", "one"])
        .arg(&src));
    std::fs::write(src.join("added-later.txt"), b"a second snapshot").unwrap();
    ok(cairn_at(&repo, &cache)
        .args(["backup", "--tag", "two"])
        .arg(&src));

    let r1 = d.join("restore1");
    ok(cairn_at(&repo, &cache)
        .args(["restore", "latest", "--target"])
        .arg(&r1));
    assert_same_tree(&src, &restored(&r1, &src));

    // forget + prune through the server, then a full check.
    ok(cairn_at(&repo, &cache).args(["forget", "--keep-last", "1", "--prune"]));
    let out = ok(cairn_at(&repo, &cache).args(["snapshots", "--json"]));
    assert_eq!(snapshot_ids(&out.stdout).len(), 1);
    ok(cairn_at(&repo, &cache).args(["check", "--read-data"]));

    // The real restic agrees: it checks every byte and restores the same tree.
    ok(restic(&rb, &rcache)
        .arg("-r")
        .arg(&repo)
        .args(["check", "--read-data"]));
    let r2 = d.join("restore-restic");
    ok(restic(&rb, &rcache)
        .arg("-r")
        .arg(&repo)
        .args(["restore", "latest", "--target"])
        .arg(&r2));
    assert_same_tree(&src, &restored(&r2, &src));

    // restic writes a snapshot into the same repository; Cairn restores it.
    std::fs::write(src.join("from-restic.txt"), b"written by restic").unwrap();
    ok(restic(&rb, &rcache)
        .arg("-r")
        .arg(&repo)
        .arg("backup")
        .arg(&src));
    let r3 = d.join("restore-of-restic");
    ok(cairn_at(&repo, &cache)
        .args(["restore", "latest", "--target"])
        .arg(&r3));
    assert_same_tree(&src, &restored(&r3, &src));
    ok(cairn_at(&repo, &cache).args(["check", "--read-data"]));
}

#[test]
fn cairn_reads_a_repository_restic_created_on_the_server() {
    let Some((rclone, rb, dir)) = setup() else {
        return;
    };
    let d = dir.path();
    let server = RestServer::start(&rclone, &[]);
    let repo = format!("rest:{}/restic-made", server.url);
    let rcache = d.join("restic-cache");
    let src = d.join("src");
    make_source_tree(&src);
    ok(restic(&rb, &rcache).arg("-r").arg(&repo).arg("init"));
    ok(restic(&rb, &rcache)
        .arg("-r")
        .arg(&repo)
        .arg("backup")
        .arg(&src));
    // Without the metadata cache every read goes to the server.
    let r = d.join("restore");
    ok(cairn()
        .arg("-r")
        .arg(&repo)
        .args(["--no-cache", "restore", "latest", "--target"])
        .arg(&r));
    assert_same_tree(&src, &restored(&r, &src));
    ok(cairn()
        .arg("-r")
        .arg(&repo)
        .args(["--no-cache", "check", "--read-data"]));
}

#[test]
fn credentials_from_the_environment() {
    let Some((rclone, _rb, dir)) = setup() else {
        return;
    };
    let d = dir.path();
    let server = RestServer::start(&rclone, &["--user", "bob", "--pass", "pw"]);
    let repo = format!("rest:{}/auth", server.url);
    let cache = d.join("cache");
    // Without credentials: a clear error, quickly (401 is not retried), no panic.
    let start = Instant::now();
    let out = expect_code(cairn_at(&repo, &cache).arg("init"), 1);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("401"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(start.elapsed() < Duration::from_secs(10));
    // restic's variables supply them.
    ok(cairn_at(&repo, &cache)
        .env("RESTIC_REST_USERNAME", "bob")
        .env("RESTIC_REST_PASSWORD", "pw")
        .arg("init"));
    // URL credentials win over the environment.
    let with_url = format!("rest:http://bob:pw@{}/auth", &server.url["http://".len()..]);
    ok(cairn_at(&with_url, &cache)
        .env("RESTIC_REST_USERNAME", "bob")
        .env("RESTIC_REST_PASSWORD", "wrong")
        .arg("snapshots"));
}
