//! The parsed configuration tree: format-independent values with case-folded keys, weak typing
//! (`"true"` reads as a bool, `"30"` as an integer) and the file/line each key came from.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

/// Where a key was written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Origin {
    /// File name as shown in messages (relative to the configuration directory when inside it).
    pub(crate) file: Arc<str>,
    /// 1-based line, when the format keeps positions (TOML, JSON top-level errors).
    pub(crate) line: Option<usize>,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}", self.file, line),
            None => write!(f, "{}", self.file),
        }
    }
}

/// One configuration value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node {
    /// YAML/JSON null.
    Null,
    /// Boolean.
    Bool(bool),
    /// Integer.
    Int(i64),
    /// Float.
    Float(f64),
    /// String (TOML datetimes are kept as their text).
    Str(String),
    /// List.
    List(Vec<Node>),
    /// Table.
    Table(Table),
}

/// A table entry: the key as written, its value and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Entry {
    /// Key as written in the file (the map key is lower-cased).
    pub(crate) key: String,
    /// Value.
    pub(crate) value: Node,
    /// Where the key was written.
    pub(crate) origin: Origin,
}

/// A table with case-insensitive keys, sorted by lower-cased key.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Table {
    entries: BTreeMap<String, Entry>,
}

impl Table {
    /// An empty table.
    pub(crate) fn new() -> Self {
        Table::default()
    }

    /// The entry for `key` (any case).
    pub(crate) fn entry(&self, key: &str) -> Option<&Entry> {
        self.entries.get(&key.to_lowercase())
    }

    /// The value for `key` (any case); `Null` counts as absent.
    pub(crate) fn get(&self, key: &str) -> Option<&Node> {
        match self.entry(key) {
            Some(Entry {
                value: Node::Null, ..
            })
            | None => None,
            Some(e) => Some(&e.value),
        }
    }

    /// Mutable value for `key`.
    pub(crate) fn get_mut(&mut self, key: &str) -> Option<&mut Node> {
        self.entries
            .get_mut(&key.to_lowercase())
            .map(|e| &mut e.value)
    }

    /// The sub-table at `key`, if that value is a table.
    pub(crate) fn table(&self, key: &str) -> Option<&Table> {
        match self.get(key) {
            Some(Node::Table(t)) => Some(t),
            _ => None,
        }
    }

    /// Whether `key` is present (and not null).
    pub(crate) fn contains(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// Sets `key` (kept spelling) to `value`.
    pub(crate) fn insert(&mut self, key: &str, value: Node, origin: Origin) {
        self.entries.insert(
            key.to_lowercase(),
            Entry {
                key: key.to_string(),
                value,
                origin,
            },
        );
    }

    /// Sets an entry as is.
    pub(crate) fn insert_entry(&mut self, entry: Entry) {
        self.entries.insert(entry.key.to_lowercase(), entry);
    }

    /// Removes `key`.
    pub(crate) fn remove(&mut self, key: &str) -> Option<Entry> {
        self.entries.remove(&key.to_lowercase())
    }

    /// Entries by lower-cased key.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&String, &Entry)> {
        self.entries.iter()
    }

    /// Lower-cased keys.
    pub(crate) fn keys(&self) -> impl Iterator<Item = &String> {
        self.entries.keys()
    }

    /// Number of entries.
    #[cfg(test)]
    #[allow(clippy::len_without_is_empty)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// The origin of `key`, for messages.
    pub(crate) fn origin(&self, key: &str) -> Option<&Origin> {
        self.entry(key).map(|e| &e.origin)
    }

    /// Weak bool at `key`.
    pub(crate) fn bool(&self, key: &str) -> Option<bool> {
        self.get(key).and_then(Node::as_bool)
    }

    /// Weak string at `key` (scalars only).
    pub(crate) fn string(&self, key: &str) -> Option<String> {
        self.get(key).and_then(Node::as_string)
    }

    /// Weak integer at `key`.
    pub(crate) fn int(&self, key: &str) -> Option<i64> {
        self.get(key).and_then(Node::as_int)
    }

    /// String list at `key` (a scalar is a one-element list).
    pub(crate) fn strings(&self, key: &str) -> Vec<String> {
        self.get(key).map(Node::as_strings).unwrap_or_default()
    }
}

/// Go's `strconv.ParseBool`.
pub(crate) fn parse_go_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Integer with Go's base prefixes (`0x`, `0o`, `0b`, leading `0` = octal), as mapstructure's
/// weak decoding reads strings.
pub(crate) fn parse_go_int(s: &str) -> Option<i64> {
    let t = s.trim().replace('_', "");
    let (neg, body) = match t.strip_prefix('-') {
        Some(rest) => (true, rest.to_string()),
        None => (false, t.strip_prefix('+').unwrap_or(&t).to_string()),
    };
    let lower = body.to_lowercase();
    let value = if let Some(h) = lower.strip_prefix("0x") {
        i64::from_str_radix(h, 16).ok()?
    } else if let Some(o) = lower.strip_prefix("0o") {
        i64::from_str_radix(o, 8).ok()?
    } else if let Some(b) = lower.strip_prefix("0b") {
        i64::from_str_radix(b, 2).ok()?
    } else if lower.len() > 1 && lower.starts_with('0') {
        i64::from_str_radix(&lower[1..], 8).ok()?
    } else {
        lower.parse::<i64>().ok()?
    };
    Some(if neg { -value } else { value })
}

/// Go's `strconv.FormatFloat(f, 'f', -1, 64)`.
pub(crate) fn format_float(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 1e15 {
        format!("{}", f as i64)
    } else {
        format!("{f}")
    }
}

impl Node {
    /// Weak bool: bools, `"true"`/`"1"`/..., numbers (non-zero), `""` is false.
    pub(crate) fn as_bool(&self) -> Option<bool> {
        match self {
            Node::Bool(b) => Some(*b),
            Node::Int(i) => Some(*i != 0),
            Node::Float(f) => Some(*f != 0.0),
            Node::Str(s) if s.is_empty() => Some(false),
            Node::Str(s) => parse_go_bool(s.trim()),
            _ => None,
        }
    }

    /// Weak integer.
    pub(crate) fn as_int(&self) -> Option<i64> {
        match self {
            Node::Int(i) => Some(*i),
            Node::Bool(b) => Some(i64::from(*b)),
            Node::Float(f) if f.is_finite() => Some(f.trunc() as i64),
            Node::Str(s) => parse_go_int(s),
            _ => None,
        }
    }

    /// Weak string of a scalar (bools as `true`/`false`).
    pub(crate) fn as_string(&self) -> Option<String> {
        match self {
            Node::Str(s) => Some(s.clone()),
            Node::Bool(b) => Some(b.to_string()),
            Node::Int(i) => Some(i.to_string()),
            Node::Float(f) => Some(format_float(*f)),
            _ => None,
        }
    }

    /// String list: a list's scalar elements, or a scalar as one element.
    pub(crate) fn as_strings(&self) -> Vec<String> {
        match self {
            Node::List(items) => items.iter().filter_map(Node::as_string).collect(),
            Node::Null | Node::Table(_) => Vec::new(),
            other => other.as_string().into_iter().collect(),
        }
    }

    /// The table, if this is one.
    pub(crate) fn as_table(&self) -> Option<&Table> {
        match self {
            Node::Table(t) => Some(t),
            _ => None,
        }
    }

    /// A short type name for messages.
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            Node::Null => "null",
            Node::Bool(_) => "bool",
            Node::Int(_) => "integer",
            Node::Float(_) => "float",
            Node::Str(_) => "string",
            Node::List(_) => "list",
            Node::Table(_) => "table",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weak_typing_follows_go() {
        assert_eq!(Node::Str("true".into()).as_bool(), Some(true));
        assert_eq!(Node::Str("F".into()).as_bool(), Some(false));
        assert_eq!(Node::Str("".into()).as_bool(), Some(false));
        assert_eq!(Node::Str("yes".into()).as_bool(), None);
        assert_eq!(Node::Int(2).as_bool(), Some(true));
        assert_eq!(Node::Str("30".into()).as_int(), Some(30));
        assert_eq!(Node::Str("0x10".into()).as_int(), Some(16));
        assert_eq!(Node::Str("010".into()).as_int(), Some(8));
        assert_eq!(Node::Bool(true).as_int(), Some(1));
        assert_eq!(Node::Float(2.0).as_string().as_deref(), Some("2"));
        assert_eq!(Node::Float(2.5).as_string().as_deref(), Some("2.5"));
        assert_eq!(Node::Str("x".into()).as_strings(), vec!["x".to_string()]);
    }

    #[test]
    fn keys_are_case_insensitive() {
        let mut t = Table::new();
        t.insert("Exclude-File", Node::Str("a".into()), Origin::default());
        assert_eq!(t.string("exclude-file").as_deref(), Some("a"));
        assert_eq!(t.string("EXCLUDE-FILE").as_deref(), Some("a"));
        assert_eq!(
            t.entry("exclude-file").map(|e| e.key.as_str()),
            Some("Exclude-File")
        );
        t.insert("null", Node::Null, Origin::default());
        assert!(!t.contains("null"));
    }
}
