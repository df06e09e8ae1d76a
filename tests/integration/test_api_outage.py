"""A restart of the real kube-apiserver of the local cluster during a drain's evictions, during a
drain's wait and during a deploy's rollout wait (issue 19, deliverable 2): each is ridden out, and
the run ends as it would have without the outage. `tools/localcluster.py restart` stops the API
server, leaves it down, and starts it again with the same command line.

These tests restart the API server of the shared local cluster: every other client of it (the
controller manager, the scheduler, kwok, the pod processes) rides out the same few seconds.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from deploy_testlib import history, overrides, parse, small_chart, start_deploy
from test_deploy import STAGE, wait_ready
from test_node_drain import Pool, apply, bare_pod, pdb_doc, pods_on, run_drain, wait_running, wait_until, workload

from conftest import ROOT

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

DOWN = 2.0  # seconds the API server stays down; its start takes 10-20 s more on a 2-core machine


def restart_apiserver(down: float = DOWN) -> None:
    res = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "localcluster.py"), "restart", "kube-apiserver", "--down", str(down)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stdout + res.stderr


def wait_controllers_back(cluster: Any) -> None:
    """The controllers re-establish their watches some seconds after the API server is back (with
    backoff): wait until a new namespace gets its service account, so that the tests after this
    one find a working cluster."""
    probe = f"outage-probe-{time.monotonic_ns() % 10**8}"
    cluster.kubectl("create", "namespace", probe)
    try:
        cluster.kubectl("wait", "--for=create", "serviceaccount/default", "-n", probe, "--timeout=120s")
    finally:
        cluster.kubectl("delete", "namespace", probe, "--wait=false", check=False)


def api_answers(cluster: Any) -> bool:
    return cluster.kubectl("get", "--raw", "/readyz", check=False).returncode == 0


@pytest.fixture
def pool(cluster: Any) -> Iterator[Pool]:
    p = Pool(cluster)
    yield p
    wait_until("the API server to answer", lambda: api_answers(cluster), timeout=60)
    wait_controllers_back(cluster)
    p.cleanup()


def in_background(fn: Any, *args: Any, **kwargs: Any) -> tuple[threading.Thread, dict[str, Any]]:
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["result"] = fn(*args, **kwargs)
        except BaseException as exc:  # reported by the test
            box["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    return thread, box


def hold_pods(cluster: Any, namespace: str, node: str, count: int) -> None:
    """``count`` running pods on ``node`` that stay once deleted (a finalizer) until the test lets them go."""
    held = [bare_pod(f"held-{i}", namespace, node, {"app": "held"}) for i in range(count)]
    for pod in held:
        pod["metadata"]["finalizers"] = ["mybinder.test/hold"]
    apply(cluster, held)
    wait_running(cluster, namespace, count, node)


def wait_terminating(cluster: Any, node: str) -> None:
    wait_until(
        "the evicted pods to be terminating",
        lambda: all(p["metadata"].get("deletionTimestamp") for p in pods_on(cluster, node).values()),
    )


def test_a_drain_rides_out_an_api_server_restart_during_its_evictions(cluster, namespace, pool):
    [node] = pool.add(1)
    apply(cluster, [workload("Deployment", "web", namespace, pool, replicas=20)])
    wait_running(cluster, namespace, 20, node)
    pool.add(1)  # where the evicted pods go (and a pool is never left without a schedulable node)
    # Every eviction is refused (the budget allows none) and retried while the API server restarts;
    # the budget goes once the server is back, and the evictions go through.
    apply(cluster, [pdb_doc("web", namespace, {"app": "web"}, maxUnavailable=0)])

    thread, box = in_background(run_drain, cluster, name=[node], timeout=120)
    wait_until(
        "the drain to cordon",
        lambda: box or cluster.get_json("node", node)["spec"].get("unschedulable"),
    )
    assert not box, box  # the drain is still at work
    time.sleep(1.0)
    restart_apiserver()
    cluster.kubectl("delete", "pdb", "web", "-n", namespace)
    thread.join(timeout=180)
    assert "error" not in box, box.get("error")
    result = box["result"]
    assert result.get("failed") is not True, result
    assert len(result["nodes"][node]["evicted"]) == 20, result["nodes"][node]
    assert not [p for p in pods_on(cluster, node) if p.startswith(f"{namespace}/")]


def test_a_drain_rides_out_an_api_server_restart_during_its_wait(cluster, namespace, pool):
    node, _spare = pool.add(2)  # a pool is never left without a schedulable node
    hold_pods(cluster, namespace, node, 5)

    thread, box = in_background(run_drain, cluster, name=[node], evict="all", timeout=120)
    wait_terminating(cluster, node)  # evicted, the pods stay (their finalizer): the drain waits for them
    restart_apiserver()
    for i in range(5):
        cluster.kubectl(
            "patch", "pod", f"held-{i}", "-n", namespace, "--type=merge", "-p", '{"metadata":{"finalizers":null}}'
        )
    thread.join(timeout=180)
    assert "error" not in box, box.get("error")
    result = box["result"]
    assert result.get("failed") is not True, result
    assert len(result["nodes"][node]["evicted"]) == 5
    assert pods_on(cluster, node) == {}


def test_a_drain_stopped_by_an_outage_reports_what_it_did(cluster, namespace, pool):
    """An outage longer than the drain's deadline ends it; the failure says what was done."""
    node, _spare = pool.add(2)  # a pool is never left without a schedulable node
    hold_pods(cluster, namespace, node, 3)

    thread, box = in_background(run_drain, cluster, name=[node], evict="all", timeout=10)
    wait_terminating(cluster, node)
    restart_apiserver(down=15)
    thread.join(timeout=120)
    result = box["result"]
    assert result["failed"] is True and result["changed"] is True, result
    assert f"{node}: cordoned, evicted 3 pod(s)" in result["msg"], result["msg"]
    assert "Done before stopping: nothing" not in result["msg"]


def test_a_deploy_rides_out_an_api_server_restart_during_its_rollout_wait(cluster, namespace, tmp_path):
    chart = small_chart(tmp_path / "chart")
    label = f"mybinder.org/outage-{namespace}"
    # The pods schedule only once the test labels a node: the rollout waits until then.
    extra = overrides(
        tmp_path,
        namespace,
        chart,
        {"web": {"nodeSelector": {label: "yes"}}},
        mybinder_rollout_timeout=150,
        mybinder_rollout_progress_interval=3,
    )
    proc = start_deploy(tmp_path, extra, *STAGE)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout or []))
    reader.start()
    try:
        wait_until("the rollout wait", lambda: any("rollout: " in line for line in lines), timeout=180)
        restart_apiserver()
        cluster.kubectl("label", "node", "user-0", f"{label}=yes")
        proc.wait(timeout=300)
        reader.join(timeout=10)
    finally:
        cluster.kubectl("label", "node", "user-0", f"{label}-", check=False)
        wait_controllers_back(cluster)
    res = parse(proc.returncode, "".join(lines))
    assert res.rc == 0, res.output
    assert "the API server did not answer" in res.output  # the outage was seen, and waited out
    assert "Rolled back" not in res.output
    assert [h["status"] for h in history(cluster, namespace, namespace)] == ["deployed"]
    wait_ready(cluster, namespace, "web", 2)
