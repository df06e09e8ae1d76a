"""playbooks/render.yml: every release of an environment rendered without a cluster, with the
deploy's chart build and values layering; node pools, ingresses and TLS per environment; the
values layering decision; secrets kept out of the output.
"""

from __future__ import annotations

import base64
import json
import re

import pytest
import yaml
from helpers_chart import (
    ENVS,
    LABEL,
    ROOT,
    Render,
    ansible_env,
    by_kind,
    load_docs,
    mirror_url,
    pod_spec,
    render,
    run,
    run_render,
    secret_data,
    secret_leaves,
    secret_values_yaml,
    tmpdir,
    workloads,
)

pytestmark = pytest.mark.slow  # one ansible-playbook run per environment and case

CORE = {
    "binder",
    "hub",
    "proxy",
    "user-scheduler",
    "redirector",
}  # plus <release>-grafana/-prometheus-server/-kube-state-metrics
ACME = {"cert-manager.io/cluster-issuer": "letsencrypt-prod"}


def recap_changed(stdout: str) -> int:
    m = re.search(r"changed=(\d+)", stdout.split("PLAY RECAP", 1)[-1])
    assert m, stdout[-2000:]
    return int(m.group(1))


def core_names(release: str) -> set[str]:
    return CORE | {f"{release}-grafana", f"{release}-prometheus-server", f"{release}-kube-state-metrics"}


@pytest.mark.parametrize("env", ENVS)
def test_values_files_are_inventory_layer_then_secret_then_public_config(env):
    """The documented order (docs/configuration.md): chart defaults < inventory layer < secret < config."""
    files = render(env).release["values_files"]
    assert len(files) == 3, files
    assert files[0].endswith("/inventory-values.yaml")
    assert files[1:] == [f"secret/config/{env}.yaml", f"config/{env}.yaml"]


def test_render_writes_the_release_from_the_real_charts():
    r = render("local")
    assert (r.out / "local.yaml").is_file()
    rel = r.release
    assert (rel["name"], rel["namespace"]) == ("local", "local")
    assert sorted(rel["dependencies"]) == sorted(
        f"{d['name']} {d['version']}"
        for d in yaml.safe_load((ROOT / "mybinder" / "Chart.lock").read_text())["dependencies"]
    )
    assert "STAND-IN" not in r.proc.stdout
    kinds = {d["kind"] for d in r.docs}
    assert {"Deployment", "StatefulSet", "DaemonSet", "Ingress", "PodDisruptionBudget", "Secret", "ConfigMap"} <= kinds
    assert {"PersistentVolumeClaim", "NetworkPolicy", "Role", "ClusterRole"} <= kinds


def test_public_config_wins_over_the_inventory_layer_and_the_chart_defaults(tmp_path):
    probe = yaml.safe_load((ROOT / "config" / "local.yaml").read_text())
    probe["ingressClassName"] = "probe-class"  # inventory layer says nginx
    probe.setdefault("redirector", {})["replicas"] = 3  # chart default 1
    path = tmp_path / "local-probe.yaml"
    path.write_text(yaml.safe_dump(probe))
    r = run_render("local", "-e", f"mybinder_config_values_file={path}")
    assert isinstance(r, Render)
    assert by_kind(r.docs, "Ingress")["redirector"]["spec"]["ingressClassName"] == "probe-class"
    assert workloads(r.docs)["redirector"]["spec"]["replicas"] == 3
    # and the inventory layer wins over the chart defaults
    assert by_kind(render("local").docs, "Ingress")["redirector"]["spec"]["ingressClassName"] == "nginx"


def test_a_helm_that_is_not_helm_3_is_refused_before_anything_is_rendered(tmp_path):
    """A helm 2 on PATH rendered garbage with rc 0: render.yml checks helm as the deploy does."""
    old = tmp_path / "helm"
    old.write_text('#!/bin/sh\necho "Client: v2.17.0+ga690bad"\n')
    old.chmod(0o755)
    out = tmp_path / "out"
    proc = run_render("local", "-e", f"mybinder_helm_binary={old}", out=out, check=False)
    assert proc.returncode != 0
    assert "helm 2.17.0 is not supported: this collection needs helm >= 3" in " ".join(proc.stdout.split())
    assert not out.exists() or not any(out.iterdir())


def test_a_key_set_in_both_a_secret_and_a_public_file_stops_the_run_without_showing_values(tmp_path):
    """Whichever came later would silently override the other: refused, naming key and files."""
    probe = yaml.safe_load((ROOT / "config" / "local.yaml").read_text())
    probe.setdefault("grafana", {})["adminPassword"] = "public-probe-value"
    path = tmp_path / "local-probe.yaml"
    path.write_text(yaml.safe_dump(probe))
    proc = run_render("local", "-e", f"mybinder_config_values_file={path}", check=False)
    assert proc.returncode != 0
    assert "grafana.adminPassword" in proc.stdout
    assert "secret/config/local.yaml" in proc.stdout and str(path) in proc.stdout
    assert "public-probe-value" not in proc.stdout + proc.stderr
    for value in secret_leaves("local"):
        assert value not in proc.stdout + proc.stderr


@pytest.mark.parametrize("env", ["prod", "local"])
def test_core_components_go_to_the_core_pool_users_and_builds_to_the_user_pool(env):
    r = render(env)
    docs = r.unredacted()
    found = workloads(docs)
    core = core_names(r.release["name"])
    assert core <= set(found), sorted(found)
    for name in core:
        assert pod_spec(found[name]).get("nodeSelector") == {LABEL: "core"}, name
    assert pod_spec(found["user-placeholder"])["nodeSelector"] == {LABEL: "user"}
    assert pod_spec(found[f"{r.release['name']}-image-cleaner"])["nodeSelector"] == {LABEL: "user"}
    assert pod_spec(found[f"{r.release['name']}-dind"])["nodeSelector"] == {LABEL: "user"}  # builds run there
    # user servers and builds are created at run time from the hub's and binder's configuration
    assert secret_values_yaml(docs, "hub")["singleuser"]["nodeSelector"] == {LABEL: "user"}
    assert secret_values_yaml(docs, "binder-secret")["config"]["BinderHub"]["build_node_selector"] == {LABEL: "user"}
    # nothing else is pinned anywhere (node agents excepted: they run on every node by design)
    others = set(found) - core - {"user-placeholder", f"{r.release['name']}-image-cleaner", f"{r.release['name']}-dind"}
    assert others == {f"{r.release['name']}-prometheus-node-exporter"}
    assert found[f"{r.release['name']}-prometheus-node-exporter"]["kind"] == "DaemonSet"


def test_the_node_pool_label_and_values_are_one_inventory_setting():
    r = render(
        "prod",
        "-e",
        "mybinder_node_pool_label=mybinder.org/pool-type",
        "-e",
        json.dumps({"mybinder_node_pools": {"core": "core", "user": "users"}}),
        "-e",
        json.dumps({"mybinder_ingress_annotations": ACME}),
    )
    docs = r.unredacted()
    found = workloads(docs)
    for name in core_names("prod"):
        assert pod_spec(found[name])["nodeSelector"] == {"mybinder.org/pool-type": "core"}, name
    assert pod_spec(found["user-placeholder"])["nodeSelector"] == {"mybinder.org/pool-type": "users"}
    assert secret_values_yaml(docs, "binder-secret")["config"]["BinderHub"]["build_node_selector"] == {
        "mybinder.org/pool-type": "users"
    }
    assert LABEL not in json.dumps([pod_spec(w) for w in found.values()])


@pytest.mark.parametrize("env", ["staging", "ovh"])
def test_one_pool_environments_pin_nothing(env):
    for name, w in workloads(render(env).unredacted()).items():
        assert LABEL not in (pod_spec(w).get("nodeSelector") or {}), name
    docs = render(env).unredacted()
    assert secret_values_yaml(docs, "binder-secret")["config"]["BinderHub"].get("build_node_selector") in (None, {})


@pytest.mark.parametrize("env", ENVS)
def test_every_ingress_has_tls_covering_all_its_hosts(env):
    ingresses = by_kind(render(env).docs, "Ingress")
    assert {"binderhub", "jupyterhub", "redirector"} <= set(ingresses)
    for name, ing in ingresses.items():
        hosts = {rule["host"] for rule in ing["spec"]["rules"]}
        tls_hosts = {h for block in ing["spec"].get("tls", []) for h in block["hosts"]}
        assert hosts and hosts <= tls_hosts, name
        assert ing["spec"]["ingressClassName"] == "nginx", name


def test_inventory_hosts_drive_the_ingresses_and_the_hub_url():
    r = render("prod")
    hosts = {n: [rule["host"] for rule in i["spec"]["rules"]] for n, i in by_kind(r.docs, "Ingress").items()}
    assert hosts["binderhub"] == ["mybinder.org"]
    assert hosts["jupyterhub"] == ["hub.mybinder.org"]
    assert hosts["prod-grafana"] == ["grafana.mybinder.org"]
    assert hosts["prod-prometheus-server"] == ["prometheus.mybinder.org"]
    config = secret_values_yaml(r.unredacted(), "binder-secret")["config"]["BinderHub"]
    assert config["hub_url"] == "https://hub.mybinder.org"


def test_acme_annotations_reach_every_ingress_and_each_gets_its_own_certificate():
    r = render(
        "prod",
        "-e",
        "mybinder_node_pool_label=mybinder.org/pool-type",
        "-e",
        json.dumps({"mybinder_node_pools": {"core": "core", "user": "users"}}),
        "-e",
        json.dumps({"mybinder_ingress_annotations": ACME}),
    )
    secrets = []
    for name, ing in by_kind(r.docs, "Ingress").items():
        assert ACME.items() <= (ing["metadata"].get("annotations") or {}).items(), name
        assert len(ing["spec"]["tls"]) == 1, name
        secrets.append(ing["spec"]["tls"][0]["secretName"])
    assert len(secrets) == len(set(secrets))
    assert {"binder-tls", "hub-tls", "grafana-tls", "prometheus-tls", "redirector-tls"} == set(secrets)


def test_ovh_serves_its_hosts_with_the_wildcard_and_ovh_mybinder_org_with_its_own_certificate():
    r = render("ovh", "-e", json.dumps({"mybinder_ingress_annotations": ACME}))
    ingresses = by_kind(r.docs, "Ingress")
    binder = ingresses["binderhub"]
    assert [rule["host"] for rule in binder["spec"]["rules"]] == ["binder.mybinder.ovh"]
    assert binder["spec"]["tls"] == [{"secretName": "tls-crt", "hosts": ["binder.mybinder.ovh"]}]
    for name, ing in ingresses.items():
        if name != "ovh-mybinder-org":  # the wildcard serves them: no ACME (rate limits on .ovh)
            assert ing["spec"]["tls"][0]["secretName"] == "tls-crt", name
            assert not ACME.keys() & (ing["metadata"].get("annotations") or {}).keys(), name
    alias = ingresses["ovh-mybinder-org"]
    assert [rule["host"] for rule in alias["spec"]["rules"]] == ["ovh.mybinder.org"]
    assert alias["spec"]["tls"] == [{"secretName": "ovh-mybinder-org-tls", "hosts": ["ovh.mybinder.org"]}]
    assert ACME.items() <= alias["metadata"]["annotations"].items()
    backend = alias["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    service = by_kind(r.docs, "Service")[backend["name"]]
    assert backend["port"]["number"] in [p["port"] for p in service["spec"]["ports"]]
    assert (
        service["spec"]["selector"].items()
        <= workloads(r.docs)["binder"]["spec"]["template"]["metadata"]["labels"].items()
    )


@pytest.mark.parametrize("env", ["local", "ovh"])
def test_secrets_reach_the_cluster_objects_but_never_the_render_output_or_the_log(env):
    r = render(env)
    values = secret_leaves(env)
    assert len(values) >= 5
    deployed = "\n".join(v for s in by_kind(r.unredacted(), "Secret").values() for v in secret_data(s).values())
    # the registry credentials are in a docker config.json, as "auth": base64(user:password)
    auths = json.loads(secret_data(by_kind(r.unredacted(), "Secret")["binder-build-docker-config"])["config.json"])
    deployed += "\n".join(base64.b64decode(a["auth"]).decode() for a in auths["auths"].values())
    text = (r.out / r.release["file"]).read_text() + (r.out / "releases.yaml").read_text()
    for value in values:
        # the value is really deployed (so this test would catch a leak)...
        assert value in deployed
        # ...and never written or logged
        assert value not in text and base64.b64encode(value.encode()).decode() not in text
        assert value not in r.proc.stdout + r.proc.stderr
    for secret in by_kind(r.docs, "Secret").values():
        assert {*secret.get("data", {}).values(), *secret.get("stringData", {}).values()} == {"<redacted>"}
    assert set(r.release["redacted_secrets"]) == {
        f"{env}/hub",
        f"{env}/binder-secret",
        f"{env}/binder-build-docker-config",
        f"{env}/{env}-grafana",
    }


def test_a_second_render_changes_nothing_and_check_mode_agrees():
    out = tmpdir("render-idem-")
    first = run_render("local", out=out)
    assert isinstance(first, Render)
    assert recap_changed(first.proc.stdout) >= 2
    before = {p.name: p.read_text() for p in out.iterdir()}
    second = run_render("local", out=out)
    assert recap_changed(second.proc.stdout) == 0
    third = run_render("local", "--check", out=out)
    assert recap_changed(third.proc.stdout) == 0
    assert {p.name: p.read_text() for p in out.iterdir()} == before


def test_check_mode_predicts_a_render_and_writes_nothing():
    out = tmpdir("render-check-")
    proc = run_render("local", "--check", "--diff", out=out, check=False)
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert recap_changed(proc.stdout) >= 2
    assert list(out.iterdir()) == []
    assert "<redacted>" in proc.stdout  # the diff shows the Secrets, redacted


def test_render_without_render_dir_says_how_to_call_it():
    proc = run_render("local", "-e", "render_dir=", check=False)
    assert proc.returncode != 0
    assert "render_dir is not set" in proc.stdout
    assert "-e render_dir=" in proc.stdout


def test_a_new_cluster_needs_only_an_inventory_and_a_config_file(tmp_path):
    """A k3s-style single-node member of the federation: inventory + config (+ its secrets), no code."""
    inventory = tmp_path / "inventories" / "k3s"
    group_vars = inventory / "group_vars" / "mybinder_clusters"
    group_vars.mkdir(parents=True)
    (inventory / "hosts.yml").write_text(
        "mybinder_clusters:\n  hosts:\n    k3s:\n      ansible_connection: local\n"
        '      ansible_python_interpreter: "{{ ansible_playbook_python }}"\n'
    )
    config = tmp_path / "k3s.yaml"
    config.write_text(
        "redirector:\n  redirects:\n    - {type: host, host: {from: old.k3s.example.org, to: k3s.example.org}}\n"
        "binderhub:\n  config:\n    BinderHub:\n      image_prefix: k3sbinder/r2d-\n"
    )
    secret = tmp_path / "k3s-secret.yaml"
    secret.write_text(
        yaml.safe_dump(
            {
                "grafana": {"adminPassword": "k3s-only-placeholder"},
                "binderhub": {"registry": {"username": "k3sbinder", "password": "k3s-registry-placeholder"}},
            }
        )
    )
    (group_vars / "cluster.yml").write_text(
        yaml.safe_dump(
            {
                "mybinder_env": "k3s",
                "mybinder_repo_dir": str(ROOT),  # the inventory lives outside the checkout here
                "cluster_access_method": "kubeconfig",
                "cluster_access_kubeconfig": str(tmp_path / "kubeconfig"),
                "mybinder_hosts": {"binder": ["k3s.example.org"], "hub": ["hub.k3s.example.org"]},
                "mybinder_config_values_file": str(config),
                "mybinder_secret_values_file": str(secret),
            }
        )
    )
    out = tmpdir("render-k3s-")
    cmd = [
        str(ROOT / ".venv" / "bin" / "ansible-playbook"),
        str(ROOT / "playbooks" / "render.yml"),
        "-i",
        str(inventory),
        "-e",
        f"render_dir={out}",
        "-e",
        f"mybinder_chart_mirror={mirror_url()}",
    ]
    # the TLS release needs the cluster's Let's Encrypt contact: refused, naming it and where it goes
    missing = run(cmd, env=ansible_env(), cwd=ROOT, check=False)
    assert missing.returncode != 0
    assert "tls_acme_email is not set" in missing.stdout
    assert "group_vars/mybinder_clusters/tls.yml" in missing.stdout
    (group_vars / "tls.yml").write_text("tls_acme_email: ops@k3s.example.org\n")
    proc = run(cmd, env=ansible_env(), cwd=ROOT)
    assert "k3s.yaml" in proc.stdout
    docs = yaml.safe_load_all((out / "k3s.yaml").read_text())
    ingresses = {d["metadata"]["name"]: d for d in docs if d and d["kind"] == "Ingress"}
    assert [r["host"] for r in ingresses["binderhub"]["spec"]["rules"]] == ["k3s.example.org"]
    assert [r["host"] for r in ingresses["redirector"]["spec"]["rules"]] == ["old.k3s.example.org"]
    assert "k3s-grafana" not in ingresses  # no hosts, no ingress


def other_release(r: Render, name: str) -> dict:
    return next(rel for rel in r.index["releases"] if rel["name"] == name)


@pytest.mark.parametrize("env", ENVS)
def test_the_ingress_and_tls_releases_are_rendered_with_the_deploy_values(env):
    """Every release of the environment, not only the meta chart: ingress-nginx and cert-manager as
    their roles install them (same chart, version, values), plus the ClusterIssuers."""
    r = render(env)
    names = [rel["name"] for rel in r.index["releases"]]
    assert names == [r.release["name"], "ingress-nginx", "cert-manager"]
    ingress = other_release(r, "ingress-nginx")
    assert (ingress["namespace"], ingress["chart"], ingress["version"]) == ("ingress-nginx", "ingress-nginx", "4.14.1")
    assert ingress["stand_in"] is False  # the mirror serves the real charts
    cert_manager = other_release(r, "cert-manager")
    assert (cert_manager["namespace"], cert_manager["version"]) == ("cert-manager", "v1.19.4")
    assert "STAND-IN" not in r.proc.stdout

    controller = workloads(load_docs((r.out / "ingress-nginx.yaml").read_text()))["ingress-nginx-controller"]
    spec = pod_spec(controller)
    expected = {"prod": 3, "ovh": 1}.get(env, 2)
    assert controller["spec"]["replicas"] == expected
    if env == "prod":  # core pool, never two replicas on one node
        assert spec["nodeSelector"] == {"kubernetes.io/os": "linux", LABEL: "core"}
        assert "requiredDuringSchedulingIgnoredDuringExecution" in spec["affinity"]["podAntiAffinity"]
    if env == "ovh":  # host network on the one node DNS points at, replaced with Recreate
        assert spec["hostNetwork"] is True
        assert spec["nodeSelector"]["kubernetes.io/hostname"] == "ovh-node-1"
        assert controller["spec"]["strategy"]["type"] == "Recreate"

    # cert-manager: CRDs never through the chart; kube-lego's annotation gets the environment's issuer
    cm_docs = load_docs((r.out / "cert-manager.yaml").read_text())
    assert not [d for d in cm_docs if d["kind"] == "CustomResourceDefinition"]
    issuers = {d["metadata"]["name"]: d for d in load_docs((r.out / "cluster-issuers.yaml").read_text())}
    assert set(issuers) == {"letsencrypt-staging", "letsencrypt-prod"}
    for issuer in issuers.values():
        assert issuer["kind"] == "ClusterIssuer"
        assert issuer["spec"]["acme"]["solvers"][0]["http01"]["ingress"]["ingressClassName"] == "nginx"
    manifests = {m["name"]: m for m in r.index["manifests"]}
    assert manifests["cluster-issuers"]["file"] == "cluster-issuers.yaml"


def test_the_cert_manager_crds_are_rendered_from_a_local_source_and_named_when_remote():
    # with a chart mirror, the CRDs come from its manifests/ (a URL here: named, not fetched)
    local = render("local")
    assert other_release(local, "cert-manager")["crds"] == f"{mirror_url()}/manifests/cert-manager.crds.yaml"
    assert not (local.out / "cert-manager-crds.yaml").exists()
    manifest = ROOT.parent / "shared" / "charts" / "manifests" / "cert-manager.crds.yaml"
    from_file = run_render("local", "-e", f"tls_cert_manager_crds_src={manifest}")
    assert isinstance(from_file, Render)
    crds = load_docs((from_file.out / "cert-manager-crds.yaml").read_text())
    assert {d["kind"] for d in crds} == {"CustomResourceDefinition"} and len(crds) == 6
    prod = render("prod")
    assert other_release(prod, "cert-manager")["crds"].startswith("http://127.0.0.1:")
    assert not (prod.out / "cert-manager-crds.yaml").exists()  # not fetched: no network needed


def test_ovh_renders_its_premade_certificate_secret_redacted():
    r = render("ovh")
    secrets = load_docs((r.out / "tls-premade-secrets.yaml").read_text())
    assert [(s["metadata"]["namespace"], s["metadata"]["name"]) for s in secrets] == [("ovh", "tls-crt")]
    assert secrets[0]["data"] == {"tls.crt": "<redacted>", "tls.key": "<redacted>"}
    assert "binder.mybinder.ovh" in secrets[0]["metadata"]["annotations"]["mybinder.org/hosts"]
    text = "".join(p.read_text() for p in r.out.iterdir()) + r.proc.stdout + r.proc.stderr
    key = (ROOT / "secret" / "ovh-wildcard-tls.key").read_text()
    body = "".join(key.strip().splitlines()[1:-1])
    assert body[:40] not in text.replace("\n", "")


@pytest.mark.parametrize(("provider", "files"), [("kube-lego", {"kube-lego.yaml"}), ("none", set())])
def test_the_tls_provider_decides_which_tls_objects_are_rendered(provider, files):
    r = run_render("staging", "-e", f"tls_provider={provider}")
    assert isinstance(r, Render)
    tls_files = {"kube-lego.yaml", "cert-manager.yaml", "cluster-issuers.yaml", "cert-manager-crds.yaml"}
    assert {p.name for p in r.out.iterdir()} & tls_files == files
    if provider == "kube-lego":
        lego = workloads(load_docs((r.out / "kube-lego.yaml").read_text()))
        assert len(lego) == 1


def test_render_refuses_ingress_settings_that_cannot_roll_out_without_a_cluster():
    proc = run_render("ovh", "-e", json.dumps({"ingress_replicas": 2}), check=False)
    assert proc.returncode != 0
    assert "ingress_replicas=2" in proc.stdout and "only one pod can bind" in proc.stdout
