//! Signal forwarding to running hooks. Alone in its test binary: forwarding reaches every hook
//! of the process.

mod runtime_support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use cairn_profile::hooks::{
    HookContext, Shell, forward_signal_to_children, run_hook, running_children,
};
use runtime_support::wait_for;

#[test]
fn sigterm_is_forwarded_to_the_hook_as_sigint() {
    let dir = tempfile::tempdir().unwrap();
    let ready = dir.path().join("ready");
    let out = dir.path().join("out");
    let env: BTreeMap<String, String> = [
        ("PATH".to_string(), "/usr/bin:/bin".to_string()),
        ("READY".to_string(), ready.to_str().unwrap().to_string()),
        ("OUT".to_string(), out.to_str().unwrap().to_string()),
    ]
    .into();
    let cwd = dir.path().to_path_buf();
    let started = Instant::now();
    let handle = std::thread::spawn(move || {
        let shell = Shell {
            program: "/bin/sh".into(),
        };
        let ctx = HookContext {
            env: &env,
            cwd: &cwd,
        };
        run_hook(
            &shell,
            "trap 'echo got-int > \"$OUT\"; exit 7' INT; touch \"$READY\"; sleep 3 & wait",
            &ctx,
        )
    });
    assert!(wait_for(10, || ready.exists() && !running_children().is_empty()));
    forward_signal_to_children(libc::SIGTERM);
    let result = handle.join().unwrap();
    let e = result.unwrap_err();
    assert_eq!(e.exit_code, 7, "{e:?}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "hook was not interrupted"
    );
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "got-int\n");
    assert!(running_children().is_empty());
}
