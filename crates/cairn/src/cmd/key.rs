//! `cairn key`: list, add, remove and change repository keys (passwords), like restic's
//! `key list|add|remove|passwd`.

use crate::cli::GlobalOpts;
use anyhow::{Context, Result, bail};
use cairn_repo::backend::FileType;
use cairn_repo::key::KdfParams;
use cairn_repo::repository::LockMode;
use clap::{Args, Subcommand};
use std::io::IsTerminal;
use std::path::PathBuf;

/// `key` options.
#[derive(Debug, Args)]
pub struct KeyArgs {
    /// What to do with the keys.
    #[command(subcommand)]
    pub command: KeyCommand,
}

/// The `key` sub-commands.
#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// List keys (passwords); `*` marks the key in use.
    List,
    /// Add a new key (password) to the repository; prints the new key ID.
    Add(NewKeyArgs),
    /// Remove key ID (password) from the repository (not the key in use).
    Remove {
        /// ID (or unique prefix) of the key to remove.
        id: String,
    },
    /// Change the password: add a new key, then remove the key in use.
    Passwd(NewKeyArgs),
}

/// Options for a new key (`key add`, `key passwd`).
#[derive(Debug, Args)]
pub struct NewKeyArgs {
    /// File from which to read the new password.
    #[arg(long, value_name = "FILE")]
    pub new_password_file: Option<PathBuf>,
    /// Add an empty password for the repository (insecure).
    #[arg(long)]
    pub new_insecure_no_password: bool,
    /// The username for the new key (default: the current user).
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,
    /// The hostname for the new key (default: this host).
    #[arg(long, value_name = "HOST")]
    pub host: Option<String>,
}

/// restic's time format for key creation times (local time).
const TIME_FORMAT: &str = "%Y-%m-%d %H:%M:%S";

/// Run `cairn key`.
pub fn run(g: &GlobalOpts, a: &KeyArgs) -> Result<()> {
    match &a.command {
        KeyCommand::List => list(g),
        KeyCommand::Add(n) => add(g, n, false),
        KeyCommand::Passwd(n) => add(g, n, true),
        KeyCommand::Remove { id } => remove(g, id),
    }
}

/// restic's key list entry (`--json` field names).
#[derive(Debug, serde::Serialize)]
struct KeyJson {
    current: bool,
    id: String,
    #[serde(rename = "userName")]
    user_name: String,
    #[serde(rename = "hostName")]
    host_name: String,
    created: String,
}

/// A key file's creation time (RFC 3339) as local `YYYY-MM-DD HH:MM:SS`; unparsable times
/// are shown as stored.
fn created_local(s: &str) -> String {
    match chrono::DateTime::parse_from_rfc3339(s) {
        Ok(t) => t
            .with_timezone(&chrono::Local)
            .format(TIME_FORMAT)
            .to_string(),
        Err(_) => s.to_string(),
    }
}

fn list(g: &GlobalOpts) -> Result<()> {
    let repo = crate::open::open(g)?;
    let _lock = super::lock(g, &repo, LockMode::Shared)?;
    let mut keys = Vec::new();
    for k in repo.list_keys()? {
        match &k.key {
            Ok(kf) => keys.push(KeyJson {
                current: k.current,
                id: k.id.to_hex(),
                user_name: kf.username.clone(),
                host_name: kf.hostname.clone(),
                created: created_local(&kf.created),
            }),
            Err(e) => eprintln!("LoadKey() failed: key {}: {e}", k.id.short()),
        }
    }
    if g.json {
        crate::output::json_line(&keys);
        return Ok(());
    }
    let rows: Vec<Vec<String>> = keys
        .iter()
        .map(|k| {
            let mark = if k.current { "*" } else { " " };
            vec![
                format!("{mark}{}", k.id.get(..8).unwrap_or(&k.id)),
                k.user_name.clone(),
                k.host_name.clone(),
                k.created.clone(),
            ]
        })
        .collect();
    print!(
        "{}",
        super::cache::render_table(&[" ID", "User", "Host", "Created"], &rows)
    );
    Ok(())
}

/// `key add` (and `key passwd` with `replace`): add a verified key for the new password;
/// for `passwd`, then remove the key in use.
fn add(g: &GlobalOpts, n: &NewKeyArgs, replace: bool) -> Result<()> {
    let repo = crate::open::open(g)?;
    // restic: `key add` takes a non-exclusive lock (also with --no-lock), `passwd` an
    // exclusive one.
    let lock_opts = GlobalOpts {
        no_lock: false,
        ..g.clone()
    };
    let mode = if replace {
        LockMode::Exclusive
    } else {
        LockMode::Shared
    };
    let _lock = super::lock(&lock_opts, &repo, mode)?;
    let pw = new_password(n)?;
    let user = n.user.clone().unwrap_or_default();
    let host = n.host.clone().unwrap_or_default();
    let params = KdfParams::default_params();
    let old = repo.key_id();
    let id = if replace {
        repo.change_password(&pw, &user, &host, params)
    } else {
        repo.add_key(&pw, &user, &host, params)
    }
    .context("creating new key failed")?;
    if g.json {
        let mut v = serde_json::json!({
            "message_type": if replace { "key_passwd" } else { "key_add" },
            "id": id.to_hex(),
        });
        if replace {
            v["removed"] = serde_json::Value::String(old.to_hex());
        }
        crate::output::json_line(&v);
    } else if !g.quiet {
        println!("saved new key with ID {}", id.to_hex());
    }
    Ok(())
}

fn remove(g: &GlobalOpts, prefix: &str) -> Result<()> {
    let repo = crate::open::open(g)?;
    let lock_opts = GlobalOpts {
        no_lock: false,
        ..g.clone()
    };
    let _lock = super::lock(&lock_opts, &repo, LockMode::Exclusive)?;
    let id = repo.find_id(FileType::Key, prefix)?;
    repo.remove_key(&id)?;
    if g.json {
        crate::output::json_line(
            &serde_json::json!({"message_type": "key_remove", "id": id.to_hex()}),
        );
    } else if !g.quiet {
        println!("removed key {}", id.to_hex());
    }
    Ok(())
}

/// The new password: `--new-password-file` (trimmed), empty with
/// `--new-insecure-no-password`, else prompted twice on a terminal or one line read from
/// standard input. Empty passwords need `--new-insecure-no-password`, like restic.
fn new_password(n: &NewKeyArgs) -> Result<Vec<u8>> {
    if n.new_insecure_no_password {
        if n.new_password_file.is_some() {
            bail!("only either --new-password-file or --new-insecure-no-password may be specified");
        }
        return Ok(Vec::new());
    }
    let pw = if let Some(f) = &n.new_password_file {
        let s = std::fs::read_to_string(f)
            .with_context(|| format!("reading password file {}", f.display()))?;
        s.trim().as_bytes().to_vec()
    } else if std::io::stdin().is_terminal() {
        let p = crate::open::prompt("enter new password: ")?;
        let again = crate::open::prompt("enter password again: ")?;
        if again != p {
            bail!("passwords do not match");
        }
        p
    } else {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .context("reading the new password from standard input")?;
        line.trim_end_matches(['\n', '\r']).as_bytes().to_vec()
    };
    if pw.is_empty() {
        bail!(
            "an empty password is not allowed by default. Pass the flag `--new-insecure-no-password` to disable this check"
        );
    }
    Ok(pw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_times_are_shown_in_local_time() {
        let s = created_local("2026-11-26T13:16:12.565777808+01:00");
        let want = chrono::DateTime::parse_from_rfc3339("2026-11-26T13:16:12+01:00")
            .unwrap()
            .with_timezone(&chrono::Local)
            .format(TIME_FORMAT)
            .to_string();
        assert_eq!(s, want);
        assert_eq!(created_local("garbage"), "garbage");
    }

    #[test]
    fn new_password_sources() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("pw");
        std::fs::write(&f, "  secret \n").unwrap();
        let args = |file: Option<PathBuf>, insecure: bool| NewKeyArgs {
            new_password_file: file,
            new_insecure_no_password: insecure,
            user: None,
            host: None,
        };
        assert_eq!(
            new_password(&args(Some(f.clone()), false)).unwrap(),
            b"secret"
        );
        assert!(new_password(&args(None, true)).unwrap().is_empty());
        assert!(new_password(&args(Some(f), true)).is_err());
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "\n").unwrap();
        assert!(new_password(&args(Some(empty), false)).is_err());
    }
}
