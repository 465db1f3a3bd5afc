//! Location parsing and command line tests, mostly restic's own test tables
//! (config_test.go, sshcmd_test.go, shell_split_test.go).

use super::*;
use proptest::prelude::*;

fn loc(user: Option<&str>, host: &str, port: Option<&str>, path: &str) -> SftpLocation {
    SftpLocation {
        user: user.map(str::to_string),
        host: host.to_string(),
        port: port.map(str::to_string),
        path: path.to_string(),
    }
}

/// The location after the `sftp:` prefix, as `open` receives it.
fn p(full: &str) -> Result<SftpLocation, String> {
    parse(full.strip_prefix("sftp:").unwrap())
}

#[test]
fn restic_config_examples() {
    let cases = [
        (
            "sftp://user@host/dir/subdir",
            loc(Some("user"), "host", None, "dir/subdir"),
        ),
        (
            "sftp://host/dir/subdir",
            loc(None, "host", None, "dir/subdir"),
        ),
        (
            "sftp://host//dir/subdir",
            loc(None, "host", None, "/dir/subdir"),
        ),
        (
            "sftp://host:10022//dir/subdir",
            loc(None, "host", Some("10022"), "/dir/subdir"),
        ),
        (
            "sftp://user@host:10022//dir/subdir",
            loc(Some("user"), "host", Some("10022"), "/dir/subdir"),
        ),
        (
            "sftp://user@host/dir/subdir/../other",
            loc(Some("user"), "host", None, "dir/other"),
        ),
        (
            "sftp://user@host/dir///subdir",
            loc(Some("user"), "host", None, "dir/subdir"),
        ),
        (
            "sftp://user@[::1]/dir",
            loc(Some("user"), "::1", None, "dir"),
        ),
        (
            "sftp://user@[::1]:22/dir",
            loc(Some("user"), "::1", Some("22"), "dir"),
        ),
        (
            "sftp:user@host:/dir/subdir",
            loc(Some("user"), "host", None, "/dir/subdir"),
        ),
        (
            "sftp:user@domain@host:/dir/subdir",
            loc(Some("user@domain"), "host", None, "/dir/subdir"),
        ),
        (
            "sftp:host:../dir/subdir",
            loc(None, "host", None, "../dir/subdir"),
        ),
        (
            "sftp:user@host:dir/subdir:suffix",
            loc(Some("user"), "host", None, "dir/subdir:suffix"),
        ),
        (
            "sftp:user@host:dir/subdir/../other",
            loc(Some("user"), "host", None, "dir/other"),
        ),
        (
            "sftp:user@host:dir///subdir",
            loc(Some("user"), "host", None, "dir/subdir"),
        ),
    ];
    for (s, want) in cases {
        assert_eq!(p(s).unwrap(), want, "{s}");
    }
}

#[test]
fn more_forms() {
    // Relative to the login directory, the root, and an empty path.
    assert_eq!(p("sftp:host:repo").unwrap().path, "repo");
    assert_eq!(p("sftp:host:").unwrap().path, ".");
    assert_eq!(p("sftp:host:/").unwrap().path, "/");
    assert_eq!(p("sftp://host/").unwrap().path, ".");
    assert_eq!(p("sftp://host//").unwrap().path, "/");
    assert_eq!(
        p("sftp://host/relative").unwrap(),
        loc(None, "host", None, "relative")
    );
    // Escapes, a password in the URL (ignored), query and fragment cut off, zones.
    assert_eq!(
        p("sftp://us%40er:secret@host//a%20b?x=1#frag").unwrap(),
        loc(Some("us@er"), "host", None, "/a b")
    );
    assert_eq!(
        p("sftp://[fe80::1%25eth0]:2222//srv").unwrap(),
        loc(None, "fe80::1%eth0", Some("2222"), "/srv")
    );
    // The empty user counts as none; a user with two `@` keeps the rest in the host.
    assert_eq!(p("sftp:@host:/x").unwrap().user, None);
    assert_eq!(
        p("sftp:a@b@c@d:/x").unwrap(),
        loc(Some("a@b"), "c@d", None, "/x")
    );
    // Extension: a bracketed IPv6 host in the scp-like form.
    assert_eq!(
        p("sftp:root@[::1]:/srv/repo").unwrap(),
        loc(Some("root"), "::1", None, "/srv/repo")
    );
    assert_eq!(
        p("sftp:[::1]:repo").unwrap(),
        loc(None, "::1", None, "repo")
    );
    // A bracket inside the path is not a host.
    assert_eq!(
        p("sftp:host:/a[b]:c").unwrap(),
        loc(None, "host", None, "/a[b]:c")
    );
}

#[test]
fn invalid_locations() {
    for s in [
        "sftp://host:dir",
        "sftp://host",
        "sftp:hostonly",
        "sftp:host:~/repo",
        "sftp://host/~/repo",
        "sftp://[::1/dir",
        "sftp://[::1]x/dir",
        "sftp://host//bad%zzescape",
    ] {
        assert!(p(s).is_err(), "{s} should be rejected");
    }
    let e = p("sftp:host:~/repo").unwrap_err();
    assert!(e.contains("tilde"), "{e}");
}

#[test]
fn go_path_clean() {
    for (i, o) in [
        ("", "."),
        (".", "."),
        ("/", "/"),
        ("//", "/"),
        ("a/b/", "a/b"),
        ("a/./b", "a/b"),
        ("a/../b", "b"),
        ("a/..", "."),
        ("../..", "../.."),
        ("../a/../..", "../.."),
        ("/../a", "/a"),
        ("/a/b/../../..", "/"),
        ("abc//def", "abc/def"),
    ] {
        assert_eq!(clean(i), o, "clean({i:?})");
    }
    assert_eq!(join(".", "data"), "data");
    assert_eq!(join("/", "data"), "/data");
    assert_eq!(join("/srv/repo", "data/ab"), "/srv/repo/data/ab");
    assert_eq!(join("", "x"), "x");
}

#[test]
fn restic_shell_splitter() {
    let cases: [(&str, &[&str]); 9] = [
        ("foo", &["foo"]),
        ("'foo'", &["foo"]),
        ("foo bar baz", &["foo", "bar", "baz"]),
        ("foo 'bar' baz", &["foo", "bar", "baz"]),
        ("'bar box' baz", &["bar box", "baz"]),
        ("\"bar 'box'\" baz", &["bar 'box'", "baz"]),
        ("'bar \"box\"' baz", &["bar \"box\"", "baz"]),
        ("\\\"bar box baz", &["\"bar", "box", "baz"]),
        ("\"bar/foo/x\" \"box baz\"", &["bar/foo/x", "box baz"]),
    ];
    for (s, want) in cases {
        assert_eq!(split_shell(s).unwrap(), want, "{s}");
    }
    for (s, err) in [
        ("foo'", "single-quoted string not terminated"),
        ("foo\"", "double-quoted string not terminated"),
        ("foo 'bar", "single-quoted string not terminated"),
        ("foo \"bar", "double-quoted string not terminated"),
        ("   ", "command string is empty"),
    ] {
        assert_eq!(split_shell(s).unwrap_err(), err, "{s}");
    }
}

fn opts(pairs: &[&str]) -> BackendOptions {
    BackendOptions {
        values: BackendOptions::parse_pairs(pairs.iter().copied()).unwrap(),
        ..Default::default()
    }
}

#[test]
fn restic_ssh_commands() {
    let l = |u: Option<&str>, h: &str, port: Option<&str>| loc(u, h, port, "dir");
    let cases: Vec<(SftpLocation, &[&str], &[&str])> = vec![
        (
            l(Some("user"), "host", None),
            &[],
            &["ssh", "host", "-l", "user", "-s", "sftp"],
        ),
        (l(None, "host", None), &[], &["ssh", "host", "-s", "sftp"]),
        (
            l(None, "host", Some("10022")),
            &[],
            &["ssh", "host", "-p", "10022", "-s", "sftp"],
        ),
        (
            l(Some("user"), "host", Some("10022")),
            &[],
            &["ssh", "host", "-p", "10022", "-l", "user", "-s", "sftp"],
        ),
        (
            l(Some("user"), "host", Some("10022")),
            &["sftp.args=-i /path/to/id_rsa"],
            &[
                "ssh",
                "host",
                "-p",
                "10022",
                "-l",
                "user",
                "-i",
                "/path/to/id_rsa",
                "-s",
                "sftp",
            ],
        ),
        (
            l(Some("user"), "::1", None),
            &[],
            &["ssh", "::1", "-l", "user", "-s", "sftp"],
        ),
        (
            l(Some("user"), "::1%lo0", Some("22")),
            &[],
            &["ssh", "::1%lo0", "-p", "22", "-l", "user", "-s", "sftp"],
        ),
        (
            l(Some("user"), "host", None),
            &["sftp.command=plink -batch 'my host' -s sftp"],
            &["plink", "-batch", "my host", "-s", "sftp"],
        ),
        (
            l(None, "host", None),
            &["sftp.args=-o 'ProxyJump=a b' -F cfg"],
            &[
                "ssh",
                "host",
                "-o",
                "ProxyJump=a b",
                "-F",
                "cfg",
                "-s",
                "sftp",
            ],
        ),
    ];
    for (loc, o, want) in cases {
        assert_eq!(command(&loc, &opts(o)).unwrap(), want, "{loc:?} {o:?}");
    }
    let both = opts(&["sftp.command=ssh something", "sftp.args=-i /path/to/id_rsa"]);
    assert_eq!(
        command(&l(None, "h", None), &both).unwrap_err(),
        "cannot specify both sftp.command and sftp.args options"
    );
    assert!(command(&l(None, "h", None), &opts(&["sftp.command='ssh"])).is_err());
}

#[test]
fn connection_option() {
    assert_eq!(connections(&opts(&[])).unwrap(), 5);
    assert_eq!(connections(&opts(&["sftp.connections=8"])).unwrap(), 8);
    assert!(connections(&opts(&["sftp.connections=0"])).is_err());
    assert!(connections(&opts(&["sftp.connections=many"])).is_err());
}

proptest! {
    #[test]
    fn parsing_never_panics(s in "\\PC{0,40}") {
        let _ = parse(&s);
        let _ = split_shell(&s);
        let _ = clean(&s);
    }

    #[test]
    fn scp_form_round_trips(
        user in proptest::option::of("[a-z][a-z0-9_.-]{0,8}"),
        host in "[a-z][a-z0-9.-]{0,12}",
        path in "/?[a-z0-9_]{1,6}(/[a-z0-9_]{1,6}){0,3}",
    ) {
        let s = match &user {
            Some(u) => format!("{u}@{host}:{path}"),
            None => format!("{host}:{path}"),
        };
        let l = parse(&s).unwrap();
        prop_assert_eq!(l.user, user);
        prop_assert_eq!(l.host, host);
        prop_assert_eq!(l.path, path);
    }

    #[test]
    fn clean_is_idempotent(s in "[a./]{0,20}") {
        let c = clean(&s);
        prop_assert_eq!(clean(&c), c.clone());
        prop_assert!(!c.is_empty());
    }
}
