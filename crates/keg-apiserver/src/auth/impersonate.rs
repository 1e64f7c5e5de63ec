//! Impersonation (`kubectl --as`, `--as-group`): a user allowed the `impersonate` verb on
//! users, groups, service accounts and uids acts as another, as upstream's filter does.

use http::HeaderMap;

use super::{AUTHENTICATED, UserInfo};
use crate::authz::{Attributes, forbidden};
use crate::error::{ApiError, Result};
use crate::state::ApiState;

const USER: &str = "impersonate-user";
const GROUP: &str = "impersonate-group";
const UID: &str = "impersonate-uid";
const EXTRA: &str = "impersonate-extra-";

fn values<'a>(headers: &'a HeaderMap, name: &str) -> Vec<&'a str> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect()
}

/// The user a request acts as: `user` itself, or whom its impersonation headers name.
pub async fn apply(state: &ApiState, user: UserInfo, headers: &HeaderMap) -> Result<UserInfo> {
    let Some(target) = values(headers, USER).first().map(|s| s.to_string()) else {
        let asks_more = !values(headers, GROUP).is_empty() || !values(headers, UID).is_empty();
        if asks_more {
            return Err(ApiError::internal(
                "requested [Impersonate-Group or Impersonate-Uid] without impersonating a user",
            ));
        }
        return Ok(user);
    };
    let mut checks = Vec::new();
    let mut groups: Vec<String> = Vec::new();
    let mut impersonated = match target.strip_prefix("system:serviceaccount:") {
        Some(rest) => {
            let (ns, name) = rest.split_once(':').unwrap_or(("", rest));
            checks.push(Attributes::resource(
                &user,
                "impersonate",
                "",
                "serviceaccounts",
                "",
                ns,
                name,
            ));
            UserInfo::service_account(ns, name)
        }
        None => {
            checks.push(Attributes::resource(
                &user,
                "impersonate",
                "",
                "users",
                "",
                "",
                &target,
            ));
            UserInfo {
                name: target.clone(),
                ..UserInfo::default()
            }
        }
    };
    for group in values(headers, GROUP) {
        checks.push(Attributes::resource(
            &user,
            "impersonate",
            "",
            "groups",
            "",
            "",
            group,
        ));
        groups.push(group.to_string());
    }
    if let Some(uid) = values(headers, UID).first() {
        checks.push(Attributes::resource(
            &user,
            "impersonate",
            "authentication.k8s.io",
            "uids",
            "",
            "",
            uid,
        ));
        impersonated.uid = uid.to_string();
    }
    for (name, value) in headers {
        if let Some(key) = name.as_str().strip_prefix(EXTRA)
            && let Ok(value) = value.to_str()
        {
            checks.push(Attributes::resource(
                &user,
                "impersonate",
                "authentication.k8s.io",
                "userextras",
                key,
                "",
                value,
            ));
            impersonated
                .extra
                .entry(key.to_string())
                .or_default()
                .push(value.to_string());
        }
    }
    for check in &checks {
        if !state.authz.authorize(check).allowed() {
            return Err(forbidden(check, ""));
        }
    }
    // Groups asked for replace the impersonated user's own (a service account has some).
    if !groups.is_empty() {
        impersonated.groups = groups;
    }
    if impersonated.name != "system:anonymous" && !impersonated.in_group(AUTHENTICATED) {
        impersonated.groups.push(AUTHENTICATED.to_string());
    }
    Ok(impersonated)
}
