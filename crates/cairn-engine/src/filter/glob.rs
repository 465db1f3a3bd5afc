//! Go `path/filepath.Match` semantics (Unix flavour) for one path component,
//! compiled once and matched on bytes.
//!
//! Syntax (as in Go):
//! - `*` matches any run of non-`/` bytes, `?` one non-`/` character,
//! - `[...]` a character class of runes, `[^...]` its complement, with ranges
//!   `lo-hi`; `-` and `]` must be escaped inside a class,
//! - `\c` matches `c` literally (also inside classes).
//!
//! Like current Go, the whole pattern is checked for syntax errors; a
//! pattern that compiles can never fail to match with an error later.
//! Characters are decoded as UTF-8 where a class or `?` needs a rune; an
//! undecodable byte in the name counts as one U+FFFD rune (as Go does).

/// The pattern is not valid `filepath.Match` syntax.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct GlobSyntaxError;

/// One single-character operator.
#[derive(Debug, Clone)]
enum Item {
    /// A literal byte.
    Lit(u8),
    /// `?`: any one character except `/`.
    Any,
    /// `[...]`: inclusive rune ranges, possibly negated.
    Class {
        negated: bool,
        ranges: Box<[(u32, u32)]>,
    },
}

/// A run of single-character operators, optionally preceded by `*`.
#[derive(Debug, Clone)]
struct Chunk {
    star: bool,
    items: Box<[Item]>,
}

/// A compiled `filepath.Match` pattern.
#[derive(Debug, Clone)]
pub(crate) struct Glob {
    chunks: Box<[Chunk]>,
}

const RUNE_ERROR: u32 = 0xFFFD;

impl Glob {
    /// Compiles `pattern`, rejecting anything Go's `filepath.Match` would
    /// report as `ErrBadPattern`.
    pub(crate) fn compile(pattern: &[u8]) -> Result<Glob, GlobSyntaxError> {
        let mut chunks = Vec::new();
        let mut rest = pattern;
        while !rest.is_empty() {
            let mut star = false;
            while let [b'*', tail @ ..] = rest {
                star = true;
                rest = tail;
            }
            let end = scan_chunk_end(rest);
            let (chunk, tail) = rest.split_at_checked(end).unwrap_or((rest, &[]));
            rest = tail;
            chunks.push(Chunk {
                star,
                items: parse_chunk(chunk)?,
            });
        }
        Ok(Glob {
            chunks: chunks.into_boxed_slice(),
        })
    }

    /// Reports whether the whole of `name` matches.
    pub(crate) fn matches(&self, mut name: &[u8]) -> bool {
        let count = self.chunks.len();
        'chunks: for (idx, chunk) in self.chunks.iter().enumerate() {
            let last = idx + 1 == count;
            if chunk.star && chunk.items.is_empty() {
                // Trailing `*` matches the rest unless it has a separator.
                return !name.contains(&b'/');
            }
            if let Some(rest) = match_chunk(&chunk.items, name)
                && (rest.is_empty() || !last)
            {
                name = rest;
                continue;
            }
            if chunk.star {
                // Let the star swallow 1, 2, ... bytes (never a separator).
                let mut i = 0;
                while let Some(&b) = name.get(i) {
                    if b == b'/' {
                        break;
                    }
                    let Some(after) = name.get(i + 1..) else {
                        break;
                    };
                    if let Some(rest) = match_chunk(&chunk.items, after)
                        && (!last || rest.is_empty())
                    {
                        name = rest;
                        continue 'chunks;
                    }
                    i += 1;
                }
            }
            return false;
        }
        name.is_empty()
    }
}

/// Length of the chunk at the start of `p`: up to the next `*` outside a
/// bracket expression (Go's `scanChunk`).
fn scan_chunk_end(p: &[u8]) -> usize {
    let mut in_range = false;
    let mut i = 0;
    while let Some(&b) = p.get(i) {
        match b {
            // A trailing `\` is left for the chunk parser to reject.
            b'\\' if i + 1 < p.len() => i += 1,
            b'[' => in_range = true,
            b']' => in_range = false,
            b'*' if !in_range => break,
            _ => {}
        }
        i += 1;
    }
    i
}

/// Parses a star-free chunk into items (Go's `matchChunk`, syntax part).
fn parse_chunk(mut chunk: &[u8]) -> Result<Box<[Item]>, GlobSyntaxError> {
    let mut items = Vec::with_capacity(chunk.len());
    while let Some((&first, tail)) = chunk.split_first() {
        match first {
            b'[' => {
                chunk = tail;
                let negated = match chunk {
                    [b'^', t @ ..] => {
                        chunk = t;
                        true
                    }
                    _ => false,
                };
                let mut ranges = Vec::new();
                loop {
                    if let [b']', t @ ..] = chunk
                        && !ranges.is_empty()
                    {
                        chunk = t;
                        break;
                    }
                    let (lo, t) = get_esc(chunk)?;
                    chunk = t;
                    let mut hi = lo;
                    if let [b'-', t @ ..] = chunk {
                        let (h, t2) = get_esc(t)?;
                        hi = h;
                        chunk = t2;
                    }
                    ranges.push((lo, hi));
                }
                items.push(Item::Class {
                    negated,
                    ranges: ranges.into_boxed_slice(),
                });
            }
            b'?' => {
                items.push(Item::Any);
                chunk = tail;
            }
            b'\\' => {
                let Some((&b, t)) = tail.split_first() else {
                    return Err(GlobSyntaxError);
                };
                items.push(Item::Lit(b));
                chunk = t;
            }
            b => {
                items.push(Item::Lit(b));
                chunk = tail;
            }
        }
    }
    Ok(items.into_boxed_slice())
}

/// Reads one possibly escaped rune of a character class (Go's `getEsc`).
/// Something must follow it (at least the closing `]`).
fn get_esc(chunk: &[u8]) -> Result<(u32, &[u8]), GlobSyntaxError> {
    let chunk = match chunk {
        [] | [b'-', ..] | [b']', ..] => return Err(GlobSyntaxError),
        [b'\\', t @ ..] => t,
        _ => chunk,
    };
    let (c, width) = decode_char(chunk).ok_or(GlobSyntaxError)?;
    let rest = chunk.get(width..).unwrap_or(&[]);
    if rest.is_empty() {
        return Err(GlobSyntaxError);
    }
    Ok((u32::from(c), rest))
}

/// Decodes the first UTF-8 character of `s`; `None` if `s` is empty or does
/// not start with a valid encoding.
pub(crate) fn decode_char(s: &[u8]) -> Option<(char, usize)> {
    let head = s.get(..s.len().min(4))?;
    let valid = match std::str::from_utf8(head) {
        Ok(v) => v,
        Err(e) => std::str::from_utf8(head.get(..e.valid_up_to())?).ok()?,
    };
    let c = valid.chars().next()?;
    Some((c, c.len_utf8()))
}

/// Decodes one rune like Go's `utf8.DecodeRune` on a non-empty input:
/// invalid input yields U+FFFD with width 1.
fn decode_lossy(s: &[u8]) -> (u32, usize) {
    match decode_char(s) {
        Some((c, w)) => (u32::from(c), w),
        None => (RUNE_ERROR, 1),
    }
}

/// Matches `items` against the start of `s`, returning the unmatched rest.
fn match_chunk<'a>(items: &[Item], mut s: &'a [u8]) -> Option<&'a [u8]> {
    for item in items {
        let &first = s.first()?;
        match item {
            Item::Lit(b) => {
                if first != *b {
                    return None;
                }
                s = s.get(1..)?;
            }
            Item::Any => {
                if first == b'/' {
                    return None;
                }
                let (_, w) = decode_lossy(s);
                s = s.get(w..)?;
            }
            Item::Class { negated, ranges } => {
                let (r, w) = decode_lossy(s);
                s = s.get(w..)?;
                let hit = ranges.iter().any(|&(lo, hi)| lo <= r && r <= hi);
                if hit == *negated {
                    return None;
                }
            }
        }
    }
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn go_match(pattern: &str, name: &str) -> Result<bool, GlobSyntaxError> {
        Glob::compile(pattern.as_bytes()).map(|g| g.matches(name.as_bytes()))
    }

    /// Go's `path/filepath` `matchTests` (facts about `filepath.Match`).
    #[test]
    fn go_filepath_match_table() {
        let bad = Err(GlobSyntaxError);
        let cases: &[(&str, &str, Result<bool, GlobSyntaxError>)] = &[
            ("abc", "abc", Ok(true)),
            ("*", "abc", Ok(true)),
            ("*c", "abc", Ok(true)),
            ("a*", "a", Ok(true)),
            ("a*", "abc", Ok(true)),
            ("a*", "ab/c", Ok(false)),
            ("a*/b", "abc/b", Ok(true)),
            ("a*/b", "a/c/b", Ok(false)),
            ("a*b*c*d*e*/f", "axbxcxdxe/f", Ok(true)),
            ("a*b*c*d*e*/f", "axbxcxdxexxx/f", Ok(true)),
            ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", Ok(false)),
            ("a*b*c*d*e*/f", "axbxcxdxexxx/fff", Ok(false)),
            ("a*b?c*x", "abxbbxdbxebxczzx", Ok(true)),
            ("a*b?c*x", "abxbbxdbxebxczzy", Ok(false)),
            ("ab[c]", "abc", Ok(true)),
            ("ab[b-d]", "abc", Ok(true)),
            ("ab[e-g]", "abc", Ok(false)),
            ("ab[^c]", "abc", Ok(false)),
            ("ab[^b-d]", "abc", Ok(false)),
            ("ab[^e-g]", "abc", Ok(true)),
            ("a\\*b", "a*b", Ok(true)),
            ("a\\*b", "ab", Ok(false)),
            ("a?b", "a☺b", Ok(true)),
            ("a[^a]b", "a☺b", Ok(true)),
            ("a???b", "a☺b", Ok(false)),
            ("a[^a][^a][^a]b", "a☺b", Ok(false)),
            ("[a-ζ]*", "α", Ok(true)),
            ("*[a-ζ]", "A", Ok(false)),
            ("a?b", "a/b", Ok(false)),
            ("a*b", "a/b", Ok(false)),
            ("[\\]a]", "]", Ok(true)),
            ("[\\-]", "-", Ok(true)),
            ("[x\\-]", "x", Ok(true)),
            ("[x\\-]", "-", Ok(true)),
            ("[x\\-]", "z", Ok(false)),
            ("[\\-x]", "x", Ok(true)),
            ("[\\-x]", "-", Ok(true)),
            ("[\\-x]", "a", Ok(false)),
            ("[]a]", "]", bad),
            ("[-]", "-", bad),
            ("[x-]", "x", bad),
            ("[x-]", "-", bad),
            ("[x-]", "z", bad),
            ("[-x]", "x", bad),
            ("[-x]", "-", bad),
            ("[-x]", "a", bad),
            ("\\", "a", bad),
            ("[a-b-c]", "a", bad),
            ("[", "a", bad),
            ("[^", "a", bad),
            ("[^bc", "a", bad),
            ("a[", "a", bad),
            ("a[", "ab", bad),
            ("a[", "x", bad),
            ("a/b[", "x", bad),
            ("*x", "xxx", Ok(true)),
        ];
        for (pattern, name, want) in cases {
            assert_eq!(
                go_match(pattern, name),
                *want,
                "Match({pattern:?}, {name:?})"
            );
        }
    }

    #[test]
    fn extra_cases() {
        // `*` inside a class is literal; `\` escapes inside classes.
        assert_eq!(go_match("[*]", "*"), Ok(true));
        assert_eq!(go_match("[*]", "a"), Ok(false));
        assert_eq!(go_match("a[\\]]*", "a]xyz"), Ok(true));
        // `!` is not a class negation in Go; it is an ordinary member.
        assert_eq!(go_match("[!a]", "!"), Ok(true));
        assert_eq!(go_match("[!a]", "b"), Ok(false));
        // Empty pattern matches only the empty name.
        assert_eq!(go_match("", ""), Ok(true));
        assert_eq!(go_match("", "a"), Ok(false));
        // Literal bytes, including invalid UTF-8, compare bytewise.
        assert!(Glob::compile(b"a\xffb").unwrap().matches(b"a\xffb"));
        // `?` and negated classes consume one undecodable byte.
        assert!(Glob::compile(b"a?b").unwrap().matches(b"a\xffb"));
        assert!(Glob::compile(b"a[^x]b").unwrap().matches(b"a\xffb"));
        // Invalid UTF-8 inside a class is a syntax error.
        assert!(Glob::compile(b"[\xff]").is_err());
        // Escaped star is literal, `*` may span zero bytes.
        assert_eq!(go_match("*.go", ".go"), Ok(true));
        assert_eq!(go_match("***", "abc"), Ok(true));
        assert_eq!(go_match("a*", ""), Ok(false));
    }
}
