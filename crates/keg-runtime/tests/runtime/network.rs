//! The pod network: pods reach each other and the host, and the host reaches pods.

use std::io::{Read, Write};
use std::time::Duration;

use crate::common::with_env;

const SERVE: &str = "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 8080 -h /www";

#[tokio::test]
async fn pods_reach_each_other_and_the_host() {
    with_env("pods_reach_each_other_and_the_host", |env| async move {
        let a = env.sandbox("pod-a").await;
        let b = env.sandbox("pod-b").await;
        assert_ne!(a.ip, b.ip);
        assert!(env.runtime.network().cluster_cidr.contains(a.ip));
        env.run(&a, "server", SERVE).await;
        let client = env.run(&b, "client", "while true; do sleep 1; done").await;

        let gateway = env.runtime.network().gateway().to_string();
        for target in [a.ip.to_string(), gateway.clone()] {
            let (code, _) = env
                .exec(&client, &["ping", "-c", "1", "-W", "2", &target])
                .await;
            assert_eq!(code, 0, "ping {target} from pod-b");
        }
        let url = format!("http://{}:8080/", a.ip);
        assert_eq!(
            retry_exec(&env, &client, &["wget", "-q", "-O", "-", &url]).await,
            "pod-a\n"
        );

        // Host to pod, from this (host) process.
        let mut stream =
            std::net::TcpStream::connect((a.ip, 8080)).expect("connect to pod-a from the host");
        stream.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        assert!(response.ends_with("pod-a\n"), "{response}");

        // Pod to host, at the gateway address.
        let listener = std::net::TcpListener::bind((gateway.as_str(), 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut buf = [0u8; 1024];
            let _ = conn.read(&mut buf).unwrap();
            conn.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 10\r\n\r\nfrom-host\n")
                .unwrap();
        });
        let (code, body) = env
            .exec(
                &client,
                &[
                    "wget",
                    "-q",
                    "-O",
                    "-",
                    &format!("http://{gateway}:{port}/"),
                ],
            )
            .await;
        assert_eq!((code, body.as_str()), (0, "from-host\n"));
        server.join().unwrap();

        // Removing a sandbox frees its address and veth.
        env.runtime.remove_pod_sandbox(&a.id).await.unwrap();
        assert!(!env.root().join("ipam").join(a.ip.to_string()).exists());
        let (code, _) = env
            .exec(&client, &["ping", "-c", "1", "-W", "1", &a.ip.to_string()])
            .await;
        assert_ne!(code, 0, "pod-a is gone");
    })
    .await;
}

/// Runs a command until it succeeds (the server may still be starting); returns its stdout.
async fn retry_exec(env: &crate::common::Env, id: &str, cmd: &[&str]) -> String {
    for _ in 0..50 {
        let (code, out) = env.exec(id, cmd).await;
        if code == 0 {
            return out;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("{cmd:?} never succeeded");
}
