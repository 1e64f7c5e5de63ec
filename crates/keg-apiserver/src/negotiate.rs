//! Content negotiation: which representation a client's Accept header asks for.

use http::HeaderMap;

/// How to render objects in a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// The objects themselves.
    Object,
    /// A meta.k8s.io Table.
    Table,
    /// meta.k8s.io PartialObjectMetadata(List).
    Metadata,
}

/// Aggregated discovery versions a client may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Discovery {
    /// Legacy APIGroupList / APIResourceList.
    Legacy,
    /// apidiscovery.k8s.io/v2.
    V2,
    /// apidiscovery.k8s.io/v2beta1.
    V2Beta1,
}

struct MediaRange<'a> {
    mime: &'a str,
    params: Vec<(&'a str, &'a str)>,
}

fn media_ranges(headers: &HeaderMap) -> Vec<MediaRange<'_>> {
    let accept = headers
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    accept
        .split(',')
        .map(|range| {
            let mut parts = range.split(';').map(str::trim);
            let mime = parts.next().unwrap_or_default();
            let params = parts.filter_map(|p| p.split_once('=')).collect();
            MediaRange { mime, params }
        })
        .collect()
}

impl MediaRange<'_> {
    fn param(&self, key: &str) -> Option<&str> {
        self.params.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
    }
    fn is_json(&self) -> bool {
        matches!(self.mime, "application/json" | "*/*" | "application/*" | "")
    }
}

/// The object representation the Accept header prefers (first acceptable range wins).
pub fn output(headers: &HeaderMap) -> Output {
    for range in media_ranges(headers) {
        if !range.is_json() {
            continue;
        }
        match (range.param("as"), range.param("g"), range.param("v")) {
            (Some("Table"), Some("meta.k8s.io"), Some("v1" | "v1beta1")) => return Output::Table,
            (
                Some("PartialObjectMetadata" | "PartialObjectMetadataList"),
                Some("meta.k8s.io"),
                Some("v1" | "v1beta1"),
            ) => {
                return Output::Metadata;
            }
            (None, _, _) => return Output::Object,
            _ => continue,
        }
    }
    Output::Object
}

/// The discovery format the Accept header prefers.
pub fn discovery(headers: &HeaderMap) -> Discovery {
    for range in media_ranges(headers) {
        if !range.is_json() {
            continue;
        }
        match (range.param("as"), range.param("g"), range.param("v")) {
            (Some("APIGroupDiscoveryList"), Some("apidiscovery.k8s.io"), Some("v2")) => {
                return Discovery::V2;
            }
            (Some("APIGroupDiscoveryList"), Some("apidiscovery.k8s.io"), Some("v2beta1")) => {
                return Discovery::V2Beta1;
            }
            (None, _, _) => return Discovery::Legacy,
            _ => continue,
        }
    }
    Discovery::Legacy
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(accept: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(http::header::ACCEPT, accept.parse().unwrap());
        h
    }

    #[test]
    fn picks_tables_and_discovery() {
        let kubectl = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert_eq!(output(&headers(kubectl)), Output::Table);
        assert_eq!(output(&headers("application/json")), Output::Object);
        let disco = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        assert_eq!(discovery(&headers(disco)), Discovery::V2);
        assert_eq!(discovery(&headers("application/json")), Discovery::Legacy);
    }
}
