//! One REST request over the HTTP/2 connection to rclone (h2 client, prior knowledge): send
//! headers and body with flow control, collect the answer.

use bytes::Bytes;
use h2::client::SendRequest;
use h2::{RecvStream, SendStream};
use http::header::{ACCEPT, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, HeaderName};
use http::{Method, StatusCode};
use std::future::{Future, poll_fn};
use std::pin::pin;
use std::task::Poll;

/// The REST protocol v2 media type (sent as `Accept` on every request, like restic).
pub const V2: &str = "application/vnd.x.restic.rest.v2";
/// Largest body piece handed to h2 at once.
const CHUNK: usize = 1 << 20;
/// Largest buffer reserved up front from a `Content-Length` header.
const MAX_PREALLOC: usize = 64 << 20;
/// How much of an error answer's body is kept.
const MAX_ERROR_BODY: usize = 64 << 10;

/// Why a request failed.
#[derive(Debug)]
pub enum HttpError {
    /// The HTTP/2 connection or stream broke.
    Transport(h2::Error),
    /// The request could not be built or the answer makes no sense.
    Malformed(String),
}

impl From<h2::Error> for HttpError {
    fn from(e: h2::Error) -> Self {
        HttpError::Transport(e)
    }
}

/// An answer: status, the headers Cairn looks at, and the body.
#[derive(Debug)]
pub struct Reply {
    /// HTTP status.
    pub status: StatusCode,
    /// `Content-Type`, if any.
    pub content_type: Option<String>,
    /// `Content-Length`, if present and a number.
    pub content_length: Option<u64>,
    /// The complete size from `Content-Range: bytes a-b/size`, if given.
    pub range_total: Option<u64>,
    /// The body (empty for HEAD).
    pub body: Vec<u8>,
}

impl Reply {
    /// The body as text for error messages (first line, at most 200 characters).
    pub fn body_text(&self) -> String {
        let s = String::from_utf8_lossy(&self.body);
        s.lines()
            .next()
            .unwrap_or("")
            .trim()
            .chars()
            .take(200)
            .collect()
    }
}

/// A request to send.
#[derive(Debug)]
pub struct Req<'a> {
    /// Method.
    pub method: Method,
    /// Absolute path (`/config`, `/data/<id>`, `/?create=true`).
    pub path: &'a str,
    /// Extra headers.
    pub headers: Vec<(HeaderName, String)>,
    /// Body (sent with `Content-Length`), if any.
    pub body: Option<&'a [u8]>,
    /// Content type of the body.
    pub body_type: &'a str,
    /// Fail when the answer's body gets longer than this.
    pub max_body: Option<usize>,
}

impl<'a> Req<'a> {
    /// A body-less request.
    pub fn new(method: Method, path: &'a str) -> Req<'a> {
        Req {
            method,
            path,
            headers: Vec::new(),
            body: None,
            body_type: "application/octet-stream",
            max_body: None,
        }
    }
}

/// Send `req` on the connection behind `send` and read the complete answer.
pub async fn request(send: &SendRequest<Bytes>, req: Req<'_>) -> Result<Reply, HttpError> {
    let mut b = http::Request::builder()
        .method(req.method)
        .uri(format!("http://localhost{}", req.path))
        .header(ACCEPT, V2);
    for (k, v) in &req.headers {
        b = b.header(k, v.as_str());
    }
    if let Some(body) = req.body {
        b = b
            .header(CONTENT_LENGTH, body.len())
            .header(CONTENT_TYPE, req.body_type);
    }
    let head = b
        .body(())
        .map_err(|e| HttpError::Malformed(format!("bad request: {e}")))?;
    let mut send = send.clone().ready().await?;
    let body = req.body.filter(|b| !b.is_empty());
    let (response, mut stream) = send.send_request(head, body.is_none())?;
    let response = match body {
        None => response.await?,
        Some(data) => {
            // Send the body while watching for an early answer (an error status).
            let mut response = pin!(response);
            let mut sending = pin!(send_body(&mut stream, data));
            let first = poll_fn(|cx| {
                if let Poll::Ready(r) = response.as_mut().poll(cx) {
                    return Poll::Ready(Err(r));
                }
                sending.as_mut().poll(cx).map(Ok)
            })
            .await;
            match first {
                Err(answered) => answered?,
                Ok(Ok(())) => response.await?,
                // The stream broke while sending: the server's answer says why, if there is one.
                Ok(Err(e)) => match response.await {
                    Ok(r) => r,
                    Err(_) => return Err(e),
                },
            }
        }
    };
    let (parts, mut recv) = response.into_parts();
    let header = |name: HeaderName| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let content_type = header(CONTENT_TYPE);
    let content_length = header(CONTENT_LENGTH).and_then(|v| v.trim().parse::<u64>().ok());
    let range_total = header(CONTENT_RANGE).and_then(|v| {
        v.rsplit_once('/')
            .and_then(|(_, n)| n.trim().parse::<u64>().ok())
    });
    let hint = content_length
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(0)
        .min(req.max_body.unwrap_or(MAX_PREALLOC))
        .min(MAX_PREALLOC);
    let body = if parts.status.is_success() {
        read_body(&mut recv, hint, req.max_body, false).await?
    } else {
        // An error text: keep its start only.
        read_body(&mut recv, 0, Some(MAX_ERROR_BODY), true).await?
    };
    Ok(Reply {
        status: parts.status,
        content_type,
        content_length,
        range_total,
        body,
    })
}

/// Send `data` as the request body, respecting the peer's flow-control window.
async fn send_body(stream: &mut SendStream<Bytes>, data: &[u8]) -> Result<(), HttpError> {
    let mut off = 0;
    while off < data.len() {
        let want = (data.len() - off).min(CHUNK);
        stream.reserve_capacity(want);
        let cap = match poll_fn(|cx| stream.poll_capacity(cx)).await {
            Some(Ok(c)) => c,
            Some(Err(e)) => return Err(e.into()),
            None => return Err(h2::Error::from(h2::Reason::CANCEL).into()),
        };
        if cap == 0 {
            continue;
        }
        let end = off + cap.min(want);
        let piece = data
            .get(off..end)
            .ok_or_else(|| HttpError::Malformed("body slicing out of range".into()))?;
        stream.send_data(Bytes::copy_from_slice(piece), end == data.len())?;
        off = end;
    }
    Ok(())
}

/// Read a response body, returning flow-control capacity as data arrives. A body longer than
/// `max` is an error, or cut there with `truncate`.
async fn read_body(
    recv: &mut RecvStream,
    hint: usize,
    max: Option<usize>,
    truncate: bool,
) -> Result<Vec<u8>, HttpError> {
    let mut out = Vec::with_capacity(hint);
    while let Some(chunk) = recv.data().await {
        let chunk = chunk?;
        let _ = recv.flow_control().release_capacity(chunk.len());
        if let Some(m) = max
            && out.len() + chunk.len() > m
        {
            if truncate {
                let room = m.saturating_sub(out.len());
                out.extend_from_slice(chunk.get(..room).unwrap_or_default());
                break;
            }
            return Err(HttpError::Malformed(format!(
                "answer longer than the {m} bytes asked for"
            )));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}
