//! Prometheus metrics (§11): resticprofile's `resticprofile_*` gauges for backup runs, plus
//! `resticprofile_<command>_{status,duration_seconds,time_seconds}` for every other command
//! (check, forget, prune, …). Written as a textfile-collector file and/or pushed to a
//! Pushgateway in the text exposition format.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use reqwest::blocking::Client;

use super::http::{HttpSettings, RetryPolicy, build_client, execute};
use super::mask::mask_url;
use crate::types::{BackupStats, PrometheusSpec};

/// Outcome of a command as a metric value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    /// 0: the command failed.
    Fail,
    /// 1: finished with a warning (exit 3: some files could not be read).
    Warning,
    /// 2: success.
    Success,
}

impl RunStatus {
    /// The gauge value (0, 1, 2).
    pub fn value(self) -> u8 {
        match self {
            RunStatus::Fail => 0,
            RunStatus::Warning => 1,
            RunStatus::Success => 2,
        }
    }
}

/// One command run to report.
#[derive(Debug, Clone, Copy)]
pub struct MetricsRun<'a> {
    /// Profile name (label `profile`).
    pub profile: &'a str,
    /// Group name when run from a group (label `group`).
    pub group: Option<&'a str>,
    /// Command (`backup`, `check`, `forget`, `prune`, …).
    pub command: &'a str,
    /// `prometheus-labels`, added to every metric (they win over `profile`/`group`).
    pub labels: &'a BTreeMap<String, String>,
    /// Outcome.
    pub status: RunStatus,
    /// Run time.
    pub duration: Duration,
    /// End of the run.
    pub end: chrono::DateTime<chrono::Utc>,
    /// Backup counters (backup only; zeros when missing).
    pub backup: Option<&'a BackupStats>,
    /// Our version (label `version` of the build-info metrics).
    pub version: &'a str,
}

/// Metric name prefix kept for existing dashboards.
const NAMESPACE: &str = "resticprofile";

struct Family {
    name: String,
    help: String,
    samples: Vec<(Vec<(String, String)>, String)>,
}

/// The metrics of `run` in the Prometheus text exposition format (version 0.0.4): families
/// sorted by name, each with `# HELP` and `# TYPE … gauge`, label names sorted, values escaped.
pub fn render_text(run: &MetricsRun) -> String {
    render_text_many(std::slice::from_ref(run))
}

/// The metrics of several runs of one profile run (backup, then its retention and check) in
/// one exposition: families merged by name, identical samples once.
pub fn render_text_many(runs: &[MetricsRun]) -> String {
    let mut families: Vec<Family> = Vec::new();
    for run in runs {
        for f in families_of(run) {
            match families.iter_mut().find(|x| x.name == f.name) {
                Some(x) => {
                    for s in f.samples {
                        if !x.samples.contains(&s) {
                            x.samples.push(s);
                        }
                    }
                }
                None => families.push(f),
            }
        }
    }
    families.sort_by(|a, b| a.name.cmp(&b.name));
    let mut out = String::new();
    for family in families {
        out.push_str(&format!(
            "# HELP {} {}\n",
            family.name,
            escape_help(&family.help)
        ));
        out.push_str(&format!("# TYPE {} gauge\n", family.name));
        for (labels, value) in family.samples {
            out.push_str(&family.name);
            if !labels.is_empty() {
                let parts: Vec<String> = labels
                    .iter()
                    .map(|(k, v)| format!("{k}=\"{}\"", escape_label_value(v)))
                    .collect();
                out.push('{');
                out.push_str(&parts.join(","));
                out.push('}');
            }
            out.push(' ');
            out.push_str(&value);
            out.push('\n');
        }
    }
    out
}

fn families_of(run: &MetricsRun) -> Vec<Family> {
    let labels = base_labels(run);
    let with = |extra: &[(&str, &str)]| {
        let mut l: BTreeMap<String, String> = labels.clone();
        for (k, v) in extra {
            l.insert((*k).to_string(), (*v).to_string());
        }
        l.into_iter().collect::<Vec<_>>()
    };
    let plain: Vec<(String, String)> = labels.clone().into_iter().collect();
    let gauge = |name: String, help: &str, value: String| Family {
        name,
        help: help.to_string(),
        samples: vec![(plain.clone(), value)],
    };
    let mut out = vec![
        Family {
            name: format!("{NAMESPACE}_build_info"),
            help: "Build information of the tool that wrote these metrics.".into(),
            samples: vec![(with(&[("version", run.version)]), "1".into())],
        },
        Family {
            name: "restic_build_info".into(),
            help: "Build information of the backup engine (built in: same version).".into(),
            samples: vec![(with(&[("version", run.version)]), "1".into())],
        },
    ];
    let command = metric_segment(run.command);
    let seconds = format_float(run.duration.as_secs_f64());
    let end = run.end.timestamp().to_string();
    let status = run.status.value().to_string();
    if command == "backup" {
        let zero = BackupStats::default();
        let s = run.backup.unwrap_or(&zero);
        let b = |suffix: &str| format!("{NAMESPACE}_backup_{suffix}");
        out.extend([
            gauge(
                b("duration_seconds"),
                "Backup duration in seconds.",
                seconds,
            ),
            gauge(
                b("files_new"),
                "New files in the backup.",
                s.files_new.to_string(),
            ),
            gauge(
                b("files_changed"),
                "Changed files in the backup.",
                s.files_changed.to_string(),
            ),
            gauge(
                b("files_unmodified"),
                "Files unchanged since the previous backup.",
                s.files_unmodified.to_string(),
            ),
            gauge(
                b("dir_new"),
                "New directories in the backup.",
                s.dirs_new.to_string(),
            ),
            gauge(
                b("dir_changed"),
                "Changed directories in the backup.",
                s.dirs_changed.to_string(),
            ),
            gauge(
                b("dir_unmodified"),
                "Directories unchanged since the previous backup.",
                s.dirs_unmodified.to_string(),
            ),
            gauge(
                b("files_processed"),
                "Files scanned by the backup.",
                s.files_total.to_string(),
            ),
            gauge(
                b("added_bytes"),
                "Bytes added to the repository (before compression).",
                s.bytes_added.to_string(),
            ),
            gauge(
                b("added_bytes_packed"),
                "Bytes added to the repository (after compression).",
                s.bytes_added_packed.to_string(),
            ),
            gauge(
                b("processed_bytes"),
                "Bytes scanned by the backup.",
                s.bytes_total.to_string(),
            ),
            gauge(
                b("status"),
                "Backup status: 0=fail, 1=warning, 2=success.",
                status,
            ),
            gauge(
                b("time_seconds"),
                "End of the last backup run (unix time).",
                end,
            ),
        ]);
    } else {
        let c = |suffix: &str| format!("{NAMESPACE}_{command}_{suffix}");
        let what = run.command;
        out.extend([
            gauge(
                c("duration_seconds"),
                &format!("Duration of {what} in seconds."),
                seconds,
            ),
            gauge(
                c("status"),
                &format!("Status of {what}: 0=fail, 1=warning, 2=success."),
                status,
            ),
            gauge(
                c("time_seconds"),
                &format!("End of the last {what} run (unix time)."),
                end,
            ),
        ]);
    }
    out
}

/// `profile`, `group` (when set) and the configured labels (which win), names made valid.
fn base_labels(run: &MetricsRun) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    labels.insert("profile".to_string(), run.profile.to_string());
    if let Some(group) = run.group.filter(|g| !g.is_empty()) {
        labels.insert("group".to_string(), group.to_string());
    }
    for (k, v) in run.labels {
        labels.insert(label_name(k), v.clone());
    }
    labels
}

/// A valid label name: `[a-zA-Z_][a-zA-Z0-9_]*`, other characters replaced by `_`.
fn label_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// A command name as a metric name segment (`repair snapshots` → `repair_snapshots`).
fn metric_segment(command: &str) -> String {
    let s = label_name(command.trim());
    s.to_ascii_lowercase()
}

fn escape_label_value(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

/// Shortest text that reads back as the same float; integers without a fraction.
fn format_float(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else {
        format!("{v}")
    }
}

/// Writes the metrics to `path` for the node-exporter textfile collector: temporary file in
/// the same directory, fsync, rename (mode 0644).
pub fn save_to_file(path: &Path, run: &MetricsRun) -> io::Result<()> {
    save_many_to_file(path, std::slice::from_ref(run))
}

/// [`save_to_file`] for the runs of one profile run, merged ([`render_text_many`]).
pub fn save_many_to_file(path: &Path, runs: &[MetricsRun]) -> io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "metrics".into());
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .tempfile_in(&dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))?;
    }
    tmp.write_all(render_text_many(runs).as_bytes())?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// The Pushgateway job: `prometheus-push-job` with `$command`/`${command}` replaced and `$$`
/// as `$`, default `<profile>.<command>`.
pub fn job_name(spec: &PrometheusSpec, run: &MetricsRun) -> String {
    let template = match spec.push_job.as_deref().map(str::trim) {
        Some(job) if !job.is_empty() => job.to_string(),
        _ => return format!("{}.{}", run.profile, run.command),
    };
    // Only `$command` is a variable here; any other `$NAME` stays as written.
    super::send::expand(&template, &|name| {
        if name == "command" {
            run.command.to_string()
        } else {
            format!("${name}")
        }
    })
}

/// `<push>/metrics/job/<job>`; jobs with characters outside `[A-Za-z0-9._~-]` use the
/// Pushgateway's `job@base64/<base64url>` form.
pub fn push_url(base: &str, job: &str) -> String {
    let base = base.trim().trim_end_matches('/');
    let plain = !job.is_empty()
        && job
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'~' | b'-'));
    if plain {
        format!("{base}/metrics/job/{job}")
    } else {
        let encoded = base64::engine::general_purpose::URL_SAFE.encode(job.as_bytes());
        format!("{base}/metrics/job@base64/{encoded}")
    }
}

/// Attempts per push (transient failures only).
const PUSH_TRIES: u32 = 3;

/// Pushes the metrics with POST (Pushgateway "add": same-name metrics of the job are
/// replaced) in the text format. `protobuf` is not implemented: it falls back to text, which
/// every Pushgateway accepts. Returns a warning (URL credentials masked) on failure; nothing
/// when `spec.push` is unset.
pub fn push(spec: &PrometheusSpec, run: &MetricsRun, settings: &HttpSettings) -> Option<String> {
    let base = spec.push.as_deref().filter(|p| !p.trim().is_empty())?;
    let url = push_url(base, &job_name(spec, run));
    let shown = mask_url(&url);
    if spec.push_format.as_deref() == Some("protobuf") {
        tracing::debug!("prometheus-push-format = protobuf is sent as text");
    }
    let body = render_text(run);
    if settings.dry_run {
        tracing::info!(
            "dry-run: Prometheus push POST {shown} ({} bytes)",
            body.len()
        );
        return None;
    }
    let (client, mut warnings) = build_client(settings, false);
    let client = match client {
        Ok(c) => c,
        Err(e) => {
            warnings.push(format!("Prometheus push to {shown} not sent: {e}"));
            return Some(warnings.join("; "));
        }
    };
    let make = |client: &Client| {
        client
            .post(url.as_str())
            .header(
                reqwest::header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )
            .header(reqwest::header::USER_AGENT, settings.user_agent.as_str())
            .body(body.clone())
    };
    let policy = RetryPolicy {
        tries: PUSH_TRIES,
        timeout: settings.timeout,
        budget: None,
        backoff: Duration::from_millis(250),
    };
    if let Err(failure) = execute(&client, policy, &make, &mut |_| {}) {
        warnings.push(format!(
            "Prometheus push to {shown} failed: {}",
            failure.describe()
        ));
    }
    if warnings.is_empty() {
        None
    } else {
        Some(warnings.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run<'a>(labels: &'a BTreeMap<String, String>, command: &'a str) -> MetricsRun<'a> {
        MetricsRun {
            profile: "nidoking",
            group: None,
            command,
            labels,
            status: RunStatus::Success,
            duration: Duration::from_millis(1500),
            end: chrono::DateTime::from_timestamp(1_735_821_296, 0).unwrap_or_default(),
            backup: None,
            version: "0.1.0",
        }
    }

    #[test]
    fn job_names() {
        let labels = BTreeMap::new();
        let r = run(&labels, "backup");
        let mut spec = PrometheusSpec::default();
        assert_eq!(job_name(&spec, &r), "nidoking.backup");
        spec.push_job = Some("$command-${command}-$$command-$commander-$x".into());
        assert_eq!(job_name(&spec, &r), "backup-backup-$command-$commander-$x");
    }

    #[test]
    fn push_urls() {
        assert_eq!(
            push_url("http://gw:9091/", "nidoking.backup"),
            "http://gw:9091/metrics/job/nidoking.backup"
        );
        assert_eq!(
            push_url("http://gw:9091", "a/b c"),
            "http://gw:9091/metrics/job@base64/YS9iIGM="
        );
    }

    #[test]
    fn label_names_and_values() {
        assert_eq!(label_name("host-name"), "host_name");
        assert_eq!(label_name("1x"), "_1x");
        assert_eq!(escape_label_value("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        assert_eq!(metric_segment("repair snapshots"), "repair_snapshots");
        assert_eq!(format_float(1.5), "1.5");
        assert_eq!(format_float(16.0), "16");
    }

    #[test]
    fn other_commands_get_status_duration_time() {
        let labels = BTreeMap::new();
        let text = render_text(&MetricsRun {
            status: RunStatus::Fail,
            ..run(&labels, "check")
        });
        assert!(
            text.contains("resticprofile_check_status{profile=\"nidoking\"} 0\n"),
            "{text}"
        );
        assert!(text.contains("resticprofile_check_duration_seconds{profile=\"nidoking\"} 1.5\n"));
        assert!(
            text.contains("resticprofile_check_time_seconds{profile=\"nidoking\"} 1735821296\n")
        );
        assert!(!text.contains("resticprofile_backup_"));
    }
}
