"""mybinder.deploy.verify_namespace's release list (list_releases) on the real local API server:
it matches the releases helm knows, and a user who may read its own namespace but not every
namespace's release records still gets a passing check, with the reason the list is missing."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from deploy_testlib import helm, small_chart

ROOT = Path(__file__).resolve().parents[2]
MODULE = ROOT / "plugins" / "modules" / "verify_namespace.py"

pytestmark = pytest.mark.cluster


def run_module(args: dict, tmp_path: Path) -> dict:
    """Run the module as Ansible would run it out of process (its arguments in a JSON file)."""
    path = tmp_path / "args.json"
    path.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    env = dict(os.environ, PYTHONPATH=str(ROOT / ".collections"))
    res = subprocess.run([sys.executable, str(MODULE), str(path)], capture_output=True, text=True, env=env, check=False)
    return json.loads(res.stdout)


def test_the_release_list_is_what_helm_lists(cluster, namespace, tmp_path):
    helm(cluster, "upgrade", "--install", "web", str(small_chart(tmp_path / "small")), "-n", namespace)
    listed = json.loads(
        subprocess.run(
            [str(cluster.bin_dir / "helm"), "--kubeconfig", str(cluster.kubeconfig), "list", "-A", "-o", "json"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    out = run_module(
        {"namespace": namespace, "list_releases": True, "timeout": 10, "kubeconfig": str(cluster.kubeconfig)}, tmp_path
    )
    assert out.get("done") is True and not out.get("failed"), out
    assert "releases_error" not in out, out["releases_error"]
    # other tests' namespaces may be going away meanwhile: nothing more than helm listed, sorted
    ours = [(r["namespace"], r["name"], r["revision"]) for r in out["releases"]]
    assert ours == sorted(ours)
    assert set(ours) <= {(r["namespace"], r["name"], int(r["revision"])) for r in listed}
    mine = [r for r in out["releases"] if r["namespace"] == namespace]
    assert mine == [
        {
            "name": "web",
            "namespace": namespace,
            "revision": 1,
            "status": "deployed",
            "chart": "small-1.0.0",
            "app_version": "1",
            "subcharts": [],  # its objects carry no other chart's label
        }
    ]


def test_a_user_limited_to_its_namespace_passes_and_is_told_why_the_releases_are_not_listed(
    cluster, namespace, tmp_path
):
    cluster.kubectl("create", "serviceaccount", "deployer", "-n", namespace)
    cluster.kubectl("create", "role", "read-all", "-n", namespace, "--verb=get,list,watch", "--resource=*.*")
    cluster.kubectl(
        "create",
        "rolebinding",
        "deployer",
        "-n",
        namespace,
        "--role=read-all",
        f"--serviceaccount={namespace}:deployer",
    )
    token = cluster.kubectl("create", "token", "deployer", "-n", namespace).stdout.strip()
    cfg = json.loads(cluster.kubectl("config", "view", "--raw", "--flatten", "-o", "json").stdout)
    ca = cfg["clusters"][0]["cluster"]["certificate-authority-data"]
    limited = tmp_path / "limited.kubeconfig"
    limited.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": cluster.server, "certificate-authority-data": ca}}],
                "users": [{"name": "u", "user": {"token": token}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    limited.chmod(0o600)
    assert base64.b64decode(ca)  # the CA came along
    out = run_module(
        {"namespace": namespace, "list_releases": True, "timeout": 10, "kubeconfig": str(limited)}, tmp_path
    )
    assert out.get("done") is True and not out.get("failed"), out
    assert out["releases"] == []
    assert "listing the cluster's Helm releases failed" in out["releases_error"]
    assert "forbidden" in out["releases_error"].lower(), out["releases_error"]


def deployment(name: str, namespace: str, pool: str, component: str) -> dict:
    labels = {"app": name, "component": component}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "nodeSelector": {"mybinder.org/node-purpose": pool},
                    "containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}],
                    "terminationGracePeriodSeconds": 0,
                },
            },
        },
    }


def test_a_pod_on_a_user_node_that_is_no_user_pod_fails_the_check_in_any_namespace(cluster, namespace, tmp_path):
    """Anything but user servers, builds, placeholders and DaemonSet pods on a user node keeps the
    autoscaler from removing it (cert-manager's pods did, before the tls role pinned them)."""
    other = f"{namespace}-elsewhere"
    cluster.kubectl("create", "namespace", other)
    try:
        docs = [
            deployment("stray", other, "user", "stray"),
            deployment("placeholder", other, "user", "user-placeholder"),
        ]
        cluster.kubectl("apply", "-f", "-", input_text=json.dumps({"apiVersion": "v1", "kind": "List", "items": docs}))
        cluster.kubectl("rollout", "status", "deployment/stray", "deployment/placeholder", "-n", other, "--timeout=60s")
        pools = {"core": "core", "user": "user"}
        args = {"namespace": namespace, "node_pools": pools, "timeout": 3, "kubeconfig": str(cluster.kubeconfig)}
        out = run_module(args, tmp_path)
        assert out.get("failed"), out
        stray = cluster.get_json("pods", "-n", other, "-l", "app=stray")["items"][0]
        node = stray["spec"]["nodeName"]
        assert (
            f"pod {other}/{stray['metadata']['name']} runs on user node {node}, where only user servers, builds, "
            "placeholders and DaemonSet pods belong" in out["msg"]
        )
        assert "pin it to the core pool (nodeSelector mybinder.org/node-purpose=core)" in out["msg"]
        assert f"{other}/placeholder" not in out["msg"]  # a user placeholder belongs there

        cluster.kubectl("delete", "deployment", "stray", "-n", other, "--wait=true")
        cluster.kubectl("wait", "--for=delete", "pod", "-l", "app=stray", "-n", other, "--timeout=60s")
        again = run_module(args, tmp_path)
        assert f"pod {other}/" not in str(again.get("msg", "")), again
    finally:
        cluster.kubectl("delete", "namespace", other, "--wait=false", check=False)
