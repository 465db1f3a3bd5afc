//! The dynamic value model templates work on, with Go's truthiness and `%v` printing.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, FixedOffset};

/// A template value: the Rust image of the Go values resticprofile hands to its templates.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// No value: a missing map key or a field of nil data. Prints `<no value>`, is falsy.
    Nil,
    /// A boolean.
    Bool(bool),
    /// An integer (Go `int`).
    Int(i64),
    /// A floating point number (Go `float64`).
    Float(f64),
    /// A string.
    Str(String),
    /// A list (Go `[]any`).
    List(Vec<Value>),
    /// A map with string keys (Go `map[string]any`); fields `.key` look keys up.
    Map(BTreeMap<String, Value>),
    /// A point in time (Go `time.Time`) with methods `Format`, `AddDate`, `UTC`, `Year`, ….
    Time(DateTime<FixedOffset>),
    /// A named integer (Go `time.Month`, `time.Weekday`): prints as its name, acts as an int.
    Named {
        /// The integer value (January = 1, Sunday = 0).
        value: i64,
        /// The printed name.
        name: String,
    },
}

impl Value {
    /// Builds a map value from key/value pairs.
    pub fn map<I: IntoIterator<Item = (K, Value)>, K: Into<String>>(i: I) -> Value {
        Value::Map(i.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }

    /// Builds a string value.
    pub fn str(s: impl Into<String>) -> Value {
        Value::Str(s.into())
    }

    /// Go template truthiness: false, 0, nil and empty strings, lists and maps are false.
    pub fn truthy(&self) -> bool {
        match self {
            Value::Nil => false,
            Value::Bool(b) => *b,
            Value::Int(i) => *i != 0,
            Value::Float(f) => *f != 0.0,
            Value::Str(s) => !s.is_empty(),
            Value::List(l) => !l.is_empty(),
            Value::Map(m) => !m.is_empty(),
            Value::Time(_) => true,
            Value::Named { value, .. } => *value != 0,
        }
    }

    /// The Go type name of the value, as used in Go's error messages and `%T`.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Nil => "<nil>",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float64",
            Value::Str(_) => "string",
            Value::List(_) => "[]interface {}",
            Value::Map(_) => "map[string]interface {}",
            Value::Time(_) => "time.Time",
            Value::Named { name, .. } => {
                if crate::timefmt::WEEKDAYS.contains(&name.as_str()) {
                    "time.Weekday"
                } else {
                    "time.Month"
                }
            }
        }
    }

    /// The integer inside an `Int` or `Named` value.
    pub(crate) fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) | Value::Named { value: i, .. } => Some(*i),
            _ => None,
        }
    }

    /// Go's `fmt.Sprint` of one value (`%v`): a nil prints `<nil>` here.
    pub(crate) fn go_string(&self) -> String {
        crate::gofmt::format_v(self)
    }
}

impl fmt::Display for Value {
    /// What a template action prints: `<no value>` for Nil, Go's `%v` for everything else.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Nil => f.write_str("<no value>"),
            other => f.write_str(&other.go_string()),
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Str(s.to_string())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Str(s)
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Value::Int(i)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truthiness_follows_go() {
        assert!(!Value::Nil.truthy());
        assert!(!Value::Int(0).truthy());
        assert!(!Value::str("").truthy());
        assert!(!Value::List(vec![]).truthy());
        assert!(!Value::map(Vec::<(String, Value)>::new()).truthy());
        assert!(Value::str("x").truthy());
        assert!(Value::Float(0.5).truthy());
        assert!(
            !Value::Named {
                value: 0,
                name: "Sunday".into()
            }
            .truthy()
        );
    }

    #[test]
    fn display_prints_no_value_for_nil_and_go_lists() {
        assert_eq!(Value::Nil.to_string(), "<no value>");
        let l = Value::List(vec![Value::str("a"), Value::Int(2), Value::Nil]);
        assert_eq!(l.to_string(), "[a 2 <nil>]");
        let m = Value::map([("b", Value::Int(1)), ("a", Value::str("x"))]);
        assert_eq!(m.to_string(), "map[a:x b:1]");
        assert_eq!(Value::Float(1e6).to_string(), "1e+06");
        assert_eq!(Value::Float(2.5).to_string(), "2.5");
    }
}
