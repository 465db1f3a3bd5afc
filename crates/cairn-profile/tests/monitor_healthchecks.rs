//! The built-in Healthchecks monitor against the recording server.

use std::io::Write;
use std::time::{Duration, Instant};

use cairn_profile::monitor::healthchecks::{Healthchecks, PingOutcome};
use cairn_profile::monitor::send::HttpSettings;
use cairn_profile::monitor::testserver::{RecordingServer, Reply};
use cairn_profile::types::{HealthchecksBody, HealthchecksSpec};

const CHECK: &str = "5f1c2d3e-0000-4000-8000-123456789abc";

fn spec(body: HealthchecksBody) -> HealthchecksSpec {
    HealthchecksSpec {
        url: String::new(),
        body,
        body_limit: 100_000,
        timeout: Duration::from_secs(5),
        retries: 3,
        interactive: true,
    }
}

fn settings() -> HttpSettings {
    HttpSettings {
        user_agent: "cairn/test".into(),
        ..HttpSettings::default()
    }
}

fn check_url(server: &RecordingServer) -> String {
    format!("{}/{CHECK}", server.url())
}

#[test]
fn start_and_finish_are_paired_by_run_id() {
    let server = RecordingServer::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("backup.log");
    std::fs::write(&log, "previous run output\n").unwrap();
    let offset = std::fs::metadata(&log).unwrap().len();

    let hc = Healthchecks::new(
        check_url(&server),
        &spec(HealthchecksBody::LogTail),
        &settings(),
    );
    assert!(hc.start().is_none());
    std::fs::OpenOptions::new()
        .append(true)
        .open(&log)
        .unwrap()
        .write_all("snapshot 1234abcd saved ✓\n".as_bytes())
        .unwrap();
    assert!(
        hc.finish(PingOutcome::Success, Some((&log, offset)), "unused")
            .is_none()
    );

    let reqs = server.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].method, "GET");
    assert_eq!(reqs[0].path(), format!("/{CHECK}/start"));
    assert_eq!(reqs[0].header("user-agent"), Some("cairn/test"));
    assert_eq!(reqs[1].method, "POST");
    assert_eq!(reqs[1].path(), format!("/{CHECK}"));
    assert_eq!(
        reqs[1].header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(reqs[1].body_text(), "snapshot 1234abcd saved ✓\n");
    let rid = hc.run_id();
    assert_eq!(reqs[0].query_param("rid"), Some(rid));
    assert_eq!(reqs[1].query_param("rid"), Some(rid));
    // A second monitor has another run id.
    let other = Healthchecks::new(
        check_url(&server),
        &spec(HealthchecksBody::None),
        &settings(),
    );
    assert_ne!(other.run_id(), rid);
}

#[test]
fn fail_exit_code_summary_and_no_body() {
    let server = RecordingServer::start().unwrap();
    let hc = Healthchecks::new(
        check_url(&server),
        &spec(HealthchecksBody::Summary),
        &settings(),
    );
    assert!(
        hc.finish(PingOutcome::Fail, None, "backup failed: exit status 3")
            .is_none()
    );
    assert!(
        hc.finish(PingOutcome::ExitCode(3), None, "warning")
            .is_none()
    );
    let quiet = Healthchecks::new(
        check_url(&server),
        &spec(HealthchecksBody::None),
        &settings(),
    );
    assert!(
        quiet
            .finish(PingOutcome::ExitCode(0), None, "ignored")
            .is_none()
    );
    assert!(hc.log("a log line").is_none());

    let reqs = server.requests();
    assert_eq!(reqs.len(), 4);
    assert_eq!(
        (reqs[0].method.as_str(), reqs[0].path()),
        ("POST", format!("/{CHECK}/fail").as_str())
    );
    assert_eq!(reqs[0].body_text(), "backup failed: exit status 3");
    assert_eq!(reqs[1].path(), format!("/{CHECK}/3"));
    assert_eq!(reqs[1].body_text(), "warning");
    assert_eq!(
        (reqs[2].method.as_str(), reqs[2].path()),
        ("GET", format!("/{CHECK}/0").as_str())
    );
    assert!(reqs[2].body.is_empty());
    assert_eq!(reqs[2].query_param("rid"), Some(quiet.run_id()));
    assert_eq!(
        (reqs[3].method.as_str(), reqs[3].path()),
        ("POST", format!("/{CHECK}/log").as_str())
    );
    assert_eq!(reqs[3].body_text(), "a log line");
    assert_eq!(reqs[3].query_param("rid"), Some(hc.run_id()));
}

#[test]
fn log_tail_honours_a_lower_ping_body_limit_and_utf8_boundaries() {
    let server = RecordingServer::start().unwrap();
    server.respond(
        &format!("/{CHECK}/start"),
        200,
        vec![("Ping-Body-Limit".into(), "10".into())],
        Duration::ZERO,
    );
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("backup.log");
    std::fs::write(&log, "earlier run\n").unwrap();
    let offset = std::fs::metadata(&log).unwrap().len();
    let hc = Healthchecks::new(
        check_url(&server),
        &spec(HealthchecksBody::LogTail),
        &settings(),
    );
    assert_eq!(hc.effective_body_limit(), 100_000);
    assert!(hc.start().is_none());
    assert_eq!(hc.effective_body_limit(), 10);
    // "€" is 3 bytes: the last 10 bytes start inside the first "€".
    let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    f.write_all("start ok €€ end\n".as_bytes()).unwrap();
    assert!(
        hc.finish(PingOutcome::Fail, Some((&log, offset)), "")
            .is_none()
    );
    let reqs = server.requests();
    assert_eq!(reqs.len(), 2);
    let body = &reqs[1].body;
    assert!(body.len() <= 10);
    assert_eq!(reqs[1].body_text(), "€ end\n");
    assert!(std::str::from_utf8(body).is_ok());

    // The configured limit wins when it is the lower one.
    let small = HealthchecksSpec {
        body_limit: 4,
        ..spec(HealthchecksBody::LogTail)
    };
    let hc = Healthchecks::new(check_url(&server), &small, &settings());
    assert!(
        hc.finish(PingOutcome::Success, Some((&log, offset)), "")
            .is_none()
    );
    assert_eq!(server.requests()[2].body_text(), "end\n");
}

#[test]
fn retries_on_server_errors_then_succeeds() {
    let server = RecordingServer::start().unwrap();
    server.reply(
        &format!("/{CHECK}/start"),
        Reply {
            status: 500,
            times: Some(2),
            ..Reply::default()
        },
    );
    let hc = Healthchecks::new(
        check_url(&server),
        &spec(HealthchecksBody::None),
        &settings(),
    );
    assert_eq!(hc.start(), None);
    let reqs = server.requests();
    assert_eq!(reqs.len(), 3);
    for r in &reqs {
        assert_eq!(r.path(), format!("/{CHECK}/start"));
        assert_eq!(r.query_param("rid"), Some(hc.run_id()));
    }
    assert!(reqs[2].at.duration_since(reqs[1].at) >= Duration::from_millis(500));
}

#[test]
fn persistent_errors_give_a_masked_warning() {
    let server = RecordingServer::start().unwrap();
    server.respond("/", 404, Vec::new(), Duration::ZERO);
    let hc = Healthchecks::new(
        check_url(&server),
        &spec(HealthchecksBody::None),
        &settings(),
    );
    let warning = hc.finish(PingOutcome::Fail, None, "").expect("a warning");
    assert!(warning.contains("HTTP 404"), "{warning}");
    assert!(warning.contains("/×××/fail"), "{warning}");
    assert!(!warning.contains(CHECK), "{warning}");
    // 404 is not retried.
    assert_eq!(server.requests().len(), 1);
}

#[test]
fn a_hanging_server_does_not_block_beyond_timeout_times_retries() {
    let server = RecordingServer::start().unwrap();
    server.respond("/", 200, Vec::new(), Duration::from_secs(3));
    let quick = HealthchecksSpec {
        timeout: Duration::from_millis(300),
        retries: 3,
        ..spec(HealthchecksBody::None)
    };
    let hc = Healthchecks::new(check_url(&server), &quick, &settings());
    let started = Instant::now();
    let warning = hc.start().expect("a timeout warning");
    let elapsed = started.elapsed();
    assert!(
        elapsed <= Duration::from_millis(900 + 250),
        "took {elapsed:?}"
    );
    assert!(elapsed >= Duration::from_millis(300), "took {elapsed:?}");
    assert!(warning.contains("start ping"), "{warning}");
    assert!(server.requests().len() >= 2, "retried within the budget");
}

#[test]
fn dry_run_sends_nothing() {
    let server = RecordingServer::start().unwrap();
    let settings = HttpSettings {
        dry_run: true,
        ..settings()
    };
    let hc = Healthchecks::new(
        check_url(&server),
        &spec(HealthchecksBody::Summary),
        &settings,
    );
    assert!(hc.start().is_none());
    assert!(hc.finish(PingOutcome::Success, None, "x").is_none());
    std::thread::sleep(Duration::from_millis(50));
    assert!(server.requests().is_empty());
}
