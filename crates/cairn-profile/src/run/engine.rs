//! The engine as the run flow sees it: run one command with arguments, get its exit code, error
//! message and (for backup) counters. The binary implements it in-process.

use crate::types::BackupStats;

/// One engine command.
#[derive(Debug, Clone)]
pub struct EngineCall<'a> {
    /// Command, possibly two words (`backup`, `repair snapshots`, `key add`).
    pub command: &'a str,
    /// Arguments in restic's syntax (`--host=x`, `/etc`), profile options first, then the
    /// user's extra arguments (which win).
    pub args: &'a [String],
}

/// What an engine command produced.
#[derive(Debug, Clone, Default)]
pub struct EngineResult {
    /// restic's exit codes: 0 ok, 1 error, 3 backup saved with unreadable files, 10 no
    /// repository, 11 lock failed, 12 wrong password, 130 interrupted.
    pub exit_code: i32,
    /// The error message, when the command failed.
    pub error: Option<String>,
    /// Backup counters, when the command was a backup that wrote (or would write) a snapshot.
    pub stats: Option<BackupStats>,
    /// With exit code 11: how old the conflicting repository lock is (from its creation time).
    pub lock_age: Option<std::time::Duration>,
}

/// Runs engine commands.
pub trait Engine {
    /// Run one command to completion; its output goes to the process's stdout/stderr.
    fn run(&self, call: &EngineCall) -> EngineResult;
    /// The command line as a user would type it, secrets masked (for `ERROR_COMMANDLINE`,
    /// `--dry-run` and logs): `"cairn" "backup" "--host=x"`.
    fn command_line(&self, call: &EngineCall) -> String;
}
