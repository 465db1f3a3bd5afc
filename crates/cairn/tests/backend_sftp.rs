//! Cairn and the real restic on the same `sftp:` repositories, through a private OpenSSH sshd
//! on 127.0.0.1 (throwaway host and user keys) and the system's `ssh`.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A private sshd on a free loopback port; killed on drop.
struct Sshd {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
    user: String,
}

impl Sshd {
    fn start() -> Option<Sshd> {
        let sshd = external("sshd")
            .or_else(|| Some(PathBuf::from("/usr/sbin/sshd")).filter(|p| p.is_file()))?;
        let keygen = external("ssh-keygen")?;
        external("ssh")?;
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for k in ["host_key", "user_key"] {
            ok(Command::new(&keygen)
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(d.join(k)));
        }
        std::fs::copy(d.join("user_key.pub"), d.join("authorized_keys")).unwrap();
        let _ = std::fs::create_dir_all("/run/sshd");
        let user = nix::unistd::User::from_uid(nix::unistd::geteuid())
            .unwrap()
            .unwrap()
            .name;
        for _attempt in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let config = d.join("sshd_config");
            std::fs::write(
                &config,
                format!(
                    "ListenAddress 127.0.0.1\nHostKey {dir}/host_key\n\
                     AuthorizedKeysFile {dir}/authorized_keys\nPasswordAuthentication no\n\
                     KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n\
                     StrictModes no\nUsePAM no\nPidFile none\n\
                     Subsystem sftp internal-sftp\nMaxStartups 100\nLogLevel ERROR\n",
                    dir = d.display()
                ),
            )
            .unwrap();
            let log = std::fs::File::create(d.join("sshd.log")).unwrap();
            let mut child = Command::new(&sshd)
                .args(["-D", "-e", "-f"])
                .arg(&config)
                .args(["-p", &port.to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap();
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Some(Sshd {
                        child,
                        port,
                        dir,
                        user,
                    });
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let log = std::fs::read_to_string(d.join("sshd.log")).unwrap_or_default();
        panic!("sshd did not start: {log}");
    }

    fn ssh_options(&self) -> String {
        format!(
            "-i {} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
             -o BatchMode=yes -o LogLevel=ERROR",
            self.dir.path().join("user_key").display()
        )
    }

    /// `sftp:user@127.0.0.1:/abs/path`
    fn location(&self, repo: &Path) -> String {
        format!("sftp:{}@127.0.0.1:{}", self.user, repo.display())
    }

    /// Cairn on `repo` through `-o sftp.args` (restic ≥ 0.17 syntax).
    fn cairn(&self, repo: &Path, cache: &Path) -> Command {
        let mut c = cairn();
        c.arg("-r")
            .arg(self.location(repo))
            .arg("-o")
            .arg(format!("sftp.args=-p {} {}", self.port, self.ssh_options()))
            .arg("--cache-dir")
            .arg(cache);
        c
    }

    /// restic 0.14 on `repo` (it has no sftp.args: the whole command instead).
    fn restic(&self, bin: &Path, repo: &Path, cache: &Path) -> Command {
        let mut c = restic(bin, cache);
        c.arg("-r").arg(self.location(repo)).arg("-o").arg(format!(
            "sftp.command=ssh 127.0.0.1 -p {} -l {} {} -s sftp",
            self.port,
            self.user,
            self.ssh_options()
        ));
        c
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn setup() -> Option<(PathBuf, Sshd, tempfile::TempDir)> {
    let rb = external("restic")?;
    external("python3")?;
    let sshd = Sshd::start()?;
    Some((rb, sshd, tempfile::tempdir().unwrap()))
}

#[test]
fn cairn_over_sftp_then_restic_agrees() {
    let Some((rb, sshd, dir)) = setup() else {
        return;
    };
    let d = dir.path();
    let (src, repo, cache, rcache) = (
        d.join("src"),
        d.join("repo"),
        d.join("cache"),
        d.join("rcache"),
    );
    make_source_tree(&src);
    ok(sshd.cairn(&repo, &cache).arg("init"));
    assert!(repo.join("config").is_file() && repo.join("data/ff").is_dir());
    // A first backup, a change, a second backup; forget the first and prune its data.
    std::fs::write(src.join("only-in-first"), vec![b'x'; 300_000]).unwrap();
    ok(sshd.cairn(&repo, &cache).arg("backup").arg(&src));
    std::fs::remove_file(src.join("only-in-first")).unwrap();
    std::fs::write(src.join("added-later"), b"second snapshot").unwrap();
    ok(sshd.cairn(&repo, &cache).arg("backup").arg(&src));
    ok(sshd
        .cairn(&repo, &cache)
        .args(["forget", "--keep-last", "1", "--prune"]));
    let out = ok(sshd.cairn(&repo, &cache).args(["--json", "snapshots"]));
    let snaps: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(snaps.as_array().unwrap().len(), 1, "{snaps}");
    ok(sshd.cairn(&repo, &cache).args(["check", "--read-data"]));
    let r1 = d.join("cairn-restore");
    ok(sshd
        .cairn(&repo, &cache)
        .args(["restore", "latest", "--target"])
        .arg(&r1));
    assert_same_tree(&src, &restored(&r1, &src));
    // No temporary files were left on the server.
    let temps = Command::new("find")
        .arg(&repo)
        .args(["-name", "*temp*"])
        .output()
        .unwrap();
    assert!(temps.stdout.is_empty(), "{temps:?}");
    // The real restic, over its own ssh connection, verifies every byte and restores the same.
    ok(sshd
        .restic(&rb, &repo, &rcache)
        .args(["check", "--read-data"]));
    let r2 = d.join("restic-restore");
    ok(sshd
        .restic(&rb, &repo, &rcache)
        .args(["restore", "latest", "--target"])
        .arg(&r2));
    assert_same_tree(&src, &restored(&r2, &src));
}

#[test]
fn restic_over_sftp_then_cairn_reads_and_adds() {
    let Some((rb, sshd, dir)) = setup() else {
        return;
    };
    let d = dir.path();
    let (src, repo, cache, rcache) = (
        d.join("src"),
        d.join("repo"),
        d.join("cache"),
        d.join("rcache"),
    );
    make_source_tree(&src);
    ok(sshd.restic(&rb, &repo, &rcache).arg("init"));
    ok(sshd.restic(&rb, &repo, &rcache).arg("backup").arg(&src));
    ok(sshd.cairn(&repo, &cache).args(["check", "--read-data"]));
    let r1 = d.join("cairn-restore");
    ok(sshd
        .cairn(&repo, &cache)
        .args(["restore", "latest", "--target"])
        .arg(&r1));
    assert_same_tree(&src, &restored(&r1, &src));
    // Cairn adds a snapshot to restic's repository; restic accepts the result.
    std::fs::write(src.join("from-cairn"), vec![7u8; 100_000]).unwrap();
    ok(sshd.cairn(&repo, &cache).arg("backup").arg(&src));
    ok(sshd
        .restic(&rb, &repo, &rcache)
        .args(["check", "--read-data"]));
    let r2 = d.join("restic-restore");
    ok(sshd
        .restic(&rb, &repo, &rcache)
        .args(["restore", "latest", "--target"])
        .arg(&r2));
    assert_same_tree(&src, &restored(&r2, &src));
}

#[test]
fn init_refuses_an_existing_repository_and_bad_logins_fail_clearly() {
    let Some((_rb, sshd, dir)) = setup() else {
        return;
    };
    let d = dir.path();
    let (repo, cache) = (d.join("repo"), d.join("cache"));
    ok(sshd.cairn(&repo, &cache).arg("init"));
    let out = sshd.cairn(&repo, &cache).arg("init").output().unwrap();
    assert!(!out.status.success());
    // The wrong key: ssh's own message reaches the user.
    let out = cairn()
        .arg("-r")
        .arg(sshd.location(&repo))
        .arg("-o")
        .arg(format!(
            "sftp.args=-p {} -i /nonexistent-key -o IdentitiesOnly=yes -o BatchMode=yes \
             -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null",
            sshd.port
        ))
        .arg("snapshots")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Permission denied"), "{err}");
}
