//! Output routing at the fd level. Redirecting fd 1/2 is process-wide, so each scenario runs
//! in a child process (this test binary re-run with one ignored helper test).

mod runtime_support;

use std::process::Command;
use std::sync::{Arc, Mutex};

use cairn_profile::output::{CommandOutput, LogTarget, OutputRouter, log_message};
use runtime_support::{assert_child_ok, is_child, run_child};

fn env_path(name: &str) -> std::path::PathBuf {
    std::env::var_os(name).expect(name).into()
}

/// Position of `needle` in `hay` after `from`, panicking with the content when missing.
fn pos_after(hay: &str, needle: &str, from: usize) -> usize {
    match hay.get(from..).and_then(|h| h.find(needle)) {
        Some(p) => from + p,
        None => panic!("{needle:?} not found after byte {from} in:\n{hay}"),
    }
}

#[test]
#[ignore = "helper: run in a child process by file_target_log_mode"]
fn child_file_log() {
    if !is_child() {
        return;
    }
    let log = env_path("CHILD_LOG");
    let router = OutputRouter::install(&LogTarget::File(log.clone()), CommandOutput::Log).unwrap();
    assert_eq!(router.log_file(), Some(log.as_path()));
    assert!(router.stdout_redirected());

    // Engine-like prints and an own message.
    println!("engine: line 1");
    eprintln!("engine: warning 1");
    log_message("own: first");

    // Stderr capture and watchers around a child process.
    router.begin_stderr_capture();
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let s2 = Arc::clone(&seen);
    let id = router.add_stderr_watcher(Box::new(move |l| s2.lock().unwrap().push(l.to_string())));
    log_message("own: during capture");
    let st = Command::new("sh")
        .args(["-c", "echo x; echo y >&2"])
        .status()
        .unwrap();
    assert!(st.success());
    eprintln!("engine: warning 2");
    router.flush();
    assert_eq!(
        *seen.lock().unwrap(),
        vec!["y".to_string(), "engine: warning 2".to_string()]
    );
    assert_eq!(router.take_stderr(), "y\nengine: warning 2\n");
    router.remove_stderr_watcher(id);
    eprintln!("engine: warning 3");
    router.flush();
    assert_eq!(
        seen.lock().unwrap().len(),
        2,
        "removed watcher still called"
    );
    assert_eq!(router.take_stderr(), "", "capture stops at take_stderr");

    // CR and CRLF pass untouched; partial lines are written by flush.
    print!("a\r\nb\rc\n");
    router.flush();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.ends_with("a\r\nb\rc\n"), "{text:?}");
    print!("partial no newline");
    router.flush();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.ends_with("partial no newline"), "{text:?}");
    println!(" continued");

    // flush before a hook: the hook sees the up-to-date log.
    println!("before hook");
    router.flush();
    let st = Command::new("sh")
        .args(["-c", "tail -n 1 \"$0\""])
        .arg(&log)
        .status()
        .unwrap();
    assert!(st.success());
    router.flush();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.ends_with("before hook\nbefore hook\n"), "{text:?}");

    drop(router);
    println!("stdout after restore");
    eprintln!("stderr after restore");
}

#[test]
fn file_target_log_mode() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("logs/profile/backup.log");
    std::fs::create_dir_all(log.parent().unwrap()).unwrap();
    std::fs::write(&log, "previous run\n").unwrap();
    let out = run_child("child_file_log", &[("CHILD_LOG", log.to_str().unwrap())]);
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert_child_ok(&out, &text);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);

    // Appended, never truncated.
    assert!(text.starts_with("previous run\n"), "{text}");
    // Step order: engine prints, then the own message, then the child's lines, ...
    let p_line = pos_after(&text, "engine: line 1\n", 0);
    let p_warn = pos_after(&text, "engine: warning 1\n", 0);
    let p_own = pos_after(&text, " own: first\n", 0);
    assert!(p_line < p_own && p_warn < p_own, "{text}");
    let p_during = pos_after(&text, " own: during capture\n", p_own);
    let p_x = pos_after(&text, "\nx\n", p_during);
    let p_y = pos_after(&text, "\ny\n", p_during);
    let p_w2 = pos_after(&text, "engine: warning 2\n", p_y.max(p_x));
    let p_w3 = pos_after(&text, "engine: warning 3\n", p_w2);
    let p_cr = pos_after(&text, "a\r\nb\rc\n", p_w3);
    pos_after(&text, "partial no newline continued\n", p_cr);
    // Own messages carry Go's log prefix.
    let re = regex::Regex::new(r"(?m)^\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2} own: first$").unwrap();
    assert!(re.is_match(&text), "{text}");
    // Nothing after the restore lands in the file; log mode prints nothing else on the console.
    assert!(!text.contains("after restore"), "{text}");
    assert!(stdout.contains("stdout after restore"), "{stdout}");
    assert!(stderr.contains("stderr after restore"), "{stderr}");
    for s in ["engine: line 1", "before hook", "\nx\n"] {
        assert!(!stdout.contains(s), "{s:?} leaked to the console: {stdout}");
    }
    for s in ["engine: warning", "own: first", "\ny\n"] {
        assert!(!stderr.contains(s), "{s:?} leaked to the console: {stderr}");
    }
    use std::os::unix::fs::PermissionsExt;
    let dir2 = tempfile::tempdir().unwrap();
    let fresh = dir2.path().join("new/sub/run.log");
    let out = run_child("child_file_log", &[("CHILD_LOG", fresh.to_str().unwrap())]);
    assert_child_ok(&out, "");
    let mode = std::fs::metadata(&fresh).unwrap().permissions().mode() & 0o777;
    // 0644 before the umask.
    assert_eq!(mode & !0o022, 0o644 & !0o022, "mode {mode:o}");
}

#[test]
#[ignore = "helper: run in a child process by file_target_all_mode"]
fn child_all_mode() {
    if !is_child() {
        return;
    }
    let log = env_path("CHILD_LOG");
    let router = OutputRouter::install(&LogTarget::File(log), CommandOutput::All).unwrap();
    println!("to both");
    eprintln!("err both");
    log_message("own both");
    let st = Command::new("sh")
        .args(["-c", "echo child-out; echo child-err >&2"])
        .status()
        .unwrap();
    assert!(st.success());
    router.restore();
}

#[test]
fn file_target_all_mode() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("all.log");
    let out = run_child("child_all_mode", &[("CHILD_LOG", log.to_str().unwrap())]);
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert_child_ok(&out, &text);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    for s in [
        "to both\n",
        "err both\n",
        " own both\n",
        "child-out\n",
        "child-err\n",
    ] {
        assert!(text.contains(s), "{s:?} missing in the log: {text}");
    }
    assert!(
        stdout.contains("to both\n") && stdout.contains("child-out\n"),
        "{stdout}"
    );
    assert!(
        stderr.contains("err both\n")
            && stderr.contains(" own both\n")
            && stderr.contains("child-err\n"),
        "{stderr}"
    );
}

#[test]
#[ignore = "helper: run in a child process by unopenable_target_falls_back_to_console"]
fn child_fallback() {
    if !is_child() {
        return;
    }
    let log = env_path("CHILD_LOG");
    let router = OutputRouter::install(&LogTarget::File(log), CommandOutput::Log).unwrap();
    assert_eq!(router.log_file(), None);
    println!("console still works");
    log_message("own on console");
    drop(router);
}

#[test]
fn unopenable_target_falls_back_to_console() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plain-file");
    std::fs::write(&file, "x").unwrap();
    let log = file.join("sub/run.log");
    let out = run_child("child_fallback", &[("CHILD_LOG", log.to_str().unwrap())]);
    assert_child_ok(&out, "");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stdout.contains("console still works"), "{stdout}");
    assert!(stderr.contains("cannot open log file"), "{stderr}");
    assert!(stderr.contains(" own on console\n"), "{stderr}");
}

#[test]
#[ignore = "helper: run in a child process by console_target_captures_stderr"]
fn child_console() {
    if !is_child() {
        return;
    }
    let router = OutputRouter::install(&LogTarget::Console, CommandOutput::Auto).unwrap();
    assert!(
        !router.stdout_redirected(),
        "fd 1 stays the terminal/pipe it was"
    );
    router.begin_stderr_capture();
    eprintln!("captured err");
    log_message("own message not captured");
    let st = Command::new("sh")
        .args(["-c", "echo out-line; echo y >&2"])
        .status()
        .unwrap();
    assert!(st.success());
    assert_eq!(router.take_stderr(), "captured err\ny\n");
    drop(router);
}

#[test]
fn console_target_captures_stderr() {
    let out = run_child("child_console", &[]);
    assert_child_ok(&out, "");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stdout.contains("out-line"), "{stdout}");
    assert!(stderr.contains("captured err\n"), "{stderr}");
    assert!(stderr.contains(" own message not captured\n"), "{stderr}");
    assert!(stderr.contains("\ny\n"), "{stderr}");
}

#[test]
#[ignore = "helper: run in a child process by syslog_udp_target"]
fn child_syslog() {
    if !is_child() {
        return;
    }
    let target = std::env::var("CHILD_TARGET").unwrap();
    let router = OutputRouter::install(&LogTarget::parse(&target), CommandOutput::Log).unwrap();
    println!("via syslog");
    log_message("own via syslog");
    drop(router);
}

#[test]
fn syslog_udp_target() {
    let server = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    server
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let target = format!("udp://127.0.0.1:{}", server.local_addr().unwrap().port());
    let out = run_child("child_syslog", &[("CHILD_TARGET", &target)]);
    assert_child_ok(&out, "");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while got.len() < 2 {
        let n = server.recv(&mut buf).expect("syslog message");
        got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    assert!(
        got[0].starts_with("<13>") && got[0].ends_with(": via syslog\n"),
        "{got:?}"
    );
    assert!(got[1].contains("own via syslog"), "{got:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains("via syslog"), "{stdout}");
}
