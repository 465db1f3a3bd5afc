//! The seed user's real resticprofile configurations (macOS and Ubuntu) run end to end with
//! Cairn: their sources replaced by test directories, `op` by a stand-in script answering
//! `op read`/`op inject`, their `rclone:` repositories by a real rclone alias remote on a local
//! directory (through their `exec-rclone` program option), Healthchecks by a local server that
//! records the pings their zsh hooks send with curl. The test checks the order of hooks and
//! pings, the bodies, the status file, the log, that secrets appear nowhere, and that the real
//! restic reads the resulting repository.

mod common;

use cairn_profile::monitor::testserver::RecordingServer;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

const SECRET: &str = "seed-secret-Password-4711";

struct Seed {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    cfg: PathBuf,
    repo: PathBuf,
    path_env: String,
    server: RecordingServer,
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), &dst).unwrap();
        }
    }
}

fn write_exec(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Prepare the seed configuration of `os` ("macos" or "ubuntu"), with `sources` replacing the
/// original backup sources (text substitution in the copied profiles.toml).
fn setup(os: &str, replace: &[(&str, String)]) -> Option<Seed> {
    for p in ["zsh", "rclone", "restic", "curl"] {
        external(p)?;
    }
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_path_buf();
    let home = match os {
        "macos" => "macos/root/Users/manselmi",
        _ => "ubuntu/root/home/ubuntu",
    };
    let seed = shared().join("examples/seed-user/assets/backup").join(home);
    let cfg = root.join("config");
    copy_dir(&seed.join(".config/resticprofile"), &cfg);
    std::fs::create_dir_all(cfg.join("log")).unwrap();
    let server = RecordingServer::start().unwrap();
    // The Healthchecks URL of the curlrc files points at the recording server.
    for e in std::fs::read_dir(cfg.join("curlrc")).unwrap() {
        let p = e.unwrap().path();
        let t = std::fs::read_to_string(&p).unwrap();
        std::fs::write(
            &p,
            t.replace("https://hc-ping.com/", &format!("{}/", server.url())),
        )
        .unwrap();
    }
    let mut profiles = std::fs::read_to_string(cfg.join("profiles.toml")).unwrap();
    for (from, to) in replace {
        assert!(profiles.contains(from), "{from} not in the seed config");
        profiles = profiles.replace(from, to);
    }
    std::fs::write(cfg.join("profiles.toml"), profiles).unwrap();
    for p in ["nidoking", "vps"] {
        std::fs::create_dir_all(cfg.join("log").join(p)).unwrap();
    }

    // Programs the configuration calls: op (stand-in), exec-rclone (the user's wrapper, here
    // pointing rclone at a local alias remote), restic and resticprofile (multi-call names of
    // the cairn binary, as the hooks run `restic version` and `resticprofile version`).
    let bin = root.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let repo = root.join("repo");
    write_exec(
        &bin.join("op"),
        &format!(
            "#!/bin/sh\n\
             case \"$1\" in\n\
             read) printf '%s' \"${{OP_TEST_PASSWORD:-{SECRET}}}\" ;;\n\
             inject) shift; [ \"$1\" = -i ] && shift; sed -e 's/{{{{ *op:[^}}]*}}}}/test-check-uuid/' \"$1\" ;;\n\
             --version) echo 2.30.0 ;;\n\
             *) echo \"op stand-in: unexpected $*\" >&2; exit 2 ;;\n\
             esac\n"
        ),
    );
    let rclone_conf = root.join("rclone.conf");
    std::fs::write(
        &rclone_conf,
        format!(
            "[restic-untrusted]\ntype = alias\nremote = {r}\n\n[restic-manselmi]\ntype = alias\nremote = {r}\n",
            r = repo.display()
        ),
    )
    .unwrap();
    write_exec(
        &bin.join("exec-rclone"),
        &format!(
            "#!/bin/sh\nexec rclone --config '{}' \"$@\"\n",
            rclone_conf.display()
        ),
    );
    for name in ["restic", "resticprofile"] {
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_cairn"), bin.join(name)).unwrap();
    }
    std::fs::create_dir_all(root.join("tmp")).unwrap();
    let path_env = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    Some(Seed {
        _tmp: tmp,
        root,
        cfg,
        repo,
        path_env,
        server,
    })
}

impl Seed {
    /// `cairn` as the seed user's units call resticprofile: --config, --lock-wait, --log,
    /// --no-ansi, --no-prio, `--`, `profile.command`.
    fn run(&self, profile_command: &str, log: Option<&str>) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_cairn"));
        c.env_clear()
            .env("PATH", &self.path_env)
            .env("HOME", self.root.join("home"))
            .env("TMPDIR", self.root.join("tmp"))
            .env("CAIRN_TEST_KDF", "1")
            .env("RESTIC_CACHE_DIR", self.root.join("cache"))
            .arg("--config")
            .arg(self.cfg.join("profiles.toml"))
            .args(["--lock-wait", "5m"]);
        if let Some(l) = log {
            c.arg("--log").arg(self.cfg.join(l));
        }
        c.args(["--no-ansi", "--no-prio", "--", profile_command]);
        c
    }

    fn status(&self, profile: &str) -> serde_json::Value {
        let p = self.cfg.join("status").join(format!("{profile}.json"));
        let t = std::fs::read_to_string(&p)
            .unwrap_or_else(|e| panic!("status file {}: {e}", p.display()));
        serde_json::from_str(&t).unwrap()
    }

    fn pings(&self) -> Vec<(String, String, String)> {
        self.server
            .requests()
            .into_iter()
            .map(|r| {
                (
                    r.method.clone(),
                    r.path().to_string(),
                    String::from_utf8_lossy(&r.body).into_owned(),
                )
            })
            .collect()
    }

    fn restic(&self) -> Command {
        let mut c = Command::new("/usr/bin/restic");
        c.env("RESTIC_PASSWORD", SECRET)
            .env("RESTIC_CACHE_DIR", self.root.join("restic-cache"))
            .arg("-r")
            .arg(&self.repo);
        c
    }
}

fn output_text(o: &std::process::Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn ubuntu_vps_backup_runs_like_resticprofile() {
    let src = tempfile::tempdir().unwrap();
    let (a, b) = (src.path().join("etc"), src.path().join("home"));
    std::fs::create_dir_all(a.join("ssh")).unwrap();
    std::fs::create_dir_all(b.join("cache-dir")).unwrap();
    std::fs::write(a.join("ssh/sshd_config"), "Port 22\n").unwrap();
    std::fs::write(b.join("notes.txt"), "hello\n").unwrap();
    std::fs::write(
        b.join("cache-dir/CACHEDIR.TAG"),
        "Signature: 8a477f597d28d172789f06886806bc55\n",
    )
    .unwrap();
    std::fs::write(b.join("cache-dir/junk"), "cached\n").unwrap();
    let sources = format!("'{}',\n  '{}',", a.display(), b.display());
    let Some(seed) = setup(
        "ubuntu",
        &[("'/etc',\n  '/usr',\n  '/home/ubuntu',", sources)],
    ) else {
        return;
    };
    // Initialise the repository through the maintenance profile (rclone: remote, op password).
    std::fs::create_dir_all(&seed.repo).unwrap();
    let o = seed.run("untrusted.init", None).output().unwrap();
    assert!(o.status.success(), "init failed\n{}", output_text(&o));

    let o = seed
        .run("vps.backup", Some("log/vps/backup.log"))
        .output()
        .unwrap();
    let log = std::fs::read_to_string(seed.cfg.join("log/vps/backup.log")).unwrap_or_default();
    assert!(
        o.status.success(),
        "backup failed\n{}\nlog:\n{log}\npings: {:?}",
        output_text(&o),
        seed.pings()
    );

    // Pings: /start from run-before, then success with the log tail as body (run-after).
    let pings = seed.pings();
    let paths: Vec<&str> = pings.iter().map(|p| p.1.as_str()).collect();
    assert_eq!(
        paths,
        ["/test-check-uuid/start", "/test-check-uuid"],
        "{pings:?}"
    );
    let body = &pings[1].2;
    assert!(
        body.contains("snapshot") && body.contains("saved"),
        "body: {body}"
    );
    assert!(
        body.contains("profile 'vps': starting 'backup'"),
        "body: {body}"
    );
    // The hooks' output (print_versions) is in the log, before the engine output.
    let v = log.find("cairn").expect("versions in the log");
    let s = log.find("snapshot").expect("snapshot line in the log");
    assert!(v < s, "{log}");
    assert!(log.contains("rclone v"), "{log}");

    // Status file: backup, retention (after-backup) and check (check-after), all successful.
    let st = seed.status("vps");
    let p = &st["profiles"]["vps"];
    assert_eq!(p["backup"]["success"], true, "{st}");
    assert_eq!(p["retention"]["success"], true, "{st}");
    assert_eq!(p["check"]["success"], true, "{st}");
    assert!(p["backup"]["files_new"].as_u64().unwrap() >= 2, "{st}");

    // restic reads the repository; host, paths and exclusions are the profile's.
    let o = seed
        .restic()
        .args(["check", "--read-data"])
        .output()
        .unwrap();
    assert!(o.status.success(), "restic check\n{}", output_text(&o));
    let o = seed
        .restic()
        .args(["snapshots", "--json"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", output_text(&o));
    let snaps: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(snaps[0]["hostname"], "vps.manselmi.com");
    let o = seed.restic().args(["ls", "latest"]).output().unwrap();
    let listing = String::from_utf8_lossy(&o.stdout);
    assert!(listing.contains("notes.txt"), "{listing}");
    assert!(!listing.contains("junk"), "exclude-caches: {listing}");

    // The password never appears in any output.
    let status_text = std::fs::read_to_string(seed.cfg.join("status/vps.json")).unwrap();
    for (what, text) in [
        ("log", log.as_str()),
        ("status", status_text.as_str()),
        ("ping bodies", &format!("{pings:?}")),
        ("stdout/stderr", &output_text(&o)),
    ] {
        assert!(!text.contains(SECRET), "secret leaked into {what}");
    }

    // Failure path: the password manager returns a wrong password → /fail ping with the log
    // tail, exit 1, status success false.
    let n = seed.pings().len();
    let o = seed
        .run("vps.backup", Some("log/vps/backup.log"))
        .env("OP_TEST_PASSWORD", "wrong-password")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", output_text(&o));
    let pings = seed.pings();
    let new: Vec<&str> = pings[n..].iter().map(|p| p.1.as_str()).collect();
    assert_eq!(
        new,
        ["/test-check-uuid/start", "/test-check-uuid/fail"],
        "{pings:?}"
    );
    assert!(
        pings[n + 1].2.contains("wrong password"),
        "{}",
        pings[n + 1].2
    );
    let st = seed.status("vps");
    assert_eq!(st["profiles"]["vps"]["backup"]["success"], false, "{st}");
    assert_eq!(st["profiles"]["vps"]["backup"]["files_new"], 0, "{st}");
}

#[test]
fn macos_profiles_nidoking_backup_and_gdrive_mount_check() {
    let src = tempfile::tempdir().unwrap();
    let data = src.path().join("Users");
    std::fs::create_dir_all(data.join("manselmi/Library/Caches")).unwrap();
    std::fs::write(data.join("manselmi/report.txt"), "quarterly\n").unwrap();
    std::fs::write(data.join("manselmi/.DS_Store"), "finder junk\n").unwrap();
    let mnt = src.path().join("mnt");
    std::fs::create_dir_all(mnt.join("gdrive")).unwrap();
    let sources = format!("'{}',", data.display());
    let Some(seed) = setup(
        "macos",
        &[
            (
                "'/private/etc',\n  '/Library',\n  '/opt/manselmi',\n  '/Users/manselmi',",
                sources,
            ),
            (
                "base-dir = '''/opt/manselmi/rclone/mnt/{{ .Profile.Name }}'''",
                format!("base-dir = '''{}/{{{{ .Profile.Name }}}}'''", mnt.display()),
            ),
        ],
    ) else {
        return;
    };
    std::fs::create_dir_all(&seed.repo).unwrap();
    let o = seed.run("manselmi.init", None).output().unwrap();
    assert!(o.status.success(), "init failed\n{}", output_text(&o));

    let o = seed
        .run("nidoking.backup", Some("log/nidoking/backup.log"))
        .output()
        .unwrap();
    let log = std::fs::read_to_string(seed.cfg.join("log/nidoking/backup.log")).unwrap_or_default();
    assert!(o.status.success(), "{}\nlog:\n{log}", output_text(&o));
    let st = seed.status("nidoking");
    assert_eq!(
        st["profiles"]["nidoking"]["backup"]["success"], true,
        "{st}"
    );
    let o = seed
        .restic()
        .args(["snapshots", "--json"])
        .output()
        .unwrap();
    let snaps: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(snaps[0]["hostname"], "Nidoking");
    let o = seed.restic().args(["ls", "latest"]).output().unwrap();
    let listing = String::from_utf8_lossy(&o.stdout);
    assert!(listing.contains("report.txt"), "{listing}");
    assert!(!listing.contains(".DS_Store"), "base.exclude: {listing}");

    // gdrive: base-dir is the (unmounted) mount point; the mount check in run-before fails, so
    // the run fails before the backup and the failure hook pings /fail.
    let n = seed.pings().len();
    let o = seed.run("gdrive.backup", None).output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", output_text(&o));
    let pings = seed.pings();
    let new: Vec<&str> = pings[n..].iter().map(|p| p.1.as_str()).collect();
    assert_eq!(
        new,
        ["/test-check-uuid/start", "/test-check-uuid/fail"],
        "{pings:?}"
    );
    let o = seed
        .restic()
        .args(["snapshots", "--json"])
        .output()
        .unwrap();
    let snaps: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        snaps.as_array().map(Vec::len),
        Some(1),
        "no gdrive snapshot"
    );
}
