//! One restic filter pattern (`internal/filter`), compiled.
//!
//! A pattern is cleaned like Go's `filepath.Clean` (so `//`, `.`, `..` and a
//! trailing `/` are normalised) and split into components. The first
//! component of an absolute pattern is the root marker `/`, which anchors
//! the pattern; a relative pattern may start at any depth. Each component is
//! a literal, a `filepath.Match` glob, or `**` (any number of components).
//! A pattern matches a path when it matches a run of consecutive components
//! of the path; the run need not reach the end, so a pattern that matches a
//! directory also matches everything below it.

use super::glob::{Glob, GlobSyntaxError};

/// One pattern component.
#[derive(Debug, Clone)]
enum Part {
    /// Compared bytewise (this includes the root marker `/`).
    Literal(Box<[u8]>),
    /// A `filepath.Match` pattern for one component.
    Glob(Glob),
    /// `**`: any number of components.
    DoubleStar,
}

impl Part {
    /// Matches one path component. `DoubleStar` is never asked here.
    fn matches(&self, comp: &[u8]) -> bool {
        match self {
            Part::Literal(lit) => **lit == *comp,
            Part::Glob(g) => g.matches(comp),
            Part::DoubleStar => true,
        }
    }
}

/// A compiled pattern.
#[derive(Debug, Clone)]
pub(crate) struct Pattern {
    /// Whether the pattern started with `!`.
    pub(crate) negated: bool,
    absolute: bool,
    parts: Box<[Part]>,
    /// Index of the first `**` part, if any.
    first_double_star: Option<usize>,
    /// The parts between `**`s (one more than the number of `**`s); only
    /// filled when there is at least one `**`.
    segments: Box<[Box<[Part]>]>,
    /// `suffix_plain[j]`: number of non-`**` parts in `segments[j..]`.
    suffix_plain: Box<[usize]>,
}

/// The root marker used as first component of absolute paths and patterns.
pub(crate) const ROOT: &[u8] = b"/";

impl Pattern {
    /// Compiles one non-empty pattern (a leading `!` negates it).
    pub(crate) fn parse(raw: &[u8]) -> Result<Pattern, GlobSyntaxError> {
        let (negated, body) = match raw {
            [b'!', rest @ ..] => (true, rest),
            _ => (false, raw),
        };
        let cleaned = clean(body);
        let mut parts = Vec::new();
        for comp in split_path(&cleaned) {
            let part = if comp == b"**" || comp.is_empty() {
                // An empty component only arises for the pattern `/`, which
                // restic treats like `/**`.
                Part::DoubleStar
            } else if !comp
                .iter()
                .any(|b| matches!(b, b'\\' | b'[' | b']' | b'*' | b'?'))
            {
                Part::Literal(comp.into())
            } else {
                Part::Glob(Glob::compile(comp)?)
            };
            parts.push(part);
        }
        let absolute = matches!(parts.first(), Some(Part::Literal(l)) if **l == *ROOT);
        let first_double_star = parts.iter().position(|p| matches!(p, Part::DoubleStar));
        let (segments, suffix_plain) = if first_double_star.is_some() {
            let segments: Vec<Box<[Part]>> = parts
                .split(|p| matches!(p, Part::DoubleStar))
                .map(|s| s.to_vec().into_boxed_slice())
                .collect();
            let mut suffix = vec![0usize; segments.len() + 1];
            for (j, seg) in segments.iter().enumerate().rev() {
                let next = suffix.get(j + 1).copied().unwrap_or(0);
                if let Some(slot) = suffix.get_mut(j) {
                    *slot = next + seg.len();
                }
            }
            (segments.into_boxed_slice(), suffix.into_boxed_slice())
        } else {
            (Box::default(), Box::default())
        };
        Ok(Pattern {
            negated,
            absolute,
            parts: parts.into_boxed_slice(),
            first_double_star,
            segments,
            suffix_plain,
        })
    }

    /// restic's `match`: does the pattern (ignoring negation) match the path
    /// given as components (see [`with_components`])?
    pub(crate) fn matches(&self, strs: &[&[u8]]) -> bool {
        if self.first_double_star.is_none() {
            self.match_plain(strs)
        } else {
            self.match_double_star(strs)
        }
    }

    /// Window match for a pattern without `**`.
    fn match_plain(&self, strs: &[&[u8]]) -> bool {
        let n = self.parts.len();
        let Some(max_off) = strs.len().checked_sub(n) else {
            return false;
        };
        if n == 0 {
            return strs.is_empty();
        }
        let (min_off, max_off) = if self.absolute {
            (0, 0)
        } else if strs.first() == Some(&ROOT) {
            // A relative pattern never matches the root marker.
            (1, max_off)
        } else {
            (0, max_off)
        };
        (min_off..=max_off).rev().any(|off| {
            strs.get(off..off + n).is_some_and(|window| {
                self.parts
                    .iter()
                    .zip(window)
                    .rev()
                    .all(|(p, s)| p.matches(s))
            })
        })
    }

    /// restic expands each `**` into 0, 1, 2, ... `*` components, bounded so
    /// that after expanding the first j of them the pattern (counting every
    /// remaining `**` as one component) is never longer than the path, and
    /// then does a window match. This reproduces exactly that set of
    /// expansions without enumerating them: for each window start, every
    /// segment between `**`s is placed at its leftmost admissible position.
    fn match_double_star(&self, strs: &[&[u8]]) -> bool {
        let total = strs.len();
        let plain = self.suffix_plain.first().copied().unwrap_or(0);
        let Some(max_off) = total.checked_sub(plain) else {
            return false;
        };
        let (min_off, max_off) = if self.absolute {
            (0, 0)
        } else if strs.first() == Some(&ROOT) {
            (1, max_off)
        } else {
            (0, max_off)
        };
        (min_off..=max_off).any(|off| self.match_double_star_at(strs, off))
    }

    fn match_double_star_at(&self, strs: &[&[u8]], off: usize) -> bool {
        let total = strs.len();
        let Some((first, rest)) = self.segments.split_first() else {
            return false;
        };
        if !segment_at(first, strs, off) {
            return false;
        }
        let stars = rest.len();
        let mut pos = off + first.len();
        for (idx, seg) in rest.iter().enumerate() {
            let j = idx + 1;
            let remaining_plain = self.suffix_plain.get(j).copied().unwrap_or(0);
            let remaining_stars = stars - j;
            // Room for this and all later segments.
            let Some(fit) = total.checked_sub(remaining_plain) else {
                return false;
            };
            // restic's expansion bound for the j-th `**`.
            let Some(bound) = (total + off).checked_sub(remaining_plain + remaining_stars) else {
                return false;
            };
            let bound = fit.min(bound);
            let mut found = None;
            let mut p = pos;
            while p <= bound {
                if segment_at(seg, strs, p) {
                    found = Some(p);
                    break;
                }
                p += 1;
            }
            match found {
                Some(p) => pos = p + seg.len(),
                None => return false,
            }
        }
        true
    }

    /// restic's `childMatch`: may a path below `strs` match this pattern
    /// (ignoring negation)? Relative patterns always may.
    pub(crate) fn child_may_match(&self, strs: &[&[u8]]) -> bool {
        if !self.absolute {
            return true;
        }
        let mut len = strs.len();
        if let Some(pos) = self.first_double_star
            && len >= pos
        {
            len = pos;
        }
        let l = len.min(self.parts.len());
        if l == 0 {
            return false;
        }
        match (self.parts.get(..l), strs.get(..l)) {
            (Some(parts), Some(strs)) => parts.iter().zip(strs).all(|(p, s)| p.matches(s)),
            _ => false,
        }
    }
}

/// Does `seg` match the components starting at `pos`?
fn segment_at(seg: &[Part], strs: &[&[u8]], pos: usize) -> bool {
    match strs.get(pos..pos + seg.len()) {
        Some(window) => seg.iter().zip(window).all(|(p, s)| p.matches(s)),
        None => false,
    }
}

/// Go's `filepath.Clean` on Unix, on bytes.
pub(crate) fn clean(p: &[u8]) -> Vec<u8> {
    if p.is_empty() {
        return b".".to_vec();
    }
    let rooted = p.first() == Some(&b'/');
    let mut stack: Vec<&[u8]> = Vec::new();
    for elem in p.split(|&b| b == b'/') {
        match elem {
            b"" | b"." => {}
            b".." => {
                if stack.last().is_some_and(|last| *last != b"..") {
                    stack.pop();
                } else if !rooted {
                    stack.push(elem);
                }
            }
            _ => stack.push(elem),
        }
    }
    let mut out = Vec::with_capacity(p.len());
    if rooted {
        out.push(b'/');
    }
    for (i, elem) in stack.iter().enumerate() {
        if i > 0 {
            out.push(b'/');
        }
        out.extend_from_slice(elem);
    }
    if out.is_empty() {
        out.push(b'.');
    }
    out
}

/// Splits on `/`; an empty first component (absolute path) becomes [`ROOT`].
/// Paths are not cleaned, so `"/a/"` gives `["/", "a", ""]`.
pub(crate) fn split_path(p: &[u8]) -> impl Iterator<Item = &[u8]> {
    p.split(|&b| b == b'/')
        .enumerate()
        .map(|(i, c)| if i == 0 && c.is_empty() { ROOT } else { c })
}

/// Number of components kept on the stack by [`with_components`].
const INLINE_COMPONENTS: usize = 48;

/// Splits `path` into components (see [`split_path`]) and runs `f` on them
/// without allocating for paths of up to 48 components. Returns `None` for
/// the empty path, which restic rejects.
pub(crate) fn with_components<R>(path: &[u8], f: impl FnOnce(&[&[u8]]) -> R) -> Option<R> {
    if path.is_empty() {
        return None;
    }
    let count = path.iter().filter(|&&b| b == b'/').count() + 1;
    if count <= INLINE_COMPONENTS {
        let mut buf: [&[u8]; INLINE_COMPONENTS] = [&[]; INLINE_COMPONENTS];
        for (slot, comp) in buf.iter_mut().zip(split_path(path)) {
            *slot = comp;
        }
        buf.get(..count).map(f)
    } else {
        let comps: Vec<&[u8]> = split_path(path).collect();
        Some(f(&comps))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_like_go() {
        let cases = [
            ("", "."),
            ("/", "/"),
            ("abc", "abc"),
            ("abc/", "abc"),
            ("a//b", "a/b"),
            ("/foo///bar", "/foo/bar"),
            ("./a/.", "a"),
            ("/foo/../bar", "/bar"),
            ("/../a", "/a"),
            ("../a", "../a"),
            ("a/../../b", "../b"),
            ("a/..", "."),
            ("/..", "/"),
            ("a/b/../c/./d/", "a/c/d"),
        ];
        for (input, want) in cases {
            assert_eq!(clean(input.as_bytes()), want.as_bytes(), "clean({input:?})");
        }
    }

    #[test]
    fn split_like_restic() {
        let got: Vec<&[u8]> = split_path(b"/a/b/").collect();
        assert_eq!(got, vec![&b"/"[..], b"a", b"b", b""]);
        let got: Vec<&[u8]> = split_path(b"a/b").collect();
        assert_eq!(got, vec![&b"a"[..], b"b"]);
        let got: Vec<&[u8]> = split_path(b"/").collect();
        assert_eq!(got, vec![&b"/"[..], b""]);
    }

    #[test]
    fn components_inline_and_heap() {
        assert_eq!(with_components(b"", |c| c.len()), None);
        assert_eq!(with_components(b"/a/b", |c| c.len()), Some(3));
        let deep = "/x".repeat(100);
        let n = with_components(deep.as_bytes(), |c| {
            assert_eq!(c.first(), Some(&ROOT));
            assert!(c.iter().skip(1).all(|s| *s == b"x"));
            c.len()
        });
        assert_eq!(n, Some(101));
    }

    #[test]
    fn root_pattern_is_double_star() {
        let p = Pattern::parse(b"/").unwrap();
        with_components(b"/anything/below", |s| assert!(p.matches(s)));
        with_components(b"relative", |s| assert!(!p.matches(s)));
        let p = Pattern::parse(b"*").unwrap();
        // `*` matches the empty name component of the path "/".
        with_components(b"/", |s| assert!(p.matches(s)));
    }

    #[test]
    fn trailing_double_star_quirk() {
        // restic counts a trailing `**` as one component while the earlier
        // `**` is expanded, so this needs one more component than expected.
        let p = Pattern::parse(b"/**/a/**").unwrap();
        with_components(b"/x/y/a", |s| assert!(!p.matches(s)));
        with_components(b"/x/y/a/b", |s| assert!(p.matches(s)));
        with_components(b"/x/a", |s| assert!(!p.matches(s)));
        with_components(b"/a", |s| assert!(!p.matches(s)));
        with_components(b"/a/b", |s| assert!(p.matches(s)));
        let p = Pattern::parse(b"/foo/**").unwrap();
        with_components(b"/foo", |s| assert!(p.matches(s)));
    }
}
