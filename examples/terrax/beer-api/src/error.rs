//! Error responses: every failure answers with the same JSON shape, so clients need one parser.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// One invalid field of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FieldError {
    /// Name of the offending field or query parameter.
    #[schema(example = "abv")]
    pub field: String,
    /// What is wrong with it.
    #[schema(example = "must be between 0 and 100")]
    pub message: String,
}

impl FieldError {
    /// An error for `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// The body of every error response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// Human-readable summary.
    #[schema(example = "validation failed")]
    pub message: String,
    /// Per-field details; empty unless the request failed validation.
    pub errors: Vec<FieldError>,
}

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request was understood but its values are invalid (422).
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    /// The request body is not JSON at all (400).
    #[error("malformed request body: {0}")]
    BadRequest(String),
    /// No beer has this id (404).
    #[error("beer {0} not found")]
    NotFound(u64),
    /// The database is not connected or not migrated yet (503), so a probe or a load balancer
    /// can tell "starting" from "broken".
    #[error("database not ready")]
    Unavailable,
    /// A query failed (500); details go to the log, not to the client.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

impl ApiError {
    /// The HTTP status this error answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Database(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let (message, errors) = match self {
            Self::Validation(errors) => ("validation failed".to_owned(), errors),
            Self::Database(err) => {
                tracing::error!(error = %err, "query failed");
                ("internal database error".to_owned(), Vec::new())
            }
            other => (other.to_string(), Vec::new()),
        };
        (status, Json(ErrorBody { message, errors })).into_response()
    }
}
