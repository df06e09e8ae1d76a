"""mybinder.deploy.kube_apply and kube_read against the real API server: server-side apply that
reports a change only when the stored object changed, exact check-mode predictions (the server's
own dry run), diffs without Secret values, field-manager conflicts, clear errors for unknown
kinds and invalid objects, and reads by name, selector and metadata only."""

from __future__ import annotations

import http.server
import json
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml
from tasks_testlib import run_tasks

SECRET = "s3cr3t-value-never-shown"


def play(tmp: Path, kubeconfig: Path, tasks: list[dict[str, Any]], *args: str) -> list[dict[str, Any]]:
    """Run tasks on localhost against the cluster; return each task's result in order."""
    for task in tasks:
        for module in ("mybinder.deploy.kube_apply", "mybinder.deploy.kube_read"):
            if module in task:
                task[module].setdefault("kubeconfig", str(kubeconfig))
    return run_tasks(tmp, tasks, *args)


def configmap(ns: str, name: str, **data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": ns}, "data": data}


def test_apply_creates_then_reports_no_change_and_check_mode_predicts(cluster, namespace, tmp_path):
    obj = configmap(namespace, "settings", a="1")
    changed = configmap(namespace, "settings", a="2")
    first, again, predicted, real = play(
        tmp_path,
        cluster.kubeconfig,
        [
            {"mybinder.deploy.kube_apply": {"definition": obj}},
            {"mybinder.deploy.kube_apply": {"definition": obj}},
            {"mybinder.deploy.kube_apply": {"definition": changed}, "check_mode": True, "diff": True},
            {"mybinder.deploy.kube_apply": {"definition": [changed, configmap(namespace, "other", a="1")]}},
        ],
    )
    assert first["changed"] and first["results"][0]["created"], first
    assert not again["changed"] and not again.get("failed"), again
    assert predicted["changed"] and not predicted["results"][0]["created"]
    assert "a: '1'" in predicted["diff"][0]["before"] and "a: '2'" in predicted["diff"][0]["after"]
    assert [r["changed"] for r in real["results"]] == [True, True]
    stored = cluster.get_json("configmap", "settings", "-n", namespace)
    assert stored["data"] == {"a": "2"}
    # the check-mode run stored nothing: the real run after it still had the change to make
    assert real["results"][0]["created"] is False


def test_objects_of_one_kind_applied_side_by_side_report_in_order(cluster, namespace, tmp_path):
    """Objects of one kind go to the API server a few at a time: each result still belongs to its
    object, in the order given, and a second run changes nothing."""
    names = [f"cm-{i}" for i in range(9)]
    objs = [configmap(namespace, n, index=str(i)) for i, n in enumerate(names)]
    objs[4] = configmap(namespace, "cm-4", index="4", more="x" * 200_000)  # one slow one
    first, again = play(
        tmp_path,
        cluster.kubeconfig,
        [{"mybinder.deploy.kube_apply": {"definition": objs}}, {"mybinder.deploy.kube_apply": {"definition": objs}}],
    )
    assert [r["name"] for r in first["results"]] == names
    assert all(r["created"] and r["changed"] for r in first["results"])
    assert [r["changed"] for r in again["results"]] == [False] * len(names) and not again["changed"]
    for i, n in enumerate(names):
        assert cluster.get_json("configmap", n, "-n", namespace)["data"]["index"] == str(i)


def test_a_file_or_url_of_several_objects_cluster_scoped_ones_included(cluster, namespace, tmp_path):
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": f"{namespace}-reader"},
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}],
    }
    src = tmp_path / "objects.yaml"
    src.write_text(yaml.safe_dump_all([configmap("", "from-file", x="y"), role]))
    served = tmp_path / "served"
    served.mkdir()
    (served / "objects.yaml").write_text(
        yaml.safe_dump_all([configmap("", "from-url", x="y"), role | {"metadata": {"name": f"{namespace}-r2"}}])
    )

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=str(served), **kw)

        def log_message(self, *a):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/objects.yaml"
        from_file, from_url = play(
            tmp_path,
            cluster.kubeconfig,
            [
                {"mybinder.deploy.kube_apply": {"src": str(src), "namespace": namespace}},
                {"mybinder.deploy.kube_apply": {"src": url, "namespace": namespace}},
            ],
        )
    finally:
        server.shutdown()
        for name in (f"{namespace}-reader", f"{namespace}-r2"):
            cluster.kubectl("delete", "clusterrole", name, "--ignore-not-found")
    assert [(r["kind"], r["namespace"]) for r in from_file["results"]] == [
        ("ConfigMap", namespace),
        ("ClusterRole", ""),
    ]
    assert from_url["changed"] and len(from_url["results"]) == 2
    assert cluster.get_json("configmap", "from-url", "-n", namespace)["data"] == {"x": "y"}


def test_secret_values_stay_out_of_the_diff(cluster, namespace, tmp_path):
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "creds", "namespace": namespace},
        "stringData": {"token": SECRET},
    }
    (result,) = play(
        tmp_path, cluster.kubeconfig, [{"mybinder.deploy.kube_apply": {"definition": secret}, "diff": True}]
    )
    assert result["changed"]
    # (the task's own arguments, echoed under "invocation", hold the value: such tasks need no_log)
    text = json.dumps({"diff": result["diff"], "results": result["results"]})
    assert SECRET not in text and "<redacted>" in text


def test_conflicts_with_another_field_manager_need_force(cluster, namespace, tmp_path):
    cluster.kubectl(
        "apply", "--server-side", "--field-manager=someone-else", "-f", "-",
        input_text=json.dumps(configmap(namespace, "owned", a="theirs")),
    )  # fmt: skip
    refused, forced = play(
        tmp_path,
        cluster.kubeconfig,
        [
            {"mybinder.deploy.kube_apply": {"definition": configmap(namespace, "owned", a="ours")}},
            {
                "mybinder.deploy.kube_apply": {
                    "definition": configmap(namespace, "owned", a="ours"),
                    "force_conflicts": True,
                }
            },
        ],
    )
    assert refused["failed"] and "conflict" in refused["msg"].lower() and refused["status"] == 409
    assert forced["changed"]
    assert cluster.get_json("configmap", "owned", "-n", namespace)["data"] == {"a": "ours"}


@pytest.mark.parametrize(
    ("definition", "message"),
    [
        (
            {"apiVersion": "example.org/v1", "kind": "Widget", "metadata": {"name": "w"}},
            "does not serve Widget in example.org/v1",
        ),
        (
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "bad"}, "data": ["not", "a", "map"]},
            "expected map",
        ),
        ({"apiVersion": "v1", "kind": "ConfigMap", "data": {}}, "metadata.name"),
    ],
)
def test_bad_objects_are_refused_with_nothing_stored(cluster, namespace, tmp_path, definition, message):
    definition = json.loads(json.dumps(definition))
    definition.setdefault("metadata", {})["namespace"] = namespace
    (result,) = play(tmp_path, cluster.kubeconfig, [{"mybinder.deploy.kube_apply": {"definition": definition}}])
    assert result["failed"] and message in result["msg"], result
    assert cluster.kubectl("get", "configmap", "bad", "-n", namespace, check=False).returncode != 0


def test_read_by_kind_name_selector_and_metadata_only(cluster, namespace, tmp_path):
    cluster.kubectl("create", "secret", "generic", "labelled", "-n", namespace, f"--from-literal=k={SECRET}")
    cluster.kubectl("label", "secret", "labelled", "-n", namespace, "team=a")
    nodes, missing, unknown, secrets = play(
        tmp_path,
        cluster.kubeconfig,
        [
            {"mybinder.deploy.kube_read": {"kind": "Node"}},
            {"mybinder.deploy.kube_read": {"kind": "Node", "name": "no-such-node"}},
            {"mybinder.deploy.kube_read": {"kind": "Widget", "api_version": "example.org/v1"}},
            {
                "mybinder.deploy.kube_read": {
                    "kind": "Secret",
                    "namespace": namespace,
                    "label_selectors": ["team in (a,b)"],
                    "metadata_only": True,
                }
            },
        ],
    )
    want = {n["metadata"]["name"] for n in cluster.get_json("nodes")["items"]}
    assert {n["metadata"]["name"] for n in nodes["resources"]} == want
    assert all(n["kind"] == "Node" for n in nodes["resources"])
    assert missing["resources"] == [] and missing["api_found"] and not missing.get("failed")
    assert unknown["api_found"] is False and unknown["resources"] == []
    assert [s["metadata"]["name"] for s in secrets["resources"]] == ["labelled"]
    assert "data" not in secrets["resources"][0] and SECRET not in json.dumps(secrets)


def test_new_crds_are_waited_for_until_established(cluster, tmp_path):
    group = f"w{tmp_path.name[-6:].lower().replace('_', '')}.example.org"

    def crd(plural: str, kind: str) -> dict:
        return {
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": f"{plural}.{group}"},
            "spec": {
                "group": group,
                "names": {"kind": kind, "plural": plural},
                "scope": "Cluster",
                "versions": [
                    {
                        "name": "v1",
                        "served": True,
                        "storage": True,
                        "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
                    }
                ],
            },
        }

    widget = {"apiVersion": f"{group}/v1", "kind": "Widget", "metadata": {"name": "w1"}, "spec": {"size": 1}}
    try:
        applied, used, clash = play(
            tmp_path,
            cluster.kubeconfig,
            [
                {"mybinder.deploy.kube_apply": {"definition": crd("widgets", "Widget"), "wait_established": 30}},
                {"mybinder.deploy.kube_apply": {"definition": widget}},
                # the same kind again under another name: the API server never establishes it
                {"mybinder.deploy.kube_apply": {"definition": crd("gadgets", "Widget"), "wait_established": 3}},
            ],
        )
        assert applied["changed"] and not applied.get("failed"), applied
        assert used["changed"] and not used.get("failed"), used
        assert clash["failed"] and f"not Established after 3 s: gadgets.{group}" in clash["msg"], clash
    finally:
        for plural in ("widgets", "gadgets"):
            cluster.kubectl("delete", "crd", f"{plural}.{group}", "--ignore-not-found", "--wait=false")
