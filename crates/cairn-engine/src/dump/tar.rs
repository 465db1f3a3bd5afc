//! Streaming tar writer for `dump --archive tar`, following restic's `dumpNodeTar` and Go's
//! `archive/tar` format choice: a ustar header per entry, preceded by a PAX extended header
//! when a field does not fit ustar (long or non-ASCII names and link targets, long or
//! non-ASCII user/group names, large ids/sizes, times before 1970) or when the node has
//! extended attributes (`SCHILY.xattr.*`, POSIX ACLs as `SCHILY.acl.*`). The mtime is
//! rounded to whole seconds and atime/ctime are not stored (what Go does when no format is
//! requested).

use super::{ArchiveSink, archive_content, entry_name, indexed_size, out_err, round_secs};
use crate::Result;
use cairn_repo::node::{Node, NodeType, unix_perm_from_go};
use cairn_repo::repository::Repository;
use std::io::Write;

const BLOCK: usize = 512;
/// Largest value of an 8-byte octal field (uid, gid).
const MAX_OCTAL_8: u64 = 0o7_777_777;
/// Largest value of a 12-byte octal field (size, mtime).
const MAX_OCTAL_12: u64 = 0o77_777_777_777;

pub(super) struct TarSink<'w> {
    w: &'w mut dyn Write,
}

impl<'w> TarSink<'w> {
    pub(super) fn new(w: &'w mut dyn Write) -> Self {
        TarSink { w }
    }

    fn write(&mut self, b: &[u8]) -> Result<()> {
        self.w.write_all(b).map_err(out_err)
    }

    fn pad(&mut self, len: u64) -> Result<()> {
        let rem = (len % BLOCK as u64) as usize;
        if rem != 0 {
            let zeros = [0u8; BLOCK];
            self.write(zeros.get(rem..).unwrap_or_default())?;
        }
        Ok(())
    }
}

fn is_ascii(b: &[u8]) -> bool {
    b.iter().all(|c| *c != 0 && *c < 0x80)
}

/// Go's `splitUSTARPath`: splits a long ASCII name into (prefix ≤ 155, name ≤ 100) at a `/`.
fn split_ustar(name: &[u8]) -> Option<(&[u8], &[u8])> {
    if name.len() <= 100 || !is_ascii(name) {
        return None;
    }
    let mut length = name.len();
    if length > 156 {
        length = 156;
    } else if name.get(length - 1) == Some(&b'/') {
        length -= 1;
    }
    let i = name.get(..length)?.iter().rposition(|c| *c == b'/')?;
    let suffix = name.get(i + 1..)?;
    if i == 0 || suffix.len() > 100 || suffix.is_empty() || i > 155 {
        return None;
    }
    Some((name.get(..i)?, suffix))
}

/// Copies `src` into a fixed-size header field (truncating).
fn put(dst: &mut [u8], src: &[u8]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d = *s;
    }
}

/// One PAX record `"<len> key=value\n"` (the length counts the whole record).
fn pax_record(out: &mut Vec<u8>, key: &str, value: &[u8]) {
    let rest = 1 + key.len() + 1 + value.len() + 1;
    let mut len = rest + 1;
    while len.to_string().len() + rest != len {
        len = len.to_string().len() + rest;
    }
    out.extend_from_slice(len.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(key.as_bytes());
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
}

const ACL_READ: u16 = 4;
const ACL_WRITE: u16 = 2;
const ACL_EXECUTE: u16 = 1;

/// Linux binary POSIX ACL (xattr `system.posix_acl_*`, version 2) to the long text form
/// restic puts into `SCHILY.acl.*` (ids in decimal). `None` for unparsable data.
fn linux_acl_text(acl: &[u8]) -> Option<String> {
    let (version, entries) = acl.split_first_chunk::<4>()?;
    if u32::from_le_bytes(*version) != 2 || entries.len() % 8 != 0 {
        return None;
    }
    let mut text = String::new();
    for e in entries.chunks_exact(8) {
        let (tag, rest) = e.split_first_chunk::<2>()?;
        let (perm, rest) = rest.split_first_chunk::<2>()?;
        let id = u32::from_le_bytes(*rest.first_chunk::<4>()?);
        let perm = u16::from_le_bytes(*perm);
        match u16::from_le_bytes(*tag) {
            0x01 => text.push_str("user:"),
            0x02 => text.push_str(&format!("user:{id}")),
            0x04 => text.push_str("group:"),
            0x08 => text.push_str(&format!("group:{id}")),
            0x10 => text.push_str("mask:"),
            0x20 => text.push_str("other:"),
            _ => return None,
        }
        text.push(':');
        text.push(if perm & ACL_READ != 0 { 'r' } else { '-' });
        text.push(if perm & ACL_WRITE != 0 { 'w' } else { '-' });
        text.push(if perm & ACL_EXECUTE != 0 { 'x' } else { '-' });
        text.push('\n');
    }
    Some(text)
}

/// PAX records for extended attributes (restic's `parseXattrs`), sorted by key.
fn xattr_records(node: &Node) -> Vec<(String, Vec<u8>)> {
    let mut recs = Vec::new();
    for x in &node.extended_attributes {
        let acl_key = match x.name.as_str() {
            "system.posix_acl_access" => Some("SCHILY.acl.access"),
            "system.posix_acl_default" => Some("SCHILY.acl.default"),
            _ => None,
        };
        match acl_key {
            Some(k) => {
                if let Some(text) = linux_acl_text(&x.value) {
                    recs.push((k.to_string(), text.into_bytes()));
                }
            }
            None => recs.push((format!("SCHILY.xattr.{}", x.name), x.value.clone())),
        }
    }
    recs
}

fn new_header() -> ::tar::Header {
    ::tar::Header::new_ustar()
}

impl TarSink<'_> {
    fn write_pax(&mut self, name: &[u8], mut records: Vec<(String, Vec<u8>)>) -> Result<()> {
        records.sort_by(|a, b| a.0.cmp(&b.0));
        records.dedup_by(|a, b| a.0 == b.0);
        let mut data = Vec::new();
        for (k, v) in &records {
            pax_record(&mut data, k, v);
        }
        // Go names the extended header `<dir>/PaxHeaders.0/<base>`; only the ASCII part of
        // the base name is kept here.
        let base = name
            .strip_suffix(b"/")
            .unwrap_or(name)
            .rsplit(|c| *c == b'/')
            .next()
            .unwrap_or_default();
        let mut pax_name = b"PaxHeaders.0/".to_vec();
        pax_name.extend(base.iter().filter(|c| c.is_ascii_graphic()).take(80));
        let mut h = new_header();
        if let Some(u) = h.as_ustar_mut() {
            put(&mut u.name, &pax_name);
        }
        h.set_entry_type(::tar::EntryType::XHeader);
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        h.set_mtime(0);
        h.set_cksum();
        self.write(h.as_bytes())?;
        self.write(&data)?;
        self.pad(data.len() as u64)
    }
}

impl ArchiveSink for TarSink<'_> {
    fn add(&mut self, repo: &Repository, path: &[u8], node: &Node) -> Result<()> {
        let name = entry_name(path, node);
        let is_file = node.node_type == NodeType::File;
        let size = if is_file {
            let indexed = indexed_size(repo, node, path)?;
            if indexed != node.size {
                return Err(super::size_mismatch(path, indexed, node.size));
            }
            node.size
        } else {
            0
        };
        let mut pax = xattr_records(node);
        let mut h = new_header();
        h.set_entry_type(match node.node_type {
            NodeType::Dir => ::tar::EntryType::Directory,
            NodeType::Symlink => ::tar::EntryType::Symlink,
            _ => ::tar::EntryType::Regular,
        });
        h.set_mode(unix_perm_from_go(node.mode));
        let uid = u64::from(node.uid);
        let gid = u64::from(node.gid);
        if uid <= MAX_OCTAL_8 {
            h.set_uid(uid);
        } else {
            h.set_uid(0);
            pax.push(("uid".into(), uid.to_string().into_bytes()));
        }
        if gid <= MAX_OCTAL_8 {
            h.set_gid(gid);
        } else {
            h.set_gid(0);
            pax.push(("gid".into(), gid.to_string().into_bytes()));
        }
        if size <= MAX_OCTAL_12 {
            h.set_size(size);
        } else {
            h.set_size(0);
            pax.push(("size".into(), size.to_string().into_bytes()));
        }
        let mtime = round_secs(&node.mtime);
        match u64::try_from(mtime) {
            Ok(m) if m <= MAX_OCTAL_12 => h.set_mtime(m),
            _ => {
                h.set_mtime(0);
                pax.push(("mtime".into(), mtime.to_string().into_bytes()));
            }
        }
        if let Some(u) = h.as_ustar_mut() {
            if is_ascii(&name) && name.len() <= 100 {
                put(&mut u.name, &name);
            } else if let Some((prefix, suffix)) = split_ustar(&name) {
                put(&mut u.prefix, prefix);
                put(&mut u.name, suffix);
            } else {
                let ascii: Vec<u8> = name.iter().copied().filter(u8::is_ascii).collect();
                put(&mut u.name, &ascii);
                pax.push(("path".into(), name.clone()));
            }
            if node.node_type == NodeType::Symlink {
                if is_ascii(&node.linktarget) && node.linktarget.len() <= 100 {
                    put(&mut u.linkname, &node.linktarget);
                } else {
                    pax.push(("linkpath".into(), node.linktarget.clone()));
                }
            }
            for (field, value, key) in [
                (&mut u.uname, node.user.as_bytes(), "uname"),
                (&mut u.gname, node.group.as_bytes(), "gname"),
            ] {
                if is_ascii(value) && value.len() <= 32 {
                    put(field, value);
                } else {
                    pax.push((key.into(), value.to_vec()));
                }
            }
        }
        h.set_cksum();
        if !pax.is_empty() {
            self.write_pax(&name, pax)?;
        }
        self.write(h.as_bytes())?;
        if is_file {
            let mut sink = |b: &[u8]| self.w.write_all(b).map_err(out_err);
            archive_content(repo, node, path, &mut sink)?;
            self.pad(size)?;
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<()> {
        self.write(&[0u8; 2 * BLOCK])?;
        self.w.flush().map_err(out_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_lengths() {
        let mut out = Vec::new();
        pax_record(&mut out, "path", b"a");
        assert_eq!(out, b"9 path=a\n");
        let mut out = Vec::new();
        // 1+4+1+92+1 = 99 → needs 3 digits (102).
        pax_record(&mut out, "path", &[b'x'; 92]);
        assert_eq!(out.len(), 102);
        assert!(out.starts_with(b"102 path="));
        // 98 bytes without the length: "100 " would make 101, so the length is 101.
        let mut out = Vec::new();
        pax_record(&mut out, "path", &[b'x'; 91]);
        assert_eq!(out.len(), 101);
        assert!(out.starts_with(b"101 path="));
        let mut out = Vec::new();
        pax_record(&mut out, "path", &[b'x'; 90]);
        assert_eq!(out.len(), 99);
        assert!(out.starts_with(b"99 path="));
    }

    #[test]
    fn ustar_split() {
        let long = format!("{}/{}", "a".repeat(60), "b".repeat(60));
        let (p, n) = split_ustar(long.as_bytes()).unwrap();
        assert_eq!(p, "a".repeat(60).as_bytes());
        assert_eq!(n, "b".repeat(60).as_bytes());
        assert!(split_ustar(b"short").is_none());
        assert!(split_ustar("x".repeat(150).as_bytes()).is_none());
        assert!(split_ustar(format!("{}/é", "a".repeat(120)).as_bytes()).is_none());
    }

    #[test]
    fn acl_text() {
        let mut acl = 2u32.to_le_bytes().to_vec();
        for (tag, perm, id) in [
            (1u16, 7u16, 0u32),
            (2, 5, 1000),
            (4, 4, 0),
            (0x10, 7, 0),
            (0x20, 0, 0),
        ] {
            acl.extend(tag.to_le_bytes());
            acl.extend(perm.to_le_bytes());
            acl.extend(id.to_le_bytes());
        }
        assert_eq!(
            linux_acl_text(&acl).unwrap(),
            "user::rwx\nuser:1000:r-x\ngroup::r--\nmask::rwx\nother::---\n"
        );
        assert!(linux_acl_text(&acl[..7]).is_none());
        assert!(linux_acl_text(&[1, 0, 0, 0]).is_none());
    }
}
