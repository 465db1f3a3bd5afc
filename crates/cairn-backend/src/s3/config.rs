//! Parsing `s3:` locations and `-o s3.*` options, and the addressing decisions that follow
//! from them (endpoint URL, path or virtual-host style, region from the host name).

use crate::options::BackendOptions;
use cairn_repo::backend::BackendError;

use super::credentials::S3Credentials;

/// Default number of concurrent requests (restic's `s3.connections`).
pub const DEFAULT_CONNECTIONS: usize = 5;
/// Objects larger than this are uploaded in parts.
pub const DEFAULT_MULTIPART_THRESHOLD: u64 = 32 << 20;
/// Size of one part of a multipart upload.
pub const DEFAULT_PART_SIZE: u64 = 16 << 20;
/// S3's smallest allowed part (all but the last).
pub const MIN_PART_SIZE: u64 = 5 << 20;

/// The parts of an `s3:` location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Location {
    /// `host[:port]` of the endpoint (IPv6 hosts in brackets).
    pub endpoint: String,
    /// Plain HTTP instead of HTTPS (only with `s3:http://...`).
    pub use_http: bool,
    /// Bucket name.
    pub bucket: String,
    /// Key prefix inside the bucket, cleaned, without leading or trailing `/` (may be empty).
    pub prefix: String,
}

/// How the bucket is addressed (`s3.bucket-lookup`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BucketLookup {
    /// Virtual-host style for AWS, Google and Aliyun endpoints, path style otherwise.
    Auto,
    /// Virtual-host style (`bucket.host/key`).
    Dns,
    /// Path style (`host/bucket/key`).
    Path,
}

/// Everything needed to talk to one bucket.
#[derive(Debug, Clone)]
pub struct S3Config {
    /// Where the repository lives.
    pub location: S3Location,
    /// Signing region (`s3.region`, `$AWS_DEFAULT_REGION`); `None` = from the host name or
    /// asked from the server when opening.
    pub region: Option<String>,
    /// `x-amz-storage-class` for new objects (`s3.storage-class`).
    pub storage_class: Option<String>,
    /// Use ListObjects V1 (`s3.list-objects-v1`).
    pub list_objects_v1: bool,
    /// Addressing style (`s3.bucket-lookup`).
    pub bucket_lookup: BucketLookup,
    /// Maximum concurrent requests (`s3.connections`).
    pub connections: usize,
    /// Send unsigned requests (`s3.unsafe-anonymous-auth`).
    pub anonymous: bool,
    /// Credentials to use; `None` = look them up in the environment when opening.
    pub credentials: Option<S3Credentials>,
    /// Objects larger than this many bytes use a multipart upload.
    pub multipart_threshold: u64,
    /// Part size of multipart uploads (at least 5 MiB).
    pub part_size: u64,
    /// Keys per listing page (`None` = the server's default, 1000 on AWS).
    pub list_page_size: Option<usize>,
    /// Extra trusted CA certificates (PEM files, `--cacert`).
    pub ca_certs: Vec<std::path::PathBuf>,
    /// Accept any TLS server certificate (`--insecure-tls`).
    pub insecure_tls: bool,
    /// TLS client certificate and key (PEM file, `--tls-client-cert`).
    pub tls_client_cert: Option<std::path::PathBuf>,
}

fn bad(msg: impl Into<String>) -> BackendError {
    BackendError::Other(msg.into())
}

/// Clean a slash-separated path like Go's `path.Clean`, then drop leading and trailing
/// slashes (the prefix is joined with `/` to object names).
pub fn clean_prefix(p: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    out.join("/")
}

fn percent_decode(s: &str) -> Result<String, BackendError> {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| bad(format!("s3: {s:?} is not valid UTF-8 after decoding")))
}

/// Parse the location after `s3:`: `https://host[:port]/bucket[/prefix]`,
/// `http://host[:port]/bucket[/prefix]`, `//host/bucket[/prefix]` (from `s3://`) or
/// `host/bucket[/prefix]` (HTTPS).
pub fn parse_location(s: &str) -> Result<S3Location, BackendError> {
    let (endpoint, use_http, path) = if s.starts_with("http://") || s.starts_with("https://") {
        let url = url::Url::parse(s).map_err(|e| bad(format!("s3:{s}: invalid URL: {e}")))?;
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| bad(format!("s3:{s}: the URL has no host")))?;
        let endpoint = match url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_string(),
        };
        if url.query().is_some() || !url.username().is_empty() {
            return Err(bad(format!(
                "s3:{s}: credentials and query strings are not allowed in the URL"
            )));
        }
        let path = percent_decode(url.path())?;
        (endpoint, url.scheme() == "http", path)
    } else {
        let rest = s.strip_prefix("//").unwrap_or(s);
        let (endpoint, path) = rest.split_once('/').unwrap_or((rest, ""));
        (endpoint.to_string(), false, path.to_string())
    };
    if endpoint.is_empty() {
        return Err(bad(format!(
            "s3:{s}: invalid format, host/region or bucket name not found"
        )));
    }
    let path = path.strip_prefix('/').unwrap_or(&path);
    let (bucket, prefix) = path.split_once('/').unwrap_or((path, ""));
    if bucket.is_empty() {
        return Err(bad(format!("s3:{s}: bucket name not found")));
    }
    Ok(S3Location {
        endpoint,
        use_http,
        bucket: bucket.to_string(),
        prefix: clean_prefix(prefix),
    })
}

/// Go's `strconv.ParseBool`, as restic uses for boolean options.
fn parse_bool(key: &str, v: &str) -> Result<bool, BackendError> {
    match v {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(bad(format!("option {key}: {v:?} is not a boolean"))),
    }
}

/// Storage classes that need a restore before reading; Cairn cannot read them back.
const ARCHIVE_CLASSES: [&str; 2] = ["GLACIER", "DEEP_ARCHIVE"];

impl S3Config {
    /// Build the configuration from the location after `s3:`, the `-o s3.*` options and an
    /// environment lookup (`AWS_DEFAULT_REGION`). Credentials are left to [`super::open`].
    pub fn new(
        location: &str,
        opts: &BackendOptions,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<S3Config, BackendError> {
        let mut cfg = S3Config {
            location: parse_location(location)?,
            region: None,
            storage_class: None,
            list_objects_v1: false,
            bucket_lookup: BucketLookup::Auto,
            connections: DEFAULT_CONNECTIONS,
            anonymous: false,
            credentials: None,
            multipart_threshold: DEFAULT_MULTIPART_THRESHOLD,
            part_size: DEFAULT_PART_SIZE,
            list_page_size: None,
            ca_certs: opts.ca_certs.clone(),
            insecure_tls: opts.insecure_tls,
            tls_client_cert: opts.tls_client_cert.clone(),
        };
        for (key, v) in &opts.values {
            let Some(name) = key.strip_prefix("s3.") else {
                continue;
            };
            match name {
                "region" => cfg.region = Some(v.clone()).filter(|r| !r.is_empty()),
                "storage-class" => {
                    if ARCHIVE_CLASSES.contains(&v.as_str()) {
                        return Err(bad(format!(
                            "option s3.storage-class: {v} objects must be restored before \
                             they can be read; Cairn does not support archive storage classes"
                        )));
                    }
                    cfg.storage_class = Some(v.clone()).filter(|c| !c.is_empty());
                }
                "list-objects-v1" => cfg.list_objects_v1 = parse_bool(key, v)?,
                "unsafe-anonymous-auth" => cfg.anonymous = parse_bool(key, v)?,
                "bucket-lookup" => {
                    cfg.bucket_lookup = match v.to_ascii_lowercase().as_str() {
                        "" | "auto" => BucketLookup::Auto,
                        "dns" => BucketLookup::Dns,
                        "path" => BucketLookup::Path,
                        _ => {
                            return Err(bad(format!(
                                "option s3.bucket-lookup: bad style {v:?}, must be \"auto\", \
                                 \"path\" or \"dns\""
                            )));
                        }
                    }
                }
                "connections" => {
                    cfg.connections =
                        v.parse::<usize>().ok().filter(|n| *n > 0).ok_or_else(|| {
                            bad(format!("option {key}: {v:?} is not a number > 0"))
                        })?
                }
                // Retries are done by the shared retry layer around every backend.
                "retries" => {
                    v.parse::<u64>()
                        .map_err(|_| bad(format!("option {key}: {v:?} is not a number")))?;
                }
                "layout" => {
                    if !matches!(v.as_str(), "" | "default") {
                        return Err(bad(format!(
                            "option s3.layout: only the \"default\" layout is supported, not {v:?}"
                        )));
                    }
                }
                _ => return Err(bad(format!("option {key} is not known"))),
            }
        }
        if cfg.region.is_none() {
            cfg.region = env("AWS_DEFAULT_REGION").filter(|r| !r.is_empty());
        }
        Ok(cfg)
    }

    /// The endpoint host without port (lowercase).
    pub fn host(&self) -> String {
        host_of(&self.location.endpoint)
    }
}

/// Host part of `host[:port]` / `[v6]:port`, lowercase.
pub fn host_of(endpoint: &str) -> String {
    let h = if let Some(rest) = endpoint.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else {
        endpoint.rsplit_once(':').map_or(endpoint, |(h, _)| h)
    };
    h.to_ascii_lowercase()
}

/// The region an AWS S3 host name names (`s3.eu-west-1.amazonaws.com`,
/// `s3-eu-west-1.amazonaws.com`, `s3.dualstack.eu-west-1.amazonaws.com`, China hosts), like
/// minio-go's `GetRegionFromURL`; `None` for other hosts and the global `s3.amazonaws.com`.
pub fn region_from_host(host: &str) -> Option<String> {
    if host == "s3-external-1.amazonaws.com" {
        return None;
    }
    if host.starts_with("elb") || host.contains(".elb") {
        return None;
    }
    let inner = host
        .strip_suffix(".amazonaws.com.cn")
        .or_else(|| host.strip_suffix(".amazonaws.com"))?;
    let region = if let Some(r) = inner.strip_prefix("s3.dualstack.") {
        r
    } else if let Some(r) = inner.strip_prefix("s3-fips.dualstack.") {
        r
    } else if let Some(r) = inner.strip_prefix("s3-fips.") {
        r
    } else if let Some(r) = inner.strip_prefix("s3-") {
        r
    } else {
        inner.strip_prefix("s3.")?
    };
    let valid = !region.is_empty()
        && !region.contains('.')
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    valid.then(|| region.to_string())
}

/// Whether `host` is an Amazon S3 endpoint (minio-go's `IsAmazonEndpoint`).
pub fn is_amazon_host(host: &str) -> bool {
    host == "s3.amazonaws.com"
        || host == "s3-external-1.amazonaws.com"
        || region_from_host(host).is_some()
}

/// Whether requests use virtual-host style (`bucket.host`) rather than path style.
pub fn virtual_host_style(cfg: &S3Config) -> bool {
    match cfg.bucket_lookup {
        BucketLookup::Dns => true,
        BucketLookup::Path => false,
        BucketLookup::Auto => {
            let host = cfg.host();
            // A dot in the bucket name breaks the wildcard TLS certificate of the host.
            if !cfg.location.use_http && cfg.location.bucket.contains('.') {
                return false;
            }
            is_amazon_host(&host)
                || host == "storage.googleapis.com"
                || host.ends_with("aliyuncs.com")
        }
    }
}

/// The endpoint URL requests go to once the region is known: AWS hosts are replaced by the
/// regional endpoint `s3.<region>.amazonaws.com` (as minio-go does), other hosts are kept.
pub fn endpoint_url(cfg: &S3Config, region: &str) -> String {
    let scheme = if cfg.location.use_http {
        "http"
    } else {
        "https"
    };
    let host = cfg.host();
    let fips_or_dualstack = host.starts_with("s3-fips") || host.contains(".dualstack.");
    let endpoint = if is_amazon_host(&host) && !fips_or_dualstack && !region.is_empty() {
        let suffix = if region.starts_with("cn-") {
            "amazonaws.com.cn"
        } else {
            "amazonaws.com"
        };
        match cfg.location.endpoint.rsplit_once(':') {
            Some((_, port)) if !cfg.location.endpoint.ends_with(']') => {
                format!("s3.{region}.{suffix}:{port}")
            }
            _ => format!("s3.{region}.{suffix}"),
        }
    } else {
        cfg.location.endpoint.clone()
    };
    format!("{scheme}://{endpoint}/")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loc(s: &str) -> S3Location {
        parse_location(s).unwrap()
    }

    fn cfg(location: &str, pairs: &[&str]) -> S3Config {
        let opts = BackendOptions {
            values: BackendOptions::parse_pairs(pairs.iter().copied()).unwrap(),
            ..Default::default()
        };
        S3Config::new(location, &opts, &|_| None).unwrap()
    }

    #[test]
    fn location_forms() {
        let l = loc("https://s3.example.com:9000/bkt/some/prefix");
        assert_eq!(l.endpoint, "s3.example.com:9000");
        assert!(!l.use_http);
        assert_eq!(
            (l.bucket.as_str(), l.prefix.as_str()),
            ("bkt", "some/prefix")
        );

        let l = loc("http://127.0.0.1:9000/bucket/prefix/");
        assert_eq!(l.endpoint, "127.0.0.1:9000");
        assert!(l.use_http);
        assert_eq!((l.bucket.as_str(), l.prefix.as_str()), ("bucket", "prefix"));

        let l = loc("s3.amazonaws.com/bucket/a/./b/../c");
        assert_eq!(l.endpoint, "s3.amazonaws.com");
        assert!(!l.use_http, "the bare form is HTTPS");
        assert_eq!((l.bucket.as_str(), l.prefix.as_str()), ("bucket", "a/c"));

        // `s3://host/bucket/prefix` arrives here as `//host/bucket/prefix`.
        let l = loc("//s3.eu-west-1.amazonaws.com/bucket");
        assert_eq!(l.endpoint, "s3.eu-west-1.amazonaws.com");
        assert_eq!((l.bucket.as_str(), l.prefix.as_str()), ("bucket", ""));

        let l = loc("http://[::1]:9000/b/p%20q");
        assert_eq!(l.endpoint, "[::1]:9000");
        assert_eq!(l.prefix, "p q");

        let l = loc("https://host/bucket//x//y/");
        assert_eq!(l.prefix, "x/y");
    }

    #[test]
    fn bad_locations() {
        for s in [
            "",
            "/bucket",
            "host",
            "host/",
            "https://host",
            "https://host/",
            "http://",
            "https://user:pw@host/b",
            "https://host/b?x=1",
        ] {
            assert!(parse_location(s).is_err(), "{s:?} must be rejected");
        }
    }

    #[test]
    fn prefix_cleaning() {
        assert_eq!(clean_prefix(""), "");
        assert_eq!(clean_prefix("/"), "");
        assert_eq!(clean_prefix("a//b/"), "a/b");
        assert_eq!(clean_prefix("./a/../.."), "");
        assert_eq!(clean_prefix("restic/repo"), "restic/repo");
    }

    #[test]
    fn options() {
        let c = cfg(
            "http://127.0.0.1:9000/b/p",
            &[
                "s3.region=eu-central-1",
                "s3.storage-class=STANDARD_IA",
                "s3.list-objects-v1=true",
                "s3.bucket-lookup=DNS",
                "s3.connections=8",
                "s3.retries=3",
                "sftp.command=ignored",
            ],
        );
        assert_eq!(c.region.as_deref(), Some("eu-central-1"));
        assert_eq!(c.storage_class.as_deref(), Some("STANDARD_IA"));
        assert!(c.list_objects_v1);
        assert_eq!(c.bucket_lookup, BucketLookup::Dns);
        assert_eq!(c.connections, 8);
        let d = cfg("host/b", &[]);
        assert_eq!(d.region, None);
        assert_eq!(d.connections, DEFAULT_CONNECTIONS);
        assert_eq!(d.bucket_lookup, BucketLookup::Auto);
        assert!(!d.list_objects_v1 && !d.anonymous);

        for bad in [
            "s3.bucket-lookup=virtual",
            "s3.connections=0",
            "s3.connections=x",
            "s3.list-objects-v1=yes",
            "s3.storage-class=GLACIER",
            "s3.layout=s3legacy",
            "s3.no-such-option=1",
        ] {
            let opts = BackendOptions {
                values: BackendOptions::parse_pairs([bad]).unwrap(),
                ..Default::default()
            };
            assert!(
                S3Config::new("host/b", &opts, &|_| None).is_err(),
                "{bad} must be rejected"
            );
        }
    }

    #[test]
    fn region_from_option_then_environment() {
        let env = |k: &str| (k == "AWS_DEFAULT_REGION").then(|| "ap-south-1".to_string());
        let opts = BackendOptions::default();
        let c = S3Config::new("host/b", &opts, &env).unwrap();
        assert_eq!(c.region.as_deref(), Some("ap-south-1"));
        let opts = BackendOptions {
            values: BackendOptions::parse_pairs(["s3.region=us-west-2"]).unwrap(),
            ..Default::default()
        };
        let c = S3Config::new("host/b", &opts, &env).unwrap();
        assert_eq!(c.region.as_deref(), Some("us-west-2"));
    }

    #[test]
    fn regions_from_aws_hosts() {
        assert_eq!(
            region_from_host("s3.eu-west-1.amazonaws.com").as_deref(),
            Some("eu-west-1")
        );
        assert_eq!(
            region_from_host("s3-us-west-2.amazonaws.com").as_deref(),
            Some("us-west-2")
        );
        assert_eq!(
            region_from_host("s3.dualstack.ap-northeast-1.amazonaws.com").as_deref(),
            Some("ap-northeast-1")
        );
        assert_eq!(
            region_from_host("s3.cn-north-1.amazonaws.com.cn").as_deref(),
            Some("cn-north-1")
        );
        assert_eq!(region_from_host("s3.amazonaws.com"), None);
        assert_eq!(region_from_host("minio.example.com"), None);
        assert_eq!(region_from_host("127.0.0.1"), None);
        assert!(is_amazon_host("s3.amazonaws.com"));
        assert!(!is_amazon_host("s3.example.com"));
        assert_eq!(host_of("[::1]:9000"), "::1");
        assert_eq!(host_of("Host.Example:443"), "host.example");
        assert_eq!(host_of("host"), "host");
    }

    #[test]
    fn addressing_style() {
        // Auto: virtual-host style for AWS/Google/Aliyun, path style for everything else.
        assert!(virtual_host_style(&cfg("s3.amazonaws.com/bucket", &[])));
        assert!(virtual_host_style(&cfg(
            "https://s3.eu-west-1.amazonaws.com/bucket/p",
            &[]
        )));
        assert!(virtual_host_style(&cfg(
            "storage.googleapis.com/bucket",
            &[]
        )));
        assert!(!virtual_host_style(&cfg("http://127.0.0.1:9000/b/p", &[])));
        assert!(!virtual_host_style(&cfg("https://minio.lan:9000/b", &[])));
        assert!(!virtual_host_style(&cfg("http://localhost:9000/b", &[])));
        // Dotted bucket names over HTTPS stay path style (wildcard certificates).
        assert!(!virtual_host_style(&cfg("s3.amazonaws.com/my.bucket", &[])));
        // Explicit choices win.
        assert!(virtual_host_style(&cfg(
            "https://minio.lan/b",
            &["s3.bucket-lookup=dns"]
        )));
        assert!(!virtual_host_style(&cfg(
            "s3.amazonaws.com/bucket",
            &["s3.bucket-lookup=path"]
        )));
    }

    #[test]
    fn endpoints() {
        let c = cfg("s3.amazonaws.com/bucket", &[]);
        assert_eq!(
            endpoint_url(&c, "eu-west-1"),
            "https://s3.eu-west-1.amazonaws.com/"
        );
        assert_eq!(
            endpoint_url(&c, "cn-north-1"),
            "https://s3.cn-north-1.amazonaws.com.cn/"
        );
        let c = cfg("http://127.0.0.1:9000/b", &[]);
        assert_eq!(endpoint_url(&c, "us-east-1"), "http://127.0.0.1:9000/");
        let c = cfg("https://[::1]:9000/b", &[]);
        assert_eq!(endpoint_url(&c, "us-east-1"), "https://[::1]:9000/");
        let c = cfg("s3.dualstack.eu-west-1.amazonaws.com/b", &[]);
        assert_eq!(
            endpoint_url(&c, "eu-west-1"),
            "https://s3.dualstack.eu-west-1.amazonaws.com/"
        );
    }
}
