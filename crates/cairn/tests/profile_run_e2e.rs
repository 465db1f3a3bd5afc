//! Profile runs end to end with the built-in monitors: hook order and environment, the native
//! Healthchecks monitor (URL from a secret reference, `rid` pairing, log tail), HTTP hooks,
//! the status file, Prometheus metrics to a file and to a real Pushgateway, and the failure
//! paths (missing source, hook failure, lock held, wrong password) with their exit codes,
//! failure hooks and `/fail` pings. Secrets must appear in no output.

mod common;

use cairn_profile::monitor::testserver::RecordingServer;
use common::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};

const PASSWORD: &str = "run-e2e-Secret-pass-42";
const HC_UUID: &str = "5a1e7c3d-secret-check-uuid";

struct Env {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    hc: RecordingServer,
    path_env: String,
}

fn write_exec(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn setup(extra: &str) -> Env {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_path_buf();
    let hc = RecordingServer::start().unwrap();
    let bin = root.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    // `op read REF`: the repository password, or the Healthchecks URL.
    write_exec(
        &bin.join("op"),
        &format!(
            "#!/bin/sh\n\
             [ \"$1\" = read ] || exit 2\n\
             for a; do ref=$a; done\n\
             case \"$ref\" in\n\
             *password*) printf '%s' \"${{OP_PASSWORD:-{PASSWORD}}}\" ;;\n\
             *healthchecks*) printf '%s/{HC_UUID}' '{url}' ;;\n\
             *) exit 3 ;;\n\
             esac\n",
            url = hc.url()
        ),
    );
    let src = root.join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("a.txt"), "alpha\n").unwrap();
    std::fs::write(src.join("b.txt"), "beta\n").unwrap();
    let r = |p: &str| root.join(p).display().to_string();
    let config = format!(
        r#"version = "1"

[global]
shell = "sh"
min-memory = 0

[default]
repository = "{repo}"
password-command = "op read op://vault/repo/password"
status-file = "{status}"
healthchecks-url = "op://vault/item/healthchecks"
lock = "{lock}"
prometheus-save-to-file = "{metrics}"
run-before = 'echo "P.before $PROFILE_NAME $PROFILE_COMMAND $MY_VAR" >> {order}'
run-after = "echo P.after >> {order}"
run-after-fail = 'echo "P.fail $ERROR_EXIT_CODE" >> {order}'
run-finally = "echo P.finally >> {order}"

[default.prometheus-labels]
env = "test"

[default.env]
my_var = "from-profile"

[default.backup]
source = ["{src}"]
check-after = true
run-before = "echo S.before >> {order}"
run-after = "echo S.after >> {order}"
run-after-fail = 'echo "S.fail $ERROR" >> {order}; printf "%s" "$ERROR_STDERR" > {stderr}'
run-finally = "echo S.finally >> {order}"

[[default.backup.send-after]]
url = "{hook}/hook/$PROFILE_NAME"
method = "POST"
body = "done $PROFILE_COMMAND"

[default.retention]
after-backup = true
keep-last = 3

[broken]
inherit = "default"

[broken.backup]
source = ["{root}/does-not-exist"]

[groups]
both = ["broken", "default"]
{extra}
"#,
        repo = r("repo"),
        status = r("status.json"),
        lock = r("locks/default.lock"),
        metrics = r("metrics.prom"),
        order = r("order.txt"),
        stderr = r("stderr.txt"),
        src = src.display(),
        hook = hc.url(),
        root = root.display(),
    );
    std::fs::write(root.join("profiles.toml"), config).unwrap();
    let path_env = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let e = Env {
        _tmp: tmp,
        root,
        hc,
        path_env,
    };
    let o = e.cairn(&["default.init"]).output().unwrap();
    assert!(o.status.success(), "init: {}", text(&o));
    // Profile-level hooks run for every command, init included: start from a clean record.
    e.reset_order();
    e
}

fn text(o: &std::process::Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

impl Env {
    fn cairn(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_cairn"));
        c.env_clear()
            .env("PATH", &self.path_env)
            .env("HOME", self.root.join("home"))
            .env("TMPDIR", &self.root)
            .env("CAIRN_TEST_KDF", "1")
            .env("RESTIC_CACHE_DIR", self.root.join("cache"))
            .arg("-c")
            .arg(self.root.join("profiles.toml"))
            .arg("--log")
            .arg(self.root.join("run.log"))
            .args(args);
        c
    }

    fn order(&self) -> Vec<String> {
        std::fs::read_to_string(self.root.join("order.txt"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn reset_order(&self) {
        let _ = std::fs::remove_file(self.root.join("order.txt"));
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.root.join(name)).unwrap_or_default()
    }

    /// Healthchecks pings (path without the query, rid) since request `from`.
    fn pings(&self, from: usize) -> Vec<(String, Option<String>, String)> {
        self.hc
            .requests()
            .into_iter()
            .skip(from)
            .filter(|r| r.path().starts_with(&format!("/{HC_UUID}")))
            .map(|r| {
                (
                    r.path().to_string(),
                    r.query_param("rid").map(str::to_string),
                    String::from_utf8_lossy(&r.body).into_owned(),
                )
            })
            .collect()
    }
}

#[test]
fn success_runs_hooks_in_order_and_reports_everywhere() {
    let Some(_) = external("restic") else { return };
    let e = setup("");
    let o = e.cairn(&["default.backup"]).output().unwrap();
    assert!(
        o.status.success(),
        "{}\nlog:\n{}",
        text(&o),
        e.read("run.log")
    );
    assert_eq!(
        e.order(),
        [
            "P.before default backup from-profile",
            "S.before",
            "S.after",
            "P.after",
            "S.finally",
            "P.finally"
        ]
    );
    let pings = e.pings(0);
    assert_eq!(pings.len(), 2, "{pings:?}");
    assert_eq!(pings[0].0, format!("/{HC_UUID}/start"));
    assert_eq!(pings[1].0, format!("/{HC_UUID}"));
    assert!(
        pings[0].1.is_some() && pings[0].1 == pings[1].1,
        "rid pairs: {pings:?}"
    );
    assert!(
        pings[1].2.contains("snapshot"),
        "log tail body: {}",
        pings[1].2
    );
    // HTTP hook with $VAR expansion.
    let hooks: Vec<_> =
        e.hc.requests()
            .into_iter()
            .filter(|r| r.path() == "/hook/default")
            .collect();
    assert_eq!(hooks.len(), 1);
    assert_eq!(hooks[0].method, "POST");
    assert_eq!(String::from_utf8_lossy(&hooks[0].body), "done backup");
    // Status file and metrics.
    let st: serde_json::Value = serde_json::from_str(&e.read("status.json")).unwrap();
    let p = &st["profiles"]["default"];
    assert_eq!(p["backup"]["success"], true, "{st}");
    assert_eq!(p["backup"]["files_new"], 2, "{st}");
    assert_eq!(p["retention"]["success"], true, "{st}");
    assert_eq!(p["check"]["success"], true, "{st}");
    let metrics = e.read("metrics.prom");
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("resticprofile_backup_status{")
                && l.contains("profile=\"default\"")
                && l.contains("env=\"test\"")
                && l.ends_with(" 2")),
        "{metrics}"
    );
    assert!(
        metrics.contains("resticprofile_backup_files_new{"),
        "{metrics}"
    );
    // restic reads the repository.
    let restic = external("restic").unwrap();
    let o = Command::new(restic)
        .env("RESTIC_PASSWORD", PASSWORD)
        .env("RESTIC_CACHE_DIR", e.root.join("restic-cache"))
        .arg("-r")
        .arg(e.root.join("repo"))
        .args(["check", "--read-data"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    // No secret anywhere.
    let everything = format!(
        "{}{}{}{}{:?}",
        e.read("run.log"),
        e.read("status.json"),
        metrics,
        text(&o),
        e.hc.requests()
            .iter()
            .map(|r| String::from_utf8_lossy(&r.body).into_owned())
            .collect::<Vec<_>>()
    );
    assert!(!everything.contains(PASSWORD), "password leaked");
    assert!(
        !e.read("run.log").contains(HC_UUID),
        "healthchecks URL leaked into the log"
    );
}

#[test]
fn failures_run_failure_hooks_and_ping_fail() {
    let Some(_) = external("restic") else { return };
    let e = setup("");
    // Missing source: the engine fails; failure hooks get ERROR*; /fail ping; exit 1.
    let o = e.cairn(&["broken.backup"]).output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let order = e.order();
    assert_eq!(
        order.first().map(String::as_str),
        Some("P.before broken backup from-profile")
    );
    assert!(
        order
            .iter()
            .any(|l| l.starts_with("S.fail backup on profile 'broken'")),
        "{order:?}"
    );
    assert!(order.iter().any(|l| l.starts_with("P.fail ")), "{order:?}");
    assert_eq!(&order[order.len() - 2..], ["S.finally", "P.finally"]);
    assert!(!e.read("stderr.txt").is_empty(), "ERROR_STDERR empty");
    let pings = e.pings(0);
    assert_eq!(
        pings.last().map(|p| p.0.clone()),
        Some(format!("/{HC_UUID}/fail"))
    );
    let st: serde_json::Value = serde_json::from_str(&e.read("status.json")).unwrap();
    assert_eq!(st["profiles"]["broken"]["backup"]["success"], false, "{st}");

    // Wrong password: exit 1, /fail.
    e.reset_order();
    let n = e.hc.requests().len();
    let o = e
        .cairn(&["default.backup"])
        .env("OP_PASSWORD", "not-the-password")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(e.order().iter().any(|l| l.starts_with("S.fail")));
    let pings = e.pings(n);
    assert_eq!(
        pings.last().map(|p| p.0.clone()),
        Some(format!("/{HC_UUID}/fail"))
    );
    assert!(
        pings.last().unwrap().2.contains("wrong password"),
        "{pings:?}"
    );

    // Lock held by another run: no hook runs, exit 1, but the monitor hears about it.
    e.reset_order();
    let n = e.hc.requests().len();
    std::fs::create_dir_all(e.root.join("locks")).unwrap();
    let mut holder: Child = Command::new("flock")
        .arg(e.root.join("locks/default.lock"))
        .args(["sleep", "30"])
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let o = e.cairn(&["default.backup"]).output().unwrap();
    let _ = holder.kill();
    let _ = holder.wait();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        e.order().is_empty(),
        "hooks ran despite the lock: {:?}",
        e.order()
    );
    let pings = e.pings(n);
    assert_eq!(
        pings.iter().map(|p| p.0.clone()).collect::<Vec<_>>(),
        [format!("/{HC_UUID}/fail")]
    );
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("already running")
            || e.read("run.log").contains("already running"),
        "{}",
        text(&o)
    );
}

#[test]
fn groups_stop_or_continue_and_dry_run_changes_nothing() {
    let Some(_) = external("restic") else { return };
    let e = setup("");
    // The group stops at the failing first member by default.
    let o = e.cairn(&["both.backup"]).output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        !e.order().iter().any(|l| l.contains("default backup")),
        "{:?}",
        e.order()
    );
    // With group-continue-on-error the second member runs (and the group still fails).
    let cfg = e.read("profiles.toml").replace(
        "min-memory = 0",
        "min-memory = 0\ngroup-continue-on-error = true",
    );
    std::fs::write(e.root.join("profiles.toml"), cfg).unwrap();
    e.reset_order();
    let o = e.cairn(&["both.backup"]).output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        e.order()
            .iter()
            .any(|l| l == "P.before default backup from-profile"),
        "{:?}",
        e.order()
    );
    // --dry-run: no hook, no snapshot, no ping; the commands are printed.
    e.reset_order();
    let n = e.hc.requests().len();
    let before = e.read("status.json");
    let o = e.cairn(&["--dry-run", "default.backup"]).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(e.order().is_empty());
    assert_eq!(e.hc.requests().len(), n);
    assert_eq!(e.read("status.json"), before);
    assert!(
        e.read("run.log").contains("dry-run"),
        "{}",
        e.read("run.log")
    );
}

/// A real Prometheus Pushgateway receives the metrics of backup and check.
#[test]
fn metrics_reach_a_real_pushgateway() {
    let Some(_) = external("restic") else { return };
    let Some(pg) = external("prometheus-pushgateway") else {
        return;
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let tmp = tempfile::tempdir().unwrap();
    let gw = Command::new(pg)
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg(format!(
            "--persistence.file={}",
            tmp.path().join("p").display()
        ))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    struct Kill(Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _gw = Kill(gw);
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let e = setup(&format!(
        "\n[pushed]\ninherit = \"default\"\nprometheus-push = \"http://127.0.0.1:{port}\"\n"
    ));
    let o = e.cairn(&["pushed.backup"]).output().unwrap();
    assert!(o.status.success(), "{}\n{}", text(&o), e.read("run.log"));
    let body = reqwest_get(&format!("http://127.0.0.1:{port}/metrics"));
    let line = body
        .lines()
        .find(|l| {
            l.starts_with("resticprofile_backup_files_new{") && l.contains("profile=\"pushed\"")
        })
        .unwrap_or_else(|| panic!("no backup metrics in the gateway:\n{body}"));
    assert!(line.contains("job=\"pushed.backup\""), "{line}");
    assert!(line.ends_with(" 2"), "{line}");
    assert!(
        body.contains("resticprofile_check_status{"),
        "check metrics: {body}"
    );
}

fn reqwest_get(url: &str) -> String {
    let out = Command::new("curl").args(["-sf", url]).output().unwrap();
    assert!(out.status.success(), "GET {url} failed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}
