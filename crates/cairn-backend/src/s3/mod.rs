//! The `s3:` backend: Amazon S3 and compatible servers (MinIO, Ceph, Wasabi, moto, ...),
//! with restic's location syntax, options and object layout (`<prefix>/config`,
//! `<prefix>/keys/<id>`, `<prefix>/data/<id[0:2]>/<id>`, ...).
//!
//! Requests are signed with AWS Signature V4 (query-string signing, `rusty-s3`) and sent by a
//! blocking HTTP client. Uploads carry `Content-MD5`, so the server rejects corrupted bodies;
//! an S3 PUT is atomic and durable once it answers 200.

pub mod config;
pub mod credentials;
mod list;
mod transport;

pub use config::{BucketLookup, S3Config, S3Location};
pub use credentials::S3Credentials;

use crate::options::BackendOptions;
use base64::Engine as _;
use cairn_repo::backend::{Backend, BackendError, FileType};
use md5::Digest as _;
use reqwest::Method;
use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};
use std::sync::Arc;
use std::time::Duration;
use transport::{Http, Request};

/// Lifetime of the signed URLs (requests are sent right after signing).
const SIGN_FOR: Duration = Duration::from_secs(3600);
/// S3's limit on the number of parts of one upload.
const MAX_PARTS: u64 = 10_000;

/// Open the `s3:` repository at `location` (the part after `s3:`), reading credentials and
/// `AWS_DEFAULT_REGION` from the environment.
pub fn open(location: &str, opts: &BackendOptions) -> Result<Arc<dyn Backend>, BackendError> {
    let env = |k: &str| std::env::var(k).ok();
    let mut cfg = S3Config::new(location, opts, &env)?;
    if !cfg.anonymous {
        cfg.credentials = Some(credentials::resolve(&env)?.ok_or_else(|| {
            BackendError::Other(
                "s3: no credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, \
                 use a profile in ~/.aws/credentials (AWS_PROFILE), or pass \
                 -o s3.unsafe-anonymous-auth=true for a public bucket"
                    .into(),
            )
        })?);
    }
    Ok(Arc::new(S3Backend::new(cfg)?))
}

/// A repository in an S3 bucket.
pub struct S3Backend {
    cfg: S3Config,
    bucket: Bucket,
    creds: Option<Credentials>,
    http: Http,
}

impl std::fmt::Debug for S3Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Backend")
            .field("location", &self.location())
            .field("base_url", &self.bucket.base_url().as_str())
            .field("region", &self.bucket.region())
            .finish()
    }
}

/// Base64 of the MD5 of `data`, for `Content-MD5`.
pub fn content_md5(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(data))
}

fn is_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

impl S3Backend {
    /// Connect to the bucket of `cfg` with `cfg.credentials` (anonymous when `None`). When no
    /// region is configured it is taken from an AWS host name or asked from the server
    /// (`x-amz-bucket-region` of a bucket HEAD), falling back to `us-east-1`.
    pub fn new(cfg: S3Config) -> Result<S3Backend, BackendError> {
        if cfg.part_size < config::MIN_PART_SIZE {
            return Err(BackendError::Other(format!(
                "s3: part size {} is below S3's minimum of 5 MiB",
                cfg.part_size
            )));
        }
        let http = Http::new(
            cfg.connections,
            &cfg.ca_certs,
            cfg.tls_client_cert.as_deref(),
            cfg.insecure_tls,
        )?;
        let creds = cfg.credentials.as_ref().map(|c| match &c.token {
            Some(t) => Credentials::new_with_token(c.key_id.clone(), c.secret.clone(), t.clone()),
            None => Credentials::new(c.key_id.clone(), c.secret.clone()),
        });
        let style = if config::virtual_host_style(&cfg) {
            UrlStyle::VirtualHost
        } else {
            UrlStyle::Path
        };
        let known = cfg
            .region
            .clone()
            .or_else(|| config::region_from_host(&cfg.host()));
        let mut be = S3Backend {
            bucket: Self::make_bucket(&cfg, style, known.as_deref().unwrap_or("us-east-1"))?,
            cfg,
            creds,
            http,
        };
        if known.is_none()
            && let Some(region) = be.bucket_region()
            && region != "us-east-1"
        {
            tracing::debug!(
                "s3: bucket {} is in region {region}",
                be.cfg.location.bucket
            );
            be.bucket = Self::make_bucket(&be.cfg, style, &region)?;
        }
        Ok(be)
    }

    fn make_bucket(cfg: &S3Config, style: UrlStyle, region: &str) -> Result<Bucket, BackendError> {
        let endpoint = config::endpoint_url(cfg, region);
        let url = url::Url::parse(&endpoint)
            .map_err(|e| BackendError::Other(format!("s3: endpoint {endpoint}: {e}")))?;
        Bucket::new(url, style, cfg.location.bucket.clone(), region.to_string())
            .map_err(|e| BackendError::Other(format!("s3: endpoint {endpoint}: {e:?}")))
    }

    /// The region the server reports for the bucket (AWS and MinIO send
    /// `x-amz-bucket-region`, also with 301/403 answers); `None` if it does not say.
    fn bucket_region(&self) -> Option<String> {
        let url = self.bucket.head_bucket(self.creds.as_ref()).sign(SIGN_FOR);
        let resp = self
            .http
            .exec(self.req(Method::HEAD, url, "HEAD bucket"))
            .ok()?;
        resp.header("x-amz-bucket-region")
            .map(str::to_string)
            .filter(|r| !r.is_empty())
    }

    /// The configuration in use.
    pub fn config(&self) -> &S3Config {
        &self.cfg
    }

    /// The signing region in use.
    pub fn region(&self) -> &str {
        self.bucket.region()
    }

    /// The object key of a repository file.
    pub fn key(&self, t: FileType, name: &str) -> Result<String, BackendError> {
        let rel = match t {
            FileType::Config => "config".to_string(),
            FileType::Pack => {
                let dir = name
                    .get(..2)
                    .filter(|_| name.len() > 2)
                    .ok_or_else(|| BackendError::Other(format!("invalid pack name {name:?}")))?;
                format!("data/{dir}/{name}")
            }
            _ => format!("{}/{name}", t.dir()),
        };
        Ok(self.join(&rel))
    }

    fn join(&self, rel: &str) -> String {
        if self.cfg.location.prefix.is_empty() {
            rel.to_string()
        } else {
            format!("{}/{rel}", self.cfg.location.prefix)
        }
    }

    fn req<'a>(&self, method: Method, url: url::Url, what: &'a str) -> Request<'a> {
        Request {
            method,
            url,
            headers: Vec::new(),
            body: None,
            bulk: false,
            what,
        }
    }

    /// HEAD an object: its size, or `NotFound`.
    fn head(&self, key: &str) -> Result<u64, BackendError> {
        let what = format!("HEAD {key}");
        let url = self
            .bucket
            .head_object(self.creds.as_ref(), key)
            .sign(SIGN_FOR);
        let resp = self.http.exec(self.req(Method::HEAD, url, &what))?;
        match resp.status {
            200 => resp
                .header("content-length")
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| BackendError::Other(format!("s3: {what}: no Content-Length"))),
            404 => Err(BackendError::NotFound(key.to_string())),
            _ => Err(resp.error(&what)),
        }
    }

    /// GET an object or a byte range of it.
    fn get(&self, key: &str, range: Option<(u64, u64)>) -> Result<Vec<u8>, BackendError> {
        let what = match range {
            Some((off, len)) => format!("GET {key} [{off}, +{len})"),
            None => format!("GET {key}"),
        };
        let url = self
            .bucket
            .get_object(self.creds.as_ref(), key)
            .sign(SIGN_FOR);
        let mut req = self.req(Method::GET, url, &what);
        req.bulk = true;
        if let Some((off, len)) = range {
            let last = off
                .checked_add(len - 1)
                .ok_or_else(|| BackendError::Other(format!("s3: {what}: range overflows")))?;
            req.headers.push(("range", format!("bytes={off}-{last}")));
        }
        let resp = self.http.exec(req)?;
        match (resp.status, range) {
            (200, None) => Ok(resp.body),
            (206, Some((_, len))) => {
                if resp.body.len() as u64 != len {
                    return Err(BackendError::Other(format!(
                        "s3: {what}: short read: got {} bytes",
                        resp.body.len()
                    )));
                }
                Ok(resp.body)
            }
            // A server that ignores Range sends the whole object.
            (200, Some((off, len))) => {
                let slice = usize::try_from(off)
                    .ok()
                    .zip(off.checked_add(len).and_then(|e| usize::try_from(e).ok()))
                    .and_then(|(a, b)| resp.body.get(a..b));
                slice.map(<[u8]>::to_vec).ok_or_else(|| {
                    BackendError::Other(format!(
                        "s3: {what}: short read: the object has {} bytes",
                        resp.body.len()
                    ))
                })
            }
            (404, _) => Err(BackendError::NotFound(key.to_string())),
            (416, _) => Err(BackendError::Other(format!(
                "s3: {what}: the range is past the end of the object"
            ))),
            _ => Err(resp.error(&what)),
        }
    }

    /// Headers every new object gets: content type and storage class.
    fn object_headers(&self) -> Vec<(&'static str, String)> {
        let mut h = vec![("content-type", "application/octet-stream".to_string())];
        if let Some(c) = &self.cfg.storage_class {
            h.push(("x-amz-storage-class", c.clone()));
        }
        h
    }

    /// Sign `action` with the headers that must be part of the signature.
    fn sign_with<'a, A: S3Action<'a>>(
        mut action: A,
        headers: &'a [(&'static str, String)],
    ) -> url::Url {
        for (k, v) in headers {
            if *k != "content-type" {
                action.headers_mut().insert(*k, v.as_str());
            }
        }
        action.sign(SIGN_FOR)
    }

    /// Single PUT with `Content-MD5`.
    fn put(&self, key: &str, data: &[u8]) -> Result<(), BackendError> {
        let what = format!("PUT {key}");
        let mut headers = self.object_headers();
        headers.push(("content-md5", content_md5(data)));
        let url = Self::sign_with(self.bucket.put_object(self.creds.as_ref(), key), &headers);
        let mut req = self.req(Method::PUT, url, &what);
        req.headers = headers;
        req.body = Some(data.to_vec());
        req.bulk = true;
        let resp = self.http.exec(req)?;
        if resp.status != 200 {
            return Err(resp.error(&what));
        }
        Ok(())
    }

    /// Multipart upload in parts of `part_size` (more if needed to stay within 10 000
    /// parts), each with `Content-MD5`; aborted on failure.
    fn put_multipart(&self, key: &str, data: &[u8]) -> Result<(), BackendError> {
        let what = format!("multipart upload {key}");
        let headers = self.object_headers();
        let url = Self::sign_with(
            self.bucket
                .create_multipart_upload(self.creds.as_ref(), key),
            &headers,
        );
        let mut req = self.req(Method::POST, url, &what);
        req.headers = headers;
        let resp = self.http.exec(req)?;
        if resp.status != 200 {
            return Err(resp.error(&what));
        }
        let text = String::from_utf8_lossy(&resp.body);
        let created = rusty_s3::actions::CreateMultipartUpload::parse_response(&text)
            .map_err(|e| BackendError::Other(format!("s3: {what}: bad response: {e}")))?;
        let upload_id = created.upload_id().to_string();
        let result = self.upload_parts(key, &upload_id, data, &what);
        if result.is_err() {
            let url = self
                .bucket
                .abort_multipart_upload(self.creds.as_ref(), key, &upload_id)
                .sign(SIGN_FOR);
            let abort = format!("abort {what}");
            if let Err(e) = self.http.exec(self.req(Method::DELETE, url, &abort)) {
                tracing::warn!("{e}");
            }
            return result;
        }
        // Like restic's size sanity check: the stored object has every byte.
        let size = self.head(key)?;
        if size != data.len() as u64 {
            return Err(BackendError::Other(format!(
                "s3: {what}: stored {size} bytes instead of {}",
                data.len()
            )));
        }
        Ok(())
    }

    fn upload_parts(
        &self,
        key: &str,
        upload_id: &str,
        data: &[u8],
        what: &str,
    ) -> Result<(), BackendError> {
        let len = data.len() as u64;
        let part_size = self.cfg.part_size.max(len.div_ceil(MAX_PARTS));
        let part_size = usize::try_from(part_size)
            .map_err(|_| BackendError::Other(format!("s3: {what}: part size too large")))?;
        let mut etags = Vec::new();
        for (i, chunk) in data.chunks(part_size).enumerate() {
            let number = u16::try_from(i + 1)
                .map_err(|_| BackendError::Other(format!("s3: {what}: too many parts")))?;
            let part_what = format!("{what}: part {number}");
            let headers = vec![("content-md5", content_md5(chunk))];
            let url = Self::sign_with(
                self.bucket
                    .upload_part(self.creds.as_ref(), key, number, upload_id),
                &headers,
            );
            let mut req = self.req(Method::PUT, url, &part_what);
            req.headers = headers;
            req.body = Some(chunk.to_vec());
            req.bulk = true;
            let resp = self.http.exec(req)?;
            if resp.status != 200 {
                return Err(resp.error(&part_what));
            }
            let etag = resp.header("etag").map(str::to_string).ok_or_else(|| {
                BackendError::Other(format!("s3: {part_what}: no ETag in the response"))
            })?;
            etags.push(etag);
        }
        let complete = self.bucket.complete_multipart_upload(
            self.creds.as_ref(),
            key,
            upload_id,
            etags.iter().map(String::as_str),
        );
        let url = complete.sign(SIGN_FOR);
        let mut req = self.req(Method::POST, url, what);
        req.body = Some(complete.body().into_bytes());
        req.headers
            .push(("content-type", "application/xml".to_string()));
        let resp = self.http.exec(req)?;
        // S3 may answer 200 and still report an error in the body.
        if resp.status != 200 || !resp.error_code().is_empty() {
            return Err(resp.error(what));
        }
        Ok(())
    }

    /// Create the bucket unless it exists (a 403 on the check counts as "exists", like
    /// restic, for credentials limited to one bucket).
    fn ensure_bucket(&self) -> Result<(), BackendError> {
        let what = format!("HEAD bucket {}", self.cfg.location.bucket);
        let url = self.bucket.head_bucket(self.creds.as_ref()).sign(SIGN_FOR);
        let resp = self.http.exec(self.req(Method::HEAD, url, &what))?;
        match resp.status {
            200 | 403 => return Ok(()),
            404 => {}
            _ => return Err(resp.error(&what)),
        }
        let what = format!("create bucket {}", self.cfg.location.bucket);
        let creds = self.creds.as_ref().ok_or_else(|| {
            BackendError::Other(format!("s3: {what}: not possible with anonymous access"))
        })?;
        let url = self.bucket.create_bucket(creds).sign(SIGN_FOR);
        let mut req = self.req(Method::PUT, url, &what);
        let region = self.bucket.region();
        if region != "us-east-1" {
            req.body = Some(
                format!(
                    "<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
                     <LocationConstraint>{region}</LocationConstraint></CreateBucketConfiguration>"
                )
                .into_bytes(),
            );
        }
        let resp = self.http.exec(req)?;
        match resp.status {
            200 => Ok(()),
            409 if resp.error_code() == "BucketAlreadyOwnedByYou" => Ok(()),
            _ => Err(resp.error(&what)),
        }
    }
}

impl Backend for S3Backend {
    fn location(&self) -> String {
        let l = &self.cfg.location;
        let scheme = if l.use_http { "http" } else { "https" };
        if l.prefix.is_empty() {
            format!("s3:{scheme}://{}/{}", l.endpoint, l.bucket)
        } else {
            format!("s3:{scheme}://{}/{}/{}", l.endpoint, l.bucket, l.prefix)
        }
    }

    fn create(&self) -> Result<(), BackendError> {
        let config = self.key(FileType::Config, "config")?;
        match self.head(&config) {
            Ok(_) => return Err(BackendError::AlreadyExists(self.location() + "/config")),
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
        self.ensure_bucket()
    }

    fn list(&self, t: FileType) -> Result<Vec<(String, u64)>, BackendError> {
        if t == FileType::Config {
            return match self.head(&self.key(t, "config")?) {
                Ok(size) => Ok(vec![("config".to_string(), size)]),
                Err(e) if e.is_not_found() => Ok(Vec::new()),
                Err(e) => Err(e),
            };
        }
        let dir = self.join(&format!("{}/", t.dir()));
        let objects = self.list_objects(&dir, t != FileType::Pack)?;
        let mut out = Vec::new();
        for (key, size) in objects {
            let Some(rel) = key.strip_prefix(&dir) else {
                continue;
            };
            let name = if t == FileType::Pack {
                // data/<id[0:2]>/<id>; anything else cannot be read back under that name.
                match rel.split_once('/') {
                    Some((sub, id)) if is_id(id) && id.get(..2) == Some(sub) => id,
                    _ => continue,
                }
            } else {
                rel
            };
            if is_id(name) {
                let size = match size {
                    Some(s) => s,
                    None => self.head(&key)?,
                };
                out.push((name.to_string(), size));
            }
        }
        Ok(out)
    }

    fn read(&self, t: FileType, name: &str) -> Result<Vec<u8>, BackendError> {
        self.get(&self.key(t, name)?, None)
    }

    fn read_range(
        &self,
        t: FileType,
        name: &str,
        offset: u64,
        len: u64,
    ) -> Result<Vec<u8>, BackendError> {
        let key = self.key(t, name)?;
        if len == 0 {
            let size = self.head(&key)?;
            if offset > size {
                return Err(BackendError::Other(format!(
                    "s3: {key}: offset {offset} is past the end ({size} bytes)"
                )));
            }
            return Ok(Vec::new());
        }
        self.get(&key, Some((offset, len)))
    }

    fn stat(&self, t: FileType, name: &str) -> Result<u64, BackendError> {
        self.head(&self.key(t, name)?)
    }

    fn write(&self, t: FileType, name: &str, data: &[u8]) -> Result<(), BackendError> {
        let key = self.key(t, name)?;
        if data.len() as u64 > self.cfg.multipart_threshold {
            self.put_multipart(&key, data)
        } else {
            self.put(&key, data)
        }
    }

    fn remove(&self, t: FileType, name: &str) -> Result<(), BackendError> {
        let key = self.key(t, name)?;
        // S3 answers 204 for missing keys too; the HEAD gives callers their NotFound.
        self.head(&key)?;
        let what = format!("DELETE {key}");
        let url = self
            .bucket
            .delete_object(self.creds.as_ref(), &key)
            .sign(SIGN_FOR);
        let resp = self.http.exec(self.req(Method::DELETE, url, &what))?;
        match resp.status {
            200 | 204 => Ok(()),
            404 => Err(BackendError::NotFound(key)),
            _ => Err(resp.error(&what)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend(location: &str) -> S3Backend {
        let opts = BackendOptions {
            values: BackendOptions::parse_pairs(["s3.region=us-east-1"]).unwrap(),
            ..Default::default()
        };
        let mut cfg = S3Config::new(location, &opts, &|_| None).unwrap();
        cfg.credentials = Some(S3Credentials {
            key_id: "id".into(),
            secret: "secret".into(),
            token: None,
        });
        // No request is sent: the region is configured.
        S3Backend::new(cfg).unwrap()
    }

    #[test]
    fn object_keys_follow_restics_layout() {
        let id = "ab".repeat(32);
        let b = backend("http://127.0.0.1:1/bucket/some/prefix");
        assert_eq!(
            b.key(FileType::Config, "config").unwrap(),
            "some/prefix/config"
        );
        assert_eq!(
            b.key(FileType::Pack, &id).unwrap(),
            format!("some/prefix/data/ab/{id}")
        );
        assert_eq!(
            b.key(FileType::Key, &id).unwrap(),
            format!("some/prefix/keys/{id}")
        );
        assert_eq!(
            b.key(FileType::Lock, &id).unwrap(),
            format!("some/prefix/locks/{id}")
        );
        assert_eq!(
            b.key(FileType::Snapshot, &id).unwrap(),
            format!("some/prefix/snapshots/{id}")
        );
        assert_eq!(
            b.key(FileType::Index, &id).unwrap(),
            format!("some/prefix/index/{id}")
        );
        assert!(b.key(FileType::Pack, "a").is_err());
        let b = backend("http://127.0.0.1:1/bucket");
        assert_eq!(b.key(FileType::Config, "config").unwrap(), "config");
        assert_eq!(b.key(FileType::Pack, &id).unwrap(), format!("data/ab/{id}"));
        assert_eq!(b.location(), "s3:http://127.0.0.1:1/bucket");
    }

    #[test]
    fn urls_use_the_chosen_style() {
        let b = backend("http://127.0.0.1:9000/bucket/p");
        assert_eq!(
            b.bucket.base_url().as_str(),
            "http://127.0.0.1:9000/bucket/"
        );
        let b = backend("s3.amazonaws.com/bucket/p");
        assert_eq!(
            b.bucket.base_url().as_str(),
            "https://bucket.s3.us-east-1.amazonaws.com/"
        );
    }

    #[test]
    fn md5_header() {
        // RFC 1321 test vector, base64 as S3 wants it.
        assert_eq!(content_md5(b""), "1B2M2Y8AsgTpgAmY7PhCfg==");
        assert_eq!(content_md5(b"abc"), "kAFQmDzST7DWlj99KOF/cg==");
    }
}
