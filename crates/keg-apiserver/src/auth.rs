//! Authentication: who a request is. Tokens live in the data dir; only health and version
//! endpoints answer without credentials. The authenticated [`UserInfo`] goes into the request's
//! extensions, where authorization, admission and the review APIs read it.

use std::fs;
use std::path::Path;

use anyhow::{Context, Result};
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rand::Rng;

use crate::error::ApiError;

/// Paths that answer without credentials, as upstream's system:public-info-viewer allows.
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

/// The accepted bearer tokens.
#[derive(Clone)]
pub struct Tokens {
    admin: String,
}

impl Tokens {
    /// Loads the admin token from `dir/admin.token`, creating a random one the first time.
    pub fn load_or_create(dir: &Path) -> Result<Tokens> {
        let path = dir.join("admin.token");
        if let Ok(token) = fs::read_to_string(&path) {
            let token = token.trim().to_string();
            if !token.is_empty() {
                return Ok(Tokens { admin: token });
            }
        }
        let bytes: [u8; 32] = rand::rng().random();
        let token = hex::encode(bytes);
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("writing {}", path.display()))?;
        file.write_all(token.as_bytes())?;
        file.sync_all()?;
        Ok(Tokens { admin: token })
    }

    /// The admin token.
    pub fn admin(&self) -> &str {
        &self.admin
    }

    /// Whether a presented token is valid (compared in constant time).
    pub fn accepts(&self, presented: &str) -> bool {
        let a = presented.as_bytes();
        let b = self.admin.as_bytes();
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

/// Middleware: refuses requests without a valid bearer token with a 401 Status.
pub async fn authenticate(
    tokens: axum::extract::State<Tokens>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path();
    if PUBLIC_PATHS
        .iter()
        .any(|p| path == *p || path.starts_with(&format!("{p}/")))
    {
        return next.run(request).await;
    }
    let presented = request
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match presented {
        Some(token) if tokens.accepts(token) => {
            let mut request = request;
            request.extensions_mut().insert(UserInfo::admin());
            next.run(request).await
        }
        _ => ApiError::unauthorized().into_response(),
    }
}
