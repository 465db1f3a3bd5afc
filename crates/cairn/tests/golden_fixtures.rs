//! Golden tests against the repositories written by restic 0.14 in `../shared/fixtures`:
//! Cairn lists them as restic did and restores the source tree they were made from.

mod common;
use common::*;

fn fixture_cairn() -> std::process::Command {
    let mut c = cairn();
    c.env("RESTIC_PASSWORD", "fixture-password");
    c
}

fn check_listing(name: &str) {
    let dir = tempfile::tempdir().unwrap();
    let repo = extract_fixture(name, dir.path());
    let expected = shared()
        .join("fixtures/expected")
        .join(name)
        .join("restic-output");
    // snapshots --json: the same documents restic printed.
    let out = ok(fixture_cairn()
        .arg("-r")
        .arg(&repo)
        .args(["snapshots", "--json"]));
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let want: serde_json::Value =
        serde_json::from_slice(&std::fs::read(expected.join("snapshots.json")).unwrap()).unwrap();
    assert_eq!(got, want);
    // cat config.
    let out = ok(fixture_cairn().arg("-r").arg(&repo).args(["cat", "config"]));
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let want: serde_json::Value =
        serde_json::from_slice(&std::fs::read(expected.join("cat-config.json")).unwrap()).unwrap();
    assert_eq!(got, want);
}

#[test]
fn lists_fixture_v2_like_restic() {
    check_listing("repo-v2");
}

#[test]
fn lists_fixture_v1_like_restic() {
    check_listing("repo-v1");
}

fn check_restore(name: &str) {
    if external("python3").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let repo = extract_fixture(name, d);
    // Rebuild the source tree the fixture was made from, and its modified version.
    let first = d.join("first");
    make_source_tree(&first);
    let second = d.join("second");
    make_source_tree(&second);
    ok(std::process::Command::new("python3")
        .arg(shared().join("fixtures/make-source-tree.py"))
        .arg("--modify")
        .arg(&second));
    let snaps = ok(fixture_cairn()
        .arg("-r")
        .arg(&repo)
        .args(["snapshots", "--json"]));
    let snaps: Vec<serde_json::Value> = serde_json::from_slice(&snaps.stdout).unwrap();
    for (snap, src) in snaps.iter().zip([&first, &second]) {
        let id = snap["id"].as_str().unwrap();
        let target = d.join(format!("restore-{}", &id[..8]));
        ok(fixture_cairn()
            .arg("-r")
            .arg(&repo)
            .args([
                "restore",
                &format!("{id}:/tmp/restic-fixture-src"),
                "--target",
            ])
            .arg(&target));
        assert_same_tree(src, &target);
    }
}

#[test]
fn restores_fixture_v2_to_its_source_tree() {
    check_restore("repo-v2");
}

#[test]
fn restores_fixture_v1_to_its_source_tree() {
    check_restore("repo-v1");
}
