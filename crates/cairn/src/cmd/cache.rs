//! `cairn cache`: list the metadata cache directories (one per repository id) and remove old
//! ones, like restic's `cache`.

use crate::cli::GlobalOpts;
use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// `cache` options.
#[derive(Debug, Args)]
pub struct CacheArgs {
    /// Remove old cache directories.
    #[arg(long)]
    pub cleanup: bool,
    /// Max age in days for cache directories to be considered old.
    #[arg(long, value_name = "DAYS", default_value_t = 30)]
    pub max_age: u32,
    /// Do not output the size of the cache directories.
    #[arg(long)]
    pub no_size: bool,
}

/// One cache directory of a repository (or a temporary `restic-check-cache-N` one).
#[derive(Debug, Clone)]
struct CacheDir {
    name: String,
    modified: SystemTime,
}

/// restic's rule for the names of cache directories: 64 hex digits (a repository id) or
/// `restic-check-cache-<digits>`.
fn valid_cache_dir_name(name: &str) -> bool {
    let hex = name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit());
    let check = name
        .strip_prefix("restic-check-cache-")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    hex || check
}

/// The cache directories in `base` (none when `base` does not exist).
fn list_cache_dirs(base: &Path) -> Result<Vec<CacheDir>> {
    let rd = match std::fs::read_dir(base) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", base.display())),
    };
    let mut out = Vec::new();
    for e in rd {
        let e = e.with_context(|| format!("reading {}", base.display()))?;
        let Ok(name) = e.file_name().into_string() else {
            continue;
        };
        if !valid_cache_dir_name(&name) {
            continue;
        }
        // Like restic (os.File.Readdir): lstat, so a symlink is not taken for a directory.
        let Ok(meta) = std::fs::symlink_metadata(e.path()) else {
            continue;
        };
        if !meta.is_dir() {
            continue;
        }
        let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
        out.push(CacheDir { name, modified });
    }
    out.sort_by(|a, b| a.modified.cmp(&b.modified).then(a.name.cmp(&b.name)));
    Ok(out)
}

/// Whether a directory last used at `t` is older than `max_age`.
fn is_old(t: SystemTime, now: SystemTime, max_age: Duration) -> bool {
    now.checked_sub(max_age).is_some_and(|oldest| t < oldest)
}

/// Total size of the files below `dir` (directories themselves not counted, like restic).
fn dir_size(dir: &Path) -> Result<u64> {
    let mut total = 0u64;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let rd = std::fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))?;
        for e in rd {
            let e = e.with_context(|| format!("reading {}", d.display()))?;
            let m = match std::fs::symlink_metadata(e.path()) {
                Ok(m) => m,
                // Removed meanwhile (another process cleaning up): not counted.
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue,
                Err(err) => {
                    return Err(err).with_context(|| format!("reading {}", e.path().display()));
                }
            };
            if m.is_dir() {
                stack.push(e.path());
            } else {
                total += m.len();
            }
        }
    }
    Ok(total)
}

/// Render a table the way restic's `ui/table` does: header, dashes, rows, dashes; columns
/// padded to their widest cell (in bytes) and separated by two spaces, trailing blanks
/// trimmed.
pub(crate) fn render_table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let total = widths.iter().sum::<usize>() + 2 * widths.len().saturating_sub(1);
    let line = |cells: &mut dyn Iterator<Item = &str>| -> String {
        let mut s = String::new();
        for (i, (cell, w)) in cells.zip(&widths).enumerate() {
            if i > 0 {
                s.push_str("  ");
            }
            s.push_str(cell);
            s.push_str(&" ".repeat(w.saturating_sub(cell.len())));
        }
        let mut s = s.trim_end_matches(' ').to_string();
        s.push('\n');
        s
    };
    let dashes = format!("{}\n", "-".repeat(total));
    let mut out = line(&mut headers.iter().copied());
    out.push_str(&dashes);
    for row in rows {
        out.push_str(&line(&mut row.iter().map(String::as_str)));
    }
    out.push_str(&dashes);
    out
}

/// The cache base directory, or an error with `--no-cache` (restic refuses too).
fn base_dir(g: &GlobalOpts) -> Result<PathBuf> {
    if g.no_cache {
        bail!("Refusing to do anything, the cache is disabled");
    }
    crate::open::cache_dir(g).ok_or_else(|| {
        anyhow!("no cache directory: set $XDG_CACHE_HOME or $HOME, or pass --cache-dir")
    })
}

/// Run `cairn cache`.
pub fn run(g: &GlobalOpts, a: &CacheArgs) -> Result<()> {
    let base = base_dir(g)?;
    let max_age = Duration::from_secs(u64::from(a.max_age) * 24 * 3600);
    let now = SystemTime::now();
    let dirs = list_cache_dirs(&base)?;
    if a.cleanup {
        return cleanup(g, &base, &dirs, now, max_age);
    }
    let mut rows = Vec::new();
    let mut json = Vec::new();
    for d in &dirs {
        let old = is_old(d.modified, now, max_age);
        let age_days = now
            .duration_since(d.modified)
            .map(|x| x.as_secs() / 86_400)
            .unwrap_or(0);
        let size = if a.no_size {
            None
        } else {
            Some(dir_size(&base.join(&d.name))?)
        };
        let short = if d.name.starts_with("restic-check-cache-") {
            d.name.clone()
        } else {
            d.name.get(..10).unwrap_or(&d.name).to_string()
        };
        let mut row = vec![
            short,
            format!("{age_days} days ago"),
            if old { "yes".into() } else { String::new() },
        ];
        if let Some(s) = size {
            row.push(format!("{:>11}", crate::output::size(s)));
        }
        rows.push(row);
        let last_used: chrono::DateTime<chrono::Local> = d.modified.into();
        json.push(serde_json::json!({
            "id": d.name,
            "last_used": last_used.to_rfc3339(),
            "age_days": age_days,
            "old": old,
            "size": size,
        }));
    }
    if g.json {
        crate::output::json_line(&json);
        return Ok(());
    }
    if g.quiet {
        return Ok(());
    }
    if dirs.is_empty() {
        println!("no cache dirs found, basedir is {}", base.display());
        return Ok(());
    }
    let mut headers = vec!["Repo ID", "Last Used", "Old"];
    if !a.no_size {
        headers.push("Size");
    }
    print!("{}", render_table(&headers, &rows));
    println!("{} cache dirs in {}", dirs.len(), base.display());
    Ok(())
}

/// `cache --cleanup`: remove the directories older than `max_age`. A directory that cannot
/// be removed is reported and the others are still removed (restic only warns); the exit
/// code is then 1.
fn cleanup(
    g: &GlobalOpts,
    base: &Path,
    dirs: &[CacheDir],
    now: SystemTime,
    max_age: Duration,
) -> Result<()> {
    let old: Vec<&CacheDir> = dirs
        .iter()
        .filter(|d| is_old(d.modified, now, max_age))
        .collect();
    let say = |msg: String| {
        if !g.json && !g.quiet {
            println!("{msg}");
        }
    };
    if old.is_empty() {
        say("no old cache dirs found".into());
    } else {
        say(format!("remove {} old cache directories", old.len()));
    }
    let mut removed = Vec::new();
    let mut failed = 0usize;
    for d in old {
        let p = base.join(&d.name);
        match std::fs::remove_dir_all(&p) {
            Ok(()) => removed.push(d.name.clone()),
            Err(e) => {
                failed += 1;
                eprintln!("unable to remove {}: {e}", p.display());
            }
        }
    }
    if g.json {
        crate::output::json_line(&serde_json::json!({
            "message_type": "cache_cleanup",
            "removed": removed,
        }));
    }
    if failed > 0 {
        bail!("{failed} old cache directories could not be removed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_dir_names() {
        assert!(valid_cache_dir_name(&"ab".repeat(32)));
        assert!(valid_cache_dir_name(&"AB".repeat(32)));
        assert!(valid_cache_dir_name("restic-check-cache-123"));
        assert!(!valid_cache_dir_name("restic-check-cache-"));
        assert!(!valid_cache_dir_name("restic-check-cache-12x"));
        assert!(!valid_cache_dir_name(&"ab".repeat(31)));
        assert!(!valid_cache_dir_name(&"zz".repeat(32)));
        assert!(!valid_cache_dir_name("CACHEDIR.TAG"));
    }

    #[test]
    fn table_like_restic() {
        let t = render_table(
            &["Repo ID", "Last Used", "Old", "Size"],
            &[
                vec![
                    "ababababab".into(),
                    "40 days ago".into(),
                    "yes".into(),
                    format!("{:>11}", "0 B"),
                ],
                vec![
                    "4f16993766".into(),
                    "0 days ago".into(),
                    String::new(),
                    format!("{:>11}", "1 B"),
                ],
            ],
        );
        // Byte-for-byte what restic 0.14 printed for the same rows.
        let want = "Repo ID     Last Used    Old  Size\n\
                    -----------------------------------------\n\
                    ababababab  40 days ago  yes          0 B\n\
                    4f16993766  0 days ago                1 B\n\
                    -----------------------------------------\n";
        assert_eq!(t, want);
    }

    #[test]
    fn listing_age_and_size() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path();
        let a = base.join("a".repeat(64));
        std::fs::create_dir_all(a.join("snapshots/ab")).unwrap();
        std::fs::write(a.join("version"), "1").unwrap();
        std::fs::write(a.join("snapshots/ab/x"), vec![0u8; 100]).unwrap();
        std::fs::create_dir(base.join("not-a-cache")).unwrap();
        std::fs::write(base.join("b".repeat(64)), "a file, not a dir").unwrap();
        std::fs::write(base.join("CACHEDIR.TAG"), "x").unwrap();
        let dirs = list_cache_dirs(base).unwrap();
        assert_eq!(dirs.len(), 1);
        assert_eq!(dirs[0].name, "a".repeat(64));
        assert_eq!(dir_size(&a).unwrap(), 101);
        assert!(list_cache_dirs(&base.join("missing")).unwrap().is_empty());

        let now = SystemTime::now();
        let day = Duration::from_secs(86_400);
        assert!(is_old(now - 31 * day, now, 30 * day));
        assert!(!is_old(now - 29 * day, now, 30 * day));
        assert!(!is_old(now, now, Duration::ZERO));
    }
}
