//! The `rest:` backend: a client of restic's REST protocol (rest-server, `rclone serve
//! restic`, `cairn serve`), versions 2 and 1, over HTTP/1.1 or HTTP/2 (negotiated by ALPN over
//! TLS), with basic auth, extra CA certificates, TLS client certificates and Unix sockets.
//!
//! Status codes are mapped with [`crate::layers::status_error`] so that the retry layer can tell
//! transient failures (5xx, connection errors) from permanent ones (401/403/404/416/507).

pub mod location;

use crate::layers::status_error;
use crate::options::BackendOptions;
use cairn_repo::backend::{Backend, BackendError, FileType};
use location::RestLocation;
use reqwest::blocking::{Client, RequestBuilder, Response};
use reqwest::header::{ACCEPT, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, RANGE, SERVER};
use reqwest::{Method, StatusCode};
use std::error::Error as _;
use std::io::{self, Read};
use std::sync::Arc;
use std::time::Duration;

/// Media type selecting version 1 of the REST protocol.
pub const CONTENT_TYPE_V1: &str = "application/vnd.x.restic.rest.v1";
/// Media type selecting version 2 of the REST protocol (listings with sizes).
pub const CONTENT_TYPE_V2: &str = "application/vnd.x.restic.rest.v2";

/// A repository on a REST server.
#[derive(Debug)]
pub struct RestBackend {
    client: Client,
    loc: RestLocation,
}

/// Open the `rest:` repository at `location` (the part after `rest:`).
pub fn open(location: &str, opts: &BackendOptions) -> Result<Arc<dyn Backend>, BackendError> {
    Ok(Arc::new(RestBackend::open(location, opts)?))
}

fn read_file(what: &str, p: &std::path::Path) -> Result<Vec<u8>, BackendError> {
    std::fs::read(p).map_err(|e| BackendError::Io {
        path: format!("{what} {}", p.display()),
        source: e,
    })
}

/// The full message of an error and its causes.
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

/// A transport error (no HTTP answer, or a broken body) as a backend error; all of them are
/// transient for the retry layer except invalid requests.
fn transport_error(what: &str, e: &reqwest::Error) -> BackendError {
    let kind = if e.is_timeout() {
        io::ErrorKind::TimedOut
    } else if e.is_connect() {
        io::ErrorKind::ConnectionRefused
    } else if e.is_body() || e.is_decode() {
        io::ErrorKind::UnexpectedEof
    } else if e.is_builder() {
        io::ErrorKind::InvalidInput
    } else {
        io::ErrorKind::Other
    };
    // reqwest's own message repeats the URL that `what` names already; keep the causes.
    let msg = match e.source() {
        Some(cause) if e.url().is_some() => chain(cause),
        _ => chain(e),
    };
    BackendError::Io {
        path: what.to_string(),
        source: io::Error::new(kind, msg),
    }
}

/// The `Content-Length` header (reqwest reports a HEAD response's body size instead).
fn content_length(resp: &Response) -> Option<u64> {
    resp.headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

/// The total size from `Content-Range: bytes a-b/total`.
fn content_range_total(resp: &Response) -> Option<u64> {
    let v = resp.headers().get(CONTENT_RANGE)?.to_str().ok()?;
    v.rsplit_once('/')?.1.trim().parse().ok()
}

/// One entry of a version-2 listing.
#[derive(serde::Deserialize)]
struct ListEntry {
    name: String,
    size: u64,
}

/// A parsed listing: version 2 has sizes, version 1 only names.
#[derive(Debug, PartialEq)]
enum Listing {
    V2(Vec<(String, u64)>),
    V1(Vec<String>),
}

/// Parse a listing body; version 2 only when the server said so in `Content-Type`
/// (as restic does).
fn parse_listing(content_type: Option<&str>, body: &[u8]) -> Result<Listing, String> {
    let v2 = content_type.is_some_and(|c| c.trim() == CONTENT_TYPE_V2);
    if v2 {
        let items: Vec<ListEntry> = serde_json::from_slice(body).map_err(|e| e.to_string())?;
        Ok(Listing::V2(
            items.into_iter().map(|e| (e.name, e.size)).collect(),
        ))
    } else {
        let names: Vec<String> = serde_json::from_slice(body).map_err(|e| e.to_string())?;
        Ok(Listing::V1(names))
    }
}

impl RestBackend {
    /// Open the repository at `location` (the part after `rest:`) with `opts`
    /// (`rest.connections`, `--cacert`, `--tls-client-cert`). No request is sent yet.
    pub fn open(location: &str, opts: &BackendOptions) -> Result<RestBackend, BackendError> {
        let loc = RestLocation::parse(location)?;
        let conns = opts
            .get_u64("rest.connections")
            .map_err(BackendError::Other)?
            .unwrap_or(crate::layers::DEFAULT_CONNECTIONS as u64);
        if conns == 0 {
            return Err(BackendError::Other(
                "option rest.connections: must be at least 1".into(),
            ));
        }
        let mut b = Client::builder()
            .use_rustls_tls()
            .pool_max_idle_per_host(usize::try_from(conns).unwrap_or(usize::MAX))
            .connect_timeout(Duration::from_secs(30))
            .timeout(None)
            .tcp_nodelay(true)
            .tcp_keepalive(Duration::from_secs(60))
            .user_agent(concat!("cairn/", env!("CARGO_PKG_VERSION")));
        for ca in &opts.ca_certs {
            let pem = read_file("reading CA certificates", ca)?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                BackendError::Other(format!(
                    "{}: invalid certificates: {}",
                    ca.display(),
                    chain(&e)
                ))
            })?;
            if certs.is_empty() {
                return Err(BackendError::Other(format!(
                    "{}: no PEM certificate found",
                    ca.display()
                )));
            }
            for c in certs {
                b = b.add_root_certificate(c);
            }
        }
        if let Some(p) = &opts.tls_client_cert {
            let pem = read_file("reading TLS client certificate", p)?;
            let id = reqwest::Identity::from_pem(&pem).map_err(|e| {
                BackendError::Other(format!(
                    "{}: invalid TLS client certificate (want PEM with certificate and key): {}",
                    p.display(),
                    chain(&e)
                ))
            })?;
            b = b.identity(id);
        }
        if opts.insecure_tls {
            b = b.danger_accept_invalid_certs(true);
        }
        if let Some(sock) = &loc.socket {
            b = b.unix_socket(sock.clone());
        }
        let client = b
            .build()
            .map_err(|e| BackendError::Other(format!("rest client: {}", chain(&e))))?;
        Ok(RestBackend { client, loc })
    }

    /// The URL of a file.
    fn url(&self, t: FileType, name: &str) -> String {
        match t {
            FileType::Config => format!("{}/config", self.loc.base),
            _ => format!("{}/{}/{name}", self.loc.base, t.dir()),
        }
    }

    /// How a request is named in messages (method and URL without credentials).
    fn what(&self, method: &Method, url: &str) -> String {
        let shown = match &self.loc.socket {
            Some(s) => format!("{url} (via {})", s.display()),
            None => url.to_string(),
        };
        format!("{method} {shown}")
    }

    fn request(&self, method: Method, url: &str) -> RequestBuilder {
        let r = self
            .client
            .request(method, url)
            .header(ACCEPT, CONTENT_TYPE_V2);
        match &self.loc.credentials {
            Some((u, p)) => r.basic_auth(u, Some(p)),
            None => r,
        }
    }

    /// Send a request; transport errors become backend errors.
    fn send(&self, what: &str, r: RequestBuilder) -> Result<Response, BackendError> {
        r.send().map_err(|e| transport_error(what, &e))
    }

    /// The error for an unexpected status, with the start of the server's message.
    fn unexpected(&self, what: &str, resp: Response) -> BackendError {
        let status = resp.status();
        let mut raw = Vec::new();
        let _ = resp.take(512).read_to_end(&mut raw);
        let body = String::from_utf8_lossy(&raw);
        let body = body.trim();
        let detail = if body.is_empty() {
            status.to_string()
        } else {
            format!("{status}: {body}")
        };
        status_error(what, status.as_u16(), &detail)
    }

    /// Read a response body, checking its length against `Content-Length`.
    fn body(&self, what: &str, mut resp: Response) -> Result<Vec<u8>, BackendError> {
        let expected = content_length(&resp);
        let cap = expected.unwrap_or(0).min(256 << 20) as usize;
        let mut buf = Vec::with_capacity(cap);
        resp.read_to_end(&mut buf).map_err(|e| BackendError::Io {
            path: what.to_string(),
            source: io::Error::new(io::ErrorKind::UnexpectedEof, chain(&e)),
        })?;
        if let Some(n) = expected
            && n != buf.len() as u64
        {
            return Err(BackendError::Io {
                path: what.to_string(),
                source: io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("body has {} of {n} bytes", buf.len()),
                ),
            });
        }
        Ok(buf)
    }

    /// The HTTP version the server answers with (`HTTP/1.1`, `HTTP/2.0`): one `HEAD` of the
    /// config file. For diagnostics and tests.
    pub fn http_version(&self) -> Result<String, BackendError> {
        let url = self.url(FileType::Config, "config");
        let what = self.what(&Method::HEAD, &url);
        let resp = self.send(&what, self.request(Method::HEAD, &url))?;
        Ok(format!("{:?}", resp.version()))
    }

    /// List with a v1 answer: names only, sizes by one `HEAD` each.
    fn sizes_v1(
        &self,
        t: FileType,
        names: Vec<String>,
    ) -> Result<Vec<(String, u64)>, BackendError> {
        let mut out = Vec::with_capacity(names.len());
        for n in names {
            match self.stat(t, &n) {
                Ok(size) => out.push((n, size)),
                // Removed between listing and stat.
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }
}

impl Backend for RestBackend {
    fn location(&self) -> String {
        self.loc.display.clone()
    }

    /// `POST {base}/?create=true` after making sure there is no config yet.
    fn create(&self) -> Result<(), BackendError> {
        match self.stat(FileType::Config, "config") {
            Ok(_) => {
                return Err(BackendError::AlreadyExists(
                    self.url(FileType::Config, "config"),
                ));
            }
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
        let url = format!("{}/?create=true", self.loc.base);
        let what = self.what(&Method::POST, &url);
        let resp = self.send(
            &what,
            self.request(Method::POST, &url)
                .header(CONTENT_TYPE, "binary/octet-stream")
                .body(Vec::new()),
        )?;
        if resp.status() != StatusCode::OK {
            return Err(self.unexpected(&what, resp));
        }
        Ok(())
    }

    fn list(&self, t: FileType) -> Result<Vec<(String, u64)>, BackendError> {
        if t == FileType::Config {
            return match self.stat(t, "config") {
                Ok(n) => Ok(vec![("config".to_string(), n)]),
                Err(e) if e.is_not_found() => Ok(vec![]),
                Err(e) => Err(e),
            };
        }
        let url = format!("{}/{}/", self.loc.base, t.dir());
        let what = self.what(&Method::GET, &url);
        let resp = self.send(&what, self.request(Method::GET, &url))?;
        if resp.status() == StatusCode::NOT_FOUND {
            // rest-server: a missing directory. rclone also uses 404 for internal errors.
            let rclone = resp
                .headers()
                .get(SERVER)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|s| s.starts_with("rclone/"));
            if !rclone {
                return Ok(vec![]);
            }
        }
        if resp.status() != StatusCode::OK {
            return Err(self.unexpected(&what, resp));
        }
        let ctype = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = self.body(&what, resp)?;
        match parse_listing(ctype.as_deref(), &body) {
            Ok(Listing::V2(items)) => Ok(items),
            Ok(Listing::V1(names)) => self.sizes_v1(t, names),
            Err(e) => Err(BackendError::Io {
                path: what,
                source: io::Error::new(io::ErrorKind::InvalidData, format!("bad listing: {e}")),
            }),
        }
    }

    fn read(&self, t: FileType, name: &str) -> Result<Vec<u8>, BackendError> {
        let url = self.url(t, name);
        let what = self.what(&Method::GET, &url);
        let resp = self.send(&what, self.request(Method::GET, &url))?;
        if resp.status() != StatusCode::OK {
            return Err(self.unexpected(&what, resp));
        }
        self.body(&what, resp)
    }

    fn read_range(
        &self,
        t: FileType,
        name: &str,
        offset: u64,
        len: u64,
    ) -> Result<Vec<u8>, BackendError> {
        let url = self.url(t, name);
        let what = self.what(&Method::GET, &url);
        let end = offset
            .checked_add(len)
            .ok_or_else(|| BackendError::Other(format!("{what}: range overflows")))?;
        if len == 0 {
            // Nothing to fetch; still report a missing file.
            self.stat(t, name)?;
            return Ok(Vec::new());
        }
        let range = format!("bytes={offset}-{}", end - 1);
        let resp = self.send(&what, self.request(Method::GET, &url).header(RANGE, range))?;
        let past_end = |size: u64| BackendError::Io {
            path: what.clone(),
            source: io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("range {offset}+{len} is past the end of the file ({size} bytes)"),
            ),
        };
        let short = |got: usize| BackendError::Io {
            path: what.clone(),
            source: io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("short read: got {got} of {len} bytes"),
            ),
        };
        match resp.status() {
            StatusCode::PARTIAL_CONTENT => {
                if let Some(total) = content_range_total(&resp)
                    && total < end
                {
                    return Err(past_end(total));
                }
                let data = self.body(&what, resp)?;
                if data.len() as u64 != len {
                    return Err(short(data.len()));
                }
                Ok(data)
            }
            // The server ignored the range and sent the whole file.
            StatusCode::OK => {
                let data = self.body(&what, resp)?;
                let size = data.len() as u64;
                let (Ok(a), Ok(b)) = (usize::try_from(offset), usize::try_from(end)) else {
                    return Err(past_end(size));
                };
                data.get(a..b)
                    .map(<[u8]>::to_vec)
                    .ok_or_else(|| past_end(size))
            }
            StatusCode::RANGE_NOT_SATISFIABLE => {
                let size = content_range_total(&resp).unwrap_or(0);
                Err(past_end(size))
            }
            _ => Err(self.unexpected(&what, resp)),
        }
    }

    fn stat(&self, t: FileType, name: &str) -> Result<u64, BackendError> {
        let url = self.url(t, name);
        let what = self.what(&Method::HEAD, &url);
        let resp = self.send(&what, self.request(Method::HEAD, &url))?;
        if resp.status() != StatusCode::OK {
            return Err(self.unexpected(&what, resp));
        }
        content_length(&resp).ok_or_else(|| BackendError::Io {
            path: what,
            source: io::Error::new(
                io::ErrorKind::InvalidData,
                "no Content-Length in the answer",
            ),
        })
    }

    fn write(&self, t: FileType, name: &str, data: &[u8]) -> Result<(), BackendError> {
        let url = self.url(t, name);
        let what = self.what(&Method::POST, &url);
        let resp = self.send(
            &what,
            self.request(Method::POST, &url)
                .header(CONTENT_TYPE, "application/octet-stream")
                .body(data.to_vec()),
        )?;
        if resp.status() != StatusCode::OK {
            return Err(self.unexpected(&what, resp));
        }
        // Drain the (empty) answer so the connection can be reused.
        let _ = self.body(&what, resp);
        Ok(())
    }

    fn remove(&self, t: FileType, name: &str) -> Result<(), BackendError> {
        let url = self.url(t, name);
        let what = self.what(&Method::DELETE, &url);
        let resp = self.send(&what, self.request(Method::DELETE, &url))?;
        if resp.status() != StatusCode::OK {
            return Err(self.unexpected(&what, resp));
        }
        let _ = self.body(&what, resp);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
