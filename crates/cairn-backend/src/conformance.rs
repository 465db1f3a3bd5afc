//! The backend conformance suite: the same checks run against every backend (local, SFTP,
//! S3, REST, rclone) from their tests. Public so that integration tests of every crate can call
//! [`run_all`]; it panics with a description of the first violation (test support, not used by
//! the program itself).

use cairn_repo::backend::{Backend, FileType};
use std::collections::BTreeMap;

fn name(n: u8) -> String {
    format!("{n:02x}").repeat(32)
}

fn expect_not_found<T: std::fmt::Debug>(
    what: &str,
    r: Result<T, cairn_repo::backend::BackendError>,
) {
    match r {
        Err(e) if e.is_not_found() => {}
        other => panic!("{what}: expected a not-found error, got {other:?}"),
    }
}

fn listed(b: &dyn Backend, t: FileType) -> BTreeMap<String, u64> {
    b.list(t)
        .unwrap_or_else(|e| panic!("list {t:?}: {e}"))
        .into_iter()
        .collect()
}

/// Run every check against `b`, a freshly created, empty repository location (`create()` is
/// called here). Leaves the files it wrote removed again.
pub fn run_all(b: &dyn Backend) {
    b.create().unwrap_or_else(|e| panic!("create: {e}"));
    config_roundtrip(b);
    files_of_every_type(b);
    ranges_and_missing_files(b);
    large_file(b);
    parallel_writes(b);
    streamed_packs(b);
}

fn config_roundtrip(b: &dyn Backend) {
    expect_not_found(
        "stat of a missing config",
        b.stat(FileType::Config, "config"),
    );
    b.write(FileType::Config, "config", b"config bytes")
        .unwrap_or_else(|e| panic!("write config: {e}"));
    assert_eq!(b.read(FileType::Config, "config").unwrap(), b"config bytes");
    assert_eq!(b.stat(FileType::Config, "config").unwrap(), 12);
}

fn files_of_every_type(b: &dyn Backend) {
    for (i, t) in FileType::LISTABLE.into_iter().enumerate() {
        assert!(listed(b, t).is_empty(), "{t:?} starts empty");
        let mut want = BTreeMap::new();
        for k in 0..3u8 {
            let n = name(k * 16 + i as u8);
            let data = vec![k; 100 * usize::from(k) + 1];
            b.write(t, &n, &data)
                .unwrap_or_else(|e| panic!("write {t:?} {n}: {e}"));
            want.insert(n, data);
        }
        let got = listed(b, t);
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            want.keys().collect::<Vec<_>>(),
            "list {t:?}"
        );
        for (n, data) in &want {
            assert_eq!(got[n], data.len() as u64, "listed size of {t:?} {n}");
            assert_eq!(&b.read(t, n).unwrap(), data, "read {t:?} {n}");
            assert_eq!(b.stat(t, n).unwrap(), data.len() as u64, "stat {t:?} {n}");
        }
        for n in want.keys() {
            b.remove(t, n)
                .unwrap_or_else(|e| panic!("remove {t:?} {n}: {e}"));
            expect_not_found("read after remove", b.read(t, n));
        }
        assert!(listed(b, t).is_empty(), "{t:?} empty after removing");
    }
}

fn ranges_and_missing_files(b: &dyn Backend) {
    let n = name(0xaa);
    let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
    b.write(FileType::Pack, &n, &data).unwrap();
    assert_eq!(
        b.read_range(FileType::Pack, &n, 0, 10).unwrap(),
        &data[..10],
        "range at the start"
    );
    assert_eq!(
        b.read_range(FileType::Pack, &n, 9_990, 10).unwrap(),
        &data[9_990..],
        "range at the end"
    );
    assert_eq!(
        b.read_range(FileType::Pack, &n, 1234, 4321).unwrap(),
        &data[1234..1234 + 4321],
        "range in the middle"
    );
    assert!(
        b.read_range(FileType::Pack, &n, 9_995, 10).is_err(),
        "a range past the end is an error, not a short read"
    );
    let missing = name(0xab);
    expect_not_found("read of a missing file", b.read(FileType::Pack, &missing));
    expect_not_found("stat of a missing file", b.stat(FileType::Pack, &missing));
    expect_not_found(
        "range of a missing file",
        b.read_range(FileType::Pack, &missing, 0, 1),
    );
    // REST servers (rest-server, rclone, `cairn serve`) answer a DELETE of a missing file
    // with success on purpose, so either answer is accepted; callers treat both the same.
    match b.remove(FileType::Pack, &missing) {
        Ok(()) => {}
        Err(e) if e.is_not_found() => {}
        Err(e) => panic!("remove of a missing file: expected success or not-found, got {e}"),
    }
    b.remove(FileType::Pack, &n).unwrap();
}

fn large_file(b: &dyn Backend) {
    // Larger than one multipart part or HTTP buffer, not a multiple of any power of two.
    let n = name(0xbb);
    let data: Vec<u8> = (0..(24 << 20) + 12_345u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    b.write(FileType::Pack, &n, &data)
        .unwrap_or_else(|e| panic!("write 24 MiB: {e}"));
    assert_eq!(b.stat(FileType::Pack, &n).unwrap(), data.len() as u64);
    let back = b.read(FileType::Pack, &n).unwrap();
    assert!(back == data, "24 MiB file read back differs");
    let off = (20 << 20) + 7;
    assert_eq!(
        b.read_range(FileType::Pack, &n, off, 1 << 20).unwrap(),
        &data[off as usize..off as usize + (1 << 20)]
    );
    b.remove(FileType::Pack, &n).unwrap();
}

fn parallel_writes(b: &dyn Backend) {
    std::thread::scope(|s| {
        for k in 0..8u8 {
            s.spawn(move || {
                let n = name(0xc0 + k);
                let data = vec![k; 300_000 + usize::from(k)];
                b.write(FileType::Pack, &n, &data)
                    .unwrap_or_else(|e| panic!("parallel write {k}: {e}"));
                assert_eq!(b.read(FileType::Pack, &n).unwrap(), data);
            });
        }
    });
    let got = listed(b, FileType::Pack);
    assert_eq!(got.len(), 8, "8 packs written in parallel are listed");
    for k in 0..8u8 {
        b.remove(FileType::Pack, &name(0xc0 + k)).unwrap();
    }
}

/// Backends that stream packs ([`Backend::start_pack`]): a committed pack reads back whole and
/// is listed; one dropped before commit leaves nothing behind; committing a name that exists
/// keeps the file.
fn streamed_packs(b: &dyn Backend) {
    let start = || b.start_pack().unwrap_or_else(|e| panic!("start_pack: {e}"));
    let Some(mut up) = start() else { return };
    let n = name(0xd0);
    let parts: [&[u8]; 3] = [b"first part ", &[7u8; 100_000], b" last"];
    for p in parts {
        up.append(p).unwrap_or_else(|e| panic!("append: {e}"));
    }
    up.commit(&n).unwrap_or_else(|e| panic!("commit: {e}"));
    assert_eq!(b.read(FileType::Pack, &n).unwrap(), parts.concat());
    if let Some(mut again) = start() {
        again.append(b"same name").unwrap();
        again
            .commit(&n)
            .unwrap_or_else(|e| panic!("commit of an existing name: {e}"));
    }
    if let Some(mut dropped) = start() {
        dropped.append(b"never committed").unwrap();
    }
    let got = listed(b, FileType::Pack);
    assert_eq!(got.len(), 1, "only the committed pack is listed: {got:?}");
    b.remove(FileType::Pack, &n).unwrap();
}

#[cfg(test)]
mod tests {
    #[test]
    fn local_backend_conforms() {
        let dir = tempfile::tempdir().unwrap();
        super::run_all(&crate::LocalBackend::new(dir.path().join("repo")));
        // Nothing is left behind, temporary files of streamed packs included.
        let left = walkdir(&dir.path().join("repo/data"));
        assert!(left.is_empty(), "files left in data/: {left:?}");
    }

    fn walkdir(d: &std::path::Path) -> Vec<std::path::PathBuf> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                out.extend(walkdir(&p));
            } else {
                out.push(p);
            }
        }
        out
    }
}
