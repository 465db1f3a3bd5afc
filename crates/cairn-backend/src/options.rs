//! Backend settings: restic's `-o key=value` options plus the global limits.

use std::collections::BTreeMap;

/// Settings for opening a backend: `-o/--option key=value` pairs (`sftp.command`,
/// `s3.region`, `rest.connections`, ...) and the global flags that apply to every backend.
#[derive(Debug, Clone, Default)]
pub struct BackendOptions {
    /// `-o key=value` pairs as given.
    pub values: BTreeMap<String, String>,
    /// `--limit-upload` in KiB/s (0 or `None` = unlimited).
    pub limit_upload_kib: Option<u64>,
    /// `--limit-download` in KiB/s (0 or `None` = unlimited).
    pub limit_download_kib: Option<u64>,
    /// `--cacert` files: extra CA certificates (PEM) trusted for TLS.
    pub ca_certs: Vec<std::path::PathBuf>,
    /// `--tls-client-cert` file (PEM with certificate and key) for TLS client authentication.
    pub tls_client_cert: Option<std::path::PathBuf>,
    /// `--insecure-tls`: accept any TLS server certificate (REST and S3).
    pub insecure_tls: bool,
}

impl BackendOptions {
    /// The value of option `key` (e.g. `"s3.region"`).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }

    /// Parse `key=value` pairs as given to `-o`.
    pub fn parse_pairs<'a>(
        pairs: impl IntoIterator<Item = &'a str>,
    ) -> Result<BTreeMap<String, String>, String> {
        let mut out = BTreeMap::new();
        for p in pairs {
            let (k, v) = p
                .split_once('=')
                .ok_or_else(|| format!("invalid option {p:?}: want key=value"))?;
            if k.is_empty() {
                return Err(format!("invalid option {p:?}: empty key"));
            }
            out.insert(k.trim().to_string(), v.to_string());
        }
        Ok(out)
    }

    /// Option `key` as a number, with a clear error for bad values.
    pub fn get_u64(&self, key: &str) -> Result<Option<u64>, String> {
        self.get(key)
            .map(|v| {
                v.parse()
                    .map_err(|_| format!("option {key}: {v:?} is not a number"))
            })
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs() {
        let m = BackendOptions::parse_pairs(["s3.region=eu-west-1", "sftp.args=-o a=b"]).unwrap();
        assert_eq!(m["s3.region"], "eu-west-1");
        assert_eq!(m["sftp.args"], "-o a=b");
        assert!(BackendOptions::parse_pairs(["novalue"]).is_err());
        assert!(BackendOptions::parse_pairs(["=x"]).is_err());
        let o = BackendOptions {
            values: BackendOptions::parse_pairs(["rest.connections=8", "x.y=z"]).unwrap(),
            ..Default::default()
        };
        assert_eq!(o.get_u64("rest.connections").unwrap(), Some(8));
        assert!(o.get_u64("x.y").is_err());
        assert_eq!(o.get_u64("none").unwrap(), None);
    }
}
