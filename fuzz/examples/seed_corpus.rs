//! Builds seed corpora for every fuzz target from the restic fixtures:
//!
//! ```sh
//! cd fuzz && cargo run --example seed_corpus [-- OUT_DIR]   # default: fuzz/corpus
//! ```
//!
//! Fixtures are read from `$CAIRN_FIXTURES` or `../../shared/fixtures` (relative to this
//! crate). Crafted inputs and saved crash reproducers under `fuzz/seeds/<target>/` are
//! copied in as well. Output files are named by the SHA-256 of their content.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use cairn_repo::Id;
use cairn_repo::compress;
use cairn_repo::crypto::MasterKey;
use cairn_repo::gojson;
use cairn_repo::key::{KdfParams, KeyFile};
use cairn_repo::pack::{self, PackTail};
use cairn_repo::tree::Tree;

type Files = BTreeMap<String, Vec<u8>>;

/// Seeds per target, deduplicated by content.
#[derive(Default)]
struct Seeds(BTreeMap<&'static str, BTreeMap<Id, Vec<u8>>>);

impl Seeds {
    fn add(&mut self, target: &'static str, data: impl Into<Vec<u8>>) {
        let data = data.into();
        self.0
            .entry(target)
            .or_default()
            .insert(Id::hash(&data), data);
    }

    fn with_prefix(&mut self, target: &'static str, prefix: &[u8], data: &[u8]) {
        let mut v = prefix.to_vec();
        v.extend_from_slice(data);
        self.add(target, v);
    }
}

fn fixtures() -> PathBuf {
    std::env::var_os("CAIRN_FIXTURES").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures"),
        PathBuf::from,
    )
}

fn read_tar(path: &Path) -> Files {
    let f = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(f));
    let mut out = Files::new();
    for e in ar.entries().expect("tar entries") {
        let mut e = e.expect("tar entry");
        if !e.header().entry_type().is_file() {
            continue;
        }
        let name = e.path().expect("tar path").to_string_lossy().into_owned();
        let mut buf = Vec::new();
        e.read_to_end(&mut buf).expect("tar read");
        out.insert(name, buf);
    }
    out
}

fn read_dir_files(dir: &Path) -> Vec<Vec<u8>> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    paths
        .iter()
        .filter(|p| p.is_file())
        .filter_map(|p| std::fs::read(p).ok())
        .collect()
}

/// Seeds from one extracted fixture repository.
fn repo_seeds(seeds: &mut Seeds, files: &Files, repo: &str, version: u32, key: &MasterKey) {
    let vflag = u8::from(version == 2);
    for (name, raw) in files {
        let Some(rel) = name.strip_prefix(&format!("{repo}/")) else {
            continue;
        };
        let kind = rel.split('/').next().unwrap_or("");
        match kind {
            "keys" => seeds.add("key_file", raw.clone()),
            "config" => {
                seeds.add("crypto", raw.clone());
                if let Ok(p) = key.open(raw) {
                    seeds.add("config", p);
                }
            }
            "index" | "snapshots" | "locks" => {
                seeds.add("crypto", raw.clone());
                let Ok(payload) = key.open(raw) else { continue };
                seeds.with_prefix("compress", &[vflag, 0, 0, 0, 0], &payload);
                let Ok(json) = compress::decode_unpacked(version, payload) else {
                    continue;
                };
                let target = match kind {
                    "index" => "index_json",
                    "snapshots" => "snapshot",
                    _ => "lock",
                };
                seeds.add(target, json);
            }
            "data" => pack_seeds(seeds, raw, version, key),
            _ => {}
        }
    }
}

fn pack_seeds(seeds: &mut Seeds, raw: &[u8], version: u32, key: &MasterKey) {
    let vflag = u8::from(version == 2);
    // pack_file targets use the v2 fixture key; larger packs would make libFuzzer's
    // max_len huge.
    if version == 2 && raw.len() <= 64 * 1024 {
        seeds.with_prefix("pack_file", &[1], raw);
        seeds.with_prefix("pack_file", &[0], raw);
    }
    let Ok(PackTail::Blobs(blobs)) =
        pack::parse_pack_tail(key, raw, raw.len() as u64, "seed", version)
    else {
        return;
    };
    let header = pack::encode_header(&blobs);
    seeds.add("pack_header", header.clone());
    let mut prefix = (raw.len() as u64).to_le_bytes().to_vec();
    prefix.push(vflag);
    prefix.extend_from_slice(&[0; 4]);
    seeds.with_prefix("pack_tail", &prefix, &header);
    for b in &blobs {
        let Some(sealed) = raw.get(b.offset as usize..b.end() as usize) else {
            continue;
        };
        if sealed.len() <= 4096 {
            seeds.add("crypto", sealed.to_vec());
        }
        let Ok(plain) = key.open(sealed) else {
            continue;
        };
        if let Some(n) = b.uncompressed_length
            && plain.len() <= 64 * 1024
        {
            let mut p = vec![0x31];
            p.extend_from_slice(&n.to_le_bytes());
            seeds.with_prefix("compress", &p, &plain);
        }
        if b.blob_type == cairn_repo::BlobType::Tree
            && let Ok(data) = pack::read_blob(key, sealed, b)
        {
            tree_seeds(seeds, &data);
        }
    }
}

fn tree_seeds(seeds: &mut Seeds, data: &[u8]) {
    seeds.add("tree", data.to_vec());
    if let Ok(t) = Tree::decode(data) {
        for n in &t.nodes {
            seeds.add("node", n.to_json());
            seeds.add("go_unquote", gojson::go_quote(&n.name));
        }
    }
}

/// Inputs no fixture provides.
fn crafted(seeds: &mut Seeds) {
    let master = match MasterKey::from_json(cairn_fuzz::FIXTURE_MASTER_KEY.as_bytes()) {
        Ok(k) => k,
        Err(e) => panic!("{e}"),
    };
    // A key file cheap enough for the key_file target to open.
    if let Ok((_, json)) = KeyFile::create(
        &master,
        b"fixture-password",
        KdfParams::testing(),
        "fuzz",
        "fuzz",
    ) {
        seeds.add("key_file", json);
    }
    seeds.add("crypto", cairn_fuzz::FIXTURE_MASTER_KEY);
    seeds.add("crypto", master.seal(b"{\"hello\":\"world\"}"));
    for s in [
        &b"plain"[..],
        b"a\\\"b\\\\c",
        b"tab\\there\\nnl\\x00\\xff",
        b"\\u00e9\\U0001f600\\a\\b\\f\\v\\r",
        b"oct\\101\\377",
        b"\xc3\xa9\xe2\x80\xa8",
    ] {
        seeds.add("go_unquote", s);
    }
    // Chunker: random, repeated, sparse and constant content around the size limits.
    let pol = cairn_fuzz::FIXTURE_POLYNOMIAL.to_le_bytes();
    for (flags, size) in [
        (0u8, 40000u16),
        (2, 62000),
        (4, 65535),
        (6, 64000),
        (1, 30000),
        (0x30, 50000),
    ] {
        let mut v = vec![flags];
        v.extend_from_slice(&pol);
        v.extend_from_slice(&0x1234_5678_9abc_def0u64.to_le_bytes());
        v.extend_from_slice(&size.to_le_bytes());
        v.extend_from_slice(&[0x10, 0x27, 0xff, 0x00, 0x01, 0x00, 0x40, 0x9c]);
        seeds.add("chunker", v);
    }
    // Filters: flags ‖ patterns ‖ NUL ‖ paths.
    for (flags, pats, paths) in [
        (
            0u8,
            "*.go\n!main.go\n/home/**/secret\nfoo/bar",
            "/src/main.go\n/src/x.go\n/home/a/b/secret/z\n/x/foo/bar/baz",
        ),
        (
            1,
            "*.JPG\n/Users/**/Cache*\n[a-c]?x\n\\*",
            "/users/me/cache1/f\n/a/photo.jpg\n/bx/bqx\n/*",
        ),
        (
            2,
            "$HOME/x\n# comment\n  spaced  \n${V}/**/y",
            "/v/*/z/y\n/root/x",
        ),
        (0, "/**/a/**\n**\n/\n[^/]*\n[\\]]", "/x/a\n/x/a/b\n/\n/]"),
    ] {
        let mut v = vec![flags];
        v.extend_from_slice(pats.as_bytes());
        v.push(0);
        v.extend_from_slice(paths.as_bytes());
        seeds.add("filter", v);
    }
}

fn main() {
    let out = std::env::args_os().nth(1).map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus"),
        PathBuf::from,
    );
    let fx = fixtures();
    let mut seeds = Seeds::default();

    for (repo, version) in [("repo-v1", 1), ("repo-v2", 2)] {
        let exp = fx.join("expected").join(repo);
        let kjson = std::fs::read(exp.join("masterkey.plain.json")).expect("master key");
        let key = MasterKey::from_json(&kjson).expect("master key JSON");
        seeds.add("crypto", kjson);
        let files = read_tar(&fx.join(format!("restic-0.14.0-{repo}.tar.gz")));
        repo_seeds(&mut seeds, &files, repo, version, &key);
        for (dir, target) in [
            ("index", "index_json"),
            ("snapshots", "snapshot"),
            ("example-lock", "lock"),
        ] {
            for data in read_dir_files(&exp.join(dir)) {
                if data.first() == Some(&b'{') || data.first() == Some(&b'[') {
                    seeds.add(target, data);
                }
            }
        }
        for data in read_dir_files(&exp.join("trees")) {
            tree_seeds(&mut seeds, &data);
        }
        if let Ok(c) = std::fs::read(exp.join("config.plain.json")) {
            seeds.add("config", c);
        }
    }
    crafted(&mut seeds);

    // Committed crafted seeds and crash reproducers.
    let own = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds");
    for (name, _) in cairn_fuzz::TARGETS {
        for data in read_dir_files(&own.join(name)) {
            seeds.add(name, data);
        }
    }

    for (name, _) in cairn_fuzz::TARGETS {
        let dir = out.join(name);
        std::fs::create_dir_all(&dir).expect("create corpus dir");
        let set = seeds.0.get(name).map(BTreeMap::len).unwrap_or(0);
        for (id, data) in seeds.0.get(name).into_iter().flatten() {
            std::fs::write(dir.join(id.to_hex()), data).expect("write seed");
        }
        println!("{name}: {set} seeds -> {}", dir.display());
    }
}
