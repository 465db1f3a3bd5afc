//! Runs fuzz targets on stored inputs without libFuzzer (plain stable build), e.g. to
//! check a corpus or a crash reproducer:
//!
//! ```sh
//! cd fuzz && cargo run --release --example replay -- [TARGET] [FILE_OR_DIR...]
//! ```
//!
//! Without paths, replays `corpus/<target>` and `seeds/<target>`; without a target, every
//! target. A finding panics with the failing file's name printed first.

use std::path::{Path, PathBuf};
use std::time::Instant;

fn files(p: &Path) -> Vec<PathBuf> {
    if p.is_dir() {
        let mut v: Vec<PathBuf> = std::fs::read_dir(p)
            .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        v.sort();
        v.into_iter().filter(|p| p.is_file()).collect()
    } else if p.is_file() {
        vec![p.to_path_buf()]
    } else {
        Vec::new()
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let selected: Vec<&(&str, cairn_fuzz::Target)> = match args.first() {
        Some(t) => cairn_fuzz::TARGETS.iter().filter(|(n, _)| n == t).collect(),
        None => cairn_fuzz::TARGETS.iter().collect(),
    };
    assert!(!selected.is_empty(), "unknown target {:?}", args.first());
    for (name, f) in selected {
        let paths: Vec<PathBuf> = if args.len() > 1 {
            args[1..].iter().flat_map(|a| files(Path::new(a))).collect()
        } else {
            [
                root.join("corpus").join(name),
                root.join("seeds").join(name),
            ]
            .iter()
            .flat_map(|d| files(d))
            .collect()
        };
        let start = Instant::now();
        for p in &paths {
            let data = std::fs::read(p).unwrap_or_default();
            eprintln!("{name}: {}", p.display());
            f(&data);
        }
        println!(
            "{name}: {} inputs OK in {:.1?}",
            paths.len(),
            start.elapsed()
        );
    }
}
