//! The station contract, written once and run against every backend: the embedded store, NATS
//! JetStream (a real `nats-server`) and Kafka (a real `tansu` broker). Groups share and fan out,
//! a long poll wakes when a message arrives, acks stick and leases run out, nacks wait, a poison message reaches the dead-letter queue after
//! `max_deliveries`, a first delivery waits for `Sluice-Deliver-After` without holding back the
//! next message, dead letters are browsed and replayed at most once, and the listings and
//! `/metrics` count what each station holds.

#[path = "../common/mod.rs"]
mod common;
mod scenarios;

use scenarios::Backend;

/// One test per scenario, against `$backend`.
macro_rules! every_scenario {
    ($backend:expr) => {
        #[tokio::test]
        async fn a_group_shares_the_work_and_every_group_sees_everything() {
            crate::scenarios::a_group_shares_the_work_and_every_group_sees_everything($backend)
                .await;
        }

        #[tokio::test]
        async fn a_long_poll_returns_as_soon_as_a_message_arrives() {
            crate::scenarios::a_long_poll_returns_as_soon_as_a_message_arrives($backend).await;
        }

        #[tokio::test]
        async fn acks_stick_and_unacked_messages_come_back_after_the_ack_timeout() {
            crate::scenarios::acks_stick_and_unacked_messages_come_back_after_the_ack_timeout(
                $backend,
            )
            .await;
        }

        #[tokio::test]
        async fn a_nack_with_a_delay_redelivers_after_it() {
            crate::scenarios::a_nack_with_a_delay_redelivers_after_it($backend).await;
        }

        #[tokio::test]
        async fn a_poison_message_reaches_the_dlq_after_max_deliveries() {
            crate::scenarios::a_poison_message_reaches_the_dlq_after_max_deliveries($backend).await;
        }

        #[tokio::test]
        async fn deliver_after_holds_one_message_and_not_the_next() {
            crate::scenarios::deliver_after_holds_one_message_and_not_the_next($backend).await;
        }

        #[tokio::test]
        async fn dead_letters_are_browsed_and_replayed_at_most_once() {
            crate::scenarios::dead_letters_are_browsed_and_replayed_at_most_once($backend).await;
        }

        #[tokio::test]
        async fn groups_past_the_limit_are_refused_and_the_others_keep_working() {
            crate::scenarios::groups_past_the_limit_are_refused_and_the_others_keep_working(
                $backend,
            )
            .await;
        }

        #[tokio::test]
        async fn listings_and_metrics_count_messages_and_dead_letters() {
            crate::scenarios::listings_and_metrics_count_messages_and_dead_letters($backend).await;
        }
    };
}

mod embedded {
    use super::Backend;
    every_scenario!(Backend::Embedded);
}

mod nats {
    use super::Backend;
    every_scenario!(Backend::Nats);
}

mod kafka {
    use super::Backend;
    every_scenario!(Backend::Kafka);
}
