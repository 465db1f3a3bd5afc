//! Unit tests of the chunker: table values, restic-produced vectors, an independent
//! reference implementation, split invariance and a throughput measurement.

use super::*;
use proptest::prelude::*;
use sha2::{Digest, Sha256};
use std::path::PathBuf;

const POL_V2: Pol = Pol(0x2948440c78e103);
const POL_V1: Pol = Pol(0x2e860100029429);

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

fn hex_u64(v: &serde_json::Value) -> u64 {
    let s = v.as_str().unwrap();
    u64::from_str_radix(s.trim_start_matches("0x"), 16).unwrap()
}

/// random-3m.bin: SHA-256(b"restic-fixture-random-v1" || u64_le(i)) concatenated.
fn random_3m() -> Vec<u8> {
    const SIZE: usize = 3 * 1024 * 1024;
    let mut out = Vec::with_capacity(SIZE);
    let mut i = 0u64;
    while out.len() < SIZE {
        let mut h = Sha256::new();
        h.update(b"restic-fixture-random-v1");
        h.update(i.to_le_bytes());
        out.extend_from_slice(&h.finalize());
        i += 1;
    }
    out.truncate(SIZE);
    out
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Checks `lengths` of `data` against a JSON list of {offset, length, blob_id}.
fn check_chunks(data: &[u8], lengths: &[usize], expected: &serde_json::Value, what: &str) {
    let expected = expected.as_array().unwrap();
    assert_eq!(
        lengths.len(),
        expected.len(),
        "{what}: chunk count {lengths:?}"
    );
    let mut offset = 0;
    for (len, exp) in lengths.iter().zip(expected) {
        assert_eq!(offset as u64, exp["offset"].as_u64().unwrap(), "{what}");
        assert_eq!(*len as u64, exp["length"].as_u64().unwrap(), "{what}");
        let id = sha256_hex(&data[offset..offset + len]);
        assert_eq!(id, exp["blob_id"].as_str().unwrap(), "{what}: blob id");
        offset += len;
    }
    assert_eq!(offset, data.len(), "{what}");
}

// ---------------------------------------------------------------------------------------
// Independent reference (a direct transcription of spec §11.3/§11.4, own arithmetic).

fn ref_mod(mut x: u128, p: u64) -> u64 {
    let dp = 63 - p.leading_zeros() as i32;
    while x != 0 && (127 - x.leading_zeros() as i32) >= dp {
        x ^= (p as u128) << ((127 - x.leading_zeros() as i32) - dp);
    }
    x as u64
}

/// Window fingerprint computed directly from its definition.
fn ref_fingerprint(window: &[u8], p: u64) -> u64 {
    window
        .iter()
        .fold(0, |h, &b| ref_mod(((h as u128) << 8) | b as u128, p))
}

fn reference_chunks(data: &[u8], p: u64) -> Vec<usize> {
    let k = 63 - p.leading_zeros();
    let mut out_t = [0u64; 256];
    let mut mod_t = [0u64; 256];
    for b in 0..256usize {
        let mut h = ref_mod(b as u128, p);
        for _ in 0..63 {
            h = ref_mod((h as u128) << 8, p);
        }
        out_t[b] = h;
        mod_t[b] = ref_mod((b as u128) << k, p) | ((b as u64) << k);
    }
    let shift = k - 8;
    let mut cuts = Vec::new();
    let mut start = 0;
    let n = data.len();
    while start < n {
        if n - start <= MIN_SIZE {
            cuts.push(n - start);
            break;
        }
        let mut win = [0u8; 64];
        win[0] = 1;
        let mut wpos = 1;
        let mut digest = 1u64;
        let mut pos = start + MIN_SIZE - 64;
        let mut end = None;
        while pos < n {
            let b = data[pos];
            digest ^= out_t[win[wpos] as usize];
            win[wpos] = b;
            wpos = (wpos + 1) % 64;
            let idx = (digest >> shift) as usize;
            digest = ((digest << 8) | b as u64) ^ mod_t[idx];
            pos += 1;
            let len = pos - start;
            if len >= MIN_SIZE && ((digest & 0xfffff) == 0 || len >= MAX_SIZE) {
                assert_eq!(digest, ref_fingerprint(&data[pos - 64..pos], p));
                end = Some(pos);
                break;
            }
        }
        match end {
            Some(e) => {
                cuts.push(e - start);
                start = e;
            }
            None => {
                cuts.push(n - start);
                break;
            }
        }
    }
    cuts
}

// ---------------------------------------------------------------------------------------

#[test]
fn table_spot_values_spec() {
    let t = ChunkerTables::new(POL_V2);
    assert_eq!(t.pol(), POL_V2);
    assert_eq!(t.shift, 45);
    assert_eq!(t.out_table()[0], 0);
    assert_eq!(t.out_table()[1], 0x9b3b3feac1d35);
    assert_eq!(t.out_table()[2], 0x136767fd583a6a);
    assert_eq!(t.out_table()[255], 0xa8ad9a3978f4a);
    assert_eq!(t.mod_table()[0], 0);
    assert_eq!(t.mod_table()[1], 0x2948440c78e103);
    assert_eq!(t.mod_table()[2], 0x52908818f1c206);
    assert_eq!(t.mod_table()[255], 0x1feee1ad597e0b5e);
    let seq: Vec<u8> = (0..64).collect();
    assert_eq!(t.fingerprint(&seq), 0xc25038bfb2df9);
    assert_eq!(t.fingerprint(&[0xff; 64]), 0xde448f60c7ba6);
    assert_eq!(t.fingerprint(&[0; 64]), 0);
}

#[test]
fn table_spot_values_fixture() {
    let v = vectors();
    let spot = &v["table_spot_checks"];
    let pol = Pol::from_hex(spot["polynomial"].as_str().unwrap()).unwrap();
    assert_eq!(pol.deg() as u64, spot["degree"].as_u64().unwrap());
    let t = ChunkerTables::new(pol);
    for (name, table) in [("out_table", t.out_table()), ("mod_table", t.mod_table())] {
        let entries = spot[name].as_object().unwrap();
        assert!(!entries.is_empty());
        for (idx, val) in entries {
            let idx: usize = idx.parse().unwrap();
            assert_eq!(table[idx], hex_u64(val), "{name}[{idx}]");
        }
    }
    let seq: Vec<u8> = (0..64).collect();
    assert_eq!(
        t.fingerprint(&seq),
        hex_u64(&spot["fingerprint_of_bytes_00_to_3f"])
    );
    assert_eq!(
        t.fingerprint(&[0xff; 64]),
        hex_u64(&spot["fingerprint_of_64_bytes_ff"])
    );
    // The table-driven fingerprint agrees with the definition.
    assert_eq!(t.fingerprint(&seq), ref_fingerprint(&seq, pol.0));
}

#[test]
fn irreducibility_fixture() {
    let v = vectors();
    let cases = v["irreducibility"].as_object().unwrap();
    assert!(cases.len() >= 5);
    for (hex, expected) in cases {
        let p = Pol::from_hex(hex).unwrap();
        assert_eq!(p.is_irreducible(), expected.as_bool().unwrap(), "{hex}");
    }
}

#[test]
fn random_3m_vectors() {
    let v = vectors();
    let data = random_3m();
    assert_eq!(data.len() as u64, v["input"]["size"].as_u64().unwrap());
    assert_eq!(sha256_hex(&data), v["input"]["sha256"].as_str().unwrap());
    let cases = v["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 2);
    for case in cases {
        let pol = Pol::from_hex(case["chunker_polynomial"].as_str().unwrap()).unwrap();
        assert!(pol == POL_V1 || pol == POL_V2);
        let t = ChunkerTables::new(pol);
        let lengths = chunk_lengths(&t, &data);
        check_chunks(&data, &lengths, &case["chunks"], &pol.to_hex());
        assert_eq!(lengths, reference_chunks(&data, pol.0));
    }
}

#[test]
fn random_3m_spec_lengths() {
    let data = random_3m();
    let t2 = ChunkerTables::new(POL_V2);
    assert_eq!(chunk_lengths(&t2, &data), vec![1631975, 692311, 821442]);
    let t1 = ChunkerTables::new(POL_V1);
    assert_eq!(chunk_lengths(&t1, &data), vec![2208750, 936978]);
}

#[test]
fn constant_inputs() {
    let t = ChunkerTables::new(POL_V2);
    let zeros = vec![0u8; 1024 * 1024 + 100];
    assert_eq!(chunk_lengths(&t, &zeros), vec![524288, 524288, 100]);
    let ff = vec![0xffu8; 9 * 1024 * 1024];
    assert_eq!(chunk_lengths(&t, &ff), vec![8388608, 1048576]);

    let v = vectors();
    for case in v["constant_input_cases"].as_array().unwrap() {
        let input = case["input"].as_str().unwrap();
        let (n, kind) = input.split_once(' ').unwrap();
        let n: usize = n.parse().unwrap();
        let byte = if kind.contains("0xff") { 0xff } else { 0 };
        let data = vec![byte; n];
        let pol = Pol::from_hex(case["chunker_polynomial"].as_str().unwrap()).unwrap();
        let lengths = chunk_lengths(&ChunkerTables::new(pol), &data);
        check_chunks(&data, &lengths, &case["chunks"], input);
    }
}

#[test]
fn small_and_empty_inputs() {
    let t = ChunkerTables::new(POL_V2);
    assert_eq!(chunk_lengths(&t, &[]), Vec::<usize>::new());
    assert_eq!(chunk_lengths(&t, &[7]), vec![1]);
    assert_eq!(chunk_lengths(&t, &[0; MIN_SIZE]), vec![MIN_SIZE]);
    assert_eq!(chunk_lengths(&t, &[0; MIN_SIZE - 1]), vec![MIN_SIZE - 1]);
    assert_eq!(chunk_lengths(&t, &[0; MIN_SIZE + 1]), vec![MIN_SIZE, 1]);
    let mut c = Chunker::new(Arc::clone(&t));
    assert_eq!(c.next_boundary(&[]), None);
    assert_eq!(c.next_boundary(&[0; 100]), None);
    assert_eq!(c.pending(), 100);
    c.reset();
    assert_eq!(c.pending(), 0);
}

/// Polynomials restic would reject must still not panic or loop (garbage cut points are
/// acceptable; the config layer validates the polynomial).
#[test]
fn odd_polynomials_do_not_panic() {
    let data = build(&[(0, MIN_SIZE * 3), (1, 1000)], 3);
    for p in [0u64, 1, 2, 0x1ff, 0x20000000000001, u64::MAX, 1 << 63] {
        let t = ChunkerTables::new(Pol(p));
        let lengths = chunk_lengths(&t, &data);
        assert_eq!(lengths.iter().sum::<usize>(), data.len(), "{p:#x}");
        assert_eq!(
            chunk_split(&t, &data, &[100, SKIP + 3, MIN_SIZE * 2]),
            lengths
        );
    }
}

/// A chunk of exactly MAX bytes followed by a cut at the MAX boundary, fed in pieces that
/// end exactly at the boundary and one byte after.
#[test]
fn max_boundary_exact_pieces() {
    let t = ChunkerTables::new(POL_V2);
    let data = vec![0xffu8; MAX_SIZE + 10];
    for split in [
        MAX_SIZE - 1,
        MAX_SIZE,
        MAX_SIZE + 1,
        SKIP,
        SKIP + 64,
        MIN_SIZE,
    ] {
        let mut c = Chunker::new(Arc::clone(&t));
        let mut cuts = Vec::new();
        let mut off = 0;
        for piece in [&data[..split], &data[split..]] {
            let mut rest = piece;
            while let Some(n) = c.next_boundary(rest) {
                cuts.push(off + n);
                off += n;
                rest = &rest[n..];
            }
            off += rest.len();
        }
        assert_eq!(cuts, vec![MAX_SIZE], "split at {split}");
        assert_eq!(c.pending(), 10);
    }
}

// ---------------------------------------------------------------------------------------
// Property tests.

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e3779b97f4a7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d049bb133111eb);
    z ^ (z >> 31)
}

/// Builds test data from segments: 0 = pseudo-random, 1 = zeros (cuts everywhere),
/// 2 = 0xff (no content cut), 3 = a short repeating random pattern.
fn build(segments: &[(u8, usize)], seed: u64) -> Vec<u8> {
    let mut state = seed;
    let mut data = Vec::new();
    for &(kind, len) in segments {
        match kind {
            0 => {
                for _ in 0..len.div_ceil(8) {
                    data.extend_from_slice(&splitmix(&mut state).to_le_bytes());
                }
                data.truncate(data.len() - (len.div_ceil(8) * 8 - len));
            }
            1 => data.resize(data.len() + len, 0),
            2 => data.resize(data.len() + len, 0xff),
            _ => {
                let pat: Vec<u8> = (0..(splitmix(&mut state) % 200 + 1))
                    .map(|_| splitmix(&mut state) as u8)
                    .collect();
                data.extend(pat.iter().cycle().take(len));
            }
        }
    }
    data
}

fn segments() -> impl Strategy<Value = Vec<(u8, usize)>> {
    let seg = prop_oneof![
        6 => (Just(0u8), 0usize..1_500_000),
        2 => (Just(1u8), 0usize..200_000),
        1 => (Just(2u8), 0usize..9_000_000),
        1 => (Just(3u8), 0usize..600_000),
    ];
    prop::collection::vec(seg, 0..6)
}

/// Chunks `data` fed in the pieces given by sorted `splits`.
fn chunk_split(t: &Arc<ChunkerTables>, data: &[u8], splits: &[usize]) -> Vec<usize> {
    let mut c = Chunker::new(Arc::clone(t));
    let mut lengths = Vec::new();
    let mut chunk_start = 0;
    let mut prev = 0;
    for &s in splits.iter().chain(std::iter::once(&data.len())) {
        let mut pos = prev;
        while let Some(n) = c.next_boundary(&data[pos..s]) {
            assert!(n >= 1 && pos + n <= s);
            pos += n;
            lengths.push(pos - chunk_start);
            chunk_start = pos;
        }
        prev = s;
    }
    if chunk_start < data.len() {
        lengths.push(data.len() - chunk_start);
    }
    lengths
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn split_invariance_and_bounds(
        segs in segments(),
        seed in any::<u64>(),
        raw_splits in prop::collection::vec(any::<prop::sample::Index>(), 0..40),
        pol_v1 in any::<bool>(),
    ) {
        let data = build(&segs, seed);
        let pol = if pol_v1 { POL_V1 } else { POL_V2 };
        let t = ChunkerTables::new(pol);
        let whole = chunk_lengths(&t, &data);

        // Same as the independent reference.
        prop_assert_eq!(&whole, &reference_chunks(&data, pol.0));

        // Bounds and concatenation.
        prop_assert_eq!(whole.iter().sum::<usize>(), data.len());
        if let Some((_, init)) = whole.split_last() {
            for &l in init {
                prop_assert!((MIN_SIZE..=MAX_SIZE).contains(&l), "chunk of {}", l);
            }
        }
        prop_assert!(whole.iter().all(|&l| l > 0 && l <= MAX_SIZE));

        // Random split points, plus points right around chunk boundaries.
        let mut splits: Vec<usize> = raw_splits.iter().map(|i| i.index(data.len() + 1)).collect();
        let mut off = 0;
        for &l in &whole {
            for d in [0usize, 1, 63, 64, 65, SKIP] {
                splits.push((off + d).min(data.len()));
                splits.push((off + l).saturating_sub(d));
            }
            off += l;
        }
        splits.sort_unstable();
        prop_assert_eq!(&chunk_split(&t, &data, &splits), &whole);

        // Tiny pieces near the start (ring path) and 4 KiB pieces throughout.
        let small: Vec<usize> = (1..data.len()).step_by(4096).collect();
        prop_assert_eq!(&chunk_split(&t, &data, &small), &whole);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Zero runs planted close together right after the skip phase give several cut
    /// candidates inside one multi-lane block, in any order of lanes.
    #[test]
    fn planted_cut_candidates(
        seed in any::<u64>(),
        runs in prop::collection::vec((0usize..140_000, 60usize..80), 1..6),
        raw_splits in prop::collection::vec(any::<prop::sample::Index>(), 0..4),
    ) {
        let mut data = build(&[(0, MIN_SIZE + 300_000)], seed);
        for &(at, len) in &runs {
            let start = SKIP + at;
            data[start..start + len].fill(0);
        }
        let t = ChunkerTables::new(POL_V2);
        let whole = chunk_lengths(&t, &data);
        prop_assert_eq!(&whole, &reference_chunks(&data, POL_V2.0));
        let mut splits: Vec<usize> = raw_splits.iter().map(|i| i.index(data.len() + 1)).collect();
        splits.sort_unstable();
        prop_assert_eq!(&chunk_split(&t, &data, &splits), &whole);
    }
}

/// Every single-byte piece across a content cut: exercises the ring path everywhere.
#[test]
fn byte_by_byte_matches() {
    let data = build(&[(0, 2_000_000)], 42);
    let t = ChunkerTables::new(POL_V2);
    let whole = chunk_lengths(&t, &data);
    assert!(whole.len() >= 2, "{whole:?}");
    let splits: Vec<usize> = (SKIP - 10..data.len()).collect();
    assert_eq!(chunk_split(&t, &data, &splits), whole);
}

/// Prints throughput (best of several runs); run with
/// `cargo test --release -p cairn-repo --lib chunker::tests::throughput -- --nocapture`.
#[test]
fn throughput() {
    let data = build(&[(0, 64 * 1024 * 1024)], 7);
    let t = ChunkerTables::new(POL_V2);
    let mut best = f64::MAX;
    let (mut rolled, mut cuts) = (0, 0);
    for _ in 0..12 {
        let start = std::time::Instant::now();
        let mut c = Chunker::new(Arc::clone(&t));
        let mut rest = &data[..];
        (rolled, cuts) = (0usize, 0usize);
        while let Some(n) = c.next_boundary(rest) {
            cuts += 1;
            rolled += n - SKIP;
            rest = &rest[n..];
        }
        rolled += rest.len().saturating_sub(SKIP);
        best = best.min(start.elapsed().as_secs_f64());
    }
    assert!(cuts > 10);
    println!(
        "chunker: {} MiB in {:.1} ms: {:.0} MB/s overall, {:.0} MB/s on rolled bytes ({} cuts)",
        data.len() >> 20,
        best * 1e3,
        data.len() as f64 / best / 1e6,
        rolled as f64 / best / 1e6,
        cuts
    );
}
