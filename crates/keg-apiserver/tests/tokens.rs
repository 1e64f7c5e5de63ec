//! Service-account tokens the API server refuses, as a client holding one sees it: signed by
//! the cluster's key but expired, not yet valid, for another audience, or naming an account
//! that was deleted and made again (another uid) are all 401; the same token within its
//! lifetime names the account. Tokens are minted here with the data dir's key, since
//! TokenRequest does not issue tokens shorter than ten minutes.

mod common;

use axum::Router;
use axum::body::Body;
use common::TestApi;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use keg_apiserver::auth::now_seconds;
use keg_apiserver::auth::serviceaccount::{Claims, ISSUER, Private, Ref};
use serde_json::Value;
use tower::ServiceExt;

async fn call(
    router: &Router,
    method: &str,
    path: &str,
    token: &str,
    body: &str,
) -> (StatusCode, Value) {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("Authorization", format!("Bearer {token}"))
        .header("Content-Type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

const WHOAMI: &str = r#"{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}"#;

#[tokio::test]
async fn invalid_service_account_tokens_are_401() {
    let api = TestApi::open().await;
    let server = &api.server;
    let router = server.router();
    let admin = server.tokens.admin().to_owned();
    let (_, account) = call(
        &router,
        "GET",
        "/api/v1/namespaces/default/serviceaccounts/default",
        &admin,
        "",
    )
    .await;
    let uid = account["metadata"]["uid"].as_str().unwrap().to_string();
    let now = now_seconds();
    let claims = |exp: i64, nbf: i64, aud: &str, uid: &str| Claims {
        iss: ISSUER.to_string(),
        sub: "system:serviceaccount:default:default".to_string(),
        aud: vec![aud.to_string()],
        exp: Some(exp),
        iat: Some(nbf),
        nbf: Some(nbf),
        kubernetes: Some(Private {
            namespace: "default".to_string(),
            serviceaccount: Ref {
                name: "default".to_string(),
                uid: uid.to_string(),
            },
            ..Private::default()
        }),
        ..Claims::default()
    };
    let sign = |c: Claims| server.state.auth.service_accounts.sign(&c);

    let valid = sign(claims(now + 600, now - 1, ISSUER, &uid));
    let (status, review) = call(
        &router,
        "POST",
        "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        &valid,
        WHOAMI,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{review}");
    assert_eq!(
        review["status"]["userInfo"]["username"],
        "system:serviceaccount:default:default"
    );

    for (what, token) in [
        ("expired", sign(claims(now - 60, now - 3600, ISSUER, &uid))),
        (
            "not yet valid",
            sign(claims(now + 3600, now + 600, ISSUER, &uid)),
        ),
        (
            "for another audience",
            sign(claims(
                now + 600,
                now - 1,
                "https://vault.example.com",
                &uid,
            )),
        ),
        (
            "for an account of another uid",
            sign(claims(now + 600, now - 1, ISSUER, "0000-gone")),
        ),
    ] {
        let (status, body) = call(
            &router,
            "POST",
            "/apis/authentication.k8s.io/v1/selfsubjectreviews",
            &token,
            WHOAMI,
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {body}");
        assert_eq!(body["reason"], "Unauthorized", "{what}: {body}");
    }
}
