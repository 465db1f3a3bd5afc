//! The `cairn` command line: argument parsing, output, progress display and exit codes.

mod cli;
mod cmd;
mod open;
mod output;

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

/// Map an error to restic's exit codes.
fn exit_code(e: &anyhow::Error) -> u8 {
    use cairn_repo::RepoError;
    for cause in e.chain() {
        if let Some(x) = cause.downcast_ref::<Exit>() {
            return x.code;
        }
        if let Some(r) = cause.downcast_ref::<RepoError>() {
            match r {
                RepoError::NoRepository(_) => return 10,
                RepoError::Locked(_) => return 11,
                RepoError::WrongPassword => return 12,
                _ => {}
            }
        }
        if let Some(cairn_engine::EngineError::Repo(r)) =
            cause.downcast_ref::<cairn_engine::EngineError>()
        {
            match r {
                RepoError::NoRepository(_) => return 10,
                RepoError::Locked(_) => return 11,
                RepoError::WrongPassword => return 12,
                _ => {}
            }
        }
    }
    1
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
    for s in [Signal::SIGINT, Signal::SIGTERM] {
        set.add(s);
    }
    if set.thread_block().is_err() {
        return;
    }
    let _ = std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            if let Ok(sig) = set.wait() {
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

fn main() -> ExitCode {
    tune_allocator();
    raise_open_file_limit();
    let cli = cli::Cli::parse();
    install_signal_handling();
    let level = match (cli.global.quiet, cli.global.verbose) {
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
    match cmd::run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let code = exit_code(&e);
            let partial = e.downcast_ref::<Exit>().is_some_and(|x| x.msg.is_empty());
            if !partial {
                if cli.global.json {
                    let msg = serde_json::json!({"message_type": "exit_error", "code": code, "message": format!("{e:#}")});
                    eprintln!("{msg}");
                } else {
                    eprintln!("Fatal: {e:#}");
                }
            }
            ExitCode::from(code)
        }
    }
}
