//! `cairn cat`: print repository objects.

use crate::cli::{CatArgs, GlobalOpts};
use anyhow::{Context, Result, anyhow, bail};
use cairn_repo::backend::FileType;
use cairn_repo::repository::LockMode;
use cairn_repo::{BlobType, Id};
use std::io::Write;

fn pretty(bytes: &[u8]) -> Result<()> {
    let v: serde_json::Value = serde_json::from_slice(bytes).context("decoding JSON")?;
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, &v)?;
    out.write_all(b"\n")?;
    Ok(())
}

fn raw(bytes: &[u8]) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)?;
    out.flush()?;
    Ok(())
}

pub fn run(g: &GlobalOpts, a: &CatArgs) -> Result<()> {
    let repo = crate::open::open(g)?;
    let _lock = super::lock(g, &repo, LockMode::Shared)?;
    let need_id = || {
        a.id.clone()
            .ok_or_else(|| anyhow!("cat {} needs an ID", a.object))
    };
    match a.object.as_str() {
        "config" => pretty(&repo.config().to_json()),
        "masterkey" => pretty(&repo.master_key().to_json()),
        "key" => {
            let id = repo.find_id(FileType::Key, &need_id()?)?;
            pretty(&repo.read_verified(FileType::Key, &id)?)
        }
        "snapshot" => {
            let spec = need_id()?;
            let id = if spec == "latest" {
                repo.load_snapshots()?
                    .last()
                    .map(|(id, _)| *id)
                    .ok_or_else(|| anyhow!("no snapshots in the repository"))?
            } else {
                repo.find_id(FileType::Snapshot, &spec)?
            };
            pretty(&repo.load_unpacked(FileType::Snapshot, &id)?)
        }
        "index" => {
            let id = repo.find_id(FileType::Index, &need_id()?)?;
            pretty(&repo.load_unpacked(FileType::Index, &id)?)
        }
        "lock" => {
            let id = repo.find_id(FileType::Lock, &need_id()?)?;
            pretty(&repo.load_unpacked(FileType::Lock, &id)?)
        }
        "pack" => {
            let id = repo.find_id(FileType::Pack, &need_id()?)?;
            raw(&repo.read_verified(FileType::Pack, &id)?)
        }
        "blob" | "tree" => {
            let spec = need_id()?;
            repo.load_index()?;
            let t = if a.object == "tree" {
                BlobType::Tree
            } else {
                BlobType::Data
            };
            let id = if t == BlobType::Tree && (spec.contains(':') || spec == "latest") {
                // `cat tree SNAPSHOT[:subfolder]` like restic >= 0.17.
                let none = cairn_repo::snapshot::SnapshotFilter::default();
                super::query::resolve(&repo, &spec, &none)?.2
            } else {
                resolve_blob(&repo, t, &spec)?
            };
            let data = repo.load_blob(t, &id)?;
            if t == BlobType::Tree {
                pretty(&data)
            } else {
                raw(&data)
            }
        }
        o => bail!(
            "unknown object type {o:?}: use config, index, snapshot, key, masterkey, lock, pack, blob or tree"
        ),
    }
}

fn resolve_blob(repo: &cairn_repo::repository::Repository, t: BlobType, spec: &str) -> Result<Id> {
    if let Some(id) = Id::from_name(spec) {
        return Ok(id);
    }
    let idx = repo.index();
    let matches: Vec<Id> = idx
        .iter()
        .filter(|(bt, id, _)| *bt == t && id.has_prefix(spec))
        .map(|(_, id, _)| id)
        .collect();
    match matches.as_slice() {
        [one] => Ok(*one),
        [] => bail!("no {} blob matching {spec:?}", t.as_str()),
        _ => bail!("{spec:?} matches several blobs; give more digits"),
    }
}
