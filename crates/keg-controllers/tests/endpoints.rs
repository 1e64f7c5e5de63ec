//! Endpoints and EndpointSlices of a Service follow its pods' readiness, resolve a named
//! targetPort per pod, follow scaling, and go with the Service.

mod common;

use common::*;
use k8s_openapi::api::core::v1::{Endpoints, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde_json::json;

fn pod(name: &str, port: i32) -> anyhow::Result<Pod> {
    Ok(serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "c", "image": "img", "ports": [{"name": "http", "containerPort": port}]}]},
    }))?)
}

/// (ready IPs, not-ready IPs, ports) of the Service's Endpoints.
async fn endpoints(
    api: &Api<Endpoints>,
) -> anyhow::Result<Option<(Vec<String>, Vec<String>, Vec<i32>)>> {
    let Some(ep) = api.get_opt("web").await? else {
        return Ok(None);
    };
    let (mut ready, mut not_ready, mut ports) = (vec![], vec![], vec![]);
    for subset in ep.subsets.iter().flatten() {
        ready.extend(subset.addresses.iter().flatten().map(|a| a.ip.clone()));
        not_ready.extend(
            subset
                .not_ready_addresses
                .iter()
                .flatten()
                .map(|a| a.ip.clone()),
        );
        ports.extend(subset.ports.iter().flatten().map(|p| p.port));
    }
    ready.sort();
    not_ready.sort();
    ports.sort();
    ports.dedup();
    Ok(Some((ready, not_ready, ports)))
}

/// (ip, ready, port) of every endpoint in the Service's slices.
async fn slice_endpoints(api: &Api<EndpointSlice>) -> anyhow::Result<Vec<(String, bool, i32)>> {
    let slices = api
        .list(&ListParams::default().labels("kubernetes.io/service-name=web"))
        .await?
        .items;
    let mut found = vec![];
    for slice in &slices {
        let port = slice
            .ports
            .iter()
            .flatten()
            .find_map(|p| p.port)
            .unwrap_or(0);
        for endpoint in &slice.endpoints {
            let ready = endpoint.conditions.as_ref().and_then(|c| c.ready) == Some(true);
            found.push((endpoint.addresses[0].clone(), ready, port));
        }
    }
    found.sort();
    Ok(found)
}

fn ip(pod: &Pod) -> String {
    pod.status
        .as_ref()
        .and_then(|s| s.pod_ip.clone())
        .unwrap_or_default()
}

/// Service "web" (named targetPort "http") over pod a (ready, http=8080) and pod b (not
/// ready, http=9090), in namespace "svc".
async fn web_service_over_two_pods(cluster: &Cluster) -> anyhow::Result<(Service, Pod, Pod)> {
    cluster.namespace("svc").await?;
    let services: Api<Service> = cluster.api("svc");
    let service = serde_json::from_value(json!({
        "metadata": {"name": "web", "labels": {"tier": "front"}},
        "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
    }))?;
    let service = services.create(&PostParams::default(), &service).await?;
    let pods: Api<Pod> = cluster.api("svc");
    pods.create(&PostParams::default(), &pod("a", 8080)?)
        .await?;
    pods.create(&PostParams::default(), &pod("b", 9090)?)
        .await?;
    // The kubelet stand-in: pod a ready, pod b running but not ready.
    let a = set_pod_status(&pods, "a", true).await?;
    let b = set_pod_status(&pods, "b", false).await?;
    Ok((service, a, b))
}

#[tokio::test]
async fn endpoints_follow_readiness_and_resolve_named_ports() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    let (service, a, b) = web_service_over_two_pods(&cluster).await?;
    let services: Api<Service> = cluster.api("svc");
    let pods: Api<Pod> = cluster.api("svc");

    let eps: Api<Endpoints> = cluster.api("svc");
    let slices: Api<EndpointSlice> = cluster.api("svc");
    eventually("a ready and b not ready in the Endpoints", || async {
        let want = (vec![ip(&a)], vec![ip(&b)], vec![8080, 9090]);
        Ok((endpoints(&eps).await? == Some(want)).then_some(()))
    })
    .await;
    assert_eq!(
        eps.get("web")
            .await?
            .labels()
            .get("tier")
            .map(String::as_str),
        Some("front")
    );
    eventually("the same in the EndpointSlices", || async {
        let mut want = vec![(ip(&a), true, 8080), (ip(&b), false, 9090)];
        want.sort();
        Ok((slice_endpoints(&slices).await? == want).then_some(()))
    })
    .await;
    let slice = slices
        .list(&ListParams::default().labels("kubernetes.io/service-name=web"))
        .await?
        .items
        .remove(0);
    assert_eq!(
        slice
            .labels()
            .get("endpointslice.kubernetes.io/managed-by")
            .map(String::as_str),
        Some("endpointslice-controller.k8s.io")
    );
    assert_eq!(slice.owner_references()[0].uid, service.uid().unwrap());

    let b = set_pod_status(&pods, "b", true).await?;
    let a = set_pod_status(&pods, "a", false).await?;
    eventually("readiness to swap", || async {
        Ok(
            (endpoints(&eps).await?.map(|e| (e.0, e.1)) == Some((vec![ip(&b)], vec![ip(&a)])))
                .then_some(()),
        )
    })
    .await;

    pods.delete("a", &DeleteParams::default()).await?;
    eventually("the deleted pod to leave", || async {
        let gone_from_endpoints =
            endpoints(&eps).await?.map(|e| (e.0, e.1)) == Some((vec![ip(&b)], vec![]));
        let gone_from_slices = slice_endpoints(&slices).await? == vec![(ip(&b), true, 9090)];
        Ok((gone_from_endpoints && gone_from_slices).then_some(()))
    })
    .await;

    services.delete("web", &DeleteParams::default()).await?;
    eventually(
        "Endpoints and EndpointSlices to go with the Service",
        || async {
            Ok(
                (eps.get_opt("web").await?.is_none() && slice_endpoints(&slices).await?.is_empty())
                    .then_some(()),
            )
        },
    )
    .await;
    assert!(
        slices
            .list(&ListParams::default().labels("kubernetes.io/service-name=web"))
            .await?
            .items
            .is_empty()
    );
    Ok(())
}

#[tokio::test]
async fn scaling_a_deployment_changes_the_endpoints() -> anyhow::Result<()> {
    let mut cluster = Cluster::start().await?;
    cluster.namespace("scaled").await?;
    cluster.kubelet("scaled");
    let services: Api<Service> = cluster.api("scaled");
    let service = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]},
    }))?;
    services.create(&PostParams::default(), &service).await?;
    let deployments = cluster.api("scaled");
    deployments
        .create(
            &PostParams::default(),
            &deployment("web", 3, "web:1", json!({}))?,
        )
        .await?;
    let eps: Api<Endpoints> = cluster.api("scaled");
    eventually("three ready endpoints", || async {
        Ok(endpoints(&eps)
            .await?
            .filter(|e| e.0.len() == 3 && e.2 == [8080])
            .map(|_| ()))
    })
    .await;

    let scale = json!({"spec": {"replicas": 1}});
    deployments
        .patch(
            "web",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&scale),
        )
        .await?;
    eventually("one endpoint", || async {
        Ok(endpoints(&eps)
            .await?
            .filter(|e| e.0.len() == 1 && e.1.is_empty())
            .map(|_| ()))
    })
    .await;
    let slices: Api<EndpointSlice> = cluster.api("scaled");
    eventually("one endpoint in the slices", || async {
        Ok((slice_endpoints(&slices).await?.len() == 1).then_some(()))
    })
    .await;
    Ok(())
}
