//! A tiny HTTP/1.1 server for tests: listens on `127.0.0.1:0`, records every request and
//! answers with configurable replies (status, headers, body, delay). One thread per
//! connection, `Connection: close` on every reply. Stops when dropped.
//!
//! It is public (not `cfg(test)`) so end-to-end tests of other crates can use it too.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// One request as the server received it.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// Method, e.g. `GET`.
    pub method: String,
    /// Path and query as sent, e.g. `/ping/start?rid=…`.
    pub target: String,
    /// Headers in arrival order (names as sent).
    pub headers: Vec<(String, String)>,
    /// The body (chunked bodies are decoded).
    pub body: Vec<u8>,
    /// When the request was completely read.
    pub at: Instant,
}

impl RecordedRequest {
    /// The path without the query.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }

    /// The raw query string, if any.
    pub fn query(&self) -> Option<&str> {
        self.target.split_once('?').map(|(_, q)| q)
    }

    /// The raw (still encoded) value of query parameter `name`.
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query()?.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (k == name).then_some(v)
        })
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// All values of header `name` (case-insensitive).
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// How the server answers requests whose target starts with a given prefix.
#[derive(Debug, Clone)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// Body (`OK` by default).
    pub body: Vec<u8>,
    /// Wait this long before answering.
    pub delay: Duration,
    /// Use this reply for this many requests only (None = forever).
    pub times: Option<usize>,
}

impl Default for Reply {
    fn default() -> Self {
        Reply {
            status: 200,
            headers: Vec::new(),
            body: b"OK".to_vec(),
            delay: Duration::ZERO,
            times: None,
        }
    }
}

#[derive(Default)]
struct State {
    requests: Mutex<Vec<RecordedRequest>>,
    rules: Mutex<Vec<(String, Reply)>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl State {
    /// The reply for `target`: the longest matching prefix wins, the latest rule on ties.
    fn reply_for(&self, target: &str) -> Reply {
        let mut rules = lock(&self.rules);
        let mut best: Option<usize> = None;
        for (i, (prefix, reply)) in rules.iter().enumerate() {
            if reply.times == Some(0) || !target.starts_with(prefix.as_str()) {
                continue;
            }
            let better = match best.and_then(|b| rules.get(b)) {
                Some((best_prefix, _)) => prefix.len() >= best_prefix.len(),
                None => true,
            };
            if better {
                best = Some(i);
            }
        }
        match best.and_then(|i| rules.get_mut(i)) {
            Some((_, reply)) => {
                if let Some(times) = reply.times.as_mut() {
                    *times = times.saturating_sub(1);
                }
                reply.clone()
            }
            None => Reply::default(),
        }
    }
}

/// A recording HTTP server on a free loopback port; see the module documentation.
pub struct RecordingServer {
    addr: SocketAddr,
    state: Arc<State>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl RecordingServer {
    /// Binds `127.0.0.1:0` and starts serving in a background thread.
    pub fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State::default());
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let state = Arc::clone(&state);
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name("recording-server".into())
                .spawn(move || accept_loop(listener, state, stop))?
        };
        Ok(RecordingServer {
            addr,
            state,
            stop,
            thread: Some(thread),
        })
    }

    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.state.requests).clone()
    }

    /// Forgets the requests received so far.
    pub fn clear(&self) {
        lock(&self.state.requests).clear();
    }

    /// Waits until at least `count` requests arrived or `timeout` passed; returns them all.
    pub fn wait_for(&self, count: usize, timeout: Duration) -> Vec<RecordedRequest> {
        let deadline = Instant::now() + timeout;
        loop {
            let requests = self.requests();
            if requests.len() >= count || Instant::now() >= deadline {
                return requests;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Answers requests whose path+query starts with `path_prefix` with `status`, the extra
    /// `headers` and body `OK`, after `delay`. The longest matching prefix wins.
    pub fn respond(
        &self,
        path_prefix: &str,
        status: u16,
        headers: Vec<(String, String)>,
        delay: Duration,
    ) {
        self.reply(
            path_prefix,
            Reply {
                status,
                headers,
                delay,
                ..Reply::default()
            },
        );
    }

    /// Like [`RecordingServer::respond`] with every detail of the reply given, e.g. a limited
    /// number of uses (`times`) so that later requests fall through to other rules.
    pub fn reply(&self, path_prefix: &str, reply: Reply) {
        lock(&self.state.rules).push((path_prefix.to_string(), reply));
    }
}

impl Drop for RecordingServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn accept_loop(listener: TcpListener, state: Arc<State>, stop: Arc<AtomicBool>) {
    for stream in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let Ok(stream) = stream else { continue };
        let state = Arc::clone(&state);
        let _ = std::thread::Builder::new()
            .name("recording-conn".into())
            .spawn(move || {
                let _ = handle(stream, &state);
            });
    }
}

fn handle(stream: TcpStream, state: &State) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(());
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("").to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 {
            break;
        }
        let h = h.trim_end_matches(['\r', '\n']);
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let mut body = Vec::new();
    if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        read_chunked(&mut reader, &mut body)?;
    } else if let Some(len) = header("content-length").and_then(|v| v.parse::<u64>().ok()) {
        reader.by_ref().take(len).read_to_end(&mut body)?;
    }
    let reply = state.reply_for(&target);
    lock(&state.requests).push(RecordedRequest {
        method,
        target,
        headers,
        body,
        at: Instant::now(),
    });
    if !reply.delay.is_zero() {
        std::thread::sleep(reply.delay);
    }
    let mut out = format!(
        "HTTP/1.1 {} {}\r\nContent-Length: {}\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n",
        reply.status,
        reason(reply.status),
        reply.body.len()
    )
    .into_bytes();
    for (k, v) in &reply.headers {
        out.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&reply.body);
    let mut stream = stream;
    stream.write_all(&out)?;
    stream.flush()?;
    let _ = stream.shutdown(std::net::Shutdown::Both);
    Ok(())
}

fn read_chunked(reader: &mut impl BufRead, body: &mut Vec<u8>) -> std::io::Result<()> {
    loop {
        let mut size_line = String::new();
        if reader.read_line(&mut size_line)? == 0 {
            return Ok(());
        }
        let size_text = size_line.trim().split(';').next().unwrap_or("");
        let size = u64::from_str_radix(size_text, 16)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        if size == 0 {
            // Trailers end with an empty line.
            loop {
                let mut t = String::new();
                if reader.read_line(&mut t)? == 0 || t.trim().is_empty() {
                    return Ok(());
                }
            }
        }
        reader.by_ref().take(size).read_to_end(body)?;
        let mut crlf = String::new();
        reader.read_line(&mut crlf)?;
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        409 => "Conflict",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw_request(addr: SocketAddr, text: &str) -> String {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(text.as_bytes()).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }

    #[test]
    fn records_and_replies() {
        let server = RecordingServer::start().unwrap();
        server.respond(
            "/a",
            503,
            vec![("Ping-Body-Limit".into(), "10".into())],
            Duration::ZERO,
        );
        server.reply(
            "/a/b",
            Reply {
                status: 201,
                times: Some(1),
                ..Reply::default()
            },
        );
        let r1 = raw_request(
            server.addr(),
            "POST /a/b?x=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello",
        );
        assert!(r1.starts_with("HTTP/1.1 201 "), "{r1}");
        let r2 = raw_request(server.addr(), "GET /a/b HTTP/1.1\r\nHost: h\r\n\r\n");
        assert!(r2.starts_with("HTTP/1.1 503 "), "{r2}");
        assert!(r2.contains("Ping-Body-Limit: 10\r\n"), "{r2}");
        let r3 = raw_request(
            server.addr(),
            "PUT /z HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        );
        assert!(r3.starts_with("HTTP/1.1 200 OK"), "{r3}");
        let reqs = server.requests();
        assert_eq!(reqs.len(), 3);
        assert_eq!(reqs[0].method, "POST");
        assert_eq!(reqs[0].path(), "/a/b");
        assert_eq!(reqs[0].query_param("x"), Some("1"));
        assert_eq!(reqs[0].body_text(), "hello");
        assert_eq!(reqs[0].header("host"), Some("h"));
        assert_eq!(reqs[2].body_text(), "abcde");
        assert!(reqs[0].at <= reqs[1].at);
    }
}
