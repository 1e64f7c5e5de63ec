//! keg's own API types: CRDs, the eksctl ClusterConfig, Fargate profile matching and sizing, instance types.
