//! Shell hooks with real shells (sh, bash, zsh), the seed user's zsh hook templates with
//! stand-in `op` and `curl`, and `stream-error` callbacks.

mod runtime_support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use cairn_profile::hooks::{HookContext, Shell, StreamErrorWatcher, find_shell, run_hook};
use cairn_profile::types::StreamErrorSpec;
use runtime_support::{require, wait_for, write_script};

fn base_env(extra_path: Option<&Path>) -> BTreeMap<String, String> {
    let mut path = String::new();
    if let Some(p) = extra_path {
        path.push_str(p.to_str().unwrap());
        path.push(':');
    }
    path.push_str("/usr/local/bin:/usr/bin:/bin");
    [("PATH".to_string(), path)].into()
}

fn shells() -> Vec<Shell> {
    let mut v = vec![Shell {
        program: PathBuf::from("/bin/sh"),
    }];
    for name in ["bash", "zsh"] {
        if let Some(p) = require(name) {
            v.push(Shell { program: p });
        }
    }
    v
}

#[test]
fn env_cwd_and_exit_codes_in_every_shell() {
    for shell in shells() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let mut env = base_env(None);
        env.insert("FOO".into(), "bar  baz $NOT_EXPANDED".into());
        env.insert("OUT".into(), out.to_str().unwrap().into());
        let ctx = HookContext {
            env: &env,
            cwd: dir.path(),
        };
        let sh = shell.program.display().to_string();

        run_hook(
            &shell,
            "printf '%s|' \"$FOO\" > \"$OUT\"; pwd >> \"$OUT\"",
            &ctx,
        )
        .unwrap();
        let text = std::fs::read_to_string(&out).unwrap();
        let cwd = dir.path().canonicalize().unwrap();
        assert_eq!(
            text,
            format!("bar  baz $NOT_EXPANDED|{}\n", cwd.display()),
            "{sh}"
        );

        // The environment is exactly the one given (plus what the shell adds itself).
        run_hook(&shell, "env > \"$OUT\"", &ctx).unwrap();
        let text = std::fs::read_to_string(&out).unwrap();
        assert!(text.contains("FOO=bar  baz"), "{sh}: {text}");
        assert!(
            !text.contains("CARGO_PKG_NAME="),
            "{sh}: parent env leaked: {text}"
        );

        // stdin is the null device: cat ends at once with nothing.
        run_hook(&shell, "cat > \"$OUT\"", &ctx).unwrap();
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "", "{sh}");

        let e = run_hook(&shell, "echo failing >&2; exit 3", &ctx).unwrap_err();
        assert_eq!(e.message, "exit status 3", "{sh}");
        assert_eq!(e.exit_code, 3);
        assert_eq!(e.command_line, "\"echo failing >&2; exit 3\"");
        assert_eq!(e.to_string(), "exit status 3");

        let e = run_hook(&shell, "kill -TERM $$", &ctx).unwrap_err();
        assert_eq!(e.exit_code, -1, "{sh}: {e:?}");
        assert_eq!(e.message, "signal: terminated", "{sh}");

        let e = run_hook(&shell, "no-such-command-xyz", &ctx).unwrap_err();
        assert_eq!(e.exit_code, 127, "{sh}");
    }
}

#[test]
fn one_word_command_in_the_working_directory() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    write_script(
        &dir.path().join("local-hook.sh"),
        "#!/bin/sh\necho ran > \"$OUT\"\n",
    );
    let mut env = base_env(None);
    env.insert("OUT".into(), out.to_str().unwrap().into());
    let ctx = HookContext {
        env: &env,
        cwd: dir.path(),
    };
    let shell = Shell {
        program: "/bin/sh".into(),
    };
    run_hook(&shell, "local-hook.sh", &ctx).unwrap();
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "ran\n");
}

#[test]
fn configured_shell_is_found_on_path() {
    let Some(zsh) = require("zsh") else { return };
    let s = find_shell(&["zsh".into()]).unwrap();
    assert_eq!(s.program.file_name(), zsh.file_name());
    let s = find_shell(&["nope-shell".into(), "zsh".into()]).unwrap();
    assert!(s.program.ends_with("zsh"));
}

/// zsh-only syntax used by the seed config: `whence -p`, `${EXE:A}`, process substitution.
#[test]
fn zsh_only_syntax() {
    let Some(zsh) = require("zsh") else { return };
    let shell = Shell { program: zsh };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let out2 = dir.path().join("out2");
    let mut env = base_env(None);
    env.insert("OUT".into(), out.to_str().unwrap().into());
    env.insert("OUT2".into(), out2.to_str().unwrap().into());
    let ctx = HookContext {
        env: &env,
        cwd: dir.path(),
    };
    let script = r#"
EXE="$(whence -p -- sh)"
print -r -- "${EXE:A}" > "$OUT"
{ print -u2 -- 'xattr: /x: No such xattr: com.apple.quarantine'; print -u2 -- 'keep me' } 2> >(grep -v -- '^xattr:.*No such xattr:' > "$OUT2")
"#;
    run_hook(&shell, script, &ctx).unwrap();
    let resolved = std::fs::read_to_string(&out).unwrap();
    let resolved = Path::new(resolved.trim_end());
    assert!(resolved.is_absolute() && resolved.exists(), "{resolved:?}");
    assert_eq!(resolved, std::fs::canonicalize("/bin/sh").unwrap());
    assert!(wait_for(5, || std::fs::read_to_string(&out2)
        .is_ok_and(|t| t.contains("keep me"))));
    let filtered = std::fs::read_to_string(&out2).unwrap();
    assert!(!filtered.contains("No such xattr"), "{filtered}");
}

const SEED_UNQUARANTINE: &str = r#"
for CMD in op rclone restic resticprofile; do
  EXE="$(whence -p -- "${CMD}")"
  xattr -d com.apple.quarantine -- "${EXE:A}" 2> >(grep -v -- '^xattr:.*No such xattr:' >&2) || true
done
"#;

const SEED_PING_START: &str = r#"
env -u TMPDIR -- op inject -i '{{CONFIG}}/curlrc/{{PROFILE}}.curlrc' \
  | sed -e '\|^url[[:blank:]:=]|s|$|/start|' \
  | curl -qK -
"#;

const SEED_PING_SUCCESS: &str = r#"
env -u TMPDIR -- op inject -i '{{CONFIG}}/curlrc/{{PROFILE}}.curlrc' \
  | {
      DATA="$(env -u TMPDIR -- mktemp)"
      env -- LC_ALL=POSIX tail -c 100000 -- '{{CONFIG}}/log/{{PROFILE}}/backup.log' >> "${DATA}"
      curl -qK - -H 'content-type: text/plain' --data-binary "@${DATA}"
      rm -f -- "${DATA}"
    }
"#;

/// Stand-in `op` (answers `op inject -i FILE`) and `curl` (records its config and body).
fn fake_tools(bin: &Path, record: &Path) {
    write_script(
        &bin.join("op"),
        "#!/bin/sh\nif [ \"$1\" = inject ] && [ \"$2\" = -i ]; then\n  sed -e 's/{{ op:[^}]* }}/uuid-1234/' \"$3\"\n  exit 0\nfi\necho \"unexpected op call: $*\" >&2\nexit 2\n",
    );
    write_script(
        &bin.join("curl"),
        &format!(
            "#!/bin/sh\nREC='{}'\necho \"args: $*\" >> \"$REC\"\ncat >> \"$REC\"\nfor a in \"$@\"; do case \"$a\" in @*) echo '--- body' >> \"$REC\"; cat \"${{a#@}}\" >> \"$REC\";; esac; done\n",
            record.display()
        ),
    );
}

#[test]
fn seed_zsh_hooks_with_stand_in_op_and_curl() {
    let Some(zsh) = require("zsh") else { return };
    let shell = Shell { program: zsh };
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config");
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(config.join("curlrc")).unwrap();
    std::fs::create_dir_all(config.join("log/nidoking")).unwrap();
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::write(
        config.join("curlrc/nidoking.curlrc"),
        "fail\nmax-time 60\noutput /dev/null\nretry 3\nsilent\nurl https://hc-ping.com/{{ op://<vault-name>/<item-name>/[section-name/]<field-name> }}\n",
    )
    .unwrap();
    std::fs::write(
        config.join("log/nidoking/backup.log"),
        "snapshot 0123abcd saved\n",
    )
    .unwrap();
    let record = dir.path().join("curl.rec");
    fake_tools(&bin, &record);
    let mut env = base_env(Some(&bin));
    env.insert(
        "TMPDIR".into(),
        dir.path().join("no-such-tmp").to_str().unwrap().into(),
    );
    let ctx = HookContext {
        env: &env,
        cwd: dir.path(),
    };
    let fill = |t: &str| {
        t.replace("{{CONFIG}}", config.to_str().unwrap())
            .replace("{{PROFILE}}", "nidoking")
    };

    // None of the programs exist here: the loop must still succeed (`|| true`).
    run_hook(&shell, SEED_UNQUARANTINE, &ctx).unwrap();

    run_hook(&shell, &fill(SEED_PING_START), &ctx).unwrap();
    let rec = std::fs::read_to_string(&record).unwrap();
    assert!(rec.contains("args: -qK -\n"), "{rec}");
    assert!(
        rec.contains("url https://hc-ping.com/uuid-1234/start\n"),
        "{rec}"
    );
    assert!(rec.contains("retry 3\n"), "{rec}");

    std::fs::remove_file(&record).unwrap();
    run_hook(&shell, &fill(SEED_PING_SUCCESS), &ctx).unwrap();
    let rec = std::fs::read_to_string(&record).unwrap();
    assert!(rec.contains("url https://hc-ping.com/uuid-1234\n"), "{rec}");
    assert!(rec.contains("--- body\nsnapshot 0123abcd saved\n"), "{rec}");
}

#[test]
fn stream_error_callbacks() {
    let dir = tempfile::tempdir().unwrap();
    let outdir = dir.path().join("out");
    std::fs::create_dir(&outdir).unwrap();
    let mut env = base_env(None);
    env.insert("OUTDIR".into(), outdir.to_str().unwrap().into());
    env.insert("PROFILE_NAME".into(), "vps".into());
    let specs = vec![
        StreamErrorSpec {
            pattern: "no space left on device".into(),
            // Callbacks run concurrently: each writes its own file.
            run: "{ printf '%s:' \"$PROFILE_NAME\"; cat; } > \"$(mktemp \"$OUTDIR/cb.XXXXXX\")\""
                .into(),
            min_matches: 2,
            max_runs: 2,
        },
        StreamErrorSpec {
            pattern: "^Fatal: unable to create lock".into(),
            run: "sed 's/^/lock:/' > \"$(mktemp \"$OUTDIR/cb.XXXXXX\")\"".into(),
            min_matches: 0,
            max_runs: 0,
        },
    ];
    let shell = Shell {
        program: "/bin/sh".into(),
    };
    let w = StreamErrorWatcher::new(&specs, shell.clone(), env, dir.path().to_path_buf()).unwrap();
    for i in 1..=6 {
        w.feed(&format!("write x: no space left on device {i}"));
    }
    w.feed("unrelated line");
    w.feed("Fatal: unable to create lock in backend: a");
    w.feed("Fatal: unable to create lock in backend: b");
    w.wait();
    let mut lines: Vec<String> = std::fs::read_dir(&outdir)
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    lines.sort();
    assert_eq!(
        lines,
        vec![
            "lock:Fatal: unable to create lock in backend: a\n",
            "lock:Fatal: unable to create lock in backend: b\n",
            // After min-matches 2: run at match 2, then 2 more matches needed (match 4); at
            // most 2 runs.
            "vps:write x: no space left on device 2\n",
            "vps:write x: no space left on device 4\n",
        ]
    );

    let bad = vec![StreamErrorSpec {
        pattern: "(unclosed".into(),
        run: "true".into(),
        min_matches: 0,
        max_runs: 0,
    }];
    let e = StreamErrorWatcher::new(&bad, shell, BTreeMap::new(), dir.path().to_path_buf())
        .err()
        .unwrap();
    assert!(e.message.contains("(unclosed"), "{e}");
}
