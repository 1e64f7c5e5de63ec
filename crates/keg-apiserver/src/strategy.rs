//! Per-kind behaviour of writes, as upstream's registry strategies: defaulting, what a create
//! resets, what an update may change (spec versus status), and validation.

use serde_json::{Value, json};

use crate::auth::UserInfo;
use crate::error::Cause;
use crate::objects::without_nulls;
use crate::resources::Resource;

mod autoscaling;
mod certificates;
mod defaults;
mod validate;
mod workloads;

pub use defaults::default_object;
pub use validate::validate;

/// Kinds whose status only the status subresource may change.
fn has_status_subresource(res: &Resource) -> bool {
    res.has_subresource("status")
}

/// Whether `res` is certificates.k8s.io's CertificateSigningRequest.
fn is_csr(res: &Resource) -> bool {
    res.group == "certificates.k8s.io" && res.kind == "CertificateSigningRequest"
}

/// Prepares a new object for storage: resets what a create may not set, and records what
/// the kind records of its creator (a CertificateSigningRequest's requester).
pub fn prepare_create(res: &Resource, obj: &mut Value, user: &UserInfo) {
    if is_csr(res) {
        certificates::prepare_create(obj, user);
        return;
    }
    match res.kind.as_str() {
        "Pod" => {
            let qos = qos_class(&obj["spec"]);
            obj["status"] = json!({"phase": "Pending", "qosClass": qos});
        }
        "Namespace" => obj["status"] = json!({"phase": "Active"}),
        "PersistentVolumeClaim" | "PersistentVolume" => obj["status"] = json!({"phase": "Pending"}),
        "Job" => {
            obj.as_object_mut().map(|o| o.remove("status"));
            generate_job_selector(obj);
        }
        // A node registers with its status; every other kind with a status subresource
        // starts without one (its controller writes it).
        "Node" => {}
        _ => {
            if has_status_subresource(res) {
                obj.as_object_mut().map(|o| o.remove("status"));
            }
        }
    }
}

/// Labels the pods of a Job with the Job's uid and name and selects them by the uid (upstream's
/// generated selector), unless the Job says `manualSelector: true`.
fn generate_job_selector(obj: &mut Value) {
    if obj["spec"]["manualSelector"] == json!(true) {
        return;
    }
    let uid = obj["metadata"]["uid"].clone();
    let name = obj["metadata"]["name"].clone();
    let template = &mut obj["spec"]["template"];
    if !template["metadata"].is_object() {
        template["metadata"] = json!({});
    }
    if !template["metadata"]["labels"].is_object() {
        template["metadata"]["labels"] = json!({});
    }
    let labels = &mut template["metadata"]["labels"];
    for key in ["controller-uid", "batch.kubernetes.io/controller-uid"] {
        labels[key] = uid.clone();
    }
    for key in ["job-name", "batch.kubernetes.io/job-name"] {
        labels[key] = name.clone();
    }
    if obj["spec"]["selector"].is_null() {
        obj["spec"]["selector"] =
            json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}});
    }
}

/// Carries over what an update may not change, given which part of the object it targets.
/// `subresource` is `None` for the main resource and `Some("status")` for status writes (a
/// CertificateSigningRequest's `approval` too).
pub fn prepare_update(res: &Resource, subresource: Option<&str>, new: &mut Value, old: &Value) {
    if subresource.is_some() {
        // A subresource write changes status only (and nothing of metadata but what it must).
        let status = new.get("status").cloned();
        *new = old.clone();
        match status {
            Some(status) => new["status"] = status,
            None => {
                new.as_object_mut().map(|o| o.remove("status"));
            }
        }
    } else {
        keep_metadata(new, old);
        if has_status_subresource(res) {
            match old.get("status") {
                Some(status) => new["status"] = status.clone(),
                None => {
                    new.as_object_mut().map(|o| o.remove("status"));
                }
            }
        }
    }
    if is_csr(res) {
        // Its spec is fixed at create, and approval and status each own their conditions.
        certificates::prepare_update(subresource, new, old);
        return;
    }
    if subresource.is_none() && res.tracks_generation() && spec_of(new) != spec_of(old) {
        let generation = old["metadata"]["generation"].as_i64().unwrap_or(0) + 1;
        new["metadata"]["generation"] = json!(generation);
    }
}

/// Keeps the metadata an update of the main resource may not change.
fn keep_metadata(new: &mut Value, old: &Value) {
    for field in [
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
        "namespace",
        "name",
    ] {
        match old["metadata"].get(field) {
            Some(v) => {
                new["metadata"][field] = v.clone();
            }
            None => {
                new["metadata"].as_object_mut().map(|m| m.remove(field));
            }
        }
    }
}

/// Everything but metadata and status: what a generation counts changes of.
fn spec_of(obj: &Value) -> Value {
    let mut rest = without_nulls(obj);
    if let Some(map) = rest.as_object_mut() {
        for key in ["metadata", "status", "apiVersion", "kind"] {
            map.remove(key);
        }
    }
    rest
}

/// The QoS class upstream computes from the containers' requests and limits.
pub fn qos_class(spec: &Value) -> &'static str {
    let containers: Vec<&Value> = ["initContainers", "containers"]
        .iter()
        .flat_map(|k| spec[*k].as_array().into_iter().flatten())
        .collect();
    let mut any = false;
    let mut guaranteed = true;
    for c in &containers {
        let requests = c["resources"]["requests"].as_object();
        let limits = c["resources"]["limits"].as_object();
        for resource in ["cpu", "memory"] {
            let req = requests.and_then(|r| r.get(resource));
            let lim = limits.and_then(|l| l.get(resource));
            if req.is_some() || lim.is_some() {
                any = true;
            }
            match (req, lim) {
                (_, None) => guaranteed = false,
                (Some(r), Some(l)) if r != l => guaranteed = false,
                _ => {}
            }
        }
    }
    match (any, guaranteed) {
        (false, _) => "BestEffort",
        (true, true) => "Guaranteed",
        (true, false) => "Burstable",
    }
}

/// Validation entry point shared with admission: the causes an object fails with.
pub fn causes(res: &Resource, obj: &Value, old: Option<&Value>) -> Vec<Cause> {
    validate(res, obj, old)
}
