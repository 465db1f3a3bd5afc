//! Loading profile files (resticprofile format, §1–§7): locating the file, rendering Go
//! templates per requested profile, parsing TOML / YAML / JSON, merging includes, resolving
//! `inherit` (v1 index-merged lists, v2 replace + list edits + mixins), and reading the result
//! through [`Profile`] accessors. Engine command lines are built by [`crate::options`].

mod error;
mod global;
mod inherit;
mod load;
mod locate;
mod merge;
pub(crate) mod node;
mod parse;
pub(crate) mod paths;
mod profile;
pub(crate) mod render;
mod schedule;
mod show;

pub use cairn_calendar::{DurationError, format_go_duration, parse_go_duration};
pub use error::{ConfigError, ConfigErrorKind, Warning, suggest};
pub use load::{Config, ProfileInfo};
pub use locate::locate;
pub use parse::Format;
pub use profile::Profile;
pub use render::{RenderContext, RuntimeFuncs, go_arch, go_os};
