//! What librdkafka says about the connection to the brokers: its errors (a failed TLS handshake,
//! refused SASL credentials, unreachable brokers) are logged once per new reason and kept, with
//! the key to fix, for `/readyz` and the 503s until the brokers answer again.

use std::sync::{Arc, Mutex};

use rdkafka::client::ClientContext;
use rdkafka::error::KafkaError;
use rdkafka::producer::FutureProducer;

/// The producer, with its errors watched.
pub type Producer = FutureProducer<Watched>;

/// The last connection problem librdkafka reported, in words an operator can act on.
#[derive(Clone, Default)]
pub struct Watched(Arc<Mutex<Option<String>>>);

impl Watched {
    pub fn problem(&self) -> Option<String> {
        self.0.lock().expect("problem lock").clone()
    }

    /// The brokers answered: the problem is over.
    pub fn clear(&self) {
        if self.0.lock().expect("problem lock").take().is_some() {
            tracing::info!("the Kafka brokers answer again");
        }
    }

    /// Records `problem`; a vague one (brokers down) does not hide a precise one (TLS,
    /// credentials) until the brokers have answered.
    fn set(&self, problem: String, precise: bool) {
        let mut last = self.0.lock().expect("problem lock");
        if !precise && last.as_deref().is_some_and(is_precise) {
            return;
        }
        if last.as_deref() != Some(problem.as_str()) {
            tracing::warn!("Kafka connection: {problem}");
            *last = Some(problem);
        }
    }
}

fn is_precise(problem: &str) -> bool {
    problem.starts_with("the TLS handshake failed") || problem.starts_with("the brokers refused")
}

/// What to tell the operator about librdkafka's `reason`.
fn explain(reason: &str) -> String {
    // With TLS 1.3 a server that wants a client certificate says so after the handshake.
    let client_certificate = [
        "alert certificate required",
        "alert bad certificate",
        "alert unknown ca",
    ];
    if client_certificate
        .iter()
        .any(|alert| reason.contains(alert))
    {
        format!(
            "the TLS handshake failed ({reason}): the brokers require a client certificate signed \
             by a CA they trust, in kafka.tls.cert_file and kafka.tls.key_file"
        )
    } else if reason.contains("SSL handshake failed")
        || reason.contains("certificate verify failed")
    {
        format!(
            "the TLS handshake failed ({reason}): the brokers' certificates must be signed by a CA \
             in kafka.tls.ca_file and name the hosts of kafka.brokers; brokers that ask for a \
             client certificate need kafka.tls.cert_file and kafka.tls.key_file"
        )
    } else if reason.contains("SASL") || reason.contains("uthentication") {
        format!(
            "the brokers refused the gateway's credentials ({reason}): check kafka.sasl \
             (mechanism, username and the password key)"
        )
    } else {
        format!("{reason} (check kafka.brokers, kafka.tls and kafka.sasl)")
    }
}

impl ClientContext for Watched {
    fn error(&self, error: KafkaError, reason: &str) {
        tracing::debug!("librdkafka: {error}: {reason}");
        let problem = explain(reason);
        let precise = is_precise(&problem);
        self.set(problem, precise);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_failure_names_the_keys_to_fix() {
        let tls =
            explain("ssl://b:9093/bootstrap: SSL handshake failed: certificate verify failed");
        assert!(tls.contains("kafka.tls.ca_file"), "{tls}");
        let sasl = explain("SASL authentication error: Authentication failed");
        assert!(sasl.contains("kafka.sasl"), "{sasl}");
        let client = explain(
            "Receive failed: error:0A00045C:SSL routines::tlsv13 alert certificate required",
        );
        assert!(
            client.contains("kafka.tls.cert_file") && is_precise(&client),
            "{client}"
        );
    }
}
