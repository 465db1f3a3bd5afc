//! Parsing `rest:` repository locations.

use cairn_repo::backend::BackendError;
use std::path::PathBuf;

/// A parsed `rest:` location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestLocation {
    /// The repository's base URL without credentials and without the trailing slash
    /// (`http://host:8000/repo`); for a Unix socket `http://localhost/repo`.
    pub base: String,
    /// The Unix socket to connect to (`http+unix:` locations).
    pub socket: Option<PathBuf>,
    /// Basic-auth user and password.
    pub credentials: Option<(String, String)>,
    /// The location as shown in messages: restic's form with the password replaced by `***`.
    pub display: String,
}

fn invalid(location: &str, why: &str) -> BackendError {
    BackendError::Other(format!("invalid rest location {location:?}: {why}"))
}

/// Decode `%XX` escapes (URL user info).
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: Option<&u8>| c.and_then(|c| (*c as char).to_digit(16));
        match (b.get(i), hex(b.get(i + 1)), hex(b.get(i + 2))) {
            (Some(b'%'), Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (Some(c), _, _) => {
                out.push(*c);
                i += 1;
            }
            (None, _, _) => break,
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Credentials from the environment: `CAIRN_REST_USERNAME`/`CAIRN_REST_PASSWORD`, else
/// restic's `RESTIC_REST_USERNAME`/`RESTIC_REST_PASSWORD`.
fn env_credentials() -> Option<(String, String)> {
    let get = |n: &str| {
        std::env::var(format!("CAIRN_{n}"))
            .ok()
            .or_else(|| std::env::var(format!("RESTIC_{n}")).ok())
            .filter(|v| !v.is_empty())
    };
    let user = get("REST_USERNAME");
    let pass = get("REST_PASSWORD");
    if user.is_none() && pass.is_none() {
        return None;
    }
    Some((user.unwrap_or_default(), pass.unwrap_or_default()))
}

impl RestLocation {
    /// Parse the part after `rest:`: `http://[user:pass@]host[:port][/path]`,
    /// `https://...`, or `http+unix:///path/to.sock:/repo`. Credentials in the URL win;
    /// without them the `*_REST_USERNAME`/`*_REST_PASSWORD` environment variables apply (as in
    /// restic 0.17).
    pub fn parse(location: &str) -> Result<RestLocation, BackendError> {
        Self::parse_with(location, env_credentials)
    }

    /// [`RestLocation::parse`] with the environment lookup given (for tests).
    pub fn parse_with(
        location: &str,
        env: impl FnOnce() -> Option<(String, String)>,
    ) -> Result<RestLocation, BackendError> {
        let (scheme, rest) = location
            .split_once("://")
            .ok_or_else(|| invalid(location, "expected http://, https:// or http+unix://"))?;
        let scheme = scheme.to_ascii_lowercase();
        let (socket, authority, path) = match scheme.as_str() {
            "http" | "https" => {
                let (authority, path) = match rest.find('/') {
                    Some(i) => rest.split_at(i),
                    None => (rest, ""),
                };
                (None, authority, path)
            }
            "http+unix" => {
                // http+unix:///run/rest.sock:/repo/ — the socket path ends at the first ':'.
                let (sock, path) = rest.split_once(':').unwrap_or((rest, "/"));
                if !sock.starts_with('/') {
                    return Err(invalid(location, "the socket path must be absolute"));
                }
                if !path.is_empty() && !path.starts_with('/') {
                    return Err(invalid(location, "the repository path must start with /"));
                }
                (Some(PathBuf::from(sock)), "localhost", path)
            }
            _ => {
                return Err(invalid(
                    location,
                    "expected http://, https:// or http+unix://",
                ));
            }
        };
        let (userinfo, host) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        if host.is_empty() {
            return Err(invalid(location, "no host"));
        }
        if host.contains(['?', '#', ' ']) || path.contains(['?', '#']) {
            return Err(invalid(location, "queries and fragments are not supported"));
        }
        let url_credentials = userinfo.map(|u| match u.split_once(':') {
            Some((user, pass)) => (percent_decode(user), percent_decode(pass)),
            None => (percent_decode(u), String::new()),
        });
        let credentials = url_credentials.or_else(env);
        let path = path.trim_end_matches('/');
        let http_scheme = if scheme == "https" { "https" } else { "http" };
        let base = format!("{http_scheme}://{host}{path}");
        let shown_user = match userinfo {
            Some(u) => match u.split_once(':') {
                Some((user, _)) => format!("{user}:***@"),
                None => format!("{u}@"),
            },
            None => String::new(),
        };
        let display = match &socket {
            Some(_) => format!("rest:{location}"),
            None => format!("rest:{scheme}://{shown_user}{host}{path}/"),
        };
        Ok(RestLocation {
            base,
            socket,
            credentials,
            display,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> RestLocation {
        RestLocation::parse_with(s, || None).unwrap()
    }

    #[test]
    fn plain_urls() {
        let l = parse("http://127.0.0.1:8000/");
        assert_eq!(l.base, "http://127.0.0.1:8000");
        assert_eq!(l.credentials, None);
        assert_eq!(l.display, "rest:http://127.0.0.1:8000/");
        let l = parse("https://host/a/b");
        assert_eq!(l.base, "https://host/a/b");
        assert_eq!(l.display, "rest:https://host/a/b/");
        let l = parse("http://host:1234");
        assert_eq!(l.base, "http://host:1234");
        assert_eq!(parse("HTTP://[::1]:80/r/").base, "http://[::1]:80/r");
    }

    #[test]
    fn credentials() {
        let l = parse("https://alice:s%40cret:x@host:8000/repo/");
        assert_eq!(
            l.credentials,
            Some(("alice".to_string(), "s@cret:x".to_string()))
        );
        assert_eq!(l.base, "https://host:8000/repo");
        assert_eq!(l.display, "rest:https://alice:***@host:8000/repo/");
        assert!(!l.display.contains("cret"));
        // URL credentials win over the environment.
        let env = || Some(("env".to_string(), "pw".to_string()));
        let l = RestLocation::parse_with("http://u:p@h/", env).unwrap();
        assert_eq!(l.credentials, Some(("u".into(), "p".into())));
        let l = RestLocation::parse_with("http://h/", env).unwrap();
        assert_eq!(l.credentials, Some(("env".into(), "pw".into())));
        assert_eq!(l.display, "rest:http://h/");
    }

    #[test]
    fn unix_sockets() {
        let l = parse("http+unix:///run/rest.sock:/repo/");
        assert_eq!(l.socket, Some(PathBuf::from("/run/rest.sock")));
        assert_eq!(l.base, "http://localhost/repo");
        let l = parse("http+unix:///tmp/s.sock");
        assert_eq!(l.base, "http://localhost");
        assert!(RestLocation::parse_with("http+unix://rel.sock:/r", || None).is_err());
    }

    #[test]
    fn invalid_locations() {
        for bad in [
            "",
            "host:8000/repo",
            "ftp://host/",
            "http:///repo",
            "http://h/r?x=1",
        ] {
            assert!(RestLocation::parse_with(bad, || None).is_err(), "{bad}");
        }
    }

    #[test]
    fn decoding() {
        assert_eq!(percent_decode("a%20b%2Fc"), "a b/c");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}
