//! Golden tests: parse every pack of the restic 0.14 fixture repositories and open every blob.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use cairn_repo::backend::{Backend, BackendError, FileType};
use cairn_repo::crypto::MasterKey;
use cairn_repo::index::{Index, IndexFile};
use cairn_repo::pack::{self, PackBlob, PackTail};
use cairn_repo::{BlobType, Id};
use proptest::prelude::*;
use serde::Deserialize;

fn fixtures() -> PathBuf {
    let p = std::env::var_os("CAIRN_FIXTURES").map_or_else(
        || {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../../shared/fixtures"
            ))
        },
        PathBuf::from,
    );
    assert!(p.join("README.md").exists(), "fixtures not found at {p:?}");
    p
}

/// The extracted fixture repositories (extracted once per test binary).
fn extracted() -> &'static Path {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        for repo in ["repo-v1", "repo-v2"] {
            let f =
                fs::File::open(fixtures().join(format!("restic-0.14.0-{repo}.tar.gz"))).unwrap();
            tar::Archive::new(flate2::read::GzDecoder::new(f))
                .unpack(dir.path())
                .unwrap();
        }
        dir
    })
    .path()
}

/// Read-only backend over an extracted repository that counts range reads.
#[derive(Debug)]
struct DirBackend {
    root: PathBuf,
    range_reads: AtomicUsize,
    last_ranges: Mutex<Vec<(u64, u64)>>,
}

impl DirBackend {
    fn new(root: PathBuf) -> DirBackend {
        DirBackend {
            root,
            range_reads: AtomicUsize::new(0),
            last_ranges: Mutex::new(Vec::new()),
        }
    }

    fn path(&self, t: FileType, name: &str) -> PathBuf {
        match t {
            FileType::Config => self.root.join("config"),
            FileType::Pack => self.root.join("data").join(&name[..2]).join(name),
            t => self.root.join(t.dir()).join(name),
        }
    }
}

fn io(path: &Path, e: std::io::Error) -> BackendError {
    BackendError::Io {
        path: path.display().to_string(),
        source: e,
    }
}

impl Backend for DirBackend {
    fn location(&self) -> String {
        self.root.display().to_string()
    }
    fn create(&self) -> Result<(), BackendError> {
        Err(BackendError::Other("read-only".into()))
    }
    fn list(&self, t: FileType) -> Result<Vec<(String, u64)>, BackendError> {
        let mut out = Vec::new();
        let dir = self.root.join(t.dir());
        let dirs: Vec<PathBuf> = if t == FileType::Pack {
            fs::read_dir(&dir)
                .map_err(|e| io(&dir, e))?
                .map(|e| e.unwrap().path())
                .collect()
        } else {
            vec![dir]
        };
        for d in dirs {
            for e in fs::read_dir(&d).map_err(|e| io(&d, e))? {
                let e = e.unwrap();
                out.push((
                    e.file_name().into_string().unwrap(),
                    e.metadata().unwrap().len(),
                ));
            }
        }
        Ok(out)
    }
    fn read(&self, t: FileType, name: &str) -> Result<Vec<u8>, BackendError> {
        let p = self.path(t, name);
        fs::read(&p).map_err(|e| io(&p, e))
    }
    fn read_range(
        &self,
        t: FileType,
        name: &str,
        offset: u64,
        len: u64,
    ) -> Result<Vec<u8>, BackendError> {
        self.range_reads.fetch_add(1, Ordering::SeqCst);
        self.last_ranges.lock().unwrap().push((offset, len));
        let all = self.read(t, name)?;
        all.get(offset as usize..(offset + len) as usize)
            .map(<[u8]>::to_vec)
            .ok_or_else(|| BackendError::Other(format!("short read of {name}")))
    }
    fn stat(&self, t: FileType, name: &str) -> Result<u64, BackendError> {
        let p = self.path(t, name);
        Ok(fs::metadata(&p).map_err(|e| io(&p, e))?.len())
    }
    fn write(&self, _: FileType, _: &str, _: &[u8]) -> Result<(), BackendError> {
        Err(BackendError::Other("read-only".into()))
    }
    fn remove(&self, _: FileType, _: &str) -> Result<(), BackendError> {
        Err(BackendError::Other("read-only".into()))
    }
}

#[derive(Deserialize)]
struct ExpectedPack {
    pack: Id,
    size: u64,
    header_length: u32,
    blobs: Vec<ExpectedBlob>,
}

#[derive(Deserialize)]
struct ExpectedBlob {
    header_type_byte: u8,
    offset: u32,
    length: u32,
    uncompressed_length: Option<u32>,
    id: Id,
}

fn expected_dir(repo: &str) -> PathBuf {
    fixtures().join("expected").join(repo)
}

fn master_key(repo: &str) -> MasterKey {
    let raw = fs::read(expected_dir(repo).join("masterkey.plain.json")).unwrap();
    MasterKey::from_json(&raw).unwrap()
}

fn expected_packs(repo: &str) -> Vec<ExpectedPack> {
    let raw = fs::read(expected_dir(repo).join("pack-headers.json")).unwrap();
    serde_json::from_slice(&raw).unwrap()
}

fn backend(repo: &str) -> DirBackend {
    DirBackend::new(extracted().join(repo))
}

fn version(repo: &str) -> u32 {
    if repo == "repo-v1" { 1 } else { 2 }
}

#[test]
fn every_pack_header_matches_and_every_blob_opens() {
    for repo in ["repo-v1", "repo-v2"] {
        let key = master_key(repo);
        let be = backend(repo);
        let expected = expected_packs(repo);
        let listed = be.list(FileType::Pack).unwrap();
        assert_eq!(listed.len(), expected.len(), "{repo}");

        let mut index = Index::new();
        for f in fs::read_dir(expected_dir(repo).join("index")).unwrap() {
            let raw = fs::read(f.unwrap().path()).unwrap();
            index.add_index_file(&IndexFile::from_json(&raw).unwrap());
        }

        let mut trees = 0;
        for (name, size) in listed {
            let exp = expected.iter().find(|p| p.pack.to_hex() == name).unwrap();
            assert_eq!(exp.size, size);
            let before = be.range_reads.load(Ordering::SeqCst);
            let blobs = pack::read_pack_header(&be, &key, &name, size, version(repo)).unwrap();
            let reads = be.range_reads.load(Ordering::SeqCst) - before;
            // One read when the header fits in the eager tail, two otherwise.
            let want_reads = if u64::from(exp.header_length) + 4 <= pack::EAGER_TAIL_SIZE {
                1
            } else {
                2
            };
            assert_eq!(reads, want_reads, "{repo} pack {name}");

            let got: Vec<(u8, u32, u32, Option<u32>, Id)> = blobs
                .iter()
                .map(|b| {
                    (
                        b.type_byte(),
                        b.offset,
                        b.length,
                        b.uncompressed_length,
                        b.id,
                    )
                })
                .collect();
            let want: Vec<(u8, u32, u32, Option<u32>, Id)> = exp
                .blobs
                .iter()
                .map(|b| {
                    // The dump writes 0 for uncompressed entries.
                    let ul = b.uncompressed_length.filter(|&n| n != 0);
                    (b.header_type_byte, b.offset, b.length, ul, b.id)
                })
                .collect();
            assert_eq!(got, want, "{repo} pack {name}");

            let bytes = be.read(FileType::Pack, &name).unwrap();
            assert_eq!(Id::hash(&bytes), exp.pack, "pack id = SHA-256 of the file");
            let trailer = u32::from_le_bytes(bytes[bytes.len() - 4..].try_into().unwrap());
            assert_eq!(trailer, exp.header_length);
            assert_eq!(
                pack::parse_pack(&key, &bytes, &name, version(repo)).unwrap(),
                blobs
            );

            let index_blobs = &index.packs()[&exp.pack];
            assert_eq!(
                index_blobs, &blobs,
                "index agrees with the header of {name}"
            );

            for b in &blobs {
                let raw = &bytes[b.offset as usize..b.end() as usize];
                let plain = pack::read_blob(&key, raw, b).unwrap();
                assert_eq!(Id::hash(&plain), b.id);
                assert_eq!(pack::read_blob_owned(&key, raw.to_vec(), b).unwrap(), plain);
                if let Some(n) = b.uncompressed_length {
                    assert_eq!(plain.len(), n as usize);
                }
                if b.blob_type == BlobType::Tree {
                    let path = expected_dir(repo)
                        .join("trees")
                        .join(format!("{}.plain.json", b.id));
                    assert_eq!(plain, fs::read(path).unwrap(), "tree {}", b.id);
                    trees += 1;
                }
            }
        }
        assert_eq!(trees, 15, "{repo}");
    }
}

#[test]
fn spec_6_3_worked_example() {
    let key = master_key("repo-v2");
    let name = "9d9b99898b474058568608b8be8e35f39b28d389018962eee12ae98be74de9bf";
    let bytes = backend("repo-v2").read(FileType::Pack, name).unwrap();
    assert_eq!(bytes.len(), 156);
    assert_eq!(&bytes[152..], &[0x49, 0, 0, 0]);
    assert_eq!(
        hex::encode(&bytes[..16]),
        "4c3d9cb5f9fd7d681adcb72ec08200dc"
    );
    let header = key.open(&bytes[79..152]).unwrap();
    assert_eq!(
        hex::encode(&header),
        "024f00000026000000b25f7a6bf015a24883b974bcae9522a547707425e7ee5fa7ed6c0938b660836b"
    );
    let blobs = pack::decode_header(&header).unwrap();
    assert_eq!(
        blobs,
        vec![PackBlob {
            blob_type: BlobType::Data,
            id: "b25f7a6bf015a24883b974bcae9522a547707425e7ee5fa7ed6c0938b660836b"
                .parse()
                .unwrap(),
            offset: 0,
            length: 79,
            uncompressed_length: Some(38),
        }]
    );
    let frame = key.open(&bytes[..79]).unwrap();
    assert_eq!(frame.len(), 47);
    assert_eq!(hex::encode(&frame[..8]), "28b52ffd00003101");
    let plain = pack::read_blob(&key, &bytes[..79], &blobs[0]).unwrap();
    assert_eq!(plain, b"hello restic, modified for snapshot 2\n");

    // The same blob in repo-v1 (spec §2.3) is stored uncompressed.
    let key1 = master_key("repo-v1");
    let name1 = "49a598334221ca0052bffa8f429520455b95764519e0d893930d50d4de314bcd";
    let be1 = backend("repo-v1");
    let b1 = pack::read_pack_header(&be1, &key1, name1, 143, 1).unwrap();
    assert_eq!(b1[0].id, blobs[0].id);
    assert_eq!((b1[0].length, b1[0].uncompressed_length), (70, None));
    let raw = be1.read_range(FileType::Pack, name1, 0, 70).unwrap();
    assert_eq!(pack::read_blob(&key1, &raw, &b1[0]).unwrap(), plain);
}

const TREE_PACK_V2: &str = "683e62863fe090f44e2b0eaed705d6a68dffb302dca06e08faa2a968f707f4db";

fn tree_pack() -> (MasterKey, Vec<u8>) {
    let bytes = backend("repo-v2")
        .read(FileType::Pack, TREE_PACK_V2)
        .unwrap();
    (master_key("repo-v2"), bytes)
}

#[test]
fn damaged_packs_are_reported() {
    let (key, bytes) = tree_pack();
    let n = bytes.len();
    let name = TREE_PACK_V2;
    let err = |b: &[u8]| pack::parse_pack(&key, b, name, 2).unwrap_err().to_string();

    // Flipped byte in the sealed header (authentication fails).
    let mut b = bytes.clone();
    b[n - 100] ^= 0x01;
    let e = err(&b);
    assert!(e.contains(name) && e.contains("header"), "{e}");

    // Truncated pack (first or last bytes missing): error naming the pack.
    for cut in [1, 4, 100, 483, 487, 4000] {
        let e = err(&bytes[..n - cut]);
        assert!(e.contains(name), "{e}");
        let e = err(&bytes[cut..]);
        assert!(e.contains(name), "{e}");
    }

    // Header length larger than the file / than 16 MiB.
    for (hlen, want) in [
        (n as u32, "larger than the file"),
        (pack::MAX_HEADER_SIZE + 1, "larger than the file"),
        (0, "zero"),
    ] {
        let mut b = bytes.clone();
        b[n - 4..].copy_from_slice(&hlen.to_le_bytes());
        let e = err(&b);
        assert!(e.contains(want), "{e}");
    }

    // A compressed pack in a v1 repository.
    let e = pack::parse_pack(&key, &bytes, name, 1)
        .unwrap_err()
        .to_string();
    assert!(e.contains("version 1"), "{e}");

    // Wrong key.
    let e = pack::parse_pack(&master_key("repo-v1"), &bytes, name, 2)
        .unwrap_err()
        .to_string();
    assert!(e.contains(name), "{e}");

    // Backend: the file is shorter than its listed size.
    let be = backend("repo-v2");
    assert!(pack::read_pack_header(&be, &key, name, n as u64 + 10, 2).is_err());
    assert!(pack::read_pack_header(&be, &key, name, 20, 2).is_err());

    // parse_pack_tail asks for more when given too little.
    let tail = &bytes[n - 100..];
    assert_eq!(
        pack::parse_pack_tail(&key, tail, n as u64, name, 2).unwrap(),
        PackTail::NeedTail(487)
    );
}

#[test]
fn damaged_blob_is_reported_with_its_id() {
    let (key, bytes) = tree_pack();
    let blobs = pack::parse_pack(&key, &bytes, TREE_PACK_V2, 2).unwrap();
    let b = blobs[3];
    let mut raw = bytes[b.offset as usize..b.end() as usize].to_vec();
    raw[40] ^= 0xff;
    let e = pack::read_blob(&key, &raw, &b).unwrap_err().to_string();
    assert!(e.contains(&b.id.to_hex()) && e.contains("tree"), "{e}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn random_damage_never_panics(
        start in 0usize..5000,
        end in 0usize..5000,
        flips in proptest::collection::vec((any::<prop::sample::Index>(), 1u8..), 0..3),
        hlen in proptest::option::of(any::<u32>()),
        junk in proptest::collection::vec(any::<u8>(), 0..1000),
    ) {
        let (key, bytes) = tree_pack();
        let (a, b) = (start.min(end).min(bytes.len()), start.max(end).min(bytes.len()));
        let mut p = bytes[a..b].to_vec();
        for (i, x) in flips {
            if !p.is_empty() {
                let i = i.index(p.len());
                p[i] ^= x;
            }
        }
        if let (Some(h), true) = (hlen, p.len() >= 4) {
            let n = p.len();
            p[n - 4..].copy_from_slice(&h.to_le_bytes());
        }
        let damaged = a != 0 || b != bytes.len() || p != bytes;
        let r = pack::parse_pack(&key, &p, "x", 2);
        if !damaged {
            prop_assert!(r.is_ok());
        }
        if let Ok(blobs) = r {
            for blob in blobs {
                if let Some(raw) = p.get(blob.offset as usize..blob.end() as usize) {
                    let _ = pack::read_blob(&key, raw, &blob);
                }
            }
        }
        let _ = pack::parse_pack(&key, &junk, "x", 2);
        let _ = pack::decode_header(&junk);
        for t in [0usize, 3, 4, 100, 651] {
            let t = t.min(p.len());
            let _ = pack::parse_pack_tail(&key, &p[p.len() - t..], p.len() as u64, "x", 2);
        }
    }
}
