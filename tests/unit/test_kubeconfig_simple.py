"""_kube_client.simple_kubeconfig: which kubeconfig contexts node_drain reads itself (plain server,
CA, client certificate or token) and which it leaves to the kubernetes library (plugins, proxies,
merged files, options given directly). The requests themselves are tested against the real API
server in tests/integration/test_kube_client.py."""

from __future__ import annotations

import base64
import os
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / ".collections"))
from ansible_collections.mybinder.deploy.plugins.module_utils._kube_client import simple_kubeconfig

CERT = b"-----BEGIN CERTIFICATE-----\nnot-a-real-cert\n-----END CERTIFICATE-----\n"
KEY = b"-----BEGIN PRIVATE KEY-----\nnot-a-real-key\n-----END PRIVATE KEY-----\n"


def kubeconfig(tmp_path, user=None, cluster=None, context="c", extra_context=None):
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": context,
        "clusters": [
            {"name": "k", "cluster": cluster or {"server": "https://10.0.0.1:6443", "certificate-authority": "ca.crt"}}
        ],
        "users": [
            {"name": "u", "user": user if user is not None else {"client-certificate": "a.crt", "client-key": "a.key"}}
        ],
        "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u", **(extra_context or {})}}],
    }
    path = tmp_path / "config"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_file_references_resolve_against_the_kubeconfig_directory(tmp_path):
    cfg = simple_kubeconfig({"kubeconfig": str(kubeconfig(tmp_path))})
    assert cfg is not None
    assert cfg.server == "https://10.0.0.1:6443"
    assert (cfg.ca_file, cfg.cert_file, cfg.key_file) == tuple(str(tmp_path / n) for n in ("ca.crt", "a.crt", "a.key"))
    assert cfg.token is None and not cfg.insecure


def test_inline_key_material_lives_in_memory_never_in_a_file(tmp_path, monkeypatch):
    user = {
        "client-certificate-data": base64.b64encode(CERT).decode(),
        "client-key-data": base64.b64encode(KEY).decode(),
    }
    cluster = {"server": "https://10.0.0.1:6443", "certificate-authority-data": base64.b64encode(CERT).decode()}
    path = kubeconfig(tmp_path, user=user, cluster=cluster)
    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))  # where any temporary file would go
    cfg = simple_kubeconfig({"kubeconfig": str(path)})
    assert cfg is not None
    assert cfg.ca_data == CERT
    for fd_path, data in ((cfg.cert_file, CERT), (cfg.key_file, KEY)):
        assert fd_path.startswith("/proc/self/fd/")
        assert os.readlink(fd_path).startswith("/memfd:")
        assert not os.get_inheritable(int(fd_path.rsplit("/", 1)[1]))  # no child process gets the key
        with open(fd_path, "rb") as fh:
            assert fh.read() == data
    assert list(temp.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config", "temp"]


def test_a_static_token_and_the_named_context_and_a_dict_kubeconfig(tmp_path):
    path = kubeconfig(tmp_path, user={"token": "t0ken"}, context="other")
    assert simple_kubeconfig({"kubeconfig": str(path)}) is None  # current-context names no context
    cfg = simple_kubeconfig({"kubeconfig": str(path), "context": "c"})
    assert cfg is not None and cfg.token == "t0ken" and cfg.cert_file is None
    as_dict = yaml.safe_load(path.read_text())
    assert simple_kubeconfig({"kubeconfig": as_dict, "context": "c"}).token == "t0ken"


def test_kubeconfig_comes_from_KUBECONFIG_when_not_given(tmp_path, monkeypatch):
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig(tmp_path)))
    assert simple_kubeconfig({}).server == "https://10.0.0.1:6443"
    monkeypatch.setenv("KUBECONFIG", f"{tmp_path / 'config'}{os.pathsep}{tmp_path / 'second'}")
    assert simple_kubeconfig({}) is None  # merging several files is the library's job


@pytest.mark.parametrize(
    ("user", "cluster", "context", "params"),
    [
        (
            {"exec": {"command": "gke-gcloud-auth-plugin", "apiVersion": "client.authentication.k8s.io/v1beta1"}},
            None,
            None,
            {},
        ),
        ({"auth-provider": {"name": "oidc"}}, None, None, {}),
        ({"username": "admin", "password": "pw"}, None, None, {}),
        ({"token": "t", "as": "someone"}, None, None, {}),
        ({"tokenFile": "/var/run/token"}, None, None, {}),
        (None, {"server": "https://10.0.0.1", "proxy-url": "http://proxy:3128"}, None, {}),
        (None, {"server": "https://10.0.0.1", "tls-server-name": "kubernetes"}, None, {}),
        (None, {"server": "http://10.0.0.1:8080"}, None, {}),
        (None, None, None, {"host": "https://10.0.0.2"}),
        (None, None, None, {"validate_certs": False}),
        (None, None, None, {"api_key": "k"}),
        (None, None, None, {"proxy": "http://proxy:3128"}),
        ({"client-certificate": "a.crt"}, None, None, {}),  # a certificate without its key
        ({"client-key-data": "a2V5"}, None, None, {}),  # a key without its certificate
    ],
)
def test_everything_else_is_left_to_the_kubernetes_library(tmp_path, user, cluster, context, params):
    path = kubeconfig(tmp_path, user=user, cluster=cluster, extra_context=context)
    assert simple_kubeconfig({"kubeconfig": str(path), **params}) is None


def test_a_missing_kubeconfig_is_left_to_the_library_which_names_it(tmp_path):
    assert simple_kubeconfig({"kubeconfig": str(tmp_path / "nope")}) is None
