//! Tests of the pack codec and writer.

use super::*;
use proptest::prelude::*;

/// A pack with `n` uncompressed blobs of the given type; returns (key, id, bytes, blobs).
fn make_pack(t: BlobType, n: usize) -> (MasterKey, Id, Vec<u8>, Vec<PackBlob>) {
    let key = MasterKey::random();
    let mut w = PackWriter::with_capacity(t, 1 << 16);
    for i in 0..n {
        let data = format!("blob number {i}").into_bytes();
        w.add_with(Id::hash(&data), None, |out| key.seal_into(&data, out))
            .unwrap();
    }
    let (id, bytes, blobs) = w.finish(&key);
    (key, id, bytes, blobs)
}

#[test]
fn header_round_trip_and_offsets() {
    let pb = |blob_type, name: &[u8], offset, length, uncompressed_length| PackBlob {
        blob_type,
        id: Id::hash(name),
        offset,
        length,
        uncompressed_length,
    };
    let blobs = vec![
        pb(BlobType::Data, b"a", 0, 100, None),
        pb(BlobType::Tree, b"b", 100, 40, Some(300)),
        pb(BlobType::Data, b"c", 140, 32, Some(1)),
    ];
    let h = encode_header(&blobs);
    assert_eq!(h.len(), 37 + 41 + 41);
    assert_eq!(h[0], 0);
    assert_eq!(h[37], 3);
    assert_eq!(h[78], 2);
    assert_eq!(decode_header(&h).unwrap(), blobs);
    assert_eq!(decode_header(&[]).unwrap(), vec![]);
}

#[test]
fn header_rejects_bad_entries() {
    let good = PackBlob {
        blob_type: BlobType::Data,
        id: Id::hash(b"a"),
        offset: 0,
        length: 100,
        uncompressed_length: Some(10),
    };
    let h = encode_header(&[good]);
    for cut in 1..h.len() {
        let e = decode_header(&h[..cut]).unwrap_err().to_string();
        assert!(e.contains("truncated"), "{e}");
    }
    let mut bad = h.clone();
    bad[0] = 4;
    assert!(
        decode_header(&bad)
            .unwrap_err()
            .to_string()
            .contains("type byte")
    );
    let mut zero = h.clone();
    zero[5..9].copy_from_slice(&0u32.to_le_bytes());
    assert!(
        decode_header(&zero)
            .unwrap_err()
            .to_string()
            .contains("length 0")
    );
    let mut short = h.clone();
    short[1..5].copy_from_slice(&31u32.to_le_bytes());
    assert!(
        decode_header(&short)
            .unwrap_err()
            .to_string()
            .contains("overhead")
    );
    // Offsets beyond 4 GiB.
    let big = PackBlob {
        length: u32::MAX,
        uncompressed_length: None,
        ..good
    };
    let h = encode_header(&[big, big, big]);
    assert!(decode_header(&h).unwrap_err().to_string().contains("4 GiB"));
}

#[test]
fn writer_round_trip() {
    let (key, id, bytes, blobs) = make_pack(BlobType::Tree, 20);
    assert_eq!(id, Id::hash(&bytes));
    assert_eq!(blobs.len(), 20);
    let parsed = parse_pack(&key, &bytes, "p", 1).unwrap();
    assert_eq!(parsed, blobs);
    for (i, b) in parsed.iter().enumerate() {
        let raw = &bytes[b.offset as usize..b.end() as usize];
        let plain = read_blob(&key, raw, b).unwrap();
        assert_eq!(plain, format!("blob number {i}").as_bytes());
        assert_eq!(read_blob_owned(&key, raw.to_vec(), b).unwrap(), plain);
    }
    // 20 entries > 15: the eager tail is not enough.
    let eager = &bytes[bytes.len() - EAGER_TAIL_SIZE as usize..];
    let need = match parse_pack_tail(&key, eager, bytes.len() as u64, "p", 2).unwrap() {
        PackTail::NeedTail(n) => n,
        other => panic!("{other:?}"),
    };
    assert_eq!(need, (20 * 37 + 32 + 4) as u64);
    let tail = &bytes[bytes.len() - need as usize..];
    assert_eq!(
        parse_pack_tail(&key, tail, bytes.len() as u64, "p", 2).unwrap(),
        PackTail::Blobs(blobs)
    );
}

#[test]
fn writer_limits() {
    let key = MasterKey::random();
    let mut w = PackWriter::with_capacity(BlobType::Data, 0);
    assert!(w.is_empty());
    assert!(w.add_sealed(Id::hash(b""), &[0u8; 31], None).is_err());
    assert!(w.add_sealed(Id::hash(b""), &[0u8; 40], Some(0)).is_err());
    assert!(w.is_empty());
    assert_eq!(w.len(), 0);
    w.add_sealed(Id::hash(b""), &key.seal(b""), None).unwrap();
    assert_eq!((w.count(), w.len()), (1, 32));
    assert_eq!(w.finished_size(), 32 + 37 + 32 + 4);
    assert!(!w.header_would_overflow(true));
    w.header_len = MAX_HEADER_SIZE as usize - OVERHEAD - 40;
    assert!(w.header_would_overflow(true));
    assert!(!w.header_would_overflow(false));
    assert!(
        w.add_sealed(Id::hash(b""), &key.seal(b""), Some(1))
            .is_err()
    );
}

#[test]
fn read_blob_detects_damage() {
    let (key, _, bytes, blobs) = make_pack(BlobType::Data, 2);
    let b = blobs[1];
    let raw = bytes[b.offset as usize..b.end() as usize].to_vec();
    let mut flipped = raw.clone();
    flipped[20] ^= 1;
    let e = read_blob(&key, &flipped, &b).unwrap_err().to_string();
    assert!(e.contains(&b.id.to_hex()), "{e}");
    let e = read_blob(&key, &raw[1..], &b).unwrap_err().to_string();
    assert!(e.contains(&b.id.to_hex()), "{e}");
    let wrong = PackBlob {
        id: Id::hash(b"other"),
        ..b
    };
    let e = read_blob(&key, &raw, &wrong).unwrap_err().to_string();
    assert!(e.contains("hash mismatch"), "{e}");
}

#[test]
fn compressed_blob_and_version_check() {
    let key = MasterKey::random();
    let data = b"hello hello hello hello hello hello hello".repeat(10);
    let frame = zstd::encode_all(&data[..], 3).unwrap();
    let mut w = PackWriter::new(BlobType::Data);
    w.add_with(Id::hash(&data), Some(data.len() as u32), |out| {
        key.seal_into(&frame, out)
    })
    .unwrap();
    let (_, bytes, blobs) = w.finish(&key);
    let e = parse_pack(&key, &bytes, "v1pack", 1)
        .unwrap_err()
        .to_string();
    assert!(e.contains("v1pack") && e.contains("version 1"), "{e}");
    let parsed = parse_pack(&key, &bytes, "v2pack", 2).unwrap();
    assert_eq!(parsed, blobs);
    let b = parsed[0];
    let raw = &bytes[..b.length as usize];
    assert_eq!(read_blob(&key, raw, &b).unwrap(), data);
    let lying = PackBlob {
        uncompressed_length: Some(data.len() as u32 + 1),
        ..b
    };
    assert!(read_blob(&key, raw, &lying).is_err());
}

#[test]
fn tail_validation_errors_name_the_pack() {
    let (key, _, bytes, _) = make_pack(BlobType::Data, 3);
    let size = bytes.len() as u64;
    let name = "deadbeef";
    let check = |tail: &[u8], size: u64, want: &str| {
        let e = parse_pack_tail(&key, tail, size, name, 2)
            .unwrap_err()
            .to_string();
        assert!(e.contains(name) && e.contains(want), "{e} (wanted {want})");
    };
    let with_hlen = |hlen: u32| {
        let mut b = bytes.clone();
        let n = b.len();
        b[n - 4..].copy_from_slice(&hlen.to_le_bytes());
        b
    };
    check(&with_hlen(0), size, "zero");
    check(&with_hlen(31), size, "too small");
    check(&with_hlen(size as u32), size, "larger than the file");
    // Flipped byte inside the sealed header.
    let mut b = bytes.clone();
    let n = b.len();
    b[n - 10] ^= 0x40;
    check(&b, size, "header");
    // Truncated pack: the trailer now sits elsewhere.
    check(&bytes[..n - 1], size - 1, name);
    // Extra bytes before the blobs: sizes don't add up.
    let mut longer = vec![0u8; 5];
    longer.extend_from_slice(&bytes);
    check(&longer, size + 5, "do not match");
    check(&bytes[..10], 10, "too small");
}

#[test]
fn huge_header_length_rejected() {
    let key = MasterKey::random();
    let size = MAX_HEADER_SIZE as u64 + 100;
    let mut tail = vec![0u8; 64];
    tail[60..].copy_from_slice(&(MAX_HEADER_SIZE + 1).to_le_bytes());
    let e = parse_pack_tail(&key, &tail, size, "big", 2)
        .unwrap_err()
        .to_string();
    assert!(e.contains("maximum"), "{e}");
}

#[test]
fn empty_pack_is_rejected() {
    let key = MasterKey::random();
    let (_, bytes, _) = PackWriter::new(BlobType::Data).finish(&key);
    assert_eq!(bytes.len(), 36);
    assert!(parse_pack(&key, &bytes, "e", 2).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Draining the writer at any points streams exactly the bytes of the pack built in memory:
    /// same blob bytes and offsets, the id hashes the streamed bytes, and they open as a pack.
    #[test]
    fn drained_pack_equals_buffered_pack(
        blobs in proptest::collection::vec((proptest::collection::vec(any::<u8>(), 0..3000), any::<bool>()), 1..20),
    ) {
        let key = MasterKey::random();
        let mut whole = PackWriter::with_capacity(BlobType::Data, 1 << 10);
        let mut streamed = PackWriter::with_capacity(BlobType::Data, 1 << 10);
        let mut out = Vec::new();
        for (data, drain_after) in &blobs {
            let sealed = key.seal(data);
            let id = Id::hash(data);
            whole.add_sealed(id, &sealed, None).unwrap();
            streamed.add_sealed(id, &sealed, None).unwrap();
            prop_assert_eq!(whole.len(), streamed.len());
            if *drain_after {
                streamed.drain(|b| { out.extend_from_slice(b); Ok::<(), ()>(()) }).unwrap();
                prop_assert_eq!(streamed.buffered(), 0);
            }
        }
        let (id_whole, bytes_whole, blobs_whole) = whole.finish(&key);
        let (id_streamed, tail, blobs_streamed) = streamed.finish(&key);
        out.extend_from_slice(&tail);
        // The headers are sealed with fresh nonces, so only the blob bytes compare equal.
        let blob_bytes = blobs_whole.iter().map(|b| b.length as usize).sum::<usize>();
        prop_assert_eq!(&bytes_whole[..blob_bytes], &out[..blob_bytes]);
        prop_assert_eq!(id_whole, Id::hash(&bytes_whole));
        prop_assert_eq!(id_streamed, Id::hash(&out));
        prop_assert_eq!(&blobs_whole, &blobs_streamed);
        let header = parse_pack_tail(&key, &out, out.len() as u64, "p", 2).unwrap();
        prop_assert_eq!(header, PackTail::Blobs(blobs_whole));
    }

    #[test]
    fn decode_header_never_panics(data in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = decode_header(&data);
    }

    #[test]
    fn header_codec_round_trip(
        entries in proptest::collection::vec(
            (any::<bool>(), any::<[u8; 32]>(), 32u32..1_000_000, proptest::option::of(1u32..u32::MAX)),
            0..50,
        )
    ) {
        let mut offset = 0u32;
        let blobs: Vec<PackBlob> = entries
            .into_iter()
            .map(|(tree, id, length, ul)| {
                let b = PackBlob {
                    blob_type: if tree { BlobType::Tree } else { BlobType::Data },
                    id: Id(id),
                    offset,
                    length,
                    uncompressed_length: ul,
                };
                offset += length;
                b
            })
            .collect();
        prop_assert_eq!(decode_header(&encode_header(&blobs)).unwrap(), blobs);
    }

    #[test]
    fn damaged_packs_never_panic(
        cut in 0usize..2000,
        flips in proptest::collection::vec((any::<prop::sample::Index>(), 1u8..), 0..4),
        junk in proptest::collection::vec(any::<u8>(), 0..200),
    ) {
        let (key, _, bytes, _) = make_pack(BlobType::Tree, 18);
        let mut b = bytes[..cut.min(bytes.len())].to_vec();
        for (i, x) in flips {
            if !b.is_empty() {
                let i = i.index(b.len());
                b[i] ^= x;
            }
        }
        let _ = parse_pack(&key, &b, "x", 2);
        let _ = parse_pack(&key, &junk, "x", 2);
        for t in [4usize, 40, 651, 5000] {
            let t = t.min(b.len());
            let _ = parse_pack_tail(&key, &b[b.len() - t..], b.len() as u64, "x", 2);
        }
    }
}
