//! Authorization: what a user may do. Members of `system:masters` may do anything (upstream's
//! privileged-group authorizer); everyone else gets what RBAC grants. The middleware turns
//! each request into [`Attributes`] as upstream's RequestInfo does and refuses it with
//! upstream's 403 wording.

pub mod cache;
pub mod escalation;
pub mod rbac;

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::Method;

use crate::auth::UserInfo;
use crate::error::ApiError;
use crate::request::{Query, RequestInfo};
use crate::state::ApiState;

/// The group whose members may do anything.
pub const MASTERS: &str = "system:masters";

/// What a request asks to do, as upstream's `authorizer.Attributes`.
#[derive(Debug, Clone, Default)]
pub struct Attributes {
    /// Who asks.
    pub user: UserInfo,
    /// `get`, `list`, `watch`, `create`, ... (or the lower-case HTTP method for paths).
    pub verb: String,
    /// Whether this is a request on a resource (else on a path).
    pub resource_request: bool,
    /// The namespace; empty for cluster-scoped requests.
    pub namespace: String,
    /// The API group.
    pub api_group: String,
    /// The resource (plural).
    pub resource: String,
    /// The subresource, if any.
    pub subresource: String,
    /// The object's name, if the request names one.
    pub name: String,
    /// The request path (for non-resource requests).
    pub path: String,
}

impl Attributes {
    /// A request on a resource.
    pub fn resource(
        user: &UserInfo,
        verb: &str,
        group: &str,
        resource: &str,
        subresource: &str,
        namespace: &str,
        name: &str,
    ) -> Attributes {
        Attributes {
            user: user.clone(),
            verb: verb.to_string(),
            resource_request: true,
            namespace: namespace.to_string(),
            api_group: group.to_string(),
            resource: resource.to_string(),
            subresource: subresource.to_string(),
            name: name.to_string(),
            path: String::new(),
        }
    }

    /// A request on a path that is not a resource (`/api`, `/healthz`, ...).
    pub fn non_resource(user: &UserInfo, verb: &str, path: &str) -> Attributes {
        Attributes {
            user: user.clone(),
            verb: verb.to_string(),
            path: path.to_string(),
            ..Attributes::default()
        }
    }

    /// The attributes of an HTTP request, as upstream's RequestInfoFactory derives them.
    pub fn of_request(user: &UserInfo, method: &Method, path: &str, query: &Query) -> Attributes {
        let Some(info) = RequestInfo::parse(path) else {
            return Attributes::non_resource(user, &method.as_str().to_lowercase(), path);
        };
        let mut name = info.name.clone().unwrap_or_default();
        let verb = match (method.as_str(), name.is_empty()) {
            ("GET" | "HEAD", true) if query.flag("watch") => "watch",
            ("GET" | "HEAD", true) => "list",
            ("GET" | "HEAD", false) => "get",
            ("POST", _) => "create",
            ("PUT", _) => "update",
            ("PATCH", _) => "patch",
            ("DELETE", true) => "deletecollection",
            ("DELETE", false) => "delete",
            // A proxied request of another method (OPTIONS) is still a resource request, of
            // the empty verb only `*` grants, as upstream's RequestInfo reads it.
            (_, false) if info.subresource.as_deref() == Some("proxy") => "",
            (other, _) => return Attributes::non_resource(user, &other.to_lowercase(), path),
        };
        // A list or watch of one object by field selector is a request for that object.
        if matches!(verb, "list" | "watch")
            && let Some(selected) = query.get("fieldSelector").and_then(|s| {
                s.strip_prefix("metadata.name=")
                    .filter(|n| !n.contains(','))
                    .map(String::from)
            })
        {
            name = selected;
        }
        // A namespace's own requests are in that namespace.
        let namespace = match (&info.namespace, info.resource.as_str()) {
            (Some(ns), _) => ns.clone(),
            (None, "namespaces") => name.clone(),
            (None, _) => String::new(),
        };
        Attributes::resource(
            user,
            verb,
            &info.group,
            &info.resource,
            info.subresource.as_deref().unwrap_or_default(),
            &namespace,
            &name,
        )
    }

    /// `pods` or `pods/log`.
    pub fn full_resource(&self) -> String {
        if self.subresource.is_empty() {
            self.resource.clone()
        } else {
            format!("{}/{}", self.resource, self.subresource)
        }
    }

    /// Why the request is refused, in upstream's words.
    pub fn forbidden_message(&self) -> String {
        let user = &self.user.name;
        if !self.resource_request {
            return format!("User {user:?} cannot {} path {:?}", self.verb, self.path);
        }
        let resource = self.full_resource();
        if self.namespace.is_empty() {
            format!(
                "User {user:?} cannot {} resource {resource:?} in API group {:?} at the cluster scope",
                self.verb, self.api_group
            )
        } else {
            format!(
                "User {user:?} cannot {} resource {resource:?} in API group {:?} in the namespace {:?}",
                self.verb, self.api_group, self.namespace
            )
        }
    }
}

/// An authorizer's answer and the reason it gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Allowed, with what allowed it.
    Allow(String),
    /// Not allowed; the reason is empty when nothing granted the request.
    Deny(String),
}

impl Decision {
    /// Whether the request may go on.
    pub fn allowed(&self) -> bool {
        matches!(self, Decision::Allow(_))
    }

    /// The reason given.
    pub fn reason(&self) -> &str {
        match self {
            Decision::Allow(r) | Decision::Deny(r) => r,
        }
    }
}

/// Decides requests: privileged groups first, then RBAC over the cached policy.
pub struct Authorizer {
    /// The RBAC objects, kept current by a watch.
    pub policy: Arc<cache::PolicyCache>,
}

impl Authorizer {
    /// Whether `attrs` is allowed.
    pub fn authorize(&self, attrs: &Attributes) -> Decision {
        if attrs.user.in_group(MASTERS) {
            return Decision::Allow(String::new());
        }
        rbac::authorize(&self.policy.snapshot(), attrs)
    }
}

/// The 403 Status of a refused request, as upstream's authorization filter writes it.
pub fn forbidden(attrs: &Attributes, reason: &str) -> ApiError {
    let mut message = attrs.forbidden_message();
    if !reason.is_empty() {
        message = format!("{message}: {reason}");
    }
    if !attrs.resource_request {
        return ApiError::forbidden_path(format!("forbidden: {message}"));
    }
    ApiError::forbidden_resource(&attrs.api_group, &attrs.resource, &attrs.name, &message)
}

/// Middleware: refuses what the request's user may not do with a 403 Status.
pub async fn authorize(
    State(state): State<Arc<ApiState>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(user) = request.extensions().get::<UserInfo>() else {
        return ApiError::unauthorized().into_response();
    };
    let query = Query::parse(request.uri().query());
    let attrs = Attributes::of_request(user, request.method(), request.uri().path(), &query);
    match state.authz.authorize(&attrs) {
        Decision::Allow(_) => next.run(request).await,
        Decision::Deny(reason) => {
            tracing::debug!(user = %attrs.user.name, "forbidden: {}", attrs.forbidden_message());
            forbidden(&attrs, &reason).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(method: Method, path: &str) -> Attributes {
        Attributes::of_request(&UserInfo::default(), &method, path, &Query::parse(None))
    }

    #[test]
    fn proxy_requests_are_the_proxy_subresource_with_the_methods_verb() {
        let path = "/api/v1/namespaces/default/pods/web:8080/proxy/a/b";
        for (method, verb) in [
            (Method::GET, "get"),
            (Method::HEAD, "get"),
            (Method::POST, "create"),
            (Method::PUT, "update"),
            (Method::PATCH, "patch"),
            (Method::DELETE, "delete"),
            (Method::OPTIONS, ""),
        ] {
            let a = attrs(method.clone(), path);
            assert!(a.resource_request, "{method}");
            assert_eq!(
                (
                    a.verb.as_str(),
                    a.full_resource().as_str(),
                    a.namespace.as_str(),
                    a.name.as_str()
                ),
                (verb, "pods/proxy", "default", "web:8080"),
                "{method}"
            );
        }
        let a = attrs(
            Method::GET,
            "/api/v1/namespaces/ns/services/http:web:http/proxy/",
        );
        assert_eq!(
            (a.full_resource().as_str(), a.name.as_str()),
            ("services/proxy", "http:web:http")
        );
        // Elsewhere, an OPTIONS request stays a request on a path.
        assert!(!attrs(Method::OPTIONS, "/api/v1/namespaces/ns/pods/web").resource_request);
    }
}
