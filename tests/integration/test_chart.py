"""The mybinder meta chart: pins, lock, the real charts it is built from, lint, the values it
refuses, redirector and disruption budgets.

No cluster: helm renders the chart built from the chart mirror, which serves the real upstream
charts at the pinned versions.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import tarfile

import pytest
import yaml
from helpers_chart import (
    ROOT,
    built_chart,
    by_kind,
    helm,
    helm_template,
    helm_template_fails,
    pod_spec,
    run,
    tmpdir,
    workloads,
)

UPSTREAM = {
    "binderhub": "https://jupyterhub.github.io/helm-chart",
    "prometheus": "https://prometheus-community.github.io/helm-charts",
    "grafana": "https://grafana.github.io/helm-charts",
}


def chart_yaml() -> dict:
    return yaml.safe_load((ROOT / "mybinder" / "Chart.yaml").read_text())


def test_dependencies_are_pinned_exactly_to_upstream_repositories_behind_a_condition():
    chart = chart_yaml()
    assert chart["apiVersion"] == "v2"
    deps = {d["name"]: d for d in chart["dependencies"]}
    assert set(deps) == set(UPSTREAM), "binderhub, prometheus and grafana; ingress and TLS are separate releases"
    for name, dep in deps.items():
        assert dep["repository"] == UPSTREAM[name]
        version = str(dep["version"])
        assert version and not any(c in version for c in "<>=~^*| ,"), f"{name} must pin one exact version"
        assert dep.get("condition"), f"{name} must be behind an enabled condition"
    assert deps["binderhub"]["condition"] == "binderhubEnabled"
    assert deps["prometheus"]["condition"] == "prometheus.enabled"
    assert deps["grafana"]["condition"] == "grafana.enabled"


def test_chart_lock_is_in_sync_as_helm_itself_checks_it():
    lock = yaml.safe_load((ROOT / "mybinder" / "Chart.lock").read_text())
    pins = {(d["name"], str(d["version"]), d["repository"]) for d in chart_yaml()["dependencies"]}
    assert {(d["name"], str(d["version"]), d["repository"]) for d in lock["dependencies"]} == pins
    assert run([str(ROOT / "tools" / "chart-mirror.py"), "lock", "--check"]).returncode == 0
    # helm verifies the lock digest before it looks for the repositories: with none configured,
    # an in-sync lock fails on the missing repositories, an out-of-sync one on the digest.
    copy = tmpdir("lock-") / "mybinder"
    shutil.copytree(ROOT / "mybinder", copy, ignore=shutil.ignore_patterns("charts"))
    env = {**os.environ, "HELM_REPOSITORY_CONFIG": str(copy.parent / "repositories.yaml")}
    res = run([helm(), "dependency", "build", str(copy)], check=False, env=env)
    assert "no repository definition" in res.stderr, res.stderr
    assert "out of sync" not in res.stderr
    (copy / "Chart.yaml").write_text((copy / "Chart.yaml").read_text().replace('"29.20.0"', '"29.20.1"'))
    res = run([helm(), "dependency", "build", str(copy)], check=False, env=env)
    assert "out of sync" in res.stderr, res.stderr


def test_the_build_holds_the_real_charts_at_the_pinned_versions():
    pins = {d["name"]: str(d["version"]) for d in chart_yaml()["dependencies"]}
    built = {}
    for tgz in (built_chart() / "charts").glob("*.tgz"):
        with tarfile.open(tgz) as tar:
            member = next(m for m in tar.getmembers() if m.name.count("/") == 1 and m.name.endswith("/Chart.yaml"))
            meta = yaml.safe_load(tar.extractfile(member).read())
            built[meta["name"]] = str(meta["version"])
            assert "mybinder.org/stand-in" not in (meta.get("annotations") or {}), meta["name"]
    assert built == pins


def test_binderhub_nests_the_real_jupyterhub_chart_under_the_jupyterhub_key():
    tgz = next((built_chart() / "charts").glob("binderhub-*.tgz"))
    with tarfile.open(tgz) as tar:
        nested = yaml.safe_load(tar.extractfile("binderhub/charts/jupyterhub/Chart.yaml").read())
    assert (nested["name"], str(nested["version"])) == ("jupyterhub", "4.2.0")
    docs = helm_template([], "t", "t")
    # jupyterhub values given under binderhub.jupyterhub reach the nested chart
    hub = workloads(helm_template([], "t", "t", "--set", "binderhub.jupyterhub.hub.nodeSelector.probe=yes"))["hub"]
    assert pod_spec(hub)["nodeSelector"] == {"probe": "yes"}
    assert {"hub", "proxy", "binder", "user-scheduler"} <= set(workloads(docs))
    # objects of the real charts only: the hub's database claim, RBAC, network policies
    assert "hub-db-dir" in by_kind(docs, "PersistentVolumeClaim")
    assert {"hub", "singleuser", "proxy"} <= set(by_kind(docs, "NetworkPolicy"))
    assert by_kind(docs, "ClusterRole") and by_kind(docs, "Role")
    assert not [d for d in docs if "mybinder.org/stand-in" in (d["metadata"].get("labels") or {})]


@pytest.mark.parametrize("env", ["staging", "prod", "ovh", "local"])
def test_helm_lint_is_clean_for_every_environment(env):
    values = ["--values", str(ROOT / "config" / f"{env}.yaml")]
    res = run([helm(), "lint", "--strict", str(built_chart()), *values])
    assert "0 chart(s) failed" in res.stdout
    assert "[WARNING]" not in res.stdout and "[ERROR]" not in res.stdout


def test_common_values_cull_after_six_hours_and_ten_idle_minutes():
    values = yaml.safe_load((ROOT / "mybinder" / "values.yaml").read_text())
    cull = values["binderhub"]["jupyterhub"]["cull"]
    assert cull["enabled"] is True and cull["maxAge"] == 6 * 3600 and cull["timeout"] == 600
    # and it reaches the hub's configuration (the Secret the hub reads)
    docs = helm_template([])
    hub_values = yaml.safe_load(base64.b64decode(by_kind(docs, "Secret")["hub"]["data"]["values.yaml"]))
    assert hub_values["cull"]["maxAge"] == 21600
    server_cfg = yaml.safe_load(by_kind(docs, "ConfigMap")["user-etc-jupyter"]["data"]["jupyter_server_config.json"])
    assert server_cfg["ServerApp"]["shutdown_no_activity_timeout"] == 600
    assert server_cfg["MappingKernelManager"]["cull_idle_timeout"] == 600


def pdbs_selecting(docs: list[dict], workload: dict) -> list[dict]:
    labels = workload["spec"]["template"]["metadata"]["labels"]
    out = []
    for pdb in by_kind(docs, "PodDisruptionBudget").values():
        match = pdb["spec"]["selector"].get("matchLabels", {})
        if all(labels.get(k) == v for k, v in match.items()):
            out.append(pdb)
    return out


@pytest.mark.parametrize(
    "workload", ["hub", "proxy", "t-grafana", "t-prometheus-server", "redirector"], ids=lambda w: w.removeprefix("t-")
)
def test_core_pods_have_exactly_one_budget_with_min_available_zero(workload):
    """minAvailable 0: they never block a drain; exactly one PDB, because an eviction of a pod
    that several PDBs select always fails (HTTP 500)."""
    docs = helm_template([str(ROOT / "config" / "local.yaml")])
    budgets = pdbs_selecting(docs, workloads(docs)[workload])
    assert len(budgets) == 1, [b["metadata"]["name"] for b in budgets]
    assert budgets[0]["spec"].get("minAvailable") == 0
    assert "maxUnavailable" not in budgets[0]["spec"]


def redirector_values(tmp, redirects) -> list:
    path = tmp / "redirects.yaml"
    path.write_text(yaml.safe_dump({"redirector": {"redirects": redirects}}))
    return [path]


def test_redirector_renders_host_and_url_redirects_with_one_tls_block_for_every_source_host(tmp_path):
    redirects = [
        {"type": "host", "host": {"from": "beta.example.org", "to": "example.org"}},
        {"type": "url", "host": {"from": "status.example.org"}, "url": "https://example.org/status"},
    ]
    docs = helm_template(redirector_values(tmp_path, redirects))
    conf = by_kind(docs, "ConfigMap")["redirector-config"]["data"]["redirects.conf"]
    assert "server_name beta.example.org;" in conf
    assert "return 302 https://example.org$request_uri;" in conf  # keeps path and query
    assert "server_name status.example.org;" in conf
    assert "return 302 https://example.org/status;" in conf  # one fixed URL
    ingress = by_kind(docs, "Ingress")["redirector"]
    assert [r["host"] for r in ingress["spec"]["rules"]] == ["beta.example.org", "status.example.org"]
    assert ingress["spec"]["tls"] == [
        {"secretName": "redirector-tls", "hosts": ["beta.example.org", "status.example.org"]}
    ]
    pdb = by_kind(docs, "PodDisruptionBudget")["redirector"]
    assert pdb["spec"]["minAvailable"] == 0
    service = by_kind(docs, "Service")["redirector"]
    deploy = workloads(docs)["redirector"]
    assert service["spec"]["selector"].items() <= deploy["spec"]["template"]["metadata"]["labels"].items()


def test_redirector_pods_roll_when_the_redirects_change(tmp_path):
    def checksum(redirects):
        docs = helm_template(redirector_values(tmp_path, redirects))
        return workloads(docs)["redirector"]["spec"]["template"]["metadata"]["annotations"]["checksum/config"]

    one = [{"type": "host", "host": {"from": "a.example.org", "to": "b.example.org"}}]
    two = [{"type": "host", "host": {"from": "a.example.org", "to": "c.example.org"}}]
    assert checksum(one) == checksum(one)
    assert checksum(one) != checksum(two)


@pytest.mark.parametrize(
    ("redirect", "message"),
    [
        ({"type": "moved", "host": {"from": "a.example.org", "to": "b"}}, 'has type "moved": use type host'),
        ({"type": "host", "host": {"from": "a.example.org"}}, "(type host) needs host.to"),
        ({"type": "url", "host": {"from": "a.example.org"}}, "(type url) needs url"),
        ({"type": "url", "host": {"from": "a.example.org"}, "url": "example.org"}, "(type url) needs url"),
        ({"type": "host", "host": {"to": "b.example.org"}}, "needs host.from"),
    ],
    ids=["unknown-type", "host-without-to", "url-without-url", "url-not-http", "no-from"],
)
def test_bad_redirects_fail_naming_the_entry_and_the_fix(tmp_path, redirect, message):
    stderr = helm_template_fails(redirector_values(tmp_path, [redirect]))
    assert "redirector.redirects[0]" in stderr
    assert message in stderr


def test_a_source_host_redirected_twice_is_refused(tmp_path):
    twice = [
        {"type": "host", "host": {"from": "a.example.org", "to": "b.example.org"}},
        {"type": "host", "host": {"from": "a.example.org", "to": "c.example.org"}},
    ]
    stderr = helm_template_fails(redirector_values(tmp_path, twice))
    assert "redirector.redirects[1] redirects a.example.org, which redirector.redirects[0] already redirects" in stderr


def test_extra_ingress_needs_its_fields(tmp_path):
    path = tmp_path / "extra.yaml"
    path.write_text(yaml.safe_dump({"extraIngresses": [{"name": "x", "host": "x.example.org"}]}))
    stderr = helm_template_fails([path])
    assert "extraIngresses[0] needs name, host, service and port" in stderr


def test_dependencies_can_be_switched_off():
    docs = helm_template(
        [],
        "t",
        "t",
        "--set",
        "binderhubEnabled=false",
        "--set",
        "grafana.enabled=false",
        "--set",
        "prometheus.enabled=false",
    )
    names = set(workloads(docs))
    assert names == {"redirector"}
    assert set(by_kind(docs, "PodDisruptionBudget")) == {"redirector"}


def registry_values(tmp, registry: dict | None, prefix: str) -> list:
    path = tmp / "registry.yaml"
    values: dict = {"binderhub": {"config": {"BinderHub": {"image_prefix": prefix}}}}
    if registry is not None:
        values["binderhub"]["registry"] = registry
    path.write_text(yaml.safe_dump(values))
    return [path]


def test_use_registry_without_a_password_is_refused_naming_the_values_to_set(tmp_path):
    """The real binderhub chart would write Docker Hub credentials with an empty password."""
    err = helm_template_fails(
        registry_values(tmp_path, {"url": "https://gcr.io", "username": "_json_key", "password": ""}, "gcr.io/p/r2d-")
    )
    assert "use_registry is true but binderhub.registry.password is empty" in err
    assert "binderhub.registry.url and .username in config/<env>.yaml and binderhub.registry.password in secret" in err


def test_registry_credentials_for_another_host_than_image_prefix_are_refused(tmp_path):
    values = registry_values(tmp_path, {"url": "https://index.docker.io/v1/", "password": "x"}, "gcr.io/p/r2d-")
    err = helm_template_fails(values)
    assert "binderhub.registry.url is https://index.docker.io/v1/ but" in err
    assert "image_prefix (gcr.io/p/r2d-) pushes to gcr.io" in err and "https://gcr.io" in err


def test_registry_credentials_reach_the_chart_for_the_image_prefix_host(tmp_path):
    values = registry_values(
        tmp_path, {"url": "https://gcr.io", "username": "_json_key", "password": "sa-json"}, "gcr.io/p/r2d-"
    )
    docs = helm_template(values)
    config = json.loads(base64.b64decode(by_kind(docs, "Secret")["binder-build-docker-config"]["data"]["config.json"]))
    assert base64.b64decode(config["auths"]["https://gcr.io"]["auth"]).decode() == "_json_key:sa-json"


@pytest.mark.parametrize("env", ["staging", "prod", "ovh", "local"])
def test_every_environment_pushes_with_credentials_for_its_own_registry(env):
    docs = helm_template([str(ROOT / "config" / f"{env}.yaml")])
    config = json.loads(base64.b64decode(by_kind(docs, "Secret")["binder-build-docker-config"]["data"]["config.json"]))
    ((url, auth),) = config["auths"].items()
    _user, _, password = base64.b64decode(auth["auth"]).decode().partition(":")
    assert (
        password
        and password
        == yaml.safe_load((ROOT / "secret" / "config" / f"{env}.yaml").read_text())["binderhub"]["registry"]["password"]
    )
    prefix = yaml.safe_load((ROOT / "config" / f"{env}.yaml").read_text())["binderhub"]["config"]["BinderHub"][
        "image_prefix"
    ]
    host = prefix.split("/")[0] if "." in prefix.split("/")[0] else "index.docker.io"
    assert host in url


def test_builds_use_dind_not_the_nodes_docker_socket():
    """containerd nodes (GKE since 1.24) have no /var/run/docker.sock or /var/lib/docker."""
    docs = helm_template([str(ROOT / "config" / "prod.yaml")])
    mounts = {
        name: [v["hostPath"]["path"] for v in pod_spec(w).get("volumes", []) if "hostPath" in v]
        for name, w in workloads(docs).items()
        if w["kind"] == "DaemonSet"
    }
    assert mounts["t-dind"] == ["/var/lib/dind", "/var/run/dind"]
    assert sorted(mounts["t-image-cleaner"]) == ["/var/lib/dind", "/var/run/dind"]
    assert not any("/var/run/docker.sock" in p or p == "/var/lib/docker" for ps in mounts.values() for p in ps)
