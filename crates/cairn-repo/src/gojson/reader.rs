//! A small pull parser for JSON with Go `encoding/json` decoding semantics, used for tree
//! blobs (fast path, no intermediate values).
//!
//! Semantics reproduced from Go: strings decode invalid UTF-8 bytes and unpaired surrogate
//! escapes to U+FFFD; raw control characters in strings are syntax errors; unsigned integer
//! fields accept only plain non-negative integers that fit; every skipped value is still
//! validated (Go checks the whole document before decoding).

use std::borrow::Cow;

/// Maximum nesting depth accepted (Go's scanner limit).
const MAX_DEPTH: usize = 10_000;

/// A JSON syntax or type error with its byte offset.
pub(crate) type JsonError = String;

/// Cursor over a JSON document.
pub(crate) struct JsonReader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> JsonReader<'a> {
    /// A reader positioned at the start of `buf`.
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        JsonReader { buf, pos: 0 }
    }

    /// An error message mentioning the current offset.
    pub(crate) fn error(&self, msg: impl std::fmt::Display) -> JsonError {
        format!("{msg} at offset {}", self.pos)
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.buf.get(self.pos) {
            self.pos += 1;
        }
    }

    /// The next non-whitespace byte, not consumed.
    pub(crate) fn peek(&mut self) -> Option<u8> {
        self.skip_ws();
        self.buf.get(self.pos).copied()
    }

    fn expect(&mut self, b: u8) -> Result<(), JsonError> {
        if self.peek() == Some(b) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.unexpected(&format!("'{}'", char::from(b))))
        }
    }

    fn unexpected(&self, wanted: &str) -> JsonError {
        match self.buf.get(self.pos) {
            Some(&c) => self.error(format_args!(
                "invalid character {:?}, expected {wanted}",
                char::from(c)
            )),
            None => self.error(format_args!("unexpected end of JSON, expected {wanted}")),
        }
    }

    /// Consumes a `null` literal if one is next.
    pub(crate) fn try_null(&mut self) -> Result<bool, JsonError> {
        if self.peek() != Some(b'n') {
            return Ok(false);
        }
        self.literal(b"null")?;
        Ok(true)
    }

    fn literal(&mut self, lit: &[u8]) -> Result<(), JsonError> {
        if self.buf.get(self.pos..self.pos + lit.len()) == Some(lit) {
            self.pos += lit.len();
            Ok(())
        } else {
            Err(self.error("invalid literal"))
        }
    }

    /// Only whitespace may follow.
    pub(crate) fn finish(&mut self) -> Result<(), JsonError> {
        if self.peek().is_some() {
            return Err(self.error("invalid character after top-level value"));
        }
        Ok(())
    }

    /// Consumes `{`.
    pub(crate) fn begin_object(&mut self) -> Result<(), JsonError> {
        self.expect(b'{')
    }

    /// The next key of the current object (after consuming `,` and the `:` behind the key), or
    /// `None` after consuming the closing `}`. `first` must start as `true` for each object.
    pub(crate) fn next_key(&mut self, first: &mut bool) -> Result<Option<Cow<'a, str>>, JsonError> {
        match self.peek() {
            Some(b'}') => {
                self.pos += 1;
                return Ok(None);
            }
            Some(b',') if !*first => self.pos += 1,
            _ if *first => {}
            _ => return Err(self.unexpected("',' or '}'")),
        }
        *first = false;
        if self.peek() != Some(b'"') {
            return Err(self.unexpected("object key string"));
        }
        let key = self.read_string()?;
        self.expect(b':')?;
        Ok(Some(key))
    }

    /// Consumes `[`.
    pub(crate) fn begin_array(&mut self) -> Result<(), JsonError> {
        self.expect(b'[')
    }

    /// `true` if another element follows (after consuming `,`), `false` after consuming `]`.
    pub(crate) fn next_element(&mut self, first: &mut bool) -> Result<bool, JsonError> {
        match self.peek() {
            Some(b']') => {
                self.pos += 1;
                return Ok(false);
            }
            Some(b',') if !*first => self.pos += 1,
            _ if *first => {}
            _ => return Err(self.unexpected("',' or ']'")),
        }
        *first = false;
        Ok(true)
    }

    /// Reads a string value, decoded like Go does into a `string`.
    pub(crate) fn read_string(&mut self) -> Result<Cow<'a, str>, JsonError> {
        if self.peek() != Some(b'"') {
            return Err(self.unexpected("string"));
        }
        let start = self.pos + 1;
        let rest = self.buf.get(start..).unwrap_or_default();
        // Fast path: no escapes and no control characters, valid UTF-8.
        let end = rest
            .iter()
            .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
            .filter(|&len| rest.get(len) == Some(&b'"'));
        if let Some(len) = end
            && let Some(s) = rest.get(..len).and_then(|s| std::str::from_utf8(s).ok())
        {
            self.pos = start + len + 1;
            return Ok(Cow::Borrowed(s));
        }
        self.pos = start;
        let mut out: Vec<u8> = Vec::with_capacity(16);
        loop {
            let Some(&c) = self.buf.get(self.pos) else {
                return Err(self.error("unexpected end of JSON in string"));
            };
            match c {
                b'"' => {
                    self.pos += 1;
                    break;
                }
                b'\\' => self.read_escape(&mut out)?,
                0..0x20 => return Err(self.error("invalid control character in string")),
                0x20..0x80 => {
                    out.push(c);
                    self.pos += 1;
                }
                _ => {
                    let width = match c {
                        0xc2..=0xdf => 2,
                        0xe0..=0xef => 3,
                        0xf0..=0xf4 => 4,
                        _ => 0,
                    };
                    match self.buf.get(self.pos..self.pos + width) {
                        Some(seq) if width > 0 && std::str::from_utf8(seq).is_ok() => {
                            out.extend_from_slice(seq);
                            self.pos += width;
                        }
                        _ => {
                            out.extend_from_slice("\u{fffd}".as_bytes());
                            self.pos += 1;
                        }
                    }
                }
            }
        }
        // Every pushed piece is valid UTF-8.
        String::from_utf8(out)
            .map(Cow::Owned)
            .map_err(|_| self.error("internal: invalid UTF-8 after decoding"))
    }

    fn read_hex4(&self, at: usize) -> Option<u32> {
        let digits = self.buf.get(at..at + 4)?;
        let mut v = 0;
        for &d in digits {
            v = (v << 4) | char::from(d).to_digit(16)?;
        }
        Some(v)
    }

    /// Decodes one escape sequence starting at the backslash.
    fn read_escape(&mut self, out: &mut Vec<u8>) -> Result<(), JsonError> {
        let Some(&e) = self.buf.get(self.pos + 1) else {
            return Err(self.error("unexpected end of JSON in string escape"));
        };
        let simple = match e {
            b'"' => Some(b'"'),
            b'\\' => Some(b'\\'),
            b'/' => Some(b'/'),
            b'b' => Some(0x08),
            b'f' => Some(0x0c),
            b'n' => Some(b'\n'),
            b'r' => Some(b'\r'),
            b't' => Some(b'\t'),
            b'u' => None,
            _ => return Err(self.error("invalid escape in string")),
        };
        if let Some(b) = simple {
            out.push(b);
            self.pos += 2;
            return Ok(());
        }
        let Some(v) = self.read_hex4(self.pos + 2) else {
            return Err(self.error("invalid \\u escape in string"));
        };
        self.pos += 6;
        let mut c = char::from_u32(v);
        if (0xd800..0xdc00).contains(&v) && self.buf.get(self.pos..self.pos + 2) == Some(b"\\u") {
            let low = self.read_hex4(self.pos + 2);
            if let Some(low) = low.filter(|l| (0xdc00..0xe000).contains(l)) {
                c = char::from_u32(0x10000 + ((v - 0xd800) << 10) + (low - 0xdc00));
                self.pos += 6;
            }
        }
        let mut buf = [0u8; 4];
        out.extend_from_slice(c.unwrap_or('\u{fffd}').encode_utf8(&mut buf).as_bytes());
        Ok(())
    }

    /// Scans a number token per the JSON grammar and returns its text.
    fn scan_number(&mut self) -> Result<&'a [u8], JsonError> {
        self.skip_ws();
        let start = self.pos;
        let digits = |r: &mut Self| {
            let s = r.pos;
            while r.buf.get(r.pos).is_some_and(u8::is_ascii_digit) {
                r.pos += 1;
            }
            r.pos - s
        };
        if self.buf.get(self.pos) == Some(&b'-') {
            self.pos += 1;
        }
        match self.buf.get(self.pos) {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                digits(self);
            }
            _ => return Err(self.unexpected("value")),
        }
        if self.buf.get(self.pos) == Some(&b'.') {
            self.pos += 1;
            if digits(self) == 0 {
                return Err(self.unexpected("digit after decimal point"));
            }
        }
        if let Some(b'e' | b'E') = self.buf.get(self.pos) {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.buf.get(self.pos) {
                self.pos += 1;
            }
            if digits(self) == 0 {
                return Err(self.unexpected("digit in exponent"));
            }
        }
        Ok(self.buf.get(start..self.pos).unwrap_or_default())
    }

    /// Reads a number into an unsigned field no larger than `max` (Go: `ParseUint`; floats,
    /// negative numbers and overflow are type errors).
    pub(crate) fn read_uint(&mut self, max: u64) -> Result<u64, JsonError> {
        if self.peek() != Some(b'-') && !self.peek().is_some_and(|c| c.is_ascii_digit()) {
            return Err(self.unexpected("number"));
        }
        let text = self.scan_number()?;
        let mut v: u64 = 0;
        for &d in text {
            if !d.is_ascii_digit() {
                return Err(self.error(format_args!(
                    "cannot unmarshal number {} into an unsigned integer",
                    String::from_utf8_lossy(text)
                )));
            }
            v = v
                .checked_mul(10)
                .and_then(|v| v.checked_add(u64::from(d - b'0')))
                .filter(|&v| v <= max)
                .ok_or_else(|| self.error("number out of range"))?;
        }
        Ok(v)
    }

    fn skip_string(&mut self) -> Result<(), JsonError> {
        // Only the structure is validated; Go's scanner accepts invalid UTF-8 in strings.
        self.pos += 1;
        loop {
            let rest = self.buf.get(self.pos..).unwrap_or_default();
            let Some(n) = rest
                .iter()
                .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
            else {
                return Err(self.error("unexpected end of JSON in string"));
            };
            self.pos += n;
            match self.buf.get(self.pos) {
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(());
                }
                Some(b'\\') => match self.buf.get(self.pos + 1) {
                    Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => self.pos += 2,
                    Some(b'u') if self.read_hex4(self.pos + 2).is_some() => self.pos += 6,
                    _ => return Err(self.error("invalid escape in string")),
                },
                _ => return Err(self.error("invalid control character in string")),
            }
        }
    }

    /// Skips (and validates) one value of any type, iteratively.
    pub(crate) fn skip_value(&mut self) -> Result<(), JsonError> {
        let mut stack: Vec<u8> = Vec::new();
        loop {
            // Expecting a value.
            match self.peek() {
                Some(b'{') => {
                    if stack.len() >= MAX_DEPTH {
                        return Err(self.error("exceeded max nesting depth"));
                    }
                    self.pos += 1;
                    if self.peek() == Some(b'}') {
                        self.pos += 1;
                    } else {
                        if self.peek() != Some(b'"') {
                            return Err(self.unexpected("object key string"));
                        }
                        self.skip_string()?;
                        self.expect(b':')?;
                        stack.push(b'}');
                        continue;
                    }
                }
                Some(b'[') => {
                    if stack.len() >= MAX_DEPTH {
                        return Err(self.error("exceeded max nesting depth"));
                    }
                    self.pos += 1;
                    if self.peek() == Some(b']') {
                        self.pos += 1;
                    } else {
                        stack.push(b']');
                        continue;
                    }
                }
                Some(b'"') => self.skip_string()?,
                Some(b't') => self.literal(b"true")?,
                Some(b'f') => self.literal(b"false")?,
                Some(b'n') => self.literal(b"null")?,
                _ => {
                    self.scan_number()?;
                }
            }
            // A value ended: close containers or move to the next element.
            loop {
                let Some(&close) = stack.last() else {
                    return Ok(());
                };
                match self.peek() {
                    Some(b',') => {
                        self.pos += 1;
                        if close == b'}' {
                            if self.peek() != Some(b'"') {
                                return Err(self.unexpected("object key string"));
                            }
                            self.skip_string()?;
                            self.expect(b':')?;
                        }
                        break;
                    }
                    Some(c) if c == close => {
                        self.pos += 1;
                        stack.pop();
                    }
                    _ => {
                        let wanted = if close == b'}' {
                            "',' or '}'"
                        } else {
                            "',' or ']'"
                        };
                        return Err(self.unexpected(wanted));
                    }
                }
            }
        }
    }

    /// Skips one value and returns its exact text.
    pub(crate) fn raw_value(&mut self) -> Result<&'a [u8], JsonError> {
        self.skip_ws();
        let start = self.pos;
        self.skip_value()?;
        Ok(self.buf.get(start..self.pos).unwrap_or_default())
    }
}
