//! Who may call which route: every route of the HTTP API is declared with the [`Right`] it needs,
//! through [`Routes::at`], the only way a handler is added. The check runs as that route's layer,
//! after routing, so it reads the station from the route's own `{station}` parameter; a route
//! cannot exist without a right, and [`Routes::declared`] lists every route with its right for the
//! test that walks them.

use std::sync::Arc;

use axum::extract::rejection::RawPathParamsRejection;
use axum::extract::{RawPathParams, Request, State};
use axum::handler::Handler;
use axum::http::{header, Method};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{on, MethodFilter};
use axum::Router;

use crate::ingress::auth::{Authenticator, Need};
use crate::ingress::errors::ApiError;
use crate::pipeline::Pipeline;

/// What a route needs of the caller's bearer token (when the gateway has tokens).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Right {
    /// Nothing: health, readiness, the index and the dashboard's page.
    Open,
    /// A known token: schema and registry reads, metrics, the Confluent API.
    Read,
    /// A token whose `produce` globs match the route's `{station}`.
    Produce,
    /// A token whose `consume` globs match the route's `{station}` (consume, ack, nack).
    Consume,
    /// An admin token: station listings, dead letters and replay.
    Admin,
    /// An admin token, or none when the call is signed with the webhook secret (registry sync).
    AdminOrSigned,
}

/// A route as declared: its method, its path pattern and the right it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Declared {
    pub method: Method,
    pub path: &'static str,
    pub right: Right,
}

/// What the check needs: the tokens, and the registry's webhook secret for signed syncs.
#[derive(Clone)]
struct Guard {
    auth: Arc<Authenticator>,
    pipeline: Arc<Pipeline>,
}

/// The routes of the HTTP API, each with its right.
pub struct Routes {
    router: Router<Arc<Pipeline>>,
    declared: Vec<Declared>,
    guard: Guard,
}

impl Routes {
    pub fn new(pipeline: Arc<Pipeline>, auth: Arc<Authenticator>) -> Self {
        Self {
            router: Router::new(),
            declared: Vec::new(),
            guard: Guard { auth, pipeline },
        }
    }

    /// Serves `handler` for `method` on `path` to callers that have `right`.
    pub fn at<H, T>(mut self, method: Method, path: &'static str, right: Right, handler: H) -> Self
    where
        H: Handler<T, Arc<Pipeline>>,
        T: 'static,
    {
        let filter = MethodFilter::try_from(method.clone()).expect("the API uses standard methods");
        let checked = on(filter, handler).route_layer(middleware::from_fn_with_state(
            (self.guard.clone(), right),
            authorize,
        ));
        self.router = self.router.route(path, checked);
        self.declared.push(Declared {
            method,
            path,
            right,
        });
        self
    }

    /// Every route declared so far, with its right.
    pub fn declared(&self) -> &[Declared] {
        &self.declared
    }

    pub fn into_router(self) -> Router<Arc<Pipeline>> {
        self.router
    }
}

/// Checks the bearer token against the route's right: 401 or 403 before the handler runs.
async fn authorize(
    State((guard, right)): State<(Guard, Right)>,
    params: Result<RawPathParams, RawPathParamsRejection>,
    request: Request,
    next: Next,
) -> Response {
    if guard.auth.is_enabled() {
        if let Err(error) = check(&guard, right, params, &request) {
            return error.into_response();
        }
    }
    next.run(request).await
}

fn check(
    guard: &Guard,
    right: Right,
    params: Result<RawPathParams, RawPathParamsRejection>,
    request: &Request,
) -> Result<(), ApiError> {
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let station;
    let need = match right {
        Right::Open => return Ok(()),
        Right::AdminOrSigned if signed_by_webhook(guard, request) => return Ok(()),
        Right::Read => Need::Read,
        Right::Admin | Right::AdminOrSigned => Need::Admin,
        Right::Produce => {
            station = station_of(params)?;
            Need::Produce(&station)
        }
        Right::Consume => {
            station = station_of(params)?;
            Need::Consume(&station)
        }
    };
    guard.auth.check(authorization, need)
}

/// The route's `{station}`, percent-decoded; a name that is not UTF-8 is refused here as the
/// handler would refuse it.
fn station_of(params: Result<RawPathParams, RawPathParamsRejection>) -> Result<String, ApiError> {
    let params = params.map_err(|rejection| {
        ApiError::BadRequest(format!(
            "the URL path cannot be read: {}",
            rejection.body_text()
        ))
    })?;
    let station = params
        .iter()
        .find(|(name, _)| *name == "station")
        .map(|(_, value)| value.to_owned())
        .expect("station rights are declared on routes with a {station}");
    Ok(station)
}

/// Whether a sync carries a webhook signature and the registry has a secret to check it with
/// (the sync handler verifies it).
fn signed_by_webhook(guard: &Guard, request: &Request) -> bool {
    let signed = request.headers().contains_key("x-hub-signature-256")
        || request.headers().contains_key("x-gitlab-token");
    let secret_set = guard
        .pipeline
        .registry()
        .sync_handle()
        .is_some_and(|h| h.webhook_secret().is_some());
    signed && secret_set
}
