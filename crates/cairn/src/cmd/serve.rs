//! `cairn serve`: a restic REST server (like restic's rest-server).

use crate::cli::GlobalOpts;
use anyhow::{Context, Result, bail};
use cairn_server::{LogLevel, LogSink, Server, ServerConfig, TlsConfig};
use clap::Args;
use std::path::PathBuf;
use std::sync::Arc;

/// `serve` options (rest-server's flags).
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Data directory holding the repositories [default: $TMPDIR/restic].
    #[arg(long, value_name = "DIR")]
    pub path: Option<PathBuf>,
    /// Listen address (`host:port`, or `:port` for all interfaces; port 0 picks a free one).
    #[arg(long, default_value = ":8000", value_name = "ADDR")]
    pub listen: String,
    /// Append-only mode: no deletes (except locks) and no overwrites.
    #[arg(long)]
    pub append_only: bool,
    /// Users may only access repositories below /<username>/.
    #[arg(long)]
    pub private_repos: bool,
    /// Disable authentication.
    #[arg(long)]
    pub no_auth: bool,
    /// Location of the .htpasswd file [default: <path>/.htpasswd].
    #[arg(long, value_name = "FILE")]
    pub htpasswd_file: Option<PathBuf>,
    /// Take the user name from this request header (authentication done by a proxy).
    #[arg(long, value_name = "HEADER")]
    pub proxy_auth_username: Option<String>,
    /// Turn on TLS.
    #[arg(long)]
    pub tls: bool,
    /// TLS certificate (PEM) [default: <path>/public_key].
    #[arg(long, value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM) [default: <path>/private_key].
    #[arg(long, value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// Minimum TLS version: 1.2 or 1.3.
    #[arg(long, default_value = "1.2", value_name = "VERSION")]
    pub tls_min_ver: String,
    /// Maximum size of all repositories together, in bytes (suffixes k, m, g, t allowed).
    #[arg(long, value_name = "BYTES", value_parser = parse_size)]
    pub max_size: Option<u64>,
    /// Serve Prometheus metrics at /metrics.
    #[arg(long)]
    pub prometheus: bool,
    /// No authentication for /metrics.
    #[arg(long)]
    pub prometheus_no_auth: bool,
    /// Do not check that uploaded files match their names (SHA-256).
    #[arg(long)]
    pub no_verify_upload: bool,
    /// Make repository files and directories group-accessible.
    #[arg(long)]
    pub group_accessible_repos: bool,
    /// Log every request to standard error.
    #[arg(long)]
    pub debug: bool,
    /// Write an access log in the combined format to FILE ("-" for standard output).
    #[arg(long, value_name = "FILE")]
    pub log: Option<PathBuf>,
}

/// Parse a byte count with an optional binary suffix (k, m, g, t).
fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (num, mult) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let m: u64 = match c.to_ascii_lowercase() {
                'k' => 1 << 10,
                'm' => 1 << 20,
                'g' => 1 << 30,
                't' => 1 << 40,
                'b' => 1,
                _ => return Err(format!("invalid size {s:?}")),
            };
            (t.get(..i).unwrap_or(""), m)
        }
        _ => (t, 1),
    };
    num.trim()
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| format!("invalid size {s:?}"))
}

fn config(a: &ServeArgs) -> Result<ServerConfig> {
    let path = a
        .path
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join("restic"));
    if !a.tls && (a.tls_cert.is_some() || a.tls_key.is_some()) {
        bail!("--tls-cert and --tls-key require --tls");
    }
    let min_tls13 = match a.tls_min_ver.as_str() {
        "1.2" => false,
        "1.3" => true,
        v => bail!("unsupported TLS minimum version {v:?} (allowed: 1.2, 1.3)"),
    };
    let tls = a.tls.then(|| TlsConfig {
        cert: a
            .tls_cert
            .clone()
            .unwrap_or_else(|| path.join("public_key")),
        key: a
            .tls_key
            .clone()
            .unwrap_or_else(|| path.join("private_key")),
        min_tls13,
    });
    Ok(ServerConfig {
        path,
        listen: a.listen.clone(),
        append_only: a.append_only,
        private_repos: a.private_repos,
        no_auth: a.no_auth,
        htpasswd_file: a.htpasswd_file.clone(),
        proxy_auth_username: a.proxy_auth_username.clone(),
        tls,
        max_size: a.max_size.filter(|n| *n > 0),
        prometheus: a.prometheus,
        prometheus_no_auth: a.prometheus_no_auth,
        no_verify_upload: a.no_verify_upload,
        group_accessible: a.group_accessible_repos,
        debug: a.debug,
        log: a.log.clone(),
    })
}

/// Run `cairn serve` until SIGINT/SIGTERM.
pub fn run(g: &GlobalOpts, a: &ServeArgs) -> Result<()> {
    let cfg = config(a)?;
    let quiet = g.quiet;
    let sink: LogSink = Arc::new(move |level, msg| {
        if level != LogLevel::Info || !quiet {
            eprintln!("{msg}");
        }
    });
    let info = |msg: &str| sink(LogLevel::Info, msg);
    info(&format!("Data directory: {}", cfg.path.display()));
    let on_off = |b: bool| if b { "enabled" } else { "disabled" };
    let summary = [
        (
            "Authentication",
            !cfg.no_auth,
            cfg.proxy_auth_username
                .as_ref()
                .map(|h| format!(" (proxy header {h})")),
        ),
        ("Append only mode", cfg.append_only, None),
        ("Private repositories", cfg.private_repos, None),
        ("Group accessible repos", cfg.group_accessible, None),
        ("Upload verification", !cfg.no_verify_upload, None),
    ];
    let server = Server::bind(cfg.clone(), Some(sink.clone()))
        .with_context(|| format!("cannot serve on {}", cfg.listen))?;
    for (what, on, extra) in summary {
        info(&format!(
            "{what} {}{}",
            on_off(on),
            extra.unwrap_or_default()
        ));
    }
    if let Some(n) = server.users() {
        info(&format!(
            "Loaded htpasswd file {} ({n} users)",
            cfg.htpasswd_file
                .clone()
                .unwrap_or_else(|| cfg.path.join(".htpasswd"))
                .display()
        ));
    }
    if let (Some(used), Some(max)) = (server.quota_used(), cfg.max_size) {
        info(&format!(
            "Quota: {} of {} used",
            crate::output::size(used),
            crate::output::size(max)
        ));
    }
    if let Some(t) = &cfg.tls {
        info(&format!(
            "TLS enabled, certificate {}, key {}",
            t.cert.display(),
            t.key.display()
        ));
    }
    if cfg.prometheus {
        info("Prometheus metrics enabled at /metrics");
    }
    let addr = server.local_addr();
    let scheme = if cfg.tls.is_some() { "https" } else { "http" };
    if g.json {
        crate::output::json_line(&serde_json::json!({
            "message_type": "serve", "address": addr.to_string(),
            "url": format!("{scheme}://{addr}/"),
        }));
    }
    // Always printed (also with -q): scripts and tests read the address from it.
    eprintln!("Listening on {scheme}://{addr}/");
    server.run().context("server failed")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1000"), Ok(1000));
        assert_eq!(parse_size("2k"), Ok(2048));
        assert_eq!(parse_size("3G"), Ok(3 << 30));
        assert!(parse_size("x").is_err());
        assert!(parse_size("99999999999t").is_err());
    }
}
