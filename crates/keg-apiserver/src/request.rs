//! What a request asks for: the resource, namespace, name and subresource in its path, and the
//! options in its query, as upstream's RequestInfo does.

use std::collections::HashMap;

/// The parts of a resource path: `/api/v1/namespaces/ns/pods/name/status` and the like.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RequestInfo {
    /// API group; empty for core.
    pub group: String,
    /// API version.
    pub version: String,
    /// Namespace from the path, if any.
    pub namespace: Option<String>,
    /// Plural resource name.
    pub resource: String,
    /// Object name, if the path names one.
    pub name: Option<String>,
    /// Subresource, if any.
    pub subresource: Option<String>,
    /// Of a `proxy` subresource, the rest of the path after `.../proxy`, as sent (still
    /// escaped, trailing slash kept): `/a/b/` of `.../pods/web/proxy/a/b/`, empty of
    /// `.../pods/web/proxy`. Only `proxy` takes a path after its name, as upstream routes it.
    pub proxy_path: Option<String>,
}

impl RequestInfo {
    /// Parses a resource path; `None` when the path is not a resource path.
    pub fn parse(path: &str) -> Option<RequestInfo> {
        let parts: Vec<&str> = path
            .trim_matches('/')
            .split('/')
            .filter(|p| !p.is_empty())
            .collect();
        let (group, version, rest) = match parts.as_slice() {
            ["api", version, rest @ ..] => ("", *version, rest),
            ["apis", group, version, rest @ ..] => (*group, *version, rest),
            _ => return None,
        };
        let mut info = RequestInfo {
            group: group.to_string(),
            version: version.to_string(),
            ..Default::default()
        };
        let rest: &[&str] = match rest {
            // namespaces/{ns}/{resource}... addresses a namespaced resource; namespaces/{name}[/sub]
            // addresses the namespace object itself.
            ["namespaces", ns, resource, tail @ ..]
                if !matches!(*resource, "status" | "finalize") || !tail.is_empty() =>
            {
                info.namespace = Some(ns.to_string());
                info.resource = resource.to_string();
                tail
            }
            [resource, tail @ ..] => {
                info.resource = resource.to_string();
                tail
            }
            [] => return None,
        };
        match rest {
            [] => {}
            [name] => info.name = Some(name.to_string()),
            [name, sub] => {
                info.name = Some(name.to_string());
                info.subresource = Some(sub.to_string());
            }
            [_, "proxy", ..] => {}
            _ => return None,
        }
        if let [name, "proxy", tail @ ..] = rest {
            info.name = Some(name.to_string());
            info.subresource = Some("proxy".to_string());
            // The `proxy` segment is the one `tail.len()` from the end of the path's segments.
            let proxy_at = parts.len() - tail.len() - 1;
            info.proxy_path = Some(after_segment(path, proxy_at).to_string());
        }
        Some(info)
    }
}

/// What follows the `index`-th non-empty segment of `path`, as written.
fn after_segment(path: &str, index: usize) -> &str {
    let mut seen = 0;
    let mut offset = 0;
    for segment in path.split('/') {
        let end = offset + segment.len();
        if !segment.is_empty() {
            if seen == index {
                return &path[end..];
            }
            seen += 1;
        }
        offset = end + 1;
    }
    ""
}

/// Query options, by name, with every value of a repeated key.
#[derive(Debug, Clone, Default)]
pub struct Query(HashMap<String, Vec<String>>);

impl Query {
    /// Parses a raw query string.
    pub fn parse(raw: Option<&str>) -> Query {
        let mut map: HashMap<String, Vec<String>> = HashMap::new();
        for (k, v) in form_urlencoded_pairs(raw.unwrap_or_default()) {
            map.entry(k).or_default().push(v);
        }
        Query(map)
    }

    /// A value, if present and non-empty; of a repeated option, the last.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values(key)
            .last()
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// A boolean option, true as Go's `strconv.ParseBool` reads it (the Python client sends
    /// `watch=True`).
    pub fn flag(&self, key: &str) -> bool {
        matches!(
            self.get(key),
            Some("1" | "t" | "T" | "true" | "TRUE" | "True")
        )
    }

    /// A numeric option; a malformed number is `Err` with the key named.
    pub fn number(&self, key: &str) -> Result<Option<i64>, String> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| format!("invalid value for {key}: {v:?}")),
        }
    }

    /// Every value of a repeated option, in order (`command=sh&command=-c`).
    pub fn values(&self, key: &str) -> &[String] {
        self.0.get(key).map(Vec::as_slice).unwrap_or_default()
    }

    /// Whether the request is a dry run (`dryRun=All`).
    pub fn dry_run(&self) -> bool {
        self.get("dryRun") == Some("All")
    }
}

fn form_urlencoded_pairs(raw: &str) -> Vec<(String, String)> {
    raw.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(decoded)) => {
                out.push(decoded);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_paths() {
        let i = RequestInfo::parse("/api/v1/namespaces/default/pods/web/status").unwrap();
        assert_eq!(
            (
                i.namespace.as_deref(),
                i.resource.as_str(),
                i.name.as_deref()
            ),
            (Some("default"), "pods", Some("web"))
        );
        assert_eq!(i.subresource.as_deref(), Some("status"));
        let i = RequestInfo::parse("/api/v1/namespaces/tb-demo").unwrap();
        assert_eq!(
            (i.namespace, i.resource.as_str(), i.name.as_deref()),
            (None, "namespaces", Some("tb-demo"))
        );
        let i = RequestInfo::parse("/api/v1/namespaces/tb-demo/finalize").unwrap();
        assert_eq!(
            (
                i.resource.as_str(),
                i.name.as_deref(),
                i.subresource.as_deref()
            ),
            ("namespaces", Some("tb-demo"), Some("finalize"))
        );
        let i = RequestInfo::parse("/apis/apps/v1/deployments").unwrap();
        assert_eq!(
            (i.group.as_str(), i.resource.as_str(), i.name),
            ("apps", "deployments", None)
        );
        let i = RequestInfo::parse("/api/v1/namespaces/ns/pods").unwrap();
        assert_eq!((i.namespace.as_deref(), i.name), (Some("ns"), None));
        assert!(RequestInfo::parse("/healthz").is_none());
    }

    #[test]
    fn proxy_paths_keep_the_rest_of_the_path() {
        let i = RequestInfo::parse("/api/v1/namespaces/default/pods/web:8080/proxy/a/b/").unwrap();
        assert_eq!(
            (
                i.namespace.as_deref(),
                i.resource.as_str(),
                i.name.as_deref(),
                i.subresource.as_deref(),
                i.proxy_path.as_deref()
            ),
            (
                Some("default"),
                "pods",
                Some("web:8080"),
                Some("proxy"),
                Some("/a/b/")
            )
        );
        let i = RequestInfo::parse("/api/v1/namespaces/ns/services/https:web:tls/proxy").unwrap();
        assert_eq!(
            (
                i.name.as_deref(),
                i.subresource.as_deref(),
                i.proxy_path.as_deref()
            ),
            (Some("https:web:tls"), Some("proxy"), Some(""))
        );
        let i = RequestInfo::parse("/api/v1/namespaces/ns/pods/web/proxy/").unwrap();
        assert_eq!(i.proxy_path.as_deref(), Some("/"));
        // A pod named `proxy`, and a path with `proxy` in it; escapes stay as sent.
        let i = RequestInfo::parse("/api/v1/namespaces/ns/pods/proxy/proxy/x/proxy/a%20b").unwrap();
        assert_eq!(
            (i.name.as_deref(), i.proxy_path.as_deref()),
            (Some("proxy"), Some("/x/proxy/a%20b"))
        );
        let i = RequestInfo::parse("/api/v1/nodes/n1/proxy/metrics").unwrap();
        assert_eq!(
            (
                i.namespace,
                i.resource.as_str(),
                i.name.as_deref(),
                i.proxy_path.as_deref()
            ),
            (None, "nodes", Some("n1"), Some("/metrics"))
        );
        // Other subresources take no path after them; other paths read as before.
        assert!(RequestInfo::parse("/api/v1/namespaces/ns/pods/web/log/extra").is_none());
        assert!(RequestInfo::parse("/api/v1/namespaces/ns/pods/web/status/x").is_none());
        let i = RequestInfo::parse("/api/v1/namespaces/ns/pods/web/log").unwrap();
        assert_eq!(
            (i.subresource.as_deref(), i.proxy_path),
            (Some("log"), None)
        );
        let i = RequestInfo::parse("/api/v1/namespaces/ns/pods/proxy").unwrap();
        assert_eq!(
            (i.name.as_deref(), i.subresource, i.proxy_path),
            (Some("proxy"), None, None)
        );
    }

    #[test]
    fn decodes_queries() {
        let q = Query::parse(Some(
            "labelSelector=app%3Dweb%2Ctier+in+(a)&watch=1&limit=5",
        ));
        assert_eq!(q.get("labelSelector"), Some("app=web,tier in (a)"));
        assert!(q.flag("watch"));
        assert_eq!(q.number("limit"), Ok(Some(5)));
        let repeated = Query::parse(Some("command=sh&command=-c&command=echo+hi&tty=0&tty=1"));
        assert_eq!(repeated.values("command"), ["sh", "-c", "echo hi"]);
        assert!(
            repeated.flag("tty"),
            "the last value of a repeated option counts"
        );
        assert!(repeated.values("missing").is_empty());
    }

    #[test]
    fn flags_read_as_go_parses_booleans() {
        for yes in ["1", "t", "T", "true", "TRUE", "True"] {
            assert!(
                Query::parse(Some(&format!("watch={yes}"))).flag("watch"),
                "{yes}"
            );
        }
        for no in ["0", "false", "False", "", "yes"] {
            assert!(
                !Query::parse(Some(&format!("watch={no}"))).flag("watch"),
                "{no}"
            );
        }
    }
}
