//! dump (raw files, tar and zip archives) on a small repository built by the test.

mod query_common;

use cairn_engine::dump::{self, ArchiveFormat, DumpTarget};
use cairn_repo::Id;
use query_common::*;
use std::collections::BTreeMap;
use std::io::Read;

fn dump_bytes(f: &Fixture, snap: Id, path: &str, format: ArchiveFormat) -> (DumpTarget, Vec<u8>) {
    let mut out = Vec::new();
    let target = dump::dump(&f.b.repo, tree_of(f, snap), path, format, &mut out).unwrap();
    (target, out)
}

#[test]
fn dump_files_and_errors() {
    let f = build();
    let (target, out) = dump_bytes(&f, f.snap1, "/docs/a.txt", ArchiveFormat::Tar);
    assert!(!target.is_archive());
    assert_eq!(out, b"hello\n");
    let (_, out) = dump_bytes(&f, f.snap1, "big.bin", ArchiveFormat::Tar);
    assert_eq!(out, f.big);
    let tree = tree_of(&f, f.snap1);
    for (path, msg) in [
        ("/docs/nope", "not found"),
        ("/link", "should be a file, but is a \"symlink\""),
        ("/fifo", "should be a file"),
        ("/link/x", "should be a dir"),
    ] {
        let e = dump::dump(&f.b.repo, tree, path, ArchiveFormat::Tar, &mut Vec::new()).unwrap_err();
        assert!(e.to_string().contains(msg), "{path}: {e}");
    }
    assert!(
        dump::resolve_dump_path(&f.b.repo, tree, "/")
            .unwrap()
            .is_archive()
    );
}

struct TarEntry {
    name: Vec<u8>,
    kind: tar::EntryType,
    mode: u32,
    uid: u64,
    mtime: u64,
    uname: Vec<u8>,
    link: Option<Vec<u8>>,
    data: Vec<u8>,
    pax: Vec<(String, Vec<u8>)>,
}

fn read_tar(bytes: &[u8]) -> Vec<TarEntry> {
    let mut ar = tar::Archive::new(bytes);
    let mut out = Vec::new();
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let pax: Vec<(String, Vec<u8>)> = match e.pax_extensions().unwrap() {
            Some(it) => it
                .map(|x| {
                    let x = x.unwrap();
                    (x.key().unwrap().to_string(), x.value_bytes().to_vec())
                })
                .collect(),
            None => Vec::new(),
        };
        let h = e.header().clone();
        let name = e.path_bytes().into_owned();
        let link = e.link_name_bytes().map(|l| l.into_owned());
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        out.push(TarEntry {
            name,
            kind: h.entry_type(),
            mode: h.mode().unwrap(),
            uid: h.uid().unwrap(),
            mtime: h.mtime().unwrap(),
            uname: h.username_bytes().unwrap_or_default().to_vec(),
            link,
            data,
            pax,
        });
    }
    out
}

#[test]
fn dump_tar_archives() {
    let f = build();
    let (target, out) = dump_bytes(&f, f.snap1, "/", ArchiveFormat::Tar);
    assert!(target.is_archive());
    assert_eq!(out.len() % 512, 0);
    let entries = read_tar(&out);
    let names: Vec<String> = entries
        .iter()
        .map(|e| String::from_utf8_lossy(&e.name).into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "big.bin",
            "docs/",
            "docs/a.txt",
            "docs/b.md",
            "docs/sub/",
            "docs/sub/c.txt",
            "fifo",
            "link",
            "same/",
            "same/s.txt"
        ]
    );
    let by = |n: &str| entries.iter().find(|e| e.name == n.as_bytes()).unwrap();
    assert_eq!(by("big.bin").data, f.big);
    assert_eq!(by("big.bin").kind, tar::EntryType::Regular);
    assert_eq!(by("big.bin").mode, 0o644);
    assert_eq!(by("big.bin").uid, 1000);
    assert_eq!(by("big.bin").uname, b"alice");
    assert_eq!(by("big.bin").mtime, T0 as u64);
    // a.txt has mtime …07.25 → rounded down; the archive carries no PAX header for it.
    assert_eq!(by("docs/a.txt").mtime, T0 as u64);
    assert!(by("docs/a.txt").pax.is_empty());
    assert_eq!(by("docs/").kind, tar::EntryType::Directory);
    assert_eq!(by("docs/").mode, 0o755);
    assert_eq!(by("fifo").kind, tar::EntryType::Regular);
    assert!(by("fifo").data.is_empty());
    assert_eq!(by("link").kind, tar::EntryType::Symlink);
    assert_eq!(by("link").link.as_deref(), Some(&b"docs/a.txt"[..]));

    // A subdirectory: names stay relative to the snapshot root; the dir itself is no entry.
    let (_, out) = dump_bytes(&f, f.snap1, "/docs", ArchiveFormat::Tar);
    let names: Vec<Vec<u8>> = read_tar(&out).into_iter().map(|e| e.name).collect();
    assert_eq!(
        names,
        [
            &b"docs/a.txt"[..],
            b"docs/b.md",
            b"docs/sub/",
            b"docs/sub/c.txt"
        ]
    );

    // Odd names and metadata need PAX records.
    let (_, out) = dump_bytes(&f, f.snap3, "/odd", ArchiveFormat::Tar);
    let entries = read_tar(&out);
    let long = format!("odd/{}.txt", "L".repeat(120));
    let names: Vec<Vec<u8>> = entries.iter().map(|e| e.name.clone()).collect();
    assert_eq!(
        names,
        [long.as_bytes(), b"odd/caf\xe9.txt", b"odd/ln", b"odd/suid"]
    );
    let by = |n: &[u8]| entries.iter().find(|e| e.name == n).unwrap();
    let e = by(long.as_bytes());
    assert_eq!(e.data, b"long\n");
    let pax: BTreeMap<_, _> = e.pax.iter().cloned().collect();
    assert_eq!(pax["mtime"], b"-1000");
    assert_eq!(pax["uname"], "u".repeat(40).as_bytes());
    let e = by(b"odd/caf\xe9.txt");
    let pax: BTreeMap<_, _> = e.pax.iter().cloned().collect();
    assert_eq!(pax["SCHILY.xattr.user.k"], b"v\x00\xff");
    assert_eq!(pax["uid"], b"3000000");
    assert_eq!(pax["path"], b"odd/caf\xe9.txt");
    let e = by(b"odd/ln");
    assert_eq!(e.link.as_deref(), Some("t".repeat(150).as_bytes()));
    assert_eq!(by(b"odd/suid").mode, 0o4755);
}

#[test]
fn dump_zip_archives() {
    let f = build();
    let (_, out) = dump_bytes(&f, f.snap1, "/", ArchiveFormat::Zip);
    let mut z = zip::ZipArchive::new(std::io::Cursor::new(out)).unwrap();
    let mut names = Vec::new();
    for i in 0..z.len() {
        let mut e = z.by_index(i).unwrap();
        let name = e.name().to_string();
        let mode = e.unix_mode().unwrap();
        let is_dir = e.is_dir();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        match name.as_str() {
            "big.bin" => {
                assert_eq!(data, f.big);
                assert_eq!(mode, 0o100_644);
                assert_eq!(e.compression(), zip::CompressionMethod::Deflated);
                assert!(e.compressed_size() < 6000);
            }
            "docs/a.txt" => assert_eq!(data, b"hello\n"),
            "docs/" => {
                assert!(is_dir);
                assert_eq!(mode, 0o040_755);
            }
            "link" => {
                assert_eq!(mode, 0o120_777);
                assert_eq!(data, b"docs/a.txt");
            }
            "fifo" => {
                assert_eq!(mode, 0o010_644);
                assert!(data.is_empty());
            }
            _ => {}
        }
        names.push(name);
    }
    assert_eq!(
        names,
        [
            "big.bin",
            "docs/",
            "docs/a.txt",
            "docs/b.md",
            "docs/sub/",
            "docs/sub/c.txt",
            "fifo",
            "link",
            "same/",
            "same/s.txt"
        ]
    );
    // Non-ASCII and long names survive; the setuid bit is kept.
    let (_, out) = dump_bytes(&f, f.snap3, "/odd", ArchiveFormat::Zip);
    let mut z = zip::ZipArchive::new(std::io::Cursor::new(out)).unwrap();
    assert_eq!(z.len(), 4);
    let long = format!("odd/{}.txt", "L".repeat(120));
    let mut e = z.by_name(&long).unwrap();
    let mut data = Vec::new();
    e.read_to_end(&mut data).unwrap();
    assert_eq!(data, b"long\n");
    drop(e);
    assert_eq!(z.by_name("odd/suid").unwrap().unix_mode(), Some(0o104_755));
    assert_eq!(z.by_index(1).unwrap().name_raw(), b"odd/caf\xe9.txt");
}
