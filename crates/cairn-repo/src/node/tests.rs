use super::*;

/// Node `with-xattr.txt` and `blockdev-loop` as written by restic 0.14 (repo-v2 layout).
const XATTR_NODE: &str = r#"{"name":"with-xattr.txt","type":"file","mode":420,"mtime":"2021-03-04T06:06:07.123456789+01:00","atime":"2021-03-04T06:06:07.123456789+01:00","ctime":"2026-11-26T13:16:10.194+01:00","uid":0,"gid":0,"user":"root","group":"root","inode":10062273,"device_id":65024,"size":13,"links":1,"extended_attributes":[{"name":"user.fixture","value":"eGF0dHItdmFsdWUtAP8="}],"content":["dee70febf20cdb1a571687fead9efc1ef7033f7a720fbbb1fc0413f49b6572e9"]}"#;

const DEV_NODE: &str = r#"{"name":"blockdev-loop","type":"dev","mode":67109248,"mtime":"2021-03-04T06:06:07.123456789+01:00","atime":"2021-03-04T06:06:07.123456789+01:00","ctime":"2026-11-26T13:16:10.450776395+01:00","uid":0,"gid":0,"user":"root","group":"root","inode":10062297,"device_id":65024,"links":1,"device":1992,"content":null}"#;

#[test]
fn mode_conversions_match_spec_table() {
    let cases = [
        (0o100644, 420u32, NodeType::File),
        (0o104755, 8389101, NodeType::File),
        (0o040755, 2147484141, NodeType::Dir),
        (0o042755, 2151678445, NodeType::Dir),
        (0o041777, 2148532735, NodeType::Dir),
        (0o120777, 134218239, NodeType::Symlink),
        (0o010644, 33554852, NodeType::Fifo),
        (0o060600, 67109248, NodeType::Dev),
        (0o020600, 69206400, NodeType::CharDev),
        (0o140755, MODE_SOCKET | 0o755, NodeType::Socket),
    ];
    for (st, go, ty) in cases {
        assert_eq!(go_mode_from_unix(st), go, "st_mode {st:o}");
        assert_eq!(unix_perm_from_go(go), st & 0o7777, "go mode {go}");
        assert_eq!(NodeType::from_go_mode(go), Some(ty));
        assert_eq!(go & MODE_STORED_MASK, go);
    }
    assert_eq!(go_mode_from_unix(0o170644), MODE_IRREGULAR | 0o644);
    assert_eq!(
        NodeType::from_go_mode(MODE_IRREGULAR),
        Some(NodeType::Irregular)
    );
    assert_eq!(NodeType::from_go_mode(MODE_DIR | MODE_SYMLINK), None);
}

#[test]
fn node_type_strings() {
    for s in [
        "file",
        "dir",
        "symlink",
        "dev",
        "chardev",
        "fifo",
        "socket",
        "irregular",
    ] {
        let t = NodeType::parse(s);
        assert!(!matches!(t, NodeType::Other(_)), "{s}");
        assert_eq!(t.as_str(), s);
        assert_eq!(s.parse::<NodeType>().unwrap(), t);
    }
    assert_eq!(
        NodeType::from("whiteout"),
        NodeType::Other("whiteout".into())
    );
    assert_eq!(NodeType::Other("x".into()).to_string(), "x");
}

#[test]
fn fixture_nodes_round_trip_byte_exact() {
    for text in [XATTR_NODE, DEV_NODE] {
        let n = Node::from_json(text.as_bytes()).unwrap();
        assert_eq!(String::from_utf8(n.to_json()).unwrap(), text);
    }
    let n = Node::from_json(XATTR_NODE.as_bytes()).unwrap();
    assert_eq!(n.extended_attributes.len(), 1);
    assert_eq!(n.extended_attributes[0].name, "user.fixture");
    assert_eq!(n.extended_attributes[0].value, b"xattr-value-\x00\xff");
    assert_eq!(n.mtime.format(), "2021-03-04T06:06:07.123456789+01:00");
    assert_eq!(n.content.as_ref().map(Vec::len), Some(1));
    let d = Node::from_json(DEV_NODE.as_bytes()).unwrap();
    assert_eq!(
        (d.node_type.clone(), d.device, d.content),
        (NodeType::Dev, 1992, None)
    );
}

#[test]
fn encode_field_rules() {
    let mut n = Node::new(&b"l\xffnk<"[..], NodeType::Symlink);
    n.linktarget = b"tar\xffget&".to_vec();
    let s = String::from_utf8(n.to_json()).unwrap();
    assert_eq!(
        s,
        concat!(
            r#"{"name":"l\\xffnk\u003c","type":"symlink","#,
            r#""mtime":"0001-01-01T00:00:00Z","atime":"0001-01-01T00:00:00Z","ctime":"0001-01-01T00:00:00Z","#,
            r#""uid":0,"gid":0,"linktarget":"tar\ufffdget\u0026","linktarget_raw":"dGFy/2dldCY=","content":null}"#
        )
    );
    let back = Node::from_json(s.as_bytes()).unwrap();
    assert_eq!(back, n);

    let mut f = Node::new("empty", NodeType::File);
    f.content = Some(Vec::new());
    f.subtree = Some(Id::hash(b""));
    f.error = "boom".into();
    f.extended_attributes.push(ExtendedAttribute {
        name: "user.e".into(),
        value: Vec::new(),
    });
    f.generic_attributes = vec![
        ("windows.z".into(), RawJson::new(b"1").unwrap()),
        (
            "windows.a".into(),
            RawJson::new(b"{ \"b\":1, \"a\":2 }").unwrap(),
        ),
    ];
    let s = String::from_utf8(f.to_json()).unwrap();
    assert!(
        s.ends_with(concat!(
            r#""uid":0,"gid":0,"extended_attributes":[{"name":"user.e","value":""}],"#,
            r#""generic_attributes":{"windows.a":{"b":1,"a":2},"windows.z":1},"content":[],"#,
            r#""subtree":"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","error":"boom"}"#
        )),
        "{s}"
    );
    let back = Node::from_json(s.as_bytes()).unwrap();
    // Decoding sorts generic attributes by key.
    f.generic_attributes.reverse();
    assert_eq!(back, f);
}

#[test]
fn decode_go_semantics() {
    // Missing fields default, unknown ignored, case-insensitive keys, nulls.
    let n = Node::from_json(
        br#"{"NAME":"a\\tb","Type":"file","future":{"x":[1,2,{"y":null}]},"user":null,
            "mode":null,"content":null,"subtree":null,"extended_attributes":[null]}"#,
    )
    .unwrap();
    assert_eq!(n.name, b"a\tb");
    assert_eq!(n.node_type, NodeType::File);
    assert_eq!(n.mode, 0);
    assert!(n.mtime.is_zero());
    assert_eq!(n.content, None);
    assert_eq!(n.extended_attributes, vec![ExtendedAttribute::default()]);

    // No type at all → Other("").
    let n = Node::from_json(br#"{"name":"x"}"#).unwrap();
    assert_eq!(n.node_type, NodeType::Other(String::new()));

    // linktarget_raw overrides linktarget (even when listed first).
    let n =
        Node::from_json(br#"{"name":"l","linktarget_raw":"/w==","linktarget":"\ufffd"}"#).unwrap();
    assert_eq!(n.linktarget, b"\xff");
    // Lossy JSON string decoding for raw invalid UTF-8.
    let n = Node::from_json(b"{\"name\":\"l\",\"linktarget\":\"a\xffb\"}").unwrap();
    assert_eq!(n.linktarget, "a\u{fffd}b".as_bytes());
    // Duplicate keys: last wins; null leaves scalars unchanged.
    let n = Node::from_json(br#"{"name":"a","name":"b","size":5,"size":null}"#).unwrap();
    assert_eq!((n.name.as_slice(), n.size), (&b"b"[..], 5));
    // Go accepts base64 with non-zero trailing bits and embedded newlines.
    let n =
        Node::from_json(br#"{"name":"x","extended_attributes":[{"name":"n","value":"YR\n=="}]}"#)
            .unwrap();
    assert_eq!(n.extended_attributes[0].value, b"a");

    for bad in [
        &br#"{"name":"a\\'"}"#[..],
        br#"{"name":"a\"b"}"#,
        br#"{"name":1}"#,
        br#"{"name":"a","uid":-5}"#,
        br#"{"name":"a","content":[null]}"#,
        br#"{"name":"a","subtree":"E3B0"}"#,
        br#"{"name":"a","generic_attributes":[]}"#,
        br#"{"name":"a"} {}"#,
        br#"{"name":"a","extended_attributes":[{"value":"not base64!"}]}"#,
    ] {
        assert!(
            Node::from_json(bad).is_err(),
            "{} should fail",
            String::from_utf8_lossy(bad)
        );
    }
    // Uppercase hex IDs are accepted (Go's hex decoder does).
    let up = format!(
        r#"{{"name":"a","subtree":"{}"}}"#,
        Id::hash(b"").to_hex().to_uppercase()
    );
    assert_eq!(
        Node::from_json(up.as_bytes()).unwrap().subtree,
        Some(Id::hash(b""))
    );
}

/// Regression (found by fuzzing): duplicate `generic_attributes` keys were resolved with a
/// scan of all earlier keys per key, so a node with many keys took quadratic time (a 2 MB
/// node with 200 000 keys took minutes). Last value wins, also across repeated objects.
#[test]
fn generic_attributes_duplicates_and_many_keys() {
    let n = Node::from_json(
        br#"{"name":"a","generic_attributes":{"k":1,"j":2,"k":3},"generic_attributes":{"j":4,"i":5}}"#,
    )
    .unwrap();
    let got: Vec<(&str, &[u8])> = n
        .generic_attributes
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_bytes()))
        .collect();
    assert_eq!(got, vec![("i", &b"5"[..]), ("j", b"4"), ("k", b"3")]);
    let n = Node::from_json(
        br#"{"name":"a","generic_attributes":{"k":1},"generic_attributes":null,"generic_attributes":{"z":2}}"#,
    )
    .unwrap();
    assert_eq!(n.generic_attributes.len(), 1);
    assert_eq!(n.generic_attributes[0].0, "z");

    let keys = 200_000;
    let mut json = String::from(r#"{"name":"a","generic_attributes":{"#);
    for i in 0..keys {
        if i > 0 {
            json.push(',');
        }
        json.push_str(&format!(r#""{i}":{}"#, i % 7));
    }
    json.push_str(r#","0":"last"}}"#);
    let start = std::time::Instant::now();
    let n = Node::from_json(json.as_bytes()).unwrap();
    // Quadratic handling needs minutes here; linearithmic well under a second.
    assert!(
        start.elapsed() < std::time::Duration::from_secs(20),
        "took {:?}",
        start.elapsed()
    );
    assert_eq!(n.generic_attributes.len(), keys);
    assert_eq!(
        n.generic_attributes[0],
        ("0".to_string(), RawJson::new(b"\"last\"").unwrap())
    );
}
