//! Phase 4 (`--read-data`): read packs and verify everything in them.
//!
//! For each pack: SHA-256 of the whole file must equal the pack id; every blob listed in the
//! index must authenticate, decompress and hash to its id; the header at the end must
//! authenticate and agree with the index. Several packs are checked at once, one per worker.
//!
//! A pack whose index entries are contiguous and whose file has the expected size is read in
//! segments of whole blobs (about [`SEGMENT`] bytes each) that are hashed and then decrypted
//! in place, so memory stays at a few segments per worker and nothing is copied twice. Any
//! other pack — and any pack that showed a problem, which is read a second time like restic
//! does — is read whole and checked entry by entry.

use super::index::Loaded;
use super::{CheckProgress, Problem, ProblemKind, Reporter, Subject};
use crate::Result;
use cairn_repo::Id;
use cairn_repo::backend::FileType;
use cairn_repo::crypto::MasterKey;
use cairn_repo::pack::{PackBlob, PackTail, TRAILER_SIZE, parse_pack_tail};
use cairn_repo::repository::Repository;
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};

/// Target bytes per read of the streaming path (below the allocator's mmap threshold, so
/// buffers are recycled instead of being mapped and faulted in for every read).
const SEGMENT: u64 = 2 << 20;

/// Index entries collected per batch of packs (bounds the memory of the per-pack lists).
const BATCH_BLOBS: usize = 1 << 20;

/// Totals of the read phase.
pub(super) struct ReadStats {
    /// Packs read.
    pub packs: u64,
    /// Bytes read.
    pub bytes: u64,
}

/// One pack to read.
struct Job {
    id: Id,
    /// Size computed from the index.
    expected: u64,
    /// Size of the stored file.
    actual: u64,
    /// Index entries, sorted by offset.
    blobs: Vec<PackBlob>,
}

/// Why a pack could not be checked completely.
enum Failure {
    /// The data is wrong (the listed findings).
    Damaged(Vec<String>),
    /// The file could not be read at all.
    Unreadable(String),
}

struct Ctx<'a> {
    repo: &'a Repository,
    key: &'a MasterKey,
    version: u32,
    progress: &'a CheckProgress,
}

/// Header size implied by index entries: entries + IV/MAC + trailer.
fn index_header_size(blobs: &[PackBlob]) -> u64 {
    blobs
        .iter()
        .map(|b| b.header_entry_size() as u64)
        .sum::<u64>()
        + 32
        + TRAILER_SIZE as u64
}

fn contiguous(blobs: &[PackBlob]) -> bool {
    let mut end = 0u64;
    for b in blobs {
        if u64::from(b.offset) != end {
            return false;
        }
        end = b.end();
    }
    true
}

/// Authenticate, decrypt (in place), decompress and hash one blob.
fn verify_blob(key: &MasterKey, raw: &mut [u8], b: &PackBlob) -> std::result::Result<(), String> {
    let plain = key.open_slice_in_place(raw).map_err(|e| {
        format!(
            "blob {}: decrypting {} blob failed: {e}",
            b.id,
            b.blob_type.as_str()
        )
    })?;
    let got = match b.uncompressed_length {
        Some(n) => {
            let data = cairn_repo::compress::decompress(plain, Some(n as usize))
                .map_err(|e| format!("blob {}: decompressing failed: {e}", b.id))?;
            Id::hash(&data)
        }
        None => Id::hash(plain),
    };
    if got != b.id {
        return Err(format!("blob {}: wrong data returned, hash is {got}", b.id));
    }
    Ok(())
}

/// Compare the header found in `tail` (the last bytes of the pack) with the index entries.
fn check_header(ctx: &Ctx<'_>, job: &Job, tail: &[u8], size: u64, errs: &mut Vec<String>) {
    let want = index_header_size(&job.blobs);
    let name = job.id.to_hex();
    let header = match parse_pack_tail(ctx.key, tail, size, &name, ctx.version) {
        Ok(PackTail::Blobs(h)) => h,
        Ok(PackTail::NeedTail(got)) => {
            errs.push(format!(
                "pack header size does not match, want {want}, got {got}"
            ));
            return;
        }
        Err(e) => {
            errs.push(e.to_string());
            return;
        }
    };
    let got = tail
        .last_chunk::<4>()
        .map_or(0, |t| u64::from(u32::from_le_bytes(*t)))
        + TRAILER_SIZE as u64;
    if got != want {
        errs.push(format!(
            "pack header size does not match, want {want}, got {got}"
        ));
    }
    let in_index = |h: &PackBlob| {
        let i = job
            .blobs
            .partition_point(|b| (b.offset, b.length) < (h.offset, h.length));
        job.blobs
            .get(i..)
            .unwrap_or_default()
            .iter()
            .take_while(|b| (b.offset, b.length) == (h.offset, h.length))
            .any(|b| b == h)
    };
    for h in &header {
        if !in_index(h) {
            errs.push(format!(
                "blob {} is not contained in index or position is incorrect",
                h.id
            ));
        }
    }
    let in_header: HashSet<(u32, u32, Id)> =
        header.iter().map(|h| (h.offset, h.length, h.id)).collect();
    for b in &job.blobs {
        if !in_header.contains(&(b.offset, b.length, b.id)) {
            errs.push(format!(
                "blob {} is listed in the index but not in the pack header",
                b.id
            ));
        }
    }
}

/// Streaming check of a well-formed pack. `Err` only for read failures.
fn check_streaming(ctx: &Ctx<'_>, job: &Job) -> std::result::Result<Vec<String>, String> {
    let backend = ctx.repo.backend();
    let name = job.id.to_hex();
    let mut hasher = Sha256::new();
    let mut errs = Vec::new();
    let mut rest = &job.blobs[..];
    while let Some(first) = rest.first() {
        let start = u64::from(first.offset);
        let mut n = 1;
        let mut end = first.end();
        while let Some(b) = rest.get(n)
            && b.end() - start <= SEGMENT
        {
            end = b.end();
            n += 1;
        }
        let (group, after) = rest.split_at(n);
        rest = after;
        let mut seg = backend
            .read_range(FileType::Pack, &name, start, end - start)
            .map_err(|e| e.to_string())?;
        ctx.progress.add_bytes(seg.len() as u64);
        if seg.len() as u64 != end - start {
            return Err(format!("short read of {} bytes at {start}", end - start));
        }
        for b in group {
            let lo = (u64::from(b.offset) - start) as usize;
            let hi = (b.end() - start) as usize;
            match seg.get_mut(lo..hi) {
                Some(raw) => {
                    // Blobs are contiguous: hashing them in turn hashes the whole pack, and
                    // each blob is hashed while it is in the cache for decryption.
                    hasher.update(&*raw);
                    if let Err(e) = verify_blob(ctx.key, raw, b) {
                        errs.push(e);
                    }
                }
                None => errs.push(format!("blob {}: short read", b.id)),
            }
        }
    }
    let data_end = job.blobs.last().map_or(0, PackBlob::end);
    let tail = backend
        .read_range(
            FileType::Pack,
            &name,
            data_end,
            job.actual.saturating_sub(data_end),
        )
        .map_err(|e| e.to_string())?;
    hasher.update(&tail);
    ctx.progress.add_bytes(tail.len() as u64);
    let hash = Id(hasher.finalize().into());
    if hash != job.id {
        errs.push(format!("unexpected pack id {hash}"));
    }
    check_header(ctx, job, &tail, job.actual, &mut errs);
    Ok(errs)
}

/// Check of a pack read whole, tolerating any mismatch between index and file.
fn check_whole(ctx: &Ctx<'_>, job: &Job) -> std::result::Result<Vec<String>, String> {
    let name = job.id.to_hex();
    let bytes = ctx
        .repo
        .backend()
        .read(FileType::Pack, &name)
        .map_err(|e| e.to_string())?;
    ctx.progress.add_bytes(bytes.len() as u64);
    let mut errs = Vec::new();
    if !contiguous(&job.blobs) {
        errs.push("index for pack contains gaps / overlapping blobs".into());
    }
    let mut scratch = Vec::new();
    for b in &job.blobs {
        let Some(raw) = usize::try_from(b.offset)
            .ok()
            .zip(usize::try_from(b.end()).ok())
            .and_then(|(lo, hi)| bytes.get(lo..hi))
        else {
            errs.push(format!(
                "blob {}: pack is truncated (blob ends at byte {}, the file has {} bytes)",
                b.id,
                b.end(),
                bytes.len()
            ));
            continue;
        };
        scratch.clear();
        scratch.extend_from_slice(raw);
        if let Err(e) = verify_blob(ctx.key, &mut scratch, b) {
            errs.push(e);
        }
    }
    let hash = Id::hash(&bytes);
    if hash != job.id {
        errs.push(format!("unexpected pack id {hash}"));
    }
    check_header(ctx, job, &bytes, bytes.len() as u64, &mut errs);
    Ok(errs)
}

/// Check one pack; a problem found by the streaming path is confirmed by reading it again.
fn check_pack(ctx: &Ctx<'_>, job: &Job) -> std::result::Result<(), Failure> {
    let fast = job.actual == job.expected && !job.blobs.is_empty() && contiguous(&job.blobs);
    let first = if fast {
        match check_streaming(ctx, job) {
            Ok(e) if e.is_empty() => return Ok(()),
            r => Some(r),
        }
    } else {
        None
    };
    if job.blobs.is_empty() {
        return Err(Failure::Damaged(vec![
            "pack is empty or not indexed".into(),
        ]));
    }
    match (check_whole(ctx, job), first) {
        (Ok(e), _) if !e.is_empty() => Err(Failure::Damaged(e)),
        (Ok(_), Some(Ok(orig))) => Err(Failure::Damaged(vec![format!(
            "check successful on second attempt, original error {}",
            orig.join("; ")
        )])),
        (Ok(_), Some(Err(orig))) => Err(Failure::Damaged(vec![format!(
            "check successful on second attempt, original error {orig}"
        )])),
        (Ok(_), None) => Ok(()),
        (Err(e), _) => Err(Failure::Unreadable(e)),
    }
}

fn report(rep: &Reporter<'_>, id: Id, f: Failure) {
    let p = match f {
        Failure::Damaged(errs) => {
            let mut p = Problem::new(
                ProblemKind::PackData,
                Some(Subject::Pack(id)),
                format!("pack {id} contains {} errors", errs.len()),
            );
            p.details = errs;
            p.salvage = true;
            p
        }
        Failure::Unreadable(e) => Problem::new(
            ProblemKind::PackData,
            Some(Subject::Pack(id)),
            format!("pack {id}: download error: {e}"),
        ),
    };
    rep.report(p);
}

/// Group `selected` into batches whose index entries fit [`BATCH_BLOBS`].
fn batches<'a>(selected: &'a [Id], counts: &HashMap<Id, usize>) -> Vec<&'a [Id]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut n = 0;
    for (i, id) in selected.iter().enumerate() {
        let c = counts.get(id).copied().unwrap_or(0);
        if n > 0 && n + c > BATCH_BLOBS {
            out.push(selected.get(start..i).unwrap_or_default());
            start = i;
            n = 0;
        }
        n += c;
    }
    if start < selected.len() {
        out.push(selected.get(start..).unwrap_or_default());
    }
    out
}

/// Phase 4: read the `selected` packs with `workers` threads.
pub(super) fn read_packs(
    repo: &Repository,
    loaded: &Loaded,
    stored: &HashMap<Id, u64>,
    selected: &[Id],
    workers: usize,
    progress: &CheckProgress,
    rep: &Reporter<'_>,
) -> Result<ReadStats> {
    let ctx = Ctx {
        repo,
        key: repo.master_key(),
        version: repo.version(),
        progress,
    };
    let stats = parking_lot::Mutex::new(ReadStats { packs: 0, bytes: 0 });
    let (tx, rx) = crossbeam_channel::bounded::<Job>(workers * 2);
    std::thread::scope(|s| {
        for _ in 0..workers.max(1) {
            let rx = rx.clone();
            let (ctx, stats) = (&ctx, &stats);
            s.spawn(move || {
                for job in rx {
                    let r = check_pack(ctx, &job);
                    {
                        let mut st = stats.lock();
                        st.packs += 1;
                        st.bytes += job.actual;
                    }
                    progress.add_done(1);
                    if let Err(f) = r {
                        report(rep, job.id, f);
                    }
                }
            });
        }
        drop(rx);
        for batch in batches(selected, &loaded.counts) {
            let wanted: HashSet<&Id> = batch.iter().collect();
            let mut lists: HashMap<Id, Vec<PackBlob>> = HashMap::with_capacity(batch.len());
            for (t, id, loc) in loaded.index.iter() {
                if wanted.contains(&loc.pack_id) {
                    lists
                        .entry(loc.pack_id)
                        .or_default()
                        .push(loc.to_pack_blob(t, id));
                }
            }
            for id in batch {
                let mut blobs = lists.remove(id).unwrap_or_default();
                blobs.sort_by_key(|b| (b.offset, b.length));
                let job = Job {
                    id: *id,
                    expected: loaded.sizes.get(id).copied().unwrap_or(0),
                    actual: stored.get(id).copied().unwrap_or(0),
                    blobs,
                };
                if tx.send(job).is_err() {
                    break;
                }
            }
        }
        drop(tx);
    });
    Ok(stats.into_inner())
}
