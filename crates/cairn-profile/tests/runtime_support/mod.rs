//! Helpers shared by the `runtime_*` integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// Environment variable telling a helper test that it runs as a child of a parent test.
pub const CHILD_ENV: &str = "CAIRN_RUNTIME_TEST_CHILD";

/// Whether this process is a child started by [`run_child`].
pub fn is_child() -> bool {
    std::env::var_os(CHILD_ENV).is_some()
}

/// Runs the ignored helper test `name` of this test binary in a child process (so it may
/// change process-wide state such as fd 1/2 or the priority) with extra environment variables.
pub fn run_child(name: &str, envs: &[(&str, &str)]) -> Output {
    child_command(name, envs)
        .output()
        .expect("cannot start the child test process")
}

/// The command of [`run_child`], for callers that need to spawn it themselves.
pub fn child_command(name: &str, envs: &[(&str, &str)]) -> Command {
    let exe = std::env::current_exe().expect("current_exe");
    let mut cmd = Command::new(exe);
    cmd.args([
        "--exact",
        name,
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(CHILD_ENV, "1")
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd
}

/// Asserts that a child run succeeded, printing its output otherwise.
pub fn assert_child_ok(out: &Output, extra: &str) {
    assert!(
        out.status.success(),
        "child failed: {:?}\n--- stdout\n{}\n--- stderr\n{}\n--- extra\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        extra
    );
}

/// Finds an external program on PATH; `None` (after printing "skipping") when missing, unless
/// CAIRN_REQUIRE_EXTERNAL=1, then it panics.
pub fn require(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let p = dir.join(program);
        if p.is_file() {
            return Some(p);
        }
    }
    if std::env::var("CAIRN_REQUIRE_EXTERNAL").as_deref() == Ok("1") {
        panic!("{program} is required (CAIRN_REQUIRE_EXTERNAL=1) but not on PATH");
    }
    eprintln!("skipping: {program} not found on PATH");
    None
}

/// Writes an executable script.
pub fn write_script(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Polls `f` every 20 ms for up to `secs` seconds.
pub fn wait_for(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let end = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while std::time::Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    f()
}
