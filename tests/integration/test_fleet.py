"""Several clusters in one inventory, deployed by one run: inventories/local-fleet against three
local clusters side by side (tools/localcluster.py, each in its own directory under
$MYBINDER_FLEET_DIR), with the real charts, cert-manager's real webhook in each.

One test, because three clusters and a full deploy of each are the expensive part: the first run
deploys all three in parallel; the second, with one cluster stopped, fails that cluster alone,
with a message that names it, and changes nothing on the other two (changed=0)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml
from deploy_testlib import deploy

from conftest import ROOT

HOSTS = ("local-a", "local-b", "local-c")
# What the meta chart's release is rendered from: its pins (mybinder/Chart.yaml), binderhub's
# nested jupyterhub and prometheus' own subcharts.
PINS = {d["name"]: d["version"] for d in yaml.safe_load((ROOT / "mybinder" / "Chart.yaml").read_text())["dependencies"]}
REAL_CHARTS = ", ".join(
    sorted(
        [f"{name}-{version}" for name, version in PINS.items()]
        + ["jupyterhub-4.2.0", "kube-state-metrics-8.0.0", "prometheus-node-exporter-4.56.1"]
    )
)


def localcluster(cluster_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "tools" / "localcluster.py"), *args],
        env={**os.environ, "MYBINDER_CLUSTER_DIR": str(cluster_dir)},
        capture_output=True,
        text=True,
        check=False,
    )


def kubectl(cluster_dir: Path, *args: str) -> dict:
    res = subprocess.run(
        ["kubectl", "--kubeconfig", str(cluster_dir / "kubeconfig"), *args, "-o", "json"],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(res.stdout)


@pytest.fixture
def fleet(cluster, tmp_path, monkeypatch):
    """Three clusters started side by side (`up` of each at once, as separate processes)."""
    fleet_dir = tmp_path / "fleet"
    monkeypatch.setenv("MYBINDER_FLEET_DIR", str(fleet_dir))
    dirs = {h: fleet_dir / h for h in HOSTS}
    try:
        with ThreadPoolExecutor(len(HOSTS)) as pool:
            ups = list(pool.map(lambda d: localcluster(d, "up"), dirs.values()))
        for res in ups:
            assert res.returncode == 0, res.stdout + res.stderr
        yield dirs
    finally:
        for d in dirs.values():
            localcluster(d, "down")


def test_one_run_deploys_three_clusters_in_parallel_and_a_failed_one_stops_only_itself(fleet, tmp_path):
    # every cluster got ports of its own, the webhook's too (it listens only once cert-manager runs)
    ports = [json.loads((d / "state.json").read_text())["ports"] for d in fleet.values()]
    used = [p for ps in ports for p in ps.values()]
    assert len(used) == len(set(used)), ports

    run = deploy(tmp_path, {}, inventory="inventories/local-fleet")
    assert run.rc == 0, run.output[-6000:]
    for host, d in fleet.items():
        assert run.host(host)["failed"] == 0 and run.host(host)["unreachable"] == 0
        releases = {
            (r["name"], r["status"])
            for r in json.loads(
                subprocess.run(
                    ["helm", "--kubeconfig", str(d / "kubeconfig"), "list", "-A", "-o", "json"],
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout
            )
        }
        assert releases == {("cert-manager", "deployed"), ("ingress-nginx", "deployed"), ("local", "deployed")}
        # each cluster's webhook configuration calls its own real webhook (admitted: the issuers exist)
        hook = kubectl(d, "get", "validatingwebhookconfiguration", "cert-manager-webhook")
        assert hook["webhooks"][0]["clientConfig"]["url"].startswith(
            f"https://{(d / 'cert-manager-webhook-host').read_text().strip()}/"
        )
        assert {i["metadata"]["name"] for i in kubectl(d, "get", "clusterissuers")["items"]} >= {"letsencrypt-staging"}
        # the verify stage of each cluster passed, and its summary names the real charts deployed
        assert f"[{host}] health: " in run.output and "all pinned there" in run.output
        assert (
            f"[{host}] release local (namespace local): revision 1, deployed, chart mybinder-0.1.0 with {REAL_CHARTS}"
            in run.output
        ), run.output[-6000:]
    # the hosts ran side by side: the release task of each host is in one task block (one fork each)
    task = run.output.index("TASK [mybinder.deploy.mybinder : Install or upgrade the release")
    block = run.output[task : run.output.index("TASK [", task + 10)]
    assert all(f"changed: [{h}]" in block for h in HOSTS), block

    assert localcluster(fleet["local-b"], "down").returncode == 0
    run = deploy(tmp_path, {}, inventory="inventories/local-fleet")
    assert run.rc != 0
    assert run.host("local-b")["failed"] == 1
    assert (
        f"kubeconfig {fleet['local-b']}/kubeconfig (cluster_access_kubeconfig) does not exist. "
        "Start the local clusters: `make fleet-up` (this one alone: "
        f"MYBINDER_CLUSTER_DIR={fleet['local-b']} tools/localcluster.py up)" in run.output
    ), run.output[-4000:]
    for host in ("local-a", "local-c"):
        assert run.host(host)["failed"] == 0 and run.host(host)["changed"] == 0, run.output[-4000:]
        assert f"[{host}] health: " in run.output
