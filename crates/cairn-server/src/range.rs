//! `Range` request header handling (single byte ranges, as restic sends them).

/// What to send for a GET.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeReq {
    /// The whole file (no usable range): 200.
    Full,
    /// Bytes `start..start+len`: 206.
    Partial {
        /// First byte.
        start: u64,
        /// Number of bytes (at least 1).
        len: u64,
    },
    /// Malformed or not overlapping the file: 416.
    Unsatisfiable,
}

/// Interpret a `Range` header for a file of `size` bytes. Like Go's `http.ServeContent`,
/// malformed and non-overlapping ranges give 416; multi-range requests are answered with the
/// whole file (which HTTP allows).
pub fn parse(header: Option<&str>, size: u64) -> RangeReq {
    let Some(h) = header else {
        return RangeReq::Full;
    };
    let Some(spec) = h.trim().strip_prefix("bytes=") else {
        return RangeReq::Unsatisfiable;
    };
    if spec.contains(',') {
        return RangeReq::Full;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeReq::Unsatisfiable;
    };
    let (a, b) = (a.trim(), b.trim());
    let num = |s: &str| -> Option<u64> {
        if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    if a.is_empty() {
        // Suffix range: the last n bytes.
        let Some(n) = num(b) else {
            return RangeReq::Unsatisfiable;
        };
        let n = n.min(size);
        if n == 0 {
            return RangeReq::Unsatisfiable;
        }
        return RangeReq::Partial {
            start: size - n,
            len: n,
        };
    }
    let Some(start) = num(a) else {
        return RangeReq::Unsatisfiable;
    };
    if start >= size {
        return RangeReq::Unsatisfiable;
    }
    let end = if b.is_empty() {
        size - 1
    } else {
        match num(b) {
            Some(e) if e >= start => e.min(size - 1),
            _ => return RangeReq::Unsatisfiable,
        }
    };
    RangeReq::Partial {
        start,
        len: end - start + 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p(start: u64, len: u64) -> RangeReq {
        RangeReq::Partial { start, len }
    }

    #[test]
    fn forms() {
        assert_eq!(parse(None, 10), RangeReq::Full);
        assert_eq!(parse(Some("bytes=0-"), 10), p(0, 10));
        assert_eq!(parse(Some("bytes=2-5"), 10), p(2, 4));
        assert_eq!(parse(Some("bytes=2-50"), 10), p(2, 8));
        assert_eq!(parse(Some("bytes=-3"), 10), p(7, 3));
        assert_eq!(parse(Some("bytes=-30"), 10), p(0, 10));
        assert_eq!(parse(Some("bytes=9-9"), 10), p(9, 1));
        assert_eq!(parse(Some("bytes=10-"), 10), RangeReq::Unsatisfiable);
        assert_eq!(parse(Some("bytes=0-"), 0), RangeReq::Unsatisfiable);
        assert_eq!(parse(Some("bytes=5-2"), 10), RangeReq::Unsatisfiable);
        assert_eq!(parse(Some("bytes=-0"), 10), RangeReq::Unsatisfiable);
        assert_eq!(parse(Some("bytes=a-b"), 10), RangeReq::Unsatisfiable);
        assert_eq!(parse(Some("bytes=+1-2"), 10), RangeReq::Unsatisfiable);
        assert_eq!(parse(Some("items=0-1"), 10), RangeReq::Unsatisfiable);
        assert_eq!(parse(Some("bytes=0-1,3-4"), 10), RangeReq::Full);
        assert_eq!(
            parse(Some("bytes=0-99999999999999999999999"), 10),
            RangeReq::Unsatisfiable
        );
    }

    proptest! {
        #[test]
        fn ranges_stay_inside(h in "\\PC{0,40}", size in 0u64..1_000_000) {
            if let RangeReq::Partial { start, len } = parse(Some(&h), size) {
                prop_assert!(len >= 1);
                prop_assert!(start + len <= size);
            }
        }

        #[test]
        fn numeric_ranges(a in 0u64..2000, b in 0u64..2000, size in 0u64..1000) {
            let r = parse(Some(&format!("bytes={a}-{b}")), size);
            if a < size && b >= a {
                prop_assert_eq!(r, p(a, b.min(size - 1) - a + 1));
            } else {
                prop_assert_eq!(r, RangeReq::Unsatisfiable);
            }
        }
    }
}
