//! The subset of Go's `text/template` that resticprofile configuration files use, with
//! resticprofile's helper functions (`contains`, `replaceR`, `tempFile`, `env`, …).
//!
//! ```
//! use cairn_template::{render, PrivateTemp, Value};
//! let data = Value::map([("Profile", Value::map([("Name", Value::str("home"))]))]);
//! let out = render("f", "{{ define \"n\" }}[{{ .Profile.Name }}]{{ end }}{{ template \"n\" . }}", &data, &PrivateTemp::new()).unwrap();
//! assert_eq!(out, "[home]");
//! ```

mod exec;
mod funcs;
mod gofmt;
mod lexer;
mod parse;
mod temp;
mod timefmt;
mod value;

use std::collections::HashMap;
use std::sync::Arc;

pub use temp::PrivateTemp;
pub use timefmt::go_time_format;
pub use value::Value;

use exec::{Exec, Stored, line_col};

/// A template parse or execution error, located in a file.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{file}:{line}:{col}: {message}")]
pub struct TemplateError {
    /// The file (template set entry) the error is in.
    pub file: String,
    /// 1-based line (0 when the error has no position).
    pub line: usize,
    /// 1-based column in characters (0 when the error has no position).
    pub col: usize,
    /// What went wrong.
    pub message: String,
}

/// Side-effecting template functions, provided by the caller. Each must return the same
/// result every time it is called during one run (a file may be rendered several times).
pub trait RuntimeFuncs {
    /// `tempDir`: a private directory for this run, created on first use.
    fn temp_dir(&self) -> Result<String, String>;
    /// `tempFile NAME`: an empty file in the private directory (name sanitised to `[\w.-]`).
    fn temp_file(&self, name: &str) -> Result<String, String>;
    /// `env`: the current profile's dotenv file (mode 0600) that hooks may append to.
    fn env_file(&self) -> Result<String, String>;
}

/// A set of parsed templates: file bodies and the `define`s they share.
#[derive(Clone, Debug, Default)]
pub struct TemplateSet {
    trees: HashMap<String, Arc<Stored>>,
}

impl TemplateSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parse one file's text; its top-level body is stored under `name`; its `define`s join the
    /// shared set with Go's redefinition rules (same file: duplicate non-empty define = error;
    /// later file replaces; empty never replaces non-empty).
    pub fn add(&mut self, name: &str, text: &str) -> Result<(), TemplateError> {
        let trees = parse::parse_file(name, text).map_err(|e| {
            let (line, col) = line_col(text, e.pos);
            TemplateError {
                file: name.to_string(),
                line,
                col,
                message: e.msg,
            }
        })?;
        let src: Arc<str> = Arc::from(text);
        for tree in trees {
            if let Some(old) = self.trees.get(&tree.name)
                && parse::is_empty_tree(&tree.root)
                && !parse::is_empty_tree(&old.root)
            {
                continue;
            }
            let stored = Stored {
                file: name.to_string(),
                src: src.clone(),
                root: tree.root,
            };
            self.trees.insert(tree.name, Arc::new(stored));
        }
        Ok(())
    }

    /// Whether a template (file body or define) with this name exists.
    pub fn contains(&self, name: &str) -> bool {
        self.trees.contains_key(name)
    }

    /// Execute the template `name` (a file body or a define) with `data` as `.`.
    pub fn execute(
        &self,
        name: &str,
        data: &Value,
        funcs: &dyn RuntimeFuncs,
    ) -> Result<String, TemplateError> {
        let mut ex = Exec::new(&self.trees, funcs);
        ex.run(name, data)?;
        Ok(ex.out)
    }
}

/// One-shot helper: parse and execute a single text.
pub fn render(
    name: &str,
    text: &str,
    data: &Value,
    funcs: &dyn RuntimeFuncs,
) -> Result<String, TemplateError> {
    let mut set = TemplateSet::new();
    set.add(name, text)?;
    set.execute(name, data, funcs)
}
