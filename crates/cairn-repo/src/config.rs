//! The repository `config` file (spec §4): format version, repository id and chunker
//! polynomial. Sealed with the master key and never compressed.
//!
//! Irreducibility of the polynomial is checked by the chunker module, not here.

use rand::RngCore;
use rand::rngs::OsRng;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{RepoError, Result};

/// Lowest repository format version understood.
pub const MIN_VERSION: u32 = 1;
/// Highest repository format version understood.
pub const MAX_VERSION: u32 = 2;

const WHAT: &str = "config";

/// Decrypted contents of the `config` file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    /// Repository format version (1 or 2).
    pub version: u32,
    /// Repository id: 64 lowercase hex digits (names the cache directory).
    pub id: String,
    /// Chunker polynomial; JSON: lowercase hex string without `0x`.
    #[serde(serialize_with = "ser_pol", deserialize_with = "de_pol")]
    pub chunker_polynomial: u64,
}

fn ser_pol<S: Serializer>(pol: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("{pol:x}"))
}

fn de_pol<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let s = String::deserialize(d)?;
    parse_pol(&s).ok_or_else(|| serde::de::Error::custom(format!("invalid polynomial {s:?}")))
}

/// Parse hex digits like Go's `strconv.ParseUint(s, 16, 64)` (no sign, no prefix).
fn parse_pol(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(s, 16).ok()
}

impl Config {
    /// A new config with a random 32-byte (64 hex digit) repository id.
    pub fn new(version: u32, pol: u64) -> Config {
        let mut id = [0u8; 32];
        OsRng.fill_bytes(&mut id);
        Config {
            version,
            id: hex::encode(id),
            chunker_polynomial: pol,
        }
    }

    /// Compact JSON (`version`, `id`, `chunker_polynomial`), no trailing newline.
    pub fn to_json(&self) -> Vec<u8> {
        // Written by hand so it is infallible; `Value`'s Display escapes the id as JSON.
        format!(
            r#"{{"version":{},"id":{},"chunker_polynomial":"{:x}"}}"#,
            self.version,
            serde_json::Value::String(self.id.clone()),
            self.chunker_polynomial
        )
        .into_bytes()
    }

    /// Parse the decrypted config; rejects versions outside 1..=2 and unsafe ids.
    pub fn from_json(json: &[u8]) -> Result<Config> {
        let c: Config = serde_json::from_slice(json).map_err(|e| RepoError::corrupt(WHAT, e))?;
        if !(MIN_VERSION..=MAX_VERSION).contains(&c.version) {
            return Err(RepoError::Unsupported(format!(
                "repository format version {} (supported: {MIN_VERSION}..={MAX_VERSION})",
                c.version
            )));
        }
        // restic always writes 64 hex digits; the id names a cache directory, so refuse
        // anything that could escape it.
        if c.id.is_empty()
            || c.id.len() > 128
            || !c
                .id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(RepoError::corrupt(
                WHAT,
                format!("invalid repository id {:?}", c.id),
            ));
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURES: &str = "/work/shared/fixtures";

    #[test]
    fn fixture_configs_roundtrip_byte_exact() {
        for (v, id, pol) in [
            (
                1,
                "1cf1895cb0fe216b397ba9190e9a609a82a47eee7c0d4f34a460b832bfc6d90e",
                0x2e860100029429u64,
            ),
            (
                2,
                "74616ee8ac311a52be8bd24436585d249d4f6172f7f60a084824a01c29d71f80",
                0x2948440c78e103,
            ),
        ] {
            let json =
                std::fs::read(format!("{FIXTURES}/expected/repo-v{v}/config.plain.json")).unwrap();
            let c = Config::from_json(&json).unwrap();
            assert_eq!(c.version, v);
            assert_eq!(c.id, id);
            assert_eq!(c.chunker_polynomial, pol);
            assert_eq!(c.to_json(), json);
        }
    }

    #[test]
    fn new_config() {
        let a = Config::new(2, 0x3DA3358B4DC173);
        let b = Config::new(2, 0x3DA3358B4DC173);
        assert_eq!(a.id.len(), 64);
        assert!(
            a.id.bytes()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert_ne!(a.id, b.id);
        let json = String::from_utf8(a.to_json()).unwrap();
        assert_eq!(
            json,
            format!(
                r#"{{"version":2,"id":"{}","chunker_polynomial":"3da3358b4dc173"}}"#,
                a.id
            )
        );
        assert_eq!(Config::from_json(json.as_bytes()).unwrap(), a);
    }

    #[test]
    fn rejects_bad_configs() {
        let id = "74616ee8ac311a52be8bd24436585d249d4f6172f7f60a084824a01c29d71f80";
        let mk = |v: &str, id: &str, pol: &str| {
            format!(r#"{{"version":{v},"id":"{id}","chunker_polynomial":"{pol}"}}"#)
        };
        for bad in [
            mk("0", id, "2948440c78e103"),
            mk("3", id, "2948440c78e103"),
            mk("-1", id, "2948440c78e103"),
            mk("2", id, "0x2948440c78e103"),
            mk("2", id, "+2948440c78e103"),
            mk("2", id, ""),
            mk("2", id, "zz"),
            mk("2", id, "12345678901234567"),
            mk("2", "", "2948440c78e103"),
            mk("2", "../../etc", "2948440c78e103"),
            r#"{"version":2,"id":"ab"}"#.to_string(),
            "[]".to_string(),
        ] {
            assert!(Config::from_json(bad.as_bytes()).is_err(), "{bad}");
        }
        // Uppercase hex is accepted (Go's ParseUint does) and written back lowercase.
        let c = Config::from_json(mk("2", id, "2948440C78E103").as_bytes()).unwrap();
        assert_eq!(c.chunker_polynomial, 0x2948440c78e103);
        assert!(matches!(
            Config::from_json(mk("3", id, "1").as_bytes()),
            Err(RepoError::Unsupported(_))
        ));
    }
}
