//! Template rendering of configuration files (§1.5 steps 2–3, §7.2): the render context, the
//! template data and the template set shared by the main file and its includes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::error::{ConfigError, ConfigErrorKind};

pub use template_impl::RuntimeFuncs;

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
    set: template_impl::TemplateSet,
}

impl Templates {
    pub(crate) fn new() -> Self {
        Templates {
            set: template_impl::TemplateSet::new(),
        }
    }

    /// Adds a file's text under `name`; `display` names the file in errors.
    pub(crate) fn add(&mut self, name: &str, display: &str, text: &str) -> Result<(), ConfigError> {
        self.set
            .add(name, text)
            .map_err(|e| template_error(display, &e.to_string()))
    }

    /// Renders the file added as `name` for `data`.
    pub(crate) fn render(
        &self,
        name: &str,
        display: &str,
        data: &RenderData<'_>,
        funcs: &dyn RuntimeFuncs,
    ) -> Result<String, ConfigError> {
        let value = template_impl::data_value(data);
        self.set
            .execute(name, &value, funcs)
            .map_err(|e| template_error(display, &e.to_string()))
    }
}

fn template_error(display: &str, message: &str) -> ConfigError {
    // Template errors usually carry "name:line:col"; keep the line when we can find it.
    let line = message
        .split(':')
        .skip(1)
        .find_map(|part| part.trim().parse::<usize>().ok());
    ConfigError::at(
        ConfigErrorKind::Template,
        display,
        line,
        format!("template error: {message}"),
    )
}

/// Stand-in until the `cairn-template` crate is merged: plain text passes through, any `{{`
/// is an error.
mod template_impl {
    use std::collections::BTreeMap;

    use super::{RenderData, slash};

    /// Functions with side effects offered to templates (`tempDir`, `tempFile`, `env`).
    pub trait RuntimeFuncs {}

    /// No runtime functions.
    pub(crate) struct NoFuncs;
    impl RuntimeFuncs for NoFuncs {}

    #[derive(Debug)]
    pub(crate) struct Error(String);
    impl std::fmt::Display for Error {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(&self.0)
        }
    }

    pub(crate) struct TemplateSet {
        texts: BTreeMap<String, String>,
    }

    impl TemplateSet {
        pub(crate) fn new() -> Self {
            TemplateSet {
                texts: BTreeMap::new(),
            }
        }
        pub(crate) fn add(&mut self, name: &str, text: &str) -> Result<(), Error> {
            self.texts.insert(name.to_string(), text.to_string());
            Ok(())
        }
        pub(crate) fn execute(
            &self,
            name: &str,
            _data: &BTreeMap<String, String>,
            _funcs: &dyn RuntimeFuncs,
        ) -> Result<String, Error> {
            let text = self
                .texts
                .get(name)
                .ok_or_else(|| Error(format!("no template {name}")))?;
            if text.contains("{{") {
                return Err(Error("templates are not supported yet".into()));
            }
            Ok(text.clone())
        }
    }

    pub(crate) fn data_value(data: &RenderData<'_>) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        m.insert("Profile.Name".into(), data.profile_name.to_string());
        m.insert("ConfigDir".into(), slash(data.config_dir));
        m
    }
}

pub(crate) use template_impl::NoFuncs;
