//! Pack files (spec §6): the binary header, reading a pack's header from the end of the file,
//! assembling new packs (in memory or streamed), and opening single blobs.
//!
//! ```text
//! pack = sealed_blob_1 ‖ … ‖ sealed_blob_n ‖ seal(header) ‖ u32le(len(seal(header)))
//! ```

use crate::backend::{Backend, FileType};
use crate::crypto::{MasterKey, OVERHEAD};
use crate::error::{RepoError, Result};
use crate::{BlobType, Id};
use sha2::{Digest, Sha256};

/// Size of a header entry of an uncompressed blob (type, length, id).
pub const HEADER_ENTRY_PLAIN: usize = 37;
/// Size of a header entry of a compressed blob (type, length, uncompressed length, id).
pub const HEADER_ENTRY_COMPRESSED: usize = 41;
/// Largest allowed sealed header (the value of the trailing length field).
pub const MAX_HEADER_SIZE: u32 = 16 * 1024 * 1024;
/// Bytes of the trailing length field.
pub const TRAILER_SIZE: usize = 4;
/// How many bytes at the end of a pack [`read_pack_header`] reads first (like restic: enough
/// for a header of 15 compressed entries, so small packs need one request).
pub const EAGER_TAIL_SIZE: u64 = (15 * HEADER_ENTRY_COMPRESSED + OVERHEAD + TRAILER_SIZE) as u64;
/// Smallest possible pack: one empty sealed blob plus a one-entry header and the trailer.
pub const MIN_PACK_SIZE: u64 = (OVERHEAD + HEADER_ENTRY_PLAIN + OVERHEAD + TRAILER_SIZE) as u64;
/// Capacity [`PackWriter::new`] reserves: 16 MiB target + one maximal chunk + slack. Untouched
/// pages of a large allocation cost no physical memory.
pub const DEFAULT_WRITER_CAPACITY: usize = (16 << 20) + (8 << 20) + (64 << 10);

/// One entry of a pack header, with the offset computed from the entries before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PackBlob {
    /// Data or tree.
    pub blob_type: BlobType,
    /// SHA-256 of the uncompressed plaintext.
    pub id: Id,
    /// Byte offset of the sealed blob in the pack.
    pub offset: u32,
    /// Length of the sealed blob (IV + ciphertext + MAC).
    pub length: u32,
    /// Plaintext length if the blob is zstd-compressed; `None` for uncompressed blobs.
    pub uncompressed_length: Option<u32>,
}

impl PackBlob {
    /// True if the blob is stored compressed.
    pub fn is_compressed(&self) -> bool {
        self.uncompressed_length.is_some()
    }

    /// Size of this blob's header entry (37 or 41).
    pub fn header_entry_size(&self) -> usize {
        entry_size(self.is_compressed())
    }

    /// The header type byte (0..=3).
    pub fn type_byte(&self) -> u8 {
        let t = match self.blob_type {
            BlobType::Data => 0,
            BlobType::Tree => 1,
        };
        if self.is_compressed() { t | 2 } else { t }
    }

    /// Offset one past the blob's last byte.
    pub fn end(&self) -> u64 {
        u64::from(self.offset) + u64::from(self.length)
    }

    /// Plaintext length: the uncompressed length, or the sealed length minus the overhead.
    pub fn plaintext_length(&self) -> u64 {
        match self.uncompressed_length {
            Some(n) => u64::from(n),
            None => u64::from(self.length).saturating_sub(OVERHEAD as u64),
        }
    }
}

fn entry_size(compressed: bool) -> usize {
    if compressed {
        HEADER_ENTRY_COMPRESSED
    } else {
        HEADER_ENTRY_PLAIN
    }
}

/// Encode the plaintext header for `blobs` (their `offset` fields are not stored; entries must be
/// in file order).
pub fn encode_header(blobs: &[PackBlob]) -> Vec<u8> {
    let size = blobs.iter().map(PackBlob::header_entry_size).sum();
    let mut out = Vec::with_capacity(size);
    for b in blobs {
        encode_entry(b, &mut out);
    }
    out
}

fn encode_entry(b: &PackBlob, out: &mut Vec<u8>) {
    out.push(b.type_byte());
    out.extend_from_slice(&b.length.to_le_bytes());
    if let Some(n) = b.uncompressed_length {
        out.extend_from_slice(&n.to_le_bytes());
    }
    out.extend_from_slice(&b.id.0);
}

/// Decode a plaintext header, computing offsets. Rejects unknown type bytes, truncated entries,
/// sealed lengths below the 32-byte encryption overhead, an uncompressed length of 0 and offsets
/// beyond 4 GiB. An empty header decodes to an empty list.
pub fn decode_header(plain: &[u8]) -> Result<Vec<PackBlob>> {
    decode_header_raw(plain).map_err(|msg| RepoError::corrupt("pack header", msg))
}

fn u32_at(b: &[u8; 4]) -> u32 {
    u32::from_le_bytes(*b)
}

fn decode_header_raw(plain: &[u8]) -> std::result::Result<Vec<PackBlob>, String> {
    let mut blobs = Vec::with_capacity(plain.len() / HEADER_ENTRY_COMPRESSED);
    let mut rest = plain;
    let mut offset: u64 = 0;
    while let Some((&type_byte, after)) = rest.split_first() {
        let i = blobs.len();
        let (blob_type, compressed) = match type_byte {
            0 => (BlobType::Data, false),
            1 => (BlobType::Tree, false),
            2 => (BlobType::Data, true),
            3 => (BlobType::Tree, true),
            b => return Err(format!("header entry {i}: invalid blob type byte {b:#04x}")),
        };
        let truncated = || {
            format!(
                "header entry {i}: truncated ({} of {} bytes)",
                rest.len(),
                entry_size(compressed)
            )
        };
        let (len_bytes, after) = after.split_first_chunk::<4>().ok_or_else(truncated)?;
        let length = u32_at(len_bytes);
        let (uncompressed_length, after) = if compressed {
            let (n, after) = after.split_first_chunk::<4>().ok_or_else(truncated)?;
            (Some(u32_at(n)), after)
        } else {
            (None, after)
        };
        let (id, after) = after.split_first_chunk::<32>().ok_or_else(truncated)?;
        rest = after;

        if (length as usize) < OVERHEAD {
            return Err(format!(
                "header entry {i}: blob length {length} is shorter than the encryption overhead"
            ));
        }
        if uncompressed_length == Some(0) {
            return Err(format!(
                "header entry {i}: compressed blob with uncompressed length 0"
            ));
        }
        let off = u32::try_from(offset)
            .map_err(|_| format!("header entry {i}: blob offset {offset} exceeds 4 GiB"))?;
        blobs.push(PackBlob {
            blob_type,
            id: Id(*id),
            offset: off,
            length,
            uncompressed_length,
        });
        offset += u64::from(length);
    }
    Ok(blobs)
}

/// Result of [`parse_pack_tail`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PackTail {
    /// The header was complete in the given bytes.
    Blobs(Vec<PackBlob>),
    /// The header is longer: this many bytes from the end of the pack are needed in total.
    NeedTail(u64),
}

fn pack_err(name: &str, msg: impl std::fmt::Display) -> RepoError {
    RepoError::corrupt(format!("pack {name}"), msg)
}

/// Parse a pack header from the last `tail.len()` bytes of a pack of `pack_size` bytes.
///
/// Validates the trailer (spec §6.2: `32 ≤ hlen ≤ min(size − 4, 16 MiB)`), authenticates and
/// decodes the header, rejects compressed entries when `repo_version < 2`, and checks that the
/// blobs and header exactly fill the file. Returns [`PackTail::NeedTail`] when `tail` does not
/// contain the whole header. Errors name the pack.
pub fn parse_pack_tail(
    key: &MasterKey,
    tail: &[u8],
    pack_size: u64,
    pack_name: &str,
    repo_version: u32,
) -> Result<PackTail> {
    if pack_size < MIN_PACK_SIZE {
        return Err(pack_err(
            pack_name,
            format!("file is too small to be a pack ({pack_size} bytes)"),
        ));
    }
    if tail.len() as u64 > pack_size {
        return Err(RepoError::Invalid(format!(
            "pack {pack_name}: {} tail bytes given for a {pack_size}-byte file",
            tail.len()
        )));
    }
    let Some((rest, trailer)) = tail.split_last_chunk::<TRAILER_SIZE>() else {
        return Err(RepoError::Invalid(format!(
            "pack {pack_name}: need at least {TRAILER_SIZE} tail bytes"
        )));
    };
    let hlen = u32_at(trailer);
    let hlen64 = u64::from(hlen);
    if hlen == 0 {
        return Err(pack_err(pack_name, "header length is zero"));
    }
    if (hlen as usize) < OVERHEAD {
        return Err(pack_err(
            pack_name,
            format!("header length {hlen} is too small"),
        ));
    }
    if hlen64 > pack_size - TRAILER_SIZE as u64 {
        return Err(pack_err(
            pack_name,
            format!("header length {hlen} is larger than the file ({pack_size} bytes)"),
        ));
    }
    if hlen > MAX_HEADER_SIZE {
        return Err(pack_err(
            pack_name,
            format!("header length {hlen} exceeds the maximum of {MAX_HEADER_SIZE}"),
        ));
    }
    let Some(start) = rest.len().checked_sub(hlen as usize) else {
        return Ok(PackTail::NeedTail(hlen64 + TRAILER_SIZE as u64));
    };
    let sealed = rest.get(start..).unwrap_or_default();
    let plain = key
        .open(sealed)
        .map_err(|e| pack_err(pack_name, format!("header: {e}")))?;
    let blobs = decode_header_raw(&plain).map_err(|m| pack_err(pack_name, m))?;
    if blobs.is_empty() {
        return Err(pack_err(pack_name, "header has no entries"));
    }
    if repo_version < 2 && blobs.iter().any(PackBlob::is_compressed) {
        return Err(pack_err(
            pack_name,
            format!("compressed blob in a version {repo_version} repository"),
        ));
    }
    let data_end = blobs.last().map(PackBlob::end).unwrap_or(0);
    let expected = data_end + hlen64 + TRAILER_SIZE as u64;
    if expected != pack_size {
        return Err(pack_err(
            pack_name,
            format!(
                "blobs ({data_end} bytes) + header ({hlen} bytes) + trailer do not match \
                 the file size {pack_size} (expected {expected})"
            ),
        ));
    }
    Ok(PackTail::Blobs(blobs))
}

/// Parse the header of a complete pack held in memory.
pub fn parse_pack(
    key: &MasterKey,
    pack: &[u8],
    pack_name: &str,
    repo_version: u32,
) -> Result<Vec<PackBlob>> {
    match parse_pack_tail(key, pack, pack.len() as u64, pack_name, repo_version)? {
        PackTail::Blobs(b) => Ok(b),
        PackTail::NeedTail(n) => Err(pack_err(
            pack_name,
            format!("header needs {n} bytes but the file has {}", pack.len()),
        )),
    }
}

/// Read and parse the header of pack `name` (of `size` bytes, e.g. from `Backend::list`) with at
/// most two range reads: the last [`EAGER_TAIL_SIZE`] bytes, then the rest of a larger header.
pub fn read_pack_header(
    backend: &dyn Backend,
    key: &MasterKey,
    name: &str,
    size: u64,
    repo_version: u32,
) -> Result<Vec<PackBlob>> {
    if size < MIN_PACK_SIZE {
        return Err(pack_err(
            name,
            format!("file is too small to be a pack ({size} bytes)"),
        ));
    }
    let first = size.min(EAGER_TAIL_SIZE);
    let mut tail = backend.read_range(FileType::Pack, name, size - first, first)?;
    if tail.len() as u64 != first {
        return Err(pack_err(name, "short read of the pack tail"));
    }
    match parse_pack_tail(key, &tail, size, name, repo_version)? {
        PackTail::Blobs(b) => Ok(b),
        PackTail::NeedTail(need) => {
            // `need <= size` was checked by parse_pack_tail.
            let more = need.saturating_sub(first);
            let mut buf = backend.read_range(FileType::Pack, name, size - need, more)?;
            if buf.len() as u64 != more {
                return Err(pack_err(name, "short read of the pack header"));
            }
            buf.append(&mut tail);
            match parse_pack_tail(key, &buf, size, name, repo_version)? {
                PackTail::Blobs(b) => Ok(b),
                PackTail::NeedTail(n) => Err(pack_err(
                    name,
                    format!("header length changed while reading (needs {n} bytes)"),
                )),
            }
        }
    }
}

/// Open one blob: `raw` is the `blob.length` bytes at `blob.offset` of its pack. Authenticates,
/// decompresses if needed and verifies that SHA-256 of the plaintext equals `blob.id`.
pub fn read_blob(key: &MasterKey, raw: &[u8], blob: &PackBlob) -> Result<Vec<u8>> {
    check_raw_len(raw.len(), blob)?;
    let plain = key.open(raw).map_err(|e| blob_err(blob, e))?;
    finish_blob(plain, blob)
}

/// Like [`read_blob`] but decrypts `raw` in place (no copy for uncompressed blobs).
pub fn read_blob_owned(key: &MasterKey, mut raw: Vec<u8>, blob: &PackBlob) -> Result<Vec<u8>> {
    check_raw_len(raw.len(), blob)?;
    key.open_in_place(&mut raw).map_err(|e| blob_err(blob, e))?;
    finish_blob(raw, blob)
}

fn blob_err(blob: &PackBlob, msg: impl std::fmt::Display) -> RepoError {
    RepoError::corrupt(format!("{} blob {}", blob.blob_type.as_str(), blob.id), msg)
}

fn check_raw_len(len: usize, blob: &PackBlob) -> Result<()> {
    if len as u64 != u64::from(blob.length) {
        return Err(blob_err(
            blob,
            format!("got {len} bytes, expected {}", blob.length),
        ));
    }
    Ok(())
}

fn finish_blob(plain: Vec<u8>, blob: &PackBlob) -> Result<Vec<u8>> {
    let data = match blob.uncompressed_length {
        None => plain,
        Some(n) => {
            let data = crate::compress::decompress(&plain, Some(n as usize))
                .map_err(|e| blob_err(blob, format!("decompress: {e}")))?;
            if data.len() as u64 != u64::from(n) {
                return Err(blob_err(
                    blob,
                    format!("decompressed to {} bytes, expected {n}", data.len()),
                ));
            }
            data
        }
    };
    let got = Id::hash(&data);
    if got != blob.id {
        return Err(blob_err(
            blob,
            format!("content hash mismatch: plaintext hashes to {got}"),
        ));
    }
    Ok(data)
}

/// Assembles one pack: sealed blobs are appended, [`PackWriter::finish`] adds the sealed
/// header and trailer and computes the pack id. The blob bytes are held in memory until
/// [`PackWriter::drain`] hands them on (to stream a large pack to storage as it fills).
#[derive(Debug)]
pub struct PackWriter {
    blob_type: BlobType,
    buf: Vec<u8>,
    /// Bytes handed out by `drain` before `buf`.
    drained: usize,
    /// SHA-256 of the drained bytes (the pack id covers the whole file).
    hasher: Sha256,
    blobs: Vec<PackBlob>,
    header_len: usize,
}

impl PackWriter {
    /// A writer for blobs of `blob_type`, reserving [`DEFAULT_WRITER_CAPACITY`].
    pub fn new(blob_type: BlobType) -> Self {
        Self::with_capacity(blob_type, DEFAULT_WRITER_CAPACITY)
    }

    /// A writer reserving `capacity` bytes for the pack (e.g. target size + largest blob).
    pub fn with_capacity(blob_type: BlobType, capacity: usize) -> Self {
        Self::with_buffer(blob_type, Vec::with_capacity(capacity))
    }

    /// A writer reusing `buf` (cleared) as its pack buffer, to avoid fresh allocations.
    pub fn with_buffer(blob_type: BlobType, mut buf: Vec<u8>) -> Self {
        buf.clear();
        PackWriter {
            blob_type,
            buf,
            drained: 0,
            hasher: Sha256::new(),
            blobs: Vec::new(),
            header_len: 0,
        }
    }

    /// The blob type this pack is meant for.
    pub fn blob_type(&self) -> BlobType {
        self.blob_type
    }

    /// Bytes of sealed blobs written so far, drained or not (header not included).
    pub fn len(&self) -> usize {
        self.drained + self.buf.len()
    }

    /// Bytes of sealed blobs held in memory (written since the last [`PackWriter::drain`]).
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Hand the blob bytes held in memory to `out` and forget them; offsets and the pack id
    /// still count them. On error nothing is forgotten.
    pub fn drain<E>(
        &mut self,
        out: impl FnOnce(&[u8]) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        out(&self.buf)?;
        self.hasher.update(&self.buf);
        self.drained += self.buf.len();
        self.buf.clear();
        Ok(())
    }

    /// Number of blobs added.
    pub fn count(&self) -> usize {
        self.blobs.len()
    }

    /// True if no blob has been added.
    pub fn is_empty(&self) -> bool {
        self.blobs.is_empty()
    }

    /// The blobs added so far, with their offsets.
    pub fn blobs(&self) -> &[PackBlob] {
        &self.blobs
    }

    /// Size of the finished pack if it were finished now (blobs + sealed header + trailer).
    pub fn finished_size(&self) -> usize {
        self.len() + self.header_len + OVERHEAD + TRAILER_SIZE
    }

    /// True if one more entry (compressed or not) would push the sealed header above
    /// [`MAX_HEADER_SIZE`]; the pack must then be finished.
    pub fn header_would_overflow(&self, compressed: bool) -> bool {
        self.header_len + entry_size(compressed) + OVERHEAD > MAX_HEADER_SIZE as usize
    }

    /// Add an already sealed blob (`seal(plaintext)` or `seal(zstd(plaintext))`, the latter with
    /// `uncompressed_length = Some(plaintext.len())`).
    pub fn add_sealed(
        &mut self,
        id: Id,
        sealed: &[u8],
        uncompressed_length: Option<u32>,
    ) -> Result<()> {
        self.add_with(id, uncompressed_length, |out| out.extend_from_slice(sealed))
    }

    /// Add a blob whose sealed bytes `f` appends to the given buffer (e.g. with
    /// `MasterKey::seal_into`), avoiding a copy. Fails — leaving the writer unchanged — if the
    /// header is full, the sealed length or the offset does not fit in 32 bits, the sealed blob
    /// is shorter than the encryption overhead, or the uncompressed length is 0.
    pub fn add_with(
        &mut self,
        id: Id,
        uncompressed_length: Option<u32>,
        f: impl FnOnce(&mut Vec<u8>),
    ) -> Result<()> {
        let compressed = uncompressed_length.is_some();
        if self.header_would_overflow(compressed) {
            return Err(RepoError::Invalid(
                "pack header is full; finish the pack first".into(),
            ));
        }
        if uncompressed_length == Some(0) {
            return Err(RepoError::Invalid(
                "an empty blob must not be marked compressed".into(),
            ));
        }
        let start = self.buf.len();
        let offset = u32::try_from(self.drained + start)
            .map_err(|_| RepoError::Invalid("pack would exceed 4 GiB".into()))?;
        f(&mut self.buf);
        let written = self.buf.len().saturating_sub(start);
        let length = match u32::try_from(written) {
            Ok(l) if written >= OVERHEAD => l,
            _ => {
                self.buf.truncate(start);
                return Err(RepoError::Invalid(format!(
                    "sealed blob {id} has invalid length {written}"
                )));
            }
        };
        self.blobs.push(PackBlob {
            blob_type: self.blob_type,
            id,
            offset,
            length,
            uncompressed_length,
        });
        self.header_len += entry_size(compressed);
        Ok(())
    }

    /// Append the sealed header and trailer. Returns the pack id (SHA-256 of all bytes), the
    /// pack bytes not drained yet (the whole pack if nothing was drained) and its blobs. A pack
    /// must contain at least one blob to be readable.
    pub fn finish(self, key: &MasterKey) -> (Id, Vec<u8>, Vec<PackBlob>) {
        let PackWriter {
            mut buf,
            mut hasher,
            blobs,
            ..
        } = self;
        let header = encode_header(&blobs);
        let before = buf.len();
        buf.reserve(header.len() + OVERHEAD + TRAILER_SIZE);
        key.seal_into(&header, &mut buf);
        // The header size is bounded by MAX_HEADER_SIZE in add_with.
        let hlen = u32::try_from(buf.len() - before).unwrap_or(u32::MAX);
        buf.extend_from_slice(&hlen.to_le_bytes());
        hasher.update(&buf);
        (Id(hasher.finalize().into()), buf, blobs)
    }
}

#[cfg(test)]
mod tests;
