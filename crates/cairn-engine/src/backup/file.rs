//! Saving file contents: read, cut with the repository's chunker, and hash/compress/encrypt
//! chunks in parallel on the worker pool while the next chunk is read.

use super::walk::Ctx;
use cairn_repo::chunker::{Chunker, MIN_SIZE};
use cairn_repo::{BlobType, Id};
use parking_lot::Mutex;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::Ordering;

/// Read buffer size for large files.
const READ_SIZE: usize = 1 << 20;

/// Open a file for reading without following symlinks and, where allowed, without
/// updating its access time.
pub(crate) fn open_for_read(path: &Path) -> io::Result<File> {
    let base = libc::O_NOFOLLOW | libc::O_CLOEXEC;
    match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(base | libc::O_NOATIME)
        .open(path)
    {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(base)
            .open(path),
        r => r,
    }
}

/// Errors while saving one file: reading (a warning, the file is skipped) or storing (fatal).
pub(crate) enum SaveError {
    Read(io::Error),
    Store(crate::EngineError),
}

impl From<io::Error> for SaveError {
    fn from(e: io::Error) -> Self {
        SaveError::Read(e)
    }
}

/// Read a file and store its chunks; returns the content ids and the number of bytes read.
pub(crate) fn save_file(
    ctx: &Ctx<'_>,
    path: &Path,
    size_hint: u64,
) -> Result<(Vec<Id>, u64), SaveError> {
    let mut f = open_for_read(path)?;
    if size_hint < MIN_SIZE as u64 {
        // Small file: one chunk (unless it grew past the minimum while we read it).
        let mut buf = Vec::with_capacity(size_hint as usize + 1);
        (&mut f).take(MIN_SIZE as u64).read_to_end(&mut buf)?;
        if buf.len() < MIN_SIZE {
            let n = buf.len() as u64;
            if buf.is_empty() {
                return Ok((Vec::new(), 0));
            }
            let id = ctx.store(BlobType::Data, &buf).map_err(SaveError::Store)?;
            ctx.progress.bytes(n);
            return Ok((vec![id], n));
        }
        return save_stream(ctx, f, buf);
    }
    save_stream(ctx, f, Vec::new())
}

/// Chunk a stream (a large file or stdin), storing chunks in parallel. `prefix` holds bytes
/// already read from the stream.
pub(crate) fn save_stream(
    ctx: &Ctx<'_>,
    mut r: impl Read,
    prefix: Vec<u8>,
) -> Result<(Vec<Id>, u64), SaveError> {
    let mut chunker = Chunker::new(ctx.repo.chunker_tables().clone());
    let results: Mutex<Vec<(usize, Id)>> = Mutex::new(Vec::new());
    let first_err: Mutex<Option<crate::EngineError>> = Mutex::new(None);
    // Shared by all files: bounds the chunk bytes held in memory, whatever the file count.
    let in_flight = &ctx.chunks_in_flight;
    let limit = ctx.max_chunks_in_flight;
    let mut total = 0u64;
    let mut count = 0usize;
    let read_result: io::Result<()> = rayon::in_place_scope(|s| {
        let mut buf = prefix;
        // `scanned` = bytes of `buf` already fed to the chunker.
        let mut scanned = 0usize;
        let mut eof = false;
        loop {
            if scanned == buf.len() && !eof {
                let old = buf.len();
                buf.resize(old + READ_SIZE, 0);
                let n = loop {
                    match r.read(&mut buf[old..]) {
                        Ok(n) => break n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(e),
                    }
                };
                buf.truncate(old + n);
                if n == 0 {
                    eof = true;
                }
            }
            let cut = if scanned < buf.len() {
                chunker.next_boundary(&buf[scanned..]).map(|n| scanned + n)
            } else {
                None
            };
            let chunk = match cut {
                Some(end) => {
                    let rest = buf.split_off(end);
                    scanned = 0;
                    Some(std::mem::replace(&mut buf, rest))
                }
                None => {
                    scanned = buf.len();
                    if eof {
                        if buf.is_empty() {
                            None
                        } else {
                            Some(std::mem::take(&mut buf))
                        }
                    } else {
                        continue;
                    }
                }
            };
            let Some(chunk) = chunk else { break };
            total += chunk.len() as u64;
            let i = count;
            count += 1;
            while in_flight.load(Ordering::Acquire) >= limit {
                if rayon::yield_now() != Some(rayon::Yield::Executed) {
                    std::thread::sleep(std::time::Duration::from_micros(200));
                }
            }
            in_flight.fetch_add(1, Ordering::AcqRel);
            let (results, first_err) = (&results, &first_err);
            s.spawn(move |_| {
                let len = chunk.len() as u64;
                match ctx.store(BlobType::Data, &chunk) {
                    Ok(id) => results.lock().push((i, id)),
                    Err(e) => {
                        first_err.lock().get_or_insert(e);
                    }
                }
                ctx.progress.bytes(len);
                in_flight.fetch_sub(1, Ordering::AcqRel);
            });
            if eof && buf.is_empty() {
                break;
            }
        }
        Ok(())
    });
    if let Some(e) = first_err.into_inner() {
        return Err(SaveError::Store(e));
    }
    read_result?;
    let mut ids = results.into_inner();
    ids.sort_by_key(|(i, _)| *i);
    Ok((ids.into_iter().map(|(_, id)| id).collect(), total))
}
