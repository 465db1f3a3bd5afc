//! Priority (in a child process with its own process group), battery state from a stand-in
//! sysfs tree, and the sleep inhibitor with stand-in programs.

mod runtime_support;

use std::os::unix::process::CommandExt;
use std::path::Path;

use cairn_profile::gates::{
    BatteryState, SleepInhibitor, apply_priority, battery_from_sysfs, current_nice,
};
use cairn_profile::locks::pid_running;
use runtime_support::{assert_child_ok, child_command, is_child, write_script};

#[test]
#[ignore = "helper: run in a child process by priority_applies_to_the_process_group"]
fn child_priority() {
    if !is_child() {
        return;
    }
    let warnings = apply_priority(Some("low"), 5, Some((2, 7)));
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(current_nice(), Some(10), "priority wins over nice");
    #[cfg(target_os = "linux")]
    assert_eq!(cairn_profile::gates::current_ionice(), Some((2, 7)));
    // Threads started later and child processes inherit both.
    let t = std::thread::spawn(current_nice).join().unwrap();
    assert_eq!(t, Some(10));
    let out = std::process::Command::new("sh")
        .args([
            "-c",
            "nice; if command -v ionice >/dev/null; then ionice; fi",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("10"), "{text}");
    if let Some(io) = lines.next() {
        assert_eq!(io, "best-effort: prio 7", "{text}");
    }
    // Invalid ionice values are warnings only.
    let w = apply_priority(None, 0, Some((4, 0)));
    assert_eq!(w.len(), 1, "{w:?}");
    let w = apply_priority(None, 0, Some((2, 9)));
    assert_eq!(w.len(), 1, "{w:?}");
    println!("PRIORITY-OK");
}

#[test]
fn priority_applies_to_the_process_group() {
    // Own process group: PRIO_PGRP must not reach cargo or the shell running the tests.
    let out = child_command("child_priority", &[])
        .process_group(0)
        .output()
        .unwrap();
    assert_child_ok(&out, "");
    assert!(String::from_utf8_lossy(&out.stdout).contains("PRIORITY-OK"));
}

fn supply(root: &Path, name: &str, files: &[(&str, &str)]) {
    let d = root.join(name);
    std::fs::create_dir_all(&d).unwrap();
    for (f, v) in files {
        std::fs::write(d.join(f), format!("{v}\n")).unwrap();
    }
}

#[test]
fn battery_from_a_sysfs_tree() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    assert_eq!(battery_from_sysfs(root), None, "no supplies");
    supply(root, "AC", &[("type", "Mains"), ("online", "0")]);
    assert_eq!(battery_from_sysfs(root), None, "a desktop: no battery");
    supply(
        root,
        "BAT0",
        &[
            ("type", "Battery"),
            ("status", "Discharging"),
            ("capacity", "42"),
        ],
    );
    supply(
        root,
        "hidpp_battery_0",
        &[("type", "Battery"), ("scope", "Device"), ("capacity", "5")],
    );
    assert_eq!(
        battery_from_sysfs(root),
        Some(BatteryState {
            on_battery: true,
            percent: Some(42)
        })
    );
    supply(root, "AC", &[("online", "1")]);
    supply(root, "BAT0", &[("status", "Charging")]);
    assert_eq!(
        battery_from_sysfs(root),
        Some(BatteryState {
            on_battery: false,
            percent: Some(42)
        })
    );
    // Without any mains supply the battery status decides.
    std::fs::remove_dir_all(root.join("AC")).unwrap();
    supply(root, "BAT0", &[("status", "Discharging")]);
    assert_eq!(battery_from_sysfs(root).map(|b| b.on_battery), Some(true));
}

#[test]
fn sleep_inhibitor_lives_as_long_as_the_guard() {
    let dir = tempfile::tempdir().unwrap();
    let args = dir.path().join("args");
    let fake = dir.path().join("systemd-inhibit");
    // Records its arguments, then runs the command after the four options (like the real one).
    write_script(
        &fake,
        &format!(
            "#!/bin/sh\nprintf '%s\\n' \"$@\" > '{}'\nshift 4\nexec \"$@\"\n",
            args.display()
        ),
    );
    let guard = SleepInhibitor::start_with(&fake).unwrap();
    let pid = guard.pid().unwrap();
    assert!(pid_running(pid));
    let recorded = std::fs::read_to_string(&args).unwrap();
    assert_eq!(
        recorded,
        "--what=idle:sleep\n--mode=block\n--who=cairn\n--why=Backup and/or restic repository maintenance\ncat\n"
    );
    let start = std::time::Instant::now();
    drop(guard);
    assert!(
        start.elapsed() < std::time::Duration::from_secs(1),
        "ended by closing its stdin"
    );
    assert!(!pid_running(pid));
}

#[test]
fn sleep_inhibitor_failure_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("systemd-inhibit");
    write_script(
        &fake,
        "#!/bin/sh\necho 'Failed to inhibit: Access denied' >&2\nexit 1\n",
    );
    let e = SleepInhibitor::start_with(&fake).unwrap_err();
    assert!(
        e.contains("Access denied") && e.contains("exit status 1"),
        "{e}"
    );
    let e = SleepInhibitor::start_with(&dir.path().join("missing")).unwrap_err();
    assert!(e.starts_with("cannot prevent sleep"), "{e}");
}
