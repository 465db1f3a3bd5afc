//! `--prometheus`: counters in the Prometheus text format at `/metrics`, with rest-server's
//! metric names (`rest_server_blob_{read,write,delete}_{total,bytes_total}` labelled by user,
//! repository and type) plus request counts by method and status.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

/// A blob operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Op {
    /// A file was read (GET).
    Read,
    /// A file was written (POST).
    Write,
    /// A file was deleted.
    Delete,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Read => "read",
            Op::Write => "write",
            Op::Delete => "delete",
        }
    }
}

/// Label set of the blob counters: (user, repo, type).
type Labels = (String, String, String);

/// All counters.
#[derive(Debug, Default)]
pub struct Metrics {
    blobs: Mutex<BTreeMap<(Op, Labels), (u64, u64)>>,
    requests: Mutex<BTreeMap<(String, u16), u64>>,
}

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Metrics {
    /// Count one blob operation of `bytes` bytes.
    pub fn blob(&self, op: Op, user: &str, repo: &str, tpe: &str, bytes: u64) {
        if let Ok(mut m) = self.blobs.lock() {
            let e = m
                .entry((op, (user.to_string(), repo.to_string(), tpe.to_string())))
                .or_default();
            e.0 += 1;
            e.1 = e.1.saturating_add(bytes);
        }
    }

    /// Count one answered request.
    pub fn request(&self, method: &str, status: u16) {
        if let Ok(mut m) = self.requests.lock() {
            *m.entry((method.to_string(), status)).or_default() += 1;
        }
    }

    /// The text exposition; `quota` is (used, max) when a quota is set.
    pub fn render(&self, quota: Option<(u64, u64)>) -> String {
        let mut out = String::new();
        let blobs = self.blobs.lock().map(|m| m.clone()).unwrap_or_default();
        for op in [Op::Read, Op::Write, Op::Delete] {
            for (suffix, help, pick) in [
                ("total", "Total number of blobs", 0),
                ("bytes_total", "Total number of bytes of blobs", 1),
            ] {
                let name = format!("rest_server_blob_{}_{suffix}", op.name());
                let _ = writeln!(out, "# HELP {name} {help} ({})", op.name());
                let _ = writeln!(out, "# TYPE {name} counter");
                for ((o, (user, repo, tpe)), (n, bytes)) in &blobs {
                    if *o == op {
                        let v = if pick == 0 { *n } else { *bytes };
                        let _ = writeln!(
                            out,
                            "{name}{{repo=\"{}\",type=\"{}\",user=\"{}\"}} {v}",
                            esc(repo),
                            esc(tpe),
                            esc(user)
                        );
                    }
                }
            }
        }
        let reqs = self.requests.lock().map(|m| m.clone()).unwrap_or_default();
        let _ = writeln!(out, "# HELP cairn_serve_requests_total Requests answered");
        let _ = writeln!(out, "# TYPE cairn_serve_requests_total counter");
        for ((method, status), n) in &reqs {
            let _ = writeln!(
                out,
                "cairn_serve_requests_total{{code=\"{status}\",method=\"{}\"}} {n}",
                esc(method)
            );
        }
        if let Some((used, max)) = quota {
            let _ = writeln!(
                out,
                "# HELP cairn_serve_quota_used_bytes Bytes used of the --max-size quota"
            );
            let _ = writeln!(out, "# TYPE cairn_serve_quota_used_bytes gauge");
            let _ = writeln!(out, "cairn_serve_quota_used_bytes {used}");
            let _ = writeln!(
                out,
                "# HELP cairn_serve_quota_max_bytes The --max-size quota"
            );
            let _ = writeln!(out, "# TYPE cairn_serve_quota_max_bytes gauge");
            let _ = writeln!(out, "cairn_serve_quota_max_bytes {max}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters() {
        let m = Metrics::default();
        m.blob(Op::Write, "alice", "a/b", "data", 100);
        m.blob(Op::Write, "alice", "a/b", "data", 50);
        m.blob(Op::Read, "", "", "keys", 7);
        m.request("GET", 200);
        let t = m.render(Some((5, 10)));
        assert!(
            t.contains("rest_server_blob_write_total{repo=\"a/b\",type=\"data\",user=\"alice\"} 2")
        );
        assert!(t.contains(
            "rest_server_blob_write_bytes_total{repo=\"a/b\",type=\"data\",user=\"alice\"} 150"
        ));
        assert!(
            t.contains("rest_server_blob_read_bytes_total{repo=\"\",type=\"keys\",user=\"\"} 7")
        );
        assert!(t.contains("cairn_serve_requests_total{code=\"200\",method=\"GET\"} 1"));
        assert!(t.contains("cairn_serve_quota_used_bytes 5"));
        assert_eq!(esc("a\"b\\c\n"), "a\\\"b\\\\c\\n");
    }
}
