//! install / uninstall / installed / status with the unit directory redirected to a temp dir
//! and fake `systemctl`, `launchctl` and `crontab` programs that record their arguments.

mod schedule_common;

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use cairn_profile::schedule::{
    JobContext, ScheduleError, Scheduler, Scope, generate, install, installed, render_status,
    status, uninstall,
};
use cairn_profile::types::Global;
use schedule_common::{ctx, spec};

struct Fakes {
    _tmp: tempfile::TempDir,
    bin: PathBuf,
    units: PathBuf,
    calls: PathBuf,
    store: PathBuf,
}

impl Fakes {
    fn new() -> Fakes {
        let tmp = tempfile::tempdir().unwrap();
        let bin = tmp.path().join("bin");
        let units = tmp.path().join("units");
        std::fs::create_dir_all(&bin).unwrap();
        let calls = tmp.path().join("calls");
        let store = tmp.path().join("crontab.store");
        let c = calls.display();
        let st = store.display();
        let b = bin.display();
        let scripts = [
            (
                "systemctl",
                format!(
                    "echo \"systemctl $*\" >> '{c}'\n[ -f '{b}/fail-systemctl' ] && {{ echo 'Failed to connect to bus' >&2; exit 1; }}\n\
                     case \" $* \" in *\" show \"*) echo ActiveState=active; echo Result=success;; esac\nexit 0\n"
                ),
            ),
            (
                "launchctl",
                format!(
                    "echo \"launchctl $*\" >> '{c}'\n\
                     if [ \"$1\" = bootout ]; then echo 'Boot-out failed: 3: No such process' >&2; exit 3; fi\n\
                     if [ \"$1\" = print ]; then printf '%s = {{\\n\\tstate = not running\\n\\truns = 2\\n\\tlast exit code = 0\\n}}\\n' \"$2\"; fi\nexit 0\n"
                ),
            ),
            (
                "crontab",
                format!(
                    "echo \"crontab $*\" >> '{c}'\n\
                     if [ \"$1\" = -l ]; then if [ -f '{st}' ]; then cat '{st}'; exit 0; else echo 'no crontab for tester' >&2; exit 1; fi; fi\n\
                     if [ \"$1\" = - ]; then cat > '{st}'; fi\nexit 0\n"
                ),
            ),
        ];
        for (name, body) in scripts {
            let p = bin.join(name);
            std::fs::write(&p, format!("#!/bin/sh\n{body}")).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        Fakes {
            _tmp: tmp,
            bin,
            units,
            calls,
            store,
        }
    }

    fn ctx(&self) -> JobContext {
        let mut c = ctx(&self.units);
        c.env.insert(
            "PATH".into(),
            format!("{}:/usr/bin:/bin", self.bin.display()),
        );
        c
    }

    /// Recorded calls since the last take.
    fn take_calls(&self) -> Vec<String> {
        let text = std::fs::read_to_string(&self.calls).unwrap_or_default();
        let _ = std::fs::remove_file(&self.calls);
        text.lines().map(str::to_string).collect()
    }
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn systemd_install_status_and_uninstall() {
    let f = Fakes::new();
    let c = f.ctx();
    let g = Global::default();
    let job = generate(
        &Scheduler::Systemd,
        &spec("vps", "backup", &["*-*-* 05:00:00 UTC"]),
        &g,
        &c,
    )
    .unwrap();
    let msgs = install(&job, &Scheduler::Systemd, &c, true).unwrap();
    assert!(msgs.iter().any(|m| m.starts_with("wrote ")), "{msgs:?}");
    let service = f.units.join("cairn-backup@profile-vps.service");
    let timer = f.units.join("cairn-backup@profile-vps.timer");
    assert_eq!(
        std::fs::read_to_string(&service).unwrap(),
        job.files[0].contents
    );
    assert_eq!(mode(&service), 0o644);
    assert_eq!(mode(&timer), 0o644);
    assert_eq!(
        f.take_calls(),
        [
            "systemctl daemon-reload",
            "systemctl enable --quiet --now cairn-backup@profile-vps.timer"
        ]
    );
    // --no-start: no --now.
    install(&job, &Scheduler::Systemd, &c, false).unwrap();
    assert_eq!(
        f.take_calls(),
        [
            "systemctl daemon-reload",
            "systemctl enable --quiet cairn-backup@profile-vps.timer"
        ]
    );

    // A manual-only job and a job of another configuration file in the same directory.
    let manual = generate(&Scheduler::Systemd, &spec("gdrive", "backup", &[]), &g, &c).unwrap();
    install(&manual, &Scheduler::Systemd, &c, true).unwrap();
    let mut other = c.clone();
    other.config_file = "/etc/other.toml".into();
    let foreign = generate(
        &Scheduler::Systemd,
        &spec("vps", "check", &["daily"]),
        &g,
        &other,
    )
    .unwrap();
    install(&foreign, &Scheduler::Systemd, &other, true).unwrap();
    f.take_calls();

    let jobs = installed(&Scheduler::Systemd, &c).unwrap();
    let names: Vec<(String, String, Vec<String>)> = jobs
        .iter()
        .map(|j| (j.command.clone(), j.profile.clone(), j.calendars.clone()))
        .collect();
    assert_eq!(
        names,
        [
            ("backup".to_string(), "gdrive".to_string(), vec![]),
            (
                "backup".to_string(),
                "vps".to_string(),
                vec!["*-*-* 05:00:00 UTC".to_string()]
            ),
        ]
    );
    assert!(jobs.iter().all(|j| j.scope == Scope::System));

    let st = status(&Scheduler::Systemd, &c, chrono::Utc::now()).unwrap();
    assert_eq!(st.len(), 2);
    let vps = &st[1];
    assert_eq!(
        vps.state.get("timer.ActiveState").map(String::as_str),
        Some("active")
    );
    assert_eq!(
        vps.state.get("service.Result").map(String::as_str),
        Some("success")
    );
    assert_eq!(
        vps.expressions[0].normalized.as_deref(),
        Some("*-*-* 05:00:00 UTC")
    );
    assert!(vps.expressions[0].next.is_some());
    let text = render_status(&st);
    assert!(
        text.contains("backup@vps (systemd system, cairn-backup@profile-vps.timer)"),
        "{text}"
    );
    assert!(text.contains("manual-only"));
    let json = serde_json::to_value(&st).unwrap();
    assert_eq!(json[1]["expressions"][0]["original"], "*-*-* 05:00:00 UTC");
    let calls = f.take_calls();
    assert!(calls.contains(&"systemctl show -p ActiveState,SubState,LastTriggerUSec,NextElapseUSecRealtime,Result cairn-backup@profile-vps.timer".to_string()), "{calls:?}");

    // Uninstall removes unit, timer and drop-ins, then reloads.
    std::fs::create_dir_all(f.units.join("cairn-backup@profile-vps.service.d")).unwrap();
    let msgs = uninstall("vps", "backup", &Scheduler::Systemd, &c).unwrap();
    assert!(!service.exists() && !timer.exists());
    assert!(!f.units.join("cairn-backup@profile-vps.service.d").exists());
    assert_eq!(
        msgs.iter().filter(|m| m.starts_with("removed ")).count(),
        3,
        "{msgs:?}"
    );
    assert_eq!(
        f.take_calls(),
        [
            "systemctl disable --now --quiet cairn-backup@profile-vps.timer",
            "systemctl daemon-reload"
        ]
    );
    let e = uninstall("vps", "backup", &Scheduler::Systemd, &c).unwrap_err();
    assert!(matches!(e, ScheduleError::NotInstalled { .. }), "{e}");
    // The other configuration's job is untouched (and not ours to remove).
    assert!(f.units.join("cairn-check@profile-vps.timer").exists());
    assert!(matches!(
        uninstall("vps", "check", &Scheduler::Systemd, &c),
        Err(ScheduleError::NotInstalled { .. })
    ));
    uninstall("gdrive", "backup", &Scheduler::Systemd, &c).unwrap();
    assert_eq!(installed(&Scheduler::Systemd, &c).unwrap(), vec![]);
}

#[test]
fn systemd_failures_and_root() {
    let f = Fakes::new();
    let c = f.ctx();
    let job = generate(
        &Scheduler::Systemd,
        &spec("vps", "backup", &["daily"]),
        &Global::default(),
        &c,
    )
    .unwrap();
    std::fs::write(f.bin.join("fail-systemctl"), "").unwrap();
    let e = install(&job, &Scheduler::Systemd, &c, true).unwrap_err();
    assert!(e.to_string().contains("Failed to connect to bus"), "{e}");
    // A system unit needs root when written to the real directory; nothing is written.
    let mut user = f.ctx();
    user.is_root = false;
    user.unit_dir_override = None;
    let mut s = spec("vps", "backup", &["daily"]);
    s.permission = Some("system".into());
    let job = generate(&Scheduler::Systemd, &s, &Global::default(), &user).unwrap();
    assert!(job.files[0].path.starts_with("/etc/systemd/system"));
    let e = install(&job, &Scheduler::Systemd, &user, true).unwrap_err();
    assert!(matches!(e, ScheduleError::NeedsRoot { .. }), "{e}");
    assert!(e.to_string().contains("sudo"));
}

#[test]
fn launchd_install_status_and_uninstall() {
    let f = Fakes::new();
    let mut c = f.ctx();
    c.is_root = false;
    c.uid = 501;
    let job = generate(
        &Scheduler::Launchd,
        &spec("Nidoking", "backup", &["12:00"]),
        &Global::default(),
        &c,
    )
    .unwrap();
    let msgs = install(&job, &Scheduler::Launchd, &c, true).unwrap();
    let plist = f.units.join("cairn.nidoking.backup.plist");
    assert_eq!(
        std::fs::read_to_string(&plist).unwrap(),
        job.files[0].contents
    );
    assert_eq!(mode(&plist), 0o644);
    assert_eq!(mode(&f.units), 0o700);
    assert_eq!(
        f.take_calls(),
        [
            "launchctl bootout gui/501/cairn.nidoking.backup".to_string(),
            format!("launchctl bootstrap gui/501 {}", plist.display()),
        ]
    );
    assert!(
        msgs.iter()
            .any(|m| m.starts_with("ran launchctl bootstrap"))
    );

    let manual = generate(
        &Scheduler::Launchd,
        &spec("gdrive", "backup", &[]),
        &Global::default(),
        &c,
    )
    .unwrap();
    let msgs = install(&manual, &Scheduler::Launchd, &c, true).unwrap();
    assert!(
        msgs.iter()
            .any(|m| m.contains("launchctl kickstart gui/501/cairn.gdrive.backup")),
        "{msgs:?}"
    );
    f.take_calls();

    let jobs = installed(&Scheduler::Launchd, &c).unwrap();
    assert_eq!(jobs.len(), 2);
    assert_eq!(jobs[1].profile, "Nidoking");
    assert_eq!(jobs[1].calendars, ["12:00"]);
    assert_eq!(jobs[1].scope, Scope::User);
    let st = status(&Scheduler::Launchd, &c, chrono::Utc::now()).unwrap();
    assert_eq!(st[1].state.get("runs").map(String::as_str), Some("2"));
    assert_eq!(
        st[1].state.get("state").map(String::as_str),
        Some("not running")
    );
    assert!(
        f.take_calls()
            .contains(&"launchctl print gui/501/cairn.nidoking.backup".to_string())
    );

    let msgs = uninstall("Nidoking", "backup", &Scheduler::Launchd, &c).unwrap();
    assert!(!plist.exists());
    assert!(msgs.iter().any(|m| m.contains("not loaded")), "{msgs:?}");
    assert_eq!(
        f.take_calls(),
        ["launchctl bootout gui/501/cairn.nidoking.backup"]
    );
    assert!(matches!(
        uninstall("Nidoking", "backup", &Scheduler::Launchd, &c),
        Err(ScheduleError::NotInstalled { .. })
    ));
}

#[test]
fn cron_program_keeps_foreign_lines() {
    let f = Fakes::new();
    let c = f.ctx();
    let cron = Scheduler::from_setting("crond").unwrap();
    let g = Global::default();
    let foreign = "MAILTO=me@example.com\n*/5 * * * *\t/usr/local/bin/other --flag\n";
    std::fs::write(&f.store, foreign).unwrap();

    let backup = generate(&cron, &spec("vps", "backup", &["05:00"]), &g, &c).unwrap();
    let check = generate(&cron, &spec("vps", "check", &["Sun 06:00"]), &g, &c).unwrap();
    install(&backup, &cron, &c, true).unwrap();
    install(&check, &cron, &c, true).unwrap();
    assert_eq!(
        f.take_calls(),
        ["crontab -l", "crontab -", "crontab -l", "crontab -"]
    );
    // Re-install with a new time replaces the old line.
    let backup2 = generate(&cron, &spec("vps", "backup", &["04:30"]), &g, &c).unwrap();
    install(&backup2, &cron, &c, true).unwrap();
    let tab = std::fs::read_to_string(&f.store).unwrap();
    assert!(tab.starts_with(foreign), "{tab}");
    assert!(
        tab.contains("30 04 * * *\t") && !tab.contains("00 05 * * *\t"),
        "{tab}"
    );
    assert!(tab.contains("00 06 * * 00\t"), "{tab}");
    assert_eq!(
        tab.matches("### this content was generated by cairn")
            .count(),
        1
    );

    let jobs = installed(&cron, &c).unwrap();
    let got: Vec<(&str, &str, Vec<String>)> = jobs
        .iter()
        .map(|j| (j.command.as_str(), j.profile.as_str(), j.calendars.clone()))
        .collect();
    assert_eq!(
        got,
        [
            ("check", "vps", vec!["Sun 06:00".to_string()]),
            ("backup", "vps", vec!["04:30".to_string()])
        ]
    );

    uninstall("vps", "backup", &cron, &c).unwrap();
    uninstall("vps", "check", &cron, &c).unwrap();
    assert_eq!(std::fs::read_to_string(&f.store).unwrap(), foreign);
    assert!(matches!(
        uninstall("vps", "check", &cron, &c),
        Err(ScheduleError::NotInstalled { .. })
    ));

    // No crontab at all yet ("no crontab for …" is an empty crontab).
    std::fs::remove_file(&f.store).unwrap();
    install(&backup, &cron, &c, true).unwrap();
    assert!(
        std::fs::read_to_string(&f.store)
            .unwrap()
            .contains("run-schedule backup@vps")
    );
}

#[test]
fn cron_file_mode() {
    let f = Fakes::new();
    let c = f.ctx();
    let file = f.units.join("cron.d/cairn");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(
        &file,
        "# system jobs\n0 3 * * *\troot\t/usr/sbin/logrotate\n",
    )
    .unwrap();
    let cron = Scheduler::from_setting(&format!("crontab:*:{}", file.display())).unwrap();
    let job = generate(
        &cron,
        &spec("vps", "prune", &["monthly"]),
        &Global::default(),
        &c,
    )
    .unwrap();
    install(&job, &cron, &c, true).unwrap();
    assert!(f.take_calls().is_empty(), "no crontab program in file mode");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.starts_with("# system jobs\n0 3 * * *\troot\t/usr/sbin/logrotate\n"));
    assert!(
        text.contains("00 00 01 * *\troot\tcd /home/ubuntu && /bin/true"),
        "{text}"
    );
    assert_eq!(mode(&file), 0o644);
    let jobs = installed(&cron, &c).unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].files, vec![file.clone()]);
    uninstall("vps", "prune", &cron, &c).unwrap();
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "# system jobs\n0 3 * * *\troot\t/usr/sbin/logrotate\n"
    );
}
