#!/usr/bin/python
# Copyright (c) mybinder.deploy developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: kube_read
short_description: Read Kubernetes objects by kind, name and selectors, optionally metadata only
version_added: 0.1.0
description:
  - Lists the objects of one kind (in one namespace or all), or gets one by name, and returns them as the API
    server sends them. An unknown kind is not an error - RV(api_found) says whether the server serves it.
  - With O(metadata_only) the server sends only the objects' metadata (C(PartialObjectMetadata)); for Secrets the
    data never leaves the API server.
  - Why not M(kubernetes.core.k8s_info) - each of its tasks is a Python process that imports the kubernetes client
    and loads the cluster's API discovery (about a second here); this module runs in Ansible's worker process on
    the controller and discovers only the API group it reads. Use M(kubernetes.core.k8s_info) for waiting.
requirements:
  - kubernetes (Python client) >= 24, for kubeconfig contexts other than plain certificates or tokens
extends_documentation_fragment:
  - mybinder.deploy.module
  - mybinder.deploy.kube_connection
  - mybinder.deploy.attributes.read_only
options:
  api_version:
    description: API group and version of the kind, V(v1) for the core group.
    type: str
    default: v1
  kind:
    description: The kind to read, e.g. V(Node), V(Pod), V(CustomResourceDefinition).
    type: str
    required: true
  namespace:
    description: Namespace to read from; all namespaces when not set (for namespaced kinds).
    type: str
  name:
    description: Read only the object with this name (an empty list when it does not exist).
    type: str
  label_selectors:
    description: Label selectors, all of which must match (C(app=x), C(name in (a,b)), C(!key)).
    type: list
    elements: str
    default: []
  field_selectors:
    description: Field selectors, all of which must match (C(spec.nodeName=node-1)).
    type: list
    elements: str
    default: []
  metadata_only:
    description: Return only the metadata of each object.
    type: bool
    default: false
seealso:
  - module: kubernetes.core.k8s_info
  - module: mybinder.deploy.kube_apply
"""

EXAMPLES = r"""
- name: Read the nodes
  mybinder.deploy.kube_read:
    kind: Node
  register: nodes

- name: Find helm's release records of two releases, without their contents
  mybinder.deploy.kube_read:
    kind: Secret
    label_selectors: ["owner=helm", "name in (cert-manager,kube-lego)"]
    metadata_only: true
  register: releases
"""

RETURN = r"""
resources:
  description: The matching objects (with O(metadata_only), their metadata only).
  returned: always
  type: list
  elements: dict
  sample: [{apiVersion: v1, kind: Node, metadata: {name: core-0, labels: {}}, spec: {}, status: {}}]
api_found:
  description: Whether the API server serves O(kind) in O(api_version).
  returned: always
  type: bool
"""

from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.mybinder.deploy.plugins.module_utils._errors import conclude
from ansible_collections.mybinder.deploy.plugins.module_utils._kube_client import KUBE_CONNECTION_ARG_SPEC
from ansible_collections.mybinder.deploy.plugins.module_utils._kube_read import read_resources


def main() -> None:
    spec: dict[str, Any] = {
        "api_version": {"type": "str", "default": "v1"},
        "kind": {"type": "str", "required": True},
        "namespace": {"type": "str"},
        "name": {"type": "str"},
        "label_selectors": {"type": "list", "elements": "str", "default": []},
        "field_selectors": {"type": "list", "elements": "str", "default": []},
        "metadata_only": {"type": "bool", "default": False},
    }
    spec.update(KUBE_CONNECTION_ARG_SPEC)
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    conclude(module, lambda: read_resources(module.params))


if __name__ == "__main__":
    main()
