"""OVH's two certificates, on the rendered and on the deployed objects:
every *.mybinder.ovh host is served by the pre-made wildcard secret (ACME off), and exactly one
ingress, for ovh.mybinder.org, gets its certificate from cert-manager (ClusterIssuer letsencrypt-prod).

The rendered side is the meta chart as playbooks/render.yml renders it for inventories/ovh with no
override, so the annotations come from the TLS settings (group_vars/all/tls.yml). The deployed
side applies those ingresses to the local cluster and runs the tls role with inventories/ovh
(pointed at the local cluster), which writes the wildcard secret from the git-crypt secret tree."""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / ".collections"))
import helpers_chart as hc
import tls_helpers as th
import tls_testlib as tl
from ansible_collections.mybinder.deploy.plugins.module_utils import _tls

ROOT = Path(__file__).resolve().parents[2]
ACME = {"cert-manager.io/cluster-issuer": "letsencrypt-prod"}
ACME_KEYS = {"cert-manager.io/cluster-issuer", "cert-manager.io/issuer", "kubernetes.io/tls-acme"}
WILDCARD_SECRET = "tls-crt"  # mybinder_tls_secret of inventories/ovh


def hosts_of(ing: dict) -> list[str]:
    return [rule["host"] for rule in ing["spec"]["rules"]]


def assert_split(ingresses: dict[str, dict]) -> None:
    acme = {n: i for n, i in ingresses.items() if ACME_KEYS & (i["metadata"].get("annotations") or {}).keys()}
    assert list(acme) == ["ovh-mybinder-org"], list(acme)
    alias = acme["ovh-mybinder-org"]
    assert ACME.items() <= alias["metadata"]["annotations"].items()
    assert hosts_of(alias) == ["ovh.mybinder.org"]
    assert alias["spec"]["tls"] == [{"secretName": "ovh-mybinder-org-tls", "hosts": ["ovh.mybinder.org"]}]
    assert alias["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"] == "binder"
    others = {n: i for n, i in ingresses.items() if n != "ovh-mybinder-org"}
    assert {"binderhub", "jupyterhub"} <= set(others)
    for name, ing in others.items():
        assert all(h.endswith(".mybinder.ovh") for h in hosts_of(ing)), (name, hosts_of(ing))
        assert [t["secretName"] for t in ing["spec"]["tls"]] == [WILDCARD_SECRET], name
        assert set(ing["spec"]["tls"][0]["hosts"]) == set(hosts_of(ing)), name


def test_rendered_ovh_ingresses_split_wildcard_and_acme():
    hc.require_unlocked("ovh")
    assert_split(hc.by_kind(hc.render("ovh").docs, "Ingress"))


@pytest.fixture(scope="module")
def clean(cluster):
    tl.reset_tls(cluster)
    yield
    tl.reset_tls(cluster)


def ovh_vars(cluster, namespace: str) -> dict:
    return {
        # inventories/ovh, pointed at the local cluster, the chart mirror and the real webhook
        "tls_kubeconfig": str(cluster.kubeconfig),
        "tls_chart_mirror": tl.mirror_url(),
        "tls_cert_manager_crds_src": str(tl.CRDS),
        "tls_cert_manager_values": {"webhook": {"url": {"host": tl.WEBHOOK_HOST_FILE.read_text().strip()}}},
        "mybinder_repo_dir": str(ROOT),
        "mybinder_namespace": namespace,
        "tls_rollout_timeout": 240,
    }


@pytest.mark.cluster
def test_deployed_ovh_objects_split_wildcard_and_acme(cluster, clean, namespace):
    hc.require_unlocked("ovh")
    crt_file, key_file = ROOT / "secret" / "ovh-wildcard-tls.crt", ROOT / "secret" / "ovh-wildcard-tls.key"
    assert not crt_file.read_bytes().startswith(hc.GITCRYPT_MAGIC), "unlock the secrets first (secret/README.md)"

    run = tl.expect_ok(tl.run_role("tls", ovh_vars(cluster, namespace), inventory=ROOT / "inventories" / "ovh"))
    assert run.fact("tls_result")["premade_secrets"] == [WILDCARD_SECRET]
    assert "PRIVATE KEY" not in run.stdout + run.stderr  # the key never reaches the output

    for doc in hc.by_kind(hc.render("ovh").docs, "Ingress").values():
        doc["metadata"]["namespace"] = namespace
        cluster.kubectl("apply", "-f", "-", input_text=json.dumps(doc))
    deployed = {i["metadata"]["name"]: i for i in cluster.get_json("ingress", "-n", namespace)["items"]}
    assert_split(deployed)

    # the wildcard secret the role wrote is the one from the secret tree, and it covers every host
    # that uses it, but not ovh.mybinder.org (which is why that one needs its own certificate)
    secret = cluster.get_json("secret", WILDCARD_SECRET, "-n", namespace)
    assert secret["type"] == "kubernetes.io/tls"
    assert base64.b64decode(secret["data"]["tls.crt"]) == crt_file.read_bytes()
    assert base64.b64decode(secret["data"]["tls.key"]) == key_file.read_bytes()
    info = _tls.parse_pem_file(crt_file.read_bytes(), str(crt_file))
    for name, ing in deployed.items():
        covered = all(_tls.name_matches(h, info.sans, info.ip_sans) for h in hosts_of(ing))
        assert covered == (name != "ovh-mybinder-org"), name
    # the ACME ingress's issuer exists, with Let's Encrypt's production directory
    issuer = cluster.get_json("clusterissuer", "letsencrypt-prod")
    assert issuer["spec"]["acme"]["server"] == "https://acme-v02.api.letsencrypt.org/directory"

    again = tl.expect_ok(tl.run_role("tls", ovh_vars(cluster, namespace), inventory=ROOT / "inventories" / "ovh"))
    assert again.changed() == []


@pytest.mark.cluster
def test_a_premade_certificate_is_checked_before_it_is_written(cluster, clean, namespace, tmp_path):
    ca = th.make_ca()
    crt, key = th.make_leaf(["*.premade.mybinder.test"], ca=ca).write(tmp_path, "wildcard")
    _other_crt, other_key = th.make_leaf(["*.premade.mybinder.test"], ca=ca).write(tmp_path, "other")
    base = tl.tls_vars(cluster, tls_provider="none", tls_acme_email="")
    cases = [
        (["binder.premade.mybinder.test", "ovh.mybinder.org"], key, "does not cover that name"),
        (["binder.premade.mybinder.test"], other_key, "does not belong to the certificate"),
    ]
    for hosts, keyfile, message in cases:
        premade = [
            {"name": "wild", "namespace": namespace, "certificate": str(crt), "key": str(keyfile), "hosts": hosts}
        ]
        run = tl.run_role("tls", dict(base, tls_premade_secrets=premade))
        assert not run.ok and run.changed() == []
        assert message in run.messages()
        assert cluster.kubectl("get", "secret", "wild", "-n", namespace, check=False).returncode != 0
    good = [
        {
            "name": "wild",
            "namespace": namespace,
            "certificate": str(crt),
            "key": str(key),
            "hosts": ["binder.premade.mybinder.test", "hub.premade.mybinder.test"],
        }
    ]
    run = tl.expect_ok(tl.run_role("tls", dict(base, tls_premade_secrets=good)))
    assert [n for n in run.changed() if "TLS secret" in n]
    assert base64.b64decode(cluster.get_json("secret", "wild", "-n", namespace)["data"]["tls.crt"]) == crt.read_bytes()
    assert "PRIVATE KEY" not in run.stdout + run.stderr
    assert not run.ran("Install cert-manager") and not run.ran("Install kube-lego")  # provider none installs nothing
