//! The HTTP plumbing shared by hooks, Healthchecks pings and the Pushgateway client: client
//! construction (extra CA roots, insecure mode) and one request with retries and backoff.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use reqwest::blocking::{Client, RequestBuilder};
use reqwest::header::HeaderMap;

/// Settings shared by every outgoing monitoring request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpSettings {
    /// Timeout of one request attempt (`global.send-timeout`, 30 s by default).
    pub timeout: Duration,
    /// Extra PEM files whose certificates are trusted as roots (`global.ca-certificates`).
    pub ca_certificates: Vec<PathBuf>,
    /// Log the requests instead of sending them.
    pub dry_run: bool,
    /// `User-Agent` header value unless a hook sets its own.
    pub user_agent: String,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            timeout: Duration::from_secs(30),
            ca_certificates: Vec::new(),
            dry_run: false,
            user_agent: concat!("cairn/", env!("CARGO_PKG_VERSION")).to_string(),
        }
    }
}

/// Builds a blocking client with the extra CA roots; `insecure` accepts any certificate.
/// Unreadable CA files are skipped and reported in the returned warnings.
pub(crate) fn build_client(
    settings: &HttpSettings,
    insecure: bool,
) -> (Result<Client, String>, Vec<String>) {
    let mut warnings = Vec::new();
    let mut builder = Client::builder()
        .timeout(settings.timeout)
        .connect_timeout(settings.timeout);
    for path in &settings.ca_certificates {
        let loaded = std::fs::read(path)
            .map_err(|e| e.to_string())
            .and_then(|pem| {
                reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| error_text(&e))
            });
        match loaded {
            Ok(certs) if certs.is_empty() => warnings.push(format!(
                "CA certificate file {} holds no PEM certificate (ignored)",
                path.display()
            )),
            Ok(certs) => {
                for cert in certs {
                    builder = builder.add_root_certificate(cert);
                }
            }
            Err(e) => warnings.push(format!(
                "cannot load CA certificate file {}: {e} (ignored)",
                path.display()
            )),
        }
    }
    if insecure {
        builder = builder.danger_accept_invalid_certs(true);
    }
    let client = builder
        .build()
        .map_err(|e| format!("cannot set up the HTTP client: {}", error_text(&e)));
    (client, warnings)
}

/// How often and how long one logical request may be tried.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RetryPolicy {
    /// Attempts (at least 1).
    pub tries: u32,
    /// Timeout of one attempt.
    pub timeout: Duration,
    /// Wall-clock limit of all attempts and pauses together.
    pub budget: Option<Duration>,
    /// Pause after the first failed attempt; doubles after each further failure.
    pub backoff: Duration,
}

/// A request that did not succeed: what went wrong on the last attempt.
#[derive(Debug, Clone)]
pub(crate) struct Failure {
    /// `HTTP 500 Internal Server Error` or the transport error text.
    pub message: String,
    /// Attempts made.
    pub attempts: u32,
}

impl Failure {
    /// The message with the attempt count when there were several.
    pub fn describe(&self) -> String {
        if self.attempts > 1 {
            format!("{} (after {} attempts)", self.message, self.attempts)
        } else {
            self.message.clone()
        }
    }
}

/// Sends the request built by `make` until it succeeds (status < 400), fails for good (a
/// non-transient status) or the attempts or time budget run out. `observe` sees the headers
/// of every response, failed ones included.
pub(crate) fn execute(
    client: &Client,
    policy: RetryPolicy,
    make: &dyn Fn(&Client) -> RequestBuilder,
    observe: &mut dyn FnMut(&HeaderMap),
) -> Result<u16, Failure> {
    let started = Instant::now();
    let deadline = policy.budget.map(|b| started + b);
    let tries = policy.tries.max(1);
    let mut backoff = policy.backoff;
    let mut last = String::from("no attempt made");
    let mut attempts = 0;
    while attempts < tries {
        let mut timeout = policy.timeout;
        if let Some(deadline) = deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            timeout = timeout.min(left);
        }
        attempts += 1;
        let transient = match make(client).timeout(timeout).send() {
            Ok(response) => {
                observe(response.headers());
                let status = response.status();
                // Drain the body so the connection can be reused; its content is not needed.
                let _ = response.bytes();
                if !status.is_client_error() && !status.is_server_error() {
                    return Ok(status.as_u16());
                }
                last = format!("HTTP {status}");
                is_transient_status(status.as_u16())
            }
            Err(e) => {
                let builder = e.is_builder();
                last = error_text(&e.without_url());
                // A refused certificate will be refused again: not worth a retry.
                !builder && !last.contains("certificate")
            }
        };
        if !transient || attempts >= tries {
            break;
        }
        let mut pause = backoff;
        if let Some(deadline) = deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            if left <= pause {
                // No time left for a pause and a useful attempt.
                break;
            }
            pause = pause.min(left);
        }
        std::thread::sleep(pause);
        backoff = backoff.saturating_mul(2);
    }
    Err(Failure {
        message: last,
        attempts,
    })
}

/// Statuses worth another try: timeouts, rate limits and server-side trouble.
fn is_transient_status(status: u16) -> bool {
    matches!(status, 408 | 425 | 429 | 500 | 502 | 503 | 504)
}

/// An error and its sources, `outer: inner: innermost`.
pub(crate) fn error_text(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_statuses() {
        assert!(is_transient_status(500));
        assert!(is_transient_status(503));
        assert!(is_transient_status(429));
        assert!(!is_transient_status(404));
        assert!(!is_transient_status(400));
        assert!(!is_transient_status(409));
    }

    #[test]
    fn failure_mentions_attempts() {
        let f = Failure {
            message: "HTTP 500".into(),
            attempts: 3,
        };
        assert_eq!(f.describe(), "HTTP 500 (after 3 attempts)");
        let f = Failure {
            message: "HTTP 404".into(),
            attempts: 1,
        };
        assert_eq!(f.describe(), "HTTP 404");
    }

    #[test]
    fn unreadable_ca_file_is_a_warning() {
        let settings = HttpSettings {
            ca_certificates: vec![PathBuf::from("/nonexistent/ca.pem")],
            ..HttpSettings::default()
        };
        let (client, warnings) = build_client(&settings, false);
        assert!(client.is_ok());
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("/nonexistent/ca.pem"), "{warnings:?}");
    }
}
