//! Monitors: HTTP hooks (`send-*`), the built-in Healthchecks.io monitor, the status file and
//! Prometheus metrics, plus a small recording HTTP server used by tests.
//!
//! Nothing here fails a run: network problems come back as warning strings (credentials
//! masked) for the caller to log. The status file and metrics file writers return
//! `io::Result` so the caller can decide how loud to be.

pub mod healthchecks;
mod http;
pub mod mask;
pub mod metrics;
pub mod send;
mod send_template;
pub mod status_file;
pub mod testserver;

pub use healthchecks::{Healthchecks, PingOutcome, run_summary};
pub use http::HttpSettings;
pub use mask::{mask_header_value, mask_url};
pub use metrics::{MetricsRun, RunStatus};
pub use send::{SendContext, send_all, send_all_with_funcs};
pub use send_template::body_template_data;
pub use status_file::{StatusEntry, StatusKind};
pub use testserver::{RecordedRequest, RecordingServer, Reply};
