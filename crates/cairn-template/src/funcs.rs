//! Built-in functions of Go templates and resticprofile's helper functions.

use std::collections::BTreeMap;

use base64::Engine as _;
use md5::{Digest as _, Md5};

use crate::RuntimeFuncs;
use crate::gofmt::{sprint, sprintf, sprintln};
use crate::value::Value;

/// Every function name templates may call (checked at parse time, like Go).
pub(crate) const FUNCTIONS: &[&str] = &[
    // Go built-ins.
    "and",
    "or",
    "not",
    "len",
    "index",
    "slice",
    "print",
    "printf",
    "println",
    "eq",
    "ne",
    "lt",
    "le",
    "gt",
    "ge",
    "html",
    "js",
    "urlquery",
    "call",
    // resticprofile.
    "contains",
    "matches",
    "replace",
    "replaceR",
    "regex",
    "lower",
    "upper",
    "trim",
    "trimPrefix",
    "trimSuffix",
    "split",
    "splitR",
    "join",
    "list",
    "map",
    "base64",
    "hex",
    "tempDir",
    "tempFile",
    "env",
    "randInt",
    "addInt",
    "subInt",
    "addFloat",
    "subFloat",
    "modInt",
    "int",
];

type FnResult = Result<Value, String>;

fn arity(name: &str, args: &[Value], n: usize) -> Result<(), String> {
    if args.len() == n {
        Ok(())
    } else {
        Err(format!(
            "wrong number of args for {name}: want {n} got {}",
            args.len()
        ))
    }
}

fn at_least(name: &str, args: &[Value], n: usize) -> Result<(), String> {
    if args.len() >= n {
        Ok(())
    } else {
        Err(format!(
            "wrong number of args for {name}: want at least {n} got {}",
            args.len()
        ))
    }
}

fn wrong_type(expected: &str, v: &Value) -> String {
    match v {
        Value::Nil => format!("invalid value; expected {expected}"),
        other => format!(
            "wrong type for value; expected {expected}; got {}",
            other.type_name()
        ),
    }
}

/// A string parameter: only strings are accepted; a missing value is an error (T4).
fn want_str(v: &Value) -> Result<&str, String> {
    match v {
        Value::Str(s) => Ok(s),
        other => Err(wrong_type("string", other)),
    }
}

/// An integer parameter: ints and integral number constants.
fn want_int(v: &Value) -> Result<i64, String> {
    match v {
        Value::Int(i) => Ok(*i),
        Value::Float(f) if f.fract() == 0.0 && f.abs() < 9.2e18 => Ok(*f as i64),
        other => Err(wrong_type("int", other)),
    }
}

fn want_float(v: &Value) -> Result<f64, String> {
    match v {
        Value::Float(f) => Ok(*f),
        Value::Int(i) => Ok(*i as f64),
        other => Err(wrong_type("float64", other)),
    }
}

/// A `[]any` parameter: a list; a missing value is an empty list.
fn want_list(v: &Value) -> Result<&[Value], String> {
    match v {
        Value::List(l) => Ok(l),
        Value::Nil => Ok(&[]),
        other => Err(wrong_type("[]interface {}", other)),
    }
}

/// resticprofile's `toString`: strings as is, lists as `[a,b]`, the rest like `fmt.Sprint`.
pub(crate) fn to_string(v: &Value) -> String {
    match v {
        Value::Str(s) => s.clone(),
        Value::List(l) => format!(
            "[{}]",
            l.iter().map(to_string).collect::<Vec<_>>().join(",")
        ),
        other => other.go_string(),
    }
}

fn regex(pattern: &str) -> Result<regex::Regex, String> {
    regex::Regex::new(pattern).map_err(|e| format!("regexp: Compile({pattern:?}): {e}"))
}

/// Calls function `name` (not `and`/`or`, which the executor evaluates lazily).
/// Errors are the message Go would print after `executing … at <…>: `.
pub(crate) fn call(name: &str, args: &[Value], rt: &dyn RuntimeFuncs) -> FnResult {
    let calling = |e: String| format!("error calling {name}: {e}");
    let a = |i: usize| args.get(i).unwrap_or(&Value::Nil);
    Ok(match name {
        "not" => {
            arity(name, args, 1)?;
            Value::Bool(!a(0).truthy())
        }
        "len" => {
            arity(name, args, 1)?;
            Value::Int(match a(0) {
                Value::Str(s) => s.len() as i64,
                Value::List(l) => l.len() as i64,
                Value::Map(m) => m.len() as i64,
                Value::Nil => return Err(calling("len of nil pointer".into())),
                other => return Err(calling(format!("len of type {}", other.type_name()))),
            })
        }
        "index" => {
            at_least(name, args, 1)?;
            index(a(0), args.get(1..).unwrap_or(&[])).map_err(calling)?
        }
        "slice" => {
            at_least(name, args, 1)?;
            slice(a(0), args.get(1..).unwrap_or(&[])).map_err(calling)?
        }
        "print" => Value::Str(sprint(args)),
        "println" => Value::Str(sprintln(args)),
        "printf" => {
            at_least(name, args, 1)?;
            Value::Str(sprintf(want_str(a(0))?, args.get(1..).unwrap_or(&[])))
        }
        "eq" => {
            at_least(name, args, 1)?;
            if args.len() < 2 {
                return Err(calling("missing argument for comparison".into()));
            }
            let mut any = false;
            for other in args.get(1..).unwrap_or(&[]) {
                if equal(a(0), other).map_err(calling)? {
                    any = true;
                    break;
                }
            }
            Value::Bool(any)
        }
        "ne" => {
            arity(name, args, 2)?;
            Value::Bool(!equal(a(0), a(1)).map_err(calling)?)
        }
        "lt" | "le" | "gt" | "ge" => {
            arity(name, args, 2)?;
            let ord = compare(a(0), a(1)).map_err(calling)?;
            use std::cmp::Ordering::*;
            Value::Bool(match name {
                "lt" => ord == Less,
                "le" => ord != Greater,
                "gt" => ord == Greater,
                _ => ord != Less,
            })
        }
        "html" => Value::Str(html_escape(&escaper_arg(args))),
        "js" => Value::Str(js_escape(&escaper_arg(args))),
        "urlquery" => Value::Str(query_escape(&escaper_arg(args))),
        "call" => {
            at_least(name, args, 1)?;
            return Err(calling(format!(
                "non-function of type {}: templates here have no function values",
                a(0).type_name()
            )));
        }
        "contains" => {
            arity(name, args, 2)?;
            Value::Bool(to_string(a(1)).contains(&to_string(a(0))))
        }
        "matches" => {
            arity(name, args, 2)?;
            let re = regex(want_str(a(0))?).map_err(calling)?;
            Value::Bool(re.is_match(&to_string(a(1))))
        }
        "replace" => {
            arity(name, args, 3)?;
            let (old, new, src) = (want_str(a(0))?, want_str(a(1))?, want_str(a(2))?);
            Value::Str(src.replace(old, new))
        }
        "replaceR" | "regex" => {
            arity(name, args, 3)?;
            let (ptn, repl, src) = (want_str(a(0))?, want_str(a(1))?, want_str(a(2))?);
            let re = regex(ptn).map_err(calling)?;
            Value::Str(re.replace_all(src, repl).into_owned())
        }
        "lower" => {
            arity(name, args, 1)?;
            Value::Str(want_str(a(0))?.to_lowercase())
        }
        "upper" => {
            arity(name, args, 1)?;
            Value::Str(want_str(a(0))?.to_uppercase())
        }
        "trim" => {
            arity(name, args, 1)?;
            Value::Str(want_str(a(0))?.trim().to_string())
        }
        "trimPrefix" => {
            arity(name, args, 2)?;
            let (p, src) = (want_str(a(0))?, want_str(a(1))?);
            Value::Str(src.strip_prefix(p).unwrap_or(src).to_string())
        }
        "trimSuffix" => {
            arity(name, args, 2)?;
            let (p, src) = (want_str(a(0))?, want_str(a(1))?);
            Value::Str(src.strip_suffix(p).unwrap_or(src).to_string())
        }
        "split" => {
            arity(name, args, 2)?;
            let (sep, src) = (want_str(a(0))?, want_str(a(1))?);
            let parts: Vec<Value> = if sep.is_empty() {
                src.chars().map(|c| Value::Str(c.to_string())).collect()
            } else {
                src.split(sep).map(Value::str).collect()
            };
            Value::List(parts)
        }
        "splitR" => {
            arity(name, args, 2)?;
            let (ptn, src) = (want_str(a(0))?, want_str(a(1))?);
            let re = regex(ptn).map_err(calling)?;
            Value::List(regex_split(&re, ptn, src))
        }
        "join" => {
            arity(name, args, 2)?;
            let (sep, list) = (want_str(a(0))?, want_list(a(1))?);
            Value::Str(list.iter().map(to_string).collect::<Vec<_>>().join(sep))
        }
        "list" => Value::List(args.to_vec()),
        "map" => to_map(args),
        "base64" => {
            arity(name, args, 1)?;
            Value::Str(base64::engine::general_purpose::STANDARD.encode(to_string(a(0))))
        }
        "hex" => {
            arity(name, args, 1)?;
            Value::Str(hex::encode(to_string(a(0))))
        }
        "tempDir" => {
            arity(name, args, 0)?;
            Value::Str(rt.temp_dir().map_err(calling)?)
        }
        "tempFile" => {
            arity(name, args, 1)?;
            Value::Str(rt.temp_file(want_str(a(0))?).map_err(calling)?)
        }
        "env" => {
            arity(name, args, 0)?;
            Value::Str(rt.env_file().map_err(calling)?)
        }
        "randInt" => {
            arity(name, args, 3)?;
            let (low, high, seed) = (want_int(a(0))?, want_int(a(1))?, want_str(a(2))?);
            if low >= high {
                return Err(calling(format!(
                    "low ({low}) must be less than high ({high})"
                )));
            }
            Value::Int(rand_int(low, high, seed))
        }
        "addInt" | "subInt" | "modInt" => {
            arity(name, args, 2)?;
            let (b, x) = (want_int(a(0))?, want_int(a(1))?);
            Value::Int(match name {
                "addInt" => x.wrapping_add(b),
                "subInt" => x.wrapping_sub(b),
                _ => {
                    if b == 0 {
                        return Err(calling("integer divide by zero".into()));
                    }
                    x.wrapping_rem(b)
                }
            })
        }
        "addFloat" | "subFloat" => {
            arity(name, args, 2)?;
            let (b, x) = (want_float(a(0))?, want_float(a(1))?);
            Value::Float(if name == "addFloat" { x + b } else { x - b })
        }
        "int" => {
            arity(name, args, 1)?;
            Value::Int(match a(0) {
                Value::Int(i) | Value::Named { value: i, .. } => *i,
                Value::Float(f) => *f as i64,
                other => {
                    let s = to_string(other);
                    s.parse::<i64>().map_err(|_| {
                        calling(format!("strconv.Atoi: parsing {s:?}: invalid syntax"))
                    })?
                }
            })
        }
        _ => return Err(format!("function {name:?} not defined")),
    })
}

/// The text `html`, `js` and `urlquery` escape: one string as is, else `fmt.Sprint` of the
/// arguments with missing values as `<no value>`.
fn escaper_arg(args: &[Value]) -> String {
    if let [Value::Str(s)] = args {
        return s.clone();
    }
    let printable: Vec<Value> = args
        .iter()
        .map(|v| match v {
            Value::Nil => Value::str("<no value>"),
            other => other.clone(),
        })
        .collect();
    sprint(&printable)
}

fn index(item: &Value, indices: &[Value]) -> FnResult {
    let mut cur = item.clone();
    for ix in indices {
        cur = match (&cur, ix) {
            (Value::List(l), i) => {
                let n = i.as_int().ok_or_else(|| {
                    format!("cannot index slice/array with type {}", i.type_name())
                })?;
                usize::try_from(n)
                    .ok()
                    .and_then(|u| l.get(u))
                    .cloned()
                    .ok_or_else(|| format!("index out of range: {n}"))?
            }
            (Value::Str(s), i) => {
                let n = i
                    .as_int()
                    .ok_or_else(|| format!("cannot index string with type {}", i.type_name()))?;
                usize::try_from(n)
                    .ok()
                    .and_then(|u| s.as_bytes().get(u))
                    .map(|b| Value::Int(*b as i64))
                    .ok_or_else(|| format!("index out of range: {n}"))?
            }
            (Value::Map(m), Value::Str(k)) => m.get(k).cloned().unwrap_or(Value::Nil),
            (Value::Map(_), k) => {
                return Err(format!(
                    "value has type {}; should be string",
                    k.type_name()
                ));
            }
            (Value::Nil, _) => return Err("index of untyped nil".into()),
            (other, _) => return Err(format!("can't index item of type {}", other.type_name())),
        };
    }
    Ok(cur)
}

fn slice(item: &Value, indices: &[Value]) -> FnResult {
    let len = match item {
        Value::List(l) => l.len(),
        Value::Str(s) => s.len(),
        Value::Nil => return Err("slice of untyped nil".into()),
        other => return Err(format!("can't slice item of type {}", other.type_name())),
    };
    if indices.len() > 3 {
        return Err(format!("too many slice indexes: {}", indices.len()));
    }
    if indices.len() == 3 && matches!(item, Value::Str(_)) {
        return Err("cannot 3-index slice a string".into());
    }
    let mut ix = [0usize, len, len];
    for (k, v) in indices.iter().enumerate() {
        let n = v
            .as_int()
            .ok_or_else(|| format!("cannot index slice/array with type {}", v.type_name()))?;
        let u = usize::try_from(n).map_err(|_| format!("index out of range: {n}"))?;
        if u > len {
            return Err(format!("index out of range: {n}"));
        }
        if let Some(slot) = ix.get_mut(k) {
            *slot = u;
        }
    }
    let [i, j, _] = ix;
    if i > j {
        return Err(format!("invalid slice index: {i} > {j}"));
    }
    if indices.len() == 3 && ix[1] > ix[2] {
        return Err(format!("invalid slice index: {} > {}", ix[1], ix[2]));
    }
    Ok(match item {
        Value::List(l) => Value::List(l.get(i..j).unwrap_or(&[]).to_vec()),
        Value::Str(s) => {
            Value::Str(String::from_utf8_lossy(s.as_bytes().get(i..j).unwrap_or(&[])).into_owned())
        }
        _ => Value::Nil,
    })
}

/// Go's `eq` for two values.
fn equal(a: &Value, b: &Value) -> Result<bool, String> {
    Ok(match (a, b) {
        (Value::Nil, Value::Nil) => true,
        (Value::Nil, _) | (_, Value::Nil) => false,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Str(x), Value::Str(y)) => x == y,
        (Value::Float(x), Value::Float(y)) => x == y,
        (Value::Time(x), Value::Time(y)) => x == y && x.offset() == y.offset(),
        (x, y) if x.as_int().is_some() && y.as_int().is_some() => x.as_int() == y.as_int(),
        (Value::List(_) | Value::Map(_), _) | (_, Value::List(_) | Value::Map(_)) => {
            return Err(format!("non-comparable type {}", a.type_name()));
        }
        _ => return Err("incompatible types for comparison".into()),
    })
}

/// Go's ordering for `lt`, `le`, `gt`, `ge`.
fn compare(a: &Value, b: &Value) -> Result<std::cmp::Ordering, String> {
    match (a, b) {
        (Value::Str(x), Value::Str(y)) => Ok(x.cmp(y)),
        (Value::Float(x), Value::Float(y)) => x
            .partial_cmp(y)
            .ok_or_else(|| "NaN is unordered".to_string()),
        (x, y) if x.as_int().is_some() && y.as_int().is_some() => Ok(x.as_int().cmp(&y.as_int())),
        (
            Value::Int(_) | Value::Named { .. } | Value::Float(_) | Value::Str(_),
            Value::Int(_) | Value::Named { .. } | Value::Float(_) | Value::Str(_),
        ) => Err("incompatible types for comparison".into()),
        _ => Err("invalid type for comparison".into()),
    }
}

/// resticprofile's `map`: key/value pairs, a list spread as `_0`, `_1`…, or `"key" list`.
fn to_map(args: &[Value]) -> Value {
    let mut m = BTreeMap::new();
    let mut key: Option<String> = None;
    for arg in args {
        match arg {
            Value::Str(s) => match key.take() {
                None => key = Some(s.clone()),
                Some(k) => {
                    m.insert(k, Value::Str(s.clone()));
                }
            },
            other => {
                if let Some(k) = key.take() {
                    m.insert(k, other.clone());
                } else if let Value::List(l) = other {
                    for (i, v) in l.iter().enumerate() {
                        m.insert(format!("_{i}"), v.clone());
                    }
                }
            }
        }
    }
    Value::Map(m)
}

/// Go's `Regexp.Split(s, -1)`.
fn regex_split(re: &regex::Regex, ptn: &str, s: &str) -> Vec<Value> {
    if !ptn.is_empty() && s.is_empty() {
        return vec![Value::str("")];
    }
    let mut out = Vec::new();
    let (mut beg, mut end) = (0usize, 0usize);
    for m in re.find_iter(s) {
        end = m.start();
        if m.end() != 0 {
            out.push(Value::str(s.get(beg..end).unwrap_or("")));
        }
        beg = m.end();
    }
    if end != s.len() {
        out.push(Value::str(s.get(beg..).unwrap_or("")));
    }
    out
}

/// Go's `template.HTMLEscapeString`.
pub(crate) fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\0' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// Go's `template.JSEscapeString`.
pub(crate) fn js_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '<' => out.push_str("\\u003C"),
            '>' => out.push_str("\\u003E"),
            '&' => out.push_str("\\u0026"),
            '=' => out.push_str("\\u003D"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04X}", c as u32)),
            c if !c.is_ascii() && c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// Go's `url.QueryEscape`.
pub(crate) fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Go `math/rand/v2` PCG source (128-bit LCG, DXSM output).
struct Pcg {
    hi: u64,
    lo: u64,
}

impl Pcg {
    fn next_u64(&mut self) -> u64 {
        const MUL: u128 = (2549297995355413924u128 << 64) | 4865540595714422341u128;
        const INC: u128 = (6364136223846793005u128 << 64) | 1442695040888963407u128;
        let state = (((self.hi as u128) << 64) | self.lo as u128)
            .wrapping_mul(MUL)
            .wrapping_add(INC);
        self.hi = (state >> 64) as u64;
        self.lo = state as u64;
        let mut hi = self.hi;
        hi ^= hi >> 32;
        hi = hi.wrapping_mul(0xda942042e4dd58b5);
        hi ^= hi >> 48;
        hi.wrapping_mul(self.lo | 1)
    }

    /// Go's `Rand.uint64n`: uniform in [0, n).
    fn uint64n(&mut self, n: u64) -> u64 {
        if n & n.wrapping_sub(1) == 0 {
            return self.next_u64() & n.wrapping_sub(1);
        }
        let mut m = (self.next_u64() as u128) * n as u128;
        if (m as u64) < n {
            let thresh = n.wrapping_neg() % n;
            while (m as u64) < thresh {
                m = (self.next_u64() as u128) * n as u128;
            }
        }
        (m >> 64) as u64
    }
}

/// resticprofile's `randInt LOW HIGH SEED`: deterministic for a seed, in [low, high).
pub(crate) fn rand_int(low: i64, high: i64, seed: &str) -> i64 {
    let sum = Md5::digest(seed.as_bytes());
    let mut s1 = [0u8; 8];
    let mut s2 = [0u8; 8];
    s1.copy_from_slice(sum.get(0..8).unwrap_or(&[0; 8]));
    s2.copy_from_slice(sum.get(8..16).unwrap_or(&[0; 8]));
    let mut r = Pcg {
        hi: u64::from_le_bytes(s1),
        lo: u64::from_le_bytes(s2),
    };
    let span = high.wrapping_sub(low) as u64;
    low.wrapping_add(r.uint64n(span) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rand_int_matches_resticprofile() {
        // Values from resticprofile's own tests.
        assert_eq!(rand_int(0, 1, ""), 0);
        assert_eq!(rand_int(5, 6, "hello"), 5);
        assert_eq!(rand_int(-1000, 1000, ""), 419);
        assert_eq!(rand_int(-1000, 1000, "ABC"), -272);
        assert_eq!(rand_int(0, 60, "nidoking"), rand_int(0, 60, "nidoking"));
    }

    #[test]
    fn to_map_forms() {
        let m = to_map(&[
            Value::str("k1"),
            Value::str("v1"),
            Value::str("k2"),
            Value::Int(2),
        ]);
        assert_eq!(
            m,
            Value::map([("k1", Value::str("v1")), ("k2", Value::Int(2))])
        );
        let l = Value::List(vec![Value::str("A"), Value::str("B")]);
        let m = to_map(std::slice::from_ref(&l));
        assert_eq!(
            m,
            Value::map([("_0", Value::str("A")), ("_1", Value::str("B"))])
        );
        let m = to_map(&[Value::str("key"), l.clone()]);
        assert_eq!(m, Value::map([("key", l)]));
    }

    #[test]
    fn escapers() {
        assert_eq!(
            html_escape("<a href=\"x\">'&'</a>"),
            "&lt;a href=&#34;x&#34;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(
            js_escape("a'b\"<=>\n"),
            "a\\'b\\\"\\u003C\\u003D\\u003E\\u000A"
        );
        assert_eq!(query_escape("a b&c=d/é"), "a+b%26c%3Dd%2F%C3%A9");
    }

    #[test]
    fn regex_split_like_go() {
        let re = regex::Regex::new(r"\s*,\s*").unwrap();
        let parts = regex_split(&re, r"\s*,\s*", "A , B,C");
        assert_eq!(
            parts,
            vec![Value::str("A"), Value::str("B"), Value::str("C")]
        );
        let re = regex::Regex::new(",").unwrap();
        assert_eq!(
            regex_split(&re, ",", "a,"),
            vec![Value::str("a"), Value::str("")]
        );
    }
}
