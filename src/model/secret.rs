//! Secrets in the configuration (passwords, tokens): given inline, by environment variable or by
//! file, and read each time they are used, so a rotated file is picked up without a restart. A
//! secret's value is never printed: its `Debug` says only where it comes from.

use std::fmt;
use std::path::{Path, PathBuf};

/// Where a secret comes from: `<key>`, `<key>_env` or `<key>_file` in the configuration.
#[derive(Clone, PartialEq, Eq)]
pub enum SecretSource {
    Inline(String),
    Env(String),
    File(PathBuf),
}

impl fmt::Debug for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Inline(_) => f.write_str("inline (hidden)"),
            Self::Env(name) => write!(f, "environment variable {name}"),
            Self::File(path) => write!(f, "file {}", path.display()),
        }
    }
}

/// A secret written in the configuration file itself (`password = "…"`); `Debug` and
/// serializing (the configuration `sluice config` prints) hide it.
#[derive(Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(transparent)]
pub struct InlineSecret(pub String);

impl serde::Serialize for InlineSecret {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(HIDDEN)
    }
}

/// What is shown in place of a secret.
pub const HIDDEN: &str = "<hidden>";

impl fmt::Debug for InlineSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("InlineSecret(hidden)")
    }
}

/// A secret's value; `Debug` hides it, and there is no `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(hidden)")
    }
}

impl SecretSource {
    /// The one of `<key>`, `<key>_env` and `<key>_file` that is set; refuses two at once.
    pub fn from_keys(
        key: &str,
        inline: Option<&InlineSecret>,
        env: Option<&str>,
        file: Option<&Path>,
    ) -> Result<Option<Self>, String> {
        let given = [inline.is_some(), env.is_some(), file.is_some()];
        if given.iter().filter(|set| **set).count() > 1 {
            return Err(format!(
                "{key}: give one of `{key}`, `{key}_env` and `{key}_file`, not several"
            ));
        }
        Ok(inline
            .map(|value| Self::Inline(value.0.clone()))
            .or_else(|| env.map(|name| Self::Env(name.to_owned())))
            .or_else(|| file.map(|path| Self::File(path.to_owned()))))
    }

    /// Reads the secret now. A file's trailing line break is not part of it. Errors name `key`
    /// and where the secret was looked for, never its value.
    pub fn read(&self, key: &str) -> Result<Secret, String> {
        let value = match self {
            Self::Inline(value) => value.clone(),
            Self::Env(name) => std::env::var(name).map_err(|_| {
                format!("{key}_env: the environment variable {name} is not set (or not UTF-8)")
            })?,
            Self::File(path) => std::fs::read_to_string(path)
                .map_err(|e| format!("{key}_file: cannot read {}: {e}", path.display()))?
                .trim_end_matches(['\r', '\n'])
                .to_owned(),
        };
        if value.is_empty() {
            return Err(format!("{key}: the secret from {self:?} is empty"));
        }
        Ok(Secret(value))
    }
}

/// `url` as it may be shown (logs, errors, the API, `sluice config`): the user-info of each URL
/// of a comma-separated list hidden as `***`, since a password or a token can be written there,
/// and a token often as the user name alone (`https://TOKEN@host/…`). Only an SSH URL keeps its
/// user name (`ssh://git@host/…`), which names an account, not a secret.
pub fn shown_url(url: &str) -> String {
    url.split(',')
        .map(shown_one_url)
        .collect::<Vec<_>>()
        .join(",")
}

fn shown_one_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let Some((userinfo, host)) = authority.rsplit_once('@') else {
        return url.to_owned();
    };
    let shown = match (
        scheme.trim().eq_ignore_ascii_case("ssh"),
        userinfo.split_once(':'),
    ) {
        (true, None) => userinfo.to_owned(),
        (true, Some((user, _))) => format!("{user}:***"),
        (false, _) => "***".to_owned(),
    };
    format!("{scheme}://{shown}@{host}{path}")
}

/// The user-info written in `url` (`user`, or `user:password`), if any.
pub fn url_userinfo(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    authority.rsplit_once('@').map(|(userinfo, _)| userinfo)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_source_is_taken_and_two_are_refused() {
        let file = Path::new("/etc/pw");
        assert_eq!(
            SecretSource::from_keys("nats.password", None, None, Some(file)).unwrap(),
            Some(SecretSource::File(file.to_owned()))
        );
        assert_eq!(
            SecretSource::from_keys("nats.password", None, None, None).unwrap(),
            None
        );
        let inline = InlineSecret("x".into());
        let error =
            SecretSource::from_keys("nats.password", Some(&inline), Some("X"), None).unwrap_err();
        assert!(error.contains("nats.password_env"), "{error}");
    }

    #[test]
    fn a_file_is_read_again_each_time_and_no_value_is_printed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("password");
        std::fs::write(&path, "first-secret\n").unwrap();
        let source = SecretSource::File(path.clone());
        assert_eq!(source.read("k").unwrap().expose(), "first-secret");
        std::fs::write(&path, "rotated-secret").unwrap();
        let secret = source.read("k").unwrap();
        assert_eq!(secret.expose(), "rotated-secret");
        assert!(!format!("{secret:?}").contains("rotated"));
        let inline = SecretSource::Inline("inline-secret".into());
        assert!(!format!("{inline:?}").contains("inline-secret"));
        let missing = SecretSource::Env("SLUICE_TEST_NO_SUCH_VARIABLE".into()).read("k");
        assert!(missing
            .unwrap_err()
            .contains("SLUICE_TEST_NO_SUCH_VARIABLE"));
    }

    #[test]
    fn user_info_is_hidden_in_every_url_of_a_list_but_an_ssh_user_name() {
        for (url, shown) in [
            (
                "https://ghp_secret@git.example/acme/schemas.git",
                "https://***@git.example/acme/schemas.git",
            ),
            (
                "https://ci:s3cret@git.example/acme/schemas.git",
                "https://***@git.example/acme/schemas.git",
            ),
            (
                "https://git.example/acme/schemas.git",
                "https://git.example/acme/schemas.git",
            ),
            (
                "ssh://git@git.example/acme/schemas.git",
                "ssh://git@git.example/acme/schemas.git",
            ),
            (
                "ssh://git:pw@git.example/acme",
                "ssh://git:***@git.example/acme",
            ),
            (
                "git@git.example:acme/schemas.git",
                "git@git.example:acme/schemas.git",
            ),
            (
                "nats://user:pw@n1:4222,nats://tok@n2:4222",
                "nats://***@n1:4222,nats://***@n2:4222",
            ),
            (
                "https://hooks.example/path?token=a@b",
                "https://hooks.example/path?token=a@b",
            ),
        ] {
            assert_eq!(shown_url(url), shown, "{url}");
        }
        assert_eq!(
            url_userinfo("https://ci:s3cret@git.example/x"),
            Some("ci:s3cret")
        );
        assert_eq!(url_userinfo("https://git.example/x@y"), None);
    }
}
