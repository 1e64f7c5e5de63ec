//! keg-runtime's integration tests. They need root (namespaces, mounts, cgroups, veths); off
//! root they are skipped with a reason, except in CI.

mod adopt;
mod common;
mod images;
mod lifecycle;
mod network;
mod pull;
mod settings;
