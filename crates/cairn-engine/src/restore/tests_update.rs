//! Restore tests: restoring over existing files (overwrite policies, delete), verify, damaged
//! repositories, many files across packs.

use super::tests::{T_FILE, dir, file, mtime_ns, new_repo, opts, run, tree};
use super::*;
use cairn_repo::BlobType;
use cairn_repo::repository::WriteOptions;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

fn set_mtime(p: &Path, ns: i64) {
    let ts =
        nix::sys::time::TimeSpec::new(ns.div_euclid(1_000_000_000), ns.rem_euclid(1_000_000_000));
    nix::sys::stat::utimensat(
        None,
        p,
        &ts,
        &ts,
        nix::sys::stat::UtimensatFlags::NoFollowSymlink,
    )
    .unwrap();
}

#[test]
fn overwrite_policies() {
    let (tmp, repo) = new_repo();
    let root = tree(&repo, vec![file(&repo, b"f", &[b"snapshot content v1"])]);
    repo.flush().unwrap();
    let target = tmp.path().join("out");
    let f = target.join("f");
    let with = |ow: Overwrite| {
        let mut o = opts(&target);
        o.overwrite = ow;
        run(&repo, root, &o)
    };
    assert_eq!(with(Overwrite::Always).files_restored, 1);

    // never: an existing file is left alone (content and metadata).
    std::fs::write(&f, b"local change").unwrap();
    let res = with(Overwrite::Never);
    assert_eq!((res.files_restored, res.files_skipped), (0, 1));
    assert_eq!(std::fs::read(&f).unwrap(), b"local change");

    // if-newer: only when the snapshot's mtime is newer than the file's.
    set_mtime(&f, T_FILE + 10_000_000_000);
    let res = with(Overwrite::IfNewer);
    assert_eq!((res.files_restored, res.files_skipped), (0, 1));
    assert_eq!(std::fs::read(&f).unwrap(), b"local change");
    set_mtime(&f, T_FILE - 10_000_000_000);
    assert_eq!(with(Overwrite::IfNewer).files_restored, 1);
    assert_eq!(std::fs::read(&f).unwrap(), b"snapshot content v1");

    // if-changed trusts size + mtime; always compares the content.
    std::fs::write(&f, b"snapshot content XX").unwrap();
    set_mtime(&f, T_FILE);
    let res = with(Overwrite::IfChanged);
    assert_eq!((res.files_restored, res.files_skipped), (0, 1));
    assert_eq!(std::fs::read(&f).unwrap(), b"snapshot content XX");
    let res = with(Overwrite::Always);
    assert_eq!(res.files_restored, 1);
    assert_eq!(std::fs::read(&f).unwrap(), b"snapshot content v1");

    // Unchanged content: metadata only.
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o751)).unwrap();
    set_mtime(&f, T_FILE + 1);
    let res = with(Overwrite::Always);
    assert_eq!(
        (res.files_restored, res.files_skipped, res.bytes_written),
        (0, 1, 0)
    );
    assert_eq!(
        std::fs::metadata(&f).unwrap().permissions().mode() & 0o777,
        0o644
    );
    assert_eq!(mtime_ns(&f), i128::from(T_FILE));

    // Longer file: truncated; read-only file: still restored.
    std::fs::write(&f, b"snapshot content v1 and more").unwrap();
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o444)).unwrap();
    let res = with(Overwrite::Always);
    assert_eq!(res.errors, 0, "{:?}", res.warnings);
    assert_eq!(std::fs::read(&f).unwrap(), b"snapshot content v1");
    assert_eq!(
        std::fs::metadata(&f).unwrap().permissions().mode() & 0o777,
        0o644
    );

    assert!("if-changed".parse::<Overwrite>().unwrap() == Overwrite::IfChanged);
    assert!("sometimes".parse::<Overwrite>().is_err());
    assert_eq!(Overwrite::default(), Overwrite::Always);
}

#[test]
fn in_place_update_writes_only_changed_blobs() {
    let (tmp, repo) = new_repo();
    let a: Vec<u8> = (0..70_000u32).map(|i| (i % 251) as u8).collect();
    let b: Vec<u8> = (0..50_001u32).map(|i| (i % 241) as u8 ^ 0x5a).collect();
    let root = tree(&repo, vec![file(&repo, b"big", &[&a, &b])]);
    repo.flush().unwrap();
    let target = tmp.path().join("out");
    run(&repo, root, &opts(&target));
    let p = target.join("big");
    let ino = std::fs::metadata(&p).unwrap().ino();
    let mut local = std::fs::read(&p).unwrap();
    local[70_010] ^= 0xff;
    std::fs::write(&p, &local).unwrap();
    let res = run(&repo, root, &opts(&target));
    assert_eq!(res.errors, 0, "{:?}", res.warnings);
    assert_eq!(res.bytes_written, b.len() as u64);
    let mut want = a.clone();
    want.extend_from_slice(&b);
    assert_eq!(std::fs::read(&p).unwrap(), want);
    assert_eq!(std::fs::metadata(&p).unwrap().ino(), ino);
}

#[test]
fn things_in_the_way_are_replaced_safely() {
    let (tmp, repo) = new_repo();
    let root = tree(
        &repo,
        vec![
            file(&repo, b"f", &[b"snapshot"]),
            file(&repo, b"g", &[b"snapshot g"]),
            file(&repo, b"h", &[b"snapshot h"]),
            dir(&repo, b"d", vec![]),
        ],
    );
    repo.flush().unwrap();
    let target = tmp.path().join("out");
    std::fs::create_dir_all(&target).unwrap();
    // A symlink where a file goes must not be written through.
    let outside = tmp.path().join("outside");
    std::fs::write(&outside, b"precious").unwrap();
    std::os::unix::fs::symlink(&outside, target.join("f")).unwrap();
    // A hard-linked file: the other name keeps its content.
    let other = tmp.path().join("other-link");
    std::fs::write(target.join("g"), b"old g content").unwrap();
    std::fs::hard_link(target.join("g"), &other).unwrap();
    // A file where a directory goes; a non-empty directory where a file goes.
    std::fs::write(target.join("d"), b"file").unwrap();
    std::fs::create_dir_all(target.join("h/inner")).unwrap();

    let res = run(&repo, root, &opts(&target));
    assert_eq!(std::fs::read(&outside).unwrap(), b"precious");
    assert_eq!(std::fs::read(target.join("f")).unwrap(), b"snapshot");
    assert!(
        std::fs::symlink_metadata(target.join("f"))
            .unwrap()
            .is_file()
    );
    assert_eq!(std::fs::read(&other).unwrap(), b"old g content");
    assert_eq!(std::fs::read(target.join("g")).unwrap(), b"snapshot g");
    assert!(target.join("d").is_dir());
    // Without --delete a non-empty directory is not removed: an error for that file only.
    assert_eq!(res.errors, 1, "{:?}", res.warnings);
    assert!(
        res.warnings.iter().any(|w| w.contains("/h")),
        "{:?}",
        res.warnings
    );
    let mut o = opts(&target);
    o.delete = true;
    let res = run(&repo, root, &o);
    assert_eq!(res.errors, 0, "{:?}", res.warnings);
    assert_eq!(std::fs::read(target.join("h")).unwrap(), b"snapshot h");
}

#[test]
fn delete_removes_only_unexpected_selected_entries() {
    let (tmp, repo) = new_repo();
    let root = tree(
        &repo,
        vec![
            file(&repo, b"keep.txt", &[b"k"]),
            dir(&repo, b"sub", vec![file(&repo, b"keep2.txt", &[b"k2"])]),
        ],
    );
    repo.flush().unwrap();
    let target = tmp.path().join("out");
    let populate = || {
        std::fs::create_dir_all(target.join("sub")).unwrap();
        std::fs::create_dir_all(target.join("olddir/deeper")).unwrap();
        std::fs::write(target.join("olddir/deeper/x"), b"x").unwrap();
        std::fs::write(target.join("extra.txt"), b"e").unwrap();
        std::fs::write(target.join("sub/extra2.txt"), b"e2").unwrap();
    };
    populate();
    let res = run(&repo, root, &opts(&target));
    assert_eq!(res.files_deleted, 0);
    assert!(target.join("extra.txt").exists() && target.join("sub/extra2.txt").exists());

    // Dry run: counted, nothing removed.
    let mut o = opts(&target);
    o.delete = true;
    o.dry_run = true;
    assert_eq!(run(&repo, root, &o).files_deleted, 3);
    assert!(target.join("extra.txt").exists());

    // With an include filter only selected entries go.
    let mut o = opts(&target);
    o.delete = true;
    o.includes = vec!["/sub".into()];
    let res = run(&repo, root, &o);
    assert_eq!(res.files_deleted, 1);
    assert!(!target.join("sub/extra2.txt").exists());
    assert!(target.join("extra.txt").exists() && target.join("olddir").exists());

    populate();
    let mut o = opts(&target);
    o.delete = true;
    let res = run(&repo, root, &o);
    assert_eq!(res.errors, 0, "{:?}", res.warnings);
    assert_eq!(res.files_deleted, 3);
    let mut names: Vec<_> = std::fs::read_dir(&target)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["keep.txt", "sub"]);
    assert!(!target.join("sub/extra2.txt").exists());
    assert_eq!(std::fs::read(target.join("sub/keep2.txt")).unwrap(), b"k2");

    let p = RestoreProgress::new();
    let mut o = opts(Path::new("/"));
    o.delete = true;
    assert!(restore(&repo, root, &o, &p, &|_| {}).is_err());
}

#[test]
fn verify_detects_modified_files() {
    let (tmp, repo) = new_repo();
    let root = tree(
        &repo,
        vec![
            file(&repo, b"a", &[b"content a"]),
            file(&repo, b"b", &[b"content b", b" second blob"]),
            file(&repo, b"c", &[b"content c"]),
        ],
    );
    repo.flush().unwrap();
    let target = tmp.path().join("out");
    let mut o = opts(&target);
    o.verify = true;
    let res = run(&repo, root, &o);
    assert_eq!((res.files_verified, res.verify_errors.len()), (3, 0));

    // Damage two restored files, then run the verify pass over the plan.
    std::fs::write(target.join("b"), b"content b second blXb").unwrap();
    std::fs::write(target.join("c"), b"content").unwrap();
    let mut o = opts(&target);
    o.dry_run = true;
    let progress = RestoreProgress::new();
    let rep = Reporter::new(&|_| {}, &progress);
    let sel = select::Selector::new(&o).unwrap();
    let plan = plan::build(&repo, root, &target, &o, &sel, &rep, 2).unwrap();
    let (n, errors) = check::verify_restored(&repo, &plan, 2, &progress);
    assert_eq!(n, 3);
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors[0].contains("/b") && errors[0].contains("offset 9"),
        "{errors:?}"
    );
    assert!(
        errors[1].contains("/c") && errors[1].contains("size"),
        "{errors:?}"
    );
}

#[test]
fn missing_blob_fails_only_that_file() {
    let (tmp, repo) = new_repo();
    let mut bad = file(&repo, b"bad.bin", &[b"stored"]);
    let missing = Id::hash(b"never stored");
    bad.content.as_mut().unwrap().push(missing);
    bad.size += 12;
    let root = tree(&repo, vec![bad, file(&repo, b"good.txt", &[b"fine"])]);
    repo.flush().unwrap();
    let target = tmp.path().join("out");
    let seen = parking_lot::Mutex::new(Vec::new());
    let progress = RestoreProgress::new();
    let res = restore(&repo, root, &opts(&target), &progress, &|w: &str| {
        seen.lock().push(w.to_string())
    })
    .unwrap();
    assert_eq!(res.errors, 1);
    assert_eq!(*seen.lock(), res.warnings);
    let w = &res.warnings[0];
    assert!(
        w.contains("bad.bin") && w.contains(&missing.to_hex()),
        "{w}"
    );
    assert_eq!(std::fs::read(target.join("good.txt")).unwrap(), b"fine");
    assert_eq!(progress.snapshot().errors, 1);
}

#[test]
fn corrupt_blob_is_reported_with_file_and_blob() {
    let (tmp, repo) = new_repo();
    let victim = b"this blob will be damaged on disk".to_vec();
    let root = tree(
        &repo,
        vec![
            file(&repo, b"victim.txt", &[&victim]),
            file(&repo, b"fine.txt", &[b"this one stays readable"]),
        ],
    );
    repo.flush().unwrap();
    let id = Id::hash(&victim);
    let loc = repo.locate(BlobType::Data, &id).unwrap();
    let hex = loc.pack_id.to_hex();
    let pack = tmp.path().join("repo/data").join(&hex[..2]).join(&hex);
    std::fs::set_permissions(&pack, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut bytes = std::fs::read(&pack).unwrap();
    bytes[loc.offset as usize + 20] ^= 0x01;
    std::fs::write(&pack, &bytes).unwrap();

    let target = tmp.path().join("out");
    let res = run(&repo, root, &opts(&target));
    assert_eq!(res.errors, 1, "{:?}", res.warnings);
    assert!(res.warnings[0].contains("victim.txt"), "{:?}", res.warnings);
    assert!(res.warnings[0].contains(&id.to_hex()), "{:?}", res.warnings);
    assert_eq!(
        std::fs::read(target.join("fine.txt")).unwrap(),
        b"this one stays readable"
    );
}

#[test]
fn bad_targets_are_errors() {
    let (tmp, repo) = new_repo();
    let root = tree(&repo, vec![file(&repo, b"f", &[b"x"])]);
    repo.flush().unwrap();
    let p = RestoreProgress::new();
    let plain = tmp.path().join("plain-file");
    std::fs::write(&plain, b"").unwrap();
    assert!(restore(&repo, root, &opts(&plain), &p, &|_| {}).is_err());
    assert!(restore(&repo, root, &opts(&plain.join("below")), &p, &|_| {}).is_err());
    let mut o = opts(&tmp.path().join("x"));
    o.dry_run = true;
    o.verify = true;
    assert!(restore(&repo, root, &o, &p, &|_| {}).is_err());
    // Cancelled: interrupted, nothing restored.
    let cancelled = RestoreProgress::new();
    cancelled.cancel();
    let out = tmp.path().join("z");
    let r = restore(&repo, root, &opts(&out), &cancelled, &|_| {});
    assert!(matches!(r, Err(EngineError::Interrupted)), "{r:?}");
    assert!(!out.join("f").exists());
    // A root tree that does not exist.
    assert!(
        restore(
            &repo,
            Id::hash(b"no tree"),
            &opts(&tmp.path().join("y")),
            &p,
            &|_| {}
        )
        .is_err()
    );
}

#[test]
fn many_files_across_many_packs() {
    let (tmp, mut repo) = new_repo();
    repo.set_write_options(WriteOptions {
        pack_size: 256 * 1024,
        ..Default::default()
    });
    // Incompressible content of varying length.
    let content = |i: usize| -> Vec<u8> {
        let len = 100 + (i * 7919) % 30_000;
        let mut out = Vec::with_capacity(len + 32);
        let mut block = Id::hash(&i.to_le_bytes()).0;
        while out.len() < len {
            out.extend_from_slice(&block);
            block = Id::hash(&block).0;
        }
        out.truncate(len);
        out
    };
    let mut dirs = Vec::new();
    for d in 0..20 {
        let files: Vec<_> = (0..60)
            .map(|k| {
                let i = d * 60 + k;
                file(&repo, format!("f{i:05}").as_bytes(), &[&content(i)])
            })
            .collect();
        dirs.push(dir(&repo, format!("d{d:02}").as_bytes(), files));
    }
    let root = tree(&repo, dirs);
    repo.flush().unwrap();
    assert!(repo.index().pack_count() > 20);

    let target = tmp.path().join("out");
    let mut o = opts(&target);
    o.threads = 8;
    let res = run(&repo, root, &o);
    assert_eq!(res.errors, 0, "{:?}", res.warnings);
    assert_eq!(res.files_restored, 1200);
    for i in (0..1200).step_by(7) {
        let p = target.join(format!("d{:02}/f{i:05}", i / 60));
        assert_eq!(std::fs::read(&p).unwrap(), content(i), "{}", p.display());
        assert_eq!(mtime_ns(&p), i128::from(T_FILE));
    }

    // Only a few blobs from packs, far apart: separate range reads.
    let sparse_sel = tmp.path().join("some");
    let mut o = opts(&sparse_sel);
    o.includes = vec![
        "/d00/f00000".into(),
        "/d19/f01199".into(),
        "/d10/f0063?".into(),
    ];
    let res = run(&repo, root, &o);
    assert_eq!(res.files_restored, 12);
    assert_eq!(
        std::fs::read(sparse_sel.join("d19/f01199")).unwrap(),
        content(1199)
    );
}
