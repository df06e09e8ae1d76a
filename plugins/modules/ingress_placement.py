#!/usr/bin/python
# Copyright (c) mybinder.deploy developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: ingress_placement
short_description: Check where the ingress controller can run and where it runs, against cordoned nodes
version_added: 0.1.0
description:
  - Reads the nodes and the ingress controller's pods once and checks them the way the
    M(mybinder.deploy.ingress) role needs before and after an upgrade.
  - Every controller pod on a cordoned node is an outage although every pod is Running - cloud load
    balancers stop sending traffic to cordoned nodes (upstream lost 40 minutes this way). Depending on
    O(cordon_check) that is a warning, a failure, or ignored.
  - With O(check_settings), also refuses settings the nodes cannot satisfy (a pinned node that does not exist,
    more replicas with required anti-affinity than nodes matching the node selector), naming every problem at
    once, and warns when cordoned nodes leave too few places for new controller pods.
  - Sets the fact C(ingress_placement) (the same as RV(placement)).
  - Why a module and not tasks - the reads and checks were nine tasks of Jinja over the API's lists; one run in
    Ansible's worker process reads both lists on one connection.
extends_documentation_fragment:
  - mybinder.deploy.module
  - mybinder.deploy.kube_connection
  - mybinder.deploy.attributes.read_only
options:
  namespace:
    description: Namespace of the controller's pods.
    type: str
    required: true
  pod_labels:
    description: Labels that select the controller's pods (all must match).
    type: dict
    required: true
  node_selector:
    description: The controller's node selector; nodes carrying all these labels are the ones it can use.
    type: dict
    default: {}
  pinned_node:
    description: Node the controller is pinned to (host networking); it must exist. Empty for none.
    type: str
    default: ""
  replicas:
    description: Controller replicas the release asks for.
    type: int
    default: 1
  anti_affinity:
    description: The controller's anti-affinity across nodes; V(required) needs a node per replica.
    type: str
    choices: [preferred, required, none]
    default: preferred
  cordon_check:
    description: What every controller pod on a cordoned node means - a warning, a failure, or nothing.
    type: str
    choices: [warn, fail, ignore]
    default: warn
  check_settings:
    description:
      - Also refuse a O(pinned_node) that is not a node and more O(replicas) with required anti-affinity than
        matching nodes, and warn when cordoned nodes leave too few places for new controller pods.
    type: bool
    default: true
  moment:
    description: When the check runs, for the messages and RV(placement) (e.g. V(before the upgrade)).
    type: str
    default: now
  variable_prefix:
    description: Prefix of the settings' names in messages (the role passes V(ingress_), so they name its variables).
    type: str
    default: ""
seealso:
  - module: mybinder.deploy.node_drain
"""

EXAMPLES = r"""
- name: Check where the controller can run and runs, before the upgrade
  mybinder.deploy.ingress_placement:
    namespace: ingress-nginx
    pod_labels:
      app.kubernetes.io/name: ingress-nginx
      app.kubernetes.io/instance: ingress-nginx
      app.kubernetes.io/component: controller
    node_selector: {kubernetes.io/os: linux, mybinder.org/node-purpose: core}
    replicas: 2
    anti_affinity: required
    cordon_check: fail
    moment: before the upgrade
"""

RETURN = r"""
placement:
  description:
    - Where the controller's pods run (pods being deleted and pods not yet scheduled are left out), which nodes
      are cordoned, and whether every pod sits on a cordoned node.
  returned: always
  type: dict
  sample:
    moment: before the upgrade
    pods: [{name: ingress-nginx-controller-5d8f-abcde, node: core-0, phase: Running, cordoned: false}]
    cordoned_nodes: []
    all_on_cordoned: false
matching_nodes:
  description: The nodes that carry every label of O(node_selector), and whether each is cordoned.
  returned: always
  type: list
  elements: dict
  sample: [{name: core-0, cordoned: false}]
nodes:
  description: Names of all nodes.
  returned: always
  type: list
  elements: str
"""

from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.mybinder.deploy.plugins.module_utils._errors import conclude
from ansible_collections.mybinder.deploy.plugins.module_utils._ingress_placement import check_placement
from ansible_collections.mybinder.deploy.plugins.module_utils._kube_client import KUBE_CONNECTION_ARG_SPEC


def main() -> None:
    spec: dict[str, Any] = {
        "namespace": {"type": "str", "required": True},
        "pod_labels": {"type": "dict", "required": True},
        "node_selector": {"type": "dict", "default": {}},
        "pinned_node": {"type": "str", "default": ""},
        "replicas": {"type": "int", "default": 1},
        "anti_affinity": {"type": "str", "choices": ["preferred", "required", "none"], "default": "preferred"},
        "cordon_check": {"type": "str", "choices": ["warn", "fail", "ignore"], "default": "warn"},
        "check_settings": {"type": "bool", "default": True},
        "moment": {"type": "str", "default": "now"},
        "variable_prefix": {"type": "str", "default": ""},
    }
    spec.update(KUBE_CONNECTION_ARG_SPEC)
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    conclude(module, lambda: check_placement(module.params, module.warn))


if __name__ == "__main__":
    main()
