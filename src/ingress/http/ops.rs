//! The operational endpoints: the dashboard's page, the API index, liveness (`/healthz`),
//! readiness (`/readyz`) and Prometheus metrics (`/metrics`).

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::Shared;
use crate::ingress::errors::ApiError;

pub(super) async fn dashboard() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        crate::ui::INDEX_HTML,
    )
        .into_response()
}

pub(super) async fn index() -> Json<serde_json::Value> {
    Json(json!({
        "name": "sluice",
        "version": env!("CARGO_PKG_VERSION"),
        "api": "/v1",
        "stations": "/v1/stations",
        "schemas": "/v1/schemas",
        "registry": "/v1/registry/status",
    }))
}

pub(super) async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

pub(super) async fn readyz(State(pipeline): Shared) -> Response {
    match pipeline.check_ready().await {
        Ok(()) => {
            let revision = pipeline.registry().snapshot().revision.clone();
            Json(json!({ "ready": true, "registry_revision": revision })).into_response()
        }
        Err(e) => {
            let e = ApiError::from(e);
            let mut body = e.body();
            body["ready"] = json!(false);
            (e.status(), Json(body)).into_response()
        }
    }
}

/// Prometheus text: the recorded metrics, with the registry's state and every station's
/// dead-letter depth read just now from its backend.
pub(super) async fn prometheus_metrics(State(pipeline): Shared) -> Response {
    let registry = pipeline.registry();
    let snapshot = registry.snapshot();
    crate::metrics::refresh_registry(
        registry.is_serving(),
        snapshot.schemas().count(),
        registry.installs_total(),
        registry.refusals_total(),
    );
    let with_dead_letters: Vec<_> = snapshot.stations().filter(|s| s.dlq).collect();
    let stats = pipeline
        .stations_stats(with_dead_letters.iter().map(|s| s.as_ref()))
        .await;
    for (station, stats) in with_dead_letters.iter().zip(stats) {
        if let Some(dead_letters) = stats.dead_letters {
            crate::metrics::refresh_dlq_depth(&station.name, dead_letters.messages);
        }
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        crate::metrics::render(),
    )
        .into_response()
}
