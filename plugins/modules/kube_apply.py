#!/usr/bin/python
# Copyright (c) mybinder.deploy developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: kube_apply
short_description: Server-side apply Kubernetes objects, reporting a change only when the server's object changed
version_added: 0.1.0
description:
  - Sends every object of O(definition) or O(src) to the API server as a server-side apply (C(PATCH) with
    C(application/apply-patch+yaml)) under O(field_manager), and reports RV(ignore:changed) when the object was
    created or differs afterwards (compared without status and the metadata the server maintains), as
    M(kubernetes.core.k8s) with C(apply) and C(server_side_apply) does.
  - In check mode the same requests are sent as server-side dry runs (C(dryRun=All)), so the API server's
    validation and admission run and the prediction is exact; nothing is stored.
  - Why not M(kubernetes.core.k8s) - each of its tasks is a Python process that imports the kubernetes client and
    loads the cluster's API discovery (about a second here); this module runs in Ansible's worker process on the
    controller and discovers only the API groups of its objects. Use M(kubernetes.core.k8s) for anything else
    (deletion, waiting for other conditions, templates).
requirements:
  - kubernetes (Python client) >= 24, for kubeconfig contexts other than plain certificates or tokens
extends_documentation_fragment:
  - mybinder.deploy.module
  - mybinder.deploy.kube_connection
attributes:
  check_mode:
    support: full
    details: Server-side dry runs; the API server validates every object, nothing is stored.
  diff_mode:
    support: full
    details:
      - One before/after pair per changed object; the values of Secrets are never shown.
      - The task's own arguments (shown with C(-v) under C(invocation)) hold what was given; set C(no_log) on a task
        that applies Secrets.
  idempotent:
    description: Applying the same objects again changes nothing and reports no change.
    support: full
options:
  definition:
    description: An object, or a list of objects, as dictionaries. Exactly one of O(definition) and O(src).
    type: raw
  src:
    description:
      - A YAML file with one or more objects (documents separated by C(---)), or the http(s) URL of one (downloaded
        on every run, as M(kubernetes.core.k8s) does).
    type: path
  namespace:
    description: Namespace for namespaced objects that name none.
    type: str
  field_manager:
    description: The field manager that owns the applied fields.
    type: str
    default: mybinder-deploy
  force_conflicts:
    description: Take over fields that another field manager owns instead of failing on the conflict.
    type: bool
    default: false
  wait_established:
    description:
      - Seconds to wait, after applying, until every CustomResourceDefinition that was created or changed is
        C(Established) (its API is served); V(0) does not wait. Never waits in check mode.
    type: int
    default: 0
seealso:
  - module: kubernetes.core.k8s
  - module: mybinder.deploy.kube_read
"""

EXAMPLES = r"""
- name: Apply CRDs server-side, taking over fields an older client-side apply wrote
  mybinder.deploy.kube_apply:
    src: cert-manager.crds.yaml
    field_manager: mybinder-deploy
    force_conflicts: true
    wait_established: 60
  register: crds

- name: Keep two ClusterIssuers
  mybinder.deploy.kube_apply:
    definition:
      - apiVersion: cert-manager.io/v1
        kind: ClusterIssuer
        metadata:
          name: letsencrypt-prod
        spec: {}
      - apiVersion: cert-manager.io/v1
        kind: ClusterIssuer
        metadata:
          name: letsencrypt-staging
        spec: {}
"""

RETURN = r"""
results:
  description: One entry per object, in the order given.
  returned: always
  type: list
  elements: dict
  contains:
    kind:
      description: Kind of the object.
      type: str
    name:
      description: Name of the object.
      type: str
    namespace:
      description: Namespace of the object; empty for cluster-scoped objects.
      type: str
    changed:
      description: Whether the object was (or, in check mode, would be) created or changed.
      type: bool
    created:
      description: Whether the object did not exist before.
      type: bool
  sample: [{kind: ClusterIssuer, name: letsencrypt-prod, namespace: "", changed: false, created: false}]
"""

from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.mybinder.deploy.plugins.module_utils._errors import conclude
from ansible_collections.mybinder.deploy.plugins.module_utils._kube_apply import apply_objects
from ansible_collections.mybinder.deploy.plugins.module_utils._kube_client import KUBE_CONNECTION_ARG_SPEC
from ansible_collections.mybinder.deploy.plugins.module_utils._yaml import PYYAML


def main() -> None:
    spec: dict[str, Any] = {
        "definition": {"type": "raw"},
        "src": {"type": "path"},
        "namespace": {"type": "str"},
        "field_manager": {"type": "str", "default": "mybinder-deploy"},
        "force_conflicts": {"type": "bool", "default": False},
        "wait_established": {"type": "int", "default": 0},
    }
    spec.update(KUBE_CONNECTION_ARG_SPEC)
    module = AnsibleModule(
        argument_spec=spec,
        supports_check_mode=True,
        mutually_exclusive=[("definition", "src")],
        required_one_of=[("definition", "src")],
    )
    conclude(module, lambda: apply_objects(module.params, module.check_mode, module._diff), PYYAML)


if __name__ == "__main__":
    main()
