//! HTTP handlers for the beer resource and the Kubernetes probes.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::MySqlPool;
use utoipa::ToSchema;

use crate::db;
use crate::error::{ApiError, ErrorBody};
use crate::model::{Beer, BeerInput, BeerPage, PageRequest};

/// How long the readiness probe waits for the database before calling the pod unready; below
/// the probe's own timeout, so the answer is a clean 503 rather than a probe timeout.
const READY_PING_TIMEOUT: Duration = Duration::from_secs(2);

/// Shared state of the handlers.
///
/// The pool is set once the database is reachable and migrated. Until then the server already
/// answers, so the liveness probe passes while the database pod is still starting, and the
/// readiness probe and the API say 503.
#[derive(Clone, Default)]
pub struct AppState {
    pool: Arc<OnceLock<MySqlPool>>,
}

impl AppState {
    /// State whose database is not ready yet; see `set_pool`.
    pub fn new() -> Self {
        Self::default()
    }

    /// State with a connected, migrated pool.
    pub fn with_pool(pool: MySqlPool) -> Self {
        let state = Self::new();
        state.set_pool(pool);
        state
    }

    /// Marks the database ready; later calls are ignored, since there is one database.
    pub fn set_pool(&self, pool: MySqlPool) {
        let _ = self.pool.set(pool);
    }

    /// The pool, or 503 while the database is not ready.
    fn pool(&self) -> Result<&MySqlPool, ApiError> {
        self.pool.get().ok_or(ApiError::Unavailable)
    }
}

/// Raw pagination query; parsed by `PageRequest::parse` so bad values become field errors.
#[derive(Debug, Deserialize)]
pub struct ListParams {
    page: Option<String>,
    size: Option<String>,
}

/// Answer of the health endpoints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// "UP" or "DOWN", as Spring Boot's actuator says it.
    #[schema(example = "UP")]
    pub status: String,
    /// Why the check failed, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Health {
    fn up() -> Json<Self> {
        Json(Self {
            status: "UP".into(),
            reason: None,
        })
    }

    fn down(reason: impl Into<String>) -> (StatusCode, Json<Self>) {
        let body = Self {
            status: "DOWN".into(),
            reason: Some(reason.into()),
        };
        (StatusCode::SERVICE_UNAVAILABLE, Json(body))
    }
}

/// Parses an id from the path; anything but a positive whole number is a bad request.
fn parse_id(raw: &str) -> Result<u64, ApiError> {
    raw.parse::<u64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| ApiError::BadRequest(format!("id {raw:?} is not a positive whole number")))
}

/// Parses and validates a beer from a request body. The body is read as bytes rather than with
/// axum's `Json` so that every failure answers in this API's error format.
fn parse_beer(body: &Bytes) -> Result<BeerInput, ApiError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    BeerInput::from_json(&value).map_err(ApiError::Validation)
}

/// Lists beers a page at a time.
#[utoipa::path(
    get,
    path = "/api/beers",
    tag = "beers",
    params(
        ("page" = Option<u32>, Query, description = "Zero-based page number (default 0)"),
        ("size" = Option<u32>, Query, description = "Beers per page, 1-100 (default 20)"),
    ),
    responses(
        (status = 200, description = "One page of beers", body = BeerPage),
        (status = 422, description = "Invalid page or size", body = ErrorBody),
    )
)]
pub async fn list_beers(
    State(state): State<AppState>,
    Query(params): Query<ListParams>,
) -> Result<Json<BeerPage>, ApiError> {
    let request = PageRequest::parse(params.page.as_deref(), params.size.as_deref())
        .map_err(ApiError::Validation)?;
    let (content, total) = db::list_beers(state.pool()?, request).await?;
    Ok(Json(BeerPage::new(content, request, total)))
}

/// Reads one beer.
#[utoipa::path(
    get,
    path = "/api/beers/{id}",
    tag = "beers",
    params(("id" = u64, Path, description = "Beer id")),
    responses(
        (status = 200, description = "The beer", body = Beer),
        (status = 404, description = "No beer has this id", body = ErrorBody),
    )
)]
pub async fn get_beer(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Beer>, ApiError> {
    let id = parse_id(&id)?;
    db::get_beer(state.pool()?, id)
        .await?
        .map(Json)
        .ok_or(ApiError::NotFound(id))
}

/// Adds a beer.
#[utoipa::path(
    post,
    path = "/api/beers",
    tag = "beers",
    request_body = BeerInput,
    responses(
        (status = 201, description = "Created; Location names the new beer", body = Beer),
        (status = 400, description = "The body is not JSON", body = ErrorBody),
        (status = 422, description = "Invalid fields", body = ErrorBody),
    )
)]
pub async fn create_beer(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let input = parse_beer(&body)?;
    let beer = db::insert_beer(state.pool()?, input).await?;
    let location = format!("/api/beers/{}", beer.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(beer),
    ))
}

/// Replaces a beer's fields.
#[utoipa::path(
    put,
    path = "/api/beers/{id}",
    tag = "beers",
    params(("id" = u64, Path, description = "Beer id")),
    request_body = BeerInput,
    responses(
        (status = 200, description = "The updated beer", body = Beer),
        (status = 400, description = "The body is not JSON", body = ErrorBody),
        (status = 404, description = "No beer has this id", body = ErrorBody),
        (status = 422, description = "Invalid fields", body = ErrorBody),
    )
)]
pub async fn update_beer(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Beer>, ApiError> {
    let id = parse_id(&id)?;
    let input = parse_beer(&body)?;
    db::update_beer(state.pool()?, id, input)
        .await?
        .map(Json)
        .ok_or(ApiError::NotFound(id))
}

/// Removes a beer.
#[utoipa::path(
    delete,
    path = "/api/beers/{id}",
    tag = "beers",
    params(("id" = u64, Path, description = "Beer id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No beer has this id", body = ErrorBody),
    )
)]
pub async fn delete_beer(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = parse_id(&id)?;
    if db::delete_beer(state.pool()?, id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(id))
    }
}

/// Liveness: the process is up and serving. It deliberately ignores the database, so that a
/// database outage makes pods unready rather than getting them restarted in a loop.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "health",
    responses((status = 200, description = "The process is up", body = Health))
)]
pub async fn healthz() -> Json<Health> {
    Health::up()
}

/// Readiness: the database is connected, migrated and answering.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "health",
    responses(
        (status = 200, description = "Ready to serve", body = Health),
        (status = 503, description = "The database is not reachable", body = Health),
    )
)]
pub async fn readyz(State(state): State<AppState>) -> axum::response::Response {
    let Ok(pool) = state.pool() else {
        return Health::down("database not connected yet").into_response();
    };
    match tokio::time::timeout(READY_PING_TIMEOUT, db::ping(pool)).await {
        Ok(Ok(())) => Health::up().into_response(),
        Ok(Err(err)) => Health::down(format!("database error: {err}")).into_response(),
        Err(_) => Health::down("database did not answer in time").into_response(),
    }
}
