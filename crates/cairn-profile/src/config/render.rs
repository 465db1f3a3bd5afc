//! Template rendering of configuration files (§1.5 steps 2–3, §7.2): the render context, the
//! template data and the template set shared by the main file and its includes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::error::{ConfigError, ConfigErrorKind};

pub use cairn_template::RuntimeFuncs;
use cairn_template::{TemplateError, TemplateSet, Value};

/// What templates see besides the profile name (§7.2). Fixed per process, except
/// `current_dir` (changes after a `base-dir` chdir) and `now`.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderContext {
    /// `.StartupDir`: the working directory when the process started.
    pub startup_dir: PathBuf,
    /// `.CurrentDir`: the working directory at render time.
    pub current_dir: PathBuf,
    /// `.TempDir`: `$TMPDIR` verbatim (may end with `/`), else `/tmp`.
    pub temp_dir: String,
    /// `.BinaryDir`: directory of the running executable.
    pub binary_dir: PathBuf,
    /// `.Hostname`: the host name, `localhost` when unknown.
    pub hostname: String,
    /// `.Env`: the process environment.
    pub env: BTreeMap<String, String>,
    /// `.Now`: load time.
    pub now: chrono::DateTime<chrono::FixedOffset>,
    /// `.OS`: Go spelling (`linux`, `darwin`, ...).
    pub os: String,
    /// `.Arch`: Go spelling (`amd64`, `arm64`, ...).
    pub arch: String,
}

impl RenderContext {
    /// The context of this process: cwd, `$TMPDIR`, executable dir, hostname, environment, now.
    pub fn from_process() -> Self {
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
        let temp_dir = std::env::var("TMPDIR")
            .ok()
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| "/tmp".to_string());
        let binary_dir = std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf))
            .unwrap_or_default();
        let hostname = nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".to_string());
        RenderContext {
            startup_dir: cwd.clone(),
            current_dir: cwd,
            temp_dir,
            binary_dir,
            hostname,
            env: std::env::vars().collect(),
            now: chrono::Local::now().fixed_offset(),
            os: go_os(std::env::consts::OS).to_string(),
            arch: go_arch(std::env::consts::ARCH).to_string(),
        }
    }
}

/// Go's `GOOS` name for a Rust target OS name.
pub fn go_os(rust: &str) -> &str {
    match rust {
        "macos" => "darwin",
        other => other,
    }
}

/// Go's `GOARCH` name for a Rust target architecture name.
pub fn go_arch(rust: &str) -> &str {
    match rust {
        "x86_64" => "amd64",
        "x86" => "386",
        "aarch64" => "arm64",
        "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
        "powerpc64" => "ppc64",
        "powerpc" => "ppc",
        "loongarch64" => "loong64",
        "mips64" if cfg!(target_endian = "little") => "mips64le",
        "mips" if cfg!(target_endian = "little") => "mipsle",
        other => other,
    }
}

/// Path text as templates see it: forward slashes.
fn slash(p: &Path) -> String {
    p.display().to_string().replace('\\', "/")
}

/// The data of one rendering pass.
pub(crate) struct RenderData<'a> {
    pub(crate) profile_name: &'a str,
    pub(crate) config_dir: &'a Path,
    pub(crate) ctx: &'a RenderContext,
}

/// The templates of the main file and its includes (one set: `define`s are shared).
pub(crate) struct Templates {
    set: TemplateSet,
}

impl Templates {
    pub(crate) fn new() -> Self {
        Templates {
            set: TemplateSet::new(),
        }
    }

    /// Adds a file's text under `name`; `display` names the file in errors.
    pub(crate) fn add(&mut self, name: &str, display: &str, text: &str) -> Result<(), ConfigError> {
        self.set
            .add(name, text)
            .map_err(|e| template_error(display, &e))
    }

    /// Renders the file added as `name` for `data`.
    pub(crate) fn render(
        &self,
        name: &str,
        display: &str,
        data: &RenderData<'_>,
        funcs: &dyn RuntimeFuncs,
    ) -> Result<String, ConfigError> {
        let value = data_value(data);
        self.set
            .execute(name, &value, funcs)
            .map_err(|e| template_error(display, &e))
    }
}

fn template_error(display: &str, e: &TemplateError) -> ConfigError {
    let line = (e.line > 0).then_some(e.line);
    // Errors raised inside a `define` of another file name that file.
    let file = if e.file.starts_with("__config:") {
        display.to_string()
    } else {
        e.file.clone()
    };
    ConfigError::at(
        ConfigErrorKind::Template,
        file,
        line,
        format!("template error: {}", e.message),
    )
}

/// The template data of §7.2: `.Profile.Name`, `.Now`, `.ConfigDir`, `.StartupDir`,
/// `.CurrentDir`, `.TempDir`, `.BinaryDir`, `.Hostname`, `.OS`, `.Arch`, `.Env` (every name
/// also upper-cased), `.Schedule.Name` (empty).
pub(crate) fn data_value(data: &RenderData<'_>) -> Value {
    let mut values = context_values(data.ctx);
    values.insert(
        "Profile".into(),
        Value::map([("Name", Value::str(data.profile_name))]),
    );
    values.insert("ConfigDir".into(), Value::str(slash(data.config_dir)));
    values.insert("Schedule".into(), Value::map([("Name", Value::str(""))]));
    Value::Map(values)
}

/// The values of §7.2 that come from the process, not the configuration: `.Now`,
/// `.StartupDir`, `.CurrentDir`, `.TempDir`, `.BinaryDir`, `.Hostname`, `.OS`, `.Arch`, `.Env`
/// (every name also upper-cased). Shared by configuration and HTTP body templates.
pub(crate) fn context_values(ctx: &RenderContext) -> BTreeMap<String, Value> {
    let mut env: BTreeMap<String, Value> = BTreeMap::new();
    for (k, v) in &ctx.env {
        env.entry(k.to_uppercase())
            .or_insert_with(|| Value::str(v.clone()));
    }
    for (k, v) in &ctx.env {
        env.insert(k.clone(), Value::str(v.clone()));
    }
    [
        ("Now", Value::Time(ctx.now)),
        ("StartupDir", Value::str(slash(&ctx.startup_dir))),
        ("CurrentDir", Value::str(slash(&ctx.current_dir))),
        ("TempDir", Value::str(ctx.temp_dir.replace('\\', "/"))),
        ("BinaryDir", Value::str(slash(&ctx.binary_dir))),
        ("Hostname", Value::str(ctx.hostname.clone())),
        ("OS", Value::str(ctx.os.clone())),
        ("Arch", Value::str(ctx.arch.clone())),
        ("Env", Value::Map(env)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// Runtime functions that do nothing harmful: used for the discovery pass of
/// [`super::Config::load`] (`tempDir`/`tempFile`/`env` give placeholder paths, nothing is
/// created).
pub(crate) struct NoFuncs;

impl RuntimeFuncs for NoFuncs {
    fn temp_dir(&self) -> Result<String, String> {
        Ok("/nonexistent/cairn-temp".into())
    }
    fn temp_file(&self, name: &str) -> Result<String, String> {
        Ok(format!("/nonexistent/cairn-temp/{name}"))
    }
    fn env_file(&self) -> Result<String, String> {
        Ok("/nonexistent/cairn-temp/profile.env".into())
    }
}

/// Wraps the caller's functions and records the dotenv files `{{ env }}` handed out, so they
/// can be appended to the profile's `env-file` (§1.5 step 9).
pub(crate) struct Recording<'a> {
    pub(crate) inner: &'a dyn RuntimeFuncs,
    pub(crate) env_files: std::cell::RefCell<Vec<String>>,
}

impl RuntimeFuncs for Recording<'_> {
    fn temp_dir(&self) -> Result<String, String> {
        self.inner.temp_dir()
    }
    fn temp_file(&self, name: &str) -> Result<String, String> {
        self.inner.temp_file(name)
    }
    fn env_file(&self) -> Result<String, String> {
        let f = self.inner.env_file()?;
        let mut files = self.env_files.borrow_mut();
        if !files.contains(&f) {
            files.push(f.clone());
        }
        Ok(f)
    }
}
