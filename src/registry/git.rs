//! A git repository as a schema source, through libgit2 (`git2`): a bare mirror kept in the data
//! directory and fetched from the configured remote, and the files of one commit's tree read
//! straight from the object database — no checkout, no `git` binary, no parsing of our own.
//!
//! The mirror is what lets Sluice start with the remote unreachable: the commit it last served is
//! still in it.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use git2::{
    FetchOptions, ObjectType, Oid, RemoteCallbacks, Repository, TreeWalkMode, TreeWalkResult,
};

use super::bounds::{OverBounds, RepoBounds, Tally};
use crate::formats::RepoFiles;
use crate::model::{shown_url, url_userinfo};

const REMOTE: &str = "origin";

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("cannot open the registry mirror {path}: {cause}")]
    Mirror { path: PathBuf, cause: git2::Error },
    #[error("cannot fetch branch `{branch}` of {url}: {}", .cause.message())]
    Fetch {
        url: String,
        branch: String,
        cause: git2::Error,
    },
    #[error("cannot fetch branch `{branch}` of {url}: {reason}")]
    Refused {
        url: String,
        branch: String,
        reason: String,
    },
    #[error("branch `{branch}` of {url} has not been fetched (does the branch exist?)")]
    NoBranch { url: String, branch: String },
    #[error("cannot read {what}: {}", .cause.message())]
    Read { what: String, cause: git2::Error },
    #[error(transparent)]
    OverBounds(#[from] OverBounds),
}

/// How to reach an SSH remote: the deploy key, and the host keys to trust.
#[derive(Debug, Clone, Default)]
pub struct SshAccess {
    pub key_file: Option<PathBuf>,
    pub known_hosts_file: Option<PathBuf>,
}

/// A bare mirror of one branch of a remote repository.
pub struct GitMirror {
    repo: Repository,
    url: String,
    /// `url` with any user-info written in it hidden: what logs, errors and the API show.
    shown_url: String,
    branch: String,
    ssh: SshAccess,
    bounds: RepoBounds,
}

impl GitMirror {
    /// Opens the mirror at `dir`, creating it on first use, and points it at `url`.
    pub fn open(url: &str, branch: &str, dir: &Path, ssh: SshAccess) -> Result<Self, GitError> {
        let mirror_error = |cause| GitError::Mirror {
            path: dir.to_owned(),
            cause,
        };
        let repo = match Repository::open_bare(dir) {
            Ok(repo) => repo,
            Err(_) => {
                std::fs::create_dir_all(dir)
                    .map_err(|e| mirror_error(git2::Error::from_str(&e.to_string())))?;
                Repository::init_bare(dir).map_err(mirror_error)?
            }
        };
        match repo.find_remote(REMOTE) {
            Ok(remote) if remote.url() == Some(url) => {}
            Ok(_) => repo.remote_set_url(REMOTE, url).map_err(mirror_error)?,
            Err(_) => {
                repo.remote(REMOTE, url).map_err(mirror_error)?;
            }
        }
        Ok(Self {
            repo,
            url: url.to_owned(),
            shown_url: shown_url(url),
            branch: branch.to_owned(),
            ssh,
            bounds: RepoBounds::default(),
        })
    }

    /// The mirror reading and fetching within `bounds`.
    pub fn within(self, bounds: RepoBounds) -> Self {
        Self { bounds, ..self }
    }

    /// The remote's URL as shown to people: a password or token written in it is hidden.
    pub fn shown_url(&self) -> &str {
        &self.shown_url
    }

    pub fn branch(&self) -> &str {
        &self.branch
    }

    /// Fetches the branch from the remote (forced, so a rewritten branch is followed too).
    pub fn fetch(&self) -> Result<(), GitError> {
        let fetch_error = |cause: git2::Error| GitError::Fetch {
            url: self.shown_url.clone(),
            branch: self.branch.clone(),
            cause: git2::Error::new(cause.code(), cause.class(), self.scrubbed(cause.message())),
        };
        let mut remote = self.repo.find_remote(REMOTE).map_err(fetch_error)?;
        let (host, port) = ssh_host(&self.url);
        let known_hosts = self.ssh.known_hosts_file.clone();
        // libgit2 reports a refused host key in words of its own; ours names the file to fix.
        let refused = std::cell::RefCell::new(None);
        let mut callbacks = RemoteCallbacks::new();
        let key_file = self.ssh.key_file.clone();
        let configured = self.url.clone();
        callbacks.credentials(move |url, username, allowed| {
            credentials(&configured, url, username, allowed, key_file.as_deref())
        });
        callbacks.certificate_check(|cert, _| {
            let Some(hostkey) = cert.as_hostkey() else {
                return Ok(git2::CertificateCheckStatus::CertificatePassthrough);
            };
            check_host_key(known_hosts.as_deref(), &host, port, hostkey.hostkey())
                .inspect_err(|e| *refused.borrow_mut() = Some(e.message().to_owned()))
        });
        // A pack past the bound is not received whole: the fetch stops as it crosses it.
        let max_fetch_bytes = self.bounds.max_fetch_bytes;
        let over = std::cell::Cell::new(false);
        callbacks.transfer_progress(|progress| {
            let within = progress.received_bytes() as u64 <= max_fetch_bytes;
            over.set(!within);
            within
        });
        let mut options = FetchOptions::new();
        options.remote_callbacks(callbacks);
        options.download_tags(git2::AutotagOption::None);
        let refspec = format!("+refs/heads/{0}:refs/remotes/{REMOTE}/{0}", self.branch);
        let fetched = remote.fetch(&[refspec], Some(&mut options), None);
        drop(options);
        if fetched.is_err() && over.get() {
            return Err(GitError::OverBounds(OverBounds::Fetch {
                what: self.shown_url.clone(),
                limit: max_fetch_bytes,
            }));
        }
        fetched.map_err(|cause| match refused.take() {
            Some(reason) => GitError::Refused {
                url: self.shown_url.clone(),
                branch: self.branch.clone(),
                reason,
            },
            None => fetch_error(cause),
        })
    }

    /// `message` (libgit2's words, which may quote the URL) with the URL's user-info hidden.
    fn scrubbed(&self, message: &str) -> String {
        match url_userinfo(&self.url) {
            Some(userinfo) if !userinfo.is_empty() => message.replace(userinfo, "***"),
            _ => message.to_owned(),
        }
    }

    /// The commit the fetched branch points at.
    pub fn tip(&self) -> Result<String, GitError> {
        let reference = format!("refs/remotes/{REMOTE}/{}", self.branch);
        let oid = self
            .repo
            .refname_to_id(&reference)
            .map_err(|_| GitError::NoBranch {
                url: self.shown_url.clone(),
                branch: self.branch.clone(),
            })?;
        Ok(oid.to_string())
    }

    /// Whether the mirror holds `commit`.
    pub fn has_commit(&self, commit: &str) -> bool {
        Oid::from_str(commit)
            .ok()
            .and_then(|oid| self.repo.find_commit(oid).ok())
            .is_some()
    }

    /// The files of `commit`'s tree.
    pub fn files_at(&self, commit: &str) -> Result<RepoFiles, GitError> {
        self.files_after(commit, None)
    }

    /// The files of `commit`'s tree, taking from `previous` (the files of another commit of this
    /// mirror) each file whose blob is the same there instead of reading it again: a commit's
    /// unchanged files are neither read nor held twice, and a blob several paths name is read
    /// and held once. Refused past the mirror's bounds.
    pub fn files_after(
        &self,
        commit: &str,
        previous: Option<(&str, &RepoFiles)>,
    ) -> Result<RepoFiles, GitError> {
        let oid = Oid::from_str(commit).map_err(|cause| GitError::Read {
            what: format!("commit {commit}"),
            cause,
        })?;
        let previous = previous.and_then(|(commit, files)| {
            let oid = Oid::from_str(commit).ok()?;
            let blobs = blobs_of_commit(&self.repo, oid, "").ok()?;
            Some((
                blobs
                    .into_iter()
                    .collect::<std::collections::HashMap<_, _>>(),
                files,
            ))
        });
        let what = format!("commit {commit}");
        let mut reader = BlobReader::new(&self.repo, Tally::new(self.bounds, &what));
        let mut files = Vec::new();
        for (path, blob_id) in blobs_of_commit(&self.repo, oid, "")? {
            let kept = previous.as_ref().and_then(|(blobs, files)| {
                (blobs.get(&path) == Some(&blob_id))
                    .then(|| files.get(&path))
                    .flatten()
            });
            let bytes = match kept {
                Some(bytes) => reader.keep(&path, blob_id, bytes)?,
                None => reader.read(&path, blob_id)?,
            };
            files.push((path, bytes));
        }
        Ok(files.into_iter().collect())
    }
}

/// Reads the blobs of one commit within its bounds, each distinct blob once.
struct BlobReader<'r, 'w> {
    repo: &'r Repository,
    tally: Tally<'w>,
    read: std::collections::HashMap<Oid, Bytes>,
}

impl<'r, 'w> BlobReader<'r, 'w> {
    fn new(repo: &'r Repository, tally: Tally<'w>) -> Self {
        Self {
            repo,
            tally,
            read: std::collections::HashMap::new(),
        }
    }

    /// The contents of blob `blob_id`, the file at `path`: held already, or read now.
    fn read(&mut self, path: &str, blob_id: Oid) -> Result<Bytes, GitError> {
        self.tally.file()?;
        if let Some(bytes) = self.read.get(&blob_id) {
            return Ok(bytes.clone());
        }
        let blob = self
            .repo
            .find_blob(blob_id)
            .map_err(|cause| GitError::Read {
                what: format!("{path} in {}", self.tally_what()),
                cause,
            })?;
        self.tally.contents(path, blob.size() as u64)?;
        let bytes = Bytes::copy_from_slice(blob.content());
        self.read.insert(blob_id, bytes.clone());
        Ok(bytes)
    }

    /// `bytes`, the contents of blob `blob_id` held from another revision, counted in this one.
    fn keep(&mut self, path: &str, blob_id: Oid, bytes: &Bytes) -> Result<Bytes, GitError> {
        self.tally.file()?;
        if self.read.insert(blob_id, bytes.clone()).is_none() {
            self.tally.contents(path, bytes.len() as u64)?;
        }
        Ok(bytes.clone())
    }

    fn tally_what(&self) -> &str {
        self.tally.what()
    }
}

/// The files under `prefix` (a `/`-terminated folder, or `""`) of commit `oid`'s tree, with paths
/// relative to `prefix`, within the default bounds. Hidden entries (`.github/`, `.gitignore`…)
/// are skipped, as they are for a directory source; so are symbolic links and submodules.
pub fn files_of_commit(repo: &Repository, oid: Oid, prefix: &str) -> Result<RepoFiles, GitError> {
    let what = format!("commit {oid}");
    let mut reader = BlobReader::new(repo, Tally::new(RepoBounds::default(), &what));
    let mut files = Vec::new();
    for (path, blob_id) in blobs_of_commit(repo, oid, prefix)? {
        let bytes = reader.read(&path, blob_id)?;
        files.push((path, bytes));
    }
    Ok(files.into_iter().collect())
}

/// The path and blob of each file [`files_of_commit`] reads, without reading them.
fn blobs_of_commit(
    repo: &Repository,
    oid: Oid,
    prefix: &str,
) -> Result<Vec<(String, Oid)>, GitError> {
    let commit_name = oid.to_string();
    let read_error = |what: String| move |cause| GitError::Read { what, cause };
    let commit = repo
        .find_commit(oid)
        .map_err(read_error(format!("commit {commit_name}")))?;
    let tree = commit
        .tree()
        .map_err(read_error(format!("the tree of commit {commit_name}")))?;
    let mut entries = Vec::new();
    tree.walk(TreeWalkMode::PreOrder, |folder, entry| {
        let name = entry.name().unwrap_or_default();
        if name.starts_with('.') {
            return TreeWalkResult::Skip;
        }
        let path = format!("{folder}{name}");
        let is_file = entry.kind() == Some(ObjectType::Blob) && entry.filemode() != 0o120000;
        if is_file {
            if let Some(relative) = path.strip_prefix(prefix) {
                entries.push((relative.to_owned(), entry.id()));
            }
        }
        TreeWalkResult::Ok
    })
    .map_err(read_error(format!("the tree of commit {commit_name}")))?;
    Ok(entries)
}

/// The files of revision `rev` (a branch, tag or commit) of the git repository around `dir`, as
/// the folder `dir` held them then; with the commit id. For `sluice check --base`.
pub fn files_at_revision(dir: &Path, rev: &str) -> Result<(String, RepoFiles), GitError> {
    let repo = Repository::discover(dir).map_err(|cause| GitError::Read {
        what: format!("the git repository around {}", dir.display()),
        cause,
    })?;
    let not_found = |cause| GitError::Read {
        what: format!("revision `{rev}`"),
        cause,
    };
    let commit = repo
        .revparse_single(rev)
        .and_then(|object| object.peel_to_commit())
        .map_err(not_found)?;
    let prefix = match repo.workdir() {
        Some(workdir) => {
            let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_owned());
            let workdir = workdir
                .canonicalize()
                .unwrap_or_else(|_| workdir.to_owned());
            let relative = dir.strip_prefix(&workdir).unwrap_or(Path::new(""));
            let relative = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/");
            if relative.is_empty() {
                String::new()
            } else {
                format!("{relative}/")
            }
        }
        None => String::new(),
    };
    let files = files_of_commit(&repo, commit.id(), &prefix)?;
    Ok((commit.id().to_string(), files))
}

/// The SSH server's host and port in `url` (`ssh://user@host:port/path` or `user@host:path`).
fn ssh_host(url: &str) -> (String, u16) {
    let rest = url.strip_prefix("ssh://").unwrap_or(url);
    let authority = match url.starts_with("ssh://") {
        true => rest.split('/').next().unwrap_or(rest),
        false => rest.split(':').next().unwrap_or(rest),
    };
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    match host_port.rsplit_once(':') {
        Some((host, port)) if url.starts_with("ssh://") => {
            (host.to_owned(), port.parse().unwrap_or(22))
        }
        _ => (host_port.to_owned(), 22),
    }
}

/// Accepts the SSH server's `key` only if `known_hosts` lists it for `host:port`.
fn check_host_key(
    known_hosts: Option<&Path>,
    host: &str,
    port: u16,
    key: Option<&[u8]>,
) -> Result<git2::CertificateCheckStatus, git2::Error> {
    let Some(file) = known_hosts else {
        return Err(git2::Error::from_str(
            "an SSH source needs registry.known_hosts_file, the host keys to trust",
        ));
    };
    let text = std::fs::read_to_string(file).map_err(|e| {
        git2::Error::from_str(&format!(
            "registry.known_hosts_file: cannot read {}: {e}",
            file.display()
        ))
    })?;
    match key {
        Some(key) if super::known_hosts::lists(&text, host, port, key) => {
            Ok(git2::CertificateCheckStatus::CertificateOk)
        }
        _ => Err(git2::Error::from_str(&super::known_hosts::refusal(
            file, host, port,
        ))),
    }
}

/// Credentials for a fetch: the deploy key for SSH; for HTTPS, a user and password (or a token
/// as the user name) written in the configured URL, or `SLUICE_GIT_TOKEN` — given only to the
/// host of the configured URL and only over HTTPS, never to a redirect's target or plain HTTP.
fn credentials(
    configured: &str,
    url: &str,
    username: Option<&str>,
    allowed: git2::CredentialType,
    key_file: Option<&Path>,
) -> Result<git2::Cred, git2::Error> {
    if allowed.contains(git2::CredentialType::SSH_KEY) {
        let Some(key_file) = key_file else {
            return Err(git2::Error::from_str(
                "an SSH source needs registry.ssh_key_file, the deploy key",
            ));
        };
        return git2::Cred::ssh_key(username.unwrap_or("git"), None, key_file, None);
    }
    if allowed.contains(git2::CredentialType::USER_PASS_PLAINTEXT) {
        if !same_https_host(configured, url) {
            return Err(git2::Error::from_str(&format!(
                "credentials are only sent over HTTPS to the host of registry.source, not to {}",
                shown_url(url)
            )));
        }
        match url_userinfo(configured).map(|info| info.split_once(':').unwrap_or((info, ""))) {
            Some((user, password)) => return git2::Cred::userpass_plaintext(user, password),
            None => {
                if let Ok(token) = std::env::var("SLUICE_GIT_TOKEN") {
                    return git2::Cred::userpass_plaintext(username.unwrap_or("git"), &token);
                }
            }
        }
    }
    git2::Cred::default()
}

/// Whether `asked` is an HTTPS URL of the same host and port as the `configured` one.
fn same_https_host(configured: &str, asked: &str) -> bool {
    let host = |url: &str| -> Option<String> {
        let (scheme, rest) = url.split_once("://")?;
        if !scheme.eq_ignore_ascii_case("https") {
            return None;
        }
        let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
        let host = authority
            .rsplit_once('@')
            .map_or(authority, |(_, host)| host);
        let host = host.to_ascii_lowercase();
        Some(match host.strip_suffix(":443") {
            Some(bare) => bare.to_owned(),
            None => host,
        })
    };
    matches!((host(configured), host(asked)), (Some(a), Some(b)) if a == b)
}

/// Whether the mirror at `dir` exists and fetches from `url`.
pub fn mirror_points_at(dir: &Path, url: &str) -> bool {
    Repository::open_bare(dir).is_ok_and(|repo| {
        repo.find_remote(REMOTE)
            .is_ok_and(|remote| remote.url() == Some(url))
    })
}

/// Whether `source` names a git repository rather than a plain directory: a URL, or a local
/// repository (a working tree with `.git`, or a bare repository).
pub fn is_git_source(source: &str) -> bool {
    if source.contains("://") || source.starts_with("git@") {
        return true;
    }
    let path = Path::new(source);
    path.join(".git").exists() || (path.join("HEAD").is_file() && path.join("objects").is_dir())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_go_only_to_the_configured_host_over_https() {
        let configured = "https://ghp_token@git.example/acme/schemas.git";
        assert!(same_https_host(
            configured,
            "https://git.example/acme/schemas.git/info/refs"
        ));
        assert!(same_https_host(
            configured,
            "https://GIT.example:443/acme/schemas.git"
        ));
        assert!(!same_https_host(
            configured,
            "https://elsewhere.example/acme/schemas.git"
        ));
        assert!(!same_https_host(
            configured,
            "http://git.example/acme/schemas.git"
        ));
        assert!(!same_https_host(
            "http://git.example/acme.git",
            "http://git.example/acme.git"
        ));
        let refused = credentials(
            configured,
            "https://elsewhere.example/x",
            None,
            git2::CredentialType::USER_PASS_PLAINTEXT,
            None,
        );
        let Err(error) = refused else {
            panic!("no credentials for another host")
        };
        assert!(
            !error.message().contains("ghp_token"),
            "{}",
            error.message()
        );
        assert!(credentials(
            configured,
            "https://git.example/acme/schemas.git",
            None,
            git2::CredentialType::USER_PASS_PLAINTEXT,
            None
        )
        .is_ok());
    }

    #[test]
    fn urls_and_repositories_are_git_sources_and_plain_folders_are_not() {
        assert!(is_git_source("https://git.example/acme/schemas.git"));
        assert!(is_git_source("git@git.example:acme/schemas.git"));
        let dir = tempfile::tempdir().unwrap();
        assert!(!is_git_source(dir.path().to_str().unwrap()));
        Repository::init(dir.path()).unwrap();
        assert!(is_git_source(dir.path().to_str().unwrap()));
        let bare = tempfile::tempdir().unwrap();
        Repository::init_bare(bare.path()).unwrap();
        assert!(is_git_source(bare.path().to_str().unwrap()));
    }
}
