//! A static engine schema for tests: the flags of `restic <cmd> --help` (restic 0.14) plus
//! flags only Cairn (or newer restic) has, such as `read-concurrency` and `repair snapshots`.

#![allow(dead_code)]

use cairn_profile::types::{FlagKind, FlagSchema};

const GLOBAL: &[&str] = &[
    "cacert",
    "cache-dir",
    "cleanup-cache",
    "compression",
    "insecure-tls",
    "json",
    "key-hint",
    "limit-download",
    "limit-upload",
    "no-cache",
    "no-lock",
    "option",
    "pack-size",
    "password-command",
    "password-file",
    "quiet",
    "repo",
    "repository-file",
    "tls-client-cert",
    "verbose",
    "retry-lock",
    "no-extra-verify",
    "insecure-no-password",
    "stuck-request-timeout",
    "http-user-agent",
];

const COMMANDS: &[(&str, &[&str])] = &[
    (
        "backup",
        &[
            "dry-run",
            "exclude",
            "exclude-caches",
            "exclude-file",
            "exclude-if-present",
            "exclude-larger-than",
            "files-from",
            "files-from-raw",
            "files-from-verbatim",
            "force",
            "host",
            "iexclude",
            "iexclude-file",
            "ignore-ctime",
            "ignore-inode",
            "one-file-system",
            "parent",
            "stdin",
            "stdin-filename",
            "tag",
            "time",
            "with-atime",
            // newer restic / Cairn
            "read-concurrency",
            "group-by",
            "skip-if-unchanged",
            "no-scan",
        ],
    ),
    (
        "forget",
        &[
            "keep-last",
            "keep-hourly",
            "keep-daily",
            "keep-weekly",
            "keep-monthly",
            "keep-yearly",
            "keep-within",
            "keep-within-hourly",
            "keep-within-daily",
            "keep-within-weekly",
            "keep-within-monthly",
            "keep-within-yearly",
            "keep-tag",
            "host",
            "tag",
            "path",
            "compact",
            "group-by",
            "dry-run",
            "prune",
            "max-unused",
            "max-repack-size",
            "repack-cacheable-only",
            "repack-small",
            "repack-uncompressed",
        ],
    ),
    ("check", &["read-data", "read-data-subset", "with-cache"]),
    (
        "prune",
        &[
            "dry-run",
            "max-repack-size",
            "max-unused",
            "repack-cacheable-only",
            "repack-small",
            "repack-uncompressed",
            "unsafe-recover-no-free-space",
        ],
    ),
    (
        "snapshots",
        &["compact", "group-by", "host", "latest", "path", "tag"],
    ),
    (
        "ls",
        &["host", "long", "path", "recursive", "tag", "human-readable"],
    ),
    (
        "find",
        &[
            "blob",
            "host",
            "ignore-case",
            "long",
            "newest",
            "oldest",
            "pack",
            "path",
            "show-pack-id",
            "snapshot",
            "tag",
            "tree",
            "human-readable",
        ],
    ),
    (
        "restore",
        &[
            "exclude", "host", "iexclude", "iinclude", "include", "path", "tag", "target", "verify",
        ],
    ),
    (
        "copy",
        &[
            "from-key-hint",
            "from-password-command",
            "from-password-file",
            "from-repo",
            "from-repository-file",
            "host",
            "path",
            "tag",
        ],
    ),
    (
        "init",
        &[
            "copy-chunker-params",
            "from-key-hint",
            "from-password-command",
            "from-password-file",
            "from-repo",
            "from-repository-file",
            "repository-version",
        ],
    ),
    ("stats", &["host", "mode", "path", "tag"]),
    ("diff", &["metadata"]),
    ("tag", &["add", "host", "path", "remove", "set", "tag"]),
    ("cache", &["cleanup", "max-age", "no-size"]),
    ("key add", &["host", "new-password-file", "user"]),
    ("key list", &[]),
    (
        "repair snapshots",
        &["dry-run", "forget", "host", "path", "tag"],
    ),
    ("repair index", &["read-all-packs"]),
    ("dump", &["archive", "host", "path", "tag"]),
    ("unlock", &["remove-all"]),
];

const REPEATED: &[&str] = &[
    "tag",
    "host",
    "path",
    "exclude",
    "iexclude",
    "exclude-file",
    "iexclude-file",
    "files-from",
    "files-from-raw",
    "files-from-verbatim",
    "exclude-if-present",
    "keep-tag",
    "option",
    "include",
    "iinclude",
    "add",
    "remove",
    "set",
    "snapshot",
];

const VALUED: &[&str] = &[
    "cacert",
    "cache-dir",
    "compression",
    "key-hint",
    "limit-download",
    "limit-upload",
    "pack-size",
    "password-command",
    "password-file",
    "repo",
    "repository-file",
    "tls-client-cert",
    "retry-lock",
    "stuck-request-timeout",
    "http-user-agent",
    "exclude-larger-than",
    "parent",
    "stdin-filename",
    "time",
    "read-concurrency",
    "group-by",
    "keep-last",
    "keep-hourly",
    "keep-daily",
    "keep-weekly",
    "keep-monthly",
    "keep-yearly",
    "keep-within",
    "keep-within-hourly",
    "keep-within-daily",
    "keep-within-weekly",
    "keep-within-monthly",
    "keep-within-yearly",
    "max-unused",
    "max-repack-size",
    "read-data-subset",
    "latest",
    "newest",
    "oldest",
    "target",
    "from-key-hint",
    "from-password-command",
    "from-password-file",
    "from-repo",
    "from-repository-file",
    "repository-version",
    "mode",
    "max-age",
    "new-password-file",
    "user",
    "archive",
    "unsafe-recover-no-free-space",
];

/// The test schema.
pub struct TestSchema;

impl FlagSchema for TestSchema {
    fn long_of_short(&self, command: &str, short: char) -> Option<String> {
        let long = match short {
            'r' => "repo",
            'p' => "password-file",
            'o' => "option",
            'q' => "quiet",
            'v' => "verbose",
            'H' => "host",
            _ => return None,
        };
        self.flag(command, long).map(|_| long.to_string())
    }

    fn has_command(&self, command: &str) -> bool {
        COMMANDS.iter().any(|(c, _)| *c == command)
    }

    fn flag(&self, command: &str, flag: &str) -> Option<FlagKind> {
        let (_, flags) = COMMANDS.iter().find(|(c, _)| *c == command)?;
        if !GLOBAL.contains(&flag) && !flags.contains(&flag) {
            return None;
        }
        Some(if flag == "verbose" {
            FlagKind::Count
        } else if REPEATED.contains(&flag) {
            FlagKind::Repeated
        } else if VALUED.contains(&flag) {
            FlagKind::Value
        } else {
            FlagKind::Bool
        })
    }

    fn flags(&self, command: &str) -> Vec<String> {
        let Some((_, flags)) = COMMANDS.iter().find(|(c, _)| *c == command) else {
            return Vec::new();
        };
        GLOBAL
            .iter()
            .chain(flags.iter())
            .map(|s| s.to_string())
            .collect()
    }
}
