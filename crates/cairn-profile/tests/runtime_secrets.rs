//! Secret references with stand-in `op` and `secret-tool` programs, password commands and
//! files, and redaction of resolved values.

mod runtime_support;

use std::collections::BTreeMap;
use std::path::Path;

use cairn_profile::secrets::{SecretError, read_password_file, redact, resolve, run_command};
use runtime_support::write_script;

/// A directory with a stand-in `op` answering `op read` (the reference is the last argument)
/// and `op inject -i FILE`, and a stand-in `secret-tool`.
fn tools() -> (tempfile::TempDir, BTreeMap<String, String>) {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    write_script(
        &bin.join("op"),
        r#"#!/bin/sh
case "$1" in
read)
  [ "$2" = --no-newline ] || { echo "op: expected --no-newline" >&2; exit 2; }
  for last; do :; done
  case "$last" in
  op://vault/item/field) printf '%s' 'op-secret-value-1' ;;
  op://vault/item/empty) printf '' ;;
  op://vault/item/leaky) printf 'LEAKED-OUTPUT'; exit 1 ;;
  *) echo "[ERROR] could not read secret '$last'" >&2; exit 1 ;;
  esac ;;
inject)
  [ "$2" = -i ] || exit 2
  sed -e 's|{{ op://vault/item/field }}|op-secret-value-1|' "$3" ;;
*) exit 2 ;;
esac
"#,
    );
    write_script(
        &bin.join("secret-tool"),
        "#!/bin/sh\n[ \"$*\" = 'lookup service restic account repo' ] && printf 'keyring-pass-9\\n' && exit 0\nexit 1\n",
    );
    let env: BTreeMap<String, String> = [
        (
            "PATH".to_string(),
            format!("{}:/usr/bin:/bin", bin.display()),
        ),
        (
            "OP_SERVICE_ACCOUNT_TOKEN".to_string(),
            "tok-abc-123".to_string(),
        ),
    ]
    .into();
    (dir, env)
}

#[test]
fn op_references() {
    let (_dir, env) = tools();
    let s = resolve("op://vault/item/field", &env).unwrap().unwrap();
    assert_eq!(s.expose(), "op-secret-value-1");
    assert_eq!(format!("{s:?}"), "×××");
    assert_eq!(
        redact("url https://hc-ping.com/op-secret-value-1/start"),
        "url https://hc-ping.com/×××/start"
    );

    let e = resolve("op://vault/item/empty", &env).unwrap_err();
    assert!(matches!(e, SecretError::EmptyOutput { .. }), "{e}");
    let e = resolve("op://vault/item/leaky", &env).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("\"op\"") && msg.contains("exit status 1"),
        "{msg}"
    );
    assert!(!msg.contains("LEAKED"), "{msg}");

    // CAIRN_OP names another program.
    let mut env2 = env.clone();
    let dir2 = tempfile::tempdir().unwrap();
    let other = dir2.path().join("my-op");
    write_script(&other, "#!/bin/sh\nprintf 'from-cairn-op-7'\n");
    env2.insert("CAIRN_OP".into(), other.to_str().unwrap().into());
    assert_eq!(
        resolve("op://x/y/z", &env2).unwrap().unwrap().expose(),
        "from-cairn-op-7"
    );
}

#[test]
fn password_command_like_the_seed() {
    let (_dir, mut env) = tools();
    env.insert("TMPDIR".into(), "/nonexistent".into());
    let cmd = "env -u TMPDIR -- op read --no-newline -- op://vault/item/field";
    assert_eq!(
        run_command(cmd, &env).unwrap().expose(),
        "op-secret-value-1"
    );
    // cmd: references run the same way.
    assert_eq!(
        resolve(&format!("cmd:{cmd}"), &env)
            .unwrap()
            .unwrap()
            .expose(),
        "op-secret-value-1"
    );
    // Output is trimmed; no shell is involved (the `|` is an argument).
    assert_eq!(
        run_command("printf '  padded secret \\n\\n'", &env)
            .unwrap()
            .expose(),
        "padded secret"
    );
    let s = run_command("echo a | tr a b", &env).unwrap();
    assert_eq!(s.expose(), "a | tr a b");
    let e = run_command("no-such-program-xyz", &env).unwrap_err();
    assert!(e.to_string().contains("no-such-program-xyz"), "{e}");
    assert!(matches!(
        run_command("  ", &env),
        Err(SecretError::EmptyCommand)
    ));
    // The child sees exactly the given environment.
    assert_eq!(
        run_command(
            "sh -c 'printf %s \"$OP_SERVICE_ACCOUNT_TOKEN-$HOME\"'",
            &env
        )
        .unwrap()
        .expose(),
        "tok-abc-123-"
    );
}

#[test]
fn env_file_and_keyring_references() {
    let (dir, env) = tools();
    let mut env = env;
    env.insert("RESTIC_PW".into(), "env-pass-5".into());
    assert_eq!(
        resolve("env:RESTIC_PW", &env).unwrap().unwrap().expose(),
        "env-pass-5"
    );
    let e = resolve("env:MISSING_VAR", &env).unwrap_err();
    assert!(e.to_string().contains("MISSING_VAR"), "{e}");

    let f = dir.path().join("pw");
    std::fs::write(&f, b"\xEF\xBB\xBF  file-pass-6 \r\n").unwrap();
    let r = format!("file:{}", f.display());
    assert_eq!(resolve(&r, &env).unwrap().unwrap().expose(), "file-pass-6");
    let f16 = dir.path().join("pw16");
    let bytes: Vec<u8> = [0xFF, 0xFE]
        .into_iter()
        .chain("utf16-pass\n".encode_utf16().flat_map(|u| u.to_le_bytes()))
        .collect();
    std::fs::write(&f16, bytes).unwrap();
    assert_eq!(read_password_file(&f16).unwrap().expose(), "utf16-pass");
    let empty = dir.path().join("empty");
    std::fs::write(&empty, " \n").unwrap();
    assert!(matches!(
        read_password_file(&empty),
        Err(SecretError::EmptyFile { .. })
    ));
    assert!(matches!(
        read_password_file(Path::new("/nonexistent/pw")),
        Err(SecretError::Read { .. })
    ));

    if cfg!(target_os = "linux") {
        assert_eq!(
            resolve("keyring:restic/repo", &env)
                .unwrap()
                .unwrap()
                .expose(),
            "keyring-pass-9"
        );
        assert!(resolve("keyring:other/acct", &env).is_err());
    }
    assert!(matches!(
        resolve("keyring:no-slash", &env),
        Err(SecretError::BadReference { .. })
    ));

    // Plain values are not references.
    assert!(resolve("plain value", &env).unwrap().is_none());
    assert!(resolve("rclone:remote:path", &env).unwrap().is_none());
    assert!(redact("file-pass-6 and keyring-pass-9").contains("××× and"));
}

#[test]
fn op_inject_through_a_hook() {
    // The seed pipes `op inject` output into curl from a hook; the stand-in answers it.
    let (dir, env) = tools();
    let tpl = dir.path().join("hc.curlrc");
    std::fs::write(
        &tpl,
        "url https://hc-ping.com/{{ op://vault/item/field }}\n",
    )
    .unwrap();
    let out = dir.path().join("out");
    let mut env = env;
    env.insert("OUT".into(), out.to_str().unwrap().into());
    let shell = cairn_profile::hooks::Shell {
        program: "/bin/sh".into(),
    };
    let ctx = cairn_profile::hooks::HookContext {
        env: &env,
        cwd: dir.path(),
    };
    let script = format!("op inject -i '{}' > \"$OUT\"", tpl.display());
    cairn_profile::hooks::run_hook(&shell, &script, &ctx).unwrap();
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        "url https://hc-ping.com/op-secret-value-1\n"
    );
}
