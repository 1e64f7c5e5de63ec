//! CertificateSigningRequests as upstream's registry keeps them: the requester recorded at
//! create, what each of the main resource, `status` and `approval` may change, and
//! validation with upstream's field paths and messages.

use base64::Engine;
use keg_apimachinery::validation as v;
use serde_json::{Value, json};

use crate::auth::UserInfo;
use crate::error::Cause;

/// The usages a request may ask for (upstream's `allValidUsages`).
const USAGES: [&str; 23] = [
    "signing",
    "digital signature",
    "content commitment",
    "key encipherment",
    "key agreement",
    "data encipherment",
    "cert sign",
    "crl sign",
    "encipher only",
    "decipher only",
    "any",
    "server auth",
    "client auth",
    "code signing",
    "email protection",
    "s/mime",
    "ipsec end system",
    "ipsec tunnel",
    "ipsec user",
    "timestamping",
    "ocsp signing",
    "microsoft sgc",
    "netscape sgc",
];

/// The conditions only the approval subresource sets.
const APPROVAL: [&str; 2] = ["Approved", "Denied"];

/// A create records who asked (the requester cannot claim to be someone else) and starts
/// without a status.
pub fn prepare_create(obj: &mut Value, user: &UserInfo) {
    let spec = &mut obj["spec"];
    if !spec.is_object() {
        *spec = json!({});
    }
    spec["username"] = json!(user.name);
    spec["groups"] = json!(user.groups);
    // uid and extra only when the authenticator knows them, as upstream leaves them unset.
    if user.uid.is_empty() {
        spec.as_object_mut().map(|s| s.remove("uid"));
    } else {
        spec["uid"] = json!(user.uid);
    }
    if user.extra.is_empty() {
        spec.as_object_mut().map(|s| s.remove("extra"));
    } else {
        spec["extra"] = json!(user.extra);
    }
    obj.as_object_mut().map(|o| o.remove("status"));
}

/// An update keeps what its path may not change. The main resource changes metadata only;
/// `status` changes the status but not the Approved and Denied conditions; `approval`
/// changes the conditions only. Conditions get their timestamps, as upstream fills them.
pub fn prepare_update(subresource: Option<&str>, new: &mut Value, old: &Value) {
    new["spec"] = old["spec"].clone();
    let status = match subresource {
        None => old.get("status").cloned(),
        Some("status") => {
            let mut status = new.get("status").cloned().unwrap_or_else(|| json!({}));
            let kept: Vec<Value> = conditions(&status)
                .filter(|c| !APPROVAL.contains(&kind(c)))
                .chain(conditions(&old["status"]).filter(|c| APPROVAL.contains(&kind(c))))
                .cloned()
                .collect();
            status["conditions"] = json!(kept);
            Some(status)
        }
        _ => {
            let mut status = old.get("status").cloned().unwrap_or_else(|| json!({}));
            status["conditions"] = new["status"]["conditions"].clone();
            Some(status)
        }
    };
    match status {
        Some(mut status) => {
            stamp_conditions(&mut status);
            if status["conditions"].as_array().is_some_and(Vec::is_empty) {
                status.as_object_mut().map(|o| o.remove("conditions"));
            }
            new["status"] = status;
        }
        None => {
            new.as_object_mut().map(|o| o.remove("status"));
        }
    }
}

fn conditions(status: &Value) -> impl Iterator<Item = &Value> {
    status["conditions"].as_array().into_iter().flatten()
}

fn kind(condition: &Value) -> &str {
    condition["type"].as_str().unwrap_or_default()
}

/// Fills `lastUpdateTime` and `lastTransitionTime` where a writer left them out.
fn stamp_conditions(status: &mut Value) {
    let now = crate::objects::now();
    for condition in status["conditions"].as_array_mut().into_iter().flatten() {
        for field in ["lastUpdateTime", "lastTransitionTime"] {
            if condition[field].as_str().is_none_or(str::is_empty) {
                condition[field] = json!(now);
            }
        }
    }
}

/// Validation of a request, and of an update against the stored `old`.
pub fn validate(obj: &Value, old: Option<&Value>, causes: &mut Vec<Cause>) {
    let spec = &obj["spec"];
    // An update leaves the spec as it was stored: only a create's is checked.
    if old.is_none() {
        validate_spec(spec, causes);
    }
    let both_tolerated = old.is_some_and(|old| {
        APPROVAL
            .iter()
            .all(|t| conditions(&old["status"]).any(|c| kind(c) == *t))
    });
    let mut seen: Vec<&str> = Vec::new();
    for (i, condition) in conditions(&obj["status"]).enumerate() {
        let path = format!("status.conditions[{i}]");
        let t = kind(condition);
        if t.is_empty() {
            causes.push(Cause::required(format!("{path}.type"), ""));
        }
        let allowed: &[&str] = if matches!(t, "Approved" | "Denied" | "Failed") {
            &["True"]
        } else {
            &["False", "True", "Unknown"]
        };
        match condition["status"].as_str().unwrap_or_default() {
            "" => causes.push(Cause::required(format!("{path}.status"), "")),
            s if !allowed.contains(&s) => causes.push(Cause::not_supported(
                format!("{path}.status"),
                &json!(s),
                allowed,
            )),
            _ => {}
        }
        if APPROVAL.contains(&t)
            && !both_tolerated
            && seen.iter().any(|s| APPROVAL.contains(s) && *s != t)
        {
            causes.push(Cause::invalid(
                format!("{path}.type"),
                &json!(t),
                "Approved and Denied conditions are mutually exclusive",
            ));
        }
        if seen.contains(&t) {
            causes.push(Cause::duplicate(format!("{path}.type"), &json!(t)));
        }
        seen.push(t);
    }
    let certificate = obj["status"]["certificate"].as_str().unwrap_or_default();
    let old_certificate = old.map(|o| o["status"]["certificate"].as_str().unwrap_or_default());
    if Some(certificate) != old_certificate
        && let Err(e) = validate_certificate(certificate)
    {
        causes.push(Cause::invalid(
            "status.certificate",
            &json!("<certificate data>"),
            &e,
        ));
    }
    let Some(old) = old else {
        return;
    };
    for t in ["Approved", "Denied", "Failed"] {
        let count = |o: &Value| conditions(&o["status"]).filter(|c| kind(c) == t).count();
        if count(obj) < count(old) {
            causes.push(Cause::forbidden(
                "status.conditions",
                &format!("updates may not remove a condition of type {t:?}"),
            ));
        }
    }
    if let Some(old_certificate) = old_certificate
        && !old_certificate.is_empty()
        && old_certificate != certificate
    {
        causes.push(Cause::forbidden(
            "status.certificate",
            "updates may not modify existing certificate content",
        ));
    }
}

fn validate_spec(spec: &Value, causes: &mut Vec<Cause>) {
    let request = spec["request"].as_str().unwrap_or_default();
    let parsed = base64::engine::general_purpose::STANDARD
        .decode(request)
        .map_err(|_| "PEM block type must be CERTIFICATE REQUEST".to_string())
        .and_then(|pem| keg_apimachinery::csr::parse(&pem));
    if let Err(e) = parsed {
        causes.push(Cause::invalid("spec.request", &json!(request), &e));
    }
    let usages: Vec<&str> = spec["usages"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|u| u.as_str().unwrap_or_default())
        .collect();
    if usages.is_empty() {
        causes.push(Cause::required("spec.usages", ""));
    }
    for (i, usage) in usages.iter().enumerate() {
        if !USAGES.contains(usage) {
            let mut supported = USAGES.to_vec();
            supported.sort_unstable();
            causes.push(Cause::not_supported(
                format!("spec.usages[{i}]"),
                &json!(usage),
                &supported,
            ));
        }
        if usages[..i].contains(usage) {
            causes.push(Cause::duplicate(format!("spec.usages[{i}]"), &json!(usage)));
        }
    }
    let signer = spec["signerName"].as_str().unwrap_or_default();
    if signer == "kubernetes.io/legacy-unknown" {
        causes.push(Cause::invalid(
            "spec.signerName",
            &json!(signer),
            "the legacy signerName is not allowed via this API version",
        ));
    } else {
        validate_signer_name(signer, causes);
    }
    if let Some(seconds) = spec["expirationSeconds"].as_i64()
        && seconds < 600
    {
        causes.push(Cause::invalid(
            "spec.expirationSeconds",
            &json!(seconds),
            "may not specify a duration less than 600 seconds (10 minutes)",
        ));
    }
}

/// Upstream's `ValidateSignerName`: `DOMAIN/PATH`, the domain of at least two DNS labels.
fn validate_signer_name(signer: &str, causes: &mut Vec<Cause>) {
    const FIELD: &str = "spec.signerName";
    if signer.is_empty() {
        causes.push(Cause::required(FIELD, ""));
        return;
    }
    let Some((domain, path)) = signer.split_once('/').filter(|(_, p)| !p.contains('/')) else {
        causes.push(Cause::invalid(
            FIELD,
            &json!(signer),
            "must be a fully qualified domain and path of the form 'example.com/signer-name'",
        ));
        return;
    };
    let labels: Vec<&str> = domain.split('.').collect();
    for label in &labels {
        let problems = v::is_dns1123_label(label);
        for problem in &problems {
            causes.push(Cause::invalid(
                FIELD,
                &json!(domain),
                &format!("validating label {label:?}: {problem}"),
            ));
        }
        if !problems.is_empty() {
            break;
        }
    }
    if labels.len() < 2 {
        causes.push(Cause::invalid(
            FIELD,
            &json!(domain),
            "should be a domain with at least two segments separated by dots",
        ));
    }
    for problem in v::is_dns1123_subdomain(path) {
        causes.push(Cause::invalid(
            FIELD,
            &json!(path),
            &format!("validating path: {problem}"),
        ));
    }
}

/// Upstream's `validateCertificate`: empty, or one or more CERTIFICATE PEM blocks.
fn validate_certificate(certificate: &str) -> Result<(), String> {
    if certificate.is_empty() {
        return Ok(());
    }
    let pem = base64::engine::general_purpose::STANDARD
        .decode(certificate)
        .map_err(|_| "must contain at least one CERTIFICATE PEM block".to_string())?;
    let mut blocks = 0;
    for block in x509_parser::pem::Pem::iter_from_buffer(&pem) {
        let Ok(block) = block else {
            break;
        };
        if block.label != "CERTIFICATE" {
            return Err(format!(
                "only CERTIFICATE PEM blocks are allowed, found {:?}",
                block.label
            ));
        }
        block.parse_x509().map_err(|e| format!("x509: {e}"))?;
        blocks += 1;
    }
    if blocks == 0 {
        return Err("must contain at least one CERTIFICATE PEM block".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn approved(reason: &str) -> Value {
        json!({"type": "Approved", "status": "True", "reason": reason})
    }

    #[test]
    fn approval_changes_the_conditions_only_and_status_keeps_the_approval() {
        let old = json!({"spec": {"request": "x", "signerName": "a.io/b"},
            "status": {"conditions": [approved("KubectlApprove")]}});
        let mut status_write = json!({"spec": {"request": "y"},
            "status": {"certificate": "Y2VydA==", "conditions": [
                {"type": "Failed", "status": "True"}]}});
        prepare_update(Some("status"), &mut status_write, &old);
        assert_eq!(status_write["spec"], old["spec"]);
        assert_eq!(status_write["status"]["certificate"], "Y2VydA==");
        let types: Vec<&str> = conditions(&status_write["status"]).map(kind).collect();
        assert_eq!(types, ["Failed", "Approved"]);

        let mut approval = json!({"spec": {}, "status": {"certificate": "Zm9v",
            "conditions": [approved("A"), {"type": "Denied", "status": "True"}]}});
        prepare_update(Some("approval"), &mut approval, &status_write);
        assert_eq!(approval["status"]["certificate"], "Y2VydA==");
        assert_eq!(conditions(&approval["status"]).count(), 2);
        let mut causes = Vec::new();
        validate(&approval, Some(&status_write), &mut causes);
        let messages: Vec<&str> = causes.iter().map(|c| c.message.as_str()).collect();
        assert!(
            messages.contains(
                &"Invalid value: \"Denied\": Approved and Denied conditions are mutually exclusive"
            ),
            "{messages:?}"
        );
        assert!(
            messages
                .iter()
                .any(|m| m.contains("updates may not remove a condition of type \"Failed\"")),
            "{messages:?}"
        );
        assert!(conditions(&approval["status"]).all(|c| c["lastUpdateTime"].is_string()));
    }

    #[test]
    fn signer_names_are_domain_and_path() {
        for (name, bad) in [
            ("kubernetes.io/kube-apiserver-client", false),
            ("example.com/my-signer", false),
            ("", true),
            ("noslash", true),
            ("a/b/c", true),
            ("localhost/x", true),
            ("Example.com/x", true),
        ] {
            let mut causes = Vec::new();
            validate_signer_name(name, &mut causes);
            assert_eq!(!causes.is_empty(), bad, "{name}: {causes:?}");
        }
    }
}
