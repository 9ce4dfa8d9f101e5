//! `[registry]`: where the schema repository is and how it is kept current.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::bounds::RepoBounds;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegistryConfig {
    /// The schema repository: a directory holding schema folders (directly or under `schemas/`)
    /// and optionally `stations.toml`; or a git repository — a URL, or the path of a local
    /// repository — whose `branch` is served commit by commit.
    pub source: PathBuf,
    /// Git sources: the branch to serve.
    pub branch: String,
    /// Git sources: how often the remote is fetched (besides `POST /v1/registry/sync`).
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// The environment variable holding the webhook secret; when it is set and not empty,
    /// `POST /v1/registry/sync` requires a valid `X-Hub-Signature-256` or `X-Gitlab-Token`.
    pub webhook_secret_env: String,
    /// Directory sources: rebuild the snapshot when files under `source` change.
    pub watch: bool,
    /// SSH git sources (`ssh://…` or `git@host:…`): the private deploy key to fetch with.
    pub ssh_key_file: Option<PathBuf>,
    /// SSH git sources: OpenSSH `known_hosts` listing the server's host key; a key it does not
    /// list (an unknown host, or a changed key) is refused.
    pub known_hosts_file: Option<PathBuf>,
    /// Most files one revision of the repository may hold; a revision with more is refused.
    pub max_files: usize,
    /// Most bytes of distinct file contents one revision may hold; a revision with more is
    /// refused.
    pub max_repository_bytes: u64,
    /// Git sources: most bytes one fetch may receive; a fetch past it is stopped.
    pub max_fetch_bytes: u64,
}

impl RegistryConfig {
    /// How much of a revision and of a fetch is read.
    pub fn bounds(&self) -> RepoBounds {
        RepoBounds {
            max_files: self.max_files,
            max_bytes: self.max_repository_bytes,
            max_fetch_bytes: self.max_fetch_bytes,
        }
    }
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self {
            source: PathBuf::from("schemas"),
            branch: "main".to_owned(),
            poll_interval: Duration::from_secs(30),
            webhook_secret_env: "SLUICE_WEBHOOK_SECRET".to_owned(),
            watch: true,
            ssh_key_file: None,
            known_hosts_file: None,
            max_files: RepoBounds::default().max_files,
            max_repository_bytes: RepoBounds::default().max_bytes,
            max_fetch_bytes: RepoBounds::default().max_fetch_bytes,
        }
    }
}
