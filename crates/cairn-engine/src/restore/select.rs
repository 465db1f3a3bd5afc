//! restic's restore selection (`SelectFilter`) over the include/exclude patterns: which
//! snapshot paths (relative to the restored tree, `/a/b`) are restored, and whether a
//! directory must be walked because something below it may be.

use super::RestoreOptions;
use crate::error::{EngineError, Result};
use crate::filter::{Excluder, Includer, PatternOptions};

/// The selection of one restore.
pub(crate) enum Selector {
    /// No patterns: everything.
    All,
    /// `--exclude`/`--iexclude`.
    Exclude(Excluder),
    /// `--include`/`--iinclude`.
    Include(Includer),
}

impl Selector {
    /// Compile the patterns of `opts` (includes and excludes are mutually exclusive).
    pub(crate) fn new(opts: &RestoreOptions) -> Result<Selector> {
        let has_ex = !opts.excludes.is_empty() || !opts.iexcludes.is_empty();
        let has_in = !opts.includes.is_empty() || !opts.iincludes.is_empty();
        match (has_ex, has_in) {
            (true, true) => Err(EngineError::Invalid(
                "exclude and include patterns are mutually exclusive".into(),
            )),
            (true, false) => {
                let po = PatternOptions {
                    patterns: opts.excludes.clone(),
                    insensitive_patterns: opts.iexcludes.clone(),
                    ..Default::default()
                };
                Excluder::new(&po)
                    .map(Selector::Exclude)
                    .map_err(|e| EngineError::Invalid(e.to_string()))
            }
            (false, true) => {
                let po = PatternOptions {
                    patterns: opts.includes.clone(),
                    insensitive_patterns: opts.iincludes.clone(),
                    ..Default::default()
                };
                Includer::new(&po)
                    .map(Selector::Include)
                    .map_err(|e| EngineError::Invalid(e.to_string()))
            }
            (false, false) => Ok(Selector::All),
        }
    }

    /// Whether any pattern was given.
    pub(crate) fn has_filters(&self) -> bool {
        !matches!(self, Selector::All)
    }

    /// `(selected for restore, a child may be selected)` for a snapshot path.
    pub(crate) fn select(&self, location: &[u8], is_dir: bool) -> (bool, bool) {
        match self {
            Selector::All => (true, is_dir),
            Selector::Exclude(ex) => {
                let selected = !ex.is_excluded(location);
                (selected, selected && is_dir)
            }
            Selector::Include(inc) => {
                let (selected, child) = inc.selects(location);
                (selected, child && is_dir)
            }
        }
    }
}
