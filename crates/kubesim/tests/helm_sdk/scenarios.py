"""Helm SDK scenarios against kubesim, driven by crates/kubesim/tests/helm_sdk.rs.

Uses the helm-python-sdk wheel (libhelm_c: Helm v4's Go SDK, i.e. client-go,
whose release Secrets travel as protobuf) and the official `kubernetes`
Python client to look at what Helm left in the cluster.

Usage: python scenarios.py KUBECONFIG REPO_ROOT SCENARIO
Exits 0 when every check of the scenario held; prints what failed otherwise.
"""

import os
import sys

import helm_python
import kubernetes

KUBECONFIG, ROOT, SCENARIO = sys.argv[1], sys.argv[2], sys.argv[3]
CHARTS = os.path.join(ROOT, "testdata", "charts")
SHARED = os.path.join(ROOT, "..", "shared", "charts")

kubernetes.config.load_kube_config(config_file=KUBECONFIG)
core = kubernetes.client.CoreV1Api()
apps = kubernetes.client.AppsV1Api()
batch = kubernetes.client.BatchV1Api()


def config(namespace="default"):
    return helm_python.Config(kubeconfig_path=KUBECONFIG, namespace=namespace)


def check(cond, what):
    if not cond:
        print(f"FAILED: {what}", file=sys.stderr)
        sys.exit(1)


def release_secrets(namespace, name):
    items = core.list_namespaced_secret(namespace, label_selector=f"owner=helm,name={name}").items
    return sorted(items, key=lambda s: int(s.metadata.labels["version"]))


def lifecycle():
    """install, upgrade, history, list, rollback, uninstall of the web chart."""
    with config() as cfg:
        rel = cfg.install(os.path.join(CHARTS, "web", "1.0.0"), "web", {"config": {"greeting": "hi"}})
        check(rel["status"] == "deployed", f"install deployed: {rel['status']}")
        secrets = release_secrets("default", "web")
        check([s.metadata.labels["status"] for s in secrets] == ["deployed"], "one release Secret")
        check(secrets[0].type == "helm.sh/release.v1", f"release Secret type {secrets[0].type}")
        dep = apps.read_namespaced_deployment("web", "default")
        check(dep.spec.template.spec.containers[0].image.endswith(":1.25.0"), "image from appVersion")

        rel = cfg.upgrade(os.path.join(CHARTS, "web", "2.0.0"), "web", {"replicaCount": 2})
        check(rel["revision"] == 2, f"upgrade is revision 2: {rel['revision']}")
        dep = apps.read_namespaced_deployment("web", "default")
        check(dep.spec.replicas == 2, "upgrade applied replicas")
        check(dep.spec.template.spec.containers[0].image.endswith(":1.27.0"), "upgrade applied image")

        history = cfg.history("web")
        check([h["revision"] for h in history] == [1, 2], f"history {history}")
        check([h["status"] for h in history] == ["superseded", "deployed"], "history states")
        listed = cfg.list()
        check([r["name"] for r in listed] == ["web"], f"list {listed}")

        cfg.rollback("web", version=1)
        check(cfg.status("web")["revision"] == 3, "rollback makes revision 3")
        dep = apps.read_namespaced_deployment("web", "default")
        check(dep.spec.template.spec.containers[0].image.endswith(":1.25.0"), "rollback restored image")
        check(len(release_secrets("default", "web")) == 3, "three release Secrets")

        cfg.uninstall("web")
        check(cfg.list(all_states=True) == [], "uninstall removes the release")
        check(release_secrets("default", "web") == [], "uninstall removes the release Secrets")
        names = [d.metadata.name for d in apps.list_namespaced_deployment("default").items]
        check("web" not in names, "uninstall removes the Deployment")


def wait_watcher():
    """wait=watcher waits for the Deployment to become ready (kstatus)."""
    with config() as cfg:
        rel = cfg.install(
            os.path.join(CHARTS, "web", "1.0.0"), "ready", {"replicaCount": 2},
            wait="watcher", timeout=60,
        )
        check(rel["status"] == "deployed", "install with wait deployed")
        deps = apps.list_namespaced_deployment("default", label_selector="app.kubernetes.io/instance=ready").items
        check(len(deps) == 1, "one Deployment")
        check(deps[0].status.ready_replicas == 2, f"ready replicas {deps[0].status.ready_replicas}")
        rel = cfg.upgrade(os.path.join(CHARTS, "web", "2.0.0"), "ready", {"replicaCount": 3},
                          wait="watcher", timeout=60)
        check(rel["status"] == "deployed", "upgrade with wait deployed")
        cfg.uninstall("ready", wait="watcher", timeout=60)


def hooks():
    """pre-install and post-install hook Jobs run and are deleted on success."""
    with config() as cfg:
        rel = cfg.install(os.path.join(CHARTS, "hooks", "1.0.0"), "hk", wait="watcher", timeout=60)
        check(rel["status"] == "deployed", f"hooks install {rel}")
        jobs = [j.metadata.name for j in batch.list_namespaced_job("default").items]
        check(not any(j.startswith("hk-") for j in jobs), f"hook-succeeded Jobs deleted: {jobs}")
        check(core.read_namespaced_config_map("hk-settings", "default").data is not None, "ConfigMap installed")
        cfg.uninstall("hk")


def shared_nginx():
    """bitnami nginx with its defaults, waited for, in a namespace Helm creates."""
    check(os.path.isdir(SHARED), "../shared/charts is present")
    with config("web") as cfg:
        rel = cfg.install(os.path.join(SHARED, "nginx"), "nginx", namespace="web",
                          create_namespace=True, wait="watcher", timeout=120)
        check(rel["status"] == "deployed", f"nginx {rel}")
        rel = cfg.upgrade(os.path.join(SHARED, "nginx"), "nginx", {"replicaCount": 2},
                          namespace="web", wait="watcher", timeout=120)
        check(rel["revision"] == 2, "nginx upgraded")
        cfg.uninstall("nginx", wait="watcher", timeout=120)


def shared_postgresql_upgrade():
    """bitnami postgresql 16 → 17: StatefulSet, generated Secret found by `lookup`."""
    check(os.path.isdir(SHARED), "../shared/charts is present")
    with config("db") as cfg:
        rel = cfg.install(os.path.join(SHARED, "postgresql-old"), "pg", namespace="db",
                          create_namespace=True, wait="watcher", timeout=120)
        check(rel["status"] == "deployed", f"postgresql install {rel}")
        rel = cfg.upgrade(os.path.join(SHARED, "postgresql"), "pg", namespace="db",
                          wait="watcher", timeout=120)
        check(rel["revision"] == 2, "postgresql upgraded")
        sts = apps.read_namespaced_stateful_set("pg-postgresql", "db")
        check(sts.status.ready_replicas == 1, "StatefulSet ready")
        cfg.uninstall("pg")


def shared_redis():
    """bitnami redis: replication StatefulSets, ConfigMaps, NetworkPolicy, PDBs."""
    check(os.path.isdir(SHARED), "../shared/charts is present")
    with config("cache") as cfg:
        rel = cfg.install(os.path.join(SHARED, "redis"), "redis", namespace="cache",
                          create_namespace=True, wait="watcher", timeout=120)
        check(rel["status"] == "deployed", f"redis install {rel}")
        cfg.uninstall("redis", wait="watcher", timeout=120)


def caelus_chart():
    """deploy/chart (Caelus itself) in a namespace enforcing Pod Security `restricted`:
    CRDs from crds/, the migrations hook, the bundled PostgreSQL whose generated
    password `lookup` keeps across an upgrade to 3 API + 3 worker replicas, and an
    uninstall that leaves the CRDs (as Helm does). kubesim runs no containers:
    its controllers make the workloads ready once their Pods are admitted."""
    ns = "caelus-system"
    chart = os.path.join(ROOT, "deploy", "chart")
    core.create_namespace({"metadata": {"name": ns, "labels": {
        "pod-security.kubernetes.io/enforce": "restricted",
        "pod-security.kubernetes.io/enforce-version": "latest"}}})
    crds = kubernetes.client.ApiextensionsV1Api()
    rbac = kubernetes.client.RbacAuthorizationV1Api()
    with config(ns) as cfg:
        rel = cfg.install(chart, "caelus", {}, namespace=ns, wait="watcher", timeout=120)
        check(rel["status"] == "deployed", f"install {rel}")
        names = {c.metadata.name for c in crds.list_custom_resource_definition().items}
        check({"caelusdeployments.caelus.io", "caelustemplates.caelus.io"} <= names, f"CRDs {names}")
        for name in ["caelus-api", "caelus-worker"]:
            dep = apps.read_namespaced_deployment(name, ns)
            check(dep.status.ready_replicas == 2, f"{name} ready: {dep.status}")
        sts = apps.read_namespaced_stateful_set("caelus-postgresql", ns)
        check(sts.status.ready_replicas == 1, f"postgresql ready: {sts.status}")
        password = core.read_namespaced_secret("caelus-database", ns).data["password"]
        jobs = [j.metadata.name for j in batch.list_namespaced_job(ns).items]
        check("caelus-migrate" not in jobs, f"migrations hook ran and was deleted: {jobs}")
        check(rbac.read_cluster_role("caelus").rules, "ClusterRole installed")

        rel = cfg.upgrade(chart, "caelus", {"api": {"replicas": 3}, "worker": {"replicas": 3}},
                          namespace=ns, wait="watcher", timeout=120)
        check(rel["revision"] == 2, f"upgraded: {rel}")
        for name in ["caelus-api", "caelus-worker"]:
            dep = apps.read_namespaced_deployment(name, ns)
            check(dep.status.ready_replicas == 3, f"{name} scaled: {dep.status}")
        after = core.read_namespaced_secret("caelus-database", ns).data["password"]
        check(after == password, "the generated database password survives the upgrade (lookup)")

        cfg.uninstall("caelus", wait="watcher", timeout=120)
        check(apps.list_namespaced_deployment(ns).items == [], "Deployments removed")
        check(apps.list_namespaced_stateful_set(ns).items == [], "StatefulSet removed")
        roles = [r.metadata.name for r in rbac.list_cluster_role().items]
        check("caelus" not in roles, f"ClusterRole removed: {roles}")
        names = {c.metadata.name for c in crds.list_custom_resource_definition().items}
        check("caelusdeployments.caelus.io" in names, "CRDs stay after uninstall")


SCENARIOS = {f.__name__: f for f in [lifecycle, wait_watcher, hooks, shared_nginx,
                                      shared_postgresql_upgrade, shared_redis, caelus_chart]}

if __name__ == "__main__":
    SCENARIOS[SCENARIO]()
    print(f"{SCENARIO}: ok")
