//! `cairn stats`: walk snapshots and report sizes in restic's counting modes.

use crate::cli::{GlobalOpts, SnapshotFilterArgs};
use anyhow::{Context, Result};
use cairn_engine::stats::{CountMode, Stats, StatsProgress};
use cairn_repo::repository::LockMode;
use clap::Args;
use std::sync::atomic::Ordering;

/// `stats` options.
#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Snapshots to walk (ID, prefix or `latest`); default: all matching the filters.
    #[arg(value_name = "SNAPSHOT")]
    pub snapshots: Vec<String>,
    /// Counting mode: restore-size (default), files-by-contents, blobs-per-file or raw-data.
    #[arg(long, default_value = "restore-size", value_name = "MODE")]
    pub mode: String,
    /// Snapshot filters.
    #[command(flatten)]
    pub filter: SnapshotFilterArgs,
}

/// Run `cairn stats`.
pub fn run(g: &GlobalOpts, a: &StatsArgs) -> Result<()> {
    let mode: CountMode = a.mode.parse()?;
    let repo = crate::open::open(g)?;
    let _lock = super::lock(g, &repo, LockMode::Shared)?;
    let all = repo.load_snapshots()?;
    repo.load_index()?;
    let filter = super::snapshot_filter(&a.filter);
    let filtered = !filter.hosts.is_empty() || !filter.tags.is_empty() || !filter.paths.is_empty();
    if filtered && !a.snapshots.is_empty() && !a.snapshots.iter().any(|s| s == "latest") {
        eprintln!("Ignoring filters as there are explicit snapshot ids given");
    }
    let snaps = cairn_engine::select::select_snapshots(&repo, &all, &a.snapshots, &filter)?;
    if !g.json && !g.quiet {
        println!("scanning...");
    }
    let progress = StatsProgress::default();
    let threads = cairn_engine::stats::default_threads();
    let st = if crate::output::show_progress(g.json, g.quiet) {
        let pb = indicatif::ProgressBar::new_spinner();
        pb.set_style(
            indicatif::ProgressStyle::with_template("{elapsed_precise} {spinner} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        let st = std::thread::scope(|s| {
            let worker = s.spawn(|| {
                cairn_engine::stats::stats(&repo, &snaps, mode, threads, Some(&progress))
            });
            while !worker.is_finished() {
                pb.set_message(format!(
                    "{} snapshots, {} trees loaded",
                    snaps.len(),
                    progress.trees.load(Ordering::Relaxed)
                ));
                pb.tick();
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            worker.join()
        });
        pb.finish_and_clear();
        st.map_err(|_| anyhow::anyhow!("stats worker panicked"))?
    } else {
        cairn_engine::stats::stats(&repo, &snaps, mode, threads, None)
    }
    .context("error walking snapshot")?;
    if g.json {
        crate::output::json_line(&st);
    } else {
        print!("{}", render(mode, &st));
    }
    Ok(())
}

/// restic's text report (`%-5s` pads sizes to five characters).
fn render(mode: CountMode, st: &Stats) -> String {
    let size = |n: u64| format!("{:<5}", crate::output::size(n));
    let mut out = format!("Stats in {} mode:\n", mode.as_str());
    out.push_str(&format!(
        "     Snapshots processed:  {}\n",
        st.snapshots_count
    ));
    if st.total_blob_count > 0 {
        out.push_str(&format!(
            "        Total Blob Count:  {}\n",
            st.total_blob_count
        ));
    }
    if st.total_file_count > 0 {
        out.push_str(&format!(
            "        Total File Count:  {}\n",
            st.total_file_count
        ));
    }
    if st.total_uncompressed_size > 0 {
        out.push_str(&format!(
            " Total Uncompressed Size:  {}\n",
            size(st.total_uncompressed_size)
        ));
    }
    out.push_str(&format!(
        "              Total Size:  {}\n",
        size(st.total_size)
    ));
    if st.compression_progress > 0.0 {
        out.push_str(&format!(
            "    Compression Progress:  {:.2}%\n",
            st.compression_progress
        ));
    }
    if st.compression_ratio > 0.0 {
        out.push_str(&format!(
            "       Compression Ratio:  {:.2}x\n",
            st.compression_ratio
        ));
    }
    if st.compression_space_saving > 0.0 {
        out.push_str(&format!(
            "Compression Space Saving:  {:.2}%\n",
            st.compression_space_saving
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_report_like_restic() {
        let st = Stats {
            total_size: 3,
            total_uncompressed_size: 2048,
            compression_ratio: 2.5,
            compression_progress: 50.0,
            compression_space_saving: 12.345,
            total_blob_count: 4,
            snapshots_count: 1,
            ..Stats::default()
        };
        assert_eq!(
            render(CountMode::RawData, &st),
            "Stats in raw-data mode:\n     Snapshots processed:  1\n        Total Blob Count:  4\n Total Uncompressed Size:  2.000 KiB\n              Total Size:  3 B  \n    Compression Progress:  50.00%\n       Compression Ratio:  2.50x\nCompression Space Saving:  12.35%\n"
        );
        let st = Stats {
            total_size: 10,
            total_file_count: 2,
            snapshots_count: 2,
            ..Stats::default()
        };
        assert_eq!(
            render(CountMode::RestoreSize, &st),
            "Stats in restore-size mode:\n     Snapshots processed:  2\n        Total File Count:  2\n              Total Size:  10 B \n"
        );
    }
}
