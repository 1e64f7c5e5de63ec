//! Connections to ports inside a pod's network namespace (`kubectl port-forward`), made as
//! the kubelet makes them: to `localhost:<port>` as the pod's own processes see it.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use super::types::SandboxState;
use super::{Error, Result, Runtime, io_err};

/// How long a connection to a pod's port may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

impl Runtime {
    /// A TCP connection to `port` on the loopback of sandbox `id`'s network namespace (then
    /// on its pod IP, should the loopback refuse), so ports a pod binds to localhost only
    /// are reachable too.
    pub async fn connect_to_port(&self, id: &str, port: u16) -> Result<tokio::net::TcpStream> {
        let sandbox = self.pod_sandbox_status(id)?;
        if sandbox.state != SandboxState::Ready {
            return Err(Error::InvalidState(format!("sandbox {id} is not ready")));
        }
        let netns = sandbox.netns_path.clone();
        let addresses = [
            SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
            SocketAddr::from((sandbox.ip, port)),
        ];
        let (tx, rx) = tokio::sync::oneshot::channel();
        // setns changes the namespace of the calling thread only: a thread of its own, which
        // ends right after, keeps every other thread (and tokio's pools) where they are.
        std::thread::spawn(move || {
            let connect = || -> std::io::Result<std::net::TcpStream> {
                let ns = std::fs::File::open(&netns)?;
                nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)?;
                let mut last = None;
                for address in addresses {
                    match std::net::TcpStream::connect_timeout(&address, CONNECT_TIMEOUT) {
                        Ok(stream) => {
                            stream.set_nonblocking(true)?;
                            return Ok(stream);
                        }
                        Err(e) => last = Some(e),
                    }
                }
                Err(last.unwrap_or_else(|| std::io::Error::other("no address to connect to")))
            };
            let _ = tx.send(connect());
        });
        let what = format!("connect to port {port} in the pod's network namespace");
        let stream = rx
            .await
            .map_err(|_| Error::Setup(format!("{what}: the connecting thread died")))?
            .map_err(io_err(what.clone()))?;
        tokio::net::TcpStream::from_std(stream).map_err(io_err(what))
    }
}
