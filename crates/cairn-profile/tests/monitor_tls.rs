//! HTTPS hooks: certificate verification, `ca-certificates` and `skip-tls-verification`
//! against a small TLS server with a self-signed certificate.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cairn_profile::monitor::send::{HttpSettings, SendContext, send_all};
use cairn_profile::types::SendSpec;

struct TlsServer {
    url: String,
    served: Arc<AtomicUsize>,
    cert_pem: String,
}

/// An HTTPS server on 127.0.0.1 answering every request with `200 OK`.
fn tls_server() -> TlsServer {
    let ck =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    let cert_der = ck.cert.der().clone();
    let key_der = rustls::pki_types::PrivateKeyDer::Pkcs8(ck.signing_key.serialize_der().into());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert_der], key_der)
    .unwrap();
    let config = Arc::new(config);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "https://127.0.0.1:{}",
        listener.local_addr().unwrap().port()
    );
    let served = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&served);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let config = Arc::clone(&config);
            let counter = Arc::clone(&counter);
            std::thread::spawn(move || {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                let Ok(conn) = rustls::ServerConnection::new(config) else {
                    return;
                };
                let mut tls = rustls::StreamOwned::new(conn, stream);
                let mut reader = BufReader::new(&mut tls);
                loop {
                    let mut line = String::new();
                    match reader.read_line(&mut line) {
                        Ok(0) | Err(_) => return,
                        Ok(_) if line.trim().is_empty() => break,
                        Ok(_) => {}
                    }
                }
                drop(reader);
                counter.fetch_add(1, Ordering::SeqCst);
                let _ = tls.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nOK",
                );
                let _ = tls.flush();
                tls.conn.send_close_notify();
                let _ = tls.flush();
            });
        }
    });
    TlsServer {
        url,
        served,
        cert_pem: ck.cert.pem(),
    }
}

fn settings() -> HttpSettings {
    HttpSettings {
        timeout: Duration::from_secs(5),
        ..HttpSettings::default()
    }
}

#[test]
fn tls_verification_ca_certificates_and_skip() {
    let server = tls_server();
    let env = BTreeMap::new();
    let ctx = SendContext {
        profile: "p",
        command: "backup",
        error: None,
        env: &env,
    };
    let hook = SendSpec {
        url: format!("{}/hook", server.url),
        ..SendSpec::default()
    };

    // Unknown issuer: refused, reported as a warning, nothing served.
    let warnings = send_all(std::slice::from_ref(&hook), &ctx, &settings());
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("/hook"), "{}", warnings[0]);
    assert!(warnings[0].contains("certificate"), "{}", warnings[0]);
    assert!(
        !warnings[0].contains("attempts"),
        "not retried: {}",
        warnings[0]
    );
    assert_eq!(server.served.load(Ordering::SeqCst), 0);

    // skip-tls-verification accepts it.
    let insecure = SendSpec {
        skip_tls_verification: true,
        ..hook.clone()
    };
    let warnings = send_all(&[insecure], &ctx, &settings());
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(server.served.load(Ordering::SeqCst), 1);

    // So does trusting the certificate through ca-certificates.
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &server.cert_pem).unwrap();
    let trusted = HttpSettings {
        ca_certificates: vec![ca],
        ..settings()
    };
    let warnings = send_all(&[hook], &ctx, &trusted);
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(server.served.load(Ordering::SeqCst), 2);
}
