//! `kubectl exec` end to end, as a user checks it, with kubectl 1.33 (WebSocket) and 1.27
//! (SPDY): the command runs in the pod's container (its hostname, PID namespace, environment
//! and working directory), stdin reaches it, its exit code becomes kubectl's, `-c` picks a
//! container, errors read as upstream's; `-t` gives it a terminal of kubectl's size, and a
//! command whose kubectl goes away is killed. `kubectl port-forward` reaches a port the pod
//! serves on its loopback.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::{KUBECTL_VERSIONS, Kubectl, PodServer, Run, Server, eventually, write_file};

const MANIFEST: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: exec-demo}
---
apiVersion: keg.dev/v1
kind: FargateProfile
metadata: {name: fp-exec-demo}
spec:
  selectors: [{namespace: exec-demo}]
---
apiVersion: v1
kind: Pod
metadata: {name: solo, namespace: exec-demo}
spec:
  containers:
  - name: main
    image: busybox:test
    command: ["sleep", "3600"]
    workingDir: /tmp
    env: [{name: GREETING, value: hello from the pod}]
---
apiVersion: v1
kind: Pod
metadata: {name: duo, namespace: exec-demo}
spec:
  containers:
  - name: first
    image: busybox:test
    command: ["sleep", "3600"]
    env: [{name: WHO, value: first}]
  - name: second
    image: busybox:test
    command: ["sleep", "3600"]
    env: [{name: WHO, value: second}]
---
# Serves on the pod's loopback only: port-forward reaches it as the kubelet does.
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: exec-demo}
spec:
  containers:
  - name: httpd
    image: busybox:test
    command: ["sh", "-c", "mkdir -p /www && echo hello from web > /www/index.html && exec httpd -f -p 127.0.0.1:8080 -h /www"]
---
# Its main container waits for an init container that never ends.
apiVersion: v1
kind: Pod
metadata: {name: initializing, namespace: exec-demo}
spec:
  initContainers:
  - name: wait
    image: busybox:test
    command: ["sleep", "3600"]
  containers:
  - name: main
    image: busybox:test
    command: ["sleep", "3600"]
"#;

/// `kubectl exec -n exec-demo <args>` with one kubectl.
fn exec(k: &Kubectl, args: &[&str]) -> Run {
    let mut all = vec!["exec", "-n", "exec-demo"];
    all.extend(args);
    k.run(&all)
}

/// `kubectl exec -i -n exec-demo <args>` with `input` on stdin, asserting success.
fn exec_stdin(k: &Kubectl, args: &[&str], input: &str) -> String {
    let mut all = vec!["exec", "-i", "-n", "exec-demo"];
    all.extend(args);
    k.ok_stdin(&all, input)
}

#[test]
fn kubectl_exec_runs_commands_in_the_container() {
    let Some(server) = PodServer::start("kubectl_exec_runs_commands_in_the_container", &[]) else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let k = server.kubectl("1.33");
    let manifest = write_file(work.path(), "pods.yaml", MANIFEST);
    k.ok(&["apply", "-f", manifest.to_str().unwrap()]);
    for pod in ["solo", "duo", "web"] {
        k.ok(&[
            "wait",
            "--for=condition=Ready",
            &format!("pod/{pod}"),
            "-n",
            "exec-demo",
            "--timeout=120s",
        ]);
    }
    for version in KUBECTL_VERSIONS {
        // 1.33 speaks WebSocket (v5.channel.k8s.io), 1.27 SPDY/3.1.
        let k = server.kubectl(version);
        runs_in_the_container(&k);
        streams_and_exit_codes(&k);
        picks_containers_and_words_errors(&k);
        port_forward_reaches_the_pods_loopback(&k, &server);
        terminal_of_kubectls_size(&k);
        killed_when_kubectl_goes(&k);
    }
    speaks_websocket(&k);
}

/// The container's UTS and PID namespaces, environment, working directory and user.
fn runs_in_the_container(k: &Kubectl) {
    let run = exec(k, &["solo", "--", "cat", "/etc/hostname"]);
    assert!(run.status.success(), "{}", run.stderr);
    assert_eq!(run.stdout.trim(), "solo");
    let run = exec(k, &["solo", "--", "cat", "/proc/1/cmdline"]);
    assert_eq!(
        run.stdout.replace('\0', " ").trim(),
        "sleep 3600",
        "PID 1 is the container's command: {}",
        run.stderr
    );
    let run = exec(k, &["solo", "--", "sh", "-c", "echo $GREETING; pwd; id -u"]);
    assert_eq!(
        run.stdout, "hello from the pod\n/tmp\n0\n",
        "{}",
        run.stderr
    );
}

/// Standard error apart from output, stdin to its end, the exit code as kubectl's, and
/// `kubectl cp`.
fn streams_and_exit_codes(k: &Kubectl) {
    let run = exec(k, &["solo", "--", "sh", "-c", "echo out; echo err >&2"]);
    assert_eq!(
        (run.stdout.as_str(), run.stderr.as_str()),
        ("out\n", "err\n")
    );
    let out = exec_stdin(k, &["solo", "--", "cat"], "echoed through the pod\n");
    assert_eq!(out, "echoed through the pod\n");
    let big = "0123456789abcdef".repeat(64 * 1024);
    let out = exec_stdin(k, &["solo", "--", "wc", "-c"], &big);
    assert_eq!(out.trim(), big.len().to_string(), "a megabyte of stdin");
    let run = exec(k, &["solo", "--", "sh", "-c", "exit 3"]);
    assert_eq!(run.status.code(), Some(3), "{}", run.stderr);
    assert!(
        run.stderr.contains("command terminated with exit code 3"),
        "{}",
        run.stderr
    );
    let run = exec(k, &["solo", "--", "no-such-command"]);
    assert!(!run.status.success(), "{}", run.stdout);

    // kubectl cp is tar through exec, both ways.
    let dir = tempfile::tempdir().unwrap();
    let local = write_file(dir.path(), "notes.txt", "copied in and out\n");
    k.ok(&[
        "cp",
        local.to_str().unwrap(),
        "exec-demo/solo:/tmp/notes.txt",
    ]);
    let run = exec(k, &["solo", "--", "cat", "/tmp/notes.txt"]);
    assert_eq!(run.stdout, "copied in and out\n", "{}", run.stderr);
    let back = dir.path().join("back.txt");
    k.ok(&[
        "cp",
        "exec-demo/solo:/tmp/notes.txt",
        back.to_str().unwrap(),
    ]);
    assert_eq!(
        std::fs::read_to_string(back).unwrap(),
        "copied in and out\n"
    );
}

/// `-c` picks the container (kubectl takes the first without it); errors as upstream's.
fn picks_containers_and_words_errors(k: &Kubectl) {
    for who in ["first", "second"] {
        let run = exec(k, &["duo", "-c", who, "--", "sh", "-c", "echo $WHO"]);
        assert_eq!(run.stdout, format!("{who}\n"), "{}", run.stderr);
    }
    let run = exec(k, &["duo", "--", "sh", "-c", "echo $WHO"]);
    assert_eq!(run.stdout, "first\n", "{}", run.stderr);
    let stderr = k.fails(&["exec", "-n", "exec-demo", "missing", "--", "true"]);
    assert!(stderr.contains(r#"pods "missing" not found"#), "{stderr}");
    let stderr = k.fails(&[
        "exec",
        "-n",
        "exec-demo",
        "duo",
        "-c",
        "third",
        "--",
        "true",
    ]);
    assert!(
        stderr.contains("container third is not valid for pod duo"),
        "{stderr}"
    );
    eventually(
        "the init container to run",
        Duration::from_secs(120),
        || {
            let pod = k.json(&["get", "pod", "initializing", "-n", "exec-demo"]);
            pod["status"]["initContainerStatuses"][0]["state"]["running"]
                .is_object()
                .then_some(())
        },
    );
    let stderr = k.fails(&[
        "exec",
        "-n",
        "exec-demo",
        "initializing",
        "-c",
        "main",
        "--",
        "true",
    ]);
    assert!(
        stderr.contains(r#"container not found ("main")"#),
        "{stderr}"
    );
    let run = exec(
        k,
        &["initializing", "-c", "wait", "--", "cat", "/etc/hostname"],
    );
    assert_eq!(run.stdout.trim(), "initializing", "{}", run.stderr);
}

/// kubectl 1.33 gets its WebSocket (v5) and does not fall back to SPDY (a `POST`).
fn speaks_websocket(k: &Kubectl) {
    let run = exec(k, &["-v=6", "solo", "--", "true"]);
    assert!(run.status.success(), "{}", run.stderr);
    let upgrade = run
        .stderr
        .lines()
        .find(|l| l.contains("/exec?"))
        .unwrap_or_default();
    assert!(
        upgrade.contains(r#"verb="GET""#) && upgrade.contains("101 Switching Protocols"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("The subprotocol is v5.channel.k8s.io"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains(r#"verb="POST""#), "{}", run.stderr);
}

/// `-t`: a terminal of the size of kubectl's own (under `script`, which gives kubectl one).
fn terminal_of_kubectls_size(k: &Kubectl) {
    let line = format!(
        "stty rows 30 cols 100; exec {} --kubeconfig {} exec -it -n exec-demo solo -- sh -c 'tty; stty size; exit 5'",
        k.bin.display(),
        k.kubeconfig.display()
    );
    let mut script = std::process::Command::new("script")
        .args(["-qefc", &line, "/dev/null"])
        .env("HOME", std::env::temp_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Held open: at the end of its input script would type ^D into kubectl's terminal.
    let input = script.stdin.take();
    let out = script.wait_with_output().unwrap();
    drop(input);
    let text = String::from_utf8_lossy(&out.stdout).replace('\r', "");
    assert!(text.contains("/dev/pts/"), "a terminal: {text:?}");
    assert!(text.contains("30 100"), "its size: {text:?}");
    assert_eq!(out.status.code(), Some(5), "{text:?}");
}

/// A command whose kubectl goes away is killed, not left running in the container.
fn killed_when_kubectl_goes(k: &Kubectl) {
    let mut child = std::process::Command::new(&k.bin)
        .arg("--kubeconfig")
        .arg(&k.kubeconfig)
        .args(["exec", "-n", "exec-demo", "solo", "--", "sleep", "4321"])
        .env("HOME", std::env::temp_dir())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let sleeping = || exec(k, &["solo", "--", "ps"]).stdout;
    eventually(
        "the exec'd command to start",
        Duration::from_secs(30),
        || sleeping().contains("sleep 4321").then_some(()),
    );
    child.kill().unwrap();
    child.wait().unwrap();
    eventually(
        "the exec'd command to be killed",
        Duration::from_secs(30),
        || (!sleeping().contains("sleep 4321")).then_some(()),
    );
}

/// `kubectl port-forward` to a port the pod serves on its own loopback, for two connections.
fn port_forward_reaches_the_pods_loopback(k: &Kubectl, server: &Server) {
    use std::io::{BufRead, Read, Write};
    let port = common::free_port();
    let mut child = std::process::Command::new(&k.bin)
        .arg("--kubeconfig")
        .arg(&k.kubeconfig)
        .args([
            "port-forward",
            "-n",
            "exec-demo",
            "pod/web",
            &format!("{port}:8080"),
        ])
        .env("HOME", std::env::temp_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    assert!(first.starts_with("Forwarding from"), "{first:?}");
    // Read on: kubectl dies of SIGPIPE when its "Handling connection" lines meet a closed pipe.
    let drain = std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    for _ in 0..2 {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
        let mut response = String::new();
        let read = stream.read_to_string(&mut response);
        if !response.ends_with("hello from web\n") {
            child.kill().unwrap();
            let out = child.wait_with_output().unwrap();
            panic!(
                "{read:?}: {response:?}; kubectl: {}\nserver: {}",
                String::from_utf8_lossy(&out.stderr),
                server.log()
            );
        }
    }
    child.kill().unwrap();
    let out = child.wait_with_output().unwrap();
    let _ = drain.join();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("error"), "{stderr}");
}
