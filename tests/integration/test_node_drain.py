"""node_drain against the real local control plane (API server, controller-manager computing PDB
status, scheduler, kwok kubelets).

Every test makes its own Node objects in a pool of its own (label mybinder.org/node-purpose=
drain-<random>) and deletes them afterwards, so the cluster's standard nodes are never touched.
The module runs in-process through its main() (what AnsiballZ runs), with check and diff mode
set as Ansible sets them; tests/integration/test_node_drain_playbooks.py runs it through
ansible-playbook.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
import threading
import time
import unittest.mock
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / ".collections"))
from ansible.module_utils import _internal as ansible_internal
from ansible.module_utils.testing import patch_module_args
from ansible_collections.mybinder.deploy.plugins.module_utils import _drain as d
from ansible_collections.mybinder.deploy.plugins.modules import node_drain

pytestmark = pytest.mark.cluster
POOL_KEY = "mybinder.org/node-purpose"


# ------------------------------------------------------------------------------------------------
# helpers


class Pool:
    """Nodes of a pool of this test's own; removed (with the pods bound to them) at the end."""

    def __init__(self, cluster: Any, label_key: str = POOL_KEY) -> None:
        self.cluster = cluster
        self.value = f"drain-{uuid.uuid4().hex[:6]}"
        self.label_key = label_key
        self.nodes: list[str] = []

    def add(self, count: int = 1, labels: dict[str, str] | None = None) -> list[str]:
        names = [f"{self.value}-{len(self.nodes) + i}" for i in range(count)]
        docs = []
        for name in names:
            node_labels = {self.label_key: self.value, "kubernetes.io/hostname": name, "type": "kwok"}
            node_labels.update(labels or {})
            docs.append(
                {
                    "apiVersion": "v1",
                    "kind": "Node",
                    "metadata": {
                        "name": name,
                        "labels": node_labels,
                        "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
                    },
                    "status": {
                        "allocatable": {"cpu": "32", "memory": "256Gi", "pods": "1100"},
                        "capacity": {"cpu": "32", "memory": "256Gi", "pods": "1100"},
                    },
                }
            )
        apply(self.cluster, docs)
        self.nodes += names
        for name in names:
            self.cluster.kubectl("wait", "--for=condition=Ready", f"node/{name}", "--timeout=30s")
        return names

    def cleanup(self) -> None:
        for name in self.nodes:
            pods = self.cluster.get_json("pods", "-A", "--field-selector", f"spec.nodeName={name}")["items"]
            for pod in pods:
                meta = pod["metadata"]
                if meta.get("finalizers"):
                    self.cluster.kubectl(
                        "patch",
                        "pod",
                        meta["name"],
                        "-n",
                        meta["namespace"],
                        "--type=merge",
                        "-p",
                        '{"metadata":{"finalizers":null}}',
                        check=False,
                    )
                self.cluster.kubectl(
                    "delete",
                    "pod",
                    meta["name"],
                    "-n",
                    meta["namespace"],
                    "--grace-period=0",
                    "--force",
                    "--wait=false",
                    check=False,
                )
        if self.nodes:
            self.cluster.kubectl("delete", "node", *self.nodes, "--wait=false", "--ignore-not-found", check=False)


@pytest.fixture
def pool(cluster: Any) -> Iterator[Pool]:
    p = Pool(cluster)
    yield p
    p.cleanup()


@pytest.fixture
def kube_system(cluster: Any) -> Iterator[list[str]]:
    """Names of kube-system objects (kind/name) the test creates; deleted afterwards."""
    created: list[str] = []
    yield created
    for ref in created:
        cluster.kubectl("delete", "-n", "kube-system", ref, "--wait=false", "--ignore-not-found", check=False)


def apply(cluster: Any, docs: list[dict[str, Any]]) -> None:
    cluster.kubectl("apply", "-f", "-", input_text=json.dumps({"apiVersion": "v1", "kind": "List", "items": docs}))


def bare_pod(
    name: str,
    ns: str,
    node: str | None,
    labels: dict[str, str] | None = None,
    grace: int = 1,
    **spec: Any,
) -> dict[str, Any]:
    pod_spec: dict[str, Any] = {
        "terminationGracePeriodSeconds": grace,
        "containers": [{"name": "c", "image": "registry.invalid/c:1"}],
        **spec,
    }
    if node:
        pod_spec["nodeName"] = node
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": labels or {}},
        "spec": pod_spec,
    }


def user_pod(name: str, ns: str, node: str, grace: int = 1) -> dict[str, Any]:
    return bare_pod(name, ns, node, {"component": "singleuser-server", "app": "jupyterhub"}, grace)


def build_pod(name: str, ns: str, node: str) -> dict[str, Any]:
    return bare_pod(
        name,
        ns,
        node,
        {"component": "binderhub-build"},
        volumes=[{"name": "docker-socket", "hostPath": {"path": "/var/run/docker.sock", "type": "Socket"}}],
    )


def workload(
    kind: str,
    name: str,
    ns: str,
    pool: Pool,
    replicas: int = 1,
    labels: dict[str, str] | None = None,
    node_name: str | None = None,
) -> dict[str, Any]:
    labels = {"app": name, **(labels or {})}
    pod_spec: dict[str, Any] = {
        "terminationGracePeriodSeconds": 1,
        "containers": [{"name": "c", "image": "registry.invalid/c:1"}],
    }
    if node_name:
        pod_spec["nodeName"] = node_name
    else:
        pod_spec["nodeSelector"] = {pool.label_key: pool.value}
    spec: dict[str, Any] = {
        "selector": {"matchLabels": {"app": name}},
        "template": {"metadata": {"labels": labels}, "spec": pod_spec},
    }
    if kind != "DaemonSet":
        spec["replicas"] = replicas
    if kind == "StatefulSet":
        spec["serviceName"] = name
    return {"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": name, "namespace": ns}, "spec": spec}


def pdb_doc(name: str, ns: str, match: dict[str, str], **budget: Any) -> dict[str, Any]:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"selector": {"matchLabels": match}, **budget},
    }


def pods_on(cluster: Any, node: str) -> dict[str, dict[str, Any]]:
    items = cluster.get_json("pods", "-A", "--field-selector", f"spec.nodeName={node}")["items"]
    return {f"{p['metadata']['namespace']}/{p['metadata']['name']}": p for p in items}


def wait_until(what: str, check: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def wait_running(cluster: Any, ns: str, count: int, node: str | None = None) -> None:
    def ready() -> bool:
        items = cluster.get_json("pods", "-n", ns)["items"]
        if node:
            items = [p for p in items if p["spec"].get("nodeName") == node]
        running = [
            p for p in items if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")
        ]
        return len(running) >= count

    wait_until(f"{count} running pods in {ns}", ready)


def cordon(cluster: Any, node: str, on: bool = True) -> None:
    cluster.kubectl("cordon" if on else "uncordon", node)


def run_drain(cluster: Any, check: bool = False, diff: bool = False, **args: Any) -> dict[str, Any]:
    """The module's main() in-process, exactly as AnsiballZ runs it; returns the JSON result."""
    args.setdefault("kubeconfig", str(cluster.kubeconfig))
    args["_ansible_check_mode"] = check
    args["_ansible_diff"] = diff
    out = io.StringIO()
    # AnsiballZ runs a module in a process of its own, where ansible-core's `is_controller` is
    # False and module.warn() puts warnings into the result. In this pytest process an earlier
    # test may have imported controller code, which flips the flag and would send warnings to the
    # controller's display instead; pin it as a module process has it.
    with (
        patch_module_args(args),
        unittest.mock.patch.object(ansible_internal, "is_controller", False),
        contextlib.redirect_stdout(out),
        pytest.raises(SystemExit),
    ):
        node_drain.main()
    return json.loads(out.getvalue())


def warnings(result: dict[str, Any]) -> list[str]:
    """Warning texts (ansible-core 2.19 returns them as structured summaries in-process)."""
    out = []
    for w in result.get("warnings") or []:
        out.append(w["event"]["msg"] if isinstance(w, dict) and "event" in w else str(w))
    return out


def names(entries: list[dict[str, Any]]) -> set[str]:
    return {f"{e['namespace']}/{e['name']}" for e in entries}


def node_json(cluster: Any, name: str) -> dict[str, Any]:
    return cluster.get_json("node", name)


# ------------------------------------------------------------------------------------------------
# tests


def test_drain_mixed_node_check_real_check_real(cluster, namespace, pool, kube_system) -> None:
    """A user node as BinderHub has them: sessions, a build, a DaemonSet pod, a StatefulSet pod and
    a kube-dns-like pod without a PDB. Only the last two are evicted; check mode predicts it."""
    a, b = pool.add(2)
    ns = namespace
    dns = f"dns-{pool.value}"
    cordon(cluster, b)  # everything lands on a first
    apply(
        cluster,
        [
            workload("Deployment", dns, "kube-system", pool, labels={"k8s-app": dns}),
            workload("DaemonSet", "agent", ns, pool),
            workload("StatefulSet", "db", ns, pool),
            user_pod("jupyter-alice", ns, a),
            user_pod("jupyter-bob", ns, a),
            build_pod("build-abc", ns, a),
        ],
    )
    kube_system.append(f"deployment/{dns}")
    wait_running(cluster, ns, 5, node=a)
    wait_running(cluster, "kube-system", 1, node=a)
    cordon(cluster, b, on=False)
    wait_running(cluster, ns, 1, node=b)  # the DaemonSet pod on b
    before = pods_on(cluster, a)
    dns_pod = next(k for k in before if k.startswith(f"kube-system/{dns}-"))

    predicted = run_drain(cluster, check=True, diff=True, name=[a])
    assert predicted["changed"] is True, predicted
    assert node_json(cluster, a)["spec"].get("unschedulable") is None  # check mode changed nothing
    assert set(pods_on(cluster, a)) == set(before)

    real = run_drain(cluster, name=[a], reason="test rotation")
    assert real["changed"] is True, real
    r, p = real["nodes"][a], predicted["nodes"][a]
    assert names(r["evicted"]) == names(p["evicted"]) == {dns_pod, f"{ns}/db-0"}
    assert names(r["skipped"]) == names(p["skipped"])
    assert r["blocked"] == p["blocked"] == []
    evicted = {f"{e['namespace']}/{e['name']}": e for e in r["evicted"]}
    assert "kube-system pod without a PodDisruptionBudget" in evicted[dns_pod]["reason"]
    reasons = {f"{e['namespace']}/{e['name']}": e["reason"] for e in r["skipped"]}
    assert reasons[f"{ns}/jupyter-alice"].startswith("user session: left to end on its own")
    assert reasons[f"{ns}/build-abc"].startswith("image build: left to end on its own")
    agent = next(k for k in reasons if k.startswith(f"{ns}/agent-"))
    assert reasons[agent].startswith("DaemonSet pod (agent)")

    # sessions, the build and the DaemonSet pod are still there and running; the rest is gone
    after = pods_on(cluster, a)
    assert set(after) == {f"{ns}/jupyter-alice", f"{ns}/jupyter-bob", f"{ns}/build-abc", agent}
    assert all(p["status"]["phase"] == "Running" and not p["metadata"].get("deletionTimestamp") for p in after.values())
    # ... and their replacements run on b
    wait_until("db-0 back on the other node", lambda: pods_on(cluster, b).get(f"{ns}/db-0"))

    # the node is retiring, marked as ours with who/when/why
    n = node_json(cluster, a)
    assert n["spec"]["unschedulable"] is True and d.has_retiring_taint(n)
    rec = d.cordon_record(n)
    assert rec["tool"] == "mybinder.deploy.node_drain" and rec["reason"] == "test rotation"
    assert rec["unschedulable_before"] is False and rec["by"]
    assert r["cordoned"] and r["cordoned_by_us"] and r["cordon"] == "cordoned"

    # when it is expected to be empty: the last session start + 6 h
    assert {u["name"]: u["kind"] for u in r["user_pods"]} == {
        "jupyter-alice": "user",
        "jupyter-bob": "user",
        "build-abc": "build",
    }
    starts = {u["name"]: after[f"{ns}/{u['name']}"]["status"]["startTime"] for u in r["user_pods"]}
    for u in r["user_pods"]:
        assert d.parse_time(u["expected_end"]) == d.parse_time(starts[u["name"]]) + d.datetime.timedelta(hours=6)
    assert r["estimated_empty_at"] == max(u["expected_end"] for u in r["user_pods"])
    assert r["autoscaler_blockers"] == [] and r["empty"] is False
    assert [(u["name"], u["expected_end"]) for u in p["user_pods"]] == [
        (u["name"], u["expected_end"]) for u in r["user_pods"]
    ]

    # diff mode showed the cordon and the pods that go
    diff = predicted["diff"]
    assert diff["before"]["nodes"][a]["unschedulable"] is False
    assert diff["after"]["nodes"][a]["unschedulable"] is True and diff["after"]["nodes"][a]["retiring_taint"] is True
    assert dns_pod in diff["before"]["nodes"][a]["pods"] and dns_pod not in diff["after"]["nodes"][a]["pods"]

    # idempotence: check again and run again change nothing
    again_check = run_drain(cluster, check=True, name=[a])
    again = run_drain(cluster, name=[a])
    assert again_check["changed"] is False and again["changed"] is False, (again_check, again)
    assert again["nodes"][a]["cordon"] == "already" and again["nodes"][a]["evicted"] == []


def test_pdb_that_blocks_until_a_replacement_is_ready(cluster, namespace, pool) -> None:
    """Two replicas on the node and a PDB allowing one disruption. The first eviction is accepted;
    its replacement cannot start at once (the only other usable node is cordoned for 3 s), so the
    second eviction is refused (429) and retried until the replacement is ready, then accepted."""
    a, b = pool.add(2)
    # a third node of the pool that these pods do not tolerate: keeps the pool from being "last node"
    (c,) = pool.add(1)
    cluster.kubectl("taint", "node", c, "mybinder.test/closed=true:NoSchedule")
    cordon(cluster, b)
    apply(
        cluster,
        [
            workload("Deployment", "web", namespace, pool, replicas=2),
            pdb_doc("web", namespace, {"app": "web"}, minAvailable=1),
        ],
    )
    wait_running(cluster, namespace, 2, node=a)
    wait_until(
        "the PDB to allow one disruption",
        lambda: cluster.get_json("pdb", "web", "-n", namespace).get("status", {}).get("disruptionsAllowed") == 1,
    )

    predicted = run_drain(cluster, check=True, name=[a])
    opener = threading.Timer(3.0, cordon, args=(cluster, b, False))
    opener.start()
    t0 = time.monotonic()
    real = run_drain(cluster, name=[a], timeout=60)
    opener.join()
    assert real.get("failed") is not True, real
    assert time.monotonic() - t0 >= 3.0
    for which, result in (("check mode", predicted), ("real run", real)):
        entries = result["nodes"][a]["evicted"]
        assert len(entries) == 2 and result["nodes"][a]["blocked"] == [], (which, result)
        assert [e.get("pdb_wait") for e in entries].count("web") == 1, (which, entries)  # one waited for the PDB
    waited = next(e for e in real["nodes"][a]["evicted"] if e.get("pdb_wait"))
    assert waited["attempts"] > 1
    running_on_b = [p for p in pods_on(cluster, b).values() if p["metadata"]["labels"].get("app") == "web"]
    assert len(running_on_b) == 2


def test_blocked_evictions_fail_with_changed_and_say_what_was_done(cluster, namespace, pool) -> None:
    """A PDB that never allows a disruption, and a pod selected by two PDBs (the Eviction API
    answers 500): the task fails at the timeout, reports changed=true (the node was cordoned and a
    pod evicted), names the PDBs, and says what was done and what is left."""
    a, b = pool.add(2)
    cordon(cluster, b)
    apply(
        cluster,
        [
            workload("Deployment", "solo", namespace, pool),
            pdb_doc("solo", namespace, {"app": "solo"}, minAvailable=1),
            workload("Deployment", "multi", namespace, pool),
            pdb_doc("multi-a", namespace, {"app": "multi"}, maxUnavailable=1),
            pdb_doc("multi-b", namespace, {"app": "multi"}, maxUnavailable=1),
            bare_pod("stray", namespace, a, {"app": "stray"}),
        ],
    )
    wait_running(cluster, namespace, 3, node=a)
    cordon(cluster, b, on=False)
    wait_until(
        "PDB status", lambda: "disruptionsAllowed" in cluster.get_json("pdb", "solo", "-n", namespace).get("status", {})
    )

    predicted = run_drain(cluster, check=True, name=[a], timeout=4)
    assert predicted.get("failed") is not True and predicted["changed"] is True
    assert {x["name"].split("-")[0] for x in predicted["nodes"][a]["blocked"]} == {"solo", "multi"}
    assert [w for w in warnings(predicted) if "would stay blocked" in w and "on_timeout: fail" in w] and len(
        warnings(predicted)
    ) == 2, warnings(predicted)

    t0 = time.monotonic()
    result = run_drain(cluster, name=[a], timeout=4)
    assert result["failed"] is True and result["changed"] is True, result
    assert time.monotonic() - t0 < 30
    msg = result["msg"]
    assert "timeout (4 s) reached" in msg
    assert "PodDisruptionBudget solo" in msg
    assert "several PodDisruptionBudgets select" in msg and "(multi-a, multi-b)" in msg
    assert f"Done before stopping: {a}: cordoned, evicted 1 pod(s)" in msg
    node = result["nodes"][a]
    assert names(node["evicted"]) == {f"{namespace}/stray"}
    blocked = {x["name"].split("-")[0]: x for x in node["blocked"]}
    assert blocked["solo"]["pdbs"] == ["solo"] and sorted(blocked["multi"]["pdbs"]) == ["multi-a", "multi-b"]
    assert node["cordoned"] is True
    # still there: the two blocked pods
    left = {p["metadata"]["labels"].get("app") for p in pods_on(cluster, a).values()}
    assert left == {"solo", "multi"}


def test_already_terminating_pod_is_waited_for_not_evicted(cluster, namespace, pool) -> None:
    a, _ = pool.add(2)
    pod = bare_pod("held", namespace, a, {"app": "held"})
    pod["metadata"]["finalizers"] = ["mybinder.test/hold"]
    apply(cluster, [pod])
    wait_running(cluster, namespace, 1, node=a)
    cluster.kubectl("delete", "pod", "held", "-n", namespace, "--wait=false")
    wait_until(
        "held to be terminating",
        lambda: cluster.get_json("pod", "held", "-n", namespace)["metadata"].get("deletionTimestamp"),
    )

    quick = run_drain(cluster, name=[a], wait="none")
    assert quick["nodes"][a]["evicted"] == []
    assert quick["nodes"][a]["skipped"][0]["reason"].startswith("already terminating")

    def release() -> None:
        time.sleep(2)
        cluster.kubectl(
            "patch", "pod", "held", "-n", namespace, "--type=merge", "-p", '{"metadata":{"finalizers":null}}'
        )

    releaser = threading.Thread(target=release)
    releaser.start()
    t0 = time.monotonic()
    waited = run_drain(cluster, name=[a], wait="blockers", timeout=30)
    releaser.join()
    assert waited.get("failed") is not True, waited
    assert time.monotonic() - t0 >= 1.5  # it really waited for the terminating pod
    assert f"{namespace}/held" not in pods_on(cluster, a)


def test_statefulset_replacement_with_the_same_name_does_not_count_as_the_old_pod(cluster, namespace, pool) -> None:
    """The StatefulSet recreates db-0 on the very same node (its template names the node): only
    the UID tells the new pod from the evicted one."""
    a, _ = pool.add(2)
    apply(cluster, [workload("StatefulSet", "db", namespace, pool, node_name=a)])
    wait_running(cluster, namespace, 1, node=a)
    old_uid = cluster.get_json("pod", "db-0", "-n", namespace)["metadata"]["uid"]
    result = run_drain(cluster, name=[a], timeout=30)
    assert result.get("failed") is not True, result
    assert names(result["nodes"][a]["evicted"]) == {f"{namespace}/db-0"}
    new = wait_until("db-0 to come back", lambda: pods_on(cluster, a).get(f"{namespace}/db-0"))
    assert new["metadata"]["uid"] != old_uid


def test_refuses_the_last_schedulable_node_of_a_pool(cluster, pool) -> None:
    (a,) = pool.add(1)
    for check in (True, False):
        result = run_drain(cluster, check=check, name=[a])
        assert result["failed"] is True and result["changed"] is False, result
        assert f"would leave pool {POOL_KEY}={pool.value} without a schedulable node" in result["msg"]
        assert "Set force: true to proceed anyway" in result["msg"]
    n = node_json(cluster, a)
    assert not n["spec"].get("unschedulable") and not d.has_retiring_taint(n)  # untouched

    forced = run_drain(cluster, name=[a], force=True)
    assert forced["changed"] is True and forced["nodes"][a]["cordoned"] is True
    assert any("proceeding because force: true" in w for w in warnings(forced))


def test_recognises_jupyterhub_pool_label(cluster) -> None:
    jpool = Pool(cluster, label_key="hub.jupyter.org/node-purpose")
    try:
        (a,) = jpool.add(1)
        result = run_drain(cluster, name=[a], state="cordoned")
        assert result["failed"] is True
        assert f"pool hub.jupyter.org/node-purpose={jpool.value} without a schedulable node" in result["msg"]
    finally:
        jpool.cleanup()


def test_refuses_to_leave_every_hub_pod_on_cordoned_nodes(cluster, namespace, pool) -> None:
    a, b = pool.add(2)
    apply(cluster, [bare_pod("hub-1", namespace, a, {"component": "hub", "app": "jupyterhub"})])
    wait_running(cluster, namespace, 1, node=a)
    result = run_drain(cluster, name=[a], state="cordoned")
    assert result["failed"] is True and result["changed"] is False
    assert f"every pod of 'component=hub' in namespace {namespace} (hub-1 on {a})" in result["msg"]
    assert not node_json(cluster, a)["spec"].get("unschedulable")
    # b holds no hub pod: cordoning it is fine
    assert run_drain(cluster, name=[b], state="cordoned")["changed"] is True
    forced = run_drain(cluster, name=[a], state="cordoned", force=True)
    assert forced["changed"] is True and any("component=hub" in w for w in warnings(forced))


def test_image_cleaner_uncordon_race(cluster, namespace, pool) -> None:
    """BinderHub's image cleaner cordons a node (with its annotation), prunes, then uncordons it
    whatever happened meanwhile. A retiring node must stay closed to new pods (taint) and the next
    run must put the cordon back and say so; uncordon refuses nodes it did not cordon."""
    a, _ = pool.add(2)
    cleaner = {"metadata": {"annotations": {d.IMAGE_CLEANER_ANNOTATION: "true"}}, "spec": {"unschedulable": True}}
    cluster.kubectl("patch", "node", a, "--type=merge", "-p", json.dumps(cleaner))

    first = run_drain(cluster, name=[a], state="cordoned")
    assert first["changed"] is True and first["nodes"][a]["cordon"] == "cordoned"
    # the cleaner's short cordon is not somebody else's retirement to respect later
    assert d.cordon_record(node_json(cluster, a))["unschedulable_before"] is False

    uncleaner = {"metadata": {"annotations": {d.IMAGE_CLEANER_ANNOTATION: None}}, "spec": {"unschedulable": False}}
    cluster.kubectl("patch", "node", a, "--type=merge", "-p", json.dumps(uncleaner))
    # no new pod lands on it meanwhile: the taint holds
    apply(cluster, [bare_pod("newcomer", namespace, None, nodeSelector={"kubernetes.io/hostname": a})])
    time.sleep(2)
    assert not cluster.get_json("pod", "newcomer", "-n", namespace)["spec"].get("nodeName")

    second = run_drain(cluster, name=[a], state="cordoned")
    assert second["changed"] is True and second["nodes"][a]["reasserted"] is True
    assert any("re-asserted the cordon" in w for w in warnings(second))
    assert node_json(cluster, a)["spec"]["unschedulable"] is True
    assert run_drain(cluster, name=[a], state="cordoned")["changed"] is False

    # uncordon removes exactly our marks; the waiting pod can land now
    check = run_drain(cluster, check=True, name=[a], state="uncordoned")
    assert check["changed"] is True and node_json(cluster, a)["spec"]["unschedulable"] is True
    undone = run_drain(cluster, name=[a], state="uncordoned")
    assert undone["changed"] is True and undone["nodes"][a]["cordon"] == "uncordoned"
    n = node_json(cluster, a)
    assert not n["spec"].get("unschedulable") and not d.marked_by_us(n)
    wait_until(
        "the newcomer to be scheduled",
        lambda: cluster.get_json("pod", "newcomer", "-n", namespace)["spec"].get("nodeName") == a,
    )
    assert run_drain(cluster, name=[a], state="uncordoned")["changed"] is False

    # a node the image cleaner has cordoned is not ours to uncordon
    cluster.kubectl("patch", "node", a, "--type=merge", "-p", json.dumps(cleaner))
    refused = run_drain(cluster, name=[a], state="uncordoned")
    assert refused["failed"] is True and refused["changed"] is False
    assert "cordoned by BinderHub's image cleaner" in refused["msg"]
    forced = run_drain(cluster, name=[a], state="uncordoned", force=True)
    assert forced["changed"] is True and not node_json(cluster, a)["spec"].get("unschedulable")


def test_zero_grace_period_is_honoured(cluster, namespace, pool) -> None:
    """A session pod with an hour of grace: evicted with grace_period 0 it is gone at once."""
    a, _ = pool.add(2)
    apply(cluster, [user_pod("jupyter-slow", namespace, a, grace=3600)])
    wait_running(cluster, namespace, 1, node=a)
    t0 = time.monotonic()
    result = run_drain(cluster, name=[a], evict="all", grace_period=0, timeout=60)
    assert result.get("failed") is not True, result
    assert time.monotonic() - t0 < 20
    assert names(result["nodes"][a]["evicted"]) == {f"{namespace}/jupyter-slow"}
    assert result["nodes"][a]["evicted"][0]["reason"] == "user session (evict: all)"
    assert result["nodes"][a]["empty"] is True
    assert f"{namespace}/jupyter-slow" not in pods_on(cluster, a)


def test_wait_empty_then_force_and_delete_the_node(cluster, namespace, pool, tmp_path) -> None:
    """wait: empty with a short deadline: the session that would live on is force-deleted with
    grace period 0 at the deadline, then the empty Node object is deleted. Progress is written
    while waiting."""
    a, _ = pool.add(2)
    apply(
        cluster, [user_pod("jupyter-long", namespace, a, grace=3600), workload("DaemonSet", "agent", namespace, pool)]
    )
    wait_running(cluster, namespace, 2, node=a)
    progress = tmp_path / "progress.log"
    predicted = run_drain(
        cluster, check=True, name=[a], wait="empty", timeout=3, on_timeout="force", grace_period=0, delete_node=True
    )
    # forced at the deadline whatever happens: predicted empty and deleted
    assert predicted["nodes"][a]["deleted"] is True and predicted["nodes"][a]["empty"] is True
    assert node_json(cluster, a)["metadata"]["name"] == a  # ... but nothing done in check mode
    result = run_drain(
        cluster,
        name=[a],
        wait="empty",
        timeout=3,
        on_timeout="force",
        grace_period=0,
        delete_node=True,
        progress_file=str(progress),
    )
    assert result.get("failed") is not True, result
    node = result["nodes"][a]
    assert names(node["forced"]) == {f"{namespace}/jupyter-long"} and node["forced"][0]["grace_period"] == 0
    assert node["deleted"] is True and node["empty"] is True
    assert cluster.kubectl("get", "node", a, check=False).returncode != 0
    lines = progress.read_text().splitlines()
    assert any("waiting" in line and "1 user pod(s), the last expected to end" in line for line in lines), lines
    assert any("force-deleting 1 pod(s), grace period 0" in line for line in lines), lines
    assert lines[-1].endswith("done")


def test_selection_by_pool_age_and_count(cluster, pool) -> None:
    nodes = pool.add(3)
    selector = f"{POOL_KEY}={pool.value}"
    assert run_drain(cluster, check=True, selector=selector, older_than="1d")["nodes"] == {}
    picked = run_drain(cluster, selector=selector, max_nodes=2, state="cordoned")
    assert sorted(picked["nodes"]) == nodes[:2]  # the oldest (created first, same second: by name)
    # a second run with the same count picks the same nodes, and changes nothing
    again = run_drain(cluster, selector=selector, max_nodes=2, state="cordoned")
    assert sorted(again["nodes"]) == nodes[:2] and again["changed"] is False
    missing = run_drain(cluster, name=[nodes[0], "no-such-node"])
    assert missing["failed"] is True and "no-such-node not found" in missing["msg"]
