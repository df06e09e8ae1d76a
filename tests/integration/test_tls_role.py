"""mybinder.deploy.tls on the real local API server: cert-manager (CRDs first, own release,
ClusterIssuers), check mode, idempotence, CRD upgrades, and settings refused before any task runs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import tls_testlib as tl

pytestmark = pytest.mark.cluster


def only_validation_ran(run: tl.Run) -> bool:
    names = [n for n, _ in run.results()]
    return len(names) == 1 and names[0].startswith("Validating arguments against arg spec 'main'")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"tls_provider": "acme-bot"}, "tls_provider must be one of: cert-manager, kube-lego, none, got: acme-bot"),
        ({"tls_acme_email": None}, "missing required arguments: tls_acme_email"),
        ({"tls_cluster_issuers": "letsencrypt"}, "argument 'tls_cluster_issuers' is of type str"),
    ],
)
def test_argument_specs_reject_bad_settings_before_any_task(cluster, overrides, message):
    variables = tl.tls_vars(cluster)
    for key, value in overrides.items():
        if value is None:
            variables.pop(key)
        else:
            variables[key] = value
    run = tl.run_role("tls", variables)
    assert not run.ok
    assert only_validation_ran(run), [n for n, _ in run.results()]
    assert message in run.task("Validating arguments")["msg"]


def test_a_malformed_email_is_refused_before_anything_changes(cluster):
    run = tl.run_role("tls", tl.tls_vars(cluster, tls_acme_email="not-an-address"))
    assert not run.ok and run.changed() == []
    failed = run.failed()
    assert failed[0][0] == "Check the settings argument_specs cannot express"
    assert 'tls_acme_email="not-an-address" is not an e-mail address' in failed[0][1]["msg"]


@pytest.fixture(scope="module")
def clean(cluster):
    tl.reset_tls(cluster)
    yield
    tl.reset_tls(cluster)


def test_cert_manager_crds_release_and_issuers_check_converge_idempotent(cluster, clean):
    variables = tl.tls_vars(cluster)

    # check mode on an empty cluster predicts the CRDs and the release, creates nothing
    check = tl.expect_ok(tl.run_role("tls", variables, check=True))
    assert any("Apply the cert-manager CRDs" in n for n in check.changed())
    assert any("Install cert-manager" in n for n in check.changed())
    assert "cert-manager.io" not in cluster.kubectl("get", "crd", "-o", "name").stdout
    assert "cert-manager" not in tl.helm_releases(cluster)
    assert "cannot be dry-run" in check.messages()

    real = tl.expect_ok(tl.run_role("tls", variables))
    changed = real.changed()
    order = [n for n in changed if "CRDs" in n or "Install cert-manager" in n or "ClusterIssuers" in n]
    assert [o.split(" ")[0] for o in order] == ["Apply", "Install", "Keep"], changed  # CRDs, release, issuers
    assert "stand-in" not in real.messages().lower()  # the real chart
    # the real webhook admitted the ClusterIssuers: cert-manager's own defaulting is in them
    issuer = json.loads(cluster.kubectl("get", "clusterissuer", "letsencrypt-staging", "-o", "json").stdout)
    assert issuer["spec"]["acme"]["server"] == "https://acme-staging-v02.api.letsencrypt.org/directory"
    # ... on the core pool, where the autoscaler never needs to reclaim a node
    for pod in cluster.get_json("pods", "-n", "cert-manager")["items"]:
        if pod["status"].get("phase") == "Running":
            assert pod["spec"]["nodeSelector"].get("mybinder.org/node-purpose") == "core", pod["metadata"]["name"]

    # the CRDs are not helm's: applied server-side by our field manager, never by the chart
    for crd in ("clusterissuers", "issuers", "certificates", "certificaterequests", "orders", "challenges"):
        name = f"{crd}.{'acme.' if crd in ('orders', 'challenges') else ''}cert-manager.io"
        obj = json.loads(cluster.kubectl("get", "crd", name, "-o", "json", "--show-managed-fields").stdout)
        assert tl.condition(obj, "Established") == "True"
        assert "meta.helm.sh/release-name" not in (obj["metadata"].get("annotations") or {})
        assert "mybinder-deploy" in [m["manager"] for m in obj["metadata"]["managedFields"]]
    release = tl.helm_releases(cluster)["cert-manager"]
    assert release["namespace"] == "cert-manager" and release["chart"] == "cert-manager-v1.19.4"
    assert release["status"] == "deployed"
    values = tl.helm_values(cluster, "cert-manager", "cert-manager")
    assert values["crds"]["enabled"] is False

    # which issuer the environment uses is configuration: ingress-shim defaults to it
    args = cluster.get_json("deployment", "cert-manager", "-n", "cert-manager")["spec"]["template"]["spec"][
        "containers"
    ][0]["args"]
    assert "--default-issuer-name=letsencrypt-staging" in args
    assert "--default-issuer-kind=ClusterIssuer" in args

    issuers = {i["metadata"]["name"]: i for i in cluster.get_json("clusterissuers")["items"]}
    assert set(issuers) == {"letsencrypt-staging", "letsencrypt-prod"}
    for name, server in (
        ("letsencrypt-staging", "https://acme-staging-v02.api.letsencrypt.org/directory"),
        ("letsencrypt-prod", "https://acme-v02.api.letsencrypt.org/directory"),
    ):
        acme = issuers[name]["spec"]["acme"]
        assert acme["server"] == server
        assert acme["email"] == "ops@mybinder.test"
        assert acme["privateKeySecretRef"]["name"] == f"{name}-account-key"
        assert acme["solvers"] == [{"http01": {"ingress": {"ingressClassName": "nginx"}}}]
    assert real.fact("tls_result")["ingress_annotations"] == {"cert-manager.io/cluster-issuer": "letsencrypt-staging"}

    # check mode and a second run change nothing
    again_check = tl.expect_ok(tl.run_role("tls", variables, check=True))
    assert again_check.changed() == []
    again = tl.expect_ok(tl.run_role("tls", variables))
    assert again.changed() == []

    # a changed setting is a change again (the e-mail reaches both issuers), and check mode says so first
    moved = dict(variables, tls_acme_email="binder-team@mybinder.test")
    predicted = tl.expect_ok(tl.run_role("tls", moved, check=True))
    assert any("ClusterIssuers" in n for n in predicted.changed())
    assert cluster.get_json("clusterissuer", "letsencrypt-prod")["spec"]["acme"]["email"] == "ops@mybinder.test"
    done = tl.expect_ok(tl.run_role("tls", moved))
    assert [n for n in done.changed()] == [n for n in predicted.changed()]
    assert cluster.get_json("clusterissuer", "letsencrypt-prod")["spec"]["acme"]["email"] == "binder-team@mybinder.test"


def test_the_api_server_accepts_cert_manager_objects_and_rejects_broken_ones(cluster, clean, namespace):
    """What cert-manager's real CRDs and its real webhook (failurePolicy Fail) enforce on the real API
    server. Its controller is kept at zero replicas: no ACME server answers here, and it would act on
    the objects below."""
    tl.expect_ok(tl.run_role("tls", tl.controller_off(cluster)))
    ref = {"name": "letsencrypt-staging", "kind": "ClusterIssuer", "group": "cert-manager.io"}
    objs = [
        {
            "apiVersion": "cert-manager.io/v1",
            "kind": "Certificate",
            "metadata": {"name": "binder-tls"},
            "spec": {"secretName": "binder-tls", "dnsNames": ["binder.test"], "issuerRef": ref},
        },
        {
            "apiVersion": "cert-manager.io/v1",
            "kind": "CertificateRequest",
            "metadata": {"name": "binder-tls-manual"},
            "spec": {"request": tl.csr_b64("binder.test"), "issuerRef": ref},
        },
        {
            "apiVersion": "cert-manager.io/v1",
            "kind": "Issuer",
            "metadata": {"name": "selfsigned"},
            "spec": {"selfSigned": {}},
        },
    ]
    for obj in objs:
        cluster.kubectl("apply", "-n", namespace, "-f", "-", input_text=json.dumps(obj))
    listed = cluster.kubectl("get", "cert-manager", "-n", namespace, "-o", "name").stdout  # the category works
    assert "certificate.cert-manager.io/binder-tls" in listed and "issuer.cert-manager.io/selfsigned" in listed
    # shortName and the Ready column
    assert "binder-tls" in cluster.kubectl("get", "cert", "-n", namespace).stdout
    # status is a subresource: cert-manager's writes (and the tests' writes in its place) go there
    cluster.kubectl(
        "patch",
        "certificate",
        "binder-tls",
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": {"conditions": [{"type": "Ready", "status": "True", "reason": "Ready"}]}}),
    )
    assert tl.condition(cluster.get_json("certificate", "binder-tls", "-n", namespace)) == "True"

    broken = [
        # the CRDs' schemas
        (
            {"apiVersion": "cert-manager.io/v1", "kind": "Certificate", "metadata": {"name": "no-secret"},
             "spec": {"issuerRef": ref, "dnsNames": ["x.test"]}},
            "spec.secretName: Required value",
        ),
        (
            {"apiVersion": "cert-manager.io/v1", "kind": "ClusterIssuer", "metadata": {"name": "no-server"},
             "spec": {"acme": {"email": "a@b.c", "privateKeySecretRef": {"name": "k"}}}},
            "spec.acme.server: Required value",
        ),
        # the webhook: rules no schema can say (a certificate for no name at all)
        (
            {"apiVersion": "cert-manager.io/v1", "kind": "Certificate", "metadata": {"name": "no-name"},
             "spec": {"secretName": "no-name", "issuerRef": ref}},
            'admission webhook "webhook.cert-manager.io" denied the request',
        ),
    ]  # fmt: skip
    for obj, error in broken:
        res = cluster.kubectl("apply", "-n", namespace, "-f", "-", input_text=json.dumps(obj), check=False)
        assert res.returncode != 0 and error in res.stderr, res.stderr


def test_crds_written_by_an_older_client_side_apply_are_taken_over(cluster, clean):
    """An upgrade: CRDs another tool applied (client-side, older version label) conflict with nothing."""
    variables = tl.tls_vars(cluster)
    tl.expect_ok(tl.run_role("tls", variables))
    older = cluster.kubectl("get", "crd", "certificates.cert-manager.io", "-o", "json").stdout
    doc = json.loads(older)
    for key in ("resourceVersion", "uid", "creationTimestamp", "generation", "managedFields"):
        doc["metadata"].pop(key, None)
    doc.pop("status", None)
    doc["metadata"]["labels"]["app.kubernetes.io/version"] = "v1.18.0"
    cluster.kubectl("apply", "-f", "-", input_text=json.dumps(doc))  # client-side apply, as kubectl apply does
    run = tl.expect_ok(tl.run_role("tls", variables))
    assert [n for n in run.changed() if "CRDs" in n], run.changed()
    crd = cluster.get_json("crd", "certificates.cert-manager.io")
    assert crd["metadata"]["labels"]["app.kubernetes.io/version"] == "v1.19.4"
    assert tl.expect_ok(tl.run_role("tls", variables)).changed() == []


def test_a_hand_made_cert_manager_object_is_refused_naming_the_role_variable_then_adopted(cluster, clean):
    """cert-manager was installed by hand before (one of its ClusterRoles is left): the release is
    not installed, the error names the object and tls_take_ownership; with it, the release adopts it."""
    tl.uninstall(cluster, "cert-manager", "cert-manager")
    cluster.kubectl("create", "clusterrole", "cert-manager-controller-issuers", "--verb=get", "--resource=pods")
    try:
        refused = tl.run_role("tls", tl.tls_vars(cluster))
        assert not refused.ok
        (name, result), *_ = refused.failed()
        assert name.startswith("Install cert-manager"), name
        assert 'ClusterRole "cert-manager-controller-issuers"' in result["msg"], result["msg"]
        assert result["msg"].endswith("(in this role: tls_take_ownership: true)"), result["msg"]
        assert "cert-manager" not in tl.helm_releases(cluster)

        tl.expect_ok(tl.run_role("tls", tl.tls_vars(cluster, tls_take_ownership=True)))
        notes = cluster.get_json("clusterrole", "cert-manager-controller-issuers")["metadata"]["annotations"]
        assert notes["meta.helm.sh/release-name"] == "cert-manager", notes
    finally:
        tl.uninstall(cluster, "cert-manager", "cert-manager")
        cluster.kubectl("delete", "clusterrole", "cert-manager-controller-issuers", "--ignore-not-found")
