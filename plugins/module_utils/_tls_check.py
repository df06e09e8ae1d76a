# Copyright (c) mybinder.deploy developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The tls_check runner (collection-private): the certificate a host serves, or a certificate
file (and its key), described and checked (_tls.py): expiry, name, trust, key match.

The module (plugins/modules/tls_check.py) only documents, declares its options and calls ``check``.
"""

from __future__ import annotations

from typing import Any

from ansible_collections.mybinder.deploy.plugins.module_utils import _tls
from ansible_collections.mybinder.deploy.plugins.module_utils._errors import ModuleError


def run(p: dict[str, Any]) -> dict:
    """The certificate described, with the problems found (none when healthy)."""
    if not p["certificate_path"]:
        if not 1 <= p["port"] <= 65535:
            raise ModuleError(f"port={p['port']} is not a TCP port (1-65535)")
        if not p["timeout"] > 0:
            raise ModuleError(f"timeout={p['timeout']} must be a number of seconds above 0")
    result: dict = {"changed": False, "host": p["host"], "min_days": p["min_days"], "problems": []}
    trusted = None
    verify_error = None
    key_problem = None
    if p["certificate_path"]:
        result.update(source="file", reachable=True)
        cert = _tls.load_pem_leaf(read_file(p["certificate_path"]), p["certificate_path"])
        info = _tls.describe(cert)
        if p["private_key_path"]:
            result["key_matches"] = _tls.key_matches(cert, read_file(p["private_key_path"]), p["private_key_path"])
            if not result["key_matches"]:
                key_problem = (
                    f"the private key in {p['private_key_path']} does not belong to the certificate in "
                    f"{p['certificate_path']}: the TLS secret would not be served"
                )
    else:
        result.update(source="connection", peer=f"{p['connect_address'] or p['host']}:{p['port']}")
        try:
            fetched = _tls.fetch_certificate(
                p["host"], p["port"], connect_address=p["connect_address"], timeout=p["timeout"], ca_path=p["ca_path"]
            )
        except _tls.TLSCheckError as exc:
            if exc.unreachable and not p["fail_on_unreachable"]:
                result.update(reachable=False, msg=f"not checked: {exc}")
                return result
            raise
        result.update(reachable=True, tls_version=fetched.tls_version)
        trusted, verify_error = fetched.trusted, fetched.verify_error
        info = _tls.parse_der(fetched.der)

    verdict = _tls.evaluate(
        info,
        p["host"],
        _tls.utcnow(),
        min_days=p["min_days"],
        check_name=p["check_name"],
        require_trusted=p["require_trusted"],
        trusted=trusted,
        verify_error=verify_error,
    )
    result.update(info.as_result())
    result.update(
        trusted=trusted,
        verify_error=verify_error,
        days_left=verdict.days_left,
        expired=verdict.expired,
        name_matches=verdict.name_matches,
        problems=verdict.problems + ([key_problem] if key_problem else []),
    )
    return result


def read_file(path: str) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError as exc:
        raise _tls.TLSCheckError(f"cannot read {path}: {exc.strerror}") from exc


def check(p: dict[str, Any]) -> dict[str, Any]:
    """One run of tls_check with its module parameters: run(), failing with every problem found."""
    try:
        result = run(p)
    except _tls.TLSCheckError as exc:
        host, reachable = p["host"], not exc.unreachable
        raise ModuleError(str(exc), host=host, reachable=reachable, problems=[str(exc)]) from exc
    if result["problems"]:
        raise ModuleError("; ".join(result["problems"]), **result)
    return result
