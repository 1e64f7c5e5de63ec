//! `/metrics`: Prometheus text, behind the same authentication as the API.
//!
//! - `apiserver_request_duration_seconds` (histogram) and `apiserver_request_total`, by verb,
//!   group, version, resource, subresource and scope, as upstream labels them. WATCH
//!   requests are counted but not timed: they last as long as the client keeps them (upstream's
//!   latency SLO leaves them out for the same reason).
//! - `scheduler_pod_scheduling_duration_seconds` (from a pod's creation to its binding) and
//!   `keg_pods_started_total`, seen in the store's stream of pod changes ([`pods`]).
//! - keg's cost metrics, computed at each scrape from the `UsageRecord`s in the store
//!   ([`usage`]), so they survive restarts and agree with `keg cost` to the cent.

pub mod exposition;
pub mod pods;
pub mod resources;
pub mod usage;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use self::exposition::{Exposition, Histogram, Labels};
use crate::request::{Query, RequestInfo};
use crate::state::ApiState;

/// Upstream's buckets for apiserver_request_duration_seconds.
const REQUEST_BUCKETS: &[f64] = &[
    0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0,
    10.0, 15.0, 20.0, 30.0, 45.0, 60.0,
];

/// The server's own measurements (the cost metrics are read from the store instead).
#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<Labels, Histogram>>,
    request_totals: Mutex<BTreeMap<Labels, f64>>,
    /// Pod scheduling and starts.
    pub pods: pods::PodMetrics,
}

impl Metrics {
    /// Counts a served resource request, and times it unless it is a watch.
    pub fn record_request(&self, labels: Labels, code: u16, seconds: Option<f64>) {
        if let Some(seconds) = seconds {
            self.requests
                .lock()
                .expect("not poisoned")
                .entry(labels.clone())
                .or_insert_with(|| Histogram::new(REQUEST_BUCKETS))
                .observe(seconds);
        }
        let mut with_code = labels;
        with_code.push(("code", code.to_string()));
        *self
            .request_totals
            .lock()
            .expect("not poisoned")
            .entry(with_code)
            .or_default() += 1.0;
    }

    fn write(&self, out: &mut Exposition) {
        out.histograms(
            "apiserver_request_duration_seconds",
            "Response latency distribution in seconds for each verb, group, version, resource, \
             subresource and scope.",
            &self.requests.lock().expect("not poisoned"),
        );
        out.values(
            "apiserver_request_total",
            "counter",
            "Counter of apiserver requests broken out for each verb, group, version, resource, \
             subresource, scope and HTTP response code.",
            &self.request_totals.lock().expect("not poisoned"),
        );
        self.pods.write(out);
    }
}

/// Upstream's verb for a request: GET becomes LIST or WATCH without a name, DELETE becomes
/// DELETECOLLECTION, a server-side apply PATCH is APPLY.
pub fn verb(method: &http::Method, info: &RequestInfo, query: &Query, apply: bool) -> String {
    let named = info.name.is_some();
    match method.as_str() {
        "GET" if !named && query.flag("watch") => "WATCH".into(),
        "GET" if !named => "LIST".into(),
        "DELETE" if !named => "DELETECOLLECTION".into(),
        "PATCH" if apply => "APPLY".into(),
        other => other.to_owned(),
    }
}

/// Middleware: counts and times every resource request.
pub async fn track(State(state): State<Arc<ApiState>>, request: Request, next: Next) -> Response {
    let Some(info) = RequestInfo::parse(request.uri().path()) else {
        return next.run(request).await;
    };
    let query = Query::parse(request.uri().query());
    let apply = request
        .headers()
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/apply-patch"));
    let verb = verb(request.method(), &info, &query, apply);
    let scope = if info.name.is_some() {
        "resource"
    } else if info.namespace.is_some() {
        "namespace"
    } else {
        "cluster"
    };
    let labels: Labels = vec![
        ("verb", verb.clone()),
        ("group", info.group),
        ("version", info.version),
        ("resource", info.resource),
        ("subresource", info.subresource.unwrap_or_default()),
        ("scope", scope.to_owned()),
    ];
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    let seconds = (verb != "WATCH").then(|| started.elapsed().as_secs_f64());
    state
        .metrics
        .record_request(labels, response.status().as_u16(), seconds);
    response
}

/// `GET /metrics`.
pub async fn serve(State(state): State<Arc<ApiState>>) -> Response {
    let mut out = Exposition::default();
    state.metrics.write(&mut out);
    let written = match usage::write(&state, jiff::Timestamp::now(), &mut out).await {
        Ok(()) => resources::write(&state, &mut out).await,
        Err(e) => Err(e),
    };
    match written {
        Ok(()) => (
            [(
                http::header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            out.finish(),
        )
            .into_response(),
        Err(e) => e.into_response(),
    }
}
