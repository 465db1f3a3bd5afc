//! Splits template text into text runs and action tokens, like Go's `text/template/parse` lexer.

/// A lexing or parsing error at a byte offset of the source.
#[derive(Debug)]
pub(crate) struct SrcError {
    pub pos: usize,
    pub msg: String,
}

pub(crate) type LexResult<T> = Result<T, SrcError>;

/// Keywords inside actions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kw {
    Block,
    Break,
    Continue,
    Define,
    Else,
    End,
    If,
    Range,
    Template,
    With,
}

/// What a token is.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Tok {
    /// Literal text outside actions (trim markers already applied).
    Text(String),
    LeftDelim,
    RightDelim,
    Ident(String),
    Keyword(Kw),
    Bool(bool),
    Nil,
    /// `.Name` (stored without the dot).
    Field(String),
    Dot,
    /// `$name` or `$` (stored with the dollar).
    Variable(String),
    /// A quoted or raw string, decoded.
    Str(String),
    /// A number's source text.
    Number(String),
    /// A character constant, as its code point.
    Char(char),
    Pipe,
    LParen,
    RParen,
    Comma,
    Declare,
    Assign,
    Eof,
}

/// A token with its byte range and whether white space preceded it inside the action.
#[derive(Clone, Debug)]
pub(crate) struct Token {
    pub tok: Tok,
    pub start: usize,
    pub end: usize,
    pub space_before: bool,
}

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn is_alnum(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

const LEFT: &str = "{{";
const RIGHT: &str = "}}";

/// Tokenises a whole template text.
pub(crate) fn lex(src: &str) -> LexResult<Vec<Token>> {
    let mut l = Lexer {
        src,
        pos: 0,
        toks: Vec::new(),
        trim_next_text: false,
        paren: 0,
    };
    l.run()?;
    Ok(l.toks)
}

struct Lexer<'a> {
    src: &'a str,
    pos: usize,
    toks: Vec<Token>,
    trim_next_text: bool,
    paren: usize,
}

impl<'a> Lexer<'a> {
    fn rest(&self) -> &'a str {
        self.src.get(self.pos..).unwrap_or("")
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn emit(&mut self, tok: Tok, start: usize, space_before: bool) {
        self.toks.push(Token {
            tok,
            start,
            end: self.pos,
            space_before,
        });
    }

    fn err<T>(&self, pos: usize, msg: impl Into<String>) -> LexResult<T> {
        Err(SrcError {
            pos,
            msg: msg.into(),
        })
    }

    /// At a right delimiter: returns its length including a ` -` trim marker, and whether it trims.
    fn at_right_delim(&self) -> Option<(usize, bool)> {
        let r = self.rest();
        let mut cs = r.chars();
        if let (Some(c), Some('-')) = (cs.next(), cs.next())
            && is_space(c)
            && r.get(c.len_utf8() + 1..)
                .is_some_and(|x| x.starts_with(RIGHT))
        {
            return Some((c.len_utf8() + 1 + RIGHT.len(), true));
        }
        if r.starts_with(RIGHT) {
            return Some((RIGHT.len(), false));
        }
        None
    }

    fn run(&mut self) -> LexResult<()> {
        loop {
            // Text up to the next left delimiter.
            let rest = self.rest();
            let start = self.pos;
            let (text_end, found) = match rest.find(LEFT) {
                Some(i) => (self.pos + i, true),
                None => (self.src.len(), false),
            };
            let mut text = self.src.get(self.pos..text_end).unwrap_or("");
            if self.trim_next_text {
                text = text.trim_start_matches(is_space);
                self.trim_next_text = false;
            }
            let after_left = text_end + LEFT.len();
            let trim_left = found && {
                let a = self.src.get(after_left..).unwrap_or("");
                let mut cs = a.chars();
                matches!((cs.next(), cs.next()), (Some('-'), Some(c)) if is_space(c))
            };
            if trim_left {
                text = text.trim_end_matches(is_space);
            }
            if !text.is_empty() {
                self.pos = text_end;
                self.toks.push(Token {
                    tok: Tok::Text(text.to_string()),
                    start,
                    end: text_end,
                    space_before: false,
                });
            }
            if !found {
                self.pos = self.src.len();
                self.emit(Tok::Eof, self.src.len(), false);
                return Ok(());
            }
            self.pos = after_left + if trim_left { 2 } else { 0 };
            if self.rest().starts_with("/*") {
                self.comment(text_end)?;
                continue;
            }
            self.toks.push(Token {
                tok: Tok::LeftDelim,
                start: text_end,
                end: self.pos,
                space_before: false,
            });
            self.inside_action(text_end)?;
        }
    }

    fn comment(&mut self, delim_pos: usize) -> LexResult<()> {
        self.pos += 2;
        let Some(x) = self.rest().find("*/") else {
            return self.err(delim_pos, "unclosed comment");
        };
        self.pos += x + 2;
        match self.at_right_delim() {
            Some((len, trim)) => {
                self.pos += len;
                self.trim_next_text = trim;
                Ok(())
            }
            None => self.err(delim_pos, "comment ends before closing delimiter"),
        }
    }

    fn inside_action(&mut self, delim_pos: usize) -> LexResult<()> {
        let mut space = false;
        loop {
            if let Some((len, trim)) = self.at_right_delim() {
                if self.paren > 0 {
                    return self.err(self.pos, "unclosed left paren");
                }
                let start = self.pos;
                self.pos += len;
                self.trim_next_text = trim;
                self.emit(Tok::RightDelim, start, space);
                return Ok(());
            }
            let start = self.pos;
            let Some(c) = self.peek() else {
                return self.err(delim_pos, "unclosed action");
            };
            if is_space(c) {
                self.pos += c.len_utf8();
                space = true;
                continue;
            }
            self.pos += c.len_utf8();
            match c {
                '=' => self.emit(Tok::Assign, start, space),
                ':' => {
                    if self.peek() != Some('=') {
                        return self.err(start, "expected :=");
                    }
                    self.pos += 1;
                    self.emit(Tok::Declare, start, space);
                }
                '|' => self.emit(Tok::Pipe, start, space),
                ',' => self.emit(Tok::Comma, start, space),
                '(' => {
                    self.paren += 1;
                    self.emit(Tok::LParen, start, space);
                }
                ')' => {
                    if self.paren == 0 {
                        return self.err(start, "unexpected right paren");
                    }
                    self.paren -= 1;
                    self.emit(Tok::RParen, start, space);
                }
                '"' => {
                    let s = self.quoted(start)?;
                    self.emit(Tok::Str(s), start, space);
                }
                '`' => {
                    let Some(end) = self.rest().find('`') else {
                        return self.err(start, "unterminated raw quoted string");
                    };
                    let raw = self.rest().get(..end).unwrap_or("").replace('\r', "");
                    self.pos += end + 1;
                    self.emit(Tok::Str(raw), start, space);
                }
                '\'' => {
                    let ch = self.char_constant(start)?;
                    self.emit(Tok::Char(ch), start, space);
                }
                '$' => {
                    self.scan_alnum();
                    let name = self.src.get(start..self.pos).unwrap_or("$").to_string();
                    self.check_terminator()?;
                    self.emit(Tok::Variable(name), start, space);
                }
                '.' => {
                    if self.peek().is_some_and(|d| d.is_ascii_digit()) {
                        self.pos = start;
                        self.number(start, space)?;
                    } else if self.peek().is_some_and(is_alnum) {
                        self.scan_alnum();
                        let name = self.src.get(start + 1..self.pos).unwrap_or("").to_string();
                        self.check_terminator()?;
                        self.emit(Tok::Field(name), start, space);
                    } else {
                        self.emit(Tok::Dot, start, space);
                    }
                }
                '+' | '-' | '0'..='9' => {
                    self.pos = start;
                    self.number(start, space)?;
                }
                c if is_alnum(c) => {
                    self.scan_alnum();
                    let word = self.src.get(start..self.pos).unwrap_or("");
                    let tok = match word {
                        "block" => Tok::Keyword(Kw::Block),
                        "break" => Tok::Keyword(Kw::Break),
                        "continue" => Tok::Keyword(Kw::Continue),
                        "define" => Tok::Keyword(Kw::Define),
                        "else" => Tok::Keyword(Kw::Else),
                        "end" => Tok::Keyword(Kw::End),
                        "if" => Tok::Keyword(Kw::If),
                        "range" => Tok::Keyword(Kw::Range),
                        "template" => Tok::Keyword(Kw::Template),
                        "with" => Tok::Keyword(Kw::With),
                        "true" => Tok::Bool(true),
                        "false" => Tok::Bool(false),
                        "nil" => Tok::Nil,
                        w => Tok::Ident(w.to_string()),
                    };
                    self.check_terminator()?;
                    self.emit(tok, start, space);
                }
                other => {
                    return self.err(
                        start,
                        format!("unrecognized character in action: {other:?}"),
                    );
                }
            }
            space = false;
        }
    }

    fn scan_alnum(&mut self) {
        while let Some(c) = self.peek() {
            if !is_alnum(c) {
                break;
            }
            self.pos += c.len_utf8();
        }
    }

    fn check_terminator(&self) -> LexResult<()> {
        match self.peek() {
            None => Ok(()),
            Some(c) if is_space(c) || matches!(c, '.' | ',' | '|' | ':' | ')' | '(') => Ok(()),
            Some(_) if self.at_right_delim().is_some() => Ok(()),
            Some(c) => self.err(self.pos, format!("bad character {c:?}")),
        }
    }

    fn number(&mut self, start: usize, space: bool) -> LexResult<()> {
        let r = self.rest();
        let b = r.as_bytes();
        let mut i = 0;
        if matches!(b.first(), Some(b'+' | b'-')) {
            i += 1;
        }
        let mut radix = 10;
        if b.get(i) == Some(&b'0') {
            match b.get(i + 1) {
                Some(b'x' | b'X') => radix = 16,
                Some(b'o' | b'O') => radix = 8,
                Some(b'b' | b'B') => radix = 2,
                _ => {}
            }
            if radix != 10 {
                i += 2;
            }
        }
        let is_digit = |c: u8| c == b'_' || (c as char).is_digit(radix);
        while b.get(i).is_some_and(|&c| is_digit(c)) {
            i += 1;
        }
        if b.get(i) == Some(&b'.') {
            i += 1;
            while b.get(i).is_some_and(|&c| is_digit(c)) {
                i += 1;
            }
        }
        let exp = match radix {
            10 => Some([b'e', b'E']),
            16 => Some([b'p', b'P']),
            _ => None,
        };
        if let Some(e) = exp
            && b.get(i).is_some_and(|c| e.contains(c))
        {
            i += 1;
            if matches!(b.get(i), Some(b'+' | b'-')) {
                i += 1;
            }
            while b.get(i).is_some_and(|c| c.is_ascii_digit() || *c == b'_') {
                i += 1;
            }
        }
        let text = r.get(..i).unwrap_or("");
        let bad = b.get(i).is_some_and(|&c| is_alnum(c as char))
            || !text.bytes().any(|c| c.is_ascii_digit());
        if bad {
            let mut j = i;
            while b.get(j).is_some_and(|&c| is_alnum(c as char)) {
                j += 1;
            }
            return self.err(
                start,
                format!("bad number syntax: {:?}", r.get(..j.max(1)).unwrap_or("")),
            );
        }
        self.pos += i;
        self.emit(Tok::Number(text.to_string()), start, space);
        Ok(())
    }

    fn quoted(&mut self, start: usize) -> LexResult<String> {
        let mut bytes: Vec<u8> = Vec::new();
        loop {
            let Some(c) = self.peek() else {
                return self.err(start, "unterminated quoted string");
            };
            self.pos += c.len_utf8();
            match c {
                '"' => break,
                '\n' => return self.err(start, "unterminated quoted string"),
                '\\' => self.escape(start, '"', &mut bytes)?,
                c => {
                    let mut buf = [0u8; 4];
                    bytes.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
            }
        }
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    fn char_constant(&mut self, start: usize) -> LexResult<char> {
        let mut bytes = Vec::new();
        let c = match self.peek() {
            Some('\\') => {
                self.pos += 1;
                self.escape(start, '\'', &mut bytes)?;
                let s = String::from_utf8_lossy(&bytes).into_owned();
                s.chars().next().unwrap_or('\u{FFFD}')
            }
            Some(c) if c != '\'' && c != '\n' => {
                self.pos += c.len_utf8();
                c
            }
            _ => return self.err(start, "malformed character constant"),
        };
        if self.peek() != Some('\'') {
            return self.err(start, "unterminated character constant");
        }
        self.pos += 1;
        Ok(c)
    }

    /// Decodes one Go escape sequence (after the backslash) into `out`.
    fn escape(&mut self, start: usize, quote: char, out: &mut Vec<u8>) -> LexResult<()> {
        let Some(c) = self.peek() else {
            return self.err(start, "unterminated quoted string");
        };
        self.pos += c.len_utf8();
        let simple = match c {
            'a' => Some(0x07u8),
            'b' => Some(0x08),
            'f' => Some(0x0c),
            'n' => Some(b'\n'),
            'r' => Some(b'\r'),
            't' => Some(b'\t'),
            'v' => Some(0x0b),
            '\\' => Some(b'\\'),
            c if c == quote => Some(c as u8),
            _ => None,
        };
        if let Some(b) = simple {
            out.push(b);
            return Ok(());
        }
        let (len, radix) = match c {
            'x' => (2, 16),
            'u' => (4, 16),
            'U' => (8, 16),
            '0'..='7' => (2, 8),
            _ => return self.err(start, format!("invalid escape sequence \\{c}")),
        };
        let digits_start = if radix == 8 { self.pos - 1 } else { self.pos };
        let total = if radix == 8 { 3 } else { len };
        let Some(digits) = self.src.get(digits_start..digits_start + total) else {
            return self.err(start, "invalid escape sequence");
        };
        let Ok(n) = u32::from_str_radix(digits, radix) else {
            return self.err(start, format!("invalid escape sequence in {digits:?}"));
        };
        self.pos = digits_start + total;
        if c == 'x' || radix == 8 {
            let Ok(b) = u8::try_from(n) else {
                return self.err(start, "octal escape value > 255");
            };
            out.push(b);
        } else {
            let Some(ch) = char::from_u32(n) else {
                return self.err(start, "invalid Unicode code point in escape");
            };
            let mut buf = [0u8; 4];
            out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<Tok> {
        lex(s).unwrap().into_iter().map(|t| t.tok).collect()
    }

    #[test]
    fn text_and_fields() {
        assert_eq!(
            toks("a{{ .A.B }}b"),
            vec![
                Tok::Text("a".into()),
                Tok::LeftDelim,
                Tok::Field("A".into()),
                Tok::Field("B".into()),
                Tok::RightDelim,
                Tok::Text("b".into()),
                Tok::Eof
            ]
        );
    }

    #[test]
    fn trim_markers_and_comments() {
        assert_eq!(
            toks("a  {{- 3 -}}  b{{/* c */}}d {{- /* x */ -}} e"),
            vec![
                Tok::Text("a".into()),
                Tok::LeftDelim,
                Tok::Number("3".into()),
                Tok::RightDelim,
                Tok::Text("b".into()),
                Tok::Text("d".into()),
                Tok::Text("e".into()),
                Tok::Eof
            ]
        );
        // "{{-3}}" is the number -3, no trimming.
        assert_eq!(toks("a {{-3}}")[2], Tok::Number("-3".into()));
        assert!(lex("{{/* x */ }}").is_err());
        assert!(lex("{{/* x ").is_err());
    }

    #[test]
    fn strings_and_escapes() {
        assert_eq!(
            toks(r#"{{"a\n\"\x41\u00e9\101"}}"#)[1],
            Tok::Str("a\n\"Aé A".replace(' ', ""))
        );
        assert_eq!(toks("{{`a\\n\r`}}")[1], Tok::Str("a\\n".into()));
        assert_eq!(toks("{{'x'}}")[1], Tok::Char('x'));
        assert!(lex("{{\"abc}}").is_err());
    }

    #[test]
    fn numbers_and_declarations() {
        assert_eq!(
            toks("{{$x := 0x1F | f 1.5e3 -2}}"),
            vec![
                Tok::LeftDelim,
                Tok::Variable("$x".into()),
                Tok::Declare,
                Tok::Number("0x1F".into()),
                Tok::Pipe,
                Tok::Ident("f".into()),
                Tok::Number("1.5e3".into()),
                Tok::Number("-2".into()),
                Tok::RightDelim,
                Tok::Eof
            ]
        );
        assert!(lex("{{ 3x }}").is_err());
        assert!(lex("{{ .A").is_err());
        assert!(lex("{{ ( }}").is_err());
    }
}
