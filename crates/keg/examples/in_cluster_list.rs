//! An in-cluster client, as operators are: kube-rs's in-cluster configuration (the mounted
//! token, `ca.crt` and namespace, `KUBERNETES_SERVICE_HOST`/`PORT`), then a list of the pods
//! in its own namespace. Prints their names, or the API's refusal as `CODE Reason: message`.
//! The RBAC tests run it inside a pod.

use std::process::ExitCode;

use k8s_openapi::api::core::v1::Pod;
use kube::{Api, Client, ResourceExt};

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    // kube-rs leaves the choice of TLS crypto to the program, as keg itself makes it.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = match kube::Config::incluster() {
        Ok(config) => config,
        Err(e) => {
            println!("no in-cluster configuration: {e}");
            return ExitCode::from(2);
        }
    };
    let namespace = config.default_namespace.clone();
    let client = match Client::try_from(config) {
        Ok(client) => client,
        Err(e) => {
            println!("no client: {e}");
            return ExitCode::from(2);
        }
    };
    let pods: Api<Pod> = Api::namespaced(client, &namespace);
    match pods.list(&Default::default()).await {
        Ok(list) => {
            for pod in list {
                println!("{}", pod.name_any());
            }
            ExitCode::SUCCESS
        }
        Err(kube::Error::Api(status)) => {
            println!("{} {}: {}", status.code, status.reason, status.message);
            ExitCode::from(1)
        }
        Err(e) => {
            println!("error: {e}");
            ExitCode::from(2)
        }
    }
}
