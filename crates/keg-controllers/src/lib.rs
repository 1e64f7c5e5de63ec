//! Controllers (deployments, replica sets, garbage collection, namespaces, endpoints, volumes, load balancers), all API clients.
