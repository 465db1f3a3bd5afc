//! Request paths: which repository folder and which object a URL path addresses.
//!
//! Follows rest-server: the path may start with up to [`MAX_FOLDER_DEPTH`] folder names that
//! select a repository below the data directory (`/alice/laptop/keys/<id>`); the first segment
//! that is a type name (`data`, `keys`, `locks`, `snapshots`, `index`, `config`) ends the
//! folder part.

/// How many folder levels a repository path may have (`/`, `/a`, `/a/b`).
pub const MAX_FOLDER_DEPTH: usize = 2;

/// restic's file types stored in sub-directories.
pub const OBJECT_TYPES: [&str; 5] = ["data", "index", "keys", "locks", "snapshots"];

/// What the remainder of a request path (after the repository folder) addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Object {
    /// `/`: the repository itself (create).
    Root,
    /// `/config`.
    Config,
    /// `/{type}/`: a listing.
    List(&'static str),
    /// `/{type}/{id}`: one file.
    File(&'static str, String),
}

/// A parsed request path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Repository folder names below the data directory (validated, possibly empty).
    pub folder: Vec<String>,
    /// The object, or `None` when the remainder matches nothing (404).
    pub object: Option<Object>,
}

impl Target {
    /// The repository name as used in metrics labels (`a/b`).
    pub fn repo_label(&self) -> String {
        self.folder.join("/")
    }
}

/// Decode `%xx` escapes; `None` for malformed escapes, invalid UTF-8 or NUL bytes.
pub fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c == b'%' {
            let hi = b.get(i + 1).and_then(|x| (*x as char).to_digit(16))?;
            let lo = b.get(i + 2).and_then(|x| (*x as char).to_digit(16))?;
            out.push((hi * 16 + lo) as u8);
            i += 3;
        } else {
            out.push(c);
            i += 1;
        }
    }
    if out.contains(&0) {
        return None;
    }
    String::from_utf8(out).ok()
}

fn is_type_name(s: &str) -> bool {
    s == "config" || OBJECT_TYPES.contains(&s)
}

/// A folder name is acceptable: not empty, not `.`/`..` or hidden (so `.htpasswd` and temp
/// files can never be addressed), no separators or control characters.
fn valid_folder(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('.')
        && !s.contains(['/', '\\'])
        && !s.chars().any(char::is_control)
}

/// True for a restic ID: 64 lowercase hex characters.
pub fn is_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
}

/// Parse the remainder after the folder part.
fn parse_object(rest: &str) -> Option<Object> {
    if rest == "/" {
        return Some(Object::Root);
    }
    if rest == "/config" {
        return Some(Object::Config);
    }
    let inner = rest.strip_prefix('/')?;
    let (tpe, name) = inner.split_once('/')?;
    let tpe = OBJECT_TYPES.into_iter().find(|t| *t == tpe)?;
    if name.is_empty() {
        Some(Object::List(tpe))
    } else if is_id(name) {
        Some(Object::File(tpe, name.to_string()))
    } else {
        None
    }
}

/// Parse a raw (still percent-encoded) URL path. `None` means the path is invalid (404).
pub fn parse(raw: &str) -> Option<Target> {
    let path = percent_decode(raw)?;
    if !path.starts_with('/') {
        return None;
    }
    // Like rest-server: split into at most MAX_FOLDER_DEPTH + 2 pieces; every piece but the
    // first (empty) and the last (the remainder) is a folder candidate until a type name.
    let pieces: Vec<&str> = path.splitn(MAX_FOLDER_DEPTH + 2, '/').collect();
    let candidates = pieces.get(1..pieces.len().saturating_sub(1)).unwrap_or(&[]);
    let mut folder = Vec::new();
    for name in candidates {
        if is_type_name(name) {
            break;
        }
        folder.push((*name).to_string());
    }
    if !folder.iter().all(|f| valid_folder(f)) {
        return None;
    }
    let prefix_len: usize = folder.iter().map(|f| f.len() + 1).sum();
    let rest = path.get(prefix_len..).unwrap_or("");
    Some(Target {
        object: parse_object(rest),
        folder,
    })
}

/// Whether the query string contains `create=true` (first `create` value, as Go's
/// `Query().Get`).
pub fn wants_create(query: Option<&str>) -> bool {
    query
        .unwrap_or("")
        .split('&')
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            Some((percent_decode(k)?, percent_decode(v)?))
        })
        .find(|(k, _)| k == "create")
        .is_some_and(|(_, v)| v == "true")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn t(folder: &[&str], object: Option<Object>) -> Option<Target> {
        Some(Target {
            folder: folder.iter().map(|s| s.to_string()).collect(),
            object,
        })
    }

    #[test]
    fn root_and_types() {
        assert_eq!(parse("/"), t(&[], Some(Object::Root)));
        assert_eq!(parse("/config"), t(&[], Some(Object::Config)));
        assert_eq!(parse("/data/"), t(&[], Some(Object::List("data"))));
        assert_eq!(
            parse(&format!("/keys/{ID}")),
            t(&[], Some(Object::File("keys", ID.into())))
        );
        assert_eq!(parse("/keys"), t(&[], None));
        assert_eq!(parse("/keys/abc"), t(&[], None));
        assert_eq!(parse(&format!("/keys/{}", ID.to_uppercase())), t(&[], None));
        assert_eq!(parse("/other/"), t(&["other"], Some(Object::Root)));
    }

    #[test]
    fn folders() {
        assert_eq!(parse("/repo/"), t(&["repo"], Some(Object::Root)));
        assert_eq!(parse("/a/b/"), t(&["a", "b"], Some(Object::Root)));
        assert_eq!(parse("/a/b/config"), t(&["a", "b"], Some(Object::Config)));
        assert_eq!(
            parse(&format!("/a/b/data/{ID}")),
            t(&["a", "b"], Some(Object::File("data", ID.into())))
        );
        // Too deep: the remainder does not match.
        assert_eq!(parse("/a/b/c/config"), t(&["a", "b"], None));
        // Without the trailing slash the repository root is not addressed.
        assert_eq!(parse("/repo"), t(&[], None));
        assert_eq!(parse("/a/locks/"), t(&["a"], Some(Object::List("locks"))));
    }

    #[test]
    fn rejects_traversal_and_hidden() {
        assert_eq!(parse("/../config"), None);
        assert_eq!(parse("/a/../config"), None);
        assert_eq!(parse("/./config"), None);
        assert_eq!(parse("/%2e%2e/config"), None);
        assert_eq!(parse("/.htpasswd/config"), None);
        assert_eq!(parse("//config"), None);
        assert_eq!(parse("/a%00b/config"), None);
        assert_eq!(parse("/a%zz/config"), None);
        assert_eq!(parse("/a%2fb/"), t(&["a", "b"], Some(Object::Root)));
        assert_eq!(parse("relative"), None);
    }

    #[test]
    fn create_query() {
        assert!(wants_create(Some("create=true")));
        assert!(wants_create(Some("x=1&create=true")));
        assert!(!wants_create(Some("create=false")));
        assert!(!wants_create(Some("create=true1")));
        assert!(!wants_create(None));
    }

    proptest! {
        #[test]
        fn parse_never_panics_and_stays_below_base(s in "\\PC*") {
            if let Some(t) = parse(&s) {
                prop_assert!(t.folder.len() <= MAX_FOLDER_DEPTH);
                for f in &t.folder {
                    prop_assert!(f != ".." && f != "." && !f.is_empty() && !f.contains('/'));
                }
            }
        }

        #[test]
        fn parse_bytes_never_panics(s in "[/%a-f0-9.]{0,80}") {
            let _ = parse(&s);
            let _ = wants_create(Some(&s));
        }
    }
}
