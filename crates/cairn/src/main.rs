//! The `cairn` command line: argument parsing, output, progress display and exit codes.

mod cli;
mod cmd;
mod open;
mod output;
mod profile;

use clap::Parser;
use std::process::ExitCode;

/// An error that carries the process exit code it should produce.
#[derive(Debug, thiserror::Error)]
#[error("{msg}")]
pub struct Exit {
    /// Exit code.
    pub code: u8,
    /// Message printed (empty for none).
    pub msg: String,
}

/// An error and its causes joined by ": ", skipping a cause whose text the message already
/// contains (errors that print their source themselves would otherwise show it twice).
pub(crate) fn error_text(e: &anyhow::Error) -> String {
    let mut msg = String::new();
    for cause in e.chain() {
        let part = cause.to_string();
        if msg.contains(&part) {
            continue;
        }
        if !msg.is_empty() {
            msg.push_str(": ");
        }
        msg.push_str(&part);
    }
    msg
}

/// Map an error to restic's exit codes.
pub(crate) fn exit_code(e: &anyhow::Error) -> u8 {
    use cairn_repo::RepoError;
    for cause in e.chain() {
        if let Some(x) = cause.downcast_ref::<Exit>() {
            return x.code;
        }
        match repo_error(cause) {
            Some(RepoError::NoRepository(_)) => return 10,
            Some(RepoError::Locked(_)) => return 11,
            Some(RepoError::WrongPassword) => return 12,
            _ => {}
        }
    }
    1
}

/// The repository error a cause of an error chain is, directly or wrapped by the engine.
pub(crate) fn repo_error<'e>(
    cause: &'e (dyn std::error::Error + 'static),
) -> Option<&'e cairn_repo::RepoError> {
    match cause.downcast_ref::<cairn_engine::EngineError>() {
        Some(cairn_engine::EngineError::Repo(r)) => Some(r),
        _ => cause.downcast_ref::<cairn_repo::RepoError>(),
    }
}

/// Handle SIGINT/SIGTERM on a dedicated thread: remove the repository locks this process
/// holds (so restic and Cairn do not see a stale lock) and exit with 130 like restic.
/// SIGHUP is ignored, as restic does: restic probes whether the process holding a lock on
/// its own host is alive by sending it SIGHUP (restic 0.14's `unlock` and stale checks).
fn install_signal_handling() {
    use nix::sys::signal::{SigHandler, SigSet, Signal, signal};
    // SAFETY: installing SIG_IGN runs no code in signal context.
    let _ = unsafe { signal(Signal::SIGHUP, SigHandler::SigIgn) };
    let mut set = SigSet::empty();
    for s in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGUSR1] {
        set.add(s);
    }
    if set.thread_block().is_err() {
        return;
    }
    let _ = std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            while let Ok(sig) = set.wait() {
                if sig == Signal::SIGUSR1 {
                    // Like restic: print the backup progress now (into the log of a profile run).
                    cmd::backup::PRINT_PROGRESS.store(true, std::sync::atomic::Ordering::Relaxed);
                    continue;
                }
                cairn_profile::hooks::forward_signal_to_children(libc::SIGINT);
                cairn_repo::repository::release_all_locks();
                eprintln!("received {sig:?}, removed locks, exiting");
                std::process::exit(130);
            }
        });
}

/// Make glibc return large buffers (pack files, chunk batches) to the system when freed: with
/// its default dynamic threshold, freed 16 MiB pack buffers stay in per-thread arenas and
/// inflate the peak memory.
fn tune_allocator() {
    // SAFETY: mallopt only changes allocator parameters; called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 4 << 20);
        // Keep freed chunk-sized heap memory instead of returning and re-faulting it.
        libc::mallopt(libc::M_TRIM_THRESHOLD, 8 << 20);
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// Raise the soft limit of open files to the hard limit (as Go, and so restic, does): the
/// parallel directory walk keeps one descriptor per directory being read.
fn raise_open_file_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE)
        && soft < hard
    {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}

fn init_tracing(quiet: bool, verbose: u8) {
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (_, 0) => "warn",
        (_, 1) => "info",
        _ => "debug",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CAIRN_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level)),
        )
        .with_writer(std::io::stderr)
        .without_time()
        .init();
}

fn main() -> ExitCode {
    tune_allocator();
    raise_open_file_limit();
    let cli = match profile::argv::classify(std::env::args_os().collect()) {
        profile::argv::Invocation::Restic(argv) => cli::Cli::parse_from(argv),
        profile::argv::Invocation::Profile(rp) => {
            install_signal_handling();
            init_tracing(rp.quiet, u8::from(rp.verbose));
            return profile::main(*rp);
        }
    };
    install_signal_handling();
    init_tracing(cli.global.quiet, cli.global.verbose);
    match cmd::run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let code = exit_code(&e);
            let partial = e.downcast_ref::<Exit>().is_some_and(|x| x.msg.is_empty());
            if !partial {
                if cli.global.json {
                    let msg = serde_json::json!({"message_type": "exit_error", "code": code, "message": error_text(&e)});
                    eprintln!("{msg}");
                } else {
                    eprintln!("Fatal: {}", error_text(&e));
                }
            }
            ExitCode::from(code)
        }
    }
}
