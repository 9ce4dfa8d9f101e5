//! Where the schema repository comes from — a plain directory (read from disk and watched) or a
//! git repository (mirrored, see [`super::git`]) — and how one revision of it is read into
//! [`RepoFiles`]. Deciding what to serve is the sync's job (`registry::sync`).

use std::path::{Path, PathBuf};

use bytes::Bytes;
use notify::Watcher;

use super::bounds::{OverBounds, RepoBounds, Tally};
use super::config::RegistryConfig;
use super::git::{is_git_source, mirror_points_at, GitError, GitMirror};
use crate::formats::RepoFiles;

/// Where a git source's mirror lives inside the data directory.
pub const MIRROR_DIR: &str = "registry/mirror.git";

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot read schema repository {path}: {cause}")]
    Read {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error(transparent)]
    OverBounds(#[from] OverBounds),
    #[error("cannot watch {path}: {cause}")]
    Watch { path: PathBuf, cause: notify::Error },
    #[error(transparent)]
    Git(#[from] GitError),
}

/// Reads every file under `root` (skipping hidden entries such as `.git`), within the default
/// bounds.
pub fn read_directory(root: &Path) -> Result<RepoFiles, SourceError> {
    read_directory_within(root, RepoBounds::default())
}

/// Reads every file under `root` (skipping hidden entries such as `.git`), refusing the whole
/// directory past `bounds`.
pub fn read_directory_within(root: &Path, bounds: RepoBounds) -> Result<RepoFiles, SourceError> {
    let what = root.display().to_string();
    let mut tally = Tally::new(bounds, &what);
    let mut files = Vec::new();
    let mut pending = vec![root.to_owned()];
    while let Some(dir) = pending.pop() {
        let read_error = |cause| SourceError::Read {
            path: dir.clone(),
            cause,
        };
        for entry in std::fs::read_dir(&dir).map_err(read_error)? {
            let entry = entry.map_err(read_error)?;
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let path = entry.path();
            let metadata = std::fs::metadata(&path).map_err(|cause| SourceError::Read {
                path: path.clone(),
                cause,
            })?;
            if metadata.is_dir() {
                pending.push(path);
            } else if metadata.is_file() {
                tally.file()?;
                tally.contents(&path.display().to_string(), metadata.len())?;
                let contents = std::fs::read(&path).map_err(|cause| SourceError::Read {
                    path: path.clone(),
                    cause,
                })?;
                let relative = path
                    .strip_prefix(root)
                    .expect("walked below root")
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy())
                    .collect::<Vec<_>>()
                    .join("/");
                files.push((relative, Bytes::from(contents)));
            }
        }
    }
    Ok(files.into_iter().collect())
}

/// Where schemas come from, as configured by `[registry] source`.
pub enum Source {
    /// A plain directory, read as it is on disk (and watched), within bounds.
    Directory(PathBuf, RepoBounds),
    /// A git repository, local or remote, mirrored into the data directory.
    Git(GitMirror),
}

/// One revision of the repository: its id (a commit, or a directory's fingerprint) and files.
pub struct Revision {
    pub id: String,
    pub files: RepoFiles,
}

impl Source {
    /// Opens the configured source; a git source's mirror lives under `data_dir`.
    pub fn open(config: &RegistryConfig, data_dir: &Path) -> Result<Self, SourceError> {
        let source = config.source.to_string_lossy();
        let mirror_dir = data_dir.join(MIRROR_DIR);
        let mirrored = std::path::absolute(&config.source)
            .is_ok_and(|path| mirror_points_at(&mirror_dir, &path.display().to_string()));
        // A local repository mirrored before is still a git source when its path is gone.
        if is_git_source(&source) || mirrored {
            let url = if source.contains("://") || source.starts_with("git@") {
                source.into_owned()
            } else {
                std::path::absolute(&config.source)
                    .map_err(|cause| SourceError::Read {
                        path: config.source.clone(),
                        cause,
                    })?
                    .display()
                    .to_string()
            };
            let ssh = super::git::SshAccess {
                key_file: config.ssh_key_file.clone(),
                known_hosts_file: config.known_hosts_file.clone(),
            };
            let mirror =
                GitMirror::open(&url, &config.branch, &mirror_dir, ssh)?.within(config.bounds());
            Ok(Self::Git(mirror))
        } else {
            Ok(Self::Directory(config.source.clone(), config.bounds()))
        }
    }

    /// How the source is shown in the status endpoint and the log.
    pub fn describe(&self) -> String {
        match self {
            Self::Directory(path, _) => path.display().to_string(),
            Self::Git(mirror) => format!("{} (branch {})", mirror.shown_url(), mirror.branch()),
        }
    }

    /// Brings the source up to date: fetches a git remote; nothing for a directory.
    pub fn refresh(&self) -> Result<(), SourceError> {
        match self {
            Self::Directory(..) => Ok(()),
            Self::Git(mirror) => Ok(mirror.fetch()?),
        }
    }

    /// The newest revision: the fetched branch's tip, or the directory as it is now.
    /// The newest revision, read as a change to `previous` (a revision id and its files): a git
    /// source takes each unchanged file from `previous` rather than reading it again.
    pub fn newest(&self, previous: Option<(&str, &RepoFiles)>) -> Result<Revision, SourceError> {
        match self {
            Self::Directory(path, bounds) => {
                let files = read_directory_within(path, *bounds)?;
                Ok(Revision {
                    id: files.fingerprint(),
                    files,
                })
            }
            Self::Git(mirror) => {
                let id = mirror.tip()?;
                let files = mirror.files_after(&id, previous)?;
                Ok(Revision { id, files })
            }
        }
    }

    /// A revision served before, if the source still has it (git only: a directory keeps no
    /// history).
    pub fn revision(&self, id: &str) -> Option<Revision> {
        match self {
            Self::Directory(..) => None,
            Self::Git(mirror) if mirror.has_commit(id) => {
                mirror.files_at(id).ok().map(|files| Revision {
                    id: id.to_owned(),
                    files,
                })
            }
            Self::Git(_) => None,
        }
    }

    /// The directory to watch for changes, for a directory source.
    pub fn watched_directory(&self) -> Option<&Path> {
        match self {
            Self::Directory(path, _) => Some(path),
            Self::Git(_) => None,
        }
    }
}

/// Calls `changed` (debounced) whenever anything below `root` changes. The watcher lives as long
/// as the returned value.
pub fn watch_directory(
    root: &Path,
    changed: impl Fn() + Send + 'static,
) -> Result<notify::RecommendedWatcher, SourceError> {
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if event.is_ok() {
            changed();
        }
    })
    .map_err(|cause| SourceError::Watch {
        path: root.to_owned(),
        cause,
    })?;
    watcher
        .watch(root, notify::RecursiveMode::Recursive)
        .map_err(|cause| SourceError::Watch {
            path: root.to_owned(),
            cause,
        })?;
    Ok(watcher)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_entries_are_skipped_and_paths_are_repository_relative() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("orders")).unwrap();
        std::fs::create_dir_all(dir.path().join(".git")).unwrap();
        std::fs::write(dir.path().join("orders/v1.json"), "{}").unwrap();
        std::fs::write(dir.path().join(".git/HEAD"), "ref").unwrap();
        let files = read_directory(dir.path()).unwrap();
        let paths: Vec<_> = files.iter().map(|(p, _)| p.to_owned()).collect();
        assert_eq!(paths, vec!["orders/v1.json"]);
    }
}
