//! The OpenAPI document and the Swagger UI that renders it.
//!
//! The paths match springdoc's defaults (`/v3/api-docs`, `/swagger-ui.html`) because the
//! original SpringBoot service served them there and the walkthrough opens
//! `http://<load balancer>/swagger-ui.html`.

use axum::Router;
use axum::response::Redirect;
use axum::routing::get;
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

use crate::error::{ErrorBody, FieldError};
use crate::model::{Beer, BeerInput, BeerPage};
use crate::routes::{self, Health};

/// Where the OpenAPI document is served.
pub const API_DOCS_PATH: &str = "/v3/api-docs";
/// Where the Swagger UI page and its assets are served (with a trailing slash for the page).
pub const SWAGGER_UI_PATH: &str = "/swagger-ui";

/// The API's OpenAPI description, generated from the handlers' annotations.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Terrax beer API",
        description = "Beers of the Terrax Micro-Brewery: list, read, add, change and remove.",
        license(name = "Apache-2.0"),
    ),
    paths(
        routes::list_beers,
        routes::get_beer,
        routes::create_beer,
        routes::update_beer,
        routes::delete_beer,
        routes::healthz,
        routes::readyz,
    ),
    components(schemas(Beer, BeerInput, BeerPage, ErrorBody, FieldError, Health)),
    tags(
        (name = "beers", description = "The beer catalogue"),
        (name = "health", description = "Kubernetes liveness and readiness probes"),
    )
)]
pub struct ApiDoc;

/// Routes for the document, the UI, and the springdoc-style entry points that lead to the UI.
pub fn docs_router<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let ui_page = format!("{SWAGGER_UI_PATH}/");
    let root_target = ui_page.clone();
    Router::new()
        .merge(SwaggerUi::new(SWAGGER_UI_PATH).url(API_DOCS_PATH, ApiDoc::openapi()))
        // A redirect rather than a copy of the page: the page loads its assets by relative
        // URLs, which only resolve under /swagger-ui/.
        .route(
            "/swagger-ui.html",
            get(move || async move { Redirect::permanent(&ui_page) }),
        )
        .route(
            "/",
            get(move || async move { Redirect::temporary(&root_target) }),
        )
}
