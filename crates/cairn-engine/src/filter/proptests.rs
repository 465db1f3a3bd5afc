//! Property tests: the optimised `**` matcher agrees with a literal port of
//! restic's recursive expansion, and nothing panics on arbitrary input.

use proptest::prelude::*;

use super::glob::Glob;
use super::pattern::{Pattern, ROOT, clean, split_path, with_components};
use super::*;

/// A pattern component of the reference model.
#[derive(Clone, Debug)]
enum RefPart {
    DoubleStar,
    Glob(Vec<u8>),
}

fn ref_parse(raw: &[u8]) -> Vec<RefPart> {
    let cleaned = clean(raw);
    split_path(&cleaned)
        .map(|c| {
            if c == b"**" || c.is_empty() {
                RefPart::DoubleStar
            } else {
                RefPart::Glob(c.to_vec())
            }
        })
        .collect()
}

fn ref_part_matches(part: &RefPart, comp: &[u8]) -> bool {
    match part {
        RefPart::DoubleStar => unreachable!("expanded before matching"),
        RefPart::Glob(g) => Glob::compile(g).unwrap().matches(comp),
    }
}

/// restic's `match`, transcribed literally (allocating, exponential).
fn ref_match(parts: &[RefPart], strs: &[&[u8]]) -> bool {
    if let Some(pos) = parts.iter().position(|p| matches!(p, RefPart::DoubleStar)) {
        let max = strs.len() as isize - parts.len() as isize + 1;
        let mut i = 0;
        while i <= max {
            let mut expanded: Vec<RefPart> = parts[..pos].to_vec();
            expanded.extend(std::iter::repeat_n(
                RefPart::Glob(b"*".to_vec()),
                i as usize,
            ));
            expanded.extend_from_slice(&parts[pos + 1..]);
            if ref_match(&expanded, strs) {
                return true;
            }
            i += 1;
        }
        return false;
    }
    if parts.is_empty() {
        return strs.is_empty();
    }
    if parts.len() > strs.len() {
        return false;
    }
    let absolute = matches!(&parts[0], RefPart::Glob(g) if g == ROOT);
    let mut min_off = 0;
    let mut max_off = strs.len() - parts.len();
    if absolute {
        max_off = 0;
    } else if strs[0] == ROOT {
        min_off = 1;
    }
    let mut off = max_off as isize;
    while off >= min_off as isize {
        let o = off as usize;
        if parts
            .iter()
            .enumerate()
            .all(|(i, p)| ref_part_matches(p, strs[o + i]))
        {
            return true;
        }
        off -= 1;
    }
    false
}

/// restic's `childMatch`, transcribed literally.
fn ref_child_match(parts: &[RefPart], strs: &[&[u8]]) -> bool {
    let absolute = matches!(&parts[0], RefPart::Glob(g) if g == ROOT);
    if !absolute {
        return true;
    }
    let mut strs = strs;
    if let Some(pos) = parts.iter().position(|p| matches!(p, RefPart::DoubleStar))
        && strs.len() >= pos
    {
        strs = &strs[..pos];
    }
    let l = strs.len().min(parts.len());
    ref_match(&parts[..l], strs)
}

fn pattern_strategy() -> impl Strategy<Value = String> {
    let comp = prop::sample::select(vec![
        "a", "b", "*", "**", "**", "**", "?", "[ab]", "a*", ".", "..",
    ]);
    (
        any::<bool>(),
        prop::collection::vec(comp, 1..6),
        any::<bool>(),
    )
        .prop_map(|(absolute, comps, trailing)| {
            let mut s = if absolute {
                "/".to_string()
            } else {
                String::new()
            };
            s.push_str(&comps.join("/"));
            if trailing {
                s.push('/');
            }
            s
        })
}

fn path_strategy() -> impl Strategy<Value = String> {
    let comp = prop::sample::select(vec!["a", "a", "b", "c", "ab", ""]);
    (any::<bool>(), prop::collection::vec(comp, 1..8)).prop_map(|(absolute, comps)| {
        let mut s = if absolute {
            "/".to_string()
        } else {
            String::new()
        };
        s.push_str(&comps.join("/"));
        if s.is_empty() { "a".to_string() } else { s }
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(20000))]

    #[test]
    fn agrees_with_restic_reference(pattern in pattern_strategy(), path in path_strategy()) {
        let compiled = Pattern::parse(pattern.as_bytes()).unwrap();
        let reference = ref_parse(pattern.as_bytes());
        with_components(path.as_bytes(), |strs| {
            assert_eq!(
                compiled.matches(strs),
                ref_match(&reference, strs),
                "match({pattern:?}, {path:?})"
            );
            assert_eq!(
                compiled.child_may_match(strs),
                ref_child_match(&reference, strs),
                "childMatch({pattern:?}, {path:?})"
            );
        })
        .unwrap();
    }

    #[test]
    fn never_panics(
        patterns in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..24), 0..6),
        path in prop::collection::vec(any::<u8>(), 0..64),
        ci in any::<bool>(),
    ) {
        if let Ok(list) = PatternList::new(&patterns, ci) {
            let m = list.matches(&path);
            let (m2, _) = list.matches_with_child(&path);
            prop_assert_eq!(m, m2);
        }
        for p in &patterns {
            let _ = match_pattern(p, &path);
            let _ = child_match_pattern(p, &path);
        }
    }

    #[test]
    fn never_panics_on_pattern_like_bytes(
        pattern in "[!/a-c*?\\[\\]\\\\^{}$-]{0,16}",
        path in "[/a-c*?\\[\\]\\\\^-]{1,24}",
    ) {
        if let Ok(list) = PatternList::new(&[pattern.as_str()], false) {
            let _ = list.matches_with_child(&path);
        }
        let _ = expand_env_with(pattern.as_bytes(), |_| Some(b"v".to_vec()));
    }

    #[test]
    fn reverse_scan_equals_forward_list(
        patterns in prop::collection::vec(
            (any::<bool>(), pattern_strategy()).prop_map(|(neg, p)| if neg { format!("!{p}") } else { p }),
            0..5,
        ),
        path in path_strategy(),
    ) {
        let list = PatternList::new(&patterns, false).unwrap();
        let forward = list.matches_with_child(&path).0;
        prop_assert_eq!(list.matches(&path), forward);
    }
}

#[test]
fn many_double_stars_are_fast() {
    // The reference expansion is exponential here; the matcher must not be.
    let pattern = "**/".repeat(12) + "z";
    let list = PatternList::new(&[pattern], false).unwrap();
    let path = "/a".repeat(40);
    let start = std::time::Instant::now();
    assert!(!list.matches(&path));
    assert!(list.matches(format!("{path}/z")));
    assert!(start.elapsed() < std::time::Duration::from_secs(2));
}
