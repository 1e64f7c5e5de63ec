//! Upstream's three certificate admission plugins in one: CertificateApproval (approving or
//! denying a request needs `approve` on its signer), CertificateSigning (issuing its
//! certificate needs `sign` on its signer) and CertificateSubjectRestriction (no
//! `kube-apiserver-client` certificate for the `system:masters` group).

use async_trait::async_trait;
use base64::Engine;
use serde_json::Value;

use super::{AdmissionPlugin, Attributes, Operation};
use crate::authz::Attributes as Access;
use crate::error::{ApiError, Result};
use crate::objects::name;
use crate::state::ApiState;

const GROUP: &str = "certificates.k8s.io";
const PLURAL: &str = "certificatesigningrequests";
/// The signer whose certificates the API server accepts as client certificates.
pub const API_SERVER_CLIENT: &str = "kubernetes.io/kube-apiserver-client";

/// The certificates.k8s.io admission checks.
pub struct Certificates;

#[async_trait]
impl AdmissionPlugin for Certificates {
    async fn admit(&self, state: &ApiState, attrs: &mut Attributes<'_>) -> Result<()> {
        let res = attrs.resource;
        if res.group != GROUP || res.plural != PLURAL {
            return Ok(());
        }
        let signer = attrs.object["spec"]["signerName"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let refuse =
            |why: String| Err(ApiError::forbidden(GROUP, PLURAL, name(attrs.object), &why));
        match (attrs.operation, attrs.subresource) {
            (Operation::Create, None) if signer == API_SERVER_CLIENT => {
                if asks_for_masters(&attrs.object["spec"]["request"]) {
                    return refuse(format!(
                        "use of {signer} signer with system:masters group is not allowed"
                    ));
                }
                Ok(())
            }
            (Operation::Update, Some("approval")) => {
                if !may(state, attrs, "approve", &signer) {
                    return refuse(format!(
                        "user not permitted to approve requests with signerName {signer:?}"
                    ));
                }
                Ok(())
            }
            (Operation::Update, Some("status")) => {
                let certificate = |o: &Value| o["status"]["certificate"].clone();
                let changed = attrs
                    .old
                    .is_none_or(|old| certificate(old) != certificate(attrs.object));
                if changed && !may(state, attrs, "sign", &signer) {
                    return refuse(format!(
                        "user not permitted to sign requests with signerName {signer:?}"
                    ));
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

/// Whether the writer may `verb` the signer: by its name, or by `DOMAIN/*`, as upstream's
/// `IsAuthorizedForSignerName`.
fn may(state: &ApiState, attrs: &Attributes<'_>, verb: &str, signer: &str) -> bool {
    let wildcard = signer
        .split_once('/')
        .map(|(domain, _)| format!("{domain}/*"));
    std::iter::once(signer.to_owned())
        .chain(wildcard)
        .any(|name| {
            state
                .authz
                .authorize(&Access::resource(
                    attrs.user, verb, GROUP, "signers", "", "", &name,
                ))
                .allowed()
        })
}

/// Whether a request's subject names the `system:masters` organization (an unparseable one
/// is left to validation).
fn asks_for_masters(request: &Value) -> bool {
    base64::engine::general_purpose::STANDARD
        .decode(request.as_str().unwrap_or_default())
        .ok()
        .and_then(|pem| keg_apimachinery::csr::parse(&pem).ok())
        .is_some_and(|r| r.organizations().contains(&crate::authz::MASTERS))
}
