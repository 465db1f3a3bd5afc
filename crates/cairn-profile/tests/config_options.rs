//! Loading small configurations in every format and turning them into engine arguments.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use cairn_profile::config::{Config, Profile, RenderContext};
use cairn_profile::options::{command_args, lint};
use common::TestSchema;

use cairn_template::PrivateTemp as Funcs;

fn ctx(cwd: &Path) -> RenderContext {
    let mut env = BTreeMap::new();
    env.insert("HOME".to_string(), "/home/test".to_string());
    env.insert("Path".to_string(), "/bin".to_string());
    env.insert("DATA".to_string(), "/data".to_string());
    RenderContext {
        startup_dir: cwd.to_path_buf(),
        current_dir: cwd.to_path_buf(),
        temp_dir: "/tmp/".into(),
        binary_dir: PathBuf::from("/usr/local/bin"),
        hostname: "testhost".into(),
        env,
        now: chrono::DateTime::parse_from_rfc3339("2025-01-02T12:34:56Z").unwrap(),
        os: "linux".into(),
        arch: "amd64".into(),
    }
}

fn load(dir: &Path, name: &str, text: &str) -> Config {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    Config::load(&p, None).unwrap()
}

fn profile(c: &Config, name: &str) -> Profile {
    c.profile(name, &ctx(Path::new("/work")), &Funcs::new())
        .unwrap()
}

fn args(p: &Profile, cmd: &str) -> Vec<String> {
    command_args(p, cmd, &TestSchema).unwrap()
}

const TOML: &str = r#"
version = "1"
[global]
default-command = "snapshots"

[base]
repository = "local:/srv/repo"
password-file = "key.txt"
keep-daily = 7
tag = ["t1"]

[base.backup]
source = ["/etc", "$DATA/x"]
exclude = ["*.tmp"]
verbose = 2

[small]
inherit = "base"
tag = ["t2", "t3"]

[small.env]
path = "/usr/bin"
tz = "UTC"
"#;

const YAML: &str = r#"
version: "1"
global:
  default-command: snapshots
base:
  repository: local:/srv/repo
  password-file: key.txt
  keep-daily: 7
  tag: [t1]
  backup:
    source: [/etc, $DATA/x]
    exclude: ["*.tmp"]
    verbose: 2
small:
  inherit: base
  tag: [t2, t3]
  env:
    path: /usr/bin
    tz: UTC
"#;

const JSON: &str = r#"{
  "$schema": "https://example/config-1.json",
  "version": "1",
  "global": {"default-command": "snapshots"},
  "base": {
    "repository": "local:/srv/repo", "password-file": "key.txt", "keep-daily": 7, "tag": ["t1"],
    "backup": {"source": ["/etc", "$DATA/x"], "exclude": ["*.tmp"], "verbose": 2}
  },
  "small": {"inherit": "base", "tag": ["t2", "t3"], "env": {"path": "/usr/bin", "tz": "UTC"}}
}"#;

#[test]
fn toml_yaml_json_give_the_same_arguments() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let key = dir.join("key.txt").display().to_string();
    let expected_backup = vec![
        "--exclude=*.tmp".to_string(),
        format!("--password-file={key}"),
        "--repo=local:/srv/repo".into(),
        "--tag=t2".into(),
        "--tag=t3".into(),
        "--verbose=2".into(),
        "/etc".into(),
        "/data/x".into(),
    ];
    for (name, text) in [("p.toml", TOML), ("p.yaml", YAML), ("p.json", JSON)] {
        let c = load(dir, name, text);
        let p = profile(&c, "small");
        assert_eq!(args(&p, "backup"), expected_backup, "{name}");
        assert_eq!(
            args(&p, "forget"),
            vec![
                "--keep-daily=7".to_string(),
                format!("--password-file={key}"),
                "--repo=local:/srv/repo".into(),
                "--tag=t2".into(),
                "--tag=t3".into(),
            ],
            "{name}"
        );
        // env case rule: existing OS spelling (Path), else upper case (TZ)
        let env = p.env();
        assert_eq!(
            env.get("Path").map(String::as_str),
            Some("/usr/bin"),
            "{name}"
        );
        assert_eq!(env.get("TZ").map(String::as_str), Some("UTC"), "{name}");
        assert_eq!(env.len(), 2);
        let g = c.global(&ctx(dir), &Funcs::new()).unwrap();
        assert_eq!(g.default_command, "snapshots");
        assert_eq!(
            c.profile_names(&ctx(dir), &Funcs::new()).unwrap().len(),
            2,
            "{name}"
        );
    }
}

#[test]
fn section_false_does_not_remove_profile_true_and_zero_is_dropped_with_warning() {
    let tmp = tempfile::tempdir().unwrap();
    let c = load(
        tmp.path(),
        "p.toml",
        "[p]\nrepository = 'r'\ncompact = true\nkeep-last = 0\n[p.forget]\ncompact = false\nmax-unused = 0\nprune = true\nkeep-tag = ''\ngroup-by = ''\nhost = ''\n",
    );
    let p = profile(&c, "p");
    assert_eq!(
        args(&p, "forget"),
        vec![
            "--compact",
            "--group-by=",
            "--keep-tag=",
            "--prune",
            "--repo=r"
        ]
    );
    let zero: Vec<_> = p
        .warnings
        .iter()
        .filter(|w| w.message.contains("= 0` is dropped"))
        .collect();
    assert_eq!(zero.len(), 2, "{:?}", p.warnings);
    assert!(
        zero.iter()
            .any(|w| w.message.contains("max-unused") && w.line == Some(7))
    );
}

#[test]
fn lint_suggests_the_nearest_flag() {
    let tmp = tempfile::tempdir().unwrap();
    let c = load(
        tmp.path(),
        "p.toml",
        "[p]\nrepository = 'r'\nkeep-dayly = 3\n[p.backup]\nexclude-files = ['x']\none-file-system = true\nrun-befor = 'x'\n[p.bakup]\nx = 1\n",
    );
    let p = profile(&c, "p");
    let w = lint(&p, &TestSchema);
    let text: Vec<String> = w.iter().map(|w| w.to_string()).collect();
    assert_eq!(w.len(), 4, "{text:?}");
    assert!(
        text.iter()
            .any(|t| t.starts_with("p.toml:7:") && t.contains("did you mean `run-before`")),
        "{text:?}"
    );
    assert!(
        text.iter()
            .any(|t| t.starts_with("p.toml:3:") && t.contains("did you mean `keep-daily`")),
        "{text:?}"
    );
    assert!(
        text.iter()
            .any(|t| t.starts_with("p.toml:5:") && t.contains("did you mean `exclude-file`")),
        "{text:?}"
    );
    assert!(
        text.iter()
            .any(|t| t.contains("[bakup]") && t.contains("did you mean [backup]")),
        "{text:?}"
    );
}

#[test]
fn special_values_and_paths() {
    let tmp = tempfile::tempdir().unwrap();
    let c = load(
        tmp.path(),
        "p.toml",
        r#"
[p]
repository = "r"
host = true
path = false
[p.backup]
source = ["rel", "/abs", "-dash"]
source-base = "/base"
tag = ["a", "b"]
exclude-file = ["ex.txt", "~/ex", "$DATA/ex"]
stdin-command = []
[p.snapshots]
tag = true
path = true
[p.ls]
path = ["x", "/y"]
[p.retention]
keep-last = 3
[p.check]
read-data = true
"#,
    );
    let p = profile(&c, "p");
    let ex = tmp.path().join("ex.txt").display().to_string();
    assert_eq!(
        args(&p, "backup"),
        vec![
            format!("--exclude-file={ex}"),
            "--exclude-file=/home/test/ex".into(),
            "--exclude-file=/data/ex".into(),
            "--host=testhost".into(),
            "--repo=r".into(),
            "--tag=a".into(),
            "--tag=b".into(),
            "/base/rel".into(),
            "/abs".into(),
            "/base/-dash".into(),
        ]
    );
    assert_eq!(
        args(&p, "snapshots"),
        vec![
            "--host=testhost",
            "--path=/base/rel",
            "--path=/abs",
            "--path=/base/-dash",
            "--repo=r",
            "--tag=a,b"
        ]
    );
    assert_eq!(
        args(&p, "ls"),
        vec!["--host=testhost", "--path=/work/x", "--path=/y", "--repo=r"]
    );
    // retention: implicit path = backup sources despite path = false at profile level; no tag
    assert_eq!(
        args(&p, "retention"),
        vec![
            "--host=testhost",
            "--keep-last=3",
            "--path=/base/rel",
            "--path=/abs",
            "--path=/base/-dash",
            "--repo=r"
        ]
    );
    // check gets no snapshot filters from the profile level
    assert_eq!(args(&p, "check"), vec!["--read-data", "--repo=r"]);
    assert!(!p.bool_in("backup", "stdin").unwrap_or(false));
}

#[test]
fn multi_word_sections_copy_and_init() {
    let tmp = tempfile::tempdir().unwrap();
    let c = load(
        tmp.path(),
        "p.toml",
        r#"
[p]
repository = "src"
password-file = "/k1"
[p.repair]
dry-run = true
tag = ["x"]
[p.repair-snapshots]
forget = true
tag = ["y"]
[p.key]
host = "h"
[p.key-add]
user = "u"
[p.copy]
repository = "dst"
password-command = "op read x"
snapshot = ["abc", "def"]
initialize = true
[p.init]
from-repository = "other"
from-password-file = "k2"
copy-chunker-params = true
"#,
    );
    let p = profile(&c, "p");
    assert_eq!(
        args(&p, "repair snapshots"),
        vec![
            "--dry-run",
            "--forget",
            "--password-file=/k1",
            "--repo=src",
            "--tag=y"
        ]
    );
    assert_eq!(args(&p, "repair-snapshots"), args(&p, "repair snapshots"));
    assert_eq!(
        args(&p, "key add"),
        vec!["--host=h", "--password-file=/k1", "--repo=src", "--user=u"]
    );
    assert_eq!(
        args(&p, "copy"),
        vec![
            "--from-password-file=/k1",
            "--from-repo=src",
            "--password-command=op read x",
            "--repo=dst",
            "abc",
            "def"
        ]
    );
    let k2 = tmp.path().join("k2").display().to_string();
    assert_eq!(
        args(&p, "init"),
        vec![
            "--copy-chunker-params".to_string(),
            format!("--from-password-file={k2}"),
            "--from-repo=other".into(),
            "--password-file=/k1".into(),
            "--repo=src".into(),
        ]
    );
}

#[test]
fn orchestration_accessors() {
    let tmp = tempfile::tempdir().unwrap();
    let c = load(
        tmp.path(),
        "p.toml",
        r#"
[p]
lock = "$DATA/p.lock"
env-file = ["a.env", "/abs.env"]
status-file = "status/p.json"
base-dir = "~/mnt"
healthchecks-url-command = "op read op://v/i/f"
healthchecks-timeout = "5s"
prometheus-save-to-file = "p.prom"
prometheus-labels = [{ host = "h" }, { zone = "z" }]
run-before = "echo start"
[[p.stream-error]]
pattern = "error"
run = "echo x"
max-runs = 2
[p.backup]
healthchecks-url = "https://hc-ping.com/uuid"
healthchecks-body = "summary"
run-after = ["a", "b"]
stdin-command = "pg_dump"
[[p.backup.send-after]]
url = "https://user:pw@example.com/hook"
method = "post"
body-template = "body.tpl"
headers = [{ name = "Authorization", value = "secret" }]
[p.backup.schedule]
at = "05:00"
random-delay = "5m"
[p.check]
schedule = "weekly"
"#,
    );
    let p = profile(&c, "p");
    assert_eq!(p.lock(), Some(PathBuf::from("/data/p.lock")));
    assert_eq!(
        p.env_files(),
        vec![tmp.path().join("a.env"), PathBuf::from("/abs.env")]
    );
    assert_eq!(p.status_file(), Some(PathBuf::from("status/p.json")));
    assert_eq!(p.base_dir(), Some(PathBuf::from("/home/test/mnt")));
    let hc = p.healthchecks().unwrap();
    assert_eq!(hc.url, "cmd:op read op://v/i/f");
    assert_eq!(hc.timeout, std::time::Duration::from_secs(5));
    let hcb = p.healthchecks_in("backup").unwrap();
    assert_eq!(hcb.url, "https://hc-ping.com/uuid");
    assert_eq!(hcb.body, cairn_profile::types::HealthchecksBody::Summary);
    let prom = p.prometheus();
    assert_eq!(prom.labels.len(), 2);
    assert_eq!(p.hooks(None).run_before, vec!["echo start"]);
    assert_eq!(p.hooks(Some("backup")).run_after, vec!["a", "b"]);
    assert_eq!(p.stream_error()[0].max_runs, 2);
    assert_eq!(p.list_in("backup", "stdin-command"), vec!["pg_dump"]);
    assert_eq!(p.bool_in("backup", "stdin"), Some(true));
    let sends = p.sends("backup");
    assert_eq!(sends.after[0].method, "POST");
    assert_eq!(
        sends.after[0].body_template,
        Some(tmp.path().join("body.tpl"))
    );
    assert_eq!(sends.after[0].headers[0].0, "Authorization");
    let g = c.global(&ctx(tmp.path()), &Funcs::new()).unwrap();
    let s = p.schedules(&g);
    assert_eq!(s.len(), 2);
    assert_eq!(
        (s[0].command.as_str(), s[0].at.clone()),
        ("backup", vec!["05:00".to_string()])
    );
    assert_eq!(s[0].random_delay, Some(std::time::Duration::from_secs(300)));
    assert_eq!(s[1].command, "check");
    // backup args: --stdin implied, no orchestration keys
    let a = args(&p, "backup");
    assert_eq!(a, vec!["--stdin"]);
    let shown = p.show();
    assert!(
        shown.contains("https://user:×××@example.com/hook"),
        "{shown}"
    );
    assert!(shown.contains("Authorization: ×××"), "{shown}");
    assert!(!shown.contains("secret"), "{shown}");
}

#[test]
fn v2_inheritance_and_mixins_reach_arguments() {
    let tmp = tempfile::tempdir().unwrap();
    let c = load(
        tmp.path(),
        "p.yaml",
        r#"
version: 2
mixins:
  no-tmp:
    backup:
      exclude...: ["/tmp"]
  repo:
    default-vars: { REPO_NAME: default }
    repository: "local:/r/${REPO_NAME}"
profiles:
  base:
    use: { name: repo, repo_name: base }
    backup:
      source: [/a]
      exclude: ["*.o"]
  child:
    inherit: base
    use: no-tmp
    backup:
      source...: [/b]
"#,
    );
    assert_eq!(c.version(), 2);
    let p = profile(&c, "child");
    assert_eq!(
        args(&p, "backup"),
        vec![
            "--exclude=*.o",
            "--exclude=/tmp",
            "--host=testhost",
            "--repo=local:/r/base",
            "/a",
            "/b"
        ]
    );
}

#[test]
fn v2_retention_defaults() {
    let tmp = tempfile::tempdir().unwrap();
    let c = load(
        tmp.path(),
        "p.toml",
        "version = 2\n[profiles.p]\nrepository = 'r'\n[profiles.p.backup]\nsource = ['/s']\ntag = ['t']\n[profiles.p.retention]\nkeep-last = 2\n",
    );
    let p = profile(&c, "p");
    assert_eq!(p.bool_in("retention", "after-backup"), Some(true));
    assert_eq!(
        args(&p, "retention"),
        vec![
            "--host=testhost",
            "--keep-last=2",
            "--path=/s",
            "--repo=r",
            "--tag=t"
        ]
    );
    assert_eq!(
        args(&p, "backup"),
        vec!["--host=testhost", "--repo=r", "--tag=t", "/s"]
    );
}
