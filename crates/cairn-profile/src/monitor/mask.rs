//! Masking of confidential parts in URLs and headers before they reach logs (§19.4).

/// The replacement text for masked secrets.
pub const MASK: &str = "×××";

pub use crate::secrets::mask_url;

/// The value of a header as it may be logged: `Authorization` (and `Proxy-Authorization`)
/// values are masked, everything else is shown.
pub fn mask_header_value(name: &str, value: &str) -> String {
    if name.eq_ignore_ascii_case("authorization")
        || name.eq_ignore_ascii_case("proxy-authorization")
    {
        MASK.to_string()
    } else {
        value.to_string()
    }
}

/// `scheme://host[:port]/×××`: a Healthchecks ping URL carries its secret (the check UUID or
/// ping key) in the path, so the whole path is hidden.
pub fn mask_url_path(url: &str) -> String {
    let masked = mask_url(url);
    let Some(scheme_end) = masked.find("://") else {
        return MASK.to_string();
    };
    let authority_start = scheme_end + 3;
    let rest = masked.get(authority_start..).unwrap_or("");
    let authority_len = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let head = masked.get(..authority_start + authority_len).unwrap_or("");
    format!("{head}/{MASK}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_only_the_password() {
        assert_eq!(
            mask_url("https://user:s3cret@example.com/path?q=a@b"),
            "https://user:×××@example.com/path?q=a@b"
        );
        assert_eq!(
            mask_url("https://example.com/a:b@c"),
            "https://example.com/a:b@c"
        );
        assert_eq!(
            mask_url("https://token@example.com/"),
            "https://token@example.com/"
        );
        assert_eq!(mask_url("http://u:p:q@h"), "http://u:×××@h");
        assert_eq!(mask_url("not a url"), "not a url");
    }

    #[test]
    fn masks_authorization_headers() {
        assert_eq!(mask_header_value("Authorization", "Bearer x"), "×××");
        assert_eq!(mask_header_value("X-Other", "v"), "v");
    }

    #[test]
    fn masks_healthchecks_paths() {
        assert_eq!(
            mask_url_path("https://hc-ping.com/0f3c-uuid/start?rid=1"),
            "https://hc-ping.com/×××"
        );
        assert_eq!(
            mask_url_path("http://a:b@127.0.0.1:80"),
            "http://a:×××@127.0.0.1:80/×××"
        );
    }
}
