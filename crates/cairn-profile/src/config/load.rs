//! [`Config`]: the main file and its includes, rendered and parsed per requested profile.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::types::{Global, Group};

use super::error::{ConfigError, ConfigErrorKind, Warning, unknown_key_message};
use super::global::{decode_global, decode_groups};
use super::inherit::{parent_of, resolve_v1, resolve_v2};
use super::merge::{apply_mixins, merge_replace};
use super::node::{Node, Table};
use super::parse::{Format, decode_text, parse_text};
use super::paths::clean;
use super::profile::Profile;
use super::render::{NoFuncs, Recording, RenderContext, RenderData, RuntimeFuncs, Templates};

/// Top-level names that are not profiles in a v1 file.
const RESERVED_V1: [&str; 5] = ["global", "groups", "includes", "version", "mixins"];

/// One file of the configuration.
struct SourceFile {
    template: String,
    display: Arc<str>,
    format: Format,
}

/// A profile as listed by `profiles`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileInfo {
    /// Profile name (lower-cased, as stored).
    pub name: String,
    /// `description`.
    pub description: String,
    /// Command sections defined (own and inherited), sorted.
    pub sections: Vec<String>,
    /// `inherit`, when set.
    pub inherit: Option<String>,
}

/// A loaded configuration: the text of the main file and its includes, kept for rendering
/// per requested profile (templates bind `.Profile.Name` late, §7.4 T1).
pub struct Config {
    path: PathBuf,
    dir: PathBuf,
    version: u8,
    files: Vec<SourceFile>,
    templates: Templates,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("path", &self.path)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

fn parse_version(node: Option<&Node>) -> u8 {
    let text = node.and_then(Node::as_string).unwrap_or_default();
    match text.trim().trim_start_matches(['v', 'V']) {
        "2" | "2.0" => 2,
        _ => 1,
    }
}

fn read_file(path: &Path, display: &str) -> Result<String, ConfigError> {
    let bytes = std::fs::read(path).map_err(|e| {
        ConfigError::at(
            ConfigErrorKind::Io,
            display,
            None,
            format!("cannot read the configuration file: {e}"),
        )
    })?;
    decode_text(&bytes, display)
}

impl Config {
    /// Reads the main file and its includes (§1.6). `format` overrides detection from the
    /// extension (`.conf` is TOML). The main file is rendered once with profile `default` to
    /// find `includes` and `version`, like resticprofile.
    pub fn load(path: &Path, format: Option<Format>) -> Result<Config, ConfigError> {
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
        let abs = clean(&cwd.join(path));
        let dir = abs
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| cwd.clone());
        let main_display: Arc<str> = Arc::from(
            abs.file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_else(|| abs.display().to_string()),
        );
        let format = format.or_else(|| Format::from_path(&abs)).ok_or_else(|| {
            ConfigError::at(
                ConfigErrorKind::Invalid,
                main_display.to_string(),
                None,
                "cannot tell the file format from the extension; name it .toml, .yaml or .json, or give --format",
            )
        })?;
        let text = read_file(&abs, &main_display)?;
        let mut templates = Templates::new();
        let main_template = format!("__config:{}", abs.display());
        templates.add(&main_template, &main_display, &text)?;
        let mut config = Config {
            path: abs.clone(),
            dir: dir.clone(),
            version: 1,
            files: vec![SourceFile {
                template: main_template,
                display: main_display,
                format,
            }],
            templates,
        };
        let ctx = RenderContext::from_process();
        let first = config.render_file(0, "default", &ctx, &NoFuncs)?;
        config.version = parse_version(first.get("version"));
        for include in config.find_includes(&first.strings("includes"))? {
            let display: Arc<str> = Arc::from(match include.strip_prefix(&dir) {
                Ok(rel) => rel.display().to_string(),
                Err(_) => include.display().to_string(),
            });
            let format = Format::from_path(&include).ok_or_else(|| {
                ConfigError::at(
                    ConfigErrorKind::Invalid,
                    display.to_string(),
                    None,
                    "included file has an unknown extension; use .toml, .conf, .yaml or .json",
                )
            })?;
            let text = read_file(&include, &display)?;
            let template = format!("__config:{}", include.display());
            config.templates.add(&template, &display, &text)?;
            config.files.push(SourceFile {
                template,
                display,
                format,
            });
        }
        Ok(config)
    }

    fn find_includes(&self, patterns: &[String]) -> Result<Vec<PathBuf>, ConfigError> {
        let mut out: Vec<PathBuf> = Vec::new();
        for pattern in patterns {
            let full = clean(&self.dir.join(pattern));
            let mut found = if full.is_file() {
                vec![full]
            } else {
                let text = full.display().to_string();
                let paths = glob::glob(&text).map_err(|e| {
                    ConfigError::at(
                        ConfigErrorKind::Invalid,
                        self.files[0].display.to_string(),
                        None,
                        format!("invalid include pattern {pattern:?}: {e}"),
                    )
                })?;
                let mut v: Vec<PathBuf> = paths.filter_map(Result::ok).collect();
                v.sort();
                v
            };
            found.retain(|p| *p != self.path);
            out.extend(found);
        }
        Ok(out)
    }

    /// Path of the main file (absolute).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Directory of the main file (`.ConfigDir`; relative paths of the configuration resolve
    /// against it).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Format version (1 or 2).
    pub fn version(&self) -> u8 {
        self.version
    }

    /// Included files, in load order.
    pub fn includes(&self) -> Vec<String> {
        self.files
            .iter()
            .skip(1)
            .map(|f| f.display.to_string())
            .collect()
    }

    fn render_file(
        &self,
        index: usize,
        profile_name: &str,
        ctx: &RenderContext,
        funcs: &dyn RuntimeFuncs,
    ) -> Result<Table, ConfigError> {
        let file = self.files.get(index).ok_or_else(|| {
            ConfigError::new(
                ConfigErrorKind::Invalid,
                "internal: no such configuration file",
            )
        })?;
        let text = self.render_text(index, profile_name, ctx, funcs)?;
        parse_text(&text, file.format, &file.display)
    }

    fn render_text(
        &self,
        index: usize,
        profile_name: &str,
        ctx: &RenderContext,
        funcs: &dyn RuntimeFuncs,
    ) -> Result<String, ConfigError> {
        let file = self.files.get(index).ok_or_else(|| {
            ConfigError::new(
                ConfigErrorKind::Invalid,
                "internal: no such configuration file",
            )
        })?;
        let data = RenderData {
            profile_name,
            config_dir: &self.dir,
            ctx,
        };
        self.templates
            .render(&file.template, &file.display, &data, funcs)
    }

    /// The rendered text of every file for `profile_name` (for `--trace`), as (file, text).
    pub fn rendered(
        &self,
        profile_name: &str,
        ctx: &RenderContext,
        funcs: &dyn RuntimeFuncs,
    ) -> Result<Vec<(String, String)>, ConfigError> {
        (0..self.files.len())
            .map(|i| {
                let text = self.render_text(i, profile_name, ctx, funcs)?;
                Ok((self.files[i].display.to_string(), text))
            })
            .collect()
    }

    /// All files rendered for `profile_name`, parsed and merged in order (later files win).
    fn root(
        &self,
        profile_name: &str,
        ctx: &RenderContext,
        funcs: &dyn RuntimeFuncs,
    ) -> Result<Table, ConfigError> {
        let mut root = self.render_file(0, profile_name, ctx, funcs)?;
        for i in 1..self.files.len() {
            let mut include = self.render_file(i, profile_name, ctx, funcs)?;
            if include.contains("version") && parse_version(include.get("version")) != self.version
            {
                return Err(ConfigError::at_origin(
                    ConfigErrorKind::Invalid,
                    include.origin("version"),
                    "all included files must use the same configuration version as the main file",
                ));
            }
            include.remove("includes");
            merge_replace(&mut root, &include);
        }
        Ok(root)
    }

    /// The table holding the profiles: the top level minus reserved names (v1), or `profiles`.
    fn profiles_table(&self, root: &Table) -> Table {
        if self.version >= 2 {
            return root.table("profiles").cloned().unwrap_or_default();
        }
        let mut out = Table::new();
        for (k, e) in root.iter() {
            if RESERVED_V1.contains(&k.as_str()) || k.starts_with('$') {
                continue;
            }
            if matches!(e.value, Node::Table(_)) {
                out.insert_entry(e.clone());
            }
        }
        out
    }

    /// The `[global]` section, rendered with profile name `default`.
    pub fn global(
        &self,
        ctx: &RenderContext,
        funcs: &dyn RuntimeFuncs,
    ) -> Result<Global, ConfigError> {
        self.global_with_warnings(ctx, funcs).map(|(g, _)| g)
    }

    /// The `[global]` section and the warnings about it (unknown or ignored keys).
    pub fn global_with_warnings(
        &self,
        ctx: &RenderContext,
        funcs: &dyn RuntimeFuncs,
    ) -> Result<(Global, Vec<Warning>), ConfigError> {
        let mut root = self.root("default", ctx, funcs)?;
        let mixins = root.table("mixins").cloned();
        let mut global = root.table("global").cloned().unwrap_or_default();
        if self.version >= 2 {
            apply_mixins(&mut global, mixins.as_ref())?;
        }
        root.remove("global");
        decode_global(&global, &self.dir)
    }

    /// Groups (v1 `[groups] name = [...]`, v2 `[groups.name] profiles = [...]`), rendered with
    /// profile name `default`, sorted by name.
    pub fn groups(
        &self,
        ctx: &RenderContext,
        funcs: &dyn RuntimeFuncs,
    ) -> Result<Vec<Group>, ConfigError> {
        let root = self.root("default", ctx, funcs)?;
        let mut groups = root.table("groups").cloned().unwrap_or_default();
        if self.version >= 2 {
            apply_mixins(&mut groups, root.table("mixins"))?;
        }
        let profiles = self.profiles_table(&root);
        for (k, _) in groups.iter() {
            if profiles.contains(k) {
                return Err(ConfigError::at_origin(
                    ConfigErrorKind::Invalid,
                    groups.origin(k),
                    format!("`{k}` is both a profile and a group; rename one of them"),
                ));
            }
        }
        decode_groups(&groups)
    }

    /// Every profile with its description, sections and parent. Each profile is rendered for
    /// its own name; a profile that fails to resolve is listed from the `default` rendering.
    pub fn profile_names(
        &self,
        ctx: &RenderContext,
        funcs: &dyn RuntimeFuncs,
    ) -> Result<Vec<ProfileInfo>, ConfigError> {
        let root = self.root("default", ctx, funcs)?;
        let profiles = self.profiles_table(&root);
        let mut out = Vec::new();
        for (name, entry) in profiles.iter() {
            let own = entry.value.as_table().cloned().unwrap_or_default();
            let info = match self.profile(name, ctx, funcs) {
                Ok(p) => ProfileInfo {
                    name: name.clone(),
                    description: p.description.clone(),
                    sections: p.sections(),
                    inherit: parent_of(&own),
                },
                Err(_) => ProfileInfo {
                    name: name.clone(),
                    description: own.string("description").unwrap_or_default(),
                    sections: own
                        .iter()
                        .filter(|(k, e)| {
                            matches!(e.value, Node::Table(_))
                                && !["env", "prometheus-labels"].contains(&k.as_str())
                        })
                        .map(|(k, _)| k.clone())
                        .collect(),
                    inherit: parent_of(&own),
                },
            };
            out.push(info);
        }
        Ok(out)
    }

    /// Whether `name` (any case) is a profile.
    pub fn has_profile(
        &self,
        name: &str,
        ctx: &RenderContext,
        funcs: &dyn RuntimeFuncs,
    ) -> Result<bool, ConfigError> {
        let root = self.root("default", ctx, funcs)?;
        Ok(self.profiles_table(&root).table(name).is_some())
    }

    /// The profile `name` (CLI spelling; lookup ignores case): rendered for that name, includes
    /// merged, `inherit` resolved, post-processed. A `base-dir` is not applied here: the caller
    /// changes directory and calls again with a context whose `current_dir` is the new one.
    pub fn profile(
        &self,
        name: &str,
        ctx: &RenderContext,
        funcs: &dyn RuntimeFuncs,
    ) -> Result<Profile, ConfigError> {
        let recording = Recording {
            inner: funcs,
            env_files: std::cell::RefCell::new(Vec::new()),
        };
        let root = self.root(name, ctx, &recording)?;
        let profiles = self.profiles_table(&root);
        if profiles.table(name).is_none() {
            let names: Vec<&str> = profiles.keys().map(String::as_str).collect();
            let hint = match super::error::suggest(name, names.iter().copied()) {
                Some(s) => format!("; did you mean `{s}`?"),
                None => format!("; defined profiles: {}", names.join(", ")),
            };
            return Err(ConfigError::at(
                ConfigErrorKind::NotFound,
                self.files[0].display.to_string(),
                None,
                format!("profile '{name}' not found{hint}"),
            ));
        }
        let mut resolved = if self.version >= 2 {
            resolve_v2(&profiles, name, root.table("mixins"))?
        } else {
            resolve_v1(&profiles, name)?
        };
        let generated = recording.env_files.into_inner();
        if !generated.is_empty() {
            let mut files: Vec<Node> = match resolved.get("env-file") {
                Some(Node::List(items)) => items.clone(),
                Some(other) => vec![other.clone()],
                None => Vec::new(),
            };
            files.extend(generated.into_iter().map(Node::Str));
            let origin = resolved.origin("env-file").cloned().unwrap_or_default();
            resolved.insert("env-file", Node::List(files), origin);
        }
        let mut warnings = Vec::new();
        if self.version < 2 {
            for key in ["mixins"] {
                if root.contains(key) {
                    warnings.push(Warning::at(
                        root.origin(key),
                        format!("`{key}` needs version = 2; ignored"),
                    ));
                }
            }
        }
        for (k, e) in root.iter() {
            let known = if self.version >= 2 {
                [
                    "version", "global", "groups", "includes", "profiles", "mixins",
                ]
                .contains(&k.as_str())
            } else {
                true
            };
            if !known {
                warnings.push(Warning::at(
                    Some(&e.origin),
                    unknown_key_message(
                        "top-level key",
                        &e.key,
                        [
                            "version", "global", "groups", "includes", "profiles", "mixins",
                        ],
                    ),
                ));
            }
        }
        Ok(Profile::new(
            name,
            resolved,
            self.dir.clone(),
            self.version,
            ctx,
            warnings,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        p
    }

    fn ctx() -> RenderContext {
        RenderContext::from_process()
    }

    #[test]
    fn includes_merge_in_order_and_replace_lists() {
        let tmp = tempfile::tempdir().unwrap();
        let main = write(
            tmp.path(),
            "profiles.toml",
            "includes = ['conf.d/*.toml', 'extra.yaml']\n[p]\nrepository = 'local:/a'\n[p.backup]\nsource = ['/1', '/2']\n",
        );
        write(tmp.path(), "conf.d/b.toml", "[p.backup]\nsource = ['/b']\n");
        write(
            tmp.path(),
            "conf.d/a.toml",
            "includes = ['nope.toml']\n[p.backup]\nsource = ['/a']\nexclude = ['x']\n",
        );
        write(tmp.path(), "extra.yaml", "q:\n  repository: local:/q\n");
        let c = Config::load(&main, None).unwrap();
        assert_eq!(
            c.includes(),
            vec!["conf.d/a.toml", "conf.d/b.toml", "extra.yaml"]
        );
        let p = c.profile("P", &ctx(), &NoFuncs).unwrap();
        assert_eq!(p.name, "P");
        assert_eq!(p.list_in("backup", "source"), vec!["/b"]);
        assert_eq!(p.list_in("backup", "exclude"), vec!["x"]);
        let q = c.profile("q", &ctx(), &NoFuncs).unwrap();
        assert_eq!(q.string_in("", "repository").as_deref(), Some("local:/q"));
    }

    #[test]
    fn include_with_other_version_fails() {
        let tmp = tempfile::tempdir().unwrap();
        let main = write(
            tmp.path(),
            "p.toml",
            "version = 1\nincludes = 'i.toml'\n[p]\n",
        );
        write(tmp.path(), "i.toml", "version = 2\n");
        let c = Config::load(&main, None).unwrap();
        let e = c.profile("p", &ctx(), &NoFuncs).unwrap_err();
        assert!(e.to_string().contains("same configuration version"), "{e}");
    }

    #[test]
    fn unknown_profile_suggests() {
        let tmp = tempfile::tempdir().unwrap();
        let main = write(tmp.path(), "p.toml", "[nidoking]\n[global]\n");
        let c = Config::load(&main, None).unwrap();
        let e = c.profile("nidokin", &ctx(), &NoFuncs).unwrap_err();
        assert!(e.is_not_found());
        assert!(e.to_string().contains("did you mean `nidoking`"), "{e}");
        let names = c.profile_names(&ctx(), &NoFuncs).unwrap();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn groups_v1_and_v2_and_duplicates() {
        let tmp = tempfile::tempdir().unwrap();
        let v1 = write(
            tmp.path(),
            "a.toml",
            "[groups]\nall = ['a', 'b']\n[a]\n[b]\n",
        );
        let g = Config::load(&v1, None)
            .unwrap()
            .groups(&ctx(), &NoFuncs)
            .unwrap();
        assert_eq!(g[0].name, "all");
        assert_eq!(g[0].profiles, vec!["a", "b"]);
        let v2 = write(
            tmp.path(),
            "b.yaml",
            "version: 2\ngroups:\n  nightly:\n    description: d\n    profiles: [a]\n    continue-on-error: true\n    schedules:\n      backup:\n        at: '05:00'\nprofiles:\n  a: {}\n",
        );
        let g = Config::load(&v2, None)
            .unwrap()
            .groups(&ctx(), &NoFuncs)
            .unwrap();
        assert_eq!(g[0].description, "d");
        assert_eq!(g[0].continue_on_error, Some(true));
        assert_eq!(g[0].schedules[0].at, vec!["05:00"]);
        assert!(g[0].schedules[0].is_group);
        let dup = write(tmp.path(), "c.toml", "[groups]\na = ['a']\n[a]\n");
        let e = Config::load(&dup, None)
            .unwrap()
            .groups(&ctx(), &NoFuncs)
            .unwrap_err();
        assert!(e.to_string().contains("both a profile and a group"), "{e}");
    }
}
