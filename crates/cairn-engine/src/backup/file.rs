//! Saving file contents: read, cut with the repository's chunker, and hash/compress/encrypt
//! chunks in parallel on the worker pool while the next chunk is read.

use super::chunkbuf::READ_STEP;
use super::walk::Ctx;
use cairn_repo::chunker::{Chunker, MIN_SIZE};
use cairn_repo::{BlobType, Id};
use parking_lot::Mutex;
use std::ffi::{CString, OsStr};
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::Ordering;

/// Open a file for reading without following symlinks and, where allowed, without
/// updating its access time.
pub(crate) fn open_for_read(path: &Path) -> io::Result<File> {
    open_with(|flags| {
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(flags)
            .open(path)
    })
}

/// Like [`open_for_read`], for the entry `name` of the open directory `dir` (no walk of
/// the full path: on trees of small files, path lookups are a measurable share of a backup).
pub(crate) fn open_in_dir(dir: &File, name: &OsStr) -> io::Result<File> {
    let cname = CString::new(name.as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "file name contains NUL"))?;
    open_with(|flags| {
        // SAFETY: `dir` is an open descriptor and `cname` a NUL-terminated string, both alive
        // for the call; a returned descriptor is owned by nobody else.
        let fd = unsafe { libc::openat(dir.as_raw_fd(), cname.as_ptr(), libc::O_RDONLY | flags) };
        if fd < 0 {
            Err(io::Error::last_os_error())
        } else {
            // SAFETY: `fd` was just returned by openat and is not owned elsewhere.
            Ok(unsafe { File::from_raw_fd(fd) })
        }
    })
}

/// Open with `O_NOFOLLOW | O_CLOEXEC | O_NOATIME`, retrying without `O_NOATIME` where it is
/// not allowed (files of other users).
fn open_with(open: impl Fn(libc::c_int) -> io::Result<File>) -> io::Result<File> {
    let base = libc::O_NOFOLLOW | libc::O_CLOEXEC;
    match open(base | libc::O_NOATIME) {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => open(base),
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

/// Read an open file and store its chunks; returns the content ids and the number of bytes
/// read. `size_hint` is the size `lstat` reported.
pub(crate) fn save_file(
    ctx: &Ctx<'_>,
    mut f: File,
    size_hint: u64,
) -> Result<(Vec<Id>, u64), SaveError> {
    if size_hint < MIN_SIZE as u64 {
        // Small file: one chunk (unless it grew past the minimum while we read it).
        let buf = read_small(&mut f, size_hint as usize)?;
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

/// Read a file whose `lstat` size was `size` (below the chunker's minimum), up to
/// [`MIN_SIZE`] bytes. A read that stops short exactly at `size` with room left in the buffer
/// is the end of a regular file, so the usual extra read that returns 0 is saved (one system
/// call per file on trees of small files); a file that grew is read on to its end or the limit.
fn read_small(f: &mut File, size: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; size + 1];
    let mut n = 0;
    loop {
        if n == buf.len() {
            if buf.len() >= MIN_SIZE {
                break;
            }
            let grown = (buf.len() * 2).clamp(4096, MIN_SIZE);
            buf.resize(grown, 0);
        }
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => {
                n += k;
                if n == size && n < buf.len() {
                    break;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(n);
    Ok(buf)
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
    let pool = &ctx.chunk_pool;
    let read_result: io::Result<()> = rayon::in_place_scope(|s| {
        let mut cur = pool.take();
        cur.extend_from_slice(&prefix);
        drop(prefix);
        // `scanned` = bytes of `cur` already fed to the chunker.
        let mut scanned = 0usize;
        let mut eof = false;
        loop {
            if scanned == cur.len() && !eof {
                let spare = cur.spare(READ_STEP);
                let n = loop {
                    match r.read(spare) {
                        Ok(n) => break n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(e),
                    }
                };
                cur.commit(n);
                if n == 0 {
                    eof = true;
                }
            }
            let cut = if scanned < cur.len() {
                let unscanned = cur.bytes().get(scanned..).unwrap_or_default();
                chunker.next_boundary(unscanned).map(|n| scanned + n)
            } else {
                None
            };
            let chunk = match cut {
                Some(end) => {
                    // Only the bytes after the cut (at most one read step) move.
                    let mut next = pool.take();
                    next.extend_from_slice(cur.bytes().get(end..).unwrap_or_default());
                    cur.truncate(end);
                    scanned = 0;
                    Some(std::mem::replace(&mut cur, next))
                }
                None => {
                    scanned = cur.len();
                    if eof {
                        if cur.is_empty() {
                            None
                        } else {
                            Some(std::mem::take(&mut cur))
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
                match ctx.store(BlobType::Data, chunk.bytes()) {
                    Ok(id) => results.lock().push((i, id)),
                    Err(e) => {
                        first_err.lock().get_or_insert(e);
                    }
                }
                pool.give(chunk);
                ctx.progress.bytes(len);
                in_flight.fetch_sub(1, Ordering::AcqRel);
            });
            if eof && cur.is_empty() {
                break;
            }
        }
        pool.give(cur);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn file_with(dir: &Path, name: &str, len: usize) -> File {
        let p = dir.join(name);
        let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        std::fs::write(&p, &data).unwrap();
        open_for_read(&p).unwrap()
    }

    #[test]
    fn read_small_reads_what_is_there_whatever_the_hint() {
        let d = tempfile::tempdir().unwrap();
        for (len, hint) in [
            (0, 0),
            (1, 1),
            (100, 100),
            (100, 40),
            (100, 500),
            (9000, 10),
        ] {
            let mut f = file_with(d.path(), "f", len);
            let buf = read_small(&mut f, hint).unwrap();
            assert_eq!(buf.len(), len, "len {len} hint {hint}");
            assert!(buf.iter().enumerate().all(|(i, b)| *b == (i % 251) as u8));
        }
    }

    #[test]
    fn read_small_stops_at_the_chunker_minimum() {
        let d = tempfile::tempdir().unwrap();
        let mut f = file_with(d.path(), "big", MIN_SIZE + 10);
        let buf = read_small(&mut f, 3).unwrap();
        assert_eq!(buf.len(), MIN_SIZE);
        let mut rest = Vec::new();
        f.read_to_end(&mut rest).unwrap();
        assert_eq!(rest.len(), 10);
    }

    #[test]
    fn open_in_dir_opens_files_and_refuses_symlinks() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("a"), b"hello").unwrap();
        std::os::unix::fs::symlink("a", d.path().join("l")).unwrap();
        let dir = File::open(d.path()).unwrap();
        let mut s = String::new();
        open_in_dir(&dir, OsStr::new("a"))
            .unwrap()
            .read_to_string(&mut s)
            .unwrap();
        assert_eq!(s, "hello");
        let e = open_in_dir(&dir, OsStr::new("l")).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ELOOP));
        assert!(open_in_dir(&dir, OsStr::new("missing")).is_err());
    }
}
