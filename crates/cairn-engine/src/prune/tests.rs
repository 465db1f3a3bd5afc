//! Unit tests of the prune planner on synthetic indexes.

use super::plan::{PrunePlan, plan_packs};
use super::*;
use cairn_repo::index::Index;
use cairn_repo::pack::PackBlob;
use cairn_repo::{BlobType, Id};
use proptest::prelude::*;

const D: BlobType = BlobType::Data;
const T: BlobType = BlobType::Tree;

fn id(n: u32) -> Id {
    let mut b = [0u8; 32];
    b[..4].copy_from_slice(&n.to_be_bytes());
    b[31] = 0xaa;
    Id(b)
}

fn pid(n: u32) -> Id {
    let mut b = [0xffu8; 32];
    b[..4].copy_from_slice(&n.to_be_bytes());
    Id(b)
}

/// A pack description: blobs `(type, blob number, sealed length, compressed)`.
struct Repo {
    index: Index,
    listing: Vec<(Id, u64)>,
}

impl Repo {
    fn new() -> Repo {
        Repo {
            index: Index::new(),
            listing: Vec::new(),
        }
    }

    /// Add pack `p` (indexed and present) and return its size.
    fn pack(&mut self, p: u32, blobs: &[(BlobType, u32, u32, bool)]) -> u64 {
        let (list, size) = pack_blobs(blobs);
        self.index.add_pack(pid(p), &list);
        self.listing.push((pid(p), size));
        size
    }

    fn plan(
        &self,
        used: &[(BlobType, u32)],
        opts: &PruneOptions,
        version: u32,
    ) -> Result<PrunePlan> {
        let mut u = UsedBlobs::new();
        for (t, n) in used {
            u.insert(*t, id(*n));
        }
        plan_packs(&self.index, u, &self.listing, opts, version)
    }
}

fn pack_blobs(blobs: &[(BlobType, u32, u32, bool)]) -> (Vec<PackBlob>, u64) {
    let mut off = 0u32;
    let mut size = 36u64;
    let list = blobs
        .iter()
        .map(|&(t, n, len, c)| {
            let b = PackBlob {
                blob_type: t,
                id: id(n),
                offset: off,
                length: len,
                uncompressed_length: c.then_some(len * 2),
            };
            off += len;
            size += u64::from(len) + if c { 41 } else { 37 };
            b
        })
        .collect();
    (list, size)
}

fn opts() -> PruneOptions {
    PruneOptions {
        pack_size: 16 << 20,
        ..Default::default()
    }
}

fn repack_ids(p: &PrunePlan) -> Vec<Id> {
    p.repack.iter().map(|r| r.id).collect()
}

#[test]
fn max_unused_parsing_and_limits() {
    assert_eq!(MaxUnused::parse("unlimited").unwrap(), MaxUnused::Unlimited);
    assert_eq!(MaxUnused::parse(" 5% ").unwrap(), MaxUnused::Percent(5.0));
    assert_eq!(MaxUnused::parse("0%").unwrap(), MaxUnused::Percent(0.0));
    assert_eq!(MaxUnused::parse("1M").unwrap(), MaxUnused::Bytes(1 << 20));
    assert_eq!(MaxUnused::parse("10k").unwrap(), MaxUnused::Bytes(10 << 10));
    assert_eq!(MaxUnused::parse("123").unwrap(), MaxUnused::Bytes(123));
    for bad in ["", "100%", "-1%", "x%", "abc", "5q"] {
        assert!(MaxUnused::parse(bad).is_err(), "{bad:?}");
    }
    assert_eq!(MaxUnused::Percent(50.0).max_unused_bytes(1000), 1000);
    assert_eq!(MaxUnused::Percent(5.0).max_unused_bytes(1900), 100);
    assert_eq!(MaxUnused::Percent(0.0).max_unused_bytes(1900), 0);
    assert_eq!(MaxUnused::Unlimited.max_unused_bytes(7), u64::MAX);
    assert_eq!(MaxUnused::Bytes(9).max_unused_bytes(7), 9);
    assert_eq!(parse_size("2g").unwrap(), 2 << 30);
}

#[test]
fn small_pack_limits_follow_restic_014() {
    let o = opts();
    assert_eq!(o.small_pack_limit().unwrap(), (16 << 20) / 25);
    let o = PruneOptions {
        repack_small: true,
        ..opts()
    };
    assert_eq!(o.small_pack_limit().unwrap(), (16 << 20) / 5 * 4);
    let o = PruneOptions {
        repack_smaller_than: Some(1 << 20),
        ..opts()
    };
    assert_eq!(o.small_pack_limit().unwrap(), 1 << 20);
    let o = PruneOptions {
        repack_smaller_than: Some(32 << 20),
        ..opts()
    };
    assert!(o.small_pack_limit().is_err());
    let o = PruneOptions {
        repack_uncompressed: true,
        ..opts()
    };
    assert!(o.validate(1).is_err());
    assert!(o.validate(2).is_ok());
    let o = PruneOptions {
        repack_uncompressed: true,
        compression: cairn_repo::compress::CompressionMode::Off,
        ..opts()
    };
    assert!(o.validate(2).is_err());
}

#[test]
fn fully_used_packs_are_kept_and_unused_removed() {
    let mut r = Repo::new();
    let s1 = r.pack(1, &[(D, 1, 1_000_000, true), (D, 2, 1_000_000, true)]);
    r.pack(2, &[(D, 3, 500, true), (D, 4, 700, true)]);
    r.pack(3, &[(T, 5, 300, true)]);
    let p = r.plan(&[(D, 1), (D, 2), (T, 5)], &opts(), 2).unwrap();
    assert!(p.repack.is_empty());
    assert_eq!(p.remove, vec![pid(2)]);
    let s = p.stats;
    assert_eq!(s.blobs.used, 3);
    assert_eq!(s.blobs.unused, 2);
    assert_eq!(s.size.used, 2_000_300);
    assert_eq!(s.size.unused, 1200);
    // Removed size counts the blobs only (restic), not the header.
    assert_eq!(s.size.remove, 1200);
    assert_eq!(s.blobs.remove, 2);
    assert_eq!(s.packs.used, 2);
    assert_eq!(s.packs.unused, 1);
    assert_eq!(s.packs.keep, 2);
    assert_eq!(s.packs.remove, 1);
    assert_eq!(s.total_size(), 2_001_500);
    assert_eq!(s.remaining_unused_size(), 0);
    assert!(s1 > 2_000_000);
}

#[test]
fn partly_used_data_packs_follow_max_unused() {
    let build = || {
        let mut r = Repo::new();
        // 10% unused in pack 1, 50% in pack 2, a big fully used pack 3.
        r.pack(1, &[(D, 1, 900_000, true), (D, 2, 100_000, true)]);
        r.pack(2, &[(D, 3, 500_000, true), (D, 4, 500_000, true)]);
        r.pack(3, &[(D, 5, 8_000_000, true)]);
        r
    };
    let used = [(D, 1), (D, 3), (D, 5)];
    let r = build();
    // Used 9.4 MB; 5% allows ~495 kB unused: repacking pack 2 (highest ratio) reaches that.
    let p = r.plan(&used, &opts(), 2).unwrap();
    assert_eq!(repack_ids(&p), vec![pid(2)]);
    assert_eq!(p.stats.size.repack_remove, 500_000);
    assert_eq!(p.repack[0].blobs.len(), 1);
    assert_eq!(p.repack[0].blobs[0].id, id(3));
    assert!(p.keep.contains(&(D, id(3))));
    assert_eq!(p.keep.len(), 1);
    // 0%: everything partly used is repacked, highest unused ratio first.
    let o = PruneOptions {
        max_unused: MaxUnused::Percent(0.0),
        ..opts()
    };
    let p = r.plan(&used, &o, 2).unwrap();
    assert_eq!(repack_ids(&p), vec![pid(2), pid(1)]);
    assert_eq!(p.stats.remaining_unused_size(), 0);
    // Unlimited: data packs are never repacked for space.
    let o = PruneOptions {
        max_unused: MaxUnused::Unlimited,
        ..opts()
    };
    let p = r.plan(&used, &o, 2).unwrap();
    assert!(p.repack.is_empty());
    assert_eq!(p.stats.packs.keep, 3);
    // An absolute limit of 600 kB: 600 kB unused is not below it, so pack 2 goes; then
    // 100 kB < 600 kB stops.
    let o = PruneOptions {
        max_unused: MaxUnused::Bytes(600_000),
        ..opts()
    };
    let p = r.plan(&used, &o, 2).unwrap();
    assert_eq!(repack_ids(&p), vec![pid(2)]);
    // --max-repack-size below the first candidate's size: nothing.
    let o = PruneOptions {
        max_unused: MaxUnused::Percent(0.0),
        max_repack_bytes: Some(1_000_000),
        ..opts()
    };
    let p = r.plan(&used, &o, 2).unwrap();
    assert!(p.repack.is_empty());
    // ... and just above it: exactly one pack.
    let o = PruneOptions {
        max_unused: MaxUnused::Percent(0.0),
        max_repack_bytes: Some(1_500_000),
        ..opts()
    };
    let p = r.plan(&used, &o, 2).unwrap();
    assert_eq!(repack_ids(&p), vec![pid(2)]);
    // --repack-cacheable-only keeps data packs.
    let o = PruneOptions {
        max_unused: MaxUnused::Percent(0.0),
        repack_cacheable_only: true,
        ..opts()
    };
    let p = r.plan(&used, &o, 2).unwrap();
    assert!(p.repack.is_empty());
}

#[test]
fn tree_and_mixed_packs_are_repacked_even_when_unlimited() {
    let mut r = Repo::new();
    r.pack(1, &[(T, 1, 1000, true), (T, 2, 1000, true)]);
    r.pack(2, &[(D, 3, 1000, true), (T, 4, 1000, true)]);
    r.pack(3, &[(D, 5, 2_000_000, true), (D, 6, 10, true)]);
    let o = PruneOptions {
        max_unused: MaxUnused::Unlimited,
        repack_cacheable_only: true,
        ..opts()
    };
    let p = r.plan(&[(T, 1), (D, 3), (T, 4), (D, 5)], &o, 2).unwrap();
    let mut ids = repack_ids(&p);
    ids.sort();
    assert_eq!(ids, vec![pid(1), pid(2)]);
    assert_eq!(p.stats.packs.keep, 1);
}

#[test]
fn uncompressed_packs_in_v2() {
    let mut r = Repo::new();
    r.pack(1, &[(T, 1, 1_000_000, false)]);
    r.pack(2, &[(D, 2, 1_000_000, false)]);
    r.pack(3, &[(D, 3, 1_000_000, true)]);
    let used = [(T, 1), (D, 2), (D, 3)];
    // Uncompressed trees are always repacked in v2, data only with --repack-uncompressed.
    let p = r.plan(&used, &opts(), 2).unwrap();
    assert_eq!(repack_ids(&p), vec![pid(1)]);
    assert_eq!(p.stats.size.uncompressed, r.listing[1].1);
    let o = PruneOptions {
        repack_uncompressed: true,
        ..opts()
    };
    let p = r.plan(&used, &o, 2).unwrap();
    assert_eq!(repack_ids(&p), vec![pid(1), pid(2)]);
    assert_eq!(p.stats.size.uncompressed, 0);
    // v1: nothing must be compressed.
    let p = r.plan(&used, &opts(), 1).unwrap();
    assert!(p.repack.is_empty());
    assert_eq!(p.stats.size.uncompressed, 0);
}

#[test]
fn small_packs_need_ten_candidates() {
    let mut r = Repo::new();
    let mut used = Vec::new();
    for i in 0..9 {
        r.pack(i, &[(D, i, 1000, true)]);
        used.push((D, i));
    }
    let p = r.plan(&used, &opts(), 2).unwrap();
    assert!(p.repack.is_empty());
    assert_eq!(p.stats.packs.keep, 9);
    r.pack(9, &[(D, 9, 1000, true)]);
    used.push((D, 9));
    let p = r.plan(&used, &opts(), 2).unwrap();
    assert_eq!(p.repack.len(), 10);
    assert_eq!(p.stats.size.repack_remove, 0);
    // With --repack-small, packs below 80% of the pack size are small too.
    let mut r = Repo::new();
    let mut used = Vec::new();
    for i in 0..10 {
        r.pack(i, &[(D, i, 2_000_000, true)]);
        used.push((D, i));
    }
    assert!(r.plan(&used, &opts(), 2).unwrap().repack.is_empty());
    let o = PruneOptions {
        repack_small: true,
        ..opts()
    };
    assert_eq!(r.plan(&used, &o, 2).unwrap().repack.len(), 10);
}

#[test]
fn unreferenced_missing_and_mismatched_packs() {
    let mut r = Repo::new();
    r.pack(1, &[(D, 1, 1000, true)]);
    r.listing.push((pid(50), 12345)); // not indexed
    let p = r.plan(&[(D, 1)], &opts(), 2).unwrap();
    assert_eq!(p.remove_first, vec![pid(50)]);
    assert_eq!(p.stats.size.unreferenced, 12345);
    assert_eq!(p.stats.packs.unreferenced, 1);
    assert_eq!(p.stats.remove_total_size(), 12345);

    // Indexed but missing: fine when unused (dropped from the index), fatal when needed.
    let (list, _) = pack_blobs(&[(D, 7, 100, true)]);
    r.index.add_pack(pid(60), &list);
    let p = r.plan(&[(D, 1)], &opts(), 2).unwrap();
    assert_eq!(p.ignore, vec![pid(60)]);
    assert_eq!(p.stats.blobs.remove, 1);
    assert!(p.obsolete_packs().contains(&pid(60)));
    let e = r.plan(&[(D, 1), (D, 7)], &opts(), 2).unwrap_err();
    assert!(e.to_string().contains("missing from the repository"), "{e}");

    // Size mismatch: fatal for a needed pack, harmless for an unused one.
    let mut r = Repo::new();
    r.pack(1, &[(D, 1, 1000, true)]);
    r.pack(2, &[(D, 2, 1000, true)]);
    for l in &mut r.listing {
        l.1 += 1;
    }
    let e = r.plan(&[(D, 1)], &opts(), 2).unwrap_err();
    assert!(e.to_string().contains("does not match"), "{e}");
    r.listing.retain(|l| l.0 != pid(1));
    r.index = Index::new();
    let (list, _) = pack_blobs(&[(D, 2, 1000, true)]);
    r.index.add_pack(pid(2), &list);
    let p = r.plan(&[], &opts(), 2).unwrap();
    assert_eq!(p.remove, vec![pid(2)]);
}

#[test]
fn missing_used_blob_aborts() {
    let mut r = Repo::new();
    r.pack(1, &[(D, 1, 1000, true)]);
    let e = r.plan(&[(D, 1), (D, 2)], &opts(), 2).unwrap_err();
    assert!(e.to_string().contains("index is not complete"), "{e}");
    // A tree id indexed only as data does not count.
    let e = r.plan(&[(T, 1)], &opts(), 2).unwrap_err();
    assert!(e.to_string().contains("not found in the index"), "{e}");
}

#[test]
fn duplicates_prefer_packs_of_an_interrupted_prune() {
    // Pack 1 had used blob 1 and unused blob 2; an interrupted prune copied blob 1 to pack 9.
    for order in [false, true] {
        let mut r = Repo::new();
        if order {
            r.pack(9, &[(D, 1, 1000, true)]);
            r.pack(1, &[(D, 1, 1000, true), (D, 2, 5000, true)]);
        } else {
            r.pack(1, &[(D, 1, 1000, true), (D, 2, 5000, true)]);
            r.pack(9, &[(D, 1, 1000, true)]);
        }
        let p = r.plan(&[(D, 1)], &opts(), 2).unwrap();
        assert_eq!(p.remove, vec![pid(1)], "order {order}");
        assert!(p.repack.is_empty());
        assert_eq!(p.stats.blobs.used, 1);
        assert_eq!(p.stats.blobs.duplicate, 1);
        assert_eq!(p.stats.size.duplicate, 1000);
        assert_eq!(p.stats.blobs.unused, 1);
        assert_eq!(p.stats.total_blobs(), 3);
    }
    // A used blob in three packs, each also holding other used blobs: one copy is used.
    let mut r = Repo::new();
    r.pack(1, &[(D, 1, 100, true), (D, 2, 100, true)]);
    r.pack(2, &[(D, 1, 100, true), (D, 3, 100, true)]);
    r.pack(3, &[(D, 1, 100, true), (D, 4, 100, true)]);
    let used = [(D, 1), (D, 2), (D, 3), (D, 4)];
    let o = PruneOptions {
        max_unused: MaxUnused::Percent(0.0),
        ..opts()
    };
    let p = r.plan(&used, &o, 2).unwrap();
    assert_eq!(p.stats.blobs.used, 4);
    assert_eq!(p.stats.blobs.duplicate, 2);
    assert_eq!(p.repack.len(), 2);
    // The copied blobs are the packs' own used blobs; blob 1 survives in the kept pack.
    assert!(!p.keep.contains(&(D, id(1))));
    assert_eq!(p.keep.len(), 2);
}

#[test]
fn read_ranges_merge_close_blobs() {
    let (list, _) = pack_blobs(&[(D, 1, 1000, true), (D, 2, 1000, true), (D, 3, 1000, true)]);
    let r = super::repack::read_ranges(&list);
    assert_eq!(r.len(), 1);
    assert_eq!((r[0].0, r[0].1), (0, 3000));
    let (list, _) = pack_blobs(&[
        (D, 1, 1000, true),
        (D, 2, 1_000_000, true),
        (D, 3, 1000, true),
    ]);
    let sparse = vec![list[0], list[2]];
    let r = super::repack::read_ranges(&sparse);
    assert_eq!(r.len(), 2);
    assert_eq!((r[1].0, r[1].1), (1_001_000, 1_002_000));
}

/// Packs of `(is tree, blob number, length, compressed)`, used blob numbers, limit mode.
type ArbRepo = (Vec<Vec<(bool, u32, u32, bool)>>, Vec<u32>, u8);

fn arb_repo() -> impl Strategy<Value = ArbRepo> {
    let blob = (any::<bool>(), 0u32..40, 1u32..3000, any::<bool>());
    (
        prop::collection::vec(prop::collection::vec(blob, 1..8), 1..14),
        prop::collection::vec(0u32..40, 0..40),
        0u8..4,
    )
}

proptest! {
    /// Whatever the index looks like, every used blob survives: either in a pack that is
    /// kept, or in the keep set with a copy in a pack being repacked; packs are in at most
    /// one category and the statistics add up.
    #[test]
    fn every_used_blob_survives((packs, used, mode) in arb_repo()) {
        let mut r = Repo::new();
        for (i, blobs) in packs.iter().enumerate() {
            let mut seen = std::collections::HashSet::new();
            let blobs: Vec<(BlobType, u32, u32, bool)> = blobs
                .iter()
                .filter(|b| seen.insert((b.0, b.1)))
                .map(|&(tree, n, len, c)| (if tree { T } else { D }, n, len + 32, c))
                .collect();
            r.pack(i as u32, &blobs);
        }
        let indexed: std::collections::HashSet<(BlobType, u32)> = packs
            .iter()
            .flatten()
            .map(|&(tree, n, _, _)| (if tree { T } else { D }, n))
            .collect();
        let mut used: Vec<(BlobType, u32)> = used
            .iter()
            .flat_map(|&n| [(D, n), (T, n)])
            .filter(|k| indexed.contains(k))
            .collect();
        used.sort();
        used.dedup();
        let o = PruneOptions {
            max_unused: match mode {
                0 => MaxUnused::Percent(0.0),
                1 => MaxUnused::Percent(5.0),
                2 => MaxUnused::Unlimited,
                _ => MaxUnused::Bytes(2000),
            },
            ..opts()
        };
        let p = r.plan(&used, &o, 2).unwrap();
        let obsolete = p.obsolete_packs();
        let mut cats: Vec<Id> = p.remove.clone();
        cats.extend(repack_ids(&p));
        cats.extend(p.ignore.iter().copied());
        let n = cats.len();
        cats.sort();
        cats.dedup();
        prop_assert_eq!(n, cats.len());
        let all = r.index.packs();
        for (t, b) in &used {
            let kept = all.iter().any(|(pk, blobs)| {
                !obsolete.contains(pk) && blobs.iter().any(|x| x.blob_type == *t && x.id == id(*b))
            });
            let repacked = p.keep.contains(&(*t, id(*b)))
                && p.repack.iter().any(|rp| rp.blobs.iter().any(|x| x.blob_type == *t && x.id == id(*b)));
            prop_assert!(kept || repacked, "blob {:?} {} lost", t, b);
            prop_assert!(!(kept && p.keep.contains(&(*t, id(*b)))));
        }
        let s = p.stats;
        prop_assert_eq!(s.blobs.used, used.len() as u64);
        prop_assert_eq!(s.total_blobs(), r.index.len() as u64);
        prop_assert_eq!(
            s.packs.keep + s.packs.repack + s.packs.remove,
            s.packs.used + s.packs.unused + s.packs.partly_used
        );
    }
}
