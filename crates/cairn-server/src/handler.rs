//! Request routing and the REST operations (everything but uploads, see `upload.rs`).

use crate::body::RespBody;
use crate::metrics::Op;
use crate::paths::{self, Object};
use crate::range::{self, RangeReq};
use crate::{LogLevel, State, accesslog, fsops};
use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;

/// v1 listing media type.
pub const MIME_V1: &str = "application/vnd.x.restic.rest.v1";
/// v2 listing media type.
pub const MIME_V2: &str = "application/vnd.x.restic.rest.v2";
/// Reads up to this size are answered from one buffer; larger ones are streamed.
const SMALL_READ: u64 = 1 << 20;
/// Chunk size of streamed reads.
const CHUNK: u64 = 512 << 10;

/// A plain-text response with the status's reason phrase (like Go's `http.Error`).
pub fn plain(code: StatusCode) -> Response<RespBody> {
    let text = format!("{}\n", code.canonical_reason().unwrap_or(""));
    let mut r = Response::new(RespBody::from_bytes(text));
    *r.status_mut() = code;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r
}

/// An empty 200 response.
pub fn ok_empty() -> Response<RespBody> {
    Response::new(RespBody::empty())
}

fn not_allowed(allow: &'static str) -> Response<RespBody> {
    let mut r = plain(StatusCode::METHOD_NOT_ALLOWED);
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    r
}

fn unauthorized() -> Response<RespBody> {
    let mut r = plain(StatusCode::UNAUTHORIZED);
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"restic\""),
    );
    r
}

/// Map an I/O error to a response: not found → 404, disk full → 507, else 500 (logged).
pub fn io_response(st: &State, what: &str, e: &io::Error) -> Response<RespBody> {
    if e.kind() == io::ErrorKind::NotFound {
        return plain(StatusCode::NOT_FOUND);
    }
    if matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT)) {
        st.log(LogLevel::Error, &format!("{what}: {e}"));
        return plain(StatusCode::INSUFFICIENT_STORAGE);
    }
    st.log(LogLevel::Error, &format!("ERROR: {what}: {e}"));
    plain(StatusCode::INTERNAL_SERVER_ERROR)
}

/// Run blocking file-system work off the async workers.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(io::Error::other(format!("worker failed: {e}"))))
}

/// Who is asking and about which repository.
pub struct Ctx {
    /// Authenticated user ("" without authentication).
    pub user: String,
    /// Repository label for metrics.
    pub repo: String,
    /// Repository directory.
    pub dir: PathBuf,
}

impl Ctx {
    fn metric(&self, st: &State, op: Op, tpe: &str, bytes: u64) {
        if let Some(m) = &st.metrics {
            m.blob(op, &self.user, &self.repo, tpe, bytes);
        }
    }
}

/// Authenticate a request: the user name ("" with `--no-auth`), or `None`.
async fn check_auth(st: &Arc<State>, headers: &HeaderMap) -> Option<String> {
    if st.cfg.no_auth {
        return Some(String::new());
    }
    if let Some(h) = &st.cfg.proxy_auth_username {
        return headers
            .get(h.as_str())
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty())
            .map(str::to_string);
    }
    let (user, pass) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(crate::auth::basic_credentials)?;
    let st2 = st.clone();
    let u = user.clone();
    let ok = tokio::task::spawn_blocking(move || {
        st2.auth.as_ref().is_some_and(|a| a.validate(&u, &pass))
    })
    .await
    .unwrap_or(false);
    if !ok {
        st.log(
            LogLevel::Error,
            &format!("authentication failed for user {user:?}"),
        );
    }
    ok.then_some(user)
}

/// Handle one request: route, then count it and write the access log.
pub async fn handle(
    st: Arc<State>,
    req: Request<Incoming>,
    peer: SocketAddr,
) -> Response<RespBody> {
    let method = req.method().clone();
    let uri = req
        .uri()
        .path_and_query()
        .map_or_else(|| req.uri().to_string(), |p| p.to_string());
    let version = format!("{:?}", req.version());
    let hdr = |n: header::HeaderName| {
        req.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let (referer, agent) = (hdr(header::REFERER), hdr(header::USER_AGENT));
    st.log(LogLevel::Debug, &format!("{method} {uri}"));
    let (resp, user) = route(&st, req).await;
    let status = resp.status().as_u16();
    if let Some(m) = &st.metrics {
        m.request(method.as_str(), status);
    }
    if let Some(log) = &st.access_log {
        let size = resp
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        log.write(&accesslog::line(&accesslog::Entry {
            peer: peer.ip(),
            user: user.as_deref(),
            method: method.as_str(),
            uri: &uri,
            version: &version,
            status,
            size,
            referer: &referer,
            user_agent: &agent,
        }));
    }
    resp
}

async fn route(st: &Arc<State>, req: Request<Incoming>) -> (Response<RespBody>, Option<String>) {
    let raw_path = req.uri().path().to_string();
    if st.metrics.is_some() && raw_path == "/metrics" {
        let mut user = None;
        if !st.cfg.prometheus_no_auth {
            let Some(u) = check_auth(st, req.headers()).await else {
                return (unauthorized(), None);
            };
            if st.cfg.private_repos && !st.cfg.no_auth && u != "metrics" {
                return (unauthorized(), Some(u));
            }
            user = Some(u);
        }
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return (not_allowed("GET, HEAD"), user);
        }
        let q = st.quota.as_ref().map(|q| (q.used(), q.max()));
        let text = st.metrics.as_ref().map(|m| m.render(q)).unwrap_or_default();
        let mut r = Response::new(RespBody::from_bytes(text));
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        );
        return (r, user);
    }
    let Some(user) = check_auth(st, req.headers()).await else {
        return (unauthorized(), None);
    };
    let Some(target) = paths::parse(&raw_path) else {
        st.log(
            LogLevel::Debug,
            &format!("invalid request path: {raw_path}"),
        );
        return (plain(StatusCode::NOT_FOUND), Some(user));
    };
    if st.cfg.private_repos && !st.cfg.no_auth && target.folder.first() != Some(&user) {
        return (unauthorized(), Some(user));
    }
    let mut dir = st.cfg.path.clone();
    dir.extend(&target.folder);
    let ctx = Ctx {
        repo: target.repo_label(),
        user,
        dir,
    };
    let resp = match target.object {
        None => plain(StatusCode::NOT_FOUND),
        Some(obj) => dispatch(st, &ctx, obj, req).await,
    };
    (resp, Some(ctx.user))
}

async fn dispatch(
    st: &Arc<State>,
    ctx: &Ctx,
    obj: Object,
    req: Request<Incoming>,
) -> Response<RespBody> {
    const ALL: &str = "HEAD, GET, POST, DELETE";
    let m = req.method().clone();
    match obj {
        Object::Root => match m {
            Method::POST => create_repo(st, ctx, req.uri().query()).await,
            _ => not_allowed("POST"),
        },
        Object::List(tpe) => match m {
            Method::GET => list(st, ctx, tpe, req.headers()).await,
            _ => not_allowed("GET"),
        },
        Object::Config => {
            let path = ctx.dir.join("config");
            match m {
                Method::HEAD | Method::GET => read(st, ctx, None, path, &req).await,
                Method::POST => crate::upload::save(st, ctx, None, path, req).await,
                Method::DELETE if st.cfg.append_only => plain(StatusCode::FORBIDDEN),
                Method::DELETE => delete(st, ctx, None, path).await,
                _ => not_allowed(ALL),
            }
        }
        Object::File(tpe, id) => {
            let path = fsops::object_path(&ctx.dir, tpe, &id);
            match m {
                Method::HEAD | Method::GET => read(st, ctx, Some(tpe), path, &req).await,
                Method::POST => crate::upload::save(st, ctx, Some((tpe, id)), path, req).await,
                Method::DELETE if st.cfg.append_only && tpe != "locks" => {
                    plain(StatusCode::FORBIDDEN)
                }
                Method::DELETE => delete(st, ctx, Some(tpe), path).await,
                _ => not_allowed(ALL),
            }
        }
    }
}

async fn create_repo(st: &Arc<State>, ctx: &Ctx, query: Option<&str>) -> Response<RespBody> {
    if !paths::wants_create(query) {
        return plain(StatusCode::BAD_REQUEST);
    }
    st.log(
        LogLevel::Info,
        &format!("Creating repository directories in {}", ctx.dir.display()),
    );
    let (dir, modes) = (ctx.dir.clone(), st.modes);
    match blocking(move || fsops::create_repo(&dir, modes)).await {
        Ok(()) => ok_empty(),
        Err(e) => io_response(st, "create repository", &e),
    }
}

async fn list(
    st: &Arc<State>,
    ctx: &Ctx,
    tpe: &'static str,
    headers: &HeaderMap,
) -> Response<RespBody> {
    let v2 = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|v| v.split(';').next().unwrap_or("").trim() == MIME_V2);
    let dir = ctx.dir.clone();
    let items = match blocking(move || fsops::list(&dir, tpe)).await {
        Ok(items) => items,
        Err(e) => return io_response(st, "list", &e),
    };
    let mut out = String::with_capacity(items.len() * 90 + 2);
    out.push('[');
    for (i, (name, size)) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        if v2 {
            out.push_str(&format!("{{\"name\":\"{name}\",\"size\":{size}}}"));
        } else {
            out.push_str(&format!("\"{name}\""));
        }
    }
    out.push(']');
    let mut r = Response::new(RespBody::from_bytes(out));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(if v2 { MIME_V2 } else { MIME_V1 }),
    );
    r
}

async fn delete(
    st: &Arc<State>,
    ctx: &Ctx,
    tpe: Option<&str>,
    path: PathBuf,
) -> Response<RespBody> {
    match blocking(move || fsops::remove(&path)).await {
        Ok(Some(size)) => {
            if let Some(q) = &st.quota {
                q.release(size);
            }
            if let Some(t) = tpe {
                ctx.metric(st, Op::Delete, t, size);
            }
            ok_empty()
        }
        // Deleting is idempotent (retries).
        Ok(None) => ok_empty(),
        Err(e) => io_response(st, "delete", &e),
    }
}

/// HEAD or GET of a file, with `Range` support for GET.
async fn read(
    st: &Arc<State>,
    ctx: &Ctx,
    tpe: Option<&str>,
    path: PathBuf,
    req: &Request<Incoming>,
) -> Response<RespBody> {
    let head = req.method() == Method::HEAD;
    let range_hdr = req
        .headers()
        .get(header::RANGE)
        .map(|v| v.to_str().unwrap_or("invalid").to_string());
    let (file, size) = match blocking(move || fsops::open(&path)).await {
        Ok(x) => x,
        Err(e) => return io_response(st, "open", &e),
    };
    if head {
        let mut r = ok_empty();
        r.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(size));
        return r;
    }
    let (status, start, len) = match range::parse(range_hdr.as_deref(), size) {
        RangeReq::Full => (StatusCode::OK, 0, size),
        RangeReq::Partial { start, len } => (StatusCode::PARTIAL_CONTENT, start, len),
        RangeReq::Unsatisfiable => {
            let mut r = plain(StatusCode::RANGE_NOT_SATISFIABLE);
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                r.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return r;
        }
    };
    let body = if len <= SMALL_READ {
        let res = blocking(move || {
            let mut buf = vec![0u8; len as usize];
            file.read_exact_at(&mut buf, start)?;
            Ok(buf)
        })
        .await;
        match res {
            Ok(buf) => RespBody::from_bytes(buf),
            Err(e) => return io_response(st, "read", &e),
        }
    } else {
        let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(4);
        tokio::task::spawn_blocking(move || {
            let end = start + len;
            let mut off = start;
            while off < end {
                let n = CHUNK.min(end - off);
                let mut buf = vec![0u8; n as usize];
                let res = file.read_exact_at(&mut buf, off).map(|_| Bytes::from(buf));
                let failed = res.is_err();
                if tx.blocking_send(res).is_err() || failed {
                    break;
                }
                off += n;
            }
        });
        RespBody::Stream { rx, remaining: len }
    };
    if let Some(t) = tpe {
        ctx.metric(st, Op::Read, t, len);
    }
    let mut r = Response::new(body);
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if status == StatusCode::PARTIAL_CONTENT {
        let v = format!("bytes {start}-{}/{size}", start + len - 1);
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.insert(header::CONTENT_RANGE, v);
        }
    }
    r
}
