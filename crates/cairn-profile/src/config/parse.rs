//! Parsing rendered configuration text (TOML, YAML, JSON) into a [`Table`] with line numbers
//! (TOML) and case-folded keys.

use std::path::Path;
use std::sync::Arc;

use toml::de::{DeTable, DeValue};

use super::error::{ConfigError, ConfigErrorKind};
use super::node::{Node, Origin, Table};

/// A configuration file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// TOML (`.toml`, `.conf`).
    Toml,
    /// YAML (`.yaml`, `.yml`).
    Yaml,
    /// JSON (`.json`).
    Json,
}

impl Format {
    /// The format for a file name's extension (`.conf` is TOML), None when unknown.
    pub fn from_path(path: &Path) -> Option<Format> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "toml" | "conf" => Some(Format::Toml),
            "yaml" | "yml" => Some(Format::Yaml),
            "json" => Some(Format::Json),
            _ => None,
        }
    }

    /// The format for a `--format` value (`toml`, `conf`, `yaml`, `yml`, `json`).
    pub fn from_name(name: &str) -> Option<Format> {
        match name.to_ascii_lowercase().as_str() {
            "toml" | "conf" => Some(Format::Toml),
            "yaml" | "yml" => Some(Format::Yaml),
            "json" => Some(Format::Json),
            _ => None,
        }
    }
}

/// Turns file bytes into text: strips a UTF-8 BOM and decodes UTF-16 (with BOM).
pub(crate) fn decode_text(bytes: &[u8], file: &str) -> Result<String, ConfigError> {
    let utf16 = |le: bool, body: &[u8]| -> Result<String, ConfigError> {
        let units: Vec<u16> = body
            .chunks(2)
            .map(|c| {
                let a = c.first().copied().unwrap_or(0);
                let b = c.get(1).copied().unwrap_or(0);
                if le {
                    u16::from_le_bytes([a, b])
                } else {
                    u16::from_be_bytes([a, b])
                }
            })
            .collect();
        String::from_utf16(&units).map_err(|_| {
            ConfigError::at(
                ConfigErrorKind::Parse,
                file,
                None,
                "invalid UTF-16 text; save the file as UTF-8",
            )
        })
    };
    if let Some(rest) = bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]) {
        return String::from_utf8(rest.to_vec()).map_err(|_| invalid_utf8(file));
    }
    if let Some(rest) = bytes.strip_prefix(&[0xFF, 0xFE]) {
        return utf16(true, rest);
    }
    if let Some(rest) = bytes.strip_prefix(&[0xFE, 0xFF]) {
        return utf16(false, rest);
    }
    String::from_utf8(bytes.to_vec()).map_err(|_| invalid_utf8(file))
}

fn invalid_utf8(file: &str) -> ConfigError {
    ConfigError::at(
        ConfigErrorKind::Parse,
        file,
        None,
        "the file is not valid UTF-8; save it as UTF-8",
    )
}

/// Parses `text` (already rendered) in `format`. `file` names it in messages and origins.
pub(crate) fn parse_text(
    text: &str,
    format: Format,
    file: &Arc<str>,
) -> Result<Table, ConfigError> {
    let mut table = match format {
        Format::Toml => parse_toml(text, file)?,
        Format::Yaml => parse_yaml(text, file)?,
        Format::Json => parse_json(text, file)?,
    };
    table.remove("$schema");
    Ok(table)
}

struct Lines {
    starts: Vec<usize>,
}

impl Lines {
    fn new(text: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Lines { starts }
    }

    fn line(&self, offset: usize) -> usize {
        match self.starts.binary_search(&offset) {
            Ok(i) => i + 1,
            Err(i) => i,
        }
    }
}

fn parse_toml(text: &str, file: &Arc<str>) -> Result<Table, ConfigError> {
    let lines = Lines::new(text);
    let parsed = DeTable::parse(text).map_err(|e| {
        let line = e.span().map(|s| lines.line(s.start));
        ConfigError::at(
            ConfigErrorKind::Parse,
            file.to_string(),
            line,
            format!("invalid TOML: {}", e.message().trim()),
        )
    })?;
    Ok(toml_table(parsed.get_ref(), &lines, file))
}

fn toml_table(t: &DeTable<'_>, lines: &Lines, file: &Arc<str>) -> Table {
    let mut out = Table::new();
    for (k, v) in t.iter() {
        let origin = Origin {
            file: file.clone(),
            line: Some(lines.line(k.span().start)),
        };
        out.insert(k.get_ref(), toml_value(v.get_ref(), lines, file), origin);
    }
    out
}

fn toml_value(v: &DeValue<'_>, lines: &Lines, file: &Arc<str>) -> Node {
    match v {
        DeValue::String(s) => Node::Str(s.to_string()),
        DeValue::Integer(i) => {
            let digits = i.as_str().replace('_', "");
            match i64::from_str_radix(&digits, i.radix()) {
                Ok(n) => Node::Int(n),
                Err(_) => Node::Str(i.as_str().to_string()),
            }
        }
        DeValue::Float(f) => match f.as_str().replace('_', "").parse::<f64>() {
            Ok(x) => Node::Float(x),
            Err(_) => Node::Str(f.as_str().to_string()),
        },
        DeValue::Boolean(b) => Node::Bool(*b),
        DeValue::Datetime(d) => Node::Str(d.to_string()),
        DeValue::Array(a) => Node::List(
            a.iter()
                .map(|e| toml_value(e.get_ref(), lines, file))
                .collect(),
        ),
        DeValue::Table(t) => Node::Table(toml_table(t, lines, file)),
    }
}

fn parse_yaml(text: &str, file: &Arc<str>) -> Result<Table, ConfigError> {
    if text.trim().is_empty() {
        return Ok(Table::new());
    }
    let value: serde_norway::Value = serde_norway::from_str(text).map_err(|e| {
        ConfigError::at(
            ConfigErrorKind::Parse,
            file.to_string(),
            e.location().map(|l| l.line()),
            format!("invalid YAML: {e}"),
        )
    })?;
    match yaml_value(&value, file) {
        Node::Table(t) => Ok(t),
        Node::Null => Ok(Table::new()),
        other => Err(ConfigError::at(
            ConfigErrorKind::Parse,
            file.to_string(),
            None,
            format!(
                "the top level must be a mapping, not a {}",
                other.type_name()
            ),
        )),
    }
}

fn yaml_value(v: &serde_norway::Value, file: &Arc<str>) -> Node {
    use serde_norway::Value as Y;
    match v {
        Y::Null => Node::Null,
        Y::Bool(b) => Node::Bool(*b),
        Y::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => Node::Int(i),
            (None, Some(f)) => Node::Float(f),
            _ => Node::Str(n.to_string()),
        },
        Y::String(s) => Node::Str(s.clone()),
        Y::Sequence(items) => Node::List(items.iter().map(|e| yaml_value(e, file)).collect()),
        Y::Mapping(m) => {
            let mut t = Table::new();
            for (k, val) in m {
                let key = match k {
                    Y::String(s) => s.clone(),
                    other => yaml_value(other, file).as_string().unwrap_or_default(),
                };
                let origin = Origin {
                    file: file.clone(),
                    line: None,
                };
                t.insert(&key, yaml_value(val, file), origin);
            }
            Node::Table(t)
        }
        Y::Tagged(tagged) => yaml_value(&tagged.value, file),
    }
}

fn parse_json(text: &str, file: &Arc<str>) -> Result<Table, ConfigError> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| {
        ConfigError::at(
            ConfigErrorKind::Parse,
            file.to_string(),
            Some(e.line()),
            format!("invalid JSON: {e}"),
        )
    })?;
    match json_value(&value, file) {
        Node::Table(t) => Ok(t),
        other => Err(ConfigError::at(
            ConfigErrorKind::Parse,
            file.to_string(),
            None,
            format!(
                "the top level must be an object, not a {}",
                other.type_name()
            ),
        )),
    }
}

fn json_value(v: &serde_json::Value, file: &Arc<str>) -> Node {
    use serde_json::Value as J;
    match v {
        J::Null => Node::Null,
        J::Bool(b) => Node::Bool(*b),
        J::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => Node::Int(i),
            (None, Some(f)) => Node::Float(f),
            _ => Node::Str(n.to_string()),
        },
        J::String(s) => Node::Str(s.clone()),
        J::Array(items) => Node::List(items.iter().map(|e| json_value(e, file)).collect()),
        J::Object(m) => {
            let mut t = Table::new();
            for (k, val) in m {
                let origin = Origin {
                    file: file.clone(),
                    line: None,
                };
                t.insert(k, json_value(val, file), origin);
            }
            Node::Table(t)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f() -> Arc<str> {
        Arc::from("profiles.toml")
    }

    #[test]
    fn toml_keeps_lines_and_folds_case() {
        let text = "#:schema x\nversion = '1'\n\n[Base]\nTZ = 'UTC'\npack-size = 128  # MiB\n";
        let t = parse_text(text, Format::Toml, &f()).unwrap();
        let base = t.table("base").unwrap();
        assert_eq!(base.origin("tz").unwrap().line, Some(5));
        assert_eq!(base.int("pack-size"), Some(128));
        assert_eq!(base.entry("tz").unwrap().key, "TZ");
    }

    #[test]
    fn toml_error_has_line() {
        let e = parse_text("a = 1\nb = \n", Format::Toml, &f()).unwrap_err();
        assert_eq!(e.line, Some(2), "{e}");
        assert!(
            e.to_string().starts_with("profiles.toml:2: invalid TOML"),
            "{e}"
        );
    }

    #[test]
    fn yaml_and_json_give_the_same_tree() {
        let toml = "[p]\nsource = ['/a', '/b']\nverbose = 2\n[p.env]\nx = 'y'\n";
        let yaml = "p:\n  source: [/a, /b]\n  verbose: 2\n  env:\n    x: y\n";
        let json =
            r#"{"$schema": "s", "p": {"source": ["/a", "/b"], "verbose": 2, "env": {"x": "y"}}}"#;
        let a = parse_text(toml, Format::Toml, &f()).unwrap();
        let b = parse_text(yaml, Format::Yaml, &f()).unwrap();
        let c = parse_text(json, Format::Json, &f()).unwrap();
        for t in [&b, &c] {
            let p = t.table("p").unwrap();
            assert_eq!(p.strings("source"), vec!["/a", "/b"]);
            assert_eq!(p.int("verbose"), Some(2));
            assert_eq!(p.table("env").unwrap().string("x").as_deref(), Some("y"));
        }
        assert!(!c.contains("$schema"));
        assert_eq!(a.table("p").unwrap().strings("source"), vec!["/a", "/b"]);
    }

    #[test]
    fn bom_and_utf16_are_decoded() {
        assert_eq!(decode_text(b"\xEF\xBB\xBFa=1", "f").unwrap(), "a=1");
        let mut le = vec![0xFF, 0xFE];
        for u in "a=1".encode_utf16() {
            le.extend_from_slice(&u.to_le_bytes());
        }
        assert_eq!(decode_text(&le, "f").unwrap(), "a=1");
    }
}
