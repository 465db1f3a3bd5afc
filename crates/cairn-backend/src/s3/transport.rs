//! The HTTP side of the S3 backend: a blocking client with TLS settings, a limit on
//! concurrent requests, and turning S3 error responses into [`BackendError`]s.

use cairn_repo::backend::BackendError;
use reqwest::blocking::Client;
use reqwest::header::HeaderMap;
use std::io::Read;
use std::sync::{Condvar, Mutex};
use std::time::Duration;

/// Timeout of requests without a large body (HEAD, DELETE, listings, small objects).
const SHORT_TIMEOUT: Duration = Duration::from_secs(120);
/// Timeout of requests that move object data.
const LONG_TIMEOUT: Duration = Duration::from_secs(900);
/// Error bodies are read up to this size for their code and message.
const MAX_ERROR_BODY: u64 = 64 << 10;

/// A counting semaphore limiting concurrent requests.
#[derive(Debug)]
struct Semaphore {
    free: Mutex<usize>,
    cv: Condvar,
}

struct Permit<'a>(&'a Semaphore);

impl Semaphore {
    fn acquire(&self) -> Permit<'_> {
        let mut n = self.free.lock().unwrap_or_else(|e| e.into_inner());
        while *n == 0 {
            n = self.cv.wait(n).unwrap_or_else(|e| e.into_inner());
        }
        *n -= 1;
        Permit(self)
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        let mut n = self.0.free.lock().unwrap_or_else(|e| e.into_inner());
        *n += 1;
        self.0.cv.notify_one();
    }
}

/// One request to send.
pub struct Request<'a> {
    /// HTTP method.
    pub method: reqwest::Method,
    /// Signed URL.
    pub url: url::Url,
    /// Extra headers (the signed ones must be here with the signed values).
    pub headers: Vec<(&'static str, String)>,
    /// Body, if any.
    pub body: Option<Vec<u8>>,
    /// Whether the request moves object data (longer timeout).
    pub bulk: bool,
    /// What is being done, for messages (`GET data/ab/ab…`).
    pub what: &'a str,
}

/// A complete response (the body is read while the connection permit is held).
#[derive(Debug)]
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// Response headers.
    pub headers: HeaderMap,
    /// Response body (only up to 64 KiB for error statuses).
    pub body: Vec<u8>,
}

impl Response {
    /// A header as a string.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The `<Code>` of an S3 XML error body (empty if there is none).
    pub fn error_code(&self) -> &str {
        std::str::from_utf8(&self.body)
            .ok()
            .and_then(|b| xml_text(b, "Code"))
            .unwrap_or("")
    }

    /// An error describing this (failed) response.
    pub fn error(&self, what: &str) -> BackendError {
        let body = String::from_utf8_lossy(&self.body);
        let code = xml_text(&body, "Code").unwrap_or("");
        let message = xml_text(&body, "Message").unwrap_or("");
        let mut msg = format!("HTTP {}", self.status);
        if !code.is_empty() {
            msg.push_str(&format!(" {code}"));
        }
        if !message.is_empty() {
            msg.push_str(&format!(": {message}"));
        }
        if let Some(region) = self.header("x-amz-bucket-region")
            && (code == "AuthorizationHeaderMalformed" || self.status == 301)
        {
            msg.push_str(&format!(
                " (the bucket is in region {region}; use -o s3.region={region})"
            ));
        }
        // Classify for the retry layer: client errors are permanent, throttling and server
        // errors transient (S3's RequestTimeout comes as a 400).
        use std::io::ErrorKind as K;
        let kind = match (self.status, code) {
            (_, "RequestTimeout") | (408, _) => K::TimedOut,
            (_, "SlowDown") | (429, _) | (500..=599, _) if self.status != 501 => K::Other,
            (401 | 403, _) => K::PermissionDenied,
            (404, _) => K::NotFound,
            (507, _) => K::StorageFull,
            (400..=499, _) | (501, _) => K::InvalidInput,
            _ => K::Other,
        };
        BackendError::Io {
            path: format!("s3: {what}"),
            source: std::io::Error::new(kind, msg),
        }
    }
}

/// A transport failure (no HTTP response), classified for the retry layer.
fn transport_error(what: &str, e: &reqwest::Error) -> BackendError {
    use std::io::ErrorKind as K;
    let kind = if e.is_timeout() {
        K::TimedOut
    } else if e.is_connect() {
        K::ConnectionRefused
    } else if e.is_builder() {
        K::InvalidInput
    } else {
        K::ConnectionReset
    };
    BackendError::Io {
        path: format!("s3: {what}"),
        source: std::io::Error::new(kind, chain(e)),
    }
}

/// The text of the first `<tag>…</tag>` element in `body` (no entity decoding).
pub fn xml_text<'a>(body: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = body.find(&open)? + open.len();
    let rest = body.get(start..)?;
    let end = rest.find(&close)?;
    rest.get(..end)
}

/// An error with its causes (`error sending request: …: invalid peer certificate: …`).
fn chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let part = s.to_string();
        if !msg.contains(&part) {
            msg.push_str(": ");
            msg.push_str(&part);
        }
        cur = s.source();
    }
    msg
}

/// The HTTP client shared by all threads.
#[derive(Debug)]
pub struct Http {
    client: Client,
    sem: Semaphore,
}

fn read_file(p: &std::path::Path) -> Result<Vec<u8>, BackendError> {
    std::fs::read(p).map_err(|e| BackendError::Io {
        path: p.display().to_string(),
        source: e,
    })
}

impl Http {
    /// A client allowing `connections` concurrent requests, trusting the extra CA
    /// certificates (PEM files) and presenting the client certificate, if given.
    pub fn new(
        connections: usize,
        ca_certs: &[std::path::PathBuf],
        client_cert: Option<&std::path::Path>,
        insecure_tls: bool,
    ) -> Result<Http, BackendError> {
        let mut b = Client::builder()
            .use_rustls_tls()
            .timeout(LONG_TIMEOUT)
            .connect_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(connections)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("cairn/", env!("CARGO_PKG_VERSION")));
        for f in ca_certs {
            let pem = read_file(f)?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| BackendError::Other(format!("--cacert {}: {e}", f.display())))?;
            for c in certs {
                b = b.add_root_certificate(c);
            }
        }
        if insecure_tls {
            b = b.danger_accept_invalid_certs(true);
        }
        if let Some(f) = client_cert {
            let pem = read_file(f)?;
            let id = reqwest::Identity::from_pem(&pem).map_err(|e| {
                BackendError::Other(format!("--tls-client-cert {}: {e}", f.display()))
            })?;
            b = b.identity(id);
        }
        let client = b
            .build()
            .map_err(|e| BackendError::Other(format!("s3: building the HTTP client: {e}")))?;
        Ok(Http {
            client,
            sem: Semaphore {
                free: Mutex::new(connections.max(1)),
                cv: Condvar::new(),
            },
        })
    }

    /// Send a request and read the whole response.
    pub fn exec(&self, req: Request<'_>) -> Result<Response, BackendError> {
        let _permit = self.sem.acquire();
        let mut rb = self
            .client
            .request(req.method.clone(), req.url)
            .timeout(if req.bulk {
                LONG_TIMEOUT
            } else {
                SHORT_TIMEOUT
            });
        for (k, v) in &req.headers {
            rb = rb.header(*k, v);
        }
        match req.body {
            Some(body) => rb = rb.body(body),
            // Servers want a Content-Length on every PUT and POST (411 otherwise).
            None if req.method == reqwest::Method::PUT || req.method == reqwest::Method::POST => {
                rb = rb.body(Vec::new())
            }
            None => {}
        }
        tracing::debug!("s3: {}", req.what);
        let mut resp = rb.send().map_err(|e| transport_error(req.what, &e))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let mut body = Vec::new();
        if req.method != reqwest::Method::HEAD {
            let res = if (200..300).contains(&status) {
                if let Some(n) = resp.content_length() {
                    body.reserve(usize::try_from(n).unwrap_or(0));
                }
                resp.read_to_end(&mut body)
            } else {
                (&mut resp).take(MAX_ERROR_BODY).read_to_end(&mut body)
            };
            res.map_err(|e| BackendError::Io {
                path: format!("s3: {}: reading the response", req.what),
                source: e,
            })?;
        }
        Ok(Response {
            status,
            headers,
            body,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies() {
        let body = "<?xml version=\"1.0\"?><Error><Code>NoSuchKey</Code>\
                    <Message>The specified key does not exist.</Message></Error>";
        assert_eq!(xml_text(body, "Code"), Some("NoSuchKey"));
        assert_eq!(
            xml_text(body, "Message"),
            Some("The specified key does not exist.")
        );
        assert_eq!(xml_text(body, "Missing"), None);
        assert_eq!(xml_text("<Code>unterminated", "Code"), None);
        let r = Response {
            status: 403,
            headers: HeaderMap::new(),
            body: body.replace("NoSuchKey", "AccessDenied").into_bytes(),
        };
        assert_eq!(r.error_code(), "AccessDenied");
        let msg = r.error("GET config").to_string();
        assert!(msg.contains("403") && msg.contains("AccessDenied"), "{msg}");
    }

    #[test]
    fn semaphore_limits_concurrency() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let sem = Semaphore {
            free: Mutex::new(2),
            cv: Condvar::new(),
        };
        let (now, max) = (AtomicUsize::new(0), AtomicUsize::new(0));
        std::thread::scope(|s| {
            for _ in 0..6 {
                s.spawn(|| {
                    let _p = sem.acquire();
                    let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                    max.fetch_max(n, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(20));
                    now.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        assert_eq!(max.load(Ordering::SeqCst), 2);
    }
}
