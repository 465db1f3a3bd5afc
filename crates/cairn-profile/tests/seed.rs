//! Golden tests on the seed user's two real `profiles.toml` files (§22.2, §22.4, §22.8):
//! every profile renders, resolves and yields the expected values and engine arguments.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use cairn_profile::config::{Config, Profile, RenderContext};
use cairn_profile::options::{command_args, lint};
use cairn_template::PrivateTemp;
use common::TestSchema;

const PW: &str = "env -u TMPDIR -- op read --no-newline -- op://<vault-name>/<item-name>/[section-name/]<field-name>";

fn data_dir(os: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(format!("seed-{os}"))
}

fn ctx(os: &str) -> RenderContext {
    let mut env = BTreeMap::new();
    env.insert("HOME".to_string(), "/Users/manselmi".to_string());
    env.insert("PATH".to_string(), "/usr/bin:/bin".to_string());
    RenderContext {
        startup_dir: PathBuf::from("/"),
        current_dir: PathBuf::from("/"),
        temp_dir: "/tmp/".into(),
        binary_dir: PathBuf::from("/usr/local/bin"),
        hostname: "fixed-host".into(),
        env,
        now: chrono::DateTime::parse_from_rfc3339("2025-06-01T12:00:00Z").unwrap(),
        os: if os == "macos" { "darwin" } else { "linux" }.into(),
        arch: "arm64".into(),
    }
}

struct Seed {
    os: &'static str,
    dir: PathBuf,
    config: Config,
}

impl Seed {
    fn new(os: &'static str) -> Seed {
        let dir = data_dir(os);
        let config = Config::load(&dir.join("profiles.toml"), None).unwrap();
        Seed { os, dir, config }
    }

    fn cd(&self) -> String {
        self.dir.display().to_string()
    }

    fn profile(&self, name: &str) -> Profile {
        let funcs = PrivateTemp::new();
        self.config.profile(name, &ctx(self.os), &funcs).unwrap()
    }

    /// The profile as the run flow gets it after `base-dir`: rendered again with cwd = base-dir.
    fn profile_in_base_dir(&self, name: &str) -> Profile {
        let first = self.profile(name);
        let Some(base) = first.base_dir() else {
            return first;
        };
        let mut c = ctx(self.os);
        c.current_dir = base;
        self.config.profile(name, &c, &PrivateTemp::new()).unwrap()
    }
}

fn args(p: &Profile, cmd: &str) -> Vec<String> {
    command_args(p, cmd, &TestSchema).unwrap()
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

/// The global flags every command of a profile with the repository template gets.
fn repo_flags(repo: &str) -> Vec<String> {
    vec![
        "--option=rclone.program=exec-rclone".into(),
        "--pack-size=128".into(),
        format!("--password-command={PW}"),
        format!("--repo={repo}"),
    ]
}

/// Flags sorted by name (values of one flag keep their order) + positional arguments, like
/// `command_args` returns them.
fn expect(mut flags: Vec<String>, positional: &[&str]) -> Vec<String> {
    flags.sort_by(|a, b| {
        let name = |x: &str| x.split('=').next().unwrap_or_default().to_string();
        name(a).cmp(&name(b))
    });
    flags.extend(positional.iter().map(|p| p.to_string()));
    flags
}

fn keep_within() -> Vec<String> {
    s(&[
        "--keep-within-daily=7d",
        "--keep-within-monthly=1y",
        "--keep-within-weekly=1m",
        "--keep-within-yearly=100y",
    ])
}

#[test]
fn both_files_list_their_profiles() {
    let mac = Seed::new("macos");
    let names: Vec<String> = mac
        .config
        .profile_names(&ctx("macos"), &PrivateTemp::new())
        .unwrap()
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(
        names,
        s(&[
            "base",
            "gdrive",
            "manselmi",
            "nidoking",
            "onedrive",
            "rclone-mount-src"
        ])
    );
    let ubu = Seed::new("ubuntu");
    let infos = ubu
        .config
        .profile_names(&ctx("ubuntu"), &PrivateTemp::new())
        .unwrap();
    let names: Vec<&str> = infos.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, vec!["base", "untrusted", "vps"]);
    let vps = infos.iter().find(|p| p.name == "vps").unwrap();
    assert_eq!(vps.inherit.as_deref(), Some("base"));
    assert_eq!(
        vps.sections,
        s(&[
            "backup",
            "cache",
            "diff",
            "forget",
            "prune",
            "repair-snapshots",
            "retention"
        ])
    );
    assert_eq!(mac.config.version(), 1);
}

#[test]
fn globals() {
    let mac = Seed::new("macos");
    let g = mac
        .config
        .global(&ctx("macos"), &PrivateTemp::new())
        .unwrap();
    assert!(g.prevent_sleep);
    assert_eq!(g.shell, vec!["zsh"]);
    assert_eq!(
        g.restic_lock_retry_after,
        std::time::Duration::from_secs(60)
    );
    assert_eq!(
        g.restic_stale_lock_age,
        Some(std::time::Duration::from_secs(3600))
    );
    let ubu = Seed::new("ubuntu");
    let (g, w) = ubu
        .config
        .global_with_warnings(&ctx("ubuntu"), &PrivateTemp::new())
        .unwrap();
    assert!(!g.prevent_sleep);
    assert!(w.is_empty(), "{w:?}");
}

#[test]
fn nidoking() {
    let seed = Seed::new("macos");
    let cd = seed.cd();
    let p = seed.profile("nidoking");
    assert_eq!(p.name, "nidoking");
    assert_eq!(
        p.lock(),
        Some(PathBuf::from("/tmp//resticprofile-manselmi.lock"))
    );
    assert_eq!(
        p.status_file(),
        Some(PathBuf::from(format!("{cd}/status/nidoking.json")))
    );
    assert_eq!(p.base_dir(), None);
    let env = p.env();
    assert_eq!(env.get("TZ").map(String::as_str), Some("UTC"));
    assert_eq!(
        env.get("RCLONE_PASSWORD_COMMAND").map(String::as_str),
        Some(PW)
    );
    assert_eq!(p.bool_in("backup", "check-after"), Some(true));
    assert_eq!(p.bool_in("retention", "after-backup"), Some(true));
    assert_eq!(p.bool_in("backup", "no-error-on-warning"), None);
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    assert!(
        lint(&p, &TestSchema).is_empty(),
        "{:?}",
        lint(&p, &TestSchema)
    );

    // hooks: three run-before entries, each ending with a newline (T3)
    let hooks = p.hooks(Some("backup"));
    assert_eq!(hooks.run_before.len(), 3);
    assert!(hooks.run_before[0].starts_with("for CMD in op rclone restic resticprofile; do\n"));
    assert_eq!(
        hooks.run_before[1],
        format!(
            "env -u TMPDIR -- op inject -i '{cd}/curlrc/nidoking.curlrc' \\\n  | sed -e '\\|^url[[:blank:]:=]|s|$|/start|' \\\n  | curl -qK -\n"
        )
    );
    assert!(hooks.run_before[2].contains("pkgutil --pkgs="));
    assert!(hooks.run_before.iter().all(|h| h.ends_with('\n')));
    assert_eq!(hooks.run_after.len(), 1);
    assert!(hooks.run_after[0].contains(&format!("'{cd}/log/nidoking/backup.log'")));
    assert!(hooks.run_after_fail[0].contains("s|$|/fail|"));
    assert!(p.hooks(None).run_before.is_empty());

    let mut backup = repo_flags("rclone:restic-manselmi:");
    backup.extend(s(&[
        "--exclude-caches",
        "--group-by=host,tags",
        "--host=Nidoking",
        "--read-concurrency=8",
        "--verbose",
    ]));
    backup.extend([
        format!("--exclude-file={cd}/exclude/nidoking/pre-base.exclude"),
        format!("--exclude-file={cd}/exclude/base.exclude"),
        format!("--exclude-file={cd}/exclude/nidoking/post-base.exclude"),
    ]);
    let got = args(&p, "backup");
    assert_eq!(
        got,
        expect(
            backup,
            &[
                "/private/etc",
                "/Library",
                "/opt/manselmi",
                "/Users/manselmi"
            ]
        )
    );
    // the three exclude files keep their order
    let ex: Vec<&String> = got
        .iter()
        .filter(|a| a.starts_with("--exclude-file="))
        .collect();
    assert!(ex[0].ends_with("pre-base.exclude") && ex[2].ends_with("post-base.exclude"));

    // retention: keep-within-*, a --path per source, no --tag (backup has none), --host
    let mut retention = repo_flags("rclone:restic-manselmi:");
    retention.extend(keep_within());
    retention.extend(s(&[
        "--group-by=host,tags",
        "--host=Nidoking",
        "--path=/private/etc",
        "--path=/Library",
        "--path=/opt/manselmi",
        "--path=/Users/manselmi",
    ]));
    let got = args(&p, "retention");
    assert_eq!(got, expect(retention, &[]));
    assert!(
        !got.iter()
            .any(|a| a.starts_with("--tag") || a.starts_with("--prune"))
    );

    // check: whole repository, no snapshot filter
    assert_eq!(
        args(&p, "check"),
        expect(repo_flags("rclone:restic-manselmi:"), &[])
    );

    // forget: policy + host; tag = true dropped; prune = false absent; path = false absent
    let mut forget = repo_flags("rclone:restic-manselmi:");
    forget.extend(keep_within());
    forget.extend(s(&["--group-by=host,tags", "--host=Nidoking"]));
    assert_eq!(args(&p, "forget"), expect(forget, &[]));

    let mut prune = repo_flags("rclone:restic-manselmi:");
    prune.extend(s(&["--max-unused=0", "--repack-small", "--verbose"]));
    assert_eq!(args(&p, "prune"), expect(prune, &[]));

    // repair snapshots reads [base.repair-snapshots]: --forget; tag = true → no backup tags → dropped
    let mut repair = repo_flags("rclone:restic-manselmi:");
    repair.extend(s(&["--forget", "--host=Nidoking"]));
    assert_eq!(args(&p, "repair snapshots"), expect(repair, &[]));

    let mut key = repo_flags("rclone:restic-manselmi:");
    key.push("--host=Nidoking".into());
    assert_eq!(args(&p, "key add"), expect(key, &[]));

    let mut ls = repo_flags("rclone:restic-manselmi:");
    ls.extend(s(&["--host=Nidoking", "--human-readable", "--long"]));
    assert_eq!(args(&p, "ls"), expect(ls, &[]));

    let mut snapshots = repo_flags("rclone:restic-manselmi:");
    snapshots.extend(s(&["--group-by=host,tags", "--host=Nidoking"]));
    assert_eq!(args(&p, "snapshots"), expect(snapshots, &[]));

    let mut cache = repo_flags("rclone:restic-manselmi:");
    cache.extend(s(&["--cleanup", "--max-age=30"]));
    assert_eq!(args(&p, "cache"), expect(cache, &[]));
    assert_eq!(
        args(&p, "diff"),
        expect(repo_flags("rclone:restic-manselmi:"), &[])
    );

    let shown = p.show();
    assert!(shown.contains("RCLONE_PASSWORD_COMMAND: ×××"), "{shown}");
    assert!(!shown.contains("op://<vault-name>/<item-name>/[section-name/]<field-name>'\n"));
    assert!(
        shown.contains("(path defaults to the backup sources"),
        "{shown}"
    );
}

#[test]
fn gdrive_and_onedrive() {
    let seed = Seed::new("macos");
    let cd = seed.cd();
    for (name, host) in [("gdrive", "Google Drive"), ("onedrive", "OneDrive")] {
        let mnt = format!("/opt/manselmi/rclone/mnt/{name}");
        let p = seed.profile_in_base_dir(name);
        assert_eq!(p.base_dir(), Some(PathBuf::from(&mnt)));
        assert_eq!(
            p.lock(),
            Some(PathBuf::from("/tmp//resticprofile-manselmi.lock"))
        );
        // index merge: the child's four entries replace the parent's three
        let hooks = p.hooks(Some("backup"));
        assert_eq!(hooks.run_before.len(), 4, "{name}");
        assert!(hooks.run_before[1].contains(&format!("'{cd}/curlrc/{name}.curlrc'")));
        assert_eq!(
            hooks.run_before[3],
            format!("  mount \\\n    | grep -Fq -- 'fuse-t:/{name} on {mnt}'\n  ")
        );
        assert_eq!(hooks.run_after.len(), 1);

        let mut backup = repo_flags("rclone:restic-manselmi:");
        backup.extend(s(&[
            "--exclude-caches",
            "--group-by=host,tags",
            "--ignore-inode",
            "--read-concurrency=2",
            "--verbose",
        ]));
        backup.push(format!("--host={host}"));
        backup.push(format!("--tag=mount-dir={mnt}"));
        backup.extend([
            format!("--exclude-file={cd}/exclude/{name}/pre-base.exclude"),
            format!("--exclude-file={cd}/exclude/base.exclude"),
            format!("--exclude-file={cd}/exclude/{name}/post-base.exclude"),
        ]);
        assert_eq!(args(&p, "backup"), expect(backup, &[&mnt]), "{name}");

        let mut retention = repo_flags("rclone:restic-manselmi:");
        retention.extend(keep_within());
        retention.push("--group-by=host,tags".into());
        retention.push(format!("--host={host}"));
        retention.push(format!("--path={mnt}"));
        retention.push(format!("--tag=mount-dir={mnt}"));
        assert_eq!(args(&p, "retention"), expect(retention, &[]), "{name}");

        // forget also has tag = true → the backup tag
        assert!(args(&p, "forget").contains(&format!("--tag=mount-dir={mnt}")));
        assert!(args(&p, "repair snapshots").contains(&format!("--tag=mount-dir={mnt}")));
        assert_eq!(
            p.status_file(),
            Some(PathBuf::from(format!("{cd}/status/{name}.json")))
        );
    }
    // before the base-dir chdir the source '.' already resolves against base-dir
    let p = seed.profile("gdrive");
    assert_eq!(
        cairn_profile::options::backup_sources(&p),
        vec!["/opt/manselmi/rclone/mnt/gdrive"]
    );
}

#[test]
fn manselmi_and_untrusted_are_repository_wide() {
    for (os, name, repo) in [
        ("macos", "manselmi", "rclone:restic-manselmi:"),
        ("ubuntu", "untrusted", "rclone:restic-untrusted:"),
    ] {
        let seed = Seed::new(os);
        let p = seed.profile(name);
        // [base.backup] is inherited but has no source: backup has no positional argument
        assert_eq!(
            cairn_profile::options::backup_sources(&p),
            Vec::<String>::new()
        );
        let mut forget = repo_flags(repo);
        forget.extend(keep_within());
        forget.push("--group-by=host,tags".into());
        assert_eq!(args(&p, "forget"), expect(forget.clone(), &[]), "{os}");
        assert_eq!(args(&p, "retention"), expect(forget, &[]), "{os}");
        let mut prune = repo_flags(repo);
        prune.extend(s(&["--max-unused=0", "--repack-small", "--verbose"]));
        assert_eq!(args(&p, "prune"), expect(prune, &[]));
        let mut repair = repo_flags(repo);
        repair.push("--forget".into());
        assert_eq!(args(&p, "repair snapshots"), expect(repair, &[]));
        assert_eq!(args(&p, "key add"), expect(repo_flags(repo), &[]));
        let mut ls = repo_flags(repo);
        ls.extend(s(&["--human-readable", "--long"]));
        assert_eq!(args(&p, "ls"), expect(ls, &[]));
        let mut snapshots = repo_flags(repo);
        snapshots.push("--group-by=host,tags".into());
        assert_eq!(args(&p, "snapshots"), expect(snapshots, &[]));
        assert_eq!(args(&p, "check"), expect(repo_flags(repo), &[]));
    }
}

#[test]
fn base_and_rclone_mount_src_have_no_repository() {
    let seed = Seed::new("macos");
    let base = seed.profile("base");
    assert_eq!(base.lock(), None);
    assert_eq!(
        args(&base, "check"),
        s(&["--option=rclone.program=exec-rclone", "--pack-size=128"])
    );
    assert_eq!(base.hooks(Some("backup")).run_before.len(), 3);
    let src = seed.profile("rclone-mount-src");
    assert_eq!(
        src.base_dir(),
        Some(PathBuf::from("/opt/manselmi/rclone/mnt/rclone-mount-src"))
    );
    assert_eq!(
        cairn_profile::options::backup_sources(&src),
        vec!["/opt/manselmi/rclone/mnt/rclone-mount-src"]
    );
    let ubase = Seed::new("ubuntu").profile("base");
    assert_eq!(ubase.hooks(Some("backup")).run_before.len(), 2);
}

#[test]
fn vps() {
    let seed = Seed::new("ubuntu");
    let cd = seed.cd();
    let p = seed.profile("vps");
    assert_eq!(
        p.lock(),
        Some(PathBuf::from("/tmp//resticprofile-untrusted.lock"))
    );
    assert_eq!(
        p.status_file(),
        Some(PathBuf::from(format!("{cd}/status/vps.json")))
    );
    let hooks = p.hooks(Some("backup"));
    assert_eq!(hooks.run_before.len(), 2);
    assert!(hooks.run_before[0].contains(&format!("'{cd}/curlrc/vps.curlrc'")));
    assert!(hooks.run_before[1].ends_with("resticprofile version\n"));
    let mut backup = repo_flags("rclone:restic-untrusted:");
    backup.extend(s(&[
        "--exclude-caches",
        "--group-by=host,tags",
        "--host=vps.manselmi.com",
        "--read-concurrency=8",
        "--verbose",
    ]));
    backup.extend([
        format!("--exclude-file={cd}/exclude/vps/pre-base.exclude"),
        format!("--exclude-file={cd}/exclude/base.exclude"),
        format!("--exclude-file={cd}/exclude/vps/post-base.exclude"),
    ]);
    assert_eq!(
        args(&p, "backup"),
        expect(backup, &["/etc", "/usr", "/home/ubuntu"])
    );
    let mut retention = repo_flags("rclone:restic-untrusted:");
    retention.extend(keep_within());
    retention.extend(s(&[
        "--group-by=host,tags",
        "--host=vps.manselmi.com",
        "--path=/etc",
        "--path=/usr",
        "--path=/home/ubuntu",
    ]));
    assert_eq!(args(&p, "retention"), expect(retention, &[]));
    assert_eq!(
        args(&p, "check"),
        expect(repo_flags("rclone:restic-untrusted:"), &[])
    );
    let mut prune = repo_flags("rclone:restic-untrusted:");
    prune.extend(s(&["--max-unused=0", "--repack-small", "--verbose"]));
    assert_eq!(args(&p, "prune"), expect(prune, &[]));
    let mut ls = repo_flags("rclone:restic-untrusted:");
    ls.extend(s(&[
        "--host=vps.manselmi.com",
        "--human-readable",
        "--long",
    ]));
    assert_eq!(args(&p, "ls"), expect(ls, &[]));
    assert!(p.schedules(&Default::default()).is_empty());
}

#[test]
fn template_errors_name_the_file_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("profiles.toml");
    std::fs::write(&f, "[p]\nrepository = 'x'\n\n# {{ .Env.UNSET | lower }}\n").unwrap();
    let c = Config::load(&f, None);
    let e = c.expect_err("template must fail at load");
    assert!(e.to_string().starts_with("profiles.toml:4:"), "{e}");
}
