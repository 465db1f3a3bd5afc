//! `sftp:` repository strings and the ssh command line, parsed exactly like restic
//! (internal/backend/sftp/config.go, buildSSHCommand, backend.SplitShellStrings).

use crate::options::BackendOptions;

/// A parsed `sftp:` location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SftpLocation {
    /// Login name (`-l`), if given.
    pub user: Option<String>,
    /// Host name or address (IPv6 without brackets).
    pub host: String,
    /// Port (`-p`), if given (URL form only).
    pub port: Option<String>,
    /// Repository directory, cleaned; relative paths are relative to the login directory.
    pub path: String,
}

/// Parse the part after `sftp:`: `[user@]host:path` or `//[user@]host[:port]/path` (the URL
/// form `sftp://...`, whose path loses its first `/`, so `//abs` is absolute).
pub fn parse(s: &str) -> Result<SftpLocation, String> {
    let (user, host, port, dir) = if let Some(rest) = s.strip_prefix("//") {
        parse_url(rest)?
    } else {
        let (user, host, dir) = parse_scp_like(s)?;
        (user, host, None, dir)
    };
    let path = clean(&dir);
    if path.starts_with('~') {
        return Err(
            "sftp path starts with the tilde (~) character, that fails for most sftp \
                    servers.\nUse a relative directory, most servers interpret this as relative \
                    to the user's home directory"
                .into(),
        );
    }
    Ok(SftpLocation {
        user: user.filter(|u| !u.is_empty()),
        host,
        port: port.filter(|p| !p.is_empty()),
        path,
    })
}

type Parts = (Option<String>, String, Option<String>, String);

/// `user@host:path`: split at the first colon, then the user at `@` (a user may contain one
/// `@`, as in `user@domain@host`). Extension over restic: a bracketed IPv6 host
/// (`user@[::1]:path`), which restic would split at the first colon inside the address.
fn parse_scp_like(s: &str) -> Result<(Option<String>, String, String), String> {
    let bracket = s.find('[').filter(|&i| {
        let before = s.get(..i).unwrap_or("");
        (before.is_empty() || before.ends_with('@')) && !before.contains(':')
    });
    if let Some(open) = bracket
        && let Some(close) = s.get(open..).and_then(|t| t.find("]:")).map(|c| c + open)
    {
        let user = s.get(..open).and_then(|u| u.strip_suffix('@'));
        let host = s.get(open + 1..close).unwrap_or("");
        let dir = s.get(close + 2..).unwrap_or("");
        return Ok((user.map(str::to_string), host.to_string(), dir.to_string()));
    }
    let (userhost, dir) = s
        .split_once(':')
        .ok_or("sftp: invalid format, hostname or path not found")?;
    let parts: Vec<&str> = userhost.splitn(3, '@').collect();
    let (user, host) = match parts.as_slice() {
        [u, d, h] => (Some(format!("{u}@{d}")), h.to_string()),
        [u, h] => (Some(u.to_string()), h.to_string()),
        _ => (None, userhost.to_string()),
    };
    Ok((user, host, dir.to_string()))
}

/// The URL form after `sftp://`, following Go's `url.Parse`: query and fragment are cut off,
/// user info ends at the last `@` of the authority, ports are digits, `%xx` escapes decoded.
fn parse_url(rest: &str) -> Result<Parts, String> {
    let whole = format!("sftp://{rest}");
    let rest = rest.split_once('#').map_or(rest, |(a, _)| a);
    let rest = rest.split_once('?').map_or(rest, |(a, _)| a);
    let (authority, path) = match rest.find('/') {
        Some(i) => (rest.get(..i).unwrap_or(""), rest.get(i..).unwrap_or("")),
        None => (rest, ""),
    };
    let (userinfo, hostport) = match authority.rfind('@') {
        Some(i) => (
            Some(authority.get(..i).unwrap_or("")),
            authority.get(i + 1..).unwrap_or(""),
        ),
        None => (None, authority),
    };
    let user = userinfo
        .map(|u| unescape(u.split_once(':').map_or(u, |(name, _)| name)))
        .transpose()?;
    let (host, port) = if let Some(inner) = hostport.strip_prefix('[') {
        let (h, after) = inner
            .split_once(']')
            .ok_or_else(|| format!("parse {whole:?}: missing ']' in host"))?;
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or_else(|| format!("parse {whole:?}: invalid port {p:?} after host"))?,
            ),
        };
        (h, port)
    } else {
        match hostport.rfind(':') {
            Some(i) => (
                hostport.get(..i).unwrap_or(""),
                Some(hostport.get(i + 1..).unwrap_or("")),
            ),
            None => (hostport, None),
        }
    };
    if let Some(p) = port
        && !p.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(format!("parse {whole:?}: invalid port \":{p}\" after host"));
    }
    let host = unescape(host)?;
    let path = unescape(path)?;
    let Some(dir) = path.strip_prefix('/') else {
        return Err(format!("invalid backend {whole:?}, no directory specified"));
    };
    Ok((user, host, port.map(str::to_string), dir.to_string()))
}

/// Decode `%xx` escapes.
fn unescape(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c == b'%' {
            let hex = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("invalid URL escape in {s:?}"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(c);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("{s:?} is not UTF-8 after unescaping"))
}

/// Go's `path.Clean`: lexical cleanup of a slash-separated path.
pub fn clean(p: &str) -> String {
    if p.is_empty() {
        return ".".into();
    }
    let rooted = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|l| *l != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            s => parts.push(s),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".into(),
        (false, false) => joined,
    }
}

/// Join two slash paths and clean the result (Go's `path.Join`).
pub fn join(a: &str, b: &str) -> String {
    if a.is_empty() {
        return clean(b);
    }
    clean(&format!("{a}/{b}"))
}

/// restic's `SplitShellStrings`: split at unquoted whitespace (and unquoted backslashes);
/// single and double quotes group and are removed; a backslash disables the quote meaning of
/// the next character.
pub fn split_shell(data: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut quote: Option<char> = None;
    let mut last = '\0';
    let mut field: Option<usize> = None;
    for (i, c) in data.char_indices() {
        let mut split = None;
        if last != '\\' {
            if quote == Some(c) {
                quote = None;
                split = Some(true);
            } else if quote.is_none() && (c == '"' || c == '\'') {
                quote = Some(c);
                split = Some(true);
            }
        }
        let split = split.unwrap_or_else(|| {
            last = c;
            quote.is_none() && (c == '\\' || c.is_whitespace())
        });
        if split {
            if let Some(start) = field.take() {
                out.push(data.get(start..i).unwrap_or("").to_string());
            }
        } else if field.is_none() {
            field = Some(i);
        }
    }
    if let Some(start) = field {
        out.push(data.get(start..).unwrap_or("").to_string());
    }
    match quote {
        Some('\'') => return Err("single-quoted string not terminated".into()),
        Some(_) => return Err("double-quoted string not terminated".into()),
        None => {}
    }
    if out.is_empty() {
        return Err("command string is empty".into());
    }
    Ok(out)
}

/// The program and arguments to run: `sftp.command` split like a shell, or restic's
/// `ssh host [-p port] [-l user] [sftp.args...] -s sftp`.
pub fn command(loc: &SftpLocation, opts: &BackendOptions) -> Result<Vec<String>, String> {
    let args_opt = opts.get("sftp.args").filter(|a| !a.is_empty());
    if let Some(cmd) = opts.get("sftp.command").filter(|c| !c.is_empty()) {
        let argv = split_shell(cmd).map_err(|e| format!("sftp.command: {e}"))?;
        if args_opt.is_some() {
            return Err("cannot specify both sftp.command and sftp.args options".into());
        }
        return Ok(argv);
    }
    let mut argv = vec!["ssh".to_string(), loc.host.clone()];
    if let Some(p) = &loc.port {
        argv.extend(["-p".to_string(), p.clone()]);
    }
    if let Some(u) = &loc.user {
        argv.extend(["-l".to_string(), u.clone()]);
    }
    if let Some(a) = args_opt {
        argv.extend(split_shell(a).map_err(|e| format!("sftp.args: {e}"))?);
    }
    argv.extend(["-s".to_string(), "sftp".to_string()]);
    Ok(argv)
}

/// `sftp.connections` (default 5, at least 1).
pub fn connections(opts: &BackendOptions) -> Result<usize, String> {
    match opts.get_u64("sftp.connections")? {
        None => Ok(5),
        Some(0) => Err("sftp.connections must be at least 1".into()),
        Some(n) => Ok(usize::try_from(n).unwrap_or(usize::MAX).min(1024)),
    }
}

#[cfg(test)]
#[path = "location_tests.rs"]
mod tests;
