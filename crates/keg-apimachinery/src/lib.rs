//! Kubernetes API machinery as pure functions over JSON objects: selectors, patches, validation, tables.
