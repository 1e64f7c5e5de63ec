//! certificates.k8s.io's controllers, as upstream's csrapproving and csrsigning: kubelet
//! client requests are approved when a SubjectAccessReview says the requester may ask for
//! them, and approved requests to the built-in signers get a certificate from the cluster
//! CA, or a `Failed` condition saying why the signer refused.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use keg_apimachinery::csr::{self, Request};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;
use tokio::sync::watch;

use crate::cache;

/// Signs a verified request with the cluster CA: the request, its usages, and the validity
/// window; the certificate PEM. Given by the process that holds the CA key.
pub type Sign = Arc<
    dyn Fn(&Request, &[String], jiff::Timestamp, jiff::Timestamp) -> anyhow::Result<String>
        + Send
        + Sync,
>;

/// Client certificates the API server accepts.
const API_SERVER_CLIENT: &str = "kubernetes.io/kube-apiserver-client";
/// Kubelets' client certificates.
const KUBELET_CLIENT: &str = "kubernetes.io/kube-apiserver-client-kubelet";
/// Kubelets' serving certificates.
const KUBELET_SERVING: &str = "kubernetes.io/kubelet-serving";
/// Upstream's `--cluster-signing-duration` default: the longest a certificate lives.
const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);
/// How far back a certificate's validity starts, for clocks a little behind (upstream's).
const BACKDATE: Duration = Duration::from_secs(5 * 60);
/// The manager named in the controllers' writes.
const MANAGER: &str = "certificate-controller";

/// Runs the approver and the signer until the process ends.
pub async fn run(client: Client, sign: Sign) {
    let changes = Arc::new(watch::Sender::new(0u64));
    let mut changed = changes.subscribe();
    let api: Api<CertificateSigningRequest> = Api::all(client.clone());
    let requests = cache::follow(api.clone(), changes);
    if requests.wait_until_ready().await.is_err() {
        return;
    }
    loop {
        for request in requests.state() {
            let name = request.name_any();
            if let Err(e) = reconcile(&client, &api, &request, &sign).await {
                // A conflict means it changed meanwhile; that change wakes this loop.
                tracing::debug!("certificatesigningrequest {name}: {e:#}");
            }
        }
        if changed.changed().await.is_err() {
            return;
        }
    }
}

/// Whether the request has a condition of type `kind`.
fn has_condition(request: &CertificateSigningRequest, kind: &str) -> bool {
    request
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == kind))
}

async fn reconcile(
    client: &Client,
    api: &Api<CertificateSigningRequest>,
    request: &CertificateSigningRequest,
    sign: &Sign,
) -> anyhow::Result<()> {
    let signer = request.spec.signer_name.as_str();
    if !matches!(signer, API_SERVER_CLIENT | KUBELET_CLIENT | KUBELET_SERVING)
        || has_condition(request, "Denied")
        || has_condition(request, "Failed")
    {
        return Ok(());
    }
    let issued = request
        .status
        .as_ref()
        .and_then(|s| s.certificate.as_ref())
        .is_some_and(|c| !c.0.is_empty());
    if issued {
        return Ok(());
    }
    let parsed = csr::parse(&request.spec.request.0);
    if !has_condition(request, "Approved") {
        if signer == KUBELET_CLIENT
            && let Ok(parsed) = &parsed
        {
            approve_kubelet_client(client, api, request, parsed).await?;
        }
        return Ok(());
    }
    let usages = request.spec.usages.clone().unwrap_or_default();
    let checked = parsed.and_then(|parsed| {
        signer_allows(signer, &parsed, &usages)?;
        Ok(parsed)
    });
    let signed = checked
        .map_err(|why| ("SignerValidationFailure", why))
        .and_then(|parsed| {
            let (not_before, not_after) = validity(request.spec.expiration_seconds);
            sign(&parsed, &usages, not_before, not_after)
                .map_err(|e| ("SigningFailure", format!("{e:#}")))
        });
    let status = match signed {
        Ok(pem) => json!({"certificate": base64(pem.as_bytes())}),
        Err((reason, why)) => json!({"conditions": conditions_with(request, json!({
            "type": "Failed", "status": "True", "reason": reason,
            "message": why, "lastUpdateTime": jiff::Timestamp::now().to_string(),
        }))}),
    };
    let patch =
        json!({"metadata": {"resourceVersion": request.resource_version()}, "status": status});
    let params = PatchParams {
        field_manager: Some(MANAGER.into()),
        ..PatchParams::default()
    };
    api.patch_status(&request.name_any(), &params, &Patch::Merge(&patch))
        .await?;
    Ok(())
}

/// The request's conditions with `added` after them.
fn conditions_with(
    request: &CertificateSigningRequest,
    added: serde_json::Value,
) -> Vec<serde_json::Value> {
    let mut conditions: Vec<serde_json::Value> = request
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|c| serde_json::to_value(c).ok())
        .collect();
    conditions.push(added);
    conditions
}

fn base64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The certificate's validity: from a little before now, for the requested duration (at
/// most a year, as upstream's default signing duration).
fn validity(expiration_seconds: Option<i32>) -> (jiff::Timestamp, jiff::Timestamp) {
    let requested = expiration_seconds
        .and_then(|s| u64::try_from(s).ok())
        .map_or(MAX_DURATION, Duration::from_secs)
        .min(MAX_DURATION);
    let now = jiff::Timestamp::now();
    let not_before = now - jiff::SignedDuration::try_from(BACKDATE).unwrap_or_default();
    let not_after = now + jiff::SignedDuration::try_from(requested).unwrap_or_default();
    (not_before, not_after)
}

/// What each built-in signer accepts, in upstream's words when it refuses.
fn signer_allows(signer: &str, request: &Request, usages: &[String]) -> Result<(), String> {
    match signer {
        API_SERVER_CLIENT => usages_within(
            usages,
            &["digital signature", "key encipherment"],
            "client auth",
            "client certificate",
        ),
        KUBELET_CLIENT => {
            node_subject(request)?;
            no_names(request, &["DNS", "Email", "IP", "URI"])?;
            usages_match(
                usages,
                &["client auth", "digital signature", "key encipherment"],
                "client auth",
            )
        }
        _ => {
            node_subject(request)?;
            no_names(request, &["Email", "URI"])?;
            if request.dns_names.is_empty() && request.ip_addresses.is_empty() {
                return Err("DNS or IP subjectAltName is required".into());
            }
            usages_match(
                usages,
                &["digital signature", "key encipherment", "server auth"],
                "server auth",
            )
        }
    }
}

/// Upstream's `validAPIServerClientUsages`: only the optional usages and the required one.
fn usages_within(
    usages: &[String],
    optional: &[&str],
    required: &str,
    what: &str,
) -> Result<(), String> {
    for usage in usages {
        if usage != required && !optional.contains(&usage.as_str()) {
            return Err(format!("invalid usage for {what}: {usage}"));
        }
    }
    if !usages.iter().any(|u| u == required) {
        return Err(format!("missing required usage for {what}: {required}"));
    }
    Ok(())
}

/// A kubelet certificate's usages: the required one, plus digital signature and (for RSA
/// keys, which upstream does not insist on) key encipherment, nothing else.
fn usages_match(usages: &[String], allowed: &[&str], required: &str) -> Result<(), String> {
    let fits = usages.iter().all(|u| allowed.contains(&u.as_str()))
        && usages.iter().any(|u| u == required);
    if fits {
        Ok(())
    } else {
        Err(format!("usages did not match [{}]", allowed.join(" ")))
    }
}

/// A node's subject: organization `system:nodes` only, common name `system:node:NAME`.
fn node_subject(request: &Request) -> Result<(), String> {
    if request.organizations() != ["system:nodes"] {
        return Err("subject organization is not system:nodes".into());
    }
    if !request.common_name().starts_with("system:node:") {
        return Err("subject common name does not begin with system:node:".into());
    }
    Ok(())
}

/// Refuses the kinds of alternative names a certificate may not carry.
fn no_names(request: &Request, kinds: &[&str]) -> Result<(), String> {
    for kind in kinds {
        let present = match *kind {
            "DNS" => !request.dns_names.is_empty(),
            "Email" => !request.emails.is_empty(),
            "IP" => !request.ip_addresses.is_empty(),
            _ => !request.uris.is_empty(),
        };
        if present {
            return Err(format!("{kind} subjectAltNames are not allowed"));
        }
    }
    Ok(())
}

/// Approves a kubelet client request when a SubjectAccessReview allows its requester to
/// create `certificatesigningrequests/selfnodeclient` (renewing its own certificate) or
/// `certificatesigningrequests/nodeclient` (any node's, as a bootstrap token may).
async fn approve_kubelet_client(
    client: &Client,
    api: &Api<CertificateSigningRequest>,
    request: &CertificateSigningRequest,
    parsed: &Request,
) -> anyhow::Result<()> {
    let usages = request.spec.usages.clone().unwrap_or_default();
    if signer_allows(KUBELET_CLIENT, parsed, &usages).is_err() {
        return Ok(()); // not a node client certificate: left to a person
    }
    let own = request.spec.username.as_deref() == Some(parsed.common_name());
    let mut recognized = vec![(
        "nodeclient",
        "Auto approving kubelet client certificate after SubjectAccessReview.",
    )];
    if own {
        recognized.insert(
            0,
            (
                "selfnodeclient",
                "Auto approving self kubelet client certificate after SubjectAccessReview.",
            ),
        );
    }
    for (subresource, message) in recognized {
        if !may_create(client, request, subresource).await? {
            continue;
        }
        let condition = json!({
            "type": "Approved", "status": "True", "reason": "AutoApproved", "message": message,
            "lastUpdateTime": jiff::Timestamp::now().to_string(),
        });
        let patch = json!({
            "metadata": {"resourceVersion": request.resource_version()},
            "status": {"conditions": conditions_with(request, condition)},
        });
        let params = PatchParams {
            field_manager: Some(MANAGER.into()),
            ..PatchParams::default()
        };
        api.patch_subresource(
            "approval",
            &request.name_any(),
            &params,
            &Patch::Merge(&patch),
        )
        .await?;
        return Ok(());
    }
    Ok(())
}

/// Whether the requester may create `certificatesigningrequests/SUBRESOURCE`.
async fn may_create(
    client: &Client,
    request: &CertificateSigningRequest,
    subresource: &str,
) -> anyhow::Result<bool> {
    let spec = &request.spec;
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: spec.username.clone(),
            uid: spec.uid.clone(),
            groups: spec.groups.clone(),
            extra: spec.extra.clone(),
            resource_attributes: Some(ResourceAttributes {
                group: Some("certificates.k8s.io".into()),
                resource: Some("certificatesigningrequests".into()),
                subresource: Some(subresource.into()),
                verb: Some("create".into()),
                ..ResourceAttributes::default()
            }),
            ..SubjectAccessReviewSpec::default()
        },
        ..SubjectAccessReview::default()
    };
    let reviews: Api<SubjectAccessReview> = Api::all(client.clone());
    let answer = reviews.create(&PostParams::default(), &review).await?;
    Ok(answer.status.is_some_and(|s| s.allowed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(cn: &str, orgs: &[&str], dns: &[&str]) -> Request {
        let mut subject = vec![("CN", cn.to_owned())];
        subject.extend(orgs.iter().map(|o| ("O", (*o).to_owned())));
        Request {
            subject,
            dns_names: dns.iter().map(|d| (*d).to_owned()).collect(),
            ip_addresses: Vec::new(),
            emails: Vec::new(),
            uris: Vec::new(),
            public_key: Vec::new(),
        }
    }

    fn usages(u: &[&str]) -> Vec<String> {
        u.iter().map(|u| (*u).to_owned()).collect()
    }

    #[test]
    fn each_signer_refuses_what_upstreams_refuses() {
        let alice = request("alice", &["dev"], &[]);
        assert_eq!(
            signer_allows(
                API_SERVER_CLIENT,
                &alice,
                &usages(&["client auth", "digital signature"])
            ),
            Ok(())
        );
        assert_eq!(
            signer_allows(
                API_SERVER_CLIENT,
                &alice,
                &usages(&["client auth", "server auth"])
            ),
            Err("invalid usage for client certificate: server auth".into())
        );
        assert_eq!(
            signer_allows(API_SERVER_CLIENT, &alice, &usages(&["digital signature"])),
            Err("missing required usage for client certificate: client auth".into())
        );
        let node = request("system:node:n1", &["system:nodes"], &[]);
        let client_usages = usages(&["digital signature", "key encipherment", "client auth"]);
        assert_eq!(signer_allows(KUBELET_CLIENT, &node, &client_usages), Ok(()));
        assert_eq!(
            signer_allows(KUBELET_CLIENT, &alice, &client_usages),
            Err("subject organization is not system:nodes".into())
        );
        let named = request("system:node:n1", &["system:nodes"], &["n1"]);
        assert_eq!(
            signer_allows(KUBELET_CLIENT, &named, &client_usages),
            Err("DNS subjectAltNames are not allowed".into())
        );
        let serving = usages(&["digital signature", "key encipherment", "server auth"]);
        assert_eq!(signer_allows(KUBELET_SERVING, &named, &serving), Ok(()));
        assert_eq!(
            signer_allows(KUBELET_SERVING, &node, &serving),
            Err("DNS or IP subjectAltName is required".into())
        );
    }

    #[test]
    fn certificates_live_as_long_as_asked_up_to_a_year() {
        let (from, to) = validity(Some(3600));
        assert_eq!((to - from).get_seconds(), 3600 + 300);
        let (from, to) = validity(Some(i32::MAX));
        assert_eq!((to - from).get_seconds(), 365 * 24 * 3600 + 300);
        let (from, to) = validity(None);
        assert_eq!((to - from).get_seconds(), 365 * 24 * 3600 + 300);
    }
}
