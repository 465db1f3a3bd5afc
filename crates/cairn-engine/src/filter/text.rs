//! Text helpers for filters: case folding, pattern files and restic's
//! environment-variable expansion in them.

use std::borrow::Cow;
use std::ffi::OsStr;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

use super::FilterError;

/// Lower-cases `s` like Go's `strings.ToLower`, rune by rune with the simple
/// (one-to-one) mapping. Bytes that are not valid UTF-8 are kept as they
/// are (Go would turn them into U+FFFD). Borrows when nothing changes.
pub(crate) fn to_lower(s: &[u8]) -> Cow<'_, [u8]> {
    if s.is_ascii() {
        if !s.iter().any(u8::is_ascii_uppercase) {
            return Cow::Borrowed(s);
        }
        return Cow::Owned(s.to_ascii_lowercase());
    }
    let mut out = Vec::with_capacity(s.len());
    let mut buf = [0u8; 4];
    for chunk in s.utf8_chunks() {
        for c in chunk.valid().chars() {
            // Only U+0130 has a multi-character full mapping; its first
            // character is the simple mapping Go uses.
            let lower = c.to_lowercase().next().unwrap_or(c);
            out.extend_from_slice(lower.encode_utf8(&mut buf).as_bytes());
        }
        out.extend_from_slice(chunk.invalid());
    }
    if out == s {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(out)
    }
}

/// Trims leading and trailing white space like Go's `strings.TrimSpace`
/// (Unicode `White_Space`); undecodable bytes are never white space.
pub(crate) fn trim_space(s: &[u8]) -> &[u8] {
    let mut start = s.len();
    let mut offset = 0;
    for chunk in s.utf8_chunks() {
        let valid = chunk.valid();
        let ws = valid.len() - valid.trim_start().len();
        if ws < valid.len() || !chunk.invalid().is_empty() {
            start = offset + ws;
            break;
        }
        offset += valid.len();
    }
    let mut end = 0;
    let mut offset = 0;
    for chunk in s.utf8_chunks() {
        let valid = chunk.valid();
        let kept = valid.trim_end().len();
        if kept > 0 {
            end = offset + kept;
        }
        offset += valid.len();
        if !chunk.invalid().is_empty() {
            offset += chunk.invalid().len();
            end = offset;
        }
    }
    s.get(start..end.max(start)).unwrap_or(&[])
}

/// Removes a byte order mark and converts UTF-16 (with BOM) to UTF-8, like
/// restic's `textfile.Decode`. Other input is taken as UTF-8 as is.
pub(crate) fn decode_text(data: &[u8]) -> Cow<'_, [u8]> {
    if let Some(rest) = data.strip_prefix(&[0xef, 0xbb, 0xbf]) {
        return Cow::Borrowed(rest);
    }
    let big_endian = match data {
        [0xfe, 0xff, ..] => true,
        [0xff, 0xfe, ..] => false,
        _ => return Cow::Borrowed(data),
    };
    let body = data.get(2..).unwrap_or(&[]);
    let units = body.chunks(2).map(|pair| match pair {
        [a, b] if big_endian => u16::from_be_bytes([*a, *b]),
        [a, b] => u16::from_le_bytes([*a, *b]),
        // A dangling odd byte decodes to U+FFFD.
        _ => 0xFFFD,
    });
    let text: String = char::decode_utf16(units)
        .map(|r| r.unwrap_or(char::REPLACEMENT_CHARACTER))
        .collect();
    Cow::Owned(text.into_bytes())
}

/// Go's `isShellSpecialVar`.
fn is_shell_special(b: u8) -> bool {
    matches!(
        b,
        b'*' | b'#' | b'$' | b'@' | b'!' | b'?' | b'-' | b'0'..=b'9'
    )
}

/// Go's `getShellName` on a non-empty input: the variable name and the
/// number of bytes consumed. An empty name with a non-zero width is bad
/// syntax that gets eaten.
fn shell_name(s: &[u8]) -> (&[u8], usize) {
    match s {
        [b'{', c, b'}', ..] if is_shell_special(*c) => (s.get(1..2).unwrap_or(&[]), 3),
        [b'{', ..] => {
            match s.iter().skip(1).position(|&b| b == b'}') {
                // "${}" is bad syntax.
                Some(0) => (&[], 2),
                Some(p) => (s.get(1..p + 1).unwrap_or(&[]), p + 2),
                // An unclosed "${" is eaten.
                None => (&[], 1),
            }
        }
        [c, ..] if is_shell_special(*c) => (s.get(..1).unwrap_or(&[]), 1),
        _ => {
            let n = s
                .iter()
                .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
                .count();
            (s.get(..n).unwrap_or(&[]), n)
        }
    }
}

/// Expands `$VAR` and `${VAR}` like Go's `os.Expand` with restic's mapping
/// for exclude/include files: `$$` (or `${$}`) is a literal `$`, every
/// other name is looked up with `lookup` (unset means empty). A `$` not
/// followed by a name is kept; `${}` and an unclosed `${` are dropped.
pub fn expand_env_with(s: &[u8], lookup: impl Fn(&[u8]) -> Option<Vec<u8>>) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    let mut j = 0;
    while j < s.len() {
        if s.get(j) == Some(&b'$') && j + 1 < s.len() {
            out.extend_from_slice(s.get(i..j).unwrap_or(&[]));
            let (name, w) = shell_name(s.get(j + 1..).unwrap_or(&[]));
            if name.is_empty() {
                if w == 0 {
                    out.push(b'$');
                }
            } else if name == b"$" {
                out.push(b'$');
            } else if let Some(value) = lookup(name) {
                out.extend_from_slice(&value);
            }
            j += w;
            i = j + 1;
        }
        j += 1;
    }
    out.extend_from_slice(s.get(i..).unwrap_or(&[]));
    out
}

/// Looks a variable up in the process environment (names that cannot be
/// environment keys are unset).
fn process_env(name: &[u8]) -> Option<Vec<u8>> {
    if name.is_empty() || name.contains(&b'=') || name.contains(&0) {
        return None;
    }
    std::env::var_os(OsStr::from_bytes(name)).map(OsStringExt::into_vec)
}

/// [`expand_env_with`] using the process environment.
pub fn expand_env(s: &[u8]) -> Vec<u8> {
    expand_env_with(s, process_env)
}

/// Extracts patterns from the contents of an exclude/include file: BOM
/// removal (UTF-16 is converted), one pattern per line (`\n`, optional
/// `\r`), white space trimmed, blank lines and lines starting with `#`
/// skipped, and environment variables expanded with `lookup`.
pub fn parse_pattern_text(data: &[u8], lookup: impl Fn(&[u8]) -> Option<Vec<u8>>) -> Vec<Vec<u8>> {
    let data = decode_text(data);
    let mut patterns = Vec::new();
    for line in data.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let line = trim_space(line);
        if line.is_empty() || line.first() == Some(&b'#') {
            continue;
        }
        patterns.push(expand_env_with(line, &lookup));
    }
    patterns
}

/// Reads patterns from files as restic's `--exclude-file`/`--include-file`
/// do (see [`parse_pattern_text`]), expanding variables from the process
/// environment. Patterns are returned in file order.
pub fn read_pattern_files<P: AsRef<Path>>(files: &[P]) -> Result<Vec<Vec<u8>>, FilterError> {
    let mut patterns = Vec::new();
    for file in files {
        let path = file.as_ref();
        let data = std::fs::read(path).map_err(|source| FilterError::ReadPatternFile {
            path: path.to_path_buf(),
            source,
        })?;
        patterns.extend(parse_pattern_text(&data, process_env));
    }
    Ok(patterns)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &[u8]) -> Option<Vec<u8>> {
        match name {
            b"HOME" => Some(b"/home/bob".to_vec()),
            b"USER" => Some(b"bob".to_vec()),
            b"1" => Some(b"one".to_vec()),
            _ => None,
        }
    }

    #[test]
    fn expansion_like_go_os_expand() {
        let cases: &[(&str, &str)] = &[
            ("/home/$USER/foo", "/home/bob/foo"),
            ("${HOME}/x", "/home/bob/x"),
            ("$HOME$USER", "/home/bobbob"),
            ("price$$", "price$"),
            ("a$$b", "a$b"),
            ("${$}", "$"),
            ("$UNSET/x", "/x"),
            ("$/x", "$/x"),
            ("trailing$", "trailing$"),
            ("${}x", "x"),
            ("${unclosed", "unclosed"),
            ("$1x", "onex"),
            ("${1}x", "onex"),
            ("$USER_x", ""),
            ("${USER}_x", "bob_x"),
            ("no vars", "no vars"),
            ("*.go", "*.go"),
        ];
        for (input, want) in cases {
            let got = expand_env_with(input.as_bytes(), env);
            assert_eq!(String::from_utf8_lossy(&got), *want, "expand({input:?})");
        }
    }

    #[test]
    fn pattern_text_lines() {
        let text =
            b"# comment\n  *.go  \r\n\n\t\nfoo/**/bar\r\n  # indented comment\n$HOME/x\nlast";
        let got = parse_pattern_text(text, env);
        let want: Vec<Vec<u8>> = vec![
            b"*.go".to_vec(),
            b"foo/**/bar".to_vec(),
            b"/home/bob/x".to_vec(),
            b"last".to_vec(),
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn pattern_text_boms() {
        let mut utf8 = vec![0xef, 0xbb, 0xbf];
        utf8.extend_from_slice(b"a\nb\n");
        assert_eq!(
            parse_pattern_text(&utf8, env),
            vec![b"a".to_vec(), b"b".to_vec()]
        );

        let mut le = vec![0xff, 0xfe];
        for u in "x\r\ny\u{e9}\n".encode_utf16() {
            le.extend_from_slice(&u.to_le_bytes());
        }
        assert_eq!(
            parse_pattern_text(&le, env),
            vec![b"x".to_vec(), "y\u{e9}".as_bytes().to_vec()]
        );
        let mut be = vec![0xfe, 0xff];
        for u in "z\n".encode_utf16() {
            be.extend_from_slice(&u.to_be_bytes());
        }
        assert_eq!(parse_pattern_text(&be, env), vec![b"z".to_vec()]);
    }

    #[test]
    fn trimming() {
        assert_eq!(trim_space(b"  a b  "), b"a b");
        assert_eq!(trim_space(b"\x0b\x0ca\t"), b"a");
        assert_eq!(trim_space("\u{a0}a\u{3000}".as_bytes()), b"a");
        assert_eq!(trim_space(b"   "), b"");
        assert_eq!(trim_space(b""), b"");
        assert_eq!(trim_space(b" \xff x \xfe "), b"\xff x \xfe");
        assert_eq!(trim_space(b" \xff "), b"\xff");
    }

    #[test]
    fn lowering() {
        assert!(matches!(to_lower(b"abc/def"), Cow::Borrowed(_)));
        assert_eq!(&*to_lower(b"ABC/Def"), b"abc/def");
        assert_eq!(&*to_lower("ÄÖÜ/É".as_bytes()), "äöü/é".as_bytes());
        assert_eq!(&*to_lower("\u{130}".as_bytes()), b"i");
        assert_eq!(&*to_lower(b"A\xffB"), b"a\xffb");
    }

    #[test]
    fn read_files_and_errors() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.txt");
        let b = dir.path().join("b.txt");
        std::fs::write(&a, "# x\n*.c\n").unwrap();
        std::fs::write(&b, "/tmp\n$$x\n").unwrap();
        let got = read_pattern_files(&[&a, &b]).unwrap();
        assert_eq!(got, vec![b"*.c".to_vec(), b"/tmp".to_vec(), b"$x".to_vec()]);
        let missing = dir.path().join("missing");
        let err = read_pattern_files(&[missing]).unwrap_err();
        assert!(matches!(err, FilterError::ReadPatternFile { .. }), "{err}");
    }
}
