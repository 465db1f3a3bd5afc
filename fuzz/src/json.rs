//! JSON documents: index files, trees and nodes, Go string quoting, config, key files,
//! snapshots and locks. Each target decodes the input, checks the allocation bound, and
//! for successfully decoded values checks that encoding and decoding again gives the same
//! value and the same bytes.

use std::collections::HashSet;

use cairn_repo::config::Config;
use cairn_repo::gojson::{self, RawJson};
use cairn_repo::index::{BlobLocation, Index, IndexFile};
use cairn_repo::key::KeyFile;
use cairn_repo::lock::LockInfo;
use cairn_repo::node::Node;
use cairn_repo::snapshot::Snapshot;
use cairn_repo::tree::Tree;

use crate::SLACK;
use crate::alloc::bounded;

/// Allocation factor for JSON documents decoded into structs (serde / the tree reader).
/// The densest inputs are arrays of tiny elements (`"",` → a 24-byte `String`; `{},` → a
/// `Node`), and vectors may hold twice their length while growing.
pub const JSON_FACTOR: usize = 40;

/// Allocation factor for trees and nodes: each node object (at least 3 bytes, `{},`)
/// becomes one `Node` in a growing vector — the cap documented on `Tree::decode`.
pub fn node_factor() -> usize {
    std::mem::size_of::<Node>() + 32
}

/// `IndexFile::from_json`, JSON round trip, and loading the file into an in-memory
/// [`Index`] where every entry must be found again.
pub fn index_json(data: &[u8]) {
    let Ok(f) = bounded(
        "IndexFile::from_json",
        data.len(),
        JSON_FACTOR,
        SLACK,
        || IndexFile::from_json(data),
    ) else {
        return;
    };
    let json = f.to_json();
    let again = IndexFile::from_json(&json);
    assert_eq!(again.as_ref().ok(), Some(&f), "index JSON round trip");
    assert_eq!(
        again.map(|g| g.to_json()).ok(),
        Some(json.clone()),
        "index JSON not stable"
    );

    let mut index = Index::new();
    index.add_index_file(&f);
    let mut distinct = HashSet::new();
    for p in &f.packs {
        assert!(index.has_pack(&p.id));
        let sorted = p.pack_blobs();
        assert!(sorted.windows(2).all(|w| w[0].offset <= w[1].offset));
        for b in &p.blobs {
            let loc = BlobLocation {
                pack_id: p.id,
                offset: b.offset,
                length: b.length,
                uncompressed_length: b.uncompressed_length,
            };
            distinct.insert((b.blob_type, b.id, loc));
            assert!(
                index.contains(b.blob_type, &b.id),
                "blob {b:?} not in the index"
            );
            assert!(
                index.get_all(b.blob_type, &b.id).contains(&loc),
                "location {loc:?} of {b:?} missing"
            );
        }
    }
    assert!(index.len() >= distinct.len() && index.len() <= f.blob_count());
    for (t, id, loc) in index.iter() {
        assert!(
            distinct.contains(&(t, id, loc)),
            "index invented {t:?} {id} {loc:?}"
        );
    }
    index.compact();
    for (t, id, loc) in &distinct {
        assert!(
            index.get_all(*t, id).contains(loc),
            "lost {loc:?} after compact"
        );
    }
}

/// Round trip of a decoded tree that is sorted: encode, decode, encode gives equal values
/// and identical bytes, and every name is found.
fn tree_round_trip(t: &Tree) {
    let enc = match t.encode() {
        Ok(e) => e,
        Err(e) => panic!("sorted tree does not encode: {e}"),
    };
    let back = match Tree::decode(&enc) {
        Ok(b) => b,
        Err(e) => panic!(
            "encoded tree does not decode: {e}\n{}",
            String::from_utf8_lossy(&enc)
        ),
    };
    assert_eq!(&back, t, "tree round trip (value)");
    assert_eq!(back.encode().ok(), Some(enc), "tree round trip (bytes)");
    for n in &t.nodes {
        assert_eq!(t.find(&n.name).map(|m| &m.name), Some(&n.name));
    }
}

/// `Tree::decode`; a decoded tree whose names are sorted (after sorting, if needed) must
/// survive encode → decode unchanged.
pub fn tree(data: &[u8]) {
    let Ok(mut t) = bounded("Tree::decode", data.len(), node_factor(), SLACK, || {
        Tree::decode(data)
    }) else {
        return;
    };
    for n in &t.nodes {
        node_round_trip(n);
    }
    if t.check_sorted().is_err() {
        assert!(t.encode().is_err(), "unsorted tree encoded");
        t.sort();
        t.nodes.dedup_by(|a, b| a.name == b.name);
        t.nodes.retain(|n| !n.name.is_empty());
    }
    tree_round_trip(&t);
}

fn node_round_trip(n: &Node) {
    let enc = n.to_json();
    let back = match Node::from_json(&enc) {
        Ok(b) => b,
        Err(e) => panic!(
            "encoded node does not decode: {e}\n{}",
            String::from_utf8_lossy(&enc)
        ),
    };
    assert_eq!(&back, n, "node round trip (value)");
    assert_eq!(back.to_json(), enc, "node round trip (bytes)");
}

/// `Node::from_json` with a round trip.
pub fn node(data: &[u8]) {
    if let Ok(n) = bounded("Node::from_json", data.len(), node_factor(), SLACK, || {
        Node::from_json(data)
    }) {
        node_round_trip(&n);
    }
}

/// Go string quoting: `go_unquote` on the input (as UTF-8, lossily), `go_quote` round trips
/// of the raw input and of every successful unquote, Go JSON string escaping checked
/// against `serde_json`, and `RawJson` validation/compaction.
pub fn go_unquote(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    // Output ≤ input; error messages quote the input Debug-escaped (≤ 6 bytes per byte,
    // e.g. `\u{19}`), growing by doubling.
    let res = bounded("go_unquote", text.len(), 16, 1024, || {
        gojson::go_unquote(&text)
    });
    if let Ok(raw) = &res {
        let q = gojson::go_quote(raw);
        assert_eq!(
            gojson::go_unquote(&q).as_ref(),
            Ok(raw),
            "unquote(quote(unquote(x)))"
        );
    }
    let q = gojson::go_quote(data);
    assert!(
        q.chars().all(gojson::is_print),
        "go_quote left a non-printable rune: {q:?}"
    );
    assert_eq!(
        gojson::go_unquote(&q).as_deref(),
        Ok(data),
        "unquote(quote(x)) for {q:?}"
    );

    // Go's JSON string escaping must be valid JSON for the same string.
    let mut out = Vec::new();
    gojson::write_json_string(&mut out, &text);
    let parsed: Result<String, _> = serde_json::from_slice(&out);
    assert_eq!(parsed.ok().as_deref(), Some(&*text), "write_json_string");
    out.clear();
    gojson::write_json_bytes_lossy(&mut out, data);
    let parsed: Result<String, _> = serde_json::from_slice(&out);
    // Like Go: one U+FFFD per invalid byte (from_utf8_lossy uses one per invalid sequence).
    let mut per_byte = String::new();
    for chunk in data.utf8_chunks() {
        per_byte.push_str(chunk.valid());
        per_byte.extend(chunk.invalid().iter().map(|_| '\u{fffd}'));
    }
    assert_eq!(parsed.ok(), Some(per_byte), "write_json_bytes_lossy");

    // Compaction escapes `<` `>` `&` as `\u003c`…: up to 6 bytes per byte, growing by doubling.
    if let Ok(rj) = bounded("RawJson::new", data.len(), 16, 1024, || RawJson::new(data)) {
        let again = RawJson::new(rj.as_bytes());
        assert_eq!(
            again.as_ref().ok(),
            Some(&rj),
            "RawJson compaction not idempotent"
        );
        // Compaction keeps the value (serde_json accepts what the reader accepts, except
        // for invalid UTF-8 inside strings, which Go also keeps).
        if std::str::from_utf8(data).is_ok()
            && let (Ok(a), Ok(b)) = (
                serde_json::from_slice::<serde_json::Value>(data),
                rj.to_value(),
            )
        {
            assert_eq!(a, b, "RawJson changed the value");
        }
    }
}

/// `Config::from_json` with a round trip.
pub fn config(data: &[u8]) {
    if let Ok(c) = bounded("Config::from_json", data.len(), JSON_FACTOR, SLACK, || {
        Config::from_json(data)
    }) {
        let json = c.to_json();
        let back = Config::from_json(&json);
        assert_eq!(back.as_ref().ok(), Some(&c), "config round trip");
        assert_eq!(back.map(|b| b.to_json()).ok(), Some(json));
    }
}

/// `KeyFile::parse` with a round trip; key files with cheap scrypt parameters are also
/// opened with the fixture password.
pub fn key_file(data: &[u8]) {
    let Ok(kf) = bounded("KeyFile::parse", data.len(), JSON_FACTOR, SLACK, || {
        KeyFile::parse(data)
    }) else {
        return;
    };
    let json = match kf.to_json() {
        Ok(j) => j,
        Err(e) => panic!("valid key file does not encode: {e}"),
    };
    assert_eq!(
        KeyFile::parse(&json).ok().as_ref(),
        Some(&kf),
        "key file round trip"
    );
    let p = kf.params();
    if p.n <= 1024 && u64::from(p.r) * u64::from(p.p) <= 8 {
        let _ = kf.open(b"fixture-password");
    }
}

/// `Snapshot::from_json` with a round trip (value and bytes).
pub fn snapshot(data: &[u8]) {
    if let Ok(s) = bounded(
        "Snapshot::from_json",
        data.len(),
        JSON_FACTOR,
        SLACK,
        || Snapshot::from_json(data),
    ) {
        let json = s.to_json();
        let back = match Snapshot::from_json(&json) {
            Ok(b) => b,
            Err(e) => panic!(
                "snapshot does not re-decode: {e}\n{}",
                String::from_utf8_lossy(&json)
            ),
        };
        assert_eq!(back, s, "snapshot round trip (value)");
        assert_eq!(back.to_json(), json, "snapshot round trip (bytes)");
        assert!(s.has_tags(&s.tags));
    }
}

/// `LockInfo::from_json` with a round trip and a staleness check (never against this
/// host, so no process is probed).
pub fn lock(data: &[u8]) {
    if let Ok(l) = bounded(
        "LockInfo::from_json",
        data.len(),
        JSON_FACTOR,
        SLACK,
        || LockInfo::from_json(data),
    ) {
        let json = l.to_json();
        assert_eq!(
            LockInfo::from_json(&json).ok().as_ref(),
            Some(&l),
            "lock round trip"
        );
        let now = chrono::DateTime::parse_from_rfc3339("2030-01-01T00:00:00+01:00");
        if let Ok(now) = now
            && l.hostname != "\u{0}fuzz"
        {
            let _ = l.is_stale_on_host(now, "\u{0}fuzz");
        }
        let _ = l.parsed_time();
    }
}
