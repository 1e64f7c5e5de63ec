//! Kubernetes API machinery as pure functions over JSON objects: selectors, patches, validation, tables.

pub mod cron;
pub mod csr;
pub mod fields;
pub mod labels;
pub mod patch;
pub mod table;
pub mod validation;
