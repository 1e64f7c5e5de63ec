//! Container runtime: OCI images, root file systems, namespaces, cgroups and the pod network.
