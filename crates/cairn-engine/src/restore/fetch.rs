//! File contents: map every needed data blob to the (file, offset) pairs that use it, group
//! blobs by pack, read the needed byte ranges of each pack on worker threads (nearby blobs
//! coalesced into one read of bounded size), decode each blob once, in place, and write it
//! everywhere it is used.

use super::files::{self, Action, FileJob, WriteEnv};
use super::meta::MetaCtx;
use super::plan::Plan;
use super::{Reporter, RestoreOptions, run_parallel};
use cairn_repo::backend::FileType;
use cairn_repo::crypto::MasterKey;
use cairn_repo::pack::PackBlob;
use cairn_repo::repository::Repository;
use cairn_repo::{BlobType, Id};
use std::borrow::Cow;
use std::collections::HashMap;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Files waiting for the flusher thread at most (further requests are dropped).
const FLUSH_QUEUE: usize = 256;
/// Unused bytes between two needed blobs above which a new read is started (restic: 1 MiB).
const MAX_GAP: u64 = 1 << 20;
/// Largest single range read (one blob may exceed it on its own). Each worker holds one read
/// and one decompressed blob at a time, so this bounds the memory in flight; reads this size
/// also stay below glibc's mmap threshold, so their memory is reused instead of re-faulted.
pub(crate) const MAX_RANGE: u64 = 2 << 20;

/// One distinct blob to fetch.
struct BlobRef {
    id: Id,
    pack: u32,
    offset: u32,
    length: u32,
    ulen: Option<u32>,
}

impl BlobRef {
    fn pack_blob(&self) -> PackBlob {
        PackBlob {
            blob_type: BlobType::Data,
            id: self.id,
            offset: self.offset,
            length: self.length,
            uncompressed_length: self.ulen,
        }
    }
    fn end(&self) -> u64 {
        u64::from(self.offset) + u64::from(self.length)
    }
}

/// One use of a blob: write it to file `file` at `off`.
#[derive(Clone, Copy)]
struct Use {
    blob: u32,
    file: u32,
    off: u64,
}

/// One range read: a run of distinct blobs of one pack (indices into [`Layout::runs`]) and
/// the byte range of the pack that holds them.
struct Read {
    pack: u32,
    runs: Range<usize>,
    start: u64,
    end: u64,
}

/// Counts from [`restore_contents`].
#[derive(Debug, Default)]
pub(crate) struct FetchStats {
    /// Bytes written.
    pub bytes_written: u64,
    /// Files whose content was written completely (or would be, in a dry run).
    pub files_restored: u64,
}

/// The blob table and the uses, sorted by pack and offset.
struct Layout {
    blobs: Vec<BlobRef>,
    packs: Vec<Id>,
    uses: Vec<Use>,
    /// Distinct blobs in pack/offset order, each with its run of `uses`.
    runs: Vec<(u32, Range<usize>)>,
}

fn layout(repo: &Repository, plan: &mut Plan, rep: &Reporter<'_>) -> Layout {
    let mut blobs: Vec<BlobRef> = Vec::new();
    let mut blob_ix: HashMap<Id, u32> = HashMap::new();
    let mut packs: Vec<Id> = Vec::new();
    let mut pack_ix: HashMap<Id, u32> = HashMap::new();
    let mut uses: Vec<Use> = Vec::new();
    let progress = rep.progress();
    let index = repo.index();
    let parents = &plan.parents;
    for (fi, job) in plan.files.iter_mut().enumerate() {
        if job.action != Action::Write {
            continue;
        }
        let Ok(file_no) = u32::try_from(fi) else {
            job.failed.store(true, Ordering::Relaxed);
            rep.error(format!(
                "{}: too many files",
                super::show(&job.location(parents))
            ));
            continue;
        };
        let start = uses.len();
        let mut off = 0u64;
        let mut matched = 0u64;
        let mut missing = None;
        for (i, id) in job.content.iter().enumerate() {
            let b = match blob_ix.get(id) {
                Some(&b) => b,
                None => {
                    let Some(loc) = index.get(BlobType::Data, id) else {
                        missing = Some(*id);
                        break;
                    };
                    let pack = *pack_ix.entry(loc.pack_id).or_insert_with(|| {
                        packs.push(loc.pack_id);
                        (packs.len() - 1) as u32
                    });
                    blobs.push(BlobRef {
                        id: *id,
                        pack,
                        offset: loc.offset,
                        length: loc.length,
                        ulen: loc.uncompressed_length,
                    });
                    let b = (blobs.len() - 1) as u32;
                    blob_ix.insert(*id, b);
                    b
                }
            };
            let plen = blobs
                .get(b as usize)
                .map_or(0, |r| r.pack_blob().plaintext_length());
            if job.reuse.as_ref().and_then(|r| r.get(i)) == Some(&true) {
                matched += plen;
            } else {
                uses.push(Use {
                    blob: b,
                    file: file_no,
                    off,
                });
            }
            off += plen;
        }
        if let Some(id) = missing {
            uses.truncate(start);
            job.failed.store(true, Ordering::Relaxed);
            progress.files_done.fetch_add(1, Ordering::Relaxed);
            rep.error(format!(
                "{}: blob {} not found in index, file not restored",
                super::show(&job.location(parents)),
                id
            ));
            continue;
        }
        progress.bytes_done.fetch_add(matched, Ordering::Relaxed);
        let n = (uses.len() - start) as u32;
        job.pending.store(n, Ordering::Relaxed);
    }
    drop(index);
    drop(blob_ix);
    let key = |u: &Use| {
        let b = blobs.get(u.blob as usize);
        (
            b.map_or(0, |b| b.pack),
            b.map_or(0, |b| b.offset),
            u.blob,
            u.file,
            u.off,
        )
    };
    uses.sort_unstable_by_key(key);
    let mut runs: Vec<(u32, Range<usize>)> = Vec::new();
    for (i, u) in uses.iter().enumerate() {
        match runs.last_mut() {
            Some((b, r)) if *b == u.blob => r.end = i + 1,
            _ => runs.push((u.blob, i..i + 1)),
        }
    }
    Layout {
        blobs,
        packs,
        uses,
        runs,
    }
}

/// All range reads, pack by pack.
fn reads(l: &Layout) -> Vec<Read> {
    let mut out = Vec::new();
    let mut k = 0;
    while k < l.runs.len() {
        let pack_of = |i: usize| {
            l.runs
                .get(i)
                .and_then(|(b, _)| l.blobs.get(*b as usize))
                .map_or(0, |b| b.pack)
        };
        let pack = pack_of(k);
        let mut j = k + 1;
        while j < l.runs.len() && pack_of(j) == pack {
            j += 1;
        }
        let extents: Vec<(u64, u64)> = l
            .runs
            .get(k..j)
            .unwrap_or_default()
            .iter()
            .map(|(b, _)| {
                l.blobs
                    .get(*b as usize)
                    .map_or((0, 0), |r| (u64::from(r.offset), r.end()))
            })
            .collect();
        for (r, start, end) in plan_reads(&extents) {
            out.push(Read {
                pack,
                runs: k + r.start..k + r.end,
                start,
                end,
            });
        }
        k = j;
    }
    out
}

/// Restore the content of every file with [`Action::Write`].
pub(crate) fn restore_contents(
    repo: &Repository,
    plan: &mut Plan,
    opts: &RestoreOptions,
    threads: usize,
    ctx: &MetaCtx,
    rep: &Reporter<'_>,
) -> FetchStats {
    let l = layout(repo, plan, rep);
    let plan: &Plan = plan;
    let files = &plan.files;
    let writable = || {
        files
            .iter()
            .filter(|f| f.action == Action::Write && !f.failed.load(Ordering::Relaxed))
    };
    if opts.dry_run {
        let mut stats = FetchStats::default();
        for f in writable() {
            stats.files_restored += 1;
            stats.bytes_written += f.size;
        }
        let p = rep.progress();
        p.files_done
            .fetch_add(stats.files_restored, Ordering::Relaxed);
        p.bytes_done
            .fetch_add(stats.bytes_written, Ordering::Relaxed);
        return stats;
    }
    let (flush_tx, flush_rx) = crossbeam_channel::bounded(FLUSH_QUEUE);
    let mut env = WriteEnv {
        parents: &plan.parents,
        allow_recursive_delete: opts.delete,
        meta: ctx,
        rep,
        open_files: AtomicUsize::new(0),
        bytes_written: AtomicU64::new(0),
        flush: Some(flush_tx),
    };
    // Files with nothing to fetch (empty, or only the length changes) come first.
    let no_blobs: Vec<&FileJob> = writable()
        .filter(|f| f.pending.load(Ordering::Relaxed) == 0)
        .collect();
    let reads = reads(&l);
    // Workers running at the same time take reads from different parts of the list, so they
    // rarely write to the same file (writes to one file serialize in the kernel).
    let order = interleave(reads.len(), threads);
    let progress = rep.progress();
    let key = repo.master_key();
    // Without the flusher, the data is written out later by the kernel (or `sync`). Not a
    // scoped thread: should a worker panic, dropping `env` (the last sender) ends it.
    let flusher = std::thread::Builder::new()
        .name("restore-flush".into())
        .spawn(move || files::flusher(flush_rx))
        .ok();
    {
        let env = &env;
        run_parallel(threads, no_blobs.len() + reads.len(), |i| {
            if progress.is_cancelled() {
                return;
            }
            if let Some(f) = no_blobs.get(i) {
                f.finish(env);
            } else if let Some(read) = i
                .checked_sub(no_blobs.len())
                .and_then(|k| order.get(k))
                .and_then(|&k| reads.get(k))
            {
                fetch_range(repo, key, &l, read, files, env);
            }
        });
    }
    // The flusher stops once its queue is empty and this, the last sender, is gone.
    env.flush = None;
    if let Some(h) = flusher {
        let _ = h.join();
    }
    let files_restored = writable().count() as u64;
    FetchStats {
        bytes_written: env.bytes_written.into_inner(),
        files_restored,
    }
}

/// The indices `0..n` cut into `ways` contiguous parts and dealt out alternately: the first
/// of each part, then the second of each part, and so on.
pub(crate) fn interleave(n: usize, ways: usize) -> Vec<usize> {
    let ways = ways.clamp(1, n.max(1));
    let per = n.div_ceil(ways);
    let mut out = Vec::with_capacity(n);
    for i in 0..per {
        for w in 0..ways {
            let k = w * per + i;
            if k < n {
                out.push(k);
            }
        }
    }
    out
}

/// Read one range of a pack and deliver its blobs.
fn fetch_range(
    repo: &Repository,
    key: &MasterKey,
    l: &Layout,
    read: &Read,
    files: &[FileJob],
    env: &WriteEnv<'_>,
) {
    let Some(pack_id) = l.packs.get(read.pack as usize) else {
        return;
    };
    let mut raw = repo.backend().read_range(
        FileType::Pack,
        &pack_id.to_hex(),
        read.start,
        read.end - read.start,
    );
    for (b, r) in l.runs.get(read.runs.clone()).unwrap_or_default() {
        let Some(blob) = l.blobs.get(*b as usize) else {
            continue;
        };
        let targets = l.uses.get(r.clone()).unwrap_or_default();
        let data = match &mut raw {
            Ok(raw) => {
                let a = u64::from(blob.offset).saturating_sub(read.start) as usize;
                match raw.get_mut(a..a + blob.length as usize) {
                    Some(bytes) => decode_in_place(key, bytes, blob),
                    None => Err("pack shorter than expected".to_string()),
                }
            }
            Err(e) => Err(format!("reading pack {}: {e}", pack_id.short())),
        };
        // A damaged copy: try any other copy the index knows.
        let data = data.or_else(|first_err| {
            repo.load_blob(BlobType::Data, &blob.id)
                .map(Cow::Owned)
                .map_err(|_| first_err)
        });
        match data {
            Ok(data) => {
                for u in targets {
                    if let Some(f) = files.get(u.file as usize) {
                        f.deliver(&data, u.off, env);
                    }
                }
            }
            Err(e) => {
                for u in targets {
                    if let Some(f) = files.get(u.file as usize) {
                        f.fail(env, format!("blob {}: {e}", blob.id));
                        f.release(env);
                    }
                }
            }
        }
    }
}

/// Authenticate and decrypt one blob's bytes in place, decompress if needed, and check that
/// the plaintext hashes to the blob id. Uncompressed blobs are returned without a copy.
fn decode_in_place<'a>(
    key: &MasterKey,
    bytes: &'a mut [u8],
    blob: &BlobRef,
) -> Result<Cow<'a, [u8]>, String> {
    let plain = key
        .open_slice_in_place(bytes)
        .map_err(|e| format!("data blob {}: {e}", blob.id))?;
    let data = match blob.ulen {
        None => Cow::Borrowed(&*plain),
        Some(n) => {
            let n = n as usize;
            let d = cairn_repo::compress::decompress(plain, Some(n))
                .map_err(|e| format!("data blob {}: decompress: {e}", blob.id))?;
            if d.len() != n {
                return Err(format!(
                    "data blob {}: decompressed to {} bytes, expected {n}",
                    blob.id,
                    d.len()
                ));
            }
            Cow::Owned(d)
        }
    };
    let got = Id::hash(&data);
    if got != blob.id {
        return Err(format!(
            "data blob {}: content hash mismatch: plaintext hashes to {got}",
            blob.id
        ));
    }
    Ok(data)
}

/// Group blobs of one pack, given as `(offset, end)` sorted by offset, into range reads:
/// `(indices of the blobs, start, end)`. A new read starts when the gap to the next blob
/// exceeds [`MAX_GAP`] or the read would grow beyond [`MAX_RANGE`] (a single larger blob
/// gets a read of its own).
pub(crate) fn plan_reads(extents: &[(u64, u64)]) -> Vec<(Range<usize>, u64, u64)> {
    let mut out = Vec::new();
    let mut k = 0;
    while let Some(&(start, first_end)) = extents.get(k) {
        let mut end = first_end;
        let mut j = k + 1;
        while let Some(&(off, next_end)) = extents.get(j) {
            if off.saturating_sub(end) > MAX_GAP || next_end.max(end) - start > MAX_RANGE {
                break;
            }
            end = end.max(next_end);
            j += 1;
        }
        out.push((k..j, start, end));
        k = j;
    }
    out
}
