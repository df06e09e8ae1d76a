"""The local control plane behaves like a real cluster (issue: foundation).

Every test here talks to the real kube-apiserver with kube-controller-manager, kube-scheduler and
kwok behind it; none of these behaviours exist without those components (a fake API server would
not schedule by nodeSelector, compute PodDisruptionBudget status, garbage-collect namespaces or
run helm's release machinery).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT, Cluster

pytestmark = pytest.mark.cluster


def wait_for(predicate, timeout: float = 60, interval: float = 0.25, what: str = "condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {last!r})")


def apply(cluster: Cluster, namespace: str, manifest: dict) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input_text=json.dumps(manifest))


def deployment(name: str, replicas: int, pool: str | None = None, labels: dict | None = None) -> dict:
    labels = labels or {"app": name}
    spec: dict = {
        "terminationGracePeriodSeconds": 0,
        "containers": [{"name": "main", "image": "registry.invalid/app:1"}],
    }
    if pool:
        spec["nodeSelector"] = {"mybinder.org/node-purpose": pool}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": spec},
        },
    }


def pods(cluster: Cluster, namespace: str, selector: str) -> list[dict]:
    return cluster.get_json("pods", "-n", namespace, "-l", selector)["items"]


def running_pods(cluster: Cluster, namespace: str, selector: str, count: int) -> list[dict]:
    def check():
        items = [p for p in pods(cluster, namespace, selector) if not p["metadata"].get("deletionTimestamp")]
        ready = [p for p in items if p["status"].get("phase") == "Running"]
        return ready if len(ready) == count and len(items) == count else None

    return wait_for(check, what=f"{count} Running pods {selector} in {namespace}")


# ---------------------------------------------------------------------------------------------


def test_nodes_model_a_prod_like_cluster(cluster: Cluster) -> None:
    nodes = cluster.get_json("nodes")["items"]
    by_purpose: dict[str, list[str]] = {}
    for node in nodes:
        labels = node["metadata"]["labels"]
        if labels.get("type") != "kwok" or not node["metadata"]["name"].startswith(("core-", "user-")):
            continue  # nodes other tests create for themselves
        purpose = labels["mybinder.org/node-purpose"]
        assert labels["hub.jupyter.org/node-purpose"] == purpose
        ready = [c for c in node["status"]["conditions"] if c["type"] == "Ready"]
        assert ready and ready[0]["status"] == "True", node["metadata"]["name"]
        by_purpose.setdefault(purpose, []).append(node["metadata"]["name"])
    assert len(by_purpose.get("core", [])) >= 1
    assert len(by_purpose.get("user", [])) >= 2


def test_server_reports_the_stamped_version(cluster: Cluster) -> None:
    from localcluster import bin_dir

    version = json.loads(cluster.kubectl("version", "-o", "json").stdout)
    server = version["serverVersion"]
    versions = dict(
        line.split("=", 1) for line in (ROOT / "tools" / "versions.env").read_text().splitlines() if "=" in line
    )
    assert server["gitVersion"] == f"v{versions['KUBERNETES_VERSION']}"
    assert server["major"] == "1" and server["minor"] == versions["KUBERNETES_VERSION"].split(".")[1]
    # kubectl is the cluster's version too (Helm's kubeVersion checks need a real /version)
    assert version["clientVersion"]["gitVersion"] == server["gitVersion"]
    assert Path(cluster.bin_dir) == bin_dir()


def test_pods_are_scheduled_by_node_selector_and_run(cluster: Cluster, namespace: str) -> None:
    apply(cluster, namespace, deployment("core-app", 2, pool="core"))
    apply(cluster, namespace, deployment("user-app", 4, pool="user"))
    core = running_pods(cluster, namespace, "app=core-app", 2)
    user = running_pods(cluster, namespace, "app=user-app", 4)
    node_purpose = {
        n["metadata"]["name"]: n["metadata"]["labels"].get("mybinder.org/node-purpose")
        for n in cluster.get_json("nodes")["items"]
    }
    assert {node_purpose[p["spec"]["nodeName"]] for p in core} == {"core"}
    assert {node_purpose[p["spec"]["nodeName"]] for p in user} == {"user"}
    assert all(p["status"].get("podIP") for p in core + user)
    # a pod whose selector matches no node stays Pending: the scheduler really filters
    apply(cluster, namespace, deployment("nowhere", 1, pool="no-such-pool"))
    pending = wait_for(lambda: pods(cluster, namespace, "app=nowhere"), what="pod of nowhere")
    time.sleep(1)
    pending = pods(cluster, namespace, "app=nowhere")
    assert pending[0]["status"]["phase"] == "Pending"
    assert not pending[0]["spec"].get("nodeName")


def test_deployment_rollout_completes(cluster: Cluster, namespace: str) -> None:
    apply(cluster, namespace, deployment("web", 3, pool="core"))
    cluster.kubectl("rollout", "status", "deployment/web", "-n", namespace, "--timeout=60s")
    # change the template: a new ReplicaSet rolls out and the old pods go away
    cluster.kubectl("set", "env", "deployment/web", "-n", namespace, "VERSION=2")
    cluster.kubectl("rollout", "status", "deployment/web", "-n", namespace, "--timeout=60s")
    rs = cluster.get_json("replicasets", "-n", namespace, "-l", "app=web")["items"]
    assert len(rs) == 2
    assert sorted(r["status"].get("replicas", 0) for r in rs) == [0, 3]


def test_deleted_pods_disappear(cluster: Cluster, namespace: str) -> None:
    apply(cluster, namespace, deployment("gone", 2, pool="user"))
    before = running_pods(cluster, namespace, "app=gone", 2)
    cluster.kubectl("delete", "pod", before[0]["metadata"]["name"], "-n", namespace, "--wait=true", "--timeout=60s")
    after = running_pods(cluster, namespace, "app=gone", 2)
    uids = {p["metadata"]["uid"] for p in after}
    assert before[0]["metadata"]["uid"] not in uids  # the ReplicaSet replaced it with a new pod


def evict(cluster: Cluster, namespace: str, pod: str) -> subprocess.CompletedProcess[str]:
    body = json.dumps(
        {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": pod, "namespace": namespace}}
    )
    return cluster.kubectl(
        "create",
        "--raw",
        f"/api/v1/namespaces/{namespace}/pods/{pod}/eviction",
        "-f",
        "-",
        input_text=body,
        check=False,
    )


def test_pdb_status_is_computed_and_blocks_evictions(cluster: Cluster, namespace: str) -> None:
    apply(cluster, namespace, deployment("guarded", 2, pool="user"))
    running_pods(cluster, namespace, "app=guarded", 2)
    apply(
        cluster,
        namespace,
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": {"name": "guarded"},
            "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "guarded"}}},
        },
    )

    def pdb_status():
        status = cluster.get_json("pdb", "guarded", "-n", namespace).get("status", {})
        return status if status.get("observedGeneration") and status.get("currentHealthy") == 2 else None

    status = wait_for(pdb_status, what="PDB status from the disruption controller")
    assert status["disruptionsAllowed"] == 0
    victim = pods(cluster, namespace, "app=guarded")[0]["metadata"]["name"]
    refused = evict(cluster, namespace, victim)
    assert refused.returncode != 0
    assert "429" in refused.stderr or "disruption budget" in refused.stderr.lower(), refused.stderr

    # relax the budget: the same eviction is now accepted and the pod goes away
    cluster.kubectl("patch", "pdb", "guarded", "-n", namespace, "--type=merge", "-p", '{"spec":{"minAvailable":1}}')
    wait_for(
        lambda: cluster.get_json("pdb", "guarded", "-n", namespace)["status"].get("disruptionsAllowed") == 1,
        what="disruptionsAllowed=1",
    )
    accepted = evict(cluster, namespace, victim)
    assert accepted.returncode == 0, accepted.stderr
    wait_for(
        lambda: victim not in {p["metadata"]["name"] for p in pods(cluster, namespace, "app=guarded")},
        what="evicted pod to disappear",
    )


def test_namespaces_delete(cluster: Cluster) -> None:
    cluster.kubectl("create", "namespace", "t-ns-delete")
    cluster.kubectl("wait", "--for=create", "serviceaccount/default", "-n", "t-ns-delete", "--timeout=30s")
    apply(cluster, "t-ns-delete", deployment("inside", 2, pool="user"))
    running_pods(cluster, "t-ns-delete", "app=inside", 2)
    cluster.kubectl("delete", "namespace", "t-ns-delete", "--wait=true", "--timeout=90s")
    res = cluster.kubectl("get", "namespace", "t-ns-delete", check=False)
    assert res.returncode != 0 and "NotFound" in res.stderr


def write_chart(path: Path, version: str, replicas: int) -> Path:
    (path / "templates").mkdir(parents=True, exist_ok=True)
    (path / "Chart.yaml").write_text(
        f"apiVersion: v2\nname: probe\nversion: {version}\nkubeVersion: '>=1.30.0-0'\n"
        "description: test chart of the foundation tests (not a stand-in of any upstream chart)\n"
    )
    (path / "values.yaml").write_text(f"replicas: {replicas}\n")
    (path / "templates" / "deployment.yaml").write_text(
        """apiVersion: apps/v1
kind: Deployment
metadata:
  name: probe
spec:
  replicas: {{ .Values.replicas }}
  selector:
    matchLabels: {app: probe}
  template:
    metadata:
      labels: {app: probe}
    spec:
      terminationGracePeriodSeconds: 0
      nodeSelector: {mybinder.org/node-purpose: core}
      containers:
        - name: main
          image: registry.invalid/probe:{{ .Chart.Version }}
"""
    )
    return path


def test_helm_install_upgrade_rollback_uninstall(cluster: Cluster, namespace: str, tmp_path: Path) -> None:
    helm = [str(cluster.bin_dir / "helm"), "--kubeconfig", str(cluster.kubeconfig), "-n", namespace]

    def run(*args: str) -> str:
        res = subprocess.run([*helm, *args], capture_output=True, text=True, check=False)
        assert res.returncode == 0, f"helm {' '.join(args)}: {res.stderr}"
        return res.stdout

    def replicas() -> int:
        return cluster.get_json("deployment", "probe", "-n", namespace)["spec"]["replicas"]

    run("install", "probe", str(write_chart(tmp_path / "v1", "0.1.0", 1)))
    cluster.kubectl("rollout", "status", "deployment/probe", "-n", namespace, "--timeout=60s")
    run("upgrade", "probe", str(write_chart(tmp_path / "v2", "0.2.0", 2)))
    cluster.kubectl("rollout", "status", "deployment/probe", "-n", namespace, "--timeout=60s")
    assert replicas() == 2
    history = json.loads(run("history", "probe", "-o", "json"))
    assert [h["revision"] for h in history] == [1, 2]
    run("rollback", "probe", "1")
    assert replicas() == 1
    status = json.loads(run("status", "probe", "-o", "json"))
    assert status["version"] == 3 and status["info"]["status"] == "deployed"
    run("uninstall", "probe")
    wait_for(
        lambda: cluster.kubectl("get", "deployment", "probe", "-n", namespace, check=False).returncode != 0,
        what="deployment removed by helm uninstall",
    )


# --------------------------------------------------------------------------------------------- tooling


def localcluster_cmd(cluster_dir: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "MYBINDER_CLUSTER_DIR": str(cluster_dir), **(env or {})}
    return subprocess.run(
        [sys.executable, str(ROOT / "tools" / "localcluster.py"), *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=300,
        check=False,
    )


def test_second_up_is_a_quick_noop_and_status_reports_health(cluster: Cluster) -> None:
    cluster_dir = Path(cluster.kubeconfig).parent
    state_before = (cluster_dir / "state.json").read_text()
    res = localcluster_cmd(cluster_dir, "up")
    assert res.returncode == 0, res.stderr
    assert "already running" in res.stdout
    assert (cluster_dir / "state.json").read_text() == state_before  # nothing restarted
    status = localcluster_cmd(cluster_dir, "status")
    assert status.returncode == 0, status.stdout + status.stderr
    for component in ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"):
        assert f"{component}" in status.stdout
    assert "UNHEALTHY" not in status.stdout
    assert "core-0" in status.stdout and "Ready" in status.stdout


def test_second_cluster_takes_free_ports_and_down_stops_only_its_own(cluster: Cluster, tmp_path: Path) -> None:
    """A second cluster cannot have the first one's ports (taken), gets free ones, and its `down`
    stops exactly its own processes: the first cluster keeps answering."""
    other = tmp_path / "other-cluster"
    res = localcluster_cmd(other, "up", "--core-nodes", "1", "--user-nodes", "1")
    try:
        assert res.returncode == 0, res.stdout + res.stderr
        assert "is taken or another local cluster's, using free port" in res.stdout
        state = json.loads((other / "state.json").read_text())
        first = json.loads((Path(cluster.kubeconfig).parent / "state.json").read_text())
        assert state["ports"]["apiserver"] != first["ports"]["apiserver"]
        # not one port in common, the webhook's included: the first cluster's is not listened on
        # until cert-manager runs there, yet it is that cluster's
        assert not set(state["ports"].values()) & set(first["ports"].values())
        pids = [p["pid"] for p in state["processes"].values()]
        # the chart mirror keeps its state in the cluster directory: `down` must stop it too
        mirror = subprocess.run(
            [sys.executable, str(ROOT / "tools" / "chart-mirror.py"), "start"],
            env={**os.environ, "MYBINDER_CLUSTER_DIR": str(other)},
            capture_output=True,
            text=True,
            check=False,
        )
        assert mirror.returncode == 0, mirror.stderr
        pids.append(int((other / "chart-mirror" / "server.pid").read_text()))
        assert all(Path(f"/proc/{pid}").exists() for pid in pids)
    finally:
        down = localcluster_cmd(other, "down")
    assert down.returncode == 0, down.stderr
    assert not other.exists()
    wait_for(lambda: not any(Path(f"/proc/{pid}").exists() for pid in pids), timeout=20, what="processes to exit")
    # the first cluster is untouched
    assert localcluster_cmd(Path(cluster.kubeconfig).parent, "status").returncode == 0


def test_component_dying_at_start_fails_up_with_its_log(cluster: Cluster, tmp_path: Path) -> None:
    """kube-apiserver refuses an unknown flag: `up` must fail naming it with the end of its log,
    and leave no process of its own behind."""
    bins = tmp_path / "bin"
    shutil.copytree(cluster.bin_dir, bins, symlinks=True)
    real = (cluster.bin_dir / "kube-apiserver").resolve()
    (bins / "kube-apiserver").unlink()
    (bins / "kube-apiserver").write_text(f'#!/bin/sh\nexec "{real}" --this-flag-does-not-exist "$@"\n')
    (bins / "kube-apiserver").chmod(0o755)
    other = tmp_path / "broken-cluster"
    res = localcluster_cmd(other, "up", env={"MYBINDER_BIN_DIR": str(bins)})
    assert res.returncode != 0
    assert "kube-apiserver exited during start" in res.stderr
    assert "this-flag-does-not-exist" in res.stderr  # the tail of its log
    state = json.loads((other / "state.json").read_text())
    etcd_pid = state["processes"]["etcd"]["pid"]
    wait_for(lambda: not Path(f"/proc/{etcd_pid}").exists(), timeout=20, what="etcd of the failed start to stop")
    localcluster_cmd(other, "down")


def test_build_without_go_names_what_to_install(tmp_path: Path) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "MYBINDER_CACHE": str(tmp_path / "cache"),
    }
    if shutil.which("go", path=env["PATH"]):
        pytest.fail("this test needs a PATH without go; /usr/bin has one on this machine")
    res = subprocess.run(
        [str(ROOT / "tools" / "build-binaries.sh")], capture_output=True, text=True, env=env, check=False
    )
    assert res.returncode != 0
    assert "no Go toolchain" in res.stderr and "Install Go" in res.stderr


def test_git_crypt_install_without_apt_names_what_to_do(tmp_path: Path) -> None:
    """Without apt-get the installer says how to get git-crypt instead of failing obscurely."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "dirname", "awk", "id", "mktemp", "rm", "mkdir"):
        found = shutil.which(tool)
        assert found, tool
        (bin_dir / tool).symlink_to(found)
    env = {"PATH": str(bin_dir), "HOME": str(tmp_path), "MYBINDER_CACHE": str(tmp_path / "cache")}
    res = subprocess.run(
        [str(bin_dir / "bash"), str(ROOT / "tools" / "install-deb-tool.sh"), "git-crypt"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert res.returncode != 0
    assert "apt-get not found" in res.stderr and "apt-get install git-crypt" in res.stderr
    assert not (tmp_path / "cache").exists()  # nothing half installed


def bare_pod(name: str, grace: int, finalizers: list[str] | None = None) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "finalizers": finalizers or []},
        "spec": {
            "terminationGracePeriodSeconds": grace,
            "nodeSelector": {"mybinder.org/node-purpose": "user"},
            "containers": [{"name": "main", "image": "registry.invalid/app:1"}],
        },
    }


def test_deleted_pods_honour_grace_period_and_finalizers(cluster: Cluster, namespace: str) -> None:
    """Like a kubelet, the simulated one removes a deleted pod at some moment within its grace
    period, not at once, and never while a finalizer holds it. (kwok's stock "fast" stage would
    remove every deleted pod immediately, hiding grace-period handling from the drain tests.)"""
    for i in range(10):
        apply(cluster, namespace, bare_pod(f"graceful-{i}", 30))
    apply(cluster, namespace, bare_pod("held", 0, ["example.com/hold"]))
    wait_for(
        lambda: (
            [p["status"].get("phase") for p in cluster.get_json("pods", "-n", namespace)["items"]] == ["Running"] * 11
        ),
        what="pods Running",
    )
    cluster.kubectl("delete", "pods", "--all", "-n", namespace, "--wait=false")
    time.sleep(1)
    left = [p["metadata"]["name"] for p in cluster.get_json("pods", "-n", namespace)["items"]]
    # each pod goes at a uniformly random moment of its 30 s: after 1 s nearly all are still there
    assert len([n for n in left if n.startswith("graceful-")]) >= 5, left
    assert "held" in left
    # a forced deletion (grace 0) is immediate, as with a real kubelet
    cluster.kubectl(
        "delete", "pods", "-l", "!nonexistent", "-n", namespace, "--grace-period=0", "--force", "--wait=false"
    )
    held = cluster.get_json("pod", "held", "-n", namespace)
    assert held["metadata"].get("deletionTimestamp")  # the finalizer still holds it
    cluster.kubectl(
        "patch", "pod", "held", "-n", namespace, "--type=json", "-p", '[{"op":"remove","path":"/metadata/finalizers"}]'
    )
    wait_for(
        lambda: not cluster.get_json("pods", "-n", namespace)["items"],
        timeout=20,
        what="every pod gone",
    )


def test_node_leases_are_renewed(cluster: Cluster) -> None:
    """Nodes keep a renewed Lease, as kubelets do; without it the node lifecycle controller marks
    every node NotReady after its grace period and every pod with it."""
    import datetime

    def renew_times() -> dict[str, str]:
        leases = cluster.get_json("leases", "-n", "kube-node-lease")["items"]
        return {item["metadata"]["name"]: item["spec"].get("renewTime", "") for item in leases}

    first = renew_times()
    for name in ("core-0", "user-0", "user-1"):
        assert name in first, first
    later = wait_for(
        lambda: (t := renew_times()) and all(t[n] > first[n] for n in ("core-0", "user-0", "user-1")) and t,
        timeout=60,
        what="every node Lease renewed",
    )
    renewed = datetime.datetime.fromisoformat(later["core-0"].replace("Z", "+00:00"))
    assert (datetime.datetime.now(datetime.UTC) - renewed).total_seconds() < 60
