//! The scheduling role on Kafka, which cannot drop a duplicate message: one gateway at a time
//! produces the ticks of schedules on Kafka stations. The role is the one partition of topic
//! [`ROLE_TOPIC`], held through the consumer group of the same name: Kafka assigns it to one member,
//! and moves it when that member leaves or stops heartbeating (after `kafka.session_timeout`).
//! Nothing is ever written to the topic.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use rdkafka::admin::{NewTopic, TopicReplication};
use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance};
use rdkafka::ClientContext;

use super::KafkaBackend;
use crate::backends::BackendError;

/// The topic and consumer group whose one partition is the scheduling role.
pub const ROLE_TOPIC: &str = "sluice-scheduler";

/// This gateway's member of the role's group.
pub(super) struct Role {
    holds: Arc<AtomicBool>,
    stopped: Arc<AtomicBool>,
}

impl Drop for Role {
    fn drop(&mut self) {
        self.stopped.store(true, Ordering::Release);
    }
}

struct RoleContext {
    holds: Arc<AtomicBool>,
}

impl ClientContext for RoleContext {}

impl ConsumerContext for RoleContext {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(_) = rebalance {
            if self.holds.swap(false, Ordering::AcqRel) {
                tracing::info!("this gateway no longer runs the schedules of Kafka stations");
            }
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(partitions) = rebalance {
            let holds = partitions.count() > 0;
            if holds && !self.holds.swap(true, Ordering::AcqRel) {
                tracing::info!("this gateway runs the schedules of Kafka stations");
            }
        }
    }
}

impl KafkaBackend {
    /// Whether this gateway holds the scheduling role now; joins its group on first call.
    pub(super) async fn holds_scheduling_role(&self) -> Result<bool, BackendError> {
        let role = self
            .role
            .get_or_try_init(|| Box::pin(self.join_role()))
            .await?;
        Ok(role.holds.load(Ordering::Acquire))
    }

    async fn join_role(&self) -> Result<Role, BackendError> {
        let topic = NewTopic::new(
            ROLE_TOPIC,
            1,
            TopicReplication::Fixed(self.replication_factor),
        );
        self.create_topic(topic).await?;
        let holds = Arc::new(AtomicBool::new(false));
        let context = RoleContext {
            holds: holds.clone(),
        };
        let consumer = self.join_group(ROLE_TOPIC, ROLE_TOPIC, context, &[])?;
        let stopped = Arc::new(AtomicBool::new(false));
        let polling = stopped.clone();
        // Polling serves the group's rebalances; the topic never has a message.
        tokio::spawn(async move {
            while !polling.load(Ordering::Acquire) {
                let _ =
                    tokio::time::timeout(std::time::Duration::from_millis(500), consumer.recv())
                        .await;
            }
        });
        Ok(Role { holds, stopped })
    }
}
