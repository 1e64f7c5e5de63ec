//! End-to-end tests of the beer API against a real MariaDB server.
//!
//! One test drives every scenario in turn, because initialising and starting MariaDB takes
//! seconds and the scenarios can share one server: it first starts the binary before the
//! database exists (start-up retry, probes, environment settings), then exercises the router
//! in-process for CRUD, pagination, validation, 404s and the API documentation.

mod support;

use std::time::Duration;

use axum::Router;
use axum::http::{Method, StatusCode};
use beer_api::db::DbSettings;
use beer_api::{AppState, app, prepare_database};
use serde_json::{Value, json};
use support::mariadb::{self, Binaries, MariaDb, free_port};
use support::{ApiProcess, send, wait_for_status};

/// Beers inserted by the seed migration.
const SEEDED: u64 = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beer_api_against_real_mariadb() {
    let Some(binaries) = Binaries::find_or_skip() else {
        return;
    };
    let db_port = free_port();
    let api = ApiProcess::start(free_port(), db_port);
    let db = binary_waits_for_database(&api, &binaries, db_port).await;

    let settings = DbSettings {
        host: "127.0.0.1".into(),
        port: db.port,
        database: mariadb::DATABASE.into(),
        user: mariadb::USER.into(),
        password: mariadb::PASSWORD.into(),
    };
    let app = in_process_app(settings).await;
    pagination(&app).await;
    crud(&app).await;
    validation(&app).await;
    not_found(&app).await;
    api_docs(&app).await;
    swagger_ui(&app).await;
    drop(api);
    drop(db);
}

/// The binary serves liveness at once, stays unready without a database, and becomes ready
/// once MariaDB comes up later: the order a cluster may well start them in.
async fn binary_waits_for_database(api: &ApiProcess, binaries: &Binaries, db_port: u16) -> MariaDb {
    let timeout = Duration::from_secs(30);
    let body = wait_for_status(api.port, "/healthz", 200, timeout, || api.log()).await;
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["status"],
        "UP"
    );
    let (status, body) = support::http_get(api.port, "/readyz").await.unwrap();
    assert_eq!(status, 503, "ready before the database exists: {body}");
    let (status, _) = support::http_get(api.port, "/api/beers").await.unwrap();
    assert_eq!(status, 503);

    // First a server without the application's user: the binary's attempts fail on
    // authentication, which sqlx does not retry by itself, so this exercises our retry loop.
    let db = MariaDb::start(binaries, db_port).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (status, _) = support::http_get(api.port, "/readyz").await.unwrap();
    assert_eq!(status, 503);
    db.create_app_user().await;
    let timeout = Duration::from_secs(60);
    wait_for_status(api.port, "/readyz", 200, timeout, || {
        format!("api log:\n{}\ndb log:\n{}", api.log(), db.log())
    })
    .await;
    // The binary ran the migrations: the seeded beers are there.
    let body = wait_for_status(api.port, "/api/beers", 200, timeout, || api.log()).await;
    let page: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(page["totalElements"], SEEDED);
    let log = api.log();
    assert!(log.contains("retrying"), "no retry logged:\n{log}");
    assert!(!log.contains(mariadb::PASSWORD), "password logged:\n{log}");
    db
}

/// A router on its own pool, set up the way `main` does; migrating a second time (as a second
/// replica would) must be a no-op.
async fn in_process_app(settings: DbSettings) -> Router {
    let state = AppState::new();
    let app = app(state.clone());
    assert_eq!(send(&app, Method::GET, "/readyz", None).await.status, 503);
    let prepare = prepare_database(settings, Duration::from_secs(1), state);
    tokio::time::timeout(Duration::from_secs(60), prepare)
        .await
        .expect("database prepared");
    let ready = send(&app, Method::GET, "/readyz", None).await;
    assert_eq!(ready.status, StatusCode::OK, "{}", ready.text());
    assert_eq!(ready.json(), json!({"status": "UP"}));
    app
}

fn pils(name: &str, abv: f64) -> String {
    json!({"name": name, "brewery": "Terrax", "style": "Pilsner", "abv": abv, "ibu": 30})
        .to_string()
}

async fn pagination(app: &Router) {
    let all = send(app, Method::GET, "/api/beers", None).await.json();
    assert_eq!(all["page"], 0);
    assert_eq!(all["size"], 20);
    assert_eq!(all["totalElements"], SEEDED);
    assert_eq!(all["totalPages"], 1);
    let all_ids = ids(&all);
    assert!(
        all_ids.windows(2).all(|w| w[0] < w[1]),
        "not ordered by id: {all_ids:?}"
    );

    let second = send(app, Method::GET, "/api/beers?page=1&size=2", None)
        .await
        .json();
    assert_eq!(ids(&second), all_ids[2..4]);
    assert_eq!(second["totalPages"], 3);
    assert_eq!(second["totalElements"], SEEDED);
    let last = send(app, Method::GET, "/api/beers?page=2&size=2", None)
        .await
        .json();
    assert_eq!(ids(&last), all_ids[4..]);
    let beyond = send(app, Method::GET, "/api/beers?page=9&size=2", None)
        .await
        .json();
    assert_eq!(beyond["content"], json!([]));
    assert_eq!(beyond["totalElements"], SEEDED);

    let bad = send(app, Method::GET, "/api/beers?page=-1&size=500", None).await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(fields(&bad.json()), ["page", "size"]);
}

fn ids(page: &Value) -> Vec<u64> {
    page["content"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_u64().unwrap())
        .collect()
}

fn fields(error: &Value) -> Vec<String> {
    error["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap().to_owned())
        .collect()
}

async fn crud(app: &Router) {
    let body = json!({
        "name": "Swagger Saison", "brewery": "Terrax Micro-Brewery Inc", "style": "Saison",
        "abv": 6.5, "description": "Kölsch's Belgian cousin"
    });
    let created = send(app, Method::POST, "/api/beers", Some(&body.to_string())).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    let beer = created.json();
    let id = beer["id"].as_u64().unwrap();
    assert_eq!(created.header("location"), format!("/api/beers/{id}"));
    assert_eq!(beer["ibu"], Value::Null);
    assert_eq!(beer["abv"], 6.5);

    let read = send(app, Method::GET, &format!("/api/beers/{id}"), None).await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(
        read.json(),
        beer,
        "stored beer differs from the created one"
    );
    let total = send(app, Method::GET, "/api/beers?size=1", None)
        .await
        .json();
    assert_eq!(total["totalElements"], SEEDED + 1);
    assert_eq!(total["totalPages"], SEEDED + 1);

    let uri = format!("/api/beers/{id}");
    let updated = send(app, Method::PUT, &uri, Some(&pils("Swagger Pils", 4.9))).await;
    assert_eq!(updated.status, StatusCode::OK, "{}", updated.text());
    assert_eq!(updated.json()["id"], id);
    let read = send(app, Method::GET, &uri, None).await.json();
    assert_eq!(read["name"], "Swagger Pils");
    assert_eq!(read["ibu"], 30);
    assert_eq!(read["description"], Value::Null);
    // Writing the same values again changes no row, and must still be a 200, not a 404.
    let again = send(app, Method::PUT, &uri, Some(&pils("Swagger Pils", 4.9))).await;
    assert_eq!(again.status, StatusCode::OK);

    assert_eq!(
        send(app, Method::DELETE, &uri, None).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        send(app, Method::GET, &uri, None).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        send(app, Method::DELETE, &uri, None).await.status,
        StatusCode::NOT_FOUND
    );
    let total = send(app, Method::GET, "/api/beers", None).await.json();
    assert_eq!(total["totalElements"], SEEDED);
}

async fn validation(app: &Router) {
    let bad = json!({"name": "  ", "style": 12, "abv": 101.5, "ibu": 2.5}).to_string();
    let reply = send(app, Method::POST, "/api/beers", Some(&bad)).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    let error = reply.json();
    assert_eq!(error["message"], "validation failed");
    assert_eq!(fields(&error), ["name", "brewery", "style", "abv", "ibu"]);
    let abv = &error["errors"][3];
    assert_eq!(abv["message"], "must be between 0 and 100");

    let negative = pils("Minus", -0.1);
    let reply = send(app, Method::PUT, "/api/beers/1", Some(&negative)).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(fields(&reply.json()), ["abv"]);
    // The failed update left the beer alone.
    let beer = send(app, Method::GET, "/api/beers/1", None).await.json();
    assert_eq!(beer["name"], "Terrax Pilsner");

    let reply = send(app, Method::POST, "/api/beers", Some("{not json")).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.json()["errors"], json!([]));
    let total = send(app, Method::GET, "/api/beers", None).await.json();
    assert_eq!(total["totalElements"], SEEDED, "an invalid beer was stored");
}

async fn not_found(app: &Router) {
    let reply = send(app, Method::GET, "/api/beers/424242", None).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.json()["message"], "beer 424242 not found");
    let put = send(
        app,
        Method::PUT,
        "/api/beers/424242",
        Some(&pils("Ghost", 5.0)),
    )
    .await;
    assert_eq!(put.status, StatusCode::NOT_FOUND);
    let reply = send(app, Method::GET, "/api/beers/pilsner", None).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    let reply = send(app, Method::GET, "/api/wines", None).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.json()["message"], "no route for GET /api/wines");
}

async fn api_docs(app: &Router) {
    let reply = send(app, Method::GET, "/v3/api-docs", None).await;
    assert_eq!(reply.status, StatusCode::OK);
    let doc = reply.json();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3."),
        "{}",
        doc["openapi"]
    );
    assert_eq!(doc["info"]["title"], "Terrax beer API");
    let operations = [
        ("/api/beers", "get"),
        ("/api/beers", "post"),
        ("/api/beers/{id}", "get"),
        ("/api/beers/{id}", "put"),
        ("/api/beers/{id}", "delete"),
        ("/healthz", "get"),
        ("/readyz", "get"),
    ];
    for (path, method) in operations {
        assert!(
            doc["paths"][path][method].is_object(),
            "{method} {path} undocumented"
        );
    }
    let schemas = &doc["components"]["schemas"];
    for name in ["Beer", "BeerInput", "BeerPage", "ErrorBody", "FieldError"] {
        assert!(schemas[name].is_object(), "schema {name} missing");
    }
    assert_eq!(schemas["Beer"]["properties"]["abv"]["maximum"], 100);
}

async fn swagger_ui(app: &Router) {
    let reply = send(app, Method::GET, "/swagger-ui.html", None).await;
    assert!(reply.status.is_redirection(), "{}", reply.status);
    assert_eq!(reply.header("location"), "/swagger-ui/");
    let root = send(app, Method::GET, "/", None).await;
    assert_eq!(root.header("location"), "/swagger-ui/");

    let page = send(app, Method::GET, "/swagger-ui/", None).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.header("content-type").starts_with("text/html"));
    let html = page.text();
    assert!(html.contains(r#"<div id="swagger-ui">"#), "{html}");
    let assets = local_assets(&html);
    for needed in [
        "swagger-ui-bundle.js",
        "swagger-initializer.js",
        "swagger-ui.css",
    ] {
        assert!(
            assets.iter().any(|a| a == needed),
            "{needed} not referenced: {assets:?}"
        );
    }
    for asset in &assets {
        let reply = send(app, Method::GET, &format!("/swagger-ui/{asset}"), None).await;
        assert_eq!(reply.status, StatusCode::OK, "asset {asset}");
        assert!(!reply.body.is_empty(), "asset {asset} is empty");
        if asset.ends_with(".js") {
            assert!(
                reply.header("content-type").contains("javascript"),
                "{asset}"
            );
        }
    }
    let bundle = send(app, Method::GET, "/swagger-ui/swagger-ui-bundle.js", None).await;
    assert!(
        bundle.body.len() > 100_000,
        "the vendored bundle looks truncated"
    );
    let init = send(app, Method::GET, "/swagger-ui/swagger-initializer.js", None).await;
    assert!(init.text().contains("/v3/api-docs"), "{}", init.text());
}

/// The relative `src`/`href` targets of the Swagger UI page: the assets a browser loads next.
fn local_assets(html: &str) -> Vec<String> {
    let mut assets = Vec::new();
    for attr in ["src=\"", "href=\""] {
        for (i, _) in html.match_indices(attr) {
            let rest = &html[i + attr.len()..];
            let target = &rest[..rest.find('"').unwrap_or(0)];
            if !target.contains("://") && !target.is_empty() {
                assets.push(target.trim_start_matches("./").to_owned());
            }
        }
    }
    assets
}
