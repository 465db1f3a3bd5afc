//! `cairn tag` end to end: changes, `original`, JSON output, errors, and interoperability
//! with restic (restic reads the retagged snapshots; cairn and restic produce the same
//! snapshot document for the same change).

mod common;
use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};

struct Env {
    dir: tempfile::TempDir,
    repo: PathBuf,
}

impl Env {
    /// A repository with two snapshots: tags `a,b,c` (host h1) and `c` (host h2).
    fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let repo = d.join("repo");
        ok(cairn().args(["init", "-r"]).arg(&repo));
        std::fs::create_dir_all(d.join("src")).unwrap();
        std::fs::write(d.join("src/f.txt"), b"tag me\n").unwrap();
        ok(cairn()
            .arg("-r")
            .arg(&repo)
            .args(["backup", "--host", "h1", "--tag", "a,b", "--tag", "c"])
            .arg(d.join("src")));
        ok(cairn()
            .arg("-r")
            .arg(&repo)
            .args(["backup", "--host", "h2", "--tag", "c"])
            .arg(d.join("src")));
        Env { dir, repo }
    }

    fn cairn(&self, args: &[&str]) -> std::process::Command {
        let mut c = cairn();
        c.arg("-r").arg(&self.repo).args(args);
        c
    }

    fn snapshots(&self) -> Vec<Value> {
        let out = ok(&mut self.cairn(&["snapshots", "--json"]));
        serde_json::from_slice::<Vec<Value>>(&out.stdout).unwrap()
    }

    fn by_host(&self, host: &str) -> Value {
        self.snapshots()
            .into_iter()
            .find(|s| s["hostname"] == host)
            .unwrap()
    }
}

fn tags(s: &Value) -> Vec<String> {
    s["tags"]
        .as_array()
        .map(|a| a.iter().map(|t| t.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

fn id(s: &Value) -> String {
    s["id"].as_str().unwrap().to_string()
}

fn snapshot_files(repo: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(repo.join("snapshots"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn add_remove_set_and_original() {
    let env = Env::new();
    let h1 = env.by_host("h1");
    let old = id(&h1);
    assert_eq!(tags(&h1), ["a", "b", "c"]);

    // --add by unique prefix; the old file is replaced by the new one.
    let out = ok(&mut env.cairn(&["tag", "--add", "x, y", "--add", "a", &old[..10]]));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "modified 1 snapshots"
    );
    let h1 = env.by_host("h1");
    assert_eq!(tags(&h1), ["a", "b", "c", "x", "y"]);
    assert_eq!(h1["original"], old.as_str());
    assert_ne!(id(&h1), old);
    let files = snapshot_files(&env.repo);
    assert_eq!(files.len(), 2);
    assert!(!files.contains(&old));

    // --remove like restic: the last tag moves into the freed place; `original` stays the
    // first ID.
    let second = id(&h1);
    let out = ok(&mut env.cairn(&["-v", "tag", "--remove", "a,zz", &second]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("old snapshot ID: {second} -> new snapshot ID: ")),
        "{text}"
    );
    let h1 = env.by_host("h1");
    assert_eq!(tags(&h1), ["y", "b", "c", "x"]);
    assert_eq!(h1["original"], old.as_str());

    // Nothing to change: no rewrite.
    let out = ok(&mut env.cairn(&["tag", "--remove", "nope", "--add", "c"]));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "no snapshots were modified"
    );
    assert_eq!(id(&env.by_host("h1")), id(&h1));

    // --set with a filter (-H, --tag); --set '' is a no-op like in restic.
    let out = ok(&mut env.cairn(&["tag", "--set", "p,q", "-H", "h2", "--tag", "c"]));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "modified 1 snapshots"
    );
    assert_eq!(tags(&env.by_host("h2")), ["p", "q"]);
    let out = ok(&mut env.cairn(&["tag", "--set", ""]));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "no snapshots were modified"
    );
    assert_eq!(tags(&env.by_host("h2")), ["p", "q"]);
    // Removing every tag clears them (JSON omits `tags`).
    ok(&mut env.cairn(&["tag", "--remove", "p,q", "--host", "h2"]));
    let h2 = env.by_host("h2");
    assert!(h2.get("tags").is_none(), "{h2}");
    assert_eq!(snapshot_files(&env.repo).len(), 2);
}

#[test]
fn json_output_and_errors() {
    let env = Env::new();
    let before: Vec<String> = env.snapshots().iter().map(id).collect();
    let out = ok(&mut env.cairn(&["--json", "tag", "--add", "new"]));
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    for l in &lines[..2] {
        assert_eq!(l["message_type"], "changed");
        assert!(before.contains(&l["old_snapshot_id"].as_str().unwrap().to_string()));
        assert_eq!(l["new_snapshot_id"].as_str().unwrap().len(), 64);
    }
    assert_eq!(
        lines[2],
        serde_json::json!({"message_type": "summary", "changed_snapshots": 2})
    );
    let after: Vec<String> = env.snapshots().iter().map(id).collect();
    let mut new_ids: Vec<String> = lines[..2]
        .iter()
        .map(|l| l["new_snapshot_id"].as_str().unwrap().to_string())
        .collect();
    new_ids.sort();
    let mut after_sorted = after.clone();
    after_sorted.sort();
    assert_eq!(after_sorted, new_ids);

    let fail = |args: &[&str], code: i32, msg: &str| {
        let out = expect_code(&mut env.cairn(args), code);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(msg), "{args:?}: {err}");
    };
    fail(&["tag"], 1, "nothing to do!");
    fail(
        &["tag", "--set", "a", "--add", "b"],
        1,
        "--set and --add/--remove cannot be given at the same time",
    );
    fail(&["tag", "--add", "b", "ffffffff"], 1, "no snapshot");
    let out = expect_code(
        cairn()
            .arg("-r")
            .arg(env.dir.path().join("missing"))
            .args(["tag", "--add", "x"]),
        10,
    );
    let _ = out;
    // Nothing changed by the failures.
    let mut now: Vec<String> = env.snapshots().iter().map(id).collect();
    now.sort();
    assert_eq!(now, after_sorted);
}

#[test]
fn restic_reads_retagged_snapshots_and_agrees_on_the_document() {
    let Some(rb) = external("restic") else { return };
    let env = Env::new();
    let d = env.dir.path();
    let cache = d.join("cache");
    // A copy for restic to apply the same change to.
    let copy = d.join("copy");
    ok(std::process::Command::new("cp")
        .arg("-a")
        .arg(&env.repo)
        .arg(&copy));
    let h1 = id(&env.by_host("h1"));

    ok(&mut env.cairn(&["tag", "--add", "x,y", "--remove", "a", &h1]));
    ok(restic(&rb, &cache)
        .arg("-r")
        .arg(&copy)
        .args(["tag", "--add", "x,y", "--remove", "a", &h1]));

    let listing = |repo: &Path| -> Vec<Value> {
        let out = ok(restic(&rb, &cache)
            .arg("-r")
            .arg(repo)
            .args(["snapshots", "--json"]));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let ours = listing(&env.repo);
    let theirs = listing(&copy);
    assert_eq!(ours.len(), 2);
    let find = |l: &[Value]| l.iter().find(|s| s["hostname"] == "h1").unwrap().clone();
    let (mut a, mut b) = (find(&ours), find(&theirs));
    assert_eq!(tags(&a), ["y", "b", "c", "x"]);
    assert_eq!(a["original"], h1.as_str());
    // Same document apart from the ID (the encryption IV differs).
    for v in [&mut a, &mut b] {
        let m = v.as_object_mut().unwrap();
        m.remove("id");
        m.remove("short_id");
    }
    assert_eq!(a, b);

    // A second change through restic on cairn's result keeps the first original.
    let new_id = id(&find(&ours));
    ok(restic(&rb, &cache)
        .arg("-r")
        .arg(&env.repo)
        .args(["tag", "--set", "final", &new_id]));
    let s = find(&listing(&env.repo));
    assert_eq!(tags(&s), ["final"]);
    assert_eq!(s["original"], h1.as_str());
    // And cairn reads restic's result; restic's check is happy.
    assert_eq!(tags(&env.by_host("h1")), ["final"]);
    ok(restic(&rb, &cache).arg("-r").arg(&env.repo).arg("check"));
    // `--set ''` does nothing in restic either.
    let out = ok(restic(&rb, &cache)
        .arg("-r")
        .arg(&env.repo)
        .args(["tag", "--set", ""]));
    assert!(String::from_utf8_lossy(&out.stdout).contains("no snapshots were modified"));
}
