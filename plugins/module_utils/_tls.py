# Copyright (c) mybinder.deploy developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Certificate health logic shared by the tls_check module (collection-private).

What lives here and why we wrote it instead of using a library:
- fetching the server certificate: Python's ``ssl`` does the handshake; we only add a second,
  unverified handshake so that an untrusted certificate (self-signed, wrong CA) can still be
  described (issuer, names, dates) instead of ending in a bare verification error;
- name matching: ``ssl.match_hostname`` was deprecated in 3.7 and removed in 3.12, and OpenSSL's
  check only says yes or no; we need the matching rule (RFC 6125: a wildcard is the whole
  left-most label and covers exactly one label) to explain a mismatch, so it is a few lines here;
- parsing and dates: ``cryptography``.
Everything except ``fetch_certificate`` is pure and unit tested without a network.
"""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
from dataclasses import asdict, dataclass, field
from typing import Any

from ansible_collections.mybinder.deploy.plugins.module_utils._errors import ModuleError
from ansible_collections.mybinder.deploy.plugins.module_utils._git_crypt import HEADER as GITCRYPT_HEADER

CRYPTOGRAPHY_IMPORT_ERROR: str | None
try:
    from cryptography import x509
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import NameOID
except ImportError as exc:  # reported by the module with missing_required_lib()
    CRYPTOGRAPHY_IMPORT_ERROR = str(exc)
else:
    CRYPTOGRAPHY_IMPORT_ERROR = None

SECONDS_PER_DAY = 86400
DEFAULT_MIN_DAYS = 21


class TLSCheckError(ModuleError):
    """A failure that prevents describing the certificate at all (no connection, no handshake,
    unreadable file). ``unreachable`` is true when nothing answered on the address."""

    def __init__(self, msg: str, unreachable: bool = False) -> None:
        super().__init__(msg)
        self.unreachable = unreachable


@dataclass
class CertInfo:
    """What an operator wants to know about one certificate."""

    subject: str
    issuer: str
    common_name: str | None
    sans: list[str]
    ip_sans: list[str]
    not_before: datetime.datetime
    not_after: datetime.datetime
    serial: str
    fingerprint_sha256: str
    self_signed: bool

    def as_result(self) -> dict[str, Any]:
        out = asdict(self)
        out["not_before"] = iso(self.not_before)
        out["not_after"] = iso(self.not_after)
        return out


@dataclass
class FetchResult:
    der: bytes
    trusted: bool
    verify_error: str | None
    tls_version: str | None
    peer: str


@dataclass
class Evaluation:
    days_left: int
    expired: bool
    not_yet_valid: bool
    name_matches: bool
    problems: list[str] = field(default_factory=list)


def iso(value: datetime.datetime) -> str:
    return value.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


# ------------------------------------------------------------------------------------------------
# parsing


def _common_name(name: x509.Name) -> str | None:
    attrs = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(attrs[0].value) if attrs else None


def _is_self_signed(cert: x509.Certificate) -> bool:
    if cert.issuer != cert.subject:
        return False
    try:
        cert.verify_directly_issued_by(cert)
    except Exception:  # wrong signature, unsupported key type: not provably self-signed
        return False
    return True


def describe(cert: x509.Certificate) -> CertInfo:
    """Turn a parsed certificate into the facts the module returns."""
    dns: list[str] = []
    ips: list[str] = []
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        pass
    else:
        dns = [str(n) for n in ext.get_values_for_type(x509.DNSName)]
        ips = [str(n) for n in ext.get_values_for_type(x509.IPAddress)]
    return CertInfo(
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        common_name=_common_name(cert.subject),
        sans=dns,
        ip_sans=ips,
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        serial=format(cert.serial_number, "x"),
        fingerprint_sha256=cert.fingerprint(hashes.SHA256()).hex(":"),
        self_signed=_is_self_signed(cert),
    )


def parse_der(der: bytes) -> CertInfo:
    return describe(x509.load_der_x509_certificate(der))


def _locked(source: str) -> TLSCheckError:
    return TLSCheckError(
        f"{source} is still encrypted by git-crypt: unlock the secrets first "
        "(the secrets stage of deploy.yml, or git-crypt unlock)"
    )


def load_pem_leaf(data: bytes, source: str) -> x509.Certificate:
    """The first certificate of a PEM file (the leaf of a chain file). Private keys in the same
    file are skipped, never parsed into anything returned."""
    if data.startswith(GITCRYPT_HEADER):
        raise _locked(source)
    try:
        return x509.load_pem_x509_certificates(data)[0]
    except ValueError as exc:
        raise TLSCheckError(f"{source} holds no PEM certificate ({exc})") from exc


def parse_pem_file(data: bytes, source: str) -> CertInfo:
    return describe(load_pem_leaf(data, source))


def key_matches(cert: x509.Certificate, key_data: bytes, source: str) -> bool:
    """Whether the unencrypted PEM private key in ``key_data`` belongs to ``cert``. Errors never
    quote the key material."""
    if key_data.startswith(GITCRYPT_HEADER):
        raise _locked(source)
    try:
        key = serialization.load_pem_private_key(key_data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise TLSCheckError(f"{source} holds no readable, unencrypted PEM private key") from None
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    return key.public_key().public_bytes(*spki) == cert.public_key().public_bytes(*spki)


# ------------------------------------------------------------------------------------------------
# names


def _ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(value.strip("[]"))
    except ValueError:
        return None


def _normalise(name: str) -> str:
    return name.strip().rstrip(".").lower()


def dns_name_matches(pattern: str, name: str) -> bool:
    """RFC 6125 6.4.3 as browsers apply it: exact match, or ``*`` as the whole left-most label
    standing for exactly one label (``*.a.org`` covers ``b.a.org``, not ``a.org`` nor ``c.b.a.org``).
    Partial-label wildcards (``b*.a.org``) and wildcards elsewhere never match."""
    pattern, name = _normalise(pattern), _normalise(name)
    if not pattern or not name:
        return False
    if "*" not in pattern:
        return pattern == name
    p_labels, n_labels = pattern.split("."), name.split(".")
    if p_labels[0] != "*" or "*" in ".".join(p_labels[1:]) or len(p_labels) < 3:
        return False
    return len(n_labels) == len(p_labels) and n_labels[1:] == p_labels[1:] and n_labels[0] != ""


def name_matches(name: str, sans: list[str], ip_sans: list[str]) -> bool:
    """Whether a certificate with these subject alternative names is valid for ``name``. The
    subject common name is deliberately not consulted (browsers ignore it when SANs exist and
    CAs always set SANs)."""
    ip = _ip(name)
    if ip is not None:
        return any(_ip(s) == ip for s in ip_sans)
    return any(dns_name_matches(p, name) for p in sans)


# ------------------------------------------------------------------------------------------------
# evaluation


def days_left(not_after: datetime.datetime, now: datetime.datetime) -> int:
    """Whole days until expiry, rounded down; negative once expired."""
    return int((not_after - now).total_seconds() // SECONDS_PER_DAY)


def evaluate(
    info: CertInfo,
    name: str,
    now: datetime.datetime,
    min_days: int = DEFAULT_MIN_DAYS,
    check_name: bool = True,
    require_trusted: bool = True,
    trusted: bool | None = None,
    verify_error: str | None = None,
) -> Evaluation:
    """Judge a certificate for ``name``; each problem is one sentence an operator can act on."""
    left = days_left(info.not_after, now)
    expired = now >= info.not_after
    not_yet_valid = now < info.not_before
    matches = name_matches(name, info.sans, info.ip_sans)
    problems: list[str] = []
    if expired:
        problems.append(
            f"the certificate for {name} expired on {iso(info.not_after)} ({-left} days ago): "
            "renew it now (playbooks/debug-tls.yml shows why the TLS controller did not)"
        )
    elif left < min_days:
        problems.append(
            f"the certificate for {name} expires in {left} days (on {iso(info.not_after)}), below the "
            f"threshold of {min_days} days: automatic renewal has not happened; "
            "run playbooks/debug-tls.yml to see why"
        )
    if not_yet_valid:
        problems.append(f"the certificate for {name} is not valid before {iso(info.not_before)}")
    if check_name and not matches:
        names = ", ".join(info.sans + info.ip_sans) or "none"
        problems.append(
            f"the certificate served for {name} does not cover that name (its names: {names}); "
            "check which TLS secret the ingress for this host uses"
        )
    if require_trusted and trusted is False:
        why = "it is self-signed" if info.self_signed else (verify_error or "verification failed")
        problems.append(f"the certificate for {name} is not trusted: {why} (issuer {info.issuer})")
    return Evaluation(
        days_left=left, expired=expired, not_yet_valid=not_yet_valid, name_matches=matches, problems=problems
    )


# ------------------------------------------------------------------------------------------------
# network


def _handshake(
    ctx: ssl.SSLContext, address: str, port: int, sni: str | None, timeout: float
) -> tuple[bytes, str | None]:
    with socket.create_connection((address, port), timeout=timeout) as sock:  # noqa: SIM117 (py3.9 syntax)
        with ctx.wrap_socket(sock, server_hostname=sni) as tls:
            der = tls.getpeercert(binary_form=True)
            if not der:
                raise TLSCheckError(f"{address}:{port} completed the handshake but sent no certificate")
            return der, tls.version()


def fetch_certificate(
    host: str,
    port: int = 443,
    connect_address: str | None = None,
    timeout: float = 10.0,
    ca_path: str | None = None,
) -> FetchResult:
    """Connect to ``connect_address`` (default ``host``) with SNI ``host`` and return the leaf
    certificate, whether it chains to a trusted root (``ca_path`` replaces the system store), and
    the verification error if not. Host names are not checked here (see ``evaluate``)."""
    address = connect_address or host
    sni = None if _ip(host) is not None else host
    peer = f"{address}:{port}"
    verifying = ssl.create_default_context(cafile=ca_path) if ca_path else ssl.create_default_context()
    # Names are judged by evaluate() so that a mismatch is reported with the names the certificate has.
    verifying.check_hostname = False
    try:
        der, version = _handshake(verifying, address, port, sni, timeout)
        return FetchResult(der=der, trusted=True, verify_error=None, tls_version=version, peer=peer)
    except ssl.SSLCertVerificationError as exc:
        verify_error = exc.verify_message or str(exc)
    except (socket.gaierror, ConnectionRefusedError, TimeoutError) as exc:
        raise TLSCheckError(f"cannot connect to {peer} (SNI {host}): {exc}", unreachable=True) from exc
    except ssl.SSLError as exc:
        raise TLSCheckError(f"TLS handshake with {peer} (SNI {host}) failed: {exc}") from exc
    except OSError as exc:
        raise TLSCheckError(f"cannot connect to {peer} (SNI {host}): {exc}", unreachable=True) from exc

    # Untrusted: look again without verification so the certificate can still be described.
    insecure = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    insecure.check_hostname = False
    insecure.verify_mode = ssl.CERT_NONE
    try:
        der, version = _handshake(insecure, address, port, sni, timeout)
    except (ssl.SSLError, OSError) as exc:
        raise TLSCheckError(f"TLS handshake with {peer} (SNI {host}) failed: {exc}") from exc
    return FetchResult(der=der, trusted=False, verify_error=verify_error, tls_version=version, peer=peer)
