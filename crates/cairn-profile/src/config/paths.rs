//! Path values (§4.5): `$VAR` / `${VAR}` expansion (Go `os.Expand` rules, `$$` → `$`), `~` and
//! `~user`, prefixing relative paths with the configuration directory, lexical cleaning like
//! Go's `filepath.Join`, and glob expansion of backup sources.

use std::path::{Component, Path, PathBuf};

/// Go's `os.Expand`: replaces `$name` and `${name}` using `mapping`. Names are shell-like
/// (letters, digits, `_`) or one special character (`*#$@!?-` or a digit). A `$` not followed
/// by a name is kept.
pub(crate) fn expand_with(s: &str, mapping: &mut dyn FnMut(&str) -> String) -> String {
    let bytes = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    let mut copied = 0;
    while i < bytes.len() {
        if bytes[i] == b'$' && i + 1 < bytes.len() {
            out.push_str(&s[copied..i]);
            let (name, width) = shell_name(&s[i + 1..]);
            if name.is_none() && width > 0 {
                // invalid syntax such as "${": eat it
            } else if let Some(n) = name {
                out.push_str(&mapping(n));
            } else {
                out.push('$');
            }
            i += 1 + width;
            copied = i;
        } else {
            i += 1;
        }
    }
    out.push_str(&s[copied..]);
    out
}

/// The name after a `$` and how many bytes it spans.
fn shell_name(s: &str) -> (Option<&str>, usize) {
    let bytes = s.as_bytes();
    let Some(&first) = bytes.first() else {
        return (None, 0);
    };
    if first == b'{' {
        if bytes.len() > 2 && is_special(bytes[1]) && bytes[2] == b'}' {
            return (Some(&s[1..2]), 3);
        }
        for (j, &b) in bytes.iter().enumerate().skip(1) {
            if b == b'}' {
                if j == 1 {
                    return (None, 2);
                }
                return (Some(&s[1..j]), j + 1);
            }
        }
        return (None, 1);
    }
    if is_special(first) {
        return (Some(&s[0..1]), 1);
    }
    let len = bytes
        .iter()
        .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
        .count();
    if len == 0 {
        (None, 0)
    } else {
        (Some(&s[..len]), len)
    }
}

fn is_special(b: u8) -> bool {
    matches!(b, b'*' | b'#' | b'$' | b'@' | b'!' | b'?' | b'-') || b.is_ascii_digit()
}

/// `$VAR` expansion for configuration values: `lookup` gives the variable (profile env, then
/// process env), unknown names are empty, `$$` is `$`.
pub(crate) fn expand_env(s: &str, lookup: &dyn Fn(&str) -> Option<String>) -> String {
    if !s.contains('$') {
        return s.to_string();
    }
    expand_with(s, &mut |name| {
        if name == "$" {
            "$".to_string()
        } else {
            lookup(name).unwrap_or_default()
        }
    })
}

/// `~` → home directory, `~user` → that user's home; anything else unchanged.
pub(crate) fn expand_home(s: &str, home: Option<&Path>) -> String {
    let Some(rest) = s.strip_prefix('~') else {
        return s.to_string();
    };
    let delim = rest.find(['/', '\\']).unwrap_or(rest.len());
    let (user, tail) = rest.split_at(delim);
    if user.is_empty() {
        return match home {
            Some(h) => format!("{}{tail}", h.display()),
            None => s.to_string(),
        };
    }
    match nix::unistd::User::from_name(user) {
        Ok(Some(u)) => format!("{}{tail}", u.dir.display()),
        _ => s.to_string(),
    }
}

/// Whether `expand_home` would change `s`.
fn is_home_path(s: &str, home: Option<&Path>) -> bool {
    s.starts_with('~') && expand_home(s, home) != s
}

/// Lexical clean like Go's `filepath.Clean` (no file system access).
pub(crate) fn clean(path: &Path) -> PathBuf {
    let mut out: Vec<Component<'_>> = Vec::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => match out.last() {
                Some(Component::Normal(_)) => {
                    out.pop();
                }
                Some(Component::RootDir) | Some(Component::Prefix(_)) => {}
                _ => out.push(c),
            },
            other => out.push(other),
        }
    }
    if out.is_empty() {
        return PathBuf::from(".");
    }
    out.iter().collect()
}

/// Go's `filepath.Join(base, value)`: joined and cleaned.
pub(crate) fn join_clean(base: &Path, value: &str) -> PathBuf {
    clean(&base.join(value))
}

/// rp's `absolutePrefix(base)`: a relative value not starting with `$`, `%` or `~` is joined to
/// `base`; empty, absolute and home-relative values are kept.
pub(crate) fn absolute_prefix(value: &str, base: &Path, home: Option<&Path>) -> String {
    if value.is_empty()
        || Path::new(value).is_absolute()
        || is_home_path(value, home)
        || value.starts_with('$')
        || value.starts_with('%')
    {
        return value.to_string();
    }
    join_clean(base, value).display().to_string()
}

/// Expands globs (`*`, `?`, `[`) in sources; a pattern without match disappears (as in rp).
/// Matches are sorted.
pub(crate) fn resolve_globs(sources: Vec<String>) -> Vec<String> {
    let mut out = Vec::with_capacity(sources.len());
    for s in sources {
        if s.contains(['*', '?', '[']) {
            if let Ok(paths) = glob::glob(&s) {
                let mut found: Vec<String> = paths
                    .filter_map(Result::ok)
                    .map(|p| p.display().to_string())
                    .collect();
                found.sort();
                out.extend(found);
            }
        } else {
            out.push(s);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOME" => Some("/home/u".into()),
            "X" => Some("x".into()),
            _ => None,
        }
    }

    #[test]
    fn go_expand_rules() {
        assert_eq!(expand_env("$HOME/a", &env), "/home/u/a");
        assert_eq!(expand_env("${X}y", &env), "xy");
        assert_eq!(expand_env("$UNSET-z", &env), "-z");
        assert_eq!(expand_env("$$RECYCLE.BIN", &env), "$RECYCLE.BIN");
        assert_eq!(expand_env("a $ b", &env), "a $ b");
        assert_eq!(expand_env("end$", &env), "end$");
        assert_eq!(expand_env("${}x", &env), "x");
    }

    #[test]
    fn home_and_prefix() {
        let home = Path::new("/home/u");
        assert_eq!(expand_home("~/a", Some(home)), "/home/u/a");
        assert_eq!(expand_home("~", Some(home)), "/home/u");
        assert_eq!(expand_home("~root/x", Some(home)), "/root/x");
        assert_eq!(
            expand_home("~no-such-user-here/x", Some(home)),
            "~no-such-user-here/x"
        );
        let base = Path::new("/cfg");
        assert_eq!(absolute_prefix("key", base, Some(home)), "/cfg/key");
        assert_eq!(absolute_prefix("./a/../b", base, Some(home)), "/cfg/b");
        assert_eq!(absolute_prefix("/abs", base, Some(home)), "/abs");
        assert_eq!(absolute_prefix("~/k", base, Some(home)), "~/k");
        assert_eq!(absolute_prefix("$X/k", base, Some(home)), "$X/k");
        assert_eq!(absolute_prefix("", base, Some(home)), "");
        assert_eq!(
            join_clean(Path::new("/opt/mnt/g"), "."),
            PathBuf::from("/opt/mnt/g")
        );
    }

    #[test]
    fn globs_expand_sorted_and_drop_misses() {
        let tmp = tempfile::tempdir().unwrap();
        for n in ["b", "a", "c.txt"] {
            std::fs::create_dir(tmp.path().join(n)).unwrap();
        }
        let root = tmp.path().display().to_string();
        let got = resolve_globs(vec![
            format!("{root}/[ab]"),
            format!("{root}/none*"),
            "/plain".into(),
        ]);
        assert_eq!(
            got,
            vec![format!("{root}/a"), format!("{root}/b"), "/plain".into()]
        );
    }
}
