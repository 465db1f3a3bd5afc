//! Streaming zip writer for `dump --archive zip` (no `Seek`: sizes and CRCs follow each
//! entry in a data descriptor, like Go's `archive/zip` that restic uses). Files are
//! deflated, symlinks store their target, directories are empty stored entries without a
//! descriptor. Unix mode bits go into the external attributes, the mtime into the DOS
//! date/time (in the time's own offset) and an extended-timestamp extra field. Zip64
//! records are written when sizes, offsets or the entry count need them.

use super::{ArchiveSink, archive_content, entry_name, out_err};
use crate::{EngineError, Result};
use cairn_repo::node::{
    MODE_CHAR_DEVICE, MODE_DEVICE, MODE_DIR, MODE_NAMED_PIPE, MODE_SOCKET, MODE_SYMLINK, MODE_TYPE,
    Node, NodeType, unix_perm_from_go,
};
use cairn_repo::repository::Repository;
use chrono::{Datelike, Timelike};
use std::io::Write;

const LOCAL_SIG: u32 = 0x0403_4b50;
const DESCRIPTOR_SIG: u32 = 0x0807_4b50;
const CENTRAL_SIG: u32 = 0x0201_4b50;
const END_SIG: u32 = 0x0605_4b50;
const END64_SIG: u32 = 0x0606_4b50;
const END64_LOCATOR_SIG: u32 = 0x0706_4b50;
const FLAG_DESCRIPTOR: u16 = 0x8;
const FLAG_UTF8: u16 = 0x800;
const STORE: u16 = 0;
const DEFLATE: u16 = 8;
const VERSION_20: u16 = 20;
const VERSION_45: u16 = 45;
const CREATOR_UNIX: u16 = 3 << 8;
const U32_MAX: u64 = u32::MAX as u64;

/// Counts the bytes written through it.
struct Counter<'a, 'w> {
    w: &'a mut &'w mut dyn Write,
    n: &'a mut u64,
}

impl Write for Counter<'_, '_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let k = self.w.write(buf)?;
        *self.n += k as u64;
        Ok(k)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.w.flush()
    }
}

struct CentralEntry {
    name: Vec<u8>,
    flags: u16,
    method: u16,
    time: u16,
    date: u16,
    crc: u32,
    compressed: u64,
    uncompressed: u64,
    offset: u64,
    external: u32,
    mtime: u32,
}

pub(super) struct ZipSink<'w> {
    w: &'w mut dyn Write,
    pos: u64,
    entries: Vec<CentralEntry>,
}

/// Go's `detectUTF8`: (valid UTF-8, needs the UTF-8 flag because not plain CP-437 ASCII).
fn needs_utf8_flag(name: &[u8]) -> bool {
    match std::str::from_utf8(name) {
        Ok(s) => s
            .chars()
            .any(|c| (c as u32) < 0x20 || (c as u32) > 0x7d || c == '\\'),
        Err(_) => false,
    }
}

/// Go's `fileModeToUnixMode` plus the MS-DOS directory / read-only bits (`SetMode`).
fn external_attrs(mode: u32) -> u32 {
    let file_type: u32 = match mode & MODE_TYPE {
        MODE_DIR => 0o040_000,
        MODE_SYMLINK => 0o120_000,
        MODE_NAMED_PIPE => 0o010_000,
        MODE_SOCKET => 0o140_000,
        m if m & MODE_DEVICE != 0 => {
            if m & MODE_CHAR_DEVICE != 0 {
                0o020_000
            } else {
                0o060_000
            }
        }
        _ => 0o100_000,
    };
    let mut attrs = (file_type | unix_perm_from_go(mode)) << 16;
    if mode & MODE_DIR != 0 {
        attrs |= 0x10;
    }
    if mode & 0o200 == 0 {
        attrs |= 0x01;
    }
    attrs
}

/// MS-DOS (time, date) of the node's mtime in its recorded offset, years clamped to
/// 1980…2107.
fn dos_time(t: &cairn_repo::gotime::GoTime) -> (u16, u16) {
    let d = t.0.naive_local();
    let year = d.year().clamp(1980, 2107);
    let date = (((year - 1980) as u32) << 9) | (d.month() << 5) | d.day();
    let time = (d.hour() << 11) | (d.minute() << 5) | (d.second() / 2);
    (time as u16, date as u16)
}

fn le16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn le32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn le64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// Extended timestamp extra field (0x5455) with the modification time.
fn timestamp_extra(out: &mut Vec<u8>, mtime: u32) {
    le16(out, 0x5455);
    le16(out, 5);
    out.push(1);
    le32(out, mtime);
}

fn clamp32(v: u64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

impl<'w> ZipSink<'w> {
    pub(super) fn new(w: &'w mut dyn Write) -> Self {
        ZipSink {
            w,
            pos: 0,
            entries: Vec::new(),
        }
    }

    fn write(&mut self, b: &[u8]) -> Result<()> {
        self.w.write_all(b).map_err(out_err)?;
        self.pos += b.len() as u64;
        Ok(())
    }

    fn write_central(&mut self) -> Result<()> {
        let start = self.pos;
        let entries = std::mem::take(&mut self.entries);
        let mut buf = Vec::new();
        for e in &entries {
            let zip64 = e.compressed >= U32_MAX || e.uncompressed >= U32_MAX || e.offset >= U32_MAX;
            let version = if zip64 { VERSION_45 } else { VERSION_20 };
            let mut extra = Vec::new();
            if zip64 {
                le16(&mut extra, 0x0001);
                le16(&mut extra, 24);
                le64(&mut extra, e.uncompressed);
                le64(&mut extra, e.compressed);
                le64(&mut extra, e.offset);
            }
            timestamp_extra(&mut extra, e.mtime);
            le32(&mut buf, CENTRAL_SIG);
            le16(&mut buf, CREATOR_UNIX | version);
            le16(&mut buf, version);
            le16(&mut buf, e.flags);
            le16(&mut buf, e.method);
            le16(&mut buf, e.time);
            le16(&mut buf, e.date);
            le32(&mut buf, e.crc);
            if zip64 {
                le32(&mut buf, u32::MAX);
                le32(&mut buf, u32::MAX);
            } else {
                le32(&mut buf, clamp32(e.compressed));
                le32(&mut buf, clamp32(e.uncompressed));
            }
            le16(&mut buf, name_len(&e.name)?);
            le16(&mut buf, extra.len() as u16);
            le16(&mut buf, 0); // comment
            le16(&mut buf, 0); // disk
            le16(&mut buf, 0); // internal attributes
            le32(&mut buf, e.external);
            le32(&mut buf, if zip64 { u32::MAX } else { clamp32(e.offset) });
            buf.extend_from_slice(&e.name);
            buf.extend_from_slice(&extra);
            if buf.len() >= 1 << 16 {
                let chunk = std::mem::take(&mut buf);
                self.write(&chunk)?;
            }
        }
        self.write(&buf)?;
        let size = self.pos - start;
        let count = entries.len() as u64;
        let mut end = Vec::new();
        if count >= 0xffff || size >= U32_MAX || start >= U32_MAX {
            let end64_at = self.pos;
            le32(&mut end, END64_SIG);
            le64(&mut end, 44);
            le16(&mut end, CREATOR_UNIX | VERSION_45);
            le16(&mut end, VERSION_45);
            le32(&mut end, 0);
            le32(&mut end, 0);
            le64(&mut end, count);
            le64(&mut end, count);
            le64(&mut end, size);
            le64(&mut end, start);
            le32(&mut end, END64_LOCATOR_SIG);
            le32(&mut end, 0);
            le64(&mut end, end64_at);
            le32(&mut end, 1);
        }
        le32(&mut end, END_SIG);
        le16(&mut end, 0);
        le16(&mut end, 0);
        let count16 = u16::try_from(count).unwrap_or(u16::MAX);
        le16(&mut end, count16);
        le16(&mut end, count16);
        le32(&mut end, clamp32(size));
        le32(&mut end, clamp32(start));
        le16(&mut end, 0);
        self.write(&end)
    }
}

fn name_len(name: &[u8]) -> Result<u16> {
    u16::try_from(name.len()).map_err(|_| {
        EngineError::Invalid(format!(
            "path {} is too long for a zip archive",
            String::from_utf8_lossy(name)
        ))
    })
}

impl ArchiveSink for ZipSink<'_> {
    fn add(&mut self, repo: &Repository, path: &[u8], node: &Node) -> Result<()> {
        let name = entry_name(path, node);
        let is_dir = node.node_type == NodeType::Dir;
        let method = if node.node_type == NodeType::File {
            DEFLATE
        } else {
            STORE
        };
        let mut flags = if is_dir { 0 } else { FLAG_DESCRIPTOR };
        if needs_utf8_flag(&name) {
            flags |= FLAG_UTF8;
        }
        let (time, date) = dos_time(&node.mtime);
        // Go stores `uint32(Modified.Unix())`.
        let mtime = node.mtime.unix().0 as u32;
        let offset = self.pos;

        let mut hdr = Vec::with_capacity(30 + name.len() + 9);
        le32(&mut hdr, LOCAL_SIG);
        le16(&mut hdr, VERSION_20);
        le16(&mut hdr, flags);
        le16(&mut hdr, method);
        le16(&mut hdr, time);
        le16(&mut hdr, date);
        le32(&mut hdr, 0); // crc, sizes: in the descriptor
        le32(&mut hdr, 0);
        le32(&mut hdr, 0);
        le16(&mut hdr, name_len(&name)?);
        le16(&mut hdr, 9);
        hdr.extend_from_slice(&name);
        timestamp_extra(&mut hdr, mtime);
        self.write(&hdr)?;

        let mut crc = flate2::Crc::new();
        let mut compressed = 0u64;
        match node.node_type {
            NodeType::File => {
                let mut n = 0u64;
                {
                    let counter = Counter {
                        w: &mut self.w,
                        n: &mut n,
                    };
                    let mut enc =
                        flate2::write::DeflateEncoder::new(counter, flate2::Compression::default());
                    archive_content(repo, node, path, &mut |b| {
                        crc.update(b);
                        enc.write_all(b).map_err(out_err)
                    })?;
                    enc.finish().map_err(out_err)?;
                }
                compressed = n;
                self.pos += n;
            }
            NodeType::Symlink => {
                crc.update(&node.linktarget);
                compressed = node.linktarget.len() as u64;
                let target = node.linktarget.clone();
                self.write(&target)?;
            }
            _ => {}
        }
        let uncompressed = u64::from(crc.amount());
        let uncompressed = match node.node_type {
            // `Crc::amount` is 32-bit; the node size is authoritative for large files.
            NodeType::File => node.size,
            _ => uncompressed,
        };
        let crc = if is_dir { 0 } else { crc.sum() };
        if !is_dir {
            let mut d = Vec::with_capacity(24);
            le32(&mut d, DESCRIPTOR_SIG);
            le32(&mut d, crc);
            if compressed >= U32_MAX || uncompressed >= U32_MAX {
                le64(&mut d, compressed);
                le64(&mut d, uncompressed);
            } else {
                le32(&mut d, clamp32(compressed));
                le32(&mut d, clamp32(uncompressed));
            }
            self.write(&d)?;
        }
        self.entries.push(CentralEntry {
            name,
            flags,
            method,
            time,
            date,
            crc,
            compressed,
            uncompressed,
            offset,
            external: external_attrs(node.mode),
            mtime,
        });
        Ok(())
    }

    fn finish(&mut self) -> Result<()> {
        self.write_central()?;
        self.w.flush().map_err(out_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_repo::gotime::GoTime;

    #[test]
    fn attrs_and_times() {
        assert_eq!(external_attrs(0o644), (0o100_644 << 16));
        assert_eq!(external_attrs(0o444), (0o100_444 << 16) | 1);
        assert_eq!(external_attrs(MODE_DIR | 0o755), (0o040_755 << 16) | 0x10);
        assert_eq!(external_attrs(MODE_SYMLINK | 0o777), 0o120_777 << 16);
        assert_eq!(
            external_attrs(MODE_DEVICE | MODE_CHAR_DEVICE | 0o600),
            0o020_600 << 16
        );
        let t = GoTime::parse("2021-03-04T06:06:07.5+01:00").unwrap();
        let (time, date) = dos_time(&t);
        assert_eq!(date, (41 << 9) | (3 << 5) | 4);
        assert_eq!(time, (6 << 11) | (6 << 5) | 3);
        assert!(needs_utf8_flag("Grüße".as_bytes()));
        assert!(!needs_utf8_flag(b"plain.txt"));
        assert!(!needs_utf8_flag(b"caf\xe9"));
    }
}
