use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, PodSpec, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::*;

fn quantities(pairs: &[(&str, &str)]) -> Option<BTreeMap<String, Quantity>> {
    (!pairs.is_empty()).then(|| {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), Quantity(v.to_string())))
            .collect()
    })
}

fn container(name: &str, requests: &[(&str, &str)], limits: &[(&str, &str)]) -> Container {
    Container {
        name: name.to_owned(),
        resources: Some(ResourceRequirements {
            requests: quantities(requests),
            limits: quantities(limits),
            ..ResourceRequirements::default()
        }),
        ..Container::default()
    }
}

fn sidecar(name: &str, requests: &[(&str, &str)]) -> Container {
    Container {
        restart_policy: Some("Always".to_owned()),
        ..container(name, requests, &[])
    }
}

fn pod(init: Vec<Container>, containers: Vec<Container>) -> PodSpec {
    PodSpec {
        init_containers: (!init.is_empty()).then_some(init),
        containers,
        ..PodSpec::default()
    }
}

#[test]
fn sizes_pods_like_eks() {
    let app = |cpu, mem| container("app", &[("cpu", cpu), ("memory", mem)], &[]);
    let cases = [
        (
            "no requests",
            pod(vec![], vec![Container::default()]),
            "0.25vCPU 0.5GB",
        ),
        (
            "small",
            pod(vec![], vec![app("100m", "128Mi")]),
            "0.25vCPU 0.5GB",
        ),
        // 256Mi + 256 MiB overhead fits 0.5 GB exactly.
        (
            "exact fit",
            pod(vec![], vec![app("250m", "256Mi")]),
            "0.25vCPU 0.5GB",
        ),
        (
            "just over",
            pod(vec![], vec![app("250m", "257Mi")]),
            "0.25vCPU 1GB",
        ),
        // EKS's own example: 1 vCPU and 8 GB, plus 256 MB, needs 2 vCPU and 9 GB.
        (
            "eks example",
            pod(vec![], vec![app("1", "8Gi")]),
            "2vCPU 9GB",
        ),
        (
            "memory pushes cpu up",
            pod(vec![], vec![app("250m", "2.5Gi")]),
            "0.5vCPU 3GB",
        ),
        (
            "cpu pushes memory up",
            pod(vec![], vec![app("3", "1Gi")]),
            "4vCPU 8GB",
        ),
        (
            "half vcpu",
            pod(vec![], vec![app("500m", "1Gi")]),
            "0.5vCPU 2GB",
        ),
        (
            "8 vcpu steps of 4",
            pod(vec![], vec![app("5", "17Gi")]),
            "8vCPU 20GB",
        ),
        (
            "16 vcpu steps of 8",
            pod(vec![], vec![app("16", "33Gi")]),
            "16vCPU 40GB",
        ),
        (
            "largest",
            pod(vec![], vec![app("16", "119.75Gi")]),
            "16vCPU 120GB",
        ),
        (
            "containers add up",
            pod(vec![], vec![app("500m", "512Mi"), app("600m", "1Gi")]),
            "2vCPU 4GB",
        ),
        (
            "init container larger than the sum",
            pod(
                vec![container("init", &[("cpu", "2"), ("memory", "1Gi")], &[])],
                vec![app("250m", "256Mi")],
            ),
            "2vCPU 4GB",
        ),
        (
            "largest init container only",
            pod(
                vec![
                    container("a", &[("memory", "3Gi")], &[]),
                    container("b", &[("memory", "1Gi")], &[]),
                ],
                vec![app("250m", "256Mi")],
            ),
            "0.5vCPU 4GB",
        ),
        (
            "limits stand in for requests",
            pod(
                vec![],
                vec![container("app", &[], &[("cpu", "1"), ("memory", "2Gi")])],
            ),
            "1vCPU 3GB",
        ),
        (
            "requests win over limits",
            pod(
                vec![],
                vec![container(
                    "app",
                    &[("cpu", "250m")],
                    &[("cpu", "4"), ("memory", "1Gi")],
                )],
            ),
            "0.25vCPU 2GB",
        ),
        (
            "sidecars run with the containers",
            pod(
                vec![sidecar("proxy", &[("cpu", "500m"), ("memory", "512Mi")])],
                vec![app("500m", "512Mi")],
            ),
            "1vCPU 2GB",
        ),
    ];
    for (name, spec, want) in cases {
        let size = FargateSize::for_pod(&spec).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(size.to_string(), want, "{name}");
    }
}

#[test]
fn too_large_for_fargate() {
    let spec = pod(
        vec![],
        vec![container("app", &[("cpu", "16"), ("memory", "120Gi")], &[])],
    );
    let err = FargateSize::for_pod(&spec).unwrap_err();
    assert_eq!(err.reason(), "POD_CPU_MEM_EXCEEDS_MAX_FARGATE_SIZE");
    assert_eq!(
        err.to_string(),
        "Your pod's cpu/memory requirements exceed the max Fargate configuration"
    );
    let err = FargateSize::round_up(17_000, 1024).unwrap_err();
    assert!(matches!(
        err,
        Error::ExceedsMax {
            millicpu: 17_000,
            ..
        }
    ));
}

#[test]
fn bad_quantities_name_the_container_and_field() {
    let spec = pod(vec![], vec![container("app", &[("memory", "lots")], &[])]);
    let err = FargateSize::for_pod(&spec).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("container \"app\": resources.requests.memory: invalid quantity"),
        "{err}"
    );
}

#[test]
fn round_up_table_edges() {
    let cases = [
        (0, 0, (250, 512)),
        (250, 513, (250, 1024)),
        (250, 2048, (250, 2048)),
        (251, 512, (500, 1024)),
        (1000, 8192, (1000, 8192)),
        (4000, 30 * 1024, (4000, 30 * 1024)),
        (4000, 30 * 1024 + 1, (8000, 32 * 1024)),
        (8000, 60 * 1024 + 1, (16000, 64 * 1024)),
    ];
    for (cpu, mem, (want_cpu, want_mem)) in cases {
        let size = FargateSize::round_up(cpu, mem).unwrap();
        assert_eq!(
            (size.millicpu, size.memory_mib),
            (want_cpu, want_mem),
            "{cpu} {mem}"
        );
    }
    assert_eq!(FargateSize::round_up(0, 0).unwrap(), FargateSize::SMALLEST);
}
