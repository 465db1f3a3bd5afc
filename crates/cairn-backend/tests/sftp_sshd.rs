//! The `sftp:` backend against a real OpenSSH sshd on 127.0.0.1, started by the test with a
//! throwaway host key and user key, reached through the system's `ssh`.

use cairn_backend::BackendOptions;
use cairn_backend::sftp::SftpBackend;
use cairn_repo::backend::{Backend, FileType};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn required() -> bool {
    std::env::var("CAIRN_REQUIRE_EXTERNAL").is_ok_and(|v| v == "1")
}

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

/// A private sshd on a free loopback port; killed on drop.
struct Sshd {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
    user: String,
}

fn run(c: &mut Command) {
    let out = c.output().unwrap();
    assert!(out.status.success(), "{c:?}: {out:?}");
}

impl Sshd {
    fn start() -> Option<Sshd> {
        let sshd = program("/usr/sbin/sshd")?;
        let keygen = program("ssh-keygen")?;
        program("ssh")?;
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for k in ["host_key", "user_key"] {
            run(Command::new(&keygen)
                .args(["-q", "-t", "ed25519", "-N", "", "-C", "cairn-test", "-f"])
                .arg(d.join(k)));
        }
        std::fs::copy(d.join("user_key.pub"), d.join("authorized_keys")).unwrap();
        // Privilege separation directory (missing in containers without a running sshd).
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
                     AuthorizedKeysFile {dir}/authorized_keys\nPubkeyAuthentication yes\n\
                     PasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                     PermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\n\
                     PidFile none\nSubsystem sftp internal-sftp\nMaxStartups 100\n\
                     LogLevel ERROR\n",
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
                    break; // port taken or bad config: try again / report below
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
        let mut log = String::new();
        let _ =
            std::fs::File::open(d.join("sshd.log")).and_then(|mut f| f.read_to_string(&mut log));
        panic!("sshd did not start: {log}");
    }

    /// `sftp.args` for the throwaway key and host.
    fn args(&self) -> String {
        format!(
            "-p {} -i {} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
             -o BatchMode=yes -o LogLevel=ERROR",
            self.port,
            self.dir.path().join("user_key").display()
        )
    }

    fn opts(&self, extra: &[&str]) -> BackendOptions {
        let mut values = BackendOptions::parse_pairs(extra.iter().copied()).unwrap();
        if !values.contains_key("sftp.command") {
            values.insert("sftp.args".into(), self.args());
        }
        BackendOptions {
            values,
            ..Default::default()
        }
    }

    fn open(&self, repo: &Path, extra: &[&str]) -> SftpBackend {
        let loc = format!("{}@127.0.0.1:{}", self.user, repo.display());
        SftpBackend::open(&loc, &self.opts(extra)).unwrap()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn conformance_through_ssh() {
    let Some(sshd) = Sshd::start() else { return };
    let scratch = tempfile::tempdir().unwrap();
    let b = sshd.open(&scratch.path().join("repo"), &[]);
    cairn_backend::conformance::run_all(&b);
    assert!(scratch.path().join("repo/data/a5").is_dir());
}

#[test]
fn url_form_with_port_and_a_single_connection() {
    let Some(sshd) = Sshd::start() else { return };
    let scratch = tempfile::tempdir().unwrap();
    let repo = scratch.path().join("repo");
    // sftp://user@host:port//absolute, the key via a whole sftp.command.
    let loc = format!("//{}@127.0.0.1:{}/{}", sshd.user, sshd.port, repo.display());
    let cmd = format!(
        "ssh 127.0.0.1 -p {} -l {} -i {} -o StrictHostKeyChecking=no \
         -o UserKnownHostsFile=/dev/null -o BatchMode=yes -o LogLevel=ERROR -s sftp",
        sshd.port,
        sshd.user,
        sshd.dir.path().join("user_key").display()
    );
    let opts = BackendOptions {
        values: BackendOptions::parse_pairs([
            format!("sftp.command={cmd}").as_str(),
            "sftp.connections=1",
        ])
        .unwrap(),
        ..Default::default()
    };
    let b = SftpBackend::open(&loc, &opts).unwrap();
    b.create().unwrap();
    // Eight threads share one permit: every call still completes.
    std::thread::scope(|s| {
        for k in 0..8u8 {
            let b = &b;
            s.spawn(move || {
                let id = format!("{k:02x}").repeat(32);
                b.write(FileType::Snapshot, &id, &[k; 5000]).unwrap();
                assert_eq!(b.read(FileType::Snapshot, &id).unwrap(), vec![k; 5000]);
            });
        }
    });
    assert_eq!(b.list(FileType::Snapshot).unwrap().len(), 8);
    assert_eq!(
        std::fs::read_dir(repo.join("snapshots")).unwrap().count(),
        8
    );
}

#[test]
fn refused_login_is_a_clear_error() {
    let Some(sshd) = Sshd::start() else { return };
    // A key the server does not know.
    let other = sshd.dir.path().join("other_key");
    run(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&other));
    let args = format!(
        "-p {} -i {} -o IdentitiesOnly=yes -o StrictHostKeyChecking=no \
         -o UserKnownHostsFile=/dev/null -o BatchMode=yes",
        sshd.port,
        other.display()
    );
    let loc = format!("{}@127.0.0.1:/tmp/x", sshd.user);
    let o = BackendOptions {
        values: BackendOptions::parse_pairs([format!("sftp.args={args}").as_str()]).unwrap(),
        ..Default::default()
    };
    let e = SftpBackend::open(&loc, &o).unwrap_err().to_string();
    assert!(e.contains("Permission denied"), "{e}");
    assert!(e.contains("exit status: 255"), "{e}");
}

#[test]
fn killed_ssh_is_replaced_by_a_new_session() {
    let Some(sshd) = Sshd::start() else { return };
    let scratch = tempfile::tempdir().unwrap();
    let b = sshd.open(&scratch.path().join("repo"), &[]);
    b.create().unwrap();
    b.write(FileType::Key, &"ab".repeat(32), b"key").unwrap();
    let pid = b.session_pid().unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    // Calls racing with the death fail with a message naming ssh; then a new session works.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match b.read(FileType::Key, &"ab".repeat(32)) {
            Ok(d) => {
                assert_eq!(d, b"key");
                break;
            }
            Err(e) => {
                let msg = e.to_string();
                assert!(msg.contains("ssh"), "{msg}");
                assert!(Instant::now() < deadline, "no new session: {msg}");
            }
        }
    }
    assert_ne!(b.session_pid().unwrap(), pid);
}
