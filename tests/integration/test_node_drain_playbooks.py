"""playbooks/drain.yml and playbooks/rotate-user-pool.yml through ansible-playbook against the
local cluster: progress lines while the module runs, the summary table, refusals, and the staged
pool rotation. Nodes are this test's own (see test_node_drain.Pool)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / ".collections"))
from ansible_collections.mybinder.deploy.plugins.module_utils import _drain as d
from test_node_drain import POOL_KEY, Pool, apply, bare_pod, node_json, pods_on, user_pod, wait_running

pytestmark = pytest.mark.cluster
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def pool(cluster: Any):
    p = Pool(cluster)
    yield p
    p.cleanup()


def playbook(cluster: Any, name: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_FORCE_COLOR="0", ANSIBLE_NOCOLOR="1")
    cmd = [
        "ansible-playbook",
        str(ROOT / "playbooks" / name),
        "-i",
        str(ROOT / "inventories" / "local"),
        "-e",
        f"drain_kubeconfig={cluster.kubeconfig}",
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)


def test_drain_playbook_shows_progress_and_a_table(cluster, namespace, pool) -> None:
    a, _ = pool.add(2)
    apply(cluster, [user_pod("jupyter-alice", namespace, a), bare_pod("stray", namespace, a, {"app": "stray"})])
    wait_running(cluster, namespace, 2, node=a)

    check = playbook(cluster, "drain.yml", "-e", f"node={a}", "--check")
    assert check.returncode == 0, check.stdout + check.stderr
    assert "node_drain: " in check.stdout and f"drained: {a} (check mode)" in check.stdout
    assert not node_json(cluster, a)["spec"].get("unschedulable")

    real = playbook(cluster, "drain.yml", "-e", f"node={a}", "-e", '{"reason": "playbook test"}')
    out = real.stdout
    assert real.returncode == 0, out + real.stderr
    # progress lines came while the task ran, before the table
    assert out.index("node_drain: ") < out.index("NODE") and f"{a}: cordon cordoned" in out
    assert f"{a}: evictions 1 accepted" in out
    row = next(line for line in out.splitlines() if line.strip().strip('",').startswith(a))
    assert row.strip().strip('",').split()[:6] == [a, "ours", "1", "0", "1", "1"]
    assert set(pods_on(cluster, a)) == {f"{namespace}/jupyter-alice"}
    assert d.cordon_record(node_json(cluster, a))["reason"] == "playbook test"

    undo = playbook(cluster, "drain.yml", "-e", f"node={a}", "-e", "mode=uncordoned")
    assert undo.returncode == 0 and not node_json(cluster, a)["spec"].get("unschedulable"), undo.stdout


def test_drain_playbook_by_pool_and_count_and_its_refusals(cluster, pool) -> None:
    nodes = pool.add(2)
    result = playbook(cluster, "drain.yml", "-e", f"pool={pool.value}", "-e", "count=1", "-e", "mode=cordoned")
    assert result.returncode == 0, result.stdout + result.stderr
    assert node_json(cluster, nodes[0])["spec"].get("unschedulable") is True
    assert not node_json(cluster, nodes[1])["spec"].get("unschedulable")

    # the other one is the pool's last schedulable node
    refused = playbook(cluster, "drain.yml", "-e", f"node={nodes[1]}")
    assert refused.returncode != 0
    assert f"would leave pool {POOL_KEY}={pool.value} without a schedulable node" in refused.stdout
    assert not node_json(cluster, nodes[1])["spec"].get("unschedulable")

    bad = playbook(cluster, "drain.yml", "-e", f"node={nodes[1]}", "-e", f"pool={pool.value}")
    assert bad.returncode != 0 and "Say which nodes: -e node=NAME" in bad.stdout

    for timeout in ("abc", "0", "-5"):
        bad = playbook(cluster, "drain.yml", "-e", f"node={nodes[1]}", "-e", f"timeout={timeout}")
        assert bad.returncode != 0
        assert f'timeout is a whole number of seconds above 0 (got "{timeout}")' in " ".join(bad.stdout.split())
        assert "node_drain: " not in bad.stdout  # refused before the module ran

    # a mistyped pool drains nothing, and says so instead of succeeding
    typo = playbook(cluster, "drain.yml", "-e", "pool=usr", "-e", "mode=cordoned")
    assert typo.returncode != 0
    out = " ".join(typo.stdout.split())
    assert 'no node carries mybinder.org/node-purpose=usr (pool "usr"): nothing was drained.' in out, out[-3000:]
    assert "The pools of this inventory: core, user (mybinder_node_pools)." in out


def test_rotate_user_pool_in_stages(cluster, namespace, pool) -> None:
    """Four old nodes and a new one in the same pool: half of the old ones are retired first,
    sessions get a while to end, then the rest; at the end what is left is forced out and the
    empty Node objects deleted. The new node is never touched."""
    tag = f"old-{pool.value}"
    old = pool.add(4, labels={"rotate": tag})
    (new,) = pool.add(1)
    docs = []
    for i, n in enumerate(old):
        docs += [user_pod(f"jupyter-{i}", namespace, n, grace=3600), bare_pod(f"stray-{i}", namespace, n, {"app": "s"})]
    apply(cluster, docs)
    wait_running(cluster, namespace, 8)

    args = [
        "-e",
        f"pool={pool.value}",
        "-e",
        f"old_selector=rotate={tag}",
        "-e",
        "rotate_stagger=3",
        "-e",
        "rotate_max_pod_age=60",
        "-e",
        "rotate_final_timeout=4",
        "-e",
        "rotate_grace_period=0",
        "-e",
        "rotate_delete_nodes=true",
    ]
    check = playbook(cluster, "rotate-user-pool.yml", *args, "--check")
    assert check.returncode == 0, check.stdout + check.stderr
    assert "Old nodes: 4" in check.stdout
    assert all(not node_json(cluster, n)["spec"].get("unschedulable") for n in old)

    result = playbook(cluster, "rotate-user-pool.yml", *args)
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    # first batch (the two oldest: same second, so by name), a pause with sessions left, then the rest
    start = out.index("TASK [First batch")
    first = max(out.index(f"{old[0]}: cordon cordoned", start), out.index(f"{old[1]}: cordon cordoned", start))
    stagger = out.index("TASK [Let sessions end on the first batch")
    rest = min(out.index(f"{old[2]}: cordon cordoned", start), out.index(f"{old[3]}: cordon cordoned", start))
    assert start < first < stagger < rest
    assert "waiting, 3s to the deadline: 1 user pod(s), the last expected to end" in out[stagger:rest]
    assert "continuing as on_timeout: continue says" in result.stderr  # ansible prints warnings there
    assert "force-deleting 4 pod(s), grace period 0" in out
    for n in old:
        assert cluster.kubectl("get", "node", n, check=False).returncode != 0, f"{n} was not deleted"
    assert not node_json(cluster, new)["spec"].get("unschedulable") and not d.marked_by_us(node_json(cluster, new))
