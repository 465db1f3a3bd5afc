//! Byte-exact reproductions of the Go string encodings restic relies on:
//!
//! * Go `encoding/json` string escaping ([`write_json_string`], [`write_json_bytes_lossy`],
//!   [`GoFormatter`] / [`to_vec_go`] for whole `serde` values);
//! * Go `strconv.Quote` / `strconv.Unquote` for double-quoted strings ([`go_quote`],
//!   [`go_unquote`]), which restic applies to node names (spec §10.2);
//! * [`RawJson`], a validated, compacted JSON value (Go's `json.RawMessage` as it is written).
//!
//! **Go version.** restic 0.14.0 was built with Go 1.19, so everything here reproduces Go 1.19:
//! `encoding/json` writes the control characters U+0008 and U+000C as `\u0008` and `\u000c`
//! (Go ≥ 1.22 writes `\b` and `\f`), and [`is_print`] uses the Unicode 13.0 tables of Go 1.19.
//! Both only matter for tree IDs of names/strings containing those characters.

mod isprint;
pub(crate) mod reader;

use std::io;

const HEX: &[u8; 16] = b"0123456789abcdef";

fn hex_digit(v: u32) -> u8 {
    // `v & 0xf` is always a valid index into the 16-entry table.
    HEX[(v & 0xf) as usize]
}

/// Go's `unicode.IsPrint` (= `strconv.IsPrint`) for Go 1.19 / Unicode 13.0: letters, marks,
/// numbers, punctuation, symbols and the ASCII space are printable; everything else (controls,
/// format characters, separators other than U+0020, private use, unassigned) is not.
pub fn is_print(c: char) -> bool {
    let r = c as u32;
    if r < 0x100 {
        return (0x20..=0x7e).contains(&r) || (r >= 0xa1 && r != 0xad);
    }
    let table = isprint::PRINT_RANGES;
    // Binary search over the pairs [lo, hi].
    let (mut lo, mut hi) = (0usize, table.len() / 2);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let (Some(&a), Some(&b)) = (table.get(2 * mid), table.get(2 * mid + 1)) else {
            return false;
        };
        if r < a {
            hi = mid;
        } else if r > b {
            lo = mid + 1;
        } else {
            return true;
        }
    }
    false
}

/// Appends the JSON escape `\u` + 4 lowercase hex digits of `v`.
fn push_u_escape(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(b"\\u");
    for shift in [12, 8, 4, 0] {
        out.push(hex_digit(v >> shift));
    }
}

/// Escapes valid UTF-8 `b` like Go's `encoding/json` (with HTML escaping, Go 1.19), without
/// surrounding quotes.
fn escape_valid_utf8(out: &mut Vec<u8>, b: &[u8]) {
    let mut start = 0;
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c < 0x80 {
            let short: Option<&[u8]> = match c {
                b'"' => Some(b"\\\""),
                b'\\' => Some(b"\\\\"),
                b'\n' => Some(b"\\n"),
                b'\r' => Some(b"\\r"),
                b'\t' => Some(b"\\t"),
                _ => None,
            };
            let needs = short.is_some() || c < 0x20 || c == b'<' || c == b'>' || c == b'&';
            if needs {
                out.extend_from_slice(b.get(start..i).unwrap_or_default());
                match short {
                    Some(s) => out.extend_from_slice(s),
                    None => push_u_escape(out, u32::from(c)),
                }
                start = i + 1;
            }
            i += 1;
        } else if c == 0xe2
            && b.get(i + 1) == Some(&0x80)
            && matches!(b.get(i + 2), Some(0xa8 | 0xa9))
        {
            out.extend_from_slice(b.get(start..i).unwrap_or_default());
            let v = if b.get(i + 2) == Some(&0xa8) {
                0x2028
            } else {
                0x2029
            };
            push_u_escape(out, v);
            i += 3;
            start = i;
        } else {
            i += 1;
        }
    }
    out.extend_from_slice(b.get(start..).unwrap_or_default());
}

/// Writes `v` in decimal, as Go's `encoding/json` writes an unsigned integer.
pub fn write_json_u64(out: &mut Vec<u8>, mut v: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        if let Some(slot) = buf.get_mut(i) {
            // `v % 10` is a single digit.
            *slot = b'0' + (v % 10) as u8;
        }
        v /= 10;
        if v == 0 || i == 0 {
            break;
        }
    }
    out.extend_from_slice(buf.get(i..).unwrap_or_default());
}

/// Writes an id as a JSON string of its 64 lowercase hex digits (restic's `ID` encoding).
pub fn write_json_id(out: &mut Vec<u8>, id: &crate::Id) {
    let mut hex = [0u8; 64];
    out.push(b'"');
    if hex::encode_to_slice(id.0, &mut hex).is_ok() {
        out.extend_from_slice(&hex);
    }
    out.push(b'"');
}

/// Writes `s` as a JSON string literal (with the surrounding quotes) exactly like Go 1.19's
/// `encoding/json`: `"` `\` as `\"` `\\`; `\n` `\r` `\t` short; other controls (including
/// U+0008 and U+000C) as `\u00xx`; `<` `>` `&` as `\u003c` `\u003e` `\u0026`; U+2028/U+2029 as
/// `\u2028`/`\u2029`; everything else (DEL, non-ASCII) raw.
pub fn write_json_string(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    escape_valid_utf8(out, s.as_bytes());
    out.push(b'"');
}

/// Like [`write_json_string`] for a Go string that may hold invalid UTF-8: every byte that is
/// not part of a valid UTF-8 sequence becomes the escape `\ufffd` (one per byte, as Go does).
pub fn write_json_bytes_lossy(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'"');
    for chunk in s.utf8_chunks() {
        escape_valid_utf8(out, chunk.valid().as_bytes());
        for _ in chunk.invalid() {
            out.extend_from_slice(b"\\ufffd");
        }
    }
    out.push(b'"');
}

/// Go's `strconv.Quote(string(raw))` without the surrounding quotes (restic's node-name
/// encoding): printable runes raw, `"`/`\` backslashed, `\a \b \f \n \r \t \v`, other bytes
/// below 0x20 and DEL as `\xNN`, invalid UTF-8 bytes as `\xNN` each, other non-printable runes
/// as `\uXXXX` / `\UXXXXXXXX`; lowercase hex.
pub fn go_quote(raw: &[u8]) -> String {
    let mut out = String::with_capacity(raw.len() + 2);
    for chunk in raw.utf8_chunks() {
        for c in chunk.valid().chars() {
            quote_rune(&mut out, c);
        }
        for &b in chunk.invalid() {
            out.push_str("\\x");
            out.push(char::from(hex_digit(u32::from(b) >> 4)));
            out.push(char::from(hex_digit(u32::from(b))));
        }
    }
    out
}

fn quote_rune(out: &mut String, c: char) {
    if c == '"' || c == '\\' {
        out.push('\\');
        out.push(c);
        return;
    }
    if is_print(c) {
        out.push(c);
        return;
    }
    let (prefix, digits) = match c {
        '\x07' => return out.push_str("\\a"),
        '\x08' => return out.push_str("\\b"),
        '\x0c' => return out.push_str("\\f"),
        '\n' => return out.push_str("\\n"),
        '\r' => return out.push_str("\\r"),
        '\t' => return out.push_str("\\t"),
        '\x0b' => return out.push_str("\\v"),
        c if (c as u32) < 0x20 || c == '\x7f' => ("\\x", 2),
        c if (c as u32) < 0x10000 => ("\\u", 4),
        _ => ("\\U", 8),
    };
    out.push_str(prefix);
    let v = c as u32;
    for k in (0..digits).rev() {
        out.push(char::from(hex_digit(v >> (4 * k))));
    }
}

fn unhex(b: u8) -> Option<u32> {
    char::from(b).to_digit(16)
}

/// Go's `strconv.Unquote("\"" + inner + "\"")`: returns the raw bytes, or an error for an
/// unescaped `"` or newline, an unknown escape (including `\'`), a short/invalid hex or octal
/// escape, an octal value above 255, or a `\u`/`\U` value that is not a Unicode scalar value.
/// `\xNN` and `\NNN` produce single (possibly non-UTF-8) bytes.
pub fn go_unquote(inner: &str) -> Result<Vec<u8>, String> {
    let b = inner.as_bytes();
    if !b.iter().any(|&c| matches!(c, b'\\' | b'"' | b'\n')) {
        return Ok(b.to_vec());
    }
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    let err = |msg: &str, at: usize| format!("invalid quoted string {inner:?}: {msg} at byte {at}");
    while let Some(&c) = b.get(i) {
        match c {
            b'"' => return Err(err("unescaped '\"'", i)),
            b'\n' => return Err(err("unescaped newline", i)),
            b'\\' => {}
            _ => {
                out.push(c);
                i += 1;
                continue;
            }
        }
        let Some(&e) = b.get(i + 1) else {
            return Err(err("trailing backslash", i));
        };
        i += 2;
        match e {
            b'a' => out.push(0x07),
            b'b' => out.push(0x08),
            b'f' => out.push(0x0c),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(0x0b),
            b'\\' => out.push(b'\\'),
            b'"' => out.push(b'"'),
            b'x' | b'u' | b'U' => {
                let n = match e {
                    b'x' => 2,
                    b'u' => 4,
                    _ => 8,
                };
                let digits = b.get(i..i + n).ok_or_else(|| err("short hex escape", i))?;
                let mut v: u32 = 0;
                for &d in digits {
                    v = (v << 4) | unhex(d).ok_or_else(|| err("invalid hex digit", i))?;
                }
                i += n;
                if e == b'x' {
                    // n == 2, so v <= 0xff.
                    out.push(v as u8);
                } else {
                    let c = char::from_u32(v).ok_or_else(|| err("invalid code point", i))?;
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
            }
            b'0'..=b'7' => {
                let mut v = u32::from(e - b'0');
                let digits = b
                    .get(i..i + 2)
                    .ok_or_else(|| err("short octal escape", i))?;
                for &d in digits {
                    if !(b'0'..=b'7').contains(&d) {
                        return Err(err("invalid octal digit", i));
                    }
                    v = (v << 3) | u32::from(d - b'0');
                }
                i += 2;
                let byte = u8::try_from(v).map_err(|_| err("octal escape above 255", i))?;
                out.push(byte);
            }
            _ => return Err(err("unknown escape", i - 1)),
        }
    }
    Ok(out)
}

/// A syntactically valid JSON value kept as compact text, the way Go writes a
/// `json.RawMessage` (insignificant whitespace removed; `<` `>` `&` U+2028 U+2029 escaped).
/// restic stores Windows `generic_attributes` values like this; keeping the text keeps tree
/// IDs stable.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RawJson(Vec<u8>);

impl RawJson {
    /// Validates `text` as exactly one JSON value (surrounding whitespace allowed) and
    /// compacts it.
    pub fn new(text: &[u8]) -> Result<RawJson, String> {
        let mut r = reader::JsonReader::new(text);
        let raw = r.raw_value()?;
        r.finish()?;
        Ok(RawJson(compact_go(raw)))
    }

    /// The JSON text of a `serde_json` value, written with Go escaping.
    pub fn from_value(v: &serde_json::Value) -> RawJson {
        // Serializing a `Value` to memory cannot fail; fall back to `null` regardless.
        RawJson(to_vec_go(v).unwrap_or_else(|_| b"null".to_vec()))
    }

    /// The compact JSON text.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Parses the text into a `serde_json` value.
    pub fn to_value(&self) -> serde_json::Result<serde_json::Value> {
        serde_json::from_slice(&self.0)
    }
}

/// Go's `json.Compact` with HTML escaping (`compact(dst, src, true)`) of already valid JSON.
fn compact_go(src: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(src.len());
    let mut in_string = false;
    let mut escaped = false;
    let mut i = 0;
    while let Some(&c) = src.get(i) {
        i += 1;
        if in_string {
            if escaped {
                escaped = false;
            } else if c == b'\\' {
                escaped = true;
            } else if c == b'"' {
                in_string = false;
            }
        } else if matches!(c, b' ' | b'\t' | b'\n' | b'\r') {
            continue;
        } else if c == b'"' {
            in_string = true;
        }
        match c {
            b'<' | b'>' | b'&' => push_u_escape(&mut out, u32::from(c)),
            0xe2 if src.get(i) == Some(&0x80) && matches!(src.get(i + 1), Some(0xa8 | 0xa9)) => {
                let v = if src.get(i + 1) == Some(&0xa8) {
                    0x2028
                } else {
                    0x2029
                };
                push_u_escape(&mut out, v);
                i += 2;
            }
            _ => out.push(c),
        }
    }
    out
}

/// A `serde_json` formatter that escapes strings exactly like Go 1.19's `encoding/json`
/// (compact output). Numbers, `bool` and `null` are identical in both already; floats are not
/// guaranteed to match Go's formatting.
#[derive(Clone, Copy, Debug, Default)]
pub struct GoFormatter;

impl serde_json::ser::Formatter for GoFormatter {
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let b = fragment.as_bytes();
        if !b.iter().any(|&c| matches!(c, b'<' | b'>' | b'&' | 0xe2)) {
            return writer.write_all(b);
        }
        let mut buf = Vec::with_capacity(b.len() + 12);
        escape_valid_utf8(&mut buf, b);
        writer.write_all(&buf)
    }

    fn write_char_escape<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        char_escape: serde_json::ser::CharEscape,
    ) -> io::Result<()> {
        use serde_json::ser::CharEscape;
        let byte = match char_escape {
            CharEscape::Quote => return writer.write_all(b"\\\""),
            CharEscape::ReverseSolidus => return writer.write_all(b"\\\\"),
            CharEscape::Solidus => return writer.write_all(b"/"),
            CharEscape::LineFeed => return writer.write_all(b"\\n"),
            CharEscape::CarriageReturn => return writer.write_all(b"\\r"),
            CharEscape::Tab => return writer.write_all(b"\\t"),
            CharEscape::Backspace => 0x08,
            CharEscape::FormFeed => 0x0c,
            CharEscape::AsciiControl(b) => b,
        };
        let mut buf = Vec::with_capacity(6);
        push_u_escape(&mut buf, u32::from(byte));
        writer.write_all(&buf)
    }
}

/// Serializes `value` as compact JSON with Go 1.19 string escaping (see [`GoFormatter`]).
/// Field order and omission follow the `serde` attributes of `T`.
pub fn to_vec_go<T: serde::Serialize + ?Sized>(value: &T) -> serde_json::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(128);
    let mut ser = serde_json::Serializer::with_formatter(&mut out, GoFormatter);
    value.serialize(&mut ser)?;
    Ok(out)
}

#[cfg(test)]
mod tests;
