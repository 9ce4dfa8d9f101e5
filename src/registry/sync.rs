//! Keeps the registry in step with its source: the first load at start-up, then a rebuild whenever
//! the source may have changed — a webhook (`POST /v1/registry/sync`), a git poll every
//! `poll_interval`, or a file change in a watched directory.
//!
//! Every sync runs on one worker, off the hot path: it fetches, reads the newest revision, judges
//! it against the serving snapshot and installs it or records the refusal. Requests arriving while
//! a sync runs are coalesced into the next one, and each caller is answered once a sync that
//! started after its request has finished. For git sources the commit served is written to the
//! data directory, so a restart with the remote unreachable serves it again.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::load::{self, History};
use super::source::{self, Source, SourceError};
use super::stations::StationConfig;
use super::Registry;

/// File changes arriving within this window are rebuilt once.
const DEBOUNCE: Duration = Duration::from_millis(200);
/// Where the commit being served is recorded, inside the data directory.
const SERVING_FILE: &str = "registry/serving-commit";

/// What `POST /v1/registry/sync` holds: a way to ask for a sync and wait for it.
#[derive(Debug)]
pub struct SyncHandle {
    requests: watch::Sender<u64>,
    completed: watch::Receiver<u64>,
    webhook_secret: Option<Vec<u8>>,
}

impl SyncHandle {
    /// The secret webhook calls must be signed with, if one is configured.
    pub fn webhook_secret(&self) -> Option<&[u8]> {
        self.webhook_secret.as_deref()
    }

    /// Asks for a sync and waits, at most `timeout`, until one that started after this request has
    /// finished. Returns whether it finished in time.
    pub async fn sync(&self, timeout: Duration) -> bool {
        let mut ticket = 0;
        self.requests.send_modify(|generation| {
            *generation += 1;
            ticket = *generation;
        });
        let mut completed = self.completed.clone();
        let finished = tokio::time::timeout(timeout, completed.wait_for(|done| *done >= ticket))
            .await
            .is_ok_and(|waited| waited.is_ok());
        finished
    }
}

/// Loads revisions from a source into a registry.
pub struct Syncer {
    source: Source,
    registry: Arc<Registry>,
    extra_stations: Vec<StationConfig>,
    /// Git sources: where the served commit is recorded.
    serving_file: Option<PathBuf>,
}

impl Syncer {
    pub fn new(
        source: Source,
        registry: Arc<Registry>,
        extra_stations: Vec<StationConfig>,
        data_dir: &Path,
    ) -> Self {
        let serving_file = matches!(source, Source::Git(_)).then(|| data_dir.join(SERVING_FILE));
        Self {
            source,
            registry,
            extra_stations,
            serving_file,
        }
    }

    /// The first load: the commit served before the last stop (if the source still has it), then
    /// the newest revision judged against it. The source being unreachable is recorded, not fatal.
    pub fn start(&mut self) {
        super::scratch::around(|| self.first_load());
    }

    fn first_load(&mut self) {
        let reached = self.refresh();
        if let Some(id) = self.recorded_commit() {
            match self.source.revision(&id) {
                Some(revision) => match load::build(
                    Arc::new(revision.files),
                    revision.id,
                    &self.extra_stations,
                    History::AlreadyServed,
                ) {
                    Ok(snapshot) => self.registry.install(snapshot),
                    Err(problems) => tracing::warn!(
                        commit = %id,
                        problems = problems.len(),
                        "the commit served before the restart no longer loads; judging the newest one alone"
                    ),
                },
                None => {
                    tracing::warn!(commit = %id, "the commit served before the restart is gone from the mirror")
                }
            }
        }
        if reached || !self.registry.is_serving() {
            self.judge_newest();
        }
    }

    /// One sync: fetch, then judge the newest revision.
    pub fn sync_once(&mut self) {
        super::scratch::around(|| {
            if self.refresh() {
                self.judge_newest();
            }
        });
    }

    /// Fetches; records (and returns `false` on) failure.
    fn refresh(&self) -> bool {
        match self.source.refresh() {
            Ok(()) => {
                self.registry.set_source_failure(None);
                true
            }
            Err(e) => {
                self.registry.set_source_failure(Some(e.to_string()));
                false
            }
        }
    }

    /// Reads the newest revision and installs it, or records why it is refused. A revision that
    /// is already serving, or was already refused, is not judged again.
    fn judge_newest(&mut self) {
        let serving = self.registry.snapshot();
        let previous = self
            .registry
            .is_serving()
            .then(|| (serving.revision.as_str(), serving.files.as_ref()));
        let newest = match self.source.newest(previous) {
            Ok(revision) => revision,
            Err(e) => {
                self.registry.set_source_failure(Some(e.to_string()));
                return;
            }
        };
        if self.registry.is_serving() && newest.id == serving.revision {
            // Back to what is serving (e.g. a bad change reverted): nothing is refused any more.
            self.registry.clear_refusal();
            return;
        }
        if self
            .registry
            .last_refusal()
            .is_some_and(|refusal| refusal.revision == newest.id)
        {
            return;
        }
        let history = if self.registry.is_serving() {
            History::Since(&serving)
        } else {
            History::Unknown
        };
        let id = newest.id.clone();
        match load::build(
            Arc::new(newest.files),
            newest.id,
            &self.extra_stations,
            history,
        ) {
            Ok(snapshot) => {
                self.registry.install(snapshot);
                self.record_commit(&id);
            }
            Err(problems) => self.registry.refuse(id, problems),
        }
    }

    fn recorded_commit(&self) -> Option<String> {
        let path = self.serving_file.as_ref()?;
        let text = std::fs::read_to_string(path).ok()?;
        Some(text.trim().to_owned()).filter(|id| !id.is_empty())
    }

    fn record_commit(&self, id: &str) {
        let Some(path) = &self.serving_file else {
            return;
        };
        let temporary = path.with_extension("tmp");
        let written = std::fs::create_dir_all(path.parent().expect("inside the data directory"))
            .and_then(|()| std::fs::write(&temporary, format!("{id}\n")))
            .and_then(|()| std::fs::rename(&temporary, path));
        if let Err(e) = written {
            tracing::warn!(path = %path.display(), "cannot record the served commit: {e}");
        }
    }

    /// Runs syncs on a worker task from now on: on request, every `poll_interval` for git sources,
    /// and on file changes for watched directories. The handle is attached to the registry.
    pub fn spawn(
        self,
        poll_interval: Duration,
        watch_files: bool,
        webhook_secret: Option<Vec<u8>>,
    ) -> Result<JoinHandle<()>, SourceError> {
        let (requests, mut requested) = watch::channel(0u64);
        let (finished, completed) = watch::channel(0u64);
        let (changed_tx, mut changed) = mpsc::unbounded_channel();
        let watcher = match self.source.watched_directory() {
            Some(root) if watch_files => Some(source::watch_directory(root, move || {
                let _ = changed_tx.send(());
            })?),
            _ => None,
        };
        let polls = matches!(self.source, Source::Git(_));
        self.registry.attach_sync(SyncHandle {
            requests,
            completed,
            webhook_secret,
        });
        let mut syncer = self;
        Ok(tokio::spawn(async move {
            let _watcher = watcher;
            let mut poll = tokio::time::interval_at(
                tokio::time::Instant::now() + poll_interval,
                poll_interval,
            );
            poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    asked = requested.changed() => if asked.is_err() { break },
                    _ = poll.tick(), if polls => {},
                    Some(()) = changed.recv() => {
                        tokio::time::sleep(DEBOUNCE).await;
                        while changed.try_recv().is_ok() {}
                    }
                }
                let generation = *requested.borrow_and_update();
                syncer = match tokio::task::spawn_blocking(move || {
                    syncer.sync_once();
                    syncer
                })
                .await
                {
                    Ok(syncer) => syncer,
                    Err(e) => {
                        tracing::error!("registry sync panicked: {e}");
                        break;
                    }
                };
                finished.send_replace(generation);
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::config::RegistryConfig;

    fn directory_syncer(dir: &Path) -> (Syncer, Arc<Registry>) {
        let config = RegistryConfig {
            source: dir.to_owned(),
            ..RegistryConfig::default()
        };
        let source = Source::open(&config, dir).unwrap();
        let registry = Arc::new(Registry::new(source.describe()));
        (
            Syncer::new(source, registry.clone(), Vec::new(), dir),
            registry,
        )
    }

    #[test]
    fn a_bad_change_is_refused_and_reverting_it_clears_the_refusal() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("orders")).unwrap();
        std::fs::write(dir.path().join("orders/v1.json"), "{}").unwrap();
        let (mut syncer, registry) = directory_syncer(dir.path());
        syncer.start();
        let serving = registry.snapshot().revision.clone();
        assert!(registry.is_serving());

        std::fs::write(dir.path().join("orders/v2.json"), "{ broken").unwrap();
        syncer.sync_once();
        let refusal = registry.last_refusal().expect("refused");
        assert_eq!(refusal.errors[0].file, "orders/v2.json");
        assert_eq!(registry.snapshot().revision, serving);
        assert_eq!(registry.refusals_total(), 1);

        syncer.sync_once();
        assert_eq!(
            registry.refusals_total(),
            1,
            "a refused revision is judged once"
        );

        std::fs::remove_file(dir.path().join("orders/v2.json")).unwrap();
        syncer.sync_once();
        assert!(registry.last_refusal().is_none());
        assert_eq!(registry.snapshot().revision, serving);
    }

    #[test]
    fn an_edit_of_a_published_version_is_refused_against_the_serving_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("orders")).unwrap();
        std::fs::write(dir.path().join("orders/v1.json"), r#"{"type":"object"}"#).unwrap();
        let (mut syncer, registry) = directory_syncer(dir.path());
        syncer.start();
        std::fs::write(dir.path().join("orders/v1.json"), r#"{"type":"array"}"#).unwrap();
        syncer.sync_once();
        let refusal = registry.last_refusal().expect("refused");
        assert_eq!(refusal.errors[0].rule, "published_version_edited");
        assert_eq!(refusal.errors[0].version, Some(1));
    }

    #[tokio::test]
    async fn requests_during_a_sync_are_coalesced_and_each_caller_is_answered() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("orders")).unwrap();
        std::fs::write(dir.path().join("orders/v1.json"), "{}").unwrap();
        let (mut syncer, registry) = directory_syncer(dir.path());
        syncer.start();
        let _worker = syncer
            .spawn(Duration::from_secs(3600), false, None)
            .unwrap();
        std::fs::write(dir.path().join("orders/v2.json"), "{}").unwrap();
        let callers: Vec<_> = (0..8)
            .map(|_| {
                let registry = registry.clone();
                tokio::spawn(async move {
                    let handle = registry.sync_handle().unwrap();
                    handle.sync(Duration::from_secs(10)).await
                })
            })
            .collect();
        for caller in callers {
            assert!(caller.await.unwrap(), "every caller is answered");
        }
        assert_eq!(registry.snapshot().schema("orders").unwrap().newest(), 2);
    }
}
