//! Binary formats: pack headers and pack files, zstd decompression, authenticated
//! encryption.

use cairn_repo::compress::{self, MAX_DECOMPRESSED_SIZE};
use cairn_repo::crypto::{MasterKey, OVERHEAD};
use cairn_repo::pack::{self, PackBlob, PackTail, TRAILER_SIZE};

use crate::alloc::{bounded, measure};
use crate::input::Cursor;
use crate::{SLACK, fixture_key};

/// Structural invariants of a successfully decoded header: contiguous offsets from 0,
/// lengths at least the encryption overhead, no zero uncompressed length.
fn check_blobs(blobs: &[PackBlob]) {
    let mut expect = 0u64;
    for b in blobs {
        assert_eq!(
            u64::from(b.offset),
            expect,
            "offsets not contiguous: {blobs:?}"
        );
        assert!(b.length as usize >= OVERHEAD, "short blob accepted: {b:?}");
        assert_ne!(
            b.uncompressed_length,
            Some(0),
            "zero uncompressed length: {b:?}"
        );
        expect = b.end();
    }
}

/// `decode_header(data)`: plaintext pack header. On success the header re-encodes to
/// exactly the same bytes; memory stays within 4× the input.
pub fn pack_header(data: &[u8]) {
    let res = bounded("decode_header", data.len(), 4, SLACK, || {
        pack::decode_header(data)
    });
    if let Ok(blobs) = res {
        check_blobs(&blobs);
        assert_eq!(
            pack::encode_header(&blobs),
            data,
            "header encode/decode round trip"
        );
        assert!(blobs.len() * pack::HEADER_ENTRY_PLAIN <= data.len());
    }
}

/// `parse_pack_tail` on a header the target seals itself, so the fuzzer reaches the checks
/// behind the MAC. Layout: `u64 pack_size ‖ u8 flags ‖ u32 trailer ‖ header plaintext`.
/// flags bit 0: repository version 2 (else 1); bit 1: use `trailer` instead of the real
/// sealed length; bits 4..8: drop that many ×4 bytes from the front of the tail.
pub fn pack_tail(data: &[u8]) {
    let key = fixture_key();
    let mut c = Cursor::new(data);
    let pack_size = c.u64();
    let flags = c.u8();
    let trailer_override = c.u32();
    let header = c.rest();
    let version = if flags & 1 == 1 { 2 } else { 1 };
    let mut tail = key.seal(header);
    let hlen = if flags & 2 == 2 {
        trailer_override
    } else {
        tail.len() as u32
    };
    tail.extend_from_slice(&hlen.to_le_bytes());
    let drop = usize::from(flags >> 4) * 4;
    let tail = tail.get(drop..).unwrap_or_default();

    let res = bounded("parse_pack_tail", tail.len(), 4, SLACK, || {
        pack::parse_pack_tail(key, tail, pack_size, "fuzz", version)
    });
    match res {
        Ok(PackTail::Blobs(blobs)) => {
            assert!(!blobs.is_empty(), "empty header accepted");
            check_blobs(&blobs);
            let data_end = blobs.last().map_or(0, PackBlob::end);
            assert_eq!(
                data_end + u64::from(hlen) + TRAILER_SIZE as u64,
                pack_size,
                "sizes do not add up"
            );
            if version < 2 {
                assert!(!blobs.iter().any(PackBlob::is_compressed));
            }
            assert_eq!(
                pack::decode_header(header).ok(),
                Some(blobs),
                "header differs"
            );
        }
        Ok(PackTail::NeedTail(n)) => {
            assert!(
                n > tail.len() as u64,
                "NeedTail({n}) with {} bytes given",
                tail.len()
            );
            assert!(
                n <= pack_size,
                "NeedTail({n}) beyond the pack size {pack_size}"
            );
            assert_eq!(n, u64::from(hlen) + TRAILER_SIZE as u64);
        }
        Err(_) => {}
    }
    if pack_size == tail.len() as u64 {
        let _ = pack::parse_pack(key, tail, "fuzz", version);
    }
}

/// A whole pack file sealed with the fixture key: `u8 flags ‖ pack bytes` (flags bit 0:
/// version 2). Checks that `parse_pack` agrees with the two-step `parse_pack_tail`
/// protocol of `read_pack_header`, then opens every blob.
pub fn pack_file(data: &[u8]) {
    let key = fixture_key();
    let mut c = Cursor::new(data);
    let version = if c.u8() & 1 == 1 { 2 } else { 1 };
    let packb = c.rest();
    let size = packb.len() as u64;
    let whole = bounded("parse_pack", packb.len(), 4, SLACK, || {
        pack::parse_pack(key, packb, "fuzz", version)
    });

    // The two-step protocol over the same bytes must agree with the one-shot parse.
    let first = size.min(pack::EAGER_TAIL_SIZE) as usize;
    let eager = &packb[packb.len() - first..];
    let stepped = match pack::parse_pack_tail(key, eager, size, "fuzz", version) {
        Ok(PackTail::Blobs(b)) => Ok(b),
        Ok(PackTail::NeedTail(n)) => {
            assert!(
                n <= size && n as usize > first,
                "bad NeedTail({n}) for {size} bytes"
            );
            let tail = &packb[packb.len() - n as usize..];
            match pack::parse_pack_tail(key, tail, size, "fuzz", version) {
                Ok(PackTail::Blobs(b)) => Ok(b),
                Ok(PackTail::NeedTail(m)) => panic!("NeedTail({m}) after giving {n} bytes"),
                Err(e) => Err(e),
            }
        }
        Err(e) => Err(e),
    };
    assert_eq!(
        whole.as_ref().ok(),
        stepped.as_ref().ok(),
        "one-shot and stepped parse differ"
    );

    if let Ok(blobs) = whole {
        check_blobs(&blobs);
        for b in &blobs {
            let Some(raw) = packb.get(b.offset as usize..b.end() as usize) else {
                panic!("blob {b:?} outside the pack");
            };
            // Documented cap: the uncompressed length from the authenticated header.
            let cap = b.uncompressed_length.map_or(0, |n| n as usize);
            let plain = bounded("read_blob", raw.len(), 4, 2 * cap + SLACK, || {
                pack::read_blob(key, raw, b)
            });
            let owned = pack::read_blob_owned(key, raw.to_vec(), b);
            assert_eq!(
                plain.ok(),
                owned.ok(),
                "read_blob and read_blob_owned differ"
            );
        }
    }
}

/// zstd: `u8 flags ‖ u32 expected ‖ payload`. Checks `decompress` with and without an
/// expected length against each other, that re-compressing the output round-trips, and
/// `decode_unpacked`. Documented caps: output ≤ 1 GiB, preallocation ≤ 64 MiB.
pub fn compress(data: &[u8]) {
    let mut c = Cursor::new(data);
    let flags = c.u8();
    let expected = (c.u32() % (1 << 20)) as usize;
    let payload = c.rest();
    const PREALLOC: usize = 64 << 20;
    // zstd expands at most ~32768× (a 4-byte RLE block gives 128 KiB); the streaming path
    // may double its buffer once past the output.
    let stream_cap = payload
        .len()
        .saturating_mul(2 * 32768)
        .min(2 * MAX_DECOMPRESSED_SIZE);
    let (none, peak) = measure(|| compress::decompress(payload, None));
    let out_len = none.as_ref().map_or(0, Vec::len);
    let limit = PREALLOC + 2 * out_len + stream_cap + SLACK;
    assert!(
        peak <= limit,
        "decompress(None): {peak} bytes allocated (limit {limit})"
    );

    if let Ok(out) = &none {
        assert!(out.len() <= MAX_DECOMPRESSED_SIZE);
        let exact = compress::decompress(payload, Some(out.len()));
        assert_eq!(
            exact.as_ref().ok(),
            Some(out),
            "decompress(Some(len)) differs"
        );
        let level = i32::from(flags >> 4) - 2;
        let again = compress::compress(out, level);
        assert_eq!(
            compress::decompress(&again, None).ok().as_ref(),
            Some(out),
            "round trip"
        );
        assert_eq!(
            compress::decompress(&again, Some(out.len())).ok().as_ref(),
            Some(out)
        );
    }
    if let Ok(v) = compress::decompress(payload, Some(expected)) {
        assert_eq!(v.len(), expected);
        assert_eq!(
            none.as_ref().ok(),
            Some(&v),
            "Some({expected}) succeeded, None did not agree"
        );
    }

    let version = if flags & 1 == 1 { 2 } else { 1 };
    let unpacked = compress::decode_unpacked(version, payload.to_vec());
    match (version, payload.first()) {
        (1, _) | (_, None | Some(b'{' | b'[')) => {
            assert_eq!(unpacked.ok().as_deref(), Some(payload));
        }
        (_, Some(2)) => {
            let direct = compress::decompress(&payload[1..], None);
            assert_eq!(
                unpacked.ok(),
                direct.ok(),
                "decode_unpacked differs from decompress"
            );
        }
        _ => assert!(unpacked.is_err()),
    }
}

/// Encryption: `MasterKey::from_json` (with a JSON round trip), `open` / `open_in_place` /
/// `open_slice_in_place` agreement under the fixture key, and `open(seal(x)) == x`.
pub fn crypto(data: &[u8]) {
    if let Ok(k) = bounded("MasterKey::from_json", data.len(), 8, SLACK, || {
        MasterKey::from_json(data)
    }) {
        assert!(k.is_valid());
        let again = MasterKey::from_json(&k.to_json());
        assert_eq!(again.ok().as_ref(), Some(&k), "master key JSON round trip");
    }

    let key = fixture_key();
    let opened = bounded("open", data.len(), 2, SLACK, || key.open(data));
    let mut buf = data.to_vec();
    let in_place = key.open_in_place(&mut buf);
    assert_eq!(opened.is_ok(), in_place.is_ok());
    match &opened {
        Ok(p) => {
            assert_eq!(p, &buf);
            assert_eq!(p.len() + OVERHEAD, data.len());
        }
        Err(_) => assert_eq!(buf, data, "failed open_in_place changed its buffer"),
    }
    let mut buf2 = data.to_vec();
    let slice = key.open_slice_in_place(&mut buf2).map(|s| s.to_vec());
    assert_eq!(opened.as_ref().ok(), slice.as_ref().ok());

    let sealed = key.seal(data);
    assert_eq!(sealed.len(), data.len() + OVERHEAD);
    assert_eq!(
        key.open(&sealed).ok().as_deref(),
        Some(data),
        "seal/open round trip"
    );
    let other = MasterKey::from_derived(&{
        let mut dk = [0x5au8; 64];
        let n = data.len().min(64);
        dk[..n].copy_from_slice(&data[..n]);
        dk
    });
    let sealed2 = other.seal(data);
    assert_eq!(other.open(&sealed2).ok().as_deref(), Some(data));
    if other != *key {
        assert!(key.open(&sealed2).is_err(), "foreign key's seal accepted");
    }
}
