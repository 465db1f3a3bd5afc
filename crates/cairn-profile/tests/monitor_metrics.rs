//! Prometheus metrics: text format golden test, textfile output, pushes to the recording
//! server and to a real Pushgateway.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cairn_profile::monitor::metrics::{self, MetricsRun, RunStatus};
use cairn_profile::monitor::send::HttpSettings;
use cairn_profile::monitor::testserver::RecordingServer;
use cairn_profile::types::{BackupStats, PrometheusSpec};

fn stats() -> BackupStats {
    BackupStats {
        files_new: 215,
        files_changed: 3,
        files_unmodified: 10,
        dirs_new: 58,
        dirs_changed: 1,
        dirs_unmodified: 7,
        files_total: 228,
        bytes_added: 296_536_447,
        bytes_added_packed: 123_456,
        bytes_total: 362_952_485,
        snapshot_id: Some("1a2b3c4d".into()),
    }
}

fn labels() -> BTreeMap<String, String> {
    let mut l = BTreeMap::new();
    l.insert("host".to_string(), "Nido\"king\"\n".to_string());
    l
}

fn backup_run<'a>(labels: &'a BTreeMap<String, String>, stats: &'a BackupStats) -> MetricsRun<'a> {
    MetricsRun {
        profile: "nidoking",
        group: Some("daily"),
        command: "backup",
        labels,
        status: RunStatus::Warning,
        duration: Duration::from_millis(16_250),
        end: chrono::DateTime::from_timestamp(1_735_821_296, 0).unwrap(),
        backup: Some(stats),
        version: "0.1.0",
    }
}

const GOLDEN: &str = r#"# HELP restic_build_info Build information of the backup engine (built in: same version).
# TYPE restic_build_info gauge
restic_build_info{group="daily",host="Nido\"king\"\n",profile="nidoking",version="0.1.0"} 1
# HELP resticprofile_backup_added_bytes Bytes added to the repository (before compression).
# TYPE resticprofile_backup_added_bytes gauge
resticprofile_backup_added_bytes{group="daily",host="Nido\"king\"\n",profile="nidoking"} 296536447
# HELP resticprofile_backup_added_bytes_packed Bytes added to the repository (after compression).
# TYPE resticprofile_backup_added_bytes_packed gauge
resticprofile_backup_added_bytes_packed{group="daily",host="Nido\"king\"\n",profile="nidoking"} 123456
# HELP resticprofile_backup_dir_changed Changed directories in the backup.
# TYPE resticprofile_backup_dir_changed gauge
resticprofile_backup_dir_changed{group="daily",host="Nido\"king\"\n",profile="nidoking"} 1
# HELP resticprofile_backup_dir_new New directories in the backup.
# TYPE resticprofile_backup_dir_new gauge
resticprofile_backup_dir_new{group="daily",host="Nido\"king\"\n",profile="nidoking"} 58
# HELP resticprofile_backup_dir_unmodified Directories unchanged since the previous backup.
# TYPE resticprofile_backup_dir_unmodified gauge
resticprofile_backup_dir_unmodified{group="daily",host="Nido\"king\"\n",profile="nidoking"} 7
# HELP resticprofile_backup_duration_seconds Backup duration in seconds.
# TYPE resticprofile_backup_duration_seconds gauge
resticprofile_backup_duration_seconds{group="daily",host="Nido\"king\"\n",profile="nidoking"} 16.25
# HELP resticprofile_backup_files_changed Changed files in the backup.
# TYPE resticprofile_backup_files_changed gauge
resticprofile_backup_files_changed{group="daily",host="Nido\"king\"\n",profile="nidoking"} 3
# HELP resticprofile_backup_files_new New files in the backup.
# TYPE resticprofile_backup_files_new gauge
resticprofile_backup_files_new{group="daily",host="Nido\"king\"\n",profile="nidoking"} 215
# HELP resticprofile_backup_files_processed Files scanned by the backup.
# TYPE resticprofile_backup_files_processed gauge
resticprofile_backup_files_processed{group="daily",host="Nido\"king\"\n",profile="nidoking"} 228
# HELP resticprofile_backup_files_unmodified Files unchanged since the previous backup.
# TYPE resticprofile_backup_files_unmodified gauge
resticprofile_backup_files_unmodified{group="daily",host="Nido\"king\"\n",profile="nidoking"} 10
# HELP resticprofile_backup_processed_bytes Bytes scanned by the backup.
# TYPE resticprofile_backup_processed_bytes gauge
resticprofile_backup_processed_bytes{group="daily",host="Nido\"king\"\n",profile="nidoking"} 362952485
# HELP resticprofile_backup_status Backup status: 0=fail, 1=warning, 2=success.
# TYPE resticprofile_backup_status gauge
resticprofile_backup_status{group="daily",host="Nido\"king\"\n",profile="nidoking"} 1
# HELP resticprofile_backup_time_seconds End of the last backup run (unix time).
# TYPE resticprofile_backup_time_seconds gauge
resticprofile_backup_time_seconds{group="daily",host="Nido\"king\"\n",profile="nidoking"} 1735821296
# HELP resticprofile_build_info Build information of the tool that wrote these metrics.
# TYPE resticprofile_build_info gauge
resticprofile_build_info{group="daily",host="Nido\"king\"\n",profile="nidoking",version="0.1.0"} 1
"#;

#[test]
fn backup_metrics_text_golden() {
    let labels = labels();
    let stats = stats();
    assert_eq!(metrics::render_text(&backup_run(&labels, &stats)), GOLDEN);
}

#[test]
fn failed_backup_without_counters_reports_zeros() {
    let labels = BTreeMap::new();
    let stats = stats();
    let run = MetricsRun {
        status: RunStatus::Fail,
        group: None,
        backup: None,
        ..backup_run(&labels, &stats)
    };
    let text = metrics::render_text(&run);
    assert!(
        text.contains("resticprofile_backup_status{profile=\"nidoking\"} 0\n"),
        "{text}"
    );
    assert!(
        text.contains("resticprofile_backup_files_new{profile=\"nidoking\"} 0\n"),
        "{text}"
    );
    assert!(!text.contains("group="), "{text}");
}

#[test]
fn textfile_is_written_atomically() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("textfile").join("cairn.prom");
    let labels = labels();
    let stats = stats();
    metrics::save_to_file(&path, &backup_run(&labels, &stats)).unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), GOLDEN);
    let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["cairn.prom"]);
}

#[test]
fn push_posts_text_to_the_job_url() {
    let server = RecordingServer::start().unwrap();
    let labels = BTreeMap::new();
    let stats = stats();
    let run = backup_run(&labels, &stats);
    let spec = PrometheusSpec {
        push: Some(format!("{}/", server.url())),
        push_job: Some("cairn-$command".into()),
        ..PrometheusSpec::default()
    };
    assert_eq!(metrics::push(&spec, &run, &HttpSettings::default()), None);
    let reqs = server.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].method, "POST");
    assert_eq!(reqs[0].target, "/metrics/job/cairn-backup");
    assert_eq!(
        reqs[0].header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    assert_eq!(reqs[0].body_text(), metrics::render_text(&run));

    // Failures are warnings with masked credentials.
    server.respond("/metrics", 400, Vec::new(), Duration::ZERO);
    let spec = PrometheusSpec {
        push: Some(server.url().replace("http://", "http://u:topsecret@")),
        ..PrometheusSpec::default()
    };
    let warning = metrics::push(&spec, &run, &HttpSettings::default()).expect("warning");
    assert!(warning.contains("HTTP 400"), "{warning}");
    assert!(warning.contains("u:×××@"), "{warning}");
    assert!(!warning.contains("topsecret"), "{warning}");
    assert!(
        warning.contains("/metrics/job/nidoking.backup"),
        "{warning}"
    );
}

/// The Pushgateway binary, or None ("skipping"); CAIRN_REQUIRE_EXTERNAL=1 makes it required.
fn pushgateway_binary() -> Option<PathBuf> {
    let candidates = [
        PathBuf::from("/usr/bin/prometheus-pushgateway"),
        PathBuf::from("/usr/local/bin/pushgateway"),
    ];
    let on_path = std::env::var_os("PATH").into_iter().flat_map(|p| {
        std::env::split_paths(&p)
            .flat_map(|d| [d.join("prometheus-pushgateway"), d.join("pushgateway")])
            .collect::<Vec<_>>()
    });
    if let Some(found) = candidates.into_iter().chain(on_path).find(|p| p.is_file()) {
        return Some(found);
    }
    if std::env::var("CAIRN_REQUIRE_EXTERNAL").as_deref() == Ok("1") {
        panic!("prometheus-pushgateway is required (CAIRN_REQUIRE_EXTERNAL=1) but not installed");
    }
    eprintln!("skipping: prometheus-pushgateway not installed");
    None
}

struct Gateway {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_gateway(binary: &PathBuf) -> Gateway {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(binary)
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--persistence.file=")
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let gateway = Gateway {
        child,
        url: format!("http://127.0.0.1:{port}"),
        _dir: dir,
    };
    let client = reqwest::blocking::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ready = client
            .get(format!("{}/-/ready", gateway.url))
            .timeout(Duration::from_secs(1))
            .send()
            .is_ok_and(|r| r.status().is_success());
        if ready {
            return gateway;
        }
        assert!(
            Instant::now() < deadline,
            "pushgateway did not become ready"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The samples of the exposition text: (name, labels, value).
fn samples(text: &str) -> Vec<(String, BTreeMap<String, String>, f64)> {
    let mut out = Vec::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (series, value) = line.rsplit_once(' ').unwrap();
        let (name, labels) = match series.split_once('{') {
            Some((n, rest)) => (n, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        let mut map = BTreeMap::new();
        // Label values in these tests contain no commas or escaped quotes.
        for pair in labels.split(',').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap();
            map.insert(k.to_string(), v.trim_matches('"').to_string());
        }
        out.push((name.to_string(), map, value.parse::<f64>().unwrap()));
    }
    out
}

#[test]
fn push_to_a_real_pushgateway() {
    let Some(binary) = pushgateway_binary() else {
        return;
    };
    let gateway = start_gateway(&binary);
    let mut labels = BTreeMap::new();
    labels.insert("host".to_string(), "nidoking-mac".to_string());
    let stats = stats();
    let backup = backup_run(&labels, &stats);
    let spec = PrometheusSpec {
        push: Some(gateway.url.clone()),
        ..PrometheusSpec::default()
    };
    let settings = HttpSettings::default();
    assert_eq!(metrics::push(&spec, &backup, &settings), None);
    let check = MetricsRun {
        command: "check",
        status: RunStatus::Success,
        backup: None,
        ..backup
    };
    let spec_check = PrometheusSpec {
        push_job: Some("cairn/$command".into()),
        ..spec.clone()
    };
    assert_eq!(metrics::push(&spec_check, &check, &settings), None);

    let text = reqwest::blocking::get(format!("{}/metrics", gateway.url))
        .unwrap()
        .text()
        .unwrap();
    let all = samples(&text);
    let find = |name: &str, job: &str| {
        all.iter()
            .find(|(n, l, _)| n == name && l.get("job").map(String::as_str) == Some(job))
            .unwrap_or_else(|| panic!("{name} for job {job} missing in:\n{text}"))
    };
    let (_, l, v) = find("resticprofile_backup_files_new", "nidoking.backup");
    assert_eq!(*v, 215.0);
    assert_eq!(l.get("profile").map(String::as_str), Some("nidoking"));
    assert_eq!(l.get("group").map(String::as_str), Some("daily"));
    assert_eq!(l.get("host").map(String::as_str), Some("nidoking-mac"));
    assert_eq!(
        find("resticprofile_backup_added_bytes", "nidoking.backup").2,
        296_536_447.0
    );
    assert_eq!(
        find("resticprofile_backup_status", "nidoking.backup").2,
        1.0
    );
    assert_eq!(
        find("resticprofile_backup_duration_seconds", "nidoking.backup").2,
        16.25
    );
    assert_eq!(
        find("resticprofile_backup_time_seconds", "nidoking.backup").2,
        1_735_821_296.0
    );
    let (_, l, _) = find("resticprofile_build_info", "nidoking.backup");
    assert_eq!(l.get("version").map(String::as_str), Some("0.1.0"));
    // The job with a slash went through the base64 form.
    assert_eq!(find("resticprofile_check_status", "cairn/check").2, 2.0);
    assert_eq!(
        find("resticprofile_check_duration_seconds", "cairn/check").2,
        16.25
    );
}
