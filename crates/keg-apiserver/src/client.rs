//! A kube-rs client that calls the router in-process: controllers, schedulers and node agents
//! in the keg process use it, so they are API clients without a socket.

use axum::Router;
use tower::ServiceExt;

/// A `kube::Client` whose requests go straight to `router`, authenticated with `token`.
pub fn in_process_client(router: Router, token: &str) -> kube::Client {
    let authorization: http::HeaderValue = format!("Bearer {token}")
        .parse()
        .expect("token is a valid header value");
    let service = router.map_request(move |request: http::Request<kube::client::Body>| {
        let (mut parts, body) = request.into_parts();
        parts
            .headers
            .insert(http::header::AUTHORIZATION, authorization.clone());
        http::Request::from_parts(parts, axum::body::Body::new(body))
    });
    kube::Client::new(service, "default")
}
