//! Fault injection end to end: through a `rest:` repository on `rclone serve restic` with the
//! test-only `CAIRN_TEST_FAULTS` layer (failed calls, short reads, stalls), backups, restores
//! and checks still complete correctly thanks to the retry layer, and restic agrees with the
//! result. Permanent errors (an append-only server refusing deletes, a stopped server) fail
//! cleanly with a clear message and a non-zero exit code.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `rclone serve restic` over a given directory, killed on drop.
struct RestServer {
    child: Child,
    url: String,
}

impl Drop for RestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl RestServer {
    fn start(rclone: &Path, root: &Path, extra: &[&str]) -> RestServer {
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let addr = format!("127.0.0.1:{port}");
            let mut child = Command::new(rclone)
                .env("RCLONE_CONFIG", "/dev/null")
                .args(["serve", "restic", "--addr", &addr])
                .args(extra)
                .arg(root)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                if std::net::TcpStream::connect(&addr).is_ok() {
                    return RestServer {
                        child,
                        url: format!("http://{addr}"),
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

/// Faults for every remote call, and short retry delays so that the test stays fast.
const FAULTS: &str = "fail=0.2,short=0.1,stall=0.05,stall_ms=50,seed=1";
const FAST_RETRY: &str = "attempts=15,initial_ms=5,max_ms=40";

fn faulty(repo: &str, cache: &Path) -> Command {
    let mut c = cairn();
    c.env("CAIRN_TEST_FAULTS", FAULTS)
        .env("CAIRN_TEST_RETRY", FAST_RETRY)
        .arg("-r")
        .arg(repo)
        .arg("--cache-dir")
        .arg(cache);
    c
}

fn setup() -> Option<(PathBuf, PathBuf, tempfile::TempDir)> {
    let rclone = external("rclone")?;
    let restic_bin = external("restic")?;
    external("python3")?;
    Some((rclone, restic_bin, tempfile::tempdir().unwrap()))
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn backup_and_restore_survive_injected_faults() {
    let Some((rclone, rb, dir)) = setup() else {
        return;
    };
    let d = dir.path();
    let root = d.join("served");
    std::fs::create_dir_all(&root).unwrap();
    let server = RestServer::start(&rclone, &root, &[]);
    let repo = format!("rest:{}/repo", server.url);
    let cache = d.join("cache");
    let src = d.join("src");
    make_source_tree(&src);
    // Some more data: several packs and many blobs.
    let big: Vec<u8> = (0..6_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(src.join("big.bin"), &big).unwrap();
    for i in 0..40 {
        std::fs::write(
            src.join(format!("small-{i}.txt")),
            format!("file {i}\n").repeat(i + 1),
        )
        .unwrap();
    }

    ok(faulty(&repo, &cache).arg("init"));
    let out = ok(faulty(&repo, &cache).arg("backup").arg(&src));
    let log = stderr(&out);
    assert!(log.contains("injecting faults"), "{log}");
    assert!(
        log.contains("retrying"),
        "faults were injected and retried:\n{log}"
    );

    // Restores with a cold cache read every pack through the faulty layer.
    let r1 = d.join("restore");
    let out = ok(faulty(&repo, &d.join("cold-cache"))
        .args(["restore", "latest", "--target"])
        .arg(&r1));
    assert!(stderr(&out).contains("retrying"));
    assert_same_tree(&src, &restored(&r1, &src));
    ok(faulty(&repo, &cache).args(["check", "--read-data"]));
    ok(faulty(&repo, &cache).args(["forget", "--keep-last", "1", "--prune"]));

    // The repository written through the faults is sound for restic too.
    let rcache = d.join("restic-cache");
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
}

#[test]
fn permanent_errors_fail_cleanly() {
    let Some((rclone, _rb, dir)) = setup() else {
        return;
    };
    let d = dir.path();
    let root = d.join("served");
    std::fs::create_dir_all(&root).unwrap();
    let src = d.join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("f"), b"data").unwrap();
    let cache = d.join("cache");
    let repo_of = |s: &RestServer| format!("rest:{}/repo", s.url);
    let run = |repo: &str| {
        let mut c = cairn();
        c.env("CAIRN_TEST_RETRY", FAST_RETRY)
            .arg("-r")
            .arg(repo)
            .arg("--cache-dir")
            .arg(&cache);
        c
    };

    {
        let server = RestServer::start(&rclone, &root, &[]);
        let repo = repo_of(&server);
        ok(run(&repo).arg("init"));
        ok(run(&repo).arg("backup").arg(&src));
        ok(run(&repo).arg("backup").arg(&src));
    }

    // An append-only server refuses deletes (403): forget fails at once with the status.
    {
        let server = RestServer::start(&rclone, &root, &["--append-only"]);
        let repo = repo_of(&server);
        let start = Instant::now();
        let out = run(&repo)
            .args(["forget", "--keep-last", "1", "--prune"])
            .output()
            .unwrap();
        let err = stderr(&out);
        // A failure exit code (forget reports partial failures with 3), not a crash.
        assert!(
            matches!(out.status.code(), Some(1 | 3)),
            "{:?}: {err}",
            out.status
        );
        assert!(err.contains("403"), "{err}");
        assert!(!err.contains("panicked"), "{err}");
        assert!(!err.contains("retrying"), "a 403 is not retried: {err}");
        assert!(start.elapsed() < Duration::from_secs(20));
        // Nothing was lost: both snapshots are still there.
        let out = ok(run(&repo).args(["snapshots", "--json"]));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v.as_array().unwrap().len(), 2);
    }

    // The server is gone: connection errors are retried, then fail with a clear message.
    let stopped = {
        let server = RestServer::start(&rclone, &root, &[]);
        repo_of(&server)
    };
    let out = expect_code(run(&stopped).arg("snapshots"), 1);
    let err = stderr(&out);
    assert!(err.contains("retrying"), "{err}");
    assert!(err.contains("attempts"), "names the attempts: {err}");
    let host = stopped.trim_start_matches("rest:http://");
    let host = host.split('/').next().unwrap();
    assert!(err.contains(host), "names the server: {err}");
    assert!(!err.contains("panicked"), "{err}");
}
