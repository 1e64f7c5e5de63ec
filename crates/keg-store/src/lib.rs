//! Revisioned key-value store: the one place keg keeps state. Knows nothing of Kubernetes.
