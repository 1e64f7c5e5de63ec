"""Drives keg with the official Kubernetes Python client, as a user's script would.

Usage: official_client.py KUBECONFIG NAMESPACE. Prints one line per check; exits non-zero
on the first failure.
"""
import sys
import threading

from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

kubeconfig, ns = sys.argv[1], sys.argv[2]
config.load_kube_config(config_file=kubeconfig)
core = client.CoreV1Api()
apps = client.AppsV1Api()


def check(what, ok):
    if not ok:
        sys.exit(f"FAILED: {what}")
    print(f"ok: {what}")


names = {n.metadata.name for n in core.list_namespace().items}
check("the built-in namespaces are listed", {"default", "kube-system"} <= names)

core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))

cm = client.V1ConfigMap(
    metadata=client.V1ObjectMeta(name="settings", labels={"app": "beer"}),
    data={"size": "small"},
)
created = core.create_namespaced_config_map(ns, cm)
check("create returns a resourceVersion", bool(created.metadata.resource_version))

# A watch from that version sees what follows, in order.
seen = []
ready = threading.Event()


def follow(since):
    w = watch.Watch()
    stream = w.stream(
        core.list_namespaced_config_map, ns, resource_version=since, timeout_seconds=20
    )
    ready.set()
    for event in stream:
        seen.append((event["type"], event["object"].data))
        if event["type"] == "DELETED":
            w.stop()


watcher = threading.Thread(target=follow, args=(created.metadata.resource_version,))
watcher.start()
ready.wait()
core.patch_namespaced_config_map("settings", ns, {"data": {"size": "large"}})
read = core.read_namespaced_config_map("settings", ns)
check("a strategic merge patch changes the data", read.data == {"size": "large"})
listed = core.list_namespaced_config_map(ns, label_selector="app=beer").items
check("a label selector finds it", [c.metadata.name for c in listed] == ["settings"])

try:
    core.read_namespaced_config_map("missing", ns)
    check("reading a missing object fails", False)
except ApiException as e:
    check("a missing object is a 404 NotFound", e.status == 404 and '"reason":"NotFound"' in e.body.replace(" ", ""))

try:
    core.create_namespaced_config_map(ns, cm)
    check("creating it twice fails", False)
except ApiException as e:
    check("creating it twice is a 409 AlreadyExists", e.status == 409 and "AlreadyExists" in e.body)

deployment = client.V1Deployment(
    metadata=client.V1ObjectMeta(name="web"),
    spec=client.V1DeploymentSpec(
        replicas=1,
        selector=client.V1LabelSelector(match_labels={"app": "web"}),
        template=client.V1PodTemplateSpec(
            metadata=client.V1ObjectMeta(labels={"app": "web"}),
            spec=client.V1PodSpec(containers=[client.V1Container(name="web", image="nginx:1.27")]),
        ),
    ),
)
apps.create_namespaced_deployment(ns, deployment)
apps.patch_namespaced_deployment_scale("web", ns, {"spec": {"replicas": 3}})
scale = apps.read_namespaced_deployment_scale("web", ns)
check("the scale subresource sets replicas", scale.spec.replicas == 3)
apps.delete_namespaced_deployment("web", ns, propagation_policy="Foreground")

# DELETE answers with the object for pods and services, so the typed models parse it.
pod = client.V1Pod(
    metadata=client.V1ObjectMeta(name="doomed"),
    spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="busybox")]),
)
core.create_namespaced_pod(ns, pod)
gone = core.delete_namespaced_pod("doomed", ns)
check("deleting a pod returns the pod", isinstance(gone, client.V1Pod) and gone.metadata.name == "doomed")
svc = client.V1Service(
    metadata=client.V1ObjectMeta(name="doomed"),
    spec=client.V1ServiceSpec(ports=[client.V1ServicePort(port=80)]),
)
core.create_namespaced_service(ns, svc)
gone = core.delete_namespaced_service("doomed", ns)
check("deleting a service returns the service", isinstance(gone, client.V1Service) and gone.metadata.name == "doomed")

core.delete_namespaced_config_map("settings", ns)
watcher.join(timeout=30)
check(
    f"the watch saw the patch and the delete: {seen}",
    seen == [("MODIFIED", {"size": "large"}), ("DELETED", {"size": "large"})],
)
print("all checks passed")
