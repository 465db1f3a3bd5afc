use super::*;
use crate::LocalBackend;
use std::sync::atomic::AtomicUsize;
use std::time::{Duration, SystemTime};

/// A local backend that counts the calls that reach it.
#[derive(Debug)]
struct Counting {
    inner: LocalBackend,
    reads: AtomicUsize,
    range_reads: AtomicUsize,
    writes: AtomicUsize,
}

impl Counting {
    fn reads(&self) -> usize {
        self.reads.load(Ordering::SeqCst)
    }
    fn range_reads(&self) -> usize {
        self.range_reads.load(Ordering::SeqCst)
    }
    fn writes(&self) -> usize {
        self.writes.load(Ordering::SeqCst)
    }
}

impl Backend for Counting {
    fn location(&self) -> String {
        self.inner.location()
    }
    fn create(&self) -> Result<(), BackendError> {
        self.inner.create()
    }
    fn list(&self, t: FileType) -> Result<Vec<(String, u64)>, BackendError> {
        self.inner.list(t)
    }
    fn read(&self, t: FileType, name: &str) -> Result<Vec<u8>, BackendError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.inner.read(t, name)
    }
    fn read_range(
        &self,
        t: FileType,
        name: &str,
        offset: u64,
        len: u64,
    ) -> Result<Vec<u8>, BackendError> {
        self.range_reads.fetch_add(1, Ordering::SeqCst);
        self.inner.read_range(t, name, offset, len)
    }
    fn stat(&self, t: FileType, name: &str) -> Result<u64, BackendError> {
        self.inner.stat(t, name)
    }
    fn write(&self, t: FileType, name: &str, data: &[u8]) -> Result<(), BackendError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.inner.write(t, name, data)
    }
    fn remove(&self, t: FileType, name: &str) -> Result<(), BackendError> {
        self.inner.remove(t, name)
    }
}

const REPO_ID: &str = "5f3b6a54e5cd8b2e4f8e4a1b55f3c2e14e5b8a1b2c3d4e5f60718293a4b5c6d7";

struct Fixture {
    _tmp: tempfile::TempDir,
    base: PathBuf,
    counting: Arc<Counting>,
    cache: CachedBackend,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let local = LocalBackend::new(tmp.path().join("repo"));
    local.create().unwrap();
    let counting = Arc::new(Counting {
        inner: local,
        reads: AtomicUsize::new(0),
        range_reads: AtomicUsize::new(0),
        writes: AtomicUsize::new(0),
    });
    let base = tmp.path().join("cache");
    let cache = CachedBackend::new(counting.clone(), &base, REPO_ID).unwrap();
    Fixture {
        _tmp: tmp,
        base,
        counting,
        cache,
    }
}

impl Fixture {
    /// Store a file in the repository behind the cache's back; returns its name.
    fn put(&self, t: FileType, data: &[u8]) -> String {
        let name = Id::hash(data).to_hex();
        self.counting.inner.write(t, &name, data).unwrap();
        name
    }
    /// A second cache on the same directory and repository (fresh in-memory state).
    fn reopen(&self) -> CachedBackend {
        CachedBackend::new(self.counting.clone(), &self.base, REPO_ID).unwrap()
    }
    fn entry(&self, dir: &str, name: &str) -> PathBuf {
        self.base
            .join(REPO_ID)
            .join(dir)
            .join(&name[..2])
            .join(name)
    }
}

fn mode(p: &Path) -> u32 {
    fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn layout_and_modes_follow_restic() {
    let f = fixture();
    let tag = fs::read_to_string(f.base.join("CACHEDIR.TAG")).unwrap();
    assert!(tag.starts_with("Signature: 8a477f597d28d172789f06886806bc55\n"));
    let dir = f.base.join(REPO_ID);
    assert_eq!(f.cache.dir(), dir);
    assert_eq!(fs::read_to_string(dir.join("version")).unwrap(), "1");
    assert_eq!(mode(&f.base.join("CACHEDIR.TAG")), 0o644);
    assert_eq!(mode(&dir.join("version")), 0o644);
    for d in [&f.base, &dir, &dir.join("snapshots"), &dir.join("index")] {
        assert_eq!(mode(d), 0o700, "{}", d.display());
    }
    assert_eq!(mode(&dir.join("data")), 0o700);

    let snap = f.put(FileType::Snapshot, b"snapshot one");
    let idx = f.put(FileType::Index, b"index one");
    f.cache.read(FileType::Snapshot, &snap).unwrap();
    f.cache.read(FileType::Index, &idx).unwrap();
    for (t, d, n) in [
        (FileType::Snapshot, "snapshots", &snap),
        (FileType::Index, "index", &idx),
    ] {
        let p = f.entry(d, n);
        assert_eq!(f.cache.cache_path(t, n), Some(p.clone()));
        assert_eq!(fs::read(&p).unwrap(), f.counting.inner.read(t, n).unwrap());
        assert_eq!(mode(&p), 0o600);
        assert_eq!(mode(p.parent().unwrap()), 0o700);
    }
    // No temporary files are left behind.
    let leftovers: Vec<_> = fs::read_dir(f.entry("snapshots", &snap).parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers.len(), 1, "{leftovers:?}");
    // Config, keys and locks are never cached.
    assert!(f.cache.cache_path(FileType::Config, "config").is_none());
    assert!(f.cache.cache_path(FileType::Key, &snap).is_none());
    assert!(f.cache.cache_path(FileType::Lock, &snap).is_none());
    assert!(f.cache.cache_path(FileType::Snapshot, "../etc").is_none());

    // Using the cache again touches the repository directory's mtime.
    let old = SystemTime::now() - Duration::from_secs(40 * 86400);
    File::open(&dir)
        .unwrap()
        .set_times(fs::FileTimes::new().set_modified(old))
        .unwrap();
    let _again = f.reopen();
    let mtime = fs::metadata(&dir).unwrap().modified().unwrap();
    assert!(mtime > SystemTime::now() - Duration::from_secs(3600));
}

#[test]
fn second_read_is_served_from_the_cache() {
    let f = fixture();
    let snap = f.put(FileType::Snapshot, b"a snapshot file");
    let idx = f.put(FileType::Index, b"an index file");
    assert_eq!(
        f.cache.read(FileType::Snapshot, &snap).unwrap(),
        b"a snapshot file"
    );
    assert_eq!(
        f.cache.read(FileType::Index, &idx).unwrap(),
        b"an index file"
    );
    assert_eq!(f.counting.reads(), 2);
    assert_eq!(
        f.cache.read(FileType::Snapshot, &snap).unwrap(),
        b"a snapshot file"
    );
    assert_eq!(
        f.cache.read(FileType::Index, &idx).unwrap(),
        b"an index file"
    );
    assert_eq!(
        f.cache.read_range(FileType::Index, &idx, 3, 5).unwrap(),
        b"index"
    );
    assert!(f.cache.read_range(FileType::Index, &idx, 3, 50).is_err());
    // A new process (fresh in-memory state) is served from disk too.
    let again = f.reopen();
    assert_eq!(again.read(FileType::Index, &idx).unwrap(), b"an index file");
    assert_eq!(f.counting.reads(), 2);
    assert_eq!(f.counting.range_reads(), 0);
    // Uncached types always go to the repository.
    f.cache.read(FileType::Config, "config").unwrap_err();
    assert_eq!(f.counting.reads(), 3);
}

#[test]
fn missing_files_are_reported_and_not_cached() {
    let f = fixture();
    let name = Id::hash(b"nothing").to_hex();
    assert!(
        f.cache
            .read(FileType::Snapshot, &name)
            .unwrap_err()
            .is_not_found()
    );
    assert!(!f.cache.is_cached(FileType::Snapshot, &name));
}

#[test]
fn writes_go_through_and_fill_the_cache() {
    let f = fixture();
    let data = b"new snapshot".to_vec();
    let name = Id::hash(&data).to_hex();
    f.cache.write(FileType::Snapshot, &name, &data).unwrap();
    assert_eq!(f.counting.writes(), 1);
    assert_eq!(
        f.counting.inner.read(FileType::Snapshot, &name).unwrap(),
        data
    );
    assert!(f.cache.is_cached(FileType::Snapshot, &name));
    assert_eq!(f.cache.read(FileType::Snapshot, &name).unwrap(), data);
    assert_eq!(f.counting.reads(), 0);

    // Packs and locks are written through but not cached.
    let pack = b"pack bytes".to_vec();
    let pname = Id::hash(&pack).to_hex();
    f.cache.write(FileType::Pack, &pname, &pack).unwrap();
    f.cache.write(FileType::Lock, &pname, &pack).unwrap();
    assert_eq!(f.counting.writes(), 3);
    assert!(!f.cache.is_cached(FileType::Pack, &pname));
    assert_eq!(f.counting.inner.read(FileType::Lock, &pname).unwrap(), pack);

    // Removing through the cache removes both copies.
    f.cache.remove(FileType::Snapshot, &name).unwrap();
    assert!(!f.cache.is_cached(FileType::Snapshot, &name));
    assert!(
        f.counting
            .inner
            .read(FileType::Snapshot, &name)
            .unwrap_err()
            .is_not_found()
    );
}

#[test]
fn listing_removes_stale_cache_entries() {
    let f = fixture();
    let keep = f.put(FileType::Snapshot, b"keep me");
    let gone = f.put(FileType::Snapshot, b"forgotten elsewhere");
    let idx_gone = f.put(FileType::Index, b"index compacted elsewhere");
    for (t, n) in [
        (FileType::Snapshot, &keep),
        (FileType::Snapshot, &gone),
        (FileType::Index, &idx_gone),
    ] {
        f.cache.read(t, n).unwrap();
        assert!(f.cache.is_cached(t, n));
    }
    // Another client removes files from the repository.
    f.counting.inner.remove(FileType::Snapshot, &gone).unwrap();
    f.counting.inner.remove(FileType::Index, &idx_gone).unwrap();
    // Junk in the cache directory is left alone.
    let junk = f.entry("snapshots", &keep).with_file_name("not-an-id");
    fs::write(&junk, b"x").unwrap();

    let listed = f.cache.list(FileType::Snapshot).unwrap();
    assert_eq!(listed, vec![(keep.clone(), 7)]);
    assert!(f.cache.is_cached(FileType::Snapshot, &keep));
    assert!(!f.cache.is_cached(FileType::Snapshot, &gone));
    assert!(junk.exists());
    // Index entries are only checked when index files are listed.
    assert!(f.cache.is_cached(FileType::Index, &idx_gone));
    assert!(f.cache.list(FileType::Index).unwrap().is_empty());
    assert!(!f.cache.is_cached(FileType::Index, &idx_gone));

    // stat of a file that is gone drops its cache entry too.
    let also = f.put(FileType::Snapshot, b"stat me");
    f.cache.read(FileType::Snapshot, &also).unwrap();
    assert_eq!(f.cache.stat(FileType::Snapshot, &also).unwrap(), 7);
    f.counting.inner.remove(FileType::Snapshot, &also).unwrap();
    assert!(
        f.cache
            .stat(FileType::Snapshot, &also)
            .unwrap_err()
            .is_not_found()
    );
    assert!(!f.cache.is_cached(FileType::Snapshot, &also));
}

#[test]
fn damaged_cache_entry_is_fetched_again() {
    let f = fixture();
    let data = b"the real index".to_vec();
    let name = f.put(FileType::Index, &data);
    f.cache.read(FileType::Index, &name).unwrap();
    let p = f.entry("index", &name);
    fs::write(&p, b"the real indeX").unwrap();
    assert_eq!(f.cache.read(FileType::Index, &name).unwrap(), data);
    assert_eq!(f.counting.reads(), 2);
    // The entry was replaced by a good copy.
    assert_eq!(fs::read(&p).unwrap(), data);
    assert_eq!(f.cache.read(FileType::Index, &name).unwrap(), data);
    assert_eq!(f.counting.reads(), 2);
    // A truncated entry is also refetched.
    fs::write(&p, b"").unwrap();
    assert_eq!(f.cache.read(FileType::Index, &name).unwrap(), data);
    assert_eq!(f.counting.reads(), 3);
}

#[test]
fn damaged_repository_file_is_not_cached() {
    let f = fixture();
    let name = Id::hash(b"expected").to_hex();
    f.counting
        .inner
        .write(FileType::Snapshot, &name, b"something else")
        .unwrap();
    assert_eq!(
        f.cache.read(FileType::Snapshot, &name).unwrap(),
        b"something else"
    );
    assert!(!f.cache.is_cached(FileType::Snapshot, &name));
}

fn pack_bytes(tag: u8) -> Vec<u8> {
    (0..10_000u32).map(|i| (i as u8) ^ tag).collect()
}

#[test]
fn tree_packs_are_cached_whole_and_served_from_the_cache() {
    let f = fixture();
    let tree = pack_bytes(1);
    let data = pack_bytes(2);
    let tname = f.put(FileType::Pack, &tree);
    let dname = f.put(FileType::Pack, &data);
    f.cache.set_tree_packs([tname.clone()]);

    assert_eq!(
        f.cache.read_range(FileType::Pack, &tname, 100, 50).unwrap(),
        &tree[100..150]
    );
    assert_eq!(f.counting.reads(), 1, "whole tree pack fetched once");
    assert_eq!(f.counting.range_reads(), 0);
    assert_eq!(fs::read(f.entry("data", &tname)).unwrap(), tree);
    assert_eq!(mode(&f.entry("data", &tname)), 0o600);
    assert_eq!(
        f.cache
            .read_range(FileType::Pack, &tname, 9_990, 10)
            .unwrap(),
        &tree[9_990..]
    );
    // A range past the end falls back to the repository, which reports the error.
    assert!(
        f.cache
            .read_range(FileType::Pack, &tname, 9_990, 11)
            .is_err()
    );
    assert_eq!(f.counting.range_reads(), 1);
    assert_eq!(f.cache.read(FileType::Pack, &tname).unwrap(), tree);
    assert_eq!(f.counting.reads(), 1);

    // Data packs are read through, range by range, and never cached.
    assert_eq!(
        f.cache.read_range(FileType::Pack, &dname, 0, 10).unwrap(),
        &data[..10]
    );
    f.cache.read(FileType::Pack, &dname).unwrap();
    assert_eq!(f.counting.range_reads(), 2);
    assert_eq!(f.counting.reads(), 2);
    assert!(!f.cache.is_cached(FileType::Pack, &dname));

    // The caller can ask for any pack to be cached.
    assert!(f.cache.cache_pack(&dname).unwrap());
    assert!(f.cache.cache_pack(&dname).unwrap());
    assert_eq!(f.counting.reads(), 3);
    assert_eq!(
        f.cache.read_range(FileType::Pack, &dname, 5, 5).unwrap(),
        &data[5..10]
    );
    assert_eq!(f.counting.range_reads(), 2);

    // A new tree-pack set drops cached packs that are no longer tree packs.
    f.cache.set_tree_packs([dname.clone()]);
    assert!(!f.cache.is_cached(FileType::Pack, &tname));
    assert!(f.cache.is_cached(FileType::Pack, &dname));
    assert!(
        f.cache
            .cache_pack(&Id::hash(b"missing").to_hex())
            .unwrap_err()
            .is_not_found()
    );
}

#[test]
fn damaged_cached_pack_is_dropped_and_fetched_again() {
    let f = fixture();
    let tree = pack_bytes(3);
    let name = f.put(FileType::Pack, &tree);
    f.cache.set_tree_packs([name.clone()]);
    f.cache.read_range(FileType::Pack, &name, 0, 4).unwrap();
    assert_eq!(f.counting.reads(), 1);
    let p = f.entry("data", &name);
    let mut bad = tree.clone();
    bad[5000] ^= 0xff;
    fs::write(&p, &bad).unwrap();

    // A new process verifies the cached copy before using it.
    let again = f.reopen();
    again.set_tree_packs([name.clone()]);
    assert_eq!(
        again.read_range(FileType::Pack, &name, 4990, 20).unwrap(),
        &tree[4990..5010]
    );
    assert_eq!(f.counting.reads(), 2);
    assert_eq!(fs::read(&p).unwrap(), tree);

    // Without the tree-pack mark a damaged copy is dropped and the range read through.
    fs::write(&p, &bad).unwrap();
    let third = f.reopen();
    assert_eq!(
        third.read_range(FileType::Pack, &name, 4990, 20).unwrap(),
        &tree[4990..5010]
    );
    assert_eq!(f.counting.range_reads(), 1);
    assert!(!third.is_cached(FileType::Pack, &name));
}

#[test]
fn concurrent_readers_download_a_tree_pack_once() {
    let f = fixture();
    let tree = pack_bytes(4);
    let name = f.put(FileType::Pack, &tree);
    f.cache.set_tree_packs([name.clone()]);
    std::thread::scope(|s| {
        for i in 0..8u64 {
            let (cache, name, tree) = (&f.cache, &name, &tree);
            s.spawn(move || {
                let off = i * 100;
                let got = cache.read_range(FileType::Pack, name, off, 100).unwrap();
                assert_eq!(got, &tree[off as usize..off as usize + 100]);
            });
        }
    });
    assert_eq!(f.counting.reads(), 1);
    assert_eq!(f.counting.range_reads(), 0);
}

#[test]
fn unwritable_cache_still_works() {
    let tmp = tempfile::tempdir().unwrap();
    let local = Arc::new(LocalBackend::new(tmp.path().join("repo")));
    local.create().unwrap();
    // The base "directory" is a regular file: nothing can be created below it (even as root).
    let base = tmp.path().join("cache");
    fs::write(&base, b"not a directory").unwrap();
    let cache = CachedBackend::new(local.clone(), &base, REPO_ID).unwrap();
    let data = b"snapshot".to_vec();
    let name = Id::hash(&data).to_hex();
    cache.write(FileType::Snapshot, &name, &data).unwrap();
    assert_eq!(cache.read(FileType::Snapshot, &name).unwrap(), data);
    assert_eq!(
        cache.read_range(FileType::Snapshot, &name, 4, 4).unwrap(),
        b"shot"
    );
    assert_eq!(cache.list(FileType::Snapshot).unwrap().len(), 1);
    let pack = pack_bytes(5);
    let pname = Id::hash(&pack).to_hex();
    local.write(FileType::Pack, &pname, &pack).unwrap();
    cache.set_tree_packs([pname.clone()]);
    assert!(!cache.cache_pack(&pname).unwrap());
    assert_eq!(
        cache.read_range(FileType::Pack, &pname, 10, 10).unwrap(),
        &pack[10..20]
    );
    cache.remove(FileType::Snapshot, &name).unwrap();
    assert!(cache.list(FileType::Snapshot).unwrap().is_empty());

    // A cache that breaks after it was set up: the index directory becomes a file.
    let f = fixture();
    let idx_dir = f.base.join(REPO_ID).join("index");
    fs::remove_dir_all(&idx_dir).unwrap();
    fs::write(&idx_dir, b"x").unwrap();
    let idx = b"index".to_vec();
    let iname = Id::hash(&idx).to_hex();
    f.cache.write(FileType::Index, &iname, &idx).unwrap();
    assert_eq!(f.cache.read(FileType::Index, &iname).unwrap(), idx);
    assert_eq!(f.cache.read(FileType::Index, &iname).unwrap(), idx);
    assert_eq!(f.counting.reads(), 2);
    assert_eq!(f.cache.list(FileType::Index).unwrap().len(), 1);
}

#[test]
fn bad_repository_id_and_newer_layout_are_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let local: Arc<dyn Backend> = Arc::new(LocalBackend::new(tmp.path().join("repo")));
    for id in ["", ".", "..", "a/b"] {
        assert!(
            CachedBackend::new(local.clone(), tmp.path(), id).is_err(),
            "{id:?}"
        );
    }
    let dir = tmp.path().join(REPO_ID);
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("version"), b"2").unwrap();
    assert!(CachedBackend::new(local.clone(), tmp.path(), REPO_ID).is_err());
    fs::write(dir.join("version"), b"1").unwrap();
    assert!(CachedBackend::new(local, tmp.path(), REPO_ID).is_ok());
}

#[test]
fn existing_tag_is_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let local: Arc<dyn Backend> = Arc::new(LocalBackend::new(tmp.path().join("repo")));
    let tag = "Signature: 8a477f597d28d172789f06886806bc55\n# restic\n";
    fs::write(tmp.path().join("CACHEDIR.TAG"), tag).unwrap();
    CachedBackend::new(local, tmp.path(), REPO_ID).unwrap();
    assert_eq!(
        fs::read_to_string(tmp.path().join("CACHEDIR.TAG")).unwrap(),
        tag
    );
}
