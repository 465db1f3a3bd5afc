//! Tests of the in-memory [`Index`].

use std::collections::{BTreeSet, HashMap};

use proptest::prelude::*;

use super::*;
use crate::pack::PackBlob;
use crate::{BlobType, Id};

fn pb(t: BlobType, id: Id, offset: u32, length: u32, ul: Option<u32>) -> PackBlob {
    PackBlob {
        blob_type: t,
        id,
        offset,
        length,
        uncompressed_length: ul,
    }
}

fn id(n: u64) -> Id {
    Id::hash(&n.to_le_bytes())
}

#[test]
fn add_get_and_duplicates() {
    let mut idx = Index::new();
    assert!(idx.is_empty());
    let (p1, p2) = (id(1001), id(1002));
    let a = pb(BlobType::Data, id(1), 0, 100, Some(200));
    let b = pb(BlobType::Tree, id(2), 100, 50, None);
    idx.add_pack(p1, &[a, b]);
    assert_eq!(idx.len(), 2);
    assert_eq!(
        idx.get(BlobType::Data, &id(1)),
        Some(BlobLocation {
            pack_id: p1,
            offset: 0,
            length: 100,
            uncompressed_length: Some(200)
        })
    );
    assert!(idx.contains(BlobType::Tree, &id(2)));
    // Keyed by type: the tree id is not a data blob.
    assert!(!idx.contains(BlobType::Data, &id(2)));
    assert_eq!(idx.get(BlobType::Data, &id(3)), None);

    // Same pack again (overlapping index files): exact duplicates are merged.
    idx.add_pack(p1, &[a, b]);
    idx.add_pack(p1, &[a]);
    assert_eq!(idx.len(), 2);
    assert_eq!(idx.pack_count(), 1);

    // Same blob in a second pack: two locations.
    idx.add_pack(p2, &[pb(BlobType::Data, id(1), 0, 90, None)]);
    assert_eq!(idx.len(), 3);
    let all = idx.get_all(BlobType::Data, &id(1));
    assert_eq!(all.len(), 2);
    assert!(
        all.iter()
            .any(|l| l.pack_id == p2 && l.uncompressed_length.is_none())
    );
    assert_eq!(idx.pack_ids().copied().collect::<Vec<_>>(), vec![p1, p2]);
    assert!(idx.has_pack(&p2) && !idx.has_pack(&id(1)));

    let packs = idx.packs();
    assert_eq!(packs[&p1], vec![a, b]);
    assert_eq!(packs[&p2].len(), 1);

    let only_p2 = idx.filter_packs(|p| *p == p2);
    assert_eq!((only_p2.len(), only_p2.pack_count()), (1, 1));
    assert!(!only_p2.contains(BlobType::Tree, &id(2)));
    // Uncompressed length 0 means uncompressed.
    idx.add_pack(id(1003), &[pb(BlobType::Data, id(4), 0, 40, Some(0))]);
    assert_eq!(
        idx.get(BlobType::Data, &id(4)).unwrap().uncompressed_length,
        None
    );
    // An empty pack is still a known pack.
    idx.add_pack(id(1004), &[]);
    assert_eq!(idx.pack_count(), 4);
    assert!(idx.packs()[&id(1004)].is_empty());
}

#[test]
fn ids_differing_only_in_first_byte_survive_merges() {
    let mut idx = Index::new();
    let mut ids = Vec::new();
    for i in 0..=255u8 {
        let mut raw = [7u8; 32];
        raw[0] = i;
        ids.push(Id(raw));
    }
    // Identical stored records in every bucket, spread over many runs.
    for (n, chunk) in ids.chunks(64).enumerate() {
        let blobs: Vec<_> = chunk
            .iter()
            .map(|i| pb(BlobType::Data, *i, 0, 40, None))
            .collect();
        idx.add_pack(id(n as u64), &blobs);
    }
    idx.compact();
    assert_eq!(idx.len(), 256);
    for i in &ids {
        assert!(idx.contains(BlobType::Data, i));
    }
}

fn fixtures() -> std::path::PathBuf {
    let p = std::env::var_os("CAIRN_FIXTURES").map_or_else(
        || {
            std::path::PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../../shared/fixtures"
            ))
        },
        std::path::PathBuf::from,
    );
    assert!(p.join("README.md").exists(), "fixtures not found at {p:?}");
    p
}

#[test]
fn golden_index_files_load() {
    // (repo, packs, data entries, tree entries) per the fixture README and headers.
    for (repo, packs, data, tree) in [("repo-v1", 4, 17, 15), ("repo-v2", 4, 18, 15)] {
        let dir = fixtures().join("expected").join(repo).join("index");
        let mut files = Vec::new();
        for e in std::fs::read_dir(dir).unwrap() {
            let raw = std::fs::read(e.unwrap().path()).unwrap();
            files.push(IndexFile::from_json(&raw).unwrap());
        }
        let mut idx = Index::new();
        idx.add_index_files(&files);
        // Loading the same files again changes nothing.
        idx.add_index_file(&files[0]);
        assert_eq!(idx.pack_count(), packs, "{repo}");
        assert_eq!(idx.count(BlobType::Data), data, "{repo}");
        assert_eq!(idx.count(BlobType::Tree), tree, "{repo}");
        for f in &files {
            for p in &f.packs {
                for b in &p.blobs {
                    let loc = idx.get(b.blob_type, &b.id).unwrap();
                    assert_eq!(loc.to_pack_blob(b.blob_type, b.id), b.to_pack_blob());
                    assert_eq!(loc.pack_id, p.id);
                }
            }
        }
        let hello: Id = "b25f7a6bf015a24883b974bcae9522a547707425e7ee5fa7ed6c0938b660836b"
            .parse()
            .unwrap();
        assert!(idx.contains(BlobType::Data, &hello));
    }
}

/// Builds an index of `n` random blobs in packs of `per_pack`, returns (bytes/blob, index).
fn build_big(n: u64, per_pack: u64) -> (f64, Index) {
    let mut idx = Index::new();
    let mut blobs = Vec::with_capacity(per_pack as usize);
    let mut i = 0;
    while i < n {
        blobs.clear();
        let mut off = 0;
        for _ in 0..per_pack.min(n - i) {
            let t = if i % 5 == 0 {
                BlobType::Tree
            } else {
                BlobType::Data
            };
            blobs.push(pb(t, id(i), off, 1000, Some(3000)));
            off += 1000;
            i += 1;
        }
        idx.add_pack(id(u64::MAX - i), &blobs);
    }
    (idx.heap_bytes() as f64 / n as f64, idx)
}

#[test]
fn memory_per_blob_one_million() {
    let n = 1_000_000;
    let t0 = std::time::Instant::now();
    let (per_blob, mut idx) = build_big(n, 64);
    eprintln!("built in {:?}", t0.elapsed());
    let ids: Vec<Id> = (0..n).map(id).collect();
    let t0 = std::time::Instant::now();
    let found = ids
        .iter()
        .enumerate()
        .filter(|(i, x)| {
            let t = if i % 5 == 0 {
                BlobType::Tree
            } else {
                BlobType::Data
            };
            idx.contains(t, x)
        })
        .count();
    eprintln!("{n} lookups in {:?}", t0.elapsed());
    assert_eq!(found, n as usize);
    assert_eq!(idx.len(), n as usize);
    for i in (0..n).step_by(997) {
        let t = if i % 5 == 0 {
            BlobType::Tree
        } else {
            BlobType::Data
        };
        assert!(idx.get(t, &id(i)).is_some(), "{i}");
    }
    assert!(!idx.contains(BlobType::Data, &id(n + 1)));
    eprintln!("1M blobs, 64 blobs/pack: {per_blob:.2} bytes/blob");
    assert!(per_blob <= 48.0, "{per_blob} bytes per blob");
    idx.compact();
    let compacted = idx.heap_bytes() as f64 / n as f64;
    eprintln!("after compact: {compacted:.2} bytes/blob");
    assert!(compacted <= per_blob);
    let t0 = std::time::Instant::now();
    let found = ids
        .iter()
        .enumerate()
        .filter(|(i, x)| {
            let t = if i % 5 == 0 {
                BlobType::Tree
            } else {
                BlobType::Data
            };
            idx.contains(t, x)
        })
        .count();
    eprintln!("{n} lookups after compact in {:?}", t0.elapsed());
    assert_eq!(found, n as usize);
}

#[test]
fn memory_per_blob_small_packs() {
    // Large data chunks: 16 blobs per pack, so the pack table weighs more.
    let (per_blob, _) = build_big(200_000, 16);
    eprintln!("200k blobs, 16 blobs/pack: {per_blob:.2} bytes/blob");
    assert!(per_blob <= 50.5, "{per_blob} bytes per blob");
}

type Model = HashMap<(BlobType, Id), BTreeSet<(Id, u32, u32, Option<u32>)>>;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn get_returns_what_was_added(
        ops in proptest::collection::vec(
            (0u64..12, proptest::collection::vec((any::<bool>(), 0u64..300, 0u32..4, proptest::option::of(1u32..5)), 0..120), 0u64..300),
            1..40,
        )
    ) {
        let mut idx = Index::new();
        let mut model: Model = HashMap::new();
        for (pack, blobs, probe) in ops {
            let pack_id = id(10_000 + pack);
            let blobs: Vec<PackBlob> = blobs
                .into_iter()
                .map(|(tree, b, off, ul)| {
                    let t = if tree { BlobType::Tree } else { BlobType::Data };
                    pb(t, id(b), off * 100, 50, ul)
                })
                .collect();
            idx.add_pack(pack_id, &blobs);
            for b in &blobs {
                model.entry((b.blob_type, b.id)).or_default().insert((
                    pack_id, b.offset, b.length, b.uncompressed_length,
                ));
            }
            for t in [BlobType::Data, BlobType::Tree] {
                let want = model.get(&(t, id(probe)));
                let all: BTreeSet<_> = idx
                    .get_all(t, &id(probe))
                    .into_iter()
                    .map(|l| (l.pack_id, l.offset, l.length, l.uncompressed_length))
                    .collect();
                prop_assert_eq!(all.len(), idx.get_all(t, &id(probe)).len());
                match (want, idx.get(t, &id(probe))) {
                    (None, None) => prop_assert!(all.is_empty()),
                    (Some(w), Some(l)) => {
                        prop_assert!(w.contains(&(l.pack_id, l.offset, l.length, l.uncompressed_length)));
                        prop_assert_eq!(&all, w);
                    }
                    (w, g) => prop_assert!(false, "model {:?} index {:?}", w, g),
                }
            }
            prop_assert_eq!(idx.len(), model.values().map(BTreeSet::len).sum::<usize>());
        }
        let listed: usize = idx.iter().count();
        prop_assert_eq!(listed, idx.len());
        for ((t, bid), locs) in &model {
            let all: BTreeSet<_> = idx
                .get_all(*t, bid)
                .into_iter()
                .map(|l| (l.pack_id, l.offset, l.length, l.uncompressed_length))
                .collect();
            prop_assert_eq!(&all, locs);
        }
        idx.compact();
        prop_assert_eq!(idx.len(), model.values().map(BTreeSet::len).sum::<usize>());
    }
}
