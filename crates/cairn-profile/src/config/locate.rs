//! Finding the configuration file (§1.1): our own names first, then resticprofile's search list.

use std::path::{Path, PathBuf};

use super::error::{ConfigError, ConfigErrorKind};

/// Extensions tried for a name without one, in resticprofile's order (`.hcl` is not supported).
const EXTENSIONS: [&str; 5] = ["conf", "yaml", "toml", "json", "yml"];

/// The Unix directories resticprofile searches after the XDG ones.
const UNIX_DIRS: [&str; 9] = [
    "/usr/local/etc/",
    "/usr/local/etc/restic/",
    "/usr/local/etc/resticprofile/",
    "/etc/",
    "/etc/restic/",
    "/etc/resticprofile/",
    "/opt/local/etc/",
    "/opt/local/etc/restic/",
    "/opt/local/etc/resticprofile/",
];

/// What the search depends on, so tests can fix it.
#[derive(Debug, Clone, Default)]
pub(crate) struct SearchEnv {
    pub(crate) cwd: PathBuf,
    pub(crate) home: Option<PathBuf>,
    pub(crate) xdg_config_home: Option<PathBuf>,
    pub(crate) xdg_config_dirs: Vec<PathBuf>,
    pub(crate) macos: bool,
}

impl SearchEnv {
    fn from_process() -> Self {
        let nonempty = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
        SearchEnv {
            cwd: std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
            home: nonempty("HOME").map(PathBuf::from),
            xdg_config_home: nonempty("XDG_CONFIG_HOME").map(PathBuf::from),
            xdg_config_dirs: nonempty("XDG_CONFIG_DIRS")
                .map(|v| {
                    std::env::split_paths(&v)
                        .filter(|p| !p.as_os_str().is_empty())
                        .collect()
                })
                .unwrap_or_default(),
            macos: cfg!(target_os = "macos"),
        }
    }

    fn config_home(&self) -> Option<PathBuf> {
        self.xdg_config_home
            .clone()
            .or_else(|| self.home.as_ref().map(|h| h.join(".config")))
    }

    /// Directories searched for a relative name, after the current directory.
    pub(crate) fn search_dirs(&self) -> Vec<PathBuf> {
        let mut dirs = Vec::new();
        if let Some(ch) = self.config_home() {
            dirs.push(ch.join("resticprofile"));
        }
        if self.macos {
            if let Some(home) = &self.home {
                dirs.push(home.join("Library/Preferences/resticprofile"));
            }
            dirs.push(PathBuf::from("/Library/Preferences/resticprofile"));
        }
        if self.xdg_config_dirs.is_empty() {
            if !self.macos {
                dirs.push(PathBuf::from("/etc/xdg/resticprofile"));
            }
        } else {
            dirs.extend(self.xdg_config_dirs.iter().map(|d| d.join("resticprofile")));
        }
        dirs.extend(UNIX_DIRS.iter().map(PathBuf::from));
        if let Some(home) = &self.home {
            dirs.push(home.clone());
        }
        dirs
    }

    /// Our own default files, tried before resticprofile's names.
    fn own_defaults(&self) -> Vec<PathBuf> {
        let mut files = vec![self.cwd.join("cairn.toml")];
        if let Some(ch) = self.config_home() {
            let dir = ch.join("cairn");
            files.extend(EXTENSIONS.iter().map(|e| dir.join(format!("profiles.{e}"))));
        }
        files
    }
}

/// Finds the configuration file. `given` is the `-c/--config` value (None = default name
/// `profiles`). A name with an extension is looked up as is; without one, `.conf`, `.yaml`,
/// `.toml`, `.json`, `.yml` are tried. Relative names are searched in the current directory,
/// then `$XDG_CONFIG_HOME/resticprofile` (`~/.config/resticprofile`), the macOS preference
/// folders, `$XDG_CONFIG_DIRS/resticprofile` (`/etc/xdg/resticprofile`), `/usr/local/etc…`,
/// `/etc…`, `/opt/local/etc…` and the home directory. Without `given`, `./cairn.toml` and
/// `~/.config/cairn/profiles.*` come first.
pub fn locate(given: Option<&Path>) -> Result<PathBuf, ConfigError> {
    locate_with(given, &SearchEnv::from_process())
}

pub(crate) fn locate_with(given: Option<&Path>, env: &SearchEnv) -> Result<PathBuf, ConfigError> {
    if given.is_none()
        && let Some(found) = env.own_defaults().into_iter().find(|f| f.is_file())
    {
        return Ok(found);
    }
    let name = given.unwrap_or(Path::new("profiles"));
    let names: Vec<PathBuf> = if name.extension().is_some() {
        vec![name.to_path_buf()]
    } else {
        EXTENSIONS
            .iter()
            .map(|e| {
                let mut s = name.as_os_str().to_owned();
                s.push(".");
                s.push(e);
                PathBuf::from(s)
            })
            .collect()
    };
    let dirs = env.search_dirs();
    for candidate in &names {
        let direct = if candidate.is_absolute() {
            candidate.clone()
        } else {
            env.cwd.join(candidate)
        };
        if direct.is_file() {
            return Ok(direct);
        }
        if candidate.is_absolute() {
            continue;
        }
        if let Some(found) = dirs.iter().map(|d| d.join(candidate)).find(|p| p.is_file()) {
            return Ok(found);
        }
    }
    let what = if name.extension().is_some() {
        format!("`{}`", name.display())
    } else {
        format!(
            "`{}` (with extension .{})",
            name.display(),
            EXTENSIONS.join(", .")
        )
    };
    let dirs_text: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
    Err(ConfigError::new(
        ConfigErrorKind::NotFound,
        format!(
            "configuration file {what} not found in the current directory nor in {}; give its path with --config",
            dirs_text.join(", ")
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(root: &Path) -> SearchEnv {
        SearchEnv {
            cwd: root.join("cwd"),
            home: Some(root.join("home")),
            xdg_config_home: None,
            xdg_config_dirs: vec![root.join("xdg")],
            macos: false,
        }
    }

    fn touch(p: &Path) {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, "").unwrap();
    }

    #[test]
    fn finds_resticprofile_file_in_config_home() {
        let tmp = tempfile::tempdir().unwrap();
        let e = env(tmp.path());
        std::fs::create_dir_all(&e.cwd).unwrap();
        let rp = tmp.path().join("home/.config/resticprofile/profiles.toml");
        touch(&rp);
        assert_eq!(locate_with(None, &e).unwrap(), rp);
        // our own name wins
        let own = tmp.path().join("home/.config/cairn/profiles.toml");
        touch(&own);
        assert_eq!(locate_with(None, &e).unwrap(), own);
        // a given name is used as is
        assert_eq!(locate_with(Some(Path::new("profiles")), &e).unwrap(), rp);
    }

    #[test]
    fn extension_order_and_cwd_first() {
        let tmp = tempfile::tempdir().unwrap();
        let e = env(tmp.path());
        touch(&tmp.path().join("xdg/resticprofile/p.conf"));
        touch(&e.cwd.join("p.yaml"));
        // .conf is tried first everywhere before .yaml
        assert_eq!(
            locate_with(Some(Path::new("p")), &e).unwrap(),
            tmp.path().join("xdg/resticprofile/p.conf")
        );
        assert_eq!(
            locate_with(Some(Path::new("p.yaml")), &e).unwrap(),
            e.cwd.join("p.yaml")
        );
    }

    #[test]
    fn missing_file_says_where_it_looked() {
        let tmp = tempfile::tempdir().unwrap();
        let e = env(tmp.path());
        let err = locate_with(Some(Path::new("nope.toml")), &e).unwrap_err();
        assert!(err.is_not_found());
        assert!(err.to_string().contains("resticprofile"), "{err}");
        assert!(err.to_string().contains("--config"), "{err}");
    }

    #[test]
    fn macos_list_has_preferences() {
        let e = SearchEnv {
            home: Some(PathBuf::from("/Users/u")),
            macos: true,
            ..SearchEnv::default()
        };
        let dirs = e.search_dirs();
        assert_eq!(dirs[0], PathBuf::from("/Users/u/.config/resticprofile"));
        assert_eq!(
            dirs[1],
            PathBuf::from("/Users/u/Library/Preferences/resticprofile")
        );
        assert_eq!(dirs[2], PathBuf::from("/Library/Preferences/resticprofile"));
        assert_eq!(dirs.last().unwrap(), &PathBuf::from("/Users/u"));
    }
}
