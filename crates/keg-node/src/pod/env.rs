//! A container's environment as the kubelet makes it (`makeEnvironmentVariables`): envFrom,
//! then env (value with `$(VAR)` expansion, fieldRef, resourceFieldRef, configMapKeyRef,
//! secretKeyRef), then the service link variables; and `$(VAR)` in command and args.

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret, Service};
use kube::api::{Api, ListParams};

use super::downward;
use crate::util::is_not_found;

/// What env values may refer to besides the API.
pub(crate) struct EnvSource<'a> {
    /// The pod.
    pub(crate) pod: &'a Pod,
    /// The pod's address.
    pub(crate) pod_ip: Option<&'a str>,
    /// The node's address.
    pub(crate) host_ip: Option<&'a str>,
    /// The node's allocatable resources (for limits a container leaves unset).
    pub(crate) allocatable: &'a BTreeMap<String, String>,
    /// API access for config maps, secrets and services.
    pub(crate) client: &'a kube::Client,
}

/// An ordered environment where a later definition replaces an earlier one in place.
#[derive(Default)]
struct Env {
    vars: Vec<(String, String)>,
    index: HashMap<String, usize>,
}

impl Env {
    fn set(&mut self, name: String, value: String) {
        match self.index.get(&name) {
            Some(&i) => self.vars[i].1 = value,
            None => {
                self.index.insert(name.clone(), self.vars.len());
                self.vars.push((name, value));
            }
        }
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.index.get(name).map(|&i| self.vars[i].1.as_str())
    }
}

/// Config maps and secrets of the namespace, each read once per container.
struct Objects<'a> {
    source: &'a EnvSource<'a>,
    config_maps: HashMap<String, Option<BTreeMap<String, String>>>,
    secrets: HashMap<String, Option<BTreeMap<String, String>>>,
}

impl Objects<'_> {
    fn namespace(&self) -> String {
        self.source
            .pod
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into())
    }

    /// A config map's data (binaryData included as text); none when it does not exist.
    async fn config_map(&mut self, name: &str) -> Result<Option<BTreeMap<String, String>>, String> {
        if let Some(found) = self.config_maps.get(name) {
            return Ok(found.clone());
        }
        let api: Api<ConfigMap> = Api::namespaced(self.source.client.clone(), &self.namespace());
        let data = match api.get(name).await {
            Ok(cm) => Some(config_map_data(&cm)),
            Err(e) if is_not_found(&e) => None,
            Err(e) => {
                return Err(format!(
                    "couldn't get configMap {}/{name}: {e}",
                    self.namespace()
                ));
            }
        };
        self.config_maps.insert(name.into(), data.clone());
        Ok(data)
    }

    /// A secret's data as text; none when it does not exist.
    async fn secret(&mut self, name: &str) -> Result<Option<BTreeMap<String, String>>, String> {
        if let Some(found) = self.secrets.get(name) {
            return Ok(found.clone());
        }
        let api: Api<Secret> = Api::namespaced(self.source.client.clone(), &self.namespace());
        let data = match api.get(name).await {
            Ok(s) => Some(secret_data(&s)),
            Err(e) if is_not_found(&e) => None,
            Err(e) => {
                return Err(format!(
                    "couldn't get secret {}/{name}: {e}",
                    self.namespace()
                ));
            }
        };
        self.secrets.insert(name.into(), data.clone());
        Ok(data)
    }
}

/// A config map's `data` and `binaryData` as strings.
pub(crate) fn config_map_data(cm: &ConfigMap) -> BTreeMap<String, String> {
    let mut out = cm.data.clone().unwrap_or_default();
    for (k, v) in cm.binary_data.iter().flatten() {
        out.insert(k.clone(), String::from_utf8_lossy(&v.0).into_owned());
    }
    out
}

/// A secret's `data` (and `stringData`, should a server leave it) as strings.
pub(crate) fn secret_data(secret: &Secret) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = secret
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), String::from_utf8_lossy(&v.0).into_owned()))
        .collect();
    for (k, v) in secret.string_data.iter().flatten() {
        out.insert(k.clone(), v.clone());
    }
    out
}

/// The container's environment, in declaration order. The error is the kubelet's message
/// for CreateContainerConfigError, e.g. `configmap "x" not found`.
pub(crate) async fn container_env(
    source: &EnvSource<'_>,
    container: &Container,
) -> Result<Vec<(String, String)>, String> {
    let services = service_env(source).await;
    let mut objects = Objects {
        source,
        config_maps: HashMap::new(),
        secrets: HashMap::new(),
    };
    let mut env = Env::default();
    for from in container.env_from.iter().flatten() {
        let prefix = from.prefix.clone().unwrap_or_default();
        let data = if let Some(cm) = &from.config_map_ref {
            match objects.config_map(&cm.name).await? {
                Some(d) => d,
                None if cm.optional == Some(true) => continue,
                None => return Err(format!("configmap {:?} not found", cm.name)),
            }
        } else if let Some(s) = &from.secret_ref {
            match objects.secret(&s.name).await? {
                Some(d) => d,
                None if s.optional == Some(true) => continue,
                None => return Err(format!("secret {:?} not found", s.name)),
            }
        } else {
            continue;
        };
        for (k, v) in data {
            let name = format!("{prefix}{k}");
            // Invalid names are skipped, as upstream does (it also records an event).
            if is_env_var_name(&name) {
                env.set(name, v);
            }
        }
    }
    for var in container.env.iter().flatten() {
        let value = match (&var.value, &var.value_from) {
            (Some(v), _) if !v.is_empty() => expand(v, |name| {
                env.get(name)
                    .or_else(|| services.get(name))
                    .map(str::to_string)
            }),
            (_, Some(from)) => match value_from(source, &mut objects, container, from).await? {
                Some(v) => v,
                None => continue,
            },
            _ => String::new(),
        };
        env.set(var.name.clone(), value);
    }
    for (name, value) in services.vars {
        if env.get(&name).is_none() {
            env.set(name, value);
        }
    }
    Ok(env.vars)
}

/// One `valueFrom`; none when an optional source is missing.
async fn value_from(
    source: &EnvSource<'_>,
    objects: &mut Objects<'_>,
    container: &Container,
    from: &k8s_openapi::api::core::v1::EnvVarSource,
) -> Result<Option<String>, String> {
    let ns = objects.namespace();
    if let Some(field) = &from.field_ref {
        return downward::field_value(source.pod, &field.field_path, source.pod_ip, source.host_ip)
            .map(Some);
    }
    if let Some(field) = &from.resource_field_ref {
        return downward::resource_value(field, container, source.pod, source.allocatable)
            .map(Some);
    }
    if let Some(r) = &from.config_map_key_ref {
        let optional = r.optional == Some(true);
        let Some(data) = objects.config_map(&r.name).await? else {
            return if optional {
                Ok(None)
            } else {
                Err(format!("configmap {:?} not found", r.name))
            };
        };
        return match data.get(&r.key) {
            Some(v) => Ok(Some(v.clone())),
            None if optional => Ok(None),
            None => Err(format!(
                "couldn't find key {} in ConfigMap {ns}/{}",
                r.key, r.name
            )),
        };
    }
    if let Some(r) = &from.secret_key_ref {
        let optional = r.optional == Some(true);
        let Some(data) = objects.secret(&r.name).await? else {
            return if optional {
                Ok(None)
            } else {
                Err(format!("secret {:?} not found", r.name))
            };
        };
        return match data.get(&r.key) {
            Some(v) => Ok(Some(v.clone())),
            None if optional => Ok(None),
            None => Err(format!(
                "couldn't find key {} in Secret {ns}/{}",
                r.key, r.name
            )),
        };
    }
    Ok(Some(String::new()))
}

/// Service link variables (`<NAME>_SERVICE_HOST`, Docker-style `<NAME>_PORT_...`) for the
/// services of the pod's namespace (unless `enableServiceLinks: false`) and, always, the
/// `kubernetes` service of `default`. Unreadable services just give no variables.
async fn service_env(source: &EnvSource<'_>) -> Env {
    let ns = source
        .pod
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let links = source
        .pod
        .spec
        .as_ref()
        .and_then(|s| s.enable_service_links)
        .unwrap_or(true);
    let mut services: BTreeMap<String, Service> = BTreeMap::new();
    let default: Api<Service> = Api::namespaced(source.client.clone(), "default");
    if let Ok(master) = default.get("kubernetes").await {
        services.insert("kubernetes".into(), master);
    }
    if links {
        let api: Api<Service> = Api::namespaced(source.client.clone(), &ns);
        if let Ok(list) = api.list(&ListParams::default()).await {
            for s in list.items {
                let name = s.metadata.name.clone().unwrap_or_default();
                services.insert(name, s);
            }
        }
    }
    let mut env = Env::default();
    for (name, service) in services {
        for (k, v) in service_vars(&name, &service) {
            env.set(k, v);
        }
    }
    env
}

fn service_vars(name: &str, service: &Service) -> Vec<(String, String)> {
    let spec = service.spec.clone().unwrap_or_default();
    let ip = spec.cluster_ip.clone().unwrap_or_default();
    let ports = spec.ports.unwrap_or_default();
    if ip.is_empty() || ip == "None" || ports.is_empty() {
        return Vec::new();
    }
    let prefix = name.replace('-', "_").to_uppercase();
    let mut out = vec![
        (format!("{prefix}_SERVICE_HOST"), ip.clone()),
        (format!("{prefix}_SERVICE_PORT"), ports[0].port.to_string()),
    ];
    for p in &ports {
        if let Some(port_name) = p.name.as_deref().filter(|n| !n.is_empty()) {
            let var = format!(
                "{prefix}_SERVICE_PORT_{}",
                port_name.replace('-', "_").to_uppercase()
            );
            out.push((var, p.port.to_string()));
        }
    }
    for (i, p) in ports.iter().enumerate() {
        let proto = p.protocol.clone().unwrap_or_else(|| "TCP".into());
        let url = format!("{}://{ip}:{}", proto.to_lowercase(), p.port);
        if i == 0 {
            out.push((format!("{prefix}_PORT"), url.clone()));
        }
        let port_prefix = format!("{prefix}_PORT_{}_{}", p.port, proto.to_uppercase());
        out.push((port_prefix.clone(), url));
        out.push((format!("{port_prefix}_PROTO"), proto.to_lowercase()));
        out.push((format!("{port_prefix}_PORT"), p.port.to_string()));
        out.push((format!("{port_prefix}_ADDR"), ip.clone()));
    }
    out
}

/// Upstream's `IsEnvVarName`: `[-._a-zA-Z][-._a-zA-Z0-9]*`.
fn is_env_var_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || "-._".contains(c))
        && chars.all(|c| c.is_ascii_alphanumeric() || "-._".contains(c))
}

/// Upstream's `expansion.Expand`: `$(VAR)` becomes VAR's value when it is defined and stays
/// as written otherwise; `$$` is a literal `$`.
pub(crate) fn expand(input: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let bytes = input.as_bytes();
    let mut out = String::new();
    let mut checkpoint = 0;
    let mut cursor = 0;
    while cursor < bytes.len() {
        if bytes[cursor] == b'$' && cursor + 1 < bytes.len() {
            out.push_str(&input[checkpoint..cursor]);
            let rest = &input[cursor + 1..];
            let advance = match rest.as_bytes()[0] {
                b'$' => {
                    out.push('$');
                    1
                }
                b'(' => match rest.find(')') {
                    Some(close) => {
                        let name = &rest[1..close];
                        out.push_str(&lookup(name).unwrap_or_else(|| format!("$({name})")));
                        close + 1
                    }
                    None => {
                        out.push_str("$(");
                        1
                    }
                },
                _ => {
                    let c = rest.chars().next().unwrap_or_default();
                    out.push('$');
                    out.push(c);
                    c.len_utf8()
                }
            };
            cursor += advance;
            checkpoint = cursor + 1;
        }
        cursor += 1;
    }
    if checkpoint < input.len() {
        out.push_str(&input[checkpoint..]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(name: &str) -> Option<String> {
        match name {
            "A" => Some("alpha".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn expands_as_upstream() {
        let cases = [
            ("$(A)", "alpha"),
            ("x-$(A)-y", "x-alpha-y"),
            ("$(MISSING)", "$(MISSING)"),
            ("$$(A)", "$(A)"),
            ("$$$(A)", "$alpha"),
            ("$(A", "$(A"),
            ("$A", "$A"),
            ("a$", "a$"),
            ("$(EMPTY)!", "!"),
            ("$(A)$(A)", "alphaalpha"),
            ("é$(A)é", "éalphaé"),
        ];
        for (input, want) in cases {
            assert_eq!(expand(input, vars), want, "{input}");
        }
    }

    #[test]
    fn env_var_names() {
        assert!(is_env_var_name("FOO_bar.1-x"));
        assert!(!is_env_var_name("1FOO"));
        assert!(!is_env_var_name("has space"));
        assert!(!is_env_var_name(""));
    }

    #[test]
    fn service_link_variables() {
        let service: Service = serde_json::from_value(serde_json::json!({
            "spec": {"clusterIP": "10.43.0.7", "ports": [
                {"port": 80, "name": "http"}, {"port": 53, "protocol": "UDP", "name": "dns-udp"}
            ]}
        }))
        .unwrap();
        let vars: HashMap<String, String> = service_vars("my-svc", &service).into_iter().collect();
        assert_eq!(vars["MY_SVC_SERVICE_HOST"], "10.43.0.7");
        assert_eq!(vars["MY_SVC_SERVICE_PORT"], "80");
        assert_eq!(vars["MY_SVC_SERVICE_PORT_DNS_UDP"], "53");
        assert_eq!(vars["MY_SVC_PORT"], "tcp://10.43.0.7:80");
        assert_eq!(vars["MY_SVC_PORT_53_UDP_PROTO"], "udp");
        assert_eq!(vars["MY_SVC_PORT_80_TCP_ADDR"], "10.43.0.7");
    }
}
