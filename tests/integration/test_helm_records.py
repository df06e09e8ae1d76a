"""helm_release reads release records straight from the cluster (module_utils/_helm_records.py).
These tests hold it to what the helm CLI answers for the same releases: history and statuses
(superseded, failed), the manifest, hooks, user-supplied values and the newest entry, for the
Secret and the ConfigMap storage drivers; other drivers go through the CLI."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from deploy_testlib import helm, small_chart

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / ".collections"))

from ansible_collections.mybinder.deploy.plugins.module_utils._helm import Helm, HelmError  # noqa: E402
from ansible_collections.mybinder.deploy.plugins.module_utils._helm_manifests import (  # noqa: E402
    hook_objects,
    split_manifest,
)
from ansible_collections.mybinder.deploy.plugins.module_utils._helm_records import (  # noqa: E402
    ClusterRecords,
    cluster_releases,
    list_releases,
    records_for,
)
from ansible_collections.mybinder.deploy.plugins.module_utils._kube_client import build_client  # noqa: E402

pytestmark = pytest.mark.cluster

# A ConfigMap hook: helm waits for Job and Pod hooks to finish, which simulated nodes never do.
HOOK = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: web-pre-upgrade
  annotations:
    "helm.sh/hook": pre-install,pre-upgrade
    "helm.sh/hook-delete-policy": before-hook-creation
data:
  revision: {{ .Release.Revision | quote }}
"""


def three_revisions(cluster, namespace: str, tmp_path: Path, driver: str) -> Path:
    """Revision 1 and 2 deployed (1 superseded), revision 3 failed (an invalid replica count)."""
    chart = small_chart(tmp_path / "small")
    (chart / "templates" / "hook.yaml").write_text(HOOK)
    env = {"HELM_DRIVER": driver}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        helm(cluster, "upgrade", "--install", "web", str(chart), "-n", namespace, "--set", "web.message=one")
        helm(
            cluster, "upgrade", "web", str(chart), "-n", namespace, "--set", "web.message=two", "--description", "mine"
        )
        bad = helm(cluster, "upgrade", "web", str(chart), "-n", namespace, "--set", "web.replicas=-1", check=False)
        assert bad.returncode != 0, bad.stdout
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return chart


@pytest.mark.parametrize("driver", ["secret", "configmap"])
def test_records_match_the_helm_cli(cluster, namespace, tmp_path, driver):
    three_revisions(cluster, namespace, tmp_path, driver)
    cli = Helm(
        binary=str(cluster.bin_dir / "helm"),
        kubeconfig=str(cluster.kubeconfig),
        namespace=namespace,
        env={**os.environ, "HELM_DRIVER": driver},
    )
    client = build_client({"kubeconfig": str(cluster.kubeconfig)})
    records = records_for(cli, client, namespace)
    assert isinstance(records, ClusterRecords) and records.kind == f"{driver}s"

    want = [{"revision": h["revision"], "status": h["status"]} for h in cli.history("web")]
    assert [h["status"] for h in want] == ["superseded", "deployed", "failed"]
    assert records.history("web") == want
    assert records.history("web", max_revisions=1) == want[-1:]

    for revision in (1, 2, 3):
        ours = records.release("web", revision=revision, values=True)
        theirs = cli.release("web", revision=revision, values=True)
        assert ours is not None and theirs is not None
        assert ours["version"] == theirs["version"] == revision
        assert ours["info"] == theirs["info"], revision
        assert ours["chart_ref"] == theirs["chart_ref"] == "small-1.0.0"
        assert ours["app_version"] == theirs["app_version"] == "1"
        assert ours["config"] == theirs["config"]
        assert split_manifest(ours["manifest"], namespace) == split_manifest(theirs["manifest"], namespace)
        assert hook_objects(ours, namespace) == hook_objects(theirs, namespace)
        assert list(hook_objects(ours, namespace)) == [f"hook ConfigMap {namespace}/web-pre-upgrade"]
        assert records.values("web", revision) == cli.values("web", revision)
    assert records.release("web", revision=2)["info"]["description"] == "mine"
    assert records.release("web", values=True)["config"] == {"web": {"replicas": -1}}

    latest = records.latest_entry("web")
    assert latest == {k: v for k, v in cli.latest_entry("web").items() if k != "updated"}

    assert records.history("other") == [] and records.release("other") is None
    assert records.latest_entry("other") is None


@pytest.mark.parametrize("driver", ["secret", "configmap"])
def test_the_cluster_release_list_matches_helm_list(cluster, namespace, tmp_path, driver):
    three_revisions(cluster, namespace, tmp_path, driver)
    env = {**os.environ, "HELM_DRIVER": driver}
    cli = Helm(binary=str(cluster.bin_dir / "helm"), kubeconfig=str(cluster.kubeconfig), env=env)

    def helm_list() -> set[tuple]:
        keys = ("name", "namespace", "status", "chart", "app_version")
        listed = json.loads(cli.run(["list", "--all-namespaces", "-o", "json"]).stdout)
        return {(*(r[k] for k in keys), int(r["revision"])) for r in listed}

    # Earlier tests' namespaces may still be going away, taking their releases with them: what
    # helm lists after ours must be in ours, and ours must be in what it listed before.
    before = helm_list()
    ours = cluster_releases(build_client({"kubeconfig": str(cluster.kubeconfig)}), f"{driver}s")
    after = helm_list()
    keys = ("name", "namespace", "status", "chart", "app_version")
    got = {(*(r[k] for k in keys), r["revision"]) for r in ours}
    assert after <= got <= before, (before, got, after)
    assert ours == sorted(ours, key=lambda r: (r["namespace"], r["name"]))
    # this test's release: its newest revision, which failed (helm list shows failed ones too)
    mine = [r for r in ours if r["namespace"] == namespace]
    web = {"name": "web", "namespace": namespace, "revision": 3, "status": "failed", "chart": "small-1.0.0"}
    assert [{k: v for k, v in r.items() if k != "subcharts"} for r in mine] == [{**web, "app_version": "1"}]


def test_other_drivers_and_no_cluster_use_the_cli(cluster):
    client = build_client({"kubeconfig": str(cluster.kubeconfig)})
    for env in ({"HELM_DRIVER": "sql"}, {"HELM_DRIVER": "memory"}):
        cli = Helm(binary="helm", env=env)
        assert records_for(cli, client, "x") is cli
    cli = Helm(binary="helm", env={"HELM_DRIVER": ""})
    assert records_for(cli, None, "x") is cli
    assert isinstance(records_for(cli, client, "x"), ClusterRecords)


def test_a_release_uninstalled_while_the_list_is_read_is_left_out(cluster, namespace, tmp_path):
    three_revisions(cluster, namespace, tmp_path, "secret")
    client = build_client({"kubeconfig": str(cluster.kubeconfig)})

    class UninstallFirst(type(client)):
        """The real client, but the release is uninstalled between the list and the reads."""

        def request(self, method, path, **kw):
            if method == "GET" and f"/namespaces/{namespace}/secrets/sh.helm.release" in path:
                helm(cluster, "uninstall", "web", "-n", namespace)
            return super().request(method, path, **kw)

    racing = UninstallFirst(client.transport, client.request_timeout)
    assert [r for r in cluster_releases(racing) if r["namespace"] == namespace] == []


def test_the_release_list_uses_the_cli_only_for_drivers_it_cannot_read(cluster, namespace, tmp_path):
    three_revisions(cluster, namespace, tmp_path, "secret")
    client = build_client({"kubeconfig": str(cluster.kubeconfig)})
    # the Secret driver: read through the API (the helm binary is never run)
    no_helm = Helm(binary=str(tmp_path / "no-helm"), env={**os.environ, "HELM_DRIVER": "secret"})
    assert ("web", namespace, 3) in [(r["name"], r["namespace"], r["revision"]) for r in list_releases(no_helm, client)]
    # the sql driver: `helm list` (here the missing binary says so)
    with pytest.raises(HelmError, match="helm binary not found"):
        list_releases(Helm(binary=str(tmp_path / "no-helm"), env={**os.environ, "HELM_DRIVER": "sql"}), client)
    # the memory driver, through the real CLI: helm loads its releases from a file
    data = tmp_path / "memory.yaml"
    data.write_text(
        "- name: x\n  namespace: y\n  version: 2\n  info: {status: deployed}\n"
        "  chart: {metadata: {name: c, version: 1.0.0, appVersion: '9'}}\n"
    )
    env = {**os.environ, "HELM_DRIVER": "memory", "HELM_MEMORY_DRIVER_DATA": str(data)}
    cli = Helm(binary=str(cluster.bin_dir / "helm"), kubeconfig=str(cluster.kubeconfig), env=env)
    (listed,) = list_releases(cli, client)
    # (helm's memory driver reports odd namespaces with --all-namespaces: not compared)
    assert {k: listed[k] for k in ("name", "revision", "status", "chart", "app_version")} == {
        "name": "x",
        "revision": 2,
        "status": "deployed",
        "chart": "c-1.0.0",
        "app_version": "9",
    }


def test_a_record_that_is_not_a_release_is_refused_by_name(cluster, namespace):
    cluster.kubectl(
        "create",
        "secret",
        "generic",
        "sh.helm.release.v1.fake.v1",
        "-n",
        namespace,
        "--from-literal=release=bm90IGpzb24=",
    )
    cluster.kubectl(
        "label", "secret", "sh.helm.release.v1.fake.v1", "-n", namespace, "owner=helm", "name=fake", "version=1"
    )
    client = build_client({"kubeconfig": str(cluster.kubeconfig)})
    records = ClusterRecords(client, namespace)
    try:
        assert records.history("fake") == [{"revision": 1, "status": ""}]
        refused = r"sh\.helm\.release\.v1\.fake\.v1 of release fake is not a helm release"
        with pytest.raises(HelmError, match=refused):
            records.release("fake")
        with pytest.raises(HelmError, match=refused):
            cluster_releases(client)  # the cluster-wide list names it too
    finally:
        # gone now, not when the namespace is: other tests list every namespace's records
        cluster.kubectl("delete", "secret", "sh.helm.release.v1.fake.v1", "-n", namespace)
