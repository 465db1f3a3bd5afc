//! Dotenv files (`env-file`, and the files written through `{{env}}`): `NAME=value` lines with
//! an optional `export` prefix, single quotes (literal), double quotes (with `\n`, `\r`, `\t`,
//! `\"`, `\\`, `\$` escapes; may span lines), `#` comments and blank lines. Values are never
//! `$VAR`-expanded.

use std::path::{Path, PathBuf};

/// A dotenv file could not be read or parsed.
#[derive(Debug, thiserror::Error)]
pub enum DotenvError {
    /// A line is not `NAME=value`.
    #[error("line {line}: {message} (expected NAME=value)")]
    Syntax {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A file could not be read.
    #[error("cannot read env file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A syntax error in a file.
    #[error("env file {}: line {line}: {message} (expected NAME=value)", path.display())]
    InFile {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
}

/// Reads and parses a dotenv file. A leading UTF-8 byte order mark is ignored.
pub fn load(path: &Path) -> Result<Vec<(String, String)>, DotenvError> {
    let bytes = std::fs::read(path).map_err(|source| DotenvError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let text = String::from_utf8_lossy(&bytes);
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    parse(text).map_err(|e| match e {
        DotenvError::Syntax { line, message } => DotenvError::InFile {
            path: path.to_path_buf(),
            line,
            message,
        },
        other => other,
    })
}

/// Parses dotenv text into `(name, value)` pairs in file order (a later duplicate wins when the
/// pairs are inserted into a map).
pub fn parse(text: &str) -> Result<Vec<(String, String)>, DotenvError> {
    let mut p = Parser {
        chars: text.chars().collect(),
        pos: 0,
        line: 1,
    };
    let mut out = Vec::new();
    loop {
        p.skip_blank();
        let Some(c) = p.peek() else { break };
        if c == '\n' {
            p.bump();
            continue;
        }
        if c == '#' {
            p.skip_to_eol();
            continue;
        }
        let line = p.line;
        let mut name = p.take_while(|c| !(c == '=' || c == '\n' || c == ' ' || c == '\t'));
        if name == "export" {
            p.skip_blank();
            if p.peek() != Some('=') {
                name = p.take_while(|c| !(c == '=' || c == '\n' || c == ' ' || c == '\t'));
            }
        }
        p.skip_blank();
        if p.peek() != Some('=') {
            return Err(DotenvError::Syntax {
                line,
                message: format!("missing '=' after {name:?}"),
            });
        }
        p.bump();
        if !valid_name(&name) {
            return Err(DotenvError::Syntax {
                line,
                message: format!("invalid variable name {name:?}"),
            });
        }
        p.skip_blank();
        let value = match p.peek() {
            Some('\'') => {
                p.bump();
                let v = p.take_while(|c| c != '\'');
                if p.peek() != Some('\'') {
                    return Err(DotenvError::Syntax {
                        line,
                        message: format!("unterminated single quote in the value of {name}"),
                    });
                }
                p.bump();
                p.expect_line_end(line, &name)?;
                v
            }
            Some('"') => {
                p.bump();
                let v = p.double_quoted(line, &name)?;
                p.expect_line_end(line, &name)?;
                v
            }
            _ => p.unquoted(),
        };
        out.push((name, value));
    }
    Ok(out)
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-')
}

struct Parser {
    chars: Vec<char>,
    pos: usize,
    line: usize,
}

impl Parser {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += 1;
        if c == '\n' {
            self.line += 1;
        }
        Some(c)
    }

    /// Skips spaces, tabs and carriage returns (not newlines).
    fn skip_blank(&mut self) {
        while matches!(self.peek(), Some(' ' | '\t' | '\r')) {
            self.bump();
        }
    }

    fn skip_to_eol(&mut self) {
        while let Some(c) = self.peek() {
            if c == '\n' {
                break;
            }
            self.bump();
        }
    }

    fn take_while(&mut self, keep: impl Fn(char) -> bool) -> String {
        let mut s = String::new();
        while let Some(c) = self.peek() {
            if !keep(c) {
                break;
            }
            s.push(c);
            self.bump();
        }
        s
    }

    /// After a closing quote only blanks and a comment may follow on the line.
    fn expect_line_end(&mut self, line: usize, name: &str) -> Result<(), DotenvError> {
        self.skip_blank();
        match self.peek() {
            None | Some('\n') => Ok(()),
            Some('#') => {
                self.skip_to_eol();
                Ok(())
            }
            Some(_) => Err(DotenvError::Syntax {
                line,
                message: format!("unexpected text after the closing quote of {name}"),
            }),
        }
    }

    fn double_quoted(&mut self, line: usize, name: &str) -> Result<String, DotenvError> {
        let mut v = String::new();
        loop {
            match self.bump() {
                None => {
                    return Err(DotenvError::Syntax {
                        line,
                        message: format!("unterminated double quote in the value of {name}"),
                    });
                }
                Some('"') => return Ok(v),
                Some('\\') => match self.bump() {
                    Some('n') => v.push('\n'),
                    Some('r') => v.push('\r'),
                    Some('t') => v.push('\t'),
                    Some(c @ ('"' | '\\' | '$' | '\'' | '`')) => v.push(c),
                    Some(c) => {
                        v.push('\\');
                        v.push(c);
                    }
                    None => v.push('\\'),
                },
                Some(c) => v.push(c),
            }
        }
    }

    /// Unquoted value: up to the end of the line or a ` #` comment, trailing blanks removed.
    fn unquoted(&mut self) -> String {
        let mut v = String::new();
        while let Some(c) = self.peek() {
            if c == '\n' {
                break;
            }
            if c == '#' && (v.is_empty() || v.ends_with([' ', '\t'])) {
                self.skip_to_eol();
                break;
            }
            v.push(c);
            self.bump();
        }
        v.trim_end_matches([' ', '\t', '\r']).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(text: &str) -> Vec<(String, String)> {
        parse(text).unwrap()
    }

    fn p(a: &str, b: &str) -> (String, String) {
        (a.to_string(), b.to_string())
    }

    #[test]
    fn basic_forms() {
        let text = "# comment\n\nA=1\nexport B = two words  \nC='single $X \\n'\nD=\"dq \\\"x\\\" \\n \\$HOME\"\nE=\nF=val # comment\nG=a#b\n";
        assert_eq!(
            pairs(text),
            vec![
                p("A", "1"),
                p("B", "two words"),
                p("C", "single $X \\n"),
                p("D", "dq \"x\" \n $HOME"),
                p("E", ""),
                p("F", "val"),
                p("G", "a#b"),
            ]
        );
    }

    #[test]
    fn crlf_and_multiline_quotes() {
        let text = "A=1\r\nB=\"line1\nline2\"\r\nC='x\ny' # c\r\nexport=3\n";
        assert_eq!(
            pairs(text),
            vec![
                p("A", "1"),
                p("B", "line1\nline2"),
                p("C", "x\ny"),
                p("export", "3")
            ]
        );
    }

    #[test]
    fn errors_name_the_line() {
        let e = parse("A=1\nnot a line\n").unwrap_err();
        assert!(e.to_string().starts_with("line 2:"), "{e}");
        let e = parse("A=\"open\n").unwrap_err();
        assert!(e.to_string().contains("unterminated double quote"), "{e}");
        let e = parse("A='x' y\n").unwrap_err();
        assert!(e.to_string().contains("after the closing quote"), "{e}");
        let e = parse("1A=x\n").unwrap_err();
        assert!(e.to_string().contains("invalid variable name"), "{e}");
    }

    #[test]
    fn load_reports_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("x.env");
        std::fs::write(&f, "\u{feff}A=1\nbad\n").unwrap();
        let e = load(&f).unwrap_err().to_string();
        assert!(e.contains("x.env") && e.contains("line 2"), "{e}");
        std::fs::write(&f, "\u{feff}A=1\n").unwrap();
        assert_eq!(load(&f).unwrap(), vec![p("A", "1")]);
        let e = load(&dir.path().join("missing")).unwrap_err().to_string();
        assert!(e.starts_with("cannot read env file"), "{e}");
    }
}
