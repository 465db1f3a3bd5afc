//! Errors and warnings of the configuration loader.

use std::fmt;

use super::node::Origin;

/// What kind of problem a [`ConfigError`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigErrorKind {
    /// No configuration file, or no such profile / group.
    NotFound,
    /// A file could not be read.
    Io,
    /// A file is not valid TOML / YAML / JSON.
    Parse,
    /// A template failed to parse or run.
    Template,
    /// Inheritance problem: missing parent, cycle.
    Inherit,
    /// A value has the wrong type or is not allowed.
    Invalid,
}

/// A configuration problem. Its `Display` names the file and line where known
/// (`profiles.toml:12: ...`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Kind of problem.
    pub kind: ConfigErrorKind,
    /// File the problem is in, when known.
    pub file: Option<String>,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// What is wrong and what to do.
    pub message: String,
}

impl ConfigError {
    /// An error without position.
    pub fn new(kind: ConfigErrorKind, message: impl Into<String>) -> Self {
        ConfigError {
            kind,
            file: None,
            line: None,
            message: message.into(),
        }
    }

    /// An error in `file` at `line`.
    pub fn at(
        kind: ConfigErrorKind,
        file: impl Into<String>,
        line: Option<usize>,
        message: impl Into<String>,
    ) -> Self {
        ConfigError {
            kind,
            file: Some(file.into()),
            line,
            message: message.into(),
        }
    }

    pub(crate) fn at_origin(
        kind: ConfigErrorKind,
        origin: Option<&Origin>,
        message: impl Into<String>,
    ) -> Self {
        match origin {
            Some(o) => ConfigError::at(kind, o.file.to_string(), o.line, message),
            None => ConfigError::new(kind, message),
        }
    }

    /// Whether this reports a missing profile, group or file.
    pub fn is_not_found(&self) -> bool {
        self.kind == ConfigErrorKind::NotFound
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.file, self.line) {
            (Some(file), Some(line)) => write!(f, "{file}:{line}: {}", self.message),
            (Some(file), None) => write!(f, "{file}: {}", self.message),
            _ => write!(f, "{}", self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

/// A problem that does not stop loading (unknown key, ignored option, suspicious value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// File the key is in.
    pub file: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// What is suspicious and what to do.
    pub message: String,
}

impl Warning {
    pub(crate) fn at(origin: Option<&Origin>, message: impl Into<String>) -> Self {
        Warning {
            file: origin.map(|o| o.file.to_string()).unwrap_or_default(),
            line: origin.and_then(|o| o.line),
            message: message.into(),
        }
    }
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.file.is_empty(), self.line) {
            (false, Some(line)) => write!(f, "{}:{line}: {}", self.file, self.message),
            (false, None) => write!(f, "{}: {}", self.file, self.message),
            _ => write!(f, "{}", self.message),
        }
    }
}

/// The closest of `candidates` to `word`, when close enough to be a likely typo.
pub fn suggest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let word = word.to_lowercase();
    let mut best: Option<(f64, &str)> = None;
    for c in candidates {
        let score = strsim::jaro_winkler(&word, &c.to_lowercase());
        let normalized = word.replace('_', "-");
        let score = if normalized == c { 1.0 } else { score };
        if score >= 0.8 && best.is_none_or(|(s, _)| score > s) {
            best = Some((score, c));
        }
    }
    best.map(|(_, c)| c.to_string())
}

/// "unknown key `x`" with a suggestion when one is close.
pub(crate) fn unknown_key_message<'a>(
    what: &str,
    key: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> String {
    match suggest(key, candidates) {
        Some(s) => format!("unknown {what} `{key}` (ignored); did you mean `{s}`?"),
        None => format!("unknown {what} `{key}` (ignored)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_file_and_line() {
        let e = ConfigError::at(ConfigErrorKind::Parse, "profiles.toml", Some(12), "bad");
        assert_eq!(e.to_string(), "profiles.toml:12: bad");
        let w = Warning {
            file: "p.toml".into(),
            line: None,
            message: "m".into(),
        };
        assert_eq!(w.to_string(), "p.toml: m");
    }

    #[test]
    fn suggestions_find_typos() {
        let c = ["exclude-file", "exclude", "iexclude-file"];
        assert_eq!(suggest("exclude-files", c).as_deref(), Some("exclude-file"));
        assert_eq!(suggest("exclude_file", c).as_deref(), Some("exclude-file"));
        assert_eq!(suggest("zzz", c), None);
    }
}
