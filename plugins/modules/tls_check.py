#!/usr/bin/python
# Copyright (c) mybinder.deploy developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: tls_check
short_description: Check the TLS certificate a host serves (or a certificate file) before users notice
version_added: 0.1.0
description:
  - Connects to O(host) on O(port) with SNI O(host) (optionally to another address, O(connect_address),
    e.g. an ingress controller's IP before DNS points at it), takes the certificate the server presents and
    returns its issuer, subject, subject alternative names, validity dates, the days left and whether it
    covers O(host).
  - Fails when the certificate expires in fewer than O(min_days) days, has expired, does not cover O(host)
    (O(check_name)), or does not chain to a trusted root (O(require_trusted)). Every problem is named in the
    failure message, so a silently failed renewal is caught weeks before the certificate runs out.
  - With O(certificate_path) it judges a PEM certificate file instead of a live server (for instance a
    pre-made wildcard certificate before it is put into the cluster); nothing is connected to then.
  - Read-only; it never changes anything.
requirements:
  - cryptography >= 42
extends_documentation_fragment:
  - mybinder.deploy.module
  - mybinder.deploy.attributes.read_only
attributes:
  idempotent:
    description: Running the module again with the same options gives the same result.
    support: full
options:
  host:
    description:
      - The DNS name (or IP address) the certificate must be valid for. It is sent as SNI and, unless
        O(connect_address) is set, is the address connected to.
    type: str
    required: true
  port:
    description: TCP port of the TLS server (1-65535; anything else is refused before connecting).
    type: int
    default: 443
  connect_address:
    description:
      - Address (IP or name) to connect to instead of O(host); SNI and name matching still use O(host).
    type: str
  timeout:
    description: Seconds to wait for the connection and the handshake (above 0).
    type: float
    default: 10.0
  min_days:
    description:
      - Fail when fewer than this many whole days are left before the certificate expires.
      - Let's Encrypt certificates live 90 days and cert-manager renews them 30 days before expiry, so the
        default of 21 days means a renewal has been failing for over a week.
    type: int
    default: 21
  check_name:
    description: Fail when the certificate does not cover O(host) (RFC 6125 rules, wildcards cover one label).
    type: bool
    default: true
  require_trusted:
    description:
      - Fail when the certificate does not chain to a trusted root (self-signed, unknown CA).
      - Ignored with O(certificate_path), where no chain is presented.
    type: bool
    default: true
  ca_path:
    description:
      - PEM file of trusted root certificates that replaces the system trust store, e.g. Let's Encrypt's
        staging roots for a staging environment.
    type: path
  fail_on_unreachable:
    description:
      - When V(false), a host that cannot be connected to (no DNS record, refused, timed out) is reported
        with RV(reachable=false) instead of failing. A failed TLS handshake is always a failure.
    type: bool
    default: true
  certificate_path:
    description:
      - Judge this PEM certificate file (its first certificate) instead of connecting. Private keys in the
        file are never read into the result.
      - Mutually exclusive with O(connect_address).
    type: path
  private_key_path:
    description:
      - With O(certificate_path), also check that this unencrypted PEM private key belongs to the certificate
        (a mismatched pair makes ingress-nginx serve its fake default certificate instead). The key is only
        compared, never returned.
    type: path
notes:
  - The subject common name is reported but never used for name matching, as in browsers.
seealso:
  - name: cert-manager troubleshooting
    description: What to look at when a certificate is not renewed.
    link: https://cert-manager.io/docs/troubleshooting/
"""

EXAMPLES = r"""
- name: Check the certificate of the production site
  mybinder.deploy.tls_check:
    host: mybinder.org

- name: Check a host through the ingress controller's IP, with a tighter threshold
  mybinder.deploy.tls_check:
    host: ovh.mybinder.org
    connect_address: 203.0.113.10
    min_days: 30

- name: Report, but do not fail on, hosts that have no DNS record yet
  mybinder.deploy.tls_check:
    host: gke.staging.mybinder.org
    ca_path: /etc/ssl/letsencrypt-staging-roots.pem
    fail_on_unreachable: false
  register: staging_cert

- name: Check the pre-made OVH wildcard certificate and its key before they go into the cluster
  mybinder.deploy.tls_check:
    host: binder.mybinder.ovh
    certificate_path: secret/ovh-wildcard-tls.crt
    private_key_path: secret/ovh-wildcard-tls.key
"""

RETURN = r"""
host:
  description: The name that was checked.
  returned: always
  type: str
  sample: mybinder.org
source:
  description: V(connection) when a server was asked, V(file) with O(certificate_path).
  returned: always
  type: str
  sample: connection
peer:
  description: The C(address:port) connected to.
  returned: when O(certificate_path) is not set
  type: str
  sample: 203.0.113.10:443
reachable:
  description:
    - Whether a TCP connection could be made (always V(true) with O(certificate_path)).
    - When V(false) (only with O(fail_on_unreachable=false)), C(msg) says why and no certificate facts are returned.
  returned: always
  type: bool
  sample: true
tls_version:
  description: Protocol version negotiated.
  returned: when the host was reached
  type: str
  sample: TLSv1.3
issuer:
  description: Issuer distinguished name (RFC 4514).
  returned: when a certificate was obtained
  type: str
  sample: CN=R11,O=Let's Encrypt,C=US
subject:
  description: Subject distinguished name (RFC 4514).
  returned: when a certificate was obtained
  type: str
  sample: CN=mybinder.org
common_name:
  description: Subject common name, or null.
  returned: when a certificate was obtained
  type: str
  sample: mybinder.org
sans:
  description: DNS subject alternative names.
  returned: when a certificate was obtained
  type: list
  elements: str
  sample: [mybinder.org, www.mybinder.org]
ip_sans:
  description: IP address subject alternative names.
  returned: when a certificate was obtained
  type: list
  elements: str
  sample: []
not_before:
  description: Start of validity, UTC, ISO 8601.
  returned: when a certificate was obtained
  type: str
  sample: "2026-01-01T00:00:00Z"
not_after:
  description: End of validity, UTC, ISO 8601.
  returned: when a certificate was obtained
  type: str
  sample: "2026-04-01T00:00:00Z"
days_left:
  description: Whole days until RV(not_after), rounded down; negative after expiry.
  returned: when a certificate was obtained
  type: int
  sample: 57
expired:
  description: Whether the certificate has expired.
  returned: when a certificate was obtained
  type: bool
  sample: false
name_matches:
  description: Whether the certificate covers O(host).
  returned: when a certificate was obtained
  type: bool
  sample: true
trusted:
  description: Whether the presented chain verified against the trust store; null with O(certificate_path).
  returned: when a certificate was obtained
  type: bool
  sample: true
verify_error:
  description: Why verification failed, or null.
  returned: when a certificate was obtained
  type: str
  sample: self-signed certificate
key_matches:
  description: Whether O(private_key_path) holds the private key of the certificate.
  returned: when O(private_key_path) is set
  type: bool
  sample: true
self_signed:
  description: Whether the certificate is signed by its own key.
  returned: when a certificate was obtained
  type: bool
  sample: false
serial:
  description: Serial number, hexadecimal.
  returned: when a certificate was obtained
  type: str
  sample: 4a3f0c
fingerprint_sha256:
  description: SHA-256 fingerprint of the certificate, colon separated.
  returned: when a certificate was obtained
  type: str
  sample: "ab:cd:..."
min_days:
  description: The threshold applied.
  returned: always
  type: int
  sample: 21
problems:
  description: One sentence per problem found; empty when the certificate is healthy.
  returned: always
  type: list
  elements: str
  sample: []
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.mybinder.deploy.plugins.module_utils import _tls
from ansible_collections.mybinder.deploy.plugins.module_utils._errors import Requirement, conclude
from ansible_collections.mybinder.deploy.plugins.module_utils._tls_check import check


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            host=dict(type="str", required=True),
            port=dict(type="int", default=443),
            connect_address=dict(type="str"),
            timeout=dict(type="float", default=10.0),
            min_days=dict(type="int", default=_tls.DEFAULT_MIN_DAYS),
            check_name=dict(type="bool", default=True),
            require_trusted=dict(type="bool", default=True),
            ca_path=dict(type="path"),
            fail_on_unreachable=dict(type="bool", default=True),
            certificate_path=dict(type="path"),
            private_key_path=dict(type="path"),
        ),
        mutually_exclusive=[("certificate_path", "connect_address")],
        required_by={"private_key_path": "certificate_path"},
        supports_check_mode=True,
    )
    cryptography = Requirement(
        _tls.CRYPTOGRAPHY_IMPORT_ERROR is None,
        "cryptography",
        _tls.CRYPTOGRAPHY_IMPORT_ERROR,
        reason="to read certificates",
    )
    conclude(module, lambda: check(module.params), cryptography)


if __name__ == "__main__":
    main()
