"""The tls role's other entry points: `check` (playbooks/check-certs.yml, the verify stage) against
TLS servers on loopback, and `debug` (playbooks/debug-tls.yml) against the local cluster."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
import tls_helpers as th
import tls_testlib as tl

ROOT = Path(__file__).resolve().parents[2]


def test_check_entry_reports_every_host_and_fails_once_naming_the_problems(tmp_path):
    ca = th.make_ca()
    roots = tmp_path / "roots.pem"
    roots.write_bytes(ca.cert_pem())
    leaf = th.make_leaf(["binder.check.test", "hub.check.test"], ca=ca, not_after=th.NOW + 60 * th.DAY)
    with th.tls_server(leaf, tmp_path) as srv:
        common = {"tls_check_connect_address": "127.0.0.1", "tls_check_port": srv.port, "tls_check_ca_path": str(roots)}
        ok = tl.expect_ok(
            tl.run_role("tls", {**common, "tls_check_hosts": ["binder.check.test", "hub.check.test"]}, entry="check")
        )
        rows = ok.fact("tls_check_results")
        assert [r["host"] for r in rows] == ["binder.check.test", "hub.check.test"]
        assert all(r["ok"] and r["days_left"] in (58, 59) for r in rows)
        assert "binder.check.test: ok, 5" in ok.messages()

        bad = tl.run_role(
            "tls",
            {**common, "tls_check_hosts": ["binder.check.test", "ovh.check.test"], "tls_check_min_days": 90},
            entry="check",
        )
    assert not bad.ok
    failure = bad.failed()[0][1]["msg"]
    assert failure.startswith("2 of 2 hosts need attention")
    assert "binder.check.test: the certificate for binder.check.test expires in 5" in failure
    assert "threshold of 90 days" in failure
    assert "ovh.check.test: the certificate for ovh.check.test expires" in failure
    assert "the certificate served for ovh.check.test does not cover that name" in failure
    assert bad.changed() == []

    # hosts that cannot be reached are reported, not failed, when the caller says so (verify stage)
    closed = th.closed_port()
    skipped = tl.expect_ok(
        tl.run_role(
            "tls",
            {
                "tls_check_hosts": ["binder.check.test"],
                "tls_check_port": closed,
                "tls_check_connect_address": "127.0.0.1",
                "tls_check_skip_unreachable": True,
            },
            entry="check",
        )
    )
    assert skipped.fact("tls_check_results")[0]["reachable"] is False
    assert "binder.check.test: not reachable, not checked" in skipped.messages()
    strict = tl.run_role(
        "tls",
        {"tls_check_hosts": ["binder.check.test"], "tls_check_port": closed, "tls_check_connect_address": "127.0.0.1"},
        entry="check",
    )
    assert not strict.ok and f"cannot connect to 127.0.0.1:{closed}" in strict.failed()[0][1]["msg"]


def test_check_certs_playbook_checks_every_host_of_the_environment():
    """inventories/ovh: the hosts of mybinder_hosts plus the chart's extra ingress (ovh.mybinder.org),
    here all sent to a closed loopback port and reported as unreachable."""
    closed = th.closed_port()
    variables = {"tls_check_connect_address": "127.0.0.1", "tls_check_port": closed, "tls_check_skip_unreachable": True}
    run = tl.expect_ok(tl.run_playbook(ROOT / "playbooks" / "check-certs.yml", variables, ROOT / "inventories" / "ovh"))
    rows = run.fact("tls_check_results")
    assert [r["host"] for r in rows] == [
        "binder.mybinder.ovh",
        "hub-binder.mybinder.ovh",
        "grafana-mybinder.mybinder.ovh",
        "prometheus-mybinder.mybinder.ovh",
        "ovh.mybinder.org",
    ]
    assert all(r["reachable"] is False for r in rows)
    strict = tl.run_playbook(
        ROOT / "playbooks" / "check-certs.yml",
        {**variables, "tls_check_skip_unreachable": False},
        ROOT / "inventories" / "ovh",
    )
    assert not strict.ok and strict.failed()[0][1]["msg"].startswith("5 of 5 hosts need attention")


@pytest.fixture(scope="module")
def cert_manager(cluster):
    tl.reset_tls(cluster)
    # the controller at zero replicas: the test writes the objects and states it would (no ACME server here)
    tl.expect_ok(tl.run_role("tls", tl.controller_off(cluster)))
    yield
    tl.reset_tls(cluster)


@pytest.mark.cluster
def test_debug_report_shows_why_a_certificate_is_not_issued(cluster, cert_manager, namespace, tmp_path):
    ref = {"name": "letsencrypt-staging", "kind": "ClusterIssuer", "group": "cert-manager.io"}
    host = "binder.debug.mybinder.test"
    objs = [
        (
            "Certificate",
            "binder-tls",
            {"secretName": "binder-tls", "dnsNames": [host], "issuerRef": ref},
            {
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "False",
                        "reason": "DoesNotExist",
                        "message": "Issuing certificate as Secret does not exist",
                    }
                ]
            },
        ),
        (
            "CertificateRequest",
            "binder-tls-1",
            {"request": tl.csr_b64(host), "issuerRef": ref},
            {
                "conditions": [
                    {"type": "Approved", "status": "True", "reason": "cert-manager.io"},
                    {
                        "type": "Ready",
                        "status": "False",
                        "reason": "Pending",
                        "message": "Waiting on certificate issuance from order binder-tls-1-42",
                    },
                ]
            },
        ),
        (
            "Order",
            "binder-tls-1-42",
            {"request": tl.csr_b64(host), "issuerRef": ref, "dnsNames": [host]},
            {"state": "pending"},
        ),
        (
            "Challenge",
            "binder-tls-1-42-7",
            {
                "authorizationURL": "https://acme.test/a",
                "dnsName": host,
                "issuerRef": ref,
                "key": "k",
                "token": "t",
                "type": "HTTP-01",
                "url": "https://acme.test/c",
                "solver": {"http01": {"ingress": {"ingressClassName": "nginx"}}},
            },
            {
                "state": "pending",
                "presented": True,
                "reason": "Waiting for HTTP-01 challenge propagation: wrong status code '404', expected '200'",
            },
        ),
    ]
    for kind, name, spec, status in objs:
        group = "acme.cert-manager.io/v1" if kind in ("Order", "Challenge") else "cert-manager.io/v1"
        doc = {"apiVersion": group, "kind": kind, "metadata": {"name": name, "namespace": namespace}, "spec": spec}
        cluster.kubectl("apply", "-f", "-", input_text=json.dumps(doc))
        cluster.kubectl(
            "patch",
            kind.lower(),
            name,
            "-n",
            namespace,
            "--subresource=status",
            "--type=merge",
            "-p",
            json.dumps({"status": status}),
        )
    sentinel = th.make_leaf(["x.debug.mybinder.test"])
    tl.tls_secret(cluster, namespace, "other-tls", sentinel.cert_pem(), sentinel.key_pem())
    ingress = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {
            "name": "binder",
            "namespace": namespace,
            "annotations": {"cert-manager.io/cluster-issuer": "letsencrypt-staging"},
        },
        "spec": {
            "ingressClassName": "nginx",
            "tls": [{"hosts": [host], "secretName": "binder-tls"}],
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
        },
    }
    cluster.kubectl("apply", "-f", "-", input_text=json.dumps(ingress))

    report = tmp_path / "debug-tls.md"
    run = tl.expect_ok(
        tl.run_role(
            "tls",
            {
                "tls_kubeconfig": str(cluster.kubeconfig),
                "tls_debug_report": str(report),
                "tls_debug_namespaces": [namespace],
                "tls_debug_log_lines": 20,
            },
            entry="debug",
        )
    )
    text = report.read_text()
    assert run.changed() == []
    for heading in (
        "## Controller pods",
        "## ClusterIssuers and Issuers",
        "## Certificates",
        "## CertificateRequests",
        "## Orders",
        "## Challenges",
        "## Ingresses and their TLS secrets",
        "## Controller logs",
    ):
        assert heading in text, heading
    assert f"| {namespace}/binder-tls | False (DoesNotExist) | binder-tls | ClusterIssuer letsencrypt-staging" in text
    assert "Waiting on certificate issuance from order binder-tls-1-42" in text
    assert f"| {namespace}/binder-tls-1-42 | pending | {host} |" in text
    assert "wrong status code '404', expected '200'" in text
    assert (
        "| ClusterIssuer letsencrypt-prod | - | https://acme-v02.api.letsencrypt.org/directory | ops@mybinder.test"
        in text
    )
    assert f"| {namespace}/binder | nginx | cert-manager: letsencrypt-staging | {host} | binder-tls | NO |" in text
    for pod in cluster.get_json("pods", "-n", "cert-manager")["items"]:
        assert pod["metadata"]["name"] in text  # every controller pod, with its logs or why they could not be read
    assert "### " in text
    # secret data never reaches the report or the output
    key_b64 = __import__("base64").b64encode(sentinel.key_pem()).decode()
    for blob in (text, run.stdout, run.stderr):
        at = blob.find("PRIVATE KEY")
        assert at < 0, blob[max(0, at - 1500) : at + 100]
        assert key_b64[:40] not in blob
    assert "## Controller pods" in run.stdout  # printed as well
