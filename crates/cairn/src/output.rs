//! Output helpers: JSON lines, human sizes and durations, progress bars on a terminal.

use std::io::{IsTerminal, Write};

/// Print one JSON value as a line on stdout.
pub fn json_line(v: &impl serde::Serialize) {
    let mut out = std::io::stdout().lock();
    let _ = serde_json::to_writer(&mut out, v);
    let _ = out.write_all(b"\n");
}

/// Bytes in restic's human form (`1.234 MiB`).
pub fn size(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i < UNITS.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.3} {}", UNITS[i])
    }
}

/// Seconds as `1:02:03` or `2:03`.
pub fn duration(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
    if h > 0 {
        format!("{h}:{m:02}:{s:02}")
    } else {
        format!("{m}:{s:02}")
    }
}

/// Whether to draw progress bars: stderr is a terminal and output is for humans.
pub fn show_progress(json: bool, quiet: bool) -> bool {
    !json && !quiet && std::io::stderr().is_terminal()
}

/// A byte-progress bar with rate and ETA, drawn on stderr.
pub fn bytes_bar() -> indicatif::ProgressBar {
    let pb = indicatif::ProgressBar::new(0);
    pb.set_style(
        indicatif::ProgressStyle::with_template(
            "{elapsed_precise} {wide_bar} {percent:>3}% {bytes}/{total_bytes} {bytes_per_sec} ETA {eta} {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    pb
}

/// A restic-style JSON error line on stderr (`during` is e.g. "archival" or "restore"); the
/// item is the path the message starts with.
pub fn json_error(during: &str, msg: &str) {
    let item = msg.split(": ").next().unwrap_or("");
    eprintln!(
        "{}",
        serde_json::json!({"message_type": "error", "error": {"message": msg}, "during": during, "item": item})
    );
}
