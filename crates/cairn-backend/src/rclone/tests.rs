use super::*;
use std::time::Instant;

fn opts(pairs: &[&str]) -> BackendOptions {
    BackendOptions {
        values: BackendOptions::parse_pairs(pairs.iter().copied()).unwrap(),
        ..Default::default()
    }
}

#[test]
fn urls_of_files() {
    let id = "ab".repeat(32);
    assert_eq!(path_of(FileType::Config, "config"), "/config");
    assert_eq!(path_of(FileType::Pack, &id), format!("/data/{id}"));
    assert_eq!(path_of(FileType::Key, &id), format!("/keys/{id}"));
    assert_eq!(path_of(FileType::Lock, "a/b c"), "/locks/a%2Fb%20c");
    assert_eq!(shown(FileType::Snapshot, "x"), "snapshots/x");
}

#[test]
fn listings() {
    let v2 = br#"[{"name":"aa","size":3},{"name":"bb","size":0}]
"#;
    assert_eq!(
        parse_v2(v2).unwrap(),
        [("aa".to_string(), 3), ("bb".to_string(), 0)]
    );
    assert!(parse_v2(b"[]").unwrap().is_empty());
    for bad in [
        &b"{}"[..],
        b"[{\"name\":\"aa\"}]",
        b"[{\"name\":1,\"size\":2}]",
        b"[{\"name\":\"a\",\"size\":-1}]",
        b"not json",
        b"",
    ] {
        assert!(parse_v2(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
    }
    assert_eq!(parse_v1(br#"["a","b"]"#).unwrap(), ["a", "b"]);
    assert!(parse_v1(b"[1]").is_err());
    assert!(parse_v1(b"{").is_err());
}

#[test]
fn a_dying_rclone_is_reported_with_its_messages() {
    let o = opts(&[
        "rclone.program=sh",
        "rclone.args=-c 'echo Failed to create file system: no such remote >&2; exit 3'",
    ]);
    let e = open("nosuch:path", &o).unwrap_err().to_string();
    assert!(e.contains("no such remote"), "{e}");
    assert!(e.contains("exit status: 3"), "{e}");
    assert!(e.contains("rclone:nosuch:path"), "{e}");
}

#[test]
fn a_missing_program_is_reported() {
    let o = opts(&["rclone.program=/nonexistent/rclone"]);
    let e = open("r:", &o).unwrap_err().to_string();
    assert!(e.contains("cannot start rclone"), "{e}");
}

#[test]
fn a_silent_program_times_out_and_is_killed() {
    // `cat` echoes our HTTP/2 preface back instead of answering, `sleep` never answers.
    for (prog, remote) in [("sleep", "30"), ("cat", "-")] {
        let o = opts(&[
            &format!("rclone.program={prog}"),
            "rclone.args=",
            "rclone.timeout=500ms",
        ]);
        let t = Instant::now();
        let e = open(remote, &o).unwrap_err().to_string();
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "{prog}: took {:?}",
            t.elapsed()
        );
        assert!(e.contains("error talking HTTP to rclone"), "{prog}: {e}");
    }
}

#[test]
fn usable_from_inside_another_tokio_runtime() {
    // Blocking on our runtime and dropping it must not panic when the caller is async.
    let outer = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let e = outer.block_on(async {
        let o = opts(&["rclone.program=sh", "rclone.args=-c 'echo bye >&2; exit 4'"]);
        open("r:", &o).unwrap_err().to_string()
    });
    assert!(e.contains("bye") && e.contains("exit status: 4"), "{e}");
}
