//! `cairn serve` with the real restic as client: backup, check --read-data and restore through
//! the server; htpasswd authentication; append-only refusing a prune; private repositories;
//! TLS with a custom CA; and raw-HTTP checks of upload verification, quota and metrics.
//!
//! restic 0.14 retries refused requests for about a minute, so where the server must refuse,
//! the test waits for restic's report of the refusal and then interrupts it.

mod common;
use common::*;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

/// A running `cairn serve`, killed on drop.
struct Serve {
    child: Child,
    url: String,
    log: Arc<Mutex<String>>,
}

impl Serve {
    fn start(dir: &Path, extra: &[&str]) -> Serve {
        let mut child = cairn()
            .args(["serve", "--listen", "127.0.0.1:0", "--path"])
            .arg(dir)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut reader = BufReader::new(child.stderr.take().unwrap());
        let mut seen = String::new();
        let url = loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap() == 0 {
                let _ = child.wait();
                panic!("cairn serve exited early:\n{seen}");
            }
            seen.push_str(&line);
            if let Some(u) = line.trim().strip_prefix("Listening on ") {
                break u.trim_end_matches('/').to_string();
            }
        };
        let log = Arc::new(Mutex::new(seen));
        let l2 = log.clone();
        std::thread::spawn(move || {
            for line in reader.lines() {
                let Ok(line) = line else { break };
                let mut l = l2.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        Serve { child, url, log }
    }

    /// `rest:` repository location for `repo` (with optional `user:pass@`).
    fn repo(&self, creds: &str, repo: &str) -> String {
        let (scheme, host) = self.url.split_once("://").unwrap();
        format!("rest:{scheme}://{creds}{host}/{repo}")
    }

    fn addr(&self) -> SocketAddr {
        self.url.split_once("://").unwrap().1.parse().unwrap()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("cairn serve log:\n{}", self.log.lock().unwrap());
        }
    }
}

/// Run a command that the server must refuse: wait until its stderr shows `needle` (restic
/// reports each refused request before retrying), then interrupt it. Returns its stderr.
fn expect_refusal(c: &mut Command, needle: &str) -> String {
    let mut child = c
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let reader = BufReader::new(child.stderr.take().unwrap());
    std::thread::spawn(move || {
        for line in reader.lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut text = String::new();
    let mut found = false;
    while Instant::now() < deadline {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => {
                found |= line.contains(needle);
                text.push_str(&line);
                text.push('\n');
                if found {
                    break;
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    // SIGINT: restic cancels and removes its lock.
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT);
    let status = child.wait().unwrap();
    while let Ok(line) = rx.recv_timeout(Duration::from_millis(500)) {
        text.push_str(&line);
        text.push('\n');
    }
    assert!(found, "expected {needle:?} in the output of {c:?}:\n{text}");
    assert!(!status.success(), "{c:?} succeeded:\n{text}");
    text
}

/// One raw HTTP/1.1 request; returns status, headers (lowercase names) and body.
fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, HashMap<String, String>, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let hdrs = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, hdrs, raw[split + 4..].to_vec())
}

fn sha256_hex(b: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(b))
}

fn basic(user: &str, pass: &str) -> String {
    let raw = format!("{user}:{pass}");
    // Minimal base64 for the test's ASCII credentials.
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in raw.as_bytes().chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    format!("Basic {out}")
}

/// Files below `dir` (recursive), as relative paths.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.path().strip_prefix(dir).unwrap().to_path_buf());
            }
        }
    }
    out.sort();
    out
}

fn htpasswd(dir: &Path, users: &[(&str, &str)]) -> PathBuf {
    let p = dir.join("htpasswd");
    let text: String = users
        .iter()
        .map(|(u, pw)| {
            // `htpasswd -B` writes the $2y$ prefix.
            let h = bcrypt::hash(pw, 5).unwrap().replacen("$2b$", "$2y$", 1);
            format!("{u}:{h}\n")
        })
        .collect();
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn restic_backup_check_restore_prune_through_serve() {
    let Some(rb) = external("restic") else { return };
    let d = tempfile::tempdir().unwrap();
    let (src, data, cache) = (
        d.path().join("src"),
        d.path().join("data"),
        d.path().join("cache"),
    );
    make_source_tree(&src);
    std::fs::create_dir(&data).unwrap();
    let srv = Serve::start(&data, &["--no-auth"]);
    let repo = srv.repo("", "repo");
    let r = || {
        let mut c = restic(&rb, &cache);
        c.args(["-r", &repo]);
        c
    };
    ok(r().arg("init"));
    ok(r().arg("backup").arg(&src));
    std::fs::write(src.join("added-later"), vec![7u8; 300_000]).unwrap();
    ok(r().arg("backup").arg(&src));
    ok(r().args(["check", "--read-data"]));
    let target = d.path().join("restore");
    ok(r().args(["restore", "latest", "--target"]).arg(&target));
    assert_same_tree(&src, &restored(&target, &src));
    // Deleting works outside append-only mode.
    ok(r().args(["forget", "--keep-last", "1", "--prune"]));
    let out = ok(r().args(["snapshots", "--json"]));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 1);
    ok(r().args(["check", "--read-data"]));
    // On disk: restic's local layout with packs under data/xx/, files 0600, so the same
    // directory is a valid local repository.
    let on_disk = data.join("repo");
    let all = files(&on_disk);
    assert!(
        all.iter()
            .any(|p| p.starts_with("data") && p.components().count() == 3)
    );
    assert!(
        !all.iter().any(|p| p.to_string_lossy().contains("tmp")),
        "{all:?}"
    );
    use std::os::unix::fs::PermissionsExt;
    for p in &all {
        let m = std::fs::metadata(on_disk.join(p)).unwrap();
        assert_eq!(m.permissions().mode() & 0o777, 0o600, "{}", p.display());
    }
    ok(cairn()
        .arg("-r")
        .arg(&on_disk)
        .args(["check", "--read-data"]));
    // Cairn as a REST client reads what restic wrote through the server.
    ok(cairn().args(["-r", &repo, "check", "--read-data"]));
    let target2 = d.path().join("restore-cairn");
    ok(cairn()
        .args(["-r", &repo, "restore", "latest", "--target"])
        .arg(&target2));
    assert_same_tree(&src, &restored(&target2, &src));
}

#[test]
fn cairn_client_through_serve() {
    let Some(rb) = external("restic") else { return };
    let d = tempfile::tempdir().unwrap();
    let (src, data, cache) = (
        d.path().join("src"),
        d.path().join("data"),
        d.path().join("cache"),
    );
    make_source_tree(&src);
    std::fs::create_dir(&data).unwrap();
    let pw = htpasswd(d.path(), &[("carol", "cpw")]);
    let srv = Serve::start(&data, &["--htpasswd-file", pw.to_str().unwrap()]);
    let repo = srv.repo("carol:cpw@", "carol/box");
    let c = || {
        let mut c = cairn();
        c.args(["-r", &repo]);
        c
    };
    ok(c().arg("init"));
    ok(c().arg("backup").arg(&src));
    std::fs::write(src.join("added-later"), vec![9u8; 100_000]).unwrap();
    ok(c().arg("backup").arg(&src));
    ok(c().args(["forget", "--keep-last", "1", "--prune"]));
    ok(c().args(["check", "--read-data"]));
    let target = d.path().join("restore");
    ok(c().args(["restore", "latest", "--target"]).arg(&target));
    assert_same_tree(&src, &restored(&target, &src));
    // restic agrees about what Cairn wrote through the server.
    ok(restic(&rb, &cache).args(["-r", &repo, "check", "--read-data"]));
    let target2 = d.path().join("restore-restic");
    ok(restic(&rb, &cache)
        .args(["-r", &repo, "restore", "latest", "--target"])
        .arg(&target2));
    assert_same_tree(&src, &restored(&target2, &src));
    // A wrong password is refused.
    let bad = srv.repo("carol:nope@", "carol/box");
    let out = cairn().args(["-r", &bad, "snapshots"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("401"));
}

#[test]
fn cairn_prune_refused_in_append_only() {
    let d = tempfile::tempdir().unwrap();
    let (src, data) = (d.path().join("src"), d.path().join("data"));
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("a"), vec![1u8; 200_000]).unwrap();
    std::fs::create_dir(&data).unwrap();
    let srv = Serve::start(&data, &["--no-auth", "--append-only"]);
    let repo = srv.repo("", "repo");
    let c = || {
        let mut c = cairn();
        c.args(["-r", &repo]);
        c
    };
    ok(c().arg("init"));
    ok(c().arg("backup").arg(&src));
    std::fs::write(src.join("a"), vec![2u8; 200_000]).unwrap();
    ok(c().arg("backup").arg(&src));
    let before = files(&data.join("repo"));
    let out = c()
        .args(["forget", "--keep-last", "1", "--prune"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "forget --prune succeeded");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("403"), "{err}");
    // A prune that has nothing to delete still works.
    ok(c().arg("prune"));
    assert_eq!(before, files(&data.join("repo")), "nothing may be deleted");
    let out = ok(c().args(["snapshots", "--json"]));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 2);
    ok(c().args(["check", "--read-data"]));
}

#[test]
fn htpasswd_authentication() {
    let Some(rb) = external("restic") else { return };
    let d = tempfile::tempdir().unwrap();
    let (data, cache) = (d.path().join("data"), d.path().join("cache"));
    std::fs::create_dir(&data).unwrap();
    let pw = htpasswd(d.path(), &[("alice", "s3cret")]);
    let srv = Serve::start(&data, &["--htpasswd-file", pw.to_str().unwrap()]);
    let good = srv.repo("alice:s3cret@", "repo");
    ok(restic(&rb, &cache).args(["-r", &good, "init"]));
    ok(restic(&rb, &cache).args(["-r", &good, "backup"]).arg(&pw));
    ok(restic(&rb, &cache).args(["-r", &good, "check"]));
    let bad = srv.repo("alice:wrong@", "repo");
    expect_refusal(restic(&rb, &cache).args(["-r", &bad, "snapshots"]), "401");
    let nobody = srv.repo("", "repo");
    expect_refusal(
        restic(&rb, &cache).args(["-r", &nobody, "snapshots"]),
        "401",
    );
    // Without --no-auth and without an htpasswd file the server refuses to start.
    let empty = d.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let out = cairn()
        .args(["serve", "--listen", "127.0.0.1:0", "--path"])
        .arg(&empty)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--no-auth"));
}

#[test]
fn append_only_refuses_prune() {
    let Some(rb) = external("restic") else { return };
    let d = tempfile::tempdir().unwrap();
    let (src, data, cache) = (
        d.path().join("src"),
        d.path().join("data"),
        d.path().join("cache"),
    );
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("a"), vec![1u8; 200_000]).unwrap();
    std::fs::create_dir(&data).unwrap();
    let srv = Serve::start(&data, &["--no-auth", "--append-only"]);
    let repo = srv.repo("", "repo");
    let r = || {
        let mut c = restic(&rb, &cache);
        c.args(["-r", &repo]);
        c
    };
    ok(r().arg("init"));
    ok(r().arg("backup").arg(&src));
    std::fs::write(src.join("a"), vec![2u8; 200_000]).unwrap();
    ok(r().arg("backup").arg(&src));
    let before: Vec<PathBuf> = files(&data.join("repo"))
        .into_iter()
        .filter(|p| !p.starts_with("locks"))
        .collect();
    let text = expect_refusal(r().args(["forget", "--keep-last", "1", "--prune"]), "403");
    assert!(text.contains("Forbidden"), "{text}");
    let after: Vec<PathBuf> = files(&data.join("repo"))
        .into_iter()
        .filter(|p| !p.starts_with("locks"))
        .collect();
    assert_eq!(before, after, "nothing may be deleted in append-only mode");
    let out = ok(r().args(["snapshots", "--json"]));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 2);
    // Locks can still be removed, so the repository is not left locked.
    ok(r().args(["check", "--read-data"]));
    assert!(files(&data.join("repo/locks")).is_empty());
}

#[test]
fn private_repositories() {
    let Some(rb) = external("restic") else { return };
    let d = tempfile::tempdir().unwrap();
    let (data, cache) = (d.path().join("data"), d.path().join("cache"));
    std::fs::create_dir(&data).unwrap();
    let pw = htpasswd(d.path(), &[("alice", "apw"), ("bob", "bpw")]);
    let srv = Serve::start(
        &data,
        &["--private-repos", "--htpasswd-file", pw.to_str().unwrap()],
    );
    for (user, pass) in [("alice", "apw"), ("bob", "bpw")] {
        let repo = srv.repo(&format!("{user}:{pass}@"), user);
        ok(restic(&rb, &cache).args(["-r", &repo, "init"]));
        ok(restic(&rb, &cache).args(["-r", &repo, "backup"]).arg(&pw));
    }
    // Sub-repositories below the own name are allowed.
    let sub = srv.repo("alice:apw@", "alice/laptop");
    ok(restic(&rb, &cache).args(["-r", &sub, "init"]));
    // alice cannot read bob's repository (nor the root).
    let a = srv.addr();
    let alice = basic("alice", "apw");
    for path in ["/bob/config", "/bob/keys/", "/config", "/alicex/config"] {
        let (status, _, _) = http(a, "GET", path, &[("Authorization", &alice)], b"");
        assert_eq!(status, 401, "{path}");
    }
    let (status, _, _) = http(a, "GET", "/alice/config", &[("Authorization", &alice)], b"");
    assert_eq!(status, 200);
    let cross = srv.repo("alice:apw@", "bob");
    expect_refusal(restic(&rb, &cache).args(["-r", &cross, "snapshots"]), "401");
}

#[test]
fn tls_with_custom_ca() {
    let Some(rb) = external("restic") else { return };
    let d = tempfile::tempdir().unwrap();
    let (src, data, cache) = (
        d.path().join("src"),
        d.path().join("data"),
        d.path().join("cache"),
    );
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("f"), b"over tls").unwrap();
    std::fs::create_dir(&data).unwrap();
    let ck =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    let (cert, key) = (d.path().join("cert.pem"), d.path().join("key.pem"));
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
    let srv = Serve::start(
        &data,
        &[
            "--no-auth",
            "--tls",
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    assert!(srv.url.starts_with("https://"));
    let repo = srv.repo("", "repo");
    let r = || {
        let mut c = restic(&rb, &cache);
        c.args(["-r", &repo, "--cacert", cert.to_str().unwrap()]);
        c
    };
    ok(r().arg("init"));
    ok(r().arg("backup").arg(&src));
    ok(r().args(["check", "--read-data"]));
    let target = d.path().join("restore");
    ok(r().args(["restore", "latest", "--target"]).arg(&target));
    assert_eq!(
        std::fs::read(restored(&target, &src).join("f")).unwrap(),
        b"over tls"
    );
    // Without the CA restic refuses the certificate.
    expect_refusal(
        restic(&rb, &cache).args(["-r", &repo, "snapshots"]),
        "certificate",
    );
}

#[test]
fn verification_quota_and_metrics_over_http() {
    let d = tempfile::tempdir().unwrap();
    let (data, access) = (d.path().join("data"), d.path().join("access.log"));
    std::fs::create_dir(&data).unwrap();
    let srv = Serve::start(
        &data,
        &[
            "--no-auth",
            "--max-size",
            "100000",
            "--prometheus",
            "--debug",
            "--log",
            access.to_str().unwrap(),
        ],
    );
    let a = srv.addr();
    assert_eq!(http(a, "POST", "/r/?create=true", &[], b"").0, 200);
    // A blob whose content does not match its name is rejected and not stored.
    let body = vec![5u8; 1000];
    let wrong = sha256_hex(b"something else");
    assert_eq!(
        http(a, "POST", &format!("/r/data/{wrong}"), &[], &body).0,
        400
    );
    assert_eq!(
        http(a, "HEAD", &format!("/r/data/{wrong}"), &[], b"").0,
        404
    );
    let id = sha256_hex(&body);
    assert_eq!(http(a, "POST", &format!("/r/data/{id}"), &[], &body).0, 200);
    let (status, h, _) = http(a, "HEAD", &format!("/r/data/{id}"), &[], b"");
    assert_eq!(
        (status, h.get("content-length").map(String::as_str)),
        (200, Some("1000"))
    );
    // Beyond --max-size: 507 Insufficient Storage.
    let big = vec![6u8; 100_000];
    assert_eq!(
        http(
            a,
            "POST",
            &format!("/r/data/{}", sha256_hex(&big)),
            &[],
            &big
        )
        .0,
        507
    );
    let (_, _, listing) = http(
        a,
        "GET",
        "/r/data/",
        &[("Accept", "application/vnd.x.restic.rest.v2")],
        b"",
    );
    let v: serde_json::Value = serde_json::from_slice(&listing).unwrap();
    assert_eq!(v, serde_json::json!([{"name": id, "size": 1000}]));
    let (status, _, m) = http(a, "GET", "/metrics", &[], b"");
    assert_eq!(status, 200);
    let m = String::from_utf8(m).unwrap();
    assert!(
        m.contains("rest_server_blob_write_bytes_total{repo=\"r\",type=\"data\",user=\"\"} 1000"),
        "{m}"
    );
    assert!(
        m.contains("cairn_serve_requests_total{code=\"507\",method=\"POST\"} 1"),
        "{m}"
    );
    // The access log (combined format) and the --debug request lines.
    let log = std::fs::read_to_string(&access).unwrap();
    assert!(
        log.contains(&format!("\"POST /r/data/{id} HTTP/1.1\" 200 0")),
        "{log}"
    );
    assert!(log.contains(&format!("\"POST /r/data/{wrong} HTTP/1.1\" 400")));
    let deadline = Instant::now() + Duration::from_secs(5);
    while !srv
        .log
        .lock()
        .unwrap()
        .contains(&format!("POST /r/data/{id}"))
    {
        assert!(Instant::now() < deadline, "no --debug line");
        std::thread::sleep(Duration::from_millis(20));
    }
}
