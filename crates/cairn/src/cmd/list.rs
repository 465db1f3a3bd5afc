//! `cairn list`: print the ids of repository files of one type, or every blob of every index
//! file, like restic's `list`.

use crate::cli::GlobalOpts;
use anyhow::{Context, Result, bail};
use cairn_repo::Id;
use cairn_repo::backend::FileType;
use cairn_repo::index::IndexFile;
use cairn_repo::repository::{LockMode, parallel_map};
use clap::Args;
use std::io::Write;

/// `list` options.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// What to list: blobs, packs, index, snapshots, keys or locks.
    #[arg(value_name = "TYPE")]
    pub kind: String,
    /// With `packs`: list only the packs a snapshot (ID or `latest`) needs.
    #[arg(value_name = "SNAPSHOT")]
    pub snapshot: Option<String>,
}

/// Run `cairn list`.
pub fn run(g: &GlobalOpts, a: &ListArgs) -> Result<()> {
    let t = match a.kind.as_str() {
        "packs" => FileType::Pack,
        "index" => FileType::Index,
        "snapshots" => FileType::Snapshot,
        "keys" => FileType::Key,
        "locks" => FileType::Lock,
        "blobs" => FileType::Index,
        other => bail!(
            "invalid type {other:?}: must be one of blobs, packs, index, snapshots, keys, locks"
        ),
    };
    if a.snapshot.is_some() && a.kind != "packs" {
        bail!("only `list packs` takes a snapshot ID");
    }
    let repo = crate::open::open(g)?;
    // Listing locks needs no lock (restic skips it too, so stale locks can be inspected).
    let _lock = if a.kind == "locks" {
        None
    } else {
        super::lock(g, &repo, LockMode::Shared)?
    };
    if a.kind == "blobs" {
        return list_blobs(g, &repo);
    }
    let ids = match &a.snapshot {
        Some(spec) => snapshot_packs(&repo, spec)?,
        None => repo.list_ids(t)?,
    };
    if g.json {
        let hex: Vec<String> = ids.iter().map(Id::to_hex).collect();
        crate::output::json_line(&hex);
        return Ok(());
    }
    let mut out = std::io::stdout().lock();
    for id in ids {
        writeln!(out, "{}", id.to_hex()).context("writing to stdout")?;
    }
    Ok(())
}

/// Every blob entry of every index file as `type id`, index file by index file (an entry
/// listed by several index files is printed once per file, as restic does).
fn list_blobs(g: &GlobalOpts, repo: &cairn_repo::repository::Repository) -> Result<()> {
    let ids = repo.list_ids(FileType::Index)?;
    let files = parallel_map(&ids, |id| {
        let json = repo.load_unpacked(FileType::Index, id)?;
        IndexFile::from_json(&json)
            .map_err(|e| cairn_repo::RepoError::corrupt(format!("index {}", id.to_hex()), e))
    })?;
    let mut out = std::io::stdout().lock();
    let mut json = Vec::new();
    for f in &files {
        for p in &f.packs {
            for b in p.pack_blobs() {
                if g.json {
                    json.push(serde_json::json!({
                        "type": b.blob_type.as_str(),
                        "id": b.id.to_hex(),
                    }));
                } else {
                    writeln!(out, "{} {}", b.blob_type.as_str(), b.id.to_hex())
                        .context("writing to stdout")?;
                }
            }
        }
    }
    if g.json {
        drop(out);
        crate::output::json_line(&json);
    }
    Ok(())
}

/// The packs holding the blobs a snapshot needs (restic's `list packs SNAPSHOT`), sorted.
fn snapshot_packs(repo: &cairn_repo::repository::Repository, spec: &str) -> Result<Vec<Id>> {
    let snaps = repo.load_snapshots()?;
    let (_, sn, _) = cairn_engine::select::find_snapshot(repo, &snaps, spec, &Default::default())
        .context("failed to find snapshot")?;
    repo.load_index()?;
    let blobs = cairn_engine::stats::used_blobs(repo, &[sn.tree], None)?;
    let index = repo.index();
    let mut packs: Vec<Id> = blobs
        .iter()
        .flat_map(|(t, id)| index.get_all(*t, id).into_iter().map(|l| l.pack_id))
        .collect();
    packs.sort();
    packs.dedup();
    Ok(packs)
}
