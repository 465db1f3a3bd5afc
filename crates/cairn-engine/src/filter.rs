//! Path filters with restic's semantics (restic `internal/filter`), used by
//! `backup --exclude…` and `restore --exclude…/--include…`.
//!
//! # Patterns
//! - Each path component is matched with Go's `filepath.Match` syntax:
//!   `*`, `?`, `[...]`/`[^...]` classes with ranges, `\` escapes.
//! - A `**` component matches any number of components (including none).
//! - Patterns are cleaned like Go's `filepath.Clean`: duplicate `/`, `.`,
//!   `..` and a trailing `/` are normalised away.
//! - A pattern starting with `/` is anchored at the root; any other pattern
//!   may match starting at any depth.
//! - A pattern matches a path if it matches consecutive components of it,
//!   not necessarily the last ones: a pattern matching a directory matches
//!   everything below it (`foo` matches `/a/foo/b` but not `/a/foobar`).
//! - In a list, a pattern starting with `!` cancels earlier matches (the
//!   last matching pattern decides); a list of only negated patterns
//!   matches nothing. Empty patterns are ignored.
//! - `**` expansion follows restic exactly, including its quirk that when
//!   there are several `**`, every later `**` still needs room for one
//!   component while an earlier one is expanded (`/**/a/**` does not match
//!   `/x/a` but matches `/x/a/b`).
//! - Case-insensitive lists lower-case patterns and paths first (Unicode
//!   simple lower-case mapping; undecodable bytes are kept as they are).
//!
//! # Paths
//! Paths are absolute, `/`-separated byte strings (`&[u8]`, so non-UTF-8
//! names work; pass `OsStr::as_bytes()` for file-system paths, or the
//! snapshot-internal path such as `/etc/ssh/sshd_config` on restore). Paths
//! are not cleaned. The empty path never matches (restic reports an error).
//!
//! Environment variables (`$VAR`, `${VAR}`, `$$` for `$`) are expanded only
//! in patterns read from files, as restic does; command-line patterns are
//! taken literally.

mod glob;
mod misc;
mod pattern;
mod text;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod restic_tests;

use std::path::PathBuf;

use pattern::{Pattern, with_components};

pub use misc::{
    CACHEDIR_TAG_FILENAME, CACHEDIR_TAG_SIGNATURE, TagFileRule, is_cache_dir,
    parse_exclude_if_present, parse_size,
};
pub use text::{expand_env, expand_env_with, parse_pattern_text, read_pattern_files};

/// Errors from building filters and parsing filter options.
#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    /// Patterns that are not valid syntax (originals, in input order).
    #[error("invalid pattern(s) provided:\n{}", .0.join("\n"))]
    InvalidPatterns(Vec<String>),
    /// An error attributed to a command-line option such as `--exclude`.
    #[error("{option}: {source}")]
    Option {
        /// The option, e.g. `--iexclude-file`.
        option: &'static str,
        /// What went wrong.
        #[source]
        source: Box<FilterError>,
    },
    /// A pattern file could not be read.
    #[error("failed to read patterns from file {path:?}: {source}")]
    ReadPatternFile {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// [`match_pattern`] or [`child_match_pattern`] got an empty path.
    #[error("filter.Match: string is empty")]
    EmptyPath,
    /// A size for `--exclude-larger-than` could not be parsed.
    #[error("invalid size {input:?}: {reason}")]
    InvalidSize {
        /// The input.
        input: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// An `--exclude-if-present` spec is malformed.
    #[error("{0}")]
    InvalidTagFileSpec(&'static str),
    /// A tag file exists but could not be accessed or read.
    #[error("could not read exclusion tagfile {path:?}: {source}")]
    TagFileIo {
        /// The tag file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A tag file does not start with the required header.
    #[error("invalid {}signature in exclusion tagfile {path:?}", if *.too_short { "(too short) " } else { "" })]
    TagFileSignature {
        /// The tag file.
        path: PathBuf,
        /// The file is shorter than the header.
        too_short: bool,
    },
}

impl FilterError {
    fn for_option(self, option: &'static str) -> FilterError {
        FilterError::Option {
            option,
            source: Box::new(self),
        }
    }
}

/// A compiled list of patterns (restic's `ParsePatterns` + `List` /
/// `ListWithChild`). Compile once, match many paths; matching does not
/// allocate for paths of up to 48 components (case-insensitive lists
/// allocate a lower-cased copy of paths that contain upper-case letters or
/// non-ASCII bytes).
#[derive(Debug, Clone)]
pub struct PatternList {
    patterns: Vec<Pattern>,
    case_insensitive: bool,
}

impl PatternList {
    /// Compiles `patterns` (empty ones are skipped). With
    /// `case_insensitive`, patterns and matched paths are lower-cased.
    /// Fails with [`FilterError::InvalidPatterns`] listing every invalid
    /// pattern.
    pub fn new<S: AsRef<[u8]>>(
        patterns: &[S],
        case_insensitive: bool,
    ) -> Result<Self, FilterError> {
        let mut compiled = Vec::with_capacity(patterns.len());
        let mut invalid = Vec::new();
        for raw in patterns {
            let raw = raw.as_ref();
            if raw.is_empty() {
                continue;
            }
            let source = if case_insensitive {
                text::to_lower(raw)
            } else {
                std::borrow::Cow::Borrowed(raw)
            };
            match Pattern::parse(&source) {
                Ok(p) => compiled.push(p),
                Err(_) => invalid.push(String::from_utf8_lossy(raw).into_owned()),
            }
        }
        if !invalid.is_empty() {
            return Err(FilterError::InvalidPatterns(invalid));
        }
        Ok(PatternList {
            patterns: compiled,
            case_insensitive,
        })
    }

    /// Whether the list holds no (non-empty) pattern.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Number of compiled patterns.
    pub fn len(&self) -> usize {
        self.patterns.len()
    }

    /// Whether this list ignores case.
    pub fn is_case_insensitive(&self) -> bool {
        self.case_insensitive
    }

    fn folded<'a>(&self, path: &'a [u8]) -> std::borrow::Cow<'a, [u8]> {
        if self.case_insensitive {
            text::to_lower(path)
        } else {
            std::borrow::Cow::Borrowed(path)
        }
    }

    /// restic's `List`: whether `path` matches, i.e. the last pattern that
    /// matches it is not negated. For exclude lists, `true` means excluded.
    pub fn matches(&self, path: impl AsRef<[u8]>) -> bool {
        let path = self.folded(path.as_ref());
        with_components(&path, |strs| {
            // The last matching pattern decides.
            self.patterns
                .iter()
                .rev()
                .find(|p| p.matches(strs))
                .is_some_and(|p| !p.negated)
        })
        .unwrap_or(false)
    }

    /// restic's `ListWithChild`: `(matched, child_may_match)`, where
    /// `child_may_match` says whether paths below `path` may match (an
    /// anchored pattern whose prefix fits `path`, or any relative pattern),
    /// cancelled by a later negated pattern that matches `path`.
    pub fn matches_with_child(&self, path: impl AsRef<[u8]>) -> (bool, bool) {
        let path = self.folded(path.as_ref());
        with_components(&path, |strs| {
            let mut matched = false;
            let mut child = false;
            for p in &self.patterns {
                let m = p.matches(strs);
                if p.negated {
                    matched = matched && !m;
                    child = child && !m;
                } else {
                    matched = matched || m;
                    child = child || p.child_may_match(strs);
                }
            }
            (matched, child)
        })
        .unwrap_or((false, false))
    }

    /// The second half of [`PatternList::matches_with_child`]: whether a
    /// directory at `path` may contain matching paths.
    pub fn child_may_match(&self, path: impl AsRef<[u8]>) -> bool {
        self.matches_with_child(path).1
    }
}

/// Checks patterns like restic's `ValidatePatterns`.
pub fn validate_patterns<S: AsRef<[u8]>>(patterns: &[S]) -> Result<(), FilterError> {
    PatternList::new(patterns, false).map(|_| ())
}

/// restic's `filter.Match` for one pattern: the empty pattern matches
/// everything; a leading `!` is stripped and ignored.
pub fn match_pattern(
    pattern: impl AsRef<[u8]>,
    path: impl AsRef<[u8]>,
) -> Result<bool, FilterError> {
    single(pattern.as_ref(), path.as_ref(), Pattern::matches)
}

/// restic's `filter.ChildMatch` for one pattern: whether paths below `path`
/// may match. The empty pattern matches everything.
pub fn child_match_pattern(
    pattern: impl AsRef<[u8]>,
    path: impl AsRef<[u8]>,
) -> Result<bool, FilterError> {
    single(pattern.as_ref(), path.as_ref(), Pattern::child_may_match)
}

fn single(
    pattern: &[u8],
    path: &[u8],
    f: impl FnOnce(&Pattern, &[&[u8]]) -> bool,
) -> Result<bool, FilterError> {
    if pattern.is_empty() {
        return Ok(true);
    }
    let p = Pattern::parse(pattern).map_err(|_| {
        FilterError::InvalidPatterns(vec![String::from_utf8_lossy(pattern).into_owned()])
    })?;
    with_components(path, |strs| f(&p, strs)).ok_or(FilterError::EmptyPath)
}

/// Pattern sources of one direction (exclude or include): the values of
/// `--exclude`/`--include`, `--iexclude`/`--iinclude`,
/// `--exclude-file`/`--include-file` and `--iexclude-file`/`--iinclude-file`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PatternOptions {
    /// Case-sensitive patterns (taken literally).
    pub patterns: Vec<String>,
    /// Case-insensitive patterns (taken literally).
    pub insensitive_patterns: Vec<String>,
    /// Files with case-sensitive patterns (one per line, `$VAR` expanded).
    pub files: Vec<PathBuf>,
    /// Files with case-insensitive patterns.
    pub insensitive_files: Vec<PathBuf>,
}

impl PatternOptions {
    /// Whether no option was given.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
            && self.insensitive_patterns.is_empty()
            && self.files.is_empty()
            && self.insensitive_files.is_empty()
    }
}

/// Option names used in error messages.
struct OptionNames {
    patterns: &'static str,
    insensitive_patterns: &'static str,
    files: &'static str,
    insensitive_files: &'static str,
}

/// restic's `CollectPatterns`: reads the files, validates each source and
/// builds up to two lists (insensitive first, then sensitive).
fn collect(opts: &PatternOptions, names: &OptionNames) -> Result<Vec<PatternList>, FilterError> {
    let mut sensitive: Vec<Vec<u8>> = opts
        .patterns
        .iter()
        .map(|p| p.clone().into_bytes())
        .collect();
    let mut insensitive: Vec<Vec<u8>> = opts
        .insensitive_patterns
        .iter()
        .map(|p| p.clone().into_bytes())
        .collect();
    if !opts.files.is_empty() {
        let from_files = read_pattern_files(&opts.files)?;
        validate_patterns(&from_files).map_err(|e| e.for_option(names.files))?;
        sensitive.extend(from_files);
    }
    if !opts.insensitive_files.is_empty() {
        let from_files = read_pattern_files(&opts.insensitive_files)?;
        validate_patterns(&from_files).map_err(|e| e.for_option(names.insensitive_files))?;
        insensitive.extend(from_files);
    }
    let mut lists = Vec::with_capacity(2);
    if !insensitive.is_empty() {
        lists.push(
            PatternList::new(&insensitive, true)
                .map_err(|e| e.for_option(names.insensitive_patterns))?,
        );
    }
    if !sensitive.is_empty() {
        lists.push(PatternList::new(&sensitive, false).map_err(|e| e.for_option(names.patterns))?);
    }
    Ok(lists)
}

/// The combined exclude filter of `--exclude`, `--iexclude`,
/// `--exclude-file` and `--iexclude-file`.
#[derive(Debug, Clone, Default)]
pub struct Excluder {
    lists: Vec<PatternList>,
}

impl Excluder {
    /// Reads pattern files and compiles all exclude patterns.
    pub fn new(opts: &PatternOptions) -> Result<Self, FilterError> {
        let names = OptionNames {
            patterns: "--exclude",
            insensitive_patterns: "--iexclude",
            files: "--exclude-file",
            insensitive_files: "--iexclude-file",
        };
        Ok(Excluder {
            lists: collect(opts, &names)?,
        })
    }

    /// Combines already compiled lists.
    pub fn from_lists(lists: Vec<PatternList>) -> Self {
        Excluder { lists }
    }

    /// Whether no exclude option was given (nothing is ever excluded).
    pub fn is_empty(&self) -> bool {
        self.lists.is_empty()
    }

    /// Whether `path` (absolute, `/`-separated) is excluded by any list.
    pub fn is_excluded(&self, path: impl AsRef<[u8]>) -> bool {
        let path = path.as_ref();
        self.lists.iter().any(|l| l.matches(path))
    }

    /// restic's restore select function for excludes:
    /// `(selected, traverse_children)`; excluded directories are not
    /// entered (children cannot be re-included), others are.
    pub fn restore_select(&self, path: impl AsRef<[u8]>, is_dir: bool) -> (bool, bool) {
        let selected = !self.is_excluded(path);
        (selected, selected && is_dir)
    }
}

/// The combined include filter of `restore --include`, `--iinclude`,
/// `--include-file` and `--iinclude-file`.
#[derive(Debug, Clone, Default)]
pub struct Includer {
    lists: Vec<PatternList>,
}

impl Includer {
    /// Reads pattern files and compiles all include patterns.
    pub fn new(opts: &PatternOptions) -> Result<Self, FilterError> {
        let names = OptionNames {
            patterns: "--include",
            insensitive_patterns: "--iinclude",
            files: "--include-file",
            insensitive_files: "--iinclude-file",
        };
        Ok(Includer {
            lists: collect(opts, &names)?,
        })
    }

    /// Combines already compiled lists.
    pub fn from_lists(lists: Vec<PatternList>) -> Self {
        Includer { lists }
    }

    /// Whether no include option was given. An empty includer selects
    /// nothing; callers should then not filter at all (restic restores
    /// everything without include options).
    pub fn is_empty(&self) -> bool {
        self.lists.is_empty()
    }

    /// `(selected, traverse_children)` for `path` inside the snapshot:
    /// selected if some pattern matches it (which covers everything below a
    /// matching directory); children are worth visiting if some pattern
    /// may match below it. Only descend into directories
    /// (`traverse_children && is_dir`), as restic does.
    pub fn selects(&self, path: impl AsRef<[u8]>) -> (bool, bool) {
        let path = path.as_ref();
        let mut selected = false;
        let mut traverse = false;
        for list in &self.lists {
            let (m, c) = list.matches_with_child(path);
            selected |= m;
            traverse |= c;
            if selected && traverse {
                break;
            }
        }
        (selected, traverse)
    }
}
