"""The official Python `kubernetes` client against kubesim, driven by
crates/kubesim/tests/python_client.rs.

Usage: python scenarios.py KUBECONFIG REPO_ROOT SCENARIO
Exits 0 when every check of the scenario held; prints what failed otherwise.
"""

import json
import sys
import time

import kubernetes
from kubernetes import client, dynamic, watch
from kubernetes.client.rest import ApiException

KUBECONFIG, ROOT, SCENARIO = sys.argv[1], sys.argv[2], sys.argv[3]

kubernetes.config.load_kube_config(config_file=KUBECONFIG)
core = client.CoreV1Api()
apps = client.AppsV1Api()


def check(cond, what):
    if not cond:
        print(f"FAILED: {what}", file=sys.stderr)
        sys.exit(1)


def refused(call, status, what):
    try:
        call()
    except ApiException as e:
        check(e.status == status, f"{what}: status {e.status}, wanted {status}: {e.body}")
        return e
    check(False, f"{what}: accepted, wanted {status}")


def until(cond, what, seconds=20):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if cond():
            return
        time.sleep(0.2)
    check(False, f"timed out: {what}")


def configmap(name, data, labels=None):
    return client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name=name, labels=labels or {}), data=data
    )


def typed_crud():
    """Typed create/read/list/replace/patch/delete, and the errors a real server answers."""
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="py")))
    ns = core.read_namespace("py")
    check(ns.status.phase == "Active", f"namespace phase {ns.status.phase}")
    until(
        lambda: any(s.metadata.name == "default" for s in core.list_namespaced_service_account("py").items),
        "the default ServiceAccount of a new namespace",
    )

    created = core.create_namespaced_config_map("py", configmap("cfg", {"a": "1"}, {"team": "blue"}))
    check(created.metadata.uid, "create returns the stored object with a uid")
    refused(
        lambda: core.create_namespaced_config_map("py", configmap("cfg", {})),
        409,
        "creating it twice (AlreadyExists)",
    )
    core.create_namespaced_config_map("py", configmap("other", {"b": "2"}, {"team": "green"}))
    blue = core.list_namespaced_config_map("py", label_selector="team=blue").items
    check([c.metadata.name for c in blue] == ["cfg"], f"label-selected list {blue}")
    by_name = core.list_namespaced_config_map("py", field_selector="metadata.name=other").items
    check([c.metadata.name for c in by_name] == ["other"], "field-selected list")

    cfg = core.read_namespaced_config_map("cfg", "py")
    cfg.data["a"] = "2"
    replaced = core.replace_namespaced_config_map("cfg", "py", cfg)
    check(replaced.data == {"a": "2"}, "replace stored the change")
    check(
        replaced.metadata.resource_version != cfg.metadata.resource_version,
        "replace moved the resourceVersion",
    )
    cfg.data["a"] = "3"  # cfg still carries the old resourceVersion
    refused(lambda: core.replace_namespaced_config_map("cfg", "py", cfg), 409, "a stale replace (Conflict)")

    patched = core.patch_namespaced_config_map("cfg", "py", {"data": {"c": "3"}})
    check(patched.data == {"a": "2", "c": "3"}, f"strategic merge patch: {patched.data}")
    patched = core.patch_namespaced_config_map(
        "cfg", "py", [{"op": "remove", "path": "/data/c"}]
    )
    check(patched.data == {"a": "2"}, f"JSON patch: {patched.data}")

    dep = apps.create_namespaced_deployment(
        "py",
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web"},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]},
                },
            },
        },
    )
    check(dep.spec.template.spec.containers[0].image_pull_policy == "IfNotPresent", "built-in defaults")
    until(
        lambda: (apps.read_namespaced_deployment_status("web", "py").status.ready_replicas or 0) == 2,
        "the Deployment becomes ready",
    )
    pods = core.list_namespaced_pod("py", label_selector="app=web").items
    check(len(pods) == 2 and all(p.status.phase == "Running" for p in pods), "two running Pods")
    scale = apps.read_namespaced_deployment_scale("web", "py")
    check(scale.spec.replicas == 2, "the scale subresource")
    apps.patch_namespaced_deployment_scale("web", "py", {"spec": {"replicas": 1}})
    check(apps.read_namespaced_deployment("web", "py").spec.replicas == 1, "scaled through /scale")

    bad = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "bad"},
        "spec": {
            "replicas": -1,
            "selector": {"matchLabels": {"app": "bad"}},
            "template": {
                "metadata": {"labels": {"app": "bad"}},
                "spec": {"containers": [{"name": "c", "image": "nginx"}]},
            },
        },
    }
    e = refused(lambda: apps.create_namespaced_deployment("py", bad), 422, "negative replicas")
    check("spec.replicas" in e.body, f"the cause names the field: {e.body}")

    # v37 declares the answer as a plain object: the API server's Status.
    status = core.delete_namespaced_config_map("cfg", "py")
    check(
        status["kind"] == "Status" and status["status"] == "Success",
        f"delete answers a Status: {status}",
    )
    refused(lambda: core.read_namespaced_config_map("cfg", "py"), 404, "a deleted object (NotFound)")
    core.delete_namespace("py")
    until(
        lambda: not any(n.metadata.name == "py" for n in core.list_namespace().items),
        "the namespace terminates",
    )


def ssa():
    """Server-side apply with field managers: create, conflict, force."""
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "applied"}, "data": {"k": "a"}}
    apply = dict(_content_type="application/apply-patch+yaml")
    cm = core.patch_namespaced_config_map("applied", "default", body, field_manager="alice", **apply)
    check(cm.data == {"k": "a"}, "apply creates")
    owners = [(m.manager, m.operation) for m in cm.metadata.managed_fields]
    check(owners == [("alice", "Apply")], f"managedFields {owners}")

    refused(
        lambda: core.patch_namespaced_config_map("applied", "default", body, **apply),
        422,
        "apply without fieldManager",
    )
    body["data"]["k"] = "b"
    e = refused(
        lambda: core.patch_namespaced_config_map("applied", "default", body, field_manager="bob", **apply),
        409,
        "a conflicting apply",
    )
    st = json.loads(e.body)
    check(
        st["reason"] == "Conflict"
        and st["message"] == 'Apply failed with 1 conflict: conflict with "alice": .data.k',
        f"conflict message {e.body}",
    )
    cm = core.patch_namespaced_config_map(
        "applied", "default", body, field_manager="bob", force=True, **apply
    )
    check(cm.data == {"k": "b"}, "force takes the field")
    owners = {m.manager for m in cm.metadata.managed_fields}
    check(owners == {"bob"}, f"alice lost her only field: {owners}")

    # Dry run answers the result and stores nothing.
    body["data"]["k"] = "c"
    dry = core.patch_namespaced_config_map(
        "applied", "default", body, field_manager="bob", dry_run="All", **apply
    )
    check(dry.data == {"k": "c"}, "dry run answers the merged object")
    check(core.read_namespaced_config_map("applied", "default").data == {"k": "b"}, "dry run stored nothing")


def watch_events():
    """Watch from a resourceVersion with bookmarks; a too-old resourceVersion is 410 Gone."""
    start = core.list_namespaced_config_map("default").metadata.resource_version
    core.create_namespaced_config_map("default", configmap("w1", {"a": "1"}))
    core.patch_namespaced_config_map("w1", "default", {"data": {"a": "2"}})
    core.delete_namespaced_config_map("w1", "default")

    w = watch.Watch()
    seen, bookmarks = [], 0
    for ev in w.stream(
        core.list_namespaced_config_map,
        "default",
        resource_version=start,
        allow_watch_bookmarks=True,
        timeout_seconds=5,
    ):
        if ev["type"] == "BOOKMARK":
            bookmarks += 1
            check(ev["raw_object"]["kind"] == "ConfigMap", f"bookmark kind {ev['raw_object']}")
            if len(seen) >= 3:
                w.stop()
            continue
        seen.append((ev["type"], ev["object"].metadata.name))
    check(
        seen[:3] == [("ADDED", "w1"), ("MODIFIED", "w1"), ("DELETED", "w1")],
        f"events from the resourceVersion: {seen}",
    )
    check(bookmarks >= 1, "a BOOKMARK event")
    check(int(w.resource_version) > int(start), "the bookmark moved the watch's resourceVersion")

    # Enough writes push the start out of the server's bounded watch history.
    for i in range(30):
        core.create_namespaced_config_map("default", configmap(f"churn-{i}", {"i": str(i)}))
    e = None
    try:
        for _ in watch.Watch().stream(
            core.list_namespaced_config_map, "default", resource_version=start, timeout_seconds=5
        ):
            pass
    except ApiException as err:
        e = err
    check(e is not None and e.status == 410, f"watching from a compacted resourceVersion: {e}")
    check("too old resource version" in str(e.reason), f"410 reason {e.reason}")


def dynamic_client():
    """The dynamic client: discovery, CRDs and their custom resources, apply, watch."""
    dyn = dynamic.DynamicClient(client.ApiClient())
    crds = dyn.resources.get(api_version="apiextensions.k8s.io/v1", kind="CustomResourceDefinition")
    crds.create(
        body={
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": "gadgets.example.com"},
            "spec": {
                "group": "example.com",
                "scope": "Namespaced",
                "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
                "versions": [
                    {
                        "name": "v1",
                        "served": True,
                        "storage": True,
                        "schema": {
                            "openAPIV3Schema": {
                                "type": "object",
                                "properties": {
                                    "spec": {
                                        "type": "object",
                                        "properties": {"size": {"type": "integer"}},
                                    }
                                },
                            }
                        },
                    }
                ],
            },
        }
    )
    until(
        lambda: crds.get(name="gadgets.example.com").status.conditions is not None,
        "the CRD is established",
    )
    dyn = dynamic.DynamicClient(client.ApiClient())  # fresh discovery
    gadgets = dyn.resources.get(api_version="example.com/v1", kind="Gadget")
    check(gadgets.namespaced, "the custom resource is namespaced")
    g = gadgets.create(
        namespace="default",
        body={"apiVersion": "example.com/v1", "kind": "Gadget", "metadata": {"name": "g1"}, "spec": {"size": 1}},
    )
    check(g.spec.size == 1, "create a custom resource")
    g = gadgets.patch(
        name="g1",
        namespace="default",
        body={"spec": {"size": 2}},
        content_type="application/merge-patch+json",
    )
    check(g.spec.size == 2, "merge patch a custom resource")
    # The dynamic client's default patch type is strategic merge, which a real
    # API server refuses for custom resources.
    try:
        gadgets.patch(name="g1", namespace="default", body={"spec": {"size": 3}})
        check(False, "strategic merge on a custom resource was accepted")
    except ApiException as e:
        check(e.status == 415, f"strategic merge on a custom resource: {e.status}")
    g = gadgets.server_side_apply(
        namespace="default",
        body={"apiVersion": "example.com/v1", "kind": "Gadget", "metadata": {"name": "g1"}, "spec": {"size": 4}},
        field_manager="py-dyn",
        force_conflicts=True,
    )
    check(g.spec.size == 4, "server-side apply through the dynamic client")
    listed = gadgets.get(namespace="default")
    check([i.metadata.name for i in listed.items] == ["g1"], "list custom resources")

    deployments = dyn.resources.get(api_version="apps/v1", kind="Deployment")
    events = []
    for ev in deployments.watch(namespace="default", timeout=2):
        events.append(ev["type"])
    check(events == [], f"an empty namespace's watch sends nothing: {events}")
    gadgets.delete(name="g1", namespace="default")
    check(gadgets.get(namespace="default").items == [], "delete a custom resource")
    crds.delete(name="gadgets.example.com")


SCENARIOS = {
    "typed_crud": typed_crud,
    "ssa": ssa,
    "watch": watch_events,
    "dynamic": dynamic_client,
}

SCENARIOS[SCENARIO]()
print(f"{SCENARIO}: ok")
