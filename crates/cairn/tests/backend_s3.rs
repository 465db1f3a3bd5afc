//! End to end over S3: Cairn and the real restic on the same bucket of a moto server
//! (`moto_server`, started per test on a free 127.0.0.1 port, killed when the test ends).

mod common;
use common::*;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running moto_server; killed on drop.
struct Moto {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Moto {
    fn start(bin: &Path) -> Moto {
        for _attempt in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let dir = tempfile::tempdir().unwrap();
            let log = std::fs::File::create(dir.path().join("moto.log")).unwrap();
            let child = Command::new(bin)
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .current_dir(dir.path())
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap();
            let mut moto = Moto {
                child,
                port,
                _dir: dir,
            };
            let deadline = Instant::now() + Duration::from_secs(60);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = moto.child.try_wait() {
                    break;
                }
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return moto;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        panic!("moto_server did not start");
    }

    /// `s3:http://127.0.0.1:<port>/<rest>` (path-style addressing, like restic uses there).
    fn repo(&self, rest: &str) -> String {
        format!("s3:http://127.0.0.1:{}/{rest}", self.port)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Credentials for moto (any values work) and nothing else from the caller's AWS setup.
fn s3_env(c: &mut Command) -> &mut Command {
    c.env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_DEFAULT_REGION")
        .env_remove("AWS_SHARED_CREDENTIALS_FILE")
}

struct Setup {
    restic: PathBuf,
    moto: Moto,
    dir: tempfile::TempDir,
}

fn setup() -> Option<Setup> {
    let restic = external("restic")?;
    let moto_bin = external("moto_server")?;
    external("python3")?;
    Some(Setup {
        restic,
        moto: Moto::start(&moto_bin),
        dir: tempfile::tempdir().unwrap(),
    })
}

impl Setup {
    fn cairn(&self, repo: &str) -> Command {
        let mut c = cairn();
        s3_env(&mut c)
            .arg("--cache-dir")
            .arg(self.dir.path().join("cairn-cache"))
            .arg("-r")
            .arg(repo);
        c
    }

    fn restic(&self, repo: &str) -> Command {
        let mut c = restic(&self.restic, &self.dir.path().join("restic-cache"));
        s3_env(&mut c).arg("-r").arg(repo);
        c
    }
}

fn snapshot_count(out: &std::process::Output) -> usize {
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v.as_array().expect("a JSON array").len()
}

#[test]
fn cairn_writes_to_s3_and_restic_agrees() {
    let Some(s) = setup() else { return };
    let d = s.dir.path();
    let src = d.join("src");
    make_source_tree(&src);
    let repo = s.moto.repo("cairn-bucket/backups/host1");

    ok(s.cairn(&repo).arg("init"));
    ok(s.cairn(&repo).arg("backup").arg(&src));
    std::fs::write(src.join("added-later.txt"), b"second snapshot only\n").unwrap();
    ok(s.cairn(&repo).arg("backup").arg(&src));
    ok(s.cairn(&repo)
        .args(["forget", "--keep-last", "1", "--prune"]));
    ok(s.cairn(&repo).args(["check", "--read-data"]));
    assert_eq!(
        snapshot_count(&ok(s.cairn(&repo).args(["snapshots", "--json"]))),
        1
    );
    let r1 = d.join("cairn-restore");
    ok(s.cairn(&repo)
        .args(["restore", "latest", "--target"])
        .arg(&r1));
    assert_same_tree(&src, &restored(&r1, &src));

    // restic reads the same bucket: every byte checks out and the restore is identical.
    ok(s.restic(&repo).args(["check", "--read-data"]));
    assert_eq!(
        snapshot_count(&ok(s.restic(&repo).args(["snapshots", "--json"]))),
        1
    );
    let r2 = d.join("restic-restore");
    ok(s.restic(&repo)
        .args(["restore", "latest", "--target"])
        .arg(&r2));
    assert_same_tree(&src, &restored(&r2, &src));
}

#[test]
fn cairn_reads_a_restic_s3_repository() {
    let Some(s) = setup() else { return };
    let d = s.dir.path();
    let src = d.join("src");
    make_source_tree(&src);
    let repo = s.moto.repo("restic-bucket/repo");

    // Nothing there yet: "no repository" (exit 10).
    expect_code(s.cairn(&repo).arg("snapshots"), 10);

    ok(s.restic(&repo).arg("init"));
    ok(s.restic(&repo).arg("backup").arg(&src));
    ok(s.cairn(&repo).args(["check", "--read-data"]));
    let r1 = d.join("cairn-restore");
    ok(s.cairn(&repo)
        .args(["restore", "latest", "--target"])
        .arg(&r1));
    assert_same_tree(&src, &restored(&r1, &src));

    // Cairn adds a snapshot to restic's repository; restic accepts the result.
    std::fs::write(src.join("from-cairn.txt"), b"written by cairn\n").unwrap();
    ok(s.cairn(&repo).arg("backup").arg(&src));
    ok(s.restic(&repo).args(["check", "--read-data"]));
    assert_eq!(
        snapshot_count(&ok(s.restic(&repo).args(["snapshots", "--json"]))),
        2
    );
    let r2 = d.join("restic-restore");
    ok(s.restic(&repo)
        .args(["restore", "latest", "--target"])
        .arg(&r2));
    assert_same_tree(&src, &restored(&r2, &src));
}
