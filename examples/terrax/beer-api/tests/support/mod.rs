//! Helpers shared by the integration tests: a real MariaDB server, the beer-api binary as a
//! child process, and small HTTP clients.

pub mod mariadb;

use std::fs::File;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::ServiceExt;

/// A response from the in-process router.
pub struct Reply {
    /// Status code.
    pub status: StatusCode,
    /// Response headers.
    pub headers: HeaderMap,
    /// Whole body.
    pub body: Bytes,
}

impl Reply {
    /// The body as JSON; panics with the body text when it is not.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// A header's value, or "" when absent.
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

/// Sends one request through the router, as a client would over HTTP.
pub async fn send(app: &Router, method: Method, uri: &str, body: Option<&str>) -> Reply {
    let mut request = Request::builder().method(method).uri(uri);
    if body.is_some() {
        request = request.header("content-type", "application/json");
    }
    let request = request
        .body(Body::from(body.unwrap_or_default().to_owned()))
        .expect("request");
    let response = app.clone().oneshot(request).await.expect("router answers");
    let (parts, body) = response.into_parts();
    let body = body.collect().await.expect("body").to_bytes();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

/// GET over a real TCP connection; `None` while nothing listens. Plain HTTP/1.1 by hand keeps
/// an HTTP client crate out of the dependencies.
pub async fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.ok()?;
    let raw = String::from_utf8_lossy(&raw);
    let (head, body) = raw.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, body.to_owned()))
}

/// Polls `path` until it answers `want`, or panics after `timeout` with `context()`.
pub async fn wait_for_status(
    port: u16,
    path: &str,
    want: u16,
    timeout: Duration,
    context: impl Fn() -> String,
) -> String {
    let started = Instant::now();
    loop {
        match http_get(port, path).await {
            Some((status, body)) if status == want => return body,
            last if started.elapsed() > timeout => {
                panic!(
                    "{path} never answered {want} (last: {last:?}); {}",
                    context()
                )
            }
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// The beer-api binary running as a child process; killed when dropped.
pub struct ApiProcess {
    child: Child,
    log: tempfile::NamedTempFile,
    /// HTTP port on 127.0.0.1.
    pub port: u16,
}

impl ApiProcess {
    /// Starts the binary configured through the environment, as the Deployment does.
    pub fn start(port: u16, db_port: u16) -> Self {
        let log = tempfile::NamedTempFile::new().expect("log file");
        let stdout = File::options()
            .append(true)
            .open(log.path())
            .expect("open log");
        let stderr = stdout.try_clone().expect("clone log handle");
        let child = Command::new(env!("CARGO_BIN_EXE_beer-api"))
            .env_clear()
            .env("DB_HOST", "127.0.0.1")
            .env("DB_PORT", db_port.to_string())
            .env("DB_NAME", mariadb::DATABASE)
            .env("DB_USER", mariadb::USER)
            .env("DB_PASSWORD", mariadb::PASSWORD)
            .env("DB_RETRY_SECONDS", "1")
            .env("PORT", port.to_string())
            .env("BIND_ADDRESS", "127.0.0.1")
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .expect("start beer-api");
        Self { child, log, port }
    }

    /// Everything the process logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }
}

impl Drop for ApiProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
