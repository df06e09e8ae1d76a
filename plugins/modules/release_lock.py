#!/usr/bin/python
# Copyright (c) mybinder.deploy developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: release_lock
short_description: Take or give back the deploy lock of a Helm release, a Lease in the cluster
version_added: 0.2.0
description:
  - One deploy of a release at a time, across machines - the lock is a C(coordination.k8s.io/v1) Lease in the
    cluster (named C(mybinder-deploy.<namespace>.<release>) in O(lease_namespace)), holding who took it (user,
    machine and ansible-playbook process) and since when.
  - With O(state=acquired), the lock is taken when it is free, or when its holder stopped renewing it for longer than
    its duration (a run that died; RV(took_over) names it). While another run holds it, the module waits for it, up
    to O(timeout) seconds, printing who holds it and since when, then fails naming the holder, having changed nothing.
  - Once the lock is held, a revision of the release that helm left pending less than O(pending_grace) seconds ago
    while no run held the lock belongs to a helm run outside the deploy (an operator's own C(helm upgrade --wait)),
    so the module waits for it to end too, instead of letting the deploy roll it back as abandoned.
  - The holder renews the lock while it works - M(mybinder.deploy.helm_release), M(mybinder.deploy.rollout_status)
    and M(mybinder.deploy.helm_rollback) renew the lock given in their O(mybinder.deploy.helm_release#module:lock)
    option - and gives it back with O(state=released).
  - The lock also records a revision whose rollout its holder has not confirmed yet (O(record_rollout)); a run that
    dies before it confirms leaves the record, and the next run gets it back in RV(unconfirmed_rollout) to finish
    the work - wait for that rollout again, and roll back to the revision it replaced when it fails.
  - Taking and giving back the lock is never reported as a change.
extends_documentation_fragment:
  - mybinder.deploy.module
  - mybinder.deploy.kubeconfig
  - mybinder.deploy.attributes.rounds
attributes:
  check_mode:
    support: full
    details: Never takes or gives back the lock; says (as a warning) when another run holds it.
  diff_mode:
    support: none
  idempotent:
    description: Taking a lock this run holds renews it.
    support: full
options:
  release:
    description: Name of the Helm release the lock is for.
    type: str
    required: true
  release_namespace:
    description: Namespace of the release.
    type: str
    required: true
  state:
    description: V(acquired) takes (or renews, or records in) the lock; V(released) gives it back.
    type: str
    choices: [acquired, released]
    default: acquired
  holder:
    description:
      - Who holds the lock. The default names the user, the machine and the ansible-playbook process, so every task
        of one run is the same holder.
    type: str
  timeout:
    description: Seconds to wait for a lock another run holds (V(0) fails at once).
    type: int
    default: 600
  duration:
    description:
      - Seconds the lock stays valid after its last renewal. A run that dies blocks the next one this long at most.
    type: int
    default: 60
  lease_namespace:
    description: Namespace of the Leases (it must exist).
    type: str
    default: kube-system
  pending_grace:
    description:
      - Seconds after which a revision left pending by a helm run outside the deploy counts as abandoned (and is
        recovered by M(mybinder.deploy.helm_release)); helm's own timeout is 5 minutes by default.
    type: int
    default: 300
  record_rollout:
    description:
      - With O(state=acquired) by the holder, record the revision whose rollout is not confirmed yet and the revision
        it replaced (V(revision), V(replaces)); an empty dict clears the record.
    type: dict
  rollout_confirmed:
    description: With O(state=released), whether the recorded rollout is done with (rolled out, or rolled back).
    type: bool
    default: true
  secret_keys:
    description:
      - With O(state=released), the key paths (names, never values) of the secret values the release was deployed
        with, recorded with the lock for the next deploy (RV(secret_keys)).
    type: list
    elements: str
seealso:
  - module: mybinder.deploy.helm_release
  - name: Leases
    description: The Kubernetes object the lock is.
    link: https://kubernetes.io/docs/concepts/architecture/leases/
"""

EXAMPLES = r"""
- name: Take the deploy lock of the release (wait up to 10 minutes for another run)
  mybinder.deploy.release_lock:
    release: prod
    release_namespace: prod
  register: lock

- name: Deploy while holding it
  mybinder.deploy.helm_release:
    name: prod
    namespace: prod
    chart_ref: mybinder
    lock: "{{ lock.lock }}"

- name: Give the lock back
  mybinder.deploy.release_lock:
    release: prod
    release_namespace: prod
    holder: "{{ lock.lock.holder }}"
    state: released
"""

RETURN = r"""
lock:
  description: The lock, for the O(mybinder.deploy.helm_release#module:lock) option of the modules that renew it.
  returned: always
  type: dict
  sample: {name: mybinder-deploy.prod.prod, namespace: kube-system, holder: "ci@deploy-1 (ansible-playbook pid 4242)",
           duration: 60}
acquired:
  description: Whether this run holds the lock now.
  returned: with O(state=acquired)
  type: bool
released:
  description: Whether the lock was given back (V(false) when another run holds it).
  returned: with O(state=released)
  type: bool
took_over:
  description: The run whose expired lock was taken (holder, acquired, renewed), or V(null).
  returned: when acquired
  type: dict
unconfirmed_rollout:
  description:
    - A rollout an earlier holder did not confirm - V(revision) (the revision made) and V(replaces) (the revision that
      served before it) - or V(null).
  returned: when acquired
  type: dict
  sample: {revision: 8, replaces: 7}
secret_keys:
  description:
    - The key paths of the secret values the last deploy that recorded them rolled out with (O(secret_keys)), or
      V(null) when none did. A deploy refuses a secret values file that lost one of them.
  returned: when acquired
  type: list
  elements: str
  sample: [binderhub.config.GitHubRepoProvider.access_token, binderhub.jupyterhub.hub.cookieSecret]
held_by:
  description: The live holder of the lock when it is not this run (holder, acquired, renewed), or V(null).
  returned: in check mode, and when the lock is held by another run
  type: dict
waiting_for:
  description: What a round that ended without the lock was waiting for.
  returned: when a round ends without the lock
  type: str
done:
  description: Whether the round ended with the lock (or the release) done.
  returned: always
  type: bool
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.mybinder.deploy.plugins.module_utils._errors import conclude
from ansible_collections.mybinder.deploy.plugins.module_utils._kube_client import KUBECONFIG_ARG_SPEC
from ansible_collections.mybinder.deploy.plugins.module_utils._lease import (
    LEASE_DURATION,
    LEASE_NAMESPACE,
    LOCK_TIMEOUT,
    PENDING_GRACE,
    release_lock,
)
from ansible_collections.mybinder.deploy.plugins.module_utils._rollout import ROUNDS_ARG_SPEC


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "release": {"type": "str", "required": True},
            "release_namespace": {"type": "str", "required": True},
            "state": {"type": "str", "choices": ["acquired", "released"], "default": "acquired"},
            "holder": {"type": "str"},
            "timeout": {"type": "int", "default": LOCK_TIMEOUT},
            "duration": {"type": "int", "default": LEASE_DURATION},
            "lease_namespace": {"type": "str", "default": LEASE_NAMESPACE},
            "pending_grace": {"type": "int", "default": PENDING_GRACE},
            "record_rollout": {"type": "dict"},
            "rollout_confirmed": {"type": "bool", "default": True},
            "secret_keys": {"type": "list", "elements": "str", "no_log": False},
            **ROUNDS_ARG_SPEC,
            **KUBECONFIG_ARG_SPEC,
        },
        supports_check_mode=True,
    )

    def run() -> dict:
        result = release_lock(module.params, module.check_mode, os.getppid())
        warning = result.pop("warning", None)
        if warning:
            module.warn(warning)
        return result

    conclude(module, run)


if __name__ == "__main__":
    main()
