//! Secrets (§19): the [`Secret`] holder, `password-command` splitting and execution,
//! `password-file` reading, secret references (`op://`, `env:`, `file:`, `cmd:`, `keyring:`)
//! and masking of secrets in everything we print (§19.4).
//!
//! Every secret obtained through [`run_command`], [`read_password_file`] or [`resolve`] is also
//! registered with [`register_secret`], so [`redact`] removes it from logs, `ERROR_STDERR`, the
//! status file and metrics.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{LazyLock, OnceLock, RwLock};

/// Replacement text for masked values.
pub const MASK: &str = "×××";

/// A secret value: zeroised when dropped; `Debug` and `Display` print `×××`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: String) -> Secret {
        Secret(value)
    }

    /// The value, for handing to the code that needs it (never for printing).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        let mut bytes = std::mem::take(&mut self.0).into_bytes();
        for b in bytes.iter_mut() {
            // SAFETY: `b` is a valid, exclusive reference into the vector; a volatile write
            // keeps the compiler from removing the zeroing of memory about to be freed.
            unsafe { std::ptr::write_volatile(b, 0) };
        }
        std::sync::atomic::compiler_fence(std::sync::atomic::Ordering::SeqCst);
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

/// Obtaining a secret failed. Messages name the program or file, never the secret or output.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// A command line could not be split.
    #[error("cannot split command line: {0}")]
    Split(String),
    /// The command line is empty.
    #[error("the secret command is empty")]
    EmptyCommand,
    /// The program could not be started.
    #[error("cannot run secret command {program:?}: {source} (is it installed and on PATH?)")]
    Spawn {
        /// Program name.
        program: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The program failed.
    #[error("secret command {program:?} failed: {status}")]
    Failed {
        /// Program name.
        program: String,
        /// Exit status text.
        status: String,
    },
    /// The program printed nothing.
    #[error("secret command {program:?} printed nothing on stdout")]
    EmptyOutput {
        /// Program name.
        program: String,
    },
    /// A secret file could not be read.
    #[error("cannot read secret file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A secret file is empty (after trimming).
    #[error("secret file {} is empty", path.display())]
    EmptyFile {
        /// The file.
        path: PathBuf,
    },
    /// `env:NAME` names an unset or empty variable.
    #[error("environment variable {0} (from a secret reference env:{0}) is not set or empty")]
    EnvMissing(String),
    /// A reference is malformed.
    #[error("invalid secret reference {reference:?}: {message}")]
    BadReference {
        /// The reference (no secret in it).
        reference: String,
        /// What is wrong.
        message: String,
    },
    /// No keyring tool on this platform.
    #[error("keyring references are not supported on this platform")]
    NoKeyring,
}

/// Splits a command line like restic does for `password-command`: whitespace separates words,
/// single and double quotes group (and are removed), a backslash escapes the next character
/// (outside single quotes). No variable expansion, no globbing.
pub fn split_command_line(s: &str) -> Result<Vec<String>, SecretError> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some('\''), '\'') => quote = None,
            (Some('"'), '"') => quote = None,
            (Some('"') | None, '\\') => {
                let Some(next) = chars.next() else {
                    return Err(SecretError::Split(
                        "a backslash ends the command line".into(),
                    ));
                };
                cur.push(next);
                in_word = true;
            }
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (None, c) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if quote.is_some() {
        return Err(SecretError::Split("unterminated quote".into()));
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

/// Runs a command line (split with [`split_command_line`], no shell) with exactly `env` as its
/// environment (the program is looked up on `env`'s `PATH`), stdin the null device, stderr
/// inherited. Returns stdout trimmed of surrounding whitespace; a non-zero exit or empty output
/// is an error naming the program (never the output). The value is registered for [`redact`].
pub fn run_command(cmd: &str, env: &BTreeMap<String, String>) -> Result<Secret, SecretError> {
    let words = split_command_line(cmd)?;
    let Some((program, args)) = words.split_first() else {
        return Err(SecretError::EmptyCommand);
    };
    run_argv(program, args, env)
}

fn run_argv(
    program: &str,
    args: &[String],
    env: &BTreeMap<String, String>,
) -> Result<Secret, SecretError> {
    let out = Command::new(program)
        .args(args)
        .env_clear()
        .envs(env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|source| SecretError::Spawn {
            program: program.to_string(),
            source,
        })?;
    let stdout = Secret::new(String::from_utf8_lossy(&out.stdout).into_owned());
    let mut raw = out.stdout;
    raw.iter_mut().for_each(|b| *b = 0);
    if !out.status.success() {
        return Err(SecretError::Failed {
            program: program.to_string(),
            status: status_text(&out.status),
        });
    }
    let trimmed = stdout.expose().trim();
    if trimmed.is_empty() {
        return Err(SecretError::EmptyOutput {
            program: program.to_string(),
        });
    }
    let secret = Secret::new(trimmed.to_string());
    register_secret(secret.expose());
    Ok(secret)
}

/// Go-like text of an exit status: `exit status N` or `signal: N`.
pub(crate) fn status_text(status: &std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(sig)) => format!("signal: {}", signal_name(sig)),
        (None, None) => "unknown exit status".into(),
    }
}

fn signal_name(sig: i32) -> String {
    match sig {
        libc::SIGINT => "interrupt".into(),
        libc::SIGTERM => "terminated".into(),
        libc::SIGKILL => "killed".into(),
        libc::SIGHUP => "hangup".into(),
        libc::SIGABRT => "aborted".into(),
        libc::SIGPIPE => "broken pipe".into(),
        libc::SIGSEGV => "segmentation fault".into(),
        n => format!("signal {n}"),
    }
}

/// Reads a password file like restic: a byte order mark is removed (UTF-8, UTF-16 LE/BE; UTF-16
/// is converted), surrounding whitespace is trimmed; an empty result is an error. The value is
/// registered for [`redact`].
pub fn read_password_file(path: &Path) -> Result<Secret, SecretError> {
    let mut bytes = std::fs::read(path).map_err(|source| SecretError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let text = Secret::new(decode_text(&bytes));
    bytes.iter_mut().for_each(|b| *b = 0);
    let trimmed = text.expose().trim();
    if trimmed.is_empty() {
        return Err(SecretError::EmptyFile {
            path: path.to_path_buf(),
        });
    }
    let secret = Secret::new(trimmed.to_string());
    register_secret(secret.expose());
    Ok(secret)
}

fn decode_text(bytes: &[u8]) -> String {
    let utf16 = |rest: &[u8], le: bool| {
        let units: Vec<u16> = rest
            .chunks_exact(2)
            .map(|p| match p {
                [a, b] if le => u16::from_le_bytes([*a, *b]),
                [a, b] => u16::from_be_bytes([*a, *b]),
                _ => 0,
            })
            .collect();
        String::from_utf16_lossy(&units)
    };
    match bytes {
        [0xEF, 0xBB, 0xBF, rest @ ..] => String::from_utf8_lossy(rest).into_owned(),
        [0xFF, 0xFE, rest @ ..] => utf16(rest, true),
        [0xFE, 0xFF, rest @ ..] => utf16(rest, false),
        _ => String::from_utf8_lossy(bytes).into_owned(),
    }
}

/// Resolves a secret reference; `Ok(None)` for a plain value. Forms:
/// * `op://vault/item/field` — `op read --no-newline <ref>` (`op` from `CAIRN_OP` in `env` or
///   the process, else `op` on `env`'s `PATH`);
/// * `env:NAME` — the variable `NAME` of `env`;
/// * `file:PATH` — a file read like a password file;
/// * `cmd:COMMAND LINE` — a command run like `password-command`;
/// * `keyring:service/account` — Linux `secret-tool lookup service S account A`, macOS
///   `security find-generic-password -s S -a A -w`.
///
/// `env` is the complete environment for the helper programs. Resolved values are registered
/// for [`redact`].
pub fn resolve(value: &str, env: &BTreeMap<String, String>) -> Result<Option<Secret>, SecretError> {
    if value.starts_with("op://") {
        let op = env
            .get("CAIRN_OP")
            .cloned()
            .or_else(|| std::env::var("CAIRN_OP").ok())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "op".to_string());
        let args = vec!["read".to_string(), "--no-newline".into(), value.to_string()];
        return run_argv(&op, &args, env).map(Some);
    }
    if let Some(name) = value.strip_prefix("env:") {
        return match env.get(name).filter(|v| !v.is_empty()) {
            Some(v) => {
                register_secret(v);
                Ok(Some(Secret::new(v.clone())))
            }
            None => Err(SecretError::EnvMissing(name.to_string())),
        };
    }
    if let Some(path) = value.strip_prefix("file:") {
        return read_password_file(Path::new(path)).map(Some);
    }
    if let Some(cmd) = value.strip_prefix("cmd:") {
        return run_command(cmd, env).map(Some);
    }
    if let Some(spec) = value.strip_prefix("keyring:") {
        let Some((service, account)) = spec.rsplit_once('/') else {
            return Err(SecretError::BadReference {
                reference: value.to_string(),
                message: "expected keyring:SERVICE/ACCOUNT".into(),
            });
        };
        if service.is_empty() || account.is_empty() {
            return Err(SecretError::BadReference {
                reference: value.to_string(),
                message: "service and account must not be empty".into(),
            });
        }
        return keyring(service, account, env).map(Some);
    }
    Ok(None)
}

fn keyring(
    service: &str,
    account: &str,
    env: &BTreeMap<String, String>,
) -> Result<Secret, SecretError> {
    let args: Vec<String>;
    let program;
    if cfg!(target_os = "macos") {
        program = "security";
        args = ["find-generic-password", "-s", service, "-a", account, "-w"]
            .map(String::from)
            .to_vec();
    } else if cfg!(target_os = "linux") {
        program = "secret-tool";
        args = ["lookup", "service", service, "account", account]
            .map(String::from)
            .to_vec();
    } else {
        return Err(SecretError::NoKeyring);
    }
    run_argv(program, &args, env)
}

fn secret_registry() -> &'static RwLock<Vec<String>> {
    static REG: OnceLock<RwLock<Vec<String>>> = OnceLock::new();
    REG.get_or_init(|| RwLock::new(Vec::new()))
}

/// Remembers a secret value so [`redact`] replaces it everywhere. Values shorter than 4 bytes
/// are ignored (they would mask ordinary text).
pub fn register_secret(s: &str) {
    if s.len() < 4 {
        return;
    }
    let mut reg = match secret_registry().write() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    };
    if !reg.iter().any(|r| r == s) {
        reg.push(s.to_string());
        // Longest first, so a secret containing another is masked whole.
        reg.sort_by_key(|r| std::cmp::Reverse(r.len()));
    }
}

/// Replaces every registered secret in `text` with `×××`.
pub fn redact(text: &str) -> String {
    let reg = match secret_registry().read() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    };
    let mut out = text.to_string();
    for s in reg.iter() {
        if out.contains(s.as_str()) {
            out = out.replace(s.as_str(), MASK);
        }
    }
    out
}

/// `scheme://user:password@` (the password may not contain `/`, `@` or whitespace, as in a
/// URL authority).
static URL_CREDENTIALS: LazyLock<regex::Regex> = LazyLock::new(|| {
    #[allow(clippy::expect_used)]
    regex::Regex::new(r"([A-Za-z][A-Za-z0-9+.\-]*://[^:/@\s]*):([^@/\s]*)@")
        .expect("constant pattern")
});

/// Masks the password of every `scheme://user:password@host` in `s` (`user:×××@host`).
pub fn mask_url(s: &str) -> String {
    URL_CREDENTIALS
        .replace_all(s, |c: &regex::Captures| {
            let pre = c.get(1).map_or("", |m| m.as_str());
            let pass = c.get(2).map_or("", |m| m.as_str());
            if pass.is_empty() {
                format!("{pre}:@")
            } else {
                format!("{pre}:{MASK}@")
            }
        })
        .into_owned()
}

/// Whether the whole value of an environment variable with this name is secret
/// (`.+_KEY`, `.+_TOKEN`, `.*PASSWORD.*`, `.*SECRET.*`, case-insensitive).
pub fn is_secret_env_name(name: &str) -> bool {
    let n = name.to_ascii_uppercase();
    (n.len() > 4 && n.ends_with("_KEY"))
        || (n.len() > 6 && n.ends_with("_TOKEN"))
        || n.contains("PASSWORD")
        || n.contains("SECRET")
}

/// Whether a variable with this name may carry URL credentials (`.+_AUTH`, `.+_URL`).
fn is_url_env_name(name: &str) -> bool {
    let n = name.to_ascii_uppercase();
    (n.len() > 5 && n.ends_with("_AUTH")) || (n.len() > 4 && n.ends_with("_URL"))
}

/// The value of an environment variable as it may be shown: `×××` for secret names, URL
/// credentials masked for `_AUTH`/`_URL` names, registered secrets redacted in any case.
pub fn mask_env_value(name: &str, value: &str) -> String {
    if is_secret_env_name(name) {
        return MASK.to_string();
    }
    if is_url_env_name(name) {
        return redact(&mask_url(value));
    }
    redact(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_never_prints() {
        let s = Secret::new("hunter22".into());
        assert_eq!(format!("{s} {s:?}"), "××× ×××");
        assert_eq!(s.expose(), "hunter22");
    }

    #[test]
    fn split_like_restic() {
        let w = split_command_line(
            "env -u TMPDIR -- op read --no-newline -- 'op://v/i/[s/]f' \"a b\" c\\ d e\\\"f",
        )
        .unwrap();
        assert_eq!(
            w,
            vec![
                "env",
                "-u",
                "TMPDIR",
                "--",
                "op",
                "read",
                "--no-newline",
                "--",
                "op://v/i/[s/]f",
                "a b",
                "c d",
                "e\"f"
            ]
        );
        assert_eq!(split_command_line("  ").unwrap(), Vec::<String>::new());
        assert_eq!(split_command_line("a '' b").unwrap(), vec!["a", "", "b"]);
        assert_eq!(split_command_line("'it\\s'").unwrap(), vec!["it\\s"]);
        assert!(split_command_line("a 'b").is_err());
        assert!(split_command_line("a \\").is_err());
    }

    #[test]
    fn decode_boms() {
        assert_eq!(decode_text(b"\xEF\xBB\xBFpw\n"), "pw\n");
        let le: Vec<u8> = [0xFF, 0xFE]
            .into_iter()
            .chain("pä\n".encode_utf16().flat_map(|u| u.to_le_bytes()))
            .collect();
        assert_eq!(decode_text(&le), "pä\n");
        let be: Vec<u8> = [0xFE, 0xFF]
            .into_iter()
            .chain("pä".encode_utf16().flat_map(|u| u.to_be_bytes()))
            .collect();
        assert_eq!(decode_text(&be), "pä");
    }

    #[test]
    fn url_masking() {
        assert_eq!(
            mask_url("rest:https://user:pa%2Fss@host:8000/repo"),
            "rest:https://user:×××@host:8000/repo"
        );
        assert_eq!(
            mask_url("s3://k:s@h/b and https://a:b@c/"),
            "s3://k:×××@h/b and https://a:×××@c/"
        );
        assert_eq!(
            mask_url("https://host:8080/path@x"),
            "https://host:8080/path@x"
        );
        assert_eq!(mask_url("https://user@host/"), "https://user@host/");
        assert_eq!(mask_url("no url here"), "no url here");
    }

    #[test]
    fn env_name_rules() {
        for n in [
            "AWS_SECRET_ACCESS_KEY",
            "B2_ACCOUNT_KEY",
            "OP_SERVICE_ACCOUNT_TOKEN",
            "RESTIC_PASSWORD",
            "RCLONE_PASSWORD_COMMAND",
            "my_secret",
        ] {
            assert!(is_secret_env_name(n), "{n}");
        }
        for n in ["KEY", "_KEY", "TZ", "PATH", "HOME_URL", "TOKEN"] {
            assert!(!is_secret_env_name(n), "{n}");
        }
        assert_eq!(mask_env_value("RESTIC_PASSWORD", "x"), "×××");
        assert_eq!(
            mask_env_value("HEALTHCHECK_URL", "https://u:p@h/"),
            "https://u:×××@h/"
        );
        assert_eq!(mask_env_value("TZ", "UTC"), "UTC");
    }

    #[test]
    fn redact_registered() {
        register_secret("abc");
        register_secret("s3cr3t-value-unit");
        register_secret("s3cr3t-value-unit-longer");
        assert_eq!(
            redact("x s3cr3t-value-unit-longer y s3cr3t-value-unit abc"),
            "x ××× y ××× abc"
        );
    }
}
