//! The `rest:` backend against a real REST server, `rclone serve restic` on 127.0.0.1:
//! the conformance suite (raw and through the retry/limit layers), basic auth, TLS with
//! `--cacert` and HTTP/2, TLS client certificates, Unix sockets and append-only refusals.
//! Skipped without rclone (and openssl for the TLS tests) unless CAIRN_REQUIRE_EXTERNAL=1.

use cairn_backend::rest::RestBackend;
use cairn_backend::{BackendOptions, open_backend};
use cairn_repo::backend::{Backend, FileType};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Path of an external program, or `None` (test skipped); panics when CI demands it.
fn external(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(name))
            .find(|f| f.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var("CAIRN_REQUIRE_EXTERNAL").as_deref() != Ok("1"),
            "{name} is required (CAIRN_REQUIRE_EXTERNAL=1) but not installed"
        );
        eprintln!("SKIPPED: {name} is not installed");
    }
    found
}

/// A running `rclone serve restic`, killed on drop.
struct Server {
    child: Child,
    /// `127.0.0.1:PORT`.
    addr: String,
    _dir: tempfile::TempDir,
    /// The directory served.
    root: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Server {
    /// Start rclone serving a fresh directory over TCP with extra flags.
    fn start(rclone: &Path, extra: &[&str]) -> Server {
        for _ in 0..5 {
            let addr = format!("127.0.0.1:{}", free_port());
            if let Some(s) = Self::try_start(rclone, &addr, extra) {
                return s;
            }
        }
        panic!("rclone serve restic did not start");
    }

    fn spawn(rclone: &Path, addr: &str, extra: &[&str], dir: tempfile::TempDir) -> Option<Server> {
        let root = dir.path().join("srv");
        std::fs::create_dir_all(&root).unwrap();
        let child = Command::new(rclone)
            .env("RCLONE_CONFIG", "/dev/null")
            .args(["serve", "restic", "--addr", addr])
            .args(extra)
            .arg(&root)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        Some(Server {
            child,
            addr: addr.to_string(),
            _dir: dir,
            root,
        })
    }

    fn try_start(rclone: &Path, addr: &str, extra: &[&str]) -> Option<Server> {
        let mut s = Self::spawn(rclone, addr, extra, tempfile::tempdir().unwrap())?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = s.child.try_wait() {
                return None; // the port was taken: try another
            }
            if std::net::TcpStream::connect(addr).is_ok() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

fn opts(pairs: &[&str]) -> BackendOptions {
    BackendOptions {
        values: BackendOptions::parse_pairs(pairs.iter().copied()).unwrap(),
        ..Default::default()
    }
}

fn id(n: u8) -> String {
    format!("{n:02x}").repeat(32)
}

#[test]
fn conformance_through_the_layers() {
    let Some(rclone) = external("rclone") else {
        return;
    };
    let s = Server::start(&rclone, &[]);
    let loc = format!("rest:http://{}/repo", s.addr);
    let b = open_backend(&loc, &opts(&["rest.connections=3"])).unwrap();
    assert_eq!(b.location(), format!("rest:http://{}/repo/", s.addr));
    cairn_backend::conformance::run_all(&*b);
    // restic's on-disk layout on the server.
    b.write(FileType::Pack, &id(0x5e), b"pack").unwrap();
    assert!(s.root.join("repo/data/5e").join(id(0x5e)).is_file());
    assert!(s.root.join("repo/config").is_file());
    // A second create on an initialised repository is refused.
    assert!(b.create().is_err(), "create over an existing config");
}

#[test]
fn conformance_of_the_bare_client() {
    let Some(rclone) = external("rclone") else {
        return;
    };
    let s = Server::start(&rclone, &[]);
    let b = RestBackend::open(&format!("http://{}/", s.addr), &opts(&[])).unwrap();
    cairn_backend::conformance::run_all(&b);
    assert_eq!(b.http_version().unwrap(), "HTTP/1.1");
}

#[test]
fn basic_auth() {
    let Some(rclone) = external("rclone") else {
        return;
    };
    let s = Server::start(&rclone, &["--user", "alice", "--pass", "s3cr@t"]);
    let good =
        RestBackend::open(&format!("http://alice:s3cr%40t@{}/r/", s.addr), &opts(&[])).unwrap();
    good.create().unwrap();
    good.write(FileType::Key, &id(1), b"key").unwrap();
    assert_eq!(good.list(FileType::Key).unwrap(), vec![(id(1), 3)]);
    // The password never shows in the location.
    assert!(!good.location().contains("s3cr"), "{}", good.location());

    // Wrong or missing credentials: a permanent error naming the status, not retried.
    for loc in [
        format!("rest:http://alice:wrong@{}/r/", s.addr),
        format!("rest:http://{}/r/", s.addr),
    ] {
        let b = open_backend(&loc, &opts(&[])).unwrap();
        let start = Instant::now();
        let e = b.list(FileType::Key).unwrap_err();
        assert!(e.to_string().contains("401"), "{e}");
        assert!(!cairn_backend::layers::is_transient(&e), "{e}");
        assert!(start.elapsed() < Duration::from_secs(2), "not retried");
    }
}

#[test]
fn append_only_refusals_are_permanent() {
    let Some(rclone) = external("rclone") else {
        return;
    };
    let s = Server::start(&rclone, &["--append-only"]);
    let b = open_backend(&format!("rest:http://{}/", s.addr), &opts(&[])).unwrap();
    b.create().unwrap();
    b.write(FileType::Snapshot, &id(2), b"snap").unwrap();
    let start = Instant::now();
    let e = b.remove(FileType::Snapshot, &id(2)).unwrap_err();
    assert!(e.to_string().contains("403"), "{e}");
    assert!(start.elapsed() < Duration::from_secs(2), "not retried");
    assert_eq!(b.read(FileType::Snapshot, &id(2)).unwrap(), b"snap");
}

/// Forward connections on a Unix socket at `sock` to the TCP address `to` (rclone 1.60
/// cannot listen on Unix sockets itself). The threads end with the test process.
fn unix_proxy(sock: &Path, to: String) {
    let listener = std::os::unix::net::UnixListener::bind(sock).unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(client) = conn else { return };
            let Ok(server) = std::net::TcpStream::connect(&to) else {
                return;
            };
            let (mut c2, mut s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            let (mut c1, mut s1) = (client, server);
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut c1, &mut s1);
                let _ = s1.shutdown(std::net::Shutdown::Write);
            });
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut s2, &mut c2);
                let _ = c2.shutdown(std::net::Shutdown::Write);
            });
        }
    });
}

#[test]
fn unix_socket() {
    let Some(rclone) = external("rclone") else {
        return;
    };
    let s = Server::start(&rclone, &[]);
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("rest.sock");
    unix_proxy(&sock, s.addr.clone());
    let loc = format!("rest:http+unix://{}:/repo/", sock.display());
    let b = open_backend(&loc, &opts(&[])).unwrap();
    cairn_backend::conformance::run_all(&*b);
    assert!(s.root.join("repo/config").is_file());
    assert!(b.location().contains("rest.sock"), "{}", b.location());
}

/// Run openssl with arguments in `dir`.
fn openssl(bin: &Path, dir: &Path, args: &[&str]) {
    let out = Command::new(bin)
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, a server certificate for 127.0.0.1 signed by it, and a client certificate with its
/// key in one PEM file (`client.pem`).
fn make_certs(bin: &Path, dir: &Path) {
    let days = ["-days", "2"];
    openssl(
        bin,
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-subj",
            "/CN=cairn test CA",
            days[0],
            days[1],
        ],
    );
    // Extensions make v3 certificates (webpki refuses v1 ones).
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("client.ext"),
        "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n",
    )
    .unwrap();
    for who in ["server", "client"] {
        let key = format!("{who}.key");
        let csr = format!("{who}.csr");
        let crt = format!("{who}.crt");
        openssl(
            bin,
            dir,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                &key,
                "-out",
                &csr,
                "-subj",
                &format!("/CN={who}"),
            ],
        );
        let ext = format!("{who}.ext");
        openssl(
            bin,
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &crt,
                days[0],
                days[1],
                "-extfile",
                &ext,
            ],
        );
    }
    let mut pem = std::fs::read(dir.join("client.crt")).unwrap();
    pem.extend(std::fs::read(dir.join("client.key")).unwrap());
    std::fs::write(dir.join("client.pem"), pem).unwrap();
}

#[test]
fn tls_with_a_private_ca_http2_and_client_certificates() {
    let (Some(rclone), Some(ossl)) = (external("rclone"), external("openssl")) else {
        return;
    };
    let certs = tempfile::tempdir().unwrap();
    let c = certs.path();
    make_certs(&ossl, c);
    let cert = c.join("server.crt");
    let key = c.join("server.key");
    let s = Server::start(
        &rclone,
        &[
            "--cert",
            cert.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
        ],
    );
    let loc = format!("https://{}/repo", s.addr);

    // Without the CA the server is not trusted: a clear, permanent-looking failure.
    let b = RestBackend::open(&loc, &opts(&[])).unwrap();
    let e = b.stat(FileType::Config, "config").unwrap_err();
    assert!(e.to_string().to_lowercase().contains("certificate"), "{e}");

    let with_ca = BackendOptions {
        ca_certs: vec![c.join("ca.pem")],
        ..Default::default()
    };
    let b = RestBackend::open(&loc, &with_ca).unwrap();
    b.create().unwrap();
    b.write(FileType::Config, "config", b"cfg").unwrap();
    assert_eq!(b.read(FileType::Config, "config").unwrap(), b"cfg");
    // Go's server offers h2 by ALPN.
    assert_eq!(b.http_version().unwrap(), "HTTP/2.0");
    drop(s);

    // A server demanding client certificates.
    let ca = c.join("ca.pem");
    let s = Server::start(
        &rclone,
        &[
            "--cert",
            cert.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
            "--client-ca",
            ca.to_str().unwrap(),
        ],
    );
    let loc = format!("https://{}/repo", s.addr);
    let b = RestBackend::open(&loc, &with_ca).unwrap();
    assert!(
        b.stat(FileType::Config, "config").is_err(),
        "no client certificate"
    );
    let with_client = BackendOptions {
        tls_client_cert: Some(c.join("client.pem")),
        ..with_ca.clone()
    };
    let b = RestBackend::open(&loc, &with_client).unwrap();
    b.create().unwrap();
    assert!(
        b.stat(FileType::Config, "config")
            .unwrap_err()
            .is_not_found()
    );
}
