//! [`PrivateTemp`]: the default implementation of `tempDir`, `tempFile` and `env`.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use crate::RuntimeFuncs;

/// A private per-run temporary directory `<tmp>/cairn-XXXX/t` (mode 0700), created on first
/// use and removed with everything in it when this value is dropped.
///
/// `tempFile NAME` creates an empty file there (name sanitised to `[\w.-]`); `env` creates the
/// current profile's dotenv file `<profile>.env` with mode 0600 (see [`PrivateTemp::set_profile`]).
/// Results are stable for the life of the value, so rendering a file twice is harmless.
#[derive(Debug)]
pub struct PrivateTemp {
    base: PathBuf,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    dir: Option<tempfile::TempDir>,
    profile: String,
    env_files: BTreeMap<String, PathBuf>,
}

impl Default for PrivateTemp {
    fn default() -> Self {
        Self::new()
    }
}

impl PrivateTemp {
    /// A private temp area under the system temp directory (created lazily).
    pub fn new() -> Self {
        Self::in_dir(std::env::temp_dir())
    }

    /// A private temp area under `base` (created lazily).
    pub fn in_dir(base: impl Into<PathBuf>) -> Self {
        PrivateTemp {
            base: base.into(),
            state: Mutex::new(State {
                profile: "default".into(),
                ..State::default()
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets the profile whose dotenv file `env` returns (default: `default`).
    pub fn set_profile(&self, name: &str) {
        self.lock().profile = name.to_string();
    }

    /// The dotenv files `env` created so far.
    pub fn env_files(&self) -> Vec<PathBuf> {
        self.lock().env_files.values().cloned().collect()
    }

    /// The dotenv file created for `profile`, if `env` was used while it was current.
    pub fn env_file_for(&self, profile: &str) -> Option<PathBuf> {
        self.lock().env_files.get(profile).cloned()
    }

    /// The private directory, if something created it already.
    pub fn dir(&self) -> Option<PathBuf> {
        self.lock().dir.as_ref().map(|d| d.path().join("t"))
    }

    fn ensure_dir(&self, st: &mut State) -> Result<PathBuf, String> {
        if st.dir.is_none() {
            let d = tempfile::Builder::new()
                .prefix("cairn-")
                .tempdir_in(&self.base)
                .map_err(|e| {
                    format!(
                        "cannot create a private temp directory in {}: {e}",
                        self.base.display()
                    )
                })?;
            let t = d.path().join("t");
            let mut b = fs::DirBuilder::new();
            #[cfg(unix)]
            {
                use std::os::unix::fs::DirBuilderExt;
                b.mode(0o700);
            }
            b.create(&t)
                .map_err(|e| format!("cannot create {}: {e}", t.display()))?;
            st.dir = Some(d);
        }
        let d = st.dir.as_ref().ok_or("private temp directory missing")?;
        Ok(d.path().join("t"))
    }

    fn create_file(dir: &Path, name: &str, private: bool) -> Result<PathBuf, String> {
        let path = dir.join(sanitize(name));
        let mut o = fs::OpenOptions::new();
        o.create(true).append(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            o.mode(if private { 0o600 } else { 0o644 });
        }
        o.open(&path)
            .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        #[cfg(unix)]
        if private {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&path, fs::Permissions::from_mode(0o600))
                .map_err(|e| format!("cannot make {} private: {e}", path.display()))?;
        }
        Ok(path)
    }
}

/// Replaces every character outside `[A-Za-z0-9_.-]` by `_` (resticprofile's rule).
fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn slashes(p: &Path) -> String {
    p.to_string_lossy().replace('\\', "/")
}

impl RuntimeFuncs for PrivateTemp {
    fn temp_dir(&self) -> Result<String, String> {
        let mut st = self.lock();
        Ok(slashes(&self.ensure_dir(&mut st)?))
    }

    fn temp_file(&self, name: &str) -> Result<String, String> {
        let mut st = self.lock();
        let dir = self.ensure_dir(&mut st)?;
        Ok(slashes(&Self::create_file(&dir, name, false)?))
    }

    fn env_file(&self) -> Result<String, String> {
        let mut st = self.lock();
        let profile = st.profile.clone();
        if let Some(p) = st.env_files.get(&profile) {
            return Ok(slashes(p));
        }
        let dir = self.ensure_dir(&mut st)?;
        let path = Self::create_file(&dir, &format!("{profile}.env"), true)?;
        st.env_files.insert(profile, path.clone());
        Ok(slashes(&path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lazily_created_stable_and_removed() {
        let base = tempfile::tempdir().unwrap();
        let t = PrivateTemp::in_dir(base.path());
        assert!(t.dir().is_none());
        let d1 = t.temp_dir().unwrap();
        assert_eq!(t.temp_dir().unwrap(), d1);
        assert!(d1.ends_with("/t"));
        let f = t.temp_file("a b/ü.txt").unwrap();
        assert_eq!(f, format!("{d1}/a_b__.txt"));
        assert_eq!(t.temp_file("a b/ü.txt").unwrap(), f);
        assert!(Path::new(&f).is_file());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let m = fs::metadata(&d1).unwrap().permissions().mode() & 0o777;
            assert_eq!(m, 0o700);
        }
        drop(t);
        assert!(!Path::new(&d1).exists());
    }

    #[test]
    fn env_file_per_profile_private() {
        let base = tempfile::tempdir().unwrap();
        let t = PrivateTemp::in_dir(base.path());
        t.set_profile("nidoking");
        let e1 = t.env_file().unwrap();
        assert!(e1.ends_with("/nidoking.env"));
        assert_eq!(t.env_file().unwrap(), e1);
        t.set_profile("other");
        let e2 = t.env_file().unwrap();
        assert_ne!(e1, e2);
        assert_eq!(t.env_files().len(), 2);
        assert_eq!(t.env_file_for("nidoking"), Some(PathBuf::from(&e1)));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let m = fs::metadata(&e1).unwrap().permissions().mode() & 0o777;
            assert_eq!(m, 0o600);
        }
    }
}
