//! Read-only commands over snapshots: `ls`, `find`, `diff`, `dump`.

use crate::cli::{DiffArgs, DumpArgs, FindArgs, GlobalOpts, LsArgs};
use crate::output;
use anyhow::{Context, Result, bail};
use cairn_engine::diff::{ChangeJson, DiffOptions, DiffStatsJson, diff};
use cairn_engine::dump::{ArchiveFormat, dump};
use cairn_engine::find::{FindOptions, find_collect, parse_find_time};
use cairn_engine::ls::{JsonStyle, LsNodeJson, LsOptions, LsSnapshotJson, format_long, ls_raw};
use cairn_engine::select::{find_snapshot, resolve_subtree};
use cairn_repo::Id;
use cairn_repo::repository::{LockMode, Repository};
use cairn_repo::snapshot::{Snapshot, SnapshotFilter};
use std::io::{IsTerminal, Write};
use std::sync::Arc;

/// Open, lock (shared) and load the index for a read-only command.
fn open_read(
    g: &GlobalOpts,
) -> Result<(Arc<Repository>, Option<cairn_repo::repository::LockGuard>)> {
    let repo = crate::open::open(g)?;
    let lock = super::lock(g, &repo, LockMode::Shared)?;
    repo.load_index()?;
    Ok((repo, lock))
}

/// Resolve `latest`, an id prefix, or `ID:subfolder` to (id, snapshot, tree to use).
pub fn resolve(
    repo: &Repository,
    spec: &str,
    filter: &SnapshotFilter,
) -> Result<(Id, Snapshot, Id)> {
    let snaps = repo.load_snapshots()?;
    let (id, snap, sub) = find_snapshot(repo, &snaps, spec, filter)?;
    let tree = match sub {
        Some(s) => resolve_subtree(repo, snap.tree, &s)?,
        None => snap.tree,
    };
    Ok((id, snap, tree))
}

pub fn ls(g: &GlobalOpts, a: &LsArgs) -> Result<()> {
    let (repo, _lock) = open_read(g)?;
    let (id, mut snap, tree) = resolve(&repo, &a.snapshot, &super::snapshot_filter(&a.filter))?;
    snap.tree = tree;
    let opts = LsOptions {
        dirs: a.dirs.clone(),
        recursive: a.recursive,
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if g.json {
        out.write_all(&LsSnapshotJson::new(id, &snap, JsonStyle::Restic014).to_go_json())?;
        out.write_all(b"\n")?;
    } else if !g.quiet {
        writeln!(
            out,
            "snapshot {} of {:?} at {}:",
            id.short(),
            snap.paths,
            snap.time.0.format("%Y-%m-%d %H:%M:%S%.f %z")
        )?;
    }
    ls_raw(&repo, tree, &opts, &mut |path, node| {
        let r = if g.json {
            out.write_all(&LsNodeJson::new_raw(path, node, JsonStyle::Restic014).to_go_json())
                .and_then(|_| out.write_all(b"\n"))
        } else if a.long {
            writeln!(out, "{}", format_long(&String::from_utf8_lossy(path), node))
        } else {
            writeln!(out, "{}", String::from_utf8_lossy(path))
        };
        r.map_err(|e| cairn_engine::EngineError::io("stdout", e))
    })?;
    out.flush()?;
    Ok(())
}

pub fn find(g: &GlobalOpts, a: &FindArgs) -> Result<()> {
    let (repo, _lock) = open_read(g)?;
    let snaps = repo.load_snapshots()?;
    let opts = FindOptions {
        patterns: a.patterns.clone(),
        ignore_case: a.ignore_case,
        oldest: a.oldest.as_deref().map(parse_find_time).transpose()?,
        newest: a.newest.as_deref().map(parse_find_time).transpose()?,
        snapshots: a.snapshot.clone(),
        filter: super::snapshot_filter(&a.filter),
        reverse: false,
    };
    let results = find_collect(&repo, &snaps, &opts)?;
    if g.json {
        let v: Vec<_> = results
            .iter()
            .map(|r| r.to_json(JsonStyle::Restic014))
            .collect();
        output::json_line(&v);
        return Ok(());
    }
    for r in &results {
        println!(
            "Found matching entries in snapshot {} from {}",
            r.snapshot_id.short(),
            r.snapshot.time.0.format("%Y-%m-%d %H:%M:%S")
        );
        for m in &r.matches {
            if a.long {
                println!("{}", format_long(&m.path, &m.node));
            } else {
                println!("{}", m.path);
            }
        }
        println!();
    }
    Ok(())
}

pub fn diff_cmd(g: &GlobalOpts, a: &DiffArgs) -> Result<()> {
    let (repo, _lock) = open_read(g)?;
    let none = SnapshotFilter::default();
    let (id1, _, t1) = resolve(&repo, &a.first, &none)?;
    let (id2, _, t2) = resolve(&repo, &a.second, &none)?;
    if !g.json && !g.quiet {
        println!("comparing snapshot {} to {}:", id1.short(), id2.short());
        println!();
    }
    let stats = diff(
        &repo,
        t1,
        t2,
        DiffOptions {
            metadata: a.metadata,
        },
        &mut |c| {
            if g.json {
                output::json_line(&ChangeJson::from(c));
            } else {
                println!("{:<5}{}", c.modifier, c.path);
            }
            Ok(())
        },
    )?;
    for w in &stats.warnings {
        eprintln!("warning: {w}");
    }
    if g.json {
        output::json_line(&DiffStatsJson::new(&a.first, &a.second, &stats));
    } else if !g.quiet {
        let (add, rem) = (&stats.added, &stats.removed);
        println!();
        println!(
            "Files:       {:5} new, {:5} removed, {:5} changed",
            add.files, rem.files, stats.changed_files
        );
        println!("Dirs:        {:5} new, {:5} removed", add.dirs, rem.dirs);
        println!(
            "Others:      {:5} new, {:5} removed",
            add.others, rem.others
        );
        println!(
            "Data Blobs:  {:5} new, {:5} removed",
            add.data_blobs, rem.data_blobs
        );
        println!(
            "Tree Blobs:  {:5} new, {:5} removed",
            add.tree_blobs, rem.tree_blobs
        );
        println!("  Added:   {}", output::size(add.bytes));
        println!("  Removed: {}", output::size(rem.bytes));
    }
    Ok(())
}

pub fn dump_cmd(g: &GlobalOpts, a: &DumpArgs) -> Result<()> {
    let format: ArchiveFormat = a
        .archive
        .parse()
        .map_err(|_| anyhow::anyhow!("unknown archive format {:?}: use tar or zip", a.archive))?;
    let (repo, _lock) = open_read(g)?;
    let (_, _, tree) = resolve(&repo, &a.snapshot, &super::snapshot_filter(&a.filter))?;
    match &a.target {
        Some(path) => {
            let f = std::fs::File::create(path)
                .with_context(|| format!("creating {}", path.display()))?;
            let mut w = std::io::BufWriter::new(f);
            dump(&repo, tree, &a.file, format, &mut w)?;
            w.flush()?;
            w.get_ref().sync_all()?;
        }
        None => {
            let target = cairn_engine::dump::resolve_dump_path(&repo, tree, &a.file)?;
            if target.is_archive() && std::io::stdout().is_terminal() {
                bail!("stdout is a terminal: redirect the archive to a file or use --target");
            }
            let mut w = std::io::BufWriter::new(std::io::stdout().lock());
            dump(&repo, tree, &a.file, format, &mut w)?;
            w.flush()?;
        }
    }
    Ok(())
}
