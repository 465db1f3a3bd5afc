//! Key files (`keys/<id>`, spec §3): the master key sealed with a scrypt-derived user key.
//!
//! A key file is plain JSON; only its `data` field is encrypted. Its file id is the SHA-256 of
//! the JSON bytes.
//!
//! Tests and scripts can set the environment variable `CAIRN_TEST_KDF=1` to make
//! [`KdfParams::default_params`] return the cheap [`KdfParams::testing`] parameters instead
//! of restic's N=32768, r=8, p=1 (never use this for real repositories).

use chrono::{DateTime, Offset, TimeZone, Timelike};
use rand::RngCore;
use rand::rngs::OsRng;
use serde::{Deserialize, Serialize};

use crate::crypto::{CryptoError, MasterKey};
use crate::error::{RepoError, Result};

/// Name of the environment variable that selects cheap scrypt parameters in
/// [`KdfParams::default_params`] when set to `1`.
pub const TEST_KDF_ENV: &str = "CAIRN_TEST_KDF";

/// Length of the scrypt salt restic requires.
pub const SALT_LEN: usize = 64;

/// Upper bound on scrypt memory (`128·r·N` and `128·r·p`) accepted when opening key files,
/// so a damaged key file cannot make us allocate absurd amounts (restic uses ≤ 60 MiB).
pub const MAX_SCRYPT_MEMORY: u64 = 1 << 30;

const WHAT: &str = "key file";

/// scrypt cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KdfParams {
    /// CPU/memory cost; a power of two > 1.
    pub n: u64,
    /// Block size (≥ 1).
    pub r: u32,
    /// Parallelism (≥ 1).
    pub p: u32,
}

impl KdfParams {
    /// restic's usual parameters N=32768, r=8, p=1 — or [`KdfParams::testing`] when the
    /// environment variable `CAIRN_TEST_KDF` is `1`.
    pub fn default_params() -> KdfParams {
        if std::env::var_os(TEST_KDF_ENV).is_some_and(|v| v == "1") {
            return KdfParams::testing();
        }
        KdfParams {
            n: 32768,
            r: 8,
            p: 1,
        }
    }

    /// Cheap but valid parameters (N=1024, r=8, p=1) for tests only.
    pub fn testing() -> KdfParams {
        KdfParams {
            n: 1024,
            r: 8,
            p: 1,
        }
    }

    /// Check the parameters and convert them for the `scrypt` crate.
    fn to_scrypt(self) -> Result<scrypt::Params, String> {
        if self.n <= 1 || !self.n.is_power_of_two() {
            return Err(format!("scrypt N={} is not a power of two > 1", self.n));
        }
        if self.r < 1 || self.p < 1 {
            return Err(format!("scrypt r={} p={} must be ≥ 1", self.r, self.p));
        }
        if u64::from(self.r) * u64::from(self.p) >= 1 << 30 {
            return Err(format!("scrypt r·p = {}·{} too large", self.r, self.p));
        }
        let r128 = 128 * u64::from(self.r);
        let mem_n = r128.checked_mul(self.n);
        let mem_p = r128.checked_mul(u64::from(self.p));
        if !matches!((mem_n, mem_p), (Some(a), Some(b)) if a <= MAX_SCRYPT_MEMORY && b <= MAX_SCRYPT_MEMORY)
        {
            return Err(format!(
                "scrypt parameters N={} r={} p={} need more than {} bytes of memory",
                self.n, self.r, self.p, MAX_SCRYPT_MEMORY
            ));
        }
        // n is a power of two in 2..2^64, so trailing_zeros is in 1..=63.
        let log_n = self.n.trailing_zeros() as u8;
        scrypt::Params::new(log_n, self.r, self.p, 64).map_err(|e| {
            format!(
                "invalid scrypt parameters N={} r={} p={}: {e}",
                self.n, self.r, self.p
            )
        })
    }
}

/// Derive the 64-byte user key material: `scrypt(password, salt, N, r, p, 64)`.
pub fn derive(password: &[u8], salt: &[u8], params: KdfParams) -> Result<[u8; 64]> {
    let sp = params.to_scrypt().map_err(RepoError::Invalid)?;
    let mut out = [0u8; 64];
    scrypt::scrypt(password, salt, &sp, &mut out).map_err(|e| RepoError::Invalid(e.to_string()))?;
    Ok(out)
}

/// serde helper: `Vec<u8>` as standard padded base64 (Go's `[]byte` JSON encoding).
mod b64 {
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = Option::<String>::deserialize(d)?.unwrap_or_default();
        base64::engine::general_purpose::STANDARD
            .decode(s.as_bytes())
            .map_err(serde::de::Error::custom)
    }
}

/// A key file as stored in `keys/<id>` (restic's JSON field names and order).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyFile {
    /// Creation time, Go RFC 3339 with nanoseconds and local offset (informational).
    #[serde(default)]
    pub created: String,
    /// User who created the key (informational).
    #[serde(default)]
    pub username: String,
    /// Host on which the key was created (informational).
    #[serde(default)]
    pub hostname: String,
    /// Key derivation function; must be `"scrypt"`.
    #[serde(default)]
    pub kdf: String,
    /// scrypt N.
    #[serde(rename = "N", default)]
    pub n: u64,
    /// scrypt r.
    #[serde(default)]
    pub r: u32,
    /// scrypt p.
    #[serde(default)]
    pub p: u32,
    /// 64-byte scrypt salt.
    #[serde(with = "b64", default)]
    pub salt: Vec<u8>,
    /// The sealed master-key JSON (`IV ‖ ciphertext ‖ tag`).
    #[serde(with = "b64", default)]
    pub data: Vec<u8>,
}

impl KeyFile {
    /// Seal `master` under `password` and build a new key file. Returns the key file and the
    /// exact JSON bytes to store under `keys/<Id::hash(bytes)>`.
    pub fn create(
        master: &MasterKey,
        password: &[u8],
        params: KdfParams,
        username: &str,
        hostname: &str,
    ) -> Result<(KeyFile, Vec<u8>)> {
        let mut salt = vec![0u8; SALT_LEN];
        OsRng.fill_bytes(&mut salt);
        let user = MasterKey::from_derived(&derive(password, &salt, params)?);
        let kf = KeyFile {
            created: go_rfc3339_nano(&chrono::Local::now()),
            username: username.to_string(),
            hostname: hostname.to_string(),
            kdf: "scrypt".to_string(),
            n: params.n,
            r: params.r,
            p: params.p,
            salt,
            data: user.seal(&master.to_json()),
        };
        let bytes = kf.to_json()?;
        Ok((kf, bytes))
    }

    /// Compact JSON in restic's field order, no trailing newline.
    pub fn to_json(&self) -> Result<Vec<u8>> {
        serde_json::to_vec(self).map_err(|e| RepoError::Invalid(format!("key file JSON: {e}")))
    }

    /// Parse and validate key file JSON (kdf, scrypt parameters, salt length).
    pub fn parse(bytes: &[u8]) -> Result<KeyFile> {
        let kf: KeyFile = serde_json::from_slice(bytes).map_err(|e| RepoError::corrupt(WHAT, e))?;
        kf.validate()?;
        Ok(kf)
    }

    /// The scrypt parameters recorded in this key file.
    pub fn params(&self) -> KdfParams {
        KdfParams {
            n: self.n,
            r: self.r,
            p: self.p,
        }
    }

    /// Check `kdf`, scrypt parameters and salt length; errors are [`RepoError::Corrupt`].
    pub fn validate(&self) -> Result<()> {
        if self.kdf != "scrypt" {
            return Err(RepoError::corrupt(
                WHAT,
                format!("unsupported kdf {:?}", self.kdf),
            ));
        }
        self.params()
            .to_scrypt()
            .map_err(|m| RepoError::corrupt(WHAT, m))?;
        if self.salt.len() != SALT_LEN {
            return Err(RepoError::corrupt(
                WHAT,
                format!("salt is {} bytes, expected {SALT_LEN}", self.salt.len()),
            ));
        }
        Ok(())
    }

    /// Derive the user key from `password` and unseal the master key.
    /// A MAC failure yields [`RepoError::WrongPassword`]; anything malformed is `Corrupt`.
    pub fn open(&self, password: &[u8]) -> Result<MasterKey> {
        self.validate()?;
        let dk = derive(password, &self.salt, self.params()).map_err(|e| match e {
            RepoError::Invalid(m) => RepoError::corrupt(WHAT, m),
            other => other,
        })?;
        let user = MasterKey::from_derived(&dk);
        let plain = user.open(&self.data).map_err(|e| match e {
            CryptoError::BadMac => RepoError::WrongPassword,
            other => RepoError::corrupt(WHAT, other),
        })?;
        MasterKey::from_json(&plain).map_err(|e| match e {
            RepoError::Corrupt { msg, .. } => {
                RepoError::corrupt(WHAT, format!("invalid master key: {msg}"))
            }
            other => other,
        })
    }
}

/// Format a time like Go's `time.RFC3339Nano`: fraction without trailing zeros (omitted when
/// zero), `Z` for a zero offset, otherwise `±hh:mm`.
pub(crate) fn go_rfc3339_nano<Tz: TimeZone>(t: &DateTime<Tz>) -> String {
    let off = t.offset().fix().local_minus_utc();
    let local = t.naive_local();
    let mut s = local.format("%Y-%m-%dT%H:%M:%S").to_string();
    let ns = local.nanosecond() % 1_000_000_000;
    if ns != 0 {
        let frac = format!("{ns:09}");
        s.push('.');
        s.push_str(frac.trim_end_matches('0'));
    }
    if off == 0 {
        s.push('Z');
    } else {
        let sign = if off < 0 { '-' } else { '+' };
        let a = off.unsigned_abs() / 60;
        s.push_str(&format!("{sign}{:02}:{:02}", a / 60, a % 60));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Id;
    use chrono::FixedOffset;

    const FIXTURES: &str = "/work/shared/fixtures";
    const PW: &[u8] = b"fixture-password";

    fn fixture_key(version: u32) -> Vec<u8> {
        use std::io::Read;
        let (archive, path) = match version {
            1 => (
                "restic-0.14.0-repo-v1.tar.gz",
                "repo-v1/keys/c2296db67abeb730ade6258e0ba831637e06a804ef72e52791c27b83ed55c1aa",
            ),
            _ => (
                "restic-0.14.0-repo-v2.tar.gz",
                "repo-v2/keys/e59e731759128b2548573a04211a674bbab5cda6bee17f1d3e8353cd028a31ea",
            ),
        };
        let f = std::fs::File::open(format!("{FIXTURES}/{archive}")).unwrap();
        let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(f));
        for e in ar.entries().unwrap() {
            let mut e = e.unwrap();
            if e.path().unwrap().to_str() == Some(path) {
                let mut v = Vec::new();
                e.read_to_end(&mut v).unwrap();
                return v;
            }
        }
        panic!("{path} not found");
    }

    fn expected(version: u32, file: &str) -> Vec<u8> {
        std::fs::read(format!("{FIXTURES}/expected/repo-v{version}/{file}")).unwrap()
    }

    #[test]
    fn fixture_key_json_roundtrips_byte_exact() {
        for v in [1, 2] {
            let bytes = fixture_key(v);
            let kf = KeyFile::parse(&bytes).unwrap();
            assert_eq!(kf.kdf, "scrypt");
            assert_eq!(
                kf.params(),
                KdfParams {
                    n: 32768,
                    r: 8,
                    p: 4
                }
            );
            assert_eq!(kf.salt.len(), 64);
            assert_eq!(kf.data.len(), 160);
            assert_eq!(kf.to_json().unwrap(), bytes);
        }
        let bytes = fixture_key(2);
        assert_eq!(
            Id::hash(&bytes).to_hex(),
            "e59e731759128b2548573a04211a674bbab5cda6bee17f1d3e8353cd028a31ea"
        );
        let kf = KeyFile::parse(&bytes).unwrap();
        assert_eq!(kf.created, "2026-11-26T13:16:12.565777808+01:00");
        assert_eq!(kf.username, "root");
        assert_eq!(kf.hostname, "vm");
    }

    #[test]
    fn scrypt_vector_repo_v2() {
        let kf = KeyFile::parse(&fixture_key(2)).unwrap();
        let dk = derive(PW, &kf.salt, kf.params()).unwrap();
        let want = String::from_utf8(expected(2, "scrypt-derived-64.hex")).unwrap();
        assert_eq!(hex::encode(dk), want.trim());
    }

    #[test]
    fn open_fixture_keys() {
        for v in [1, 2] {
            let kf = KeyFile::parse(&fixture_key(v)).unwrap();
            let mk = kf.open(PW).unwrap();
            assert_eq!(mk.to_json(), expected(v, "masterkey.plain.json"));
        }
    }

    #[test]
    fn wrong_password() {
        let (kf, _) = KeyFile::create(
            &MasterKey::random(),
            b"right",
            KdfParams::testing(),
            "u",
            "h",
        )
        .unwrap();
        assert!(matches!(kf.open(b"wrong"), Err(RepoError::WrongPassword)));
        assert!(matches!(kf.open(b""), Err(RepoError::WrongPassword)));
    }

    #[test]
    fn wrong_password_on_fixture() {
        let kf = KeyFile::parse(&fixture_key(1)).unwrap();
        assert!(matches!(
            kf.open(b"fixture-passwore"),
            Err(RepoError::WrongPassword)
        ));
    }

    #[test]
    fn create_open_roundtrip() {
        let mk = MasterKey::random();
        let (kf, bytes) = KeyFile::create(
            &mk,
            "pässword".as_bytes(),
            KdfParams::testing(),
            "alice",
            "box",
        )
        .unwrap();
        assert_eq!(kf.username, "alice");
        assert_eq!(kf.hostname, "box");
        let parsed = KeyFile::parse(&bytes).unwrap();
        assert_eq!(parsed, kf);
        assert_eq!(parsed.open("pässword".as_bytes()).unwrap(), mk);
        let s = String::from_utf8(bytes).unwrap();
        assert!(s.starts_with(r#"{"created":""#), "field order: {s}");
        assert!(
            s.contains(r#","kdf":"scrypt","N":1024,"r":8,"p":1,"salt":""#),
            "{s}"
        );
        assert!(!s.ends_with('\n'));
        assert!(
            DateTime::parse_from_rfc3339(&kf.created).is_ok(),
            "{}",
            kf.created
        );
    }

    #[test]
    fn invalid_key_files_are_corrupt() {
        let mk = MasterKey::random();
        let (kf, _) = KeyFile::create(&mk, b"pw", KdfParams::testing(), "u", "h").unwrap();
        let cases: Vec<KeyFile> = vec![
            KeyFile {
                kdf: "argon2".into(),
                ..kf.clone()
            },
            KeyFile {
                n: 1000,
                ..kf.clone()
            },
            KeyFile { n: 1, ..kf.clone() },
            KeyFile { n: 0, ..kf.clone() },
            KeyFile { r: 0, ..kf.clone() },
            KeyFile { p: 0, ..kf.clone() },
            KeyFile {
                n: 1 << 40,
                ..kf.clone()
            },
            KeyFile {
                salt: vec![1; 32],
                ..kf.clone()
            },
            KeyFile {
                data: vec![1; 10],
                ..kf.clone()
            },
        ];
        for c in cases {
            let r = c.open(b"pw");
            assert!(
                matches!(r, Err(RepoError::Corrupt { .. })),
                "{c:?} gave {r:?}"
            );
            let json = serde_json::to_vec(&c).unwrap();
            if c.data.len() == 160 {
                assert!(KeyFile::parse(&json).is_err(), "{c:?}");
            }
        }
        assert!(matches!(
            KeyFile::parse(b"nope"),
            Err(RepoError::Corrupt { .. })
        ));
        assert!(matches!(
            KeyFile::parse(br#"{"kdf":"scrypt","N":1024,"r":8,"p":1,"salt":"!!","data":""}"#),
            Err(RepoError::Corrupt { .. })
        ));
    }

    #[test]
    fn master_key_json_inside_must_be_valid() {
        // Seal something that is not a master key under a valid user key.
        let salt = vec![7u8; 64];
        let p = KdfParams::testing();
        let user = MasterKey::from_derived(&derive(b"pw", &salt, p).unwrap());
        let kf = KeyFile {
            created: String::new(),
            username: String::new(),
            hostname: String::new(),
            kdf: "scrypt".into(),
            n: p.n,
            r: p.r,
            p: p.p,
            salt,
            data: user.seal(b"{\"mac\":{}}"),
        };
        assert!(matches!(kf.open(b"pw"), Err(RepoError::Corrupt { .. })));
    }

    #[test]
    fn default_params_env() {
        // The env var is read at call time; only check the non-test default shape here
        // without mutating the process environment (tests run in parallel).
        let p = KdfParams::default_params();
        if std::env::var_os(TEST_KDF_ENV).is_some_and(|v| v == "1") {
            assert_eq!(p, KdfParams::testing());
        } else {
            assert_eq!(
                p,
                KdfParams {
                    n: 32768,
                    r: 8,
                    p: 1
                }
            );
        }
        assert!(KdfParams::testing().to_scrypt().is_ok());
    }

    #[test]
    fn go_time_format() {
        let tz = FixedOffset::east_opt(3600).unwrap();
        let t = tz.with_ymd_and_hms(2026, 11, 26, 13, 16, 12).unwrap();
        assert_eq!(go_rfc3339_nano(&t), "2026-11-26T13:16:12+01:00");
        let t2 = t + chrono::Duration::nanoseconds(565_777_808);
        assert_eq!(go_rfc3339_nano(&t2), "2026-11-26T13:16:12.565777808+01:00");
        let t3 = t + chrono::Duration::nanoseconds(500_000_000);
        assert_eq!(go_rfc3339_nano(&t3), "2026-11-26T13:16:12.5+01:00");
        let utc = chrono::Utc
            .with_ymd_and_hms(2026, 11, 26, 12, 16, 16)
            .unwrap()
            + chrono::Duration::nanoseconds(174_182_798);
        assert_eq!(go_rfc3339_nano(&utc), "2026-11-26T12:16:16.174182798Z");
        let neg = FixedOffset::west_opt(9 * 3600 + 30 * 60).unwrap();
        let t4 = neg.with_ymd_and_hms(2020, 1, 2, 3, 4, 5).unwrap();
        assert_eq!(go_rfc3339_nano(&t4), "2020-01-02T03:04:05-09:30");
    }
}
