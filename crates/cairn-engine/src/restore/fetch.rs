//! File contents: map every needed data blob to the (file, offset) pairs that use it, group
//! blobs by pack, read each pack's needed byte ranges on worker threads (nearby blobs
//! coalesced into one read), decode each blob once and write it everywhere it is used.

use super::files::{Action, FileJob, WriteEnv};
use super::meta::MetaCtx;
use super::plan::Plan;
use super::{Reporter, RestoreOptions, run_parallel};
use cairn_repo::backend::FileType;
use cairn_repo::pack::PackBlob;
use cairn_repo::repository::Repository;
use cairn_repo::{BlobType, Id};
use std::collections::HashMap;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Unused bytes between two needed blobs above which a new read is started (restic: 1 MiB).
const MAX_GAP: u64 = 1 << 20;
/// Largest single range read (one blob may exceed it on its own).
const MAX_RANGE: u64 = 16 << 20;

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
}

fn layout(repo: &Repository, plan: &mut Plan, rep: &Reporter<'_>) -> Layout {
    let mut blobs: Vec<BlobRef> = Vec::new();
    let mut blob_ix: HashMap<Id, u32> = HashMap::new();
    let mut packs: Vec<Id> = Vec::new();
    let mut pack_ix: HashMap<Id, u32> = HashMap::new();
    let mut uses: Vec<Use> = Vec::new();
    let progress = rep.progress();
    let index = repo.index();
    for (fi, job) in plan.files.iter_mut().enumerate() {
        if job.action != Action::Write {
            continue;
        }
        let Ok(file_no) = u32::try_from(fi) else {
            job.failed.store(true, Ordering::Relaxed);
            rep.error(format!("{}: too many files", super::show(&job.location)));
            continue;
        };
        let start = uses.len();
        let mut off = 0u64;
        let mut matched = 0u64;
        let mut missing = None;
        for (i, id) in job.node.content.iter().flatten().enumerate() {
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
                super::show(&job.location),
                id
            ));
            continue;
        }
        progress.bytes_done.fetch_add(matched, Ordering::Relaxed);
        let n = (uses.len() - start) as u32;
        job.pending.store(n, Ordering::Relaxed);
    }
    drop(index);
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
    Layout { blobs, packs, uses }
}

/// Split the sorted uses into one range per pack.
fn pack_groups(l: &Layout) -> Vec<(u32, Range<usize>)> {
    let mut out: Vec<(u32, Range<usize>)> = Vec::new();
    for (i, u) in l.uses.iter().enumerate() {
        let pack = l.blobs.get(u.blob as usize).map_or(0, |b| b.pack);
        match out.last_mut() {
            Some((p, r)) if *p == pack => r.end = i + 1,
            _ => out.push((pack, i..i + 1)),
        }
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
            stats.bytes_written += f.node.size;
        }
        let p = rep.progress();
        p.files_done
            .fetch_add(stats.files_restored, Ordering::Relaxed);
        p.bytes_done
            .fetch_add(stats.bytes_written, Ordering::Relaxed);
        return stats;
    }
    let env = WriteEnv {
        allow_recursive_delete: opts.delete,
        meta: ctx,
        rep,
        open_files: AtomicUsize::new(0),
        bytes_written: AtomicU64::new(0),
    };
    // Files with nothing to fetch (empty, or only the length changes) come first.
    let no_blobs: Vec<&FileJob> = writable()
        .filter(|f| f.pending.load(Ordering::Relaxed) == 0)
        .collect();
    let groups = pack_groups(&l);
    let progress = rep.progress();
    run_parallel(threads, no_blobs.len() + groups.len(), |i| {
        if progress.is_cancelled() {
            return;
        }
        if let Some(f) = no_blobs.get(i) {
            f.finish(&env);
        } else if let Some((pack, range)) =
            i.checked_sub(no_blobs.len()).and_then(|k| groups.get(k))
        {
            let uses = l.uses.get(range.clone()).unwrap_or_default();
            fetch_pack(repo, &l, *pack, uses, files, &env);
        }
    });
    let files_restored = writable().count() as u64;
    FetchStats {
        bytes_written: env.bytes_written.into_inner(),
        files_restored,
    }
}

/// Read the needed parts of one pack and deliver its blobs. `uses` are this pack's uses,
/// sorted by blob offset.
fn fetch_pack(
    repo: &Repository,
    l: &Layout,
    pack: u32,
    uses: &[Use],
    files: &[FileJob],
    env: &WriteEnv<'_>,
) {
    let Some(pack_id) = l.packs.get(pack as usize) else {
        return;
    };
    let pack_name = pack_id.to_hex();
    // Distinct blobs in offset order, each with its run of uses.
    let mut runs: Vec<(u32, Range<usize>)> = Vec::new();
    for (i, u) in uses.iter().enumerate() {
        match runs.last_mut() {
            Some((b, r)) if *b == u.blob => r.end = i + 1,
            _ => runs.push((u.blob, i..i + 1)),
        }
    }
    let extents: Vec<(u64, u64)> = runs
        .iter()
        .map(|(b, _)| {
            l.blobs
                .get(*b as usize)
                .map_or((0, 0), |r| (u64::from(r.offset), r.end()))
        })
        .collect();
    for (blob_range, start, end) in plan_reads(&extents) {
        let raw = repo
            .backend()
            .read_range(FileType::Pack, &pack_name, start, end - start);
        for (b, r) in runs.get(blob_range).unwrap_or_default() {
            let Some(blob) = l.blobs.get(*b as usize) else {
                continue;
            };
            let targets = uses.get(r.clone()).unwrap_or_default();
            let data = match &raw {
                Ok(raw) => {
                    let a = u64::from(blob.offset).saturating_sub(start) as usize;
                    match raw.get(a..a + blob.length as usize) {
                        Some(bytes) => repo
                            .decode_blob(bytes, &blob.pack_blob())
                            .map_err(|e| e.to_string()),
                        None => Err("pack shorter than expected".to_string()),
                    }
                }
                Err(e) => Err(format!("reading pack {}: {e}", pack_id.short())),
            };
            // A damaged copy: try any other copy the index knows.
            let data = data.or_else(|first_err| {
                repo.load_blob(BlobType::Data, &blob.id)
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
