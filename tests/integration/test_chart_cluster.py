"""The meta chart on the real local control plane: everything it renders is accepted by the API
server, every pod runs, pools are respected, and the core pods' budgets never block a drain.

The chart is built from the real charts (the chart mirror) and installed with plain helm (the
deploy role's own tests cover helm_release); the values files are those the render playbook
computed for the local inventory, so this is the local environment as `make demo` deploys it,
under a release named after the test's namespace (the real charts make cluster-wide objects named
after the release, which another release of the same name would own).
"""

from __future__ import annotations

import json
import time

import pytest
from helpers_chart import LABEL, built_chart, helm, render, run

from conftest import Cluster

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


def wait_for(predicate, timeout: float = 120, interval: float = 1.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {last!r})")


@pytest.fixture
def installed(cluster: Cluster, namespace: str):
    values = render("local").values_files()
    cmd = [helm(), "--kubeconfig", str(cluster.kubeconfig), "install", namespace, str(built_chart()), "-n", namespace]
    for vf in values:
        cmd += ["--values", str(vf)]
    res = run(cmd)
    yield namespace, res.stdout
    run([helm(), "--kubeconfig", str(cluster.kubeconfig), "uninstall", namespace, "-n", namespace], check=False)


def pods(cluster: Cluster, namespace: str) -> list[dict]:
    return cluster.get_json("pods", "-n", namespace)["items"]


def all_running(cluster: Cluster, namespace: str) -> list[dict] | None:
    items = pods(cluster, namespace)
    if len(items) >= 15 and all(p["status"].get("phase") == "Running" for p in items):
        return items
    return None


def test_every_pod_runs_core_on_core_nodes_users_on_user_nodes(cluster: Cluster, installed):
    namespace, notes = installed
    assert "STAND-IN" not in notes and "binderhub 1.0.0-0.dev.git.3958.haf9ca8b1" in notes  # the real charts
    items = wait_for(lambda: all_running(cluster, namespace), what="every pod Running")
    nodes = {n["metadata"]["name"]: n["metadata"]["labels"].get(LABEL) for n in cluster.get_json("nodes")["items"]}
    by_pool: dict[str, set[str]] = {"core": set(), "user": set()}
    for p in items:
        owner = (p["metadata"].get("ownerReferences") or [{}])[0].get("kind")
        name = p["metadata"]["labels"].get("component") or p["metadata"]["labels"].get("app.kubernetes.io/name")
        if owner == "DaemonSet" and name == "prometheus-node-exporter":
            continue  # a node agent: on every node by design
        by_pool[nodes[p["spec"]["nodeName"]]].add(name)
    assert by_pool["core"] == {
        "binder",
        "hub",
        "proxy",
        "user-scheduler",
        "redirector",
        "grafana",
        "prometheus",
        "kube-state-metrics",
    }
    # the placeholders were placed by the chart's own user-scheduler (a real kube-scheduler)
    assert by_pool["user"] == {"user-placeholder", "image-cleaner", "image-builder"}  # builds: dind
    placeholders = [p for p in items if p["metadata"]["labels"].get("component") == "user-placeholder"]
    assert placeholders and all(p["spec"]["schedulerName"] == f"{namespace}-user-scheduler" for p in placeholders)


def test_core_pods_can_always_be_evicted(cluster: Cluster, installed):
    """minAvailable 0 budgets: the eviction API lets a drain move hub, proxy, grafana, prometheus
    and the redirector even when each runs a single pod."""
    namespace = installed[0]
    wait_for(lambda: all_running(cluster, namespace), what="every pod Running")
    budgets = {
        b["metadata"]["name"]: b
        for b in wait_for(
            lambda: [
                b
                for b in cluster.get_json("pdb", "-n", namespace)["items"]
                if b.get("status", {}).get("observedGeneration") == b["metadata"]["generation"]
            ],
            what="budgets observed",
        )
    }
    for name in ("hub", "proxy", f"{namespace}-grafana", f"{namespace}-prometheus-server", "redirector"):
        assert budgets[name]["spec"]["minAvailable"] == 0
    for selector in (
        "component=hub",
        "component=proxy",
        "app.kubernetes.io/name=grafana",
        "app.kubernetes.io/component=server",
        "app.kubernetes.io/name=redirector",
    ):
        pod = cluster.get_json("pods", "-n", namespace, "-l", selector)["items"][0]["metadata"]["name"]
        eviction = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": pod, "namespace": namespace}}
        res = cluster.kubectl(
            "create",
            "--raw",
            f"/api/v1/namespaces/{namespace}/pods/{pod}/eviction",
            "-f",
            "-",
            input_text=json.dumps(eviction),
            check=False,
        )
        assert res.returncode == 0, f"evicting {pod} ({selector}) was refused: {res.stderr}"
