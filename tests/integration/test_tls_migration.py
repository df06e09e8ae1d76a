"""kube-lego -> cert-manager on the real local API server: the certificates kube-lego issued keep
serving until cert-manager has replaced each of them, and kube-lego is removed only after that.

kube-lego cannot run on this cluster (its last chart uses API groups Kubernetes 1.16 removed), so
the cluster's legacy kube-lego release is installed from a fixture chart (tests/fixtures/charts/
kube-lego: apps/v1) as a cluster that still runs kube-lego has it. cert-manager is the real chart
with its real webhook, but no ACME server answers here yet, so its controller is kept at zero
replicas: where it would act (ingress-shim creating a Certificate, the issuing controller writing
the secret and the Ready condition), the test makes exactly those API writes itself, then checks
what the role does."""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
import tls_helpers as th
import tls_testlib as tl

pytestmark = pytest.mark.cluster

HOST = "binder.migration.mybinder.test"
LEGACY_KUBE_LEGO = Path(__file__).resolve().parents[1] / "fixtures" / "charts" / "kube-lego"


def install_legacy_kube_lego(cluster) -> None:
    """The kube-lego release a cluster that still runs kube-lego has (fixture chart, apps/v1)."""
    res = cluster_helm(
        cluster,
        "install", "kube-lego", str(LEGACY_KUBE_LEGO), "-n", "kube-lego", "--create-namespace",
        "--set", "config.LEGO_EMAIL=ops@mybinder.test",
        "--set", "config.LEGO_URL=https://acme-v01.api.letsencrypt.org/directory",
    )  # fmt: skip
    assert res.returncode == 0, res.stderr


def cluster_helm(cluster, *args: str):
    import subprocess

    return subprocess.run(
        [str(cluster.bin_dir / "helm"), "--kubeconfig", str(cluster.kubeconfig), *args], capture_output=True, text=True
    )


@pytest.fixture(scope="module")
def clean(cluster):
    tl.reset_tls(cluster)
    yield
    tl.reset_tls(cluster)


def ingress(namespace: str, name: str, secret: str, host: str, annotations: dict[str, str]) -> dict:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": name, "namespace": namespace, "annotations": annotations},
        "spec": {
            "ingressClassName": "nginx",
            "rules": [
                {
                    "host": host,
                    "http": {
                        "paths": [
                            {
                                "path": "/",
                                "pathType": "Prefix",
                                "backend": {"service": {"name": "binder", "port": {"number": 80}}},
                            }
                        ]
                    },
                }
            ],
            "tls": [{"hosts": [host], "secretName": secret}],
        },
    }


def secret_state(cluster, namespace: str, name: str) -> tuple[str, str, dict]:
    obj = cluster.get_json("secret", name, "-n", namespace)
    return obj["metadata"]["resourceVersion"], obj["data"]["tls.crt"], obj["metadata"].get("annotations") or {}


def test_kube_lego_to_cert_manager_without_a_certificate_gap(cluster, clean, namespace):
    lego_ca, le_ca = th.make_ca("kube-lego era CA"), th.make_ca("cert-manager era CA")

    # 1. a kube-lego cluster: kube-lego's own release, as the legacy install left it. The role
    #    refuses to install or upgrade it here (Kubernetes >= 1.16), naming the way out.
    install_legacy_kube_lego(cluster)
    refused = tl.run_role("tls", tl.tls_vars(cluster, tls_provider="kube-lego"))
    assert not refused.ok and refused.changed() == []
    msg = refused.failed()[0][1]["msg"]
    assert "kube-lego cannot run on this cluster (Kubernetes v1.34" in msg
    assert "Set tls_provider: cert-manager" in msg
    assert tl.helm_releases(cluster)["kube-lego"]["revision"] == "1"
    lego = cluster.get_json("deployment", "kube-lego", "-n", "kube-lego")
    assert lego["spec"]["replicas"] == 1
    assert "cert-manager.io" not in cluster.kubectl("get", "crd", "-o", "name").stdout

    # ... serving a certificate kube-lego issued, and a pre-made one that is not ACME's business
    old = th.make_leaf([HOST], ca=lego_ca)
    tl.tls_secret(cluster, namespace, "binder-tls", old.cert_pem(), old.key_pem())
    premade = th.make_leaf(["*.migration.mybinder.test"], ca=lego_ca)
    tl.tls_secret(cluster, namespace, "wildcard", premade.cert_pem(), premade.key_pem())
    for doc in (
        ingress(namespace, "binder", "binder-tls", HOST, {"kubernetes.io/tls-acme": "true"}),
        ingress(namespace, "hub", "wildcard", "hub.migration.mybinder.test", {}),
    ):
        cluster.kubectl("apply", "-f", "-", input_text=json.dumps(doc))
    # what kube-lego creates by itself for its HTTP-01 challenges
    for ns in ("kube-lego", namespace):
        cluster.kubectl("create", "service", "clusterip", "kube-lego-nginx", "--tcp=8080:8080", "-n", ns)
        leftover = ingress(ns, "kube-lego-nginx", "kube-lego-nginx-none", "x.invalid", {})
        leftover["spec"].pop("tls")
        cluster.kubectl("apply", "-f", "-", input_text=json.dumps(leftover))
    before = secret_state(cluster, namespace, "binder-tls")

    # 2. the environment switches to cert-manager; check mode first predicts it and changes nothing
    cm_vars = tl.controller_off(cluster)
    predicted = tl.expect_ok(tl.run_role("tls", cm_vars, check=True))
    assert any("Install cert-manager" in n for n in predicted.changed())
    assert any("Pause kube-lego" in n for n in predicted.changed())
    assert predicted.fact("tls_migration")["pending"] == ["binder-tls"]
    assert cluster.get_json("deployment", "kube-lego", "-n", "kube-lego")["spec"]["replicas"] == 1
    assert "cert-manager" not in tl.helm_releases(cluster)
    run = tl.expect_ok(tl.run_role("tls", cm_vars))
    releases = tl.helm_releases(cluster)
    assert releases["cert-manager"]["status"] == "deployed"
    assert releases["kube-lego"]["status"] == "deployed"  # still installed ...
    assert cluster.get_json("deployment", "kube-lego", "-n", "kube-lego")["spec"]["replicas"] == 0  # ... but paused
    # ingresses that still carry kube-lego's annotation are cert-manager's now, through its default issuer
    args = cluster.get_json("deployment", "cert-manager", "-n", "cert-manager")["spec"]["template"]["spec"]
    assert "--default-issuer-name=letsencrypt-staging" in args["containers"][0]["args"]
    record = cluster.get_json("configmap", "kube-lego-migration", "-n", "cert-manager")
    assert json.loads(record["data"]["secrets.json"]) == [
        {"namespace": namespace, "secretName": "binder-tls", "hosts": [HOST], "ingress": "binder"}
    ]
    migration = run.fact("tls_migration")
    assert migration["complete"] is False and migration["pending"] == ["binder-tls"]
    assert "migration in progress" in run.messages()
    assert secret_state(cluster, namespace, "binder-tls") == before  # kube-lego's certificate keeps serving

    # 3. the chart switches the ingress to cert-manager's annotation; ingress-shim creates the
    #    Certificate for the same secret; issuing is under way (not Ready yet)
    cluster.kubectl(
        "annotate",
        "ingress",
        "binder",
        "-n",
        namespace,
        "kubernetes.io/tls-acme-",
        "cert-manager.io/cluster-issuer=letsencrypt-staging",
    )
    cert = {
        "apiVersion": "cert-manager.io/v1",
        "kind": "Certificate",
        "metadata": {"name": "binder-tls", "namespace": namespace},
        "spec": {
            "secretName": "binder-tls",
            "dnsNames": [HOST],
            "issuerRef": {"name": "letsencrypt-staging", "kind": "ClusterIssuer", "group": "cert-manager.io"},
        },
    }
    cluster.kubectl("apply", "-f", "-", input_text=json.dumps(cert))
    issuing = {"type": "Ready", "status": "False", "reason": "DoesNotExist", "message": "Issuing certificate"}
    cluster.kubectl(
        "patch",
        "certificate",
        "binder-tls",
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": {"conditions": [issuing]}}),
    )
    run = tl.expect_ok(tl.run_role("tls", cm_vars))
    assert run.fact("tls_migration")["pending"] == ["binder-tls"]
    assert "kube-lego" in tl.helm_releases(cluster)
    assert secret_state(cluster, namespace, "binder-tls") == before
    assert run.changed() == []

    # 4. cert-manager writes the replacement into the same secret and marks the Certificate Ready
    new = th.make_leaf([HOST], ca=le_ca)
    tl.tls_secret(
        cluster,
        namespace,
        "binder-tls",
        new.cert_pem(),
        new.key_pem(),
        **{
            "cert-manager.io/certificate-name": "binder-tls",
            "cert-manager.io/issuer-name": "letsencrypt-staging",
            "cert-manager.io/issuer-kind": "ClusterIssuer",
        },
    )
    ready = {"type": "Ready", "status": "True", "reason": "Ready", "message": "Certificate is up to date"}
    cluster.kubectl(
        "patch",
        "certificate",
        "binder-tls",
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": {"conditions": [ready]}}),
    )

    predicted = tl.expect_ok(tl.run_role("tls", cm_vars, check=True))
    assert any("Uninstall kube-lego" in n for n in predicted.changed())
    assert "kube-lego" in tl.helm_releases(cluster)  # check mode removed nothing

    run = tl.expect_ok(tl.run_role("tls", cm_vars))
    assert run.fact("tls_migration")["kube_lego_removed"] is True
    assert "kube-lego" not in tl.helm_releases(cluster)
    assert [n for n in run.changed() if "Uninstall" in n or "Remove the objects" in n or "Drop" in n]
    for ns in ("kube-lego", namespace):
        assert cluster.kubectl("get", "service,ingress", "kube-lego-nginx", "-n", ns, check=False).returncode != 0
    assert cluster.kubectl("get", "configmap", "kube-lego-migration", "-n", "cert-manager", check=False).returncode != 0
    _rv, crt, annotations = secret_state(cluster, namespace, "binder-tls")
    assert base64.b64decode(crt) == new.cert_pem()  # cert-manager's certificate serves, nothing was deleted
    assert annotations["cert-manager.io/certificate-name"] == "binder-tls"
    assert secret_state(cluster, namespace, "wildcard")[1] == base64.b64encode(premade.cert_pem()).decode()

    # 5. done: nothing more to do, and going back to kube-lego is refused while cert-manager runs
    assert tl.expect_ok(tl.run_role("tls", cm_vars)).changed() == []
    back = tl.run_role("tls", tl.tls_vars(cluster, tls_provider="kube-lego"))
    assert not back.ok and back.changed() == []
    assert "uninstall cert-manager first" in back.failed()[0][1]["msg"]
    assert "kube-lego" not in tl.helm_releases(cluster)


def test_a_cluster_without_acme_ingresses_drops_kube_lego_at_once(cluster, clean, namespace):
    tl.reset_tls(cluster)
    install_legacy_kube_lego(cluster)
    # an ingress that was cert-manager's all along: kube-lego never served it, nothing to wait for
    theirs = ingress(namespace, "theirs", "theirs-tls", "theirs.mybinder.test", {"cert-manager.io/cluster-issuer": "x"})
    cluster.kubectl("apply", "-f", "-", input_text=json.dumps(theirs))
    # no ingress of this cluster uses kube-lego (the test namespaces of earlier tests are gone or
    # have none), so the switch has nothing to wait for
    for ing in cluster.get_json("ingress", "-A")["items"]:
        annotations = ing["metadata"].get("annotations") or {}
        if annotations.get("kubernetes.io/tls-acme") == "true":  # kube-lego's; others are not its business
            cluster.kubectl("delete", "ingress", ing["metadata"]["name"], "-n", ing["metadata"]["namespace"])
    run = tl.expect_ok(tl.run_role("tls", tl.controller_off(cluster)))
    assert run.fact("tls_migration") == {"secrets": [], "pending": [], "complete": True, "kube_lego_removed": True}
    assert "kube-lego" not in tl.helm_releases(cluster)
