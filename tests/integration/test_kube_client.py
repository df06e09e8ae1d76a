"""_kube_client against the real API server: the direct urllib3 path (plain kubeconfigs, files or
inline data) and the kubernetes-library path answer alike, errors keep the API's status and
message, and a CA that did not sign the server is refused."""

from __future__ import annotations

import base64
import datetime
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / ".collections"))
from ansible_collections.mybinder.deploy.plugins.module_utils._kube_client import KubeApiError, build_client


def node_names(cluster) -> set[str]:
    return {n["metadata"]["name"] for n in cluster.get_json("nodes")["items"]}


def test_the_direct_path_reads_what_kubectl_reads(cluster):
    client = build_client({"kubeconfig": str(cluster.kubeconfig)})
    assert client.direct
    assert client.host == cluster.server
    assert {n["metadata"]["name"] for n in client.list_items("/api/v1/nodes", page_size=1)} == node_names(cluster)


def test_inline_credentials_work_and_the_library_path_agrees(cluster, tmp_path):
    config = yaml.safe_load(cluster.kubeconfig.read_text())
    user = config["users"][0]["user"]
    for key in ("client-certificate", "client-key"):
        user[key + "-data"] = base64.b64encode(Path(user.pop(key)).read_bytes()).decode()
    ca = config["clusters"][0]["cluster"]
    ca["certificate-authority-data"] = base64.b64encode(Path(ca.pop("certificate-authority")).read_bytes()).decode()
    inline = tmp_path / "inline"
    inline.write_text(json.dumps(config))
    direct = build_client({"kubeconfig": str(inline)})
    library = build_client({"kubeconfig": str(cluster.kubeconfig), "validate_certs": True})
    assert direct.direct and not library.direct
    for client in (direct, library):
        assert {n["metadata"]["name"] for n in client.list_items("/api/v1/nodes")} == node_names(cluster)
        with pytest.raises(KubeApiError) as err:
            client.request("GET", "/api/v1/nodes/no-such-node")
        assert err.value.status == 404 and 'nodes "no-such-node" not found' in err.value.message


def test_a_ca_that_did_not_sign_the_server_is_refused(cluster, tmp_path):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "other-ca")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    crt = tmp_path / "other.crt"
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    config = yaml.safe_load(cluster.kubeconfig.read_text())
    config["clusters"][0]["cluster"]["certificate-authority"] = str(crt)
    other = tmp_path / "other"
    other.write_text(json.dumps(config))
    client = build_client({"kubeconfig": str(other)})
    with pytest.raises(KubeApiError) as err:
        client.request("GET", "/version")
    assert "certificate verify failed" in str(err.value) and cluster.server in str(err.value)


def test_the_deploy_modules_client_explains_a_foreign_ca_and_an_unreachable_server(cluster, tmp_path):
    from ansible_collections.mybinder.deploy.plugins.module_utils import _kube_client

    config = yaml.safe_load(cluster.kubeconfig.read_text())
    test_a_ca_that_did_not_sign_the_server_is_refused(cluster, tmp_path)  # writes tmp_path/other.crt
    config["clusters"][0]["cluster"]["certificate-authority"] = str(tmp_path / "other.crt")
    (tmp_path / "foreign").write_text(json.dumps(config))
    with pytest.raises(_kube_client.KubeError) as err:
        _kube_client.connect(str(tmp_path / "foreign"), None).get("/version")
    assert f"TLS with the Kubernetes API at {cluster.server}" in str(err.value)
    assert "wrong certificate-authority in the kubeconfig" in str(err.value)

    config["clusters"][0]["cluster"]["server"] = "https://127.0.0.1:1"
    (tmp_path / "closed").write_text(json.dumps(config))
    with pytest.raises(_kube_client.KubeError) as err:
        _kube_client.connect(str(tmp_path / "closed"), None).get("/version")
    assert "cannot reach the Kubernetes API at https://127.0.0.1:1" in str(err.value)
    assert "connection refused" in str(err.value)


def test_plain_kubeconfigs_never_import_the_kubernetes_package(cluster):
    """What makes the direct path worth having: the library's import is skipped entirely."""
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "from ansible_collections.mybinder.deploy.plugins.module_utils import _kube_client;"
        "v = _kube_client.connect(sys.argv[2], None).get('/version');"
        "n = list(_kube_client.build_client({'kubeconfig': sys.argv[2]}).list_items('/api/v1/nodes'));"
        "print(v['gitVersion'], len(n), 'kubernetes' in sys.modules)"
    )
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-c", code, str(root / ".collections"), str(cluster.kubeconfig)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert out[0].startswith("v1.") and int(out[1]) >= 1
    assert out[2] == "False"
