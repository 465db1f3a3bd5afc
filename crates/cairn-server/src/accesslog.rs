//! `--log FILE`: an access log in the Apache "combined" format (`-` = standard output).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Mutex;

/// Where access log lines go.
#[derive(Debug)]
pub enum AccessLog {
    /// Standard output.
    Stdout,
    /// An append-only file.
    File(Mutex<File>),
}

/// One request's details for the log.
#[derive(Debug)]
pub struct Entry<'a> {
    /// Client address.
    pub peer: IpAddr,
    /// Authenticated user, if any.
    pub user: Option<&'a str>,
    /// Method.
    pub method: &'a str,
    /// Request target (path and query).
    pub uri: &'a str,
    /// HTTP version, e.g. `HTTP/1.1`.
    pub version: &'a str,
    /// Response status.
    pub status: u16,
    /// Response body size.
    pub size: u64,
    /// `Referer` header.
    pub referer: &'a str,
    /// `User-Agent` header.
    pub user_agent: &'a str,
}

fn quote(s: &str) -> String {
    s.chars()
        .flat_map(|c| match c {
            '"' => vec!['\\', '"'],
            '\\' => vec!['\\', '\\'],
            c if c.is_control() => vec!['?'],
            c => vec![c],
        })
        .collect()
}

/// Format one combined-log line (with the trailing newline).
pub fn line(e: &Entry<'_>) -> String {
    let now = chrono::Utc::now().format("%d/%b/%Y:%H:%M:%S %z");
    let user = e.user.filter(|u| !u.is_empty()).unwrap_or("-");
    format!(
        "{} - {} [{now}] \"{} {} {}\" {} {} \"{}\" \"{}\"\n",
        e.peer,
        quote(user),
        quote(e.method),
        quote(e.uri),
        e.version,
        e.status,
        e.size,
        quote(e.referer),
        quote(e.user_agent)
    )
}

impl AccessLog {
    /// Open the log named on the command line.
    pub fn open(spec: &Path) -> io::Result<Self> {
        if spec.as_os_str() == "-" {
            return Ok(AccessLog::Stdout);
        }
        let f = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o644)
            .open(spec)?;
        Ok(AccessLog::File(Mutex::new(f)))
    }

    /// Append a line (errors are ignored: logging never fails a request).
    pub fn write(&self, line: &str) {
        match self {
            AccessLog::Stdout => {
                let _ = io::stdout().lock().write_all(line.as_bytes());
            }
            AccessLog::File(f) => {
                if let Ok(mut f) = f.lock() {
                    let _ = f.write_all(line.as_bytes());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combined_format() {
        let l = line(&Entry {
            peer: "127.0.0.1".parse().unwrap(),
            user: Some("alice"),
            method: "GET",
            uri: "/r/config",
            version: "HTTP/1.1",
            status: 200,
            size: 155,
            referer: "",
            user_agent: "restic/0.14.0 \"x\"",
        });
        assert!(l.starts_with("127.0.0.1 - alice ["));
        assert!(
            l.ends_with("] \"GET /r/config HTTP/1.1\" 200 155 \"\" \"restic/0.14.0 \\\"x\\\"\"\n")
        );
    }
}
