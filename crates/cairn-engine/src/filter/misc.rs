//! Non-pattern exclude helpers of `restic backup`: `--exclude-larger-than`
//! sizes, `--exclude-if-present` tag files and `--exclude-caches`.

use std::ffi::OsStr;
use std::io::Read;
use std::path::Path;

use super::FilterError;

/// File name of a cache directory tag (<https://bford.info/cachedir/>).
pub const CACHEDIR_TAG_FILENAME: &str = "CACHEDIR.TAG";

/// The header a `CACHEDIR.TAG` file must start with.
pub const CACHEDIR_TAG_SIGNATURE: &[u8] = b"Signature: 8a477f597d28d172789f06886806bc55";

/// Parses a size like restic's `ui.ParseBytes` (used by
/// `--exclude-larger-than`): a base-10 integer with an optional sign and an
/// optional final unit `b`, `k`, `m`, `g` or `t` (any case, powers of 1024).
/// Negative sizes and results above `i64::MAX` are rejected.
pub fn parse_size(s: &str) -> Result<u64, FilterError> {
    let invalid = |reason: &'static str| FilterError::InvalidSize {
        input: s.to_string(),
        reason,
    };
    let Some(last) = s.bytes().last() else {
        return Err(invalid("expected size, got empty string"));
    };
    let unit: u64 = match last.to_ascii_lowercase() {
        b'b' => 1,
        b'k' => 1 << 10,
        b'm' => 1 << 20,
        b'g' => 1 << 30,
        b't' => 1 << 40,
        _ => 0,
    };
    let (digits, unit) = if unit == 0 {
        (s, 1)
    } else {
        // The suffix is ASCII, so this is a char boundary.
        (s.get(..s.len() - 1).unwrap_or(""), unit)
    };
    // strconv.ParseInt(digits, 10, 64)
    let (negative, body) = match digits.as_bytes() {
        [b'+', rest @ ..] => (false, rest),
        [b'-', rest @ ..] => (true, rest),
        rest => (false, rest),
    };
    if body.is_empty() || !body.iter().all(u8::is_ascii_digit) {
        return Err(invalid("invalid syntax"));
    }
    let mut value: u64 = 0;
    for &d in body {
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(d - b'0')))
            .ok_or_else(|| invalid("value out of range"))?;
    }
    let limit = if negative {
        i64::MAX as u64 + 1
    } else {
        i64::MAX as u64
    };
    if value > limit {
        return Err(invalid("value out of range"));
    }
    if negative && value != 0 {
        return Err(invalid("value out of range"));
    }
    match value.checked_mul(unit) {
        Some(v) if v <= i64::MAX as u64 => Ok(v),
        _ => Err(invalid("value out of range")),
    }
}

/// Splits an `--exclude-if-present` spec `filename[:header]` at the first
/// `:`. An empty header (`name:`) means the same as none, so it is `None`.
/// Errors for an empty spec or an empty file name, as restic does.
pub fn parse_exclude_if_present(spec: &str) -> Result<(String, Option<String>), FilterError> {
    if spec.is_empty() {
        return Err(FilterError::InvalidTagFileSpec(
            "name for exclusion tagfile is empty",
        ));
    }
    let (name, header) = match spec.split_once(':') {
        Some((name, header)) => (name, Some(header)),
        None => (spec, None),
    };
    if name.is_empty() {
        return Err(FilterError::InvalidTagFileSpec(
            "no name for exclusion tagfile provided",
        ));
    }
    let header = header.filter(|h| !h.is_empty()).map(str::to_string);
    Ok((name.to_string(), header))
}

/// An `--exclude-if-present` rule (also used for `--exclude-caches`): the
/// contents of a directory holding `filename` (starting with `header`, if
/// given) are excluded, except the tag file itself; the directory entry is
/// kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagFileRule {
    /// Name of the tag file (no wildcards).
    pub filename: String,
    /// Bytes the tag file must start with, if any.
    pub header: Option<Vec<u8>>,
}

impl TagFileRule {
    /// Parses `filename[:header]` (see [`parse_exclude_if_present`]).
    pub fn parse(spec: &str) -> Result<Self, FilterError> {
        let (filename, header) = parse_exclude_if_present(spec)?;
        Ok(TagFileRule {
            filename,
            header: header.map(String::into_bytes),
        })
    }

    /// The rule restic adds for `--exclude-caches`.
    pub fn exclude_caches() -> Self {
        TagFileRule {
            filename: CACHEDIR_TAG_FILENAME.to_string(),
            header: Some(CACHEDIR_TAG_SIGNATURE.to_vec()),
        }
    }

    /// Whether `name` (a directory entry's file name) is the tag file, which
    /// is never excluded by its own rule.
    pub fn is_tag_file(&self, name: &OsStr) -> bool {
        name.as_encoded_bytes() == self.filename.as_bytes()
    }

    /// Whether the entries of directory `dir` are excluded by this rule.
    ///
    /// `Ok(false)` if the tag file does not exist. `Err` means the tag file
    /// exists but could not be checked (unreadable, too short, wrong
    /// header); restic warns and does not exclude in that case.
    pub fn dir_is_excluded(&self, dir: &Path) -> Result<bool, FilterError> {
        let tag = dir.join(&self.filename);
        let io_err = |source: std::io::Error| FilterError::TagFileIo {
            path: tag.clone(),
            source,
        };
        match std::fs::symlink_metadata(&tag) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(io_err(e)),
        }
        let Some(header) = self.header.as_deref() else {
            return Ok(true);
        };
        let file = std::fs::File::open(&tag).map_err(io_err)?;
        let mut buf = Vec::with_capacity(header.len());
        file.take(header.len() as u64)
            .read_to_end(&mut buf)
            .map_err(io_err)?;
        if buf.len() < header.len() {
            return Err(FilterError::TagFileSignature {
                path: tag,
                too_short: true,
            });
        }
        if buf != header {
            return Err(FilterError::TagFileSignature {
                path: tag,
                too_short: false,
            });
        }
        Ok(true)
    }
}

/// Whether `dir` holds a `CACHEDIR.TAG` starting with
/// [`CACHEDIR_TAG_SIGNATURE`] (problems reading it count as "no").
pub fn is_cache_dir(dir: &Path) -> bool {
    TagFileRule::exclude_caches()
        .dir_is_excluded(dir)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_like_restic_parse_bytes() {
        let ok: &[(&str, u64)] = &[
            ("1024", 1024),
            ("1024b", 1024),
            ("1024B", 1024),
            ("1k", 1024),
            ("100K", 100 << 10),
            ("100M", 100 << 20),
            ("100g", 100 << 30),
            ("2T", 2 << 40),
            ("+5k", 5 << 10),
            ("0", 0),
            ("-0", 0),
            ("0k", 0),
            ("9223372036854775807", i64::MAX as u64),
            ("8388607T", 8_388_607 << 40),
        ];
        for (input, want) in ok {
            assert_eq!(parse_size(input).unwrap(), *want, "parse_size({input:?})");
        }
        let bad = [
            "",
            "k",
            "b",
            "1.5k",
            "-1",
            "-1k",
            " 1k",
            "1k ",
            "1x",
            "1kb",
            "1_000",
            "9223372036854775808",
            "8388608T",
            "18446744073709551616",
            "1é",
        ];
        for input in bad {
            assert!(
                parse_size(input).is_err(),
                "parse_size({input:?}) should fail"
            );
        }
    }

    #[test]
    fn exclude_if_present_specs() {
        assert_eq!(
            parse_exclude_if_present(".nobackup").unwrap(),
            (".nobackup".to_string(), None)
        );
        assert_eq!(
            parse_exclude_if_present("CACHEDIR.TAG:Signature: 8a47").unwrap(),
            (
                "CACHEDIR.TAG".to_string(),
                Some("Signature: 8a47".to_string())
            )
        );
        assert_eq!(
            parse_exclude_if_present("x:").unwrap(),
            ("x".to_string(), None)
        );
        assert!(parse_exclude_if_present("").is_err());
        assert!(parse_exclude_if_present(":header").is_err());
    }

    #[test]
    fn tag_files_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("plain");
        let cache = dir.path().join("cache");
        let bad = dir.path().join("bad");
        let short = dir.path().join("short");
        let marker = dir.path().join("marker");
        for d in [&plain, &cache, &bad, &short, &marker] {
            std::fs::create_dir(d).unwrap();
        }
        let mut content = CACHEDIR_TAG_SIGNATURE.to_vec();
        content.extend_from_slice(b"\n# comment\n");
        std::fs::write(cache.join("CACHEDIR.TAG"), content).unwrap();
        std::fs::write(
            bad.join("CACHEDIR.TAG"),
            b"Signature: 0000000000000000000000000000000000",
        )
        .unwrap();
        std::fs::write(short.join("CACHEDIR.TAG"), b"Signature:").unwrap();
        std::fs::write(marker.join(".nobackup"), b"").unwrap();

        assert!(is_cache_dir(&cache));
        assert!(!is_cache_dir(&plain));
        assert!(!is_cache_dir(&bad));
        assert!(!is_cache_dir(&short));

        let caches = TagFileRule::exclude_caches();
        assert!(!caches.dir_is_excluded(&plain).unwrap());
        assert!(matches!(
            caches.dir_is_excluded(&bad),
            Err(FilterError::TagFileSignature {
                too_short: false,
                ..
            })
        ));
        assert!(matches!(
            caches.dir_is_excluded(&short),
            Err(FilterError::TagFileSignature {
                too_short: true,
                ..
            })
        ));
        assert!(caches.is_tag_file(OsStr::new("CACHEDIR.TAG")));
        assert!(!caches.is_tag_file(OsStr::new("cachedir.tag")));

        let nobackup = TagFileRule::parse(".nobackup").unwrap();
        assert!(nobackup.dir_is_excluded(&marker).unwrap());
        assert!(!nobackup.dir_is_excluded(&cache).unwrap());
        // With a header, an empty tag file is too short.
        let with_header = TagFileRule::parse(".nobackup:yes").unwrap();
        assert!(with_header.dir_is_excluded(&marker).is_err());
    }
}
