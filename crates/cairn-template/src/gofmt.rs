//! Go `fmt` printing: `Sprint`, `Sprintln`, `Sprintf` over [`Value`]s.

use crate::value::Value;

/// Formatting flags and sizes of one verb.
#[derive(Clone, Copy, Default)]
struct Spec {
    minus: bool,
    plus: bool,
    sharp: bool,
    space: bool,
    zero: bool,
    width: Option<usize>,
    prec: Option<usize>,
}

/// `%v` of one value (Go `fmt.Sprint(v)`); nil prints `<nil>`.
pub(crate) fn format_v(v: &Value) -> String {
    let mut out = String::new();
    fmt_value(&mut out, v, 'v', &Spec::default());
    out
}

/// Go `fmt.Sprint`: operands formatted with `%v`, a space between two operands when neither
/// is a string.
pub(crate) fn sprint(args: &[Value]) -> String {
    let mut out = String::new();
    let mut prev_string = false;
    for (i, a) in args.iter().enumerate() {
        let is_string = matches!(a, Value::Str(_));
        if i > 0 && !is_string && !prev_string {
            out.push(' ');
        }
        out.push_str(&format_v(a));
        prev_string = is_string;
    }
    out
}

/// Go `fmt.Sprintln`: operands separated by spaces, then a newline.
pub(crate) fn sprintln(args: &[Value]) -> String {
    let mut out = args.iter().map(format_v).collect::<Vec<_>>().join(" ");
    out.push('\n');
    out
}

/// Go `fmt.Sprintf` with the verbs, flags, widths, precisions and argument indexes of Go.
pub(crate) fn sprintf(format: &str, args: &[Value]) -> String {
    let mut out = String::new();
    let chars: Vec<char> = format.chars().collect();
    let mut i = 0;
    let mut arg_num = 0usize;
    let mut reordered = false;
    let mut good_arg_num = true;
    while i < chars.len() {
        let Some(&c) = chars.get(i) else { break };
        if c != '%' {
            out.push(c);
            i += 1;
            continue;
        }
        i += 1;
        let mut spec = Spec::default();
        // Flags.
        while let Some(&f) = chars.get(i) {
            match f {
                '-' => {
                    spec.minus = true;
                    spec.zero = false;
                }
                '+' => spec.plus = true,
                '#' => spec.sharp = true,
                ' ' => spec.space = true,
                '0' => spec.zero = !spec.minus,
                _ => break,
            }
            i += 1;
        }
        // Width: an argument index, `*`, or digits.
        let mut after_index = arg_index(
            &chars,
            &mut i,
            &mut arg_num,
            &mut reordered,
            &mut good_arg_num,
            args.len(),
        );
        if chars.get(i) == Some(&'*') {
            i += 1;
            match args.get(arg_num).and_then(int_arg) {
                Some(w) => {
                    if w < 0 {
                        spec.minus = true;
                        spec.zero = false;
                    }
                    spec.width = Some(w.unsigned_abs() as usize);
                }
                None => out.push_str("%!(BADWIDTH)"),
            }
            arg_num += 1;
            after_index = false;
        } else {
            spec.width = digits(&chars, &mut i);
        }
        // Precision.
        if chars.get(i) == Some(&'.') {
            i += 1;
            after_index = arg_index(
                &chars,
                &mut i,
                &mut arg_num,
                &mut reordered,
                &mut good_arg_num,
                args.len(),
            );
            if chars.get(i) == Some(&'*') {
                i += 1;
                match args.get(arg_num).and_then(int_arg) {
                    Some(p) if p >= 0 => spec.prec = Some(p as usize),
                    _ => out.push_str("%!(BADPREC)"),
                }
                arg_num += 1;
                after_index = false;
            } else {
                spec.prec = Some(digits(&chars, &mut i).unwrap_or(0));
            }
        }
        if !after_index {
            arg_index(
                &chars,
                &mut i,
                &mut arg_num,
                &mut reordered,
                &mut good_arg_num,
                args.len(),
            );
        }
        let Some(&verb) = chars.get(i) else {
            out.push_str("%!(NOVERB)");
            break;
        };
        i += 1;
        if verb == '%' {
            out.push('%');
            continue;
        }
        if !good_arg_num {
            out.push_str(&format!("%!{verb}(BADINDEX)"));
            good_arg_num = true;
            continue;
        }
        match args.get(arg_num) {
            None => out.push_str(&format!("%!{verb}(MISSING)")),
            Some(a) => {
                arg_num += 1;
                if verb == 'T' {
                    pad(&mut out, a.type_name(), &spec);
                } else {
                    fmt_value(&mut out, a, verb, &spec);
                }
            }
        }
    }
    if !reordered && arg_num < args.len() {
        out.push_str("%!(EXTRA ");
        let extra: Vec<String> = args
            .iter()
            .skip(arg_num)
            .map(|a| match a {
                Value::Nil => "<nil>".to_string(),
                other => format!("{}={}", other.type_name(), format_v(other)),
            })
            .collect();
        out.push_str(&extra.join(", "));
        out.push(')');
    }
    out
}

/// Parses an explicit argument index `[n]` at `i`; true when there was one.
fn arg_index(
    chars: &[char],
    i: &mut usize,
    arg_num: &mut usize,
    reordered: &mut bool,
    good: &mut bool,
    nargs: usize,
) -> bool {
    if chars.get(*i) != Some(&'[') {
        return false;
    }
    *reordered = true;
    let mut j = *i + 1;
    let mut n: usize = 0;
    let mut any = false;
    while let Some(d) = chars.get(j).and_then(|c| c.to_digit(10)) {
        n = n.saturating_mul(10).saturating_add(d as usize);
        any = true;
        j += 1;
    }
    if chars.get(j) == Some(&']') && any && n >= 1 && n <= nargs {
        *arg_num = n - 1;
        *i = j + 1;
    } else {
        *good = false;
        *i = if chars.get(j) == Some(&']') { j + 1 } else { j };
    }
    true
}

fn digits(chars: &[char], i: &mut usize) -> Option<usize> {
    let mut n: Option<usize> = None;
    while let Some(d) = chars.get(*i).and_then(|c| c.to_digit(10)) {
        n = Some(n.unwrap_or(0).saturating_mul(10).saturating_add(d as usize));
        *i += 1;
    }
    n
}

/// An argument usable as a `*` width or precision: any integer kind (Go accepts named ints).
fn int_arg(v: &Value) -> Option<i64> {
    v.as_int()
}

/// Writes `s` padded to the width of `spec`.
fn pad(out: &mut String, s: &str, spec: &Spec) {
    let len = s.chars().count();
    let width = spec.width.unwrap_or(0);
    if len >= width {
        out.push_str(s);
        return;
    }
    let fill = width - len;
    if spec.minus {
        out.push_str(s);
        out.extend(std::iter::repeat_n(' ', fill));
    } else if spec.zero {
        out.extend(std::iter::repeat_n('0', fill));
        out.push_str(s);
    } else {
        out.extend(std::iter::repeat_n(' ', fill));
        out.push_str(s);
    }
}

/// Pads a number: zero padding goes after the sign.
fn pad_number(out: &mut String, s: &str, spec: &Spec) {
    if spec.zero && !spec.minus {
        let width = spec.width.unwrap_or(0);
        let len = s.chars().count();
        if len < width {
            let (sign, rest) = match s.chars().next() {
                Some(c @ ('-' | '+' | ' ')) => (Some(c), &s[1..]),
                _ => (None, s),
            };
            if let Some(c) = sign {
                out.push(c);
            }
            out.extend(std::iter::repeat_n('0', width - len));
            out.push_str(rest);
            return;
        }
    }
    let mut plain = *spec;
    plain.zero = false;
    pad(out, s, &plain)
}

fn bad_verb(out: &mut String, v: &Value, verb: char) {
    match v {
        Value::Nil => out.push_str(&format!("%!{verb}(<nil>)")),
        other => out.push_str(&format!(
            "%!{verb}({}={})",
            other.type_name(),
            format_v(other)
        )),
    }
}

fn fmt_value(out: &mut String, v: &Value, verb: char, spec: &Spec) {
    match v {
        Value::Nil => {
            if verb == 'v' {
                pad(out, "<nil>", spec)
            } else {
                bad_verb(out, v, verb)
            }
        }
        Value::Bool(b) => match verb {
            'v' | 't' => pad(out, if *b { "true" } else { "false" }, spec),
            _ => bad_verb(out, v, verb),
        },
        Value::Int(i) => fmt_int(out, *i, v, verb, spec),
        Value::Named { value, name } => match verb {
            'v' | 's' | 'q' | 'x' | 'X' => fmt_str(out, name, verb, spec),
            _ => fmt_int(out, *value, v, verb, spec),
        },
        Value::Float(f) => fmt_float(out, *f, v, verb, spec),
        Value::Str(s) => match verb {
            'v' | 's' | 'q' | 'x' | 'X' => fmt_str(out, s, verb, spec),
            _ => bad_verb(out, v, verb),
        },
        Value::Time(t) => match verb {
            'v' | 's' | 'q' | 'x' | 'X' => {
                fmt_str(out, &crate::timefmt::go_time_string(t), verb, spec)
            }
            _ => bad_verb(out, v, verb),
        },
        Value::List(items) => {
            out.push('[');
            for (n, item) in items.iter().enumerate() {
                if n > 0 {
                    out.push(' ');
                }
                fmt_value(out, item, verb, spec);
            }
            out.push(']');
        }
        Value::Map(m) => {
            out.push_str("map[");
            for (n, (k, item)) in m.iter().enumerate() {
                if n > 0 {
                    out.push(' ');
                }
                fmt_str(out, k, verb, spec);
                out.push(':');
                fmt_value(out, item, verb, spec);
            }
            out.push(']');
        }
    }
}

fn fmt_str(out: &mut String, s: &str, verb: char, spec: &Spec) {
    let truncated: String = match spec.prec {
        Some(p) if verb != 'x' && verb != 'X' => s.chars().take(p).collect(),
        _ => s.to_string(),
    };
    match verb {
        'q' => {
            let q = if spec.sharp && can_backquote(&truncated) {
                format!("`{truncated}`")
            } else {
                quote(&truncated, spec.plus)
            };
            pad(out, &q, spec)
        }
        'x' | 'X' => {
            let bytes = s.as_bytes();
            let bytes = match spec.prec {
                Some(p) => bytes.get(..p.min(bytes.len())).unwrap_or(bytes),
                None => bytes,
            };
            let mut h = String::new();
            for (n, b) in bytes.iter().enumerate() {
                if spec.space && n > 0 {
                    h.push(' ');
                }
                if spec.sharp && (spec.space || n == 0) {
                    h.push_str(if verb == 'x' { "0x" } else { "0X" });
                }
                if verb == 'x' {
                    h.push_str(&format!("{b:02x}"));
                } else {
                    h.push_str(&format!("{b:02X}"));
                }
            }
            pad(out, &h, spec)
        }
        _ => pad(out, &truncated, spec),
    }
}

fn fmt_int(out: &mut String, i: i64, v: &Value, verb: char, spec: &Spec) {
    let neg = i < 0;
    let abs = i.unsigned_abs();
    let mut digits = match verb {
        'v' | 'd' => abs.to_string(),
        'b' => format!("{abs:b}"),
        'o' | 'O' => format!("{abs:o}"),
        'x' => format!("{abs:x}"),
        'X' => format!("{abs:X}"),
        'c' => {
            let c = u32::try_from(i)
                .ok()
                .and_then(char::from_u32)
                .unwrap_or('\u{FFFD}');
            return pad(out, &c.to_string(), spec);
        }
        'q' => {
            let c = u32::try_from(i)
                .ok()
                .and_then(char::from_u32)
                .unwrap_or('\u{FFFD}');
            return pad(out, &quote_rune(c), spec);
        }
        'U' => {
            let s = format!("U+{abs:04X}");
            return pad(out, &s, spec);
        }
        _ => return bad_verb(out, v, verb),
    };
    if let Some(p) = spec.prec {
        if p == 0 && i == 0 {
            digits.clear();
        }
        while digits.len() < p {
            digits.insert(0, '0');
        }
    }
    let prefix = match verb {
        'O' => "0o",
        'b' if spec.sharp => "0b",
        'o' if spec.sharp => "0",
        'x' if spec.sharp => "0x",
        'X' if spec.sharp => "0X",
        _ => "",
    };
    let sign = if neg {
        "-"
    } else if spec.plus {
        "+"
    } else if spec.space {
        " "
    } else {
        ""
    };
    let s = format!("{sign}{prefix}{digits}");
    let mut sp = *spec;
    if spec.prec.is_some() {
        sp.zero = false;
    }
    pad_number(out, &s, &sp)
}

fn fmt_float(out: &mut String, f: f64, v: &Value, verb: char, spec: &Spec) {
    let body = match verb {
        'v' | 'g' | 'G' => {
            let s = format_g(f, spec.prec);
            if verb == 'G' { s.to_uppercase() } else { s }
        }
        'e' | 'E' => {
            let s = format_e(f, spec.prec.unwrap_or(6));
            if verb == 'E' { s.to_uppercase() } else { s }
        }
        'f' | 'F' => format_f(f, spec.prec.unwrap_or(6)),
        _ => return bad_verb(out, v, verb),
    };
    let body = if f.is_nan() {
        "NaN".to_string()
    } else if f.is_infinite() {
        if f > 0.0 {
            "+Inf".to_string()
        } else {
            "-Inf".to_string()
        }
    } else {
        body
    };
    let s = if body.starts_with('-') || body.starts_with('+') || body == "NaN" {
        body
    } else if spec.plus {
        format!("+{body}")
    } else if spec.space {
        format!(" {body}")
    } else {
        body
    };
    if f.is_finite() {
        pad_number(out, &s, spec)
    } else {
        let mut sp = *spec;
        sp.zero = false;
        pad(out, &s, &sp)
    }
}

/// Decimal digits (no trailing zeros, at least one digit) and the decimal point position of
/// `|f|`, shortest round-trip or rounded to `sig` significant digits.
fn decimal(f: f64, sig: Option<usize>) -> (String, i32) {
    let s = match sig {
        None => format!("{:e}", f.abs()),
        Some(p) => format!("{:.*e}", p.saturating_sub(1), f.abs()),
    };
    let (mant, exp) = s.split_once('e').unwrap_or((s.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let mut digits: String = mant.chars().filter(|c| c.is_ascii_digit()).collect();
    while digits.len() > 1 && digits.ends_with('0') {
        digits.pop();
    }
    if digits.chars().all(|c| c == '0') {
        return ("0".to_string(), 1);
    }
    (digits, exp + 1)
}

fn fmt_e_digits(neg: bool, digits: &str, dp: i32, prec: usize) -> String {
    let mut s = String::new();
    if neg {
        s.push('-');
    }
    let mut it = digits.chars();
    s.push(it.next().unwrap_or('0'));
    if prec > 0 {
        s.push('.');
        for _ in 0..prec {
            s.push(it.next().unwrap_or('0'));
        }
    }
    let exp = if digits == "0" { 0 } else { dp - 1 };
    s.push('e');
    s.push(if exp < 0 { '-' } else { '+' });
    s.push_str(&format!("{:02}", exp.unsigned_abs()));
    s
}

fn fmt_f_digits(neg: bool, digits: &str, dp: i32, prec: usize) -> String {
    let mut s = String::new();
    if neg {
        s.push('-');
    }
    let d: Vec<char> = digits.chars().collect();
    if dp > 0 {
        for k in 0..dp as usize {
            s.push(d.get(k).copied().unwrap_or('0'));
        }
    } else {
        s.push('0');
    }
    if prec > 0 {
        s.push('.');
        for k in 1..=prec as i64 {
            let idx = dp as i64 + k - 1;
            let c = if idx >= 0 {
                d.get(idx as usize).copied()
            } else {
                None
            };
            s.push(c.unwrap_or('0'));
        }
    }
    s
}

/// Go `strconv.FormatFloat(f, 'g', prec)` (`prec` None = shortest), with fmt's exponent form.
pub(crate) fn format_g(f: f64, prec: Option<usize>) -> String {
    if !f.is_finite() {
        return if f.is_nan() {
            "NaN".into()
        } else if f > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    let neg = f.is_sign_negative() && f != 0.0;
    let (digits, dp) = decimal(f, prec.map(|p| p.max(1)));
    let nd = digits.len() as i32;
    let shortest = prec.is_none();
    let mut p = match prec {
        None => nd,
        Some(p) => p.max(1) as i32,
    };
    let mut eprec = p;
    if eprec > nd && nd >= dp {
        eprec = nd;
    }
    if shortest {
        eprec = 6;
    }
    let exp = dp - 1;
    if exp < -4 || exp >= eprec {
        if p > nd {
            p = nd;
        }
        return fmt_e_digits(neg, &digits, dp, (p - 1).max(0) as usize);
    }
    if p > dp {
        p = nd;
    }
    fmt_f_digits(neg, &digits, dp, (p - dp).max(0) as usize)
}

/// Go `%e` with a precision.
pub(crate) fn format_e(f: f64, prec: usize) -> String {
    let neg = f.is_sign_negative() && f != 0.0;
    let (digits, dp) = decimal(f, Some(prec + 1));
    fmt_e_digits(neg, &digits, dp, prec)
}

/// Go `%f` with a precision.
pub(crate) fn format_f(f: f64, prec: usize) -> String {
    format!("{f:.prec$}")
}

fn can_backquote(s: &str) -> bool {
    s.chars()
        .all(|c| c != '`' && c != '\u{FEFF}' && (c == '\t' || !c.is_control()))
}

fn escape_char(out: &mut String, c: char, quote: char, ascii_only: bool) {
    match c {
        '\x07' => out.push_str("\\a"),
        '\x08' => out.push_str("\\b"),
        '\x0c' => out.push_str("\\f"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\x0b' => out.push_str("\\v"),
        '\\' => out.push_str("\\\\"),
        c if c == quote => {
            out.push('\\');
            out.push(c);
        }
        c if (c as u32) < 0x20 || c as u32 == 0x7f => out.push_str(&format!("\\x{:02x}", c as u32)),
        c if c.is_ascii() => out.push(c),
        c if !ascii_only && !c.is_control() && c != '\u{FEFF}' => out.push(c),
        c if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
        c => out.push_str(&format!("\\U{:08x}", c as u32)),
    }
}

/// Go `strconv.Quote` (or `QuoteToASCII` when `ascii_only`).
pub(crate) fn quote(s: &str, ascii_only: bool) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        escape_char(&mut out, c, '"', ascii_only);
    }
    out.push('"');
    out
}

fn quote_rune(c: char) -> String {
    let mut out = String::from("'");
    escape_char(&mut out, c, '\'', false);
    out.push('\'');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> Value {
        Value::str(x)
    }

    #[test]
    fn sprint_spacing_like_go() {
        assert_eq!(sprint(&[s("a"), s("b")]), "ab");
        assert_eq!(sprint(&[Value::Int(1), Value::Int(2)]), "1 2");
        assert_eq!(sprint(&[s("a"), Value::Int(2), s("c")]), "a2c");
        assert_eq!(sprintln(&[s("a"), s("b")]), "a b\n");
        assert_eq!(sprint(&[Value::Nil]), "<nil>");
    }

    #[test]
    fn printf_verbs() {
        assert_eq!(
            sprintf("%s-%d-%v", &[s("a"), Value::Int(3), Value::Bool(true)]),
            "a-3-true"
        );
        assert_eq!(sprintf("%q", &[s("a\"b\n")]), "\"a\\\"b\\n\"");
        assert_eq!(sprintf("%x %X", &[s("hi"), Value::Int(255)]), "6869 FF");
        assert_eq!(
            sprintf("%5s|%-5s|%05d", &[s("ab"), s("cd"), Value::Int(-42)]),
            "   ab|cd   |-0042"
        );
        assert_eq!(
            sprintf("%.2f %f", &[Value::Float(1.23556), Value::Float(1.0)]),
            "1.24 1.000000"
        );
        assert_eq!(sprintf("%e", &[Value::Float(1234.5678)]), "1.234568e+03");
        assert_eq!(
            sprintf("%g %g", &[Value::Float(1e21), Value::Float(0.00001)]),
            "1e+21 1e-05"
        );
        assert_eq!(sprintf("%t", &[Value::Bool(false)]), "false");
        assert_eq!(sprintf("%.3s", &[s("abcdef")]), "abc");
        assert_eq!(sprintf("%+d % d", &[Value::Int(5), Value::Int(5)]), "+5  5");
        assert_eq!(sprintf("%c%c", &[Value::Int(72), Value::Int(105)]), "Hi");
        assert_eq!(sprintf("100%%", &[]), "100%");
        assert_eq!(sprintf("%[2]s %[1]s", &[s("a"), s("b")]), "b a");
        assert_eq!(sprintf("%v", &[Value::List(vec![s("a"), s("b")])]), "[a b]");
        assert_eq!(sprintf("%T", &[Value::Float(1.0)]), "float64");
    }

    #[test]
    fn printf_errors_like_go() {
        assert_eq!(sprintf("%d", &[s("x")]), "%!d(string=x)");
        assert_eq!(sprintf("%s", &[Value::Int(1)]), "%!s(int=1)");
        assert_eq!(sprintf("%s %s", &[s("a")]), "a %!s(MISSING)");
        assert_eq!(sprintf("%s", &[s("a"), Value::Int(2)]), "a%!(EXTRA int=2)");
        assert_eq!(sprintf("%s", &[Value::Nil]), "%!s(<nil>)");
        assert_eq!(sprintf("%v", &[Value::Nil]), "<nil>");
        assert_eq!(sprintf("abc%", &[]), "abc%!(NOVERB)");
    }

    #[test]
    fn star_width_accepts_named_ints() {
        let wd = Value::Named {
            value: 3,
            name: "Wednesday".into(),
        };
        assert_eq!(sprintf("a%*s", &[wd.clone(), s("")]), "a   ");
        assert_eq!(
            sprintf("%v %d %s", &[wd.clone(), wd.clone(), wd]),
            "Wednesday 3 Wednesday"
        );
        assert_eq!(sprintf("%-*d|", &[Value::Int(4), Value::Int(7)]), "7   |");
    }

    #[test]
    fn float_g_matches_strconv() {
        assert_eq!(format_g(100000.0, None), "100000");
        assert_eq!(format_g(1000000.0, None), "1e+06");
        assert_eq!(format_g(0.0001, None), "0.0001");
        assert_eq!(format_g(0.1 + 0.2, None), "0.30000000000000004");
        assert_eq!(format_g(-2.5, None), "-2.5");
        assert_eq!(format_g(0.0, None), "0");
        assert_eq!(format_g(1.0, Some(3)), "1");
        assert_eq!(format_g(123456.0, Some(3)), "1.23e+05");
        assert_eq!(format_g(1.23556, Some(3)), "1.24");
    }
}
