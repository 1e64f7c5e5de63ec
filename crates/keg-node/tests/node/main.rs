//! keg-node's integration tests: a real in-process API server, a real runtime and real
//! containers. They need root; off root they are skipped with a reason, except in CI.

mod adopt;
mod common;
mod config;
mod images;
mod kubectl;
mod lifecycle;
mod nodes;
mod probes;
mod restarts;
mod updates;
