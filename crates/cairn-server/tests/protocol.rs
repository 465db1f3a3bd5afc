//! The REST protocol as rest-server answers it, exercised over raw HTTP/1.1 against an
//! in-process server: routes, listings v1/v2, ranges, upload verification, no overwrites,
//! append-only, private repositories, authentication, quota, metrics and concurrency.

use cairn_server::{Server, ServerConfig};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;

/// A parsed response.
struct Resp {
    status: u16,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One HTTP/1.1 request on a fresh connection.
fn http(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
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
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("header end");
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
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Resp {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    }
}

fn start(cfg: ServerConfig) -> SocketAddr {
    let cfg = ServerConfig {
        listen: "127.0.0.1:0".into(),
        ..cfg
    };
    let srv = Server::bind(cfg, None).unwrap();
    let addr = srv.local_addr();
    std::thread::spawn(move || srv.run());
    addr
}

fn no_auth(dir: &Path) -> ServerConfig {
    ServerConfig {
        path: dir.to_path_buf(),
        no_auth: true,
        ..ServerConfig::default()
    }
}

fn id_of(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

const V2: &str = "application/vnd.x.restic.rest.v2";

#[test]
fn repository_operations() {
    let d = tempfile::tempdir().unwrap();
    let a = start(no_auth(d.path()));
    // Create needs ?create=true.
    assert_eq!(http(a, "POST", "/repo/", &[], b"").status, 400);
    assert_eq!(http(a, "POST", "/repo/?create=true", &[], b"").status, 200);
    assert_eq!(http(a, "POST", "/repo/?create=true", &[], b"").status, 200);
    assert!(d.path().join("repo/data/7f").is_dir());
    assert_eq!(http(a, "GET", "/repo/", &[], b"").status, 405);
    assert_eq!(
        http(a, "GET", "/repo/", &[], b"").header("allow"),
        Some("POST")
    );
    // Config: not there, write once, no overwrite, read back.
    assert_eq!(http(a, "HEAD", "/repo/config", &[], b"").status, 404);
    assert_eq!(
        http(a, "POST", "/repo/config", &[], b"cfg-bytes").status,
        200
    );
    assert_eq!(http(a, "POST", "/repo/config", &[], b"other").status, 403);
    let r = http(a, "HEAD", "/repo/config", &[], b"");
    assert_eq!((r.status, r.header("content-length")), (200, Some("9")));
    assert!(r.body.is_empty());
    assert_eq!(http(a, "GET", "/repo/config", &[], b"").body, b"cfg-bytes");
    // A pack: stored under data/xx/, listed with its size.
    let pack: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let id = id_of(&pack);
    assert_eq!(
        http(a, "POST", &format!("/repo/data/{id}"), &[], &pack).status,
        200
    );
    assert!(
        d.path()
            .join("repo/data")
            .join(&id[..2])
            .join(&id)
            .is_file()
    );
    assert_eq!(
        http(a, "POST", &format!("/repo/data/{id}"), &[], &pack).status,
        403
    );
    let r = http(a, "GET", "/repo/data/", &[("Accept", V2)], b"");
    assert_eq!(r.header("content-type"), Some(V2));
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v, serde_json::json!([{"name": id, "size": pack.len()}]));
    let r = http(a, "GET", "/repo/data/", &[], b"");
    assert_eq!(
        r.header("content-type"),
        Some("application/vnd.x.restic.rest.v1")
    );
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&r.body).unwrap(),
        serde_json::json!([id])
    );
    assert_eq!(
        http(a, "GET", "/repo/keys/", &[("Accept", V2)], b"").text(),
        "[]"
    );
    // Reads: whole (streamed), ranges, suffix, unsatisfiable.
    let r = http(a, "GET", &format!("/repo/data/{id}"), &[], b"");
    assert_eq!(r.status, 200);
    assert!(r.body == pack);
    let r = http(
        a,
        "GET",
        &format!("/repo/data/{id}"),
        &[("Range", "bytes=10-19")],
        b"",
    );
    assert_eq!(r.status, 206);
    assert_eq!(r.body, &pack[10..20]);
    assert_eq!(
        r.header("content-range"),
        Some(&*format!("bytes 10-19/{}", pack.len()))
    );
    let r = http(
        a,
        "GET",
        &format!("/repo/data/{id}"),
        &[("Range", "bytes=1000000-")],
        b"",
    );
    assert_eq!((r.status, r.body.len()), (206, pack.len() - 1_000_000));
    assert!(r.body == pack[1_000_000..]);
    let r = http(
        a,
        "GET",
        &format!("/repo/data/{id}"),
        &[("Range", "bytes=-5")],
        b"",
    );
    assert_eq!(r.body, &pack[pack.len() - 5..]);
    let r = http(
        a,
        "GET",
        &format!("/repo/data/{id}"),
        &[("Range", "bytes=9999999-")],
        b"",
    );
    assert_eq!(r.status, 416);
    let r = http(a, "HEAD", &format!("/repo/data/{id}"), &[], b"");
    assert_eq!(r.header("content-length"), Some(&*pack.len().to_string()));
    // Delete is idempotent.
    assert_eq!(
        http(a, "DELETE", &format!("/repo/data/{id}"), &[], b"").status,
        200
    );
    assert_eq!(
        http(a, "DELETE", &format!("/repo/data/{id}"), &[], b"").status,
        200
    );
    assert_eq!(
        http(a, "GET", &format!("/repo/data/{id}"), &[], b"").status,
        404
    );
    assert_eq!(http(a, "DELETE", "/repo/config", &[], b"").status, 200);
    // Wrong methods and paths.
    assert_eq!(http(a, "PUT", "/repo/config", &[], b"").status, 405);
    assert_eq!(http(a, "POST", "/repo/data/", &[], b"").status, 405);
    assert_eq!(http(a, "GET", "/repo/data/xyz", &[], b"").status, 404);
    assert_eq!(http(a, "GET", "/repo/notatype/x", &[], b"").status, 404);
    assert_eq!(http(a, "GET", "/../config", &[], b"").status, 404);
    assert_eq!(http(a, "GET", "/%2e%2e/repo/config", &[], b"").status, 404);
    assert_eq!(http(a, "GET", "/.htpasswd/config", &[], b"").status, 404);
    assert_eq!(http(a, "GET", "/a/b/c/config", &[], b"").status, 404);
    // Lists of a repository that does not exist.
    assert_eq!(http(a, "GET", "/nothere/keys/", &[], b"").status, 404);
}

#[test]
fn uploads_are_verified_and_atomic() {
    let d = tempfile::tempdir().unwrap();
    let a = start(no_auth(d.path()));
    let good = b"some key file".to_vec();
    let wrong = id_of(b"different content");
    assert_eq!(
        http(a, "POST", &format!("/keys/{wrong}"), &[], &good).status,
        400
    );
    // Nothing is left behind, not even a temporary file.
    let keys = d.path().join("keys");
    assert_eq!(std::fs::read_dir(&keys).map(|r| r.count()).unwrap_or(0), 0);
    assert_eq!(
        http(a, "POST", &format!("/keys/{}", id_of(&good)), &[], &good).status,
        200
    );
    use std::os::unix::fs::PermissionsExt;
    let m = std::fs::metadata(keys.join(id_of(&good))).unwrap();
    assert_eq!(m.permissions().mode() & 0o777, 0o600);
    // Truncated body: the declared length is not reached.
    let mut s = TcpStream::connect(a).unwrap();
    let id = id_of(b"0123456789");
    write!(
        s,
        "POST /snapshots/{id} HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n01234"
    )
    .unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    assert_eq!(
        http(a, "HEAD", &format!("/snapshots/{id}"), &[], b"").status,
        404
    );
    // Without verification a mismatching name is accepted (like --no-verify-upload).
    let d2 = tempfile::tempdir().unwrap();
    let b = start(ServerConfig {
        no_verify_upload: true,
        ..no_auth(d2.path())
    });
    assert_eq!(
        http(b, "POST", &format!("/keys/{wrong}"), &[], &good).status,
        200
    );
}

#[test]
fn append_only_mode() {
    let d = tempfile::tempdir().unwrap();
    let a = start(ServerConfig {
        append_only: true,
        ..no_auth(d.path())
    });
    assert_eq!(http(a, "POST", "/?create=true", &[], b"").status, 200);
    for tpe in ["data", "snapshots", "locks", "index", "keys"] {
        let body = format!("{tpe} content");
        let id = id_of(body.as_bytes());
        let path = format!("/{tpe}/{id}");
        assert_eq!(http(a, "POST", &path, &[], body.as_bytes()).status, 200);
        assert_eq!(http(a, "POST", &path, &[], body.as_bytes()).status, 403);
        let expect = if tpe == "locks" { 200 } else { 403 };
        assert_eq!(http(a, "DELETE", &path, &[], b"").status, expect, "{tpe}");
        assert_eq!(
            http(a, "HEAD", &path, &[], b"").status,
            if tpe == "locks" { 404 } else { 200 }
        );
    }
    assert_eq!(http(a, "POST", "/config", &[], b"c").status, 200);
    assert_eq!(http(a, "DELETE", "/config", &[], b"").status, 403);
    assert_eq!(http(a, "GET", "/config", &[], b"").body, b"c");
}

fn basic(user: &str, pass: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
    )
}

#[test]
fn authentication_private_repos_and_metrics() {
    let d = tempfile::tempdir().unwrap();
    let hash = |p: &str| bcrypt::hash(p, 4).unwrap().replacen("$2b$", "$2y$", 1);
    std::fs::write(
        d.path().join(".htpasswd"),
        format!("alice:{}\nmetrics:{}\n", hash("apw"), hash("mpw")),
    )
    .unwrap();
    let a = start(ServerConfig {
        path: d.path().to_path_buf(),
        private_repos: true,
        prometheus: true,
        ..ServerConfig::default()
    });
    let alice = basic("alice", "apw");
    let r = http(a, "POST", "/alice/?create=true", &[], b"");
    assert_eq!(r.status, 401);
    assert!(r.header("www-authenticate").is_some());
    let bad = basic("alice", "nope");
    assert_eq!(
        http(
            a,
            "POST",
            "/alice/?create=true",
            &[("Authorization", &bad)],
            b""
        )
        .status,
        401
    );
    assert_eq!(
        http(
            a,
            "POST",
            "/alice/?create=true",
            &[("Authorization", &alice)],
            b""
        )
        .status,
        200
    );
    assert_eq!(
        http(
            a,
            "POST",
            "/alice/laptop/?create=true",
            &[("Authorization", &alice)],
            b""
        )
        .status,
        200
    );
    // Other users' repositories and the root are off limits.
    assert_eq!(
        http(
            a,
            "POST",
            "/bob/?create=true",
            &[("Authorization", &alice)],
            b""
        )
        .status,
        401
    );
    assert_eq!(
        http(a, "GET", "/config", &[("Authorization", &alice)], b"").status,
        401
    );
    assert_eq!(
        http(
            a,
            "GET",
            "/alicex/config",
            &[("Authorization", &alice)],
            b""
        )
        .status,
        401
    );
    let body = b"lock";
    let path = format!("/alice/laptop/locks/{}", id_of(body));
    assert_eq!(
        http(a, "POST", &path, &[("Authorization", &alice)], body).status,
        200
    );
    assert_eq!(
        http(a, "GET", &path, &[("Authorization", &alice)], b"").body,
        body
    );
    // Metrics need the "metrics" user with private repositories.
    assert_eq!(
        http(a, "GET", "/metrics", &[("Authorization", &alice)], b"").status,
        401
    );
    let r = http(
        a,
        "GET",
        "/metrics",
        &[("Authorization", &basic("metrics", "mpw"))],
        b"",
    );
    assert_eq!(r.status, 200);
    let t = r.text();
    assert!(
        t.contains(
            "rest_server_blob_write_total{repo=\"alice/laptop\",type=\"locks\",user=\"alice\"} 1"
        ),
        "{t}"
    );
    assert!(t.contains(
        "rest_server_blob_read_bytes_total{repo=\"alice/laptop\",type=\"locks\",user=\"alice\"} 4"
    ));
    assert!(t.contains("cairn_serve_requests_total{code=\"401\",method=\"POST\"}"));
}

#[test]
fn missing_htpasswd_refuses_to_start() {
    let d = tempfile::tempdir().unwrap();
    let err = Server::bind(
        ServerConfig {
            path: d.path().to_path_buf(),
            listen: "127.0.0.1:0".into(),
            ..ServerConfig::default()
        },
        None,
    )
    .unwrap_err();
    assert!(err.to_string().contains("--no-auth"), "{err}");
}

#[test]
fn quota_is_enforced_and_tracked() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("existing"), vec![0u8; 1000]).unwrap();
    let a = start(ServerConfig {
        max_size: Some(11_000),
        ..no_auth(d.path())
    });
    let blob = |n: usize, seed: u8| -> Vec<u8> { (0..n).map(|i| (i as u8) ^ seed).collect() };
    let b1 = blob(6000, 1);
    assert_eq!(
        http(a, "POST", &format!("/data/{}", id_of(&b1)), &[], &b1).status,
        200
    );
    // 1000 + 6000 + 5000 > 11000: refused, nothing stored.
    let b2 = blob(5000, 2);
    assert_eq!(
        http(a, "POST", &format!("/data/{}", id_of(&b2)), &[], &b2).status,
        507
    );
    assert_eq!(
        http(a, "HEAD", &format!("/data/{}", id_of(&b2)), &[], b"").status,
        404
    );
    let b3 = blob(4000, 3);
    assert_eq!(
        http(a, "POST", &format!("/data/{}", id_of(&b3)), &[], &b3).status,
        200
    );
    // Deleting gives the space back.
    assert_eq!(
        http(a, "DELETE", &format!("/data/{}", id_of(&b1)), &[], b"").status,
        200
    );
    assert_eq!(
        http(a, "POST", &format!("/data/{}", id_of(&b2)), &[], &b2).status,
        200
    );
    // A failed (mismatching) upload does not leak quota.
    let b4 = blob(1000, 4);
    assert_eq!(
        http(a, "POST", &format!("/data/{}", id_of(b"x")), &[], &b4).status,
        400
    );
    assert_eq!(
        http(a, "POST", &format!("/data/{}", id_of(&b4)), &[], &b4).status,
        200
    );
}

#[test]
fn many_concurrent_clients() {
    let d = tempfile::tempdir().unwrap();
    let a = start(no_auth(d.path()));
    assert_eq!(http(a, "POST", "/?create=true", &[], b"").status, 200);
    let handles: Vec<_> = (0..32u32)
        .map(|t| {
            std::thread::spawn(move || {
                let mut ids = Vec::new();
                for i in 0..8u32 {
                    let body: Vec<u8> = (0..(20_000 + t * 1000 + i))
                        .map(|x| (x ^ t ^ i) as u8)
                        .collect();
                    let id = id_of(&body);
                    assert_eq!(
                        http(a, "POST", &format!("/data/{id}"), &[], &body).status,
                        200
                    );
                    assert!(http(a, "GET", &format!("/data/{id}"), &[], b"").body == body);
                    ids.push(id);
                }
                ids
            })
        })
        .collect();
    let mut all: Vec<String> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    all.sort();
    let r = http(a, "GET", "/data/", &[("Accept", V2)], b"");
    let v: Vec<serde_json::Value> = serde_json::from_slice(&r.body).unwrap();
    let mut listed: Vec<String> = v
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_string())
        .collect();
    listed.sort();
    assert_eq!(listed, all);
}

#[test]
fn proxy_authentication_header() {
    let d = tempfile::tempdir().unwrap();
    // No htpasswd file is needed when a proxy authenticates.
    let a = start(ServerConfig {
        path: d.path().to_path_buf(),
        proxy_auth_username: Some("X-Forwarded-User".into()),
        private_repos: true,
        ..ServerConfig::default()
    });
    let alice = [("X-Forwarded-User", "alice")];
    assert_eq!(http(a, "POST", "/alice/?create=true", &[], b"").status, 401);
    assert_eq!(
        http(a, "POST", "/alice/?create=true", &alice, b"").status,
        200
    );
    assert_eq!(
        http(a, "POST", "/bob/?create=true", &alice, b"").status,
        401
    );
    assert_eq!(http(a, "GET", "/alice/keys/", &alice, b"").status, 200);
}
