//! certificates.k8s.io as a user drives it with kubectl 1.27 and 1.33 and openssl: a
//! request for `kubernetes.io/kube-apiserver-client` approved with `kubectl certificate
//! approve` is issued a certificate from the cluster CA, for the duration asked, that
//! authenticates as its CN and O; a denied one gets none; a kubelet's client request is
//! approved by the controller after a SubjectAccessReview; a signer refuses what it may not
//! sign with a Failed condition; approving needs `approve` on the signer; bad requests are
//! refused with upstream's causes and nothing is stored.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use base64::Engine;
use common::{Kubectl, Server, eventually, write_file};
use serde_json::Value;

/// A new key and a PEM certificate request for `subject` (openssl's `/CN=x/O=y` form), with
/// `extra` arguments for openssl; returns the key's path and the request's PEM.
fn openssl_request(dir: &Path, name: &str, subject: &str, extra: &[&str]) -> (PathBuf, String) {
    let key = dir.join(format!("{name}.key"));
    let request = dir.join(format!("{name}.csr"));
    let out = Command::new("openssl")
        .args([
            "req", "-new", "-newkey", "rsa:2048", "-nodes", "-subj", subject,
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&request)
        .args(extra)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (key, std::fs::read_to_string(request).unwrap())
}

fn manifest(name: &str, request_pem: &str, signer: &str, usages: &[&str], seconds: u32) -> String {
    let request = base64::engine::general_purpose::STANDARD.encode(request_pem);
    format!(
        "apiVersion: certificates.k8s.io/v1\nkind: CertificateSigningRequest\nmetadata:\n  name: {name}\n\
         spec:\n  request: {request}\n  signerName: {signer}\n  expirationSeconds: {seconds}\n  usages: [{}]\n",
        usages.join(", ")
    )
}

fn csr(kubectl: &Kubectl, name: &str) -> Value {
    kubectl.json(&["get", "csr", name])
}

/// The issued certificate PEM, once there is one.
fn issued(kubectl: &Kubectl, name: &str) -> String {
    eventually(
        &format!("a certificate for {name}"),
        Duration::from_secs(20),
        || {
            let cert = csr(kubectl, name)["status"]["certificate"]
                .as_str()?
                .to_owned();
            let pem = base64::engine::general_purpose::STANDARD
                .decode(cert)
                .unwrap();
            Some(String::from_utf8(pem).unwrap())
        },
    )
}

/// A condition of the request by type.
fn condition(object: &Value, kind: &str) -> Option<Value> {
    object["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)
        .cloned()
}

/// The CSR table row for `name`, as kubectl prints it.
fn row(kubectl: &Kubectl, name: &str) -> Vec<String> {
    let out = kubectl.ok(&["get", "csr", name]);
    let mut lines = out.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAME",
            "AGE",
            "SIGNERNAME",
            "REQUESTOR",
            "REQUESTEDDURATION",
            "CONDITION"
        ]
    );
    lines
        .next()
        .unwrap()
        .split_whitespace()
        .map(String::from)
        .collect()
}

/// A kubeconfig that authenticates with a client certificate and key.
fn certificate_kubeconfig(server: &Server, name: &str, cert: &Path, key: &Path) -> Kubectl {
    let path = server.dir.join(format!("{name}.kubeconfig"));
    let config = server.kubectl("1.33").with_kubeconfig(&path);
    let ca = server.dir.join("ca.crt");
    let (cert, key, ca) = (
        cert.to_str().unwrap(),
        key.to_str().unwrap(),
        ca.to_str().unwrap(),
    );
    let url = server.url();
    for args in [
        vec![
            "config",
            "set-cluster",
            "keg",
            "--server",
            &url,
            "--certificate-authority",
            ca,
            "--embed-certs",
        ],
        vec![
            "config",
            "set-credentials",
            name,
            "--client-certificate",
            cert,
            "--client-key",
            key,
            "--embed-certs",
        ],
        vec![
            "config",
            "set-context",
            name,
            "--cluster",
            "keg",
            "--user",
            name,
        ],
        vec!["config", "use-context", name],
    ] {
        config.ok(&args);
    }
    config
}

#[test]
fn an_approved_request_is_a_certificate_that_authenticates_as_its_subject() {
    let server = Server::start_with(&["--no-node-agent"]);
    let old = server.kubectl("1.27");
    let new = server.kubectl("1.33");
    let dir = tempfile::tempdir().unwrap();

    // alice asks for a client certificate for an hour; kubectl 1.27 approves it.
    let (alice_key, alice_request) = openssl_request(dir.path(), "alice", "/CN=alice/O=dev", &[]);
    new.ok_stdin(
        &["create", "-f", "-"],
        &manifest(
            "alice",
            &alice_request,
            "kubernetes.io/kube-apiserver-client",
            &["client auth"],
            3600,
        ),
    );
    let pending = csr(&new, "alice");
    assert_eq!(pending["spec"]["username"], "kubernetes-admin", "{pending}");
    assert!(pending["status"]["certificate"].is_null());
    assert_eq!(
        row(&new, "alice")[2..],
        [
            "kubernetes.io/kube-apiserver-client",
            "kubernetes-admin",
            "60m",
            "Pending"
        ]
    );
    let approved = old.ok(&["certificate", "approve", "alice"]);
    assert!(
        approved.contains("certificatesigningrequest.certificates.k8s.io/alice approved"),
        "{approved}"
    );
    let pem = issued(&new, "alice");
    let object = csr(&new, "alice");
    let approval = condition(&object, "Approved").unwrap();
    assert_eq!(approval["reason"], "KubectlApprove", "{object}");
    assert_eq!(row(&new, "alice")[5], "Approved,Issued");

    // The certificate is the cluster CA's, for alice in dev, for the hour asked.
    let cert = write_file(dir.path(), "alice.crt", &pem);
    let verify = Command::new("openssl")
        .args(["verify", "-CAfile"])
        .arg(server.dir.join("ca.crt"))
        .arg(&cert)
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
    let dates = Command::new("openssl")
        .args(["x509", "-noout", "-startdate", "-enddate", "-in"])
        .arg(&cert)
        .output()
        .unwrap();
    let dates = String::from_utf8_lossy(&dates.stdout).into_owned();
    let parse = |prefix: &str| {
        let line = dates.lines().find(|l| l.starts_with(prefix)).unwrap();
        let when = line.trim_start_matches(prefix);
        let out = Command::new("date")
            .args(["-u", "-d", when, "+%s"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse::<i64>()
            .unwrap()
    };
    let lifetime = parse("notAfter=") - parse("notBefore=");
    assert!((3600..=3600 + 600).contains(&lifetime), "{dates}");

    let alice = certificate_kubeconfig(&server, "alice", &cert, &alice_key);
    let whoami = alice.json(&["auth", "whoami"]);
    assert_eq!(
        whoami["status"]["userInfo"]["username"], "alice",
        "{whoami}"
    );
    let groups = whoami["status"]["userInfo"]["groups"].to_string();
    for group in ["dev", "system:authenticated"] {
        assert!(groups.contains(group), "{whoami}");
    }
    // The certificate names alice, who holds no role: RBAC still applies.
    let refused = alice.fails(&["get", "pods"]);
    assert!(
        refused.contains("User \"alice\" cannot list resource \"pods\""),
        "{refused}"
    );

    // A denied request gets no certificate.
    let (_, bob_request) = openssl_request(dir.path(), "bob", "/CN=bob", &[]);
    new.ok_stdin(
        &["create", "-f", "-"],
        &manifest(
            "bob",
            &bob_request,
            "kubernetes.io/kube-apiserver-client",
            &["client auth"],
            3600,
        ),
    );
    let denied = old.ok(&["certificate", "deny", "bob"]);
    assert!(
        denied.contains("certificatesigningrequest.certificates.k8s.io/bob denied"),
        "{denied}"
    );
    assert_eq!(
        condition(&csr(&new, "bob"), "Denied").unwrap()["reason"],
        "KubectlDeny"
    );
    // The signer has had time to act on a change (alice's took well under this).
    std::thread::sleep(Duration::from_secs(2));
    assert!(csr(&new, "bob")["status"]["certificate"].is_null());
    assert_eq!(row(&new, "bob")[5], "Denied");
    // Once denied, it cannot be approved: the conditions are mutually exclusive (kubectl
    // refuses on its own, so the approval is written as another client would).
    let mut both = csr(&new, "bob");
    both["status"]["conditions"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"type": "Approved", "status": "True", "reason": "Sneaky"}));
    let path = "/apis/certificates.k8s.io/v1/certificatesigningrequests/bob/approval";
    let refused = new.run_stdin(&["replace", "--raw", path, "-f", "-"], &both.to_string());
    assert!(
        refused
            .stderr
            .contains("Approved and Denied conditions are mutually exclusive"),
        "{}",
        refused.stderr
    );

    // Approving needs `approve` on the signer, not only the right to write the approval.
    let role = "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: csr-writer}\n\
                rules:\n- {apiGroups: [certificates.k8s.io], resources: [certificatesigningrequests, certificatesigningrequests/approval], verbs: [get, list, update, patch]}\n";
    new.ok_stdin(&["apply", "-f", "-"], role);
    new.ok(&[
        "create",
        "clusterrolebinding",
        "alice-csr-writer",
        "--clusterrole=csr-writer",
        "--user=alice",
    ]);
    let (_, carol_request) = openssl_request(dir.path(), "carol", "/CN=carol", &[]);
    new.ok_stdin(
        &["create", "-f", "-"],
        &manifest(
            "carol",
            &carol_request,
            "kubernetes.io/kube-apiserver-client",
            &["client auth"],
            3600,
        ),
    );
    let forbidden = eventually("the binding to apply", Duration::from_secs(10), || {
        let run = alice.run(&["certificate", "approve", "carol"]);
        (!run.stderr.contains("cannot get resource")).then_some(run)
    });
    assert!(!forbidden.status.success());
    assert!(
        forbidden.stderr.contains(
            "certificatesigningrequests.certificates.k8s.io \"carol\" is forbidden: user not permitted to approve requests with signerName \"kubernetes.io/kube-apiserver-client\""
        ),
        "{}",
        forbidden.stderr
    );
    assert!(condition(&csr(&new, "carol"), "Approved").is_none());
}

#[test]
fn kubelet_requests_are_approved_by_review_and_signers_refuse_what_they_may_not_sign() {
    let server = Server::start_with(&["--no-node-agent"]);
    let kubectl = server.kubectl("1.33");
    let dir = tempfile::tempdir().unwrap();

    // A node's client certificate: the requester (the admin) may create nodeclient
    // requests, so the controller approves it and the signer issues it.
    let (_, node_request) =
        openssl_request(dir.path(), "node", "/O=system:nodes/CN=system:node:n1", &[]);
    kubectl.ok_stdin(
        &["create", "-f", "-"],
        &manifest(
            "node-n1",
            &node_request,
            "kubernetes.io/kube-apiserver-client-kubelet",
            &["digital signature", "key encipherment", "client auth"],
            86400,
        ),
    );
    issued(&kubectl, "node-n1");
    let approval = condition(&csr(&kubectl, "node-n1"), "Approved").unwrap();
    assert_eq!(approval["reason"], "AutoApproved");
    assert_eq!(
        approval["message"],
        "Auto approving kubelet client certificate after SubjectAccessReview."
    );

    // A request to the kubelet client signer that is not a node's is left to a person.
    let (_, odd_request) = openssl_request(dir.path(), "odd", "/CN=someone", &[]);
    kubectl.ok_stdin(
        &["create", "-f", "-"],
        &manifest(
            "odd",
            &odd_request,
            "kubernetes.io/kube-apiserver-client-kubelet",
            &["client auth"],
            3600,
        ),
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(row(&kubectl, "odd")[5], "Pending");
    // Approved by hand, the signer refuses it: not a node's subject.
    kubectl.ok(&["certificate", "approve", "odd"]);
    let failed = eventually("the signer to refuse", Duration::from_secs(20), || {
        condition(&csr(&kubectl, "odd"), "Failed")
    });
    assert_eq!(failed["reason"], "SignerValidationFailure");
    assert_eq!(
        failed["message"],
        "subject organization is not system:nodes"
    );
    assert_eq!(row(&kubectl, "odd")[5], "Approved,Failed");
    assert!(csr(&kubectl, "odd")["status"]["certificate"].is_null());

    // A subject with two groups: keg's signer (rcgen keeps one value per attribute) refuses
    // it rather than issue a certificate with one group fewer.
    let (_, two_groups) = openssl_request(dir.path(), "two", "/CN=dana/O=dev/O=qa", &[]);
    kubectl.ok_stdin(
        &["create", "-f", "-"],
        &manifest(
            "two",
            &two_groups,
            "kubernetes.io/kube-apiserver-client",
            &["client auth"],
            3600,
        ),
    );
    kubectl.ok(&["certificate", "approve", "two"]);
    let failed = eventually("the signer to refuse", Duration::from_secs(20), || {
        condition(&csr(&kubectl, "two"), "Failed")
    });
    assert_eq!(failed["reason"], "SigningFailure");
    assert!(
        failed["message"]
            .as_str()
            .unwrap()
            .contains("names O more than once"),
        "{failed}"
    );

    // A client certificate may not be for serving.
    let (_, server_request) = openssl_request(dir.path(), "srv", "/CN=web", &[]);
    kubectl.ok_stdin(
        &["create", "-f", "-"],
        &manifest(
            "srv",
            &server_request,
            "kubernetes.io/kube-apiserver-client",
            &["client auth", "server auth"],
            3600,
        ),
    );
    kubectl.ok(&["certificate", "approve", "srv"]);
    let failed = eventually("the signer to refuse", Duration::from_secs(20), || {
        condition(&csr(&kubectl, "srv"), "Failed")
    });
    assert_eq!(
        failed["message"],
        "invalid usage for client certificate: server auth"
    );

    // A kubelet's serving certificate names the node's addresses.
    let (_, serving_request) = openssl_request(
        dir.path(),
        "serving",
        "/O=system:nodes/CN=system:node:n1",
        &["-addext", "subjectAltName=DNS:n1.local,IP:10.0.0.7"],
    );
    kubectl.ok_stdin(
        &["create", "-f", "-"],
        &manifest(
            "serving-n1",
            &serving_request,
            "kubernetes.io/kubelet-serving",
            &["digital signature", "key encipherment", "server auth"],
            3600,
        ),
    );
    kubectl.ok(&["certificate", "approve", "serving-n1"]);
    let pem = issued(&kubectl, "serving-n1");
    let cert = write_file(dir.path(), "serving.crt", &pem);
    let text = Command::new("openssl")
        .args(["x509", "-noout", "-text", "-in"])
        .arg(&cert)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("DNS:n1.local") && text.contains("IP Address:10.0.0.7"),
        "{text}"
    );
    assert!(text.contains("TLS Web Server Authentication"), "{text}");
}

#[test]
fn bad_requests_are_refused_with_upstreams_causes_and_nothing_is_stored() {
    let server = Server::start_with(&["--no-node-agent"]);
    let kubectl = server.kubectl("1.27");
    let dir = tempfile::tempdir().unwrap();
    let (_, good) = openssl_request(dir.path(), "good", "/CN=good", &[]);
    let client = "kubernetes.io/kube-apiserver-client";

    let not_a_request = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    for (name, request, signer, usages, seconds, expected) in [
        (
            "notpem",
            not_a_request,
            client,
            vec!["client auth"],
            3600,
            "PEM block type must be CERTIFICATE REQUEST",
        ),
        (
            "short",
            good.as_str(),
            client,
            vec!["client auth"],
            300,
            "spec.expirationSeconds: Invalid value: 300: may not specify a duration less than 600 seconds (10 minutes)",
        ),
        (
            "nosigner",
            good.as_str(),
            "nodomain",
            vec!["client auth"],
            3600,
            "must be a fully qualified domain and path of the form 'example.com/signer-name'",
        ),
        (
            "badusage",
            good.as_str(),
            client,
            vec!["\"flying\""],
            3600,
            "spec.usages[0]: Unsupported value: \"flying\"",
        ),
    ] {
        let out = kubectl.run_stdin(
            &["create", "-f", "-"],
            &manifest(name, request, signer, &usages, seconds),
        );
        assert!(!out.status.success(), "{name} was accepted");
        assert!(
            out.stderr.contains(&format!(
                "The CertificateSigningRequest \"{name}\" is invalid"
            )) && out.stderr.contains(expected),
            "{name}: {}",
            out.stderr
        );
        let missing = kubectl.fails(&["get", "csr", name]);
        assert!(missing.contains("NotFound"), "{missing}");
    }

    // A request whose signature does not match its key (the signature's bytes changed).
    let pem_body: String = good.lines().filter(|l| !l.starts_with("-----")).collect();
    let mut der = base64::engine::general_purpose::STANDARD
        .decode(pem_body)
        .unwrap();
    let last = der.len() - 1;
    der[last] ^= 0xff;
    let tampered = format!(
        "-----BEGIN CERTIFICATE REQUEST-----\n{}\n-----END CERTIFICATE REQUEST-----\n",
        base64::engine::general_purpose::STANDARD.encode(&der)
    );
    let out = kubectl.run_stdin(
        &["create", "-f", "-"],
        &manifest("tampered", &tampered, client, &["client auth"], 3600),
    );
    assert!(
        out.stderr.contains("spec.request: Invalid value"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("invalid signature"), "{}", out.stderr);

    // No client certificate for system:masters, whoever asks.
    let (_, masters) = openssl_request(dir.path(), "root", "/CN=root/O=system:masters", &[]);
    let out = kubectl.run_stdin(
        &["create", "-f", "-"],
        &manifest("root", &masters, client, &["client auth"], 3600),
    );
    assert!(
        out.stderr.contains("use of kubernetes.io/kube-apiserver-client signer with system:masters group is not allowed"),
        "{}",
        out.stderr
    );
    kubectl.fails(&["get", "csr", "root"]);
}
