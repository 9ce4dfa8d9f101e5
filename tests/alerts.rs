//! Alert webhooks, received by a local HTTP listener: a station refusing more than its
//! `alert.rejection_rate` is notified once per `min_interval`, a station under it never, and a
//! refused registry commit is notified with its problems — Slack's `{"text": ...}` body each time.

mod common;

use std::time::Duration;

use axum::routing::post;
use axum::{Json, Router};
use common::{every_second_schedule, valid_order, Gateway, GitRepo, ORDER_SCHEMA};
use serde_json::{json, Value};
use tokio::sync::mpsc;

/// A webhook on a free port; every body it receives comes out of the receiver.
async fn webhook() -> (String, mpsc::UnboundedReceiver<Value>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let app = Router::new().route(
        "/hook",
        post(move |Json(body): Json<Value>| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(body);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, rx)
}

async fn next_text(received: &mut mpsc::UnboundedReceiver<Value>) -> String {
    let body = tokio::time::timeout(Duration::from_secs(20), received.recv())
        .await
        .expect("a notification arrives")
        .unwrap();
    body["text"].as_str().expect("a Slack text body").to_owned()
}

#[tokio::test]
async fn rejection_rates_and_refused_commits_are_notified_once_per_interval() {
    let (url, mut received) = webhook().await;
    let alert = "alert = { rejection_rate = 0.5, min_messages = 4, window = \"1m\" }";
    let repo = GitRepo::new(&[
        ("schemas/orders/v1.json", ORDER_SCHEMA),
        (
            "stations.toml",
            &format!(
                "[[station]]\nname = \"alerting\"\nschema = \"orders\"\n{alert}\n\n\
                 [[station]]\nname = \"quiet\"\nschema = \"orders\"\n{alert}\n"
            ),
        ),
    ]);
    let gw = Gateway::start(
        &repo,
        &format!(
            "[alerts]\nwebhook_url = \"{url}\"\ncheck_interval = \"100ms\"\nmin_interval = \"1h\"\n"
        ),
    )
    .await;
    let invalid = json!({"order_id": "x", "items": [{"qty": 0}]});
    for id in ["q-1", "q-2", "q-3", "q-4", "q-5"] {
        assert_eq!(gw.produce("quiet", &valid_order(id)).await.0, 201);
    }
    assert_eq!(gw.produce("quiet", &invalid).await.0, 422);
    for id in ["a-1", "a-2"] {
        assert_eq!(gw.produce("alerting", &valid_order(id)).await.0, 201);
    }
    for _ in 0..3 {
        assert_eq!(gw.produce("alerting", &invalid).await.0, 422);
    }

    let text = next_text(&mut received).await;
    assert!(
        text.contains("`alerting` refused 3 of 5 messages (60%)"),
        "{text}"
    );
    assert!(text.contains("threshold of 50%"), "{text}");
    assert!(text.contains("/v1/stations/alerting/dlq"), "{text}");

    // Still over the threshold, but within min_interval: no second notification for it.
    for _ in 0..5 {
        assert_eq!(gw.produce("alerting", &invalid).await.0, 422);
    }
    repo.write("schemas/orders/v1.json", r#"{"type": "string"}"#);
    let refused = repo.commit("edit a published version");
    assert_eq!(gw.post_json("/v1/registry/sync", &json!({})).await.0, 200);
    let text = next_text(&mut received).await;
    assert!(
        text.contains(&format!("refused schema commit `{refused}`")),
        "{text}"
    );
    assert!(text.contains("schemas/orders/v1.json"), "{text}");

    // Nothing else was sent: not `quiet` (17% refused), not `alerting` again.
    let more = tokio::time::timeout(Duration::from_millis(500), received.recv()).await;
    assert!(more.is_err(), "unexpected notification: {more:?}");
    assert_eq!(gw.get("/readyz").await.0, 200);
}

#[tokio::test]
async fn a_rejection_rate_outside_0_to_1_refuses_the_commit() {
    let repo = GitRepo::new(&[
        ("schemas/orders/v1.json", ORDER_SCHEMA),
        (
            "stations.toml",
            "[[station]]\nname = \"orders\"\nschema = \"orders\"\n",
        ),
    ]);
    let gw = Gateway::start(&repo, "").await;
    repo.write(
        "stations.toml",
        "[[station]]\nname = \"orders\"\nschema = \"orders\"\nalert = { rejection_rate = 5 }\n",
    );
    repo.commit("alert at 500%");
    let (status, body) = gw.post_json("/v1/registry/sync", &json!({})).await;
    assert_eq!(status, 200, "{body}");
    let message = body["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(message.contains("alert.rejection_rate"), "{body}");
}

#[tokio::test]
async fn a_schedule_that_cannot_produce_is_notified_and_shown_failed() {
    let (url, mut received) = webhook().await;
    // Nothing listens at the Kafka address: every tick fails.
    let repo = GitRepo::new(&[
        ("schemas/orders/v1.json", ORDER_SCHEMA),
        (
            "stations.toml",
            "[[station]]\nname = \"far\"\nschema = \"orders\"\nbackend = { kafka = \"far-topic\" }\n",
        ),
        ("schedules.toml", &every_second_schedule("far")),
    ]);
    let gw = Gateway::start(
        &repo,
        &format!(
            "[alerts]\nwebhook_url = \"{url}\"\ncheck_interval = \"100ms\"\nmin_interval = \"1h\"\n\n\
             [kafka]\nbrokers = \"127.0.0.1:9\"\nrequest_timeout = \"1s\"\n"
        ),
    )
    .await;
    let text = next_text(&mut received).await;
    assert!(
        text.contains("schedule `every-second`") && text.contains("station `far`"),
        "{text}"
    );
    let (status, body) = gw.get("/v1/schedules").await;
    assert_eq!(status, 200);
    let schedule = &body["schedules"][0];
    assert_eq!(schedule["last_result"]["result"], "failed", "{body}");
    assert!(schedule["runs"]["failed"].as_u64().unwrap() >= 1, "{body}");
    assert_eq!(schedule["runs"]["succeeded"], 0, "{body}");
    let metrics = gw.metrics().await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("sluice_schedule_runs_total")
                && l.contains(r#"schedule="every-second""#)
                && l.contains(r#"result="failed""#)),
        "{metrics}"
    );
}
