//! Golden test of the public chunker API against restic-produced vectors
//! (`shared/fixtures/chunker-vectors.json`), feeding the data as a reader would: in
//! fixed-size blocks, resetting at each file.

use cairn_repo::Id;
use cairn_repo::chunker::{Chunker, ChunkerTables, MAX_SIZE, MIN_SIZE, Pol, chunk_lengths};
use sha2::{Digest, Sha256};
use std::path::PathBuf;

fn vectors() -> serde_json::Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/fixtures/chunker-vectors.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "chunker fixture {} is missing or unreadable: {e}",
            path.display()
        )
    });
    serde_json::from_str(&text).expect("chunker-vectors.json is not valid JSON")
}

fn random_3m(size: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(size + 32);
    let mut i = 0u64;
    while out.len() < size {
        let mut h = Sha256::new();
        h.update(b"restic-fixture-random-v1");
        h.update(i.to_le_bytes());
        out.extend_from_slice(&h.finalize());
        i += 1;
    }
    out.truncate(size);
    out
}

/// Chunks `data` read in blocks of `block` bytes; returns (offset, length, id) per chunk.
fn stream_chunks(chunker: &mut Chunker, data: &[u8], block: usize) -> Vec<(usize, usize, Id)> {
    chunker.reset();
    let mut chunks = Vec::new();
    let mut chunk_start = 0;
    let mut offset = 0;
    for piece in data.chunks(block) {
        let mut rest = piece;
        while let Some(n) = chunker.next_boundary(rest) {
            offset += n;
            let id = Id::hash(&data[chunk_start..offset]);
            chunks.push((chunk_start, offset - chunk_start, id));
            chunk_start = offset;
            rest = &rest[n..];
        }
        offset += rest.len();
    }
    if chunk_start < data.len() {
        let id = Id::hash(&data[chunk_start..]);
        chunks.push((chunk_start, data.len() - chunk_start, id));
    }
    chunks
}

#[test]
fn restic_vectors_streaming() {
    let v = vectors();
    let size = v["input"]["size"].as_u64().unwrap() as usize;
    let data = random_3m(size);
    assert_eq!(
        Id::hash(&data).to_hex(),
        v["input"]["sha256"].as_str().unwrap()
    );
    let cases = v["cases"].as_array().unwrap();
    assert!(!cases.is_empty());
    for case in cases {
        let pol = Pol::from_hex(case["chunker_polynomial"].as_str().unwrap()).unwrap();
        assert!(pol.is_irreducible());
        let tables = ChunkerTables::new(pol);
        let expected: Vec<(usize, usize, Id)> = case["chunks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["offset"].as_u64().unwrap() as usize,
                    c["length"].as_u64().unwrap() as usize,
                    c["blob_id"].as_str().unwrap().parse::<Id>().unwrap(),
                )
            })
            .collect();
        let lengths: Vec<usize> = expected.iter().map(|c| c.1).collect();
        assert_eq!(chunk_lengths(&tables, &data), lengths);
        // One chunker reused across "files" and block sizes, as the archiver does.
        let mut chunker = Chunker::new(tables.clone());
        for block in [1 << 20, 65536, 4096, 1000, 3 << 20] {
            assert_eq!(
                stream_chunks(&mut chunker, &data, block),
                expected,
                "polynomial {} block {block}",
                pol.to_hex()
            );
            // A small file in between must not leak state into the next file.
            assert_eq!(stream_chunks(&mut chunker, &data[..1000], block).len(), 1);
            // Leave the chunker mid-chunk: the next file must start fresh after reset.
            assert_eq!(chunker.next_boundary(&data[..MIN_SIZE - 1]), None);
        }
    }
}

#[test]
fn constant_vectors_streaming() {
    let v = vectors();
    for case in v["constant_input_cases"].as_array().unwrap() {
        let input = case["input"].as_str().unwrap();
        let (n, kind) = input.split_once(' ').unwrap();
        let byte = if kind.contains("0xff") { 0xff } else { 0 };
        let data = vec![byte; n.parse().unwrap()];
        let pol = Pol::from_hex(case["chunker_polynomial"].as_str().unwrap()).unwrap();
        let mut chunker = Chunker::new(ChunkerTables::new(pol));
        let got = stream_chunks(&mut chunker, &data, 100_000);
        let want: Vec<(usize, usize, Id)> = case["chunks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["offset"].as_u64().unwrap() as usize,
                    c["length"].as_u64().unwrap() as usize,
                    c["blob_id"].as_str().unwrap().parse::<Id>().unwrap(),
                )
            })
            .collect();
        assert_eq!(got, want, "{input}");
        assert!(got.iter().all(|c| c.1 <= MAX_SIZE));
    }
}
