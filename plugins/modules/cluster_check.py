#!/usr/bin/python
# Copyright (c) mybinder.deploy developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: cluster_check
short_description: Check that a kubeconfig reaches its cluster with valid credentials, report the server version
version_added: 0.1.0
description:
  - Reads the kubeconfig and context, and checks, in this order, with a message that names the problem and the
    fix for each - the file exists and is not still encrypted by git-crypt; the context exists; the client
    certificate the context authenticates with (if any) has not expired (an expired one makes the API server
    answer a bare 401); the API server answers (C(/version)) within O(timeout) seconds; it accepts the
    credentials (a C(SelfSubjectReview), which also tells who we are).
  - Warns when the client certificate expires within O(min_certificate_days) days.
  - kubernetes.core.k8s_cluster_info reports the version too, but discovers every API group first (slow) and
    turns an expired certificate or an unreachable server into a generic client error.
  - Read-only.
requirements:
  - kubernetes (Python client) >= 24
  - cryptography (to read client certificate dates)
extends_documentation_fragment:
  - mybinder.deploy.module
  - mybinder.deploy.attributes.read_only
  - mybinder.deploy.kubeconfig
options:
  timeout:
    description: Seconds to wait for the API server to answer.
    type: int
    default: 10
  min_certificate_days:
    description: Warn when the client certificate expires in fewer days than this.
    type: int
    default: 14
seealso:
  - module: kubernetes.core.k8s_cluster_info
"""

EXAMPLES = r"""
- name: Check cluster access and get the server version
  mybinder.deploy.cluster_check:
    kubeconfig: secret/ovh-kubeconfig.yml
    context: ovh
  register: cluster

- name: Show it
  ansible.builtin.debug:
    msg: "{{ cluster.server }} runs Kubernetes {{ cluster.server_version }}"
"""

RETURN = r"""
server:
  description: API server URL of the context.
  returned: always
  type: str
  sample: https://203.0.113.10:6443
context:
  description: The context used.
  returned: always
  type: str
server_version:
  description: The server's gitVersion.
  returned: always
  type: str
  sample: v1.34.4
version:
  description: The server's version information (C(major), C(minor), C(gitVersion), C(platform), ...).
  returned: always
  type: dict
user:
  description: The user the API server authenticated us as (when it supports SelfSubjectReview).
  returned: always
  type: str
  sample: system:admin
client_certificate:
  description: Validity of the client certificate the context uses, V(null) when it uses none.
  returned: always
  type: dict
  sample: {source: /path/admin.crt, not_after: "2026-01-01T00:00:00+00:00", days_left: 200, expired: false}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.mybinder.deploy.plugins.module_utils._cluster_check import run
from ansible_collections.mybinder.deploy.plugins.module_utils._errors import conclude
from ansible_collections.mybinder.deploy.plugins.module_utils._kube_client import KUBECONFIG_ARG_SPEC, KUBERNETES


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            **KUBECONFIG_ARG_SPEC,
            "timeout": {"type": "int", "default": 10},
            "min_certificate_days": {"type": "int", "default": 14},
        },
        supports_check_mode=True,
    )
    conclude(module, lambda: run(module.params, module.warn), KUBERNETES)


if __name__ == "__main__":
    main()
