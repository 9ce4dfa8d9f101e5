//! The HTTP API (`/v1`, the Confluent-compatible registry API, health, metrics and the dashboard)
//! on axum. Handlers only translate: they read the request (body within its limit, `Sluice-*`
//! headers, query), call the [`Pipeline`], and turn the result into a status and JSON. Every route
//! is declared here with the right it needs ([`rights`]); statuses and error bodies come from
//! [`ApiError`] (`error.rs`).

mod encoding;
mod error;
mod inflate;
mod ops;
pub(in crate::ingress) mod read;
pub mod rights;
mod same_machine;
mod schedules;
mod schemas;
mod serve;
mod stations;
mod views;

use std::sync::Arc;

use axum::extract::State;
use axum::http::Method;
use axum::middleware;
use axum::Router;

use super::auth::Authenticator;
use super::errors::ApiError;
use super::requests;
use crate::pipeline::Pipeline;
use rights::{Right, Routes};

pub use serve::serve;

type Shared = State<Arc<Pipeline>>;

/// The whole HTTP API.
/// Without tokens, only requests from this machine and not from web pages of other sites are
/// answered ([`same_machine`]). Request bodies are decoded from their `Content-Encoding`, and
/// large answers compressed when `compress_responses` ([`encoding`]).
pub fn router(
    pipeline: Arc<Pipeline>,
    auth: Arc<Authenticator>,
    compress_responses: bool,
) -> Router {
    let open = !auth.is_enabled();
    let router = routes(pipeline.clone(), auth)
        .into_router()
        .fallback(|uri: axum::http::Uri| async move { ApiError::NotFound(uri.path().to_owned()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(middleware::from_fn_with_state(
            inflate::Inflating::new(pipeline.limits()),
            encoding::decode_body,
        ));
    let router = match compress_responses {
        true => router.layer(encoding::compressing()),
        false => router,
    };
    let router = router.layer(middleware::from_fn_with_state(
        pipeline.clone(),
        requests::within_deadline,
    ));
    let router = match open {
        true => router.layer(middleware::from_fn(same_machine::same_machine_only)),
        false => router,
    };
    router
        .layer(middleware::from_fn(requests::traced))
        .with_state(pipeline)
}

/// Every route, with the right it needs. Health and the index are open; producing and consuming
/// need the station's right; station listings, dead letters and syncs need admin (a sync signed
/// with the webhook secret needs no token); schema and registry reads, metrics and the Confluent
/// API need a known token.
pub fn routes(pipeline: Arc<Pipeline>, auth: Arc<Authenticator>) -> Routes {
    let routes = Routes::new(pipeline, auth);
    let routes = operation_routes(routes);
    let routes = station_routes(routes);
    let routes = schema_routes(routes).at(
        Method::GET,
        "/v1/schedules",
        Right::Admin,
        schedules::list_schedules,
    );
    super::confluent::routes(routes)
}

/// The dashboard, the index, health and readiness (open to all) and metrics (a known token).
fn operation_routes(routes: Routes) -> Routes {
    use Method as M;
    use Right::*;
    routes
        .at(M::GET, "/", Open, ops::dashboard)
        .at(M::GET, "/v1", Open, ops::index)
        .at(M::GET, "/healthz", Open, ops::healthz)
        .at(M::GET, "/readyz", Open, ops::readyz)
        .at(M::GET, "/metrics", Read, ops::prometheus_metrics)
}

/// Station listings and dead letters (admin), producing and consuming (the station's right).
fn station_routes(routes: Routes) -> Routes {
    use Method as M;
    use Right::*;
    let station = "/v1/stations/{station}";
    routes
        .at(M::GET, "/v1/stations", Admin, stations::list_stations)
        .at(M::GET, station, Admin, stations::show_station)
        .at(
            M::POST,
            "/v1/stations/{station}/messages",
            Produce,
            stations::produce,
        )
        .at(
            M::GET,
            "/v1/stations/{station}/messages",
            Consume,
            stations::consume,
        )
        .at(
            M::POST,
            "/v1/stations/{station}/messages:batch",
            Produce,
            stations::produce_batch,
        )
        .at(
            M::POST,
            "/v1/stations/{station}/ack",
            Consume,
            stations::ack,
        )
        .at(
            M::POST,
            "/v1/stations/{station}/nack",
            Consume,
            stations::nack,
        )
        .at(
            M::GET,
            "/v1/stations/{station}/dlq",
            Admin,
            stations::dead_letters,
        )
        .at(
            M::POST,
            "/v1/stations/{station}/dlq/{id}/replay",
            Admin,
            stations::replay,
        )
}

/// Schema and registry reads and validation (a known token), and registry syncs (admin, or a
/// request signed with the webhook secret).
fn schema_routes(routes: Routes) -> Routes {
    use Method as M;
    use Right::*;
    routes
        .at(M::GET, "/v1/schemas", Read, schemas::list_schemas)
        .at(M::GET, "/v1/schemas/{name}", Read, schemas::show_schema)
        .at(
            M::GET,
            "/v1/schemas/{name}/versions/{version}",
            Read,
            schemas::show_schema_version,
        )
        .at(
            M::POST,
            "/v1/schemas/{name}/validate",
            Read,
            schemas::validate,
        )
        .at(
            M::GET,
            "/v1/registry/status",
            Read,
            schemas::registry_status,
        )
        .at(
            M::POST,
            "/v1/registry/sync",
            AdminOrSigned,
            schemas::registry_sync,
        )
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use tower_service::Service as _;

    use super::*;
    use crate::ingress::auth::{token_hash, TokenConfig};
    use crate::pipeline::pipeline_of;

    /// Every route and the right it needs: a new route fails this test until it is added here,
    /// with the right its author decided.
    #[rustfmt::skip]
    const RIGHTS: &[(Method, &str, Right)] = &[
        (Method::GET, "/", Right::Open),
        (Method::GET, "/v1", Right::Open),
        (Method::GET, "/healthz", Right::Open),
        (Method::GET, "/readyz", Right::Open),
        (Method::GET, "/metrics", Right::Read),
        (Method::GET, "/v1/stations", Right::Admin),
        (Method::GET, "/v1/stations/{station}", Right::Admin),
        (Method::POST, "/v1/stations/{station}/messages", Right::Produce),
        (Method::GET, "/v1/stations/{station}/messages", Right::Consume),
        (Method::POST, "/v1/stations/{station}/messages:batch", Right::Produce),
        (Method::POST, "/v1/stations/{station}/ack", Right::Consume),
        (Method::POST, "/v1/stations/{station}/nack", Right::Consume),
        (Method::GET, "/v1/stations/{station}/dlq", Right::Admin),
        (Method::POST, "/v1/stations/{station}/dlq/{id}/replay", Right::Admin),
        (Method::GET, "/v1/schemas", Right::Read),
        (Method::GET, "/v1/schemas/{name}", Right::Read),
        (Method::GET, "/v1/schemas/{name}/versions/{version}", Right::Read),
        (Method::POST, "/v1/schemas/{name}/validate", Right::Read),
        (Method::GET, "/v1/registry/status", Right::Read),
        (Method::POST, "/v1/registry/sync", Right::AdminOrSigned),
        (Method::GET, "/v1/schedules", Right::Admin),
        (Method::GET, "/subjects", Right::Read),
        (Method::POST, "/subjects/{subject}", Right::Read),
        (Method::DELETE, "/subjects/{subject}", Right::Read),
        (Method::GET, "/subjects/{subject}/versions", Right::Read),
        (Method::POST, "/subjects/{subject}/versions", Right::Read),
        (Method::GET, "/subjects/{subject}/versions/{version}", Right::Read),
        (Method::DELETE, "/subjects/{subject}/versions/{version}", Right::Read),
        (Method::GET, "/subjects/{subject}/versions/{version}/schema", Right::Read),
        (Method::GET, "/subjects/{subject}/versions/{version}/referencedby", Right::Read),
        (Method::GET, "/schemas/ids/{id}", Right::Read),
        (Method::GET, "/schemas/ids/{id}/schema", Right::Read),
        (Method::GET, "/schemas/ids/{id}/versions", Right::Read),
        (Method::GET, "/schemas/ids/{id}/subjects", Right::Read),
        (Method::GET, "/schemas/types", Right::Read),
        (Method::POST, "/compatibility/subjects/{subject}/versions/{version}", Right::Read),
        (Method::POST, "/compatibility/subjects/{subject}/versions", Right::Read),
        (Method::GET, "/config", Right::Read),
        (Method::PUT, "/config", Right::Read),
        (Method::GET, "/config/{subject}", Right::Read),
        (Method::PUT, "/config/{subject}", Right::Read),
        (Method::DELETE, "/config/{subject}", Right::Read),
        (Method::GET, "/mode", Right::Read),
        (Method::PUT, "/mode", Right::Read),
        (Method::GET, "/associations/resources/{namespace}/{resource}", Right::Read),
    ];

    /// Tokens named after what they may do; `known` may only read.
    const TOKENS: &[&str] = &["known", "producer", "consumer", "admin"];

    fn authenticator() -> Authenticator {
        let token = |id: &str, produce: &[&str], consume: &[&str], admin| TokenConfig {
            id: id.into(),
            sha256: token_hash(id),
            produce: produce.iter().map(|s| s.to_string()).collect(),
            consume: consume.iter().map(|s| s.to_string()).collect(),
            admin,
            requests_per_second: None,
        };
        Authenticator::new(&[
            token("known", &[], &[], false),
            token("producer", &["orders"], &[], false),
            token("consumer", &[], &["orders"], false),
            token("admin", &[], &[], true),
        ])
        .unwrap()
    }

    /// Whether a token (none: no `Authorization`) holds a right on station `orders`.
    fn holds(token: Option<&str>, right: Right) -> bool {
        match (token, right) {
            (_, Right::Open) => true,
            (None, _) => false,
            (Some("admin"), _) => true,
            (Some(_), Right::Read) => true,
            (Some("producer"), Right::Produce) | (Some("consumer"), Right::Consume) => true,
            _ => false,
        }
    }

    /// `path` with every parameter filled in: the station and schema `orders`, version and id 1.
    fn concrete(path: &str) -> String {
        path.replace("{station}", "orders")
            .replace("{name}", "orders")
            .replace("{subject}", "orders")
            .replace("{version}", "1")
            .replace("{id}", "1")
            .replace("{namespace}", "ns")
            .replace("{resource}", "orders")
    }

    #[test]
    fn every_route_is_declared_with_the_right_this_table_gives_it() {
        let (pipeline, _dir) = pipeline_of(&[]);
        let routes = routes(pipeline, Arc::new(authenticator()));
        let declared: Vec<_> = routes
            .declared()
            .iter()
            .map(|d| (d.method.clone(), d.path, d.right))
            .collect();
        for route in &declared {
            assert!(RIGHTS.contains(route), "{route:?} is not in RIGHTS");
        }
        for route in RIGHTS {
            assert!(declared.contains(route), "{route:?} is not declared");
        }
    }

    #[tokio::test]
    async fn every_route_lets_in_exactly_the_tokens_that_hold_its_right() {
        let (pipeline, _dir) = pipeline_of(&[
            ("orders/v1.json", r#"{"type":"object"}"#),
            (
                "stations.toml",
                "[[station]]\nname = \"orders\"\nschema = \"orders\"\n",
            ),
        ]);
        let routes = routes(pipeline.clone(), Arc::new(authenticator()));
        let declared = routes.declared().to_vec();
        let mut app = routes.into_router().with_state(pipeline);
        for route in &declared {
            for token in std::iter::once(None).chain(TOKENS.iter().copied().map(Some)) {
                let mut request = Request::builder()
                    .method(route.method.clone())
                    .uri(concrete(route.path));
                if let Some(token) = token {
                    request = request.header("authorization", format!("Bearer {token}"));
                }
                let request = request.body(Body::empty()).unwrap();
                std::future::poll_fn(|cx| {
                    tower_service::Service::<Request<Body>>::poll_ready(&mut app, cx)
                })
                .await
                .unwrap();
                let status = app.call(request).await.unwrap().status();
                let let_in = status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN;
                assert_eq!(
                    let_in,
                    holds(token, route.right),
                    "{} {} with token {token:?} ({:?}) answered {status}",
                    route.method,
                    route.path,
                    route.right
                );
            }
        }
    }
}
