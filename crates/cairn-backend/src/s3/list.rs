//! Listing objects below a key prefix, page by page, with ListObjectsV2 (continuation
//! tokens) or ListObjects V1 (markers) for servers without V2.

use super::{S3Backend, SIGN_FOR};
use cairn_repo::backend::BackendError;
use instant_xml::FromXml;
use reqwest::Method;
use rusty_s3::S3Action;
use rusty_s3::actions::ListObjectsV2;
use rusty_s3::actions::list_objects_v2::{CommonPrefixes, ListObjectsContent};

/// A ListObjects V1 answer (the parts used here).
#[derive(Debug, FromXml)]
#[xml(
    rename = "ListBucketResult",
    ns("http://s3.amazonaws.com/doc/2006-03-01/")
)]
pub(crate) struct ListV1Response {
    contents: Vec<ListObjectsContent>,
    common_prefixes: Vec<CommonPrefixes>,
    #[xml(rename = "IsTruncated")]
    is_truncated: Option<bool>,
    #[xml(rename = "NextMarker")]
    next_marker: Option<String>,
}

/// One page: objects as (key, size), and where the next page starts.
type Page = (Vec<(String, Option<u64>)>, Option<String>);

/// Parse a V1 page. A truncated page continues after `NextMarker`, or (servers send it only
/// with a delimiter) after its greatest key or common prefix.
pub(crate) fn parse_v1(body: &str, marker: Option<&str>) -> Result<Page, String> {
    let page: ListV1Response = instant_xml::from_str(body).map_err(|e| e.to_string())?;
    let objects = page
        .contents
        .iter()
        .map(|c| (c.key.clone(), c.size))
        .collect();
    if page.is_truncated != Some(true) {
        return Ok((objects, None));
    }
    let last_key = page.contents.last().map(|c| c.key.as_str());
    let last_prefix = page.common_prefixes.last().map(|p| p.prefix.as_str());
    let next = page
        .next_marker
        .clone()
        .filter(|m| !m.is_empty())
        .or_else(|| last_key.max(last_prefix).map(str::to_string));
    match next {
        Some(n) if Some(n.as_str()) != marker => Ok((objects, Some(n))),
        _ => Err("truncated listing without progress".to_string()),
    }
}

/// Parse a V2 page (rusty-s3 decodes URL-encoded keys and checks the token).
pub(crate) fn parse_v2(body: &str) -> Result<Page, String> {
    let page = ListObjectsV2::parse_response(body).map_err(|e| e.to_string())?;
    let objects = page
        .contents
        .iter()
        .map(|c| (c.key.clone(), c.size))
        .collect();
    Ok((objects, page.next_continuation_token))
}

impl S3Backend {
    /// All objects whose key starts with `dir` (ending in `/`) as (key, size; `None` when
    /// the server left the size out). With `delimited`, keys in "subdirectories" of `dir` are
    /// left out.
    pub(crate) fn list_objects(
        &self,
        dir: &str,
        delimited: bool,
    ) -> Result<Vec<(String, Option<u64>)>, BackendError> {
        let what = format!("list {dir}");
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        let mut pages = 0u64;
        loop {
            pages += 1;
            let mut action = self.bucket.list_objects_v2(self.creds.as_ref());
            action.with_prefix(dir);
            if delimited {
                action.with_delimiter("/");
            }
            if let Some(n) = self.cfg.list_page_size {
                action.with_max_keys(n);
            }
            if self.cfg.list_objects_v1 {
                // The same request without `list-type=2` is a V1 listing; keys stay plain.
                action.query_mut().remove("list-type");
                action.query_mut().remove("encoding-type");
                if let Some(m) = &token {
                    action.query_mut().insert("marker", m.clone());
                }
            } else if let Some(t) = &token {
                action.with_continuation_token(t.clone());
            }
            let url = action.sign(SIGN_FOR);
            let resp = self.http.exec(self.req(Method::GET, url, &what))?;
            if resp.status != 200 {
                if resp.status == 404 && resp.error_code() == "NoSuchBucket" {
                    return Err(BackendError::NotFound(format!(
                        "bucket {}",
                        self.cfg.location.bucket
                    )));
                }
                return Err(resp.error(&what));
            }
            let text = String::from_utf8_lossy(&resp.body);
            let (objects, next) = if self.cfg.list_objects_v1 {
                parse_v1(&text, token.as_deref())
            } else {
                parse_v2(&text)
            }
            .map_err(|e| {
                BackendError::Other(format!("s3: {what}: bad listing (page {pages}): {e}"))
            })?;
            out.extend(objects);
            match next {
                Some(n) => token = Some(n),
                None => return Ok(out),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
        <ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
        <Name>b</Name><Prefix>p/keys/</Prefix><MaxKeys>2</MaxKeys>";

    fn obj(key: &str, size: u64) -> String {
        format!(
            "<Contents><Key>{key}</Key><LastModified>2024-01-01T00:00:00.000Z</LastModified>\
             <ETag>&quot;x&quot;</ETag><Size>{size}</Size><StorageClass>STANDARD</StorageClass>\
             </Contents>"
        )
    }

    #[test]
    fn v1_pages() {
        let body = format!(
            "{HEAD}<Marker></Marker><IsTruncated>true</IsTruncated>{}{}</ListBucketResult>",
            obj("p/keys/a", 1),
            obj("p/keys/b", 2)
        );
        let (objs, next) = parse_v1(&body, None).unwrap();
        assert_eq!(
            objs,
            vec![("p/keys/a".into(), Some(1)), ("p/keys/b".into(), Some(2))]
        );
        assert_eq!(next.as_deref(), Some("p/keys/b"));
        // A truncated page that does not move on is an error, not an endless loop.
        assert!(parse_v1(&body, Some("p/keys/b")).is_err());
        // NextMarker wins; common prefixes count for the marker.
        let body = format!(
            "{HEAD}<IsTruncated>true</IsTruncated><NextMarker>p/keys/z</NextMarker>{}\
             </ListBucketResult>",
            obj("p/keys/c", 3)
        );
        assert_eq!(
            parse_v1(&body, None).unwrap().1.as_deref(),
            Some("p/keys/z")
        );
        let body = format!(
            "{HEAD}<IsTruncated>true</IsTruncated>{}<CommonPrefixes><Prefix>p/keys/d/</Prefix>\
             </CommonPrefixes></ListBucketResult>",
            obj("p/keys/c", 3)
        );
        assert_eq!(
            parse_v1(&body, None).unwrap().1.as_deref(),
            Some("p/keys/d/")
        );
        let body = format!(
            "{HEAD}<IsTruncated>false</IsTruncated>{}</ListBucketResult>",
            obj("p/keys/e", 5)
        );
        let (objs, next) = parse_v1(&body, None).unwrap();
        assert_eq!((objs.len(), next), (1, None));
        assert!(parse_v1("<Error><Code>x</Code></Error>", None).is_err());
    }

    #[test]
    fn v2_pages() {
        let body = format!(
            "{HEAD}<KeyCount>1</KeyCount><IsTruncated>true</IsTruncated>\
             <NextContinuationToken>tok</NextContinuationToken>{}</ListBucketResult>",
            obj("p/keys/a", 7)
        );
        let (objs, next) = parse_v2(&body).unwrap();
        assert_eq!(objs, vec![("p/keys/a".into(), Some(7))]);
        assert_eq!(next.as_deref(), Some("tok"));
        let body = format!("{HEAD}<IsTruncated>false</IsTruncated></ListBucketResult>");
        assert_eq!(parse_v2(&body).unwrap(), (vec![], None));
    }
}
