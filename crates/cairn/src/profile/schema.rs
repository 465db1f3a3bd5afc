//! The engine's flag schema for the profile layer, read from Cairn's own clap definitions: which
//! commands exist and which flags each accepts (global flags included), so profile options reach
//! exactly the commands that understand them.

use cairn_profile::types::{FlagKind, FlagSchema};
use clap::{ArgAction, CommandFactory};

/// [`FlagSchema`] backed by the `cairn` command-line definitions.
pub struct ClapSchema {
    root: clap::Command,
}

impl ClapSchema {
    /// Build the schema (global flags propagated to every subcommand).
    pub fn new() -> Self {
        let mut root = crate::cli::Cli::command();
        root.build();
        ClapSchema { root }
    }

    /// The clap command for `command` (`backup`, `repair snapshots`, `key add`, `repair-snapshots`).
    fn find(&self, command: &str) -> Option<&clap::Command> {
        let words: Vec<&str> = command
            .split([' ', '-'])
            .filter(|w| !w.is_empty())
            .collect();
        // A whole-word match first (`rebuild-index`), then the multi-word path.
        if let Some(c) = self.root.find_subcommand(command) {
            return Some(c);
        }
        let mut cur = &self.root;
        for w in words {
            cur = cur.find_subcommand(w)?;
        }
        Some(cur)
    }
}

impl Default for ClapSchema {
    fn default() -> Self {
        Self::new()
    }
}

fn kind(arg: &clap::Arg) -> FlagKind {
    match arg.get_action() {
        ArgAction::SetTrue | ArgAction::SetFalse => FlagKind::Bool,
        ArgAction::Count => FlagKind::Count,
        ArgAction::Append => FlagKind::Repeated,
        _ => FlagKind::Value,
    }
}

impl FlagSchema for ClapSchema {
    fn has_command(&self, command: &str) -> bool {
        self.find(command).is_some()
    }

    fn flag(&self, command: &str, flag: &str) -> Option<FlagKind> {
        let cmd = self.find(command)?;
        cmd.get_arguments()
            .find(|a| {
                a.get_long() == Some(flag)
                    || a.get_all_aliases().is_some_and(|al| al.contains(&flag))
            })
            .map(kind)
    }

    fn flags(&self, command: &str) -> Vec<String> {
        self.find(command)
            .map(|c| {
                c.get_arguments()
                    .filter_map(|a| a.get_long().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn long_of_short(&self, command: &str, short: char) -> Option<String> {
        self.find(command)?
            .get_arguments()
            .find(|a| a.get_short() == Some(short))
            .and_then(|a| a.get_long())
            .map(str::to_string)
    }
}

/// Whether `word` is one of the engine's top-level commands (`backup`, `rebuild-index`, ...).
pub fn is_engine_command(word: &str) -> bool {
    use std::sync::OnceLock;
    static NAMES: OnceLock<Vec<String>> = OnceLock::new();
    NAMES
        .get_or_init(|| {
            crate::cli::Cli::command()
                .get_subcommands()
                .flat_map(|c| {
                    std::iter::once(c.get_name().to_string())
                        .chain(c.get_all_aliases().map(str::to_string))
                })
                .collect()
        })
        .iter()
        .any(|n| n == word)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_commands_and_flags_from_the_cli() {
        let s = ClapSchema::new();
        assert!(s.has_command("backup"));
        assert!(s.has_command("repair snapshots"));
        assert!(s.has_command("repair-snapshots"));
        assert!(s.has_command("key add"));
        assert!(!s.has_command("nonsense"));
        assert_eq!(s.flag("backup", "exclude-caches"), Some(FlagKind::Bool));
        assert_eq!(s.flag("backup", "tag"), Some(FlagKind::Repeated));
        assert_eq!(s.flag("backup", "host"), Some(FlagKind::Value));
        assert_eq!(s.flag("backup", "verbose"), Some(FlagKind::Count));
        // Global flags reach every command.
        assert_eq!(s.flag("forget", "repo"), Some(FlagKind::Value));
        assert_eq!(s.flag("forget", "keep-within-daily"), Some(FlagKind::Value));
        assert_eq!(s.flag("check", "keep-within-daily"), None);
        assert_eq!(s.flag("ls", "long"), Some(FlagKind::Bool));
        assert_eq!(s.flag("repair snapshots", "forget"), Some(FlagKind::Bool));
        assert!(s.flags("prune").iter().any(|f| f == "max-unused"));
        assert_eq!(s.long_of_short("backup", 'H').as_deref(), Some("host"));
        assert_eq!(s.long_of_short("forget", 'r').as_deref(), Some("repo"));
        assert_eq!(s.long_of_short("backup", 'v').as_deref(), Some("verbose"));
        assert_eq!(s.long_of_short("backup", 'Z'), None);
    }
}
