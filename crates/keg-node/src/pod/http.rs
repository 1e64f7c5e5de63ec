//! The HTTP GET of httpGet probes and hooks, as the kubelet's prober makes it: HTTP/1.1,
//! `User-Agent: kube-probe/1.33`, 200–399 pass; over HTTPS without verifying the
//! certificate (the kubelet's prober skips verification too); errors in Go's words.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use keg_dial::go_error;
use rustls::pki_types::ServerName;

/// One GET.
pub(crate) struct Get<'a> {
    /// Over TLS.
    pub(crate) https: bool,
    /// The host (the pod IP unless the probe names one).
    pub(crate) host: &'a str,
    /// The port.
    pub(crate) port: u16,
    /// The path (with query).
    pub(crate) path: &'a str,
    /// Extra headers.
    pub(crate) headers: &'a [(String, String)],
}

impl Get<'_> {
    fn url(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://{}:{}{}", self.host, self.port, self.path)
    }

    /// Sends it; the error is the message the kubelet reports.
    pub(crate) async fn send(&self, timeout: Duration) -> Result<(), String> {
        let url = self.url();
        match tokio::time::timeout(timeout, self.exchange(&url)).await {
            Ok(result) => result,
            Err(_) => Err(format!(
                "Get {url:?}: context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
            )),
        }
    }

    async fn exchange(&self, url: &str) -> Result<(), String> {
        let (host, port) = (self.host, self.port);
        let tcp = TcpStream::connect((host, port)).await.map_err(|e| {
            format!(
                "Get {url:?}: dial tcp {host}:{port}: connect: {}",
                go_error(&e)
            )
        })?;
        if !self.https {
            return self.over(tcp, url).await;
        }
        let connector =
            tokio_rustls::TlsConnector::from(Arc::new(keg_dial::any_certificate_client()));
        let name = ServerName::try_from(host.to_string())
            .map_err(|e| format!("Get {url:?}: invalid host: {e}"))?;
        let tls = connector
            .connect(name, tcp)
            .await
            .map_err(|e| format!("Get {url:?}: {e}"))?;
        self.over(tls, url).await
    }

    async fn over(
        &self,
        mut stream: impl AsyncRead + AsyncWrite + Unpin,
        url: &str,
    ) -> Result<(), String> {
        let mut request = format!(
            "GET {} HTTP/1.1\r\nHost: {}:{}\r\n",
            self.path, self.host, self.port
        );
        let has = |name: &str| {
            self.headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case(name))
        };
        if !has("User-Agent") {
            request.push_str("User-Agent: kube-probe/1.33\r\n");
        }
        if !has("Accept") {
            request.push_str("Accept: */*\r\n");
        }
        for (k, v) in self.headers {
            request.push_str(&format!("{k}: {v}\r\n"));
        }
        request.push_str("Connection: close\r\n\r\n");
        let io = |e: std::io::Error| format!("Get {url:?}: {e}");
        stream.write_all(request.as_bytes()).await.map_err(io)?;
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while !head.windows(2).any(|w| w == b"\r\n") {
            let n = stream.read(&mut buf).await.map_err(io)?;
            if n == 0 {
                return Err(format!("Get {url:?}: EOF"));
            }
            head.extend_from_slice(&buf[..n]);
        }
        let line = String::from_utf8_lossy(&head);
        let code: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| format!("Get {url:?}: malformed HTTP response"))?;
        if (200..400).contains(&code) {
            Ok(())
        } else {
            Err(format!("HTTP probe failed with statuscode: {code}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::net::TcpListener;

    use super::*;

    /// Serves one answer with `status`, over TLS (a self-signed certificate) if asked.
    async fn serve_once(status: &'static str, tls: bool) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let acceptor = tls.then(|| {
            let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
            let key =
                rustls::pki_types::PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into());
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(vec![cert.cert.der().clone()], key)
                .unwrap();
            tokio_rustls::TlsAcceptor::from(Arc::new(config))
        });
        tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let answer = format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n");
            let mut buf = [0u8; 1024];
            match acceptor {
                Some(a) => {
                    let mut s = a.accept(tcp).await.unwrap();
                    let _ = s.read(&mut buf).await;
                    let _ = s.write_all(answer.as_bytes()).await;
                    let _ = s.shutdown().await;
                }
                None => {
                    let mut s = tcp;
                    let _ = s.read(&mut buf).await;
                    let _ = s.write_all(answer.as_bytes()).await;
                }
            }
        });
        port
    }

    fn get(https: bool, port: u16, path: &str) -> Get<'_> {
        Get {
            https,
            host: "127.0.0.1",
            port,
            path,
            headers: &[],
        }
    }

    #[tokio::test]
    async fn http_and_https_results() {
        let t = Duration::from_secs(5);
        let port = serve_once("200 OK", false).await;
        assert_eq!(get(false, port, "/healthz").send(t).await, Ok(()));
        let port = serve_once("503 Service Unavailable", false).await;
        assert_eq!(
            get(false, port, "/").send(t).await,
            Err("HTTP probe failed with statuscode: 503".into())
        );
        let port = serve_once("204 No Content", true).await;
        assert_eq!(
            get(true, port, "/secure").send(t).await,
            Ok(()),
            "self-signed is fine"
        );
        let closed = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        assert_eq!(
            get(false, closed, "/x").send(t).await.unwrap_err(),
            format!(
                "Get \"http://127.0.0.1:{closed}/x\": dial tcp 127.0.0.1:{closed}: connect: connection refused"
            )
        );
    }
}
