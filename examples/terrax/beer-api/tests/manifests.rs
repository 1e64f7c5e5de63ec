//! The walkthrough's Kubernetes manifests agree with each other and with the binary: the API
//! finds the database Service, reads the same Secret the database is initialised from, is
//! configured only through variables it reads, and is probed on endpoints it serves.

use std::collections::BTreeMap;
use std::path::Path;

use beer_api::config::Config;
use clap::CommandFactory;
use serde_json::{Value, json};

fn load(relative: &str) -> Vec<Value> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(relative);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{relative}: {e}"));
    serde_saphyr::from_multiple(&text).unwrap_or_else(|e| panic!("{relative}: {e}"))
}

fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

/// The first container of a Deployment.
fn container(deployment: &Value) -> &Value {
    &deployment["spec"]["template"]["spec"]["containers"][0]
}

/// A container's environment: name -> literal value, or "secret:NAME/KEY".
fn env(container: &Value) -> BTreeMap<String, String> {
    let mut vars = BTreeMap::new();
    for var in container["env"].as_array().expect("env list") {
        let name = var["name"].as_str().unwrap().to_owned();
        let value = match var["value"].as_str() {
            Some(v) => v.to_owned(),
            None => {
                let secret = &var["valueFrom"]["secretKeyRef"];
                format!("secret:{}/{}", secret["name"], secret["key"]).replace('"', "")
            }
        };
        vars.insert(name, value);
    }
    vars
}

/// Checks a Deployment's selector, pod labels and own labels all say `app`.
fn check_labels(deployment: &Value, app: &str) {
    let want = json!({ "app": app });
    assert_eq!(deployment["metadata"]["namespace"], "tb-demo");
    assert_eq!(deployment["metadata"]["labels"], want);
    assert_eq!(deployment["spec"]["selector"]["matchLabels"], want);
    assert_eq!(deployment["spec"]["template"]["metadata"]["labels"], want);
}

#[test]
fn database_manifest_matches_the_walkthrough() {
    let docs = load("database/database.yml");
    let class = find(&docs, "StorageClass", "tb-gp2");
    assert_eq!(class["provisioner"], "kubernetes.io/aws-ebs");
    assert_eq!(
        class["parameters"],
        json!({"type": "gp2", "fsType": "ext4"})
    );
    assert_eq!(class["volumeBindingMode"], "Immediate");

    let claim = find(&docs, "PersistentVolumeClaim", "mysql-data-disk");
    assert_eq!(claim["metadata"]["namespace"], "tb-demo");
    assert_eq!(claim["spec"]["accessModes"], json!(["ReadWriteOnce"]));
    assert_eq!(claim["spec"]["resources"]["requests"]["storage"], "25Mi");
    assert_eq!(claim["spec"]["storageClassName"], "tb-gp2");

    let deployment = find(&docs, "Deployment", "mysql-deployment");
    check_labels(deployment, "database");
    let db = container(deployment);
    assert_eq!(db["image"], "terrax/mariadb:10");
    let mount = &db["volumeMounts"][0];
    assert_eq!(mount["mountPath"], "/var/lib/mysql");
    let volume = &deployment["spec"]["template"]["spec"]["volumes"][0];
    assert_eq!(volume["name"], mount["name"]);
    assert_eq!(
        volume["persistentVolumeClaim"]["claimName"],
        "mysql-data-disk"
    );

    let secret = find(&docs, "Secret", "mysql-secret");
    for (name, value) in env(db) {
        if let Some(reference) = value.strip_prefix("secret:") {
            let (secret_name, key) = reference.split_once('/').unwrap();
            assert_eq!(secret_name, "mysql-secret", "{name}");
            assert!(
                secret["stringData"][key].is_string(),
                "{name}: no key {key}"
            );
        }
    }

    let service = find(&docs, "Service", "mysql-service");
    assert_eq!(service["spec"]["type"], "ClusterIP");
    assert_eq!(service["spec"]["selector"], json!({"app": "database"}));
    assert_eq!(service["spec"]["ports"][0]["port"], 3306);
}

#[test]
fn service_manifest_matches_the_walkthrough_and_the_database() {
    let docs = load("service/service.yml");
    let database = load("database/database.yml");
    let deployment = find(&docs, "Deployment", "springboot-deployment");
    check_labels(deployment, "service");
    assert_eq!(deployment["spec"]["replicas"], 2);
    let api = container(deployment);
    assert_eq!(api["image"], "terrax/beer-api:1.0");
    assert_eq!(api["imagePullPolicy"], "IfNotPresent");
    assert_eq!(api["ports"][0]["containerPort"], 8080);
    assert_eq!(api["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(api["livenessProbe"]["httpGet"]["path"], "/healthz");

    // Every variable set is one the binary reads.
    let command = Config::command();
    let known: Vec<String> = command
        .get_arguments()
        .filter_map(|a| a.get_env())
        .map(|e| e.to_string_lossy().into_owned())
        .collect();
    let api_env = env(api);
    for name in api_env.keys() {
        assert!(
            known.contains(name),
            "{name} is not read by beer-api ({known:?})"
        );
    }

    // The API logs in where and as whom the database's first start set it up.
    let db_container = container(find(&database, "Deployment", "mysql-deployment"));
    let db_env = env(db_container);
    let db_service = find(&database, "Service", "mysql-service");
    assert_eq!(api_env["DB_HOST"], "mysql-service");
    assert_eq!(
        api_env["DB_PORT"],
        db_service["spec"]["ports"][0]["port"].to_string()
    );
    assert_eq!(api_env["DB_NAME"], db_env["MYSQL_DATABASE"]);
    assert_eq!(api_env["DB_USER"], db_env["MYSQL_USER"]);
    assert_eq!(api_env["DB_PASSWORD"], db_env["MYSQL_PASSWORD"]);
    assert!(
        api_env["DB_PASSWORD"].starts_with("secret:"),
        "password not from a Secret"
    );

    let service = find(&docs, "Service", "springboot-service");
    assert_eq!(service["metadata"]["namespace"], "tb-demo");
    assert_eq!(service["spec"]["type"], "LoadBalancer");
    assert_eq!(service["spec"]["selector"], json!({"app": "service"}));
    let port = &service["spec"]["ports"][0];
    assert_eq!(port["port"], 80);
    assert_eq!(port["targetPort"], api["ports"][0]["name"]);
}

/// Whether a Fargate profile selector takes a pod: same namespace, and every selector label.
fn selects(selector: &Value, namespace: &str, labels: &Value) -> bool {
    selector["namespace"] == namespace
        && selector["labels"]
            .as_object()
            .is_none_or(|want| want.iter().all(|(k, v)| labels[k] == *v))
}

#[test]
fn only_the_api_pods_go_to_fargate() {
    let cluster = &load("eks-terrax-fargate.yaml")[0];
    let profiles = cluster["fargateProfiles"]
        .as_array()
        .expect("fargateProfiles");
    let profile_of = |labels: &Value| {
        profiles
            .iter()
            .find(|p| {
                let selectors = p["selectors"].as_array().unwrap();
                selectors.iter().any(|s| selects(s, "tb-demo", labels))
            })
            .map(|p| p["name"].as_str().unwrap().to_owned())
    };
    let service = load("service/service.yml");
    let database = load("database/database.yml");
    let pod_labels = |docs: &[Value], name: &str| {
        find(docs, "Deployment", name)["spec"]["template"]["metadata"]["labels"].clone()
    };
    let api_labels = pod_labels(&service, "springboot-deployment");
    let db_labels = pod_labels(&database, "mysql-deployment");
    assert_eq!(profile_of(&api_labels).as_deref(), Some("fp-demo-service"));
    assert_eq!(
        profile_of(&db_labels),
        None,
        "the database must stay on the node group"
    );
}
