"""deploy.yml refuses what cannot work, with a message naming the problem, before it touches a
cluster (issue 4, item 9): still-encrypted secrets, a missing config file, an unknown environment;
and it names an unreachable API server and an expired client certificate."""

from __future__ import annotations

import base64
import datetime
import json
import os

import pytest
from deploy_testlib import deploy, helm, history, overrides, small_chart

from conftest import ROOT

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

TOUCHED_CLUSTER = "TASK [mybinder.deploy.cluster_access"


def deploy_with_secret_file(cluster, tmp_path, content: bytes):
    """A deploy whose secret values file holds ``content``: the refusal's output, after checking
    that nothing reached the cluster (no release, no namespace)."""
    ns = f"never-{os.getpid()}"
    secret = tmp_path / "secret" / "config" / "local.yaml"
    secret.parent.mkdir(parents=True)
    secret.write_bytes(content)
    extra = overrides(
        tmp_path,
        ns,
        small_chart(tmp_path / "chart"),
        mybinder_secret_values_file=str(secret),
        secrets_required_files=[str(secret)],
    )
    res = deploy(tmp_path, extra)
    assert res.rc != 0
    assert TOUCHED_CLUSTER not in res.output
    assert history(cluster, ns, ns) == []
    assert cluster.kubectl("get", "namespace", ns, check=False).returncode != 0
    return res.output, secret


def test_still_encrypted_secrets_are_refused_before_touching_the_cluster(cluster, tmp_path):
    # what git-crypt leaves in a locked checkout
    output, secret = deploy_with_secret_file(cluster, tmp_path, b"\x00GITCRYPT\x00" + os.urandom(64))
    assert str(secret) in output and "encrypted" in output


def test_an_empty_secret_values_file_is_refused_before_touching_the_cluster(cluster, tmp_path):
    """An emptied secret file would deploy the release without its secrets (the GitHub token, the
    hub's keys): refused, naming the file and how to restore it."""
    output, secret = deploy_with_secret_file(cluster, tmp_path, b"# nothing left\n")
    assert f"secret values file {secret} is empty" in output and "git checkout --" in output


@pytest.mark.parametrize("timeout", [-5, 0, "abc"])
def test_a_rollout_timeout_that_cannot_wait_is_refused_before_anything_is_deployed(cluster, tmp_path, timeout):
    """A non-positive wait deployed a good change and rolled it back at once ("did not finish
    within -5 s"): refused with the other inventory problems, before any stage runs."""
    ns = f"never-{os.getpid()}"
    extra = overrides(tmp_path, ns, small_chart(tmp_path / "chart"), mybinder_rollout_timeout=timeout)
    res = deploy(tmp_path, extra)
    assert res.rc != 0
    assert "rollout timeouts must be whole numbers of seconds above 0" in res.output
    assert f"mybinder_rollout_timeout={json.dumps(str(timeout))}" in res.output, res.output[-3000:]
    assert TOUCHED_CLUSTER not in res.output
    assert history(cluster, ns, ns) == []


def test_missing_config_file_is_refused_naming_it(cluster, tmp_path):
    ns = f"never-{os.getpid()}"
    missing = tmp_path / "config" / "gone.yaml"
    extra = overrides(tmp_path, ns, small_chart(tmp_path / "chart"))
    extra["mybinder_config_values_file"] = str(missing)
    res = deploy(tmp_path, extra)
    assert res.rc != 0
    assert f"values file {missing} does not exist" in res.output
    assert TOUCHED_CLUSTER not in res.output
    assert history(cluster, ns, ns) == []


def test_an_environment_name_that_is_no_string_is_refused_naming_it(cluster, tmp_path):
    res = deploy(tmp_path, {"mybinder_env": 5})
    assert res.rc != 0
    out = " ".join(res.output.split())
    assert 'unknown environment "5"' in out and "must be DNS labels" in out, out[-3000:]
    assert "has no len()" not in out and TOUCHED_CLUSTER not in res.output


def test_unknown_environment_is_refused(cluster, tmp_path):
    res = deploy(tmp_path, {"mybinder_env": "atlantis"})
    assert res.rc != 0
    assert 'unknown environment "atlantis"' in res.output
    assert "config/atlantis.yaml" in res.output
    assert "Known environments: local, ovh, prod, staging" in res.output
    assert TOUCHED_CLUSTER not in res.output


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        (
            {"preflight_helm_binary": "/nonexistent/helm"},
            "helm (/nonexistent/helm) cannot be run: /bin/sh: 1: /nonexistent/helm: not found. Install Helm 3",
        ),
        ({"preflight_helm_min_version": "9.0.0"}, "is not supported: this collection needs helm >= 9.0.0 and < 4.0.0"),
    ],
)
def test_missing_or_unsupported_helm_is_refused_before_anything_else(cluster, tmp_path, settings, expected):
    res = deploy(tmp_path, settings)
    assert res.rc != 0
    assert expected in " ".join(res.output.split())
    assert " rc=" not in res.output  # the exit status the lookup appends is not part of the message
    assert "TASK [mybinder.deploy.secrets" not in res.output and TOUCHED_CLUSTER not in res.output


def kubeconfig_copy(cluster, path, **changes) -> str:
    """The local cluster's kubeconfig with the cluster server and/or user replaced."""
    cfg = json.loads(cluster.kubeconfig.read_text())
    if "server" in changes:
        cfg["clusters"][0]["cluster"]["server"] = changes["server"]
    if "user" in changes:
        cfg["users"][0]["user"] = changes["user"]
    path.write_text(json.dumps(cfg))
    path.chmod(0o600)
    return str(path)


def test_unreachable_api_server_is_named(cluster, tmp_path):
    kc = kubeconfig_copy(cluster, tmp_path / "kubeconfig", server="https://127.0.0.1:1")
    res = deploy(tmp_path, {"cluster_access_kubeconfig": kc}, "--tags", "cluster_access")
    assert res.rc != 0
    assert "cannot reach the Kubernetes API at https://127.0.0.1:1" in res.output
    assert "connection refused" in res.output
    assert "Is the cluster running" in res.output


def test_a_kubeconfig_path_naming_another_file_leaves_that_file_alone(cluster, tmp_path):
    """The kubeconfig path is a link to a file that is no kubeconfig (a mistyped path): refused by
    the cluster check, and that file keeps its mode (it used to be chmod'ed to 0600 first)."""
    notes = tmp_path / "notes.txt"
    notes.write_text("not a kubeconfig\n")
    notes.chmod(0o644)
    link = tmp_path / "kubeconfig"
    link.symlink_to(notes)
    res = deploy(tmp_path, {"cluster_access_kubeconfig": str(link)}, "--tags", "cluster_access")
    assert res.rc != 0
    assert str(link) in res.output, res.output[-3000:]
    assert notes.stat().st_mode & 0o777 == 0o644


def test_a_world_readable_kubeconfig_is_made_private_once_read(cluster, tmp_path):
    kc = kubeconfig_copy(cluster, tmp_path / "kubeconfig")
    os.chmod(kc, 0o644)
    res = deploy(tmp_path, {"cluster_access_kubeconfig": kc}, "--tags", "cluster_access")
    assert res.rc == 0, res.output[-3000:]
    assert os.stat(kc).st_mode & 0o777 == 0o600


def test_expired_client_certificate_is_named(cluster, tmp_path):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    pki = cluster.kubeconfig.parent / "pki"
    ca_key = serialization.load_pem_private_key((pki / "ca.key").read_bytes(), None)
    ca_cert = x509.load_pem_x509_certificate((pki / "ca.crt").read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.COMMON_NAME, "old-deployer"),
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:masters"),
                ]
            )
        )
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=400))
        .not_valid_after(now - datetime.timedelta(days=2))
        .sign(ca_key, hashes.SHA256())
    )
    user = {
        "client-certificate-data": base64.b64encode(cert.public_bytes(serialization.Encoding.PEM)).decode(),
        "client-key-data": base64.b64encode(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        ).decode(),
    }
    kc = kubeconfig_copy(cluster, tmp_path / "kubeconfig", user=user)
    res = deploy(tmp_path, {"cluster_access_kubeconfig": kc}, "--tags", "cluster_access")
    assert res.rc != 0
    assert "client certificate of user admin" in res.output
    assert f"expired on {cert.not_valid_after_utc.isoformat()}" in res.output
    assert "Get a new kubeconfig" in res.output
    # the embedded key was written (by the kubernetes client) only next to the kubeconfig, and removed
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("tmp")) == []


def test_chart_mirror_that_does_not_answer_is_named_with_the_command_to_start_it(cluster, tmp_path):
    ns = f"never-{os.getpid()}"
    extra = overrides(tmp_path, ns, ROOT / "mybinder", mybinder_chart_mirror="http://127.0.0.1:1")
    res = deploy(tmp_path, extra, "--tags", "mybinder")
    assert res.rc != 0
    assert "the chart mirror http://127.0.0.1:1 does not answer" in res.output
    assert "tools/chart-mirror.py start" in res.output
    assert history(cluster, ns, ns) == []


def test_values_that_break_the_real_charts_schemas_are_named_by_key_path_before_anything_changes(cluster, tmp_path):
    """binderhub and jupyterhub ship a values.schema.json: a misspelt key is refused by the values
    check before any stage touches the cluster, and a wrong type by the render, each named by its
    path in the operator's values, on a first install (nothing made) and on an upgrade (the serving
    revision untouched)."""
    ns = f"schema-{os.getpid()}"
    for step in ("1", "2", "3"):
        (tmp_path / step).mkdir()
    # the local environment's registry (its secret file has the credentials for it)
    prefix = {"image_prefix": "registry.local.mybinder.test/r2d-"}
    registry = {"url": "https://registry.local.mybinder.test", "username": "mybinder-local"}
    misspelt = {
        "binderhub": {
            "registry": registry,
            "config": {"BinderHub": prefix},
            "jupyterhub": {"hub": {"nodeSelectr": {"a": "b"}}},
        }
    }
    first = deploy(tmp_path / "1", overrides(tmp_path / "1", ns, ROOT / "mybinder", misspelt))
    assert first.rc != 0
    assert "binderhub.jupyterhub.hub.nodeSelectr (in " in first.output
    assert "the jupyterhub chart's schema allows no such key; did you mean nodeSelector?" in first.output
    assert TOUCHED_CLUSTER not in first.output
    assert history(cluster, ns, ns) == []
    assert cluster.kubectl("get", "namespace", ns, check=False).returncode != 0  # nothing made
    try:
        good = {"binderhub": {"registry": registry, "config": {"BinderHub": prefix}}}
        ok = deploy(tmp_path / "2", overrides(tmp_path / "2", ns, ROOT / "mybinder", good), "--tags", "mybinder")
        assert ok.rc == 0, ok.output[-3000:]
        wrong_type = {
            "binderhub": {
                "registry": registry,
                "config": {"BinderHub": prefix},
                "replicas": "two",
                "jupyterhub": {"cull": {"maxAge": "6h"}},
            }
        }
        refused = deploy(
            tmp_path / "3", overrides(tmp_path / "3", ns, ROOT / "mybinder", wrong_type), "--tags", "mybinder"
        )
        assert refused.rc != 0
        assert "binderhub.replicas: got string, want integer" in refused.output
        assert "binderhub.jupyterhub.cull.maxAge: got string, want null or integer" in refused.output
        assert "Nothing was changed: revision 1 still serves." in refused.output
        assert [(h["revision"], h["status"]) for h in history(cluster, ns, ns)] == [(1, "deployed")]
    finally:
        cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)
        helm(cluster, "uninstall", ns, "-n", ns, check=False)


def test_unknown_values_keys_are_refused_before_anything_is_installed_unless_allowed(cluster, tmp_path):
    """prometheus and grafana ship no schema that closes their values, so helm would drop a misspelt
    key without a word: the values check names each one (path, file, the key it may mean) before
    any stage touches the cluster; allowed by the operator, it passes."""
    ns = f"never-{os.getpid()}"
    for step in ("1", "2"):
        (tmp_path / step).mkdir()
    misspelt = {
        "prometheus": {"server": {"nodeSelectr": {"pool": "value-never-shown"}}},
        "grafana": {"ingres": {"enabled": True}},
    }
    res = deploy(tmp_path / "1", overrides(tmp_path / "1", ns, ROOT / "mybinder", misspelt))
    assert res.rc != 0
    config = tmp_path / "1" / "config.yaml"
    assert f"prometheus.server.nodeSelectr (in {config}); did you mean nodeSelector?" in res.output
    assert f"grafana.ingres (in {config}); did you mean ingress?" in res.output
    assert "add its path to mybinder_values_unknown_allowed" in res.output
    assert "value-never-shown" not in res.output
    assert TOUCHED_CLUSTER not in res.output
    assert history(cluster, ns, ns) == []
    assert cluster.kubectl("get", "namespace", ns, check=False).returncode != 0  # nothing made
    allowed = overrides(
        tmp_path / "2",
        ns,
        ROOT / "mybinder",
        misspelt,
        mybinder_values_unknown_allowed=["prometheus.server.nodeSelectr", "grafana.ingres"],
    )
    ok = deploy(tmp_path / "2", allowed, "--tags", "preflight")
    assert ok.rc == 0, ok.output[-3000:]
    assert history(cluster, ns, ns) == []
