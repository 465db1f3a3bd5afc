use std::time::Duration;

use super::*;

fn ctx() -> JobContext {
    JobContext {
        binary: "/usr/local/bin/cairn".into(),
        config_file: "/home/u/.config/cairn/profiles.toml".into(),
        working_dir: "/home/u".into(),
        is_root: false,
        home: "/home/u".into(),
        user: "u".into(),
        sudo_user: None,
        uid: 1000,
        env: [
            ("PATH", "/usr/bin:/bin"),
            ("RESTIC_REPOSITORY", "rclone:x:"),
            ("RESTIC_PASSWORD", "hunter2"),
            ("TZ", "UTC"),
            ("LOGDIR", "/var/log/cairn"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
        unit_dir_override: None,
    }
}

fn spec() -> ScheduleSpec {
    ScheduleSpec {
        profile: "vps".into(),
        command: "backup".into(),
        at: vec!["daily".into()],
        ..ScheduleSpec::default()
    }
}

#[test]
fn parses_scheduler_settings() {
    assert_eq!(
        Scheduler::from_setting("systemd").unwrap(),
        Scheduler::Systemd
    );
    assert_eq!(
        Scheduler::from_setting(" launchd ").unwrap(),
        Scheduler::Launchd
    );
    assert_eq!(
        Scheduler::from_setting("crond").unwrap(),
        Scheduler::Cron {
            crontab: None,
            user: None,
            program: None
        }
    );
    assert_eq!(
        Scheduler::from_setting("crond:/usr/bin/crontab").unwrap(),
        Scheduler::Cron {
            crontab: None,
            user: None,
            program: Some("/usr/bin/crontab".into())
        }
    );
    assert_eq!(
        Scheduler::from_setting("crontab:*:/etc/cron.d/cairn").unwrap(),
        Scheduler::Cron {
            crontab: Some("/etc/cron.d/cairn".into()),
            user: Some("*".into()),
            program: None
        }
    );
    assert_eq!(
        Scheduler::from_setting("crontab:-:/tmp/tab").unwrap(),
        Scheduler::Cron {
            crontab: Some("/tmp/tab".into()),
            user: None,
            program: None
        }
    );
    assert_eq!(
        Scheduler::from_setting("crontab:backup:/etc/cron.d/cairn").unwrap(),
        Scheduler::Cron {
            crontab: Some("/etc/cron.d/cairn".into()),
            user: Some("backup".into()),
            program: None
        }
    );
    assert_eq!(
        Scheduler::from_setting("crontab:/tmp/tab").unwrap(),
        Scheduler::Cron {
            crontab: Some("/tmp/tab".into()),
            user: None,
            program: None
        }
    );
    assert_eq!(Scheduler::from_setting("auto").unwrap(), Scheduler::auto());
    for bad in [
        "windows",
        "crontab",
        "crontab:",
        "taskscheduler",
        "systemd:x",
    ] {
        let e = Scheduler::from_setting(bad).unwrap_err();
        assert!(matches!(e, ScheduleError::UnknownScheduler(_)), "{bad}");
    }
}

#[test]
fn globs_and_secrets() {
    assert!(glob_match("RESTIC_*", "RESTIC_REPOSITORY"));
    assert!(glob_match("*", "X"));
    assert!(glob_match("A?C", "ABC"));
    assert!(glob_match("*_ID*", "AWS_ID_X"));
    assert!(!glob_match("RESTIC_*", "XRESTIC_A"));
    assert!(!glob_match("A?C", "AC"));
    assert!(!glob_match("PATH", "PATHX"));
    for secret in [
        "AWS_SECRET_ACCESS_KEY",
        "B2_ACCOUNT_KEY",
        "OP_SERVICE_ACCOUNT_TOKEN",
        "RESTIC_PASSWORD",
        "restic_password_command",
        "MY_SECRET",
        "REST_AUTH",
    ] {
        assert!(looks_secret(secret, "x"), "{secret}");
    }
    assert!(looks_secret("RESTIC_URL", "https://u:p@host/x"));
    assert!(!looks_secret("RESTIC_URL", "https://host/x"));
    assert!(!looks_secret("RESTIC_URL", "https://user@host/x"));
    for plain in ["PATH", "TZ", "KEY", "_TOKEN", "RESTIC_REPOSITORY", "HOME"] {
        assert!(!looks_secret(plain, "x"), "{plain}");
    }
}

#[test]
fn captured_environment_refuses_secrets() {
    let ctx = ctx();
    let mut s = spec();
    s.capture_environment = vec!["PATH".into(), "TZ".into()];
    s.environment.insert("RCLONE_UID".into(), "501".into());
    let env = job_environment(&s, &ctx).unwrap();
    assert_eq!(
        env.into_iter().collect::<Vec<_>>(),
        [
            ("PATH", "/usr/bin:/bin"),
            ("RCLONE_UID", "501"),
            ("TZ", "UTC")
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    s.capture_environment = vec!["RESTIC_*".into()];
    let e = job_environment(&s, &ctx).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("RESTIC_PASSWORD") && msg.contains("RESTIC_*") && msg.contains("env-file"),
        "{msg}"
    );
    s.capture_environment.clear();
    s.environment.insert("B2_ACCOUNT_KEY".into(), "k".into());
    assert!(matches!(
        job_environment(&s, &ctx),
        Err(ScheduleError::Secret { .. })
    ));
}

#[test]
fn resolves_permissions() {
    let mut c = ctx();
    let mut s = spec();
    assert_eq!(permission(&s, &c).unwrap(), Permission::UserLoggedOn);
    c.is_root = true;
    assert_eq!(permission(&s, &c).unwrap(), Permission::System);
    c.is_root = false;
    s.user = Some("ubuntu".into());
    assert_eq!(permission(&s, &c).unwrap(), Permission::System);
    s.permission = Some("user-logged-on".into());
    assert_eq!(permission(&s, &c).unwrap(), Permission::UserLoggedOn);
    s.permission = Some("user".into());
    assert_eq!(permission(&s, &c).unwrap(), Permission::User);
    s.permission = Some("root".into());
    assert!(permission(&s, &c).is_err());
}

#[test]
fn resolves_log_targets() {
    let c = ctx();
    let mut s = spec();
    assert_eq!(log_target(&s, &c).unwrap(), LogTarget::None);
    s.log = Some("-".into());
    assert_eq!(log_target(&s, &c).unwrap(), LogTarget::None);
    s.log = Some("log/backup.log".into());
    assert_eq!(
        log_target(&s, &c).unwrap(),
        LogTarget::File("/home/u/.config/cairn/log/backup.log".into())
    );
    s.log = Some("~/x.log".into());
    assert_eq!(
        log_target(&s, &c).unwrap(),
        LogTarget::File("/home/u/x.log".into())
    );
    s.log = Some("${LOGDIR}/$$x.log".into());
    assert_eq!(
        log_target(&s, &c).unwrap(),
        LogTarget::File("/var/log/cairn/$x.log".into())
    );
    s.log = Some("$NOPE/x.log".into());
    assert!(log_target(&s, &c).is_err());
    s.log = Some("syslog://host:514".into());
    assert_eq!(
        log_target(&s, &c).unwrap(),
        LogTarget::Other("syslog://host:514".into())
    );
    s.log_truncate = true;
    assert!(
        log_target(&s, &c)
            .unwrap_err()
            .to_string()
            .contains("schedule-log-truncate")
    );
    s.log = None;
    assert!(log_target(&s, &c).is_err());
}

#[test]
fn builds_the_command_line() {
    let c = ctx();
    let s = spec();
    assert_eq!(
        job_argv(&s, &c, &LogTarget::File("/l.log".into()), true).unwrap(),
        [
            "/usr/local/bin/cairn",
            "--no-prio",
            "--no-ansi",
            "--config",
            "/home/u/.config/cairn/profiles.toml",
            "--log",
            "/l.log",
            "run-schedule",
            "backup@vps"
        ]
    );
    assert_eq!(
        job_argv(&s, &c, &LogTarget::None, false).unwrap(),
        [
            "/usr/local/bin/cairn",
            "--no-ansi",
            "--config",
            "/home/u/.config/cairn/profiles.toml",
            "run-schedule",
            "backup@vps"
        ]
    );
    assert_eq!(
        schedule_id(&c, &s).unwrap(),
        "/home/u/.config/cairn/profiles.toml:backup@vps"
    );
    assert_eq!(
        parse_schedule_id("/a:b/c.toml:backup@my@profile", "/a:b/c.toml"),
        Some(("backup", "my@profile"))
    );
    assert_eq!(parse_schedule_id("/other.toml:backup@x", "/a.toml"), None);
}

#[test]
fn quotes_for_the_shell_and_maps_priorities() {
    assert_eq!(shell_quote("/usr/bin/cairn"), "/usr/bin/cairn");
    assert_eq!(shell_quote("a b"), "'a b'");
    assert_eq!(shell_quote("it's"), "'it'\\''s'");
    assert_eq!(shell_quote(""), "''");
    let mut g = Global::default();
    assert_eq!(nice(&g), 0);
    g.nice = 7;
    assert_eq!(nice(&g), 7);
    g.priority = Some("background".into());
    assert_eq!(nice(&g), 15);
    let mut s = spec();
    assert!(!is_background(&s).unwrap());
    s.priority = Some("Background".into());
    assert!(is_background(&s).unwrap());
    s.priority = Some("low".into());
    assert!(is_background(&s).is_err());
}

#[test]
fn refuses_bad_names_and_expressions() {
    let c = ctx();
    let g = Global::default();
    let mut s = spec();
    s.command = "back/up".into();
    assert!(generate(&Scheduler::Systemd, &s, &g, &c).is_err());
    let mut s = spec();
    s.at = vec!["Mon..Fri 25:00".into()];
    let e = generate(&Scheduler::Systemd, &s, &g, &c).unwrap_err();
    assert!(matches!(e, ScheduleError::Calendar { .. }), "{e}");
    assert!(e.to_string().contains("Mon..Fri 25:00"));
}

#[test]
fn lock_policies() {
    let mut s = spec();
    assert_eq!(lock_policy(&s).unwrap(), LockPolicy::Wait(None));
    s.lock_wait = Some(Duration::from_secs(2));
    assert_eq!(lock_policy(&s).unwrap(), LockPolicy::Wait(None));
    s.lock_wait = Some(Duration::from_secs(300));
    assert_eq!(
        lock_policy(&s).unwrap(),
        LockPolicy::Wait(Some(Duration::from_secs(300)))
    );
    s.lock_mode = Some("fail".into());
    assert_eq!(lock_policy(&s).unwrap(), LockPolicy::Fail);
    s.lock_mode = Some("Ignore".into());
    assert_eq!(lock_policy(&s).unwrap(), LockPolicy::Ignore);
    s.lock_mode = Some("wait".into());
    assert!(lock_policy(&s).is_err());
}

#[test]
fn context_of_this_process() {
    let profile_env = BTreeMap::from([("CAIRN_TEST_PROFILE_VAR".to_string(), "1".to_string())]);
    let c = JobContext::from_process(Path::new("some/profiles.toml"), &profile_env).unwrap();
    assert!(c.binary.is_absolute() && c.binary.exists());
    assert!(c.config_file.is_absolute() && c.config_file.ends_with("some/profiles.toml"));
    assert_eq!(c.working_dir, std::env::current_dir().unwrap());
    assert_eq!(
        c.env.get("CAIRN_TEST_PROFILE_VAR").map(String::as_str),
        Some("1")
    );
    assert_eq!(c.is_root, nix::unistd::geteuid().is_root());
    assert!(!c.user.is_empty());
    assert_eq!(c.unit_dir_override, None);
}
