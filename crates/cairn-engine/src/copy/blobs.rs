//! Copying blobs as they are: grouped by source pack, read a few MiB at a time on several
//! threads, verified (decrypted, decompressed, hashed) and stored under the destination's key.

use super::CopyProgress;
use crate::{EngineError, Result};
use cairn_repo::backend::FileType;
use cairn_repo::index::BlobLocation;
use cairn_repo::repository::Repository;
use cairn_repo::{BlobType, Id, RepoError};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Largest span of a pack read at once (a single larger blob is read alone).
const MAX_READ: u64 = 4 * 1024 * 1024;
/// Largest gap of unwanted bytes read through rather than starting a new read.
const MAX_GAP: u64 = 256 * 1024;

/// One read: a span of one pack and the wanted blobs inside it.
struct Span {
    pack: Id,
    start: u64,
    end: u64,
    blobs: Vec<(BlobType, Id, BlobLocation)>,
}

/// Groups blobs into reads: per pack, by offset, merging neighbours up to [`MAX_READ`].
fn plan(blobs: Vec<(BlobType, Id, BlobLocation)>) -> Vec<Span> {
    let mut by_pack: HashMap<Id, Vec<(BlobType, Id, BlobLocation)>> = HashMap::new();
    for b in blobs {
        by_pack.entry(b.2.pack_id).or_default().push(b);
    }
    let mut packs: Vec<_> = by_pack.into_iter().collect();
    packs.sort_by_key(|(p, _)| *p);
    let mut spans = Vec::new();
    for (pack, mut list) in packs {
        list.sort_by_key(|b| b.2.offset);
        let mut cur: Option<Span> = None;
        for b in list {
            let (start, end) = (
                u64::from(b.2.offset),
                u64::from(b.2.offset) + u64::from(b.2.length),
            );
            if let Some(s) = &mut cur
                && start >= s.end
                && start - s.end <= MAX_GAP
                && end - s.start <= MAX_READ
            {
                s.end = end;
                s.blobs.push(b);
                continue;
            }
            if let Some(s) = cur.take() {
                spans.push(s);
            }
            cur = Some(Span {
                pack,
                start,
                end,
                blobs: vec![b],
            });
        }
        spans.extend(cur);
    }
    spans
}

/// Copies `blobs` (which the destination lacks) from `src` to `dst`. Fails if the source index
/// does not know one of them. Does not flush.
pub(super) fn copy_blobs(
    src: &Repository,
    dst: &Repository,
    blobs: &[(BlobType, Id)],
    progress: &CopyProgress,
) -> Result<()> {
    let mut located = Vec::with_capacity(blobs.len());
    for (t, id) in blobs {
        let loc = src.locate(*t, id).ok_or_else(|| {
            RepoError::BlobNotFound(format!(
                "{} {} (referenced in the source repository, but missing from its index)",
                t.as_str(),
                id
            ))
        })?;
        located.push((*t, *id, loc));
    }
    progress
        .blobs_total
        .fetch_add(located.len() as u64, Ordering::Relaxed);
    let spans = plan(located);
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(2, 8)
        .min(spans.len().max(1));
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let first_err: parking_lot::Mutex<Option<EngineError>> = parking_lot::Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                while !failed.load(Ordering::Relaxed) {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(span) = spans.get(i) else { break };
                    if let Err(e) = copy_span(src, dst, span, progress) {
                        failed.store(true, Ordering::Relaxed);
                        first_err.lock().get_or_insert(e);
                    }
                }
            });
        }
    });
    match first_err.into_inner() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn copy_span(
    src: &Repository,
    dst: &Repository,
    span: &Span,
    progress: &CopyProgress,
) -> Result<()> {
    let raw = src.backend().read_range(
        FileType::Pack,
        &span.pack.to_hex(),
        span.start,
        span.end - span.start,
    )?;
    for (t, id, loc) in &span.blobs {
        let from = u64::from(loc.offset).saturating_sub(span.start) as usize;
        let to = from.saturating_add(loc.length as usize);
        let bytes = raw
            .get(from..to)
            .ok_or_else(|| RepoError::corrupt(format!("pack {}", span.pack), "short read"))?;
        let plain = match src.decode_blob(bytes, &loc.to_pack_blob(*t, *id)) {
            Ok(p) => p,
            // Another indexed copy of the blob may be intact.
            Err(e) => src.load_blob(*t, id).map_err(|_| e)?,
        };
        dst.save_blob_with_id(*t, *id, &plain)?;
        progress.blobs_done.fetch_add(1, Ordering::Relaxed);
        progress
            .bytes_read
            .fetch_add(plain.len() as u64, Ordering::Relaxed);
    }
    Ok(())
}

/// [`plan`] as `(pack, start, end, blob count)` tuples, for tests.
#[cfg(test)]
pub(super) fn plan_for_test(
    blobs: Vec<(BlobType, Id, BlobLocation)>,
) -> Vec<(Id, u64, u64, usize)> {
    plan(blobs)
        .into_iter()
        .map(|s| (s.pack, s.start, s.end, s.blobs.len()))
        .collect()
}
