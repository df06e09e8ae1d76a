"""The deploy's summary that verify_namespace's action plugin prints after a healthy check: every
release of the cluster, the hosts and the health counts (what `make demo` shows at the end)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / ".collections"))
from ansible_collections.mybinder.deploy.plugins.module_utils._helm_records import charts_in_manifest
from ansible_collections.mybinder.deploy.plugins.plugin_utils._reports import deploy_summary as summary


def test_every_release_the_hosts_and_the_health_counts():
    result = {
        "releases": [
            {
                "name": "cert-manager",
                "namespace": "cert-manager",
                "revision": 1,
                "status": "deployed",
                "chart": "cert-manager-v1.19.4",
            },
            {"name": "prod", "namespace": "prod", "revision": 42, "status": "failed", "chart": "mybinder-0.1.0"},
        ],
        "pods": {"checked": 9, "ready": 8},
        "services": {"checked": 6, "with_endpoints": 6},
        "placement": {"core_pods": 7, "user_pods": 2},
    }
    assert summary(result, ["mybinder.org", "gke.mybinder.org"]) == [
        "release cert-manager (namespace cert-manager): revision 1, deployed, chart cert-manager-v1.19.4",
        "release prod (namespace prod): revision 42, failed, chart mybinder-0.1.0",
        "hosts: mybinder.org, gke.mybinder.org",
        "health: 8/9 pods ready, 6/6 services with endpoints, 7 pods on core nodes, all pinned there",
    ]


def test_no_hosts_and_no_node_pools():
    lines = summary({"releases": [], "pods": {"checked": 0, "ready": 0}, "services": {}}, [])
    assert lines == ["hosts: none", "health: 0/0 pods ready, 0/0 services with endpoints"]


def test_releases_that_could_not_be_listed_are_said_not_hidden():
    result = {"releases": [], "releases_error": "403 Forbidden: secrets is forbidden", "pods": {}, "services": {}}
    assert summary(result, ["a.test"])[0] == "releases: not listed (403 Forbidden: secrets is forbidden)"


MANIFEST = """---
# Source: mybinder/charts/binderhub/charts/jupyterhub/templates/hub/deployment.yaml
apiVersion: apps/v1
kind: Deployment
metadata:
  name: hub
  labels:
    chart: jupyterhub-4.2.0
    helm.sh/chart: jupyterhub-4.2.0
---
apiVersion: v1
kind: ConfigMap
metadata:
  labels:
    helm.sh/chart: "grafana-10.5.15"
    app.kubernetes.io/version: 12.3.0
data:
  note: "chart: not-a-label"
---
metadata:
  labels:
    helm.sh/chart: mybinder-0.1.0
    chart: binderhub-1.0.0-0.dev.git.3958.haf9ca8b1
"""


def test_the_charts_of_every_label_but_the_release_s_own_in_order():
    assert charts_in_manifest(MANIFEST, "mybinder-0.1.0") == [
        "binderhub-1.0.0-0.dev.git.3958.haf9ca8b1",
        "grafana-10.5.15",
        "jupyterhub-4.2.0",
    ]
    assert charts_in_manifest("", "mybinder-0.1.0") == []


def test_the_summary_line_of_a_release_names_its_subcharts_when_known():
    releases = [
        {
            "name": "local",
            "namespace": "local",
            "revision": 2,
            "status": "deployed",
            "chart": "mybinder-0.1.0",
            "subcharts": ["grafana-10.5.15", "jupyterhub-4.2.0"],
        },
        {"name": "x", "namespace": "x", "revision": 1, "status": "deployed", "chart": "x-1.0.0"},
    ]
    lines = summary({"releases": releases}, ["hub.example.org"])
    assert lines[0] == (
        "release local (namespace local): revision 2, deployed, chart mybinder-0.1.0"
        " with grafana-10.5.15, jupyterhub-4.2.0"
    )
    assert lines[1] == "release x (namespace x): revision 1, deployed, chart x-1.0.0"
