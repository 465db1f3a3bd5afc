//! Helpers shared by the schedule integration tests.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use cairn_profile::schedule::JobContext;
use cairn_profile::types::ScheduleSpec;

/// Path of an external program, or None ("skipping") when it is missing; panics instead
/// when CAIRN_REQUIRE_EXTERNAL=1.
pub fn external(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        if std::env::var("CAIRN_REQUIRE_EXTERNAL").as_deref() == Ok("1") {
            panic!("{name} is required (CAIRN_REQUIRE_EXTERNAL=1) but not on PATH");
        }
        eprintln!("skipping: {name} not found on PATH");
    }
    found
}

/// A context for tests writing into `dir`.
pub fn ctx(dir: &Path) -> JobContext {
    JobContext {
        binary: "/bin/true".into(),
        config_file: "/home/ubuntu/.config/resticprofile/profiles.toml".into(),
        working_dir: "/home/ubuntu".into(),
        is_root: true,
        home: "/home/ubuntu".into(),
        user: "root".into(),
        sudo_user: Some("ubuntu".into()),
        uid: 0,
        env: BTreeMap::from([
            (
                "PATH".to_string(),
                "/usr/local/bin:/usr/bin:/bin".to_string(),
            ),
            ("TZ".to_string(), "UTC".to_string()),
        ]),
        unit_dir_override: Some(dir.to_path_buf()),
    }
}

/// A spec for `command@profile` at the given expressions.
pub fn spec(profile: &str, command: &str, at: &[&str]) -> ScheduleSpec {
    ScheduleSpec {
        profile: profile.into(),
        command: command.into(),
        at: at.iter().map(|s| s.to_string()).collect(),
        ..ScheduleSpec::default()
    }
}

/// `KEY=value` directive values of an INI-style unit file, per section.
pub fn unit_directives(text: &str) -> BTreeMap<(String, String), Vec<String>> {
    let mut out: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    let mut section = String::new();
    for line in text.lines() {
        let l = line.trim();
        if l.is_empty() || l.starts_with('#') || l.starts_with(';') {
            continue;
        }
        if l.starts_with('[') {
            section = l.trim_matches(['[', ']']).to_string();
            continue;
        }
        if let Some((k, v)) = l.split_once('=') {
            out.entry((section.clone(), k.trim().to_string()))
                .or_default()
                .push(v.trim().to_string());
        }
    }
    out
}
