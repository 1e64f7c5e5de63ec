//! Allocation of Service cluster IPs and node ports, as the API server does upstream.
//!
//! Each allocated address or port is a key in the store, created atomically, so two services
//! never get the same one, even across restarts. A crash between allocating and storing the
//! service can leak an address; a repair pass could reclaim those (not done yet).

use std::net::Ipv4Addr;

use async_trait::async_trait;
use bytes::Bytes;
use rand::Rng;
use serde_json::{Value, json};

use super::{AdmissionPlugin, Attributes, Operation};
use crate::error::{ApiError, Cause, Result};
use crate::objects::meta_str;
use crate::state::ApiState;

/// The range Service cluster IPs come from (shown as the `kubernetes` ServiceCIDR).
pub const SERVICE_CIDR: &str = "10.43.0.0/16";

const IP_PREFIX: &str = "/registry/allocations/serviceips/";
const PORT_PREFIX: &str = "/registry/allocations/nodeports/";

/// Allocates cluster IPs from a /16 service CIDR and node ports from 30000-32767.
pub struct ServiceIps {
    base: Ipv4Addr,
    prefix_len: u8,
}

impl Default for ServiceIps {
    fn default() -> Self {
        ServiceIps {
            base: Ipv4Addr::new(10, 43, 0, 0),
            prefix_len: 16,
        }
    }
}

impl ServiceIps {
    /// The address of the `kubernetes` service: the first of the range.
    pub fn first(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.base) + 1)
    }

    fn size(&self) -> u32 {
        1u32 << (32 - self.prefix_len)
    }

    fn contains(&self, ip: Ipv4Addr) -> bool {
        let offset = u32::from(ip).wrapping_sub(u32::from(self.base));
        offset > 0 && offset < self.size() - 1
    }

    async fn claim(state: &ApiState, key: String, owner: &str) -> Result<bool> {
        match state
            .objects
            .store()
            .create(&key, Bytes::from(owner.to_string()))
            .await
        {
            Ok(_) => Ok(true),
            Err(keg_store::Error::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    async fn allocate_ip(&self, state: &ApiState, owner: &str) -> Result<Ipv4Addr> {
        // Random probing keeps allocation O(1) while the range is sparse, as upstream's
        // bitmap allocator does with its random scan.
        for _ in 0..256 {
            let offset = rand::rng().random_range(2..self.size() - 1);
            let ip = Ipv4Addr::from(u32::from(self.base) + offset);
            if Self::claim(state, format!("{IP_PREFIX}{ip}"), owner).await? {
                return Ok(ip);
            }
        }
        Err(ApiError::internal(
            "failed to allocate a serviceIP: range is full",
        ))
    }

    async fn allocate_port(state: &ApiState, owner: &str) -> Result<i64> {
        for _ in 0..256 {
            let port = rand::rng().random_range(30000..=32767);
            if Self::claim(state, format!("{PORT_PREFIX}{port}"), owner).await? {
                return Ok(port);
            }
        }
        Err(ApiError::internal(
            "failed to allocate a nodePort: range is full",
        ))
    }

    async fn release(state: &ApiState, service: &Value) {
        let store = state.objects.store();
        if let Some(ip) = service["spec"]["clusterIP"]
            .as_str()
            .filter(|ip| *ip != "None")
        {
            let _ = store.delete(&format!("{IP_PREFIX}{ip}"), None).await;
        }
        for port in service["spec"]["ports"].as_array().into_iter().flatten() {
            if let Some(node_port) = port["nodePort"].as_i64() {
                let _ = store
                    .delete(&format!("{PORT_PREFIX}{node_port}"), None)
                    .await;
            }
        }
    }

    async fn allocate(&self, state: &ApiState, service: &mut Value) -> Result<()> {
        let owner = format!(
            "{}/{}",
            meta_str(service, "namespace").unwrap_or_default(),
            meta_str(service, "name").unwrap_or_default()
        );
        let spec = &mut service["spec"];
        let service_type = spec["type"].as_str().unwrap_or("ClusterIP").to_string();
        if service_type != "ExternalName" {
            match spec["clusterIP"].as_str() {
                Some("None") => {}
                Some(requested) if !requested.is_empty() => {
                    let ip: Ipv4Addr = requested
                        .parse()
                        .map_err(|_| invalid_ip(&owner, requested, "must be a valid IP address"))?;
                    if !self.contains(ip) {
                        return Err(invalid_ip(
                            &owner,
                            requested,
                            "provided IP is not in the valid range. The range of valid IPs is 10.43.0.0/16",
                        ));
                    }
                    if !Self::claim(state, format!("{IP_PREFIX}{ip}"), &owner).await? {
                        return Err(invalid_ip(
                            &owner,
                            requested,
                            &format!(
                                "failed to allocate IP {ip}: provided IP is already allocated"
                            ),
                        ));
                    }
                }
                _ => {
                    let ip = self.allocate_ip(state, &owner).await?.to_string();
                    spec["clusterIP"] = json!(ip);
                }
            }
            let ip = spec["clusterIP"].clone();
            spec["clusterIPs"] = json!([ip]);
        }
        if matches!(service_type.as_str(), "NodePort" | "LoadBalancer") {
            for port in spec["ports"].as_array_mut().into_iter().flatten() {
                match port["nodePort"].as_i64() {
                    Some(requested) => {
                        if !Self::claim(state, format!("{PORT_PREFIX}{requested}"), &owner).await? {
                            return Err(ApiError::invalid(
                                "",
                                "Service",
                                &owner,
                                vec![Cause::invalid(
                                    "spec.ports[0].nodePort",
                                    &json!(requested),
                                    "provided port is already allocated",
                                )],
                            ));
                        }
                    }
                    None => port["nodePort"] = json!(Self::allocate_port(state, &owner).await?),
                }
            }
        }
        Ok(())
    }
}

fn invalid_ip(owner: &str, ip: &str, detail: &str) -> ApiError {
    let name = owner.rsplit('/').next().unwrap_or_default();
    ApiError::invalid(
        "",
        "Service",
        name,
        vec![Cause::invalid("spec.clusterIPs", &json!([ip]), detail)],
    )
}

#[async_trait]
impl AdmissionPlugin for ServiceIps {
    async fn admit(&self, state: &ApiState, attrs: &mut Attributes<'_>) -> Result<()> {
        if attrs.resource.kind != "Service"
            || !attrs.resource.group.is_empty()
            || attrs.subresource.is_some()
        {
            return Ok(());
        }
        match attrs.operation {
            Operation::Create if !attrs.dry_run => self.allocate(state, attrs.object).await,
            Operation::Update => {
                // Cluster IPs are immutable; an update that drops them keeps the old ones.
                if let Some(old) = attrs.old {
                    for field in ["clusterIP", "clusterIPs"] {
                        if attrs.object["spec"][field].is_null() && !old["spec"][field].is_null() {
                            attrs.object["spec"][field] = old["spec"][field].clone();
                        }
                    }
                    for (i, port) in attrs.object["spec"]["ports"]
                        .as_array_mut()
                        .into_iter()
                        .flatten()
                        .enumerate()
                    {
                        if port["nodePort"].is_null()
                            && let Some(old_port) = old["spec"]["ports"]
                                .get(i)
                                .filter(|p| !p["nodePort"].is_null())
                        {
                            port["nodePort"] = old_port["nodePort"].clone();
                        }
                    }
                }
                Ok(())
            }
            Operation::Delete => {
                Self::release(state, attrs.object).await;
                Ok(())
            }
            Operation::Create => Ok(()),
        }
    }
}
