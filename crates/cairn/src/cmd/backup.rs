//! `cairn backup`: options to the engine, progress display, summary and exit code 3 on
//! unreadable files.

use crate::Exit;
use crate::cli::{BackupArgs, GlobalOpts};
use crate::output;
use anyhow::{Context, Result, anyhow};
use cairn_engine::backup::{
    BackupOptions, BackupProgress, BackupResult, ParentChoice, StdinSource, backup,
};
use cairn_engine::filter::{Excluder, TagFileRule, parse_size};
use cairn_repo::gotime::GoTime;
use cairn_repo::repository::LockMode;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Read `--files-from*` lists.
fn files_from(a: &BackupArgs) -> Result<Vec<PathBuf>> {
    use std::os::unix::ffi::OsStrExt;
    let mut out = Vec::new();
    for f in &a.files_from {
        let text = read_list(f)?;
        for line in String::from_utf8_lossy(&text).lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            out.extend(expand_glob(line));
        }
    }
    for f in &a.files_from_verbatim {
        let text = read_list(f)?;
        for line in text.split(|b| *b == b'\n') {
            if !line.is_empty() {
                out.push(PathBuf::from(std::ffi::OsStr::from_bytes(line)));
            }
        }
    }
    for f in &a.files_from_raw {
        let text = read_list(f)?;
        for item in text.split(|b| *b == 0) {
            if !item.is_empty() {
                out.push(PathBuf::from(std::ffi::OsStr::from_bytes(item)));
            }
        }
    }
    Ok(out)
}

/// Expand a `--files-from` line with glob characters like Go's `filepath.Glob` (each
/// component matched separately); a pattern that matches nothing is kept as it is, so it is
/// reported as a missing source.
fn expand_glob(pattern: &str) -> Vec<PathBuf> {
    if !pattern.contains(['*', '?', '[']) {
        return vec![PathBuf::from(pattern)];
    }
    let mut current = vec![if pattern.starts_with('/') {
        PathBuf::from("/")
    } else {
        PathBuf::new()
    }];
    for comp in pattern.split('/').filter(|c| !c.is_empty()) {
        let mut next = Vec::new();
        for base in &current {
            if !comp.contains(['*', '?', '[']) {
                let p = base.join(comp);
                if p.symlink_metadata().is_ok() {
                    next.push(p);
                }
                continue;
            }
            let dir = if base.as_os_str().is_empty() {
                PathBuf::from(".")
            } else {
                base.clone()
            };
            let Ok(rd) = std::fs::read_dir(&dir) else {
                continue;
            };
            let mut names: Vec<_> = rd.flatten().map(|e| e.file_name()).collect();
            names.sort();
            for n in names {
                use std::os::unix::ffi::OsStrExt;
                if cairn_engine::filter::match_pattern(comp, n.as_bytes()).unwrap_or(false) {
                    next.push(base.join(n));
                }
            }
        }
        current = next;
    }
    if current.is_empty() {
        vec![PathBuf::from(pattern)]
    } else {
        current
    }
}

fn read_list(f: &PathBuf) -> Result<Vec<u8>> {
    if f.as_os_str() == "-" {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut v)?;
        return Ok(v);
    }
    std::fs::read(f).with_context(|| format!("reading {}", f.display()))
}

fn parse_time(s: &str) -> Result<GoTime> {
    use chrono::{Local, NaiveDateTime, TimeZone};
    let naive = NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S")
        .map_err(|e| anyhow!("invalid --time {s:?} (want YYYY-MM-DD HH:MM:SS): {e}"))?;
    let t = Local
        .from_local_datetime(&naive)
        .earliest()
        .ok_or_else(|| anyhow!("--time {s:?} does not exist in the local time zone"))?;
    Ok(GoTime(t.fixed_offset()))
}

pub fn run(g: &GlobalOpts, a: &BackupArgs) -> Result<()> {
    let mut paths = a.paths.clone();
    paths.extend(files_from(a)?);
    if paths.is_empty() && !a.stdin {
        return Err(anyhow!(
            "nothing to back up: give paths, --files-from or --stdin"
        ));
    }
    if a.stdin && !paths.is_empty() {
        return Err(anyhow!("--stdin cannot be combined with paths"));
    }
    let pattern_opts = a.patterns.options();
    let excluder = if pattern_opts.is_empty() {
        None
    } else {
        Some(Excluder::new(&pattern_opts)?)
    };
    let mut tag_rules = Vec::new();
    if a.exclude_caches {
        tag_rules.push(TagFileRule::exclude_caches());
    }
    for spec in &a.exclude_if_present {
        tag_rules.push(TagFileRule::parse(spec)?);
    }
    let mut recorded = a.patterns.exclude.clone();
    recorded.extend(a.patterns.iexclude.iter().cloned());
    let host = match &a.host {
        Some(h) => h.clone(),
        None => open_host(),
    };
    let repo = crate::open::open_or_create_default(g, g.quiet || g.json)?;
    let _lock = if a.dry_run {
        None
    } else {
        super::lock(g, &repo, LockMode::Shared)?
    };
    let parent = if a.force {
        ParentChoice::None
    } else if let Some(p) = &a.parent {
        ParentChoice::Id(repo.find_id(cairn_repo::backend::FileType::Snapshot, p)?)
    } else {
        ParentChoice::Auto
    };
    repo.load_index()?;
    let opts = BackupOptions {
        paths,
        exclude_patterns: recorded,
        tag_rules,
        exclude_larger_than: a
            .exclude_larger_than
            .as_deref()
            .map(parse_size)
            .transpose()?,
        one_file_system: a.one_file_system,
        tags: a
            .tag
            .iter()
            .flat_map(|t| t.split(','))
            .filter(|t| !t.is_empty())
            .map(String::from)
            .collect(),
        host,
        time: a.time.as_deref().map(parse_time).transpose()?,
        parent,
        ignore_inode: a.ignore_inode,
        ignore_ctime: a.ignore_ctime,
        with_atime: a.with_atime,
        dry_run: a.dry_run,
        skip_if_unchanged: a.skip_if_unchanged,
        threads: a.read_concurrency.unwrap_or(0),
        scan_totals: output::show_progress(g.json, g.quiet) || (g.json && !g.quiet),
        stdin: a.stdin.then(|| StdinSource {
            filename: a.stdin_filename.clone(),
        }),
    };
    let progress = BackupProgress::default();
    let started = Instant::now();
    let done = AtomicBool::new(false);
    let json = g.json;
    let on_warning = |msg: &str| {
        if json {
            output::json_error("archival", msg);
        } else if !g.quiet {
            eprintln!("error: {msg}");
        }
    };
    let result: Result<BackupResult> = std::thread::scope(|s| {
        let show_bar = output::show_progress(g.json, g.quiet);
        let (progress, done) = (&progress, &done);
        let profile = std::env::var("CAIRN_PROFILE_NAME").ok();
        let json_status = g.json && !g.quiet;
        let reporter = (show_bar || json_status || profile.is_some()).then(|| {
            s.spawn(move || {
                let mode = ProgressMode {
                    bar: show_bar,
                    json: json_status,
                    profile: profile.as_deref(),
                };
                report_progress(progress, done, started, mode)
            })
        });
        let r = backup(&repo, &opts, excluder.as_ref(), progress, &on_warning);
        done.store(true, Ordering::Relaxed);
        if let Some(h) = reporter {
            let _ = h.join();
        }
        Ok(r?)
    });
    let r = result?;
    publish_stats(&r);
    print_summary(g, &r, started.elapsed(), a.dry_run);
    if !r.warnings.is_empty() {
        if !g.quiet && !g.json {
            eprintln!(
                "Warning: at least one source file could not be read ({} errors)",
                r.warnings.len()
            );
        }
        return Err(Exit {
            code: 3,
            msg: String::new(),
        }
        .into());
    }
    Ok(())
}

static LAST_STATS: std::sync::Mutex<Option<cairn_profile::types::BackupStats>> =
    std::sync::Mutex::new(None);

/// Take the counters of the last backup this process ran (for the profile layer's status file
/// and metrics).
pub fn take_last_stats() -> Option<cairn_profile::types::BackupStats> {
    LAST_STATS.lock().ok().and_then(|mut g| g.take())
}

fn publish_stats(r: &BackupResult) {
    let s = &r.summary;
    let stats = cairn_profile::types::BackupStats {
        files_new: s.files_new,
        files_changed: s.files_changed,
        files_unmodified: s.files_unmodified,
        dirs_new: s.dirs_new,
        dirs_changed: s.dirs_changed,
        dirs_unmodified: s.dirs_unmodified,
        files_total: s.total_files_processed,
        bytes_added: s.data_added,
        bytes_added_packed: s.data_added_packed,
        bytes_total: s.total_bytes_processed,
        snapshot_id: r.snapshot_id.map(|id| id.to_hex()),
    };
    if let Ok(mut g) = LAST_STATS.lock() {
        *g = Some(stats);
    }
}

fn open_host() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_default()
}

/// Set by SIGUSR1: the next progress tick prints a status line (into the log of a profile run).
pub static PRINT_PROGRESS: AtomicBool = AtomicBool::new(false);

/// Where a profile run's backup publishes its live progress for `cairn status`.
fn live_progress_path(profile: &str) -> PathBuf {
    let base = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join(format!("cairn-{}", nix::unistd::getuid())));
    let safe: String = profile
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    base.join("cairn-progress").join(format!("{safe}.json"))
}

/// One human progress line in restic's style:
/// `[m:ss] 12.34%  n files x, total m files y, r/s, e errors ETA m:ss`.
fn progress_line(s: &cairn_engine::backup::ProgressSnapshot, elapsed: Duration) -> String {
    let frac = if s.total_bytes > 0 {
        s.bytes_done as f64 / s.total_bytes as f64
    } else {
        0.0
    };
    let secs = elapsed.as_secs();
    let eta = if frac > 0.0 && s.scan_finished {
        let rem = (elapsed.as_secs_f64() / frac - elapsed.as_secs_f64()).max(0.0) as u64;
        format!(" ETA {}:{:02}", rem / 60, rem % 60)
    } else {
        String::new()
    };
    let rate = if elapsed.as_secs_f64() > 0.0 {
        (s.bytes_done as f64 / elapsed.as_secs_f64()) as u64
    } else {
        0
    };
    format!(
        "[{}:{:02}] {:.2}%  {} files {}, total {} files {}, {}/s, {} errors{eta}",
        secs / 60,
        secs % 60,
        frac * 100.0,
        s.files_done,
        output::size(s.bytes_done),
        s.total_files,
        output::size(s.total_bytes),
        output::size(rate),
        s.errors
    )
}

/// The live progress of `profile`'s running backup, if one is running now.
pub fn read_live_progress(profile: &str) -> Option<String> {
    let text = std::fs::read_to_string(live_progress_path(profile)).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    let pid = i32::try_from(v.get("pid")?.as_i64()?).ok()?;
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).ok()?;
    Some(format!(
        "pid {pid}: {}",
        v.get("line").and_then(|l| l.as_str()).unwrap_or("")
    ))
}

/// Which progress outputs a backup produces.
struct ProgressMode<'a> {
    bar: bool,
    json: bool,
    profile: Option<&'a str>,
}

fn report_progress(p: &BackupProgress, done: &AtomicBool, started: Instant, mode: ProgressMode) {
    let pb = mode.bar.then(output::bytes_bar);
    let profile = mode.profile;
    let mut last_json = Instant::now();
    let mut last_line = Instant::now();
    let mut last_file: Option<Instant> = None;
    let live = profile.map(live_progress_path);
    if let Some(path) = &live
        && let Some(dir) = path.parent()
    {
        let _ = std::fs::create_dir_all(dir);
    }
    while !done.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
        let s = p.snapshot();
        if let Some(path) = &live {
            // The line is built only on the ticks that write or print it.
            let write_file = last_file.is_none_or(|t| t.elapsed() >= Duration::from_secs(1));
            let print = pb.is_none()
                && (PRINT_PROGRESS.swap(false, Ordering::Relaxed)
                    || last_line.elapsed() >= Duration::from_secs(60));
            if write_file || print {
                let line = progress_line(&s, started.elapsed());
                if write_file {
                    last_file = Some(Instant::now());
                    let v = serde_json::json!({"pid": std::process::id(), "line": line});
                    let tmp = path.with_extension("tmp");
                    if std::fs::write(&tmp, v.to_string()).is_ok() {
                        let _ = std::fs::rename(&tmp, path);
                    }
                }
                if print {
                    last_line = Instant::now();
                    eprintln!("{line}");
                }
            }
        }
        if let Some(pb) = &pb {
            pb.set_length(s.total_bytes.max(s.bytes_done));
            pb.set_position(s.bytes_done);
            pb.set_message(format!(
                "{}/{} files{}",
                s.files_done,
                s.total_files,
                if s.errors > 0 {
                    format!(", {} errors", s.errors)
                } else {
                    String::new()
                }
            ));
        } else if mode.json && last_json.elapsed() >= Duration::from_secs(1) {
            last_json = Instant::now();
            let elapsed = started.elapsed().as_secs_f64();
            let frac = if s.total_bytes > 0 {
                s.bytes_done as f64 / s.total_bytes as f64
            } else {
                0.0
            };
            let remaining = if frac > 0.0 && s.scan_finished {
                (elapsed / frac - elapsed).max(0.0) as u64
            } else {
                0
            };
            output::json_line(&serde_json::json!({
                "message_type": "status", "seconds_elapsed": elapsed as u64,
                "seconds_remaining": remaining, "percent_done": frac.min(1.0),
                "total_files": s.total_files, "files_done": s.files_done,
                "total_bytes": s.total_bytes, "bytes_done": s.bytes_done,
                "error_count": s.errors, "current_files": s.current,
            }));
        }
    }
    if let Some(pb) = pb {
        pb.finish_and_clear();
    }
    if let Some(path) = live {
        let _ = std::fs::remove_file(path);
    }
}

fn print_summary(g: &GlobalOpts, r: &BackupResult, took: Duration, dry_run: bool) {
    let s = &r.summary;
    if g.json {
        let mut v = serde_json::json!({
            "message_type": "summary", "dry_run": dry_run,
            "files_new": s.files_new, "files_changed": s.files_changed, "files_unmodified": s.files_unmodified,
            "dirs_new": s.dirs_new, "dirs_changed": s.dirs_changed, "dirs_unmodified": s.dirs_unmodified,
            "data_blobs": s.data_blobs, "tree_blobs": s.tree_blobs,
            "data_added": s.data_added, "data_added_packed": s.data_added_packed,
            "total_files_processed": s.total_files_processed, "total_bytes_processed": s.total_bytes_processed,
            "backup_start": s.backup_start.format(), "backup_end": s.backup_end.format(),
            "total_duration": took.as_secs_f64(),
        });
        if let Some(id) = r.snapshot_id {
            v["snapshot_id"] = serde_json::Value::String(id.to_hex());
        }
        output::json_line(&v);
        return;
    }
    if g.quiet {
        return;
    }
    match r.parent {
        Some(p) if g.verbose > 0 => println!("using parent snapshot {}", p.short()),
        None if g.verbose > 0 => println!("no parent snapshot found, will read all files"),
        _ => {}
    }
    println!();
    println!(
        "Files:       {:5} new, {:5} changed, {:5} unmodified",
        s.files_new, s.files_changed, s.files_unmodified
    );
    println!(
        "Dirs:        {:5} new, {:5} changed, {:5} unmodified",
        s.dirs_new, s.dirs_changed, s.dirs_unmodified
    );
    if dry_run {
        println!(
            "Would add to the repository: {}",
            output::size(s.data_added)
        );
    } else {
        println!(
            "Added to the repository: {} ({} stored)",
            output::size(s.data_added),
            output::size(s.data_added_packed)
        );
    }
    println!();
    println!(
        "processed {} files, {} in {}",
        s.total_files_processed,
        output::size(s.total_bytes_processed),
        output::duration(took.as_secs())
    );
    match r.snapshot_id {
        Some(id) => println!("snapshot {} saved", id.short()),
        None if dry_run => {}
        None => println!("skipped creating snapshot: nothing changed since the parent"),
    }
}
