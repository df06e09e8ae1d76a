#!/usr/bin/python
# Copyright (c) mybinder.deploy developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: rollout_status
short_description: Wait for Deployments, StatefulSets and DaemonSets to roll out, with progress and explained failures
version_added: 0.1.0
description:
  - Waits until every listed workload (O(objects)), or every Deployment, StatefulSet and DaemonSet in
    O(namespace), has finished its rollout, judged as C(kubectl rollout status) judges it - in one task for all
    of them, with one deadline (O(timeout)).
  - While it waits, a line per round (every O(progress_interval) seconds) says how long it has waited, how many
    workloads are done and what each remaining one is waiting for. (The action plugin of the same name does the
    rounds; each round runs the module.)
  - When the deadline passes, or a Deployment exceeds its progress deadline, it fails naming every workload
    that did not finish, with its pods that are not ready (why they are not, such as unschedulable, container
    waiting reason, ...)
    and its most recent events.
  - Read-only.
requirements:
  - kubernetes (Python client) >= 24
extends_documentation_fragment:
  - mybinder.deploy.lock
  - mybinder.deploy.module
  - mybinder.deploy.attributes.rounds
  - mybinder.deploy.kubeconfig
attributes:
  check_mode:
    support: full
    details: Only reads; check mode waits the same way.
  diff_mode:
    support: none
  idempotent:
    description: Only reads.
    support: full
options:
  objects:
    description:
      - Workloads to wait for, each with C(kind) (V(Deployment), V(StatefulSet) or V(DaemonSet)), C(namespace)
        and C(name), e.g. RV(mybinder.deploy.helm_release#module:workloads).
      - Other kinds in the list are ignored.
    type: list
    elements: dict
  namespace:
    description: Wait for every Deployment, StatefulSet and DaemonSet in this namespace (when O(objects) is not given).
    type: str
  timeout:
    description: Seconds to wait in all before failing; at least 1 (0 or less is refused, nothing is waited for).
    type: int
    default: 300
  events:
    description: Number of recent events to report for each workload that failed.
    type: int
    default: 5
  interval:
    description:
      - Longest pause between two polls of the API server (each poll lists the workloads). For the first two seconds
        the pause is 0.05 s, so a quick rollout is seen within a twentieth of a second; then each pause is half as
        long again as the one before, up to this.
    type: float
    default: 0.5
seealso:
  - module: mybinder.deploy.helm_release
  - name: kubectl rollout status
    description: The rules used to judge a rollout.
    link: https://kubernetes.io/docs/reference/kubectl/generated/kubectl_rollout/kubectl_rollout_status/
"""

EXAMPLES = r"""
- name: Wait for the workloads of the release
  mybinder.deploy.rollout_status:
    objects: "{{ release.workloads }}"
    timeout: 600

- name: Wait for everything in a namespace, as upstream's deploy script did
  mybinder.deploy.rollout_status:
    namespace: staging
    timeout: 300
    progress_interval: 5
"""

RETURN = r"""
elapsed:
  description: Seconds this module run waited.
  returned: always
  type: float
done:
  description: Whether every workload finished its rollout.
  returned: always
  type: bool
ready:
  description: Workloads that finished, as C(Kind namespace/name).
  returned: always
  type: list
  elements: str
  sample: ["Deployment prod/hub"]
pending:
  description: Workloads that did not finish yet, with what they wait for.
  returned: always
  type: list
  elements: dict
  sample: [{kind: Deployment, namespace: prod, name: binder, message: 0 of 2 updated replicas available}]
failed:
  description: Workloads that did not finish (on failure), with their pods that are not ready and recent events.
  returned: on failure
  type: list
  elements: dict
  sample:
    - kind: Deployment
      namespace: prod
      name: binder
      message: 0 of 1 updated replicas available
      pods:
        - "pod binder-5d9c-x2: not scheduled: 0/3 nodes are available: 3 node(s) didn't match Pod's node selector."
      events: ["2024-05-01T10:00:00Z Warning FailedScheduling Pod/binder-5d9c-x2: 0/3 nodes are available ..."]
"""

from dataclasses import replace

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.mybinder.deploy.plugins.module_utils._errors import conclude
from ansible_collections.mybinder.deploy.plugins.module_utils._kube_client import KUBECONFIG_ARG_SPEC, KUBERNETES
from ansible_collections.mybinder.deploy.plugins.module_utils._lease import LOCK_ARG_SPEC
from ansible_collections.mybinder.deploy.plugins.module_utils._rollout import (
    ROLLOUT_TIMEOUT,
    ROUNDS_ARG_SPEC,
    rollout_status,
)


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "objects": {"type": "list", "elements": "dict"},
            "namespace": {"type": "str"},
            "timeout": {"type": "int", "default": ROLLOUT_TIMEOUT},
            **ROUNDS_ARG_SPEC,
            "events": {"type": "int", "default": 5},
            "interval": {"type": "float", "default": 0.5},
            **KUBECONFIG_ARG_SPEC,
            **LOCK_ARG_SPEC,
        },
        required_one_of=[("objects", "namespace")],
        mutually_exclusive=[("objects", "namespace")],
        supports_check_mode=True,
    )
    conclude(module, lambda: rollout_status(module.params), replace(KUBERNETES, reason="to read workloads"))


if __name__ == "__main__":
    main()
