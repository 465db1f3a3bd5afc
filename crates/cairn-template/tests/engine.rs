//! Behaviour of the template engine: Go semantics and the traps of spec §7.4.

use cairn_template::{PrivateTemp, RuntimeFuncs, TemplateError, TemplateSet, Value, render};
use chrono::DateTime;

/// Runtime functions that must not be called.
struct NoRuntime;

impl RuntimeFuncs for NoRuntime {
    fn temp_dir(&self) -> Result<String, String> {
        Err("no temp dir in this test".into())
    }
    fn temp_file(&self, _: &str) -> Result<String, String> {
        Err("no temp file in this test".into())
    }
    fn env_file(&self) -> Result<String, String> {
        Err("no env file in this test".into())
    }
}

fn data() -> Value {
    let now = DateTime::parse_from_rfc3339("2024-03-05T07:08:09.5+00:00").unwrap();
    Value::map([
        ("Profile", Value::map([("Name", Value::str("nidoking"))])),
        ("ConfigDir", Value::str("/cfg")),
        ("TempDir", Value::str("/var/folders/x/T/")),
        ("Now", Value::Time(now)),
        (
            "Env",
            Value::map([("B", Value::str("bee")), ("EMPTY", Value::str(""))]),
        ),
        (
            "L",
            Value::List(vec![Value::str("a"), Value::str("b"), Value::str("c")]),
        ),
        (
            "M",
            Value::map([
                ("z", Value::Int(26)),
                ("a", Value::Int(1)),
                ("m", Value::Int(13)),
            ]),
        ),
        ("N", Value::Int(3)),
        ("F", Value::Float(1.5)),
        ("T", Value::Bool(true)),
    ])
}

fn run(text: &str) -> String {
    match render("t", text, &data(), &NoRuntime) {
        Ok(s) => s,
        Err(e) => panic!("{text:?}: {e}"),
    }
}

fn fails(text: &str) -> TemplateError {
    match render("t", text, &data(), &NoRuntime) {
        Ok(s) => panic!("{text:?} rendered {s:?}, expected an error"),
        Err(e) => e,
    }
}

// ---- Traps -------------------------------------------------------------------------------

#[test]
fn t1_profile_name_is_data_not_cached() {
    let mut set = TemplateSet::new();
    set.add(
        "f",
        "{{ define \"p\" }}{{ .Profile.Name }}{{ end }}s={{ template \"p\" . }}",
    )
    .unwrap();
    let d = |n: &str| Value::map([("Profile", Value::map([("Name", Value::str(n))]))]);
    assert_eq!(set.execute("f", &d("a"), &NoRuntime).unwrap(), "s=a");
    assert_eq!(set.execute("f", &d("b"), &NoRuntime).unwrap(), "s=b");
}

#[test]
fn t2_actions_run_anywhere_and_emit_syntax() {
    assert_eq!(
        run("# host = {{ \"'x'\" }}\nk = {{ \"[1, 2]\" }}"),
        "# host = 'x'\nk = [1, 2]"
    );
}

#[test]
fn t3_whitespace_kept_except_trim_markers() {
    assert_eq!(
        run("{{ define \"a\" }}\nX\n{{ end }}[{{ template \"a\" }}]"),
        "[\nX\n]"
    );
    assert_eq!(run("a  {{- 1 -}}  \n b"), "a1b");
    assert_eq!(run("a  {{- 1 }}  b"), "a1  b");
    assert_eq!(run("a  {{ 1 -}} \n\t b"), "a  1b");
    assert_eq!(
        run("{{- define \"a\" -}}\n  X  \n{{- end -}}\n[{{ template \"a\" }}]"),
        "[X]"
    );
    assert_eq!(run("x\n{{/* c */}}\ny"), "x\n\ny");
    assert_eq!(run("x\n  {{- /* c */ -}}\n  y"), "xy");
}

#[test]
fn t4_missing_values() {
    assert_eq!(run("{{ .Env.UNSET }}"), "<no value>");
    assert_eq!(run("{{ .Nope.Deeper.Still }}"), "<no value>");
    assert_eq!(run("{{ .Env.A | or .Env.B }}"), "bee");
    assert_eq!(run("{{ or .Env.A .Env.B \"fallback\" }}"), "bee");
    assert_eq!(run("{{ or .Env.A .Env.C \"fallback\" }}"), "fallback");
    // As in Go, the piped value is the LAST argument: `x | or "fallback"` is `or "fallback" x`,
    // which always returns "fallback".
    assert_eq!(
        run("{{ .Env.A | or .Env.B | or \"fallback\" }}"),
        "fallback"
    );
    assert_eq!(run("{{ or .Env.A .Env.C }}"), "<no value>");
    assert_eq!(run("{{ if .Env.UNSET }}y{{ else }}n{{ end }}"), "n");
    assert_eq!(run("{{ print .Env.UNSET }}"), "<nil>");
    let e = fails("x\n  {{ .Env.UNSET | lower }}");
    assert_eq!((e.file.as_str(), e.line, e.col), ("t", 2, 19));
    assert!(e.message.contains("invalid value; expected string"), "{e}");
    assert!(
        e.to_string()
            .starts_with("t:2:19: executing \"t\" at <lower>: "),
        "{e}"
    );
    // Without a dot the define sees nil data.
    assert_eq!(
        run("{{ define \"x\" }}[{{ .Profile.Name }}]{{ end }}{{ template \"x\" }}"),
        "[<no value>]"
    );
}

#[test]
fn t5_and_or_return_arguments_and_short_circuit() {
    assert_eq!(
        run("{{ and 1 0 2 }}|{{ and 1 2 }}|{{ or 0 \"\" \"x\" }}|{{ or 0 \"\" }}"),
        "0|2|x|"
    );
    // The out-of-range index is never evaluated.
    assert_eq!(
        run("{{ or 1 (index .L 10) }}{{ and 0 (index .L 10) }}"),
        "10"
    );
    assert!(
        fails("{{ or 0 (index .L 10) }}")
            .message
            .contains("index out of range: 10")
    );
    assert_eq!(
        run("{{ not 0 }} {{ not .L }} {{ .L | and 1 }}"),
        "true false [a b c]"
    );
}

#[test]
fn t6_define_redefinition_rules() {
    let e = render(
        "f",
        "\n{{ define \"x\" }}A{{ end }}\n{{ define \"x\" }}B{{ end }}",
        &Value::Nil,
        &NoRuntime,
    )
    .unwrap_err();
    assert!(
        e.message.contains("multiple definition of template \"x\""),
        "{e}"
    );
    assert_eq!((e.file.as_str(), e.line), ("f", 3));

    let mut set = TemplateSet::new();
    set.add("one", "{{ define \"x\" }}A{{ end }}").unwrap();
    set.add("two", "{{ define \"x\" }}B{{ end }}").unwrap();
    set.add("three", "{{ define \"x\" }}  \n{{ end }}").unwrap();
    set.add("main", "{{ template \"x\" }}").unwrap();
    assert_eq!(set.execute("main", &Value::Nil, &NoRuntime).unwrap(), "B");
    // A block is a define plus a call; a later file overrides its body.
    let mut set = TemplateSet::new();
    set.add("main", "<{{ block \"b\" . }}default {{ .N }}{{ end }}>")
        .unwrap();
    assert_eq!(
        set.execute("main", &data(), &NoRuntime).unwrap(),
        "<default 3>"
    );
    set.add("over", "{{ define \"b\" }}over {{ .N }}{{ end }}")
        .unwrap();
    assert_eq!(
        set.execute("main", &data(), &NoRuntime).unwrap(),
        "<over 3>"
    );
}

#[test]
fn t7_no_html_escaping() {
    assert_eq!(
        run("{{ \"<a href='x'>&amp;</a>\" }}"),
        "<a href='x'>&amp;</a>"
    );
    assert_eq!(
        run("{{ html \"<a b='c'>&\" }}"),
        "&lt;a b=&#39;c&#39;&gt;&amp;"
    );
    assert_eq!(run("{{ js \"it's <x>\" }}"), "it\\'s \\u003Cx\\u003E");
    assert_eq!(run("{{ urlquery \"a b&c\" }}"), "a+b%26c");
    assert_eq!(run("{{ \"a b\" | urlquery }}"), "a+b");
}

#[test]
fn t8_named_integers_and_go_printing() {
    assert_eq!(run("{{ .Now.Month }} {{ .Now.Weekday }}"), "March Tuesday");
    assert_eq!(
        run("{{ printf \"%d %02d\" .Now.Month .Now.Month }}"),
        "3 03"
    );
    // The documented width trick: Tuesday = 2 spaces.
    assert_eq!(run("{{ printf \"a%*sb\" .Now.Weekday \"\" }}"), "a  b");
    assert_eq!(
        run("{{ eq .Now.Weekday 2 }} {{ lt .Now.Month 4 }}"),
        "true true"
    );
    assert_eq!(run("{{ print .Now.Month .Now.Day }}"), "March 5");
    assert_eq!(run("{{ list \"a\" 1 nil }}"), "[a 1 <nil>]");
    assert_eq!(run("{{ .M }}"), "map[a:1 m:13 z:26]");
    assert_eq!(run("{{ .Now.UTC }}"), "2024-03-05 07:08:09.5 +0000 UTC");
    assert_eq!(
        run("{{ .F }} {{ 1e6 }} {{ 1.0 }} {{ 0x10 }} {{ 'a' }}"),
        "1.5 1e+06 1 16 97"
    );
}

#[test]
fn t9_t10_temp_dir_is_private_and_stable() {
    let base = tempfile::tempdir().unwrap();
    let rt = PrivateTemp::in_dir(base.path());
    let text = "{{ .TempDir }}|{{ tempDir }}|{{ tempFile \"a b.txt\" }}|{{ env }}";
    let a = render("t", text, &data(), &rt).unwrap();
    let b = render("t", text, &data(), &rt).unwrap();
    assert_eq!(a, b, "rendering twice must give the same paths");
    let parts: Vec<&str> = a.split('|').collect();
    assert_eq!(parts[0], "/var/folders/x/T/");
    assert!(parts[1].starts_with(&base.path().to_string_lossy().to_string()));
    assert!(parts[1].ends_with("/t"));
    assert_eq!(parts[2], format!("{}/a_b.txt", parts[1]));
    assert!(std::path::Path::new(parts[3]).is_file());
    assert_eq!(rt.env_files().len(), 1);
}

// ---- Syntax ------------------------------------------------------------------------------

#[test]
fn fields_variables_and_scoping() {
    assert_eq!(
        run("{{ .Profile.Name }}/{{ $.ConfigDir }}"),
        "nidoking//cfg"
    );
    assert_eq!(run("{{ $p := .Profile }}{{ $p.Name }}"), "nidoking");
    assert_eq!(run("{{ $x := 1 }}{{ $x = 2 }}{{ $x }}"), "2");
    assert_eq!(
        run("{{ $x := \"o\" }}{{ if true }}{{ $x = \"i\" }}{{ $y := 1 }}{{ $y }}{{ end }}{{ $x }}"),
        "1i"
    );
    assert_eq!(
        run("{{ with .Profile }}{{ .Name }}{{ $.N }}{{ end }}"),
        "nidoking3"
    );
    assert!(
        render(
            "t",
            "{{ if true }}{{ $y := 1 }}{{ end }}{{ $y }}",
            &Value::Nil,
            &NoRuntime
        )
        .is_err()
    );
}

#[test]
fn if_with_else_chains() {
    let t = "{{ if eq .N 1 }}one{{ else if eq .N 3 }}three{{ else }}other{{ end }}";
    assert_eq!(run(t), "three");
    assert_eq!(run("{{ with .Env.UNSET }}a{{ else }}b{{ end }}"), "b");
    assert_eq!(
        run("{{ with $v := .Env.B }}{{ . }}{{ $v }}{{ end }}"),
        "beebee"
    );
    assert_eq!(
        run("{{ with .Env.EMPTY }}a{{ else with .Env.B }}{{ . }}{{ end }}"),
        "bee"
    );
}

#[test]
fn range_forms() {
    assert_eq!(run("{{ range .L }}<{{ . }}>{{ end }}"), "<a><b><c>");
    assert_eq!(
        run("{{ range $i, $v := .L }}{{ $i }}={{ $v }} {{ end }}"),
        "0=a 1=b 2=c "
    );
    assert_eq!(
        run("{{ range $k, $v := .M }}{{ $k }}:{{ $v }},{{ end }}"),
        "a:1,m:13,z:26,"
    );
    assert_eq!(
        run("{{ range .Env.NONE }}x{{ else }}empty{{ end }}"),
        "empty"
    );
    assert_eq!(run("{{ range (list) }}x{{ else }}empty{{ end }}"), "empty");
    assert_eq!(
        run(
            "{{ range .L }}{{ if eq . \"b\" }}{{ continue }}{{ end }}{{ if eq . \"c\" }}{{ break }}{{ end }}{{ . }}{{ end }}"
        ),
        "a"
    );
    assert_eq!(run("{{ range 3 }}{{ . }}{{ end }}"), "012");
    assert_eq!(
        run("{{ range $v := \"x,y\" | split \",\" }} {{ $v }} {{ end }}"),
        " x  y "
    );
    assert!(
        fails("{{ range .N | print }}{{ end }}")
            .message
            .contains("range can't iterate over")
    );
}

#[test]
fn pipelines_parens_and_methods() {
    assert_eq!(
        run("{{ (.Now.AddDate 0 -6 0).Format \"2006-01-02\" }}"),
        "2023-09-05"
    );
    assert_eq!(
        run("{{ .Now.Format \"2006-01-02T15:04:05Z07:00\" }}"),
        "2024-03-05T07:08:09Z"
    );
    assert_eq!(
        run(
            "{{ .Now.UTC.Year }} {{ .Now.YearDay }} {{ .Now.Hour }}:{{ .Now.Minute }}:{{ .Now.Second }}"
        ),
        "2024 65 7:8:9"
    );
    assert_eq!(run("{{ .Now.Unix }}"), "1709622489");
    assert_eq!(run("{{ \"2006\" | .Now.Format }}"), "2024");
    assert_eq!(run("{{ \"a,b\" | split \",\" | join \"-\" }}"), "a-b");
    assert_eq!(run("{{ printf \"%s-%s\" \"x\" (\"y\" | upper) }}"), "x-Y");
    assert_eq!(
        run("{{ (list 1 2) }} {{ (map \"a\" \"b\").a }} {{ (.Profile).Name }}"),
        "[1 2] b nidoking"
    );
}

#[test]
fn literals() {
    assert_eq!(
        run("{{ \"a\\tb\\u00e9\\x41\" }}|{{ `raw\\n` }}"),
        "a\tbéA|raw\\n"
    );
    assert_eq!(
        run("{{ true }} {{ false }} {{ -3 }} {{ 0o17 }} {{ 1_000 }}"),
        "true false -3 15 1000"
    );
    assert_eq!(run("{{ print nil }}"), "<nil>");
}

#[test]
fn builtins() {
    assert_eq!(
        run("{{ len .L }} {{ len .M }} {{ len \"héllo\" }}"),
        "3 3 6"
    );
    assert_eq!(
        run("{{ index .L 1 }} {{ index .M \"z\" }} {{ index .M \"q\" }}"),
        "b 26 <no value>"
    );
    assert_eq!(
        run("{{ slice .L 1 }} {{ slice .L 1 2 }} {{ slice \"hello\" 1 3 }}"),
        "[b c] [b] el"
    );
    assert_eq!(
        run("{{ eq .N 1 2 3 }} {{ eq \"a\" \"b\" }} {{ ne .N 3 }}"),
        "true false false"
    );
    assert_eq!(
        run("{{ lt 1 2 }} {{ le 2 2 }} {{ gt \"b\" \"a\" }} {{ ge 1.5 2.5 }}"),
        "true true true false"
    );
    assert_eq!(run("{{ eq .Env.UNSET \"x\" }}"), "false");
    assert!(
        fails("{{ lt 1 1.5 }}")
            .message
            .contains("incompatible types for comparison")
    );
    assert!(
        fails("{{ lt true false }}")
            .message
            .contains("invalid type for comparison")
    );
    assert_eq!(
        run("{{ print \"a\" 1 2 \"b\" }}|{{ println 1 \"a\" }}"),
        "a1 2b|1 a\n"
    );
    assert_eq!(
        run("{{ printf \"%5.1f|%-4d|%q|%x|%v\" 3.14159 7 \"q\" \"hi\" .L }}"),
        "  3.1|7   |\"q\"|6869|[a b c]"
    );
    assert_eq!(run("{{ printf \"%s\" 5 }}"), "%!s(int=5)");
    assert!(
        fails("{{ call .N }}")
            .message
            .contains("error calling call")
    );
    assert!(fails("{{ len 3 }}").message.contains("len of type int"));
}

#[test]
fn resticprofile_functions() {
    // The table of resticprofile's own function tests.
    let cases = [
        (r#"{{ "some string" | contains "some" }}"#, "true"),
        (r#"{{ "some string" | contains "else" }}"#, "false"),
        (r#"{{ "1 2 3 5" | split " " | contains "3" }}"#, "true"),
        (r#"{{ "1 2 3 5" | split " " | contains 03.0 }}"#, "true"),
        (r#"{{ "1 2 3 5" | split " " | contains "23" }}"#, "false"),
        (r#"{{ "some string" | matches "^.+str.+$" }}"#, "true"),
        (r#"{{ "some string" | matches "^.+else.+$" }}"#, "false"),
        (
            r#"{{ "some old string" | replace "old" "new" }}"#,
            "some new string",
        ),
        (
            r#"{{ "some old string" | replaceR "(old)" "$1 and new" }}"#,
            "some old and new string",
        ),
        (
            r#"{{ "some old string" | regex "(old)" "$1 and new" }}"#,
            "some old and new string",
        ),
        (r#"{{ "ABC" | lower }}"#, "abc"),
        (r#"{{ "abc" | upper }}"#, "ABC"),
        (r#"{{ "  A " | trim }}"#, "A"),
        (r#"{{ "--A-" | trimPrefix "--" }}"#, "A-"),
        (r#"{{ "--A-" | trimSuffix "-" }}"#, "--A"),
        (r#"{{ "A,B,C" | split "," | join ";" }}"#, "A;B;C"),
        (
            r#"{{ "A , B,C" | splitR "\\s*,\\s*" | join ";" }}"#,
            "A;B;C",
        ),
        (r#"{{ list "A" "B" "C" | join ";" }}"#, "A;B;C"),
        (
            r#"{{ "1 2 3 5" | split " " | list | join "-" }}"#,
            "[1,2,3,5]",
        ),
        (
            r#"{{ range $v := list "A" "B" "C" }} {{ $v }} {{ end }}"#,
            " A  B  C ",
        ),
        (
            r#"{{ with $v := map "k1" "v1" "k2" "v2" }} {{ .k1 }}-{{ .k2 }} {{ end }}"#,
            " v1-v2 ",
        ),
        (
            r#"{{ with $v := map "k1" nil nil "v2" }} {{ .k1 }}-{{ .k2 }} {{ end }}"#,
            " <no value>-<no value> ",
        ),
        (
            r#"{{ with $v := list "A" "B" nil "D" | map }} {{ ._0 }}-{{ ._1 }}-{{ ._2 }}-{{ ._3 }} {{ end }}"#,
            " A-B-<no value>-D ",
        ),
        (
            r#"{{ with $v := list "A" "B" nil "D" | map "key" }} {{ .key | join "-" }} {{ end }}"#,
            " A-B-<nil>-D ",
        ),
        (r#"{{ "plain" | hex }}"#, "706c61696e"),
        (r#"{{ "plain" | base64 }}"#, "cGxhaW4="),
        (r#"{{ "" | randInt -1000 1000 }}"#, "419"),
        (r#"{{ "ABC" | randInt -1000 1000 }}"#, "-272"),
        (
            r#"{{ 5 | addInt 1 }} {{ 5 | subInt 1 }} {{ 5 | modInt 4 }} {{ "5" | int }}"#,
            "6 4 1 5",
        ),
        (
            r#"{{ 5.5 | addFloat 1.0 }} {{ 5.5 | subFloat 1.0 }}"#,
            "6.5 4.5",
        ),
    ];
    for (t, want) in cases {
        assert_eq!(run(t), want, "{t}");
    }
    assert!(
        fails(r#"{{ "x" | matches "(" }}"#)
            .message
            .contains("error calling matches")
    );
    assert!(
        fails(r#"{{ "x" | randInt 5 5 }}"#)
            .message
            .contains("must be less than")
    );
    assert!(
        fails(r#"{{ 3 | lower }}"#)
            .message
            .contains("expected string; got int")
    );
}

#[test]
fn errors_are_located() {
    let e = fails("a\nb {{ if }}");
    assert_eq!((e.line, e.col), (2, 9), "{e}");
    let e = fails("{{ nosuch 1 }}");
    assert!(e.message.contains("function \"nosuch\" not defined"), "{e}");
    let e = fails("\n\n{{ template \"missing\" . }}");
    assert_eq!(e.line, 3);
    assert!(
        e.message.contains("template \"missing\" not defined"),
        "{e}"
    );
    let e = fails("{{ .N.X }}");
    assert!(
        e.message.contains("can't evaluate field X in type int"),
        "{e}"
    );
    let e = fails("{{ .Now.Bogus }}");
    assert!(e.message.contains("Bogus"), "{e}");
    let e = fails("{{ \"unterminated }}");
    assert_eq!(e.file, "t");
    assert!(
        TemplateSet::new()
            .execute("none", &Value::Nil, &NoRuntime)
            .is_err()
    );
    assert!(
        fails("{{ define \"a\" }}{{ template \"a\" }}{{ end }}{{ template \"a\" }}")
            .message
            .contains("maximum template depth")
    );
}

proptest::proptest! {
    #[test]
    fn text_without_actions_renders_to_itself(s in "(?s)[^{]*(\\{[^{]+)*\\{?") {
        proptest::prop_assume!(!s.contains("{{"));
        let out = render("p", &s, &Value::Nil, &NoRuntime).unwrap();
        proptest::prop_assert_eq!(out, s);
    }
}
