use super::reader::JsonReader;
use super::*;
use proptest::prelude::*;

#[test]
fn numbers_are_plain_decimal() {
    for v in [0u64, 7, 9, 10, 99, 100, 4_294_967_295, u64::MAX] {
        let mut out = Vec::new();
        write_json_u64(&mut out, v);
        assert_eq!(out, v.to_string().into_bytes());
    }
}

fn json(s: &str) -> String {
    let mut out = Vec::new();
    write_json_string(&mut out, s);
    String::from_utf8(out).unwrap()
}

fn json_lossy(b: &[u8]) -> String {
    let mut out = Vec::new();
    write_json_bytes_lossy(&mut out, b);
    String::from_utf8(out).unwrap()
}

#[test]
fn json_escaping_matches_go_1_19() {
    assert_eq!(json("hello.txt"), r#""hello.txt""#);
    assert_eq!(json("html<&>.txt"), r#""html\u003c\u0026\u003e.txt""#);
    assert_eq!(json("q\"b\\"), r#""q\"b\\""#);
    assert_eq!(json("\n\r\t"), r#""\n\r\t""#);
    assert_eq!(
        json("\u{8}\u{c}\u{0}\u{1f}"),
        r#""\u0008\u000c\u0000\u001f""#
    );
    assert_eq!(json("\u{7f}/é日\u{2027}"), "\"\u{7f}/é日\u{2027}\"");
    assert_eq!(json("a\u{2028}b\u{2029}"), r#""a\u2028b\u2029""#);
    assert_eq!(json(""), r#""""#);
    // Names after Go quoting, as in fixture tree 8a1dc2cb…
    assert_eq!(
        json(r#"quote\"and\\backslash.txt"#),
        r#""quote\\\"and\\\\backslash.txt""#
    );
}

#[test]
fn json_lossy_replaces_each_invalid_byte() {
    assert_eq!(json_lossy(b"caf\xe9"), r#""caf\ufffd""#);
    // A truncated 3-byte sequence is two invalid bytes for Go.
    assert_eq!(json_lossy(b"\xe6\x97a"), r#""\ufffd\ufffda""#);
    // Encoded surrogate: three invalid bytes.
    assert_eq!(json_lossy(b"\xed\xa0\x80"), r#""\ufffd\ufffd\ufffd""#);
    // A real U+FFFD stays raw.
    assert_eq!(json_lossy("\u{fffd}<".as_bytes()), "\"\u{fffd}\\u003c\"");
}

#[test]
fn is_print_follows_go() {
    for c in [
        ' ', 'a', '~', '¡', 'é', 'ÿ', '日', '\u{300}', '\u{fffd}', '😀', '\u{8be}',
    ] {
        assert!(is_print(c), "{c:?} should be printable");
    }
    for c in [
        '\0',
        '\t',
        '\u{7f}',
        '\u{80}',
        '\u{a0}',
        '\u{ad}',
        '\u{200b}',
        '\u{2028}',
        '\u{3000}',
        '\u{e000}',
        '\u{feff}',
        '\u{10ffff}',
        '\u{378}',
        '\u{870}',
        '\u{e0001}',
    ] {
        assert!(!is_print(c), "{c:?} should not be printable");
    }
}

#[test]
fn go_quote_spec_table() {
    let cases: &[(&[u8], &str)] = &[
        (b"hello.txt", "hello.txt"),
        (b"latin1-caf\xe9.txt", r"latin1-caf\xe9.txt"),
        (
            br#"quote"and\backslash.txt"#,
            r#"quote\"and\\backslash.txt"#,
        ),
        (b"tab\there.txt", r"tab\there.txt"),
        ("nbsp\u{a0}space.txt".as_bytes(), r"nbsp\u00a0space.txt"),
        (b"html<&>.txt", "html<&>.txt"),
        (
            "unicode-Grüße-日本.txt".as_bytes(),
            "unicode-Grüße-日本.txt",
        ),
        (b"\x07\x08\x0c\n\r\x0b", r"\a\b\f\n\r\v"),
        (b"\x00\x1f\x7f\x80\xff", r"\x00\x1f\x7f\x80\xff"),
        (
            "\u{200b}\u{e000}\u{2028}\u{870}".as_bytes(),
            r"\u200b\ue000\u2028\u0870",
        ),
        (
            "\u{10ffff}\u{e0001}😀".as_bytes(),
            r"\U0010ffff\U000e0001😀",
        ),
        (b"'", "'"),
    ];
    for (raw, quoted) in cases {
        assert_eq!(&go_quote(raw), quoted, "{raw:?}");
        assert_eq!(&go_unquote(quoted).unwrap(), raw, "{quoted:?}");
    }
}

#[test]
fn go_unquote_escapes_and_errors() {
    let ok: &[(&str, &[u8])] = &[
        (r"\x41\101\u00e9\U0001F600", "AAé😀".as_bytes()),
        (r"\xE9\377\000", b"\xe9\xff\x00"),
        (r#"\\\"\a\b\f\n\r\t\v"#, b"\\\"\x07\x08\x0c\n\r\t\x0b"),
        ("raw\ttab\u{1}", b"raw\ttab\x01"),
        ("", b""),
    ];
    for (q, raw) in ok {
        assert_eq!(&go_unquote(q).unwrap(), raw, "{q:?}");
    }
    for bad in [
        "a\"b",
        "a\nb",
        "\\",
        "\\'",
        "\\q",
        "\\x4",
        "\\xg0",
        "\\u12",
        "\\ud800",
        "\\U00110000",
        "\\400",
        "\\08",
        "\\1",
        "\\u00e",
    ] {
        assert!(go_unquote(bad).is_err(), "{bad:?} should fail");
    }
}

#[test]
fn formatter_matches_writer() {
    let s = "a<b>&c\"\\\n\r\t\u{8}\u{c}\u{1}\u{7f}\u{2028}é";
    let via_serde = to_vec_go(&s).unwrap();
    let mut direct = Vec::new();
    write_json_string(&mut direct, s);
    assert_eq!(via_serde, direct);
    let map: std::collections::BTreeMap<&str, u32> = [("<k>", 1)].into();
    assert_eq!(to_vec_go(&map).unwrap(), br#"{"\u003ck\u003e":1}"#);
}

#[test]
fn raw_json_compacts_and_validates() {
    let r = RawJson::new(
        " { \"LowDateTime\" : 1 , \"HighDateTime\":[ 2, \"<x\u{2028}>\" ] } ".as_bytes(),
    )
    .unwrap();
    assert_eq!(
        r.as_bytes(),
        br#"{"LowDateTime":1,"HighDateTime":[2,"\u003cx\u2028\u003e"]}"#
    );
    // Key order is preserved, escapes inside strings are kept.
    let r = RawJson::new(br#"{"b":"a b\"\\ c","a":-1.5e3}"#).unwrap();
    assert_eq!(r.as_bytes(), br#"{"b":"a b\"\\ c","a":-1.5e3}"#);
    assert_eq!(r.to_value().unwrap()["a"], serde_json::json!(-1500.0));
    for bad in [
        &b""[..],
        b"{",
        b"[1,]",
        b"01",
        b"1 2",
        b"\"\x01\"",
        b"tru",
        b"{\"a\"}",
    ] {
        assert!(
            RawJson::new(bad).is_err(),
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
    assert_eq!(
        RawJson::from_value(&serde_json::json!({"k": "<"})).as_bytes(),
        br#"{"k":"\u003c"}"#
    );
}

#[test]
fn reader_strings_like_go() {
    let read = |s: &[u8]| JsonReader::new(s).read_string().map(|c| c.into_owned());
    assert_eq!(read(br#""\ud83d\ude00""#).unwrap(), "😀");
    assert_eq!(read(br#""\ud83d""#).unwrap(), "\u{fffd}");
    assert_eq!(read(br#""\ud83d\u0041""#).unwrap(), "\u{fffd}A");
    assert_eq!(read(br#""\ude00\ud83d\ude00""#).unwrap(), "\u{fffd}😀");
    assert_eq!(
        read(b"\"a\xff\xe6\x97b\"").unwrap(),
        "a\u{fffd}\u{fffd}\u{fffd}b"
    );
    assert_eq!(read(br#""\/\b\f\u00E9""#).unwrap(), "/\u{8}\u{c}é");
    for bad in [
        &b"\"abc"[..],
        b"\"a\tb\"",
        b"\"\\x41\"",
        b"\"\\u12\"",
        b"abc",
        b"\"\\",
    ] {
        assert!(read(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
    }
}

#[test]
fn reader_numbers_and_nesting() {
    let uint = |s: &[u8], max| JsonReader::new(s).read_uint(max);
    assert_eq!(uint(b" 0", u64::MAX).unwrap(), 0);
    assert_eq!(uint(b"18446744073709551615", u64::MAX).unwrap(), u64::MAX);
    assert!(uint(b"18446744073709551616", u64::MAX).is_err());
    assert!(uint(b"4294967296", u64::from(u32::MAX)).is_err());
    for bad in [&b"-1"[..], b"1.0", b"1e3", b"-", b"\"1\"", b"+1"] {
        assert!(
            uint(bad, u64::MAX).is_err(),
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
    let deep_ok = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let mut r = JsonReader::new(deep_ok.as_bytes());
    r.skip_value().unwrap();
    r.finish().unwrap();
    let too_deep = format!("{}{}", "[".repeat(10_001), "]".repeat(10_001));
    assert!(JsonReader::new(too_deep.as_bytes()).skip_value().is_err());
}

proptest! {
    #[test]
    fn prop_quote_unquote_round_trip(raw in proptest::collection::vec(any::<u8>(), 0..40)) {
        let q = go_quote(&raw);
        prop_assert_eq!(go_unquote(&q).unwrap(), raw);
    }

    #[test]
    fn prop_quote_unquote_round_trip_unicode(s in "\\PC*|[\\u{0}-\\u{10ffff}]{0,10}") {
        let q = go_quote(s.as_bytes());
        prop_assert_eq!(go_unquote(&q).unwrap(), s.as_bytes());
    }

    #[test]
    fn prop_json_string_round_trip(raw in proptest::collection::vec(any::<u8>(), 0..40)) {
        let mut out = Vec::new();
        write_json_bytes_lossy(&mut out, &raw);
        let back: String = serde_json::from_slice(&out).unwrap();
        prop_assert_eq!(&back, &go_lossy(&raw));
        let mut r = JsonReader::new(&out);
        prop_assert_eq!(r.read_string().unwrap().into_owned(), back.clone());
        // serde formatter and direct writer agree.
        let mut direct = Vec::new();
        write_json_string(&mut direct, &back);
        prop_assert_eq!(to_vec_go(&back).unwrap(), direct);
    }
}

/// Go's string(lossy) conversion: one U+FFFD per invalid byte.
fn go_lossy(raw: &[u8]) -> String {
    let mut s = String::new();
    for chunk in raw.utf8_chunks() {
        s.push_str(chunk.valid());
        for _ in chunk.invalid() {
            s.push('\u{fffd}');
        }
    }
    s
}
