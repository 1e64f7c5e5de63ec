//! Authentication: who a request is, from a static token (the admin's, keg's components'),
//! a service-account token or a client certificate, then impersonation when asked for. Only
//! health and version endpoints answer without credentials. The [`UserInfo`] goes into the
//! request's extensions, where authorization, admission and the review APIs read it.

mod impersonate;
pub mod serviceaccount;
mod tokens;
pub mod x509;

use std::path::Path;
use std::sync::Arc;

use anyhow::Result;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::state::ApiState;

pub use serviceaccount::ServiceAccountTokens;
pub use tokens::Tokens;

/// The group of every authenticated user.
pub const AUTHENTICATED: &str = "system:authenticated";

/// Paths that answer without credentials (as `system:anonymous`), as upstream's
/// system:public-info-viewer allows.
const PUBLIC_PATHS: [&str; 4] = ["/healthz", "/livez", "/readyz", "/version"];

/// Who made a request, as upstream's `user.Info`: name, uid, groups and extra.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserInfo {
    /// The user name, e.g. `kubernetes-admin` or `system:serviceaccount:NS:NAME`.
    pub name: String,
    /// A unique id, empty when the authenticator has none.
    pub uid: String,
    /// Groups, `system:authenticated` included for every authenticated user.
    pub groups: Vec<String>,
    /// Extra attributes (e.g. `authentication.kubernetes.io/pod-name` for bound tokens).
    pub extra: std::collections::BTreeMap<String, Vec<String>>,
}

impl UserInfo {
    /// The API server itself, for the writes it makes on its own (bootstrap, clean-up).
    pub fn apiserver() -> &'static UserInfo {
        static APISERVER: std::sync::OnceLock<UserInfo> = std::sync::OnceLock::new();
        APISERVER.get_or_init(|| UserInfo::component("system:apiserver", &["system:masters"]))
    }

    /// A service account's user: `system:serviceaccount:NS:NAME` in its groups.
    pub fn service_account(ns: &str, name: &str) -> UserInfo {
        UserInfo {
            name: format!("system:serviceaccount:{ns}:{name}"),
            groups: vec![
                "system:serviceaccounts".to_string(),
                format!("system:serviceaccounts:{ns}"),
                AUTHENTICATED.to_string(),
            ],
            ..UserInfo::default()
        }
    }

    /// A user of keg's own (controllers, scheduler, node agent) in the given groups.
    pub fn component(name: &str, groups: &[&str]) -> UserInfo {
        let mut all: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
        all.push(AUTHENTICATED.to_string());
        UserInfo {
            name: name.to_string(),
            groups: all,
            ..UserInfo::default()
        }
    }

    /// The user of requests without credentials.
    pub fn anonymous() -> UserInfo {
        UserInfo {
            name: "system:anonymous".to_string(),
            groups: vec!["system:unauthenticated".to_string()],
            ..UserInfo::default()
        }
    }

    /// Whether the user is in a group.
    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }

    /// The cluster admin that the admin token names: a member of `system:masters`.
    pub fn admin() -> UserInfo {
        UserInfo {
            name: "kubernetes-admin".to_string(),
            groups: vec![
                "system:masters".to_string(),
                "system:authenticated".to_string(),
            ],
            ..UserInfo::default()
        }
    }
}

/// What tells who a request is.
pub struct Authenticator {
    /// Static tokens.
    pub tokens: Tokens,
    /// The service-account token issuer.
    pub service_accounts: ServiceAccountTokens,
}

impl Authenticator {
    /// Loads (or creates) the admin token and the service-account signing key in `dir`.
    pub fn load_or_create(dir: &Path) -> Result<Authenticator> {
        Ok(Authenticator {
            tokens: Tokens::load_or_create(dir)?,
            service_accounts: ServiceAccountTokens::load_or_create(dir)?,
        })
    }
}

/// Seconds since the epoch.
pub fn now_seconds() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// The user a bearer token names and the audiences it is valid for, among `audiences` (none:
/// the API server's own), or `None` when it is not valid. For requests and TokenReview alike.
pub async fn authenticate_token(
    state: &ApiState,
    token: &str,
    audiences: &[String],
) -> Option<(UserInfo, Vec<String>)> {
    if let Some(user) = state.auth.tokens.user(token) {
        // Static tokens are for the API server's own audience.
        let api = serviceaccount::ISSUER.to_string();
        return (audiences.is_empty() || audiences.contains(&api)).then(|| (user, vec![api]));
    }
    if serviceaccount::looks_like_jwt(token) {
        return serviceaccount::authenticate(state, token, audiences, now_seconds()).await;
    }
    None
}

/// Middleware: names the request's user (or refuses it with a 401 Status), then applies
/// impersonation headers the user may use.
pub async fn authenticate(
    State(state): State<Arc<ApiState>>,
    mut request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path();
    let public = PUBLIC_PATHS.iter().any(|p| {
        path.strip_prefix(p)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    });
    let bearer = request
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| t.trim().to_string());
    let user = match bearer {
        // An invalid token fails the request even where anonymous access would do, as
        // upstream's authenticator chain fails on error before trying anonymous.
        Some(token) => match authenticate_token(&state, &token, &[]).await {
            Some((user, _)) => Some(user),
            None => return ApiError::unauthorized().into_response(),
        },
        None => request
            .extensions()
            .get::<x509::ClientCertificateUser>()
            .map(|c| c.0.clone()),
    };
    let user = match user {
        Some(user) => user,
        // As upstream's anonymous authenticator, for the paths system:public-info-viewer
        // opens to everyone; anything else without valid credentials is a 401.
        None if public => UserInfo::anonymous(),
        None => return ApiError::unauthorized().into_response(),
    };
    let user = match impersonate::apply(&state, user, request.headers()).await {
        Ok(user) => user,
        Err(e) => return e.into_response(),
    };
    request.extensions_mut().insert(user);
    next.run(request).await
}
