//! Telling a restic-style command line from a resticprofile-style one, and parsing the latter:
//! `cairn [flags] [--] [profile.]command [args]`, `command@profile`, `-n profile command`, and the
//! `RESTICPROFILE_*` environment equivalents. Invoked as `restic`, the binary takes restic's
//! command line; as `resticprofile`, resticprofile's.

use std::ffi::OsString;
use std::path::PathBuf;

/// Commands that belong to the profile layer, never to the engine.
pub const OWN_COMMANDS: &[&str] = &[
    "profiles",
    "show",
    "run-schedule",
    "schedule",
    "unschedule",
    "status",
    "generate",
    "random-key",
    "help",
];

/// Flags only resticprofile has (before the command word they select profile mode).
const RP_ONLY_FLAGS: &[&str] = &[
    "-c",
    "--config",
    "-f",
    "--format",
    "-n",
    "--name",
    "--profile",
    "-l",
    "--log",
    "--command-output",
    "--lock-wait",
    "--no-ansi",
    "--theme",
    "--no-prio",
    "--trace",
    "--stderr",
    "--ignore-on-battery",
    "-w",
    "--wait",
];

/// restic global flags that take a value (to find the command word of a restic-style line).
const RESTIC_VALUE_FLAGS: &[&str] = &[
    "-r",
    "--repo",
    "--repository-file",
    "-p",
    "--password-file",
    "--password-command",
    "--cache-dir",
    "--retry-lock",
    "--compression",
    "--pack-size",
    "-o",
    "--option",
    "--limit-upload",
    "--limit-download",
    "--cacert",
    "--tls-client-cert",
];

/// The parsed resticprofile-style command line.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RpArgs {
    /// `-c/--config`.
    pub config: Option<PathBuf>,
    /// `-f/--format`.
    pub format: Option<String>,
    /// `-n/--name/--profile`.
    pub name: Option<String>,
    /// `-l/--log`.
    pub log: Option<String>,
    /// `--command-output`.
    pub command_output: Option<String>,
    /// `--dry-run`.
    pub dry_run: bool,
    /// `--no-lock`.
    pub no_lock: bool,
    /// `--lock-wait`.
    pub lock_wait: Option<String>,
    /// `--no-ansi`.
    pub no_ansi: bool,
    /// `--no-prio`.
    pub no_prio: bool,
    /// `-q/--quiet`.
    pub quiet: bool,
    /// `-v/--verbose`.
    pub verbose: bool,
    /// `--trace`.
    pub trace: bool,
    /// `--stderr`.
    pub stderr: bool,
    /// `--ignore-on-battery[=PCT]` (100 when given without a value).
    pub ignore_on_battery: Option<u8>,
    /// `-h/--help` before the command.
    pub help: bool,
    /// Profile (or group) from the command word (`p.cmd`, `cmd@p`).
    pub profile: Option<String>,
    /// The command word (None = the configured default command).
    pub command: Option<String>,
    /// Arguments after the command word (passed to the command; they win over the profile).
    pub args: Vec<String>,
}

/// How the process was invoked.
#[derive(Debug)]
pub enum Invocation {
    /// restic's command line (parsed by clap as before).
    Restic(Vec<OsString>),
    /// resticprofile's command line.
    Profile(Box<RpArgs>),
}

fn env_bool(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| {
        matches!(
            v.as_str(),
            "1" | "t" | "T" | "true" | "TRUE" | "True" | "y" | "yes"
        )
    })
}

fn env_str(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Decide between restic and resticprofile command lines.
pub fn classify(argv: Vec<OsString>) -> Invocation {
    let prog = argv
        .first()
        .map(|a| {
            std::path::Path::new(a)
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default()
        })
        .unwrap_or_default();
    let strs: Vec<String> = argv
        .iter()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    if prog == "restic" {
        return Invocation::Restic(argv);
    }
    if prog == "resticprofile" || looks_like_profile_line(&strs) {
        return Invocation::Profile(Box::new(parse_rp(&strs)));
    }
    Invocation::Restic(argv)
}

fn looks_like_profile_line(args: &[String]) -> bool {
    let mut i = 0;
    while let Some(a) = args.get(i) {
        if a == "--" {
            return true;
        }
        let flag = a.split('=').next().unwrap_or(a);
        if RP_ONLY_FLAGS.contains(&flag) {
            return true;
        }
        if a.starts_with('-') {
            if RESTIC_VALUE_FLAGS.contains(&a.as_str()) {
                i += 1;
            }
            i += 1;
            continue;
        }
        // The command word.
        if OWN_COMMANDS.contains(&a.as_str()) {
            return true;
        }
        return (a.contains('.') || a.contains('@'))
            && !crate::profile::schema::is_engine_command(a);
    }
    false
}

/// Parse resticprofile's flags (stopping at the first non-flag word or `--`), then the command
/// word and its arguments. Environment variables fill what the flags leave unset.
pub fn parse_rp(args: &[String]) -> RpArgs {
    let mut r = RpArgs::default();
    let mut i = 0;
    let value = |i: &mut usize, a: &str| -> Option<String> {
        if let Some((_, v)) = a.split_once('=') {
            return Some(v.to_string());
        }
        *i += 1;
        args.get(*i).cloned()
    };
    while let Some(a) = args.get(i) {
        if a == "--" {
            i += 1;
            break;
        }
        if !a.starts_with('-') || a == "-" {
            break;
        }
        let flag = a.split('=').next().unwrap_or(a);
        match flag {
            "-c" | "--config" => r.config = value(&mut i, a).map(PathBuf::from),
            "-f" | "--format" => r.format = value(&mut i, a),
            "-n" | "--name" | "--profile" => r.name = value(&mut i, a),
            "-l" | "--log" => r.log = value(&mut i, a),
            "--command-output" => r.command_output = value(&mut i, a),
            "--lock-wait" => r.lock_wait = value(&mut i, a),
            "--theme" => {
                value(&mut i, a);
            }
            "--dry-run" => r.dry_run = true,
            "--no-lock" => r.no_lock = true,
            "--no-ansi" => r.no_ansi = true,
            "--no-prio" | "--no-priority" => r.no_prio = true,
            "-q" | "--quiet" => r.quiet = true,
            "-v" | "--verbose" => r.verbose = true,
            "--trace" => r.trace = true,
            "--stderr" => r.stderr = true,
            "-w" | "--wait" => {}
            "-h" | "--help" => r.help = true,
            "--ignore-on-battery" => {
                r.ignore_on_battery = Some(
                    a.split_once('=')
                        .and_then(|(_, v)| v.parse().ok())
                        .unwrap_or(100),
                )
            }
            _ => {
                // Unknown flag before the command: keep it for the command (restic flags such
                // as -r work after the command word too).
                r.args.push(a.clone());
            }
        }
        i += 1;
    }
    let rest: Vec<String> = args.get(i..).map(<[String]>::to_vec).unwrap_or_default();
    let early = std::mem::take(&mut r.args);
    if let Some((word, tail)) = rest.split_first() {
        let (profile, command) = split_command_word(word);
        r.profile = profile;
        r.command = command;
        r.args = tail.to_vec();
    }
    r.args.extend(early);
    // Environment equivalents (flags win).
    if r.config.is_none() {
        r.config = env_str("CAIRN_CONFIG")
            .or_else(|| env_str("RESTICPROFILE_CONFIG"))
            .map(PathBuf::from);
    }
    r.format = r.format.or_else(|| env_str("RESTICPROFILE_FORMAT"));
    r.name = r.name.or_else(|| env_str("RESTICPROFILE_NAME"));
    r.log = r.log.or_else(|| env_str("RESTICPROFILE_LOG"));
    r.command_output = r
        .command_output
        .or_else(|| env_str("RESTICPROFILE_COMMAND_OUTPUT"));
    r.lock_wait = r.lock_wait.or_else(|| env_str("RESTICPROFILE_LOCK_WAIT"));
    r.dry_run |= env_bool("RESTICPROFILE_DRY_RUN");
    r.no_lock |= env_bool("RESTICPROFILE_NO_LOCK");
    r.no_ansi |= env_bool("RESTICPROFILE_NO_ANSI");
    r.no_prio |= env_bool("RESTICPROFILE_NO_PRIORITY") || env_bool("RESTICPROFILE_NO_PRIO");
    r.quiet |= env_bool("RESTICPROFILE_QUIET");
    r.verbose |= env_bool("RESTICPROFILE_VERBOSE");
    r.trace |= env_bool("RESTICPROFILE_TRACE");
    r.stderr |= env_bool("RESTICPROFILE_STDERR");
    if r.ignore_on_battery.is_none()
        && let Some(v) = env_str("RESTICPROFILE_IGNORE_ON_BATTERY")
    {
        r.ignore_on_battery = match v.parse::<u8>() {
            Ok(n) => Some(n),
            Err(_) if env_bool("RESTICPROFILE_IGNORE_ON_BATTERY") => Some(100),
            Err(_) => None,
        };
    }
    r
}

/// Split `p.cmd` at the last dot, `cmd@p` at the `@`; a plain word is a command.
fn split_command_word(word: &str) -> (Option<String>, Option<String>) {
    let some = |s: &str| (!s.is_empty()).then(|| s.to_string());
    if let Some((cmd, p)) = word.split_once('@') {
        return (some(p), some(cmd));
    }
    if crate::profile::schema::is_engine_command(word) || OWN_COMMANDS.contains(&word) {
        return (None, Some(word.to_string()));
    }
    match word.rsplit_once('.') {
        Some((p, cmd)) => (
            Some(if p.is_empty() {
                "default".into()
            } else {
                p.into()
            }),
            some(cmd),
        ),
        None => (None, Some(word.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    fn rp(v: &[&str]) -> RpArgs {
        match classify(os(v)) {
            Invocation::Profile(r) => *r,
            Invocation::Restic(a) => panic!("restic mode for {a:?}"),
        }
    }

    #[test]
    fn restic_lines_stay_restic() {
        for v in [
            &["cairn", "backup", "/etc"][..],
            &["cairn", "-r", "/srv/repo", "snapshots"],
            &["cairn", "--repo", "a.b", "snapshots"],
            &["cairn", "restore", "latest", "--target", "/tmp/x.y"],
            &["cairn", "rebuild-index"],
            &["cairn", "--no-lock", "-q", "check"],
        ] {
            assert!(matches!(classify(os(v)), Invocation::Restic(_)), "{v:?}");
        }
        assert!(matches!(
            classify(os(&["/usr/local/bin/restic", "nidoking.backup"])),
            Invocation::Restic(_)
        ));
    }

    #[test]
    fn seed_user_systemd_and_launchd_lines() {
        // ExecStart of the seed user's template unit (after the wrapper adds --config).
        let r = rp(&[
            "cairn",
            "--config",
            "/home/ubuntu/.config/resticprofile/profiles.toml",
            "--lock-wait",
            "5m",
            "--log",
            "/home/ubuntu/.config/resticprofile/log/vps/backup.log",
            "--no-ansi",
            "--no-prio",
            "--",
            "vps.backup",
        ]);
        assert_eq!(r.profile.as_deref(), Some("vps"));
        assert_eq!(r.command.as_deref(), Some("backup"));
        assert_eq!(r.lock_wait.as_deref(), Some("5m"));
        assert!(r.no_ansi && r.no_prio);
        assert_eq!(
            r.log.as_deref(),
            Some("/home/ubuntu/.config/resticprofile/log/vps/backup.log")
        );
        let r = rp(&["resticprofile", "nidoking.backup"]);
        assert_eq!(
            (r.profile.as_deref(), r.command.as_deref()),
            (Some("nidoking"), Some("backup"))
        );
    }

    #[test]
    fn command_word_forms() {
        let r = rp(&["cairn", "backup@vps", "--tag", "x"]);
        assert_eq!(
            (r.profile.as_deref(), r.command.as_deref()),
            (Some("vps"), Some("backup"))
        );
        assert_eq!(r.args, ["--tag", "x"]);
        let r = rp(&["cairn", "-n", "manselmi", "snapshots"]);
        assert_eq!(r.name.as_deref(), Some("manselmi"));
        assert_eq!(r.command.as_deref(), Some("snapshots"));
        let r = rp(&["cairn", "my.host.name.check"]);
        assert_eq!(r.profile.as_deref(), Some("my.host.name"));
        assert_eq!(r.command.as_deref(), Some("check"));
        let r = rp(&["cairn", ".check"]);
        assert_eq!(r.profile.as_deref(), Some("default"));
        let r = rp(&["cairn", "manselmi.repair", "snapshots"]);
        assert_eq!(r.command.as_deref(), Some("repair"));
        assert_eq!(r.args, ["snapshots"]);
        let r = rp(&["cairn", "profiles"]);
        assert_eq!(r.command.as_deref(), Some("profiles"));
        let r = rp(&["cairn", "show", "nidoking"]);
        assert_eq!(r.command.as_deref(), Some("show"));
        assert_eq!(r.args, ["nidoking"]);
        let r = rp(&["resticprofile", "--dry-run", "-v", "p."]);
        assert!(r.dry_run && r.verbose);
        assert_eq!(r.profile.as_deref(), Some("p"));
        assert_eq!(r.command, None);
        let r = rp(&["cairn", "--ignore-on-battery=20", "p.backup"]);
        assert_eq!(r.ignore_on_battery, Some(20));
    }
}
