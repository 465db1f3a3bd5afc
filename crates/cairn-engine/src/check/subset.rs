//! `--read-data-subset`: parsing restic's three forms and selecting packs exactly as restic does.

use crate::{EngineError, Result};
use cairn_repo::Id;
use std::collections::HashMap;

/// Largest group count of `n/t` (restic only looks at the first byte of the pack id).
pub const MAX_BUCKETS: u32 = 256;

/// Which packs `--read-data` / `--read-data-subset` reads.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ReadDataSubset {
    /// Every pack (`--read-data`).
    All,
    /// `n/t`: packs whose id's first byte `b` satisfies `b % t == n - 1` (restic's rule, so
    /// the same packs as `restic check --read-data-subset n/t`).
    Bucket {
        /// Group number, `1..=total`.
        n: u32,
        /// Number of groups, `1..=256`.
        total: u32,
    },
    /// `x%`: that share of the packs, chosen at random (at least one pack).
    Percent(f64),
    /// A size (`500M`, `2G`, plain bytes with `b`/`B`): random packs making up that share of the
    /// total pack size.
    Bytes(u64),
}

fn invalid() -> EngineError {
    EngineError::Invalid(
        "check flag --read-data-subset has invalid value, please see documentation".into(),
    )
}

/// restic's `ui.ParseBytes`: a number with an optional unit `b/B k/K m/M g/G t/T` (powers of
/// 1024).
fn parse_bytes(s: &str) -> Option<u64> {
    let last = s.chars().last()?;
    let unit: u64 = match last {
        'b' | 'B' => 1,
        'k' | 'K' => 1 << 10,
        'm' | 'M' => 1 << 20,
        'g' | 'G' => 1 << 30,
        't' | 'T' => 1 << 40,
        _ => 0,
    };
    let (num, unit) = if unit == 0 {
        (s, 1)
    } else {
        (s.strip_suffix(last)?, unit)
    };
    let v: i64 = num.parse().ok()?;
    let v = u64::try_from(v).ok()?.checked_mul(unit)?;
    i64::try_from(v).ok()?;
    Some(v)
}

impl std::str::FromStr for ReadDataSubset {
    type Err = EngineError;

    /// Parse `n/t`, `x%` / `x.y%` or a size, with restic's validation and messages.
    fn from_str(s: &str) -> Result<ReadDataSubset> {
        let parts: Option<Vec<u64>> = s.split('/').map(|p| p.parse::<u64>().ok()).collect();
        if let Some(parts) = parts {
            let [n, t] = parts[..] else {
                return Err(invalid());
            };
            if n == 0 || t == 0 || n > t {
                return Err(EngineError::Invalid(
                    "check flag --read-data-subset=n/t values must be positive integers, and n <= t, e.g. --read-data-subset=1/2".into(),
                ));
            }
            if t > u64::from(MAX_BUCKETS) {
                return Err(EngineError::Invalid(format!(
                    "check flag --read-data-subset=n/t t must be at most {MAX_BUCKETS}"
                )));
            }
            // Both are at most 256 here.
            return Ok(ReadDataSubset::Bucket {
                n: n as u32,
                total: t as u32,
            });
        }
        if let Some(p) = s.strip_suffix('%') {
            let x: f64 = p.parse().map_err(|_| invalid())?;
            if !(x > 0.0 && x <= 100.0) {
                return Err(EngineError::Invalid(
                    "check flag --read-data-subset=x% x must be above 0.0% and at most 100.0%"
                        .into(),
                ));
            }
            return Ok(ReadDataSubset::Percent(x));
        }
        match parse_bytes(s) {
            Some(0) => Err(EngineError::Invalid(
                "check flag --read-data-subset=n n must be above 0".into(),
            )),
            Some(n) => Ok(ReadDataSubset::Bytes(n)),
            None => Err(invalid()),
        }
    }
}

/// Whether pack `id` belongs to group `n` of `total` (restic's `selectPacksByBucket`).
pub fn in_bucket(id: &Id, n: u32, total: u32) -> bool {
    total > 0 && u32::from(id.0[0]) % total == n.wrapping_sub(1)
}

/// Pick `max(1, floor(count * percent / 100))` packs at random (time-seeded, like restic).
fn random_share(packs: &HashMap<Id, u64>, percent: f64) -> Vec<Id> {
    let count = packs.len();
    let mut want = (count as f64 * (percent / 100.0)) as usize;
    if count > 0 && want < 1 {
        want = 1;
    }
    let mut ids: Vec<Id> = packs.keys().copied().collect();
    ids.sort();
    // A small xorshift generator seeded from the clock and the process id is enough for a
    // sampling choice; this keeps the engine free of an RNG dependency.
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0x9E37_79B9_7F4A_7C15)
        ^ (u64::from(std::process::id()) << 32)
        | 1;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    // Partial Fisher–Yates shuffle.
    let want = want.min(ids.len());
    for i in 0..want {
        let span = (ids.len() - i) as u64;
        let j = i + (next() % span) as usize;
        ids.swap(i, j);
    }
    ids.truncate(want);
    ids
}

impl ReadDataSubset {
    /// Select the packs to read from `packs` (pack id → size computed from the index).
    pub fn select(&self, packs: &HashMap<Id, u64>) -> Vec<Id> {
        let mut out = match *self {
            ReadDataSubset::All => packs.keys().copied().collect(),
            ReadDataSubset::Bucket { n, total } => packs
                .keys()
                .filter(|id| in_bucket(id, n, total))
                .copied()
                .collect(),
            ReadDataSubset::Percent(p) => random_share(packs, p),
            ReadDataSubset::Bytes(n) => {
                let total: u64 = packs.values().sum();
                if total == 0 {
                    packs.keys().copied().collect()
                } else {
                    let share = n.min(total) as f64 / total as f64 * 100.0;
                    random_share(packs, share)
                }
            }
        };
        out.sort();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_restic_forms() {
        let p = |s: &str| s.parse::<ReadDataSubset>();
        assert_eq!(p("1/2").unwrap(), ReadDataSubset::Bucket { n: 1, total: 2 });
        assert_eq!(
            p("256/256").unwrap(),
            ReadDataSubset::Bucket { n: 256, total: 256 }
        );
        assert_eq!(p("12.5%").unwrap(), ReadDataSubset::Percent(12.5));
        assert_eq!(p("100%").unwrap(), ReadDataSubset::Percent(100.0));
        assert_eq!(p("5M").unwrap(), ReadDataSubset::Bytes(5 << 20));
        assert_eq!(p("2g").unwrap(), ReadDataSubset::Bytes(2 << 30));
        assert_eq!(p("700b").unwrap(), ReadDataSubset::Bytes(700));
        for bad in [
            "0/2", "3/2", "1/0", "1/257", "1/2/3", "5", "0%", "101%", "x%", "", "abc", "0M", "-1M",
            "1.5M",
        ] {
            assert!(p(bad).is_err(), "{bad} accepted");
        }
        assert!(p("3/2").unwrap_err().to_string().contains("n <= t"));
        assert!(p("1/300").unwrap_err().to_string().contains("256"));
    }

    fn packs(n: u8) -> HashMap<Id, u64> {
        (0..n).map(|i| (Id([i; 32]), 100 + u64::from(i))).collect()
    }

    #[test]
    fn buckets_partition_by_first_byte() {
        let all = packs(200);
        let mut seen = Vec::new();
        for n in 1..=7 {
            let sel = ReadDataSubset::Bucket { n, total: 7 }.select(&all);
            assert!(sel.iter().all(|id| u32::from(id.0[0]) % 7 == n - 1));
            seen.extend(sel);
        }
        seen.sort();
        let mut every: Vec<Id> = all.keys().copied().collect();
        every.sort();
        assert_eq!(seen, every);
        assert_eq!(ReadDataSubset::All.select(&all).len(), 200);
    }

    #[test]
    fn random_shares() {
        let all = packs(50);
        assert_eq!(ReadDataSubset::Percent(10.0).select(&all).len(), 5);
        assert_eq!(ReadDataSubset::Percent(0.1).select(&all).len(), 1);
        assert_eq!(ReadDataSubset::Percent(100.0).select(&all).len(), 50);
        let sel = ReadDataSubset::Percent(50.0).select(&all);
        let mut dedup = sel.clone();
        dedup.dedup();
        assert_eq!(dedup.len(), 25);
        let total: u64 = all.values().sum();
        assert_eq!(ReadDataSubset::Bytes(total * 2).select(&all).len(), 50);
        assert_eq!(ReadDataSubset::Bytes(total / 5).select(&all).len(), 10);
        assert!(
            ReadDataSubset::Percent(10.0)
                .select(&HashMap::new())
                .is_empty()
        );
    }
}
