//! 32-byte SHA-256 identifiers of files and blobs, hex printing/parsing and prefix matching.

use sha2::{Digest, Sha256};
use std::fmt;
use std::str::FromStr;

/// A 32-byte id: SHA-256 of a blob's plaintext or of a stored file's bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Id(pub [u8; 32]);

/// An id string that is not 64 hex digits.
#[derive(Debug, thiserror::Error)]
#[error("invalid id {0:?}: expected 64 hex digits")]
pub struct ParseIdError(pub String);

impl Id {
    /// SHA-256 of `data`.
    pub fn hash(data: &[u8]) -> Id {
        Id(Sha256::digest(data).into())
    }

    /// Lowercase 64-digit hex form.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The 8-digit short form restic prints.
    pub fn short(&self) -> String {
        hex::encode(&self.0[..4])
    }

    /// True if the hex form starts with `prefix` (case-insensitive).
    pub fn has_prefix(&self, prefix: &str) -> bool {
        self.to_hex().starts_with(&prefix.to_ascii_lowercase())
    }

    /// Parse a 64-hex-digit name; `None` for anything else (used to skip temp files when listing).
    pub fn from_name(s: &str) -> Option<Id> {
        if s.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).ok()?;
        Some(Id(out))
    }
}

impl FromStr for Id {
    type Err = ParseIdError;
    fn from_str(s: &str) -> Result<Id, ParseIdError> {
        Id::from_name(s).ok_or_else(|| ParseIdError(s.to_string()))
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Id({})", self.short())
    }
}

impl serde::Serialize for Id {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut hex = [0u8; 64];
        // 64 bytes hold exactly 32 bytes' hex digits, and hex digits are ASCII.
        let _ = hex::encode_to_slice(self.0, &mut hex);
        s.serialize_str(std::str::from_utf8(&hex).unwrap_or_default())
    }
}

impl<'de> serde::Deserialize<'de> for Id {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Id, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Id::from_name(&s).ok_or_else(|| serde::de::Error::custom(format!("invalid id {s:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_prefix() {
        let id = Id::hash(b"");
        assert_eq!(
            id.to_hex(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(id.to_hex().parse::<Id>().unwrap(), id);
        assert!(id.has_prefix("E3B0"));
        assert!(!id.has_prefix("e3b1"));
        assert_eq!(id.short(), "e3b0c442");
        assert!(Id::from_name("e3b0-tmp").is_none());
        assert!(Id::from_name(&"zz".repeat(32)).is_none());
    }
}
