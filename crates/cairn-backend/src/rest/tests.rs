use super::*;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;

#[test]
fn listings() {
    let v2 = br#"[{"name":"ab","size":3},{"name":"cd","size":0}]
"#;
    assert_eq!(
        parse_listing(Some(CONTENT_TYPE_V2), v2).unwrap(),
        Listing::V2(vec![("ab".into(), 3), ("cd".into(), 0)])
    );
    assert_eq!(
        parse_listing(Some(CONTENT_TYPE_V1), br#"["ab","cd"]"#).unwrap(),
        Listing::V1(vec!["ab".into(), "cd".into()])
    );
    // Without the v2 content type the body is read as v1, like restic does.
    assert_eq!(
        parse_listing(Some("application/json"), b"[]").unwrap(),
        Listing::V1(vec![])
    );
    assert_eq!(parse_listing(None, b"[]").unwrap(), Listing::V1(vec![]));
    assert!(parse_listing(Some(CONTENT_TYPE_V1), v2).is_err());
    assert!(parse_listing(Some(CONTENT_TYPE_V2), b"[{\"name\":1}]").is_err());
}

#[test]
fn urls() {
    let b = RestBackend::open("http://u:p@127.0.0.1:1/repo/", &BackendOptions::default()).unwrap();
    assert_eq!(
        b.url(FileType::Config, "config"),
        "http://127.0.0.1:1/repo/config"
    );
    assert_eq!(
        b.url(FileType::Pack, "abcd"),
        "http://127.0.0.1:1/repo/data/abcd"
    );
    assert_eq!(
        b.url(FileType::Key, "ef"),
        "http://127.0.0.1:1/repo/keys/ef"
    );
    assert_eq!(b.location(), "rest:http://u:***@127.0.0.1:1/repo/");
}

#[test]
fn bad_options() {
    let mut o = BackendOptions::default();
    o.values.insert("rest.connections".into(), "0".into());
    assert!(RestBackend::open("http://h/", &o).is_err());
    let mut o = BackendOptions::default();
    o.ca_certs.push("/nonexistent/ca.pem".into());
    let e = RestBackend::open("http://h/", &o).unwrap_err();
    assert!(e.to_string().contains("/nonexistent/ca.pem"), "{e}");
}

#[test]
fn a_stopped_server_is_a_transient_error() {
    // Nothing listens on this port (bound, then dropped).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let b = RestBackend::open(
        &format!("http://127.0.0.1:{port}/"),
        &BackendOptions::default(),
    )
    .unwrap();
    let e = b.stat(FileType::Config, "config").unwrap_err();
    assert!(crate::layers::is_transient(&e), "{e}");
    assert!(e.to_string().contains(&format!("127.0.0.1:{port}")), "{e}");
}

/// A minimal HTTP/1.1 server on 127.0.0.1 answering each request with `answer(method, path,
/// headers)` = (status line, extra headers, body); one request per connection. Returns the
/// base URL.
fn fake_server(
    answer: impl Fn(&str, &str, &[String]) -> (&'static str, Vec<String>, Vec<u8>) + Send + 'static,
) -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut conn) = conn else { return };
            let mut r = BufReader::new(conn.try_clone().unwrap());
            let mut first = String::new();
            if r.read_line(&mut first).is_err() {
                continue;
            }
            let mut headers = Vec::new();
            loop {
                let mut h = String::new();
                if r.read_line(&mut h).is_err() || h.trim().is_empty() {
                    break;
                }
                headers.push(h.trim().to_string());
            }
            let mut parts = first.split_whitespace();
            let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            let (status, extra, body) = answer(method, path, &headers);
            let mut resp = format!(
                "HTTP/1.1 {status}\r\nConnection: close\r\nContent-Length: {}\r\n",
                body.len()
            );
            for h in extra {
                resp.push_str(&h);
                resp.push_str("\r\n");
            }
            resp.push_str("\r\n");
            let _ = conn.write_all(resp.as_bytes());
            if method != "HEAD" {
                let _ = conn.write_all(&body);
            }
        }
    });
    format!("http://{addr}")
}

fn id(n: u8) -> String {
    format!("{n:02x}").repeat(32)
}

#[test]
fn version_1_servers_and_other_answers() {
    let (a, b) = (id(0xaa), id(0xbb));
    let (a2, b2) = (a.clone(), b.clone());
    let url = fake_server(move |method, path, headers| {
        let v1 = format!("Content-Type: {CONTENT_TYPE_V1}");
        let has_v2_accept = headers
            .iter()
            .any(|h| h.to_ascii_lowercase() == format!("accept: {CONTENT_TYPE_V2}"));
        match (method, path) {
            // Every request asks for v2; this server answers v1 anyway.
            (_, _) if !has_v2_accept => ("400 Bad Request", vec![], b"no accept".to_vec()),
            ("GET", "/r/data/") => (
                "200 OK",
                vec![v1],
                format!("[\"{a2}\",\"{b2}\"]").into_bytes(),
            ),
            ("HEAD", p) if p == format!("/r/data/{a2}") => ("200 OK", vec![], vec![0; 10]),
            // Listed, but gone before its HEAD: skipped.
            ("HEAD", p) if p == format!("/r/data/{b2}") => ("404 Not Found", vec![], vec![]),
            // A missing directory on rest-server: an empty list.
            ("GET", "/r/keys/") => ("404 Not Found", vec![], vec![]),
            // rclone uses 404 for internal errors: not an empty list.
            ("GET", "/r/index/") => (
                "404 Not Found",
                vec!["Server: rclone/v1.60.1".into()],
                vec![],
            ),
            ("GET", "/r/snapshots/") => ("503 Service Unavailable", vec![], b"busy".to_vec()),
            ("GET", "/r/locks/") => ("200 OK", vec![v1], b"not json".to_vec()),
            // A server that ignores Range and sends the whole file.
            ("GET", p) if p == format!("/r/data/{a2}") => ("200 OK", vec![], (0..10u8).collect()),
            ("POST", "/r/config") => ("201 Created", vec![], vec![]),
            ("DELETE", _) => ("403 Forbidden", vec![], b"append-only".to_vec()),
            _ => ("404 Not Found", vec![], vec![]),
        }
    });
    let be = RestBackend::open(&format!("{url}/r/"), &BackendOptions::default()).unwrap();
    assert_eq!(be.list(FileType::Pack).unwrap(), vec![(a.clone(), 10)]);
    assert_eq!(be.list(FileType::Key).unwrap(), vec![]);
    assert!(be.list(FileType::Index).unwrap_err().is_not_found());
    let e = be.list(FileType::Snapshot).unwrap_err();
    assert!(crate::layers::is_transient(&e), "{e}");
    assert!(
        e.to_string().contains("503") && e.to_string().contains("busy"),
        "{e}"
    );
    assert!(
        be.list(FileType::Lock)
            .unwrap_err()
            .to_string()
            .contains("bad listing")
    );
    // Range ignored: the slice is cut out of the whole file; past the end is an error.
    assert_eq!(
        be.read_range(FileType::Pack, &a, 3, 4).unwrap(),
        vec![3, 4, 5, 6]
    );
    let e = be.read_range(FileType::Pack, &a, 8, 4).unwrap_err();
    assert!(!crate::layers::is_transient(&e), "{e}");
    assert!(
        be.read_range(FileType::Pack, &b, 0, 1)
            .unwrap_err()
            .is_not_found()
    );
    // Only 200 counts as a successful write (restic does the same).
    assert!(be.write(FileType::Config, "config", b"x").is_err());
    let e = be.remove(FileType::Lock, &a).unwrap_err();
    assert!(
        e.to_string().contains("403") && e.to_string().contains("append-only"),
        "{e}"
    );
    assert!(!crate::layers::is_transient(&e));
}
