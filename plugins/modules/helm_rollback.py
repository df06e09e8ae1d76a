#!/usr/bin/python
# Copyright (c) mybinder.deploy developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: helm_rollback
short_description: Roll a Helm release back to an earlier revision, only if it is not serving that content already
version_added: 0.1.0
description:
  - Runs C(helm rollback NAME REVISION --cleanup-on-fail) (without C(--wait)) unless the latest revision is
    C(deployed) and has the same manifest, hooks and values as O(revision), in which case nothing changes.
  - Used by the M(mybinder.deploy.helm_release) callers to go back to the revision that served before a failed
    upgrade or rollout. kubernetes.core has no module for C(helm rollback).
requirements:
  - helm >= 3.13, < 4
extends_documentation_fragment:
  - mybinder.deploy.lock
  - mybinder.deploy.module
  - mybinder.deploy.kubeconfig
  - mybinder.deploy.helm_release
attributes:
  check_mode:
    support: full
    details: Reports whether a rollback would run.
  diff_mode:
    support: none
  idempotent:
    description: Rolling back to the revision already serving changes nothing.
    support: full
options:
  revision:
    description: Revision to go back to.
    type: int
    required: true
  from_revision:
    description:
      - The revision this run made, the only one it may undo. When another revision serves now (another run, or an
        operator, deployed after this run), the module fails without rolling back over that work.
    type: int
seealso:
  - module: mybinder.deploy.helm_release
"""

EXAMPLES = r"""
- name: Go back to the revision that served before the failed upgrade
  mybinder.deploy.helm_rollback:
    name: prod
    namespace: prod
    revision: "{{ release.previous_revision }}"
  when: release.previous_revision > 0
"""

RETURN = r"""
revision:
  description: The revision serving after this run (the new revision a rollback created).
  returned: always
  type: int
  sample: 9
rolled_back_to:
  description: The revision whose content is serving.
  returned: always
  type: int
  sample: 7
command:
  description: The helm command run (or that would run).
  returned: when changed
  type: str
workloads:
  description:
    - Deployments, StatefulSets and DaemonSets of the revision rolled back to, for M(mybinder.deploy.rollout_status).
  returned: always
  type: list
  elements: dict
  sample: [{kind: Deployment, namespace: prod, name: hub}]
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.mybinder.deploy.plugins.module_utils._errors import conclude
from ansible_collections.mybinder.deploy.plugins.module_utils._helm_release import RELEASE_ARG_SPEC, rollback_release
from ansible_collections.mybinder.deploy.plugins.module_utils._kube_client import KUBECONFIG_ARG_SPEC
from ansible_collections.mybinder.deploy.plugins.module_utils._lease import LOCK_ARG_SPEC
from ansible_collections.mybinder.deploy.plugins.module_utils._yaml import PYYAML


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            **RELEASE_ARG_SPEC,
            "revision": {"type": "int", "required": True},
            **KUBECONFIG_ARG_SPEC,
            **LOCK_ARG_SPEC,
            "from_revision": {"type": "int"},
        },
        supports_check_mode=True,
    )
    conclude(
        module,
        lambda: rollback_release(
            module.params, module.check_mode, lambda name: module.get_bin_path(name, required=True)
        ),
        PYYAML,
    )


if __name__ == "__main__":
    main()
