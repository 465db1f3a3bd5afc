//! Where S3 credentials come from: environment variables (AWS, then MinIO names), then the AWS
//! shared credentials file, like restic's credential chain (without the EC2 metadata service).

use cairn_repo::backend::BackendError;
use std::fmt;
use std::path::PathBuf;

/// An access key pair, with an optional session token.
#[derive(Clone, PartialEq, Eq)]
pub struct S3Credentials {
    /// Access key id.
    pub key_id: String,
    /// Secret access key.
    pub secret: String,
    /// Session token for temporary credentials.
    pub token: Option<String>,
}

impl fmt::Debug for S3Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Credentials")
            .field("key_id", &self.key_id)
            .field("secret", &"<redacted>")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

fn first(env: &dyn Fn(&str) -> Option<String>, names: &[&str]) -> Option<String> {
    names.iter().find_map(|n| env(n).filter(|v| !v.is_empty()))
}

/// Look the credentials up: `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY` (+`AWS_SESSION_TOKEN`),
/// then `MINIO_ROOT_USER`/`MINIO_ROOT_PASSWORD` or `MINIO_ACCESS_KEY`/`MINIO_SECRET_KEY`, then
/// the profile `$AWS_PROFILE` (default `default`) of `$AWS_SHARED_CREDENTIALS_FILE` (default
/// `~/.aws/credentials`). `Ok(None)` when nothing is found. `env` reads an environment variable.
pub fn resolve(
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<S3Credentials>, BackendError> {
    let id = first(env, &["AWS_ACCESS_KEY_ID", "AWS_ACCESS_KEY"]);
    let secret = first(env, &["AWS_SECRET_ACCESS_KEY", "AWS_SECRET_KEY"]);
    match (id, secret) {
        (Some(key_id), Some(secret)) => {
            return Ok(Some(S3Credentials {
                key_id,
                secret,
                token: first(env, &["AWS_SESSION_TOKEN"]),
            }));
        }
        (None, Some(_)) => {
            return Err(BackendError::Other(
                "unable to open S3 backend: Key ID ($AWS_ACCESS_KEY_ID) is empty".into(),
            ));
        }
        (Some(_), None) => {
            return Err(BackendError::Other(
                "unable to open S3 backend: Secret ($AWS_SECRET_ACCESS_KEY) is empty".into(),
            ));
        }
        (None, None) => {}
    }
    let id = first(env, &["MINIO_ROOT_USER", "MINIO_ACCESS_KEY"]);
    let secret = first(env, &["MINIO_ROOT_PASSWORD", "MINIO_SECRET_KEY"]);
    if let (Some(key_id), Some(secret)) = (id, secret) {
        return Ok(Some(S3Credentials {
            key_id,
            secret,
            token: None,
        }));
    }
    let file = match first(env, &["AWS_SHARED_CREDENTIALS_FILE"]) {
        Some(f) => PathBuf::from(f),
        None => match first(env, &["HOME"]) {
            Some(h) => PathBuf::from(h).join(".aws").join("credentials"),
            None => return Ok(None),
        },
    };
    let text = match std::fs::read_to_string(&file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(BackendError::Io {
                path: file.display().to_string(),
                source: e,
            });
        }
    };
    let profile = first(env, &["AWS_PROFILE"]).unwrap_or_else(|| "default".to_string());
    Ok(from_profile(&text, &profile))
}

/// The credentials of `[profile]` in the text of an AWS shared credentials file (INI).
pub fn from_profile(text: &str, profile: &str) -> Option<S3Credentials> {
    let mut in_section = false;
    let (mut id, mut secret, mut token) = (None, None, None);
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let name = name.trim();
            in_section = name == profile || name.strip_prefix("profile ") == Some(profile);
            continue;
        }
        if !in_section {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let v = v.trim().to_string();
        match k.trim().to_ascii_lowercase().as_str() {
            "aws_access_key_id" => id = Some(v),
            "aws_secret_access_key" => secret = Some(v),
            "aws_session_token" => token = Some(v),
            _ => {}
        }
    }
    Some(S3Credentials {
        key_id: id.filter(|s| !s.is_empty())?,
        secret: secret.filter(|s| !s.is_empty())?,
        token: token.filter(|s| !s.is_empty()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn environment_first() {
        let env = env_of(&[
            ("AWS_ACCESS_KEY_ID", "AKID"),
            ("AWS_SECRET_ACCESS_KEY", "SECRET"),
            ("AWS_SESSION_TOKEN", "TOKEN"),
            ("MINIO_ACCESS_KEY", "minio"),
            ("MINIO_SECRET_KEY", "minio-secret"),
        ]);
        let c = resolve(&env).unwrap().unwrap();
        assert_eq!(c.key_id, "AKID");
        assert_eq!(c.secret, "SECRET");
        assert_eq!(c.token.as_deref(), Some("TOKEN"));
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("SECRET") && !shown.contains("TOKEN"),
            "{shown}"
        );

        let env = env_of(&[("MINIO_ACCESS_KEY", "minio"), ("MINIO_SECRET_KEY", "ms")]);
        let c = resolve(&env).unwrap().unwrap();
        assert_eq!((c.key_id.as_str(), c.token), ("minio", None));
    }

    #[test]
    fn half_a_key_pair_is_an_error() {
        assert!(resolve(&env_of(&[("AWS_ACCESS_KEY_ID", "x")])).is_err());
        assert!(resolve(&env_of(&[("AWS_SECRET_ACCESS_KEY", "x")])).is_err());
        // Empty values count as unset.
        let env = env_of(&[("AWS_ACCESS_KEY_ID", ""), ("AWS_SECRET_ACCESS_KEY", "")]);
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().to_str().unwrap().to_string();
        let env2 = move |k: &str| {
            if k == "HOME" {
                Some(home.clone())
            } else {
                env(k)
            }
        };
        assert_eq!(resolve(&env2).unwrap(), None);
    }

    const FILE: &str = "\
# comment
[default]
aws_access_key_id = DEFAULTID
aws_secret_access_key=DEFAULTSECRET

[work]
aws_access_key_id = WORKID
aws_secret_access_key = WORKSECRET
aws_session_token = WORKTOKEN
[broken]
aws_access_key_id = ONLYID
";

    #[test]
    fn shared_credentials_file() {
        let c = from_profile(FILE, "default").unwrap();
        assert_eq!(
            (c.key_id.as_str(), c.secret.as_str()),
            ("DEFAULTID", "DEFAULTSECRET")
        );
        assert_eq!(c.token, None);
        let c = from_profile(FILE, "work").unwrap();
        assert_eq!(c.key_id, "WORKID");
        assert_eq!(c.token.as_deref(), Some("WORKTOKEN"));
        assert_eq!(from_profile(FILE, "broken"), None);
        assert_eq!(from_profile(FILE, "missing"), None);

        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("creds");
        std::fs::write(&f, FILE).unwrap();
        let path = f.to_str().unwrap().to_string();
        let env = move |k: &str| match k {
            "AWS_SHARED_CREDENTIALS_FILE" => Some(path.clone()),
            "AWS_PROFILE" => Some("work".to_string()),
            _ => None,
        };
        assert_eq!(resolve(&env).unwrap().unwrap().key_id, "WORKID");
        // Default location ~/.aws/credentials, default profile.
        std::fs::create_dir(dir.path().join(".aws")).unwrap();
        std::fs::write(dir.path().join(".aws/credentials"), FILE).unwrap();
        let home = dir.path().to_str().unwrap().to_string();
        let env = move |k: &str| (k == "HOME").then(|| home.clone());
        assert_eq!(resolve(&env).unwrap().unwrap().key_id, "DEFAULTID");
    }
}
