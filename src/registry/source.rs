//! Where the schema repository comes from: a local directory, read into [`RepoFiles`] and watched
//! for changes. On each change the snapshot is rebuilt off the hot path and installed, or refused
//! whole with the previous snapshot still serving.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use notify::Watcher;

use super::files::RepoFiles;
use super::stations::StationConfig;
use super::{load, Registry};

/// Files above this size are not part of a schema repository.
const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;
/// Changes arriving within this window are rebuilt once.
const DEBOUNCE: Duration = Duration::from_millis(200);

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot read schema repository {path}: {cause}")]
    Read {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("{path} is larger than {MAX_FILE_BYTES} bytes; schema repositories hold text files")]
    TooLarge { path: PathBuf },
    #[error("cannot watch {path}: {cause}")]
    Watch { path: PathBuf, cause: notify::Error },
}

/// Reads every file under `root` (skipping hidden entries such as `.git`).
pub fn read_directory(root: &Path) -> Result<RepoFiles, SourceError> {
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
                if metadata.len() > MAX_FILE_BYTES {
                    return Err(SourceError::TooLarge { path });
                }
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

/// Watches `root` and rebuilds the registry when anything below it changes. The returned task
/// owns the watcher; it runs until the runtime stops.
pub fn watch_directory(
    root: PathBuf,
    registry: Arc<Registry>,
    extra_stations: Vec<StationConfig>,
) -> Result<tokio::task::JoinHandle<()>, SourceError> {
    let (changed_tx, mut changed_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if event.is_ok() {
            let _ = changed_tx.send(());
        }
    })
    .map_err(|cause| SourceError::Watch {
        path: root.clone(),
        cause,
    })?;
    watcher
        .watch(&root, notify::RecursiveMode::Recursive)
        .map_err(|cause| SourceError::Watch {
            path: root.clone(),
            cause,
        })?;
    Ok(tokio::spawn(async move {
        let _watcher = watcher;
        while changed_rx.recv().await.is_some() {
            tokio::time::sleep(DEBOUNCE).await;
            while changed_rx.try_recv().is_ok() {}
            let root = root.clone();
            let extra = extra_stations.clone();
            let registry = registry.clone();
            let rebuilt = tokio::task::spawn_blocking(move || reload(&root, &registry, &extra));
            if let Err(e) = rebuilt.await {
                tracing::error!("registry rebuild panicked: {e}");
            }
        }
    }))
}

/// Rebuilds from `root` and installs the result, or records why it was refused.
pub fn reload(root: &Path, registry: &Registry, extra_stations: &[StationConfig]) {
    let files = match read_directory(root) {
        Ok(files) => files,
        Err(e) => {
            registry.refuse(
                "unreadable".into(),
                vec![super::LoadProblem {
                    file: root.display().to_string(),
                    rule: "read",
                    message: e.to_string(),
                }],
            );
            return;
        }
    };
    let revision = files.fingerprint();
    if revision == registry.snapshot().revision {
        // Back to what is serving (e.g. a bad edit reverted): nothing is refused any more.
        registry.clear_refusal();
        return;
    }
    match load::build(&files, extra_stations) {
        Ok(snapshot) => registry.install(snapshot),
        Err(problems) => registry.refuse(revision, problems),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry_for(root: &Path) -> Registry {
        let files = read_directory(root).unwrap();
        Registry::new("test".into(), load::build(&files, &[]).unwrap())
    }

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

    #[test]
    fn a_bad_change_is_refused_and_reverting_it_clears_the_refusal() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("orders")).unwrap();
        std::fs::write(dir.path().join("orders/v1.json"), "{}").unwrap();
        let registry = registry_for(dir.path());
        let serving = registry.snapshot().revision.clone();

        std::fs::write(dir.path().join("orders/v2.json"), "{ broken").unwrap();
        reload(dir.path(), &registry, &[]);
        let refusal = registry.last_refusal().expect("refused");
        assert_eq!(refusal.errors[0].file, "orders/v2.json");
        assert_eq!(registry.snapshot().revision, serving);

        std::fs::remove_file(dir.path().join("orders/v2.json")).unwrap();
        reload(dir.path(), &registry, &[]);
        assert!(registry.last_refusal().is_none());
        assert_eq!(registry.snapshot().revision, serving);
    }
}
