//! Fuzz-target bodies for Cairn's parsers, shared by the `cargo fuzz` binaries in
//! `fuzz_targets/` (one-line wrappers) and usable from plain tests.
//!
//! Every target panics — which libFuzzer reports as a crash — when a parser panics, hangs
//! (libFuzzer `-timeout`), allocates more than its stated bound (see [`alloc::bounded`]), or
//! breaks a round trip. The input layouts are described on each function.

pub mod alloc;
pub mod formats;
pub mod input;
pub mod json;
pub mod other;

use cairn_repo::crypto::MasterKey;

/// The master key of the v2 fixture repository (`expected/repo-v2/masterkey.plain.json`);
/// pack targets use it so the fixture packs are valid seeds.
pub const FIXTURE_MASTER_KEY: &str = r#"{"mac":{"k":"YE4CKW0eh/98DWpXaixN6Q==","r":"MwiaBvyFZAnkxAQK/Kq5Dg=="},"encrypt":"VOeDjWMuAMnF+MsHBrAunZTdkpevm1YEp1rAPwl6CTg="}"#;

/// The chunker polynomial of the v2 fixture repository.
pub const FIXTURE_POLYNOMIAL: u64 = 0x0029_4844_0c78_e103;

/// Slack allowed on top of `factor × input` in allocation bounds (small fixed structures,
/// error strings, thread-local contexts).
pub const SLACK: usize = 64 * 1024;

/// The fixture master key, parsed once.
pub fn fixture_key() -> &'static MasterKey {
    static KEY: std::sync::OnceLock<MasterKey> = std::sync::OnceLock::new();
    KEY.get_or_init(
        || match MasterKey::from_json(FIXTURE_MASTER_KEY.as_bytes()) {
            Ok(k) => k,
            Err(e) => panic!("fixture master key: {e}"),
        },
    )
}

/// A fuzz target body.
pub type Target = fn(&[u8]);

/// All targets by name (for the `seed_corpus` and `replay` examples and tests).
pub const TARGETS: &[(&str, Target)] = &[
    ("pack_header", formats::pack_header),
    ("pack_tail", formats::pack_tail),
    ("pack_file", formats::pack_file),
    ("index_json", json::index_json),
    ("tree", json::tree),
    ("node", json::node),
    ("go_unquote", json::go_unquote),
    ("config", json::config),
    ("key_file", json::key_file),
    ("snapshot", json::snapshot),
    ("lock", json::lock),
    ("compress", formats::compress),
    ("crypto", formats::crypto),
    ("chunker", other::chunker),
    ("filter", other::filter),
];

#[cfg(test)]
mod tests {
    use super::*;

    /// Every target accepts trivial inputs without a finding.
    #[test]
    fn targets_accept_trivial_inputs() {
        for (name, f) in TARGETS {
            for input in [
                &b""[..],
                b"\0",
                b"{}",
                b"[]",
                b"\xff\xff\xff\xff",
                b"{\"nodes\":[]}",
            ] {
                eprintln!("{name}: {input:?}");
                f(input);
            }
        }
    }

    /// The committed crafted inputs and crash reproducers (`fuzz/seeds/<target>/`) pass:
    /// the parser bugs they found stay fixed.
    #[test]
    fn committed_seeds_pass() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds");
        let mut n = 0;
        for (name, f) in TARGETS {
            let Ok(dir) = std::fs::read_dir(root.join(name)) else {
                continue;
            };
            for e in dir {
                let path = e.unwrap().path();
                eprintln!("{name}: {}", path.display());
                f(&std::fs::read(&path).unwrap());
                n += 1;
            }
        }
        assert!(n >= 7, "only {n} seeds found under {}", root.display());
    }
}
