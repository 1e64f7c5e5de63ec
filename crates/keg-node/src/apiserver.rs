//! keg-apiserver's `PodLogs` over [`NodeLogs`], so the in-process wiring can serve
//! `kubectl logs` (feature `apiserver`).

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use keg_apiserver::error::{ApiError, Result};
use keg_apiserver::{LogOptions, PodLogs};
use serde_json::Value;

use crate::{Error, LogRequest, NodeAgent, NodeLogs};

impl NodeAgent {
    /// This agent's logs as the API server's `pods/log` provider.
    pub fn pod_logs(&self) -> Arc<dyn PodLogs> {
        Arc::new(self.logs())
    }
}

#[async_trait]
impl PodLogs for NodeLogs {
    async fn logs(&self, pod: &Value, options: LogOptions) -> Result<BoxStream<'static, Bytes>> {
        let pod: Pod = serde_json::from_value(pod.clone())
            .map_err(|e| ApiError::bad_request(format!("unreadable pod: {e}")))?;
        let since = match (&options.since_time, options.since_seconds) {
            (Some(t), _) => Some(
                t.parse::<Timestamp>()
                    .map_err(|e| ApiError::bad_request(format!("invalid sinceTime {t:?}: {e}")))?,
            ),
            (None, Some(s)) => Some(Timestamp::now() - jiff::SignedDuration::from_secs(s.max(0))),
            (None, None) => None,
        };
        let request = LogRequest {
            container: options.container.unwrap_or_default(),
            follow: options.follow,
            previous: options.previous,
            tail_lines: options.tail_lines.map(|t| t.max(0) as usize),
            since,
            timestamps: options.timestamps,
            limit_bytes: options.limit_bytes.map(|l| l.max(0) as u64),
        };
        match self.stream(&pod, request).await {
            Ok(stream) => Ok(stream.map(Bytes::from).boxed()),
            Err(Error::BadRequest(message)) => Err(ApiError::bad_request(message)),
            Err(e) => Err(ApiError::internal(e.to_string())),
        }
    }
}
