//! Reusable buffers for the chunks of large files.
//!
//! A large file is read in steps of [`READ_STEP`] into the buffer of the chunk being cut; when
//! the chunker cuts inside a step, only the bytes after the cut move to the next chunk's
//! buffer. Buffers come back to a shared pool once their chunk is stored and are read into
//! again without being zeroed (they stay initialized), so reading a large file costs no
//! page faults, no zeroing and one partial copy per chunk.

use parking_lot::Mutex;

/// Bytes read per `read` call from a large file; also the most that is copied when a chunk
/// ends inside a read.
pub(crate) const READ_STEP: usize = 256 << 10;

/// Buffers grown beyond this are freed rather than pooled: chunks reach 8 MiB, and a pool of
/// buffers that each once held such a chunk would keep that much memory per buffer.
const KEEP_BYTES: usize = (2 << 20) + READ_STEP;

/// Buffers kept in the pool at most. A returned buffer is usually taken again for the next
/// chunk right away, so a few suffice; more would only hold memory between large files.
const KEEP_COUNT: usize = 6;

/// The bytes of one chunk: `data[..filled]`. All of `data` is initialized (zeroed once when
/// the buffer grows), so reading into it again needs no zeroing.
#[derive(Default)]
pub(crate) struct ChunkBuf {
    data: Vec<u8>,
    filled: usize,
}

impl ChunkBuf {
    /// The chunk's bytes.
    pub(crate) fn bytes(&self) -> &[u8] {
        self.data.get(..self.filled).unwrap_or_default()
    }

    /// Number of bytes held.
    pub(crate) fn len(&self) -> usize {
        self.filled
    }

    /// True if no bytes are held.
    pub(crate) fn is_empty(&self) -> bool {
        self.filled == 0
    }

    /// Room for `n` more bytes after the held ones; [`ChunkBuf::commit`] adds what was written.
    pub(crate) fn spare(&mut self, n: usize) -> &mut [u8] {
        let want = self.filled + n;
        if self.data.len() < want {
            self.data.resize(want, 0);
        }
        self.data.get_mut(self.filled..want).unwrap_or_default()
    }

    /// Count `n` more bytes (written into [`ChunkBuf::spare`]) as held.
    pub(crate) fn commit(&mut self, n: usize) {
        self.filled = (self.filled + n).min(self.data.len());
    }

    /// Append bytes.
    pub(crate) fn extend_from_slice(&mut self, b: &[u8]) {
        self.spare(b.len()).copy_from_slice(b);
        self.commit(b.len());
    }

    /// Keep only the first `n` bytes.
    pub(crate) fn truncate(&mut self, n: usize) {
        self.filled = self.filled.min(n);
    }
}

/// Free chunk buffers shared by all files of a backup.
#[derive(Default)]
pub(crate) struct ChunkPool {
    free: Mutex<Vec<Vec<u8>>>,
}

impl ChunkPool {
    /// An empty buffer, reused if one is free.
    pub(crate) fn take(&self) -> ChunkBuf {
        ChunkBuf {
            data: self.free.lock().pop().unwrap_or_default(),
            filled: 0,
        }
    }

    /// Return a buffer whose chunk is done with.
    pub(crate) fn give(&self, b: ChunkBuf) {
        if b.data.len() <= KEEP_BYTES {
            let mut free = self.free.lock();
            if free.len() < KEEP_COUNT {
                free.push(b.data);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reused_buffers_hold_only_new_bytes() {
        let pool = ChunkPool::default();
        let mut a = pool.take();
        a.extend_from_slice(b"hello world");
        let s = a.spare(100);
        s[..3].copy_from_slice(b"abc");
        a.commit(3);
        assert_eq!(a.bytes(), b"hello worldabc");
        a.truncate(5);
        assert_eq!(a.bytes(), b"hello");
        pool.give(a);
        let mut b = pool.take();
        assert!(b.is_empty());
        assert_eq!(b.data.len(), 111, "the pooled buffer is reused");
        b.extend_from_slice(b"xy");
        assert_eq!(b.bytes(), b"xy");
        assert_eq!(b.len(), 2);
    }

    #[test]
    fn large_buffers_are_not_kept() {
        let pool = ChunkPool::default();
        let mut a = pool.take();
        a.spare(KEEP_BYTES + 1);
        pool.give(a);
        assert!(pool.free.lock().is_empty());
        for _ in 0..KEEP_COUNT + 3 {
            let mut b = ChunkBuf::default();
            b.extend_from_slice(b"x");
            pool.give(b);
        }
        assert_eq!(pool.free.lock().len(), KEEP_COUNT);
    }
}
