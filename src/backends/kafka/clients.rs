//! The librdkafka configuration every client of the backend is made from, and the SASL password
//! kept current when it comes from `kafka.sasl.password_file`: the file is read again every
//! [`REREAD`], and a changed password goes into the configuration of clients made later and, through
//! librdkafka's `rd_kafka_sasl_set_credentials`, into every live client (the producer, the admin
//! client, the reader, each group's consumer), which use it the next time they authenticate a
//! connection. Rotating a password is then: add the new one on the brokers, write it to the file,
//! retire the old one once the gateways have read it (a second later).

use std::ffi::{CStr, CString};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use rdkafka::admin::AdminClient;
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, StreamConsumer};
use rdkafka::producer::{FutureProducer, Producer as _};
use rdkafka::types::RDKafka;

use super::config::KafkaConfig;
use crate::model::SecretSource;

/// How often a password file is read again.
pub(super) const REREAD: Duration = Duration::from_secs(1);

const KEY: &str = "kafka.sasl.password";

/// A live librdkafka client whose SASL credentials can be replaced.
pub(super) trait Authenticating: Send + Sync {
    /// Runs `f` with the client's native handle (which `self` keeps alive meanwhile).
    fn with_handle(&self, f: &mut dyn FnMut(*mut RDKafka));
}

impl<C: ClientContext + 'static> Authenticating for FutureProducer<C> {
    fn with_handle(&self, f: &mut dyn FnMut(*mut RDKafka)) {
        f(self.client().native_ptr());
    }
}

impl<C: ConsumerContext + 'static> Authenticating for StreamConsumer<C> {
    fn with_handle(&self, f: &mut dyn FnMut(*mut RDKafka)) {
        f(self.client().native_ptr());
    }
}

impl Authenticating for Mutex<BaseConsumer> {
    fn with_handle(&self, f: &mut dyn FnMut(*mut RDKafka)) {
        f(self.lock().expect("reader lock").client().native_ptr());
    }
}

impl Authenticating for AdminClient<DefaultClientContext> {
    fn with_handle(&self, f: &mut dyn FnMut(*mut RDKafka)) {
        f(self.inner().native_ptr());
    }
}

/// The configuration new clients are made from, and the password file it follows.
pub(super) struct Clients {
    config: Mutex<ClientConfig>,
    rotation: Option<Rotation>,
}

struct Rotation {
    file: PathBuf,
    username: CString,
    /// The clients made so far that are still alive.
    live: Mutex<Vec<Weak<dyn Authenticating>>>,
    /// Why the file could not be read, while it cannot (logged once per reason).
    unreadable: Mutex<Option<String>>,
}

impl Clients {
    /// Wraps `config` (the password already in it); follows the password file of `kafka`, if any.
    pub(super) fn new(config: ClientConfig, kafka: &KafkaConfig) -> Self {
        let rotation = kafka
            .sasl
            .as_ref()
            .and_then(|sasl| Some((sasl.password_file.clone()?, &sasl.username)))
            .map(|(file, username)| Rotation {
                file,
                username: CString::new(
                    config
                        .get("sasl.username")
                        .unwrap_or(username.as_str())
                        .replace('\0', ""),
                )
                .expect("no NUL left"),
                live: Mutex::new(Vec::new()),
                unreadable: Mutex::new(None),
            });
        Self {
            config: Mutex::new(config),
            rotation,
        }
    }

    /// The configuration to make a new client from, with the current password.
    pub(super) fn config(&self) -> ClientConfig {
        self.config.lock().expect("client config lock").clone()
    }

    /// Keeps `client`'s password current while it lives.
    pub(super) fn track<T: Authenticating + 'static>(&self, client: &Arc<T>) {
        if let Some(rotation) = &self.rotation {
            let client: Arc<dyn Authenticating> = client.clone();
            let mut live = rotation.live.lock().expect("live clients lock");
            live.retain(|client| client.strong_count() > 0);
            live.push(Arc::downgrade(&client));
        }
    }

    /// Reads the password file every [`REREAD`] while `clients` is alive; none without one.
    pub(super) fn follow_password_file(clients: &Arc<Self>) {
        if clients.rotation.is_none() {
            return;
        }
        let clients = Arc::downgrade(clients);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(REREAD);
            loop {
                ticks.tick().await;
                let Some(clients) = clients.upgrade() else {
                    return;
                };
                // Setting credentials takes the reader's lock, which a read may hold for a while.
                let _ = tokio::task::spawn_blocking(move || clients.reread()).await;
            }
        });
    }

    /// Reads the password file; hands a changed password to the configuration and every client.
    fn reread(&self) {
        let Some(rotation) = &self.rotation else {
            return;
        };
        let password = match SecretSource::File(rotation.file.clone()).read(KEY) {
            Ok(password) => password,
            Err(why) => {
                let mut unreadable = rotation.unreadable.lock().expect("unreadable lock");
                if unreadable.as_deref() != Some(why.as_str()) {
                    tracing::warn!("{why}; the Kafka clients keep the password they have");
                    *unreadable = Some(why);
                }
                return;
            }
        };
        rotation.unreadable.lock().expect("unreadable lock").take();
        let mut config = self.config.lock().expect("client config lock");
        if config.get("sasl.password") == Some(password.expose()) {
            return;
        }
        let Ok(native) = CString::new(password.expose()) else {
            tracing::warn!(
                "{KEY}_file holds a NUL byte; the Kafka clients keep the password they have"
            );
            return;
        };
        config.set("sasl.password", password.expose());
        drop(config);
        let live: Vec<_> = rotation
            .live
            .lock()
            .expect("live clients lock")
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
        for client in &live {
            client.with_handle(&mut |handle| set_credentials(handle, &rotation.username, &native));
        }
        tracing::info!(
            clients = live.len(),
            "{KEY}_file changed: the Kafka clients authenticate with the new password from now on"
        );
    }
}

/// librdkafka's `rd_kafka_sasl_set_credentials` on `handle`.
fn set_credentials(handle: *mut RDKafka, username: &CStr, password: &CStr) {
    // SAFETY: `handle` is the live handle of a client the caller holds for the call; the strings
    // are NUL-terminated and librdkafka copies them; the call may be made from any thread. The
    // returned error, if any, is read and then destroyed once.
    unsafe {
        let error = rdkafka::bindings::rd_kafka_sasl_set_credentials(
            handle,
            username.as_ptr(),
            password.as_ptr(),
        );
        if !error.is_null() {
            let why = CStr::from_ptr(rdkafka::bindings::rd_kafka_error_string(error));
            tracing::warn!(
                "librdkafka refused the new SASL password: {}",
                why.to_string_lossy()
            );
            rdkafka::bindings::rd_kafka_error_destroy(error);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backends::kafka::config::{KafkaSasl, SaslMechanism};

    fn following(file: PathBuf) -> Clients {
        let kafka = KafkaConfig {
            sasl: Some(KafkaSasl {
                mechanism: SaslMechanism::ScramSha512,
                username: "sluice".into(),
                password: None,
                password_env: None,
                password_file: Some(file),
            }),
            ..KafkaConfig::default()
        };
        let mut config = ClientConfig::new();
        config.set("sasl.password", "first");
        Clients::new(config, &kafka)
    }

    #[test]
    fn a_changed_file_is_the_password_of_clients_made_afterwards() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("password");
        std::fs::write(&file, "first\n").unwrap();
        let clients = following(file.clone());
        clients.reread();
        assert_eq!(clients.config().get("sasl.password"), Some("first"));
        std::fs::write(&file, "second\n").unwrap();
        clients.reread();
        assert_eq!(clients.config().get("sasl.password"), Some("second"));
        std::fs::remove_file(&file).unwrap();
        clients.reread();
        assert_eq!(clients.config().get("sasl.password"), Some("second"));
    }
}
