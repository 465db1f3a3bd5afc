//! Command-line definitions (clap derive), mirroring restic's command and flag names.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// Cairn: automated, encrypted, deduplicated backups in restic-compatible repositories.
#[derive(Debug, Parser)]
#[command(name = "cairn", version, about, long_about = None)]
pub struct Cli {
    /// Options shared by every command.
    #[command(flatten)]
    pub global: GlobalOpts,
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Options shared by every command (restic's global flags).
#[derive(Debug, Args, Clone, Default)]
pub struct GlobalOpts {
    /// Repository location (env: CAIRN_REPOSITORY, RESTIC_REPOSITORY). Default: the local
    /// repository under $XDG_DATA_HOME/cairn/repo.
    #[arg(short = 'r', long = "repo", global = true, value_name = "REPOSITORY")]
    pub repo: Option<String>,
    /// File to read the repository location from (env: RESTIC_REPOSITORY_FILE).
    #[arg(long, global = true, value_name = "FILE")]
    pub repository_file: Option<PathBuf>,
    /// File to read the password from (env: RESTIC_PASSWORD_FILE).
    #[arg(short = 'p', long, global = true, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// Command that prints the password, split into arguments like restic (no shell) (env:
    /// RESTIC_PASSWORD_COMMAND).
    #[arg(long, global = true, value_name = "COMMAND")]
    pub password_command: Option<String>,
    /// Use an empty password (restic's --insecure-no-password).
    #[arg(long, global = true)]
    pub insecure_no_password: bool,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// Print only errors.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// More output (repeat for more).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Directory of the local metadata cache (env: RESTIC_CACHE_DIR).
    #[arg(long, global = true, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Do not use a local metadata cache.
    #[arg(long, global = true)]
    pub no_cache: bool,
    /// Do not lock the repository (read-only commands only).
    #[arg(long, global = true)]
    pub no_lock: bool,
    /// Retry to take the lock for this long (e.g. 5m, 1h).
    #[arg(long, global = true, value_name = "DURATION")]
    pub retry_lock: Option<String>,
    /// Compression: auto, off, max, fastest, better (env: RESTIC_COMPRESSION).
    #[arg(long, global = true, value_name = "MODE")]
    pub compression: Option<String>,
    /// Target pack size in MiB, 4..128 (env: RESTIC_PACK_SIZE).
    #[arg(long, global = true, value_name = "MIB")]
    pub pack_size: Option<u32>,
    /// Backend option key=value (e.g. s3.region=eu-west-1, sftp.command=...), repeatable.
    #[arg(short = 'o', long = "option", global = true, value_name = "KEY=VALUE")]
    pub option: Vec<String>,
    /// Limit uploads to this many KiB/s.
    #[arg(long, global = true, value_name = "KIB_S")]
    pub limit_upload: Option<u64>,
    /// Limit downloads to this many KiB/s.
    #[arg(long, global = true, value_name = "KIB_S")]
    pub limit_download: Option<u64>,
    /// Extra CA certificate (PEM) to trust for TLS (repeatable).
    #[arg(long, global = true, value_name = "FILE")]
    pub cacert: Vec<PathBuf>,
    /// TLS client certificate and key (PEM) for the REST backend.
    #[arg(long, global = true, value_name = "FILE")]
    pub tls_client_cert: Option<PathBuf>,
    /// Skip TLS certificate verification for REST and S3 (testing only; restic's
    /// --insecure-tls).
    #[arg(long, global = true)]
    pub insecure_tls: bool,
}

/// All commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a new repository.
    Init(InitArgs),
    /// Back up files and directories (or stdin) into a new snapshot.
    Backup(BackupArgs),
    /// List snapshots.
    Snapshots(SnapshotsArgs),
    /// List the files of a snapshot.
    Ls(LsArgs),
    /// Restore a snapshot to a directory.
    Restore(RestoreArgs),
    /// Print repository objects (config, index, snapshot, tree, blob, pack, key, masterkey, lock).
    Cat(CatArgs),
    /// Find files by name in snapshots.
    Find(FindArgs),
    /// Show the differences between two snapshots.
    Diff(DiffArgs),
    /// Print a file, or a directory as tar or zip, from a snapshot.
    Dump(DumpArgs),
    /// Remove stale locks.
    Unlock(UnlockArgs),
    /// Remove snapshots according to a policy (and optionally prune).
    Forget(crate::cmd::forget::ForgetArgs),
    /// Remove data that no snapshot references, repacking partly used packs.
    Prune(crate::cmd::prune::PruneArgs),
    /// Check the repository for errors (structure, and data with --read-data).
    Check(crate::cmd::check::CheckArgs),
    /// Add, remove or set snapshot tags.
    Tag(crate::cmd::tag::TagArgs),
    /// Manage repository keys (passwords).
    Key(crate::cmd::key::KeyArgs),
    /// List repository objects (snapshots, index, packs, keys, locks, blobs).
    List(crate::cmd::list::ListArgs),
    /// Manage the local metadata cache.
    Cache(crate::cmd::cache::CacheArgs),
    /// Show repository statistics.
    Stats(crate::cmd::stats::StatsArgs),
    /// Apply repository migrations (upgrade_repo_v2).
    Migrate(crate::cmd::migrate::MigrateArgs),
    /// Copy snapshots from another repository.
    Copy(crate::cmd::copy::CopyArgs),
    /// Rewrite snapshots, excluding files.
    Rewrite(crate::cmd::rewrite::RewriteArgs),
    /// Repair the index, packs or snapshots.
    Repair(crate::cmd::repair::RepairArgs),
    /// Serve repositories over restic's REST protocol (like rest-server).
    Serve(crate::cmd::serve::ServeArgs),
    /// Deprecated name of `repair index` (restic's `rebuild-index`).
    #[command(name = "rebuild-index", hide = true)]
    RebuildIndex(crate::cmd::repair::index::RepairIndexArgs),
    /// Print version information.
    Version,
}

/// Snapshot filters shared by several commands.
#[derive(Debug, Args, Clone, Default)]
pub struct SnapshotFilterArgs {
    /// Only consider snapshots of this host (repeatable).
    #[arg(long = "host", short = 'H', value_name = "HOST")]
    pub host: Vec<String>,
    /// Only consider snapshots with these tags (comma-separated tags must all match; repeat for OR).
    #[arg(long = "tag", value_name = "TAG[,TAG]")]
    pub tag: Vec<String>,
    /// Only consider snapshots with this path (repeatable).
    #[arg(long = "path", value_name = "PATH")]
    pub path: Vec<String>,
}

/// `init` options.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Repository format version: 1, 2 or latest.
    #[arg(long, default_value = "2")]
    pub repository_version: String,
    /// Copy the chunker parameters from the --from-repo repository (copies then keep
    /// deduplication).
    #[arg(long)]
    pub copy_chunker_params: bool,
    /// The repository to copy the chunker parameters from (--from-repo, --from-password-file,
    /// ...).
    #[command(flatten)]
    pub from: crate::cmd::copy::FromRepoArgs,
}

/// restic's exclude pattern flags (`backup`, `rewrite`).
#[derive(Debug, Args, Clone, Default)]
pub struct ExcludePatternArgs {
    /// Exclude paths matching PATTERN (repeatable).
    #[arg(short = 'e', long = "exclude", value_name = "PATTERN")]
    pub exclude: Vec<String>,
    /// Like --exclude, case-insensitive.
    #[arg(long = "iexclude", value_name = "PATTERN")]
    pub iexclude: Vec<String>,
    /// Read exclude patterns from FILE.
    #[arg(long = "exclude-file", value_name = "FILE")]
    pub exclude_file: Vec<PathBuf>,
    /// Read case-insensitive exclude patterns from FILE.
    #[arg(long = "iexclude-file", value_name = "FILE")]
    pub iexclude_file: Vec<PathBuf>,
}

impl ExcludePatternArgs {
    /// The engine's pattern options for these flags.
    pub fn options(&self) -> cairn_engine::filter::PatternOptions {
        cairn_engine::filter::PatternOptions {
            patterns: self.exclude.clone(),
            insensitive_patterns: self.iexclude.clone(),
            files: self.exclude_file.clone(),
            insensitive_files: self.iexclude_file.clone(),
        }
    }
}

/// `backup` options.
#[derive(Debug, Args, Default)]
pub struct BackupArgs {
    /// Files and directories to back up.
    pub paths: Vec<PathBuf>,
    /// Exclude patterns.
    #[command(flatten)]
    pub patterns: ExcludePatternArgs,
    /// Exclude directories marked with a CACHEDIR.TAG file.
    #[arg(long)]
    pub exclude_caches: bool,
    /// Exclude directories containing FILE[:HEADER].
    #[arg(long = "exclude-if-present", value_name = "FILE[:HEADER]")]
    pub exclude_if_present: Vec<String>,
    /// Exclude files larger than SIZE (e.g. 100M).
    #[arg(long, value_name = "SIZE")]
    pub exclude_larger_than: Option<String>,
    /// Do not cross file system boundaries.
    #[arg(short = 'x', long)]
    pub one_file_system: bool,
    /// Read paths to back up from FILE (one per line, # comments; repeatable).
    #[arg(long = "files-from", value_name = "FILE")]
    pub files_from: Vec<PathBuf>,
    /// Read paths from FILE verbatim, one per line.
    #[arg(long = "files-from-verbatim", value_name = "FILE")]
    pub files_from_verbatim: Vec<PathBuf>,
    /// Read NUL-separated paths from FILE.
    #[arg(long = "files-from-raw", value_name = "FILE")]
    pub files_from_raw: Vec<PathBuf>,
    /// Add tags to the snapshot (comma-separated, repeatable).
    #[arg(long = "tag", value_name = "TAG[,TAG]")]
    pub tag: Vec<String>,
    /// Host name recorded in the snapshot.
    #[arg(short = 'H', long)]
    pub host: Option<String>,
    /// Snapshot time (YYYY-MM-DD HH:MM:SS) instead of now.
    #[arg(long)]
    pub time: Option<String>,
    /// Use this snapshot as parent instead of the latest matching one.
    #[arg(long)]
    pub parent: Option<String>,
    /// Read all files again (no parent snapshot).
    #[arg(short, long)]
    pub force: bool,
    /// Ignore inode numbers (and ctime) when detecting changes.
    #[arg(long)]
    pub ignore_inode: bool,
    /// Ignore ctime when detecting changes.
    #[arg(long)]
    pub ignore_ctime: bool,
    /// Store the access time of files.
    #[arg(long)]
    pub with_atime: bool,
    /// Read standard input as one file.
    #[arg(long)]
    pub stdin: bool,
    /// File name for --stdin.
    #[arg(long, default_value = "stdin")]
    pub stdin_filename: String,
    /// Do everything except writing to the repository.
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    /// Number of files read at once (worker threads).
    #[arg(long, value_name = "N")]
    pub read_concurrency: Option<usize>,
    /// Do not create a snapshot when nothing changed since the parent.
    #[arg(long)]
    pub skip_if_unchanged: bool,
}

/// `snapshots` options.
#[derive(Debug, Args)]
pub struct SnapshotsArgs {
    /// Snapshot ids to show (default all).
    pub ids: Vec<String>,
    /// Filters.
    #[command(flatten)]
    pub filter: SnapshotFilterArgs,
    /// Group by host, paths, tags (comma-separated).
    #[arg(short = 'g', long, value_name = "GROUPS")]
    pub group_by: Option<String>,
    /// Only the latest N snapshots of each group.
    #[arg(long, value_name = "N")]
    pub latest: Option<usize>,
    /// Show the compact form.
    #[arg(short, long)]
    pub compact: bool,
}

/// `ls` options.
#[derive(Debug, Args)]
pub struct LsArgs {
    /// Snapshot (id, prefix, latest, ID:subfolder).
    pub snapshot: String,
    /// Restrict to these directories.
    pub dirs: Vec<String>,
    /// Long listing (mode, owner, size, time).
    #[arg(short, long)]
    pub long: bool,
    /// Descend into subdirectories of the given dirs.
    #[arg(long)]
    pub recursive: bool,
    /// Filters for `latest`.
    #[command(flatten)]
    pub filter: SnapshotFilterArgs,
}

/// `restore` options.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// Snapshot (id, prefix, latest, ID:subfolder).
    pub snapshot: String,
    /// Directory to restore into.
    #[arg(short, long)]
    pub target: PathBuf,
    /// Restore only paths matching PATTERN.
    #[arg(short, long = "include", value_name = "PATTERN")]
    pub include: Vec<String>,
    /// Like --include, case-insensitive.
    #[arg(long = "iinclude", value_name = "PATTERN")]
    pub iinclude: Vec<String>,
    /// Do not restore paths matching PATTERN.
    #[arg(short, long = "exclude", value_name = "PATTERN")]
    pub exclude: Vec<String>,
    /// Like --exclude, case-insensitive.
    #[arg(long = "iexclude", value_name = "PATTERN")]
    pub iexclude: Vec<String>,
    /// Check restored files against the snapshot afterwards.
    #[arg(long)]
    pub verify: bool,
    /// Restore files with holes where the data is zero.
    #[arg(long)]
    pub sparse: bool,
    /// Show what would be restored.
    #[arg(long)]
    pub dry_run: bool,
    /// When to overwrite existing files: always, if-changed, if-newer, never.
    #[arg(long, default_value = "always")]
    pub overwrite: String,
    /// Delete files in the target that are not in the snapshot.
    #[arg(long)]
    pub delete: bool,
    /// Filters for `latest`.
    #[command(flatten)]
    pub filter: SnapshotFilterArgs,
}

/// `cat` options.
#[derive(Debug, Args)]
pub struct CatArgs {
    /// Object type: config, index, snapshot, tree, blob, pack, key, masterkey, lock.
    pub object: String,
    /// Object id (or snapshot[:path] for tree).
    pub id: Option<String>,
}

/// `find` options.
#[derive(Debug, Args)]
pub struct FindArgs {
    /// Name patterns.
    #[arg(required = true)]
    pub patterns: Vec<String>,
    /// Only search these snapshots (repeatable).
    #[arg(short, long = "snapshot", value_name = "ID")]
    pub snapshot: Vec<String>,
    /// Case-insensitive matching.
    #[arg(short, long)]
    pub ignore_case: bool,
    /// Long listing.
    #[arg(short, long)]
    pub long: bool,
    /// Only files newer than this time.
    #[arg(short = 'N', long)]
    pub newest: Option<String>,
    /// Only files older than this time.
    #[arg(short = 'O', long)]
    pub oldest: Option<String>,
    /// Filters.
    #[command(flatten)]
    pub filter: SnapshotFilterArgs,
}

/// `diff` options.
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// First snapshot.
    pub first: String,
    /// Second snapshot.
    pub second: String,
    /// Also report metadata changes.
    #[arg(long)]
    pub metadata: bool,
}

/// `dump` options.
#[derive(Debug, Args)]
pub struct DumpArgs {
    /// Snapshot (id, prefix, latest, ID:subfolder).
    pub snapshot: String,
    /// Path of a file or directory in the snapshot.
    #[arg(value_name = "PATH")]
    pub file: String,
    /// Archive format for directories: tar or zip.
    #[arg(short, long, default_value = "tar")]
    pub archive: String,
    /// Write to this file instead of stdout.
    #[arg(short, long)]
    pub target: Option<PathBuf>,
    /// Filters for `latest`.
    #[command(flatten)]
    pub filter: SnapshotFilterArgs,
}

/// `unlock` options.
#[derive(Debug, Args)]
pub struct UnlockArgs {
    /// Remove all locks, also those that are not stale.
    #[arg(long)]
    pub remove_all: bool,
}
