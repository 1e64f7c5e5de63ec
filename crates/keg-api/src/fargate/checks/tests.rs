use k8s_openapi::api::core::v1::{
    AWSElasticBlockStoreVolumeSource, CSIPersistentVolumeSource, Capabilities, ContainerPort,
    EmptyDirVolumeSource, HostPathVolumeSource, NFSVolumeSource, PersistentVolumeClaimVolumeSource,
    PersistentVolumeSpec, VolumeDevice,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use super::*;

fn pod(spec: PodSpec) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some("p".into()),
            namespace: Some("tb-demo".into()),
            ..ObjectMeta::default()
        },
        spec: Some(spec),
        status: None,
    }
}

fn app() -> Container {
    Container {
        name: "app".into(),
        ..Container::default()
    }
}

fn with_context(context: SecurityContext) -> PodSpec {
    PodSpec {
        containers: vec![Container {
            security_context: Some(context),
            ..app()
        }],
        ..PodSpec::default()
    }
}

fn claim(volume: &str, claim: &str) -> Volume {
    Volume {
        name: volume.into(),
        persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
            claim_name: claim.into(),
            read_only: None,
        }),
        ..Volume::default()
    }
}

fn pv(name: &str, spec: PersistentVolumeSpec) -> PersistentVolume {
    PersistentVolume {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..ObjectMeta::default()
        },
        spec: Some(spec),
        status: None,
    }
}

fn csi(driver: &str) -> PersistentVolumeSpec {
    PersistentVolumeSpec {
        csi: Some(CSIPersistentVolumeSource {
            driver: driver.into(),
            volume_handle: "h".into(),
            ..CSIPersistentVolumeSource::default()
        }),
        ..PersistentVolumeSpec::default()
    }
}

/// The volumes of the tests' cluster: one per kind of backing store.
fn lookup(namespace: &str, claim: &str) -> Option<PersistentVolume> {
    assert_eq!(namespace, "tb-demo");
    match claim {
        "mysql-data-disk" => Some(pv(
            "pvc-1",
            PersistentVolumeSpec {
                aws_elastic_block_store: Some(AWSElasticBlockStoreVolumeSource {
                    volume_id: "vol-1".into(),
                    ..AWSElasticBlockStoreVolumeSource::default()
                }),
                ..PersistentVolumeSpec::default()
            },
        )),
        "host" => Some(pv(
            "pv-host",
            PersistentVolumeSpec {
                host_path: Some(HostPathVolumeSource {
                    path: "/var/lib/keg/volumes/x".into(),
                    type_: None,
                }),
                ..PersistentVolumeSpec::default()
            },
        )),
        "ebs" => Some(pv("pv-ebs", csi("ebs.csi.aws.com"))),
        "efs" => Some(pv("pv-efs", csi(EFS_CSI_DRIVER))),
        "nfs" => Some(pv(
            "pv-nfs",
            PersistentVolumeSpec {
                nfs: Some(NFSVolumeSource {
                    path: "/".into(),
                    server: "10.0.0.2".into(),
                    read_only: None,
                }),
                ..PersistentVolumeSpec::default()
            },
        )),
        _ => None,
    }
}

fn reasons(spec: PodSpec) -> String {
    match check_pod(&pod(spec), &lookup) {
        Ok(()) => String::new(),
        Err(err) => err.to_string(),
    }
}

#[test]
fn each_refusal_in_eks_words() {
    let volumes = |list: Vec<Volume>| PodSpec {
        containers: vec![app()],
        volumes: Some(list),
        ..PodSpec::default()
    };
    let cases = [
        (
            "host network",
            PodSpec {
                host_network: Some(true),
                containers: vec![app()],
                ..PodSpec::default()
            },
            "Pod not supported on Fargate: fields not supported: HostNetwork",
        ),
        (
            "host pid and ipc",
            PodSpec {
                host_pid: Some(true),
                host_ipc: Some(true),
                containers: vec![app()],
                ..PodSpec::default()
            },
            "Pod not supported on Fargate: fields not supported: HostPID, HostIPC",
        ),
        (
            "privileged",
            with_context(SecurityContext {
                privileged: Some(true),
                ..SecurityContext::default()
            }),
            "Pod not supported on Fargate: invalid SecurityContext fields: Privileged",
        ),
        (
            "capability added",
            with_context(SecurityContext {
                capabilities: Some(Capabilities {
                    add: Some(vec!["NET_ADMIN".into(), "NET_BIND_SERVICE".into()]),
                    drop: None,
                }),
                ..SecurityContext::default()
            }),
            "Pod not supported on Fargate: invalid SecurityContext fields: Capabilities added: \
             NET_ADMIN",
        ),
        (
            "host port",
            PodSpec {
                containers: vec![Container {
                    ports: Some(vec![ContainerPort {
                        container_port: 80,
                        host_port: Some(8080),
                        ..ContainerPort::default()
                    }]),
                    ..app()
                }],
                ..PodSpec::default()
            },
            "Pod not supported on Fargate: port contains HostIP or HostPort",
        ),
        (
            "EBS-backed claim (the seed's database)",
            volumes(vec![claim("mysql-persistent-storage", "mysql-data-disk")]),
            "Pod not supported on Fargate: volumes not supported: mysql-persistent-storage not \
             supported because: PVC mysql-data-disk bound to invalid PV pvc-1 with nil CSI spec",
        ),
        (
            "keg host-path claim",
            volumes(vec![claim("data", "host")]),
            "Pod not supported on Fargate: volumes not supported: data not supported because: PVC \
             host bound to invalid PV pv-host with nil CSI spec",
        ),
        (
            "EBS CSI claim",
            volumes(vec![claim("data", "ebs")]),
            "Pod not supported on Fargate: volumes not supported: data not supported because: PVC \
             ebs bound to invalid PV pv-ebs with CSI Driver: ebs.csi.aws.com",
        ),
        (
            "unbound claim",
            volumes(vec![claim("data", "pending")]),
            "Pod not supported on Fargate: volumes not supported: data not supported because: PVC \
             pending not bound",
        ),
        (
            "host path volume",
            volumes(vec![Volume {
                name: "docker-sock".into(),
                host_path: Some(HostPathVolumeSource {
                    path: "/run".into(),
                    type_: None,
                }),
                ..Volume::default()
            }]),
            "Pod not supported on Fargate: volumes not supported: docker-sock is of an unsupported \
             volume Type",
        ),
        (
            "block device",
            PodSpec {
                containers: vec![Container {
                    volume_devices: Some(vec![VolumeDevice {
                        name: "raw".into(),
                        device_path: "/dev/xvda".into(),
                    }]),
                    ..app()
                }],
                ..PodSpec::default()
            },
            "Pod not supported on Fargate: volumeDevices not supported",
        ),
    ];
    for (name, spec, want) in cases {
        assert_eq!(reasons(spec), want, "{name}");
    }
}

#[test]
fn daemon_set_pods() {
    let mut daemon = pod(PodSpec {
        containers: vec![app()],
        ..PodSpec::default()
    });
    daemon.metadata.owner_references = Some(vec![OwnerReference {
        kind: "DaemonSet".into(),
        name: "fluent-bit".into(),
        api_version: "apps/v1".into(),
        uid: "u".into(),
        ..OwnerReference::default()
    }]);
    let err = check_pod(&daemon, &lookup).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Pod not supported on Fargate: DaemonSet not supported"
    );
    assert_eq!(err.reason(), "POD_UNSUPPORTED_ON_FARGATE");
}

#[test]
fn several_reasons_are_joined() {
    let spec = PodSpec {
        host_network: Some(true),
        init_containers: Some(vec![Container {
            security_context: Some(SecurityContext {
                privileged: Some(true),
                ..SecurityContext::default()
            }),
            ..app()
        }]),
        containers: vec![Container {
            security_context: Some(SecurityContext {
                privileged: Some(true),
                ..SecurityContext::default()
            }),
            ports: Some(vec![ContainerPort {
                container_port: 53,
                host_ip: Some("0.0.0.0".into()),
                ..ContainerPort::default()
            }]),
            ..app()
        }],
        ..PodSpec::default()
    };
    assert_eq!(
        unsupported_reasons(&pod(spec), &lookup),
        [
            "fields not supported: HostNetwork",
            "invalid SecurityContext fields: Privileged,Privileged",
            "port contains HostIP or HostPort",
        ]
    );
}

#[test]
fn what_fargate_takes() {
    let spec = PodSpec {
        containers: vec![Container {
            security_context: Some(SecurityContext {
                privileged: Some(false),
                capabilities: Some(Capabilities {
                    add: Some(vec!["NET_BIND_SERVICE".into()]),
                    drop: Some(vec!["ALL".into()]),
                }),
                ..SecurityContext::default()
            }),
            ports: Some(vec![ContainerPort {
                container_port: 8080,
                ..ContainerPort::default()
            }]),
            ..app()
        }],
        volumes: Some(vec![
            Volume {
                name: "tmp".into(),
                empty_dir: Some(EmptyDirVolumeSource::default()),
                ..Volume::default()
            },
            claim("shared", "efs"),
            claim("nfs", "nfs"),
        ]),
        ..PodSpec::default()
    };
    assert_eq!(
        unsupported_reasons(&pod(spec), &lookup),
        Vec::<String>::new()
    );
    assert!(check_pod(&pod(PodSpec::default()), &lookup).is_ok());
}
