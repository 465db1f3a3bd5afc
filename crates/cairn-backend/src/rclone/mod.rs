//! The `rclone:` backend: starts `rclone serve restic --stdio` as a child process, exactly as
//! restic does, and speaks restic's REST protocol (v2) to it over HTTP/2 on the child's
//! stdin/stdout. Every storage provider rclone supports thereby becomes a Cairn backend.
//!
//! The sync [`Backend`] methods run their requests on a small private tokio runtime; the
//! requests of all threads are multiplexed as HTTP/2 streams over the one connection, at most
//! `rclone.connections` at a time.

mod config;
mod process;
mod request;

pub use config::{Config, parse_duration, shell_split};

use crate::options::BackendOptions;
use bytes::Bytes;
use cairn_repo::backend::{Backend, BackendError, FileType};
use h2::client::SendRequest;
use http::header::RANGE;
use http::{Method, StatusCode};
use process::Process;
use request::{HttpError, Reply, Req, V2};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::runtime::{Handle, Runtime};

/// Open the `rclone:` repository at `location` (the part after `rclone:`): start rclone and
/// wait until it answers.
pub fn open(location: &str, opts: &BackendOptions) -> Result<Arc<dyn Backend>, BackendError> {
    let cfg = Config::new(location, opts)?;
    Ok(Arc::new(RcloneBackend::start(location, &cfg)?))
}

/// The private runtime; shut down without blocking when dropped (dropping a tokio runtime
/// normally may not happen inside another runtime).
struct Rt(Option<Runtime>);

impl Rt {
    /// Stop the runtime: its tasks, among them the HTTP/2 connection, are dropped.
    fn shutdown(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

impl Drop for Rt {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// A repository served by an rclone child process.
pub struct RcloneBackend {
    remote: String,
    rt: Rt,
    handle: Handle,
    send: SendRequest<Bytes>,
    proc: Arc<Process>,
    conn_error: Arc<Mutex<Option<String>>>,
}

impl std::fmt::Debug for RcloneBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RcloneBackend")
            .field("remote", &self.remote)
            .finish_non_exhaustive()
    }
}

fn other(msg: String) -> BackendError {
    BackendError::Other(msg)
}

/// Run `f` on `handle`'s runtime from a synchronous caller (also from inside another tokio
/// runtime, where blocking the current thread directly is not allowed).
fn block<F>(handle: &Handle, f: F) -> Result<F::Output, BackendError>
where
    F: Future + Send,
    F::Output: Send,
{
    if Handle::try_current().is_err() {
        return Ok(handle.block_on(f));
    }
    std::thread::scope(|s| s.spawn(|| handle.block_on(f)).join())
        .map_err(|_| other("rclone: request thread panicked".into()))
}

/// Percent-encode a file name for a URL path (names are ids or `config`; anything else is
/// encoded rather than trusted).
fn encode(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// URL path of a file.
fn path_of(t: FileType, name: &str) -> String {
    match t {
        FileType::Config => "/config".to_string(),
        _ => format!("/{}/{}", t.dir(), encode(name)),
    }
}

/// Display name of a file for messages.
fn shown(t: FileType, name: &str) -> String {
    match t {
        FileType::Config => "config".to_string(),
        _ => format!("{}/{name}", t.dir()),
    }
}

/// Parse a REST v2 listing: `[{"name": "...", "size": N}, ...]`.
fn parse_v2(body: &[u8]) -> Result<Vec<(String, u64)>, String> {
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("listing is not JSON: {e}"))?;
    let items = v.as_array().ok_or("listing is not a JSON array")?;
    items
        .iter()
        .map(|it| {
            let name = it.get("name").and_then(|n| n.as_str());
            let size = it.get("size").and_then(|s| s.as_u64());
            match (name, size) {
                (Some(n), Some(s)) => Ok((n.to_string(), s)),
                _ => Err(format!("listing entry without name and size: {it}")),
            }
        })
        .collect()
}

/// Parse a REST v1 listing: `["name", ...]`.
fn parse_v1(body: &[u8]) -> Result<Vec<String>, String> {
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("listing is not JSON: {e}"))?;
    let items = v.as_array().ok_or("listing is not a JSON array")?;
    items
        .iter()
        .map(|it| {
            it.as_str()
                .map(str::to_string)
                .ok_or_else(|| format!("listing entry is not a name: {it}"))
        })
        .collect()
}

impl RcloneBackend {
    /// Start rclone for `remote` with `cfg` and wait (up to `cfg.timeout`) until it answers
    /// HTTP/2 requests.
    pub fn start(remote: &str, cfg: &Config) -> Result<RcloneBackend, BackendError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("rclone-http2")
            .enable_io()
            .enable_time()
            .build()
            .map_err(|e| other(format!("rclone: cannot start the I/O runtime: {e}")))?;
        let handle = runtime.handle().clone();
        let rt = Rt(Some(runtime));
        let (proc, conn, foreground) = {
            let _entered = handle.enter();
            Process::spawn(&cfg.argv)?
        };
        let proc = Arc::new(proc);
        let conn_error = Arc::new(Mutex::new(None));
        let ce = conn_error.clone();
        let probe = async move {
            let (send, connection) = h2::client::Builder::new()
                .initial_window_size(4 << 20)
                .initial_connection_window_size(16 << 20)
                .max_frame_size(1 << 20)
                .handshake::<_, Bytes>(conn)
                .await?;
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::debug!("rclone: HTTP/2 connection ended: {e}");
                    *ce.lock().unwrap_or_else(|e| e.into_inner()) = Some(e.to_string());
                }
            });
            // Any answer (rclone says 404) proves that rclone serves requests.
            let path = format!("/file-{}", rand::random::<u64>());
            let reply = request::request(&send, Req::new(Method::GET, &path)).await?;
            Ok::<_, HttpError>((send, reply.status))
        };
        let timeout = cfg.timeout;
        let result = block(&handle, async move {
            if timeout.is_zero() {
                Ok::<_, tokio::time::error::Elapsed>(probe.await)
            } else {
                tokio::time::timeout(timeout, probe).await
            }
        })?;
        drop(foreground);
        let fail = |msg: String| {
            let why = proc.death_note(Duration::from_secs(2)).unwrap_or_else(|| {
                let tail = proc.stderr_tail(Duration::ZERO);
                if tail.is_empty() {
                    msg.clone()
                } else {
                    format!("{msg} (rclone said: {})", tail.join(" / "))
                }
            });
            proc.kill();
            other(format!(
                "rclone:{remote}: error talking HTTP to rclone: {why}"
            ))
        };
        let send = match result {
            Ok(Ok((send, status))) => {
                tracing::debug!("rclone answered the probe with {status}");
                send
            }
            Ok(Err(HttpError::Transport(e))) => return Err(fail(e.to_string())),
            Ok(Err(HttpError::Malformed(m))) => return Err(fail(m)),
            Err(_) => {
                return Err(fail(format!(
                    "no answer within {timeout:?} (option rclone.timeout)"
                )));
            }
        };
        Ok(RcloneBackend {
            remote: remote.to_string(),
            rt,
            handle,
            send,
            proc,
            conn_error,
        })
    }

    /// Send one request and return the answer. Concurrency is capped by the connection-limit
    /// layer every remote backend is wrapped in (`rclone.connections`).
    fn call(&self, req: Req<'_>) -> Result<Reply, BackendError> {
        let what = format!("{} {}", req.method, req.path);
        let fut = request::request(&self.send, req);
        match block(&self.handle, fut)? {
            Ok(r) => Ok(r),
            Err(HttpError::Malformed(m)) => Err(other(format!("rclone: {what}: {m}"))),
            Err(HttpError::Transport(e)) => Err(self.broken(&what, &e)),
        }
    }

    /// The error for a broken request: rclone's exit and last words when it died (retrying
    /// cannot help then: restic does not restart rclone either), else a transient I/O error.
    fn broken(&self, what: &str, e: &h2::Error) -> BackendError {
        if let Some(note) = self.proc.death_note(Duration::from_millis(200)) {
            return other(format!("rclone: {what}: {note}"));
        }
        let conn = self
            .conn_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let msg = match conn {
            Some(c) => format!("{e} (connection: {c})"),
            None => e.to_string(),
        };
        BackendError::Io {
            path: format!("rclone: {what}"),
            source: std::io::Error::new(std::io::ErrorKind::ConnectionAborted, msg),
        }
    }

    /// The full name of a file for messages.
    fn full(&self, file: &str) -> String {
        format!("rclone:{}/{file}", self.remote)
    }

    /// Map a status to the result: `ok` → the reply, 404 → not found, else an error
    /// classified for the retry layer.
    fn check(
        &self,
        reply: Reply,
        what: &str,
        file: &str,
        ok: &[StatusCode],
    ) -> Result<Reply, BackendError> {
        if ok.contains(&reply.status) {
            return Ok(reply);
        }
        if reply.status == StatusCode::NOT_FOUND {
            return Err(BackendError::NotFound(self.full(file)));
        }
        let text = reply.body_text();
        let detail = if text.is_empty() {
            format!("{} to {what}", reply.status)
        } else {
            format!("{} to {what} ({text})", reply.status)
        };
        Err(crate::layers::status_error(
            &self.full(file),
            reply.status.as_u16(),
            &detail,
        ))
    }

    /// Size from a HEAD answer.
    fn size_of(reply: &Reply, file: &str) -> Result<u64, BackendError> {
        reply
            .content_length
            .ok_or_else(|| other(format!("rclone: stat {file}: answer without a size")))
    }
}

impl Backend for RcloneBackend {
    fn location(&self) -> String {
        format!("rclone:{}", self.remote)
    }

    fn create(&self) -> Result<(), BackendError> {
        match self.stat(FileType::Config, "config") {
            Ok(_) => return Err(BackendError::AlreadyExists("config".into())),
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
        let mut req = Req::new(Method::POST, "/?create=true");
        req.body = Some(&[]);
        req.body_type = "binary/octet-stream";
        let reply = self.call(req)?;
        self.check(reply, "create", "repository", &[StatusCode::OK])
            .map(drop)
    }

    fn list(&self, t: FileType) -> Result<Vec<(String, u64)>, BackendError> {
        if t == FileType::Config {
            return Err(other("rclone: config is not a listable type".into()));
        }
        let path = format!("/{}/", t.dir());
        let reply = self.call(Req::new(Method::GET, &path))?;
        let dir = format!("{}/", t.dir());
        let reply = self.check(reply, "list", &dir, &[StatusCode::OK])?;
        let bad = |m: String| other(format!("rclone: list {dir}: {m}"));
        if reply.content_type.as_deref() == Some(V2) {
            return parse_v2(&reply.body).map_err(bad);
        }
        // A v1 server: names only, sizes need one HEAD each.
        parse_v1(&reply.body)
            .map_err(bad)?
            .into_iter()
            .map(|n| {
                let size = self.stat(t, &n)?;
                Ok((n, size))
            })
            .collect()
    }

    fn read(&self, t: FileType, name: &str) -> Result<Vec<u8>, BackendError> {
        let path = path_of(t, name);
        let file = shown(t, name);
        let reply = self.call(Req::new(Method::GET, &path))?;
        let reply = self.check(reply, "read", &file, &[StatusCode::OK])?;
        if let Some(n) = reply.content_length
            && n != reply.body.len() as u64
        {
            return Err(BackendError::Io {
                path: self.full(&file),
                source: std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("got {} of {n} bytes", reply.body.len()),
                ),
            });
        }
        Ok(reply.body)
    }

    fn read_range(
        &self,
        t: FileType,
        name: &str,
        offset: u64,
        len: u64,
    ) -> Result<Vec<u8>, BackendError> {
        let file = shown(t, name);
        if len == 0 {
            self.stat(t, name)?;
            return Ok(Vec::new());
        }
        let want = usize::try_from(len).map_err(|_| other("range too large".into()))?;
        let last = offset
            .checked_add(len - 1)
            .ok_or_else(|| other(format!("rclone: read {file}: range overflows")))?;
        let path = path_of(t, name);
        let mut req = Req::new(Method::GET, &path);
        req.headers.push((RANGE, format!("bytes={offset}-{last}")));
        // A server that ignores Range sends the whole file from offset 0.
        req.max_body = last.checked_add(1).and_then(|n| usize::try_from(n).ok());
        let reply = self.call(req)?;
        let reply = self.check(
            reply,
            "read",
            &file,
            &[StatusCode::OK, StatusCode::PARTIAL_CONTENT],
        )?;
        let (data, total) = if reply.status == StatusCode::OK {
            let total = reply.body.len() as u64;
            let data = usize::try_from(offset)
                .ok()
                .and_then(|o| reply.body.get(o..o.checked_add(want)?))
                .map(<[u8]>::to_vec);
            (data, Some(total))
        } else {
            let total = reply.range_total;
            (Some(reply.body).filter(|b| b.len() == want), total)
        };
        data.ok_or_else(|| {
            let (kind, why) = match total {
                // The file is shorter: asking again will not help.
                Some(n) if n < offset.saturating_add(len) => (
                    std::io::ErrorKind::InvalidInput,
                    format!("range {offset}+{len} is past the end of the file ({n} bytes)"),
                ),
                _ => (
                    std::io::ErrorKind::UnexpectedEof,
                    format!("short read: wanted {len} bytes at offset {offset}"),
                ),
            };
            BackendError::Io {
                path: self.full(&file),
                source: std::io::Error::new(kind, why),
            }
        })
    }

    fn stat(&self, t: FileType, name: &str) -> Result<u64, BackendError> {
        let path = path_of(t, name);
        let file = shown(t, name);
        let reply = self.call(Req::new(Method::HEAD, &path))?;
        let reply = self.check(reply, "stat", &file, &[StatusCode::OK])?;
        Self::size_of(&reply, &file)
    }

    fn write(&self, t: FileType, name: &str, data: &[u8]) -> Result<(), BackendError> {
        let path = path_of(t, name);
        let file = shown(t, name);
        let mut req = Req::new(Method::POST, &path);
        req.body = Some(data);
        let reply = self.call(req)?;
        if reply.status == StatusCode::FORBIDDEN {
            // rclone --append-only refuses to overwrite.
            return Err(BackendError::AlreadyExists(self.full(&file)));
        }
        self.check(reply, "write", &file, &[StatusCode::OK])
            .map(drop)
    }

    fn remove(&self, t: FileType, name: &str) -> Result<(), BackendError> {
        let path = path_of(t, name);
        let file = shown(t, name);
        let reply = self.call(Req::new(Method::DELETE, &path))?;
        self.check(reply, "remove", &file, &[StatusCode::OK])
            .map(drop)
    }
}

impl Drop for RcloneBackend {
    fn drop(&mut self) {
        // Dropping the runtime drops the HTTP/2 connection and closes rclone's stdin: rclone
        // sees EOF and exits. Give it restic's 5 s, then kill it.
        self.rt.shutdown();
        match self.proc.wait_exit(Duration::from_secs(5)) {
            Some(s) if !s.success() => tracing::debug!("rclone exited with {s}"),
            Some(_) => {}
            None => tracing::warn!("rclone did not exit within 5 s after closing; killing it"),
        }
        self.proc.kill();
    }
}

#[cfg(test)]
mod tests;
