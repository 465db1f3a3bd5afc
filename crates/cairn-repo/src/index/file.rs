//! The JSON index file format (`index/<id>`), including restic 0.1's legacy array form.

use serde::{Deserialize, Deserializer, Serialize};

use crate::error::{RepoError, Result};
use crate::gojson::{write_json_id, write_json_u64};
use crate::pack::PackBlob;
use crate::{BlobType, Id};

/// One index file: which blobs live where in which packs.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct IndexFile {
    /// Index files this one replaces (written by old restic; ignored when loading).
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_empty"
    )]
    pub supersedes: Vec<Id>,
    /// The packs described by this file.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub packs: Vec<IndexPack>,
}

/// One pack and its blobs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexPack {
    /// Pack id (SHA-256 of the pack file).
    pub id: Id,
    /// The blobs in the pack, in any order.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub blobs: Vec<IndexBlob>,
}

/// One blob entry of an index file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexBlob {
    /// Blob id (SHA-256 of the uncompressed plaintext).
    pub id: Id,
    /// `"data"` or `"tree"`.
    #[serde(rename = "type", with = "blob_type_json")]
    pub blob_type: BlobType,
    /// Offset of the sealed blob in the pack.
    pub offset: u32,
    /// Length of the sealed blob.
    pub length: u32,
    /// Plaintext length of a compressed blob; absent for uncompressed blobs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uncompressed_length: Option<u32>,
}

fn null_as_empty<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> std::result::Result<Vec<T>, D::Error> {
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

mod blob_type_json {
    use crate::BlobType;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &BlobType, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(t.as_str())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BlobType, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        match &*s {
            "data" => Ok(BlobType::Data),
            "tree" => Ok(BlobType::Tree),
            other => Err(serde::de::Error::custom(format!(
                "invalid blob type {other:?}"
            ))),
        }
    }
}

impl IndexFile {
    /// Compact JSON ending in `\n`, as restic's `json.Encoder` writes it (this is the payload
    /// before compression and encryption).
    ///
    /// Written directly rather than through serde (the same bytes; ids are hex and need no
    /// escaping): an index file of 50 000 blobs is encoded during a backup every few packs.
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.blob_count() * 160 + self.packs.len() * 90);
        out.push(b'{');
        if !self.supersedes.is_empty() {
            out.extend_from_slice(b"\"supersedes\":");
            push_list(&mut out, &self.supersedes, write_json_id);
            out.push(b',');
        }
        out.extend_from_slice(b"\"packs\":");
        push_list(&mut out, &self.packs, |out, p| {
            out.extend_from_slice(b"{\"id\":");
            write_json_id(out, &p.id);
            out.extend_from_slice(b",\"blobs\":");
            push_list(out, &p.blobs, push_blob);
            out.push(b'}');
        });
        out.extend_from_slice(b"}\n");
        out
    }

    /// Parse an index file payload (object form, or the legacy top-level array of packs).
    /// Unknown fields are ignored; `"uncompressed_length": 0` is read as uncompressed.
    pub fn from_json(json: &[u8]) -> Result<IndexFile> {
        let legacy = json.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[');
        let parsed = if legacy {
            serde_json::from_slice::<Vec<IndexPack>>(json).map(|packs| IndexFile {
                supersedes: Vec::new(),
                packs,
            })
        } else {
            serde_json::from_slice::<IndexFile>(json)
        };
        let mut f = parsed.map_err(|e| RepoError::corrupt("index file", e))?;
        for p in &mut f.packs {
            for b in &mut p.blobs {
                if b.uncompressed_length == Some(0) {
                    b.uncompressed_length = None;
                }
            }
        }
        Ok(f)
    }

    /// Total number of blob entries.
    pub fn blob_count(&self) -> usize {
        self.packs.iter().map(|p| p.blobs.len()).sum()
    }

    /// True if any entry is compressed (not allowed in version 1 repositories).
    pub fn has_compressed(&self) -> bool {
        self.packs
            .iter()
            .any(|p| p.blobs.iter().any(|b| b.uncompressed_length.is_some()))
    }
}

/// Append `[item,item,…]`.
fn push_list<T>(out: &mut Vec<u8>, items: &[T], mut each: impl FnMut(&mut Vec<u8>, &T)) {
    out.push(b'[');
    for (i, x) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        each(out, x);
    }
    out.push(b']');
}

/// Append one blob entry in restic's field order.
fn push_blob(out: &mut Vec<u8>, b: &IndexBlob) {
    out.extend_from_slice(b"{\"id\":");
    write_json_id(out, &b.id);
    out.extend_from_slice(b",\"type\":\"");
    out.extend_from_slice(b.blob_type.as_str().as_bytes());
    out.extend_from_slice(b"\",\"offset\":");
    write_json_u64(out, b.offset.into());
    out.extend_from_slice(b",\"length\":");
    write_json_u64(out, b.length.into());
    if let Some(u) = b.uncompressed_length {
        out.extend_from_slice(b",\"uncompressed_length\":");
        write_json_u64(out, u.into());
    }
    out.push(b'}');
}

impl IndexPack {
    /// The index entry for a pack with the given header entries.
    pub fn from_blobs(id: Id, blobs: &[PackBlob]) -> IndexPack {
        IndexPack {
            id,
            blobs: blobs.iter().map(IndexBlob::from).collect(),
        }
    }

    /// The entries as [`PackBlob`]s, sorted by offset.
    pub fn pack_blobs(&self) -> Vec<PackBlob> {
        let mut v: Vec<PackBlob> = self.blobs.iter().map(|b| b.to_pack_blob()).collect();
        v.sort_by_key(|b| b.offset);
        v
    }
}

impl IndexBlob {
    /// This entry as a [`PackBlob`].
    pub fn to_pack_blob(&self) -> PackBlob {
        PackBlob {
            blob_type: self.blob_type,
            id: self.id,
            offset: self.offset,
            length: self.length,
            uncompressed_length: self.uncompressed_length.filter(|&n| n != 0),
        }
    }
}

impl From<&PackBlob> for IndexBlob {
    fn from(b: &PackBlob) -> IndexBlob {
        IndexBlob {
            id: b.id,
            blob_type: b.blob_type,
            offset: b.offset,
            length: b.length,
            uncompressed_length: b.uncompressed_length,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::path::PathBuf;

    fn fixtures() -> PathBuf {
        let p = std::env::var_os("CAIRN_FIXTURES").map_or_else(
            || {
                PathBuf::from(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/../../../shared/fixtures"
                ))
            },
            PathBuf::from,
        );
        assert!(p.join("README.md").exists(), "fixtures not found at {p:?}");
        p
    }

    #[test]
    fn golden_index_files_parse_and_round_trip() {
        let mut n = 0;
        for repo in ["repo-v1", "repo-v2"] {
            let dir = fixtures().join("expected").join(repo).join("index");
            for e in std::fs::read_dir(dir).unwrap() {
                let raw = std::fs::read(e.unwrap().path()).unwrap();
                let f = IndexFile::from_json(&raw).unwrap();
                assert!(!f.packs.is_empty());
                assert_eq!(f.has_compressed(), repo == "repo-v2");
                let again = f.to_json();
                assert_eq!(IndexFile::from_json(&again).unwrap(), f);
                // restic's field order and layout: the bytes are identical.
                assert_eq!(
                    String::from_utf8(again).unwrap(),
                    String::from_utf8(raw).unwrap()
                );
                n += 1;
            }
        }
        assert_eq!(n, 4);
    }

    #[test]
    fn golden_v2_first_index_contents() {
        let raw = std::fs::read(fixtures().join(
            "expected/repo-v2/index/723f0bfbeaea60a726583051ff0a541bea61ff259dae27105e3f144a0af71ba3.plain.json",
        ))
        .unwrap();
        let f = IndexFile::from_json(&raw).unwrap();
        let p = f
            .packs
            .iter()
            .find(|p| p.id.to_hex().starts_with("9d9b9989"))
            .unwrap();
        assert_eq!(
            p.blobs,
            vec![IndexBlob {
                id: "b25f7a6bf015a24883b974bcae9522a547707425e7ee5fa7ed6c0938b660836b"
                    .parse()
                    .unwrap(),
                blob_type: BlobType::Data,
                offset: 0,
                length: 79,
                uncompressed_length: Some(38),
            }]
        );
    }

    #[test]
    fn supersedes_legacy_null_and_unknown_fields() {
        let a = Id::hash(b"a").to_hex();
        let b = Id::hash(b"b").to_hex();
        let json = format!(
            r#"{{"supersedes":["{a}"],"packs":[{{"id":"{b}","blobs":[{{"id":"{a}","type":"tree","offset":5,"length":40,"uncompressed_length":0,"extra":1}}]}}],"x":null}}"#
        );
        let f = IndexFile::from_json(json.as_bytes()).unwrap();
        assert_eq!(f.supersedes, vec![Id::hash(b"a")]);
        assert_eq!(f.packs[0].blobs[0].uncompressed_length, None);
        assert_eq!(f.packs[0].blobs[0].blob_type, BlobType::Tree);
        let out = String::from_utf8(f.to_json()).unwrap();
        assert!(out.starts_with(&format!(r#"{{"supersedes":["{a}"],"packs":"#)));
        assert!(out.ends_with("}\n") && !out.contains("uncompressed_length"));

        let legacy = format!(r#" [{{"id":"{b}","blobs":null}}]"#);
        let f = IndexFile::from_json(legacy.as_bytes()).unwrap();
        assert_eq!(f.packs.len(), 1);
        assert!(f.supersedes.is_empty() && f.packs[0].blobs.is_empty());

        let f = IndexFile::from_json(br#"{"packs":null}"#).unwrap();
        assert_eq!(f, IndexFile::default());
        assert_eq!(f.to_json(), b"{\"packs\":[]}\n");

        for bad in [
            &br#"{"packs":[{"id":"zz","blobs":[]}]}"#[..],
            br#"{"packs":"#,
            b"\x02garbage",
        ] {
            assert!(IndexFile::from_json(bad).is_err());
        }
        let bad_type = format!(
            r#"{{"packs":[{{"id":"{b}","blobs":[{{"id":"{a}","type":"blob","offset":0,"length":40}}]}}]}}"#
        );
        let e = IndexFile::from_json(bad_type.as_bytes())
            .unwrap_err()
            .to_string();
        assert!(e.contains("invalid blob type"), "{e}");
    }

    fn arb_blob() -> impl Strategy<Value = IndexBlob> {
        (
            any::<[u8; 32]>(),
            any::<bool>(),
            any::<u32>(),
            any::<u32>(),
            proptest::option::of(1u32..),
        )
            .prop_map(|(id, tree, offset, length, ul)| IndexBlob {
                id: Id(id),
                blob_type: if tree { BlobType::Tree } else { BlobType::Data },
                offset,
                length,
                uncompressed_length: ul,
            })
    }

    fn arb_file() -> impl Strategy<Value = IndexFile> {
        (
            proptest::collection::vec(any::<[u8; 32]>().prop_map(Id), 0..3),
            proptest::collection::vec(
                (
                    any::<[u8; 32]>().prop_map(Id),
                    proptest::collection::vec(arb_blob(), 0..6),
                )
                    .prop_map(|(id, blobs)| IndexPack { id, blobs }),
                0..5,
            ),
        )
            .prop_map(|(supersedes, packs)| IndexFile { supersedes, packs })
    }

    proptest! {
        #[test]
        fn json_round_trip(f in arb_file()) {
            let json = f.to_json();
            // The hand-written encoder gives exactly serde's bytes.
            let mut via_serde = serde_json::to_vec(&f).unwrap();
            via_serde.push(b'\n');
            prop_assert_eq!(&json, &via_serde);
            prop_assert_eq!(json.last(), Some(&b'\n'));
            prop_assert_eq!(IndexFile::from_json(&json).unwrap(), f.clone());
            if f.supersedes.is_empty() {
                let legacy = serde_json::to_vec(&f.packs).unwrap();
                prop_assert_eq!(IndexFile::from_json(&legacy).unwrap(), f);
            }
        }

        #[test]
        fn from_json_never_panics(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = IndexFile::from_json(&data);
        }
    }
}
