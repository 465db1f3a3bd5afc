//! Property tests of the policy: partition, keep-last, idempotence, order independence,
//! monotonicity.

use super::*;
use proptest::prelude::*;
use std::collections::BTreeSet;

fn utc_zone(_: i64) -> i32 {
    0
}

/// 2024-01-01T00:00:00Z; snapshot times lie up to ~3 years before it.
const BASE: i64 = 1_704_067_200;

fn clock() -> Clock<'static> {
    Clock {
        now: GoTime::from_unix_with_offset(BASE + 10, 0, 0),
        local_offset: &utc_zone,
    }
}

fn arb_snapshots() -> impl Strategy<Value = Vec<(Id, Snapshot)>> {
    // (seconds before BASE, offset in quarter hours, tag bits); coarse steps make same
    // hour/day collisions and exact ties common.
    let one = (
        prop_oneof![0i64..7_200, 0i64..400_000, 0i64..100_000_000],
        -12i32..=14,
        0u8..4,
        prop::bool::ANY,
    );
    prop::collection::vec(one, 0..40).prop_map(|v| {
        v.into_iter()
            .enumerate()
            .map(|(i, (ago, q, tags, coarse))| {
                let ago = if coarse { ago - ago % 1800 } else { ago };
                let t = GoTime::from_unix_with_offset(BASE - ago, 0, q * 900);
                let mut s = Snapshot::new(t, Id::hash(b"tree"), vec!["/p".into()]);
                if tags & 1 != 0 {
                    s.tags.push("a".into());
                }
                if tags & 2 != 0 {
                    s.tags.push("b".into());
                }
                let mut id = [0u8; 32];
                id[..8].copy_from_slice(&(i as u64).to_be_bytes());
                id[31] = (ago % 251) as u8;
                (Id(id), s)
            })
            .collect()
    })
}

fn arb_count() -> impl Strategy<Value = i64> {
    prop_oneof![Just(0i64), 1i64..6, Just(UNLIMITED)]
}

fn arb_duration() -> impl Strategy<Value = PolicyDuration> {
    prop_oneof![
        Just(PolicyDuration::default()),
        (0i64..2, 0i64..3, 0i64..10, 0i64..30).prop_map(|(years, months, days, hours)| {
            PolicyDuration {
                years,
                months,
                days,
                hours,
            }
        }),
    ]
}

fn arb_policy() -> impl Strategy<Value = ExpirePolicy> {
    (
        prop::collection::vec(arb_count(), 6),
        prop::collection::vec(arb_duration(), 6),
        0u8..4,
    )
        .prop_map(|(c, d, tags)| ExpirePolicy {
            last: c[0],
            hourly: c[1],
            daily: c[2],
            weekly: c[3],
            monthly: c[4],
            yearly: c[5],
            within: d[0],
            within_hourly: d[1],
            within_daily: d[2],
            within_weekly: d[3],
            within_monthly: d[4],
            within_yearly: d[5],
            tags: match tags {
                1 => vec![vec!["a".into()]],
                2 => vec![vec!["a".into(), "b".into()], vec!["".into()]],
                _ => Vec::new(),
            },
        })
}

fn id_set(list: &[(Id, Snapshot)]) -> BTreeSet<Id> {
    list.iter().map(|(id, _)| *id).collect()
}

fn rules() -> impl Strategy<Value = Rules> {
    prop_oneof![Just(Rules::Latest), Just(Rules::Restic014)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn keep_and_remove_partition_the_input(
        snaps in arb_snapshots(), p in arb_policy(), r in rules()
    ) {
        let res = apply_policy(snaps.clone(), &p, r, &clock());
        prop_assert_eq!(res.keep.len() + res.remove.len(), snaps.len());
        let keep = id_set(&res.keep);
        let remove = id_set(&res.remove);
        prop_assert!(keep.is_disjoint(&remove));
        let all: BTreeSet<Id> = keep.union(&remove).copied().collect();
        prop_assert_eq!(all, id_set(&snaps));
        prop_assert_eq!(res.reasons.len(), res.keep.len());
        for (reason, (id, _)) in res.reasons.iter().zip(&res.keep) {
            prop_assert_eq!(reason.id, *id);
            prop_assert!(!reason.matches.is_empty());
        }
        // Both lists newest first.
        for list in [&res.keep, &res.remove] {
            for w in list.windows(2) {
                prop_assert!(w[0].1.time >= w[1].1.time);
            }
        }
        // A non-empty policy with a count or a duration always keeps the newest snapshot.
        let counted = [p.last, p.hourly, p.daily, p.weekly, p.monthly, p.yearly]
            .iter()
            .any(|c| *c > 0 || (r == Rules::Latest && *c == UNLIMITED));
        if counted && !snaps.is_empty() {
            let mut sorted = snaps.clone();
            sort_newest_first(&mut sorted);
            prop_assert_eq!(res.keep.first().map(|x| x.0), Some(sorted[0].0));
        }
    }

    #[test]
    fn keep_last_keeps_exactly_the_newest(snaps in arb_snapshots(), n in 1i64..50) {
        let p = ExpirePolicy { last: n, ..Default::default() };
        let res = apply_policy(snaps.clone(), &p, Rules::Latest, &clock());
        let mut sorted = snaps.clone();
        sort_newest_first(&mut sorted);
        let k = (n as usize).min(sorted.len());
        prop_assert_eq!(id_set(&res.keep), id_set(&sorted[..k]));
        let u = ExpirePolicy { last: UNLIMITED, ..Default::default() };
        prop_assert_eq!(apply_policy(snaps.clone(), &u, Rules::Latest, &clock()).keep.len(), snaps.len());
    }

    #[test]
    fn policy_is_idempotent(snaps in arb_snapshots(), p in arb_policy(), r in rules()) {
        let first = apply_policy(snaps, &p, r, &clock());
        let second = apply_policy(first.keep.clone(), &p, r, &clock());
        prop_assert!(second.remove.is_empty(), "removed on second run: {:?}", id_set(&second.remove));
        prop_assert_eq!(id_set(&second.keep), id_set(&first.keep));
    }

    #[test]
    fn input_order_is_irrelevant(snaps in arb_snapshots(), p in arb_policy(), seed in any::<u64>()) {
        let mut shuffled = snaps.clone();
        let mut x = seed | 1;
        for i in (1..shuffled.len()).rev() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            shuffled.swap(i, (x % (i as u64 + 1)) as usize);
        }
        let a = apply_policy(snaps, &p, Rules::Latest, &clock());
        let b = apply_policy(shuffled, &p, Rules::Latest, &clock());
        prop_assert_eq!(a, b);
    }

    #[test]
    fn more_counts_never_keep_less(snaps in arb_snapshots(), p in arb_policy(), which in 0usize..6) {
        let mut q = p.clone();
        let c = match which {
            0 => &mut q.last,
            1 => &mut q.hourly,
            2 => &mut q.daily,
            3 => &mut q.weekly,
            4 => &mut q.monthly,
            _ => &mut q.yearly,
        };
        if *c >= 0 {
            *c += 1;
        }
        let a = apply_policy(snaps.clone(), &p, Rules::Latest, &clock());
        let b = apply_policy(snaps, &q, Rules::Latest, &clock());
        prop_assert!(id_set(&a.keep).is_subset(&id_set(&b.keep)));
    }
}
