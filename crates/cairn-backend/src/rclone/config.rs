//! The rclone backend's settings: `-o rclone.*` options, shell splitting of the command line
//! and Go-style durations (`1m`, `30s`, `1m30s`) as restic accepts them.

use crate::options::BackendOptions;
use cairn_repo::backend::BackendError;
use std::time::Duration;

/// The default `rclone.program`.
pub const DEFAULT_PROGRAM: &str = "rclone";
/// The default `rclone.args` (restic 0.14's).
pub const DEFAULT_ARGS: &str = "serve restic --stdio --b2-hard-delete";
/// The default `rclone.connections`.
pub const DEFAULT_CONNECTIONS: usize = 5;
/// The default `rclone.timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// The options restic knows for the rclone backend.
const KNOWN: [&str; 4] = [
    "rclone.program",
    "rclone.args",
    "rclone.timeout",
    "rclone.connections",
];

/// Everything needed to start rclone and talk to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The full command line: program, arguments, remote.
    pub argv: Vec<String>,
    /// How many requests may be in flight at once.
    pub connections: usize,
    /// How long to wait for rclone to answer the first request.
    pub timeout: Duration,
}

fn invalid(msg: String) -> BackendError {
    BackendError::Other(msg)
}

impl Config {
    /// Build the configuration for remote `remote` (the part after `rclone:`) from `opts`.
    pub fn new(remote: &str, opts: &BackendOptions) -> Result<Config, BackendError> {
        if remote.is_empty() {
            return Err(invalid(
                "rclone: missing remote; use rclone:remote:path or rclone:/local/path".into(),
            ));
        }
        if let Some(k) = opts
            .values
            .keys()
            .find(|k| k.starts_with("rclone.") && !KNOWN.contains(&k.as_str()))
        {
            return Err(invalid(format!(
                "unknown option {k:?}; the rclone backend knows {}",
                KNOWN.join(", ")
            )));
        }
        let program = opts.get("rclone.program").unwrap_or(DEFAULT_PROGRAM);
        let args = opts.get("rclone.args").unwrap_or(DEFAULT_ARGS);
        let mut argv = shell_split(program)
            .map_err(|e| invalid(format!("option rclone.program={program:?}: {e}")))?;
        if argv.is_empty() {
            return Err(invalid("option rclone.program is empty".into()));
        }
        argv.extend(
            shell_split(args).map_err(|e| invalid(format!("option rclone.args={args:?}: {e}")))?,
        );
        argv.push(remote.to_string());
        let connections = match opts.get_u64("rclone.connections").map_err(invalid)? {
            None => DEFAULT_CONNECTIONS,
            Some(0) => {
                return Err(invalid(
                    "option rclone.connections must be at least 1".into(),
                ));
            }
            Some(n) => usize::try_from(n).unwrap_or(usize::MAX).min(256),
        };
        let timeout = match opts.get("rclone.timeout") {
            None => DEFAULT_TIMEOUT,
            Some(v) => parse_duration(v)
                .map_err(|e| invalid(format!("option rclone.timeout={v:?}: {e}")))?,
        };
        Ok(Config {
            argv,
            connections,
            timeout,
        })
    }
}

/// Split a command string into words like a POSIX shell does (without expansions): blanks
/// separate words, single quotes keep everything literally, double quotes keep blanks and
/// honour `\"` and `\\`, a backslash outside quotes escapes the next character.
pub fn shell_split(s: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => cur.push(c),
                        None => return Err("single-quoted string not terminated".into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(e @ ('"' | '\\' | '$' | '`')) => cur.push(e),
                            Some(e) => {
                                cur.push('\\');
                                cur.push(e);
                            }
                            None => return Err("double-quoted string not terminated".into()),
                        },
                        Some(c) => cur.push(c),
                        None => return Err("double-quoted string not terminated".into()),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some(e) => cur.push(e),
                    None => return Err("backslash at the end".into()),
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

/// Parse a Go duration (`1m`, `90s`, `1m30s`, `1.5h`, `500ms`, `0`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    cairn_calendar::parse_go_duration(s).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(pairs: &[&str]) -> BackendOptions {
        BackendOptions {
            values: BackendOptions::parse_pairs(pairs.iter().copied()).unwrap(),
            ..Default::default()
        }
    }

    #[test]
    fn default_command_line_is_restics() {
        let c = Config::new("b2:bucket/path", &opts(&[])).unwrap();
        assert_eq!(
            c.argv,
            [
                "rclone",
                "serve",
                "restic",
                "--stdio",
                "--b2-hard-delete",
                "b2:bucket/path"
            ]
        );
        assert_eq!(c.connections, 5);
        assert_eq!(c.timeout, Duration::from_secs(60));
    }

    #[test]
    fn options_replace_program_and_args() {
        let c = Config::new(
            "/srv/repo",
            &opts(&[
                "rclone.program=ssh host '/opt/my rclone'",
                "rclone.args=serve restic --stdio -v",
                "rclone.connections=8",
                "rclone.timeout=1m30s",
            ]),
        )
        .unwrap();
        assert_eq!(
            c.argv,
            [
                "ssh",
                "host",
                "/opt/my rclone",
                "serve",
                "restic",
                "--stdio",
                "-v",
                "/srv/repo"
            ]
        );
        assert_eq!(c.connections, 8);
        assert_eq!(c.timeout, Duration::from_secs(90));
    }

    #[test]
    fn bad_options_are_errors() {
        for bad in [
            "rclone.connections=0",
            "rclone.connections=x",
            "rclone.timeout=10",
            "rclone.timeout=5d",
            "rclone.program=",
            "rclone.program='unterminated",
            "rclone.args=\"open",
            "rclone.bogus=1",
        ] {
            assert!(Config::new("r:", &opts(&[bad])).is_err(), "{bad} accepted");
        }
        assert!(Config::new("", &opts(&[])).is_err());
        // Options of other backends are not ours to judge.
        assert!(Config::new("r:", &opts(&["sftp.command=x"])).is_ok());
    }

    #[test]
    fn shell_splitting() {
        let s = |x: &str| shell_split(x).unwrap();
        assert_eq!(s("  a  b\tc "), ["a", "b", "c"]);
        assert_eq!(s(r#"a "b c" 'd e'"#), ["a", "b c", "d e"]);
        assert_eq!(s(r#"x"y z"w"#), ["xy zw"]);
        assert_eq!(s(r"a\ b c\\d"), ["a b", r"c\d"]);
        assert_eq!(s(r#""q\"uote" "back\slash""#), ["q\"uote", r"back\slash"]);
        assert_eq!(s("'' x"), ["", "x"]);
        assert!(s("").is_empty());
        assert!(shell_split("a\\").is_err());
        assert!(shell_split("'a").is_err());
        assert!(shell_split("\"a").is_err());
    }

    #[test]
    fn go_durations() {
        let d = |x: &str| parse_duration(x).unwrap();
        assert_eq!(d("1m"), Duration::from_secs(60));
        assert_eq!(d("30s"), Duration::from_secs(30));
        assert_eq!(d("1h2m3s"), Duration::from_secs(3723));
        assert_eq!(d("1.5s"), Duration::from_millis(1500));
        assert_eq!(d("250ms"), Duration::from_millis(250));
        assert_eq!(d("0"), Duration::ZERO);
        for bad in ["", "5", "s", "1x", "-1s", "1..2s"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} accepted");
        }
    }
}
