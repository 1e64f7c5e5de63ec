//! The Kubernetes API server: authentication, admission, REST, watch, discovery and OpenAPI over a Store.
