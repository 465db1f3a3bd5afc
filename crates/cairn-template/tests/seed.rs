//! Golden tests: the seed user's two resticprofile configuration files.

use cairn_template::{PrivateTemp, TemplateSet, Value};

const MACOS: &str = include_str!("data/macos-profiles.toml");
const UBUNTU: &str = include_str!("data/ubuntu-profiles.toml");

fn data(profile: &str) -> Value {
    Value::map([
        ("Profile", Value::map([("Name", Value::str(profile))])),
        ("ConfigDir", Value::str("/cfg")),
        ("TempDir", Value::str("/tmp")),
        ("StartupDir", Value::str("/start")),
        ("CurrentDir", Value::str("/start")),
        ("BinaryDir", Value::str("/bin")),
        ("Hostname", Value::str("host")),
        ("OS", Value::str("darwin")),
        ("Arch", Value::str("arm64")),
        ("Env", Value::map([("HOME", Value::str("/Users/x"))])),
    ])
}

fn render(file: &str, text: &str, profile: &str) -> String {
    let mut set = TemplateSet::new();
    set.add(file, text).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    set.execute(file, &data(profile), &PrivateTemp::in_dir(tmp.path()))
        .unwrap()
}

#[test]
fn macos_hostname_and_repository_defines() {
    let out = render("profiles.toml", MACOS, "nidoking");
    assert!(out.contains("[nidoking]\nhost = 'Nidoking'\ninherit = 'base'\n\nlock = '''/tmp/resticprofile-manselmi.lock'''\npassword-command = 'env -u TMPDIR -- op read --no-newline -- op://<vault-name>/<item-name>/[section-name/]<field-name>'\nrepository = 'rclone:restic-manselmi:'\n\n\n[nidoking.backup]"), "{out}");
    // T2: the template inside a TOML comment is executed.
    assert!(
        out.contains("# [base.key]\n# host = 'Nidoking'\n# user = 'manselmi'\n"),
        "{out}"
    );
    // Defines leave their newlines around them at the top: the file starts with the header and
    // only blank lines where the defines were.
    assert!(out.starts_with("#:schema https://creativeprojects.github.io/resticprofile/jsonschema/config-1.json\n# vim: set ft=toml :\n\n\n\n\n"));
    assert!(!out.contains("{{"), "{out}");
}

#[test]
fn macos_hooks_keep_define_newlines() {
    let out = render("profiles.toml", MACOS, "nidoking");
    // T3: each hook string starts with the newline after `}}` of the define, then `'''`.
    let start = "run-after = [\n  \n'''\nenv -u TMPDIR -- op inject -i '/cfg/curlrc/nidoking.curlrc' \\\n  | {\n";
    assert!(out.contains(start), "{out}");
    let fail = "run-after-fail = [\n  \n'''\nenv -u TMPDIR -- op inject -i '/cfg/curlrc/nidoking.curlrc' \\\n  | sed -e '\\|^url[[:blank:]:=]|s|$|/fail|' \\\n";
    assert!(out.contains(fail), "{out}");
    assert!(out.contains("tail -c 100000 -- '/cfg/log/nidoking/backup.log' >> \"${DATA}\"\n"));
    // The define ends with a newline before `{{ end }}`, then the `,` of the array.
    assert!(
        out.contains("      rm -f -- \"${DATA}\"\n    }\n'''\n,\n]\nrun-after-fail"),
        "{out}"
    );
    assert!(
        out.contains("  \n'''\nprintf '%s %s\\n' op \"$(env -u TMPDIR -- op --version)\"\n"),
        "{out}"
    );
}

#[test]
fn late_binding_of_profile_name() {
    // T1: the same text rendered for two profiles gives each its own name.
    let a = render("profiles.toml", MACOS, "gdrive");
    let b = render("profiles.toml", MACOS, "onedrive");
    assert!(a.contains("status-file = '''/cfg/status/gdrive.json'''"));
    assert!(b.contains("status-file = '''/cfg/status/onedrive.json'''"));
    assert!(a.contains("base-dir = '''/opt/manselmi/rclone/mnt/gdrive'''"));
    assert!(a.contains("'''/cfg/exclude/gdrive/pre-base.exclude''',"));
    assert!(a.contains("grep -Fq -- 'fuse-t:/gdrive on /opt/manselmi/rclone/mnt/gdrive'"));
    assert!(a.contains("curlrc/gdrive.curlrc"));
}

#[test]
fn ubuntu_file() {
    let out = render("profiles.toml", UBUNTU, "vps");
    assert!(out.contains("[vps]\nhost = 'vps.manselmi.com'\ninherit = 'base'\n\nlock = '''/tmp/resticprofile-untrusted.lock'''\n"), "{out}");
    assert!(out.contains("repository = 'rclone:restic-untrusted:'\n"));
    assert!(out.contains("# host = 'vps.manselmi.com'\n# user = 'ubuntu'\n"));
    assert!(out.contains("curlrc/vps.curlrc"));
    assert!(!out.contains("<no value>"));
}

#[test]
fn rendering_is_exact_outside_actions() {
    // Everything outside `{{ }}` is copied byte for byte: removing the defines' and actions'
    // output from a render of the ubuntu file with all lines that contain no action.
    let out = render("profiles.toml", UBUNTU, "vps");
    for line in UBUNTU
        .lines()
        .filter(|l| !l.contains("{{") && !l.contains("'''"))
    {
        assert!(out.contains(line), "missing line {line:?}");
    }
}
