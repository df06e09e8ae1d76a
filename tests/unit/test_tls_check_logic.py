"""The pure parts of tls_check: name matching, day counting, judging a certificate, reading files."""

from __future__ import annotations

import datetime
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / ".collections"))
import tls_helpers as th
from ansible_collections.mybinder.deploy.plugins.module_utils import _tls

UTC = datetime.UTC


@pytest.mark.parametrize(
    ("pattern", "name", "expected"),
    [
        ("mybinder.org", "mybinder.org", True),
        ("MyBinder.org", "mybinder.ORG.", True),
        ("mybinder.org", "www.mybinder.org", False),
        ("*.mybinder.ovh", "binder.mybinder.ovh", True),
        ("*.mybinder.ovh", "hub.mybinder.ovh", True),
        ("*.mybinder.ovh", "mybinder.ovh", False),  # a wildcard never covers the bare domain
        ("*.mybinder.ovh", "a.b.mybinder.ovh", False),  # ... nor more than one label
        ("*.mybinder.ovh", "ovh.mybinder.org", False),
        ("b*.mybinder.ovh", "binder.mybinder.ovh", False),  # partial-label wildcards are not honoured
        ("binder.*.ovh", "binder.mybinder.ovh", False),  # wildcard only as the left-most label
        ("*.ovh", "mybinder.ovh", False),  # no wildcard directly under a public suffix-like label
        ("", "mybinder.org", False),
    ],
)
def test_dns_name_matching_follows_rfc6125(pattern: str, name: str, expected: bool) -> None:
    assert _tls.dns_name_matches(pattern, name) is expected


def test_ip_names_match_ip_sans_only() -> None:
    assert _tls.name_matches("127.0.0.1", ["127.0.0.1"], ["127.0.0.1"])
    assert not _tls.name_matches("127.0.0.1", ["127.0.0.1"], [])  # a DNS SAN spelled like an IP does not count
    assert _tls.name_matches("::1", [], ["::1"])


@pytest.mark.parametrize(
    ("delta", "expected"),
    [
        (datetime.timedelta(days=30), 30),
        (datetime.timedelta(days=20, hours=23), 20),
        (datetime.timedelta(hours=1), 0),
        (datetime.timedelta(hours=-1), -1),
        (datetime.timedelta(days=-3, hours=2), -3),
    ],
)
def test_days_left_rounds_down(delta: datetime.timedelta, expected: int) -> None:
    now = datetime.datetime(2026, 1, 1, tzinfo=UTC)
    assert _tls.days_left(now + delta, now) == expected


def _info(sans: list[str], days: float, self_signed: bool = False) -> _tls.CertInfo:
    now = datetime.datetime(2026, 1, 1, tzinfo=UTC)
    return _tls.CertInfo(
        subject="CN=x",
        issuer="CN=x" if self_signed else "CN=R11,O=Let's Encrypt,C=US",
        common_name="x",
        sans=sans,
        ip_sans=[],
        not_before=now - datetime.timedelta(days=60),
        not_after=now + datetime.timedelta(days=days),
        serial="1",
        fingerprint_sha256="00",
        self_signed=self_signed,
    )


NOW = datetime.datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("case", "kwargs", "fragments"),
    [
        ("healthy", dict(info=_info(["mybinder.org"], 60)), []),
        ("exactly at threshold", dict(info=_info(["mybinder.org"], 21)), []),
        ("below threshold", dict(info=_info(["mybinder.org"], 20.5)), ["expires in 20 days", "threshold of 21 days"]),
        ("custom threshold", dict(info=_info(["mybinder.org"], 25), min_days=30), ["threshold of 30 days"]),
        ("expired", dict(info=_info(["mybinder.org"], -2)), ["expired on", "2 days ago"]),
        ("wrong name", dict(info=_info(["other.org"], 60)), ["does not cover that name", "other.org"]),
        ("wrong name ignored", dict(info=_info(["other.org"], 60), check_name=False), []),
        (
            "untrusted",
            dict(
                info=_info(["mybinder.org"], 60), trusted=False, verify_error="unable to get local issuer certificate"
            ),
            ["not trusted: unable to get local issuer certificate"],
        ),
        (
            "self-signed",
            dict(info=_info(["mybinder.org"], 60, self_signed=True), trusted=False, verify_error="x"),
            ["not trusted: it is self-signed"],
        ),
        ("untrusted allowed", dict(info=_info(["mybinder.org"], 60), trusted=False, require_trusted=False), []),
    ],
)
def test_evaluate_names_every_problem(case: str, kwargs: dict, fragments: list[str]) -> None:
    info = kwargs.pop("info")
    verdict = _tls.evaluate(info, "mybinder.org", NOW, **kwargs)
    text = " | ".join(verdict.problems)
    if not fragments:
        assert verdict.problems == [], case
    for frag in fragments:
        assert frag in text, (case, text)


def test_evaluate_expired_is_not_also_reported_as_below_threshold() -> None:
    verdict = _tls.evaluate(_info(["mybinder.org"], -1), "mybinder.org", NOW)
    assert verdict.expired and len(verdict.problems) == 1


def test_describe_real_certificates() -> None:
    ca = th.make_ca()
    leaf = th.make_leaf(["binder.mybinder.ovh", "hub.mybinder.ovh", "10.0.0.1"], ca=ca)
    info = _tls.describe(leaf.cert)
    assert info.sans == ["binder.mybinder.ovh", "hub.mybinder.ovh"]
    assert info.ip_sans == ["10.0.0.1"]
    assert info.issuer == "CN=mybinder test root"
    assert info.common_name == "binder.mybinder.ovh"
    assert not info.self_signed
    assert _tls.describe(th.make_leaf(["a.org"]).cert).self_signed
    # a certificate whose issuer name equals its subject but that another key signed is not self-signed
    impostor = th.make_leaf(["mybinder test root"], ca=ca, cn="mybinder test root")
    assert not _tls.describe(impostor.cert).self_signed


def test_pem_file_reading_ignores_keys_and_explains_locked_secrets() -> None:
    leaf = th.make_leaf(["*.mybinder.ovh"])
    info = _tls.parse_pem_file(leaf.key_pem() + leaf.cert_pem(), "ovh-wildcard-tls.crt")
    assert info.sans == ["*.mybinder.ovh"]
    assert "PRIVATE" not in repr(info.as_result())
    with pytest.raises(_tls.TLSCheckError, match="still encrypted by git-crypt"):
        _tls.parse_pem_file(b"\x00GITCRYPT\x00" + b"\x01" * 40, "secret/ovh-wildcard-tls.crt")
    with pytest.raises(_tls.TLSCheckError, match="holds no PEM certificate"):
        _tls.parse_pem_file(b"hello", "x.crt")
