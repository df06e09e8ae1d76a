"""tls_check against real TLS servers on 127.0.0.1 with certificates made in the test:
valid, expiring soon, expired, wrong name, self-signed, plus unreachable hosts and files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / ".collections"))
import tls_helpers as th
from ansible.module_utils.testing import patch_module_args
from ansible_collections.mybinder.deploy.plugins.modules import tls_check

HOST = "binder.mybinder.test"


@pytest.fixture(scope="module")
def ca() -> th.Pair:
    return th.make_ca()


@pytest.fixture
def ca_file(ca: th.Pair, tmp_path: Path) -> str:
    path = tmp_path / "roots.pem"
    path.write_bytes(ca.cert_pem())
    return str(path)


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]):
    """Run the module's main() with these args; returns (failed, result)."""

    def _run(**args) -> tuple[bool, dict]:
        with patch_module_args(args), pytest.raises(SystemExit) as exited:
            tls_check.main()
        result = json.loads(capsys.readouterr().out)
        assert (exited.value.code != 0) == bool(result.get("failed")), result
        return bool(result.get("failed")), result

    return _run


def test_valid_certificate_passes_and_is_described(run, ca, ca_file, tmp_path) -> None:
    leaf = th.make_leaf([HOST, "hub.mybinder.test"], ca=ca)
    with th.tls_server(leaf, tmp_path) as srv:
        failed, res = run(host=HOST, connect_address="127.0.0.1", port=srv.port, ca_path=ca_file)
    assert not failed, res
    assert res["changed"] is False
    assert res["trusted"] is True and res["verify_error"] is None
    assert res["name_matches"] is True and res["expired"] is False
    assert res["issuer"] == "CN=mybinder test root"
    assert res["subject"] == f"CN={HOST}"
    assert res["sans"] == [HOST, "hub.mybinder.test"]
    assert res["days_left"] in (88, 89)
    assert res["problems"] == []
    assert res["peer"] == f"127.0.0.1:{srv.port}"
    assert res["tls_version"].startswith("TLSv1.")
    assert srv.sni and set(srv.sni) == {HOST}  # SNI is the host name, not the address connected to


def test_expiring_soon_fails_below_threshold_only(run, ca, ca_file, tmp_path) -> None:
    leaf = th.make_leaf([HOST], ca=ca, not_after=th.NOW + th.DAY * 10.5)
    with th.tls_server(leaf, tmp_path) as srv:
        failed, res = run(host=HOST, connect_address="127.0.0.1", port=srv.port, ca_path=ca_file)
        assert failed
        assert res["days_left"] == 10
        assert "expires in 10 days" in res["msg"] and "threshold of 21 days" in res["msg"]
        # the same certificate passes a lower threshold
        failed, res = run(host=HOST, connect_address="127.0.0.1", port=srv.port, ca_path=ca_file, min_days=7)
        assert not failed, res


def test_expired_certificate_fails(run, ca, ca_file, tmp_path) -> None:
    leaf = th.make_leaf([HOST], ca=ca, not_before=th.NOW - 100 * th.DAY, not_after=th.NOW - 3 * th.DAY)
    with th.tls_server(leaf, tmp_path) as srv:
        failed, res = run(host=HOST, connect_address="127.0.0.1", port=srv.port, ca_path=ca_file)
    assert failed
    assert res["expired"] is True and res["days_left"] <= -3
    assert "expired on" in res["msg"]
    assert res["trusted"] is False and "expired" in res["verify_error"]


def test_wrong_name_fails_and_lists_the_names_served(run, ca, ca_file, tmp_path) -> None:
    leaf = th.make_leaf(["*.mybinder.ovh"], ca=ca)
    with th.tls_server(leaf, tmp_path) as srv:
        failed, res = run(host="ovh.mybinder.org", connect_address="127.0.0.1", port=srv.port, ca_path=ca_file)
        assert failed
        assert res["name_matches"] is False
        assert "does not cover that name (its names: *.mybinder.ovh)" in res["msg"]
        # the wildcard is fine for a host it covers
        failed, res = run(host="binder.mybinder.ovh", connect_address="127.0.0.1", port=srv.port, ca_path=ca_file)
        assert not failed, res
        assert res["name_matches"] is True


def test_self_signed_is_described_then_rejected(run, tmp_path) -> None:
    leaf = th.make_leaf([HOST])
    with th.tls_server(leaf, tmp_path) as srv:
        failed, res = run(host=HOST, connect_address="127.0.0.1", port=srv.port)
        assert failed
        assert res["self_signed"] is True and res["trusted"] is False
        assert "not trusted: it is self-signed" in res["msg"]
        assert res["sans"] == [HOST]  # still described
        failed, res = run(host=HOST, connect_address="127.0.0.1", port=srv.port, require_trusted=False)
        assert not failed, res


def test_system_trust_store_does_not_trust_a_private_ca(run, ca, tmp_path) -> None:
    leaf = th.make_leaf([HOST], ca=ca)
    with th.tls_server(leaf, tmp_path) as srv:
        failed, res = run(host=HOST, connect_address="127.0.0.1", port=srv.port)
    assert failed and res["trusted"] is False and res["self_signed"] is False
    assert "unable to get local issuer certificate" in res["msg"]


def test_several_problems_are_reported_together(run, tmp_path) -> None:
    leaf = th.make_leaf(["other.test"], not_after=th.NOW + 2 * th.DAY)
    with th.tls_server(leaf, tmp_path) as srv:
        failed, res = run(host=HOST, connect_address="127.0.0.1", port=srv.port)
    assert failed and len(res["problems"]) == 3
    assert "expires in 1 days" in res["msg"] or "expires in 2 days" in res["msg"]


def test_unreachable_host_fails_or_is_reported(run) -> None:
    port = th.closed_port()
    failed, res = run(host=HOST, connect_address="127.0.0.1", port=port, timeout=2)
    assert failed and res["reachable"] is False
    assert f"cannot connect to 127.0.0.1:{port}" in res["msg"]
    failed, res = run(host=HOST, connect_address="127.0.0.1", port=port, timeout=2, fail_on_unreachable=False)
    assert not failed and res["reachable"] is False
    assert "not checked" in res["msg"] and res["problems"] == []


def test_non_tls_server_is_a_handshake_failure_even_when_unreachable_is_allowed(run, tmp_path) -> None:
    import socket
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)

    def answer() -> None:
        conn, _ = listener.accept()
        conn.recv(1024)
        conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        conn.close()

    threading.Thread(target=answer, daemon=True).start()
    try:
        failed, res = run(
            host=HOST, connect_address="127.0.0.1", port=listener.getsockname()[1], fail_on_unreachable=False
        )
    finally:
        listener.close()
    assert failed and "TLS handshake with" in res["msg"]


def test_certificate_file_mode(run, ca, tmp_path) -> None:
    crt, _key = th.make_leaf(["*.mybinder.ovh"], ca=ca).write(tmp_path, "wildcard")
    failed, res = run(host="binder.mybinder.ovh", certificate_path=str(crt))
    assert not failed, res
    assert res["source"] == "file" and res["trusted"] is None
    failed, res = run(host="ovh.mybinder.org", certificate_path=str(crt))
    assert failed and "does not cover" in res["msg"]
    locked = tmp_path / "locked.crt"
    locked.write_bytes(b"\x00GITCRYPT\x00" + os.urandom(64))
    failed, res = run(host="binder.mybinder.ovh", certificate_path=str(locked))
    assert failed and "still encrypted by git-crypt" in res["msg"]


def test_certificate_path_and_connect_address_are_exclusive(run, tmp_path) -> None:
    failed, res = run(host=HOST, certificate_path=str(tmp_path / "x.crt"), connect_address="127.0.0.1")
    assert failed and "mutually exclusive" in res["msg"]


def test_module_runs_through_ansible_by_fqcn(ca, ca_file, tmp_path) -> None:
    """The collection wiring: ansible resolves mybinder.deploy.tls_check from the checkout."""
    root = Path(__file__).resolve().parents[2]
    leaf = th.make_leaf([HOST], ca=ca, not_after=th.NOW + 5 * th.DAY)
    env = dict(
        os.environ,
        ANSIBLE_CONFIG=str(root / "ansible.cfg"),
        ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
        ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
    )
    with th.tls_server(leaf, tmp_path) as srv:
        proc = subprocess.run(
            [
                str(root / ".venv" / "bin" / "ansible"),
                "localhost",
                "-c",
                "local",
                "-m",
                "mybinder.deploy.tls_check",
                "-a",
                f"host={HOST} connect_address=127.0.0.1 port={srv.port} ca_path={ca_file}",
            ],
            capture_output=True,
            text=True,
            cwd=root,
            env=env,
            timeout=120,
        )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    # profile_tasks (ansible.cfg) prints timing lines around the JSON document
    out, _ = json.JSONDecoder().raw_decode(proc.stdout[proc.stdout.index("{") :])
    res = out["plays"][0]["tasks"][0]["hosts"]["localhost"]
    assert res["failed"] and res["days_left"] == 4
    assert "expires in 4 days" in res["msg"]


def test_private_key_pairing_is_checked_without_returning_the_key(run, ca, tmp_path) -> None:
    pair = th.make_leaf(["*.mybinder.ovh"], ca=ca)
    crt, key = pair.write(tmp_path, "wildcard")
    failed, res = run(host="hub.mybinder.ovh", certificate_path=str(crt), private_key_path=str(key))
    assert not failed and res["key_matches"] is True
    assert "PRIVATE KEY" not in json.dumps(res)
    _other_crt, other_key = th.make_leaf(["*.mybinder.ovh"], ca=ca).write(tmp_path, "other")
    failed, res = run(host="hub.mybinder.ovh", certificate_path=str(crt), private_key_path=str(other_key))
    assert failed and res["key_matches"] is False
    assert "does not belong to the certificate" in res["msg"]
    assert "PRIVATE KEY" not in json.dumps(res)
    locked = tmp_path / "locked.key"
    locked.write_bytes(b"\x00GITCRYPT\x00" + os.urandom(64))
    failed, res = run(host="hub.mybinder.ovh", certificate_path=str(crt), private_key_path=str(locked))
    assert failed and "still encrypted by git-crypt" in res["msg"]
    failed, res = run(host="hub.mybinder.ovh", private_key_path=str(key))
    assert failed and "certificate_path" in res["msg"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"port": 70000}, "port=70000 is not a TCP port (1-65535)"),
        ({"port": 0}, "port=0 is not a TCP port (1-65535)"),
        ({"timeout": -1}, "timeout=-1.0 must be a number of seconds above 0"),
        ({"timeout": 0}, "timeout=0.0 must be a number of seconds above 0"),
    ],
)
def test_a_port_or_timeout_out_of_range_is_refused_before_connecting(run, args, message) -> None:
    failed, result = run(host="example.invalid", **args)
    assert failed and result["msg"] == message, result
