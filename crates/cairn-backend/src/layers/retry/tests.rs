use super::*;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

/// What a scripted call does before reaching the store.
#[derive(Debug, Clone, Copy)]
enum Step {
    /// Fail with this error kind before doing anything.
    Fail(io::ErrorKind),
    /// Do the operation, then fail (the answer is "lost").
    DoThenFail,
    /// Return a truncated result (reads only).
    Short,
}

/// An in-memory backend that follows a script of failures.
#[derive(Debug, Default)]
struct Scripted {
    files: Mutex<HashMap<(FileType, String), Vec<u8>>>,
    script: Mutex<VecDeque<Step>>,
    calls: AtomicU32,
    /// Refuse overwrites like rest-server (403).
    no_overwrite: bool,
}

impl Scripted {
    fn with(steps: &[Step]) -> Scripted {
        Scripted {
            script: Mutex::new(steps.iter().copied().collect()),
            ..Default::default()
        }
    }

    fn next(&self) -> Option<Step> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.script.lock().unwrap().pop_front()
    }

    /// For stat and list: only a scripted failure applies (other steps stay queued).
    fn next_failure(&self) -> Option<io::ErrorKind> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let mut script = self.script.lock().unwrap();
        match script.front() {
            Some(Step::Fail(k)) => {
                let k = *k;
                script.pop_front();
                Some(k)
            }
            _ => None,
        }
    }

    fn err(kind: io::ErrorKind) -> BackendError {
        BackendError::Io {
            path: "scripted".into(),
            source: io::Error::new(kind, "scripted failure"),
        }
    }

    fn get(&self, t: FileType, name: &str) -> Result<Vec<u8>, BackendError> {
        self.files
            .lock()
            .unwrap()
            .get(&(t, name.to_string()))
            .cloned()
            .ok_or_else(|| BackendError::NotFound(name.to_string()))
    }

    fn read_step(&self, data: Result<Vec<u8>, BackendError>) -> Result<Vec<u8>, BackendError> {
        match self.next() {
            Some(Step::Fail(k)) => Err(Self::err(k)),
            Some(Step::DoThenFail) => {
                let _ = data?;
                Err(Self::err(io::ErrorKind::ConnectionReset))
            }
            Some(Step::Short) => {
                let mut d = data?;
                d.pop();
                Ok(d)
            }
            None => data,
        }
    }
}

impl Backend for Scripted {
    fn location(&self) -> String {
        "scripted".into()
    }
    fn create(&self) -> Result<(), BackendError> {
        Ok(())
    }
    fn list(&self, t: FileType) -> Result<Vec<(String, u64)>, BackendError> {
        if let Some(k) = self.next_failure() {
            return Err(Self::err(k));
        }
        Ok(self
            .files
            .lock()
            .unwrap()
            .iter()
            .filter(|((ft, _), _)| *ft == t)
            .map(|((_, n), d)| (n.clone(), d.len() as u64))
            .collect())
    }
    fn read(&self, t: FileType, name: &str) -> Result<Vec<u8>, BackendError> {
        self.read_step(self.get(t, name))
    }
    fn read_range(
        &self,
        t: FileType,
        name: &str,
        offset: u64,
        len: u64,
    ) -> Result<Vec<u8>, BackendError> {
        let d = self.get(t, name).map(|d| {
            d.get(offset as usize..(offset + len) as usize)
                .unwrap_or_default()
                .to_vec()
        });
        self.read_step(d)
    }
    fn stat(&self, t: FileType, name: &str) -> Result<u64, BackendError> {
        if let Some(k) = self.next_failure() {
            return Err(Self::err(k));
        }
        self.get(t, name).map(|d| d.len() as u64)
    }
    fn write(&self, t: FileType, name: &str, data: &[u8]) -> Result<(), BackendError> {
        let step = self.next();
        if let Some(Step::Fail(k)) = step {
            return Err(Self::err(k));
        }
        let mut files = self.files.lock().unwrap();
        if self.no_overwrite && files.contains_key(&(t, name.to_string())) {
            return Err(status_error("POST scripted", 403, "403 Forbidden"));
        }
        files.insert((t, name.to_string()), data.to_vec());
        match step {
            Some(Step::DoThenFail) => Err(Self::err(io::ErrorKind::ConnectionReset)),
            _ => Ok(()),
        }
    }
    fn remove(&self, t: FileType, name: &str) -> Result<(), BackendError> {
        let step = self.next();
        if let Some(Step::Fail(k)) = step {
            return Err(Self::err(k));
        }
        let removed = self.files.lock().unwrap().remove(&(t, name.to_string()));
        match (step, removed) {
            (Some(Step::DoThenFail), _) => Err(Self::err(io::ErrorKind::ConnectionReset)),
            (_, None) => Err(BackendError::NotFound(name.to_string())),
            _ => Ok(()),
        }
    }
}

fn fast(attempts: u32) -> RetryPolicy {
    RetryPolicy {
        attempts,
        initial: Duration::from_millis(1),
        max_delay: Duration::from_millis(4),
        jitter: false,
    }
}

fn retrying(s: Scripted, attempts: u32) -> (Arc<Scripted>, RetryBackend) {
    let s = Arc::new(s);
    (s.clone(), RetryBackend::new(s, fast(attempts)))
}

const DATA: &[u8] = b"some file content";

fn id_name(data: &[u8]) -> String {
    Id::hash(data).to_hex()
}

#[test]
fn backoff_doubles_up_to_the_cap() {
    let p = RetryPolicy::default();
    let ms: Vec<u128> = (1..=9).map(|r| p.base_delay(r).as_millis()).collect();
    assert_eq!(
        ms,
        [500, 1000, 2000, 4000, 8000, 15000, 15000, 15000, 15000]
    );
    assert_eq!(p.base_delay(1000), Duration::from_secs(15));
    for r in 1..=9 {
        let d = p.delay(r);
        assert!(d <= p.max_delay, "{d:?}");
        assert!(d >= p.base_delay(r).mul_f64(0.74), "{d:?}");
    }
    assert_eq!(p.attempts, 10);
}

#[test]
fn policy_from_string() {
    let p = RetryPolicy::parse("attempts=3,initial_ms=10,max_ms=20,jitter=0").unwrap();
    assert_eq!(
        p,
        RetryPolicy {
            attempts: 3,
            initial: Duration::from_millis(10),
            max_delay: Duration::from_millis(20),
            jitter: false
        }
    );
    assert_eq!(RetryPolicy::parse("").unwrap(), RetryPolicy::default());
    assert!(RetryPolicy::parse("attempts").is_err());
    assert!(RetryPolicy::parse("bogus=1").is_err());
}

#[test]
fn classification() {
    use io::ErrorKind as K;
    let io = |k| BackendError::Io {
        path: "p".into(),
        source: io::Error::new(k, "x"),
    };
    for k in [
        K::ConnectionReset,
        K::ConnectionRefused,
        K::ConnectionAborted,
        K::TimedOut,
        K::BrokenPipe,
        K::UnexpectedEof,
        K::Interrupted,
        K::Other,
    ] {
        assert!(is_transient(&io(k)), "{k:?} is transient");
    }
    for k in [
        K::PermissionDenied,
        K::InvalidInput,
        K::StorageFull,
        K::NotFound,
    ] {
        assert!(!is_transient(&io(k)), "{k:?} is permanent");
    }
    assert!(!is_transient(&BackendError::NotFound("x".into())));
    assert!(!is_transient(&BackendError::AlreadyExists("x".into())));
    assert!(is_transient(&BackendError::Other("x".into())));
    // HTTP statuses.
    assert!(status_error("GET x", 404, "404").is_not_found());
    for s in [401, 403, 405, 416, 507] {
        assert!(
            !is_transient(&status_error("GET x", s, "")),
            "{s} is permanent"
        );
    }
    for s in [400, 408, 429, 500, 502, 503, 504] {
        assert!(
            is_transient(&status_error("GET x", s, "")),
            "{s} is transient"
        );
    }
}

#[test]
fn transient_errors_are_retried() {
    use io::ErrorKind as K;
    let (s, b) = retrying(
        Scripted::with(&[
            Step::Fail(K::ConnectionReset),
            Step::Fail(K::TimedOut),
            Step::Fail(K::Other),
        ]),
        5,
    );
    let name = id_name(DATA);
    b.write(FileType::Pack, &name, DATA).unwrap();
    assert_eq!(s.calls.load(Ordering::SeqCst), 4);
    assert_eq!(b.read(FileType::Pack, &name).unwrap(), DATA);
}

#[test]
fn permanent_errors_are_not_retried() {
    let (s, b) = retrying(
        Scripted::with(&[Step::Fail(io::ErrorKind::PermissionDenied)]),
        5,
    );
    let e = b.list(FileType::Snapshot).unwrap_err();
    assert!(e.to_string().contains("scripted failure"), "{e}");
    assert_eq!(s.calls.load(Ordering::SeqCst), 1);
    // Not found: one call, still a not-found error.
    let (s, b) = retrying(Scripted::default(), 5);
    assert!(
        b.stat(FileType::Pack, &id_name(b"x"))
            .unwrap_err()
            .is_not_found()
    );
    assert!(
        b.read(FileType::Pack, &id_name(b"x"))
            .unwrap_err()
            .is_not_found()
    );
    assert_eq!(s.calls.load(Ordering::SeqCst), 2);
}

#[test]
fn giving_up_names_the_file_and_the_attempts() {
    let k = io::ErrorKind::ConnectionRefused;
    let (s, b) = retrying(Scripted::with(&[Step::Fail(k); 10]), 3);
    let name = id_name(DATA);
    let e = b.write(FileType::Index, &name, DATA).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains(&format!("write index/{name}")), "{msg}");
    assert!(msg.contains("after 3 attempts"), "{msg}");
    assert_eq!(s.calls.load(Ordering::SeqCst), 3);
    assert!(matches!(e, BackendError::Io { ref source, .. } if source.kind() == k));
}

#[test]
fn short_reads_are_retried() {
    let (s, b) = retrying(Scripted::default(), 5);
    let name = id_name(DATA);
    b.write(FileType::Pack, &name, DATA).unwrap();
    // read_range: the length is checked.
    s.script.lock().unwrap().extend([Step::Short, Step::Short]);
    assert_eq!(
        b.read_range(FileType::Pack, &name, 2, 5).unwrap(),
        &DATA[2..7]
    );
    assert_eq!(s.calls.load(Ordering::SeqCst), 1 + 3);
    // read: the content must match its name (a mismatch costs a stat).
    s.script.lock().unwrap().extend([Step::Short, Step::Short]);
    assert_eq!(b.read(FileType::Pack, &name).unwrap(), DATA);
    assert_eq!(s.calls.load(Ordering::SeqCst), 1 + 3 + 2 * 2 + 1);
}

#[test]
fn damaged_files_are_returned_as_they_are() {
    // A stored file whose content does not match its name (but has the stored size) is
    // handed to the caller, whose checks report it, instead of failing the read.
    let (s, b) = retrying(Scripted::default(), 10);
    let name = id_name(b"other content");
    b.write(FileType::Pack, &name, DATA).unwrap();
    let before = s.calls.load(Ordering::SeqCst);
    assert_eq!(b.read(FileType::Pack, &name).unwrap(), DATA);
    // One read and one stat.
    assert_eq!(s.calls.load(Ordering::SeqCst) - before, 2);
    // Short reads of such a file are still detected by the size.
    s.script.lock().unwrap().push_back(Step::Short);
    assert_eq!(b.read(FileType::Pack, &name).unwrap(), DATA);
}

#[test]
fn config_reads_are_checked_against_the_size() {
    let (s, b) = retrying(Scripted::default(), 5);
    b.write(FileType::Config, "config", DATA).unwrap();
    s.script.lock().unwrap().push_back(Step::Short);
    assert_eq!(b.read(FileType::Config, "config").unwrap(), DATA);
}

#[test]
fn a_write_whose_answer_was_lost_is_accepted() {
    // The server stored the file but the answer was lost; the retry is refused as an
    // overwrite (rest-server answers 403); the layer sees the file is there and succeeds.
    let s = Scripted {
        no_overwrite: true,
        ..Scripted::with(&[Step::DoThenFail])
    };
    let (s, b) = retrying(s, 5);
    let name = id_name(DATA);
    b.write(FileType::Snapshot, &name, DATA).unwrap();
    assert_eq!(s.get(FileType::Snapshot, &name).unwrap(), DATA);
    // The same for config (compared by content).
    s.script.lock().unwrap().push_back(Step::DoThenFail);
    b.write(FileType::Config, "config", DATA).unwrap();
    // But a different file under that name stays an error.
    let other = Scripted {
        no_overwrite: true,
        ..Scripted::with(&[Step::Fail(io::ErrorKind::ConnectionReset)])
    };
    let (other, b) = retrying(other, 5);
    other
        .files
        .lock()
        .unwrap()
        .insert((FileType::Config, "config".into()), b"old".to_vec());
    let e = b.write(FileType::Config, "config", DATA).unwrap_err();
    assert!(e.to_string().contains("403"), "{e}");
}

#[test]
fn a_remove_whose_answer_was_lost_is_accepted() {
    let (s, b) = retrying(Scripted::default(), 5);
    let name = id_name(DATA);
    b.write(FileType::Lock, &name, DATA).unwrap();
    s.script.lock().unwrap().push_back(Step::DoThenFail);
    b.remove(FileType::Lock, &name).unwrap();
    // Removing a missing file on the first attempt is still "not found".
    assert!(b.remove(FileType::Lock, &name).unwrap_err().is_not_found());
}

#[test]
fn listing_is_retried() {
    let (s, b) = retrying(Scripted::with(&[Step::Fail(io::ErrorKind::BrokenPipe)]), 3);
    b.write(FileType::Key, &id_name(DATA), DATA).unwrap();
    // The write consumed the failure; add another for the listing.
    s.script
        .lock()
        .unwrap()
        .push_back(Step::Fail(io::ErrorKind::TimedOut));
    assert_eq!(b.list(FileType::Key).unwrap().len(), 1);
}

#[test]
fn retries_go_through_the_faulty_layer() {
    let dir = tempfile::tempdir().unwrap();
    let local = Arc::new(crate::LocalBackend::new(dir.path().join("repo")));
    let faulty = Arc::new(crate::layers::FaultyBackend::new(
        local,
        crate::layers::FaultConfig {
            fail: 0.3,
            short: 0.2,
            seed: 7,
            ..Default::default()
        },
    ));
    let b = RetryBackend::new(faulty.clone(), fast(12));
    crate::conformance::run_all(&b);
    let c = faulty.counts();
    assert!(c.failed > 10 && c.short > 3, "{c:?}");
}

/// A backend whose stat always fails with an unclassified error.
#[derive(Debug, Default)]
struct AlwaysOther(AtomicU32);

impl Backend for AlwaysOther {
    fn location(&self) -> String {
        "other".into()
    }
    fn create(&self) -> Result<(), BackendError> {
        Ok(())
    }
    fn list(&self, _t: FileType) -> Result<Vec<(String, u64)>, BackendError> {
        Ok(vec![])
    }
    fn read(&self, _t: FileType, _n: &str) -> Result<Vec<u8>, BackendError> {
        Ok(vec![])
    }
    fn read_range(
        &self,
        _t: FileType,
        _n: &str,
        _o: u64,
        _l: u64,
    ) -> Result<Vec<u8>, BackendError> {
        Ok(vec![])
    }
    fn stat(&self, _t: FileType, _n: &str) -> Result<u64, BackendError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Err(BackendError::Other("something odd".into()))
    }
    fn write(&self, _t: FileType, _n: &str, _d: &[u8]) -> Result<(), BackendError> {
        Ok(())
    }
    fn remove(&self, _t: FileType, _n: &str) -> Result<(), BackendError> {
        Ok(())
    }
}

#[test]
fn unclassified_errors_get_a_few_attempts() {
    let inner = Arc::new(AlwaysOther::default());
    let b = RetryBackend::new(inner.clone(), fast(10));
    let e = b.stat(FileType::Pack, "x").unwrap_err();
    assert_eq!(inner.0.load(Ordering::SeqCst), UNCLASSIFIED_ATTEMPTS);
    assert!(e.to_string().contains("something odd"), "{e}");
    assert!(e.to_string().contains("after 3 attempts"), "{e}");
}
