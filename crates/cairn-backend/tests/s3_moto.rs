//! The S3 backend against a real S3 server: moto (`moto_server`, PyPI `moto[server]`), started
//! by each test on a free 127.0.0.1 port and killed when the test ends. Skipped when
//! moto_server is not installed, unless CAIRN_REQUIRE_EXTERNAL=1 (CI), where that fails.

use cairn_backend::BackendOptions;
use cairn_backend::s3::{S3Backend, S3Config, S3Credentials};
use cairn_repo::backend::{Backend, FileType};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn find_program(name: &str) -> Option<PathBuf> {
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

/// A running moto_server; killed on drop.
struct Moto {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Moto {
    fn start() -> Option<Moto> {
        Moto::start_with(&[])
    }

    /// Start with extra arguments (`-c cert -k key` for HTTPS).
    fn start_with(extra: &[&std::ffi::OsStr]) -> Option<Moto> {
        let bin = find_program("moto_server")?;
        for _attempt in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let dir = tempfile::tempdir().unwrap();
            let log = std::fs::File::create(dir.path().join("moto.log")).unwrap();
            let child = Command::new(&bin)
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .args(extra)
                .current_dir(dir.path())
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap();
            let mut moto = Moto { child, port, dir };
            let deadline = Instant::now() + Duration::from_secs(60);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = moto.child.try_wait() {
                    break; // port taken in the meantime: try another
                }
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Some(moto);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        panic!("moto_server did not start");
    }

    fn url(&self, rest: &str) -> String {
        format!("http://127.0.0.1:{}/{rest}", self.port)
    }

    /// The server's request log (one line per request, with the query string).
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("moto.log")).unwrap()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn config(location: &str, options: &[&str]) -> S3Config {
    let opts = BackendOptions {
        values: BackendOptions::parse_pairs(options.iter().copied()).unwrap(),
        ..Default::default()
    };
    let mut cfg = S3Config::new(location, &opts, &|_| None).unwrap();
    cfg.credentials = Some(S3Credentials {
        key_id: "testing".into(),
        secret: "testing".into(),
        token: None,
    });
    cfg
}

fn id(n: u8) -> String {
    format!("{n:02x}").repeat(32)
}

#[test]
fn conformance_with_listobjects_v2_pages() {
    let Some(moto) = Moto::start() else { return };
    let mut cfg = config(&moto.url("conformance/some/prefix"), &[]);
    cfg.list_page_size = Some(2); // every listing spans several pages
    let b = S3Backend::new(cfg).unwrap();
    cairn_backend::conformance::run_all(&b);
    let log = moto.log();
    assert!(log.contains("list-type=2"), "V2 listings:\n{log}");
    assert!(log.contains("continuation-token="), "paginated:\n{log}");
    assert!(
        !log.contains("uploadId="),
        "no multipart upload below 32 MiB:\n{log}"
    );
}

#[test]
fn conformance_with_multipart_uploads_and_listobjects_v1() {
    let Some(moto) = Moto::start() else { return };
    // Empty prefix: the repository is the bucket root.
    let mut cfg = config(&moto.url("v1bucket"), &["s3.list-objects-v1=true"]);
    cfg.multipart_threshold = 6 << 20; // the suite's 24 MiB file goes up in 5 parts
    cfg.part_size = 5 << 20;
    cfg.list_page_size = Some(2);
    let b = S3Backend::new(cfg).unwrap();
    cairn_backend::conformance::run_all(&b);
    // A 3-part upload of a size that is not a multiple of the part size, read back exactly.
    let data: Vec<u8> = (0..(12 << 20) + 777u32).map(|i| (i % 253) as u8).collect();
    b.write(FileType::Pack, &id(0x42), &data).unwrap();
    assert_eq!(
        b.stat(FileType::Pack, &id(0x42)).unwrap(),
        data.len() as u64
    );
    assert!(b.read(FileType::Pack, &id(0x42)).unwrap() == data);
    let log = moto.log();
    assert!(
        log.contains("partNumber=5&uploadId="),
        "5-part upload:\n{log}"
    );
    assert!(
        log.contains("marker="),
        "V1 pages continue with markers:\n{log}"
    );
    let listings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("GET /v1bucket/?"))
        .collect();
    assert!(!listings.is_empty(), "{log}");
    assert!(
        listings.iter().all(|l| !l.contains("list-type")),
        "only V1 listings:\n{log}"
    );
}

#[test]
fn create_layout_region_and_foreign_objects() {
    let Some(moto) = Moto::start() else { return };
    // A missing bucket: no config (the CLI reports "no repository"), create makes the bucket.
    let b = S3Backend::new(config(&moto.url("fresh/repo"), &["s3.region=eu-west-1"])).unwrap();
    assert!(
        b.stat(FileType::Config, "config")
            .unwrap_err()
            .is_not_found()
    );
    b.create().unwrap();
    b.write(FileType::Config, "config", b"cfg").unwrap();
    let again = b.create().unwrap_err();
    assert!(
        matches!(again, cairn_repo::backend::BackendError::AlreadyExists(_)),
        "{again}"
    );
    // Without s3.region the bucket's region is asked from the server.
    let probe = S3Backend::new(config(&moto.url("fresh/repo"), &[])).unwrap();
    assert_eq!(probe.region(), "eu-west-1");
    assert_eq!(probe.read(FileType::Config, "config").unwrap(), b"cfg");

    // Objects that are not part of the layout are not listed: keys in a wrong data
    // subdirectory, non-id names, deeper "directories".
    let pack = id(0x5a);
    b.write(FileType::Pack, &pack, b"pack").unwrap();
    b.write(FileType::Snapshot, &id(0x11), b"snap").unwrap();
    let foreign = S3Backend::new(config(&moto.url("fresh/repo/data"), &[])).unwrap();
    foreign.write(FileType::Key, &id(0x77), b"x").unwrap(); // repo/data/keys/77…
    foreign.write(FileType::Config, "config", b"x").unwrap(); // repo/data/config
    let deeper = S3Backend::new(config(&moto.url("fresh/repo/snapshots"), &[])).unwrap();
    deeper.write(FileType::Index, &id(0x22), b"x").unwrap(); // repo/snapshots/index/22…
    assert_eq!(b.list(FileType::Pack).unwrap(), vec![(pack.clone(), 4)]);
    assert_eq!(b.list(FileType::Snapshot).unwrap(), vec![(id(0x11), 4)]);
    assert_eq!(
        b.list(FileType::Config).unwrap(),
        vec![("config".to_string(), 3)]
    );
    // Prefixes with characters that need escaping in URLs.
    let odd = S3Backend::new(config(&moto.url("fresh/with%20space+plus/%C3%A9"), &[])).unwrap();
    assert_eq!(
        odd.key(FileType::Config, "config").unwrap(),
        "with space+plus/é/config"
    );
    odd.write(FileType::Snapshot, &id(0x33), b"odd").unwrap();
    assert_eq!(odd.list(FileType::Snapshot).unwrap(), vec![(id(0x33), 3)]);
    assert_eq!(odd.read(FileType::Snapshot, &id(0x33)).unwrap(), b"odd");
    odd.remove(FileType::Snapshot, &id(0x33)).unwrap();
    assert!(odd.list(FileType::Snapshot).unwrap().is_empty());
    // Another prefix in the same bucket is another repository.
    let other = S3Backend::new(config(&moto.url("fresh/other"), &[])).unwrap();
    assert!(other.list(FileType::Pack).unwrap().is_empty());
    assert!(
        other
            .stat(FileType::Config, "config")
            .unwrap_err()
            .is_not_found()
    );
    // Removing a missing object is NotFound (S3 itself answers 204).
    assert!(
        b.remove(FileType::Pack, &id(0x99))
            .unwrap_err()
            .is_not_found()
    );
    // A range starting past the end is an error, not an empty read.
    assert!(b.read_range(FileType::Pack, &pack, 10, 1).is_err());
    assert!(
        b.read_range(FileType::Pack, &pack, 4, 0)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn location_and_credentials_errors() {
    // No server needed: bad locations and options fail before any request.
    let opts = BackendOptions::default();
    assert!(cairn_backend::s3::open("http://127.0.0.1:1", &opts).is_err());
    let bad = BackendOptions {
        values: BackendOptions::parse_pairs(["s3.bucket-lookup=nope"]).unwrap(),
        ..Default::default()
    };
    assert!(cairn_backend::s3::open("http://127.0.0.1:1/b", &bad).is_err());
}

#[test]
fn https_with_a_private_ca() {
    let Some(openssl) = find_program("openssl") else {
        return;
    };
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) = (certs.path().join("cert.pem"), certs.path().join("key.pem"));
    let st = Command::new(openssl)
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"])
        .args([
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .args(["-addext", "basicConstraints=critical,CA:FALSE", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    let Some(moto) = Moto::start_with(&[
        "-c".as_ref(),
        cert.as_os_str(),
        "-k".as_ref(),
        key.as_os_str(),
    ]) else {
        return;
    };
    let location = format!("https://127.0.0.1:{}/tls/repo", moto.port);
    // Unknown certificate: refused.
    let untrusted = S3Backend::new(config(&location, &["s3.region=us-east-1"])).unwrap();
    let err = untrusted.stat(FileType::Config, "config").unwrap_err();
    assert!(err.to_string().contains("certificate"), "{err}");
    // Trusted with --cacert: works.
    let mut cfg = config(&location, &[]);
    cfg.ca_certs = vec![cert.clone()];
    let b = S3Backend::new(cfg).unwrap();
    b.create().unwrap();
    b.write(FileType::Config, "config", b"over tls").unwrap();
    assert_eq!(b.read(FileType::Config, "config").unwrap(), b"over tls");
    assert!(
        moto.log().contains("PUT /tls/repo/config"),
        "{}",
        moto.log()
    );
}
