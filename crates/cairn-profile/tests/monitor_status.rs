//! The status file: resticprofile's shape, atomic updates, concurrent writers.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use cairn_profile::monitor::status_file::{self, StatusEntry, StatusKind};
use cairn_profile::types::BackupStats;
use chrono::{DateTime, FixedOffset, TimeZone};

fn at(h: u32, m: u32, s: u32, micros: i64) -> DateTime<FixedOffset> {
    FixedOffset::east_opt(0)
        .unwrap()
        .with_ymd_and_hms(2025, 1, 2, h, m, s)
        .unwrap()
        + chrono::Duration::microseconds(micros)
}

fn stats() -> BackupStats {
    BackupStats {
        files_new: 215,
        files_changed: 0,
        files_unmodified: 0,
        dirs_new: 58,
        dirs_changed: 0,
        dirs_unmodified: 0,
        files_total: 215,
        bytes_added: 296_536_447,
        bytes_added_packed: 123_456,
        bytes_total: 362_952_485,
        snapshot_id: Some("1a2b3c4d".into()),
    }
}

fn success(duration: Duration) -> StatusEntry {
    StatusEntry {
        success: true,
        time: at(12, 34, 56, 789_012),
        started: None,
        error: String::new(),
        stderr: String::new(),
        duration,
        stats: None,
        exit_code: None,
        warning: false,
        host: None,
    }
}

fn text(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap()
}

#[test]
fn backup_entry_has_resticprofiles_exact_shape() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("status").join("nidoking.json");
    let entry = StatusEntry {
        stats: Some(stats()),
        ..success(Duration::from_millis(15_200))
    };
    status_file::record(&path, "nidoking", StatusKind::Backup, &entry).unwrap();
    assert_eq!(
        text(&path),
        concat!(
            r#"{"profiles":{"nidoking":{"backup":{"success":true,"time":"2025-01-02T12:34:56.789012Z","#,
            r#""error":"","stderr":"","duration":16,"files_new":215,"files_changed":0,"files_unmodified":0,"#,
            r#""dirs_new":58,"dirs_changed":0,"dirs_unmodified":0,"files_total":215,"bytes_added":296536447,"#,
            r#""bytes_added_packed":123456,"bytes_total":362952485,"snapshot_id":"1a2b3c4d","warning":false}}}}"#,
            "\n"
        )
    );
    let doc = status_file::read(&path).unwrap();
    assert_eq!(
        doc.pointer("/profiles/nidoking/backup/success"),
        Some(&true.into())
    );
    assert_eq!(
        doc.pointer("/profiles/nidoking/backup/duration"),
        Some(&16.into())
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644);
    }
    if let Some(jq) = jq() {
        let out = std::process::Command::new(jq)
            .args(["-r", ".profiles.nidoking.backup.success"])
            .arg(&path)
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "true\n");
    }
}

/// `jq` when installed ("skipping" otherwise, a failure with CAIRN_REQUIRE_EXTERNAL=1).
fn jq() -> Option<&'static str> {
    let found = std::process::Command::new("jq")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if found {
        return Some("jq");
    }
    if std::env::var("CAIRN_REQUIRE_EXTERNAL").as_deref() == Ok("1") {
        panic!("jq is required (CAIRN_REQUIRE_EXTERNAL=1) but not installed");
    }
    eprintln!("skipping the jq part: jq not installed");
    None
}

#[test]
fn failures_zero_the_counters_and_carry_our_extra_keys() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.json");
    let started = FixedOffset::east_opt(7200)
        .unwrap()
        .with_ymd_and_hms(2025, 1, 2, 14, 34, 40)
        .unwrap();
    let entry = StatusEntry {
        success: false,
        time: started + chrono::Duration::seconds(16),
        started: Some(started),
        error: "exit status 3".into(),
        stderr: "can't read <file> & more\n".into(),
        duration: Duration::from_secs(16),
        stats: Some(stats()),
        exit_code: Some(3),
        warning: true,
        host: Some("Nidoking".into()),
    };
    status_file::record(&path, "nidoking", StatusKind::Backup, &entry).unwrap();
    let t = text(&path);
    assert!(t.contains(r#""success":false,"time":"2025-01-02T14:34:56+02:00","error":"exit status 3","stderr":"can't read \u003cfile\u003e \u0026 more\n","duration":16,"files_new":0,"#), "{t}");
    assert!(t.contains(r#""bytes_total":0,"snapshot_id":"1a2b3c4d","exit_code":3,"warning":true,"started":"2025-01-02T14:34:40+02:00","host":"Nidoking"}"#), "{t}");
    let doc = status_file::read(&path).unwrap();
    assert_eq!(
        doc.pointer("/profiles/nidoking/backup/stderr")
            .and_then(|v| v.as_str()),
        Some("can't read <file> & more\n")
    );
}

#[test]
fn durations_are_whole_seconds_rounded_up() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.json");
    for (d, expected) in [(0, 0), (1, 1), (999, 1), (1000, 1), (1001, 2), (59_999, 60)] {
        status_file::record(
            &path,
            "p",
            StatusKind::Check,
            &success(Duration::from_millis(d)),
        )
        .unwrap();
        let doc = status_file::read(&path).unwrap();
        assert_eq!(
            doc.pointer("/profiles/p/check/duration"),
            Some(&expected.into()),
            "{d} ms"
        );
    }
}

#[test]
fn profiles_and_entries_share_one_file_and_unknown_keys_survive() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.json");
    std::fs::write(
        &path,
        r#"{"profiles":{"zeta":{"check":{"success":true},"custom":1}},"note":"kept"}"#,
    )
    .unwrap();
    status_file::record(
        &path,
        "nidoking",
        StatusKind::Check,
        &success(Duration::from_secs(1)),
    )
    .unwrap();
    let backup = StatusEntry {
        stats: Some(stats()),
        ..success(Duration::from_secs(3))
    };
    status_file::record(&path, "nidoking", StatusKind::Backup, &backup).unwrap();
    status_file::record(
        &path,
        "nidoking",
        StatusKind::Retention,
        &success(Duration::from_secs(2)),
    )
    .unwrap();
    status_file::record(
        &path,
        "onedrive",
        StatusKind::Prune,
        &success(Duration::from_secs(4)),
    )
    .unwrap();
    let doc = status_file::read(&path).unwrap();
    let profiles = doc["profiles"].as_object().unwrap();
    // Sorted by name like Go; entries in resticprofile's order.
    assert_eq!(
        profiles.keys().collect::<Vec<_>>(),
        ["nidoking", "onedrive", "zeta"]
    );
    assert_eq!(
        profiles["nidoking"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["backup", "retention", "check"]
    );
    assert_eq!(doc["profiles"]["nidoking"]["backup"]["files_new"], 215);
    assert_eq!(doc["profiles"]["nidoking"]["retention"]["duration"], 2);
    assert!(
        doc["profiles"]["nidoking"]["retention"]
            .get("files_new")
            .is_none()
    );
    assert_eq!(doc["profiles"]["onedrive"]["prune"]["duration"], 4);
    assert_eq!(doc["profiles"]["zeta"]["custom"], 1);
    assert_eq!(doc["note"], "kept");
}

#[test]
fn a_corrupt_file_is_reported_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.json");
    std::fs::write(&path, "{not json").unwrap();
    let err =
        status_file::record(&path, "p", StatusKind::Check, &success(Duration::ZERO)).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
    assert!(err.to_string().contains("s.json"), "{err}");
    assert_eq!(text(&path), "{not json");
}

#[test]
fn concurrent_writers_never_corrupt_the_file_or_lose_entries() {
    let dir = tempfile::tempdir().unwrap();
    let path = Arc::new(dir.path().join("shared.json"));
    let kinds = [StatusKind::Backup, StatusKind::Retention, StatusKind::Check];
    let threads: Vec<_> = (0..6)
        .map(|t| {
            let path = Arc::clone(&path);
            std::thread::spawn(move || {
                for i in 0..15u64 {
                    let kind = kinds[(i % 3) as usize];
                    let entry = StatusEntry {
                        stderr: format!("thread {t} write {i}"),
                        stats: Some(stats()),
                        ..success(Duration::from_secs(i))
                    };
                    status_file::record(&path, &format!("p{t}"), kind, &entry).unwrap();
                    // Readers always see a complete document.
                    status_file::read(&path).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let doc = status_file::read(&path).unwrap();
    let profiles = doc["profiles"].as_object().unwrap();
    assert_eq!(profiles.len(), 6);
    for t in 0..6 {
        let p = &profiles[&format!("p{t}")];
        // Last writes: i = 12 (backup), 13 (retention), 14 (check).
        assert_eq!(p["backup"]["stderr"], format!("thread {t} write 12"));
        assert_eq!(p["retention"]["stderr"], format!("thread {t} write 13"));
        assert_eq!(p["check"]["stderr"], format!("thread {t} write 14"));
    }
    // No temporary files left behind.
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
