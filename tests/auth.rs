//! Bearer tokens with per-station rights, over HTTP, gRPC and the CLI: no token or an unknown
//! one is 401 (UNAUTHENTICATED), a known token without the right is 403 (PERMISSION_DENIED), and
//! the right token gets through. With tokens, Sluice may listen beyond loopback.

mod common;

use bytes::Bytes;
use common::{orders_repo, sluice_binary, valid_order, Gateway};
use serde_json::Value;
use sluice::ingress::auth::token_hash;
use sluice::ingress::grpc::proto::gateway_client::GatewayClient;
use sluice::ingress::grpc::proto::produce_result::Outcome;
use sluice::ingress::grpc::proto::{AckRequest, ProduceRequest};
use tonic::Code;

const WEB: &str = "web-token-1";
const READER: &str = "reader-token-1";
const OPS: &str = "ops-token-1";

fn tokens_config() -> String {
    format!(
        r#"
[[auth.tokens]]
id = "web"
sha256 = "{}"
produce = ["orders", "clicks*"]

[[auth.tokens]]
id = "reader"
sha256 = "{}"
consume = ["orders"]

[[auth.tokens]]
id = "ops"
sha256 = "{}"
admin = true
"#,
        token_hash(WEB),
        token_hash(READER),
        token_hash(OPS)
    )
}

/// Status and body of a request with an optional bearer token.
async fn call(
    gw: &Gateway,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = gw.client.request(method, gw.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    common::answer(request.send().await.unwrap()).await
}

#[tokio::test]
async fn http_requests_need_a_known_token_with_the_right() {
    let gw = Gateway::start(&orders_repo(""), &tokens_config()).await;
    let produce = |token| {
        call(
            &gw,
            reqwest::Method::POST,
            "/v1/stations/orders/messages",
            token,
            Some(valid_order("a-1")),
        )
    };
    let (status, body) = produce(None).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"], "unauthorized");
    assert!(body["message"].as_str().unwrap().contains("Bearer"));
    assert_eq!(produce(Some("not-a-token")).await.0, 401);
    assert_eq!(produce(Some(WEB)).await.0, 201);
    let (status, body) = call(
        &gw,
        reqwest::Method::POST,
        "/v1/stations/raw/messages",
        Some(WEB),
        Some(valid_order("a-2")),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"], "forbidden");
    assert!(
        body["message"].as_str().unwrap().contains("`raw`"),
        "{body}"
    );
    let consume = |token| {
        call(
            &gw,
            reqwest::Method::GET,
            "/v1/stations/orders/messages?group=g",
            token,
            None,
        )
    };
    assert_eq!(consume(Some(WEB)).await.0, 403);
    let (status, body) = consume(Some(READER)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["messages"].as_array().unwrap().len(), 1);
    let ack = call(
        &gw,
        reqwest::Method::POST,
        "/v1/stations/orders/ack",
        Some(WEB),
        Some(serde_json::json!({"group": "g", "offsets": [0]})),
    )
    .await;
    assert_eq!(ack.0, 403);

    // Listings and dead letters are for admins; schema reads for any known token.
    for path in [
        "/v1/stations",
        "/v1/stations/orders",
        "/v1/stations/orders/dlq",
    ] {
        assert_eq!(
            call(&gw, reqwest::Method::GET, path, Some(WEB), None)
                .await
                .0,
            403,
            "{path}"
        );
        assert_eq!(
            call(&gw, reqwest::Method::GET, path, Some(OPS), None)
                .await
                .0,
            200,
            "{path}"
        );
    }
    for path in ["/v1/schemas", "/v1/registry/status", "/subjects"] {
        assert_eq!(
            call(&gw, reqwest::Method::GET, path, None, None).await.0,
            401,
            "{path}"
        );
        assert_eq!(
            call(&gw, reqwest::Method::GET, path, Some(WEB), None)
                .await
                .0,
            200,
            "{path}"
        );
    }
    let sync = call(
        &gw,
        reqwest::Method::POST,
        "/v1/registry/sync",
        Some(WEB),
        None,
    )
    .await;
    assert_eq!(sync.0, 403);
    // Health stays open for load balancers.
    assert_eq!(
        call(&gw, reqwest::Method::GET, "/healthz", None, None)
            .await
            .0,
        200
    );
    assert_eq!(
        call(&gw, reqwest::Method::GET, "/readyz", None, None)
            .await
            .0,
        200
    );
    // A percent-encoded station name is judged by its decoded name.
    let (status, _) = call(
        &gw,
        reqwest::Method::POST,
        "/v1/stations/%6Frders/messages",
        Some(WEB),
        Some(valid_order("a-3")),
    )
    .await;
    assert_eq!(status, 201);
}

/// The code a gRPC call ended with.
fn code<T>(result: Result<T, tonic::Status>) -> Code {
    result.map(|_| Code::Ok).unwrap_or_else(|s| s.code())
}

fn with_token<T>(message: T, token: Option<&str>) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Some(token) = token {
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    request
}

fn order_request(station: &str, id: &str) -> ProduceRequest {
    ProduceRequest {
        station: station.into(),
        payload: Bytes::from(serde_json::to_vec(&valid_order(id)).unwrap()),
        content_type: "application/json".into(),
        ..ProduceRequest::default()
    }
}

#[tokio::test]
async fn grpc_calls_need_a_known_token_with_the_right() {
    let gw = Gateway::start(&orders_repo(""), &tokens_config()).await;
    let mut grpc = GatewayClient::connect(gw.grpc.clone()).await.unwrap();

    let produce = |token| with_token(order_request("orders", "g-1"), token);
    assert_eq!(
        code(grpc.produce(produce(None)).await),
        Code::Unauthenticated
    );
    assert_eq!(
        code(grpc.produce(produce(Some("wrong"))).await),
        Code::Unauthenticated
    );
    assert_eq!(code(grpc.produce(produce(Some(WEB))).await), Code::Ok);
    let other = with_token(order_request("raw", "g-2"), Some(WEB));
    assert_eq!(code(grpc.produce(other).await), Code::PermissionDenied);
    let ack = |token| {
        with_token(
            AckRequest {
                station: "orders".into(),
                group: "g".into(),
                offsets: vec![0],
                partition: None,
            },
            token,
        )
    };
    assert_eq!(code(grpc.ack(ack(Some(WEB))).await), Code::PermissionDenied);
    assert_eq!(code(grpc.ack(ack(Some(READER))).await), Code::Ok);

    // A stream needs a known token; each message needs its station's right.
    let stream = |token| {
        with_token(
            tokio_stream::iter(vec![
                order_request("orders", "s-1"),
                order_request("raw", "s-2"),
            ]),
            token,
        )
    };
    assert_eq!(
        code(grpc.produce_stream(stream(None)).await),
        Code::Unauthenticated
    );
    let mut results = grpc
        .produce_stream(stream(Some(WEB)))
        .await
        .unwrap()
        .into_inner();
    let first = results.message().await.unwrap().unwrap().outcome.unwrap();
    assert!(matches!(first, Outcome::Accepted(_)), "{first:?}");
    match results.message().await.unwrap().unwrap().outcome.unwrap() {
        Outcome::Rejected(r) => {
            assert_eq!(r.code, Code::PermissionDenied as i32);
            assert_eq!(r.error, "forbidden");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn the_cli_sends_its_token() {
    let gw = Gateway::start(&orders_repo(""), &tokens_config()).await;
    let base = gw.base.clone();
    let line = serde_json::to_string(&valid_order("cli-1")).unwrap() + "\n";
    let run = move |token: Option<&'static str>| {
        let base = base.clone();
        let line = line.clone();
        tokio::task::spawn_blocking(move || {
            use std::io::Write;
            let mut command = std::process::Command::new(sluice_binary());
            command
                .args(["produce", "orders", "-", "--url", &base])
                .env_remove("SLUICE_TOKEN")
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped());
            if let Some(token) = token {
                command.env("SLUICE_TOKEN", token);
            }
            let mut child = command.spawn().unwrap();
            child
                .stdin
                .take()
                .unwrap()
                .write_all(line.as_bytes())
                .unwrap();
            child.wait_with_output().unwrap()
        })
    };
    let refused = run(None).await.unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("Bearer"), "{stderr}");
    let accepted = run(Some(WEB)).await.unwrap();
    assert!(
        accepted.status.success(),
        "{}",
        String::from_utf8_lossy(&accepted.stderr)
    );
    assert!(String::from_utf8_lossy(&accepted.stderr).contains("1 accepted"));
}

#[test]
fn with_tokens_sluice_may_listen_beyond_loopback() {
    let repo = orders_repo("");
    let data = tempfile::tempdir().unwrap();
    let config = data.path().join("sluice.toml");
    std::fs::write(&config, tokens_config()).unwrap();
    let mut child = std::process::Command::new(sluice_binary())
        .args(["serve", "--config"])
        .arg(&config)
        .env("SLUICE_SERVER_HTTP", "0.0.0.0:0")
        .env("SLUICE_SERVER_GRPC", "0.0.0.0:0")
        .env("SLUICE_REGISTRY_SOURCE", repo.path())
        .env("SLUICE_STORAGE_DIR", data.path().join("store"))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let serving = std::thread::spawn(move || {
        use std::io::BufRead;
        std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .find(|line| line.contains("sluice is serving"))
    });
    let line = serving.join().unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let line = line.expect("sluice serves on 0.0.0.0 with tokens configured");
    assert!(line.contains("http=0.0.0.0:"), "{line}");
}

#[tokio::test]
async fn a_token_over_its_rate_gets_429_with_retry_after() {
    let config = format!(
        "[[auth.tokens]]\nid = \"slow\"\nsha256 = \"{}\"\nproduce = [\"orders\"]\nrequests_per_second = 1\n",
        token_hash("slow-token")
    );
    let gw = Gateway::start(&orders_repo(""), &config).await;
    let mut statuses = Vec::new();
    let mut limited = None;
    for i in 0..3 {
        let response = gw
            .client
            .post(gw.url("/v1/stations/orders/messages"))
            .bearer_auth("slow-token")
            .json(&valid_order(&format!("rate-{i}")))
            .send()
            .await
            .unwrap();
        statuses.push(response.status().as_u16());
        if response.status() == 429 {
            let retry_after = response.headers()["retry-after"]
                .to_str()
                .unwrap()
                .to_owned();
            limited = Some((retry_after, common::answer(response).await.1));
        }
    }
    assert_eq!(statuses[0], 201, "{statuses:?}");
    let (retry_after, body) = limited.expect("a request past the rate is refused");
    assert!(retry_after.parse::<u64>().unwrap() >= 1);
    assert_eq!(body["error"], "rate_limited");
    assert!(
        body["message"].as_str().unwrap().contains("`slow`"),
        "{body}"
    );
}
