//! Complexity probe: libFuzzer's inputs stay small (4 KiB by default), so quadratic
//! behaviour never shows up as a timeout. This feeds each parser a large crafted input of
//! `n` and `4n` elements and prints the time ratio (≈4 for linear work, ≈16 for quadratic):
//!
//! ```sh
//! cd fuzz && cargo run --release --example scale_probe [-- N]   # default N = 20000
//! ```
//!
//! It found the quadratic duplicate-key handling of `generic_attributes` in node decoding.

use std::time::{Duration, Instant};

/// One probe: builds and parses an input with `n` elements.
type Probe<'a> = Box<dyn Fn(usize) + 'a>;

fn time(f: &dyn Fn(usize), n: usize) -> Duration {
    let s = Instant::now();
    f(n);
    s.elapsed()
}

fn list(n: usize, f: impl Fn(usize) -> String) -> String {
    (0..n).map(f).collect::<Vec<_>>().join(",")
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20_000);
    let id = "ab".repeat(32);
    let id = id.as_str();
    let probes: Vec<(&str, Probe<'_>)> = vec![
        (
            "index: duplicate blobs",
            Box::new(move |n| {
                let blobs = list(n, |i| {
                    format!(
                        r#"{{"id":"{id}","type":"data","offset":{},"length":40}}"#,
                        i % 3
                    )
                });
                let json = format!(r#"{{"packs":[{{"id":"{id}","blobs":[{blobs}]}}]}}"#);
                let f = cairn_repo::index::IndexFile::from_json(json.as_bytes()).unwrap();
                let mut idx = cairn_repo::index::Index::new();
                idx.add_index_file(&f);
                idx.add_index_file(&f);
                idx.compact();
            }),
        ),
        (
            "tree: many nodes",
            Box::new(move |n| {
                let nodes = list(n, |i| {
                    format!(r#"{{"name":"{i:08}","type":"file","content":["{id}"]}}"#)
                });
                let t =
                    cairn_repo::tree::Tree::decode(format!(r#"{{"nodes":[{nodes}]}}"#).as_bytes())
                        .unwrap();
                t.encode().unwrap();
            }),
        ),
        (
            "node: generic_attributes keys",
            Box::new(|n| {
                let attrs = list(n, |i| format!(r#""k{i}":{{"v":{i}}}"#));
                let json = format!(r#"{{"name":"x","generic_attributes":{{{attrs}}}}}"#);
                cairn_repo::node::Node::from_json(json.as_bytes()).unwrap();
            }),
        ),
        (
            "node: extended_attributes",
            Box::new(|n| {
                let xa = list(n, |i| format!(r#"{{"name":"u.{i}","value":"YQ=="}}"#));
                let json = format!(r#"{{"name":"x","extended_attributes":[{xa}]}}"#);
                cairn_repo::node::Node::from_json(json.as_bytes()).unwrap();
            }),
        ),
        (
            "snapshot: tags and paths",
            Box::new(move |n| {
                let tags = list(n, |i| format!(r#""t{i}""#));
                let json = format!(r#"{{"tree":"{id}","tags":[{tags}],"paths":[{tags}]}}"#);
                cairn_repo::snapshot::Snapshot::from_json(json.as_bytes()).unwrap();
            }),
        ),
        (
            "go_unquote: escapes",
            Box::new(|n| {
                cairn_repo::gojson::go_unquote(&"\\x41\\u00e9".repeat(n)).unwrap();
            }),
        ),
        (
            "filter: ** segments × path depth",
            Box::new(|n| {
                let parts = list(
                    n / 10,
                    |i| if i % 2 == 0 { "**".into() } else { "a".into() },
                );
                let pat = format!("/{}/b", parts.replace(',', "/"));
                let l = cairn_engine::filter::PatternList::new(&[pat.as_bytes()], false).unwrap();
                let path = "/a".repeat(n / 5);
                let _ = l.matches_with_child(path.as_bytes());
            }),
        ),
        (
            "filter: glob stars",
            Box::new(|n| {
                let g = format!("{}b", "*a".repeat(n / 10));
                let l = cairn_engine::filter::PatternList::new(&[g.as_bytes()], false).unwrap();
                let _ = l.matches(format!("/{}", "a".repeat(n)).as_bytes());
            }),
        ),
    ];
    for (name, f) in &probes {
        let a = time(f.as_ref(), n);
        let b = time(f.as_ref(), 4 * n);
        let ratio = b.as_secs_f64() / a.as_secs_f64().max(1e-9);
        let flag = if ratio > 10.0 {
            "  <-- superlinear?"
        } else {
            ""
        };
        println!("{name}: {a:.1?} -> {b:.1?} (×{ratio:.1}){flag}");
    }
}
