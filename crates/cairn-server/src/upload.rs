//! Uploads (POST): the body streams to a temporary file in the target directory on a blocking
//! task that also computes its SHA-256; the file is then fsynced, checked against its name,
//! moved into place without replacing anything, and the directory fsynced.

use crate::body::RespBody;
use crate::fsops::{self, PlaceError};
use crate::handler::{Ctx, blocking, io_response, ok_empty, plain};
use crate::metrics::Op;
use crate::{LogLevel, State};
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header;
use hyper::{Request, Response, StatusCode};
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// At most this much of a refused upload's body is read (so that HTTP/1.1 clients see the
/// answer instead of a reset connection).
const DRAIN_LIMIT: u64 = 256 << 20;

/// An upload that sends nothing for this long is abandoned.
const BODY_IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// Read and discard (part of) a body we do not want.
async fn drain(body: &mut Incoming) {
    let fut = async {
        let mut n = 0u64;
        while let Some(Ok(f)) = body.frame().await {
            n += f.data_ref().map_or(0, |d| d.len() as u64);
            if n > DRAIN_LIMIT {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(30), fut).await;
}

/// Fsync, ignoring file systems that do not support it.
fn sync_file(f: &File) -> io::Result<()> {
    match f.sync_all() {
        Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(libc::ENOTSUP)) => Ok(()),
        r => r,
    }
}

/// Write received chunks (and hash them when `hash` is set) on a blocking thread.
fn spawn_writer(
    file: File,
    hash: bool,
    mut rx: tokio::sync::mpsc::Receiver<Bytes>,
) -> tokio::task::JoinHandle<io::Result<Option<[u8; 32]>>> {
    tokio::task::spawn_blocking(move || {
        let mut h = hash.then(Sha256::new);
        let mut w = BufWriter::with_capacity(1 << 20, file);
        while let Some(b) = rx.blocking_recv() {
            if let Some(h) = h.as_mut() {
                h.update(&b);
            }
            w.write_all(&b)?;
        }
        let f = w.into_inner().map_err(|e| e.into_error())?;
        sync_file(&f)?;
        Ok(h.map(|h| h.finalize().into()))
    })
}

/// What went wrong while receiving.
enum Failure {
    Quota,
    Body,
}

/// Save a file. `id` is `(type, name)` for restic's typed files (verified unless
/// `--no-verify-upload`), `None` for `config`.
pub async fn save(
    st: &Arc<State>,
    ctx: &Ctx,
    id: Option<(&str, String)>,
    target: PathBuf,
    req: Request<Incoming>,
) -> Response<RespBody> {
    let declared = match req.headers().get(header::CONTENT_LENGTH) {
        None => None,
        Some(v) => match v.to_str().ok().and_then(|s| s.trim().parse::<u64>().ok()) {
            Some(n) => Some(n),
            None => return plain(StatusCode::LENGTH_REQUIRED),
        },
    };
    let mut body = req.into_body();
    let t2 = target.clone();
    match blocking(move || Ok(std::fs::symlink_metadata(&t2).is_ok())).await {
        Ok(true) => {
            drain(&mut body).await;
            return plain(StatusCode::FORBIDDEN);
        }
        Ok(false) => {}
        Err(e) => return io_response(st, "stat", &e),
    }
    // Reserve the declared size up front (a polite early 507).
    let mut reserved = 0u64;
    if let (Some(q), Some(n)) = (&st.quota, declared) {
        if !q.reserve(n) {
            st.log(
                LogLevel::Error,
                &format!(
                    "upload of {n} bytes refused: the quota of {} bytes would be exceeded",
                    q.max()
                ),
            );
            drain(&mut body).await;
            return plain(StatusCode::INSUFFICIENT_STORAGE);
        }
        reserved = n;
    }
    let release = |n: u64| {
        if let Some(q) = &st.quota {
            q.release(n);
        }
    };
    let (t2, modes) = (target.clone(), st.modes);
    let (file, tmp) = match blocking(move || fsops::create_temp(&t2, modes)).await {
        Ok(x) => x,
        Err(e) => {
            release(reserved);
            return io_response(st, "create temporary file", &e);
        }
    };
    let verify = id.is_some() && !st.cfg.no_verify_upload;
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(16);
    let writer = spawn_writer(file, verify, rx);
    let mut written = 0u64;
    let mut failure = None;
    loop {
        let Ok(next) = tokio::time::timeout(BODY_IDLE_TIMEOUT, body.frame()).await else {
            failure = Some(Failure::Body);
            break;
        };
        match next {
            None => break,
            Some(Err(_)) => {
                failure = Some(Failure::Body);
                break;
            }
            Some(Ok(frame)) => {
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                written += data.len() as u64;
                if let Some(q) = &st.quota
                    && written > reserved
                {
                    if !q.reserve(written - reserved) {
                        failure = Some(Failure::Quota);
                        break;
                    }
                    reserved = written;
                }
                if tx.send(data).await.is_err() {
                    break; // the writer failed; its error is reported below
                }
            }
        }
    }
    drop(tx);
    let wres = writer
        .await
        .unwrap_or_else(|e| Err(io::Error::other(format!("writer failed: {e}"))));
    let discard = |reserved: u64| {
        let _ = std::fs::remove_file(&tmp);
        release(reserved);
    };
    match failure {
        Some(Failure::Quota) => {
            discard(reserved);
            st.log(
                LogLevel::Error,
                "upload refused: the repository has reached its maximum size",
            );
            drain(&mut body).await;
            return plain(StatusCode::INSUFFICIENT_STORAGE);
        }
        Some(Failure::Body) => {
            discard(reserved);
            return plain(StatusCode::BAD_REQUEST);
        }
        None => {}
    }
    let hash = match wres {
        Ok(h) => h,
        Err(e) => {
            discard(reserved);
            return io_response(st, "write", &e);
        }
    };
    if declared.is_some_and(|d| d != written) {
        discard(reserved);
        return plain(StatusCode::BAD_REQUEST);
    }
    if let (Some(h), Some((_, name))) = (hash, &id)
        && hex::encode(h) != *name
    {
        discard(reserved);
        st.log(
            LogLevel::Error,
            &format!("upload of {name} rejected: content does not match its name (SHA-256)"),
        );
        return plain(StatusCode::BAD_REQUEST);
    }
    if reserved > written {
        release(reserved - written);
    }
    let t2 = target.clone();
    let placed = tokio::task::spawn_blocking(move || fsops::place(&tmp, &t2))
        .await
        .unwrap_or_else(|e| Err(PlaceError::Io(io::Error::other(e.to_string()))));
    match placed {
        Ok(()) => {
            if let (Some((tpe, _)), Some(m)) = (&id, &st.metrics) {
                m.blob(Op::Write, &ctx.user, &ctx.repo, tpe, written);
            }
            ok_empty()
        }
        Err(PlaceError::Exists) => {
            release(written);
            plain(StatusCode::FORBIDDEN)
        }
        Err(PlaceError::Io(e)) => {
            release(written);
            io_response(st, "store upload", &e)
        }
    }
}
