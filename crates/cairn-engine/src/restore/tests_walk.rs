//! Restore tests for the tree walk and its loader (many directories, skipped directories),
//! large multi-blob files (preallocation, early write-out, sparse) and ownership by name.

use super::tests::{T_DIR, T_FILE, dir, file, mtime_ns, new_repo, opts, run, tree};
use super::*;
use cairn_repo::node::Node;
use std::os::unix::fs::MetadataExt;

/// Incompressible content of `len` bytes derived from `seed`.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 32);
    let mut block = Id::hash(&seed.to_le_bytes()).0;
    while out.len() < len {
        out.extend_from_slice(&block);
        block = Id::hash(&block).0;
    }
    out.truncate(len);
    out
}

#[test]
fn many_directories_each_restored_once() {
    let (tmp, repo) = new_repo();
    // More directories than the loader keeps ahead, nested two levels, and identical
    // subtrees (the same tree id at several places).
    let mut top = Vec::new();
    for a in 0..40u64 {
        let mut subs = Vec::new();
        for b in 0..30u64 {
            let name = format!("f{a}-{b}");
            subs.push(dir(
                &repo,
                format!("s{b:02}").as_bytes(),
                vec![file(&repo, name.as_bytes(), &[name.as_bytes()])],
            ));
        }
        subs.push(dir(&repo, b"same", vec![file(&repo, b"x", &[b"shared"])]));
        top.push(dir(&repo, format!("d{a:02}").as_bytes(), subs));
    }
    let root = tree(&repo, top);
    repo.flush().unwrap();
    let target = tmp.path().join("out");
    let res = run(&repo, root, &opts(&target));
    assert_eq!(res.errors, 0, "{:?}", res.warnings);
    assert_eq!(res.files_restored, 40 * 31);
    assert_eq!(res.dirs, 40 * 32);
    for a in 0..40 {
        for b in [0, 17, 29] {
            let p = target.join(format!("d{a:02}/s{b:02}/f{a}-{b}"));
            assert_eq!(std::fs::read(&p).unwrap(), format!("f{a}-{b}").as_bytes());
        }
        let same = target.join(format!("d{a:02}/same"));
        assert_eq!(std::fs::read(same.join("x")).unwrap(), b"shared");
        assert_eq!(mtime_ns(&same), i128::from(T_DIR));
    }
}

#[test]
fn a_directory_that_cannot_be_created_fails_alone() {
    let (tmp, repo) = new_repo();
    // A name longer than any file system allows: mkdir fails, nothing below is walked.
    let long = vec![b'n'; 300];
    let deep = dir(&repo, b"inner", vec![file(&repo, b"lost", &[b"lost"])]);
    let bad = dir(&repo, &long, vec![deep, file(&repo, b"also-lost", &[b"x"])]);
    let good = dir(
        &repo,
        b"zz-good",
        vec![dir(&repo, b"sub", vec![file(&repo, b"kept", &[b"kept"])])],
    );
    let root = tree(&repo, vec![bad, good]);
    repo.flush().unwrap();
    let target = tmp.path().join("out");
    let progress = RestoreProgress::new();
    let res = restore(&repo, root, &opts(&target), &progress, &|_| {}).unwrap();
    assert_eq!(res.errors, 1, "{:?}", res.warnings);
    assert!(
        res.warnings[0].contains("cannot create directory"),
        "{:?}",
        res.warnings
    );
    assert_eq!(
        std::fs::read(target.join("zz-good/sub/kept")).unwrap(),
        b"kept"
    );
    assert_eq!(res.files_restored, 1);
}

#[test]
fn large_multi_blob_files() {
    let (tmp, repo) = new_repo();
    // Blobs above the early write-out size, a file above the preallocation size, and a
    // sparse variant with a zero blob in the middle.
    let a = noise(700_000, 1);
    let b = noise(300_001, 2);
    let zeros = vec![0u8; 600_000];
    let big = file(&repo, b"big.bin", &[&a, &b, &a]);
    let holey = file(&repo, b"holey.bin", &[&b, &zeros, &a]);
    let mid = file(&repo, b"mid.bin", &[&b[..100_000]]);
    let root = tree(&repo, vec![big, holey, mid]);
    repo.flush().unwrap();
    let mut want_big = a.clone();
    want_big.extend_from_slice(&b);
    want_big.extend_from_slice(&a);
    let mut want_holey = b.clone();
    want_holey.extend_from_slice(&zeros);
    want_holey.extend_from_slice(&a);
    for sparse in [false, true] {
        let target = tmp.path().join(format!("out-{sparse}"));
        let mut o = opts(&target);
        o.sparse = sparse;
        o.verify = true;
        let res = run(&repo, root, &o);
        assert_eq!(res.errors, 0, "{:?}", res.warnings);
        assert!(res.verify_errors.is_empty(), "{:?}", res.verify_errors);
        assert_eq!(std::fs::read(target.join("big.bin")).unwrap(), want_big);
        assert_eq!(std::fs::read(target.join("holey.bin")).unwrap(), want_holey);
        assert_eq!(
            std::fs::read(target.join("mid.bin")).unwrap(),
            &b[..100_000]
        );
        for f in ["big.bin", "holey.bin", "mid.bin"] {
            assert_eq!(mtime_ns(&target.join(f)), i128::from(T_FILE), "{f}");
        }
        let used = std::fs::metadata(target.join("holey.bin"))
            .unwrap()
            .blocks()
            * 512;
        if sparse {
            assert!(used < want_holey.len() as u64 - 500_000, "{used}");
        }
    }
}

#[test]
fn ownership_by_name_uses_local_ids() {
    if !nix::unistd::geteuid().is_root() {
        return;
    }
    let (tmp, repo) = new_repo();
    let mk = |name: &[u8], user: &str| -> Node {
        let mut n = file(&repo, name, &[name]);
        (n.uid, n.gid) = (4242, 4343);
        (n.user, n.group) = (user.to_string(), user.to_string());
        n
    };
    let root = tree(
        &repo,
        vec![mk(b"known", "root"), mk(b"unknown", "no-such-user-xyz")],
    );
    repo.flush().unwrap();
    let ids = |target: &std::path::Path, f: &str| {
        let m = std::fs::metadata(target.join(f)).unwrap();
        (m.uid(), m.gid())
    };
    let by_id = tmp.path().join("by-id");
    run(&repo, root, &opts(&by_id));
    assert_eq!(ids(&by_id, "known"), (4242, 4343));
    let by_name = tmp.path().join("by-name");
    let mut o = opts(&by_name);
    o.ownership_by_name = true;
    let res = run(&repo, root, &o);
    assert_eq!(res.errors, 0, "{:?}", res.warnings);
    assert_eq!(ids(&by_name, "known"), (0, 0));
    assert_eq!(ids(&by_name, "unknown"), (4242, 4343));
}
