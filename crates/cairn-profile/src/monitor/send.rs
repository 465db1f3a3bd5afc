//! HTTP hooks (`send-before`, `send-after`, `send-after-fail`, `send-finally`, §10).

use std::collections::BTreeMap;
use std::time::Duration;

use cairn_template::{PrivateTemp, RuntimeFuncs};
use reqwest::Method;
use reqwest::blocking::Client;

pub use super::http::HttpSettings;
use super::http::{RetryPolicy, build_client, execute};
use super::mask::{mask_header_value, mask_url};
use crate::types::{ErrorInfo, SendSpec};

/// What a hook may refer to: the profile, the command and the failure being reported.
#[derive(Debug, Clone, Copy)]
pub struct SendContext<'a> {
    /// Profile name (`PROFILE_NAME`, `.ProfileName`).
    pub profile: &'a str,
    /// Command name (`PROFILE_COMMAND`, `.ProfileCommand`).
    pub command: &'a str,
    /// The failure, for `send-after-fail` and `send-finally` after a failure.
    pub error: Option<&'a ErrorInfo>,
    /// The profile environment (OS + env-file + env); `$NAME` looks here first, then in the
    /// process environment.
    pub env: &'a BTreeMap<String, String>,
}

/// Attempts per hook; only transient failures (transport errors, 408/425/429/5xx) are retried.
const HOOK_TRIES: u32 = 3;
/// Pause after the first failed attempt (doubles after each further one).
const HOOK_BACKOFF: Duration = Duration::from_millis(250);

/// Sends each hook in order. Never fails: every problem (status >= 400, transport errors after
/// [`HOOK_TRIES`] attempts with backoff for transient failures, unreadable templates) is
/// returned as a warning, URL credentials masked. With `settings.dry_run` the requests are
/// logged and not sent.
pub fn send_all(specs: &[SendSpec], ctx: &SendContext, settings: &HttpSettings) -> Vec<String> {
    send_all_with_funcs(specs, ctx, settings, &PrivateTemp::new())
}

/// [`send_all`] with the run's template functions (`tempDir`, `tempFile`, `env`) for body
/// templates, so that they see the same private directory and dotenv files as the profile.
pub fn send_all_with_funcs(
    specs: &[SendSpec],
    ctx: &SendContext,
    settings: &HttpSettings,
    funcs: &dyn RuntimeFuncs,
) -> Vec<String> {
    let mut warnings = Vec::new();
    let mut clients = Clients::default();
    for spec in specs {
        if let Err(warning) = send_one(spec, ctx, settings, funcs, &mut clients, &mut warnings) {
            warnings.push(warning);
        }
    }
    warnings
}

/// Clients built on first use: one verifying TLS, one accepting any certificate.
#[derive(Default)]
struct Clients {
    secure: Option<Result<Client, String>>,
    insecure: Option<Result<Client, String>>,
}

impl Clients {
    fn get(
        &mut self,
        settings: &HttpSettings,
        insecure: bool,
        warnings: &mut Vec<String>,
    ) -> Result<Client, String> {
        let slot = if insecure {
            &mut self.insecure
        } else {
            &mut self.secure
        };
        if slot.is_none() {
            let (client, build_warnings) = build_client(settings, insecure);
            // Report unreadable CA files once, not once per client.
            if !insecure {
                warnings.extend(build_warnings);
            }
            *slot = Some(client);
        }
        match slot {
            Some(client) => client.clone(),
            None => Err("no HTTP client".into()),
        }
    }
}

fn send_one(
    spec: &SendSpec,
    ctx: &SendContext,
    settings: &HttpSettings,
    funcs: &dyn RuntimeFuncs,
    clients: &mut Clients,
    warnings: &mut Vec<String>,
) -> Result<(), String> {
    if spec.url.trim().is_empty() {
        return Err("HTTP hook without url (skipped)".into());
    }
    let url = expand(&spec.url, &|name| lookup(ctx, name, true));
    let shown = mask_url(&url);
    let method_name = if spec.method.trim().is_empty() {
        "GET".to_string()
    } else {
        spec.method.trim().to_ascii_uppercase()
    };
    let method = Method::from_bytes(method_name.as_bytes())
        .map_err(|_| format!("HTTP hook {shown}: invalid method {method_name:?} (skipped)"))?;
    let body = body_of(spec, ctx, funcs)
        .map_err(|e| format!("HTTP hook {method_name} {shown}: {e} (not sent)"))?;
    let has_user_agent = spec
        .headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("user-agent"));

    if settings.dry_run {
        let headers: Vec<String> = spec
            .headers
            .iter()
            .map(|(n, v)| format!("{n}: {}", mask_header_value(n, v)))
            .collect();
        tracing::info!(
            "dry-run: HTTP hook {method_name} {shown} headers [{}] body {} bytes",
            headers.join(", "),
            body.as_ref().map_or(0, String::len)
        );
        return Ok(());
    }

    let client = clients
        .get(settings, spec.skip_tls_verification, warnings)
        .map_err(|e| format!("HTTP hook {method_name} {shown}: {e}"))?;
    let make = |client: &Client| {
        let mut request = client.request(method.clone(), url.as_str());
        for (name, value) in &spec.headers {
            if !name.is_empty() {
                request = request.header(name.as_str(), value.as_str());
            }
        }
        if !has_user_agent {
            request = request.header(reqwest::header::USER_AGENT, settings.user_agent.as_str());
        }
        if let Some(body) = &body {
            request = request.body(body.clone());
        }
        request
    };
    let policy = RetryPolicy {
        tries: HOOK_TRIES,
        timeout: settings.timeout,
        budget: None,
        backoff: HOOK_BACKOFF,
    };
    tracing::debug!("HTTP hook {method_name} {shown}");
    match execute(&client, policy, &make, &mut |_| {}) {
        Ok(_) => Ok(()),
        Err(failure) => Err(format!(
            "HTTP hook {method_name} {shown} failed: {}",
            failure.describe()
        )),
    }
}

/// The request body: the literal `body` (expanded) wins over `body_template`.
fn body_of(
    spec: &SendSpec,
    ctx: &SendContext,
    funcs: &dyn RuntimeFuncs,
) -> Result<Option<String>, String> {
    if let Some(body) = spec.body.as_deref().filter(|b| !b.is_empty()) {
        return Ok(Some(expand(body, &|name| lookup(ctx, name, false))));
    }
    match &spec.body_template {
        Some(path) => super::send_template::render_body(path, ctx, funcs).map(Some),
        None => Ok(None),
    }
}

/// The value of `$name` for a hook: the §10 variables, then the profile environment, then the
/// process environment; unknown names are empty. In URLs the free-text error variables are
/// query-encoded.
fn lookup(ctx: &SendContext, name: &str, in_url: bool) -> String {
    let error = ctx.error;
    let text = |value: &str| {
        if in_url {
            query_escape(value)
        } else {
            value.to_string()
        }
    };
    match name {
        "PROFILE_NAME" => ctx.profile.to_string(),
        "PROFILE_COMMAND" => ctx.command.to_string(),
        "ERROR" => text(error.map_or("", |e| e.message.as_str())),
        "ERROR_COMMANDLINE" => text(error.map_or("", |e| e.command_line.as_str())),
        "ERROR_STDERR" => text(error.map_or("", |e| e.stderr.as_str())),
        "ERROR_EXIT_CODE" => error.map_or(String::new(), |e| e.exit_code.to_string()),
        _ => match ctx.env.get(name) {
            Some(value) => value.clone(),
            None => std::env::var(name).unwrap_or_default(),
        },
    }
}

/// Expands `$NAME` and `${NAME}` through `lookup`; `$$` is a literal `$`. A `$` not followed
/// by a name, `{` or `$` is kept as is, as is an unclosed `${`.
pub fn expand(text: &str, lookup: &dyn Fn(&str) -> String) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find('$') {
        out.push_str(rest.get(..pos).unwrap_or(""));
        let after = rest.get(pos + 1..).unwrap_or("");
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(braced) = after.strip_prefix('{') {
            match braced.find('}') {
                Some(end) => {
                    out.push_str(&lookup(braced.get(..end).unwrap_or("")));
                    rest = braced.get(end + 1..).unwrap_or("");
                }
                None => {
                    out.push('$');
                    rest = after;
                }
            }
        } else {
            let len = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            if len == 0 {
                out.push('$');
            } else {
                out.push_str(&lookup(after.get(..len).unwrap_or("")));
            }
            rest = after.get(len..).unwrap_or("");
        }
    }
    out.push_str(rest);
    out
}

/// Go's `url.QueryEscape`: unreserved characters kept, space as `+`, the rest `%XX`.
pub fn query_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(b))
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_lookup(name: &str) -> String {
        match name {
            "A" => "1".into(),
            "LONG_NAME" => "x y".into(),
            _ => String::new(),
        }
    }

    #[test]
    fn expansion_forms() {
        assert_eq!(expand("$A-${A}-$$A-$", &env_lookup), "1-1-$A-$");
        assert_eq!(expand("a $LONG_NAME b", &env_lookup), "a x y b");
        assert_eq!(expand("${UNSET}|$UNSET|", &env_lookup), "||");
        assert_eq!(expand("${A", &env_lookup), "${A");
        assert_eq!(expand("$-x é$A", &env_lookup), "$-x é1");
        assert_eq!(expand("$$$$", &env_lookup), "$$");
    }

    #[test]
    fn query_escape_like_go() {
        assert_eq!(query_escape("exit status 1"), "exit+status+1");
        assert_eq!(query_escape("a&b=c/d?é"), "a%26b%3Dc%2Fd%3F%C3%A9");
        assert_eq!(query_escape("A-z_0.9~"), "A-z_0.9~");
    }

    #[test]
    fn lookup_order() {
        let mut env = BTreeMap::new();
        env.insert("PROFILE_NAME".to_string(), "not used".to_string());
        env.insert("MINE".to_string(), "a b".to_string());
        let error = ErrorInfo {
            message: "exit status 1".into(),
            command_line: "\"cairn\" \"backup\"".into(),
            exit_code: 1,
            stderr: "bad & worse".into(),
        };
        let ctx = SendContext {
            profile: "nidoking",
            command: "backup",
            error: Some(&error),
            env: &env,
        };
        assert_eq!(lookup(&ctx, "PROFILE_NAME", true), "nidoking");
        assert_eq!(lookup(&ctx, "MINE", true), "a b");
        assert_eq!(lookup(&ctx, "ERROR", true), "exit+status+1");
        assert_eq!(lookup(&ctx, "ERROR", false), "exit status 1");
        assert_eq!(lookup(&ctx, "ERROR_STDERR", true), "bad+%26+worse");
        assert_eq!(lookup(&ctx, "ERROR_EXIT_CODE", true), "1");
        let ctx = SendContext { error: None, ..ctx };
        assert_eq!(lookup(&ctx, "ERROR_EXIT_CODE", false), "");
    }
}
