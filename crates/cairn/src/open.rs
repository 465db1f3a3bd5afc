//! Finding the repository and its password from flags, environment and the default
//! local repository; opening or creating it.

use crate::cli::GlobalOpts;
use anyhow::{Context, Result, anyhow, bail};
use cairn_backend::{CachedBackend, LocalBackend};
use cairn_repo::backend::Backend;
use cairn_repo::compress::CompressionMode;
use cairn_repo::repository::{Repository, WriteOptions};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;

/// Read `CAIRN_<name>`, falling back to `RESTIC_<name>`.
pub fn env(name: &str) -> Option<String> {
    std::env::var(format!("CAIRN_{name}"))
        .ok()
        .or_else(|| std::env::var(format!("RESTIC_{name}")).ok())
        .filter(|v| !v.is_empty())
}

/// The embedded default repository and its generated password file.
#[derive(Debug, Clone)]
pub struct DefaultRepo {
    /// `$XDG_DATA_HOME/cairn/repo`.
    pub repo: PathBuf,
    /// `$XDG_CONFIG_HOME/cairn/default-repo.password`.
    pub password_file: PathBuf,
}

impl DefaultRepo {
    /// Locations following the XDG base directory rules.
    pub fn locate() -> Result<DefaultRepo> {
        let home = std::env::var_os("HOME").map(PathBuf::from);
        let xdg = |var: &str, fallback: &str| -> Result<PathBuf> {
            match std::env::var_os(var).filter(|v| !v.is_empty()) {
                Some(v) => Ok(PathBuf::from(v)),
                None => home
                    .as_ref()
                    .map(|h| h.join(fallback))
                    .ok_or_else(|| anyhow!("neither ${var} nor $HOME is set: pass --repo")),
            }
        };
        Ok(DefaultRepo {
            repo: xdg("XDG_DATA_HOME", ".local/share")?.join("cairn/repo"),
            password_file: xdg("XDG_CONFIG_HOME", ".config")?.join("cairn/default-repo.password"),
        })
    }
}

/// Where the repository is, after flags and environment.
#[derive(Debug, Clone)]
pub enum RepoLocation {
    /// Given explicitly.
    Explicit(String),
    /// Nothing configured: the default local repository.
    Default(DefaultRepo),
}

/// Resolve the repository location.
pub fn location(g: &GlobalOpts) -> Result<RepoLocation> {
    if let Some(r) = &g.repo {
        return Ok(RepoLocation::Explicit(r.clone()));
    }
    let file = g
        .repository_file
        .clone()
        .or_else(|| env("REPOSITORY_FILE").map(PathBuf::from));
    if let Some(f) = file {
        let s = std::fs::read_to_string(&f)
            .with_context(|| format!("reading repository file {}", f.display()))?;
        return Ok(RepoLocation::Explicit(s.trim().to_string()));
    }
    if let Some(r) = env("REPOSITORY") {
        return Ok(RepoLocation::Explicit(r));
    }
    Ok(RepoLocation::Default(DefaultRepo::locate()?))
}

/// Backend settings from the global flags (`-o key=value`, `--limit-upload`,
/// `--limit-download`, `--cacert`, `--tls-client-cert`).
pub fn backend_options(g: &GlobalOpts) -> Result<cairn_backend::BackendOptions> {
    let values = cairn_backend::BackendOptions::parse_pairs(g.option.iter().map(String::as_str))
        .map_err(|e| anyhow::anyhow!(e))?;
    Ok(cairn_backend::BackendOptions {
        values,
        limit_upload_kib: g.limit_upload,
        limit_download_kib: g.limit_download,
        ca_certs: g.cacert.clone(),
        tls_client_cert: g.tls_client_cert.clone(),
        insecure_tls: g.insecure_tls,
    })
}

/// Build the backend for a location string (`/path`, `local:/path`, `sftp:`, `s3:`,
/// `rest:`, `rclone:`).
pub fn backend_for(g: &GlobalOpts, loc: &str) -> Result<Arc<dyn Backend>> {
    let opts = backend_options(g)?;
    cairn_backend::open_backend(loc, &opts).with_context(|| format!("opening repository {loc}"))
}

static PRESET_PASSWORD: std::sync::Mutex<Option<Vec<u8>>> = std::sync::Mutex::new(None);

/// Set (or clear) the password the next repository opens use before any flag or variable: a
/// profile run resolves its password command once and hands the result over here.
pub fn set_preset_password(p: Option<Vec<u8>>) {
    if let Ok(mut g) = PRESET_PASSWORD.lock() {
        *g = p;
    }
}

fn preset_password() -> Option<Vec<u8>> {
    PRESET_PASSWORD.lock().ok().and_then(|g| g.clone())
}

fn trim_password(s: &str) -> Vec<u8> {
    s.trim().as_bytes().to_vec()
}

/// Read the password: flags, then environment, then the default repository's file, then a
/// prompt on a terminal.
pub fn password(g: &GlobalOpts, loc: &RepoLocation, confirm: bool) -> Result<Vec<u8>> {
    if g.insecure_no_password {
        return Ok(Vec::new());
    }
    if let Some(p) = preset_password() {
        return Ok(p);
    }
    let file = g
        .password_file
        .clone()
        .or_else(|| env("PASSWORD_FILE").map(PathBuf::from));
    if let Some(f) = file {
        let s = std::fs::read_to_string(&f)
            .with_context(|| format!("reading password file {}", f.display()))?;
        return Ok(trim_password(&s));
    }
    let cmd = g
        .password_command
        .clone()
        .or_else(|| env("PASSWORD_COMMAND"));
    if let Some(cmd) = cmd {
        return run_password_command(&cmd);
    }
    if let Some(p) = env("PASSWORD") {
        return Ok(p.into_bytes());
    }
    if let RepoLocation::Default(d) = loc
        && let Ok(s) = std::fs::read_to_string(&d.password_file)
    {
        return Ok(trim_password(&s));
    }
    if std::io::stdin().is_terminal() {
        let p = prompt("enter password for repository: ")?;
        if confirm {
            let again = prompt("enter password again: ")?;
            if again != p {
                bail!("passwords do not match");
            }
        }
        return Ok(p);
    }
    bail!(
        "no password given: use -p FILE, --password-command, or set CAIRN_PASSWORD / RESTIC_PASSWORD"
    )
}

/// Run a password command as restic does (split into arguments, no shell, stdin empty) and
/// take its trimmed output: the same runner as profile runs use.
pub fn run_password_command(cmd: &str) -> Result<Vec<u8>> {
    let env: std::collections::BTreeMap<String, String> = std::env::vars().collect();
    let secret = cairn_profile::secrets::run_command(cmd, &env)
        .map_err(|e| anyhow::anyhow!("password command {cmd:?}: {e}"))?;
    Ok(secret.expose().as_bytes().to_vec())
}

/// Ask for a password on the terminal without echo.
pub(crate) fn prompt(msg: &str) -> Result<Vec<u8>> {
    use nix::sys::termios::{LocalFlags, SetArg, tcgetattr, tcsetattr};
    use std::io::Write;
    eprint!("{msg}");
    let _ = std::io::stderr().flush();
    let stdin = std::io::stdin();
    let old = tcgetattr(&stdin).ok();
    if let Some(o) = &old {
        let mut t = o.clone();
        t.local_flags.remove(LocalFlags::ECHO);
        let _ = tcsetattr(&stdin, SetArg::TCSANOW, &t);
    }
    let mut line = String::new();
    let r = stdin.read_line(&mut line);
    if let Some(o) = &old {
        let _ = tcsetattr(&stdin, SetArg::TCSANOW, o);
    }
    eprintln!();
    r.context("reading password")?;
    Ok(line.trim_end_matches(['\n', '\r']).as_bytes().to_vec())
}

/// Write options from flags and environment.
pub fn write_options(g: &GlobalOpts) -> Result<WriteOptions> {
    let mut o = WriteOptions::default();
    if let Some(c) = g.compression.clone().or_else(|| env("COMPRESSION")) {
        o.compression = c.parse::<CompressionMode>().map_err(|_| {
            anyhow!("invalid compression mode {c:?}: use auto, off, max, fastest or better")
        })?;
    }
    let ps = match (g.pack_size, env("PACK_SIZE")) {
        (Some(p), _) => Some(p),
        (None, Some(s)) => Some(
            s.parse()
                .map_err(|_| anyhow!("invalid RESTIC_PACK_SIZE {s:?}"))?,
        ),
        _ => None,
    };
    if let Some(mib) = ps {
        if !(4..=128).contains(&mib) {
            bail!("--pack-size must be between 4 and 128 MiB, not {mib}");
        }
        o.pack_size = mib as usize * 1024 * 1024;
    }
    if let Some(n) = std::env::var("CAIRN_INDEX_FLUSH_PACKS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        o.index_flush_packs = std::cmp::max(1, n);
    }
    Ok(o)
}

/// The metadata cache directory (`--cache-dir`, `CAIRN_CACHE_DIR`/`RESTIC_CACHE_DIR`,
/// `$XDG_CACHE_HOME/cairn`, `~/.cache/cairn`), or `None` with `--no-cache`.
pub fn cache_dir(g: &GlobalOpts) -> Option<PathBuf> {
    if g.no_cache {
        return None;
    }
    if let Some(d) = g
        .cache_dir
        .clone()
        .or_else(|| env("CACHE_DIR").map(PathBuf::from))
    {
        return Some(d);
    }
    match std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        Some(x) => Some(PathBuf::from(x).join("cairn")),
        None => std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/cairn")),
    }
}

/// Create the cache directory with its `CACHEDIR.TAG` (so backup tools skip it).
fn ensure_cache_dir(dir: &std::path::Path) {
    if std::fs::create_dir_all(dir).is_ok() {
        let tag = dir.join("CACHEDIR.TAG");
        if !tag.exists() {
            let _ = std::fs::write(
                &tag,
                "Signature: 8a477f597d28d172789f06886806bc55\n# This file is a cache directory tag created by cairn.\n",
            );
        }
    }
}

/// Fail with "no repository" (exit code 10) when `location` has no config file; any other
/// error is returned at once (the backend layers already retried it).
pub fn require_config(backend: &dyn Backend, location: &str) -> Result<()> {
    match backend.stat(cairn_repo::backend::FileType::Config, "config") {
        Err(e) if e.is_not_found() => {
            Err(cairn_repo::RepoError::NoRepository(location.to_string()).into())
        }
        Err(e) => Err(e).with_context(|| format!("reading the config of {location}")),
        Ok(_) => Ok(()),
    }
}

/// Open the configured repository (not creating the default one).
pub fn open(g: &GlobalOpts) -> Result<Arc<Repository>> {
    let loc = location(g)?;
    let path = match &loc {
        RepoLocation::Explicit(s) => s.clone(),
        RepoLocation::Default(d) => {
            if !d.repo.join("config").exists() {
                return Err(cairn_repo::RepoError::NoRepository(format!(
                    "{} (no repository configured; `cairn backup PATH` creates this default one, or pass -r)",
                    d.repo.display()
                ))
                .into());
            }
            d.repo.display().to_string()
        }
    };
    let backend = backend_for(g, &path)?;
    require_config(backend.as_ref(), &path)?;
    let pw = password(g, &loc, false)?;
    let repo = Repository::open(backend, &pw, write_options(g)?)?;
    let repo = match cache_dir(g) {
        Some(dir) if wants_cache(&path) => with_cache(repo, &dir),
        _ => repo,
    };
    if let Some(dir) = cache_dir(g) {
        ensure_cache_dir(&dir);
    }
    Ok(Arc::new(repo))
}

/// Whether the repository at `loc` gets the metadata cache: remote repositories do; local
/// ones are on disk already, unless `CAIRN_CACHE_LOCAL=1` forces it (for testing the cache).
fn wants_cache(loc: &str) -> bool {
    let remote = cairn_backend::open::is_remote(loc);
    remote || std::env::var("CAIRN_CACHE_LOCAL").is_ok_and(|v| v == "1")
}

/// Put the metadata cache in `base` between an opened repository and its backend; without
/// a usable cache the repository is returned as it was.
fn with_cache(repo: Repository, base: &std::path::Path) -> Repository {
    let inner = Arc::clone(repo.backend());
    match CachedBackend::new(inner, base, &repo.config().id) {
        Ok(cached) => repo.with_backend(Arc::new(cached)),
        Err(e) => {
            tracing::warn!("not using the cache in {}: {e}", base.display());
            repo
        }
    }
}

/// Open the repository, creating the default local one (with a generated password) when no
/// repository is configured and it does not exist yet.
pub fn open_or_create_default(g: &GlobalOpts, quiet: bool) -> Result<Arc<Repository>> {
    let loc = location(g)?;
    if let RepoLocation::Default(d) = &loc
        && !d.repo.join("config").exists()
    {
        create_default(g, d, quiet)?;
    }
    open(g)
}

fn create_default(g: &GlobalOpts, d: &DefaultRepo, quiet: bool) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let pw = if d.password_file.exists() {
        trim_password(&std::fs::read_to_string(&d.password_file)?)
    } else {
        let dir = d
            .password_file
            .parent()
            .unwrap_or(std::path::Path::new("."));
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let pw = hex::encode(rand::random::<[u8; 32]>());
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&d.password_file)
            .with_context(|| format!("creating {}", d.password_file.display()))?;
        f.write_all(pw.as_bytes())?;
        f.write_all(b"\n")?;
        f.sync_all()?;
        pw.into_bytes()
    };
    let pw =
        if g.password_file.is_some() || g.password_command.is_some() || env("PASSWORD").is_some() {
            password(g, &RepoLocation::Default(d.clone()), false)?
        } else {
            pw
        };
    std::fs::create_dir_all(&d.repo).with_context(|| format!("creating {}", d.repo.display()))?;
    let backend: Arc<dyn Backend> = Arc::new(LocalBackend::new(&d.repo));
    Repository::init(backend, &pw, Default::default())?;
    if !quiet {
        eprintln!("created the default repository at {}", d.repo.display());
        eprintln!("its password is stored in {}", d.password_file.display());
        eprintln!(
            "WARNING: keep a copy of that password somewhere safe: without it the backups cannot be restored"
        );
    }
    Ok(())
}
