//! Behaviour tables ported from restic's `internal/filter` tests
//! (`filter_test.go`, `filter_patterns_test.go`, `exclude_test.go`,
//! `include_test.go`) plus tests of the option plumbing.

use super::*;

/// `matchTests` from restic's filter_test.go.
const MATCH_TESTS: &[(&str, &str, bool)] = &[
    ("", "", true),
    ("", "foo", true),
    ("", "/x/y/z/foo", true),
    ("*.go", "/foo/bar/test.go", true),
    ("*.c", "/foo/bar/test.go", false),
    ("*", "/foo/bar/test.go", true),
    ("**", "/foo/bar/test.go", true),
    ("foo*", "/foo/bar/test.go", true),
    ("bar*", "/foo/bar/test.go", true),
    ("/bar*", "/foo/bar/test.go", false),
    ("bar/*", "/foo/bar/test.go", true),
    ("baz/*", "/foo/bar/test.go", false),
    ("bar/test.go", "/foo/bar/test.go", true),
    ("bar/*.go", "/foo/bar/test.go", true),
    ("ba*/*.go", "/foo/bar/test.go", true),
    ("bb*/*.go", "/foo/bar/test.go", false),
    ("test.*", "/foo/bar/test.go", true),
    ("tesT.*", "/foo/bar/test.go", false),
    ("bar/*", "/foo/bar/baz", true),
    ("bar", "/foo/bar", true),
    ("/foo/bar", "/foo/bar", true),
    ("/foo/bar/", "/foo/bar", true),
    ("/foo/bar", "/foo/baz", false),
    ("/foo/bar", "/foo/baz/", false),
    ("/foo///bar", "/foo/bar", true),
    ("/foo/../bar", "/foo/bar", false),
    ("/foo/../bar", "/bar", true),
    ("/foo", "/foo/baz", true),
    ("/foo/", "/foo/baz", true),
    ("/foo/*", "/foo", false),
    ("/foo/*", "/foo/baz", true),
    ("bar", "/foo/bar/baz", true),
    ("bar", "/foo/bar/test.go", true),
    ("/foo/*test.*", "/foo/bar/test.go", false),
    ("/foo/*/test.*", "/foo/bar/test.go", true),
    ("/foo/*/bar/test.*", "/foo/bar/test.go", false),
    ("/*/*/bar/test.*", "/foo/bar/test.go", false),
    ("/*/*/bar/test.*", "/foo/bar/baz/test.go", false),
    ("/*/*/baz/test.*", "/foo/bar/baz/test.go", true),
    ("/*/foo/bar/test.*", "/foo/bar/baz/test.go", false),
    ("/*/foo/bar/test.*", "/foo/bar/baz/test.go", false),
    ("/foo/bar/test.*", "bar/baz/test.go", false),
    ("/x/y/bar/baz/test.*", "bar/baz/test.go", false),
    ("/x/y/bar/baz/test.c", "bar/baz/test.go", false),
    ("baz/test.*", "bar/baz/test.go", true),
    ("baz/tesT.*", "bar/baz/test.go", false),
    ("test.go", "bar/baz/test.go", true),
    ("*.go", "bar/baz/test.go", true),
    ("*.c", "bar/baz/test.go", false),
    ("sdk", "/foo/bar/sdk", true),
    ("sdk", "/foo/bar/sdk/test/sdk_foo.go", true),
    (
        "sdk/*/cpp/*/*vars*.html",
        "/usr/share/doc/libreoffice/sdk/docs/cpp/ref/a00517.html",
        false,
    ),
    (
        "foo/**/bar/*.go",
        "/home/user/foo/work/special/project/bar/test.go",
        true,
    ),
    ("foo/**/bar/*.go", "/home/user/foo/bar/test.go", true),
    ("foo/**/bar/*.go", "x/foo/bar/test.go", true),
    ("foo/**/bar/*.go", "foo/bar/test.go", true),
    ("foo/**/bar/*.go", "foo/bar/baz/bar/test.go", true),
    ("foo/**/bar/*.go", "/home/user/foo/test.c", false),
    ("foo/**/bar/*.go", "bar/foo/main.go", false),
    ("foo/**/bar/*.go", "/foo/bar/main.go", true),
    ("foo/**/bar/*.go", "bar/main.go", false),
    ("foo/**/bar", "/home/user/foo/x/y/bar", true),
    ("foo/**/bar", "/home/user/foo/x/y/bar/main.go", true),
    ("foo/**/bar/**/x", "/home/user/foo/bar/x", true),
    (
        "foo/**/bar/**/x",
        "/home/user/foo/blaaa/blaz/bar/shared/work/x",
        true,
    ),
    ("user/**/important*", "/home/user/work/x/y/hidden/x", false),
    (
        "user/**/hidden*/**/c",
        "/home/user/work/x/y/hidden/z/a/b/c",
        true,
    ),
    ("c:/foo/*test.*", "c:/foo/bar/test.go", false),
    ("c:/foo", "c:/foo/bar", true),
    ("c:/foo/", "c:/foo/bar", true),
    ("c:/foo/*/test.*", "c:/foo/bar/test.go", true),
    ("c:/foo/*/bar/test.*", "c:/foo/bar/test.go", false),
];

#[test]
fn restic_match() {
    for (pattern, path, want) in MATCH_TESTS {
        let got = match_pattern(pattern, path)
            .unwrap_or_else(|e| panic!("Match({pattern:?}, {path:?}) failed: {e}"));
        assert_eq!(got, *want, "Match({pattern:?}, {path:?})");
    }
}

/// `childMatchTests` from restic's filter_test.go.
const CHILD_MATCH_TESTS: &[(&str, &str, bool)] = &[
    ("", "", true),
    ("", "/foo", true),
    ("", "/x/y/z/foo", true),
    ("foo/bar", "/foo", true),
    ("baz/bar", "/foo", true),
    ("foo", "/foo/bar", true),
    ("bar", "/foo", true),
    ("baz", "/foo/bar", true),
    ("*", "/foo", true),
    ("*", "/foo/bar", true),
    ("/foo/bar", "/foo", true),
    ("/foo/bar/baz", "/foo", true),
    ("/foo/bar/baz", "/foo/bar", true),
    ("/foo/bar/baz", "/foo/baz", false),
    ("/foo/**/baz", "/foo/bar/baz", true),
    ("/foo/**/baz", "/foo/bar/baz/blah", true),
    ("/foo/**/qux", "/foo/bar/baz/qux", true),
    ("/foo/**/qux", "/foo/bar/baz", true),
    ("/foo/**/qux", "/foo/bar/baz/boo", true),
    ("/foo/**", "/foo/bar/baz", true),
    ("/foo/**", "/foo/bar", true),
    ("foo/**/bar/**/x", "/home/user/foo", true),
    ("foo/**/bar/**/x", "/home/user/foo/bar", true),
    (
        "foo/**/bar/**/x",
        "/home/user/foo/blaaa/blaz/bar/shared/work/x",
        true,
    ),
    ("/foo/*/qux", "/foo/bar", true),
    ("/foo/*/qux", "/foo/bar/boo", false),
    ("/foo/*/qux", "/foo/bar/boo/xx", false),
    ("/baz/bar", "/foo", false),
    ("/foo", "/foo/bar", true),
    ("/*", "/foo", true),
    ("/*", "/foo/bar", true),
    ("/foo", "/foo/bar", true),
    ("/**", "/foo", true),
    ("/*/**", "/foo", true),
    ("/*/**", "/foo/bar", true),
    ("/*/bar", "/foo", true),
    ("/bar/*", "/foo", false),
    ("/foo/*/baz", "/foo/bar", true),
    ("/foo/*/baz", "/foo/baz", true),
    ("/foo/*/baz", "/bar/baz", false),
    ("/**/*", "/foo", true),
    ("/**/bar", "/foo/bar", true),
];

#[test]
fn restic_child_match() {
    for (pattern, path, want) in CHILD_MATCH_TESTS {
        let got = child_match_pattern(pattern, path)
            .unwrap_or_else(|e| panic!("ChildMatch({pattern:?}, {path:?}) failed: {e}"));
        assert_eq!(got, *want, "ChildMatch({pattern:?}, {path:?})");
    }
}

/// `filterListTests` from restic's filter_test.go:
/// (patterns, path, match, childMatch).
const LIST_TESTS: &[(&[&str], &str, bool, bool)] = &[
    (&[], "/foo/bar/test.go", false, false),
    (&["*.go"], "/foo/bar/test.go", true, true),
    (&["*.go"], "/foo/bar", false, true),
    (&["*.c"], "/foo/bar/test.go", false, true),
    (&["*.go", "*.c"], "/foo/bar/test.go", true, true),
    (&["*"], "/foo/bar/test.go", true, true),
    (&["x"], "/foo/bar/test.go", false, true),
    (&["?"], "/foo/bar/test.go", false, true),
    (&["?", "x"], "/foo/bar/x", true, true),
    (&["/*/*/bar/test.*"], "/foo/bar/test.go", false, false),
    (&["/*/*/bar/test.*"], "/foo/bar/bar", false, true),
    (&["/*/*/bar/test.*", "*.go"], "/foo/bar/test.go", true, true),
    (&["", "*.c"], "/foo/bar/test.go", false, true),
    (&["!**", "*.go"], "/foo/bar/test.go", true, true),
    (&["!**", "*.c"], "/foo/bar/test.go", false, true),
    (&["/foo/*/test.*", "!*.c"], "/foo/bar/test.c", false, false),
    (&["/foo/*/test.*", "!*.c"], "/foo/bar/test.go", true, true),
    (
        &["/foo/*/*", "!test.*", "*.c"],
        "/foo/bar/test.go",
        false,
        true,
    ),
    (
        &["/foo/*/*", "!test.*", "*.c"],
        "/foo/bar/test.c",
        true,
        true,
    ),
    (
        &["/foo/*/*", "!test.*", "*.c"],
        "/foo/bar/file.go",
        true,
        true,
    ),
    (
        &["/**/*", "!/foo", "/foo/*", "!/foo/bar"],
        "/foo/other/test.go",
        true,
        true,
    ),
    (
        &["/**/*", "!/foo", "/foo/*", "!/foo/bar"],
        "/foo/bar",
        false,
        false,
    ),
    (
        &["/**/*", "!/foo", "/foo/*", "!/foo/bar"],
        "/foo/bar/test.go",
        false,
        false,
    ),
    (
        &["/**/*", "!/foo", "/foo/*", "!/foo/bar"],
        "/foo/bar/test.go/child",
        false,
        false,
    ),
    (
        &["/**/*", "!/foo", "/foo/*", "!/foo/bar", "/foo/bar/test*"],
        "/foo/bar/test.go/child",
        true,
        true,
    ),
    (&["/foo/bar/*"], "/foo", false, true),
    (&["/foo/bar/*", "!/foo/bar/[a-m]*"], "/foo", false, true),
    (&["/foo/**/test.c"], "/foo/bar/foo/bar/test.c", true, true),
    (&["/foo/*/test.c"], "/foo/bar/foo/bar/test.c", false, false),
];

#[test]
fn restic_list() {
    for (i, (patterns, path, want_match, want_child)) in LIST_TESTS.iter().enumerate() {
        let list = PatternList::new(patterns, false).unwrap();
        assert_eq!(
            list.matches(path),
            *want_match,
            "test {i}: List({patterns:?}, {path:?})"
        );
        assert_eq!(
            list.matches_with_child(path),
            (*want_match, *want_child),
            "test {i}: ListWithChild({patterns:?}, {path:?})"
        );
        assert_eq!(list.child_may_match(path), *want_child, "test {i}");
    }
}

#[test]
fn restic_examples() {
    assert!(match_pattern("*.go", "/home/user/file.go").unwrap());
    assert!(match_pattern("/home/[uU]ser/?.go", "/home/user/F.go").unwrap());
    let list = PatternList::new(&["*.c", "*.go"], false).unwrap();
    assert!(list.matches("/home/user/file.go"));
}

#[test]
fn restic_invalid_strs() {
    assert!(matches!(
        match_pattern("test", ""),
        Err(FilterError::EmptyPath)
    ));
    assert!(matches!(
        child_match_pattern("test", ""),
        Err(FilterError::EmptyPath)
    ));
    let list = PatternList::new(&["test"], false).unwrap();
    assert!(!list.matches(""));
    assert_eq!(list.matches_with_child(""), (false, false));
}

#[test]
fn restic_invalid_pattern() {
    assert!(PatternList::new(&["test/["], false).is_err());
    assert!(PatternList::new(&["test/**/["], false).is_err());
    assert!(match_pattern("test/[", "test/example").is_err());
}

#[test]
fn restic_validate_patterns() {
    let err = validate_patterns(&["*.foo", "*[._]log[.-][0-9]", "!*[._]log[.-][0-9]"]).unwrap_err();
    match err {
        FilterError::InvalidPatterns(bad) => {
            assert_eq!(bad, vec!["*[._]log[.-][0-9]", "!*[._]log[.-][0-9]"]);
        }
        other => panic!("wrong error {other}"),
    }
    let all: Vec<&str> = MATCH_TESTS.iter().map(|t| t.0).collect();
    validate_patterns(&all).unwrap();
    let all: Vec<&str> = CHILD_MATCH_TESTS.iter().map(|t| t.0).collect();
    validate_patterns(&all).unwrap();
}

#[test]
fn restic_reject_by_pattern() {
    let patterns = ["*.go", "README.md", "/home/user/foobar/*"];
    let cases = [
        ("/home/user/foo.go", true),
        ("/home/user/foo.c", false),
        ("/home/user/foobar", false),
        ("/home/user/foobar/x", true),
        ("/home/user/README", false),
        ("/home/user/README.md", true),
    ];
    let list = PatternList::new(&patterns, false).unwrap();
    for (path, want) in cases {
        assert_eq!(list.matches(path), want, "{path}");
    }
    let icases = [
        ("/home/user/foo.GO", true),
        ("/home/user/foo.c", false),
        ("/home/user/foobar", false),
        ("/home/user/FOObar/x", true),
        ("/home/user/README", false),
        ("/home/user/readme.md", true),
    ];
    let ilist = PatternList::new(&patterns, true).unwrap();
    assert!(ilist.is_case_insensitive());
    for (path, want) in icases {
        assert_eq!(ilist.matches(path), want, "{path}");
    }
    // The sensitive list does not ignore case.
    assert!(!list.matches("/home/user/foo.GO"));
}

#[test]
fn restic_include_by_pattern() {
    let patterns = vec!["*.go".to_string(), "README.md".to_string()];
    let cases = [
        ("/home/user/foo.go", true),
        ("/home/user/foo.c", false),
        ("/home/user/foobar", false),
        ("/home/user/foobar/x", false),
        ("/home/user/README", false),
        ("/home/user/README.md", true),
    ];
    let inc = Includer::new(&PatternOptions {
        patterns: patterns.clone(),
        ..Default::default()
    })
    .unwrap();
    for (path, want) in cases {
        assert_eq!(inc.selects(path).0, want, "{path}");
    }
    let icases = [
        ("/home/user/foo.GO", true),
        ("/home/user/foo.c", false),
        ("/home/user/foobar", false),
        ("/home/user/FOObar/x", false),
        ("/home/user/README", false),
        ("/home/user/readme.MD", true),
    ];
    let iinc = Includer::new(&PatternOptions {
        insensitive_patterns: patterns,
        ..Default::default()
    })
    .unwrap();
    for (path, want) in icases {
        assert_eq!(iinc.selects(path).0, want, "{path}");
    }
}

#[test]
fn includer_traversal() {
    let inc = Includer::new(&PatternOptions {
        patterns: vec!["/etc/ssh/sshd_config".into()],
        ..Default::default()
    })
    .unwrap();
    assert_eq!(inc.selects("/etc"), (false, true));
    assert_eq!(inc.selects("/etc/ssh"), (false, true));
    assert_eq!(inc.selects("/etc/ssh/sshd_config"), (true, true));
    assert_eq!(inc.selects("/etc/ssh/ssh_config"), (false, false));
    assert_eq!(inc.selects("/usr"), (false, false));
    // A matching directory selects everything below it.
    let inc = Includer::new(&PatternOptions {
        patterns: vec!["/home/user/work".into()],
        ..Default::default()
    })
    .unwrap();
    assert_eq!(inc.selects("/home/user/work/a/b.txt"), (true, true));
    assert!(Includer::default().is_empty());
}

#[test]
fn excluder_negation_and_restore_select() {
    // restic's documented "exclude everything but" example.
    let ex = Excluder::new(&PatternOptions {
        patterns: vec![
            "/home/bob/*".into(),
            "!/home/bob/Documents".into(),
            "!/home/bob/code".into(),
            "node_modules".into(),
            "*~".into(),
        ],
        ..Default::default()
    })
    .unwrap();
    assert!(ex.is_excluded("/home/bob/Downloads"));
    assert!(ex.is_excluded("/home/bob/Downloads/x.iso"));
    assert!(!ex.is_excluded("/home/bob/Documents"));
    assert!(!ex.is_excluded("/home/bob/Documents/cv.odt"));
    assert!(ex.is_excluded("/home/bob/code/app/node_modules"));
    assert!(ex.is_excluded("/home/bob/code/app/main.rs~"));
    assert!(!ex.is_excluded("/home/bob"));
    assert_eq!(ex.restore_select("/home/bob/code", true), (true, true));
    assert_eq!(
        ex.restore_select("/home/bob/code/a.rs", false),
        (true, false)
    );
    assert_eq!(
        ex.restore_select("/home/bob/Downloads", true),
        (false, false)
    );
    assert!(Excluder::default().is_empty());
    assert!(!Excluder::default().is_excluded("/x"));
}

#[test]
fn only_negated_patterns_match_nothing() {
    let list = PatternList::new(&["!*.go", "!/tmp"], false).unwrap();
    assert!(!list.matches("/tmp/a.go"));
    assert!(!list.matches("/etc/passwd"));
    assert_eq!(list.matches_with_child("/etc"), (false, false));
}

#[test]
fn non_utf8_paths_and_patterns() {
    let list = PatternList::new(&[b"/data/\xff*".to_vec(), b"*.b\xe4k".to_vec()], false).unwrap();
    assert!(list.matches(b"/data/\xffabc/x"));
    assert!(list.matches(b"/x/file.b\xe4k"));
    assert!(!list.matches(b"/data/abc"));
    let ilist = PatternList::new(&["*.TXT"], true).unwrap();
    assert!(ilist.matches(b"/a/\xfe\xffB.Txt"));
}

#[test]
fn excluder_from_files() {
    let dir = tempfile::tempdir().unwrap();
    let sensitive = dir.path().join("ex.txt");
    let insensitive = dir.path().join("iex.txt");
    let home = std::env::var("HOME").unwrap_or_default();
    std::fs::write(&sensitive, "# go files\n*.go\n\nfoo/**/bar\n$HOME/secret\n").unwrap();
    std::fs::write(&insensitive, "*.JPG\n").unwrap();
    let ex = Excluder::new(&PatternOptions {
        patterns: vec!["*.c".into()],
        files: vec![sensitive],
        insensitive_files: vec![insensitive],
        ..Default::default()
    })
    .unwrap();
    assert!(ex.is_excluded("/w/main.c"));
    assert!(ex.is_excluded("/w/main.go"));
    assert!(ex.is_excluded("/w/foo/x/y/z/bar"));
    assert!(ex.is_excluded("/w/photo.jpg"));
    assert!(ex.is_excluded("/w/photo.Jpg"));
    assert!(!ex.is_excluded("/w/main.GO"));
    assert!(!ex.is_excluded("/w/main.rs"));
    if home.starts_with('/') {
        assert!(ex.is_excluded(format!("{home}/secret/key")));
    }
}

#[test]
fn option_errors_name_the_option() {
    let dir = tempfile::tempdir().unwrap();
    let bad_file = dir.path().join("bad.txt");
    std::fs::write(&bad_file, "ok\n[\n").unwrap();
    let err = Excluder::new(&PatternOptions {
        files: vec![bad_file.clone()],
        ..Default::default()
    })
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "--exclude-file: invalid pattern(s) provided:\n["
    );
    let err = Includer::new(&PatternOptions {
        insensitive_files: vec![bad_file],
        ..Default::default()
    })
    .unwrap_err();
    assert!(err.to_string().starts_with("--iinclude-file: "), "{err}");
    let err = Excluder::new(&PatternOptions {
        patterns: vec!["a[".into(), "ok".into(), "b\\".into()],
        ..Default::default()
    })
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "--exclude: invalid pattern(s) provided:\na[\nb\\"
    );
    let err = Includer::new(&PatternOptions {
        insensitive_patterns: vec!["[z".into()],
        ..Default::default()
    })
    .unwrap_err();
    assert!(err.to_string().starts_with("--iinclude: "), "{err}");
    let err = Excluder::new(&PatternOptions {
        files: vec![dir.path().join("missing")],
        ..Default::default()
    })
    .unwrap_err();
    assert!(matches!(err, FilterError::ReadPatternFile { .. }));
    assert!(PatternOptions::default().is_empty());
}
