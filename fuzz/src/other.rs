//! The content-defined chunker and restic path filters.

use std::sync::{Arc, OnceLock};

use cairn_engine::filter::{self, PatternList};
use cairn_repo::chunker::{self, Chunker, ChunkerTables, MAX_SIZE, MIN_SIZE, Pol};

use crate::alloc::bounded;
use crate::input::{Cursor, Rng};
use crate::{FIXTURE_POLYNOMIAL, SLACK};

/// Largest stream the chunker target builds (covers a forced cut at `MAX_SIZE`).
const MAX_STREAM: usize = MAX_SIZE + 2 * MIN_SIZE;

const SPLIT_MASK: u64 = (1 << 20) - 1;

fn fixture_tables() -> Arc<ChunkerTables> {
    static T: OnceLock<Arc<ChunkerTables>> = OnceLock::new();
    Arc::clone(T.get_or_init(|| ChunkerTables::new(Pol(FIXTURE_POLYNOMIAL))))
}

/// The chunker on a generated stream. Layout: `u8 flags ‖ u64 pol ‖ u64 seed ‖ u16 size ‖
/// piece sizes (u16 each)`. flags bit 0: use `pol` instead of the fixture polynomial (any
/// value must be accepted without panicking); bits 1–2: content (random, the piece bytes
/// repeated, sparse, constant); bits 3–7 scale the piece sizes. Checks chunk size limits,
/// that cut points do not depend on how the stream is split into calls, and (for a degree-53
/// polynomial) the cut rule at every cut and at sampled non-cut positions.
pub fn chunker(data: &[u8]) {
    let mut c = Cursor::new(data);
    let flags = c.u8();
    let pol = c.u64();
    let seed = c.u64();
    // Quadratic in the fuzzer's value: mostly smaller streams (faster runs), up to MAX_STREAM.
    let v = u64::from(c.u16());
    let size = (v * v * MAX_STREAM as u64 / (65535 * 65535)) as usize;
    let pieces = c.rest();
    let tables = if flags & 1 == 1 {
        ChunkerTables::new(Pol(pol))
    } else {
        fixture_tables()
    };

    let mut stream = vec![0u8; size];
    let mut rng = Rng::new(seed);
    match (flags >> 1) & 3 {
        0 => rng.fill(&mut stream),
        1 if !pieces.is_empty() => {
            for (d, s) in stream.iter_mut().zip(pieces.iter().cycle()) {
                *d = *s;
            }
        }
        2 => {
            for _ in 0..size / 4096 + 1 {
                let i = (rng.next_u64() as usize) % size.max(1);
                if let Some(b) = stream.get_mut(i) {
                    *b = rng.next_u64() as u8;
                }
            }
        }
        _ => stream.fill(seed as u8),
    }

    let lens = chunker::chunk_lengths(&tables, &stream);
    assert_eq!(
        lens.iter().sum::<usize>(),
        size,
        "chunks do not cover the stream"
    );
    if let Some((last, rest)) = lens.split_last() {
        assert!((1..=MAX_SIZE).contains(last), "last chunk of {last} bytes");
        for &l in rest {
            assert!((MIN_SIZE..=MAX_SIZE).contains(&l), "chunk of {l} bytes");
        }
    }

    // Same cuts when fed in pieces.
    let scale = usize::from(flags >> 3) * 1024 + 1;
    let mut sizes = pieces
        .chunks(2)
        .map(|p| usize::from(p[0]) | usize::from(p.get(1).copied().unwrap_or(0)) << 8)
        .map(|v| v * scale + 1)
        .cycle();
    let mut ch = Chunker::new(Arc::clone(&tables));
    let mut got = Vec::new();
    let mut cur = 0usize;
    let mut rest = &stream[..];
    while !rest.is_empty() {
        let n = sizes.next().unwrap_or(usize::MAX).min(rest.len());
        let (mut piece, tail) = rest.split_at(n);
        rest = tail;
        loop {
            match ch.next_boundary(piece) {
                Some(k) => {
                    assert!(
                        k >= 1 && k <= piece.len(),
                        "boundary {k} outside a {}-byte piece",
                        piece.len()
                    );
                    got.push(cur + k);
                    cur = 0;
                    piece = &piece[k..];
                }
                None => {
                    cur += piece.len();
                    assert_eq!(ch.pending(), cur, "pending() disagrees");
                    break;
                }
            }
        }
    }
    if cur > 0 {
        got.push(cur);
    }
    assert_eq!(got, lens, "cut points depend on the split");

    if tables.pol().deg() == 53 {
        let mut start = 0usize;
        let mut rng = Rng::new(seed ^ 0x5555);
        for (i, &l) in lens.iter().enumerate() {
            let chunk = &stream[start..start + l];
            let fp = |end: usize| tables.fingerprint(&chunk[end - 64..end]) & SPLIT_MASK;
            if i + 1 < lens.len() && l < MAX_SIZE {
                assert_eq!(fp(l), 0, "cut at {l} without the split condition");
            }
            let candidates = l.saturating_sub(MIN_SIZE);
            for _ in 0..8.min(candidates) {
                let end = MIN_SIZE + (rng.next_u64() as usize) % candidates;
                assert_ne!(fp(end), 0, "missed a cut at {end} in a {l}-byte chunk");
            }
            start += l;
        }
    }
}

/// restic path filters. Layout: `u8 flags ‖ patterns ‖ 0x00 ‖ paths`, both lists separated
/// by `\n`. flags bit 0: case-insensitive; bit 1: read the patterns as a pattern file
/// (`parse_pattern_text`, with `$VAR` expansion). Checks that list validity agrees with the
/// single patterns, that `matches` agrees with `matches_with_child` and with the "last
/// matching pattern decides" rule over `match_pattern`, and bounds memory and time.
pub fn filter(data: &[u8]) {
    let Some((&flags, body)) = data.split_first() else {
        return;
    };
    let ci = flags & 1 == 1;
    let (pat_text, path_text) = match body.iter().position(|&b| b == 0) {
        Some(i) => (&body[..i], &body[i + 1..]),
        None => (body, &b""[..]),
    };
    let patterns: Vec<Vec<u8>> = if flags & 2 == 2 {
        bounded("parse_pattern_text", pat_text.len(), 8, SLACK, || {
            filter::parse_pattern_text(pat_text, |name| (name.len() < 4).then(|| b"v/*".to_vec()))
        })
    } else {
        pat_text
            .split(|&b| b == b'\n')
            .map(<[u8]>::to_vec)
            .collect()
    };
    let pat_bytes: usize = patterns.iter().map(Vec::len).sum::<usize>() + patterns.len();
    let list = bounded("PatternList::new", pat_bytes, 64, SLACK, || {
        PatternList::new(&patterns, ci)
    });
    let singles_ok = patterns
        .iter()
        .all(|p| filter::validate_patterns(&[p]).is_ok());
    if !ci {
        assert_eq!(
            list.is_ok(),
            singles_ok,
            "list validity differs from its patterns'"
        );
    }
    let Ok(list) = list else {
        return;
    };
    assert!(list.len() <= patterns.len());

    for path in path_text.split(|&b| b == b'\n') {
        let m = list.matches(path);
        let (m2, child) = list.matches_with_child(path);
        assert_eq!(m, m2, "matches and matches_with_child disagree on {path:?}");
        assert_eq!(list.child_may_match(path), child);
        if path.is_empty() {
            assert!(!m && !child);
            continue;
        }
        if !ci {
            let mut expect = false;
            for p in patterns.iter().filter(|p| !p.is_empty()) {
                match filter::match_pattern(p, path) {
                    Ok(true) => expect = p.first() != Some(&b'!'),
                    Ok(false) => {}
                    Err(e) => panic!("valid pattern {p:?} failed on {path:?}: {e}"),
                }
            }
            assert_eq!(
                m, expect,
                "list result differs from the last matching pattern"
            );
        }
    }
}
