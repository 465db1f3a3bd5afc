//! `cairn serve`: a server for restic's REST protocol (v1 and v2), behaving like restic's
//! rest-server: repositories below a data directory (up to two folder levels), basic
//! authentication from an `.htpasswd` file, private repositories, append-only mode, a size
//! quota, Prometheus metrics and TLS. Uploads stream to a temporary file while their SHA-256
//! is checked against the name, then are fsynced and moved into place atomically.

mod accesslog;
pub mod auth;
mod body;
mod fsops;
mod handler;
pub mod metrics;
pub mod paths;
pub mod quota;
pub mod range;
mod tls;
mod upload;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// TLS settings.
#[derive(Debug, Clone)]
pub struct TlsConfig {
    /// Certificate chain (PEM).
    pub cert: PathBuf,
    /// Private key (PEM).
    pub key: PathBuf,
    /// Refuse TLS 1.2 (`--tls-min-ver 1.3`).
    pub min_tls13: bool,
}

/// Server settings (the `cairn serve` flags).
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Data directory holding the repositories.
    pub path: PathBuf,
    /// Listen address: `host:port`, or `:port` for all interfaces.
    pub listen: String,
    /// No deletes (except locks) and no overwrites.
    pub append_only: bool,
    /// Each user may only access repositories below `/<user>/`.
    pub private_repos: bool,
    /// No authentication.
    pub no_auth: bool,
    /// `.htpasswd` file (default `<path>/.htpasswd`).
    pub htpasswd_file: Option<PathBuf>,
    /// Trust this request header as the user name (authentication done by a proxy).
    pub proxy_auth_username: Option<String>,
    /// TLS, if enabled.
    pub tls: Option<TlsConfig>,
    /// Quota over the whole data directory, in bytes.
    pub max_size: Option<u64>,
    /// Serve Prometheus metrics at `/metrics`.
    pub prometheus: bool,
    /// `/metrics` without authentication.
    pub prometheus_no_auth: bool,
    /// Do not check that uploaded files' SHA-256 matches their names.
    pub no_verify_upload: bool,
    /// Group-accessible files and directories (0660/0770 instead of 0600/0700).
    pub group_accessible: bool,
    /// Log every request to the log sink.
    pub debug: bool,
    /// Access log file in the combined format (`-` = standard output).
    pub log: Option<PathBuf>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            path: std::env::temp_dir().join("restic"),
            listen: ":8000".into(),
            append_only: false,
            private_repos: false,
            no_auth: false,
            htpasswd_file: None,
            proxy_auth_username: None,
            tls: None,
            max_size: None,
            prometheus: false,
            prometheus_no_auth: false,
            no_verify_upload: false,
            group_accessible: false,
            debug: false,
            log: None,
        }
    }
}

/// Severity of a server log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    /// Start-up and notable events.
    Info,
    /// One line per request (`--debug`).
    Debug,
    /// Failures (internal errors, rejected authentication).
    Error,
}

/// Receives the server's log lines (the library itself never prints).
pub type LogSink = Arc<dyn Fn(LogLevel, &str) + Send + Sync>;

/// Server errors (start-up and fatal accept-loop failures).
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// An I/O error.
    #[error("{what}: {source}")]
    Io {
        /// What failed.
        what: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Invalid settings.
    #[error("{0}")]
    Config(String),
    /// TLS set-up failed.
    #[error("TLS: {0}")]
    Tls(String),
}

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ServeError {
    let what = what.into();
    move |source| ServeError::Io { what, source }
}

/// Shared server state.
pub(crate) struct State {
    pub cfg: ServerConfig,
    pub modes: fsops::Modes,
    pub auth: Option<auth::Htpasswd>,
    pub quota: Option<quota::Quota>,
    pub metrics: Option<metrics::Metrics>,
    pub access_log: Option<accesslog::AccessLog>,
    pub log: Option<LogSink>,
}

impl State {
    pub fn log(&self, level: LogLevel, msg: &str) {
        if level == LogLevel::Debug && !self.cfg.debug {
            return;
        }
        if let Some(f) = &self.log {
            f(level, msg);
        }
    }
}

/// A bound server, ready to run.
pub struct Server {
    state: Arc<State>,
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    addr: SocketAddr,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").field("addr", &self.addr).finish()
    }
}

fn bind(listen: &str) -> Result<TcpListener, ServeError> {
    let res = if let Some(port) = listen.strip_prefix(':') {
        let port: u16 = port
            .parse()
            .map_err(|_| ServeError::Config(format!("invalid listen address {listen:?}")))?;
        TcpListener::bind(("::", port)).or_else(|_| TcpListener::bind(("0.0.0.0", port)))
    } else {
        TcpListener::bind(listen)
    };
    res.map_err(io_err(format!("listen on {listen}")))
}

impl Server {
    /// Check the settings, load the htpasswd file, tally the quota, load TLS keys and bind the
    /// listening socket.
    pub fn bind(cfg: ServerConfig, log: Option<LogSink>) -> Result<Self, ServeError> {
        let auth = if cfg.no_auth || cfg.proxy_auth_username.is_some() {
            None
        } else {
            let p = cfg
                .htpasswd_file
                .clone()
                .unwrap_or_else(|| cfg.path.join(".htpasswd"));
            let (h, warnings) = auth::Htpasswd::load(&p).map_err(|source| ServeError::Io {
                what: format!("cannot load {} (use --no-auth to disable)", p.display()),
                source,
            })?;
            if let Some(f) = &log {
                for w in warnings {
                    f(LogLevel::Error, &w);
                }
            }
            Some(h)
        };
        let quota = match cfg.max_size {
            Some(max) => {
                let used = quota::Quota::tally(&cfg.path)
                    .map_err(io_err(format!("tally {}", cfg.path.display())))?;
                Some(quota::Quota::new(max, used))
            }
            None => None,
        };
        let tls = match &cfg.tls {
            Some(t) => Some(tls::acceptor(&t.cert, &t.key, t.min_tls13)?),
            None => None,
        };
        let access_log = match &cfg.log {
            Some(p) => Some(
                accesslog::AccessLog::open(p)
                    .map_err(io_err(format!("open log file {}", p.display())))?,
            ),
            None => None,
        };
        let listener = bind(&cfg.listen)?;
        let addr = listener.local_addr().map_err(io_err("local address"))?;
        let modes = if cfg.group_accessible {
            fsops::Modes {
                file: 0o660,
                dir: 0o770,
            }
        } else {
            fsops::Modes {
                file: 0o600,
                dir: 0o700,
            }
        };
        let metrics = cfg.prometheus.then(metrics::Metrics::default);
        Ok(Self {
            state: Arc::new(State {
                cfg,
                modes,
                auth,
                quota,
                metrics,
                access_log,
                log,
            }),
            listener,
            tls,
            addr,
        })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Number of users in the htpasswd file, when basic authentication is used.
    pub fn users(&self) -> Option<usize> {
        self.state.auth.as_ref().map(auth::Htpasswd::len)
    }

    /// Bytes counted against the quota at start, when one is set.
    pub fn quota_used(&self) -> Option<u64> {
        self.state.quota.as_ref().map(quota::Quota::used)
    }

    /// Serve forever on a new multi-threaded runtime (blocking).
    pub fn run(self) -> Result<(), ServeError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("cairn-serve")
            .build()
            .map_err(io_err("start the runtime"))?;
        rt.block_on(self.serve())
    }

    /// Serve forever inside an existing Tokio runtime.
    pub async fn serve(self) -> Result<(), ServeError> {
        self.listener
            .set_nonblocking(true)
            .map_err(io_err("listener"))?;
        let listener =
            tokio::net::TcpListener::from_std(self.listener).map_err(io_err("listener"))?;
        let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(Duration::from_secs(60));
        builder
            .http2()
            .timer(TokioTimer::new())
            .adaptive_window(true)
            .max_concurrent_streams(256);
        let builder = Arc::new(builder);
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(x) => x,
                Err(e) => {
                    // Out of descriptors and similar: wait a little instead of spinning.
                    self.state
                        .log(LogLevel::Error, &format!("accept failed: {e}"));
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let state = self.state.clone();
            let builder = builder.clone();
            let tls = self.tls.clone();
            tokio::spawn(async move {
                let st = state.clone();
                let svc = hyper::service::service_fn(move |req| {
                    let st = st.clone();
                    async move {
                        Ok::<_, std::convert::Infallible>(handler::handle(st, req, peer).await)
                    }
                });
                let res = match tls {
                    Some(acc) => {
                        match tokio::time::timeout(Duration::from_secs(30), acc.accept(stream))
                            .await
                        {
                            Ok(Ok(s)) => builder.serve_connection(TokioIo::new(s), svc).await,
                            Ok(Err(e)) => {
                                state.log(
                                    LogLevel::Debug,
                                    &format!("TLS handshake with {peer} failed: {e}"),
                                );
                                return;
                            }
                            Err(_) => return,
                        }
                    }
                    None => builder.serve_connection(TokioIo::new(stream), svc).await,
                };
                if let Err(e) = res {
                    state.log(LogLevel::Debug, &format!("connection {peer}: {e}"));
                }
            });
        }
    }
}
