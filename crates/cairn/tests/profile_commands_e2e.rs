//! The profile layer's own commands through the built binary: `profiles`, `show` (masking,
//! unknown-key suggestions), `status` (last results from the status file), `generate`,
//! `schedule --dry-run` / `--next`, `run-schedule` (schedule id in the hook environment), and
//! backup progress in the log on SIGUSR1.

mod common;

use std::path::Path;
use std::process::{Command, Output};

fn cairn(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cairn"));
    c.env_remove("RESTIC_PASSWORD")
        .env_remove("RESTIC_REPOSITORY")
        .env("CAIRN_TEST_KDF", "1")
        .env("HOME", dir)
        .env("TMPDIR", dir)
        .env("RESTIC_CACHE_DIR", dir.join("cache"))
        .arg("-c")
        .arg(dir.join("profiles.toml"))
        .args(args);
    c
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn setup() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    std::fs::create_dir_all(d.join("src")).unwrap();
    std::fs::write(d.join("src/f.txt"), "data\n").unwrap();
    std::fs::write(d.join("key"), "commands-e2e-password\n").unwrap();
    std::fs::write(
        d.join("profiles.toml"),
        format!(
            r#"version = "1"
[global]
shell = "sh"
min-memory = 0
scheduler = "systemd"

[base]
description = "shared settings"
password-file = "key"
status-file = "{d}/status.json"
[base.env]
AWS_SECRET_ACCESS_KEY = "very-secret-value"

[home]
inherit = "base"
repository = "{d}/repo"
exclude-files = "typo"
[home.backup]
source = ["{d}/src"]
schedule = "Mon..Fri 02:30"
schedule-lock-wait = "10m"
run-after = 'echo "id=$RESTICPROFILE_SCHEDULE_ID" > {d}/schedule-id.txt'

[groups]
all = ["home"]
"#,
            d = d.display()
        ),
    )
    .unwrap();
    let o = cairn(d, &["home.init"]).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    tmp
}

#[test]
fn profiles_show_status_and_generate() {
    let tmp = setup();
    let d = tmp.path();
    let o = cairn(d, &["profiles"]).output().unwrap();
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(
        t.contains("base") && t.contains("home") && t.contains("shared settings"),
        "{t}"
    );
    assert!(t.contains("all: home"), "{t}");

    let o = cairn(d, &["show", "home"]).output().unwrap();
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(!t.contains("very-secret-value"), "secret shown: {t}");
    assert!(
        t.contains("did you mean"),
        "no suggestion for `exclude-files`: {t}"
    );

    // status before and after a run.
    let o = cairn(d, &["status", "home"]).output().unwrap();
    assert!(text(&o).contains("no runs recorded yet"), "{}", text(&o));
    let o = cairn(d, &["home.backup"]).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let o = cairn(d, &["status", "home"]).output().unwrap();
    let t = text(&o);
    assert!(
        t.contains("backup") && t.contains("ok") && t.contains("files new 1"),
        "{t}"
    );

    // generate works without a configuration file.
    let o = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["generate", "--random-key"])
        .output()
        .unwrap();
    assert!(o.status.success());
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim_end().len(), 1368);
    let o = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["generate", "--bash-completion"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("complete"),
        "bash completion"
    );
    let o = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["generate", "--json-schema"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v["additionalProperties"]["properties"]["backup"].is_object());
}

#[test]
fn schedules_print_and_run_schedule_sets_the_schedule_id() {
    let tmp = setup();
    let d = tmp.path();
    let o = cairn(d, &["schedule", "--dry-run", "home"])
        .output()
        .unwrap();
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("OnCalendar=Mon..Fri 02:30"), "{t}");
    assert!(t.contains("run-schedule backup@home"), "{t}");
    assert!(!t.contains("very-secret-value"), "secret in a unit: {t}");

    let o = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["schedule", "--next", "2", "*-*-* 05:00:00 UTC"])
        .output()
        .unwrap();
    let t = text(&o);
    assert_eq!(t.lines().count(), 2, "{t}");
    assert!(t.contains("05:00:00 UTC"), "{t}");

    let o = cairn(d, &["run-schedule", "backup@home"]).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let id = std::fs::read_to_string(d.join("schedule-id.txt")).unwrap();
    assert!(id.trim().ends_with("profiles.toml:backup@home"), "{id}");
}

#[test]
fn sigusr1_prints_backup_progress_into_the_log() {
    let tmp = setup();
    let d = tmp.path();
    // Enough data that the backup runs for a while.
    let big = d.join("src/big");
    let f = std::fs::File::create(&big).unwrap();
    f.set_len(0).unwrap();
    drop(f);
    let mut data = vec![0u8; 1 << 20];
    for (i, b) in data.iter_mut().enumerate() {
        *b = (i.wrapping_mul(2654435761) >> 13) as u8;
    }
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().append(true).open(&big).unwrap();
        for k in 0..400u32 {
            data[0..4].copy_from_slice(&k.to_le_bytes());
            f.write_all(&data).unwrap();
        }
    }
    let log = d.join("run.log");
    let mut child = cairn(d, &["--log", log.to_str().unwrap(), "home.backup"])
        .spawn()
        .unwrap();
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let mut saw = false;
    for _ in 0..200 {
        std::thread::sleep(std::time::Duration::from_millis(50));
        let t = std::fs::read_to_string(&log).unwrap_or_default();
        // Signal only once the run has started (its handler is installed by then).
        if t.contains("starting 'backup'") {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGUSR1);
        }
        if t.lines()
            .any(|l| l.contains("files") && l.contains('%') && l.starts_with('['))
        {
            saw = true;
            // `status` shows the live progress of the running backup.
            let o = cairn(d, &["status", "home"]).output().unwrap();
            let st = text(&o);
            // Still no summary in the log: the backup ran during the whole `status` call.
            let after = std::fs::read_to_string(&log).unwrap_or_default();
            if !after.contains("saved") {
                assert!(st.contains("running now: pid"), "{st}");
            }
            break;
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
    }
    let status = child.wait().unwrap();
    assert!(status.success());
    let t = std::fs::read_to_string(&log).unwrap();
    assert!(saw, "no progress line in the log:\n{t}");
}
