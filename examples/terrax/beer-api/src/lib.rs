//! The Terrax beer API: a small REST service for beers, backed by MySQL/MariaDB.
//!
//! It stands in for the SpringBoot service of the Terrax EKS/Fargate walkthrough: the same
//! resource under `/api/beers`, the same springdoc paths for the OpenAPI document and the
//! Swagger UI, and probe endpoints for Kubernetes.

pub mod config;
pub mod db;
pub mod error;
pub mod model;
pub mod openapi;
pub mod routes;

use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::db::DbSettings;
use crate::error::ErrorBody;
pub use crate::routes::AppState;

/// The whole HTTP application: API, probes, OpenAPI document, Swagger UI and request logging.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route(
            "/api/beers",
            get(routes::list_beers).post(routes::create_beer),
        )
        .route(
            "/api/beers/{id}",
            get(routes::get_beer)
                .put(routes::update_beer)
                .delete(routes::delete_beer),
        )
        .route("/healthz", get(routes::healthz))
        .route("/readyz", get(routes::readyz))
        .with_state(state)
        .merge(openapi::docs_router())
        .fallback(not_found)
        .layer(middleware::from_fn(log_request))
}

/// Unknown paths answer in the API's error format rather than with an empty body.
async fn not_found(request: Request) -> Response {
    let body = ErrorBody {
        message: format!("no route for {} {}", request.method(), request.uri().path()),
        errors: Vec::new(),
    };
    (axum::http::StatusCode::NOT_FOUND, axum::Json(body)).into_response()
}

/// Logs one line per request. Probe hits go to debug: the kubelet sends one every few seconds
/// per pod and would drown everything else at info.
async fn log_request(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16();
    let millis = started.elapsed().as_millis();
    if path == "/healthz" || path == "/readyz" {
        tracing::debug!(%method, %path, status, millis, "request");
    } else {
        tracing::info!(%method, %path, status, millis, "request");
    }
    response
}

/// Connects to the database (retrying until it answers), migrates it, and then marks `state`
/// ready. Runs beside the server so that probes get answers during a slow database start.
pub async fn prepare_database(settings: DbSettings, retry_every: Duration, state: AppState) {
    let target = settings.redacted();
    loop {
        let pool = db::connect_with_retry(settings.connect_options(), &target, retry_every).await;
        match db::migrate(&pool).await {
            Ok(()) => {
                tracing::info!(%target, "database schema up to date; ready");
                state.set_pool(pool);
                return;
            }
            Err(err) => {
                // Most often the connection dropped mid-way or another replica held the lock
                // too long; staying unready and trying again suits both.
                tracing::error!(%target, error = %err, "migration failed; retrying");
                pool.close().await;
                tokio::time::sleep(retry_every).await;
            }
        }
    }
}
